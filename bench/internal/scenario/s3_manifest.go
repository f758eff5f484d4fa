package scenario

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/bench/internal/baseline"
	"github.com/snapkeep/snapkeep/bench/internal/report"
	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
	"github.com/snapkeep/snapkeep/objstore"
)

// S3Manifest is scenario 3: the manifest of one collection in snapkeep's format,
// as Avro objects per segment + JSON, and as one zstd-compressed protobuf message —
// bytes, encode time, decode rate — and reading a 10k-segment snapshot's whole
// manifest back from S3.
var S3Manifest = Scenario{Number: 3, Name: "manifest", Title: "Manifest: bytes, encode, decode and read-back from S3", Run: runManifest}

// readBackSegments is the size of the snapshot read back from S3.
const readBackSegments = 10_000

// manifestCollection is a collection built through an in-process FSM, so its file
// lists are the catalog's own blobs, as the snapshot finisher meets them.
type manifestCollection struct {
	hdr      *manifestpb.Header
	segs     []manifest.Segment // in manifest order: (partition, id)
	baseline []baseline.Segment // the same segments, same order
	desc     baseline.CollectionDescription
	files    int
}

// buildManifestCollection applies CreateCollection and n × (AllocateSegment,
// FlushSegment) commands to a fresh FSM — the commands the cluster would apply for
// the same client calls — with baseline.MilvusSegment's files, spread over four
// partitions.
func buildManifestCollection(n int) (*manifestCollection, error) {
	f := fsm.New(nil)
	var index uint64
	now := time.Now().UnixNano()
	apply := func(cmd, resp proto.Message) error {
		data, err := fsm.EncodeCommand("", now, cmd)
		if err != nil {
			return err
		}
		index++
		now += 1000
		res := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}).(*fsm.ApplyResult)
		if err := res.Err(); err != nil {
			return fmt.Errorf("%T: %w", cmd, err)
		}
		if resp != nil {
			return proto.Unmarshal(res.Result.Response, resp)
		}
		return nil
	}
	const name = "manifest"
	if err := apply(&fsmpb.CreateCollection{Name: name, Schema: []byte("schema of " + name), Partitions: []string{"p1", "p2", "p3"},
		Properties: map[string]string{"collection.ttl.seconds": "86400"}}, nil); err != nil {
		return nil, err
	}
	coll, _, err := f.View().Collection("", name)
	if err != nil {
		return nil, err
	}
	mc := &manifestCollection{}
	parts := map[string]int64{}
	for i := range n {
		p := coll.Partitions[i%len(coll.Partitions)]
		parts[p.Name] = int64(p.Id)
		var resp fsmpb.SegmentResponse
		if err := apply(&fsmpb.AllocateSegment{Collection: name, Partition: p.Name, Lease: int64(time.Hour)}, &resp); err != nil {
			return nil, err
		}
		id := resp.Segment.Id
		seg := baseline.MilvusSegment(coll.Id, p.Id, id)
		prefix := layout.SnapkeepSegmentPrefix(coll.Id, id)
		files := make([]*fsmpb.File, 0, len(seg.Files))
		for _, sf := range seg.Files {
			pf := snapkeepFile(prefix, sf)
			files = append(files, &fsmpb.File{Key: pf.Key, Kind: fsmpb.FileKind(pf.Kind), FieldId: pf.FieldId, Size: pf.Size, Crc32C: pf.Crc32C})
		}
		if err := apply(&fsmpb.FlushSegment{SegmentId: id, RowCount: seg.Rows, Files: files}, &resp); err != nil {
			return nil, err
		}
		mc.segs = append(mc.segs, manifest.Segment{ID: id, PartitionID: p.Id, RowCount: seg.Rows, Files: resp.Segment.Files})
		mc.baseline = append(mc.baseline, seg)
		mc.files += len(seg.Files)
	}
	order := func(a, b uint64, x, y uint64) int { return cmp.Or(cmp.Compare(a, b), cmp.Compare(x, y)) }
	slices.SortFunc(mc.segs, func(a, b manifest.Segment) int { return order(a.PartitionID, b.PartitionID, a.ID, b.ID) })
	slices.SortFunc(mc.baseline, func(a, b baseline.Segment) int { return order(a.PartitionID, b.PartitionID, a.ID, b.ID) })
	// The header as the finisher writes it (server/finisher/manifest.go manifestHeader).
	mc.hdr = &manifestpb.Header{SnapshotId: 1 << 40, SnapshotName: "bench", CollectionId: coll.Id, CollectionName: coll.Name,
		DatabaseId: coll.DatabaseId, DatabaseName: "default", CreatedAt: now, CapturedIndex: index,
		Description: "nightly snapshot", Schema: coll.Schema, Properties: coll.Properties, Writer: "snapkeep"}
	for _, p := range coll.Partitions {
		mc.hdr.Partitions = append(mc.hdr.Partitions, &manifestpb.Partition{Id: p.Id, Name: p.Name, CreatedAt: p.CreatedAt})
	}
	mc.desc = baseline.TestCollection(coll.Id, name, parts)
	return mc, nil
}

