package manifest

import (
	"fmt"
	"io"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/snapkeep/snapkeep/fsm/filelist"
)

// Report says what Verify checked.
type Report struct {
	// Version is the manifest's format version.
	Version int
	// Size is the manifest's size in bytes.
	Size int64
	// Checksum is the xxhash64 of the whole object (Result.Checksum of the writer):
	// compare it with the one recorded for the snapshot.
	Checksum uint64
	// HeaderBytes is the length of magic, version, header and header checksum;
	// FooterBytes the length of footer, footer checksum and trailer.
	HeaderBytes int64
	FooterBytes int64
	// Blocks is the number of blocks read, checksummed and decoded.
	Blocks int
	// Checksums is the number of xxhash64 checksums verified: the header's, the
	// footer's, the body's ("whole") and one per block.
	Checksums int
	// FileLists is the number of file lists decoded entry by entry (segments' and index
	// builds', empty ones included).
	FileLists uint64
	// Summary is recomputed from the decoded content; Verify checked that it equals
	// the footer's, block by block and in total.
	Summary Summary
}

// String describes the report in one paragraph, for people.
func (r Report) String() string {
	return fmt.Sprintf("manifest format version %d, %d bytes, xxhash64 %016x: %d checksums verified (header, footer, body and %d blocks); "+
		"%d blocks decoded; %d segments, %d index builds, %d rows; %d file lists decoded with %d files and %d bytes; every count matches the footer",
		r.Version, r.Size, r.Checksum, r.Checksums, r.Blocks, r.Blocks, r.Summary.Segments, r.Summary.IndexBuilds, r.Summary.Rows,
		r.FileLists, r.Summary.Files, r.Summary.Bytes)
}

// Verify reads a whole manifest once, front to back, and checks everything: the
// header's, footer's and every block's checksum, the checksum of everything before the
// footer, that every block decompresses and parses, that every file list decodes
// (filelist.ForEachMeta: the same checks as ForEach, without building the keys), and
// that every count and total — per block, per file kind and overall — matches the
// footer. It does not check what the FSM checks when the files
// are registered (key syntax, kinds per directory).
//
// The error wraps ErrCorrupt or ErrUnsupportedVersion as Open and Segments do, or is
// r's own error. Verify is safe for concurrent use.
func Verify(r io.ReaderAt, size int64) (Report, error) {
	rd, err := Open(r, size)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Version: int(rd.version), Size: size, HeaderBytes: rd.bodyOffset, FooterBytes: size - rd.footerOffset, Blocks: len(rd.blocks)}
	digest := xxhash.New()
	buf := make([]byte, rd.bodyOffset)
	if err := readAt(r, buf, 0, size); err != nil {
		return rep, err
	}
	_, _ = digest.Write(buf)
	if xxhash.Sum64(buf[:len(buf)-sumLen]) != rd.headerChecksum {
		return rep, corruptf("header: changed while it was being verified")
	}

	var kinds kindTotals
	var sum Summary
	for i, b := range rd.blocks {
		if int64(cap(buf)) < b.CompressedSize {
			buf = make([]byte, b.CompressedSize)
		}
		comp := buf[:b.CompressedSize]
		if err := readAt(r, comp, b.Offset, size); err != nil {
			return rep, err
		}
		_, _ = digest.Write(comp)
		if xxhash.Sum64(comp) != b.Checksum {
			return rep, corruptf("block %d at offset %d (%d bytes): checksum mismatch", i, b.Offset, b.CompressedSize)
		}
		segs, err := rd.decodeBlock(i, comp)
		if err != nil {
			return rep, err
		}
		var files, bytes uint64
		for _, s := range segs {
			for l := range 1 + len(s.IndexBuilds) {
				blob := s.Files
				if l > 0 {
					blob = s.IndexBuilds[l-1].Files
				}
				err := filelist.ForEachMeta(blob, func(e filelist.Entry) bool {
					files++
					bytes += e.Size
					kinds.add(e.Kind, e.Size)
					return true
				})
				if err != nil {
					what := fmt.Sprintf("segment %d", s.ID)
					if l > 0 {
						what += fmt.Sprintf(", index build %d", s.IndexBuilds[l-1].BuildID)
					}
					return rep, corruptf("block %d at offset %d: %s: file list: %v", i, b.Offset, what, err)
				}
				rep.FileLists++
			}
			sum.Segments++
			sum.Rows += s.RowCount
			sum.IndexBuilds += uint64(len(s.IndexBuilds))
		}
		if files != b.Files || bytes != b.Bytes {
			return rep, corruptf("block %d at offset %d: its file lists hold %d files of %d bytes; the footer says %d and %d", i, b.Offset, files, bytes, b.Files, b.Bytes)
		}
		sum.Files += files
		sum.Bytes += bytes
		rep.Checksums++
	}
	if digest.Sum64() != rd.bodyChecksum {
		return rep, corruptf("body: the checksum of bytes 0 to %d (header and blocks) does not match the footer's", rd.footerOffset)
	}
	tail := make([]byte, size-rd.footerOffset)
	if err := readAt(r, tail, rd.footerOffset, size); err != nil {
		return rep, err
	}
	if xxhash.Sum64(tail[:len(tail)-sumLen-trailerLen]) != rd.footerChecksum {
		return rep, corruptf("footer: changed while it was being verified")
	}
	_, _ = digest.Write(tail)
	rep.Checksum = digest.Sum64()
	rep.Checksums += 3

	sum.ByKind = kinds.list()
	want := rd.summary
	if sum.Segments != want.Segments || sum.Rows != want.Rows || sum.Files != want.Files || sum.Bytes != want.Bytes ||
		sum.IndexBuilds != want.IndexBuilds || !slices.Equal(sum.ByKind, want.ByKind) {
		return rep, corruptf("footer: the summary does not match the content (content: %+v; footer: %+v)", sum, want)
	}
	rep.Summary = sum
	return rep, nil
}
