package checker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/snapkeep/snapkeep/jepsen/history"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// hb builds synthetic histories: each op is given explicitly with its times.
type hb struct {
	ops []history.Op
}

func (h *hb) add(client int, kind history.Kind, call, ret int64, result history.Outcome, in history.Input, out history.Output, errMsg string) int64 {
	id := int64(len(h.ops) + 1)
	h.ops = append(h.ops, history.Op{ID: id, Client: client, Kind: kind, Input: in, Call: call, Return: ret,
		Node: "n1", Result: result, Output: out, Error: errMsg})
	return id
}

func snapIn(name string) history.Input { return history.Input{Collection: "c", Name: name} }

func (h *hb) create(c int, call, ret int64, name string, id uint64) int64 {
	return h.add(c, history.SnapshotCreate, call, ret, history.OK, snapIn(name), history.Output{SnapshotID: id, State: "COMMITTED"}, "")
}

func (h *hb) createUnknown(c int, call, ret int64, name string) int64 {
	return h.add(c, history.SnapshotCreate, call, ret, history.Unknown, snapIn(name), history.Output{}, "deadline exceeded")
}

func (h *hb) drop(c int, call, ret int64, name string, existed bool) int64 {
	return h.add(c, history.SnapshotDrop, call, ret, history.OK, snapIn(name), history.Output{Existed: existed}, "")
}

func (h *hb) dropUnknown(c int, call, ret int64, name string) int64 {
	return h.add(c, history.SnapshotDrop, call, ret, history.Unknown, snapIn(name), history.Output{}, "unavailable")
}

func (h *hb) describe(c int, call, ret int64, name, state string, id uint64) int64 {
	out := history.Output{Found: state != "", State: state, SnapshotID: id}
	return h.add(c, history.SnapshotDescribe, call, ret, history.OK, snapIn(name), out, "")
}

func (h *hb) list(c int, call, ret int64, states map[string]string) int64 {
	return h.add(c, history.SnapshotList, call, ret, history.OK, history.Input{Collection: "c"}, history.Output{States: states}, "")
}

func runLinear(t *testing.T, c Checker, ops []history.Op) []Violation {
	t.Helper()
	dir := t.TempDir()
	vs, err := c.Check(context.Background(), Input{Ops: ops, OutDir: dir})
	require.NoError(t, err)
	for _, v := range vs {
		require.NotEmpty(t, v.Artifact)
		st, err := os.Stat(filepath.Join(dir, v.Artifact))
		require.NoError(t, err, "the visualization is written")
		require.Positive(t, st.Size())
	}
	return vs
}

