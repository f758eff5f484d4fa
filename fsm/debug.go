package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/btree"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Tools for finding where two replicas part: the hash of a read view, the canonical
// record stream with table names, and a check that the derived state (secondary
// orders, the reference index, leased tasks, running totals) is what the stored
// records say it should be. Derived state is never in a raft snapshot or a hash, so a
// node that built it incrementally and one that rebuilt it on restore must agree on it,
// or the next command can decide differently on each.

// Hash is FSM.Hash of the view's state.
func (v *View) Hash() string {
	h := sha256.New()
	if _, err := writeRecords(h, v.r.t); err != nil {
		return "error: " + err.Error()
	}
	return hex.EncodeToString(h.Sum(nil))
}

// EachRecord visits the canonical record stream (what Hash digests and a raft snapshot
// stores) with each record's table name, until fn returns false. Records are shared with
// the store: read-only.
func (v *View) EachRecord(fn func(table string, rec proto.Message) bool) {
	stop := false
	for _, sec := range sections {
		sec.each(v.r.t, func(rec proto.Message) bool {
			if !fn(sec.name, rec) {
				stop = true
			}
			return !stop
		})
		if stop {
			return
		}
	}
}

// DescribeEntry names the command in a log entry's data, for tools.
func DescribeEntry(data []byte) string {
	var env fsmpb.Envelope
	if err := proto.Unmarshal(data, &env); err != nil {
		return fmt.Sprintf("malformed entry: %v", err)
	}
	name := env.Type.String()
	if h, ok := handlers[env.Type]; ok {
		name = h.name
	}
	s := fmt.Sprintf("%s (%d bytes", name, len(env.Body))
	if env.RequestId != "" {
		s += ", request " + env.RequestId
	}
	return s + ")"
}

// CheckDerived rebuilds the view's derived state from its stored records and reports
// every way the maintained state differs from the rebuild. nil means they agree.
func (v *View) CheckDerived() error { return v.r.t.checkDerived() }

func (t *tables) checkDerived() error {
	fresh := newTables()
	for _, sec := range sections {
		if sec.name == "meta" || sec.name == "restore pools" {
			continue // no derived state hangs off them
		}
		var err error
		sec.each(t, func(rec proto.Message) bool {
			b, e := proto.MarshalOptions{Deterministic: true}.Marshal(rec)
			if e == nil {
				e = sec.load(fresh, b)
			}
			if e != nil {
				err = fmt.Errorf("%s: %w", sec.name, e)
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	fresh.rebuildPins()
	fresh.rebuildLeasedTasks()

	var errs []error
	checkTable(&errs, "databases", t.databases, fresh.databases)
	checkTable(&errs, "collections", t.collections, fresh.collections)
	checkTable(&errs, "segments", t.segments, fresh.segments)
	checkTable(&errs, "nodes", t.nodes, fresh.nodes)
	checkTable(&errs, "requests", t.requests, fresh.requests)
	checkTable(&errs, "snapshots", t.snapshots, fresh.snapshots)
	checkTable(&errs, "restore jobs", t.restoreJobs, fresh.restoreJobs)
	checkTable(&errs, "restore plans", t.restorePlans, fresh.restorePlans)
	checkTable(&errs, "repositories", t.repositories, fresh.repositories)
	checkTable(&errs, "policies", t.policies, fresh.policies)
	checkTable(&errs, "restore leases", t.restoreLeases, fresh.restoreLeases)
	checkTable(&errs, "gc reports", t.gcReports, fresh.gcReports)
	checkTree(&errs, "segment pins", t.segmentPins, fresh.segmentPins)
	checkTree(&errs, "build pins", t.buildPins, fresh.buildPins)
	checkTree(&errs, "pinned segment sizes", t.segmentSizes, fresh.segmentSizes)
	checkTree(&errs, "pinned build sizes", t.buildSizes, fresh.buildSizes)
	checkTree(&errs, "leased tasks", t.leasedTasks, fresh.leasedTasks)
	return errors.Join(errs...)
}

// checkTable compares a table's secondary orders and totals with those of a rebuild.
func checkTable[T proto.Message](errs *[]error, name string, have, want *table[T]) {
	if have.totals != want.totals {
		*errs = append(*errs, fmt.Errorf("%s: totals %v, rebuilt %v", name, have.totals, want.totals))
	}
	for i := range have.secondary {
		checkTreeBy(errs, fmt.Sprintf("%s secondary order %d", name, i), have.secondary[i].tree, want.secondary[i].tree,
			func(a, b T) bool { return proto.Equal(a, b) }, func(r T) string { return shortRecord(r) })
	}
	for i := range have.nested {
		checkTree(errs, fmt.Sprintf("%s nested ids %d", name, i), have.nested[i].tree, want.nested[i].tree)
	}
}

func checkTree[T comparable](errs *[]error, name string, have, want *btree.BTreeG[T]) {
	checkTreeBy(errs, name, have, want, func(a, b T) bool { return a == b }, func(r T) string { return fmt.Sprintf("%+v", r) })
}

// checkTreeBy walks two ordered trees side by side and reports their first difference.
func checkTreeBy[T any](errs *[]error, name string, have, want *btree.BTreeG[T], equal func(a, b T) bool, show func(T) string) {
	var hs, ws []T
	have.Ascend(func(r T) bool { hs = append(hs, r); return true })
	want.Ascend(func(r T) bool { ws = append(ws, r); return true })
	for i := 0; i < len(hs) || i < len(ws); i++ {
		switch {
		case i >= len(hs):
			*errs = append(*errs, fmt.Errorf("%s: %d entries, rebuilt %d; first missing: %s", name, len(hs), len(ws), show(ws[i])))
		case i >= len(ws):
			*errs = append(*errs, fmt.Errorf("%s: %d entries, rebuilt %d; first extra: %s", name, len(hs), len(ws), show(hs[i])))
		case !equal(hs[i], ws[i]):
			*errs = append(*errs, fmt.Errorf("%s: entry %d is %s, rebuilt %s", name, i, show(hs[i]), show(ws[i])))
		default:
			continue
		}
		return
	}
}

func shortRecord(m proto.Message) string {
	s := fmt.Sprint(m)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
