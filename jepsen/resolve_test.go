package jepsen

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/snapkeep/snapkeep/jepsen/history"
	snapkeepv1 "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// fakeWindow answers LookupRequests from a map, with the window's seqs.
type fakeWindow struct {
	held         map[string]*snapkeepv1.RequestOutcome
	oldest, last uint64
	err          error
	asked        [][]string
}

func (f *fakeWindow) lookup(_ context.Context, ids []string) (*snapkeepv1.LookupRequestsResponse, error) {
	f.asked = append(f.asked, ids)
	if f.err != nil {
		return nil, f.err
	}
	out := &snapkeepv1.LookupRequestsResponse{OldestSeq: f.oldest, LastSeq: f.last}
	for _, id := range ids {
		o := &snapkeepv1.RequestOutcome{RequestId: id}
		if h, ok := f.held[id]; ok {
			o = h
		}
		out.Outcomes = append(out.Outcomes, o)
	}
	return out, nil
}

// unknownWrite records a write that returned Unknown.
func unknownWrite(h *history.History, id string) int64 {
	op := h.InvokeWrite(0, history.SnapshotCreate, history.Input{Collection: "c", Name: id}, id)
	h.Complete(op, "n1", history.Unknown, history.Output{}, context.DeadlineExceeded)
	time.Sleep(time.Millisecond) // the next event is strictly later on the history's clock
	return op.ID
}

func opByID(t *testing.T, h *history.History, id int64) history.Op {
	t.Helper()
	for _, op := range h.Ops() {
		if op.ID == id {
			return op
		}
	}
	t.Fatalf("op %d not in the history", id)
	return history.Op{}
}

func TestResolverDecidesFromTheWindow(t *testing.T) {
	ctx := context.Background()
	h := history.New()
	w := &fakeWindow{held: map[string]*snapkeepv1.RequestOutcome{}}
	r := newResolver(h, w.lookup)

	applied, refused, early := unknownWrite(h, "w-applied"), unknownWrite(h, "w-refused"), unknownWrite(h, "w-early")
	w.held["w-applied"] = &snapkeepv1.RequestOutcome{RequestId: "w-applied", Found: true, Seq: 7, Command: "SnapshotBegin"}
	w.held["w-refused"] = &snapkeepv1.RequestOutcome{RequestId: "w-refused", Found: true, Seq: 8, Command: "SnapshotBegin",
		Code: int32(codes.AlreadyExists), Message: `snapshot "x" already exists`}

	// Not settled yet: nothing is asked but the probe, nothing decided.
	r.settle = time.Hour
	w.last = 100
	require.NoError(t, r.round(ctx))
	require.Equal(t, [][]string{{"jepsen-anchor"}}, w.asked)
	require.Equal(t, history.Unknown, opByID(t, h, applied).Result)
	require.Empty(t, opByID(t, h, applied).Resolved)

	// Called after that round's answer: if applied it would have a seq above 100.
	time.Sleep(time.Millisecond)
	late := unknownWrite(h, "w-late")
	r.settle = 0
	w.oldest, w.last = 101, 150 // the window forgot seqs 1..100
	require.NoError(t, r.round(ctx))

	op := opByID(t, h, applied)
	require.Equal(t, history.Unknown, op.Result, "applied, output unknown")
	require.Equal(t, "applied: SnapshotBegin, seq 7", op.Resolved)
	op = opByID(t, h, refused)
	require.Equal(t, history.Fail, op.Result)
	require.Contains(t, op.Resolved, "refused: AlreadyExists")
	require.Equal(t, context.DeadlineExceeded.Error(), op.Error, "the refusal's message is not the op's: it may have come after the op returned")
	op = opByID(t, h, early)
	require.Equal(t, history.Unknown, op.Result, "called before any round: the window may have forgotten it")
	require.Contains(t, op.Resolved, history.Undecidable)
	op = opByID(t, h, late)
	require.Equal(t, history.Fail, op.Result)
	require.Equal(t, history.NotApplied, op.Resolved)
	require.Equal(t, resolveStats{notApplied: 1, refused: 1, applied: 1, undecidable: 1, rounds: 2}, r.stats)

	// Decided operations are not asked about again.
	w.asked = nil
	require.NoError(t, r.round(ctx))
	require.Equal(t, [][]string{{"jepsen-anchor"}}, w.asked)
}

