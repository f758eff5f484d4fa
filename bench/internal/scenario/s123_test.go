package scenario

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/baseline"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

func TestKilo(t *testing.T) {
	for n, want := range map[int]string{1000: "1k", 10_000: "10k", 100_000: "100k", 1500: "1500", 7: "7"} {
		if got := kilo(n); got != want {
			t.Errorf("kilo(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMilvusRecordValue(t *testing.T) {
	a, b := milvusRecordValue("k1"), milvusRecordValue("k2")
	if len(a) != 300 || a == b || a != milvusRecordValue("k1") {
		t.Fatalf("values: %d bytes, distinct %v", len(a), a != b)
	}
}

func TestSnapkeepFileKeysAndKinds(t *testing.T) {
	seg := baseline.MilvusSegment(5, 6, 7)
	var kinds []pb.FileKind
	for _, f := range seg.Files {
		pf := snapkeepFile("collections/5/segments/7/", f)
		if !strings.HasPrefix(pf.Key, "collections/5/segments/7/") || pf.Size != f.Size || pf.Crc32C != f.CRC32C {
			t.Fatalf("file %+v", pf)
		}
		kinds = append(kinds, pf.Kind)
	}
	if kinds[0] != pb.FileKind_FILE_KIND_INSERT || kinds[6] != pb.FileKind_FILE_KIND_DELTA || kinds[7] != pb.FileKind_FILE_KIND_STATS {
		t.Fatalf("kinds %v", kinds)
	}
}

func TestClosedLoopCountsAndStopsOnError(t *testing.T) {
	ops, lat, err := closedLoop(context.Background(), 4, 50*time.Millisecond, func(context.Context, int, int) error {
		time.Sleep(time.Millisecond)
		return nil
	})
	if err != nil || ops <= 0 || lat.Len() == 0 {
		t.Fatalf("ops %v, %d latencies, err %v", ops, lat.Len(), err)
	}
	boom := errors.New("boom")
	_, _, err = closedLoop(context.Background(), 4, time.Minute, func(_ context.Context, w, i int) error {
		if w == 2 && i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
}

// The three formats of scenario 3 must describe the same files: a benchmark that
// decoded fewer records on one side would flatter it.
func TestManifestFormatsAgree(t *testing.T) {
	ctx := context.Background()
	mc, err := buildManifestCollection(200)
	if err != nil {
		t.Fatal(err)
	}
	if mc.files != 1600 || len(mc.segs) != 200 || len(mc.baseline) != 200 {
		t.Fatalf("%d files, %d segments", mc.files, len(mc.segs))
	}
	for i := range mc.segs {
		if mc.segs[i].ID != mc.baseline[i].ID || mc.segs[i].PartitionID != mc.baseline[i].PartitionID {
			t.Fatalf("segment %d: snapkeep %d/%d, baseline %d/%d", i, mc.segs[i].ID, mc.segs[i].PartitionID, mc.baseline[i].ID, mc.baseline[i].PartitionID)
		}
	}
	data, err := mc.encodeSnapkeep()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := decodeSnapkeep(ctx, data); err != nil || n != mc.files {
		t.Fatalf("snapkeep decoded %d files: %v", n, err)
	}
	av, err := mc.encodeAvro(ctx, &baseline.Baseline{Root: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := decodeAvro(ctx, av); err != nil || n != mc.files {
		t.Fatalf("avro decoded %d files: %v", n, err)
	}
	if sub := mc.subset(50); len(sub.segs) != 50 || sub.files != 400 {
		t.Fatalf("subset: %d segments, %d files", len(sub.segs), sub.files)
	}
}

func TestParallelForCoversEveryIndexOnce(t *testing.T) {
	seen := make([]int, 1001)
	if err := parallelFor(context.Background(), len(seen), func(i int) error { seen[i]++; return nil }); err != nil {
		t.Fatal(err)
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("index %d ran %d times", i, n)
		}
	}
}

func TestProcessCPUOfThisProcess(t *testing.T) {
	before, err := processCPU([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := range 50_000_000 {
		x += i
	}
	after, err := processCPU([]int{os.Getpid()})
	if err != nil || after < before {
		t.Fatalf("cpu %v then %v: %v (%d)", before, after, err, x)
	}
}

func TestSizeNames(t *testing.T) {
	if got := sizeNames([]int{1000, 10_000, 100_000}); got != "1k, 10k, 100k" {
		t.Fatalf("sizeNames = %q", got)
	}
}
