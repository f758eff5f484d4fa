package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// The snapshot finisher is a leader duty: it completes PENDING snapshots (writes the
// manifest, proposes SnapshotCommit) and gives up on those past their deadline (marks
// them DELETING with the reason). DELETING snapshots are the garbage collector's: it
// deletes their manifests and removes their records, with every other deletion (one
// mechanism). The finisher works only from the replicated state, so a new leader
// finishes whatever the old one left: the manifest is a pure function of the state,
// so writing it twice is harmless.

// maxFinisherWorkers bounds concurrent snapshot work on the leader.
const maxFinisherWorkers = 4

// finisherTick bounds how long finished work waits when nothing wakes the finisher.
const finisherTick = time.Second

type finisher struct {
	kick chan struct{}

	mu       sync.Mutex
	busy     map[uint64]bool
	attempts map[uint64]*finishAttempt
}

type finishAttempt struct {
	failures int
	next     time.Time
	lastErr  string
}

func newFinisher() *finisher {
	return &finisher{kick: make(chan struct{}, 1), busy: map[uint64]bool{}, attempts: map[uint64]*finishAttempt{}}
}

// kickFinisher wakes the finisher now (a snapshot was created or dropped here).
func (n *Node) kickFinisher() {
	select {
	case n.fin.kick <- struct{}{}:
	default:
	}
}

func (n *Node) runFinisher() {
	ctx, cancel := n.stopping()
	defer cancel()
	ticker := time.NewTicker(finisherTick)
	defer ticker.Stop()
	for {
		_, changed := n.fsm.AppliedCh()
		select {
		case <-n.stop:
			return
		case <-n.fin.kick:
		case <-changed:
		case <-ticker.C:
		}
		if !n.pass("finisher", func() {
			if n.isLeaderReady() {
				n.finishRound(ctx)
			}
		}) {
			return
		}
	}
}

// finishRound starts a worker for each unfinished snapshot that is not being worked
// on and is not waiting out a retry delay.
func (n *Node) finishRound(ctx context.Context) {
	now := time.Now()
	for _, snap := range n.fsm.View().UnfinishedSnapshots() {
		if snap.State != fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING {
			continue // DELETING: the garbage collector's
		}
		f := n.fin
		f.mu.Lock()
		a := f.attempts[snap.Id]
		skip := f.busy[snap.Id] || len(f.busy) >= maxFinisherWorkers || (a != nil && now.Before(a.next))
		if !skip {
			f.busy[snap.Id] = true
		}
		f.mu.Unlock()
		if skip {
			continue
		}
		var work func(context.Context, *fsmpb.Snapshot, string) error
		lastErr := ""
		if a != nil {
			lastErr = a.lastErr
		}
		switch {
		case now.UnixNano() > snap.PendingDeadline:
			work = n.giveUpSnapshot
		default:
			work = n.finishSnapshot
		}
		n.wg.Add(1)
		go func(snap *fsmpb.Snapshot) {
			defer n.wg.Done()
			err := n.guarded("finisher", func() error { return work(ctx, snap, lastErr) })
			n.fin.done(snap.Id, err)
			if err != nil && ctx.Err() == nil {
				n.logger.Warn("snapshot work failed; will retry", "snapshot", snap.Id, "name", snap.Name, "state", snap.State.String(), "err", err)
			}
		}(snap)
	}
}

func (f *finisher) done(id uint64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.busy, id)
	if err == nil {
		delete(f.attempts, id)
		return
	}
	a := f.attempts[id]
	if a == nil {
		a = &finishAttempt{}
		f.attempts[id] = a
	}
	a.lastErr = err.Error()
	a.next = time.Now().Add(snapshotRetry[min(a.failures, len(snapshotRetry)-1)])
	a.failures++
	select {
	case f.kick <- struct{}{}: // look again once the delay has passed
	default:
	}
}

// finishSnapshot writes the manifest of a PENDING snapshot and commits it.
func (n *Node) finishSnapshot(ctx context.Context, snap *fsmpb.Snapshot, _ string) error {
	if fp := n.cfg.Failpoints; fp != nil && fp.BeforeManifestWrite != nil {
		if err := fp.BeforeManifestWrite(ctx, snap.Id); err != nil {
			return err
		}
	}
	view := n.fsm.View()
	snap, err := view.Snapshot(snap.Id)
	if err != nil || snap.State != fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING {
		return nil // finished or dropped meanwhile
	}
	start := time.Now()
	written, err := n.writeManifest(ctx, view, snap)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if fp := n.cfg.Failpoints; fp != nil && fp.BeforeSnapshotCommit != nil {
		if err := fp.BeforeSnapshotCommit(ctx, snap.Id); err != nil {
			return err
		}
	}
	commit := &fsmpb.SnapshotCommit{SnapshotId: snap.Id, ManifestSize: uint64(written.size), ManifestChecksum: written.checksum, Summary: written.summary}
	err = n.propose(ctx, "", commit, nil)
	if errors.Is(err, fsm.ErrFailedPrecondition) {
		return nil // committed by another leader, or dropped meanwhile
	}
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	n.logger.Info("snapshot committed", "snapshot", snap.Id, "name", snap.Name, "segments", written.summary.Segments,
		"files", written.summary.Files, "manifest_bytes", written.size, "took", time.Since(start))
	return nil
}

// giveUpSnapshot marks a PENDING snapshot past its deadline DELETING, with the reason.
func (n *Node) giveUpSnapshot(ctx context.Context, snap *fsmpb.Snapshot, lastErr string) error {
	reason := fmt.Sprintf("not committed within %v", n.cfg.SnapshotPendingTimeout)
	if lastErr != "" {
		reason += "; last error: " + lastErr
	}
	n.logger.Warn("giving up a snapshot", "snapshot", snap.Id, "name", snap.Name, "reason", reason)
	return n.propose(ctx, "", &fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id, Reason: reason}, nil)
}
