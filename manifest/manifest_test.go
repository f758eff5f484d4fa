package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
)

// writeManifest writes segs and checks the Result against the bytes.
func writeManifest(t testing.TB, hdr *manifestpb.Header, segs []Segment, opts WriterOptions) ([]byte, Result) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, hdr, opts)
	require.NoError(t, err)
	for i := range segs {
		require.NoError(t, w.Add(&segs[i]))
	}
	res, err := w.Close()
	require.NoError(t, err)
	require.EqualValues(t, buf.Len(), res.Size)
	require.Equal(t, xxhash.Sum64(buf.Bytes()), res.Checksum, "Result.Checksum is the xxhash64 of the whole object")
	return buf.Bytes(), res
}

// readSegments reads segments with opts.
func readSegments(t testing.TB, rd *Reader, opts ReadOptions) []Segment {
	t.Helper()
	var out []Segment
	require.NoError(t, rd.Segments(context.Background(), opts, func(s *Segment) error {
		out = append(out, *s)
		return nil
	}))
	return out
}

func inPartitions(segs []Segment, parts []uint64) []Segment {
	var out []Segment
	for _, s := range segs {
		if slices.Contains(parts, s.PartitionID) {
			out = append(out, s)
		}
	}
	return out
}

var levels = []zstd.EncoderLevel{0, zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression, zstd.SpeedBestCompression}

// TestRoundTrip writes seeded random collections — 0 to 10,000 segments, 0 to thousands
// of files per segment, long and unicode keys, index builds, empty partitions, random
// block sizes and levels — and checks that everything reads back equal, whole and by
// partition, and that Verify agrees.
func TestRoundTrip(t *testing.T) {
	p := newPool(t, 1, 300)
	sizes := []int{0, 1, 2, 3, 7, 50, 200, 1000, 3000, 10000}
	for i, n := range sizes {
		t.Run(fmt.Sprintf("segments=%d", n), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			segs := p.randomSegments(rng, n)
			hdr := headerFor(p.coll, uint64(1000+i))
			opts := WriterOptions{BlockSize: []int{0, 1, 500, 4096, 64 << 10}[rng.IntN(5)], Level: levels[rng.IntN(len(levels))]}
			if n > 1000 { // tens of MB of file lists: keep the slow levels for the smaller cases
				opts.Level = zstd.SpeedFastest
			}
			data, res := writeManifest(t, hdr, segs, opts)
			want := expectedSummary(t, segs)
			require.Equal(t, want, res.Summary)

			rd, err := Open(bytes.NewReader(data), int64(len(data)))
			require.NoError(t, err)
			require.True(t, proto.Equal(hdr, rd.Header()), "header")
			require.Equal(t, want, rd.Summary())
			require.Len(t, rd.Blocks(), res.Blocks)
			checkBlocks(t, rd.Blocks(), segs, opts.BlockSize)

			got := readSegments(t, rd, ReadOptions{Parallelism: rng.IntN(5)})
			require.Equal(t, segs, got)

			// Partition filters: each partition alone (empty ones included), random
			// subsets, and none.
			for _, part := range hdr.Partitions {
				ids := []uint64{part.Id}
				require.Equal(t, inPartitions(segs, ids), readSegments(t, rd, ReadOptions{Partitions: ids, Parallelism: 1 + rng.IntN(4)}))
			}
			for range 3 {
				var ids []uint64
				for _, part := range hdr.Partitions {
					if rng.IntN(2) == 0 {
						ids = append(ids, part.Id)
					}
				}
				ids = append(ids, []uint64{}...) // non-nil: selects nothing when empty
				require.Equal(t, inPartitions(segs, ids), readSegments(t, rd, ReadOptions{Partitions: ids}))
			}

			rep, err := Verify(bytes.NewReader(data), int64(len(data)))
			require.NoError(t, err)
			require.Equal(t, res.Checksum, rep.Checksum)
			require.Equal(t, want, rep.Summary)
			require.Equal(t, res.Blocks, rep.Blocks)
			require.Equal(t, res.Blocks+3, rep.Checksums)
			require.Contains(t, rep.String(), "every count matches the footer")
		})
	}
}

