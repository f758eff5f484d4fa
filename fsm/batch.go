package fsm

import (
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

var _ raft.BatchingFSM = (*FSM)(nil)

// ApplyBatch applies committed entries in order, as Apply would one by one, with the
// same results and the same state after the last; raft calls it instead of Apply with
// the entries of one commit. The batch shares one private clone of the state, made
// when it starts and published once when it ends: a B-tree path the batch writes is
// copied once for all its entries rather than once per entry, and readers are woken
// once. (A node's batches need not match another's: the state after each is what the
// entries one by one give.)
//
// A rejected command must leave no change of its own. Alone, Apply restores the
// committed state; in a batch that would also drop the entries before it, so the
// state before the rejected command is rebuilt from the committed state by doing the
// batch's earlier entries again (replay). Apply is deterministic, so they make the
// same changes; rejections are rare, and this costs nothing until one happens.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	tx := f.current()
	done := make([]executed, len(logs))
	var last uint64
	at := 0 // the entry being executed: before() rebuilds the state ahead of it
	before := func() *tables { return f.replay(logs[:at], done[:at]) }
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		at = i
		done[i] = f.executeFrom(&tx, l.Index, l.Data, before)
		out[i] = &ApplyResult{Index: l.Index, Result: done[i].result}
		last = l.Index
	}
	if last == 0 {
		return out // no command: nothing changed
	}
	meta := proto.CloneOf(tx.meta)
	meta.AppliedIndex = last
	tx.meta = meta

	f.mu.Lock()
	f.committed = tx
	f.applied = last
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.mu.Unlock()
	f.validation.release()
	return out
}

// replay returns a clone of the committed state with logs done again as they were
// (done): a command whose handler's changes stood is run again; a rejected one only
// records its request in the window again; the others changed nothing.
func (f *FSM) replay(logs []*raft.Log, done []executed) *tables {
	tx := f.current()
	for i, l := range logs {
		switch e := done[i]; {
		case e.ran:
			f.executeFrom(&tx, l.Index, l.Data, func() *tables {
				// Apply is deterministic: a command accepted on a state is accepted again
				// on the same state. Were it not, this node's state could not be trusted
				// (nor agree with the others'), so it stops here rather than go on.
				panic(fmt.Sprintf("fsm: entry %d, accepted in a batch, was rejected when replayed: Apply is not deterministic", l.Index))
			})
		case e.remembered != nil:
			r := e.remembered
			rememberRequest(tx, r.RequestId, r.Type, r.BodyHash, r.Result)
		}
	}
	return tx
}