// subset is the collection's first n segments (in manifest order).
func (mc *manifestCollection) subset(n int) *manifestCollection {
	return &manifestCollection{hdr: mc.hdr, segs: mc.segs[:n], baseline: mc.baseline[:n], desc: mc.desc, files: 8 * n}
}

// encodeSnapkeep writes the manifest as the finisher does (default options).
func (mc *manifestCollection) encodeSnapkeep() ([]byte, error) {
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, mc.hdr, manifest.WriterOptions{})
	if err != nil {
		return nil, err
	}
	for i := range mc.segs {
		if err := w.Add(&mc.segs[i]); err != nil {
			return nil, err
		}
	}
	if _, err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeSnapkeep reads every segment (GOMAXPROCS workers) and walks every file
// record, as a restore does; it returns the file records seen.
func decodeSnapkeep(ctx context.Context, data []byte) (int, error) {
	rd, err := manifest.Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	files := 0
	err = rd.Segments(ctx, manifest.ReadOptions{}, func(s *manifest.Segment) error {
		n := 0
		if err := filelist.ForEach(s.Files, func(filelist.Entry) bool { n++; return true }); err != nil {
			return err
		}
		mu.Lock()
		files += n
		mu.Unlock()
		return nil
	})
	return files, err
}

// avroObjects are the baseline's objects for a snapshot: an Avro record per segment
// and the metadata JSON.
type avroObjects struct {
	entries [][]byte
	json    []byte
}

func (o *avroObjects) size() int64 {
	n := int64(len(o.json))
	for _, e := range o.entries {
		n += int64(len(e))
	}
	return n
}

