package server

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// logWriteTracker remembers the outcome of the Raft log's writes, so health can say a
// node cannot write its log (a full disk: raft only logs the error and the follower
// silently falls behind).
type logWriteTracker struct {
	mu        sync.Mutex
	lastErr   error
	lastErrAt time.Time
	lastOKAt  time.Time
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
	err := s.LogStore.StoreLog(l)
	s.t.record(err)
	return err
}

func (s trackedLogStore) StoreLogs(logs []*raft.Log) error {
	err := s.LogStore.StoreLogs(logs)
	s.t.record(err)
	return err
}

func (s trackedLogStore) DeleteRange(lo, hi uint64) error {
	err := s.LogStore.DeleteRange(lo, hi)
	s.t.record(err)
	return err
}

// trackedStableStore is the Raft stable store (term, vote) with writes recorded.
type trackedStableStore struct {
	raft.StableStore
	t *logWriteTracker
}

func (s trackedStableStore) Set(k, v []byte) error {
	err := s.StableStore.Set(k, v)
	s.t.record(err)
	return err
}

func (s trackedStableStore) SetUint64(k []byte, v uint64) error {
	err := s.StableStore.SetUint64(k, v)
	s.t.record(err)
	return err
}
