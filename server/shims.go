package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/gc"
	"github.com/snapkeep/snapkeep/manifest/repository"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/restore"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/api"
	"github.com/snapkeep/snapkeep/server/finisher"
	"github.com/snapkeep/snapkeep/server/fsck"
	"github.com/snapkeep/snapkeep/server/policy"
	"github.com/snapkeep/snapkeep/server/scrub"
)

// dutyShim is the node as the duty packages see it (finisher.Cluster, gc.Cluster):
// the replicated state to read, the log to propose to, and the bucket.
type dutyShim struct{ n *Node }

func (s dutyShim) View() *fsm.View          { return s.n.fsm.View() }
func (s dutyShim) Changed() <-chan struct{} { return s.n.fsmChanged() }
func (s dutyShim) Store() (objstore.Store, error) {
	return s.n.objectStore()
}

// Propose proposes without a request id: duties work from the replicated state, so a
// retry finds its first attempt's effect there.
func (s dutyShim) Propose(ctx context.Context, cmd, resp proto.Message) error {
	return s.n.propose(ctx, "", cmd, resp)
}

// newGCSchedule is the node's collection schedule (package gc).
func (n *Node) newGCSchedule() *gc.Schedule {
	cfg := gc.Config{
		Root:        n.cfg.Root,
		Grace:       n.cfg.GCGrace,
		OrphanGrace: n.cfg.GCOrphanGrace,
		DeleteRate:  n.cfg.GCDeleteRate,
		Concurrency: n.cfg.GCConcurrency,
		Node:        n.cfg.NodeID,
		Logger:      n.logger.With("component", "gc"),
		// Metadata backups are not catalog objects: never orphans.
		SkipPrefixes: []string{n.cfg.Backup.Prefix},
		Now:          n.clusterNow,
	}
	return gc.NewSchedule(dutyShim{n}, n.objectStore, cfg, gc.ScheduleConfig{
		Interval: n.cfg.GCInterval, OrphanInterval: n.cfg.GCOrphanInterval, Ran: n.metrics.gcRan})
}

func (n *Node) newFinisher() *finisher.Finisher {
	var hooks finisher.Hooks
	if fp := n.cfg.Failpoints; fp != nil {
		hooks = finisher.Hooks{BeforeManifestWrite: fp.BeforeManifestWrite, BeforeSnapshotCommit: fp.BeforeSnapshotCommit}
	}
	return finisher.New(dutyShim{n}, finisher.Config{
		Root:           n.root,
		SpillDir:       filepath.Join(n.cfg.DataDir, "tmp"),
		PendingTimeout: n.cfg.SnapshotPendingTimeout,
		Hooks:          hooks,
		Logger:         n.logger,
		Guard:          n.duties,
		Now:            n.clusterNow,
	})
}

func (n *Node) newScrubber() *scrub.Scrubber {
	return scrub.New(dutyShim{n}, scrub.Config{
		Root:           n.root,
		Every:          n.cfg.ScrubEvery,
		DeepEvery:      n.cfg.ScrubDeepEvery,
		PerPass:        n.cfg.ScrubPerPass,
		Tick:           n.cfg.ScrubTick,
		BytesPerSecond: n.cfg.ScrubRate,
		Logger:         n.logger.With("component", "scrubber"),
		Verified:       n.metrics.snapshotVerified,
		Now:            n.clusterNow,
	})
}

// policyShim is the node as the policy scheduler sees it (policy.Cluster): runs are
// proposed with request ids, so a retried run is answered with its first result.
type policyShim struct{ dutyShim }

func (s policyShim) Propose(ctx context.Context, requestID string, cmd, resp proto.Message) error {
	return s.n.propose(ctx, requestID, cmd, resp)
}
func (s policyShim) SnapshotsTaken()   { s.n.finisher.Kick() }
func (s policyShim) SnapshotsDropped() { s.n.gc.Kick() }

