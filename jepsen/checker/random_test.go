package checker

import (
	"math/rand"
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
	for seed := int64(1); seed <= 10; seed++ {
		r := rand.New(rand.NewSource(seed))
		live := map[string]uint64{}
		var nextID uint64 = 10
		ops := simulate(r, 6, 60, func(r *rand.Rand, _ int) history.Op {
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
