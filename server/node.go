// Package server runs one snapkeep node: Raft (hashicorp/raft with raft-wal or
// raft-boltdb/v2 for the log, internal/raftstore, and a file snapshot store) over TCP,
// the FSM, the gRPC API, forwarding of writes to the leader, linearizable reads, and
// the leader's duties.
//
// Data dir layout:
//
//	<data-dir>/node-id            the node id, checked at every start
//	<data-dir>/raft/wal/          Raft log and stable store (raft-wal, the default)
//	<data-dir>/raft/raft.db       Raft log and stable store with --raft-log-store bolt
//	<data-dir>/raft/LOCK          held by the running node
//	<data-dir>/raft/snapshots/    raft snapshots of the FSM (the two newest are kept)
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/gc"
	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/internal/raftstore"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/restore"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/api"
	"github.com/snapkeep/snapkeep/server/clustertime"
	"github.com/snapkeep/snapkeep/server/finisher"
	"github.com/snapkeep/snapkeep/server/membership"
	"github.com/snapkeep/snapkeep/server/policy"
	"github.com/snapkeep/snapkeep/server/repostore"
	"github.com/snapkeep/snapkeep/server/scrub"
)

// Node is one running cluster member. Start it with Start and stop it with Close.
// Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	logger *slog.Logger

	fsm       *fsm.FSM
	raft      *raft.Raft
	transport *raftTransport
	raftStore *raftstore.Store // internal/raftstore: the WAL or bolt

	// objects is the bucket; ownObjects is set when the node made the client itself.
	objects    objstore.Store
	ownObjects *objstore.S3
	repos      *repostore.Stores // the repositories as this node reaches them
	root       layout.Root       // every key in the FSM is relative to it
	finisher   *finisher.Finisher
	policies   *policy.Scheduler
	scrubber   *scrub.Scrubber
	duties     *duty.Guard          // guards every background duty's passes (server/leader.go)
	coord      *restore.Coordinator // the leader's side of restore jobs
	runner     *restore.Runner      // this node's restore executor
	gc         *gc.Schedule
	backups    *backupService
	api        api.Services // the public services (server/api)

	grpcServer *grpc.Server
	grpcLn     net.Listener
	grpcAddr   string
	peers      *peerConns
	sec        *security                  // TLS and tokens (server/tls.go, server/auth.go)
	metrics    *nodeMetrics               // metrics.go
	logWrites  logWriteTracker            // logstore.go: the Raft log's last write error, for health
	healthGate atomic.Pointer[healthGate] // health.go: why client calls are refused now
	ops        *opsServer                 // http.go: gRPC health, metrics, health and pprof over HTTP
	members    *membership.Membership     // nil when gossip is off
	// clock is the cluster clock the leader stamps commands with (clock.go);
	// clockWarned the voters whose clocks sampleClocks last found off.
	clock       *clustertime.Clock
	clockWarned map[string]bool

	// readyTerm is the term in which this node, as leader, applied every entry of
	// earlier terms (a barrier): only then is its commit index safe to serve reads from.
	mu        sync.Mutex
	readyTerm uint64

	stop     chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

