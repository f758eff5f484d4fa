package baseline

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/snapkeep/snapkeep/objstore"
)

// mapStore keeps objects in a map; only Put and Get are implemented.
type mapStore struct {
	objstore.Store
	mu   sync.Mutex
	objs map[string][]byte
}

func (m *mapStore) Put(_ context.Context, key string, body io.Reader, size int64, _ objstore.PutOptions) (objstore.ObjectInfo, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return objstore.ObjectInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = b
	return objstore.ObjectInfo{Key: key, Size: size}, nil
}

func (m *mapStore) Get(_ context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, objstore.ObjectInfo{}, objstore.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), objstore.ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

func TestWriteObjectsThenReadBack(t *testing.T) {
	ctx := context.Background()
	store := &mapStore{objs: map[string][]byte{}}
	b := &Baseline{Store: store, Root: "root", Parallelism: 3}
	var segs []Segment
	for i := range 25 {
		segs = append(segs, MilvusSegment(10, 11, uint64(100+i)))
	}
	coll := TestCollection(10, "c", map[string]int64{"_default": 11})
	info := TestSnapshotInfo(77, 10, "snap", []int64{11})
	res, err := b.WriteObjects(ctx, info, coll, []IndexInfo{{IndexID: 5, FieldID: 101, IndexName: "vec"}}, segs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != 26 || len(store.objs) != 26 {
		t.Fatalf("%d objects reported, %d stored; want 26", res.Objects, len(store.objs))
	}
	for k := range store.objs {
		if !strings.HasPrefix(k, "root/snapshots/10/manifests/77/") && k != "root/snapshots/10/metadata/77.json" {
			t.Fatalf("unexpected key %s", k)
		}
	}
	back, err := b.ReadBack(ctx, 10, 77)
	if err != nil {
		t.Fatal(err)
	}
	if back.Segments != 25 || back.Files != 200 || back.Objects != 26 || back.Bytes != res.ObjectBytes {
		t.Fatalf("read back %+v, wrote %+v", back, res)
	}
	if md := back.Metadata; len(md.SegmentIDs) != 25 || md.IndexIDs[0] != 5 || md.SnapshotInfo.State != "Committed" || md.SnapshotInfo.Name != "snap" {
		t.Fatalf("metadata %+v", md.SnapshotInfo)
	}
	delete(store.objs, b.ManifestKey(10, 77, 103))
	if _, err := b.ReadBack(ctx, 10, 77); err == nil {
		t.Fatal("read back with a manifest missing")
	}
}
