package fsm

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Invariants the FSM checks on itself after every command in fault-injection builds
// (checkInvariants, build tag faultinject): a violation is logged at error level with
// msg InvariantViolated, which the fault-injection harness looks for in the nodes' logs.
// They check the state the node actually reached, with code of their own, so a bug in a
// handler shows even though every node applies it alike.

// InvariantViolated is the log message of a broken invariant.
const InvariantViolated = "invariant violated"

// CommandStamped is the debug log message, in fault-injection builds, of every command
// applied (not answered from the deduplication window), with its index, its envelope
// time ("now", Unix nanoseconds) and its request id: the harness checks cluster time
// from these lines too, as they outlive the log entries raft snapshots compact away.
const CommandStamped = "command stamped"

// InvariantsChecked is the log message, every InvariantsCheckedEvery commands, with
// the number of commands this process checked so far (attribute "commands"): proof
// that the checks ran, for the harness to count.
const (
	InvariantsChecked      = "invariants checked"
	InvariantsCheckedEvery = 1000
)

// leaseMap is the restore and export task leases by id.
func leaseMap(t *tables) map[uint64]*fsmpb.RestoreLease {
	m := map[uint64]*fsmpb.RestoreLease{}
	t.restoreLeases.each(func(l *fsmpb.RestoreLease) bool {
		m[l.Id] = l
		return true
	})
	return m
}

// leaseViolations compares the leases before a command (env) with after: no task may be
// in two leases at once, and a lease may end only by its report (or one of another
// lease naming all its tasks), by an expiry stamped
// after its deadline, because its holder restarted (an expiry naming the holder's new
// incarnation) or gossip saw it gone, or with its job. So a task is never granted again
// while its holder may still copy it under its lease.
func leaseViolations(before map[uint64]*fsmpb.RestoreLease, after *tables, env *fsmpb.Envelope) []string {
	now := leaseMap(after)
	var out []string
	at := func(ns int64) string { return time.Unix(0, ns).UTC().Format("15:04:05.000") }
	for id, l := range before {
		if now[id] != nil {
			continue
		}
		why := leaseEnd(env, l)
		if why == "" {
			continue
		}
		if j, err := (reader{after}).restoreJob(l.JobId); err != nil || j.FinishedAt != 0 {
			continue // ended with its job
		}
		out = append(out, fmt.Sprintf("%s (stamped %s) ended lease %d of job %d, held by %s until %s (%d tasks), early: %s",
			env.Type, at(env.Now), l.Id, l.JobId, l.Node, at(l.Deadline), len(l.Tasks), why))
	}
	type task struct {
		job  uint64
		task uint32
	}
	holder := map[task]uint64{}
	for _, id := range sortedLeaseIDs(now) {
		l := now[id]
		for _, t := range l.Tasks {
			k := task{l.JobId, t}
			if other, ok := holder[k]; ok {
				out = append(out, fmt.Sprintf("%s (stamped %s): task %d of job %d is in lease %d of %s and lease %d of %s at once",
					env.Type, at(env.Now), t, l.JobId, other, now[other].Node, l.Id, l.Node))
			}
			holder[k] = l.Id
		}
	}
	return out
}

// leaseEnd says what is wrong with env ending lease l, or "" when env may end it.
func leaseEnd(env *fsmpb.Envelope, l *fsmpb.RestoreLease) string {
	switch env.Type {
	case fsmpb.CommandType_COMMAND_TYPE_RESTORE_REPORT:
		var cmd fsmpb.RestoreReport
		if proto.Unmarshal(env.Body, &cmd) != nil {
			return "a report that does not decode"
		}
		if cmd.LeaseId == l.Id {
			return ""
		}
		// A task is done whoever reports it: a late report of an expired lease takes its
		// tasks from the lease they were granted to since, which ends once it has none.
		reported := map[uint32]bool{}
		for _, d := range cmd.Done {
			reported[d.Task] = true
		}
		for _, f := range cmd.Failed {
			reported[f.Task] = true
		}
		for _, t := range l.Tasks {
			if !reported[t] {
				return fmt.Sprintf("a report of lease %d, which does not name its task %d", cmd.LeaseId, t)
			}
		}
		return ""
	case fsmpb.CommandType_COMMAND_TYPE_EXPIRE_RESTORE_LEASES:
		var cmd fsmpb.ExpireRestoreLeases
		if proto.Unmarshal(env.Body, &cmd) != nil {
			return "an expiry that does not decode"
		}
		if l.Deadline < env.Now || (cmd.Node == l.Node && cmd.Incarnation != l.Incarnation) || slices.Contains(cmd.GoneNodes, l.Node) {
			return ""
		}
		return fmt.Sprintf("an expiry %v before the deadline, its holder neither restarted nor gone", time.Duration(l.Deadline-env.Now).Round(time.Millisecond))
	}
	return "its job still runs"
}

func sortedLeaseIDs(m map[uint64]*fsmpb.RestoreLease) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
