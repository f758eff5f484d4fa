package datagen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// castagnoli is the CRC-32C table snapkeep's checksums use.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FileKinds are the kinds of segment file Generate writes, in layout order.
var FileKinds = []snapkeepv1.FileKind{
	snapkeepv1.FileKind_FILE_KIND_INSERT,
	snapkeepv1.FileKind_FILE_KIND_DELTA,
	snapkeepv1.FileKind_FILE_KIND_STATS,
	snapkeepv1.FileKind_FILE_KIND_BM25,
}

// Field ids of the generated files, after Milvus's conventions: user fields start at
// 100; delete logs belong to no field.
var (
	// InsertFieldIDs are the fields insert binlogs are spread over, in turn.
	InsertFieldIDs = []int64{100, 101, 102, 103}
	// StatsFieldID is the primary key field the stats log describes.
	StatsFieldID int64 = 100
	// BM25FieldID is the sparse field the BM25 log describes.
	BM25FieldID int64 = 104
)

// FileSpec is one file of a generated segment.
type FileSpec struct {
	Kind    snapkeepv1.FileKind
	FieldID int64
	// LogID is unique within the segment (the file's 1-based position).
	LogID int64
}

// Layout returns the files of a generated segment of n files: with one file an insert
// binlog; with more, insert binlogs across InsertFieldIDs followed by one stats log
// (n ≥ 2), one delta log (n ≥ 3) and one BM25 log (n ≥ 5).
func Layout(n int) []FileSpec {
	var extra []FileSpec
	if n >= 3 {
		extra = append(extra, FileSpec{Kind: snapkeepv1.FileKind_FILE_KIND_DELTA})
	}
	if n >= 2 {
		extra = append(extra, FileSpec{Kind: snapkeepv1.FileKind_FILE_KIND_STATS, FieldID: StatsFieldID})
	}
	if n >= 5 {
		extra = append(extra, FileSpec{Kind: snapkeepv1.FileKind_FILE_KIND_BM25, FieldID: BM25FieldID})
	}
	specs := make([]FileSpec, 0, max(n, 0))
	for i := range max(n-len(extra), 0) {
		specs = append(specs, FileSpec{Kind: snapkeepv1.FileKind_FILE_KIND_INSERT, FieldID: InsertFieldIDs[i%len(InsertFieldIDs)]})
	}
	specs = append(specs, extra...)
	for i := range specs {
		specs[i].LogID = int64(i + 1)
	}
	return specs
}

// KindDir is the key directory of a file kind in the snapkeep layout ("insert",
// "delta", "stats", "bm25", "index", "text", "json_key"), or "" for an unknown kind.
func KindDir(k snapkeepv1.FileKind) string { return layout.KindDir(fsmpb.FileKind(k)) }

// Key is the object key of f in the segment with key prefix prefix (which ends in
// "/"): "<prefix><kind>/<field id>/<log id>".
func Key(prefix string, f FileSpec) string {
	return prefix + KindDir(f.Kind) + "/" + strconv.FormatInt(f.FieldID, 10) + "/" + strconv.FormatInt(f.LogID, 10)
}

// Content is the pseudo-random content of one generated file: size bytes that depend
// only on (seed, segment ordinal, file ordinal). It is produced on the fly (no buffer)
// and is an io.ReadSeeker and io.ReaderAt, so an uploader can rewind it to sign or
// retry.
type Content struct {
	stream uint64
	size   int64
	off    int64
}

// NewContent returns the content of file number file (0-based, in Layout order) of
// the segment number segment (0-based, in generation order) for seed.
func NewContent(seed int64, segment, file int, size int64) *Content {
	stream := mix64(mix64(mix64(uint64(seed))+uint64(segment)) + uint64(file))
	return &Content{stream: stream, size: max(size, 0)}
}

// Size is the content's length in bytes.
func (c *Content) Size() int64 { return c.size }

// Read implements io.Reader.
func (c *Content) Read(p []byte) (int, error) {
	if c.off >= c.size {
		return 0, io.EOF
	}
	n, _ := c.ReadAt(p, c.off)
	c.off += int64(n)
	return n, nil
}

// ReadAt implements io.ReaderAt.
func (c *Content) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("datagen: negative offset")
	}
	if off >= c.size {
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(want), c.size-off)]
	n := 0
	// A partial word first, when off is not 8-aligned.
	if r := off % 8; r != 0 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], c.word(uint64(off/8)))
		n = copy(p, w[r:])
	}
	for ; len(p)-n >= 8; n += 8 {
		binary.LittleEndian.PutUint64(p[n:], c.word(uint64((off+int64(n))/8)))
	}
	if n < len(p) {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], c.word(uint64((off+int64(n))/8)))
		n += copy(p[n:], w[:])
	}
	if n < want {
		return n, io.EOF // the content ends before p is full
	}
	return n, nil
}

// Seek implements io.Seeker.
func (c *Content) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = c.off + offset
	case io.SeekEnd:
		abs = c.size + offset
	default:
		return 0, fmt.Errorf("datagen: bad whence %d", whence)
	}
	if abs < 0 {
		return 0, errors.New("datagen: seek before the start")
	}
	c.off = abs
	return abs, nil
}

// CRC32C is the CRC-32C (Castagnoli) of the whole content; it reads a fresh copy, so
// the reader's position is unchanged.
func (c *Content) CRC32C() uint32 {
	h := crc32.New(castagnoli)
	_, _ = io.Copy(h, io.NewSectionReader(c, 0, c.size))
	return h.Sum32()
}

// word is the i-th 64-bit word of the stream: SplitMix64, which is counter-based, so
// any offset is reachable at once.
func (c *Content) word(i uint64) uint64 {
	return mix64(c.stream + i*0x9e3779b97f4a7c15)
}

// mix64 is the SplitMix64 finalizer.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
