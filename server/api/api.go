// Package api is snapkeep's public gRPC services: Catalog, Snapshots, Restores, GC,
// Repositories and Policies.
// A service validates what it can without the state, turns a request into an FSM
// command (a write, proposed through the log) or a query of a read view, and converts
// the result back to the API's form (object keys in full: the state keeps them
// relative to the storage root). Everything it needs of its node is the Backend.
package api

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/gc"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/fsck"
)

// Backend is what the services need of their node. Its methods are safe for
// concurrent use.
type Backend interface {
	// Propose applies cmd through the log, on the leader or forwarded to it, at most
	// once per non-empty requestID, and decodes the command's response into resp (nil:
	// none). A command the FSM refuses comes back as an *fsm.Error.
	Propose(ctx context.Context, requestID string, cmd, resp proto.Message) error
	// ReadView returns a view at least as fresh as c asks (linearizable by default).
	ReadView(ctx context.Context, c pb.ReadConsistency) (*fsm.View, error)
	// View is this node's own view now; Changed is closed when the node next applies
	// a command; Stopping when the node shuts down.
	View() *fsm.View
	Changed() <-chan struct{}
	Stopping() <-chan struct{}
	// Store is the bucket, or an error saying why there is none.
	Store() (objstore.Store, error)
	// Alive reports whether gossip considers a node alive (always, without gossip).
	Alive(node string) bool
	// IsLeader reports whether this node leads; IsLeaderReady also that it has
	// applied everything earlier leaders committed. Leader reaches the leader's
	// Internal service (errors are Unavailable statuses naming what is missing).
	IsLeader() bool
	IsLeaderReady() bool
	Leader() (leader internalv1.InternalClient, leaderID string, err error)
	// RepositoryStore is a repository's bucket as this node reaches it (its own
	// credentials for the repository); ProbeRepository checks a repository from every
	// node of the configuration, this one included.
	RepositoryStore(r *fsmpb.Repository) (objstore.Store, error)
	ProbeRepository(ctx context.Context, r *fsmpb.Repository) ([]*pb.RepositoryProbe, error)
	// FsckReaders are the other nodes a deep fsck shares its reads with.
	FsckReaders() []fsck.Reader
	// VerifySnapshot verifies a committed snapshot now as the scrubber does, repairs
	// its manifest if it can and records the result (server/scrub.Scrubber.Verify).
	VerifySnapshot(ctx context.Context, id uint64, deep bool) (*fsmpb.SnapshotVerification, error)
	// KickFinisher, KickGC, KickRestores and KickPolicies wake the duties a write gave work to.
	KickFinisher()
	KickGC()
	KickRestores()
	KickPolicies()
}

// Config is what the services take from the node's configuration.
type Config struct {
	Root                   layout.Root // the storage root the state's keys are relative to
	DefaultLease           time.Duration
	SnapshotsPerCollection int
	SnapshotPendingTimeout time.Duration
	RestoreMaxAttempts     int
	RestoreLease           time.Duration
	GCDisabled             bool
	// Now is the cluster clock, for what is compared with times in the catalog
	// (hold expiries, policy schedules, job progress); nil: time.Now.
	Now func() time.Time
}

// services is what every service holds.
type services struct {
	b   Backend
	cfg Config
	gc  *gc.Schedule // collections run on this node when it leads
}

// Services are the public services of one node.
type Services struct{ *services }

// New returns the services of a node; collections on demand run through sched.
func New(b Backend, cfg Config, sched *gc.Schedule) Services {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return Services{&services{b: b, cfg: cfg, gc: sched}}
}

// Register serves the services on s.
func (s Services) Register(srv *grpc.Server) {
	pb.RegisterCatalogServer(srv, &catalogService{services: s.services})
	pb.RegisterSnapshotsServer(srv, &snapshotsService{services: s.services})
	pb.RegisterRestoresServer(srv, &restoresService{services: s.services})
	pb.RegisterGCServer(srv, &gcService{services: s.services})
	pb.RegisterRepositoriesServer(srv, &repositoriesService{services: s.services})
	pb.RegisterPoliciesServer(srv, &policiesService{services: s.services})
	pb.RegisterIntegrityServer(srv, &integrityService{services: s.services})
}

// GCSchedule says when this node, if it leads, collects next.
func (s *services) GCSchedule() *internalv1.GCScheduleResponse {
	next, orphans := s.gc.Next()
	return &internalv1.GCScheduleResponse{Enabled: !s.cfg.GCDisabled, NextRunUnixMs: next.UnixMilli(), NextRunOrphanScan: orphans}
}
