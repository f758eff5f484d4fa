package raftreplay

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
)

// Mismatch is a log index at which two nodes hold entries of the same term that differ:
// Raft's log matching property broken.
type Mismatch struct {
	A, B  string
	Index uint64
	Term  uint64
	What  string
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s and %s hold different entries of term %d at index %d: %s", m.A, m.B, m.Term, m.Index, m.What)
}

// LogMismatches compares the logs of two sources over the indexes both hold and
// returns every index where both have an entry of the same term but a different type or
// payload. Entries of different terms at one index are not a fault by themselves (one
// side may hold an uncommitted entry that a later leader overwrites); an equal term with
// different content is, whatever the commit state.
func LogMismatches(a, b *Source) ([]Mismatch, error) {
	var out []Mismatch
	from, to := max(a.First, b.First), min(a.Last, b.Last)
	if a.Last == 0 || b.Last == 0 {
		return nil, nil
	}
	for i := from; i <= to; i++ {
		la, err := a.Entry(i)
		if err != nil {
			return out, fmt.Errorf("%s: entry %d: %w", a.Name, i, err)
		}
		lb, err := b.Entry(i)
		if err != nil {
			return out, fmt.Errorf("%s: entry %d: %w", b.Name, i, err)
		}
		if la.Term != lb.Term {
			continue
		}
		if la.Type != lb.Type || !bytes.Equal(la.Data, lb.Data) && !sameConfiguration(la, lb) {
			out = append(out, Mismatch{A: a.Name, B: b.Name, Index: i, Term: la.Term,
				What: fmt.Sprintf("%s has %s, %s has %s", a.Name, describeLog(la), b.Name, describeLog(lb))})
		}
	}
	return out, nil
}

// sameConfiguration: two configuration entries naming the same servers. Each node of a
// statically bootstrapped cluster writes entry 1 itself, and nodes before sorting the
// servers listed them in map order: equal configurations, different bytes.
func sameConfiguration(a, b *raft.Log) bool {
	if a.Type != raft.LogConfiguration || b.Type != raft.LogConfiguration {
		return false
	}
	ca, cb := raft.DecodeConfiguration(a.Data), raft.DecodeConfiguration(b.Data)
	key := func(s raft.Server) string { return fmt.Sprintf("%s|%s|%d", s.ID, s.Address, s.Suffrage) }
	as, bs := make([]string, 0, len(ca.Servers)), make([]string, 0, len(cb.Servers))
	for _, s := range ca.Servers {
		as = append(as, key(s))
	}
	for _, s := range cb.Servers {
		bs = append(bs, key(s))
	}
	slices.Sort(as)
	slices.Sort(bs)
	return slices.Equal(as, bs)
}
