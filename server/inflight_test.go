package server_test

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/snapkeep/snapkeep/objstore"
)

// inflightStore measures how many copies run at once (for the restore benchmark).
type inflightStore struct {
	objstore.Store
	cur, max atomic.Int64
	sum      atomic.Int64 // ns × inflight
	last     atomic.Int64
}

func (s *inflightStore) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	s.enter()
	defer s.leave()
	return s.Store.Copy(ctx, src, dst)
}

func (s *inflightStore) enter() {
	now := time.Now().UnixNano()
	prev := s.last.Swap(now)
	if prev != 0 {
		s.sum.Add((now - prev) * s.cur.Load())
	}
	c := s.cur.Add(1)
	if c > s.max.Load() {
		s.max.Store(c)
	}
}

func (s *inflightStore) leave() {
	now := time.Now().UnixNano()
	prev := s.last.Swap(now)
	s.sum.Add((now - prev) * s.cur.Load())
	s.cur.Add(-1)
}
