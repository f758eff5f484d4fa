package repository

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const fuzzIndexKey = "repo/index/00000000000000000007"

// FuzzDecodeIndex feeds arbitrary bytes to the index decoder: it must never panic,
// must fail only with ErrCorrupt or ErrUnsupportedVersion naming the key, and what it
// accepts must encode and decode back to the same index.
//
// The CRC would stop nearly every mutation, so when reseal is true the target first
// rewrites the frame's length and CRC-32C as a writer would, and the fuzzer reaches
// zstd, the JSON and the checks behind them; the JSON is then bounded to 1 MiB (rather
// than MaxIndexJSON) to keep decompression bombs cheap.
//
//	go test ./manifest/repository -run '^$' -fuzz '^FuzzDecodeIndex$' -fuzztime 10m
//
// The seed corpus is real encodings (sampleIndex), made here.
func FuzzDecodeIndex(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 3} {
		ix := sampleIndex(rng, 7, n)
		b, err := EncodeIndex(ix)
		require.NoError(f, err)
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte(IndexMagic), true)
	f.Fuzz(func(t *testing.T, data []byte, reseal bool) {
		limit := MaxIndexJSON
		if reseal && len(data) >= IndexHeaderLen {
			data = append([]byte(nil), data...) // the input must not be modified
			binary.BigEndian.PutUint32(data[12:], uint32(len(data)-IndexHeaderLen))
			binary.BigEndian.PutUint32(data[16:], frameCRC(data[8:16], data[IndexHeaderLen:]))
			limit = 1 << 20
		}
		ix, err := decodeIndex(fuzzIndexKey, data, limit)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrUnsupportedVersion: %v", err)
			}
			if !strings.Contains(err.Error(), fuzzIndexKey) {
				t.Fatalf("error does not name the key: %v", err)
			}
			return
		}
		b, err := EncodeIndex(ix)
		if err != nil {
			t.Fatalf("an accepted index does not encode: %v", err)
		}
		again, err := DecodeIndex(fuzzIndexKey, b)
		if err != nil {
			t.Fatalf("a re-encoded index does not decode: %v", err)
		}
		require.Equal(t, ix, again)
	})
}

// FuzzDecodeMarker feeds arbitrary bytes to DecodeMarker: no panic, only its three
// errors, and an accepted marker encodes and decodes back the same.
func FuzzDecodeMarker(f *testing.F) {
	for _, writer := range []string{"cluster-a", ""} {
		b, err := encodeMarker(Marker{Format: FormatName, Version: Version, RepositoryID: NewID(), CreatedAt: t0, WriterClusterID: writer})
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"format":"snapkeep-repository","version":2}`))
	f.Add([]byte(`{"format":"other"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMarker(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotARepository) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		b, err := encodeMarker(m)
		if err != nil {
			t.Fatalf("an accepted marker does not encode: %v", err)
		}
		again, err := DecodeMarker(b)
		if err != nil {
			t.Fatalf("a re-encoded marker does not decode: %v", err)
		}
		require.Equal(t, m, again)
	})
}
