package checker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/jepsen/workload"
)

// Policy checks the policies workload: what the leader's scheduler, the retention
// and the holds did, from every policy-snapshots listing, hold call and
// policy-describe of the history and the final state (each policy's snapshots in
// every state, then the policy, read from the healed cluster once the workload
// disabled the policies). The rules, exactly:
//
//	(a) At most one snapshot per (policy, collection, due time): no two snapshot
//	    ids with the same policy id, collection and nonzero due time in everything
//	    observed. Every due time seen (on a snapshot, or as a policy's last due time)
//	    is one of the schedule's (created_at + k*interval, k >= 1) and at most the
//	    policy's last due time at the end; a snapshot a run on request took has due
//	    time 0; the status's runs count at least every due time seen run plus every
//	    acknowledged run on request.
//	(b) None missing while a quorum was up: every due time d of the schedule up to the
//	    end of the history (d + interval + PolicyDueTolerance before the last return)
//	    that no observation shows run is a skip. The scheduler has [d, d + interval)
//	    to run d (later it runs the next due time instead), and it needs a leader for
//	    a PolicyRunSlot of it. A fault may leave the cluster without one for
//	    PolicyElectionGrace from the moment it is injected and from the moment it is
//	    healed (kill, pause, partition-leader, partition-majority, member: the leader
//	    may be the node hit, or a rejoining node may disrupt it), or from injection to
//	    heal and the grace after it (every other kind, and any kind added later:
//	    delayed, dropped or bridged links and leadership transfers may cost the
//	    leader at any moment); the S3 faults never (Raft and the scheduler do not use
//	    the object store). A skip is allowed only when no PolicyRunSlot of
//	    [d, d + interval) is free of those windows: due times in the middle of a long
//	    fault, with a quorum up and a leader elected, are held to it. Retention
//	    deletes what the listings saw, so a run may go unobserved: at most runs -
//	    (acknowledged runs on request) - (due times seen run) runs can be unobserved,
//	    and it is a violation only when the unexcused skips outnumber them.
//	(c) Retention never below the minimum: in every complete listing (one page) and
//	    in the final state, per collection of the policy, the number of COMMITTED
//	    snapshots of the policy is at least min(min_count, the number of its
//	    snapshots of that collection known to have committed by then: shown committed
//	    by an operation that returned before the listing was called, or shown by the
//	    listing itself committed or DELETING after committing). Reads are
//	    linearizable, so all of those had committed at the listing's point, and
//	    retention never takes the count below min_count nor any count below
//	    min_count lower.
//	(d) Held snapshots are never dropped while held: a DELETING record never carries
//	    a hold active at its deleting time; a snapshot seen COMMITTED with an active
//	    hold is later seen DELETING (or gone from a complete listing of its policy)
//	    only once each such hold expired (until <= the deleting time, or <= the
//	    listing's return + PolicyDueTolerance) or a hold-remove of it (acknowledged or
//	    unknown) was called before (by the deleting time + PolicyDueTolerance, or
//	    before the listing returned); and an acknowledged hold-remove never removed a
//	    hold whose until was still to come when it returned.
type Policy struct {
	summary []string
}

func (*Policy) Name() string { return "policy" }

// Summary says, per policy, how many due times the last Check saw run and how many
// it could hold to rule (b).
func (c *Policy) Summary() string { return strings.Join(c.summary, "\n") }

// PolicyDueTolerance is the slack between the cluster's times (due, until and
// deleting times, stamped by the leader's wall clock) and the history's (the
// harness's monotonic clock from a wall-clock start), on one machine: the
// scheduler's 250 ms tick, proposing and applying a run under the race detector on
// two shared cores, and the wall clock's drift from the monotonic clock during a run
// (NTP slews at most 0.5 ms/s).
const PolicyDueTolerance = time.Second