// checkBlocks checks the block index against the segments: one partition per block,
// blocks closed at the target size or at a partition change, counts right.
func checkBlocks(t *testing.T, blocks []BlockInfo, segs []Segment, blockSize int) {
	t.Helper()
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	k := 0
	for i, b := range blocks {
		require.Positive(t, b.Segments)
		part := segs[k : k+int(b.Segments)]
		k += int(b.Segments)
		require.Equal(t, part[0].ID, b.FirstSegmentID)
		require.Equal(t, part[len(part)-1].ID, b.LastSegmentID)
		for _, s := range part {
			require.Equal(t, b.PartitionID, s.PartitionID)
		}
		sum := expectedSummary(t, part)
		require.Equal(t, sum.Rows, b.Rows)
		require.Equal(t, sum.Files, b.Files)
		require.Equal(t, sum.Bytes, b.Bytes)
		require.Equal(t, sum.IndexBuilds, b.IndexBuilds)
		if i+1 < len(blocks) && blocks[i+1].PartitionID == b.PartitionID {
			require.GreaterOrEqual(t, b.UncompressedSize, int64(blockSize), "block %d closed early", i)
		}
	}
	require.Equal(t, len(segs), k)
}

// TestFromFSM writes a manifest straight from an FSM's state, the way the snapshot
// finisher does, and checks the JSON dump file by file against the FSM's own decoding.
func TestFromFSM(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	c := newCatalog(t)
	coll := c.collection("movies", []string{"y2023", "y2024", "empty"}, map[string]int64{"vec_idx": 101})
	for i := range 60 {
		part := []string{"_default", "y2023", "y2024"}[i%3]
		seg := c.flush(coll, part, int64(1000+i), randomFiles(rng, fileCount(rng)))
		if i%4 == 0 {
			seg = c.build(seg, "vec_idx", randomIndexFiles(rng, 1+rng.IntN(5)))
		}
		_ = seg
	}
	coll, _, err := c.f.View().Collection("", "movies") // with the index definition's id
	require.NoError(t, err)
	var segs []Segment
	c.f.View().EachSegment(coll.Id, 0, func(s *fsmpb.Segment) bool {
		segs = append(segs, segmentOf(s))
		return true
	})
	sortSegments(segs)
	hdr := headerFor(coll, 99)
	data, res := writeManifest(t, hdr, segs, WriterOptions{BlockSize: 2048})
	require.Equal(t, uint64(60), res.Summary.Segments)
	require.Greater(t, res.Blocks, 3)

	rd, err := Open(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, Dump(&out, rd))
	require.True(t, json.Valid(out.Bytes()), out.String())

	var dump struct {
		FormatVersion int               `json:"format_version"`
		Size          int64             `json:"size"`
		Header        map[string]any    `json:"header"`
		Summary       jsonSummary       `json:"summary"`
		Blocks        []jsonBlock       `json:"blocks"`
		Segments      []jsonSegment     `json:"segments"`
		Extra         map[string]string `json:"-"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &dump))
	require.Equal(t, 1, dump.FormatVersion)
	require.EqualValues(t, len(data), dump.Size)
	require.Equal(t, "movies", dump.Header["collection_name"])
	require.Equal(t, "nightly ✓", dump.Header["description"])
	require.Len(t, dump.Header["partitions"], 4)
	require.Equal(t, summaryJSON(res.Summary), dump.Summary)
	require.Len(t, dump.Blocks, res.Blocks)
	require.Len(t, dump.Segments, len(segs))
	for i, s := range segs {
		js := dump.Segments[i]
		require.Equal(t, s.ID, js.ID)
		require.Equal(t, s.PartitionID, js.PartitionID)
		require.Equal(t, s.RowCount, js.RowCount)
		require.Equal(t, layout.SnapkeepSegmentPrefix(coll.Id, s.ID), js.Prefix)
		requireSameFiles(t, s.Files, js.Files, js.Prefix)
		require.Len(t, js.IndexBuilds, len(s.IndexBuilds))
		for j, b := range s.IndexBuilds {
			require.Equal(t, b.BuildID, js.IndexBuilds[j].BuildID)
			require.Equal(t, b.IndexID, js.IndexBuilds[j].IndexID)
			require.Equal(t, layout.SnapkeepBuildPrefix(coll.Id, s.ID, b.BuildID), js.IndexBuilds[j].Prefix)
			requireSameFiles(t, b.Files, js.IndexBuilds[j].Files, js.IndexBuilds[j].Prefix)
		}
	}
}

// requireSameFiles: the snapkeep layout's paths are the owner's prefix + the kept key.
func requireSameFiles(t *testing.T, blob []byte, got []jsonFile, prefix string) {
	t.Helper()
	entries, err := filelist.Decode(blob)
	require.NoError(t, err)
	require.Len(t, got, len(entries))
	for i, e := range entries {
		require.Equal(t, jsonFile{Key: e.Key, Path: prefix + e.Key, Kind: kindName(e.Kind), FieldID: e.FieldID, Size: e.Size, CRC32C: e.CRC32C}, got[i])
	}
}

func TestEmptyManifest(t *testing.T) {
	p := newPool(t, 1, 300)
	hdr := headerFor(p.coll, 5)
	data, res := writeManifest(t, hdr, nil, WriterOptions{})
	require.Zero(t, res.Blocks)
	require.Equal(t, Summary{}, res.Summary)
	rd, err := Open(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Empty(t, readSegments(t, rd, ReadOptions{}))
	require.Empty(t, readSegments(t, rd, ReadOptions{Partitions: []uint64{hdr.Partitions[1].Id}}))
	rep, err := Verify(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Equal(t, 3, rep.Checksums)
	var out bytes.Buffer
	require.NoError(t, Dump(&out, rd))
	require.True(t, json.Valid(out.Bytes()), out.String())

	// The smallest manifest: an empty header.
	data, _ = writeManifest(t, &manifestpb.Header{}, nil, WriterOptions{})
	_, err = Verify(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
}

// recordingReaderAt records every range read.
type recordingReaderAt struct {
	r     io.ReaderAt
	mu    sync.Mutex
	reads [][2]int64 // offset, length
}

func (r *recordingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.reads = append(r.reads, [2]int64{off, int64(len(p))})
	r.mu.Unlock()
	return r.r.ReadAt(p, off)
}

// TestPartitionFilterReadsOnlyItsBlocks checks that a filtered read fetches exactly
// the blocks of the selected partitions, each once, and nothing else; and that Open
// reads only the two ends of a large manifest.
func TestPartitionFilterReadsOnlyItsBlocks(t *testing.T) {
	p := newPool(t, 1, 300)
	rng := rand.New(rand.NewPCG(3, 3))
	segs := p.randomSegments(rng, 3000)
	hdr := headerFor(p.coll, 6)
	data, _ := writeManifest(t, hdr, segs, WriterOptions{BlockSize: 16 << 10})
	rec := &recordingReaderAt{r: bytes.NewReader(data)}
	rd, err := Open(rec, int64(len(data)))
	require.NoError(t, err)
	require.Greater(t, len(data), 2*tailRead)
	require.Len(t, rec.reads, 2, "Open reads the tail, then the header")
	require.Equal(t, [2]int64{int64(len(data)) - tailRead, tailRead}, rec.reads[0])
	require.Equal(t, int64(0), rec.reads[1][0])

	for _, part := range hdr.Partitions {
		rec.reads = nil
		got := readSegments(t, rd, ReadOptions{Partitions: []uint64{part.Id}, Parallelism: 3})
		require.Equal(t, inPartitions(segs, []uint64{part.Id}), got)
		var want [][2]int64
		for _, b := range rd.Blocks() {
			if b.PartitionID == part.Id {
				want = append(want, [2]int64{b.Offset, b.CompressedSize})
			}
		}
		slices.SortFunc(rec.reads, func(a, b [2]int64) int { return int(a[0] - b[0]) })
		require.Equal(t, want, rec.reads, "partition %d", part.Id)
	}

	err = rd.Segments(context.Background(), ReadOptions{Partitions: []uint64{123456789}}, func(*Segment) error { return nil })
	require.ErrorContains(t, err, "partition 123456789 is not in this manifest")
}

// TestSegmentsStops checks that an error from fn or a cancelled context stops
// Segments at once, returns that error, and leaves no goroutine behind.
func TestSegmentsStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := newPool(t, 1, 300)
	segs := p.randomSegments(rand.New(rand.NewPCG(4, 4)), 2000)
	data, res := writeManifest(t, headerFor(p.coll, 7), segs, WriterOptions{BlockSize: 1024})
	require.Greater(t, res.Blocks, 50)
	rd, err := Open(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)

	for _, par := range []int{1, 2, 8} {
		stop := errors.New("enough")
		calls := 0
		err := rd.Segments(context.Background(), ReadOptions{Parallelism: par}, func(s *Segment) error {
			calls++
			if calls == 100 {
				return stop
			}
			return nil
		})
		require.ErrorIs(t, err, stop)
		require.Equal(t, stop, err, "fn's error comes back as is")
		require.Equal(t, 100, calls)

		ctx, cancel := context.WithCancel(context.Background())
		calls = 0
		err = rd.Segments(ctx, ReadOptions{Parallelism: par}, func(s *Segment) error {
			calls++
			if calls == 100 {
				cancel()
			}
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		require.Less(t, calls, len(segs))
		cancel()
	}
}

// TestConcurrentReads reads one Reader from several goroutines at once.
func TestConcurrentReads(t *testing.T) {
	p := newPool(t, 1, 300)
	segs := p.randomSegments(rand.New(rand.NewPCG(5, 5)), 1000)
	data, _ := writeManifest(t, headerFor(p.coll, 8), segs, WriterOptions{BlockSize: 4096})
	rd, err := Open(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			var got []Segment
			err := rd.Segments(context.Background(), ReadOptions{Parallelism: i + 1}, func(s *Segment) error {
				got = append(got, *s)
				return nil
			})
			if !(err == nil && slices.EqualFunc(segs, got, segmentEqual)) {
				t.Errorf("reader %d: err %v, %d of %d segments", i, err, len(got), len(segs))
			}
		})
	}
	wg.Wait()
}

func segmentEqual(a, b Segment) bool {
	return a.ID == b.ID && a.PartitionID == b.PartitionID && a.RowCount == b.RowCount && bytes.Equal(a.Files, b.Files) &&
		slices.EqualFunc(a.IndexBuilds, b.IndexBuilds, func(x, y IndexBuild) bool {
			return x.BuildID == y.BuildID && x.IndexID == y.IndexID && bytes.Equal(x.Files, y.Files)
		})
}

// TestWriterRejects checks every input the writer refuses, and that a refused segment
// changes nothing.
func TestWriterRejects(t *testing.T) {
	p := newPool(t, 1, 300)
	hdr := headerFor(p.coll, 9)
	part1, part2 := hdr.Partitions[0].Id, hdr.Partitions[1].Id
	ix := hdr.Indexes[0].Id
	good := p.segments[1].Files

	_, err := NewWriter(io.Discard, nil, WriterOptions{})
	require.ErrorContains(t, err, "a header is required")
	_, err = NewWriter(io.Discard, hdr, WriterOptions{BlockSize: -1})
	require.ErrorContains(t, err, "block size -1 is out of range")
	_, err = NewWriter(io.Discard, hdr, WriterOptions{BlockSize: MaxBlockBytes + 1})
	require.ErrorContains(t, err, "out of range")
	_, err = NewWriter(io.Discard, hdr, WriterOptions{Level: 42})
	require.ErrorContains(t, err, "unknown zstd level 42")
	dup := proto.CloneOf(hdr)
	dup.Partitions = append(dup.Partitions, dup.Partitions[0])
	_, err = NewWriter(io.Discard, dup, WriterOptions{})
	require.ErrorContains(t, err, "listed twice")
	noID := proto.CloneOf(hdr)
	noID.Indexes[0].Id = 0
	_, err = NewWriter(io.Discard, noID, WriterOptions{})
	require.ErrorContains(t, err, "has no id")
	huge := proto.CloneOf(hdr)
	huge.Schema = make([]byte, MaxHeaderBytes)
	_, err = NewWriter(io.Discard, huge, WriterOptions{})
	require.ErrorContains(t, err, "the limit is")

	var buf bytes.Buffer
	w, err := NewWriter(&buf, hdr, WriterOptions{BlockSize: 1})
	require.NoError(t, err)
	accepted := []Segment{{ID: 10, PartitionID: part1, RowCount: 5, Files: good}}
	require.NoError(t, w.Add(&accepted[0]))
	for _, tc := range []struct {
		seg  *Segment
		want string
	}{
		{nil, "nil segment"},
		{&Segment{ID: 0, PartitionID: part1}, "segment id 0 is not valid"},
		{&Segment{ID: 11, PartitionID: part1, RowCount: -1}, "row count -1 is negative"},
		{&Segment{ID: 11, PartitionID: 77777}, "partition 77777 is not in the header"},
		{&Segment{ID: 10, PartitionID: part1}, "must come in (partition id, segment id) order"},
		{&Segment{ID: 9, PartitionID: part1}, "must come in (partition id, segment id) order"},
		{&Segment{ID: 11, PartitionID: part1, Files: []byte{1, 1, 1}}, "segment 11: file list: corrupt file list"},
		{&Segment{ID: 11, PartitionID: part1, Files: []byte{9}}, "file list: corrupt file list: version 9"},
		{&Segment{ID: 11, PartitionID: part1, IndexBuilds: []IndexBuild{{BuildID: 3, IndexID: 4242}}}, "index 4242 is not in the header"},
		{&Segment{ID: 11, PartitionID: part1, IndexBuilds: []IndexBuild{{BuildID: 3, IndexID: ix, Files: good[:len(good)-1]}}}, "index build 3: file list"},
	} {
		err := w.Add(tc.seg)
		require.ErrorContains(t, err, tc.want)
	}
	last := Segment{ID: 11, PartitionID: part1, RowCount: 7}
	require.NoError(t, w.Add(&last), "the writer goes on after rejections")
	next := Segment{ID: 5, PartitionID: part2, RowCount: 1}
	require.NoError(t, w.Add(&next), "a new partition starts over")
	require.ErrorContains(t, w.Add(&Segment{ID: 12, PartitionID: part1}), "segment 12 of partition")
	accepted = append(accepted, last, next)
	res, err := w.Close()
	require.NoError(t, err)
	require.Equal(t, expectedSummary(t, accepted), res.Summary)
	require.ErrorContains(t, w.Add(&Segment{ID: 12, PartitionID: part1}), "Add after Close")
	_, err = w.Close()
	require.ErrorContains(t, err, "Close called twice")

	rd, err := Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	require.Equal(t, accepted, readSegments(t, rd, ReadOptions{}))
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	n := min(len(p), f.after)
	f.after -= n
	if n < len(p) {
		return n, errors.New("disk full")
	}
	return n, nil
}

func TestWriteErrorIsFinal(t *testing.T) {
	p := newPool(t, 1, 300)
	hdr := headerFor(p.coll, 10)
	_, err := NewWriter(&failingWriter{after: 5}, hdr, WriterOptions{})
	require.ErrorContains(t, err, "disk full")

	var head bytes.Buffer
	_, err = NewWriter(&head, hdr, WriterOptions{})
	require.NoError(t, err)
	w, err := NewWriter(&failingWriter{after: head.Len() + 500}, hdr, WriterOptions{BlockSize: 1})
	require.NoError(t, err)
	var werr error
	for i := range 100 {
		if werr = w.Add(&Segment{ID: uint64(i + 1), PartitionID: hdr.Partitions[0].Id, Files: p.segments[i].Files}); werr != nil {
			break
		}
	}
	require.ErrorContains(t, werr, "disk full")
	require.ErrorContains(t, w.Add(&Segment{ID: 1000, PartitionID: hdr.Partitions[0].Id}), "disk full")
	_, err = w.Close()
	require.ErrorContains(t, err, "disk full")
}

// TestDeterministic: the same input gives the same bytes (the manifest is a pure
// function of the FSM state, and a new leader may rewrite it).
func TestDeterministic(t *testing.T) {
	p := newPool(t, 1, 300)
	segs := p.randomSegments(rand.New(rand.NewPCG(6, 6)), 500)
	a, _ := writeManifest(t, headerFor(p.coll, 11), segs, WriterOptions{})
	b, _ := writeManifest(t, headerFor(p.coll, 11), segs, WriterOptions{})
	require.Equal(t, a, b)
}

func TestSummaryToFSM(t *testing.T) {
	s := Summary{Segments: 2, Rows: 3, IndexBuilds: 1, Files: 5, Bytes: 60,
		ByKind: []KindTotals{{Kind: fsmpb.FileKind_FILE_KIND_INSERT, Files: 4, Bytes: 50}, {Kind: fsmpb.FileKind_FILE_KIND_INDEX, Files: 1, Bytes: 10}}}
	want := &fsmpb.SnapshotSummary{Segments: 2, Rows: 3, IndexBuilds: 1, Files: 5, Bytes: 60, ByKind: []*fsmpb.KindTotals{
		{Kind: fsmpb.FileKind_FILE_KIND_INSERT, Files: 4, Bytes: 50}, {Kind: fsmpb.FileKind_FILE_KIND_INDEX, Files: 1, Bytes: 10}}}
	require.True(t, proto.Equal(want, s.SnapshotSummary()))
}

// A Milvus-layout manifest is format version 2 at both ends (a version-1 reader
// refuses it rather than take its file lists for snapkeep keys), names its layout in
// the header, and Files builds Milvus keys from the kept forms.
func TestMilvusLayoutManifest(t *testing.T) {
	coll := &fsmpb.Collection{Id: 7, Name: "mv", Partitions: []*fsmpb.Partition{{Id: 8, Name: "_default"}},
		Indexes: []*fsmpb.IndexDef{{Id: 9, Name: "vec", FieldId: 101}}}
	hdr := headerFor(coll, 1)
	hdr.KeyLayout = manifestpb.KeyLayout_KEY_LAYOUT_MILVUS
	ref := layout.Segment{Collection: 7, Partition: 8, Segment: 10}
	insertRel, err := layout.Milvus.SegmentFileRel(ref, &fsmpb.File{Key: "insert_log/7/8/10/101/5", Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldId: 101})
	require.NoError(t, err)
	buildRel, err := layout.Milvus.BuildFileRel(layout.Build{Segment: ref, Build: 11}, &fsmpb.File{Key: "index_files/11/1/8/10/HNSW_0", Kind: fsmpb.FileKind_FILE_KIND_INDEX})
	require.NoError(t, err)
	files, err := filelist.Encode([]filelist.Entry{{Key: insertRel, Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldID: 101, Size: 5}})
	require.NoError(t, err)
	buildFiles, err := filelist.Encode([]filelist.Entry{{Key: buildRel, Kind: fsmpb.FileKind_FILE_KIND_INDEX, Size: 6}})
	require.NoError(t, err)
	seg := Segment{ID: 10, PartitionID: 8, RowCount: 3, Files: files, IndexBuilds: []IndexBuild{{BuildID: 11, IndexID: 9, Files: buildFiles}}}
	data, _ := writeManifest(t, hdr, []Segment{seg}, WriterOptions{})
	v1, v2 := versionPositions(data)
	require.EqualValues(t, 2, data[v1])
	require.EqualValues(t, 2, data[v2])

	rd, err := Open(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Equal(t, 2, rd.Version())
	require.Equal(t, layout.Milvus, rd.Layout())
	var keys []string
	require.NoError(t, rd.Segments(context.Background(), ReadOptions{}, func(s *Segment) error {
		return rd.Files(s, func(key string, _ filelist.Entry) bool { keys = append(keys, key); return true })
	}))
	require.Equal(t, []string{"insert_log/7/8/10/101/5", "index_files/11/1/8/10/HNSW_0"}, keys)

	// The same bytes with version 1 at both ends are refused: a snapkeep-layout
	// manifest carries no layout.
	old := bytes.Clone(data)
	old[v1], old[v2] = 1, 1
	_, err = Open(bytes.NewReader(old), int64(len(old)))
	require.ErrorIs(t, err, ErrCorrupt)
}
