package analyze

import (
	"context"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/snapkeep/snapkeep/objstore"
)

// timedStore records the latency (and bytes) of every request made through it.
type timedStore struct {
	objstore.Store
	mu  sync.Mutex
	ops map[string]*opSamples
}

type opSamples struct {
	durations []time.Duration
	bytes     int64
}

func newTimedStore(s objstore.Store) *timedStore {
	return &timedStore{Store: s, ops: map[string]*opSamples{}}
}

// largeBytes: requests moving at least this many bytes are counted apart ("put-large",
// "get-large"), so their throughput is not averaged with small requests' latency.
const largeBytes = 1 << 20

func (t *timedStore) record(op string, start time.Time, bytes int64) {
	d := time.Since(start)
	if bytes >= largeBytes {
		op += "-large"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.ops[op]
	if s == nil {
		s = &opSamples{}
		t.ops[op] = s
	}
	s.durations = append(s.durations, d)
	s.bytes += bytes
}

// stats summarises the samples, by operation name.
func (t *timedStore) stats() []OpStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []OpStats
	for op, s := range t.ops {
		d := slices.Clone(s.durations)
		slices.Sort(d)
		st := OpStats{Op: op, Count: len(d), Bytes: s.bytes, Min: d[0], P50: d[(len(d)-1)/2], Max: d[len(d)-1]}
		for _, x := range d {
			st.Total += x
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b OpStats) int {
		switch {
		case a.Op < b.Op:
			return -1
		case a.Op > b.Op:
			return 1
		}
		return 0
	})
	return out
}

func (t *timedStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	start := time.Now()
	info, err := t.Store.Put(ctx, key, body, size, opts)
	if err == nil {
		t.record("put", start, size)
	}
	return info, err
}

// Get's time runs until the body is closed, and counts the bytes read.
func (t *timedStore) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	start := time.Now()
	rc, info, err := t.Store.Get(ctx, key)
	if err != nil {
		return nil, info, err
	}
	return &timedBody{ReadCloser: rc, done: func(n int64) { t.record("get", start, n) }}, info, nil
}

func (t *timedStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := t.Store.GetRange(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	return &timedBody{ReadCloser: rc, done: func(n int64) { t.record("get-range", start, n) }}, nil
}

func (t *timedStore) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	start := time.Now()
	info, err := t.Store.Head(ctx, key)
	if err == nil || isNotFound(err) {
		t.record("head", start, 0)
	}
	return info, err
}

func (t *timedStore) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	start := time.Now()
	info, err := t.Store.Copy(ctx, src, dst)
	if err == nil {
		t.record("copy", start, 0)
	}
	return info, err
}

func (t *timedStore) MultipartCopy(ctx context.Context, src, dst string, srcSize, partSize int64) (objstore.CopyInfo, error) {
	start := time.Now()
	info, err := t.Store.MultipartCopy(ctx, src, dst, srcSize, partSize)
	if err == nil {
		t.record("multipart-copy", start, srcSize)
	}
	return info, err
}

func (t *timedStore) List(ctx context.Context, prefix, token string, maxKeys int) (objstore.ListPage, error) {
	start := time.Now()
	page, err := t.Store.List(ctx, prefix, token, maxKeys)
	if err == nil {
		t.record("list", start, 0)
	}
	return page, err
}

func (t *timedStore) Delete(ctx context.Context, keys []string) (objstore.DeleteResult, error) {
	start := time.Now()
	res, err := t.Store.Delete(ctx, keys)
	if err == nil {
		t.record("delete", start, 0)
	}
	return res, err
}

type timedBody struct {
	io.ReadCloser
	n    int64
	once sync.Once
	done func(n int64)
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *timedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.done(b.n) })
	return err
}
