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

// aliveCluster is a LeaderCluster whose gossip sees the nodes in alive (the other
// methods are not called by what uses it).
type aliveCluster struct {
	LeaderCluster
	alive map[string]bool
}

func (c aliveCluster) Alive(node string) bool { return c.alive[node] }

// A follower measured in an earlier job shares the next one from its start, although
// its last request is older than executorHealthy; one not measured, or dead, does not.
func TestWorkIsSplitOverMeasuredExecutors(t *testing.T) {
	c := NewCoordinator(aliveCluster{alive: map[string]bool{"n1": true, "n2": true, "n3": true}}, CoordinatorConfig{Node: "n1"})
	long := time.Now().Add(-executorHealthy - time.Minute)
	c.executors = map[string]*executorStats{
		"n2": {asked: time.Now(), rate: 900},
		"n3": {asked: long, rate: 800}, // measured, idle since its last job
		"n4": {asked: long, rate: 700}, // measured, but gossip does not see it
		"n5": {asked: long},            // never measured
	}
	require.Equal(t, []string{"n2"}, c.healthyExecutors())
	require.Equal(t, []string{"n2", "n3"}, c.withMeasured(c.healthyExecutors()))
	// With both counted, the first asker of a small job gets its share (2,000 × 900 /
	// 1,700), not 2 s of its work (1,800 of the 2,000).
	rates := c.rates([]string{"n2", "n3"})
	require.Equal(t, 1059, leaseSize(leaseSizing{maxTasks: 4096, pooled: 2000, rate: rates[0], rates: rates}))
	require.Equal(t, 1800, leaseSize(leaseSizing{maxTasks: 4096, pooled: 2000, rate: rates[0], rates: rates[:1]}))
}