// The policies' exports go through the public services' repository code (reading
// and updating a repository's index, the repository GC with its hold).
func (s policyShim) RepositoryIndex(ctx context.Context, name string) ([]repository.Entry, error) {
	return s.n.api.RepositoryIndex(ctx, name)
}
func (s policyShim) DeleteRepositorySnapshots(ctx context.Context, name string, ids []string) (int, error) {
	return s.n.api.DeleteRepositorySnapshots(ctx, name, ids)
}
func (s policyShim) CollectRepository(ctx context.Context, name string) error {
	_, err := s.n.api.CollectRepository(ctx, name)
	return err
}
func (s policyShim) ExportsStarted() { s.n.kickRestores() }

func (n *Node) newPolicyScheduler() *policy.Scheduler {
	var hooks policy.Hooks
	if fp := n.cfg.Failpoints; fp != nil {
		hooks = policy.Hooks{BeforeRun: fp.BeforePolicyRun, AfterRun: fp.AfterPolicyRun, BeforeRetain: fp.BeforePolicyRetain}
	}
	shim := policyShim{dutyShim{n}}
	return policy.New(shim, shim, policy.Config{
		MaxPerCollection:  n.cfg.SnapshotsPerCollection,
		PendingTimeout:    n.cfg.SnapshotPendingTimeout,
		ExportMaxAttempts: n.cfg.RestoreMaxAttempts,
		Logger:            n.logger.With("component", "policies"),
		Ran:               n.metrics.policyRan,
		Hooks:             hooks,
		Now:               n.clusterNow,
	})
}

// Alive reports whether gossip considers a node alive (always, without gossip).
func (s dutyShim) Alive(node string) bool { return s.n.members.Healthy(node) }

// JobStores are the stores a job of kind reads and writes, through the node's
// repository clients.
func (s dutyShim) JobStores(kind fsmpb.JobKind, repository string) (restore.JobStores, error) {
	var rec *fsmpb.Repository
	if kind != fsmpb.JobKind_JOB_KIND_RESTORE {
		r, err := s.n.fsm.View().Repository(repository)
		if err != nil {
			return restore.JobStores{}, err
		}
		rec = r
	}
	return s.n.repos.JobStores(kind, rec)
}

// OtherVoterAlive reports whether a voter other than this node is alive (by gossip;
// without gossip, every voter counts).
func (s dutyShim) OtherVoterAlive() bool {
	future := s.n.raft.GetConfiguration()
	if future.Error() != nil {
		return false
	}
	for _, srv := range future.Configuration().Servers {
		if string(srv.ID) != s.n.cfg.NodeID && srv.Suffrage == raft.Voter && s.n.members.Healthy(string(srv.ID)) {
			return true
		}
	}
	return false
}

// LeaseTasks asks the leader for restore tasks.
func (s dutyShim) LeaseTasks(ctx context.Context, req *internalv1.LeaseRestoreTasksRequest) (*internalv1.LeaseRestoreTasksResponse, error) {
	conn, _, err := s.n.leaderConn()
	if err != nil {
		return nil, err
	}
	return internalv1.NewInternalClient(conn).LeaseRestoreTasks(ctx, req)
}

// ReportTasks sends the leader a batch's outcomes.
func (s dutyShim) ReportTasks(ctx context.Context, req *internalv1.ReportRestoreTasksRequest) error {
	conn, _, err := s.n.leaderConn()
	if err != nil {
		return err
	}
	_, err = internalv1.NewInternalClient(conn).ReportRestoreTasks(ctx, req)
	return err
}

func (n *Node) newRestoreCoordinator() *restore.Coordinator {
	return restore.NewCoordinator(dutyShim{n}, restore.CoordinatorConfig{
		Node:      n.cfg.NodeID,
		Root:      n.root,
		Batch:     n.cfg.RestoreBatch,
		Lease:     n.cfg.RestoreLease,
		Retention: n.cfg.RestoreRetention,
		Started:   func() { n.runner.Kick() },
		Logger:    n.logger,
		Guard:     n.duties,
		Now:       n.clusterNow,
	})
}

