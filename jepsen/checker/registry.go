package checker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/snapkeep/snapkeep/jepsen/history"
)

// Registry checks that the snapshot registry is linearizable, per (collection,
// name). See the package documentation for how each op kind must be recorded.
type Registry struct {
	// Timeout bounds the search per partition (DefaultTimeout when zero).
	Timeout time.Duration
}

func (*Registry) Name() string { return "linearizable-registry" }

// Name states as the model sees them: a DELETING snapshot frees its name at once,
// so for the name it is absent.
const (
	nameAbsent byte = iota
	namePending
	nameCommitted
)

type regState struct {
	st    byte
	id    uint64 // 0: not known (a create whose outcome is unknown)
	maxID uint64 // the largest snapshot id known to have had this name
}

type regOpKind byte

const (
	regBegin      regOpKind = iota // create, first half: absent → pending
	regCommit                      // OK create, second half: pending → committed
	regMaybeBegin                  // unknown/failed create: absent → pending; live → unchanged
	regFinish                      // unknown create: pending → committed or absent (given up)
	regGiveUp                      // failed create: pending → absent, or unchanged
	regExists                      // create refused "already exists": live, unchanged
	regDrop                        // OK drop, Existed
	regDropAbsent                  // OK drop, !Existed
	regDropMaybe                   // unknown drop: live → absent; absent unchanged
	regDescribe                    // describe (or one name of a list)
)

type regIn struct {
	k  regOpKind
	id uint64 // begin/commit: the id the create returned
	// describe: the state seen (nameAbsent/Pending/Committed) and its id (0: the
	// observation carries no id, as in a list)
	seen byte
}

var regNames = map[regOpKind]string{regBegin: "begin", regCommit: "commit", regMaybeBegin: "begin?", regFinish: "finish?",
	regGiveUp: "give-up?", regExists: "exists", regDrop: "drop(existed)", regDropAbsent: "drop(absent)",
	regDropMaybe: "drop?", regDescribe: "read"}

var stateNames = []string{"absent", "PENDING", "COMMITTED"}

func live(st byte) bool { return st == namePending || st == nameCommitted }

// regStep is the registry's nondeterministic step.
func regStep(state, input, _ any) []any {
	s := state.(regState)
	in := input.(regIn)
	same := []any{s}
	switch in.k {
	case regBegin:
		if s.st != nameAbsent || in.id <= s.maxID {
			return nil
		}
		return []any{regState{st: namePending, id: in.id, maxID: in.id}}
	case regCommit:
		if s.st != namePending || (s.id != 0 && s.id != in.id) {
			return nil
		}
		return []any{regState{st: nameCommitted, id: in.id, maxID: max(s.maxID, in.id)}}
	case regMaybeBegin:
		if s.st != nameAbsent {
			return same
		}
		return []any{regState{st: namePending, maxID: s.maxID}, s}
	case regFinish:
		if s.st != namePending {
			return same
		}
		return []any{regState{st: nameCommitted, id: s.id, maxID: s.maxID}, regState{st: nameAbsent, maxID: s.maxID}}
	case regGiveUp:
		if s.st != namePending {
			return same
		}
		return []any{regState{st: nameAbsent, maxID: s.maxID}, s}
	case regExists:
		if !live(s.st) {
			return nil
		}
		return same
	case regDrop:
		// DropSnapshot reads the name, then proposes MarkDeleting of the id it read,
		// which succeeds on a snapshot already DELETING: two concurrent drops both
		// report Existed. So an Existed drop may also find the name absent. It always
		// leaves it absent: an acknowledged drop can never be followed by its snapshot.
		return []any{regState{st: nameAbsent, maxID: s.maxID}}
	case regDropAbsent:
		if s.st != nameAbsent {
			return nil
		}
		return same
	case regDropMaybe:
		return []any{regState{st: nameAbsent, maxID: s.maxID}}
	case regDescribe:
		if s.st != in.seen {
			return nil
		}
		if in.id == 0 || s.st == nameAbsent {
			return same
		}
		if s.id == 0 { // first sight of an id a create with unknown outcome made
			if in.id <= s.maxID {
				return nil
			}
			return []any{regState{st: s.st, id: in.id, maxID: in.id}}
		}
		if s.id != in.id {
			return nil
		}
		return same
	}
	return nil
}

var registryModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{regState{}} },
	Step: regStep,
	Hash: func(state any) uint64 {
		s := state.(regState)
		return mix(uint64(s.st)<<62 ^ s.id<<20 ^ s.maxID)
	},
	DescribeOperation: func(input, _ any) string {
		in := input.(regIn)
		switch in.k {
		case regDescribe:
			return fmt.Sprintf("read → %s id %d", stateNames[in.seen], in.id)
		case regBegin, regCommit:
			return fmt.Sprintf("%s id %d", regNames[in.k], in.id)
		}
		return regNames[in.k]
	},
	DescribeState: func(state any) string {
		s := state.(regState)
		return fmt.Sprintf("%s id %d (max id %d)", stateNames[s.st], s.id, s.maxID)
	},
}

// snapState maps a recorded snapshot state to the model's view of the name.
func snapState(state string) (byte, bool) {
	switch strings.TrimPrefix(strings.ToUpper(state), "SNAPSHOT_STATE_") {
	case "PENDING":
		return namePending, true
	case "COMMITTED":
		return nameCommitted, true
	case "DELETING":
		return nameAbsent, true
	}
	return 0, false
}

func regKey(collection, name string) string { return collection + "/" + name }

// registryPartitions turns the history into model operations per (collection, name).
// Lists are projected onto every name of their collection the history mentions.
func registryPartitions(ops []history.Op) map[string][]pop {
	ops = normalize(ops)
	inf := infinity(ops)
	parts := map[string][]pop{}
	namesOf := map[string]map[string]bool{}
	for _, op := range ops {
		switch op.Kind {
		case history.SnapshotCreate, history.SnapshotDrop, history.SnapshotDescribe:
			if namesOf[op.Input.Collection] == nil {
				namesOf[op.Input.Collection] = map[string]bool{}
			}
			namesOf[op.Input.Collection][op.Input.Name] = true
		case history.SnapshotList:
			// A name only a list shows (no create of it in the history) is checked
			// too: it starts absent, so a phantom is a violation.
			if op.Result == history.OK {
				if namesOf[op.Input.Collection] == nil {
					namesOf[op.Input.Collection] = map[string]bool{}
				}
				for name := range op.Output.States {
					namesOf[op.Input.Collection][name] = true
				}
			}
		}
	}
	add := func(key string, op history.Op, in regIn, ret int64) {
		parts[key] = append(parts[key], pop{in: in, call: op.Call, ret: ret, op: op, client: op.Client})
	}
	for _, op := range ops {
		key := regKey(op.Input.Collection, op.Input.Name)
		ret := returnOf(op, inf)
		switch op.Kind {
		case history.SnapshotCreate:
			switch {
			case op.Result == history.OK:
				add(key, op, regIn{k: regBegin, id: op.Output.SnapshotID}, ret)
				add(key, op, regIn{k: regCommit, id: op.Output.SnapshotID}, ret)
			case op.Result == history.Fail && strings.Contains(strings.ToLower(op.Error), "already exists"):
				add(key, op, regIn{k: regExists}, ret)
			case op.Result == history.Fail:
				// Refused after it began (given up, dropped while pending) or before.
				add(key, op, regIn{k: regMaybeBegin}, ret)
				add(key, op, regIn{k: regGiveUp}, ret)
			default:
				add(key, op, regIn{k: regMaybeBegin}, ret)
				add(key, op, regIn{k: regFinish}, ret)
			}
		case history.SnapshotDrop:
			switch op.Result {
			case history.OK:
				if op.Output.Existed {
					add(key, op, regIn{k: regDrop}, ret)
				} else {
					add(key, op, regIn{k: regDropAbsent}, ret)
				}
			case history.Unknown:
				add(key, op, regIn{k: regDropMaybe}, ret)
			}
		case history.SnapshotDescribe:
			if op.Result == history.Unknown {
				continue
			}
			if notFound(op) {
				add(key, op, regIn{k: regDescribe, seen: nameAbsent}, ret)
				continue
			}
			if op.Result != history.OK {
				continue
			}
			if st, ok := snapState(op.Output.State); ok {
				id := op.Output.SnapshotID
				if st == nameAbsent {
					id = 0
				}
				add(key, op, regIn{k: regDescribe, seen: st, id: id}, ret)
			}
		case history.SnapshotList:
			if op.Result != history.OK {
				continue
			}
			for name := range namesOf[op.Input.Collection] {
				seen := nameAbsent
				if st, ok := op.Output.States[name]; ok {
					if s, ok := snapState(st); ok {
						seen = s
					}
				}
				add(regKey(op.Input.Collection, name), op, regIn{k: regDescribe, seen: seen}, ret)
			}
		}
	}
	return parts
}

func (r *Registry) Check(_ context.Context, in Input) ([]Violation, error) {
	vs, unknown, err := checkPartitions(r.Name(), registryModel, registryPartitions(in.Ops), r.Timeout, in.OutDir)
	if err != nil {
		return nil, err
	}
	return vs, unknownErr(r.Name(), unknown)
}
