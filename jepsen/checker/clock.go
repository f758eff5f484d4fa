package checker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/raftreplay"
	"github.com/snapkeep/snapkeep/jepsen/history"
)

// ClockTolerance is how far a stamped time may be outside its operation's real
// interval: the cluster clock follows the median of the voters' clocks sampled every
// second, carried forward on each node's monotonic clock.
const ClockTolerance = 2 * time.Second

// ClusterClock checks the times the leaders stamped on the history's writes: every
// leader's clock may be skewed (the clock nemesis), and every time in the catalog —
// creation times, allocation and restore lease deadlines, GC graces, hold expiries,
// policy due times — is such a stamp, compared in Apply with later ones. A write's
// stamp must lie within the real time of its operation: not before its call and, for
// an operation that returned OK, not after its return (ClockTolerance either side). An
// operation whose outcome is unknown may be applied later (a new leader committing
// it), so only the lower bound holds, and the time the nodes were stopped as its upper
// one. A stamp a day ahead means a lease or a grace measured on it ends a day early.
//
// The leader's own commands (lease grants and expiries, allocation expiries, policy
// runs, GC) carry no request id of the history; for every command entry, of either
// kind: its stamp is not after the nodes were stopped (+ tolerance), and not earlier, by
// more than the tolerance, than a stamp before it in the log — cluster time does not
// go back. (The end of the run is no bound: the end-of-run checks write too.)
//
// It reads the stopped nodes' Raft logs (the entries carry the request ids of the
// history's writes) and, for the entries raft snapshots compacted away, the command
// stamps a fault-injection build logs as it applies each entry (fsm.CommandStamped);
// Summary says how many writes were found.
type ClusterClock struct {
	checked, writes int
	entries         uint64
}

func (*ClusterClock) Name() string { return "cluster-clock" }

// StoppedNodes tells the harness to stop the nodes before this checker runs.
func (*ClusterClock) StoppedNodes() bool { return true }

func (c *ClusterClock) Summary() string {
	return fmt.Sprintf("%d of %d writes with a request id found in the Raft logs or the nodes' stamp lines and checked; %d command entries checked for order", c.checked, c.writes, c.entries)
}

func (c *ClusterClock) Check(ctx context.Context, in Input) ([]Violation, error) {
	if in.End == nil || len(in.End.DataDirs) == 0 {
		return nil, fmt.Errorf("%s: no data directories in the end state", c.Name())
	}
	if in.Start.IsZero() {
		return nil, fmt.Errorf("%s: the history's start time is not known", c.Name())
	}
	writes := map[string]*history.Op{}
	for i := range in.Ops {
		op := &in.Ops[i]
		if op.RequestID != "" {
			writes[op.RequestID] = op
		}
	}
	c.writes = len(writes)
	real := func(ns int64) time.Time { return in.Start.Add(time.Duration(ns)) }
	// The nodes are stopped when this runs (StoppedNodes): nothing was stamped later.
	// The end of the run is not a bound: the end-of-run checks write too.
	stopped := time.Now()
	latest := stopped.Add(ClockTolerance)
	var vs []Violation
	seen := map[uint64]bool{} // entry indexes already reported (the logs hold the same entries)
	stamps, err := readStamps(ctx, in.OutDir, in.End.DataDirs, writes, func(node string, index uint64, stamp, highest int64) {
		c.entries++
		if seen[index] {
			return
		}
		t, top := time.Unix(0, stamp), time.Unix(0, highest)
		switch {
		case t.After(latest):
			seen[index] = true
			vs = append(vs, Violation{Checker: c.Name(), Message: fmt.Sprintf("%s: entry %d was stamped %s, %v after the nodes were stopped",
				node, index, t.UTC().Format(time.RFC3339Nano), t.Sub(stopped).Round(time.Millisecond))})
		case top.Sub(t) > ClockTolerance:
			seen[index] = true
			vs = append(vs, Violation{Checker: c.Name(), Message: fmt.Sprintf("%s: entry %d was stamped %s, %v before an earlier entry's stamp: cluster time went back",
				node, index, t.UTC().Format(time.RFC3339Nano), top.Sub(t).Round(time.Millisecond))})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name(), err)
	}
	c.checked = len(stamps)
	var ids []string
	for id := range stamps {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return writes[ids[i]].ID < writes[ids[j]].ID })
	for _, id := range ids {
		op, stamp := writes[id], time.Unix(0, stamps[id])
		lo := real(op.Call).Add(-ClockTolerance)
		hi := latest
		if op.Result == history.OK {
			hi = real(op.Return).Add(ClockTolerance)
		}
		if stamp.Before(lo) || stamp.After(hi) {
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: []int64{op.ID}, Message: fmt.Sprintf(
				"%s (op %d, %s) was stamped %s, %s its real interval [%s, %s] (tolerance %v)",
				op.Kind, op.ID, op.Result, stamp.UTC().Format(time.RFC3339Nano), offBy(stamp, lo, hi),
				real(op.Call).UTC().Format(time.RFC3339Nano), real(op.Return).UTC().Format(time.RFC3339Nano), ClockTolerance)})
		}
	}
	return vs, nil
}

