package manifest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
)

// Version is the newest format version this package reads and writes. A manifest of
// a snapkeep-layout collection is written as version 1 (what every reader reads);
// version 2 adds the header's key layout, and is written only for other layouts, so
// an older reader refuses those rather than misread their keys.
const Version = 2

// versionFor is the format version a manifest with this header is written in: 2 when
// it names a key layout other than snapkeep's or its records carry segment metadata
// (a version-1 reader would misread either), else 1.
func versionFor(h *manifestpb.Header) byte {
	if h.GetKeyLayout() == manifestpb.KeyLayout_KEY_LAYOUT_SNAPKEEP && !h.GetSegmentMeta() {
		return 1
	}
	return 2
}

// Magic opens and closes every manifest.
const Magic = "SNAPKMAN"

// Limits of the format. A reader refuses anything beyond them as corrupt before it
// allocates memory for it; a writer refuses input that would exceed them.
const (
	// DefaultBlockSize is the target uncompressed size of a block.
	DefaultBlockSize = 1 << 20
	// MaxBlockBytes bounds a block's uncompressed size, and therefore one segment
	// record: the segment's file list plus its index builds' (about 10,000 files of
	// 25 KiB keys each would exceed it; real segments take a few hundred bytes).
	MaxBlockBytes = 256 << 20
	// MaxHeaderBytes bounds the encoded header (the FSM bounds a schema to 1 MiB).
	MaxHeaderBytes = 16 << 20
	// MaxFooterBytes bounds the encoded footer (about 40 bytes per block).
	MaxFooterBytes = 256 << 20
)

// Fixed parts of the layout (see the package documentation).
const (
	prefixLen  = len(Magic) + 1 + 4 // magic, version, header length
	sumLen     = 8                  // an xxhash64, little-endian
	trailerLen = 4 + 1 + len(Magic) // footer length, version, magic
	// minSize is a manifest with an empty header, no blocks and an empty footer.
	minSize = prefixLen + sumLen + sumLen + trailerLen
	// minRecordLen is the smallest segment record: id delta, row count, file list
	// length, index build count, one byte each.
	minRecordLen = 4
	// minBuildLen is the smallest index build inside a record: build id, index id,
	// file list length.
	minBuildLen = 3
	// maxZstdExpansion bounds what a zstd frame can decompress to per input byte: the
	// densest encoding is an RLE block, 4 bytes for 128 KiB.
	maxZstdExpansion = 1 << 15
	// tailRead is how much of the end Open reads at once, hoping to get the whole
	// footer (and, for small manifests, everything) in one range read.
	tailRead = 64 << 10
)

// ErrCorrupt is wrapped by every error about a manifest's bytes being wrong: a bad
// checksum, a truncation, a structure that does not add up. The message says where.
var ErrCorrupt = errors.New("manifest corrupt")

// ErrUnsupportedVersion is wrapped by the error for a manifest written in a newer
// format than this code reads.
var ErrUnsupportedVersion = errors.New("manifest format version not supported")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// checkVersion interprets a format version byte found at where.
func checkVersion(where string, v byte) error {
	switch {
	case v >= 1 && v <= Version:
		return nil
	case v == 0:
		return corruptf("%s: format version 0", where)
	default:
		return fmt.Errorf("%w: %s says format version %d; this reader supports versions 1 to %d (upgrade snapkeep to read it)",
			ErrUnsupportedVersion, where, v, Version)
	}
}

// Segment is one segment record: a captured segment with its files and index builds.
// Files and the IndexBuilds' Files are file lists in the FSM's encoding (see
// filelist.ForEach), each key kept as its key layout keeps it (Reader.Files builds the
// full keys).
type Segment struct {
	ID          uint64
	PartitionID uint64
	RowCount    int64
	// Files is the segment's file list; nil when it has no files.
	Files []byte
	// IndexBuilds are the segment's ready index builds; nil when it has none.
	IndexBuilds []IndexBuild
	// Meta is the vector database's metadata of the segment (nil when none). Written
	// only when the header says segment_meta (format version 2).
	Meta *fsmpb.SegmentMeta
}