// PolicyElectionGrace is how long a fault may leave the cluster without a leader
// running the scheduler, from the moment it is injected or healed: noticing the
// leader gone (the heartbeat timeout, 300 ms by default, checked every 300 to 600 ms;
// it was raft's 1 s when this grace was chosen), an election
// (twice on a split vote) and the new leader's duties starting, under the race
// detector on two shared cores.
const PolicyElectionGrace = 5 * time.Second

// PolicyRunSlot is the shortest stretch with a leader in which the scheduler surely
// runs a due time: a few passes of its 250 ms loop and a commit.
const PolicyRunSlot = time.Second

// quorumSafeFaults are the fault kinds that cannot cost the cluster its leader: the
// S3 faults touch the object store alone, which neither Raft nor the scheduler uses.
var quorumSafeFaults = map[string]bool{"s3-faults": true}

// edgeFaults are the fault kinds that may cost the leader only when they are
// injected or healed: a node killed, paused, isolated or removed (perhaps the
// leader), then brought back (perhaps disrupting the new one). While they last the
// others keep a quorum and elect a leader. Every other kind (and any kind added
// later) may cost it at any moment while it lasts.
var edgeFaults = map[string]bool{"kill": true, "pause": true, "partition-leader": true, "partition-majority": true, "member": true}

// polObs is an observation of policy snapshots: a listing (complete when policy is
// set: a snapshot of the policy absent from it did not exist at its point) or the
// snapshot a hold call returned.
type polObs struct {
	opID      int64 // 0: the final state
	call, ret int64 // history times; the final state's are after every operation
	retMs     int64 // the return as Unix milliseconds
	policy    string
	snaps     []history.Snapshot
}

// polEnd is a policy's final state.
type polEnd struct {
	p        *history.Policy
	snaps    []history.Snapshot
	complete bool  // the listing was one page
	listedMs int64 // when the listing returned, Unix milliseconds
}

func (c *Policy) Check(ctx context.Context, in Input) ([]Violation, error) {
	c.summary = nil
	names := policyNames(in.Ops)
	if len(names) == 0 {
		return nil, nil // the workload did not run
	}
	if err := needEnd(c.Name(), in); err != nil {
		return nil, err
	}
	final := map[string]*polEnd{}
	for _, name := range names {
		f, err := readPolicyEnd(ctx, in.End.Client, name)
		if errors.Is(err, client.ErrNotFound) {
			continue // checkPolicies reports it
		}
		if err != nil {
			return nil, fmt.Errorf("%s: read policy %s at the end: %w", c.Name(), name, err)
		}
		final[name] = f
	}
	vs, summary, err := checkPolicies(c.Name(), in, final)
	c.summary = summary
	return vs, err
}

// policyNames are the policies the history's operations name, sorted.
func policyNames(ops []history.Op) []string {
	var names []string
	for _, op := range ops {
		switch op.Kind {
		case history.PolicyDescribe, history.PolicySnapshots, history.PolicyExecute:
			if op.Input.Policy != "" && !slices.Contains(names, op.Input.Policy) {
				names = append(names, op.Input.Policy)
			}
		}
	}
	slices.Sort(names)
	return names
}

// checkPolicies applies the rules to a history and each policy's final state.
func checkPolicies(name string, in Input, final map[string]*polEnd) ([]Violation, []string, error) {
	if in.Start.IsZero() {
		return nil, nil, fmt.Errorf("%s: the history's wall-clock start is not known", name)
	}
	ops := normalize(in.Ops)
	var end int64 // the history's last return
	for _, op := range ops {
		end = max(end, op.Return)
	}
	ck := &policyCheck{name: name, in: in, ops: ops, end: end, final: map[string]*polEnd{}, byID: map[uint64]string{}}
	names := policyNames(ops)
	for _, n := range names {
		f := final[n]
		if f == nil {
			ck.violate(nil, "policy %s is not found at the end (the workload never deletes it)", n)
			continue
		}
		ck.final[n] = f
		ck.byID[f.p.ID] = n
	}
	ck.collect()
	ck.oncePerDue()
	for _, n := range names {
		if f := ck.final[n]; f != nil {
			ck.noneMissing(n, f.p)
		}
	}
	ck.minimum()
	ck.holds()
	return ck.vs, ck.summary, nil
}