// Start opens the node's stores, joins or bootstraps the Raft cluster and serves the
// gRPC API. It returns once the node is serving; electing a leader takes a moment more.
func Start(cfg Config) (_ *Node, err error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	// n is not the named result: a failed start returns nil, and the cleanup below must
	// still see the node.
	n := &Node{cfg: cfg, logger: cfg.Logger.With("node", cfg.NodeID), root: layout.Root(cfg.Root), stop: make(chan struct{})}
	n.fsm = fsm.New(n.logger.With("component", "fsm"))
	n.clock, n.clockWarned = clustertime.New(n.wallClock), map[string]bool{}
	if n.sec, err = newSecurity(cfg, n.logger); err != nil {
		return nil, err
	}
	n.metrics = newNodeMetrics(n)
	n.duties = &duty.Guard{Logger: n.logger, OnPanic: n.metrics.dutyPanicked, Inject: dutyPanicHook}
	n.finisher = n.newFinisher()
	n.gc = n.newGCSchedule()
	n.policies = n.newPolicyScheduler()
	n.scrubber = n.newScrubber()
	n.coord = n.newRestoreCoordinator()
	n.runner = n.newRestoreRunner()
	n.api = n.newAPI()

	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	if err := n.checkDataDir(); err != nil {
		return nil, err
	}
	if err := n.openObjectStore(); err != nil {
		return nil, err
	}
	n.repos = repostore.New(repostore.Config{Cluster: n.cfg.Storage, Store: n.objects, Root: n.root,
		Credentials: n.cfg.RepositoryCredentials, Wrap: n.cfg.WrapRepositoryStore, Logger: n.logger.With("component", "repositories")})
	cleanup = append(cleanup, func() {
		n.repos.Close()
		if n.ownObjects != nil {
			n.ownObjects.Close()
		}
	})

	// gRPC first: its address is what this node announces.
	n.grpcLn = cfg.GRPCListener
	if n.grpcLn == nil {
		if n.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return nil, fmt.Errorf("listen on --grpc-addr %s: %w", cfg.GRPCAddr, err)
		}
	}
	cleanup = append(cleanup, func() { n.grpcLn.Close() })
	n.grpcAddr = cfg.GRPCAdvertise
	if n.grpcAddr == "" {
		n.grpcAddr = n.grpcLn.Addr().String()
	}

	if err := n.startRaft(); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() {
		_ = n.raft.Shutdown().Error()
		n.transport.Close()
		n.raftStore.Close()
	})
	if n.members, err = membership.Start(cfg.Gossip, membership.Node{ID: cfg.NodeID, GRPCAddr: n.grpcAddr,
		Version: cfg.Version, RaftAddr: n.RaftAddr(), Raft: n.raft, NodeStatus: n.peerStatus, Logger: n.logger}); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, n.members.Leave)

	n.peers = newPeerConns(cfg.DialVia, n.sec.peerDialOptions()...)
	n.grpcServer = grpc.NewServer(
		grpc.ChainUnaryInterceptor(n.leaderHeaderInterceptor, recoverInterceptor(n.logger)),
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.MaxSendMsgSize(maxMessageBytes),
		grpc.ChainUnaryInterceptor(n.metricsUnaryInterceptor), grpc.ChainStreamInterceptor(n.metricsStreamInterceptor),
		n.sec.serverCreds(), n.sec.unaryAuth(), n.sec.streamAuth(), // server/tls.go, server/auth.go
		// An unhealthy node refuses client calls at once (server/health_gate.go).
		grpc.ChainUnaryInterceptor(n.healthGateUnary), grpc.ChainStreamInterceptor(n.healthGateStream),
		// Innermost, after authentication: undecodable requests are InvalidArgument.
		grpc.ForceServerCodecV2(newRequestCodec()), // server/codec.go
		grpc.ChainUnaryInterceptor(rejectUndecodableUnary), grpc.ChainStreamInterceptor(rejectUndecodableStream),
	)
	n.api.Register(n.grpcServer) // server/api: Catalog, Snapshots, Restores, GC
	snapkeepv1.RegisterClusterServer(n.grpcServer, &clusterService{n: n})
	internalv1.RegisterInternalServer(n.grpcServer, &internalService{n: n})
	registerReflection(n.grpcServer) // server/reflection.go
	if err := n.startOps(); err != nil {
		return nil, err
	}
	n.registerBackup()
	n.registerStorage() // server/storage.go
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.grpcServer.Serve(n.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.logger.Error("gRPC server stopped", "err", err)
		}
	}()

	n.startNodeDuties() // server/leader.go: node duties and the leadership switch
	n.logger.Info("node started", "grpc", n.grpcAddr, "raft", string(n.transport.LocalAddr()))
	if len(cfg.DialVia) > 0 {
		n.logger.Info("peer addresses are dialed translated (--dial-via)", "dial_via", cfg.DialVia)
	}
	return n, nil
}

// openObjectStore sets up the bucket client: the configured Store, or an S3 client
// built from the storage settings. A node without either serves the catalog but
// cannot finish snapshots.
func (n *Node) openObjectStore() error {
	if n.cfg.Store != nil {
		n.objects = n.cfg.Store
		return nil
	}
	if n.cfg.Storage.Bucket == "" {
		n.logger.Warn("no object storage configured (--s3-bucket): snapshots cannot be finished")
		return nil
	}
	s3, err := objstore.NewS3(context.Background(), n.cfg.Storage)
	if err != nil {
		return fmt.Errorf("object storage: %w", err)
	}
	n.objects, n.ownObjects = s3, s3
	return nil
}

// objectStore returns the bucket, or an error naming the missing setting.
func (n *Node) objectStore() (objstore.Store, error) {
	if n.objects == nil {
		return nil, errors.New("no object storage configured: start the node with --s3-bucket (and --s3-endpoint)")
	}
	return n.objects, nil
}

// maxMessageBytes bounds gRPC messages: a 1 MiB schema or a 10,000-file segment fits
// with room to spare.
const maxMessageBytes = 16 << 20

