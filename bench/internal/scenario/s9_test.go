package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/objstore"
)

func TestRepositoryClass(t *testing.T) {
	for key, want := range map[string]string{
		"":                                     "listing",
		"churn/data/3c61/collections/1/x":      "data",
		"churn/snapshots/0b6f8c1e.skm":         "manifest",
		"churn/index/00000000000000000002":     "index",
		"churn/snapkeep-repository":            "marker",
		"churn/probes/abc":                     "probe",
		"churn/else":                           "other",
		"churnx/data/3c61/x":                   "other",
		"exp1/data/3c61/collections/1/segment": "other",
	} {
		if got := repositoryClass("churn", key); got != want {
			t.Errorf("repositoryClass(%q) = %q, want %q", key, got, want)
		}
	}
	if got := repositoryClass("churn/", "churn/data/x"); got != "data" {
		t.Errorf("a prefix with its slash: %q", got)
	}
}

// memStore is the part of objstore.Store the plain loop uses, in memory.
type memStore struct {
	objstore.Store
	mu       sync.Mutex
	objects  map[string][]byte
	puts     map[string]int
	declared map[string]uint32
	failPut  string
}

func newMemStore() *memStore {
	return &memStore{objects: map[string][]byte{}, puts: map[string]int{}, declared: map[string]uint32{}}
}

func (m *memStore) Get(_ context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[key]
	if !ok {
		return nil, objstore.ObjectInfo{}, objstore.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), objstore.ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

func (m *memStore) Put(_ context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	if _, ok := body.(io.Seeker); ok {
		return objstore.ObjectInfo{}, errors.New("the loop must stream a plain reader, as the executors do")
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return objstore.ObjectInfo{}, err
	}
	if int64(len(b)) != size {
		return objstore.ObjectInfo{}, fmt.Errorf("%d bytes, size %d", len(b), size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if key == m.failPut {
		return objstore.ObjectInfo{}, errors.New("refused")
	}
	m.objects[key] = b
	m.puts[key]++
	if opts.HasCRC32C {
		m.declared[key] = opts.CRC32C
	}
	return objstore.ObjectInfo{Key: key, Size: size}, nil
}

func TestPlainStreamLoopCopiesEveryKeyOnce(t *testing.T) {
	src, dst := newMemStore(), newMemStore()
	var keys []string
	for i := range 500 {
		k := fmt.Sprintf("root/seg%d/file", i)
		src.objects[k] = bytes.Repeat([]byte{byte(i)}, 100+i)
		keys = append(keys, k)
	}
	if _, err := plainStreamLoop(context.Background(), src, dst, keys, "plain/0/", 32, nil); err != nil {
		t.Fatal(err)
	}
	if len(dst.objects) != len(keys) {
		t.Fatalf("%d objects copied, want %d", len(dst.objects), len(keys))
	}
	for _, k := range keys {
		if !bytes.Equal(dst.objects["plain/0/"+k], src.objects[k]) || dst.puts["plain/0/"+k] != 1 {
			t.Fatalf("%s: copied %d times, equal %v", k, dst.puts["plain/0/"+k], bytes.Equal(dst.objects["plain/0/"+k], src.objects[k]))
		}
	}

	dst = newMemStore()
	dst.failPut = "plain/1/" + keys[100]
	if _, err := plainStreamLoop(context.Background(), src, dst, keys, "plain/1/", 8, nil); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a refused put: %v", err)
	}
	if _, err := plainStreamLoop(context.Background(), src, newMemStore(), []string{"missing"}, "p/", 4, nil); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("a missing source: %v", err)
	}
	if len(dst.declared) != 0 {
		t.Fatalf("no CRC-32C given, yet %d declared", len(dst.declared))
	}
}

func TestPlainStreamLoopDeclaresAndChecksTheCRC(t *testing.T) {
	src := newMemStore()
	crcs := map[string]uint32{}
	var keys []string
	for i := range 50 {
		k := fmt.Sprintf("k%d", i)
		src.objects[k] = bytes.Repeat([]byte{byte(i), 7}, 300)
		crcs[k] = crc32.Checksum(src.objects[k], crc32.MakeTable(crc32.Castagnoli))
		keys = append(keys, k)
	}
	dst := newMemStore()
	if _, err := plainStreamLoop(context.Background(), src, dst, keys, "c/", 8, crcs); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if got, ok := dst.declared["c/"+k]; !ok || got != crcs[k] {
			t.Fatalf("%s: declared %08x %v, want %08x", k, got, ok, crcs[k])
		}
	}
	crcs[keys[3]]++
	if _, err := plainStreamLoop(context.Background(), src, newMemStore(), keys, "c/", 8, crcs); err == nil || !strings.Contains(err.Error(), "streamed CRC-32C") {
		t.Fatalf("a wrong CRC-32C: %v", err)
	}
	delete(crcs, keys[5])
	if _, err := plainStreamLoop(context.Background(), src, newMemStore(), keys[5:6], "c/", 1, crcs); err == nil || !strings.Contains(err.Error(), "no CRC-32C") {
		t.Fatalf("a key without CRC-32C: %v", err)
	}
}

func TestDescribeTrafficIsSortedByClass(t *testing.T) {
	got := describeTraffic(env.TrafficByClass{"index": {Requests: 1, Puts: 1, PutBytes: 512}, "data": {Requests: 2, Puts: 2, PutBytes: 32 << 10}})
	if !strings.HasPrefix(got, "data: 2 requests, 2 puts 32.0 KiB") || !strings.Contains(got, "; index: 1 requests, 1 puts 0.5 KiB") {
		t.Fatalf("%q", got)
	}
}
