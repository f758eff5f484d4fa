package repository

import (
	"cmp"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Sets of keys by fingerprint, so that millions of referenced keys cost a few bytes
// each rather than a string each.

// compactAt is the smallest length at which a set sorts and deduplicates itself.
const compactAt = 1 << 16

// hashSet is a set of 64-bit key hashes: appended to, then sorted and deduplicated
// whenever it doubles since the last time (so the peak is about twice the distinct
// keys, and the work O(n log n) overall). has is valid after compact.
type hashSet struct {
	s         []uint64
	compacted int
}

func (h *hashSet) add(x uint64) {
	h.s = append(h.s, x)
	if len(h.s) >= 2*max(h.compacted, compactAt) {
		h.compact()
	}
}

func (h *hashSet) compact() {
	slices.Sort(h.s)
	h.s = slices.Compact(h.s)
	h.compacted = len(h.s)
}

func (h *hashSet) has(x uint64) bool {
	_, ok := slices.BinarySearch(h.s, x)
	return ok
}

// keyHash is the 64-bit hash of a key in a hashSet.
func keyHash(key string) uint64 { return xxhash.Sum64String(key) }

// ref is a referenced data object as Verify holds it: a 96-bit fingerprint of the key
// and what the manifest says of the file. 24 bytes.
type ref struct {
	h    uint64
	h2   uint32
	crc  uint32
	size uint64
}

func compareRefs(a, b ref) int {
	return cmp.Or(cmp.Compare(a.h, b.h), cmp.Compare(a.h2, b.h2), cmp.Compare(a.size, b.size), cmp.Compare(a.crc, b.crc))
}

// refSet is a set of refs, kept like hashSet. Records of one key that disagree on size
// or checksum (two manifests describing one file differently) stay separate.
type refSet struct {
	s         []ref
	compacted int
}

func (r *refSet) add(x ref) {
	r.s = append(r.s, x)
	if len(r.s) >= 2*max(r.compacted, compactAt) {
		r.compact()
	}
}

func (r *refSet) compact() {
	slices.SortFunc(r.s, compareRefs)
	r.s = slices.Compact(r.s)
	r.compacted = len(r.s)
}

// group returns the range of records with the fingerprint (h, h2). Valid after compact.
func (r *refSet) group(h uint64, h2 uint32) (lo, hi int) {
	lo, _ = slices.BinarySearchFunc(r.s, ref{h: h, h2: h2}, compareRefs)
	hi = lo
	for hi < len(r.s) && r.s[hi].h == h && r.s[hi].h2 == h2 {
		hi++
	}
	return lo, hi
}

// find returns the index of the exact record, or -1.
func (r *refSet) find(x ref) int {
	i, ok := slices.BinarySearchFunc(r.s, x, compareRefs)
	if !ok {
		return -1
	}
	return i
}

// fingerprinter computes 96-bit key fingerprints; not safe for concurrent use.
type fingerprinter struct{ d *xxhash.Digest }

const fingerprintSeed = 0x736e61706b656570 // "snapkeep"

func newFingerprinter() *fingerprinter {
	return &fingerprinter{d: xxhash.NewWithSeed(fingerprintSeed)}
}

func (f *fingerprinter) of(key string) (uint64, uint32) {
	f.d.ResetWithSeed(fingerprintSeed)
	_, _ = f.d.WriteString(key)
	return xxhash.Sum64String(key), uint32(f.d.Sum64())
}
