package manifest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/manifest/manifestpb"
)

// decodeAll opens a manifest and reads every segment; it returns the first error.
func decodeAll(data []byte) error {
	rd, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return err
	}
	return rd.Segments(context.Background(), ReadOptions{Parallelism: 2}, func(*Segment) error { return nil })
}

// requireRejected checks that both a full read and Verify refuse data, with a format
// error (ErrUnsupportedVersion only where wantVersion says so).
func requireRejected(t *testing.T, data []byte, wantVersion bool, format string, args ...any) {
	t.Helper()
	check := func(what string, err error) {
		t.Helper()
		require.Error(t, err, append([]any{what + ": accepted after " + format}, args...)...)
		if wantVersion {
			require.ErrorIs(t, err, ErrUnsupportedVersion, append([]any{what + ": " + format}, args...)...)
		} else {
			require.ErrorIs(t, err, ErrCorrupt, append([]any{what + ": " + format}, args...)...)
		}
	}
	check("Open+Segments", decodeAll(data))
	_, err := Verify(bytes.NewReader(data), int64(len(data)))
	check("Verify", err)
}

// versionPositions are the offsets of the two format version bytes.
func versionPositions(data []byte) (int, int) { return len(Magic), len(data) - len(Magic) - 1 }

// flipAt checks one corrupted byte at position i.
func flipAt(t *testing.T, data []byte, i int, mask byte) {
	t.Helper()
	bad := bytes.Clone(data)
	bad[i] ^= mask
	v1, v2 := versionPositions(data)
	requireRejected(t, bad, (i == v1 || i == v2) && bad[i] > Version, "byte %d of %d ^ %#x", i, len(data), mask)
}

// smallManifest has three blocks in two partitions, index builds and an empty
// partition: every part of the format in a few hundred bytes.
func smallManifest(t *testing.T) []byte {
	p := newPool(t, 1, 300)
	hdr := headerFor(p.coll, 20)
	var segs []Segment
	for _, s := range p.segments {
		if len(s.Files) > 0 && len(s.Files) < 120 && len(s.IndexBuilds) > 0 && len(segs) < 3 {
			segs = append(segs, s)
		}
	}
	require.Len(t, segs, 3)
	segs[0].PartitionID, segs[1].PartitionID, segs[2].PartitionID = hdr.Partitions[0].Id, hdr.Partitions[2].Id, hdr.Partitions[2].Id
	sortSegments(segs)
	data, res := writeManifest(t, hdr, segs, WriterOptions{BlockSize: 1})
	require.Equal(t, 3, res.Blocks)
	require.NoError(t, decodeAll(data))
	return data
}

// TestCorruptionExhaustive flips every byte of a small manifest, three ways, and
// checks that each flip is refused with ErrCorrupt (ErrUnsupportedVersion for a newer
// version byte) — never a panic, never a success.
func TestCorruptionExhaustive(t *testing.T) {
	data := smallManifest(t)
	t.Logf("%d bytes", len(data))
	for i := range data {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			flipAt(t, data, i, mask)
		}
	}
}