// readPolicyEnd reads a policy's snapshots, then the policy: its status then counts
// every run the listing shows.
func readPolicyEnd(ctx context.Context, cl *client.Client, name string) (*polEnd, error) {
	f := &polEnd{complete: true}
	token := ""
	for {
		snaps, next, err := workload.ListPolicySnapshots(ctx, cl, name, token)
		if err != nil {
			return nil, err
		}
		f.snaps = append(f.snaps, snaps...)
		if next == "" {
			break
		}
		f.complete, token = false, next
	}
	f.listedMs = time.Now().UnixMilli()
	p, err := cl.DescribePolicy(ctx, name)
	if err != nil {
		return nil, err
	}
	f.p = workload.HistoryPolicy(p)
	return f, nil
}

type policyCheck struct {
	name  string
	in    Input
	ops   []history.Op
	end   int64
	final map[string]*polEnd
	byID  map[uint64]string // policy id → name

	obs       []polObs
	describes []history.Op // acknowledged policy-describes
	vs        []Violation
	summary   []string
}

func (ck *policyCheck) violate(opIDs []int64, format string, args ...any) {
	var ids []int64
	for _, id := range opIDs {
		if id != 0 && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ck.vs = append(ck.vs, Violation{Checker: ck.name, OpIDs: ids, Message: fmt.Sprintf(format, args...)})
}

// wallMs is a history time as Unix milliseconds.
func (ck *policyCheck) wallMs(ns int64) int64 {
	return ck.in.Start.Add(time.Duration(ns)).UnixMilli()
}

// at names a cluster time: UTC and seconds into the run.
func (ck *policyCheck) at(ms int64) string {
	return fmt.Sprintf("%s (%+.3fs)", time.UnixMilli(ms).UTC().Format("15:04:05.000"),
		float64(ms-ck.in.Start.UnixMilli())/1000)
}

func (ck *policyCheck) policyName(id uint64) string {
	if n, ok := ck.byID[id]; ok {
		return n
	}
	return fmt.Sprintf("id %d", id)
}

func (ck *policyCheck) collect() {
	for _, op := range ck.ops {
		if op.Result != history.OK {
			continue
		}
		switch op.Kind {
		case history.PolicySnapshots:
			policy := op.Input.Policy
			if op.Output.Truncated {
				policy = "" // its records count, its absences do not
			}
			ck.obs = append(ck.obs, polObs{opID: op.ID, call: op.Call, ret: op.Return, retMs: ck.wallMs(op.Return), policy: policy, snaps: op.Output.Snapshots})
		case history.HoldAdd, history.HoldRemove:
			ck.obs = append(ck.obs, polObs{opID: op.ID, call: op.Call, ret: op.Return, retMs: ck.wallMs(op.Return), snaps: op.Output.Snapshots})
		case history.PolicyDescribe:
			if op.Output.Policy != nil {
				ck.describes = append(ck.describes, op)
			}
		}
	}
	after := ck.end + 1
	for _, name := range sortedKeys(ck.final) {
		f := ck.final[name]
		o := polObs{call: after, ret: after, retMs: f.listedMs, snaps: f.snaps}
		if f.complete {
			o.policy = name
		}
		ck.obs = append(ck.obs, o)
	}
}

// sortedKeys are m's keys in order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }

// onSchedule says whether due is one of p's interval due times.
func onSchedule(p *history.Policy, due int64) bool {
	return p.IntervalMs > 0 && due > p.CreatedAtMs && (due-p.CreatedAtMs)%p.IntervalMs == 0
}

// (a): one snapshot per (policy, collection, due time); due times on the schedule;
// runs on request have due time 0.
func (ck *policyCheck) oncePerDue() {
	type dueKey struct {
		policy uint64
		coll   string
		due    int64
	}
	ids := map[dueKey]map[uint64][]int64{} // snapshot id → op ids that saw it
	var keys []dueKey
	offSchedule := map[[2]int64][]int64{} // (policy id, due) → op ids
	onRequest := map[uint64]int64{}       // snapshot id → the execute that took it
	for _, op := range ck.ops {
		if op.Kind == history.PolicyExecute && op.Result == history.OK {
			for _, s := range op.Output.Snapshots {
				onRequest[s.ID] = op.ID
			}
		}
	}
	for _, o := range ck.obs {
		for _, s := range o.snaps {
			if s.PolicyID == 0 || s.DueMs == 0 {
				continue
			}
			if ex, ok := onRequest[s.ID]; ok {
				ck.violate([]int64{ex, o.opID}, "policy %s: snapshot %d (%s/%s), taken by the run on request of op %d, carries due time %s: a run on request must have none",
					ck.policyName(s.PolicyID), s.ID, s.Collection, s.Name, ex, ck.at(s.DueMs))
				delete(onRequest, s.ID)
			}
			if f := ck.final[ck.policyName(s.PolicyID)]; f != nil && !onSchedule(f.p, s.DueMs) {
				offSchedule[[2]int64{int64(s.PolicyID), s.DueMs}] = append(offSchedule[[2]int64{int64(s.PolicyID), s.DueMs}], o.opID)
			}
			k := dueKey{s.PolicyID, s.Collection, s.DueMs}
			if ids[k] == nil {
				ids[k] = map[uint64][]int64{}
				keys = append(keys, k)
			}
			if _, ok := ids[k][s.ID]; !ok {
				ids[k][s.ID] = []int64{o.opID} // the first operation that saw it
			}
		}
	}
	for _, op := range ck.describes {
		p := op.Output.Policy
		f := ck.final[op.Input.Policy]
		for _, due := range []int64{p.LastDueMs, p.LastRunDueMs} {
			if f != nil && due != 0 && !onSchedule(f.p, due) {
				offSchedule[[2]int64{int64(p.ID), due}] = append(offSchedule[[2]int64{int64(p.ID), due}], op.ID)
			}
		}
	}
	for _, k := range keys {
		if len(ids[k]) < 2 {
			continue
		}
		var snapIDs []uint64
		var opIDs []int64
		for id, seenBy := range ids[k] {
			snapIDs = append(snapIDs, id)
			opIDs = append(opIDs, seenBy...)
		}
		slices.Sort(snapIDs)
		ck.violate(opIDs, "at most one snapshot per (policy, due time): policy %s took %d snapshots of collection %s for due time %s: ids %v",
			ck.policyName(k.policy), len(snapIDs), k.coll, ck.at(k.due), snapIDs)
	}
	for _, k := range sortedPairs(offSchedule) {
		f := ck.final[ck.policyName(uint64(k[0]))]
		ck.violate(offSchedule[k], "policy %s ran for %s, which is not a due time of its schedule (every %dms from %s)",
			ck.policyName(uint64(k[0])), ck.at(k[1]), f.p.IntervalMs, ck.at(f.p.CreatedAtMs))
	}
}

func sortedPairs(m map[[2]int64][]int64) [][2]int64 {
	keys := make([][2]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]int64) int {
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		return cmp.Compare(a[1], b[1])
	})
	return keys
}