func TestRegistry(t *testing.T) {
	tests := []struct {
		name  string
		build func(h *hb) []int64 // returns the op ids a violation must name; nil: valid
	}{
		{"create, describe, list, drop, describe", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.describe(1, 11, 12, "a", "COMMITTED", 5)
			h.list(1, 13, 14, map[string]string{"a": "COMMITTED"})
			h.drop(0, 15, 20, "a", true)
			h.describe(1, 21, 22, "a", "", 0)
			h.drop(0, 23, 24, "a", false)
			h.list(1, 25, 26, map[string]string{})
			return nil
		}},
		{"pending seen during a create, then committed", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.describe(1, 2, 3, "a", "PENDING", 5)
			h.list(1, 4, 5, map[string]string{"a": "PENDING"})
			h.describe(1, 6, 7, "a", "COMMITTED", 5)
			return nil
		}},
		{"dropped and created again with a new id", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.drop(0, 11, 12, "a", true)
			h.create(0, 13, 20, "a", 9)
			h.describe(1, 21, 22, "a", "COMMITTED", 9)
			return nil
		}},
		{"already exists", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.add(1, history.SnapshotCreate, 11, 12, history.Fail, snapIn("a"), history.Output{}, "snapshot \"a\" already exists")
			return nil
		}},
		{"concurrent unknown create, seen committed", func(h *hb) []int64 {
			h.createUnknown(0, 0, 10, "a")
			h.describe(1, 20, 21, "a", "COMMITTED", 7)
			h.describe(1, 22, 23, "a", "COMMITTED", 7)
			return nil
		}},
		{"concurrent unknown create, never seen", func(h *hb) []int64 {
			h.createUnknown(0, 0, 10, "a")
			h.describe(1, 20, 21, "a", "", 0)
			return nil
		}},
		{"unknown create seen pending then absent (given up)", func(h *hb) []int64 {
			h.createUnknown(0, 0, 10, "a")
			h.describe(1, 11, 12, "a", "PENDING", 7)
			h.describe(1, 13, 14, "a", "", 0)
			return nil
		}},
		{"unknown drop, either way", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.dropUnknown(0, 11, 12, "a")
			h.describe(1, 13, 14, "a", "COMMITTED", 5)
			h.describe(2, 15, 16, "a", "", 0)
			return nil
		}},
		{"concurrent describe may see before or after a drop", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.drop(0, 11, 20, "a", true)
			h.describe(1, 12, 13, "a", "COMMITTED", 5)
			h.describe(2, 14, 15, "a", "", 0)
			return nil
		}},
		{"concurrent drops both report existed", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.drop(0, 11, 20, "a", true)
			h.drop(1, 11, 20, "a", true)
			h.describe(1, 21, 22, "a", "", 0)
			return nil
		}},
		{"a drop reads the old snapshot, a create makes a new one before it proposes", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.drop(0, 11, 30, "a", true)
			h.drop(1, 12, 13, "a", true)
			h.create(1, 14, 15, "a", 9)
			h.describe(1, 31, 32, "a", "COMMITTED", 9)
			return nil
		}},
		{"a list shows a name nobody created", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			return []int64{h.list(1, 11, 12, map[string]string{"a": "COMMITTED", "ghost": "COMMITTED"})}
		}},
		{"a pending drop (never returned) counts as unknown", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.add(0, history.SnapshotDrop, 11, 0, "", snapIn("a"), history.Output{}, "")
			h.describe(1, 13, 14, "a", "", 0)
			return nil
		}},
		{"stale describe misses an acknowledged create", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			return []int64{h.describe(1, 11, 12, "a", "", 0)}
		}},
		{"stale list misses an acknowledged create", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			return []int64{h.list(1, 11, 12, map[string]string{})}
		}},
		{"acknowledged drop seen as committed later", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.drop(0, 11, 12, "a", true)
			return []int64{h.describe(1, 13, 14, "a", "COMMITTED", 5)}
		}},
		{"old id seen after drop and create again", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			h.drop(0, 11, 12, "a", true)
			h.create(0, 13, 20, "a", 9)
			return []int64{h.describe(1, 21, 22, "a", "COMMITTED", 5)}
		}},
		{"committed seen pending again", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			return []int64{h.describe(1, 11, 12, "a", "PENDING", 5)}
		}},
		{"drop says absent after an acknowledged create", func(h *hb) []int64 {
			h.create(0, 0, 10, "a", 5)
			return []int64{h.drop(1, 11, 12, "a", false)}
		}},
		{"unknown create's snapshot changes id", func(h *hb) []int64 {
			h.createUnknown(0, 0, 10, "a")
			h.describe(1, 20, 21, "a", "COMMITTED", 7)
			return []int64{h.describe(1, 22, 23, "a", "COMMITTED", 8)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &hb{}
			want := tc.build(h)
			vs := runLinear(t, &Registry{}, h.ops)
			if want == nil {
				require.Empty(t, vs)
				return
			}
			require.Len(t, vs, 1, "%+v", vs)
			for _, id := range want {
				require.Contains(t, vs[0].OpIDs, id, vs[0].Message)
			}
		})
	}
}

func segFiles(name string) []history.File {
	return []history.File{{Key: "snapkeep/" + name + "/insert/1", Size: 10, CRC32C: 0xabc}, {Key: "snapkeep/" + name + "/stats/2", Size: 3, CRC32C: 7}}
}

func (h *hb) alloc(c int, call, ret int64, id uint64) int64 {
	return h.add(c, history.SegmentAllocate, call, ret, history.OK, history.Input{Collection: "c"}, history.Output{SegmentID: id, State: "ALLOCATED"}, "")
}

func (h *hb) flush(c int, call, ret int64, result history.Outcome, id uint64, files []history.File) int64 {
	return h.add(c, history.SegmentFlush, call, ret, result, history.Input{SegmentID: id, Files: files}, history.Output{State: "FLUSHED"}, "")
}

