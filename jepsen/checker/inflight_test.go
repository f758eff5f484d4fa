package checker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/jepsen/history"
)

func TestInFlight(t *testing.T) {
	expired := "rpc error: code = FailedPrecondition desc = segment 7 is dropped (its allocation lease expired before it was flushed)"
	alloc := history.Op{ID: 1, Kind: history.SegmentAllocate, Result: history.OK, Call: 0, Return: int64(time.Millisecond), Output: history.Output{SegmentID: 7}}
	tests := []struct {
		name string
		ops  []history.Op
		bad  int
	}{
		{"refused a minute after the allocation", []history.Op{alloc,
			{ID: 2, Kind: history.SegmentFlush, Result: history.Fail, Call: int64(time.Minute), Return: int64(time.Minute + time.Millisecond), Error: expired}}, 1},
		{"compaction input refused early", []history.Op{alloc,
			{ID: 2, Kind: history.SegmentCompact, Result: history.Fail, Return: int64(time.Second),
				Error: "compaction input segment 7 is already dropped (its allocation lease expired before it was flushed)"}}, 1},
		{"refused after the lease", []history.Op{alloc,
			{ID: 2, Kind: history.SegmentFlush, Result: history.Fail, Return: int64(AllocationLease + time.Second), Error: expired}}, 0},
		{"dropped for another reason", []history.Op{alloc,
			{ID: 2, Kind: history.SegmentFlush, Result: history.Fail, Return: int64(time.Second), Error: "segment 7 is dropped (dropped on request)"}}, 0},
		{"allocation outcome unknown", []history.Op{{ID: 1, Kind: history.SegmentAllocate, Result: history.Unknown},
			{ID: 2, Kind: history.SegmentFlush, Result: history.Fail, Return: int64(time.Second), Error: expired}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := InFlight{}.Check(context.Background(), Input{Ops: tc.ops})
			require.NoError(t, err)
			require.Len(t, vs, tc.bad, "%v", vs)
		})
	}
}
