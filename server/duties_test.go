package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// A panic in any background duty's pass is recovered: the node keeps serving, the
// panic is counted in snapkeep_duty_panics_total, and the duty runs again.
func TestDutyPanicsLeaveTheNodesServing(t *testing.T) {
	var mu sync.Mutex
	passes := map[string]int{}
	restore := server.SetDutyPanicHookForTest(func(duty string) bool {
		mu.Lock()
		defer mu.Unlock()
		passes[duty]++
		return passes[duty] <= 2 // the first passes of each duty panic
	})
	defer restore()
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.GCInterval = 200 * time.Millisecond
		cfg.ScrubEvery, cfg.ScrubTick = time.Second, 100*time.Millisecond
	}})
	cl := gcClient(t, c)
	ctx := context.Background()
	for i := range 3 {
		_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(fmt.Sprintf("c%d", i)))
		require.NoError(t, err)
	}
	_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("c0", "s"))
	require.NoError(t, err, "the finisher commits snapshots after its panics")

	// Every duty ran past its injected panics, and the panics were counted.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range []string{"leadership", "register-node", "finisher", "restore-coordinator", "gc", "scrubber"} {
			if passes[d] <= 2 {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "duties did not run again: %v", passes)
	total := 0.0
	for _, n := range c.Nodes {
		require.NotNil(t, n)
		fams, err := n.Registry().Gather()
		require.NoError(t, err)
		for _, f := range fams {
			if f.GetName() == "snapkeep_duty_panics_total" {
				require.Len(t, f.Metric, len(server.DutyNames), "every duty's series from the start")
				for _, m := range f.Metric {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	require.GreaterOrEqual(t, total, 12.0, "2 panics each of 6 duties at least")
	// The scrubber, past its panics, verified the snapshot.
	require.Eventually(t, func() bool {
		s, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption("c0", "s"))
		require.NoError(t, err)
		return s.GetVerification().GetOutcome() == pb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK
	}, 30*time.Second, 50*time.Millisecond)
	c.WaitConverged()
}
