package manifest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
)

// Reader reads a manifest through an io.ReaderAt (an object store's range reads, a
// file, a byte slice). Open reads and checks the header and the footer; Segments reads
// and checks the blocks it needs, when it needs them.
//
// A Reader is safe for concurrent use: it never changes after Open, and Segments may
// run several times at once (the io.ReaderAt must allow concurrent ReadAt calls, as
// its contract requires).
type Reader struct {
	r    io.ReaderAt
	size int64

	header     *manifestpb.Header
	version    byte // the format version
	partitions map[uint64]bool
	indexes    map[uint64]bool
	blocks     []BlockInfo
	summary    Summary

	bodyOffset     int64
	footerOffset   int64
	headerChecksum uint64
	bodyChecksum   uint64
	footerChecksum uint64
}

// Open reads a manifest's trailer, footer and header — usually with one range read at
// the end and one at the start — and checks their checksums and that they agree with
// each other. Bad bytes give an error wrapping ErrCorrupt; a newer format gives one
// wrapping ErrUnsupportedVersion; an error of r is returned wrapped as is.
func Open(r io.ReaderAt, size int64) (*Reader, error) {
	if size < int64(minSize) {
		return nil, corruptf("trailer: the object is %d bytes long, too short for a manifest (at least %d)", size, minSize)
	}
	n := min(size, tailRead)
	tail := make([]byte, n)
	if err := readAt(r, tail, size-n, size); err != nil {
		return nil, err
	}
	tailOff := size - n

	// Trailer: footer length, version, magic.
	tr := tail[n-int64(trailerLen):]
	trOff := size - int64(trailerLen)
	if string(tr[5:]) != Magic {
		return nil, corruptf("trailer at offset %d: no manifest magic at the end (not a snapkeep manifest, or truncated)", trOff)
	}
	if err := checkVersion(fmt.Sprintf("the trailer at offset %d", trOff), tr[4]); err != nil {
		return nil, err
	}
	footerLen := int64(binary.LittleEndian.Uint32(tr))
	footerOff := trOff - sumLen - footerLen
	if footerLen > MaxFooterBytes || footerOff < int64(prefixLen+sumLen) {
		return nil, corruptf("trailer at offset %d: a footer of %d bytes does not fit in a %d-byte manifest", trOff, footerLen, size)
	}

	// Footer and its checksum.
	var fb []byte
	if footerOff >= tailOff {
		fb = tail[footerOff-tailOff : trOff-tailOff]
	} else {
		fb = make([]byte, footerLen+sumLen)
		if err := readAt(r, fb, footerOff, size); err != nil {
			return nil, err
		}
	}
	footerBytes := fb[:footerLen]
	footerSum := xxhash.Sum64(footerBytes)
	if footerSum != binary.LittleEndian.Uint64(fb[footerLen:]) {
		return nil, corruptf("footer at offset %d (%d bytes): checksum mismatch", footerOff, footerLen)
	}
	var footer manifestpb.Footer
	if err := proto.Unmarshal(footerBytes, &footer); err != nil {
		return nil, corruptf("footer at offset %d: %v", footerOff, err)
	}

	// Header: magic, version, length, protobuf, checksum.
	bodyOff := footer.BodyOffset
	if bodyOff < uint64(prefixLen+sumLen) || bodyOff > uint64(footerOff) || bodyOff-uint64(prefixLen+sumLen) > MaxHeaderBytes {
		return nil, corruptf("footer at offset %d: body offset %d is out of range", footerOff, bodyOff)
	}
	var hb []byte
	if tailOff == 0 {
		hb = tail[:bodyOff]
	} else {
		hb = make([]byte, bodyOff)
		if err := readAt(r, hb, 0, size); err != nil {
			return nil, err
		}
	}
	if string(hb[:len(Magic)]) != Magic {
		return nil, corruptf("header at offset 0: no manifest magic (not a snapkeep manifest)")
	}
	version := hb[len(Magic)]
	if err := checkVersion("the header", version); err != nil {
		return nil, err
	}
	if version != tr[4] {
		return nil, corruptf("the header says format version %d, the trailer %d", version, tr[4])
	}
	hdrLen := uint64(binary.LittleEndian.Uint32(hb[len(Magic)+1:]))
	if hdrLen != bodyOff-uint64(prefixLen+sumLen) {
		return nil, corruptf("header: its length %d disagrees with the footer's body offset %d", hdrLen, bodyOff)
	}
	sumOff := int64(prefixLen) + int64(hdrLen)
	headerSum := xxhash.Sum64(hb[:sumOff])
	if headerSum != binary.LittleEndian.Uint64(hb[sumOff:]) {
		return nil, corruptf("header (%d bytes at offset 0): checksum mismatch", bodyOff)
	}
	if footer.HeaderChecksum != headerSum {
		return nil, corruptf("footer at offset %d: its header checksum does not match the header (a header and a footer of different manifests?)", footerOff)
	}
	header := &manifestpb.Header{}
	if err := proto.Unmarshal(hb[prefixLen:sumOff], header); err != nil {
		return nil, corruptf("header: %v", err)
	}
	parts, indexes, err := validateHeader(header)
	if err != nil {
		return nil, corruptf("header: %v", err)
	}
	if want := versionFor(header); version != want {
		return nil, corruptf("header: a manifest of key layout %s (segment metadata %t) is format version %d, not %d", header.KeyLayout, header.SegmentMeta, want, version)
	}
	rd := &Reader{
		r: r, size: size, header: header, partitions: parts, indexes: indexes, version: version,
		bodyOffset: int64(bodyOff), footerOffset: footerOff,
		headerChecksum: headerSum, bodyChecksum: footer.BodyChecksum, footerChecksum: footerSum,
	}
	if err := rd.loadFooter(&footer); err != nil {
		return nil, err
	}
	return rd, nil
}

