package manifest

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
)

var benchSegments = flag.Int("manifest.bench-segments", 100_000, "segments of the collection in BenchmarkEncode, BenchmarkDecode and BenchmarkVerify")

// benchData is a realistic collection: -manifest.bench-segments flushed segments in 4
// partitions, each with Milvus's eight files — six insert binlogs (fields 0, 1 and
// 100 to 103), a delta log and a stats log — keyed <kind>/<field>/<18-digit log id>
// (the delta log without a field, as Milvus writes it), sizes around 1 MiB (a few KiB
// for delta and stats logs), random CRC-32Cs, log ids increasing across the collection
// with gaps. The file lists come from a real FSM (FlushSegment commands).
type benchData struct {
	hdr       *manifestpb.Header
	segs      []Segment
	files     int
	blobBytes int64 // bytes of file lists (the encoder's input)
	manifest  []byte
}

var (
	benchOnce sync.Once
	bench     *benchData
)

func benchCollection(b *testing.B) *benchData {
	benchOnce.Do(func() {
		c := newCatalog(b)
		coll := c.collection("bench", []string{"p1", "p2", "p3"}, nil)
		rng := rand.New(rand.NewPCG(42, 42))
		logID := uint64(449_000_000_000_000_000)
		d := &benchData{hdr: headerFor(coll, 1)}
		for range *benchSegments {
			part := coll.Partitions[rng.IntN(len(coll.Partitions))].Name
			seg := c.flush(coll, part, 100_000+rng.Int64N(900_000), func(prefix string) []*fsmpb.File {
				logID += 1 + rng.Uint64N(40) // other segments' logs come in between
				files := make([]*fsmpb.File, 0, 8)
				for i, field := range []int64{0, 1, 100, 101, 102, 103} {
					files = append(files, &fsmpb.File{Key: fmt.Sprintf("%sinsert/%d/%d", prefix, field, logID+uint64(i)),
						Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldId: field, Size: 768<<10 + rng.Uint64N(512<<10), Crc32C: rng.Uint32()})
				}
				files = append(files,
					&fsmpb.File{Key: fmt.Sprintf("%sdelta/%d", prefix, logID+6), Kind: fsmpb.FileKind_FILE_KIND_DELTA, Size: 1024 + rng.Uint64N(64<<10), Crc32C: rng.Uint32()},
					&fsmpb.File{Key: fmt.Sprintf("%sstats/100/%d", prefix, logID+7), Kind: fsmpb.FileKind_FILE_KIND_STATS, FieldId: 100, Size: 4096 + rng.Uint64N(16<<10), Crc32C: rng.Uint32()})
				logID += 8
				return files
			})
			d.segs = append(d.segs, segmentOf(seg))
			d.files += 8
			d.blobBytes += int64(len(seg.Files))
		}
		sortSegments(d.segs)
		d.manifest, _ = encodeBench(b, d, WriterOptions{})
		bench = d
	})
	return bench
}

func encodeBench(b *testing.B, d *benchData, opts WriterOptions) ([]byte, Result) {
	var buf bytes.Buffer
	buf.Grow(len(d.manifest) + 1<<20)
	w, err := NewWriter(&buf, d.hdr, opts)
	require.NoError(b, err)
	for i := range d.segs {
		if err := w.Add(&d.segs[i]); err != nil {
			b.Fatal(err)
		}
	}
	res, err := w.Close()
	require.NoError(b, err)
	return buf.Bytes(), res
}

// BenchmarkEncode writes the realistic collection's manifest (into memory). MB/s is
// file-list bytes in; records/s file records; bytes/record the manifest's size per
// file record, everything included.
//
//	go test ./manifest -run '^$' -bench '^BenchmarkEncode$' -benchtime 10x
func BenchmarkEncode(b *testing.B) {
	for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		b.Run("level="+level.String(), func(b *testing.B) {
			d := benchCollection(b)
			b.SetBytes(d.blobBytes)
			b.ReportAllocs()
			var res Result
			for b.Loop() {
				_, res = encodeBench(b, d, WriterOptions{Level: level})
			}
			b.ReportMetric(float64(d.files)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(res.Size)/float64(d.files), "bytes/record")
			b.ReportMetric(float64(d.blobBytes)/float64(d.files), "fsm-bytes/record")
			b.ReportMetric(float64(res.Size)/(1<<20), "manifest-MiB")
		})
	}
}

// BenchmarkDecode reads every segment of the realistic manifest (Segments), with one
// worker and with GOMAXPROCS; "walk" also decodes every file list entry by entry, as a
// restore does. MB/s is file-list bytes out.
//
//	go test ./manifest -run '^$' -bench '^BenchmarkDecode$' -benchtime 10x
func BenchmarkDecode(b *testing.B) {
	for _, tc := range []struct {
		name string
		par  int
		walk bool
	}{{"p=1", 1, false}, {"p=max", 0, false}, {"p=max/walk", 0, true}} {
		b.Run(tc.name, func(b *testing.B) {
			d := benchCollection(b)
			b.SetBytes(d.blobBytes)
			b.ReportAllocs()
			for b.Loop() {
				rd, err := Open(bytes.NewReader(d.manifest), int64(len(d.manifest)))
				if err != nil {
					b.Fatal(err)
				}
				files := 0
				err = rd.Segments(context.Background(), ReadOptions{Parallelism: tc.par}, func(s *Segment) error {
					if !tc.walk {
						n, err := filelist.Count(s.Files)
						files += n
						return err
					}
					return filelist.ForEach(s.Files, func(filelist.Entry) bool { files++; return true })
				})
				if err != nil || files != d.files {
					b.Fatal(err, files)
				}
			}
			b.ReportMetric(float64(d.files)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
		})
	}
}

// BenchmarkVerify verifies the realistic manifest.
//
//	go test ./manifest -run '^$' -bench '^BenchmarkVerify$' -benchtime 10x
func BenchmarkVerify(b *testing.B) {
	d := benchCollection(b)
	b.SetBytes(d.blobBytes)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(bytes.NewReader(d.manifest), int64(len(d.manifest))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(d.files)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
