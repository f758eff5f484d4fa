package fsm

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/btree"
	"github.com/stretchr/testify/require"
)

// findSorted finds exactly what one lookup per id finds, in order, whether the ids
// are dense in the tree (one walk), sparse (the walk gives up and looks them up), or
// partly absent, and whatever lies past them.
func TestFindSortedAgreesWithLookups(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tree, ids func(r *rand.Rand) []uint64
	}{
		{"dense: every id in the tree", span(1, 1000, 1), span(1, 1000, 1)},
		{"a dense range inside a larger tree", span(1, 5000, 1), span(1200, 2200, 1)},
		{"some ids absent", span(1, 3000, 2), span(1, 3000, 3)},
		{"sparse: the walk gives up", span(1, 100_000, 1), span(1, 100_000, 997)},
		{"empty ids", span(1, 10, 1), func(*rand.Rand) []uint64 { return nil }},
		{"no id in the tree", span(1, 100, 2), span(1000, 1100, 1)},
		{"random", randomIDs(20_000, 50_000), randomIDs(3_000, 50_000)},
		{"random, nearly all", randomIDs(20_000, 21_000), randomIDs(19_000, 21_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			tree := btree.NewG(btreeDegree, func(a, b listSize) bool { return a.id < b.id })
			for _, id := range tc.tree(r) {
				tree.ReplaceOrInsert(listSize{id: id, files: id * 3})
			}
			ids := tc.ids(r)
			var got, want []listSize
			var gotIdx, wantIdx []int
			for i, id := range ids {
				if n, ok := tree.Get(listSize{id: id}); ok {
					want, wantIdx = append(want, n), append(wantIdx, i)
				}
			}
			findSorted(tree, ids, func(id uint64) listSize { return listSize{id: id} }, func(n listSize) uint64 { return n.id },
				func(i int, n listSize) { got, gotIdx = append(got, n), append(gotIdx, i) })
			require.Equal(t, want, got)
			require.Equal(t, wantIdx, gotIdx)
		})
	}
}

// span is lo, lo+step, ... up to hi.
func span(lo, hi, step uint64) func(*rand.Rand) []uint64 {
	return func(*rand.Rand) []uint64 {
		var out []uint64
		for id := lo; id <= hi; id += step {
			out = append(out, id)
		}
		return out
	}
}

// randomIDs is n distinct ids in [1, max], sorted.
func randomIDs(n int, max uint64) func(*rand.Rand) []uint64 {
	return func(r *rand.Rand) []uint64 {
		set := map[uint64]bool{}
		for len(set) < n {
			set[1+r.Uint64N(max)] = true
		}
		out := make([]uint64, 0, n)
		for id := range set {
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}
}
