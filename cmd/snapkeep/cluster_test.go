package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/internal/harness"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// runAgainst runs a snapkeep command in-process against real endpoints.
func runAgainst(t *testing.T, endpoints []string, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := execute(ctx, root, append([]string{"--endpoints", strings.Join(endpoints, ",")}, args...), &stderr)
	return stdout.String(), stderr.String(), code
}

// TestCLIAgainstThreeNodeCluster is acceptance point 3 on a real in-process cluster:
// cluster status shows three voters and one leader; a created collection is listed.
func TestCLIAgainstThreeNodeCluster(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	out, errOut, code := runAgainst(t, c.Endpoints(), "cluster", "status", "-o", "json")
	require.Equal(t, exitOK, code, errOut)
	var st snapkeepv1.ClusterStatusResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &st))
	require.Len(t, st.Nodes, 3)
	leaders, voters := 0, 0
	for _, n := range st.Nodes {
		if n.Voter {
			voters++
		}
		if n.Role == snapkeepv1.NodeRole_NODE_ROLE_LEADER {
			leaders++
			require.Equal(t, st.LeaderId, n.Id)
		}
	}
	require.Equal(t, 3, voters)
	require.Equal(t, 1, leaders)

	_, errOut, code = runAgainst(t, c.Endpoints(), "collection", "create", "docs")
	require.Equal(t, exitOK, code, errOut)
	out, errOut, code = runAgainst(t, c.Endpoints(), "collection", "list")
	require.Equal(t, exitOK, code, errOut)
	require.Regexp(t, `(?m)^docs\s`, out)

	// A server error exits 1 with the server's message.
	_, errOut, code = runAgainst(t, c.Endpoints(), "collection", "create", "docs")
	require.Equal(t, exitError, code)
	require.Contains(t, errOut, `collection "docs" already exists in database "default"`)

	// What became of writes, by request id: one the Go client sent with a known id,
	// one never sent.
	cl, err := client.New(context.Background(), c.Endpoints()...)
	require.NoError(t, err)
	defer cl.Close()
	_, err = cl.AllocateSegment(client.WithRequestID(context.Background(), "cli-test-write"), client.NewAllocateSegmentOption("docs"))
	require.NoError(t, err)
	out, errOut, code = runAgainst(t, c.Endpoints(), "cluster", "lookup-requests", "cli-test-write", "cli-test-never")
	require.Equal(t, exitOK, code, errOut)
	require.Regexp(t, `(?m)^cli-test-write\tapplied: AllocateSegment \(seq \d+\)$`, out)
	require.Regexp(t, `(?m)^cli-test-never\tnot found: not applied`, out)
	require.Regexp(t, `(?m)^the window holds seqs \d+\.\.\d+$`, out)
	_, errOut, code = runAgainst(t, c.Endpoints(), "cluster", "lookup-requests")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "needs at least one request id")
}

// freeBasePort picks a base port whose dev ports (up to the HTTP ports at
// +devHTTPOffset+devNodes-1) are free (harness.FreeBlock).
func freeBasePort(t *testing.T) int {
	t.Helper()
	base, err := harness.FreeBlock(devHTTPOffset + devNodes)
	require.NoError(t, err)
	return base
}

// TestDevDemoOnce is acceptance point 2: `snapkeep dev --demo --once` exits 0.
func TestDevDemoOnce(t *testing.T) {
	base := freeBasePort(t)
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := execute(ctx, root, []string{"dev", "--demo", "--once", "--base-port", fmt.Sprint(base), "--log-level", "error"}, &stderr)
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	out := stdout.String()
	require.Contains(t, out, fmt.Sprintf("endpoints: 127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", base+1, base+2, base+3))
	require.Contains(t, out, fmt.Sprintf("s3: http://127.0.0.1:%d bucket=", base+devS3Offset))
	require.Contains(t, out, fmt.Sprintf("http: 127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d\n", base+31, base+32, base+33))
	require.Contains(t, out, "\nready\n")
	require.Contains(t, out, "Demo finished")
}
