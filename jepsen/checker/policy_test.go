package checker

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/jepsen/history"
)

// A synthetic run of one policy (interval 2 s, keep 3–6, collection pa0) created
// half a second before the history began: due time k is at 1.5 s + 2k s, and the
// snapshot it takes has id k and commits 100 ms after it.
var polStart = time.Date(2026, time.December, 4, 9, 0, 0, 0, time.UTC)

const (
	polID       = 7
	polInterval = int64(2000)
	polMin      = 3
	polMax      = 6
)

func polCreated() int64 { return polStart.UnixMilli() - 500 }

func polDue(k int) int64 { return polCreated() + int64(k)*polInterval }

// hns is a cluster time (Unix ms) on the history's clock.
func hns(ms int64) int64 { return (ms - polStart.UnixMilli()) * int64(time.Millisecond) }

type polRun struct {
	hb
	// snapshot id → its record as of now (the scheduler's doing, in the test's hands)
	snaps   map[uint64]*history.Snapshot
	order   []uint64
	runs    uint64
	lastDue int64
	faults  []history.Fault
}

func newPolRun() *polRun { return &polRun{snaps: map[uint64]*history.Snapshot{}} }

func (r *polRun) policy() *history.Policy {
	return &history.Policy{ID: polID, Revision: 1, Enabled: true, Collections: []string{"pa0"}, CreatedAtMs: polCreated(),
		IntervalMs: polInterval, MinCount: polMin, MaxCount: polMax, Runs: r.runs, LastDueMs: r.lastDue, LastRunDueMs: r.lastDue}
}

// run takes due time k's snapshot (id k), committed, and applies the retention.
func (r *polRun) run(k int) {
	d := polDue(k)
	r.snaps[uint64(k)] = &history.Snapshot{ID: uint64(k), Collection: "pa0", Name: "pol-" + time.UnixMilli(d).UTC().Format("150405"),
		State: "COMMITTED", PolicyID: polID, DueMs: d, CreatedAtMs: d + 50, CommittedAtMs: d + 100}
	r.order = append(r.order, uint64(k))
	r.runs++
	r.lastDue = d
	r.retain(d + 200)
}

// retain expires the oldest committed unheld snapshots beyond polMax.
func (r *polRun) retain(at int64) {
	var live []uint64
	for _, id := range r.order {
		if r.snaps[id].State == "COMMITTED" {
			live = append(live, id)
		}
	}
	for _, id := range live {
		if len(live) <= polMax {
			break
		}
		s := r.snaps[id]
		if heldAt(s, at) {
			continue
		}
		s.State, s.DeletingAtMs = "DELETING", at
		live = live[1:]
	}
}

func heldAt(s *history.Snapshot, at int64) bool {
	for _, h := range s.Holds {
		if h.UntilMs == 0 || h.UntilMs > at {
			return true
		}
	}
	return false
}

func (r *polRun) current(at int64) []history.Snapshot {
	var out []history.Snapshot
	for _, id := range r.order {
		s := *r.snaps[id]
		s.Holds = nil
		for _, h := range r.snaps[id].Holds {
			h.Active = h.UntilMs == 0 || h.UntilMs > at
			s.Holds = append(s.Holds, h)
		}
		out = append(out, s)
	}
	return out
}

// list records a listing at cluster time at (a 20 ms call).
func (r *polRun) list(at int64) int64 {
	return r.add(0, history.PolicySnapshots, hns(at), hns(at+20), history.OK, history.Input{Policy: "pol"},
		history.Output{Snapshots: r.current(at + 10)}, "")
}

func (r *polRun) describe(at int64) int64 {
	return r.add(1, history.PolicyDescribe, hns(at), hns(at+20), history.OK, history.Input{Policy: "pol"},
		history.Output{Policy: r.policy()}, "")
}

// steady runs due times 1..n, each listed and described 300 ms after it.
func (r *polRun) steady(from, to int, skip ...int) {
	for k := from; k <= to; k++ {
		if !containsInt(skip, k) {
			r.run(k)
		}
		r.list(polDue(k) + 300)
		r.describe(polDue(k) + 350)
	}
}

func containsInt(list []int, x int) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}