// leaderless are the windows (Unix ms, sorted by start) in which the faults may have
// left the cluster without a leader running the scheduler.
func (ck *policyCheck) leaderless() [][2]int64 {
	grace := PolicyElectionGrace.Milliseconds()
	var ws [][2]int64
	for _, f := range ck.in.Faults {
		if quorumSafeFaults[f.Kind] {
			continue
		}
		start, end := ck.wallMs(f.Start), int64(math.MaxInt64)
		if f.End != 0 {
			end = ck.wallMs(f.End)
		}
		switch {
		case f.End == 0:
			ws = append(ws, [2]int64{start, end}) // never healed
		case edgeFaults[f.Kind]:
			ws = append(ws, [2]int64{start, start + grace}, [2]int64{end, end + grace})
		default:
			ws = append(ws, [2]int64{start, end + grace})
		}
	}
	slices.SortFunc(ws, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	return ws
}

// excused says whether the faults could have kept the cluster from running due time
// due of a policy with interval ms: no PolicyRunSlot of [due, due + interval) is
// free of the leaderless windows.
func excused(leaderless [][2]int64, due, interval int64) bool {
	slot := PolicyRunSlot.Milliseconds()
	free := due // the start of the current free stretch
	for _, w := range leaderless {
		if w[1] <= free {
			continue
		}
		if w[0] >= due+interval {
			break
		}
		if w[0]-free >= slot {
			return false
		}
		free = max(free, w[1])
	}
	return due+interval-free < slot
}

// (b): no due time skipped while the cluster could run it.
func (ck *policyCheck) noneMissing(name string, p *history.Policy) {
	if p.IntervalMs <= 0 {
		return
	}
	run := map[int64][]int64{} // due time → op ids that show it run (0: the final state)
	for _, o := range ck.obs {
		for _, s := range o.snaps {
			if s.PolicyID == p.ID && s.DueMs != 0 {
				run[s.DueMs] = append(run[s.DueMs], o.opID)
			}
		}
	}
	for _, op := range ck.describes {
		if d := op.Output.Policy; d.ID == p.ID {
			for _, due := range []int64{d.LastDueMs, d.LastRunDueMs} {
				if due != 0 {
					run[due] = append(run[due], op.ID)
				}
			}
		}
	}
	for _, due := range []int64{p.LastDueMs, p.LastRunDueMs} {
		if due != 0 {
			run[due] = append(run[due], 0)
		}
	}
	for _, due := range sortedKeys(run) {
		if due > p.LastDueMs {
			ck.violate(run[due], "policy %s: due time %s was seen run, yet the policy's last due time at the end is %s",
				name, ck.at(due), ck.at(p.LastDueMs))
		}
	}
	var onRequest int64
	var executes []int64
	for _, op := range ck.ops {
		if op.Kind == history.PolicyExecute && op.Input.Policy == name && op.Result == history.OK {
			onRequest++
			executes = append(executes, op.ID)
		}
	}
	unobserved := int64(p.Runs) - onRequest - int64(len(run))
	if unobserved < 0 {
		ck.violate(executes, "policy %s: its status counts %d runs, fewer than the %d due times seen run plus the %d acknowledged runs on request",
			name, p.Runs, len(run), onRequest)
		unobserved = 0
	}
	interval, tol := p.IntervalMs, PolicyDueTolerance.Milliseconds()
	last := ck.wallMs(ck.end)
	var skipped []int64
	leaderless := ck.leaderless()
	dues, seenRun, excusedN, held := 0, 0, 0, 0
	for due := p.CreatedAtMs + interval; due+interval+tol <= last; due += interval {
		dues++
		free := !excused(leaderless, due, interval)
		if free {
			held++
		}
		if _, ok := run[due]; ok {
			seenRun++
			continue
		}
		if !free {
			excusedN++
			continue
		}
		skipped = append(skipped, due)
	}
	ck.summary = append(ck.summary, fmt.Sprintf(
		"policy %s: %d due times in the history, %d seen run, %d not seen while the faults may have left no leader, %d not seen with a leader slot free (at most %d runs unobserved); %d with a leader slot free of every fault (rule b holds them); %d runs counted at the end, %d acknowledged on request, last due %s",
		name, dues, seenRun, excusedN, len(skipped), unobserved, held, p.Runs, onRequest, ck.at(p.LastDueMs)))
	if int64(len(skipped)) > unobserved {
		var show []string
		for i, d := range skipped {
			if i == 8 {
				show = append(show, fmt.Sprintf("… %d more", len(skipped)-i))
				break
			}
			show = append(show, ck.at(d))
		}
		ck.violate(nil, "none missing while a quorum was up: policy %s has no run for %d due times whose interval had a %v slot free of every fault's leaderless window (%v after a kill, pause, partition or member change was injected and healed; the whole fault and %v after for the others): %s; at most %d runs went unobserved (%d runs counted, %d acknowledged on request, %d due times seen run)",
			name, len(skipped), PolicyRunSlot, PolicyElectionGrace, PolicyElectionGrace, strings.Join(show, ", "), unobserved, p.Runs, onRequest, len(run))
	}
}

func committed(s history.Snapshot) bool { return s.State == "COMMITTED" || s.CommittedAtMs != 0 }

// (c): retention never below the minimum.
func (ck *policyCheck) minimum() {
	type collKey struct {
		policy uint64
		coll   string
	}
	// Each snapshot id seen committed: its collection and the earliest return of an
	// operation that showed it committed.
	type seen struct {
		key collKey
		ret int64
	}
	firstCommitted := map[uint64]seen{}
	for _, o := range ck.obs {
		for _, s := range o.snaps {
			if s.PolicyID == 0 || !committed(s) {
				continue
			}
			if f, ok := firstCommitted[s.ID]; !ok || o.ret < f.ret {
				firstCommitted[s.ID] = seen{collKey{s.PolicyID, s.Collection}, o.ret}
			}
		}
	}
	reported := map[collKey]int{}
	for _, o := range ck.obs {
		if o.policy == "" {
			continue
		}
		f := ck.final[o.policy]
		if f == nil || f.p.MinCount == 0 {
			continue
		}
		now := map[string]int{}
		known := map[string]map[uint64]bool{}
		for _, s := range o.snaps {
			if s.PolicyID != f.p.ID {
				continue
			}
			if s.State == "COMMITTED" {
				now[s.Collection]++
			}
			if committed(s) {
				if known[s.Collection] == nil {
					known[s.Collection] = map[uint64]bool{}
				}
				known[s.Collection][s.ID] = true
			}
		}
		for id, fc := range firstCommitted {
			if fc.key.policy == f.p.ID && fc.ret < o.call {
				if known[fc.key.coll] == nil {
					known[fc.key.coll] = map[uint64]bool{}
				}
				known[fc.key.coll][id] = true
			}
		}
		for _, coll := range f.p.Collections {
			need := min(int(f.p.MinCount), len(known[coll]))
			if now[coll] >= need {
				continue
			}
			k := collKey{f.p.ID, coll}
			if reported[k]++; reported[k] > 5 {
				continue // the first few say it
			}
			where := fmt.Sprintf("listing op %d", o.opID)
			if o.opID == 0 {
				where = "the final state"
			}
			ck.violate([]int64{o.opID}, "retention below the minimum: %s shows %d COMMITTED snapshots of policy %s in collection %s; its minimum is %d and %d had committed by then",
				where, now[coll], o.policy, coll, f.p.MinCount, len(known[coll]))
		}
	}
}

// (d): held snapshots never dropped while held.
func (ck *policyCheck) holds() {
	tol := PolicyDueTolerance.Milliseconds()
	type heldSeen struct {
		hold   history.Hold
		policy uint64
		opID   int64
		ret    int64
	}
	held := map[uint64]map[uint64]heldSeen{} // snapshot id → hold id → first sight active on a COMMITTED snapshot
	until := map[uint64]int64{}              // hold id → its until
	for _, op := range ck.ops {
		if op.Kind == history.HoldAdd && op.Result == history.OK && op.Output.HoldID != 0 {
			until[op.Output.HoldID] = op.Input.UntilMs
		}
	}
	for _, o := range ck.obs {
		for _, s := range o.snaps {
			for _, h := range s.Holds {
				until[h.ID] = h.UntilMs
				if s.State != "COMMITTED" || !h.Active || o.opID == 0 {
					continue
				}
				if held[s.ID] == nil {
					held[s.ID] = map[uint64]heldSeen{}
				}
				if f, ok := held[s.ID][h.ID]; !ok || o.ret < f.ret {
					held[s.ID][h.ID] = heldSeen{h, s.PolicyID, o.opID, o.ret}
				}
			}
		}
	}
	removes := map[uint64][]history.Op{} // hold id → hold-removes that may have removed it
	for _, op := range ck.ops {
		if op.Kind != history.HoldRemove {
			continue
		}
		if op.Result == history.OK || op.Result == history.Unknown {
			removes[op.Input.HoldID] = append(removes[op.Input.HoldID], op)
		}
		if u := until[op.Input.HoldID]; op.Result == history.OK && u != 0 && u > ck.wallMs(op.Return)+tol {
			ck.violate([]int64{op.ID}, "hold %d of snapshot %s/%s, retained until %s, was removed by op %d, which returned at %s",
				op.Input.HoldID, op.Input.Collection, op.Input.Name, ck.at(u), op.ID, ck.at(ck.wallMs(op.Return)))
		}
	}
	// removedBy says whether a hold-remove of hold id was called by wall time ms.
	removedBy := func(id uint64, ms int64) bool {
		for _, op := range removes[id] {
			if ck.wallMs(op.Call) <= ms {
				return true
			}
		}
		return false
	}
	reported := map[uint64]bool{} // snapshot ids
	for _, o := range ck.obs {
		present := map[uint64]bool{}
		for _, s := range o.snaps {
			present[s.ID] = true
			if s.State != "DELETING" || reported[s.ID] {
				continue
			}
			for _, h := range s.Holds {
				if h.UntilMs == 0 || h.UntilMs > s.DeletingAtMs {
					reported[s.ID] = true
					ck.violate([]int64{o.opID}, "held snapshot dropped: snapshot %d (%s/%s) became DELETING at %s while its hold %d (until %s) held it",
						s.ID, s.Collection, s.Name, ck.at(s.DeletingAtMs), h.ID, untilText(ck, h.UntilMs))
					break
				}
			}
			if reported[s.ID] {
				continue
			}
			for _, id := range sortedKeys(held[s.ID]) {
				hs := held[s.ID][id]
				if hs.hold.UntilMs != 0 && hs.hold.UntilMs <= s.DeletingAtMs {
					continue // expired first
				}
				if removedBy(id, s.DeletingAtMs+tol) {
					continue
				}
				reported[s.ID] = true
				ck.violate([]int64{hs.opID, o.opID}, "held snapshot dropped: snapshot %d (%s/%s), seen held by hold %d (until %s) by op %d, became DELETING at %s, and no hold-remove of it was called before",
					s.ID, s.Collection, s.Name, id, untilText(ck, hs.hold.UntilMs), hs.opID, ck.at(s.DeletingAtMs))
				break
			}
		}
		if o.policy == "" {
			continue
		}
		f := ck.final[o.policy]
		if f == nil {
			continue
		}
		for _, sid := range sortedKeys(held) {
			if present[sid] || reported[sid] {
				continue
			}
			for _, id := range sortedKeys(held[sid]) {
				hs := held[sid][id]
				if hs.policy != f.p.ID || hs.ret >= o.call {
					continue
				}
				if hs.hold.UntilMs != 0 && hs.hold.UntilMs <= o.retMs+tol {
					continue
				}
				if removedBy(id, o.retMs) {
					continue
				}
				reported[sid] = true
				where := fmt.Sprintf("listing op %d", o.opID)
				if o.opID == 0 {
					where = "the final state"
				}
				ck.violate([]int64{hs.opID, o.opID}, "held snapshot dropped: snapshot %d of policy %s, seen held by hold %d (until %s) by op %d, is gone from %s, and no hold-remove of it was called before",
					sid, o.policy, id, untilText(ck, hs.hold.UntilMs), hs.opID, where)
				break
			}
		}
	}
}

func untilText(ck *policyCheck, ms int64) string {
	if ms == 0 {
		return "removed"
	}
	return ck.at(ms)
}
