package checker

import (
	"math/rand"
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/jepsen/history"
)

// simOp is an operation of a simulated run: it takes effect at lin, inside
// [Call, Return] (or never, when it is Unknown and not applied).
type simOp struct {
	op      history.Op
	lin     int64
	applied bool
}

// simulate gives each client a sequence of operations with random, overlapping
// intervals and a random linearization point in each; step computes outputs in
// linearization order. Some operations end Unknown: those take effect or not.
func simulate(r *rand.Rand, clients, perClient int, gen func(r *rand.Rand, client int) history.Op, step func(op *history.Op, applied bool)) []history.Op {
	var sims []*simOp
	for c := 0; c < clients; c++ {
		t := int64(r.Intn(20))
		for i := 0; i < perClient; i++ {
			op := gen(r, c)
			op.Client = c
			op.Call = t
			lin := t + 1 + int64(r.Intn(30))
			op.Return = lin + 1 + int64(r.Intn(30))
			s := &simOp{op: op, lin: lin, applied: true}
			if r.Intn(10) == 0 {
				s.op.Result = history.Unknown
				s.applied = r.Intn(2) == 0
			}
			sims = append(sims, s)
			t = op.Return + 1 + int64(r.Intn(5))
		}
	}
	sort.SliceStable(sims, func(i, j int) bool { return sims[i].lin < sims[j].lin })
	for _, s := range sims {
		step(&s.op, s.applied)
	}
	sort.SliceStable(sims, func(i, j int) bool { return sims[i].op.Call < sims[j].op.Call })
	ops := make([]history.Op, len(sims))
	for i, s := range sims {
		ops[i] = s.op
		ops[i].ID = int64(i + 1)
		if ops[i].Result == history.Unknown {
			ops[i].Output = history.Output{}
		}
	}
	return ops
}

func TestRegistryRandomHistories(t *testing.T) {
	names := []string{"a", "b", "c"}
	clients, perClient := 6, 60
	if os.Getenv("JEPSEN_BIG") != "" {
		clients, perClient = 10, 500
	}
	for seed := int64(1); seed <= 10; seed++ {
		r := rand.New(rand.NewSource(seed))
		live := map[string]uint64{}
		var nextID uint64 = 10
		ops := simulate(r, clients, perClient, func(r *rand.Rand, _ int) history.Op {
			kinds := []history.Kind{history.SnapshotCreate, history.SnapshotDrop, history.SnapshotDescribe, history.SnapshotDescribe, history.SnapshotList}
			k := kinds[r.Intn(len(kinds))]
			in := history.Input{Collection: "c", Name: names[r.Intn(len(names))]}
			if k == history.SnapshotList {
				in.Name = ""
			}
			return history.Op{Kind: k, Input: in, Result: history.OK}
		}, func(op *history.Op, applied bool) {
			name := op.Input.Name
			switch op.Kind {
			case history.SnapshotCreate:
				if live[name] != 0 {
					op.Result, op.Error = history.Fail, "already exists"
					if !applied {
						op.Result = history.Unknown
					}
					return
				}
				if applied {
					nextID += uint64(1 + r.Intn(3))
					live[name] = nextID
					op.Output = history.Output{SnapshotID: nextID, State: "COMMITTED"}
				}
			case history.SnapshotDrop:
				op.Output.Existed = live[name] != 0
				if applied {
					delete(live, name)
				}
			case history.SnapshotDescribe:
				if id := live[name]; id != 0 {
					op.Output = history.Output{Found: true, SnapshotID: id, State: "COMMITTED"}
				}
			case history.SnapshotList:
				op.Output.States = map[string]string{}
				for n, id := range live {
					if id != 0 {
						op.Output.States[n] = "COMMITTED"
					}
				}
			}
		})
		require.Empty(t, runLinear(t, &Registry{}, ops), "seed %d: a valid history", seed)

		// Make one describe that returned after an acknowledged create of its name
		// (and with no drop of the name since) stale: it must be caught.
		broken := slices.Clone(ops)
		target := -1
		for i, op := range broken {
			if op.Kind != history.SnapshotDescribe || op.Result != history.OK || !op.Output.Found {
				continue
			}
			// An acknowledged create returned before the describe was called, and no
			// drop may have come between them.
			safe := false
			for _, c := range broken {
				if c.Input.Name != op.Input.Name || c.Kind != history.SnapshotCreate || c.Result != history.OK || c.Return >= op.Call {
					continue
				}
				between := false
				for _, d := range broken {
					if d.Input.Name == op.Input.Name && d.Kind == history.SnapshotDrop && d.Result != history.Fail &&
						d.Call < op.Return && (d.Result == history.Unknown || d.Return > c.Call) {
						between = true
					}
				}
				safe = safe || !between
			}
			if safe {
				target = i
				break
			}
		}
		if target < 0 {
			t.Logf("seed %d: no describe to break", seed)
			continue
		}
		broken[target].Output = history.Output{}
		vs := runLinear(t, &Registry{}, broken)
		require.NotEmpty(t, vs, "seed %d: a stale describe", seed)
		require.Contains(t, vs[0].OpIDs, broken[target].ID)
	}
}

