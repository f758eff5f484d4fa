package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/snapkeep/snapkeep/internal/harness"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// buildBinary builds the snapkeep binary, with build tags, into the harness's cache
// (once per test process).
func buildBinary(t *testing.T, tags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := harness.BuildSnapkeep(ctx, harness.BuildOptions{Tags: tags})
	require.NoError(t, err)
	return bin
}

// freePort returns a 127.0.0.1 address free for TCP and UDP, outside the ephemeral
// port range (harness.FreeAddr).
func freePort(t *testing.T) string {
	t.Helper()
	addr, err := harness.FreeAddr()
	require.NoError(t, err)
	return addr
}

// serverProcess is one `snapkeep server` process.
type serverProcess struct {
	id, grpc, raft, gossip, log string
	proc                        *harness.Process
}

// startServer starts a server process in its own process group; Cleanup stops it
// (SIGTERM, then SIGKILL after 10s).
func startServer(t *testing.T, bin string, p *serverProcess, args ...string) {
	t.Helper()
	p.proc = &harness.Process{Name: p.id, Binary: bin, LogPath: p.log,
		Args: append([]string{"server", "--node-id", p.id, "--data-dir", filepath.Join(filepath.Dir(p.log), p.id),
			"--raft-addr", p.raft, "--grpc-addr", p.grpc, "--gossip-addr", p.gossip, "--s3-bucket", "", "--log-level", "info",
			"--internal-token", "membership-test-cluster-secret"}, args...)}
	require.NoError(t, p.proc.Start())
	t.Cleanup(func() {
		if err := p.proc.Stop(); err != nil {
			t.Log(err)
		}
	})
}

// alive reports whether the process has not exited.
func (p *serverProcess) alive() bool { return p.proc.Running() }

// nodeStatus asks one node directly (no leader following) for the cluster status.
func nodeStatus(addr string) (*snapkeepv1.ClusterStatusResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return snapkeepv1.NewClusterClient(conn).ClusterStatus(ctx, &snapkeepv1.ClusterStatusRequest{})
}

// TestGossipBootstrapThreeProcesses: three `snapkeep server` processes started at once
// with only --join and --bootstrap-expect 3 form one cluster: one leader named by all
// three, one configuration of three voters, every bootstrap with the same servers.
// Then leadership moves to a named node through the CLI.
func TestGossipBootstrapThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary and runs three server processes (make test runs it)")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	procs := make([]*serverProcess, 3)
	for i := range procs {
		id := fmt.Sprintf("n%d", i+1)
		procs[i] = &serverProcess{id: id, grpc: freePort(t), raft: freePort(t), gossip: freePort(t),
			log: filepath.Join(dir, id+".log")}
	}
	for i, p := range procs {
		args := []string{"--bootstrap-expect", "3"}
		for j, q := range procs {
			if j != i {
				args = append(args, "--join", q.gossip)
			}
		}
		startServer(t, bin, p, args...)
	}
	endpoints := []string{procs[0].grpc, procs[1].grpc, procs[2].grpc}
	logs := func() string {
		var b strings.Builder
		for _, p := range procs {
			data, _ := os.ReadFile(p.log)
			fmt.Fprintf(&b, "--- %s\n%s", p.id, data)
		}
		return b.String()
	}

	var leader string
	ok := false
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) && !ok {
		time.Sleep(200 * time.Millisecond)
		leaders := map[string]bool{}
		ok = true
		for _, p := range procs {
			st, err := nodeStatus(p.grpc)
			if err != nil || st.LeaderId == "" || len(st.Nodes) != 3 {
				ok = false
				break
			}
			leaders[st.LeaderId] = true
			for _, n := range st.Nodes {
				if !n.Voter || n.GossipStatus != snapkeepv1.MemberStatus_MEMBER_STATUS_ALIVE || n.GrpcAddr == "" {
					ok = false
				}
			}
			leader = st.LeaderId
		}
		ok = ok && len(leaders) == 1
	}
	require.True(t, ok, "no single three-voter cluster formed\n%s", logs())

	// The CLI's view: one leader, three voters.
	out, errOut, code := runAgainst(t, endpoints, "cluster", "status", "-o", "json")
	require.Equal(t, exitOK, code, errOut)
	var st snapkeepv1.ClusterStatusResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &st))
	require.Equal(t, leader, st.LeaderId)
	leaders := 0
	for _, n := range st.Nodes {
		require.True(t, n.Voter, n.Id)
		if n.Role == snapkeepv1.NodeRole_NODE_ROLE_LEADER {
			leaders++
		}
	}
	require.Equal(t, 1, leaders)

	// Every bootstrap that happened used the same configuration.
	all := logs()
	boots := regexp.MustCompile(`bootstrapped a new cluster from gossip.*servers="\[([^\]]*)\]"`).FindAllStringSubmatch(all, -1)
	require.NotEmpty(t, boots, all)
	for _, b := range boots {
		require.Equal(t, "n1 n2 n3", b[1])
	}
	require.NotContains(t, all, "bootstrapped a new cluster\"", "no static bootstrap")

	out, errOut, code = runAgainst(t, endpoints, "cluster", "members")
	require.Equal(t, exitOK, code, errOut)
	require.Regexp(t, `(?m)^n1\s+alive\s+yes\s`, out)
	require.Regexp(t, `(?m)^n3\s+alive\s+yes\s`, out)

	// Leadership moves to a named follower through the CLI.
	target := "n1"
	if leader == "n1" {
		target = "n2"
	}
	out, errOut, code = runAgainst(t, endpoints, "cluster", "transfer-leader", target)
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "leader: "+target+"\n", out)
	require.Eventually(t, func() bool {
		for _, p := range procs {
			st, err := nodeStatus(p.grpc)
			if err != nil || st.LeaderId != target {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond)

	// Removing an alive member or the leader is refused with a clear error.
	_, errOut, code = runAgainst(t, endpoints, "cluster", "remove", target)
	require.Equal(t, exitError, code)
	require.Contains(t, errOut, "transfer leadership first")
}

// TestClusterMembersWithoutGossip: a static cluster lists its Raft configuration, says
// gossip is off, and refuses to remove its only voter.
func TestClusterMembersWithoutGossip(t *testing.T) {
	c := newCLI(t)
	out := c.ok("cluster", "members")
	require.Contains(t, out, "Gossip is off")
	require.Regexp(t, `(?m)^n1\s+-\s+yes\s+yes\s`, out)
	r := c.run("cluster", "remove", "n1")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "node n1 is the leader: transfer leadership first")
	r = c.run("cluster", "transfer-leader", "a", "b")
	require.Equal(t, exitUsage, r.code)
	out = c.ok("cluster", "status")
	require.Contains(t, out, "GOSSIP")
}