func (r *polRun) fault(kind string, fromMs, toMs int64) {
	r.faults = append(r.faults, history.Fault{ID: int64(len(r.faults) + 1000), Kind: kind, Target: "n1", Start: hns(fromMs), End: hns(toMs)})
}

func (r *polRun) check(t *testing.T) ([]Violation, []string) {
	t.Helper()
	end := r.policy()
	final := map[string]*polEnd{"pol": {p: end, snaps: r.current(polDue(100)), complete: true, listedMs: polDue(100)}}
	vs, summary, err := checkPolicies("policy", Input{Ops: r.ops, Faults: r.faults, Start: polStart}, final)
	require.NoError(t, err)
	return vs, summary
}

func requireViolation(t *testing.T, vs []Violation, substr string) {
	t.Helper()
	require.NotEmpty(t, vs)
	require.Contains(t, messages(vs), substr)
}

func TestPolicyCheckerCleanRun(t *testing.T) {
	r := newPolRun()
	r.steady(1, 12)
	vs, summary := r.check(t)
	require.Empty(t, vs, messages(vs))
	require.Len(t, summary, 1)
	// Due times up to 3 s (an interval and the tolerance) before the last return are
	// held to rule (b): 1..10 of 12.
	require.Contains(t, summary[0], "10 due times in the history, 10 seen run")
}

func TestPolicyCheckerTwoSnapshotsForOneDueTime(t *testing.T) {
	r := newPolRun()
	r.steady(1, 5)
	// due time 5 again, as a second snapshot (the policy-double-run bug)
	dup := *r.snaps[5]
	dup.ID, dup.Name = 50, dup.Name+"x"
	r.snaps[50] = &dup
	r.order = append(r.order, 50)
	r.runs++
	r.steady(6, 8)
	vs, _ := r.check(t)
	requireViolation(t, vs, "policy pol took 2 snapshots of collection pa0 for due time 09:00:09.500")
	require.Len(t, vs, 1, messages(vs))
}

func TestPolicyCheckerDueTimeOffTheSchedule(t *testing.T) {
	r := newPolRun()
	r.steady(1, 4)
	r.snaps[4].DueMs += 7
	r.lastDue += 7
	r.list(polDue(4) + 500)
	vs, _ := r.check(t)
	requireViolation(t, vs, "which is not a due time of its schedule")
}

func TestPolicyCheckerRunOnRequestHasNoDueTime(t *testing.T) {
	r := newPolRun()
	r.steady(1, 3)
	// an execute that returned snapshot 3 (which carries due time 3)
	r.add(2, history.PolicyExecute, hns(polDue(3)), hns(polDue(3)+100), history.OK, history.Input{Policy: "pol"},
		history.Output{Snapshots: []history.Snapshot{{ID: 3, Collection: "pa0"}}}, "")
	vs, _ := r.check(t)
	requireViolation(t, vs, "a run on request must have none")
}