func (h *hb) compact(c int, call, ret int64, result history.Outcome, out uint64, files []history.File, inputs ...uint64) int64 {
	return h.add(c, history.SegmentCompact, call, ret, result, history.Input{SegmentID: out, Inputs: inputs, Files: files}, history.Output{State: "FLUSHED"}, "")
}

func (h *hb) get(c int, call, ret int64, id uint64, state string, files []history.File) int64 {
	return h.add(c, history.SegmentGet, call, ret, history.OK, history.Input{SegmentID: id}, history.Output{Found: state != "", State: state, Files: files}, "")
}

func TestCatalog(t *testing.T) {
	f1, f2, f3 := segFiles("1"), segFiles("2"), segFiles("3")
	tests := []struct {
		name  string
		build func(h *hb) []int64
	}{
		{"allocate, flush, compact, drop, GC", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.alloc(0, 2, 3, 2)
			h.get(1, 4, 5, 1, "ALLOCATED", nil)
			h.flush(0, 6, 7, history.OK, 1, f1)
			h.get(1, 8, 9, 1, "FLUSHED", f1)
			h.compact(0, 10, 11, history.OK, 2, f2, 1)
			h.get(1, 12, 13, 1, "DROPPED", f1)
			h.get(1, 14, 15, 2, "FLUSHED", f2)
			h.add(0, history.SegmentDrop, 16, 17, history.OK, history.Input{SegmentIDs: []uint64{2}}, history.Output{}, "")
			h.get(1, 18, 19, 2, "DROPPED", f2)
			h.get(1, 20, 21, 2, "", nil)
			h.add(1, history.SegmentGet, 22, 23, history.Fail, history.Input{SegmentID: 1}, history.Output{}, "segment 1 not found")
			return nil
		}},
		{"lease expiry, then GC", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.get(1, 2, 3, 1, "DROPPED", nil)
			h.add(0, history.SegmentFlush, 4, 5, history.Fail, history.Input{SegmentID: 1, Files: f1}, history.Output{}, "lease expired")
			h.get(1, 6, 7, 1, "", nil)
			return nil
		}},
		{"unknown flush, either way", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.alloc(0, 0, 1, 2)
			h.flush(0, 2, 3, history.Unknown, 1, f1)
			h.flush(0, 2, 3, history.Unknown, 2, f2)
			h.get(1, 4, 5, 1, "ALLOCATED", nil)
			h.get(1, 6, 7, 1, "FLUSHED", f1)
			h.get(1, 6, 7, 2, "ALLOCATED", nil)
			return nil
		}},
		{"unknown compaction, either way", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.alloc(0, 0, 1, 2)
			h.alloc(0, 0, 1, 3)
			h.flush(0, 2, 3, history.OK, 1, f1)
			h.compact(0, 4, 5, history.Unknown, 2, f2, 1)
			h.compact(0, 4, 5, history.Unknown, 3, f3, 1)
			h.get(1, 6, 7, 1, "FLUSHED", f1)
			h.get(1, 8, 9, 1, "DROPPED", f1)
			h.get(1, 8, 9, 3, "ALLOCATED", nil)
			return nil
		}},
		{"a concurrent get sees a compacted input either way", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.alloc(0, 0, 1, 2)
			h.flush(0, 2, 3, history.OK, 1, f1)
			h.compact(0, 4, 10, history.OK, 2, f2, 1)
			h.get(1, 5, 6, 1, "FLUSHED", f1)
			h.get(1, 7, 8, 1, "DROPPED", f1)
			return nil
		}},
		{"a release answered deletable drops a flushed segment; one answered keep changes nothing", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.alloc(0, 0, 1, 2)
			h.flush(0, 2, 3, history.OK, 1, f1)
			h.flush(0, 2, 3, history.OK, 2, f2)
			h.add(0, history.Release, 4, 5, history.OK, history.Input{SegmentIDs: []uint64{1, 2}}, history.Output{Verdicts: []bool{true, false}}, "")
			h.get(1, 6, 7, 1, "DROPPED", f1)
			h.get(1, 6, 7, 2, "FLUSHED", f2)
			return nil
		}},
		{"an unknown release, either way", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.alloc(0, 0, 1, 2)
			h.flush(0, 2, 3, history.OK, 1, f1)
			h.flush(0, 2, 3, history.OK, 2, f2)
			h.add(0, history.Release, 4, 5, history.Unknown, history.Input{SegmentIDs: []uint64{1, 2}}, history.Output{}, "")
			h.get(1, 6, 7, 1, "DROPPED", f1)
			h.get(1, 6, 7, 2, "FLUSHED", f2)
			return nil
		}},
		{"a segment released yet flushed afterwards", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.flush(0, 2, 3, history.OK, 1, f1)
			h.add(0, history.Release, 4, 5, history.OK, history.Input{SegmentIDs: []uint64{1}}, history.Output{Verdicts: []bool{true}}, "")
			return []int64{h.get(1, 6, 7, 1, "FLUSHED", f1)}
		}},
		{"an upload in flight answered deletable", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			return []int64{h.add(0, history.Release, 2, 3, history.OK, history.Input{SegmentIDs: []uint64{1}}, history.Output{Verdicts: []bool{true}}, "")}
		}},
		{"a flush lost", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.flush(0, 2, 3, history.OK, 1, f1)
			return []int64{h.get(1, 4, 5, 1, "ALLOCATED", nil)}
		}},
		{"a flushed segment not found", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.flush(0, 2, 3, history.OK, 1, f1)
			return []int64{h.get(1, 4, 5, 1, "", nil)}
		}},
		{"a flush with other files", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.flush(0, 2, 3, history.OK, 1, f1)
			return []int64{h.get(1, 4, 5, 1, "FLUSHED", f2)}
		}},
		{"a compacted input seen flushed after the compaction returned", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.alloc(0, 0, 1, 2)
			h.flush(0, 2, 3, history.OK, 1, f1)
			h.compact(0, 4, 5, history.OK, 2, f2, 1)
			return []int64{h.get(1, 6, 7, 1, "FLUSHED", f1)}
		}},
		{"a compaction output not flushed after it returned", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.alloc(0, 0, 1, 2)
			h.flush(0, 2, 3, history.OK, 1, f1)
			h.compact(0, 4, 5, history.OK, 2, f2, 1)
			return []int64{h.get(1, 6, 7, 2, "ALLOCATED", nil)}
		}},
		{"a flush acknowledged after the lease expired", func(h *hb) []int64 {
			h.alloc(0, 0, 1, 1)
			h.get(1, 2, 3, 1, "DROPPED", nil)
			return []int64{h.flush(0, 4, 5, history.OK, 1, f1)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &hb{}
			want := tc.build(h)
			vs := runLinear(t, &Catalog{}, h.ops)
			if want == nil {
				require.Empty(t, vs)
				return
			}
			require.NotEmpty(t, vs)
			for _, id := range want {
				require.Contains(t, vs[0].OpIDs, id, vs[0].Message)
			}
		})
	}
}

