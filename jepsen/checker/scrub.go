package checker

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/raftreplay"
	"github.com/snapkeep/snapkeep/jepsen/history"
)

// Scrub holds the scrubber's verdicts to account. Nothing in a run damages a committed
// snapshot's files (the bucket audit reads them all back at the end), so no
// verification may find a snapshot DAMAGED or with DATA_LOSS: neither one on request
// (the history's snapshot-verify operations) nor any the leader's scrubber recorded
// (every SnapshotVerified entry of the Raft log, read from the stopped node whose log
// reaches back furthest). A read that failed (an S3 fault) must leave a verification
// undecided, never make it a loss.
type Scrub struct{ summary string }

func (*Scrub) Name() string { return "scrub" }

func (c *Scrub) Summary() string { return c.summary }

// StoppedNodes tells the harness to stop the nodes before this checker runs.
func (*Scrub) StoppedNodes() bool { return true }

func badOutcome(o string) bool {
	o = strings.TrimPrefix(o, "SNAPSHOT_VERIFY_OUTCOME_")
	return o == "DAMAGED" || o == "DATA_LOSS"
}

func (c *Scrub) Check(ctx context.Context, in Input) ([]Violation, error) {
	if in.End == nil || len(in.End.DataDirs) == 0 {
		return nil, fmt.Errorf("%s: no data directories in the end state", c.Name())
	}
	var vs []Violation
	onRequest := map[string]int{}
	for _, op := range in.Ops {
		if op.Kind != history.SnapshotVerify || op.Result != history.OK {
			continue
		}
		onRequest[op.Output.Outcome]++
		if badOutcome(op.Output.Outcome) {
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: []int64{op.ID}, Message: fmt.Sprintf(
				"op %d verified snapshot %s/%s (id %d, deep %v) as %s", op.ID, op.Input.Collection, op.Input.Name, op.Output.SnapshotID, op.Input.Deep, op.Output.Outcome)})
		}
	}
	src, err := earliestLog(in.End.DataDirs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name(), err)
	}
	defer src.Close()
	recorded := map[string]int{}
	deep := 0
	for i := src.First; i <= src.Last && i > 0; i++ {
		if i%4096 == 0 && ctx.Err() != nil {
			return vs, ctx.Err()
		}
		l, err := src.Entry(i)
		if err != nil {
			return vs, fmt.Errorf("%s: %s entry %d: %w", c.Name(), src.Name, i, err)
		}
		var env fsmpb.Envelope
		if l.Type != raft.LogCommand || proto.Unmarshal(l.Data, &env) != nil || env.Type != fsmpb.CommandType_COMMAND_TYPE_SNAPSHOT_VERIFIED {
			continue
		}
		var cmd fsmpb.SnapshotVerified
		if proto.Unmarshal(env.Body, &cmd) != nil {
			continue
		}
		recorded[strings.TrimPrefix(cmd.Outcome.String(), "SNAPSHOT_VERIFY_OUTCOME_")]++
		if cmd.Deep {
			deep++
		}
		if badOutcome(cmd.Outcome.String()) {
			vs = append(vs, Violation{Checker: c.Name(), Message: fmt.Sprintf("%s's log entry %d records snapshot %d (deep %v) as %s: %v",
				src.Name, i, cmd.SnapshotId, cmd.Deep, cmd.Outcome, cmd.Problems)})
		}
	}
	c.summary = fmt.Sprintf("verifications on request by outcome %v; recorded in %s's log (entries %d..%d) by outcome %v, %d of them deep",
		onRequest, src.Name, src.First, src.Last, recorded, deep)
	return vs, nil
}

// earliestLog opens the stopped node whose Raft log begins earliest.
func earliestLog(dataDirs map[string]string) (*raftreplay.Source, error) {
	ids := make([]string, 0, len(dataDirs))
	for id := range dataDirs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var best *raftreplay.Source
	var firstErr error
	for _, id := range ids {
		src, err := raftreplay.Open(id, dataDirs[id])
		if err != nil {
			firstErr = err
			continue
		}
		if best == nil || src.First < best.First {
			if best != nil {
				best.Close()
			}
			best = src
			continue
		}
		src.Close()
	}
	if best == nil {
		return nil, fmt.Errorf("no node's log can be read: %w", firstErr)
	}
	return best, nil
}
