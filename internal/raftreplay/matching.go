package raftreplay

import (
	"bytes"
	"fmt"
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
		if la.Type != lb.Type || !bytes.Equal(la.Data, lb.Data) {
			out = append(out, Mismatch{A: a.Name, B: b.Name, Index: i, Term: la.Term,
				What: fmt.Sprintf("%s has %s, %s has %s", a.Name, describeLog(la), b.Name, describeLog(lb))})
		}
	}
	return out, nil
}