func TestCatalogRandomHistories(t *testing.T) {
	clients, perClient := 6, 60
	if os.Getenv("JEPSEN_BIG") != "" {
		clients, perClient = 10, 500
	}
	for seed := int64(1); seed <= 10; seed++ {
		r := rand.New(rand.NewSource(seed))
		type seg struct {
			st    byte
			files []history.File
		}
		segs := map[uint64]*seg{}
		var known []uint64 // ids of acknowledged allocations
		var nextID uint64 = 100
		pick := func(want byte) (uint64, bool) {
			var ids []uint64
			for _, id := range known {
				if segs[id].st == want {
					ids = append(ids, id)
				}
			}
			if len(ids) == 0 {
				return 0, false
			}
			return ids[r.Intn(len(ids))], true
		}
		files := func(id uint64) []history.File {
			return []history.File{{Key: "k/" + string(rune('a'+r.Intn(26))), Size: int64(r.Intn(100)), CRC32C: r.Uint32()}}
		}
		ops := simulate(r, clients, perClient, func(r *rand.Rand, _ int) history.Op {
			kinds := []history.Kind{history.SegmentAllocate, history.SegmentAllocate, history.SegmentFlush, history.SegmentFlush,
				history.SegmentCompact, history.SegmentDrop, history.SegmentGet, history.SegmentGet, history.SegmentGet}
			return history.Op{Kind: kinds[r.Intn(len(kinds))], Result: history.OK}
		}, func(op *history.Op, applied bool) {
			// The system's own moves, now and then: leases expire, GC removes records.
			for _, id := range known {
				switch s := segs[id]; {
				case s.st == segAllocated && r.Intn(40) == 0:
					s.st = segDropped
				case s.st == segDropped && r.Intn(10) == 0:
					s.st = segGone
				}
			}
			fail := func() {
				if op.Result == history.OK {
					op.Result, op.Error = history.Fail, "failed precondition"
				}
			}
			switch op.Kind {
			case history.SegmentAllocate:
				nextID++
				if applied {
					segs[nextID] = &seg{st: segAllocated}
					if op.Result == history.OK {
						known = append(known, nextID)
					}
				}
				op.Output = history.Output{SegmentID: nextID, State: "ALLOCATED"}
			case history.SegmentFlush:
				id, ok := pick(segAllocated)
				if !ok {
					op.Input.SegmentID = 100
					fail()
					return
				}
				op.Input = history.Input{SegmentID: id, Files: files(id)}
				if applied {
					segs[id].st, segs[id].files = segFlushed, op.Input.Files
				}
				op.Output.State = "FLUSHED"
			case history.SegmentCompact:
				in, ok1 := pick(segFlushed)
				out, ok2 := pick(segAllocated)
				if !ok1 || !ok2 {
					op.Input.Inputs, op.Input.SegmentID = []uint64{100}, 101
					fail()
					return
				}
				op.Input = history.Input{Inputs: []uint64{in}, SegmentID: out, Files: files(out)}
				if applied {
					segs[in].st = segDropped
					segs[out].st, segs[out].files = segFlushed, op.Input.Files
				}
				op.Output.State = "FLUSHED"
			case history.SegmentDrop:
				if len(known) == 0 {
					op.Input.SegmentIDs = []uint64{100}
					fail()
					return
				}
				id := known[r.Intn(len(known))]
				op.Input.SegmentIDs = []uint64{id}
				if segs[id].st == segGone {
					fail()
					return
				}
				if applied {
					segs[id].st = segDropped
				}
			case history.SegmentGet:
				if len(known) == 0 {
					op.Input.SegmentID = 100
					fail()
					return
				}
				id := known[r.Intn(len(known))]
				op.Input.SegmentID = id
				s := segs[id]
				if s.st == segGone {
					return // OK, not found
				}
				op.Output = history.Output{Found: true, State: segStateNames[s.st]}
				if s.st != segAllocated {
					op.Output.Files = s.files
				}
			}
		})
		require.Empty(t, runLinear(t, &Catalog{}, ops), "seed %d: a valid history", seed)

		// Lose a flush: a get of a segment whose flush was acknowledged before the get
		// was called, with no drop or compaction of it that may have come between,
		// shows it ALLOCATED.
		broken := slices.Clone(ops)
		target := -1
		for i, op := range broken {
			if op.Kind != history.SegmentGet || op.Output.State != "FLUSHED" {
				continue
			}
			id := op.Input.SegmentID
			flushed, touched := false, false
			for _, o := range broken {
				if o.Result == history.Fail {
					continue
				}
				if (o.Kind == history.SegmentFlush || o.Kind == history.SegmentCompact) && o.Input.SegmentID == id &&
					o.Result == history.OK && o.Return < op.Call {
					flushed = true
				}
				if (o.Kind == history.SegmentDrop && slices.Contains(o.Input.SegmentIDs, id) ||
					o.Kind == history.SegmentCompact && slices.Contains(o.Input.Inputs, id)) && o.Call < op.Return {
					touched = true
				}
			}
			if flushed && !touched {
				target = i
				break
			}
		}
		if target < 0 {
			t.Logf("seed %d: no get to break", seed)
			continue
		}
		broken[target].Output = history.Output{Found: true, State: "ALLOCATED"}
		vs := runLinear(t, &Catalog{}, broken)
		require.NotEmpty(t, vs, "seed %d: a lost flush", seed)
		require.Contains(t, vs[0].OpIDs, broken[target].ID)
	}
}