// loadFooter checks the block index and the summary: blocks tile the body, in
// (partition, segment id) order, with sizes and counts that are possible, adding up to
// the summary.
func (rd *Reader) loadFooter(f *manifestpb.Footer) error {
	sum, err := summaryFromProto(f.Summary)
	if err != nil {
		return err
	}
	var tot Summary
	next := uint64(rd.bodyOffset)
	end := uint64(rd.footerOffset)
	rd.blocks = make([]BlockInfo, 0, len(f.Blocks))
	for i, b := range f.Blocks {
		if b == nil {
			b = &manifestpb.Block{}
		}
		bad := func(format string, args ...any) error {
			return corruptf("footer: block %d at offset %d: %s", i, b.Offset, fmt.Sprintf(format, args...))
		}
		switch {
		case b.Offset != next:
			return bad("blocks must follow one another from offset %d; this one should start at %d", rd.bodyOffset, next)
		case b.CompressedSize == 0 || b.CompressedSize > end-next:
			return bad("compressed size %d does not fit before the footer at %d", b.CompressedSize, end)
		case b.UncompressedSize > MaxBlockBytes || b.UncompressedSize > b.CompressedSize*maxZstdExpansion:
			return bad("uncompressed size %d is impossible for %d compressed bytes", b.UncompressedSize, b.CompressedSize)
		case b.Segments == 0 || b.Segments > b.UncompressedSize/minRecordLen:
			return bad("%d segments cannot fit in %d bytes", b.Segments, b.UncompressedSize)
		case b.IndexBuilds > b.UncompressedSize/minBuildLen:
			return bad("%d index builds cannot fit in %d bytes", b.IndexBuilds, b.UncompressedSize)
		case b.FirstSegmentId == 0 || b.LastSegmentId < b.FirstSegmentId || b.LastSegmentId-b.FirstSegmentId < b.Segments-1 ||
			(b.Segments == 1 && b.FirstSegmentId != b.LastSegmentId):
			return bad("segment ids %d to %d do not hold %d segments", b.FirstSegmentId, b.LastSegmentId, b.Segments)
		case !rd.partitions[b.PartitionId]:
			return bad("partition %d is not in the header", b.PartitionId)
		case b.Rows > math.MaxInt64-uint64(tot.Rows):
			return bad("row count %d is out of range", b.Rows)
		}
		if i > 0 {
			p := rd.blocks[i-1]
			if b.PartitionId < p.PartitionID || (b.PartitionId == p.PartitionID && b.FirstSegmentId <= p.LastSegmentID) {
				return bad("partition %d segments %d-%d come after partition %d segments %d-%d, out of order",
					b.PartitionId, b.FirstSegmentId, b.LastSegmentId, p.PartitionID, p.FirstSegmentID, p.LastSegmentID)
			}
		}
		next += b.CompressedSize
		tot.Segments += b.Segments
		tot.Rows += int64(b.Rows)
		tot.Files += b.Files
		tot.Bytes += b.Bytes
		tot.IndexBuilds += b.IndexBuilds
		rd.blocks = append(rd.blocks, BlockInfo{
			Offset: int64(b.Offset), CompressedSize: int64(b.CompressedSize), UncompressedSize: int64(b.UncompressedSize),
			PartitionID: b.PartitionId, Segments: b.Segments, FirstSegmentID: b.FirstSegmentId, LastSegmentID: b.LastSegmentId,
			Rows: int64(b.Rows), Files: b.Files, Bytes: b.Bytes, IndexBuilds: b.IndexBuilds, Checksum: b.Checksum,
		})
	}
	if next != end {
		return corruptf("footer: the blocks end at offset %d, but the footer starts at %d", next, end)
	}
	if tot.Segments != sum.Segments || tot.Rows != sum.Rows || tot.Files != sum.Files || tot.Bytes != sum.Bytes || tot.IndexBuilds != sum.IndexBuilds {
		return corruptf("footer: the blocks hold %d segments, %d rows, %d files, %d bytes and %d index builds, but the summary says %d, %d, %d, %d and %d",
			tot.Segments, tot.Rows, tot.Files, tot.Bytes, tot.IndexBuilds, sum.Segments, sum.Rows, sum.Files, sum.Bytes, sum.IndexBuilds)
	}
	rd.summary = sum
	return nil
}

