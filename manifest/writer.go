package manifest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
)

// WriterOptions tune a Writer. The zero value is the default.
type WriterOptions struct {
	// BlockSize is the target uncompressed size of a block: a block is closed once
	// its records reach it (or when the partition changes). 0 means DefaultBlockSize;
	// at most MaxBlockBytes.
	BlockSize int
	// Level is the zstd level of the blocks; 0 means zstd.SpeedFastest.
	Level zstd.EncoderLevel
}

// Result describes a manifest the Writer finished.
type Result struct {
	// Size is the number of bytes written.
	Size int64
	// Checksum is the xxhash64 of all Size bytes: what `xxh64sum` prints for the
	// object, and what Verify's Report.Checksum gives back.
	Checksum uint64
	// Summary totals the manifest's content.
	Summary Summary
	// Blocks is the number of blocks in the body.
	Blocks int
}

// Writer streams a manifest to an io.Writer: the header at NewWriter, a block whenever
// one fills up, the footer at Close. It holds two blocks (the one Add fills, and the
// one before it, compressed on a goroutine of its own meanwhile) and the block index in
// memory, never the whole manifest.
//
// A Writer is not safe for concurrent use. A segment that Add rejects changes nothing:
// the caller may go on. An error writing to w, though, is final: every later call
// returns it (a block is written when the next one is closed, so the error may surface
// one block late). The Writer never closes w.
type Writer struct {
	w      io.Writer
	digest *xxhash.Digest
	off    int64
	err    error // sticky write error
	closed bool

	enc       *zstd.Encoder
	blockSize int
	version   byte // the format version written (versionFor the header)
	// segmentMeta: records end with the segment's metadata (header segment_meta).
	segmentMeta bool

	partitions map[uint64]bool
	indexes    map[uint64]bool
	started    bool // at least one segment was added
	prevPart   uint64
	prevID     uint64

	buf  []byte // the open block's records
	cur  BlockInfo
	prev *compressing // the block closed before it, being compressed (nil: none)
	// spare buffers for the next block's records and compressed bytes
	spareBuf, spareCbuf []byte
	blocks              []*manifestpb.Block

	sum     Summary
	kinds   kindTotals
	scratch fileTotals

	bodyOffset     int64
	headerChecksum uint64
}

// NewWriter writes the manifest's header to w and returns a Writer for its segments.
// Every partition a segment names must be in hdr.Partitions.
func NewWriter(w io.Writer, hdr *manifestpb.Header, opts WriterOptions) (*Writer, error) {
	if hdr == nil {
		return nil, errors.New("manifest: a header is required")
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.BlockSize < 0 || opts.BlockSize > MaxBlockBytes {
		return nil, fmt.Errorf("manifest: block size %d is out of range (1 to %d)", opts.BlockSize, MaxBlockBytes)
	}
	if opts.Level == 0 {
		opts.Level = zstd.SpeedFastest
	}
	if !levelOK(opts.Level) {
		return nil, fmt.Errorf("manifest: unknown zstd level %d", opts.Level)
	}
	parts, indexes, err := validateHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	enc, err := encoderFor(opts.Level)
	if err != nil {
		return nil, fmt.Errorf("manifest: zstd: %w", err)
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode header: %w", err)
	}
	if len(body) > MaxHeaderBytes {
		return nil, fmt.Errorf("manifest: the header takes %d bytes; the limit is %d", len(body), MaxHeaderBytes)
	}
	wr := &Writer{w: w, digest: xxhash.New(), enc: enc, blockSize: opts.BlockSize, partitions: parts, indexes: indexes}
	head := make([]byte, 0, prefixLen+len(body)+sumLen)
	head = append(head, Magic...)
	wr.version = versionFor(hdr)
	wr.segmentMeta = hdr.GetSegmentMeta()
	head = append(head, wr.version)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(body)))
	head = append(head, body...)
	wr.headerChecksum = xxhash.Sum64(head)
	head = binary.LittleEndian.AppendUint64(head, wr.headerChecksum)
	if err := wr.write(head); err != nil {
		return nil, err
	}
	wr.bodyOffset = wr.off
	return wr, nil
}

func (w *Writer) write(p []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.w.Write(p)
	w.off += int64(n)
	_, _ = w.digest.Write(p[:n])
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("manifest: write: %w", err)
	}
	return w.err
}

// fileTotals counts a segment's files while Add walks its file lists (which validates
// them); the counts are added to the totals only once the segment is accepted.
type fileTotals struct {
	files, bytes uint64
	sizes        []kindSize // kind and size of every file
}

