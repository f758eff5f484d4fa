package restore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLeaderLeavesCopyingToFollowers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	justStarted := now.Add(-200 * time.Millisecond)
	longRunning := now.Add(-executorHealthy - time.Second)
	for _, tc := range []struct {
		name            string
		healthy         []string
		otherVoterAlive bool
		start           time.Time
		leaves          bool
	}{
		{"a follower asked recently", []string{"n1", "n2"}, true, longRunning, true},
		{"a follower asked recently, no job started", []string{"n1", "n2"}, true, time.Time{}, true},
		// At a job's start the followers' last requests are as old as the previous job:
		// the leader, which asks first, must not take their leases.
		{"job just started, followers idle since the last job", []string{"n1"}, true, justStarted, true},
		{"job just started, nobody asked yet", nil, true, justStarted, true},
		{"job running long, no follower asks", []string{"n1"}, true, longRunning, false},
		{"job just started, no other voter alive", []string{"n1"}, false, justStarted, false},
		{"single node", nil, false, justStarted, false},
		{"no copying job", []string{"n1"}, true, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.leaves, leaderLeavesCopying("n1", tc.healthy, tc.otherVoterAlive, tc.start, now))
		})
	}
}