// readAt fills p from offset off of an object of size bytes.
func readAt(r io.ReaderAt, p []byte, off, size int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return corruptf("truncated: reading %d bytes at offset %d got %d; the object is shorter than its size %d", len(p), off, n, size)
	}
	return fmt.Errorf("manifest: read %d bytes at offset %d: %w", len(p), off, err)
}

// Header returns the manifest's header. The caller must not modify it.
func (rd *Reader) Header() *manifestpb.Header { return rd.header }

// Version is the manifest's format version.
func (rd *Reader) Version() int { return int(rd.version) }

// Layout is the key layout of the captured collection's files.
func (rd *Reader) Layout() layout.Layout {
	return layout.MustFor(fsmpb.KeyLayout(rd.header.GetKeyLayout()))
}

// Files calls fn with the key (relative to the storage root, built by the manifest's
// key layout) and the entry of every file of s, its index builds' included, until fn
// returns false. The error is a corrupt file list's, wrapping ErrCorrupt.
func (rd *Reader) Files(s *Segment, fn func(key string, e filelist.Entry) bool) error {
	l := rd.Layout()
	ref := layout.Segment{Collection: rd.header.GetCollectionId(), Partition: s.PartitionID, Segment: s.ID}
	goOn := true
	err := filelist.ForEach(s.Files, func(e filelist.Entry) bool {
		goOn = fn(l.SegmentFileKey(ref, e.Key), e)
		return goOn
	})
	if err != nil {
		return corruptf("segment %d: file list: %v", s.ID, err)
	}
	for _, b := range s.IndexBuilds {
		if !goOn {
			return nil
		}
		bref := layout.Build{Segment: ref, Build: b.BuildID}
		if err := filelist.ForEach(b.Files, func(e filelist.Entry) bool {
			goOn = fn(l.BuildFileKey(bref, e.Key), e)
			return goOn
		}); err != nil {
			return corruptf("segment %d, index build %d: file list: %v", s.ID, b.BuildID, err)
		}
	}
	return nil
}

// Summary returns the footer's totals.
func (rd *Reader) Summary() Summary {
	s := rd.summary
	s.ByKind = slices.Clone(s.ByKind)
	return s
}

// Blocks returns the block index, in file order.
func (rd *Reader) Blocks() []BlockInfo { return slices.Clone(rd.blocks) }

// Size returns the manifest's size in bytes, as given to Open.
func (rd *Reader) Size() int64 { return rd.size }

// ReadOptions select what Segments reads and how.
type ReadOptions struct {
	// Partitions selects the partitions to read, by id; nil reads them all (and an
	// empty, non-nil slice none). Naming a partition the header lacks is an error.
	// Only the blocks of the selected partitions are read.
	Partitions []uint64
	// Parallelism bounds how many blocks are read and decoded at once; 0 means
	// GOMAXPROCS. At most twice as many decoded blocks wait in memory for fn.
	Parallelism int
}