// TestTimeoutIsUnknown: a search cut short by its time budget is neither OK nor a
// violation but an error wrapping ErrUnknown.
func TestTimeoutIsUnknown(t *testing.T) {
	h := &hb{}
	h.create(0, 0, 1, "a", 1)
	// Many concurrent operations that can each go either way, and reads that force a
	// long search.
	for i := 0; i < 400; i++ {
		if i%2 == 0 {
			h.dropUnknown(i+1, 2, 3, "a")
		} else {
			h.createUnknown(i+1, 2, 3, "a")
		}
	}
	for i := 0; i < 200; i++ {
		state := ""
		if i%2 == 1 {
			state = "COMMITTED"
		}
		h.describe(1000+i, 4+int64(i), 4+int64(i), "a", state, 0)
	}
	h.describe(5000, 10000, 10001, "a", "PENDING", 3)
	vs, err := (&Registry{Timeout: time.Millisecond}).Check(context.Background(), Input{Ops: h.ops})
	require.ErrorIs(t, err, ErrUnknown)
	require.Empty(t, vs)
}

func TestAllOrder(t *testing.T) {
	var names []string
	for _, c := range All() {
		names = append(names, c.Name())
	}
	require.Equal(t, []string{"linearizable-registry", "linearizable-catalog", "lost-undone", "bucket-audit", "external-collector", "restores", "repository", "fsck", "policy", "in-flight", "disk-faults", "convergence", "log-matching", "cluster-clock", "node-invariants", "scrub"}, names)
}