func TestPolicyCheckerMissingDueTimes(t *testing.T) {
	// Due times 4 and 5 never run and nothing saw them run.
	build := func() *polRun {
		r := newPolRun()
		r.steady(1, 10, 4, 5)
		return r
	}
	t.Run("no fault", func(t *testing.T) {
		vs, _ := build().check(t)
		requireViolation(t, vs, "policy pol has no run for 2 due times whose interval had a 1s slot free")
		require.Contains(t, messages(vs), "09:00:07.500 (+7.500s), 09:00:09.500 (+9.500s)")
	})
	t.Run("an S3 fault does not excuse them", func(t *testing.T) {
		r := build()
		r.fault("s3-faults", polDue(3), polDue(6))
		vs, _ := r.check(t)
		requireViolation(t, vs, "has no run for 2 due times")
	})
	t.Run("a kill covering them does", func(t *testing.T) {
		r := build()
		r.fault("kill", polDue(4)+500, polDue(5)+500)
		vs, summary := r.check(t)
		require.Empty(t, vs, messages(vs))
		require.Contains(t, summary[0], "2 not seen while the faults may have left no leader")
	})
	t.Run("the grace after a heal does", func(t *testing.T) {
		r := build()
		// healed so that the election grace leaves 0.9 s of due time 4's interval
		r.fault("partition-leader", polDue(4)-10000, polDue(4)-PolicyElectionGrace.Milliseconds()+1100)
		vs, _ := r.check(t)
		require.Contains(t, messages(vs), "has no run for 1 due times") // due time 5 only
		require.Contains(t, messages(vs), "09:00:09.500")
	})
	t.Run("the middle of a long kill does not", func(t *testing.T) {
		r := build()
		// killed at due time 3 for 10 s: a leader is back by due time 5 + 1 s, a slot
		// before due time 6
		r.fault("kill", polDue(3), polDue(8))
		vs, summary := r.check(t)
		require.Contains(t, messages(vs), "has no run for 1 due times") // due time 5
		require.Contains(t, messages(vs), "09:00:09.500")
		require.Contains(t, summary[0], "1 not seen while the faults may have left no leader, 1 not seen with a leader slot free")
	})
	t.Run("a delay throughout does", func(t *testing.T) {
		r := build()
		r.fault("delay", polDue(3), polDue(8))
		vs, _ := r.check(t)
		require.Empty(t, vs, messages(vs))
	})
	t.Run("a fault never healed does", func(t *testing.T) {
		r := build()
		r.fault("kill", polDue(3), 0)
		r.faults[len(r.faults)-1].End = 0
		vs, _ := r.check(t)
		require.Empty(t, vs, messages(vs))
	})
	t.Run("unobserved runs can account for them", func(t *testing.T) {
		r := build()
		r.runs += 2 // the status counts two runs nobody saw
		vs, _ := r.check(t)
		require.Empty(t, vs, messages(vs))
	})
	t.Run("runs on request do not", func(t *testing.T) {
		r := build()
		r.runs += 2
		for i := range 2 {
			r.add(2, history.PolicyExecute, hns(polDue(7)+int64(i)*100), hns(polDue(7)+int64(i)*100+50), history.OK,
				history.Input{Policy: "pol"}, history.Output{}, "")
		}
		vs, _ := r.check(t)
		requireViolation(t, vs, "has no run for 2 due times")
	})
	t.Run("the status cannot count fewer runs than were seen", func(t *testing.T) {
		r := build()
		r.runs -= 3
		vs, _ := r.check(t)
		requireViolation(t, vs, "its status counts 5 runs, fewer than the 8 due times seen run")
	})
}

func TestPolicyCheckerRetentionMinimum(t *testing.T) {
	t.Run("below the minimum", func(t *testing.T) {
		r := newPolRun()
		r.steady(1, 5)
		// a retention gone wrong: only 2 of 5 committed snapshots left
		for _, id := range []uint64{1, 2, 3} {
			r.snaps[id].State, r.snaps[id].DeletingAtMs = "DELETING", polDue(5)+500
		}
		op := r.list(polDue(5) + 600)
		vs, _ := r.check(t)
		requireViolation(t, vs, "retention below the minimum: listing op")
		require.Contains(t, messages(vs), "shows 2 COMMITTED snapshots of policy pol in collection pa0; its minimum is 3 and 5 had committed by then")
		require.Contains(t, vs[0].OpIDs, op)
	})
	t.Run("fewer than the minimum ever committed", func(t *testing.T) {
		r := newPolRun()
		r.steady(1, 2)
		vs, _ := r.check(t)
		require.Empty(t, vs, messages(vs))
	})
	t.Run("a snapshot committed after the listing was called does not count", func(t *testing.T) {
		r := newPolRun()
		r.steady(1, 2)
		// snapshot 3 is seen committed by an op that returns while a listing (which
		// does not show it) runs: the listing may have read before it committed.
		r.run(3)
		at := polDue(3) + 300
		r.add(0, history.PolicySnapshots, hns(at), hns(at+500), history.OK, history.Input{Policy: "pol"},
			history.Output{Snapshots: r.current(polDue(3) - 100)[:2]}, "")
		r.list(at + 100)
		vs, _ := r.check(t)
		require.Empty(t, vs, messages(vs))
	})
}

