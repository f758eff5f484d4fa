package fsck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/snapkeep/snapkeep/objstore"
)

// mapStore serves Get from a map, slowly enough that readers share the work.
type mapStore struct {
	objstore.Store
	objects map[string][]byte
	gets    atomic.Int64
}

func (s *mapStore) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	s.gets.Add(1)
	time.Sleep(2 * time.Millisecond)
	b, ok := s.objects[key]
	if !ok {
		return nil, objstore.ObjectInfo{}, objstore.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), objstore.ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

// peer reads batches from the same store as another node would; broken ones fail.
type peer struct {
	name    string
	store   objstore.Store
	broken  bool
	batches atomic.Int64
}

func (p *peer) Name() string { return p.name }

func (p *peer) ReadBack(ctx context.Context, items []ReadItem, bps int64, conc int) (ReadResults, error) {
	if p.broken {
		return ReadResults{}, errors.New("connection refused")
	}
	p.batches.Add(1)
	return ReadBack(ctx, p.store, items, bps, conc), nil
}

// TestDeepReadsAreSharedBetweenNodes: every file is read once, by this node or a
// healthy peer; the batch a failing peer was given is read here; a damaged file is
// reported once with what the catalog says about it.
func TestDeepReadsAreSharedBetweenNodes(t *testing.T) {
	defer goleak.VerifyNone(t)
	store := &mapStore{objects: map[string][]byte{}}
	c := &checker{store: store, rep: &Report{}, want: map[string]*expected{}, others: map[string]objstore.ObjectInfo{},
		opts: Options{Concurrency: 2, ReadBatch: 1}}
	const files = 40
	for i := range files {
		key := fmt.Sprintf("k/%02d", i)
		body := []byte(fmt.Sprintf("body of %d", i))
		store.objects[key] = body
		c.want[key] = &expected{size: uint64(len(body)), listed: int64(len(body)), crc: crc32.Checksum(body, castagnoli), segment: uint64(i), snapshots: []uint64{7}}
	}
	store.objects["k/13"] = []byte("body of X3") // same size, other bytes
	good := &peer{name: "node b", store: store}
	bad := &peer{name: "node c", store: store, broken: true}
	c.opts.Readers = []Reader{good, bad}

	require.NoError(t, c.readBack(context.Background()))

	require.EqualValues(t, files, c.rep.FilesRead)
	require.EqualValues(t, files, store.gets.Load(), "each file read exactly once")
	require.Positive(t, good.batches.Load(), "the healthy peer took batches")
	require.Len(t, c.rep.ReadersFailed, 1)
	require.Contains(t, c.rep.ReadersFailed[0], "node c: connection refused")
	require.Len(t, c.rep.Problems, 1)
	p := c.rep.Problems[0]
	require.Equal(t, ChecksumMismatch, p.Kind)
	require.Equal(t, "k/13", p.Key)
	require.Equal(t, []uint64{13}, p.Segments)
	require.Equal(t, []uint64{7}, p.Snapshots)
}