func (n *Node) newRestoreRunner() *restore.Runner {
	cfg := restore.RunnerConfig{
		Node:               n.cfg.NodeID,
		Incarnation:        newIncarnation(),
		Batch:              n.cfg.RestoreBatch,
		Concurrency:        n.cfg.RestoreConcurrency,
		MultipartThreshold: n.cfg.MultipartThreshold,
		PartSize:           n.cfg.MultipartPartSize,
		Copied:             n.metrics.restoreCopied,
		Reported:           n.coord.Kick,
		Logger:             n.logger,
		Guard:              n.duties,
	}
	if fp := n.cfg.Failpoints; fp != nil {
		cfg.BeforeReport = fp.BeforeRestoreReport
	}
	return restore.NewRunner(dutyShim{n}, cfg)
}

// kickRestores wakes the coordinator and this node's executor.
func (n *Node) kickRestores() {
	n.coord.Kick()
	n.runner.Kick()
}

// newIncarnation is a random id for one start of this process.
func newIncarnation() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// apiShim is the node as the public services see it (api.Backend).
type apiShim struct{ dutyShim }

func (s apiShim) Propose(ctx context.Context, requestID string, cmd, resp proto.Message) error {
	return s.n.propose(ctx, requestID, cmd, resp)
}

func (s apiShim) ReadView(ctx context.Context, c snapkeepv1.ReadConsistency) (*fsm.View, error) {
	return s.n.readView(ctx, c)
}

func (s apiShim) Stopping() <-chan struct{} { return s.n.stop }
func (s apiShim) IsLeader() bool            { return s.n.raft.State() == raft.Leader }
func (s apiShim) IsLeaderReady() bool       { return s.n.isLeaderReady() }
func (s apiShim) KickFinisher()             { s.n.finisher.Kick() }
func (s apiShim) KickGC()                   { s.n.gc.Kick() }
func (s apiShim) KickPolicies()             { s.n.policies.Kick() }
func (s apiShim) KickRestores()             { s.n.kickRestores() }

func (s apiShim) RepositoryStore(r *fsmpb.Repository) (objstore.Store, error) {
	return s.n.repos.Store(r)
}

func (s apiShim) FsckReaders() []fsck.Reader { return s.n.fsckReaders() }

func (s apiShim) VerifySnapshot(ctx context.Context, id uint64, deep bool) (*fsmpb.SnapshotVerification, error) {
	return s.n.scrubber.Verify(ctx, id, deep)
}

func (s apiShim) ProbeRepository(ctx context.Context, r *fsmpb.Repository) ([]*snapkeepv1.RepositoryProbe, error) {
	return s.n.probeRepository(ctx, r)
}

func (s apiShim) Leader() (internalv1.InternalClient, string, error) {
	conn, id, err := s.n.leaderConn()
	if err != nil {
		return nil, id, err
	}
	return internalv1.NewInternalClient(conn), id, nil
}

func (n *Node) newAPI() api.Services {
	return api.New(apiShim{dutyShim{n}}, api.Config{
		Root:                   n.root,
		DefaultLease:           n.cfg.DefaultLease,
		SnapshotsPerCollection: n.cfg.SnapshotsPerCollection,
		SnapshotPendingTimeout: n.cfg.SnapshotPendingTimeout,
		RestoreMaxAttempts:     n.cfg.RestoreMaxAttempts,
		RestoreLease:           n.cfg.RestoreLease,
		GCDisabled:             n.cfg.GCDisabled,
		Now:                    n.clusterNow,
	}, n.gc)
}

// peerStatus asks the node at grpcAddr for its status (membership's bootstrap check).
func (n *Node) peerStatus(ctx context.Context, grpcAddr string) (*internalv1.NodeStatusResponse, error) {
	conn, err := n.peers.get(grpcAddr)
	if err != nil {
		return nil, err
	}
	return internalv1.NewInternalClient(conn).NodeStatus(ctx, &internalv1.NodeStatusRequest{})
}