type kindSize struct {
	kind fsmpb.FileKind
	size uint64
}

func (t *fileTotals) walk(blob []byte) error {
	return filelist.ForEachMeta(blob, func(e filelist.Entry) bool {
		t.files++
		t.bytes += e.Size
		t.sizes = append(t.sizes, kindSize{e.Kind, e.Size})
		return true
	})
}

// Add appends a segment. Segments must come in (partition id, segment id) order, each
// pair once, with a partition listed in the header, a non-zero id, a row count ≥ 0,
// index builds of indexes listed in the header, and file lists that decode. Add copies what it needs: seg may be reused at once.
func (w *Writer) Add(seg *Segment) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("manifest: Add after Close")
	}
	if seg == nil {
		return errors.New("manifest: nil segment")
	}
	if seg.ID == 0 {
		return errors.New("manifest: segment id 0 is not valid")
	}
	if seg.RowCount < 0 {
		return fmt.Errorf("manifest: segment %d: row count %d is negative", seg.ID, seg.RowCount)
	}
	if !w.partitions[seg.PartitionID] {
		return fmt.Errorf("manifest: segment %d: partition %d is not in the header", seg.ID, seg.PartitionID)
	}
	if w.started && (seg.PartitionID < w.prevPart || (seg.PartitionID == w.prevPart && seg.ID <= w.prevID)) {
		return fmt.Errorf("manifest: segment %d of partition %d added after segment %d of partition %d; segments must come in (partition id, segment id) order, once each",
			seg.ID, seg.PartitionID, w.prevID, w.prevPart)
	}
	if seg.RowCount > math.MaxInt64-w.sum.Rows {
		return fmt.Errorf("manifest: segment %d: the total row count overflows", seg.ID)
	}
	t := &w.scratch
	*t = fileTotals{sizes: t.sizes[:0]}
	if err := t.walk(seg.Files); err != nil {
		return fmt.Errorf("manifest: segment %d: file list: %w", seg.ID, err)
	}
	for _, b := range seg.IndexBuilds {
		if !w.indexes[b.IndexID] {
			return fmt.Errorf("manifest: segment %d, index build %d: index %d is not in the header", seg.ID, b.BuildID, b.IndexID)
		}
		if err := t.walk(b.Files); err != nil {
			return fmt.Errorf("manifest: segment %d, index build %d: file list: %w", seg.ID, b.BuildID, err)
		}
	}
	var meta []byte
	if seg.Meta != nil {
		if !w.segmentMeta {
			return fmt.Errorf("manifest: segment %d has metadata, but the header does not say segment_meta", seg.ID)
		}
		var err error
		if meta, err = (proto.MarshalOptions{Deterministic: true}).Marshal(seg.Meta); err != nil {
			return fmt.Errorf("manifest: segment %d: encode its metadata: %w", seg.ID, err)
		}
	}
	recLen := 5*binary.MaxVarintLen64 + len(seg.Files) + len(meta)
	for _, b := range seg.IndexBuilds {
		recLen += 3*binary.MaxVarintLen64 + len(b.Files)
	}
	if recLen > MaxBlockBytes {
		return fmt.Errorf("manifest: segment %d: its record takes up to %d bytes, more than a block holds (%d)", seg.ID, recLen, MaxBlockBytes)
	}

	// Accepted. Close the open block if the partition changes or the record would
	// overflow it.
	if w.cur.Segments > 0 && (seg.PartitionID != w.cur.PartitionID || len(w.buf)+recLen > MaxBlockBytes) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	prev := w.cur.LastSegmentID // 0 in a new block
	if w.cur.Segments == 0 {
		w.cur = BlockInfo{PartitionID: seg.PartitionID, FirstSegmentID: seg.ID}
		prev = 0
	}
	b := w.buf
	b = binary.AppendUvarint(b, seg.ID-prev)
	b = binary.AppendUvarint(b, uint64(seg.RowCount))
	b = binary.AppendUvarint(b, uint64(len(seg.Files)))
	b = append(b, seg.Files...)
	b = binary.AppendUvarint(b, uint64(len(seg.IndexBuilds)))
	for _, ib := range seg.IndexBuilds {
		b = binary.AppendUvarint(b, ib.BuildID)
		b = binary.AppendUvarint(b, ib.IndexID)
		b = binary.AppendUvarint(b, uint64(len(ib.Files)))
		b = append(b, ib.Files...)
	}
	if w.segmentMeta {
		b = binary.AppendUvarint(b, uint64(len(meta)))
		b = append(b, meta...)
	}
	w.buf = b

	w.cur.Segments++
	w.cur.LastSegmentID = seg.ID
	w.cur.Rows += seg.RowCount
	w.cur.Files += t.files
	w.cur.Bytes += t.bytes
	w.cur.IndexBuilds += uint64(len(seg.IndexBuilds))
	w.sum.Segments++
	w.sum.Rows += seg.RowCount
	w.sum.Files += t.files
	w.sum.Bytes += t.bytes
	w.sum.IndexBuilds += uint64(len(seg.IndexBuilds))
	for _, e := range t.sizes {
		w.kinds.add(e.kind, e.size)
	}
	w.started, w.prevPart, w.prevID = true, seg.PartitionID, seg.ID

	if len(w.buf) >= w.blockSize {
		return w.flush()
	}
	return nil
}