// TestCorruptionSampled flips sampled bytes of a larger manifest (many blocks), plus
// every byte of its header, footer and trailer.
func TestCorruptionSampled(t *testing.T) {
	p := newPool(t, 1, 300)
	segs := slices.DeleteFunc(p.randomSegments(rand.New(rand.NewPCG(21, 21)), 600), func(s Segment) bool { return len(s.Files) > 2048 })
	data, _ := writeManifest(t, headerFor(p.coll, 21), segs, WriterOptions{BlockSize: 8 << 10})
	rd, err := Open(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	t.Logf("%d bytes, %d blocks", len(data), len(rd.Blocks()))
	require.Greater(t, len(rd.Blocks()), 10)
	rng := rand.New(rand.NewPCG(22, 22))
	for range 300 {
		flipAt(t, data, rng.IntN(len(data)), byte(1+rng.IntN(255)))
	}
	for i := range int(rd.bodyOffset) {
		flipAt(t, data, i, byte(1+rng.IntN(255)))
	}
	for i := int(rd.footerOffset); i < len(data); i++ {
		flipAt(t, data, i, byte(1+rng.IntN(255)))
	}
}

// TestTruncation cuts a manifest at every length (and a large one at sampled lengths
// and every block boundary), extends it, and lies about its size.
func TestTruncation(t *testing.T) {
	data := smallManifest(t)
	for n := range len(data) {
		requireRejected(t, data[:n], false, "truncated to %d of %d bytes", n, len(data))
		requireRejected(t, data[len(data)-n:], false, "first %d of %d bytes cut", len(data)-n, len(data))
	}
	requireRejected(t, append(bytes.Clone(data), 0), false, "a byte appended")
	requireRejected(t, append([]byte{0}, data...), false, "a byte prepended")

	p := newPool(t, 1, 300)
	segs := p.randomSegments(rand.New(rand.NewPCG(23, 23)), 300)
	big, _ := writeManifest(t, headerFor(p.coll, 23), segs, WriterOptions{BlockSize: 16 << 10})
	rd, err := Open(bytes.NewReader(big), int64(len(big)))
	require.NoError(t, err)
	cuts := []int{int(rd.bodyOffset), int(rd.footerOffset), len(big) - 1}
	for _, b := range rd.Blocks() {
		cuts = append(cuts, int(b.Offset), int(b.Offset+b.CompressedSize)-1)
	}
	rng := rand.New(rand.NewPCG(24, 24))
	for range 50 {
		cuts = append(cuts, rng.IntN(len(big)))
	}
	for _, n := range cuts {
		requireRejected(t, big[:n], false, "truncated to %d of %d bytes", n, len(big))
	}

	// A size larger than the object: the read comes up short.
	_, err = Open(bytes.NewReader(data), int64(len(data))+10)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "shorter than its size")
}

// TestUnsupportedVersion: a newer version byte is refused with a message saying which
// version and what this reader supports; a known version that disagrees with the
// other end, or with the header's key layout, is corruption.
func TestUnsupportedVersion(t *testing.T) {
	data := smallManifest(t)
	v1, v2 := versionPositions(data)
	for _, pos := range []int{v1, v2} {
		bad := bytes.Clone(data)
		bad[pos] = Version + 1
		err := decodeAll(bad)
		require.ErrorIs(t, err, ErrUnsupportedVersion)
		require.False(t, errors.Is(err, ErrCorrupt))
		require.ErrorContains(t, err, "format version 3; this reader supports versions 1 to 2")

		bad[pos] = 2 // known, but not this manifest's
		err = decodeAll(bad)
		require.ErrorIs(t, err, ErrCorrupt)
	}
	both := bytes.Clone(data)
	both[v1], both[v2] = 7, 7
	_, err := Verify(bytes.NewReader(both), int64(len(both)))
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	require.ErrorContains(t, err, "version 7")
}