// Segments calls fn for every segment of the selected partitions, in manifest order
// ((partition id, segment id) order), from the calling goroutine. Blocks are read and
// decoded in parallel ahead of fn. It stops at the first error — fn's (returned as
// is), the context's, r's, or a corrupt block's (wrapping ErrCorrupt, saying which
// block) — and returns only once its goroutines have ended.
//
// Each block's checksum is verified before it is decoded, its records are checked
// against the footer (ids, counts), and every file list's header is checked
// (filelist.Count); walking the file lists is left to the caller (Verify does it). fn
// may keep the Segment and its slices: they are not reused.
func (rd *Reader) Segments(ctx context.Context, opts ReadOptions, fn func(*Segment) error) error {
	sel, err := rd.selectBlocks(opts.Partitions)
	if err != nil {
		return err
	}
	if len(sel) == 0 {
		return ctx.Err()
	}
	par := opts.Parallelism
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	par = min(par, len(sel))
	if par == 1 {
		for _, i := range sel {
			if err := ctx.Err(); err != nil {
				return err
			}
			segs, err := rd.readBlock(i)
			if err != nil {
				return err
			}
			for j := range segs {
				if err := fn(&segs[j]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return rd.segmentsParallel(ctx, sel, par, fn)
}

// segmentsParallel runs par workers over the selected blocks; a window of 2×par
// tokens bounds how far they get ahead of fn.
func (rd *Reader) segmentsParallel(ctx context.Context, sel []int, par int, fn func(*Segment) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		segs []Segment
		err  error
	}
	results := make([]chan result, len(sel))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	jobs := make(chan int)
	tokens := make(chan struct{}, 2*par)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // dispatcher: hands out jobs in order, within the window
		defer wg.Done()
		defer close(jobs)
		for k := range sel {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				var res result
				if res.err = ctx.Err(); res.err == nil {
					res.segs, res.err = rd.readBlockSafely(sel[k])
				}
				results[k] <- res // buffered: never blocks
			}
		}()
	}
	err := func() error {
		for k := range sel {
			var res result
			select {
			case res = <-results[k]:
			case <-ctx.Done():
				return ctx.Err()
			}
			if res.err != nil {
				return res.err
			}
			for j := range res.segs {
				if err := fn(&res.segs[j]); err != nil {
					return err
				}
			}
			<-tokens
		}
		return nil
	}()
	cancel()
	wg.Wait()
	return err
}

// selectBlocks returns the indexes of the blocks of the given partitions (nil: all).
func (rd *Reader) selectBlocks(partitions []uint64) ([]int, error) {
	var want map[uint64]bool
	if partitions != nil {
		want = make(map[uint64]bool, len(partitions))
		for _, p := range partitions {
			if !rd.partitions[p] {
				return nil, fmt.Errorf("manifest: partition %d is not in this manifest", p)
			}
			want[p] = true
		}
	}
	sel := make([]int, 0, len(rd.blocks))
	for i, b := range rd.blocks {
		if want == nil || want[b.PartitionID] {
			sel = append(sel, i)
		}
	}
	return sel, nil
}

// readBlockSafely is readBlock on a worker goroutine: a panic (a decoder bug on
// hostile input) becomes the block's error instead of ending the process.
func (rd *Reader) readBlockSafely(i int) (segs []Segment, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: block %d: decoder panic: %v", ErrCorrupt, i, p)
		}
	}()
	return rd.readBlock(i)
}

// readBlock reads block i, checks its checksum and decodes it.
func (rd *Reader) readBlock(i int) ([]Segment, error) {
	b := &rd.blocks[i]
	comp := make([]byte, b.CompressedSize)
	if err := readAt(rd.r, comp, b.Offset, rd.size); err != nil {
		return nil, err
	}
	if xxhash.Sum64(comp) != b.Checksum {
		return nil, corruptf("block %d at offset %d (%d bytes): checksum mismatch", i, b.Offset, b.CompressedSize)
	}
	return rd.decodeBlock(i, comp)
}

// decodeBlock decompresses and parses block i from its (checked) compressed bytes.
func (rd *Reader) decodeBlock(i int, comp []byte) ([]Segment, error) {
	b := &rd.blocks[i]
	dec, err := sharedDecoder()
	if err != nil {
		return nil, fmt.Errorf("manifest: zstd: %w", err)
	}
	// The footer bounded UncompressedSize by MaxBlockBytes and by what the compressed
	// bytes can expand to; the decoder writes no more than this capacity.
	data, err := dec.DecodeAll(comp, make([]byte, 0, b.UncompressedSize))
	if err != nil {
		return nil, corruptf("block %d at offset %d: zstd: %v", i, b.Offset, err)
	}
	if int64(len(data)) != b.UncompressedSize {
		return nil, corruptf("block %d at offset %d: decompressed to %d bytes; the footer says %d", i, b.Offset, len(data), b.UncompressedSize)
	}
	return rd.parseBlock(i, data)
}