// compressing is a closed block whose compression runs on a goroutine of its own, so
// that Add fills the next block meanwhile (the compression was a third of a 1M-segment
// manifest's encoding time).
type compressing struct {
	info BlockInfo
	buf  []byte      // its records (read by the goroutine until done)
	done chan []byte // the compressed block; buffered, so an abandoned Writer leaks nothing
}

// flush closes the open block: it writes the block closed before it, once compressed,
// and starts compressing this one.
func (w *Writer) flush() error {
	if w.cur.Segments == 0 {
		return nil
	}
	if err := w.writePrev(); err != nil {
		return err
	}
	c := &compressing{info: w.cur, buf: w.buf, done: make(chan []byte, 1)}
	enc, dst := w.enc, w.spareCbuf[:0] // EncodeAll may run concurrently with other calls
	go func() { c.done <- enc.EncodeAll(c.buf, dst) }()
	w.prev = c
	w.cur = BlockInfo{}
	w.buf, w.spareBuf, w.spareCbuf = w.spareBuf[:0], nil, nil
	return nil
}

// writePrev waits for the block being compressed, if any, and writes it.
func (w *Writer) writePrev() error {
	c := w.prev
	if c == nil {
		return nil
	}
	w.prev = nil
	cbuf := <-c.done
	c.info.Offset = w.off
	c.info.CompressedSize = int64(len(cbuf))
	c.info.UncompressedSize = int64(len(c.buf))
	c.info.Checksum = xxhash.Sum64(cbuf)
	if err := w.write(cbuf); err != nil {
		return err
	}
	w.blocks = append(w.blocks, blockToProto(c.info))
	if cap(c.buf) <= 2*w.blockSize+(1<<20) { // one huge segment passed: don't keep its buffers
		w.spareBuf, w.spareCbuf = c.buf[:0], cbuf[:0]
	}
	return nil
}

// Close writes the last block and the footer, and returns what was written. It does
// not close the underlying io.Writer.
func (w *Writer) Close() (Result, error) {
	if w.err != nil {
		return Result{}, w.err
	}
	if w.closed {
		return Result{}, errors.New("manifest: Close called twice")
	}
	w.closed = true
	if err := w.flush(); err != nil {
		return Result{}, err
	}
	if err := w.writePrev(); err != nil {
		return Result{}, err
	}
	w.sum.ByKind = w.kinds.list()
	footer := &manifestpb.Footer{
		BodyOffset:     uint64(w.bodyOffset),
		HeaderChecksum: w.headerChecksum,
		Blocks:         w.blocks,
		Summary:        summaryToProto(w.sum),
		BodyChecksum:   w.digest.Sum64(),
		BlockSize:      uint64(w.blockSize),
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(footer)
	if err != nil {
		return Result{}, fmt.Errorf("manifest: encode footer: %w", err)
	}
	if len(body) > MaxFooterBytes {
		return Result{}, fmt.Errorf("manifest: the footer takes %d bytes; the limit is %d", len(body), MaxFooterBytes)
	}
	tail := make([]byte, 0, len(body)+sumLen+trailerLen)
	tail = append(tail, body...)
	tail = binary.LittleEndian.AppendUint64(tail, xxhash.Sum64(body))
	tail = putTrailer(tail, len(body), w.version)
	if err := w.write(tail); err != nil {
		return Result{}, err
	}
	return Result{Size: w.off, Checksum: w.digest.Sum64(), Summary: w.sum, Blocks: len(w.blocks)}, nil
}
