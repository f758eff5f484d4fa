// Package finisher is the leader duty that completes collection snapshots: it writes
// the manifest of each PENDING snapshot and proposes SnapshotCommit, and gives up on
// those past their deadline (marks them DELETING with the reason). DELETING snapshots
// are the garbage collector's: it deletes their manifests and removes their records,
// with every other deletion (one mechanism). The finisher works only from the
// replicated state, so a new leader finishes whatever the old one left: the manifest is
// a pure function of the state, so writing it twice is harmless.
package finisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/objstore"
)

// maxWorkers bounds concurrent snapshot work on the leader.
const maxWorkers = 4

// tick bounds how long finished work waits when nothing wakes the finisher.
const tick = time.Second

// retryDelays is how long the finisher waits before retrying a failed attempt.
var retryDelays = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second}

// Cluster is what the finisher needs of its node.
type Cluster interface {
	// View is the node's current read view of the replicated state.
	View() *fsm.View
	// Changed returns a channel closed when the state next changes.
	Changed() <-chan struct{}
	// Propose applies a command through the log (forwarded to the leader if need be).
	Propose(ctx context.Context, cmd, resp proto.Message) error
	// Store is the bucket, or an error saying why there is none.
	Store() (objstore.Store, error)
}

// Hooks let tests stop the finisher at chosen points; nil hooks do nothing.
type Hooks struct {
	BeforeManifestWrite  func(ctx context.Context, snapshotID uint64) error
	BeforeSnapshotCommit func(ctx context.Context, snapshotID uint64) error
}

// Config tunes a Finisher.
type Config struct {
	Root           layout.Root   // the storage root manifest keys are under
	SpillDir       string        // where a large manifest is spooled before upload
	PendingTimeout time.Duration // only quoted in the reason of a snapshot given up
	Hooks          Hooks
	Logger         *slog.Logger
	Guard          *duty.Guard // runs each worker's job
	// Now is the cluster clock, compared with snapshots' pending deadlines; nil:
	// time.Now.
	Now func() time.Time
}

// Finisher completes snapshots. Its methods are safe for concurrent use.
type Finisher struct {
	cluster Cluster
	cfg     Config
	kick    duty.Kicker

	mu       sync.Mutex
	busy     map[uint64]bool
	attempts map[uint64]*attempt
}

type attempt struct {
	failures int
	next     time.Time
	lastErr  string
}

// New returns a finisher for cluster.
func New(cluster Cluster, cfg Config) *Finisher {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Finisher{cluster: cluster, cfg: cfg, kick: duty.NewKicker(), busy: map[uint64]bool{}, attempts: map[uint64]*attempt{}}
}

// Kick wakes the finisher now (a snapshot was created or dropped).
func (f *Finisher) Kick() { f.kick.Kick() }

// Loop is the finisher's duty for one term as leader. Workers a pass started are
// waited for when the loop ends.
func (f *Finisher) Loop() duty.Loop {
	var workers sync.WaitGroup
	return duty.Loop{Name: "finisher", Every: tick, Kick: f.kick, Changed: f.cluster.Changed,
		Pass:    func(ctx context.Context) { f.round(ctx, &workers) },
		Finally: workers.Wait}
}

// round starts a worker for each unfinished snapshot that is not being worked on and
// is not waiting out a retry delay.
func (f *Finisher) round(ctx context.Context, workers *sync.WaitGroup) {
	now := time.Now()
	for _, snap := range f.cluster.View().UnfinishedSnapshots() {
		if snap.State != fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING {
			continue // DELETING: the garbage collector's
		}
		f.mu.Lock()
		a := f.attempts[snap.Id]
		skip := f.busy[snap.Id] || len(f.busy) >= maxWorkers || (a != nil && now.Before(a.next))
		if !skip {
			f.busy[snap.Id] = true
		}
		f.mu.Unlock()
		if skip {
			continue
		}
		lastErr := ""
		if a != nil {
			lastErr = a.lastErr
		}
		work := f.finish
		if f.cfg.Now().UnixNano() > snap.PendingDeadline {
			work = func(ctx context.Context, snap *fsmpb.Snapshot) error { return f.giveUp(ctx, snap, lastErr) }
		}
		workers.Add(1)
		go func() {
			defer workers.Done()
			var err error
			if perr := f.cfg.Guard.Run("finisher", func() { err = work(ctx, snap) }); perr != nil {
				err = perr
			}
			f.done(snap.Id, err)
			if err != nil && ctx.Err() == nil {
				f.cfg.Logger.Warn("snapshot work failed; will retry", "snapshot", snap.Id, "name", snap.Name, "state", snap.State.String(), "err", err)
			}
		}()
	}
}

func (f *Finisher) done(id uint64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.busy, id)
	if err == nil {
		delete(f.attempts, id)
		return
	}
	a := f.attempts[id]
	if a == nil {
		a = &attempt{}
		f.attempts[id] = a
	}
	a.lastErr = err.Error()
	a.next = time.Now().Add(retryDelays[min(a.failures, len(retryDelays)-1)])
	a.failures++
	f.kick.Kick() // look again once the delay has passed
}

// finish writes the manifest of a PENDING snapshot and commits it.
func (f *Finisher) finish(ctx context.Context, snap *fsmpb.Snapshot) error {
	if h := f.cfg.Hooks.BeforeManifestWrite; h != nil {
		if err := h(ctx, snap.Id); err != nil {
			return err
		}
	}
	view := f.cluster.View()
	snap, err := view.Snapshot(snap.Id)
	if err != nil || snap.State != fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING {
		return nil // finished or dropped meanwhile
	}
	store, err := f.cluster.Store()
	if err != nil {
		return err
	}
	start := time.Now()
	written, err := WriteManifest(ctx, store, f.cfg.Root, f.cfg.SpillDir, view, snap)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if h := f.cfg.Hooks.BeforeSnapshotCommit; h != nil {
		if err := h(ctx, snap.Id); err != nil {
			return err
		}
	}
	commit := &fsmpb.SnapshotCommit{SnapshotId: snap.Id, ManifestSize: uint64(written.Size), ManifestChecksum: written.Checksum, Summary: written.Summary}
	err = f.cluster.Propose(ctx, commit, nil)
	if errors.Is(err, fsm.ErrFailedPrecondition) {
		return nil // committed by another leader, or dropped meanwhile
	}
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	f.cfg.Logger.Info("snapshot committed", "snapshot", snap.Id, "name", snap.Name, "segments", written.Summary.Segments,
		"files", written.Summary.Files, "manifest_bytes", written.Size, "took", time.Since(start))
	return nil
}

// giveUp marks a PENDING snapshot past its deadline DELETING, with the reason.
func (f *Finisher) giveUp(ctx context.Context, snap *fsmpb.Snapshot, lastErr string) error {
	reason := fmt.Sprintf("not committed within %v", f.cfg.PendingTimeout)
	if lastErr != "" {
		reason += "; last error: " + lastErr
	}
	f.cfg.Logger.Warn("giving up a snapshot", "snapshot", snap.Id, "name", snap.Name, "reason", reason)
	return f.cluster.Propose(ctx, &fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id, Reason: reason}, nil)
}