// encodeAvro converts and encodes every segment on GOMAXPROCS workers (Milvus
// encodes each segment in its writer pool), then the metadata JSON.
func (mc *manifestCollection) encodeAvro(ctx context.Context, bl *baseline.Baseline) (*avroObjects, error) {
	out := &avroObjects{entries: make([][]byte, len(mc.baseline))}
	md := baseline.Metadata{FormatVersion: 1, Collection: mc.desc, ManifestList: make([]string, len(mc.baseline)), SegmentIDs: make([]int64, len(mc.baseline)), IndexIDs: []int64{}}
	err := parallelFor(ctx, len(mc.baseline), func(i int) error {
		s := mc.baseline[i]
		b, err := baseline.EncodeEntry(baseline.EntryOf(s, bl.Root))
		out.entries[i] = b
		md.ManifestList[i] = bl.ManifestKey(md.Collection.ID, 1<<40, int64(s.ID))
		md.SegmentIDs[i] = int64(s.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.json, err = json.Marshal(&md); err != nil {
		return nil, err
	}
	return out, nil
}

// decodeAvro decodes the metadata JSON and every Avro record (GOMAXPROCS workers)
// and returns the file records seen.
func decodeAvro(ctx context.Context, o *avroObjects) (int, error) {
	var md baseline.Metadata
	if err := json.Unmarshal(o.json, &md); err != nil {
		return 0, err
	}
	counts := make([]int, len(o.entries))
	err := parallelFor(ctx, len(o.entries), func(i int) error {
		e, err := baseline.DecodeEntry(o.entries[i])
		if err != nil {
			return err
		}
		counts[i] = e.FileCount()
		return nil
	})
	files := 0
	for _, c := range counts {
		files += c
	}
	return files, err
}

// parallelFor runs fn(i) for i in [0, n) on GOMAXPROCS goroutines, in contiguous
// chunks; the first error is returned.
func parallelFor(ctx context.Context, n int, fn func(i int) error) error {
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * n / workers; i < (w+1)*n/workers; i++ {
				if err := fn(i); err != nil {
					errs[w] = err
					return
				}
				if i%1024 == 0 && ctx.Err() != nil {
					errs[w] = ctx.Err()
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func runManifest(ctx context.Context, e *Env, r *report.Scenario) error {
	n := e.Pick(100_000, readBackSegments)
	rounds := e.Pick(5, 3)
	readRounds := e.Pick(3, 2)

	t0 := time.Now()
	mc, err := buildManifestCollection(n)
	if err != nil {
		return fmt.Errorf("build the collection: %w", err)
	}
	e.Logf("  %d segments applied to an in-process FSM in %v", n, time.Since(t0).Round(time.Millisecond))
	bl := &baseline.Baseline{Store: e.S3.Store, Root: "s3-baseline"}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	defer enc.Close()
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	defer dec.Close()

	// A B C rounds: snapkeep, Avro + JSON, protobuf + zstd.
	var skEnc, avEnc, pbEnc, skDec, avDec, pbDec []float64
	var skBytes, avBytes, pbBytes int64
	records := float64(mc.files)
	for round := range rounds {
		t := time.Now()
		skData, err := mc.encodeSnapkeep()
		if err != nil {
			return fmt.Errorf("snapkeep encode: %w", err)
		}
		skEnc = append(skEnc, msSince(t))
		t = time.Now()
		files, err := decodeSnapkeep(ctx, skData)
		if err != nil || files != mc.files {
			return fmt.Errorf("snapkeep decode: %d of %d files: %w", files, mc.files, err)
		}
		skDec = append(skDec, records/time.Since(t).Seconds())
		skBytes = int64(len(skData))

		t = time.Now()
		av, err := mc.encodeAvro(ctx, bl)
		if err != nil {
			return fmt.Errorf("avro encode: %w", err)
		}
		avEnc = append(avEnc, msSince(t))
		t = time.Now()
		files, err = decodeAvro(ctx, av)
		if err != nil || files != mc.files {
			return fmt.Errorf("avro decode: %d of %d files: %w", files, mc.files, err)
		}
		avDec = append(avDec, records/time.Since(t).Seconds())
		avBytes = av.size()

		t = time.Now()
		entries := make([]*baseline.ManifestEntry, len(mc.baseline))
		for i, s := range mc.baseline {
			entries[i] = baseline.EntryOf(s, bl.Root)
		}
		pbData := baseline.EncodeProtoZstd(enc, entries)
		pbEnc = append(pbEnc, msSince(t))
		t = time.Now()
		got, err := baseline.DecodeProtoZstd(dec, pbData)
		if err != nil {
			return fmt.Errorf("protobuf decode: %w", err)
		}
		files = 0
		for _, e := range got {
			files += e.FileCount()
		}
		if files != mc.files {
			return fmt.Errorf("protobuf decode: %d of %d files", files, mc.files)
		}
		pbDec = append(pbDec, records/time.Since(t).Seconds())
		pbBytes = int64(len(pbData))
		e.Logf("  round %d: encode %.0f / %.0f / %.0f ms, decode %.2g / %.2g / %.2g records/s (snapkeep / avro / pb+zstd)",
			round, skEnc[round], avEnc[round], pbEnc[round], skDec[round], avDec[round], pbDec[round])
		runtime.GC() // each round starts from the same heap
	}

	label := kilo(n) + " segments × 8 files"
	const avro, pbz = "Avro per segment + JSON", "one protobuf + zstd"
	r.Comparisons = append(r.Comparisons,
		report.NewComparison("manifest bytes, "+label, "bytes", report.Lower, []float64{float64(skBytes)}, avro, []float64{float64(avBytes)},
			&report.Target{Op: "<=", Ratio: 0.15, Text: "≤ 0.15× the baseline's bytes"}),
		report.NewComparison("manifest bytes, "+label, "bytes", report.Lower, []float64{float64(skBytes)}, pbz, []float64{float64(pbBytes)}, nil),
		report.NewComparison("encode, "+label, "ms", report.Lower, skEnc, avro, avEnc, nil),
		report.NewComparison("encode, "+label, "ms", report.Lower, skEnc, pbz, pbEnc, nil),
		report.NewComparison("decode (CPU), "+label, "file records/s", report.Higher, skDec, avro, avDec,
			&report.Target{Op: ">=", Ratio: 1.5, Text: "≥ 1.5× Avro's records/s"}),
		report.NewComparison("decode (CPU), "+label, "file records/s", report.Higher, skDec, pbz, pbDec, nil))
	for _, f := range []struct {
		name  string
		bytes int64
	}{{"snapkeep", skBytes}, {avro, avBytes}, {pbz, pbBytes}} {
		r.Figures = append(r.Figures, report.Figure{Name: f.name + ": bytes per file record", Value: float64(f.bytes) / records, Unit: "B"})
	}

	// Reading a 10k-segment snapshot's whole manifest back from S3.
	sub := mc.subset(min(readBackSegments, n))
	skData, err := sub.encodeSnapkeep()
	if err != nil {
		return err
	}
	skKey := fmt.Sprintf("s3-snapkeep/snapshots/%d.skm", sub.hdr.SnapshotId)
	if _, err := e.S3.Store.Put(ctx, skKey, bytes.NewReader(skData), int64(len(skData)), objstore.PutOptions{}); err != nil {
		return fmt.Errorf("put %s: %w", skKey, err)
	}
	t := time.Now()
	const snapID = 1 << 40
	info := baseline.TestSnapshotInfo(snapID, sub.desc.ID, "bench", nil)
	if _, err := bl.WriteObjects(ctx, info, sub.desc, nil, sub.baseline); err != nil {
		return fmt.Errorf("baseline objects: %w", err)
	}
	e.Logf("  baseline wrote %d objects in %v", len(sub.baseline)+1, time.Since(t).Round(time.Millisecond))
	var skRead, blRead []float64
	for round := range readRounds {
		t := time.Now()
		files, err := readBackSnapkeep(ctx, e.S3.Store, skKey)
		if err != nil || files != sub.files {
			return fmt.Errorf("snapkeep read-back: %d of %d files: %w", files, sub.files, err)
		}
		skRead = append(skRead, msSince(t))
		t = time.Now()
		res, err := bl.ReadBack(ctx, sub.desc.ID, snapID)
		if err != nil || res.Files != sub.files {
			return fmt.Errorf("baseline read-back: %d of %d files: %w", res.Files, sub.files, err)
		}
		blRead = append(blRead, msSince(t))
		e.Logf("  read-back round %d: snapkeep %.1f ms, baseline %.0f ms (%d objects)", round, skRead[round], blRead[round], res.Objects)
	}
	r.Comparisons = append(r.Comparisons, report.NewComparison(fmt.Sprintf("read a %s-segment snapshot's manifest back from S3", kilo(len(sub.segs))), "ms", report.Lower,
		skRead, "etcd + Avro (1 + "+fmt.Sprint(len(sub.segs))+" GETs)", blRead, &report.Target{Op: "<=", Ratio: 1.0 / 50, Text: "≥ 50× faster end to end"}))

	r.Setup = fmt.Sprintf("One collection of %s segments × 8 Milvus-shaped files in four partitions, built by applying the cluster's own commands (CreateCollection, AllocateSegment, FlushSegment) to an in-process FSM, so snapkeep's manifest holds the catalog's own file-list blobs. "+
		"**snapkeep**: the `manifest` package's writer with the finisher's options and header, segments in (partition, id) order, into memory; decode opens it and reads every segment with GOMAXPROCS (%d) workers, walking every file record (as a restore does). "+
		"**Avro per segment + JSON** (the baseline): each segment converted to its Avro record (full Milvus paths `<root>/insert_log/<collection>/<partition>/<segment>/<field>/<log id>`) and encoded with hamba/avro v2.31.0 on %d workers, plus the metadata JSON; decode parses the JSON and every record on %d workers. "+
		"**One protobuf + zstd**: the same records as one protobuf message (hand-encoded with protowire), one zstd frame (klauspost, default level); decoded on one core (one frame). "+
		"Records are file records (8 per segment); times are CPU-bound, %d rounds A B C. "+
		"**Read-back**: a %s-segment snapshot in the shared versitygw (posix backend, no fsync on PUT: an upper bound on real object storage): snapkeep one GET of its manifest + decode; the baseline GETs the metadata JSON and then every Avro object (%d in flight) and decodes them, %d rounds A B.",
		kilo(n), runtime.GOMAXPROCS(0), runtime.GOMAXPROCS(0), runtime.GOMAXPROCS(0), rounds, kilo(len(sub.segs)), baseline.DefaultParallelism, readRounds)
	return nil
}

// readBackSnapkeep GETs a manifest and decodes it whole; it returns the file records.
func readBackSnapkeep(ctx context.Context, store objstore.Store, key string) (int, error) {
	rc, info, err := store.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	buf := bytes.NewBuffer(make([]byte, 0, info.Size))
	if _, err := io.Copy(buf, rc); err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	return decodeSnapkeep(ctx, buf.Bytes())
}