// offBy says how far t is outside [lo, hi].
func offBy(t, lo, hi time.Time) string {
	if t.Before(lo) {
		return fmt.Sprintf("%v before", lo.Sub(t).Round(time.Millisecond))
	}
	return fmt.Sprintf("%v after", t.Sub(hi).Round(time.Millisecond))
}

// readStamps returns the envelope time of the first log entry carrying each of the
// writes' request ids, over every node's log, and calls each with every command
// entry's stamp and the highest stamp before it in that node's log. A node's entries
// come from its Raft log and from its own log's CommandStamped lines (fault-injection
// builds log every command they apply), which keep the entries raft snapshots compacted.
func readStamps(ctx context.Context, outDir string, dataDirs map[string]string, writes map[string]*history.Op, each func(node string, index uint64, stamp, highest int64)) (map[string]int64, error) {
	stamps := map[string]int64{}
	at := map[string]uint64{} // the index a stamp was read at
	nodes := make([]string, 0, len(dataDirs))
	for id := range dataDirs {
		nodes = append(nodes, id)
	}
	sort.Strings(nodes)
	for _, id := range nodes {
		entries := map[uint64]stampedEntry{}
		if err := raftStamps(ctx, id, dataDirs[id], entries); err != nil {
			return nil, err
		}
		if outDir != "" {
			if err := logStamps(outDir, id, entries); err != nil {
				return nil, err
			}
		}
		indexes := slices.Sorted(maps.Keys(entries))
		var highest int64
		for _, i := range indexes {
			e := entries[i]
			each(id, i, e.now, highest)
			highest = max(highest, e.now)
			if writes[e.requestID] == nil {
				continue
			}
			if prev, seen := at[e.requestID]; !seen || i < prev {
				stamps[e.requestID], at[e.requestID] = e.now, i
			}
		}
	}
	return stamps, nil
}

// stampedEntry is a command entry's envelope time and request id.
type stampedEntry struct {
	now       int64
	requestID string
}

// raftStamps adds the command entries of a node's Raft log to entries.
func raftStamps(ctx context.Context, id, dataDir string, entries map[uint64]stampedEntry) error {
	src, err := raftreplay.Open(id, dataDir)
	if err != nil {
		return err
	}
	defer src.Close()
	for i := src.First; i <= src.Last && i > 0; i++ {
		if i%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		l, err := src.Entry(i)
		if err != nil {
			return fmt.Errorf("%s: entry %d: %w", id, i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		var env fsmpb.Envelope
		if proto.Unmarshal(l.Data, &env) != nil || env.Now == 0 {
			continue
		}
		entries[l.Index] = stampedEntry{now: env.Now, requestID: env.RequestId}
	}
	return nil
}

// logStamps adds the CommandStamped lines of node id's log (every process's) to
// entries, where its Raft log had no entry at their index. A missing log adds nothing.
func logStamps(outDir, id string, entries map[uint64]stampedEntry) error {
	needle := fmt.Sprintf("msg=%q", fsm.CommandStamped)
	_, err := scanNodeLog(outDir, id, func(line string) {
		if !strings.Contains(line, needle) {
			return
		}
		index, now := logAttr(line, "index"), logAttr(line, "now")
		if index == 0 || now == 0 {
			return
		}
		if _, ok := entries[index]; !ok {
			entries[index] = stampedEntry{now: int64(now), requestID: logString(line, "request_id")}
		}
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