// TestCorruptErrorsSayWhere checks that errors name the damaged part.
func TestCorruptErrorsSayWhere(t *testing.T) {
	data := smallManifest(t)
	rd, err := Open(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	blocks := rd.Blocks()
	for _, tc := range []struct {
		pos  int
		want string
	}{
		{0, "header at offset 0: no manifest magic"},
		{20, "header (" /* checksum mismatch */},
		{int(blocks[1].Offset) + 3, "block 1 at offset"},
		{int(rd.footerOffset) + 2, "footer at offset"},
		{len(data) - 2, "trailer at offset"},
	} {
		bad := bytes.Clone(data)
		bad[tc.pos] ^= 0x55
		err := decodeAll(bad)
		require.ErrorIs(t, err, ErrCorrupt)
		require.ErrorContains(t, err, tc.want)
	}
}

// rewriteFooter changes a manifest's footer and recomputes every checksum, so that only
// the structural checks stand between the change and the reader.
func rewriteFooter(t *testing.T, data []byte, edit func(*manifestpb.Footer)) []byte {
	t.Helper()
	trOff := len(data) - trailerLen
	footerLen := int(binary.LittleEndian.Uint32(data[trOff:]))
	footerOff := trOff - sumLen - footerLen
	var f manifestpb.Footer
	require.NoError(t, proto.Unmarshal(data[footerOff:footerOff+footerLen], &f))
	edit(&f)
	body, err := proto.Marshal(&f)
	require.NoError(t, err)
	out := append(bytes.Clone(data[:footerOff]), body...)
	out = binary.LittleEndian.AppendUint64(out, 0)
	out = putTrailer(out, len(body), data[len(data)-len(Magic)-1])
	return resealed(out)
}

// TestFooterLies checks the structural checks behind the checksums: a footer whose
// checksums are right but whose content is impossible or disagrees with the blocks.
func TestFooterLies(t *testing.T) {
	data := smallManifest(t)
	require.NoError(t, decodeAll(rewriteFooter(t, data, func(*manifestpb.Footer) {})), "resealing alone changes nothing")
	for _, tc := range []struct {
		want string
		edit func(f *manifestpb.Footer)
	}{
		{"impossible for", func(f *manifestpb.Footer) { f.Blocks[0].UncompressedSize = MaxBlockBytes + 1 }},
		{"impossible for", func(f *manifestpb.Footer) {
			f.Blocks[0].UncompressedSize = f.Blocks[0].CompressedSize*maxZstdExpansion + 1
		}},
		{"zstd: decompressed size exceeds", func(f *manifestpb.Footer) { f.Blocks[0].UncompressedSize-- }},
		{"decompressed to", func(f *manifestpb.Footer) { f.Blocks[0].UncompressedSize++ }},
		{"segments cannot fit", func(f *manifestpb.Footer) { f.Blocks[1].Segments = 1 << 40 }},
		{"should start at", func(f *manifestpb.Footer) { f.Blocks[1].Offset++ }},
		{"does not fit before the footer", func(f *manifestpb.Footer) { f.Blocks[2].CompressedSize += 100 }},
		{"the blocks end at offset", func(f *manifestpb.Footer) { f.Blocks = f.Blocks[:2] }},
		{"is not in the header", func(f *manifestpb.Footer) { f.Blocks[0].PartitionId = 424242 }},
		{"out of order", func(f *manifestpb.Footer) {
			f.Blocks[1].PartitionId, f.Blocks[0].PartitionId = f.Blocks[0].PartitionId, f.Blocks[1].PartitionId
		}},
		{"do not hold", func(f *manifestpb.Footer) { f.Blocks[0].FirstSegmentId = 0 }},
		{"; the footer says", func(f *manifestpb.Footer) { f.Blocks[0].FirstSegmentId--; f.Blocks[0].LastSegmentId-- }},
		{"but the summary says", func(f *manifestpb.Footer) { f.Summary.Rows++ }},
		{"the footer says", func(f *manifestpb.Footer) { f.Blocks[0].Rows++; f.Summary.Rows++ }},
		{"the footer says", func(f *manifestpb.Footer) { f.Blocks[0].Files++; f.Summary.Files++; f.Summary.ByKind[0].Files++ }},
		{"summary by kind adds up", func(f *manifestpb.Footer) { f.Summary.ByKind[0].Bytes++ }},
		{"summary by kind", func(f *manifestpb.Footer) { f.Summary.ByKind[0].Kind = 1000 }},
		{"body offset", func(f *manifestpb.Footer) { f.BodyOffset = 3 }},
		{"disagrees with the footer's body offset", func(f *manifestpb.Footer) { f.BodyOffset++ }},
	} {
		err := decodeAll(rewriteFooter(t, data, tc.edit))
		require.ErrorIs(t, err, ErrCorrupt, tc.want)
		require.ErrorContains(t, err, tc.want)
	}

	// Content that only Verify sees: bytes by file kind, byte totals of a block.
	bad := rewriteFooter(t, data, func(f *manifestpb.Footer) {
		f.Blocks[0].Bytes++
		f.Summary.Bytes++
		f.Summary.ByKind[0].Bytes++
	})
	require.NoError(t, decodeAll(bad))
	_, err := Verify(bytes.NewReader(bad), int64(len(bad)))
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "block 0 at offset")
}
