package raftreplay

import (
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
)

// Divergence is the first index after which two replays' states differ.
type Divergence struct {
	// Index is the first index whose state differs; Entry is A's entry there (nil when
	// the states already differ where both replays start).
	Index        uint64
	Entry        *raft.Log
	EntryB       *raft.Log
	HashA, HashB string
	// Records lists the differing records, table by table ("-" only in A, "+" only in B).
	Records []string
	// DerivedA and DerivedB are CheckDerived of each side just before Index.
	DerivedA, DerivedB error
}

// FirstDivergence replays a and b from their starts up to index `to` and finds the
// first index at which their states differ, or nil when they agree all the way. It
// compares hashes every `every` entries and bisects between with O(1) read views.
func FirstDivergence(a, b *Replayer, to uint64, every int) (*Divergence, error) {
	common := max(a.Next, b.Next) - 1
	if err := a.To(common); err != nil {
		return nil, err
	}
	if err := b.To(common); err != nil {
		return nil, err
	}
	va, vb := a.FSM.View(), b.FSM.View()
	if va.Hash() != vb.Hash() {
		return describe(common, nil, nil, nil, nil, va, vb), nil
	}
	prevA, prevB := va, vb
	for index := common + 1; index <= to; {
		end := min(to, index+uint64(every)-1)
		var viewsA, viewsB []*fsm.View
		var entriesA, entriesB []*raft.Log
		for i := index; i <= end; i++ {
			la, err := a.Step()
			if err != nil {
				return nil, err
			}
			lb, err := b.Step()
			if err != nil {
				return nil, err
			}
			viewsA, viewsB = append(viewsA, a.FSM.View()), append(viewsB, b.FSM.View())
			entriesA, entriesB = append(entriesA, la), append(entriesB, lb)
		}
		n := len(viewsA)
		if viewsA[n-1].Hash() != viewsB[n-1].Hash() {
			// The first k with differing states: hashes agree before it, differ from it on.
			lo, hi := 0, n-1
			for lo < hi {
				mid := (lo + hi) / 2
				if viewsA[mid].Hash() != viewsB[mid].Hash() {
					hi = mid
				} else {
					lo = mid + 1
				}
			}
			beforeA, beforeB := prevA, prevB
			if lo > 0 {
				beforeA, beforeB = viewsA[lo-1], viewsB[lo-1]
			}
			d := describe(index+uint64(lo), entriesA[lo], entriesB[lo], beforeA, beforeB, viewsA[lo], viewsB[lo])
			return d, nil
		}
		prevA, prevB = viewsA[n-1], viewsB[n-1]
		index = end + 1
	}
	return nil, nil
}

func describe(index uint64, ea, eb *raft.Log, beforeA, beforeB, va, vb *fsm.View) *Divergence {
	d := &Divergence{Index: index, Entry: ea, EntryB: eb, HashA: va.Hash(), HashB: vb.Hash(), Records: DiffRecords(va, vb, 50)}
	if beforeA != nil {
		d.DerivedA = beforeA.CheckDerived()
		d.DerivedB = beforeB.CheckDerived()
	}
	return d
}

// Dump renders a view's records as text lines, "table: record".
func Dump(v *fsm.View) []string {
	var out []string
	opts := prototext.MarshalOptions{}
	v.EachRecord(func(table string, rec proto.Message) bool {
		out = append(out, table+": "+strings.TrimSpace(opts.Format(rec)))
		return true
	})
	return out
}

// DiffRecords lists up to limit records that are in one view and not the other.
func DiffRecords(a, b *fsm.View, limit int) []string {
	da, db := Dump(a), Dump(b)
	inB := map[string]int{}
	for _, l := range db {
		inB[l]++
	}
	inA := map[string]int{}
	for _, l := range da {
		inA[l]++
	}
	var out []string
	for _, l := range da {
		if inB[l] == 0 && len(out) < limit {
			out = append(out, "- "+l)
		}
	}
	for _, l := range db {
		if inA[l] == 0 && len(out) < limit {
			out = append(out, "+ "+l)
		}
	}
	return out
}

// String renders a divergence for a person.
func (d *Divergence) String() string {
	var sb strings.Builder
	if d.Entry == nil {
		fmt.Fprintf(&sb, "the states already differ at %d, where both replays start\n", d.Index)
	} else {
		fmt.Fprintf(&sb, "the states part at index %d: entry %s\n", d.Index, describeLog(d.Entry))
		if d.EntryB != nil && (d.EntryB.Term != d.Entry.Term || string(d.EntryB.Data) != string(d.Entry.Data) || d.EntryB.Type != d.Entry.Type) {
			fmt.Fprintf(&sb, "  B's entry at that index is different: %s\n", describeLog(d.EntryB))
		}
	}
	fmt.Fprintf(&sb, "  hash A %s\n  hash B %s\n", d.HashA, d.HashB)
	if d.Entry != nil {
		fmt.Fprintf(&sb, "  derived state before it: A %v; B %v\n", orOK(d.DerivedA), orOK(d.DerivedB))
	}
	for _, r := range d.Records {
		sb.WriteString("  " + r + "\n")
	}
	return sb.String()
}

func describeLog(l *raft.Log) string {
	if l.Type != raft.LogCommand {
		return fmt.Sprintf("term %d, %s", l.Term, l.Type)
	}
	return fmt.Sprintf("term %d, %s", l.Term, fsm.DescribeEntry(l.Data))
}

func orOK(err error) string {
	if err == nil {
		return "agrees with a rebuild"
	}
	return err.Error()
}