// IndexBuild is one index build of a segment.
type IndexBuild struct {
	BuildID uint64
	IndexID uint64
	// Files is the build's file list; nil when it has no files.
	Files []byte
}

// Summary totals a manifest's content. Its fields are those of the FSM's
// SnapshotSummary (see SnapshotSummary).
type Summary struct {
	Segments    uint64
	Rows        int64
	IndexBuilds uint64
	// Files counts every file, index build files included; Bytes sums their sizes.
	Files uint64
	Bytes uint64
	// ByKind splits Files and Bytes by file kind, in kind order, leaving out kinds
	// without files. Index build files are counted under FILE_KIND_INDEX.
	ByKind []KindTotals
}

// KindTotals counts the files and bytes of one file kind.
type KindTotals struct {
	Kind  fsmpb.FileKind
	Files uint64
	Bytes uint64
}

// SnapshotSummary returns the summary as the FSM records it in SnapshotCommit.
func (s Summary) SnapshotSummary() *fsmpb.SnapshotSummary {
	out := &fsmpb.SnapshotSummary{Segments: s.Segments, Rows: s.Rows, Files: s.Files, Bytes: s.Bytes, IndexBuilds: s.IndexBuilds}
	for _, k := range s.ByKind {
		out.ByKind = append(out.ByKind, &fsmpb.KindTotals{Kind: k.Kind, Files: k.Files, Bytes: k.Bytes})
	}
	return out
}

// BlockInfo describes one block of the body, as the footer records it.
type BlockInfo struct {
	// Offset and CompressedSize locate the block's zstd frame in the manifest;
	// UncompressedSize is the length of its segment records.
	Offset           int64
	CompressedSize   int64
	UncompressedSize int64
	PartitionID      uint64
	Segments         uint64
	FirstSegmentID   uint64
	LastSegmentID    uint64
	Rows             int64
	// Files counts the segments' files and their index builds' files; Bytes sums
	// their sizes.
	Files       uint64
	Bytes       uint64
	IndexBuilds uint64
	// Checksum is the xxhash64 of the compressed bytes.
	Checksum uint64
}

// kindTotals accumulates files and bytes by kind (the kind byte of a file list entry).
type kindTotals [256]KindTotals

func (k *kindTotals) add(kind fsmpb.FileKind, size uint64) {
	t := &k[byte(kind)]
	t.Files++
	t.Bytes += size
}

func (k *kindTotals) list() []KindTotals {
	var out []KindTotals
	for i := range k {
		if k[i].Files > 0 {
			out = append(out, KindTotals{Kind: fsmpb.FileKind(i), Files: k[i].Files, Bytes: k[i].Bytes})
		}
	}
	return out
}

func summaryToProto(s Summary) *manifestpb.Summary {
	out := &manifestpb.Summary{Segments: s.Segments, Rows: uint64(s.Rows), Files: s.Files, Bytes: s.Bytes, IndexBuilds: s.IndexBuilds}
	for _, k := range s.ByKind {
		out.ByKind = append(out.ByKind, &manifestpb.KindTotals{Kind: uint32(k.Kind), Files: k.Files, Bytes: k.Bytes})
	}
	return out
}

// summaryFromProto converts and checks a footer's summary: kinds in strictly
// increasing order, each with files, adding up to the totals.
func summaryFromProto(p *manifestpb.Summary) (Summary, error) {
	if p == nil {
		p = &manifestpb.Summary{}
	}
	if p.Rows > math.MaxInt64 {
		return Summary{}, corruptf("footer: summary row count %d is out of range", p.Rows)
	}
	s := Summary{Segments: p.Segments, Rows: int64(p.Rows), Files: p.Files, Bytes: p.Bytes, IndexBuilds: p.IndexBuilds}
	var files, bytes uint64
	for i, k := range p.ByKind {
		if k == nil || k.Kind > math.MaxUint8 || k.Files == 0 || (i > 0 && k.Kind <= p.ByKind[i-1].GetKind()) {
			return Summary{}, corruptf("footer: summary by kind, entry %d, is invalid", i)
		}
		files += k.Files
		bytes += k.Bytes
		s.ByKind = append(s.ByKind, KindTotals{Kind: fsmpb.FileKind(k.Kind), Files: k.Files, Bytes: k.Bytes})
	}
	if files != s.Files || bytes != s.Bytes {
		return Summary{}, corruptf("footer: summary by kind adds up to %d files and %d bytes, not %d and %d", files, bytes, s.Files, s.Bytes)
	}
	return s, nil
}

