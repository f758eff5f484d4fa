package server_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// TestClusterClockIgnoresOneWrongClock runs three nodes whose wall clocks the test
// steps: the leader's a day ahead, then three days behind, a follower's a day ahead,
// then the skewed leader stopped. Every time the catalog records (a collection's
// creation time here; leases and graces are the same clock) stays within a few seconds
// of the real time and never goes back.
func TestClusterClockIgnoresOneWrongClock(t *testing.T) {
	offsets := make([]atomic.Int64, 3)
	c := servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.WallClock = func() time.Time { return time.Now().Add(time.Duration(offsets[i].Load())) }
	}})
	cl := newClient(t, c)
	ctx := context.Background()
	var last int64
	step := 0
	created := func(what string) {
		t.Helper()
		step++
		before := time.Now()
		coll, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(fmt.Sprintf("clock-%d", step)))
		require.NoError(t, err)
		at := coll.GetCreatedAtUnixMs()
		require.InDelta(t, float64(before.UnixMilli()), float64(at), float64((3 * time.Second).Milliseconds()),
			"%s: created at %v, real time %v", what, time.UnixMilli(at), before)
		require.GreaterOrEqual(t, at, last, "%s: cluster time went back", what)
		last = at
	}
	// Let every node sample the others (once a second).
	settle := func() { time.Sleep(2500 * time.Millisecond) }

	created("all clocks right")
	leader := c.Leader()
	offsets[leader].Store(int64(24 * time.Hour))
	settle()
	created("leader's clock a day ahead")
	offsets[leader].Store(int64(-72 * time.Hour))
	settle()
	created("leader's clock three days behind")
	follower := (leader + 1) % 3
	offsets[follower].Store(int64(24 * time.Hour))
	settle()
	created("leader behind, a follower ahead")
	// The nodes sample each other: the third node sees both skews.
	third := 3 - leader - follower
	seen := c.Nodes[third].ClockOffsets()
	require.InDelta(t, float64(24*time.Hour), float64(seen[c.Nodes[follower].ID()]), float64(time.Second), "offsets seen by %s: %v", c.Nodes[third].ID(), seen)
	require.InDelta(t, float64(-72*time.Hour), float64(seen[c.Nodes[leader].ID()]), float64(time.Second), "offsets seen by %s: %v", c.Nodes[third].ID(), seen)
	offsets[follower].Store(0)

	// The skewed leader goes: the next one stamps from its own view, which carries the
	// times it applied forward and follows the two right clocks.
	offsets[leader].Store(int64(24 * time.Hour))
	c.Stop(leader)
	c.WaitReady()
	created("skewed leader stopped")
	c.Restart(leader)
	settle()
	created("skewed node back")
}
