package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/server/servertest"
)

func runLocal(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	code := execute(context.Background(), root, args, &stderr)
	return stdout.String(), stderr.String(), code
}

// The offline replay of a stopped node's data directory gives the node's own hash at
// the index it had applied, and two nodes of one cluster agree.
func TestDebugReplayAndDiffOfStoppedNodes(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	for i := range 5 {
		_, errOut, code := runAgainst(t, c.Endpoints(), "collection", "create", fmt.Sprintf("c%d", i))
		require.Equal(t, exitOK, code, errOut)
	}
	c.WaitConverged()
	type state struct {
		index uint64
		hash  string
	}
	var at []state
	for i := range 3 {
		index, hash := c.Nodes[i].FSM().HashAt()
		c.Stop(i)
		at = append(at, state{index, hash})
	}
	for i := range 3 {
		out, errOut, code := runLocal(t, "debug", "replay", "--index", fmt.Sprint(at[i].index), c.DataDir(i))
		require.Equal(t, exitOK, code, errOut)
		require.Contains(t, out, "hash "+at[i].hash, "node %d", i)
		require.Contains(t, out, "derived state agrees with a rebuild")
	}
	out, errOut, code := runLocal(t, "debug", "diff", c.DataDir(0), c.DataDir(1))
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "the states agree up to index")

	_, errOut, code = runLocal(t, "debug", "replay", t.TempDir())
	require.NotEqual(t, exitOK, code)
	require.Contains(t, errOut, "no Raft log")
}
