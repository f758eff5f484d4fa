package scenario

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"strings"
	"sync"
	"testing"

	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

func TestCollectionPrefix(t *testing.T) {
	for _, root := range []string{"s10", "s10/"} {
		if got := collectionPrefix(root, 7); got != "s10/collections/7/" {
			t.Errorf("collectionPrefix(%q, 7) = %q", root, got)
		}
	}
}

func TestInParallel(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{}
	err := inParallel(context.Background(), 1000, 16, func(_ context.Context, i int) error {
		mu.Lock()
		seen[i]++
		mu.Unlock()
		return nil
	})
	if err != nil || len(seen) != 1000 {
		t.Fatalf("inParallel: %v, %d items seen", err, len(seen))
	}
	for i, n := range seen {
		if n != 1 || i < 0 || i >= 1000 {
			t.Fatalf("item %d ran %d times", i, n)
		}
	}
	// The first error stops the others and is returned.
	boom := errors.New("boom")
	var ran sync.Map
	err = inParallel(context.Background(), 100000, 4, func(ctx context.Context, i int) error {
		ran.Store(i, true)
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("inParallel returned %v, want boom", err)
	}
	n := 0
	ran.Range(func(any, any) bool { n++; return true })
	if n == 100000 {
		t.Error("every item ran after an error")
	}
	if err := inParallel(context.Background(), 0, 8, func(context.Context, int) error { return boom }); err != nil {
		t.Errorf("no items: %v", err)
	}
}

func TestPlainReadLoop(t *testing.T) {
	st := newMemStore() // s9_test.go
	crcs := map[string]uint32{}
	var keys []string
	total := int64(0)
	for i := range 50 {
		key := "k/" + strings.Repeat("x", i)
		body := bytes.Repeat([]byte{byte(i)}, 1000+i*37)
		st.objects[key], crcs[key] = body, crc32.Checksum(body, castagnoli)
		keys = append(keys, key)
		total += int64(len(body))
	}
	n, took, err := plainReadLoop(context.Background(), st, keys, crcs, 8)
	if err != nil || n != total || took <= 0 {
		t.Fatalf("plainReadLoop = %d bytes, %v, %v; want %d bytes", n, took, err, total)
	}
	// A wrong checksum, a missing CRC and a missing object each fail the loop.
	crcs[keys[3]]++
	if _, _, err := plainReadLoop(context.Background(), st, keys, crcs, 8); err == nil || !strings.Contains(err.Error(), "CRC-32C") {
		t.Errorf("a wrong CRC-32C: %v", err)
	}
	crcs[keys[3]]--
	if _, _, err := plainReadLoop(context.Background(), st, append(keys, "absent"), crcs, 8); err == nil {
		t.Error("a key without a CRC-32C read")
	}
	crcs["absent"] = 1
	if _, _, err := plainReadLoop(context.Background(), st, append(keys, "absent"), crcs, 8); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("a missing object: %v", err)
	}
}

func TestFsckReportChecks(t *testing.T) {
	ok := &pb.FsckResponse{Clean: true, FilesExpected: 800, ObjectsListed: 801, ManifestsChecked: 1}
	if err := checkSizesOnly(ok, 800); err != nil {
		t.Errorf("a good sizes-only report: %v", err)
	}
	for _, bad := range []*pb.FsckResponse{
		{FilesExpected: 799, ObjectsListed: 801, ManifestsChecked: 1},
		{FilesExpected: 800, ObjectsListed: 800, ManifestsChecked: 1},
		{FilesExpected: 800, ObjectsListed: 801},
		{FilesExpected: 800, ObjectsListed: 801, ManifestsChecked: 1, Deep: true, FilesRead: 800},
	} {
		if err := checkSizesOnly(bad, 800); err == nil {
			t.Errorf("checkSizesOnly passed %v", bad)
		}
	}
	deep := &pb.FsckResponse{Deep: true, FilesExpected: 16, FilesRead: 16, BytesRead: 16 << 20, Readers: 3}
	if err := checkDeep(deep, 16, 16<<20); err != nil {
		t.Errorf("a good deep report: %v", err)
	}
	for _, bad := range []*pb.FsckResponse{
		{FilesExpected: 16, FilesRead: 16, BytesRead: 16 << 20},
		{Deep: true, FilesExpected: 16, FilesRead: 15, BytesRead: 16 << 20},
		{Deep: true, FilesExpected: 16, FilesRead: 16, BytesRead: 16<<20 - 1, Readers: 3},
		{Deep: true, FilesExpected: 16, FilesRead: 16, BytesRead: 16 << 20, Readers: 1},
		{Deep: true, FilesExpected: 16, FilesRead: 16, BytesRead: 16 << 20, Readers: 3, ReadersFailed: []string{"node n2: down"}},
	} {
		if err := checkDeep(bad, 16, 16<<20); err == nil {
			t.Errorf("checkDeep passed %v", bad)
		}
	}
	var ps []*pb.FsckProblem
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		ps = append(ps, &pb.FsckProblem{Kind: "missing", Key: k, Detail: "gone"})
	}
	if got, want := describeProblems(ps), "5 problems: missing a: gone; missing b: gone; missing c: gone; … 2 more"; got != want {
		t.Errorf("describeProblems = %q, want %q", got, want)
	}
}
