package manifest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/manifest/manifestpb"
)

// FuzzDecode feeds arbitrary bytes to Open, Segments, Verify and Dump: they must never
// panic, must fail only with ErrCorrupt or ErrUnsupportedVersion, and must agree with
// each other; whatever Verify accepts must re-encode to a manifest with the same
// content.
//
// Checksums would stop nearly every mutation at the first check, so when reseal is
// true the target first recomputes every checksum of the input (header, blocks, body,
// footer) as a writer would: the fuzzer then reaches the structural checks behind
// them.
//
// Run it (see also DESIGN.md):
//
//	go test ./manifest -run '^$' -fuzz '^FuzzDecode$' -fuzztime 10m -fuzzminimizetime 2s
//
// The seed corpus is in testdata/fuzz/FuzzDecode; `go test ./manifest -run
// TestFuzzSeedCorpus -manifest.write-corpus` rewrites it.
func FuzzDecode(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, reseal bool) {
		if reseal {
			data = resealed(data)
		}
		checkDecode(t, data)
	})
}

func formatError(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnsupportedVersion)
}

// checkDecode runs every reader over data and checks they agree.
func checkDecode(t *testing.T, data []byte) {
	size := int64(len(data))
	rd, err := Open(bytes.NewReader(data), size)
	_, verr := Verify(bytes.NewReader(data), size)
	if err != nil {
		require.True(t, formatError(err), "Open: %v", err)
		require.Error(t, verr, "Verify accepted what Open refused")
		return
	}
	var segs []Segment
	err = rd.Segments(context.Background(), ReadOptions{Parallelism: 2}, func(s *Segment) error {
		segs = append(segs, *s)
		return nil
	})
	if err != nil {
		require.True(t, formatError(err), "Segments: %v", err)
		require.Error(t, verr, "Verify accepted what Segments refused")
		return
	}
	require.EqualValues(t, rd.Summary().Segments, len(segs))
	if verr != nil {
		require.True(t, formatError(verr), "Verify: %v", verr)
		return
	}
	require.NoError(t, Dump(io.Discard, rd))

	// What Verify accepts, a writer accepts too, and it reads back the same.
	var buf bytes.Buffer
	w, err := NewWriter(&buf, rd.Header(), WriterOptions{BlockSize: 1 + len(data)%4096})
	require.NoError(t, err)
	for i := range segs {
		require.NoError(t, w.Add(&segs[i]))
	}
	res, err := w.Close()
	require.NoError(t, err)
	require.Equal(t, rd.Summary(), res.Summary)
	again, err := Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	var segs2 []Segment
	require.NoError(t, again.Segments(context.Background(), ReadOptions{}, func(s *Segment) error {
		segs2 = append(segs2, *s)
		return nil
	}))
	require.Equal(t, segs, segs2)
}

// resealed returns a copy of data with every checksum it can locate recomputed. It
// trusts the lengths it finds only as far as they fit.
func resealed(data []byte) []byte {
	if len(data) < minSize {
		return data
	}
	d := bytes.Clone(data)
	var headerSum uint64
	hasHeader := false
	if n := int(binary.LittleEndian.Uint32(d[len(Magic)+1:])); n <= len(d)-prefixLen-sumLen {
		headerSum = xxhash.Sum64(d[:prefixLen+n])
		binary.LittleEndian.PutUint64(d[prefixLen+n:], headerSum)
		hasHeader = true
	}
	trOff := len(d) - trailerLen
	footerLen := int(binary.LittleEndian.Uint32(d[trOff:]))
	footerOff := trOff - sumLen - footerLen
	if footerLen > trOff-sumLen || footerOff < 0 {
		return d
	}
	var footer manifestpb.Footer
	if proto.Unmarshal(d[footerOff:footerOff+footerLen], &footer) != nil {
		binary.LittleEndian.PutUint64(d[footerOff+footerLen:], xxhash.Sum64(d[footerOff:footerOff+footerLen]))
		return d
	}
	if hasHeader {
		footer.HeaderChecksum = headerSum
	}
	for _, b := range footer.Blocks {
		if b != nil && b.Offset <= uint64(footerOff) && b.CompressedSize <= uint64(footerOff)-b.Offset {
			b.Checksum = xxhash.Sum64(d[b.Offset : b.Offset+b.CompressedSize])
		}
	}
	footer.BodyChecksum = xxhash.Sum64(d[:footerOff])
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(&footer)
	if err != nil {
		return d
	}
	out := append(d[:footerOff:footerOff], body...)
	out = binary.LittleEndian.AppendUint64(out, xxhash.Sum64(body))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	return append(out, d[trOff+4:]...) // version and magic as they were
}

// fuzzSeeds are valid manifests of several shapes, and a few broken ones.
func fuzzSeeds(t testing.TB) [][]byte {
	rd := func(segs []Segment, hdr *manifestpb.Header, blockSize int) []byte {
		data, _ := writeManifest(t, hdr, segs, WriterOptions{BlockSize: blockSize})
		return data
	}
	p := newPool(t, 1, 300)
	hdr := headerFor(p.coll, 30)
	small := func(n int) []Segment {
		var out []Segment
		for _, s := range p.segments {
			if len(s.Files) < 200 && len(out) < n {
				s.PartitionID = hdr.Partitions[len(out)%3].Id
				out = append(out, s)
			}
		}
		sortSegments(out)
		return out
	}
	one := rd(small(1), hdr, 0)
	seeds := [][]byte{
		rd(nil, &manifestpb.Header{}, 0),
		rd(nil, hdr, 0),
		one,
		rd(small(4), hdr, 1),
		rd(small(12), hdr, 300),
		rd([]Segment{{ID: 1, PartitionID: 5, RowCount: 1}}, &manifestpb.Header{Partitions: []*manifestpb.Partition{{Id: 5}}}, 0),
		one[:len(one)/2],
		{},
	}
	return seeds
}

var writeCorpus = flag.Bool("manifest.write-corpus", false, "rewrite testdata/fuzz/FuzzDecode from fuzzSeeds")

// TestFuzzSeedCorpus runs the committed seed corpus through checkDecode (go test runs
// it as part of FuzzDecode too) and, with -manifest.write-corpus, rewrites it.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if *writeCorpus {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for i, seed := range fuzzSeeds(t) {
			for _, reseal := range []bool{false, true} {
				body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", seed, reseal)
				name := filepath.Join(dir, fmt.Sprintf("seed-%02d-%v", i, reseal))
				require.NoError(t, os.WriteFile(name, []byte(body), 0o644))
			}
		}
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.NotEmpty(t, entries, "the committed seed corpus is missing")
}