// checkDataDir creates the data dir, or checks that it belongs to this node id.
func (n *Node) checkDataDir() error {
	if err := os.MkdirAll(filepath.Join(n.cfg.DataDir, "raft"), 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	idFile := filepath.Join(n.cfg.DataDir, "node-id")
	data, err := os.ReadFile(idFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.WriteFile(idFile, []byte(n.cfg.NodeID+"\n"), 0o644)
	case err != nil:
		return fmt.Errorf("read %s: %w", idFile, err)
	}
	if got := strings.TrimSpace(string(data)); got != n.cfg.NodeID {
		return fmt.Errorf("data dir %s belongs to node %q, not %q: use that node id or another data dir", n.cfg.DataDir, got, n.cfg.NodeID)
	}
	return nil
}

func (n *Node) startRaft() error {
	cfg := n.cfg
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = newHCLog(n.logger, "raft")
	// LAN defaults unless configured (Config.applyDefaults); pre-vote stays on
	// (PreVoteDisabled false; raftTransport implements raft.WithPreVote).
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}

	raftDir := filepath.Join(cfg.DataDir, "raft")
	store, err := raftstore.Open(raftDir, raftstore.Options{Kind: cfg.RaftLogStore, NoSync: cfg.NoSync, SegmentSize: cfg.RaftWALSegmentSize,
		Logger: n.logger, HCLogger: newHCLog(n.logger, "raft-wal")})
	if err != nil {
		return fmt.Errorf("open raft log %s: %w", raftDir, err)
	}
	n.logger.Info("raft log opened", "store", store.Kind, "path", store.Path)
	// Writes are tracked so health reports a log that cannot be written (a full disk).
	var inner raft.LogStore = store
	if cfg.WrapLogStore != nil {
		inner = cfg.WrapLogStore(store)
	}
	logStore := trackedLogStore{LogStore: inner, t: &n.logWrites, monotonic: store.Monotonic()}
	stableStore := trackedStableStore{StableStore: store, t: &n.logWrites}
	logs, err := raft.NewLogCache(1024, logStore)
	if err != nil {
		store.Close()
		return err
	}
	// The store keeps its files under raftDir/snapshots.
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, newHCLog(n.logger, "raft-snapshots"))
	if err != nil {
		store.Close()
		return fmt.Errorf("open snapshot store: %w", err)
	}
	snaps := trackedSnapshotStore{SnapshotStore: fileSnaps, t: &n.logWrites}

	ln := cfg.RaftListener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.RaftAddr); err != nil {
			store.Close()
			return fmt.Errorf("listen on --raft-addr %s: %w", cfg.RaftAddr, err)
		}
	}
	stream, err := newTCPStreamLayer(ln, cfg.RaftAdvertise, cfg.DialVia)
	if err != nil {
		ln.Close()
		store.Close()
		return err
	}
	transport := newRaftTransport(n.sec.streamLayer(stream), n.logger) // TLS when on (server/tls.go)

	hasState, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		transport.Close()
		store.Close()
		return err
	}
	r, err := raft.NewRaft(rc, n.raftFSM(), logs, stableStore, snaps, transport)
	if err != nil {
		transport.Close()
		store.Close()
		return fmt.Errorf("start raft: %w", err)
	}
	transport.answerHeartbeatsFor(r)
	if !hasState && len(cfg.Peers) > 0 {
		// Every node bootstraps with the same static configuration; Raft accepts that.
		var servers []raft.Server
		for id, addr := range cfg.Peers {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
		}
		// In id order: every node writes the same bytes as its first entry.
		slices.SortFunc(servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			_ = r.Shutdown().Error()
			transport.Close()
			store.Close()
			return fmt.Errorf("bootstrap cluster: %w", err)
		}
		n.logger.Info("bootstrapped a new cluster", "peers", len(servers))
	}
	n.raft, n.transport, n.raftStore = r, transport, store
	return nil
}

// Close stops the node gracefully: no new requests, in-flight ones finish (up to a few
// seconds), Raft shuts down and the stores are closed. Safe to call more than once.
func (n *Node) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return n.closeErr
	}
	n.closed = true
	close(n.stop)
	n.stopOps()
	n.members.Leave()

	done := make(chan struct{})
	go func() {
		n.grpcServer.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		n.grpcServer.Stop()
		<-done
	}
	n.peers.close()
	var errs []error
	if err := n.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
	}
	if err := n.transport.Close(); err != nil {
		errs = append(errs, fmt.Errorf("raft transport: %w", err))
	}
	if err := n.raftStore.Close(); err != nil {
		errs = append(errs, fmt.Errorf("raft store: %w", err))
	}
	n.wg.Wait()
	n.repos.Close()
	if n.ownObjects != nil {
		n.ownObjects.Close()
	}
	n.closeErr = errors.Join(errs...)
	n.logger.Info("node stopped")
	return n.closeErr
}

// ID is the node id.
func (n *Node) ID() string { return n.cfg.NodeID }

// GRPCAddr is the address the API is served on.
func (n *Node) GRPCAddr() string { return n.grpcAddr }

// RaftAddr is the Raft transport's address.
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// IsLeader reports whether this node is the Raft leader right now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// DataDir is the node's data directory.
func (n *Node) DataDir() string { return n.cfg.DataDir }

// FSM gives read access to the node's state machine (tests, tools).
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// Raft exposes the Raft instance to tests and admin tools (leadership transfer).
func (n *Node) Raft() *raft.Raft { return n.raft }

// stopping returns a context cancelled when the node closes.
func (n *Node) stopping() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