func blockToProto(b BlockInfo) *manifestpb.Block {
	return &manifestpb.Block{
		Offset: uint64(b.Offset), CompressedSize: uint64(b.CompressedSize), UncompressedSize: uint64(b.UncompressedSize),
		PartitionId: b.PartitionID, Segments: b.Segments, FirstSegmentId: b.FirstSegmentID, LastSegmentId: b.LastSegmentID,
		Rows: uint64(b.Rows), Files: b.Files, Bytes: b.Bytes, IndexBuilds: b.IndexBuilds, Checksum: b.Checksum,
	}
}

// validateHeader checks what both the writer and the reader rely on: partition and
// index ids are non-zero and unique. It returns the sets of partition and index ids.
func validateHeader(h *manifestpb.Header) (partitions, indexes map[uint64]bool, err error) {
	if _, ok := manifestpb.KeyLayout_name[int32(h.GetKeyLayout())]; !ok {
		return nil, nil, fmt.Errorf("the header names an unknown key layout %d", h.GetKeyLayout())
	}
	parts := make(map[uint64]bool, len(h.GetPartitions()))
	for i, p := range h.GetPartitions() {
		if p == nil || p.Id == 0 {
			return nil, nil, fmt.Errorf("partition %d of the header has no id", i)
		}
		if parts[p.Id] {
			return nil, nil, fmt.Errorf("partition id %d is listed twice in the header", p.Id)
		}
		parts[p.Id] = true
	}
	indexes = make(map[uint64]bool, len(h.GetIndexes()))
	for i, ix := range h.GetIndexes() {
		if ix == nil || ix.Id == 0 {
			return nil, nil, fmt.Errorf("index %d of the header has no id", i)
		}
		if indexes[ix.Id] {
			return nil, nil, fmt.Errorf("index id %d is listed twice in the header", ix.Id)
		}
		indexes[ix.Id] = true
	}
	return parts, indexes, nil
}

// putTrailer appends the trailer for a footer of length n.
func putTrailer(b []byte, n int, version byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = append(b, version)
	return append(b, Magic...)
}

// --- zstd encoders and decoders, shared by every writer and reader of the process.

var (
	encodersMu sync.Mutex
	encoders   = map[zstd.EncoderLevel]*zstd.Encoder{}

	decoderOnce sync.Once
	decoder     *zstd.Decoder
	decoderErr  error
)

// encoderFor returns the process's encoder for a level. EncodeAll is safe for
// concurrent use; the encoder keeps up to GOMAXPROCS block encoders for reuse.
func encoderFor(level zstd.EncoderLevel) (*zstd.Encoder, error) {
	encodersMu.Lock()
	defer encodersMu.Unlock()
	if e := encoders[level]; e != nil {
		return e, nil
	}
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(false), // each block has its own xxhash64 in the footer
		zstd.WithSingleSegment(true),
	)
	if err != nil {
		return nil, err
	}
	encoders[level] = e
	return e, nil
}

// sharedDecoder returns the process's decoder. DecodeAll is safe for concurrent use.
// The cap limit makes DecodeAll write at most cap(dst) bytes, so a lying frame cannot
// make it allocate more than the footer declared.
func sharedDecoder() (*zstd.Decoder, error) {
	decoderOnce.Do(func() {
		decoder, decoderErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(max(4, runtime.GOMAXPROCS(0))),
			zstd.WithDecoderMaxMemory(MaxBlockBytes),
			zstd.WithDecoderMaxWindow(MaxBlockBytes),
			zstd.WithDecodeAllCapLimit(true),
		)
	})
	return decoder, decoderErr
}

// levelOK reports whether a zstd level is one the encoder knows.
func levelOK(l zstd.EncoderLevel) bool {
	return slices.Contains([]zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression, zstd.SpeedBestCompression}, l)
}
