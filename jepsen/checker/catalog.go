package checker

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/snapkeep/snapkeep/jepsen/history"
)

// Catalog checks that the segment catalog is linearizable, per segment id. A
// compaction or a multi-segment drop is projected onto each segment it names (see
// the package documentation).
type Catalog struct {
	// Timeout bounds the search per partition (DefaultTimeout when zero).
	Timeout time.Duration
}

func (*Catalog) Name() string { return "linearizable-catalog" }

const (
	segUnborn byte = iota
	segAllocated
	segFlushed
	segDropped
	segGone // dropped and its record removed by GC
)

var segStateNames = []string{"unborn", "ALLOCATED", "FLUSHED", "DROPPED", "gone"}

type segState struct {
	st    byte
	files string // canonical file list while flushed or dropped after a flush
}

type segOpKind byte

const (
	segAllocate     segOpKind = iota // OK allocate: unborn → allocated
	segFlush                         // flush or compaction output (OK or unknown): allocated → flushed(files)
	segConsume                       // compaction input (OK or unknown): flushed → dropped
	segDrop                          // drop (OK or unknown): → dropped
	segRead                          // get
	segFlushMaybe                    // unknown flush/output: allocated → flushed, otherwise unchanged
	segConsumeMaybe                  // unknown compaction input: flushed → dropped, otherwise unchanged
	segRelease                       // release answered deletable: flushed → dropped; dropped or gone stay
	segReleaseMaybe                  // unknown release: flushed → dropped, otherwise unchanged
)

var segOpNames = []string{"allocate", "flush", "compact-input", "drop", "get", "flush?", "compact-input?", "release", "release?"}

type segIn struct {
	k     segOpKind
	files string
	seen  byte // get: segAllocated/Flushed/Dropped, or segGone for not found
}

func canonFiles(fs []history.File) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.Key + ":" + strconv.FormatInt(f.Size, 10) + ":" + strconv.FormatUint(uint64(f.CRC32C), 16)
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}

// segStep is the catalog's nondeterministic step. Besides the ops, the system moves
// by itself: an allocation's lease may expire (allocated → dropped) and GC may
// remove a dropped segment's record (dropped → gone); reads may observe those.
func segStep(state, input, _ any) []any {
	s := state.(segState)
	in := input.(segIn)
	same := []any{s}
	switch in.k {
	case segAllocate:
		if s.st != segUnborn {
			return nil
		}
		return []any{segState{st: segAllocated}}
	case segFlush:
		if s.st != segAllocated {
			return nil
		}
		return []any{segState{st: segFlushed, files: in.files}}
	case segFlushMaybe:
		if s.st != segAllocated {
			return same
		}
		return []any{segState{st: segFlushed, files: in.files}}
	case segConsume:
		if s.st != segFlushed {
			return nil
		}
		return []any{segState{st: segDropped, files: s.files}}
	case segConsumeMaybe:
		if s.st != segFlushed {
			return same
		}
		return []any{segState{st: segDropped, files: s.files}}
	case segRelease:
		switch s.st {
		case segFlushed:
			return []any{segState{st: segDropped, files: s.files}}
		case segDropped, segGone:
			return same
		}
		return nil // an upload in flight is never deletable
	case segReleaseMaybe:
		if s.st == segFlushed {
			return []any{s, segState{st: segDropped, files: s.files}}
		}
		return same
	case segDrop:
		switch s.st {
		case segUnborn:
			return nil
		case segGone:
			return same
		}
		return []any{segState{st: segDropped, files: s.files}}
	case segRead:
		switch in.seen {
		case segGone:
			switch s.st {
			case segUnborn, segGone:
				return same
			case segAllocated, segDropped: // (lease expired and) GC removed the record
				return []any{segState{st: segGone}}
			}
			return nil
		case segAllocated:
			if s.st != segAllocated {
				return nil
			}
			return same
		case segFlushed:
			if s.st != segFlushed || s.files != in.files {
				return nil
			}
			return same
		case segDropped:
			switch s.st {
			case segDropped:
				return same
			case segAllocated: // the lease expired
				return []any{segState{st: segDropped}}
			}
			return nil
		}
	}
	return nil
}

var catalogModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{segState{}} },
	Step: segStep,
	Hash: func(state any) uint64 {
		s := state.(segState)
		h := fnv.New64a()
		h.Write([]byte{s.st})
		h.Write([]byte(s.files))
		return h.Sum64()
	},
	DescribeOperation: func(input, _ any) string {
		in := input.(segIn)
		switch in.k {
		case segRead:
			return fmt.Sprintf("get → %s %s", segStateNames[in.seen], in.files)
		case segFlush, segFlushMaybe:
			return fmt.Sprintf("%s %s", segOpNames[in.k], in.files)
		}
		return segOpNames[in.k]
	},
	DescribeState: func(state any) string {
		s := state.(segState)
		return fmt.Sprintf("%s %s", segStateNames[s.st], s.files)
	},
}

func segSeen(state string) (byte, bool) {
	switch strings.TrimPrefix(strings.ToUpper(state), "SEGMENT_STATE_") {
	case "ALLOCATED":
		return segAllocated, true
	case "FLUSHED":
		return segFlushed, true
	case "DROPPED":
		return segDropped, true
	}
	return 0, false
}

// catalogPartitions turns the history into model operations per segment id. Only
// segments whose allocation was acknowledged (so whose id the history knows from the
// start) are checked.
func catalogPartitions(ops []history.Op) map[string][]pop {
	ops = normalize(ops)
	inf := infinity(ops)
	parts := map[uint64][]pop{}
	known := map[uint64]bool{}
	for _, op := range ops {
		if op.Kind == history.SegmentAllocate && op.Result == history.OK && op.Output.SegmentID != 0 {
			known[op.Output.SegmentID] = true
		}
	}
	add := func(id uint64, op history.Op, in segIn, ret int64) {
		if known[id] {
			parts[id] = append(parts[id], pop{in: in, call: op.Call, ret: ret, op: op, client: op.Client})
		}
	}
	for _, op := range ops {
		ret := returnOf(op, inf)
		unknown := op.Result == history.Unknown
		if op.Result == history.Fail && op.Kind != history.SegmentGet {
			continue // refused: no effect (compaction is all or nothing)
		}
		switch op.Kind {
		case history.SegmentAllocate:
			if op.Result == history.OK {
				add(op.Output.SegmentID, op, segIn{k: segAllocate}, ret)
			}
		case history.SegmentFlush:
			k := segFlush
			if unknown {
				k = segFlushMaybe
			}
			add(op.Input.SegmentID, op, segIn{k: k, files: canonFiles(op.Input.Files)}, ret)
		case history.SegmentCompact:
			k, kin := segFlush, segConsume
			if unknown {
				k, kin = segFlushMaybe, segConsumeMaybe
			}
			add(op.Input.SegmentID, op, segIn{k: k, files: canonFiles(op.Input.Files)}, ret)
			for _, id := range op.Input.Inputs {
				add(id, op, segIn{k: kin}, ret)
			}
		case history.SegmentDrop:
			ids := op.Input.SegmentIDs
			if len(ids) == 0 && op.Input.SegmentID != 0 {
				ids = []uint64{op.Input.SegmentID}
			}
			for _, id := range ids {
				add(id, op, segIn{k: segDrop}, ret)
			}
		case history.Release:
			// A segment answered deletable was released (dropped) by the answer; one
			// answered "keep" was not changed by it.
			for i, id := range op.Input.SegmentIDs {
				switch {
				case unknown:
					add(id, op, segIn{k: segReleaseMaybe}, ret)
				case i < len(op.Output.Verdicts) && op.Output.Verdicts[i]:
					add(id, op, segIn{k: segRelease}, ret)
				}
			}
		case history.SegmentGet:
			if unknown {
				continue
			}
			if notFound(op) {
				add(op.Input.SegmentID, op, segIn{k: segRead, seen: segGone}, ret)
				continue
			}
			if op.Result != history.OK {
				continue
			}
			if st, ok := segSeen(op.Output.State); ok {
				in := segIn{k: segRead, seen: st}
				if st == segFlushed {
					in.files = canonFiles(op.Output.Files)
				}
				add(op.Input.SegmentID, op, in, ret)
			}
		}
	}
	out := make(map[string][]pop, len(parts))
	for id, p := range parts {
		out[fmt.Sprintf("segment-%d", id)] = p
	}
	return out
}

func (c *Catalog) Check(_ context.Context, in Input) ([]Violation, error) {
	vs, unknown, err := checkPartitions(c.Name(), catalogModel, catalogPartitions(in.Ops), c.Timeout, in.OutDir)
	if err != nil {
		return nil, err
	}
	return vs, unknownErr(c.Name(), unknown)
}