func TestPolicyCheckerHolds(t *testing.T) {
	// hold 900 (until removed) on snapshot 1, seen by a hold-add, then retention
	// pressure: snapshot 1 is the oldest.
	build := func(untilMs int64) (*polRun, int64) {
		r := newPolRun()
		r.steady(1, 3)
		r.snaps[1].Holds = []history.Hold{{ID: 900, AddedAtMs: polDue(3) + 400, UntilMs: untilMs}}
		held := r.current(polDue(3) + 450)[0]
		add := r.add(3, history.HoldAdd, hns(polDue(3)+390), hns(polDue(3)+460), history.OK,
			history.Input{Collection: "pa0", Name: held.Name, Reason: "test", UntilMs: untilMs},
			history.Output{HoldID: 900, Snapshots: []history.Snapshot{held}}, "")
		return r, add
	}
	t.Run("kept while held", func(t *testing.T) {
		r, _ := build(0)
		r.steady(4, 12)
		vs, _ := r.check(t)
		require.Empty(t, vs, messages(vs))
		require.Equal(t, "COMMITTED", r.snaps[1].State)
	})
	t.Run("dropped while held", func(t *testing.T) {
		r, _ := build(0)
		r.steady(4, 6)
		r.snaps[1].State, r.snaps[1].DeletingAtMs = "DELETING", polDue(6)+500
		op := r.list(polDue(6) + 600)
		vs, _ := r.check(t)
		requireViolation(t, vs, "held snapshot dropped: snapshot 1 (pa0/")
		require.Contains(t, messages(vs), "while its hold 900 (until removed) held it")
		require.Contains(t, vs[0].OpIDs, op)
	})
	t.Run("the hold vanished, then the snapshot was dropped", func(t *testing.T) {
		r, add := build(0)
		r.steady(4, 6)
		r.snaps[1].Holds = nil
		r.snaps[1].State, r.snaps[1].DeletingAtMs = "DELETING", polDue(6)+500
		r.list(polDue(6) + 600)
		vs, _ := r.check(t)
		requireViolation(t, vs, "seen held by hold 900 (until removed) by op")
		require.Contains(t, vs[0].OpIDs, add)
	})
	t.Run("released, then dropped", func(t *testing.T) {
		r, _ := build(0)
		r.steady(4, 6)
		r.add(2, history.HoldRemove, hns(polDue(6)+100), hns(polDue(6)+150), history.OK,
			history.Input{Collection: "pa0", Name: r.snaps[1].Name, HoldID: 900}, history.Output{}, "")
		r.snaps[1].Holds = nil
		r.snaps[1].State, r.snaps[1].DeletingAtMs = "DELETING", polDue(6)+500
		r.steady(7, 8)
		vs, _ := r.check(t)
		require.Empty(t, vs, messages(vs))
	})
	t.Run("gone from a listing while held", func(t *testing.T) {
		r, _ := build(0)
		r.steady(4, 6)
		delete(r.snaps, 1)
		r.order = r.order[1:]
		r.list(polDue(6) + 600)
		vs, _ := r.check(t)
		requireViolation(t, vs, "is gone from listing op")
	})
	t.Run("expired, then dropped", func(t *testing.T) {
		r, _ := build(polDue(5))
		r.steady(4, 8)
		vs, _ := r.check(t)
		require.Empty(t, vs, messages(vs))
		require.Equal(t, "DELETING", r.snaps[1].State)
	})
	t.Run("a retained hold removed early", func(t *testing.T) {
		r, _ := build(polDue(9))
		r.steady(4, 5)
		op := r.add(2, history.HoldRemove, hns(polDue(5)+100), hns(polDue(5)+150), history.OK,
			history.Input{Collection: "pa0", Name: r.snaps[1].Name, HoldID: 900}, history.Output{}, "")
		vs, _ := r.check(t)
		requireViolation(t, vs, "was removed by op")
		require.True(t, strings.Contains(messages(vs), "retained until 09:00:17.500"), messages(vs))
		require.Contains(t, vs[0].OpIDs, op)
	})
}

func TestPolicyCheckerWithoutPolicyOps(t *testing.T) {
	vs, err := (&Policy{}).Check(t.Context(), Input{Ops: []history.Op{{ID: 1, Kind: history.SnapshotList, Result: history.OK}}})
	require.NoError(t, err)
	require.Empty(t, vs)
}

func TestPolicyCheckerPolicyGoneAtTheEnd(t *testing.T) {
	r := newPolRun()
	r.steady(1, 2)
	vs, _, err := checkPolicies("policy", Input{Ops: r.ops, Start: polStart}, map[string]*polEnd{})
	require.NoError(t, err)
	requireViolation(t, vs, "policy pol is not found at the end")
}