func TestResolverNotAppliedWhileTheWindowForgotNothing(t *testing.T) {
	h := history.New()
	w := &fakeWindow{oldest: 1, last: 40}
	r := newResolver(h, w.lookup)
	r.settle = 0
	id := unknownWrite(h, "w1")
	require.NoError(t, r.round(context.Background()))
	require.Equal(t, history.NotApplied, opByID(t, h, id).Resolved)

	// An empty window forgot nothing either.
	id = unknownWrite(h, "w2")
	w.oldest = 0
	require.NoError(t, r.round(context.Background()))
	require.Equal(t, history.Fail, opByID(t, h, id).Result)
}

func TestResolverLeavesWritesUndecidedWhenTheLookupFails(t *testing.T) {
	h := history.New()
	w := &fakeWindow{err: errors.New("no leader")}
	r := newResolver(h, w.lookup)
	r.settle = 0
	id := unknownWrite(h, "w1")
	require.Error(t, r.round(context.Background()))
	require.Empty(t, opByID(t, h, id).Resolved)
	require.Equal(t, 1, r.stats.failedRounds)

	w.err, w.oldest = nil, 1
	require.NoError(t, resolveAtEnd(context.Background(), r, 5*time.Second))
	require.Equal(t, history.NotApplied, opByID(t, h, id).Resolved)
}

func TestResolverAsksInBatches(t *testing.T) {
	h := history.New()
	w := &fakeWindow{oldest: 1, last: 5}
	r := newResolver(h, w.lookup)
	r.settle = 0
	for i := range lookupBatch + 3 {
		op := h.InvokeWrite(0, history.SegmentAllocate, history.Input{Collection: "c"}, fmt.Sprintf("w%d", i))
		h.Complete(op, "n1", history.Unknown, history.Output{}, context.DeadlineExceeded)
	}
	require.NoError(t, r.round(context.Background()))
	require.Len(t, w.asked, 2)
	require.Len(t, w.asked[0], lookupBatch)
	require.Len(t, w.asked[1], 3)
	require.Equal(t, lookupBatch+3, r.stats.notApplied)
}

func TestResolverSelfCheckFindsTheAcknowledgedWrites(t *testing.T) {
	h := history.New()
	op := h.InvokeWrite(0, history.SegmentAllocate, history.Input{Collection: "c"}, "w-ok")
	h.Complete(op, "n1", history.OK, history.Output{SegmentID: 1}, nil)
	w := &fakeWindow{oldest: 1, last: 1, held: map[string]*snapkeepv1.RequestOutcome{}}
	r := newResolver(h, w.lookup)
	err := resolveAtEnd(context.Background(), r, 5*time.Second)
	require.ErrorContains(t, err, `request id "w-ok") is not in the deduplication window`)

	w.held["w-ok"] = &snapkeepv1.RequestOutcome{RequestId: "w-ok", Found: true, Seq: 1, Command: "AllocateSegment"}
	require.NoError(t, resolveAtEnd(context.Background(), r, 5*time.Second))
	require.Equal(t, 1, r.stats.acknowledgedFound)
}

func TestResolverSelfCheckSkipsWritesNeverProposed(t *testing.T) {
	h := history.New()
	op := h.InvokeWrite(0, history.SnapshotDrop, history.Input{Collection: "c", Name: "s"}, "w-drop")
	h.Complete(op, "n1", history.OK, history.Output{Existed: false}, nil)
	op = h.InvokeWrite(0, history.RepoRestoreStart, history.Input{Target: "t"}, "w-norestore")
	h.Complete(op, "n1", history.OK, history.Output{}, nil)
	w := &fakeWindow{oldest: 1, last: 1}
	r := newResolver(h, w.lookup)
	require.NoError(t, resolveAtEnd(context.Background(), r, 5*time.Second), "answered from a read, or no write sent: never in the window")
	require.Zero(t, r.stats.acknowledgedFound)
}
