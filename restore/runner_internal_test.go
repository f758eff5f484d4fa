package restore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/rpc/internalv1"
)

// A retry delay the leader asked for is a floor, except that a kick (a job started, a
// report sent) ends it at once: the runner then asks again instead of idling.
func TestRunnerPauseEndsOnAKick(t *testing.T) {
	cases := []struct {
		name       string
		delay      time.Duration
		kick       bool
		cancel     bool
		wantKicked bool
	}{
		{name: "delay passes", delay: 10 * time.Millisecond},
		{name: "kick ends a long delay", delay: time.Hour, kick: true, wantKicked: true},
		{name: "context ends a long delay", delay: time.Hour, cancel: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRunner(nil, RunnerConfig{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.kick {
				r.Kick()
			}
			if tc.cancel {
				cancel()
			}
			done := make(chan bool, 1)
			go func() { done <- r.pause(ctx, tc.delay) }()
			select {
			case kicked := <-done:
				require.Equal(t, tc.wantKicked, kicked)
			case <-time.After(10 * time.Second):
				t.Fatal("pause did not end")
			}
		})
	}
}

// TestLeaseDeadlineIsTheNodesOwn: a lease ends its length after the request was sent,
// on this node's monotonic clock, whatever the leader stamped (its clock, or this
// node's, may be days off); only a response without the length falls back to it.
func TestLeaseDeadlineIsTheNodesOwn(t *testing.T) {
	asked := time.Now()
	tests := []struct {
		name  string
		lease *internalv1.LeaseRestoreTasksResponse
		want  time.Time
	}{
		{"stamped a day ahead", &internalv1.LeaseRestoreTasksResponse{LeaseMs: 30_000, DeadlineUnixMs: asked.Add(24 * time.Hour).UnixMilli()}, asked.Add(30 * time.Second)},
		{"stamped a day behind", &internalv1.LeaseRestoreTasksResponse{LeaseMs: 30_000, DeadlineUnixMs: asked.Add(-24 * time.Hour).UnixMilli()}, asked.Add(30 * time.Second)},
		{"an older leader", &internalv1.LeaseRestoreTasksResponse{DeadlineUnixMs: asked.Add(time.Minute).UnixMilli()}, time.UnixMilli(asked.Add(time.Minute).UnixMilli())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := leaseDeadline(tc.lease, asked)
			require.True(t, got.Equal(tc.want), "deadline %v, want %v", got, tc.want)
		})
	}
}