// parseBlock parses the segment records of block i and checks them against the
// footer. Every length and count is checked against the bytes left before use.
func (rd *Reader) parseBlock(i int, data []byte) ([]Segment, error) {
	b := &rd.blocks[i]
	bad := func(rec int, format string, args ...any) error {
		return corruptf("block %d at offset %d, record %d: %s", i, b.Offset, rec, fmt.Sprintf(format, args...))
	}
	segs := make([]Segment, 0, b.Segments)         // Open checked Segments ≤ len(data)/minRecordLen
	builds := make([]IndexBuild, 0, b.IndexBuilds) // and IndexBuilds ≤ len(data)/minBuildLen
	var rows, files uint64
	prev := uint64(0)
	p := data
	for rec := 0; len(p) > 0; rec++ {
		if uint64(rec) == b.Segments {
			return nil, bad(rec, "more records than the footer's %d", b.Segments)
		}
		var s Segment
		var delta, n, nb uint64
		var ok bool
		if delta, p, ok = uvarint(p); !ok || delta == 0 || delta > math.MaxUint64-prev {
			return nil, bad(rec, "bad segment id")
		}
		s.ID = prev + delta
		s.PartitionID = b.PartitionID
		var rc uint64
		if rc, p, ok = uvarint(p); !ok || rc > math.MaxInt64 {
			return nil, bad(rec, "segment %d: bad row count", s.ID)
		}
		s.RowCount = int64(rc)
		rows += rc
		if n, p, ok = uvarint(p); !ok || n > uint64(len(p)) {
			return nil, bad(rec, "segment %d: bad file list length", s.ID)
		}
		if n > 0 {
			s.Files = p[:n:n]
		}
		p = p[n:]
		c, err := filelist.Count(s.Files)
		if err != nil {
			return nil, bad(rec, "segment %d: file list: %v", s.ID, err)
		}
		files += uint64(c)
		if nb, p, ok = uvarint(p); !ok || nb > uint64(len(p))/minBuildLen || nb > uint64(cap(builds)-len(builds)) {
			return nil, bad(rec, "segment %d: bad index build count", s.ID)
		}
		start := len(builds)
		for range nb {
			var ib IndexBuild
			if ib.BuildID, p, ok = uvarint(p); !ok {
				return nil, bad(rec, "segment %d: bad index build id", s.ID)
			}
			if ib.IndexID, p, ok = uvarint(p); !ok || !rd.indexes[ib.IndexID] {
				return nil, bad(rec, "segment %d, index build %d: index id %d is not in the header", s.ID, ib.BuildID, ib.IndexID)
			}
			if n, p, ok = uvarint(p); !ok || n > uint64(len(p)) {
				return nil, bad(rec, "segment %d, index build %d: bad file list length", s.ID, ib.BuildID)
			}
			if n > 0 {
				ib.Files = p[:n:n]
			}
			p = p[n:]
			c, err := filelist.Count(ib.Files)
			if err != nil {
				return nil, bad(rec, "segment %d, index build %d: file list: %v", s.ID, ib.BuildID, err)
			}
			files += uint64(c)
			builds = append(builds, ib)
		}
		if nb > 0 {
			s.IndexBuilds = builds[start:len(builds):len(builds)]
		}
		if rd.header.GetSegmentMeta() {
			if n, p, ok = uvarint(p); !ok || n > uint64(len(p)) {
				return nil, bad(rec, "segment %d: bad metadata length", s.ID)
			}
			if n > 0 {
				s.Meta = &fsmpb.SegmentMeta{}
				if err := proto.Unmarshal(p[:n], s.Meta); err != nil {
					return nil, bad(rec, "segment %d: metadata: %v", s.ID, err)
				}
			}
			p = p[n:]
		}
		segs = append(segs, s)
		prev = s.ID
	}
	switch {
	case uint64(len(segs)) != b.Segments:
		return nil, corruptf("block %d at offset %d: %d segment records; the footer says %d", i, b.Offset, len(segs), b.Segments)
	case segs[0].ID != b.FirstSegmentID || prev != b.LastSegmentID:
		return nil, corruptf("block %d at offset %d: segments %d to %d; the footer says %d to %d", i, b.Offset, segs[0].ID, prev, b.FirstSegmentID, b.LastSegmentID)
	case rows != uint64(b.Rows) || files != b.Files || uint64(len(builds)) != b.IndexBuilds:
		return nil, corruptf("block %d at offset %d: %d rows, %d files and %d index builds; the footer says %d, %d and %d",
			i, b.Offset, rows, files, len(builds), b.Rows, b.Files, b.IndexBuilds)
	}
	return segs, nil
}

func uvarint(p []byte) (uint64, []byte, bool) {
	v, k := binary.Uvarint(p)
	if k <= 0 {
		return 0, p, false
	}
	return v, p[k:], true
}
