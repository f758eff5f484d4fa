package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/hashicorp/raft"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/raftstore"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/server/membership"
	"github.com/snapkeep/snapkeep/server/repostore"
)

// Config configures one node. Zero values take the documented defaults.
type Config struct {
	// NodeID names the node in the Raft configuration; it must stay the same across
	// restarts (the data dir remembers it and refuses another).
	NodeID string
	// DataDir holds the Raft log, stable store and raft snapshots (see docs/DESIGN.md).
	DataDir string

	// RaftAddr is where the Raft transport listens ("host:port"); RaftAdvertise, when
	// set, is the address peers dial instead. RaftListener, when set, is used as is
	// (tests bind port 0 first).
	RaftAddr      string
	RaftAdvertise string
	RaftListener  net.Listener

	// GRPCAddr is where the API listens; GRPCAdvertise is the address other nodes and
	// clients are told about. GRPCListener, when set, is used as is.
	GRPCAddr      string
	GRPCAdvertise string
	GRPCListener  net.Listener

	// HTTP serves metrics, health and pprof (server/http.go); off when Addr is empty.
	HTTP HTTPConfig

	// Peers is the static initial cluster, node id → Raft address, this node included.
	// It is used once, to bootstrap a node with no Raft state.
	Peers map[string]string

	// DialVia translates peer addresses this node dials, FROM → TO: a Raft or
	// node-to-node gRPC connection to FROM goes to TO instead, while FROM stays the
	// address in the Raft configuration and the node registry. For fault-injection
	// harnesses and address translation (NAT). Empty: dial peers as configured.
	DialVia map[string]string

	// Gossip configures discovery and membership (memberlist); off when Gossip.Addr is
	// empty. See server/membership.
	Gossip membership.Config

	// Storage is where the cluster keeps its objects; Root is the key prefix every
	// object snapkeep writes or registers sits under (no leading or trailing '/').
	// Store, when set, is used instead of an S3 client built from Storage (tests).
	Storage objstore.S3Config
	Root    string
	Store   objstore.Store

	// RepositoryCredentials are the named credentials repositories refer to
	// (--repository-credentials FILE); a name not here is looked up in the
	// environment (server/repostore). WrapRepositoryStore, when set, wraps every
	// repository store this node makes (tests count requests with it).
	RepositoryCredentials map[string]repostore.Credentials
	WrapRepositoryStore   func(repository string, s objstore.Store) objstore.Store

	// SnapshotsPerCollection limits a collection's snapshots (default 1024).
	SnapshotsPerCollection int
	// SnapshotPendingTimeout is how long the leader may take to finish a snapshot
	// before giving it up (default 10m).
	SnapshotPendingTimeout time.Duration

	// RestoreConcurrency is how many copies this node's executor runs at once (default
	// 16); a job's own max_concurrency lowers it.
	RestoreConcurrency int
	// RestoreBatch is the most tasks one lease holds (default 1024); within it the
	// leader sizes each lease by the executor's measured throughput.
	RestoreBatch int
	// RestoreLease is how long a node holds leased tasks before they return to the pool
	// (default 5m).
	RestoreLease time.Duration
	// RestoreMaxAttempts is how many failed attempts a task may take before its job
	// fails (default 10).
	RestoreMaxAttempts int
	// RestoreRetention is how long finished jobs are kept (default 168h).
	RestoreRetention time.Duration
	// MultipartThreshold is the size from which files are copied with UploadPartCopy
	// (default 5 GiB, the CopyObject limit).
	MultipartThreshold int64
	// MultipartPartSize is the part size of those copies (default 256 MiB; 5 MiB to
	// 5 GiB, S3's limits; a file too large for 10,000 such parts gets larger ones).
	MultipartPartSize int64

	// The scrubber verifies every committed snapshot's manifest and data file sizes
	// each ScrubEvery (default 24h) and reads its data back each ScrubDeepEvery (0:
	// never on a schedule), ScrubPerPass snapshots a pass (default 4) every ScrubTick
	// (default 10s), deep reads at most ScrubRate bytes/s (0: no limit).
	// ScrubDisabled turns it off.
	ScrubDisabled  bool
	ScrubEvery     time.Duration
	ScrubDeepEvery time.Duration
	ScrubPerPass   int
	ScrubTick      time.Duration
	ScrubRate      int64

	// GCDisabled turns periodic garbage collection off (GCRun works either way).
	// GCInterval is how often the leader collects (default 1m) and GCOrphanInterval
	// how often a collection also scans for orphans (default 1h).
	GCDisabled       bool
	GCInterval       time.Duration
	GCOrphanInterval time.Duration
	// GCGrace is how long dropped segments and builds stay (default 1h); an orphan
	// must be GCOrphanGrace old to go (default 24h).
	GCGrace       time.Duration
	GCOrphanGrace time.Duration
	// GCDeleteRate bounds deletions in objects per second (default 5000).
	// GCConcurrency bounds delete requests in flight (default 4).
	GCDeleteRate  float64
	GCConcurrency int

	// TLS secures the API, peer connections and Raft; Auth turns on tokens with roles
	// and the cluster secret (server/tls.go, server/auth.go). Zero values: off.
	TLS  TLSConfig
	Auth AuthConfig
	// Backup configures scheduled metadata backups to the bucket (server/backup.go).
	Backup BackupConfig

	// Failpoints inject faults for tests; nil in production.
	Failpoints *Failpoints
	// WallClock replaces the node's wall clock (wallclock.Now) in tests that run
	// nodes with different clocks in one process; nil in production.
	WallClock func() time.Time

	// DefaultLease is the allocation lease when a request gives none (default 1h).
	DefaultLease time.Duration
	// ExpiryInterval is how often the leader looks for expired allocations (default 1s).
	ExpiryInterval time.Duration

	// Raft timeouts. The defaults are for a LAN (DefaultHeartbeatTimeout and the
	// others): a follower that has not heard from the leader for HeartbeatTimeout
	// (checked at random intervals of HeartbeatTimeout to twice that) starts a pre-vote
	// and then an election; a candidate that got no quorum retries after a random
	// ElectionTimeout to twice that; a leader that has not reached a quorum for
	// LeaderLeaseTimeout steps down. The leader heartbeats every HeartbeatTimeout/10 to
	// /5. LeaderLeaseTimeout <= HeartbeatTimeout <= ElectionTimeout. See
	// docs/OPERATIONS.md, "Failover and Raft timeouts", for the trade-off and a WAN
	// profile.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// SnapshotInterval and SnapshotThreshold control raft snapshots (defaults: raft's).
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many entries stay in the log after a raft snapshot (default:
	// raft's 10240); a follower further behind is sent the snapshot instead.
	TrailingLogs uint64
	// RaftLogStore is where the Raft log and stable store are kept: "wal"
	// (hashicorp/raft-wal, the default) or "bolt" (raft-boltdb). A data dir holding a
	// bolt log is migrated to the WAL at start unless this is "bolt"; one holding a WAL
	// is refused with "bolt" (internal/raftstore).
	RaftLogStore string
	// RaftWALSegmentSize is the WAL's segment file size in bytes (0: raft-wal's 64
	// MiB). The WAL drops compacted entries a whole sealed segment at a time, and still
	// serves the compacted entries of its open segment, so a follower behind by less
	// than a segment is sent entries rather than a raft snapshot. Tests set it small.
	RaftWALSegmentSize int
	// NoSync skips fsync in the Raft log store. Only for tests: a crash may lose
	// acknowledged writes.
	NoSync bool
	// WrapLogStore, when set, wraps the Raft log store (tests inject write faults
	// such as ENOSPC with it).
	WrapLogStore func(raft.LogStore) raft.LogStore
	// HealthMaxLag is how many entries a node may be behind the leader's commit index
	// and still be healthy (0: 1000).
	HealthMaxLag uint64

	// Version is reported in cluster status.
	Version string
	Logger  *slog.Logger
}

// Defaults.
const (
	DefaultLease          = time.Hour
	defaultExpiryInterval = time.Second

	// LAN defaults of the Raft timeouts (Config.HeartbeatTimeout and the others).
	// After a leader dies, a follower notices 1 to 2 heartbeat timeouts after its
	// last heartbeat, but its pre-vote wins only once the other survivor has noticed
	// too (a node that still has a leader refuses it): a new leader leads about two
	// heartbeat timeouts after the kill, 0.4–0.85 s measured, against etcd's ~1.3 s
	// (bench scenario 6). A follower still needs 300 ms without a single heartbeat
	// (sent every 30 to 60 ms) to start an election; none happened under the bench's
	// 64-client fsync'd write load on two cores. hashicorp/raft's own defaults (1 s,
	// 1 s, 500 ms) suit a WAN. Pre-vote is on (hashicorp/raft's default; the
	// transport supports it).
	DefaultHeartbeatTimeout   = 300 * time.Millisecond
	DefaultElectionTimeout    = 300 * time.Millisecond
	DefaultLeaderLeaseTimeout = 300 * time.Millisecond
	// minRaftTimeout is the least any of them may be (hashicorp/raft's floor is 5 ms).
	minRaftTimeout = 10 * time.Millisecond

	defaultSnapshotsPerCollection = 1024
	defaultSnapshotPendingTimeout = 10 * time.Minute
	defaultRoot                   = "snapkeep"
)

func (c *Config) applyDefaults() {
	if c.DefaultLease == 0 {
		c.DefaultLease = DefaultLease
	}
	if c.ExpiryInterval == 0 {
		c.ExpiryInterval = defaultExpiryInterval
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = DefaultLeaderLeaseTimeout
	}
	if c.SnapshotsPerCollection == 0 {
		c.SnapshotsPerCollection = defaultSnapshotsPerCollection
	}
	if c.SnapshotPendingTimeout == 0 {
		c.SnapshotPendingTimeout = defaultSnapshotPendingTimeout
	}
	if c.RestoreConcurrency == 0 {
		c.RestoreConcurrency = 16
	}
	if c.RestoreBatch == 0 {
		c.RestoreBatch = 1024
	}
	if c.RestoreLease == 0 {
		c.RestoreLease = 5 * time.Minute
	}
	if c.RestoreMaxAttempts == 0 {
		c.RestoreMaxAttempts = fsm.DefaultRestoreAttempts
	}
	if c.RestoreRetention == 0 {
		c.RestoreRetention = 7 * 24 * time.Hour
	}
	if c.MultipartThreshold == 0 {
		c.MultipartThreshold = 5 << 30
	}
	if c.MultipartPartSize == 0 {
		c.MultipartPartSize = 256 << 20
	}
	if c.GCInterval == 0 {
		c.GCInterval = time.Minute
	}
	if c.ScrubEvery == 0 {
		c.ScrubEvery = 24 * time.Hour
	}
	if c.ScrubPerPass == 0 {
		c.ScrubPerPass = 4
	}
	if c.ScrubTick == 0 {
		c.ScrubTick = 10 * time.Second
	}
	if c.GCOrphanInterval == 0 {
		c.GCOrphanInterval = time.Hour
	}
	if c.GCGrace == 0 {
		c.GCGrace = time.Hour
	}
	if c.GCOrphanGrace == 0 {
		c.GCOrphanGrace = 24 * time.Hour
	}
	if c.GCDeleteRate == 0 {
		c.GCDeleteRate = 5000
	}
	if c.GCConcurrency == 0 {
		c.GCConcurrency = 4
	}
	c.Backup.applyDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	c.Root = strings.Trim(c.Root, "/")
}

// validate reports every bad field at once, each with what to do about it.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.NodeID == "" {
		bad("--node-id is required")
	} else if strings.ContainsAny(c.NodeID, ",= \t\n") || len(c.NodeID) > 128 {
		bad("--node-id %q must be 1–128 characters without ',', '=' or spaces", c.NodeID)
	}
	if c.DataDir == "" {
		bad("--data-dir is required")
	}
	if !raftstore.ValidKind(c.RaftLogStore) {
		bad("--raft-log-store %q: want wal (the default) or bolt", c.RaftLogStore)
	}
	if c.RaftListener == nil {
		if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
			bad("--raft-addr %q is not host:port: %v", c.RaftAddr, err)
		}
	}
	if c.GRPCListener == nil {
		if _, _, err := net.SplitHostPort(c.GRPCAddr); err != nil {
			bad("--grpc-addr %q is not host:port: %v", c.GRPCAddr, err)
		}
	}
	c.Gossip.Validate(bad)
	if len(c.Peers) == 0 && !c.Gossip.Enabled() {
		bad("--peers is required (ID=RAFTADDR,... including this node), or --gossip-addr with --join/--bootstrap-expect")
	} else if _, ok := c.Peers[c.NodeID]; len(c.Peers) > 0 && !ok && c.NodeID != "" {
		bad("--peers does not include this node %q", c.NodeID)
	}
	for id, addr := range c.Peers {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("--peers: %s=%q is not host:port", id, addr)
		}
	}
	if err := validateDialVia(c.DialVia); err != nil {
		bad("--dial-via: %v", err)
	}
	if strings.Contains(c.Root, "..") || strings.Contains(c.Root, "//") {
		bad("--root %q must not contain '..' or '//'", c.Root)
	}
	if c.DefaultLease < time.Second || c.DefaultLease > 7*24*time.Hour {
		bad("default lease (DefaultLease) %v must be between 1s and 168h", c.DefaultLease)
	}
	switch {
	case c.HeartbeatTimeout < minRaftTimeout || c.ElectionTimeout < minRaftTimeout || c.LeaderLeaseTimeout < minRaftTimeout:
		bad("--raft-heartbeat-timeout %v, --raft-election-timeout %v and --raft-leader-lease-timeout %v must each be at least %v",
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, minRaftTimeout)
	case c.ElectionTimeout < c.HeartbeatTimeout:
		bad("--raft-election-timeout %v must be at least --raft-heartbeat-timeout %v (raise both together, e.g. for a WAN)", c.ElectionTimeout, c.HeartbeatTimeout)
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		bad("--raft-leader-lease-timeout %v must be at most --raft-heartbeat-timeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.SnapshotsPerCollection < 1 || c.SnapshotsPerCollection > fsm.MaxSnapshotsPerCollection {
		bad("--snapshots-per-collection %d must be between 1 and %d", c.SnapshotsPerCollection, fsm.MaxSnapshotsPerCollection)
	}
	if c.SnapshotPendingTimeout < time.Second || c.SnapshotPendingTimeout > 7*24*time.Hour {
		bad("--snapshot-timeout %v must be between 1s and 168h", c.SnapshotPendingTimeout)
	}
	if c.RestoreConcurrency < 1 || c.RestoreConcurrency > fsm.MaxRestoreConcurrency {
		bad("--restore-concurrency %d must be between 1 and %d", c.RestoreConcurrency, fsm.MaxRestoreConcurrency)
	}
	if c.RestoreBatch < 1 || c.RestoreBatch > fsm.MaxGrantTasks {
		bad("restore batch (RestoreBatch) %d must be between 1 and %d", c.RestoreBatch, fsm.MaxGrantTasks)
	}
	if c.RestoreLease < time.Second || c.RestoreLease > 7*24*time.Hour {
		bad("--restore-lease %v must be between 1s and 168h", c.RestoreLease)
	}
	if c.RestoreMaxAttempts < 1 || c.RestoreMaxAttempts > fsm.MaxRestoreAttempts {
		bad("--restore-attempts %d must be between 1 and %d", c.RestoreMaxAttempts, fsm.MaxRestoreAttempts)
	}
	if c.RestoreRetention < time.Minute {
		bad("--restore-retention %v must be at least 1m", c.RestoreRetention)
	}
	if c.ScrubEvery < time.Second {
		bad("--scrub-every %v must be at least 1s", c.ScrubEvery)
	}
	if c.ScrubDeepEvery < 0 {
		bad("--scrub-deep-every %v cannot be negative (0: never on a schedule)", c.ScrubDeepEvery)
	}
	if c.ScrubPerPass < 1 || c.ScrubPerPass > 1000 {
		bad("--scrub-per-pass %d must be between 1 and 1000", c.ScrubPerPass)
	}
	if c.ScrubTick < 10*time.Millisecond {
		bad("--scrub-tick %v must be at least 10ms", c.ScrubTick)
	}
	if c.ScrubRate < 0 {
		bad("--scrub-rate %d cannot be negative (0: no limit)", c.ScrubRate)
	}
	if c.GCInterval < 10*time.Millisecond {
		bad("--gc-interval %v must be at least 10ms", c.GCInterval)
	}
	if c.GCOrphanInterval < c.GCInterval {
		bad("--gc-orphan-interval %v must be at least --gc-interval (%v)", c.GCOrphanInterval, c.GCInterval)
	}
	if c.GCGrace < 0 {
		bad("--gc-grace %v cannot be negative", c.GCGrace)
	}
	if c.GCOrphanGrace < 0 {
		bad("--gc-orphan-grace %v cannot be negative", c.GCOrphanGrace)
	}
	if c.GCDeleteRate < 0 {
		bad("--gc-delete-rate %v must be positive", c.GCDeleteRate)
	}
	if c.GCConcurrency < 1 {
		bad("GC concurrency (GCConcurrency) %d must be at least 1", c.GCConcurrency)
	}
	if c.MultipartThreshold < 5<<20 || c.MultipartThreshold > 5<<30 {
		bad("--restore-multipart-threshold %d (the multipart copy threshold) must be between 5 MiB (5242880) and 5 GiB (5368709120) bytes", c.MultipartThreshold)
	}
	if c.MultipartPartSize < 5<<20 || c.MultipartPartSize > 5<<30 {
		bad("--restore-part-size %d (the multipart copy part size) must be between 5 MiB (5242880) and 5 GiB (5368709120) bytes", c.MultipartPartSize)
	}
	if c.Storage.Bucket == "" && c.Store == nil && c.Storage.Endpoint != "" {
		bad("--s3-bucket is empty but --s3-endpoint %q is set: name the bucket", c.Storage.Endpoint)
	}
	errs = append(errs, c.Backup.validate()...)
	return errors.Join(errs...)
}

