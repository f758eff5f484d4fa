package server

import (
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/snapkeep/snapkeep/internal/diskfault"
)

// slowLogWrite: a Raft log write that took longer is reported (health: degraded) for
// slowLogWriteWindow; a disk this slow holds every commit of the cluster when it is
// the leader's.
const (
	slowLogWrite       = time.Second
	slowLogWriteWindow = time.Minute
)

// logWriteTracker remembers the outcome of the Raft log's writes, so health can say a
// node cannot write its log (a full disk: raft only logs the error and the follower
// silently falls behind).
type logWriteTracker struct {
	mu        sync.Mutex
	lastErr   error
	lastErrAt time.Time
	lastOKAt  time.Time
	// slowest is the longest write in the window that ended at slowAt (slowLogWrite
	// or more), zero when none.
	slowest time.Duration
	slowAt  time.Time
}

func (t *logWriteTracker) record(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.lastErr, t.lastErrAt = err, time.Now()
		return
	}
	t.lastOKAt = time.Now()
}

// checked runs a write and records its outcome.
func (t *logWriteTracker) checked(where string, write func() error) error {
	err := diskfault.Check(where) // faultinject builds only
	if err == nil {
		err = write()
	}
	t.record(err)
	return err
}

// timed runs a log write and records its outcome and, when slow, its duration.
func (t *logWriteTracker) timed(where string, write func() error) error {
	start := time.Now()
	err := diskfault.Check(where) // faultinject builds only: may fail or slow the write
	if err == nil {
		err = write()
	}
	t.record(err)
	if d := time.Since(start); d >= slowLogWrite {
		t.mu.Lock()
		if time.Since(t.slowAt) > slowLogWriteWindow || d > t.slowest {
			t.slowest = d
		}
		t.slowAt = time.Now()
		t.mu.Unlock()
	}
	return err
}

// recentSlowWrite returns the slowest write of the last slowLogWriteWindow, when one
// took slowLogWrite or more.
func (t *logWriteTracker) recentSlowWrite() (time.Duration, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.slowest == 0 || time.Since(t.slowAt) > slowLogWriteWindow {
		return 0, time.Time{}
	}
	return t.slowest, t.slowAt
}

// recentError returns the last write error when it is newer than the last successful
// write or happened within the window; nil otherwise.
func (t *logWriteTracker) recentError(window time.Duration) (error, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastErr == nil {
		return nil, time.Time{}
	}
	if t.lastErrAt.After(t.lastOKAt) || time.Since(t.lastErrAt) < window {
		return t.lastErr, t.lastErrAt
	}
	return nil, time.Time{}
}

// trackedLogStore is the Raft log store with every write's outcome recorded.
type trackedLogStore struct {
	raft.LogStore
	t *logWriteTracker
	// monotonic is the store's raft.MonotonicLogStore answer (raft-wal refuses gaps),
	// passed through whatever wraps the store.
	monotonic bool
}

// IsMonotonic implements raft.MonotonicLogStore: raft then empties a gapless log
// after installing a snapshot instead of leaving a gap the WAL would refuse.
func (s trackedLogStore) IsMonotonic() bool { return s.monotonic }

func (s trackedLogStore) StoreLog(l *raft.Log) error {
	return s.t.timed(diskfault.RaftLog, func() error { return s.LogStore.StoreLog(l) })
}

func (s trackedLogStore) StoreLogs(logs []*raft.Log) error {
	return s.t.timed(diskfault.RaftLog, func() error { return s.LogStore.StoreLogs(logs) })
}

func (s trackedLogStore) DeleteRange(lo, hi uint64) error {
	return s.t.timed(diskfault.RaftLog, func() error { return s.LogStore.DeleteRange(lo, hi) })
}

// trackedStableStore is the Raft stable store (term, vote) with writes recorded.
type trackedStableStore struct {
	raft.StableStore
	t *logWriteTracker
}

func (s trackedStableStore) Set(k, v []byte) error {
	return s.t.timed(diskfault.RaftStable, func() error { return s.StableStore.Set(k, v) })
}

func (s trackedStableStore) SetUint64(k []byte, v uint64) error {
	return s.t.timed(diskfault.RaftStable, func() error { return s.StableStore.SetUint64(k, v) })
}

// trackedSnapshotStore is the raft snapshot store with the writes of each snapshot
// recorded: raft only logs a snapshot it failed to write, and tries again later.
type trackedSnapshotStore struct {
	raft.SnapshotStore
	t *logWriteTracker
}

func (s trackedSnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	var sink raft.SnapshotSink
	err := s.t.checked(diskfault.RaftSnapshot, func() error {
		var err error
		sink, err = s.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
		return err
	})
	if err != nil {
		return nil, err
	}
	return trackedSink{SnapshotSink: sink, t: s.t}, nil
}

// trackedSink is a snapshot being written. A failed write is recorded; raft then
// cancels the sink.
type trackedSink struct {
	raft.SnapshotSink
	t *logWriteTracker
}

func (s trackedSink) Write(p []byte) (int, error) {
	if err := diskfault.Check(diskfault.RaftSnapshot); err != nil {
		s.t.record(err)
		return 0, err
	}
	n, err := s.SnapshotSink.Write(p)
	if err != nil {
		s.t.record(err)
	}
	return n, err
}

// Close is not timed: a large snapshot's fsync is expected to take seconds.
func (s trackedSink) Close() error {
	return s.t.checked(diskfault.RaftSnapshot, s.SnapshotSink.Close)
}

var _ io.Writer = trackedSink{}