// ParsePeers parses "id=host:port,id=host:port".
func ParsePeers(s string) (map[string]string, error) {
	peers := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("peer %q is not ID=HOST:PORT", part)
		}
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("peer %q is named twice", id)
		}
		peers[id] = addr
	}
	if len(peers) == 0 {
		return nil, errors.New("no peers given")
	}
	return peers, nil
}

// Failpoints let tests stop a node at chosen points of its background work. Each hook
// runs on the leader; returning an error abandons that attempt (the work is retried
// later, by this leader or the next). A hook must return when ctx is done.
type Failpoints struct {
	// BeforeManifestWrite runs before the leader writes a snapshot's manifest.
	BeforeManifestWrite func(ctx context.Context, snapshotID uint64) error
	// BeforeSnapshotCommit runs after the manifest is written, before SnapshotCommit is
	// proposed.
	BeforeSnapshotCommit func(ctx context.Context, snapshotID uint64) error
	// BeforeRestoreReport runs on the executing node after it copied a leased batch,
	// before it reports it.
	BeforeRestoreReport func(ctx context.Context, jobID, leaseID uint64) error
	// BeforePolicyRun runs before the leader proposes a policy's scheduled run;
	// AfterPolicyRun once that proposal returned (err), before the leader acts on its
	// result; BeforePolicyRetain before it proposes a policy's retention.
	BeforePolicyRun    func(ctx context.Context, cmd *fsmpb.PolicyRun) error
	AfterPolicyRun     func(ctx context.Context, cmd *fsmpb.PolicyRun, err error) error
	BeforePolicyRetain func(ctx context.Context, policy string) error
}
