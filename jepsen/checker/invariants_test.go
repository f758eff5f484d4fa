package checker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The node-invariants checker reports every violation line of every node's log and
// counts the commands checked over the nodes' restarts.
func TestNodeInvariants(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "logs"), 0o755))
	logs := map[string][]string{
		"n1": { // two processes: 2,000 then 1,000 commands
			`time=2026-12-05T04:00:00.000Z level=INFO msg="invariants checked" node=n1 commands=1000 index=1200`,
			`time=2026-12-05T04:00:01.000Z level=INFO msg="invariants checked" node=n1 commands=2000 index=2200`,
			`time=2026-12-05T04:00:02.000Z level=INFO msg="raft starting" node=n1`,
			`time=2026-12-05T04:00:03.000Z level=INFO msg="invariants checked" node=n1 commands=1000 index=3300`,
		},
		"n2": { // a violation, and a restart at exactly the count it had
			`time=2026-12-05T04:00:00.000Z level=INFO msg="invariants checked" node=n2 commands=1000 index=1200`,
			`time=2026-12-05T04:00:01.000Z level=ERROR msg="invariant violated" node=n2 invariant=restore-leases index=1500 detail="lease 3 ended early"`,
			`time=2026-12-05T04:00:03.000Z level=INFO msg="invariants checked" node=n2 commands=1000 index=2600`,
		},
		"n3": {`time=2026-12-05T04:00:00.000Z level=INFO msg="serving" node=n3`},
	}
	dataDirs := map[string]string{}
	for id, lines := range logs {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "logs", id+".log"), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
		dataDirs[id] = filepath.Join(dir, "data", id)
	}
	c := &NodeInvariants{}
	vs, err := c.Check(context.Background(), Input{OutDir: dir, End: &EndState{DataDirs: dataDirs}})
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Contains(t, vs[0].Message, "n2: ")
	require.Contains(t, vs[0].Message, "lease 3 ended early")
	require.Contains(t, c.Summary(), "at least 5000 commands checked")
}

// The cluster-clock checker takes the stamps of entries its Raft log lost from the
// node's log lines, keeping an entry the Raft log still has as it is.
func TestLogStamps(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "logs"), 0o755))
	path := filepath.Join(dir, "logs", "n1.log")
	lines := []string{
		`time=2026-12-05T04:00:00.000Z level=DEBUG msg="command stamped" node=n1 component=fsm index=7 now=1796400000000000000 request_id=""`,
		`time=2026-12-05T04:00:00.001Z level=DEBUG msg="command stamped" node=n1 component=fsm index=8 now=1796400001000000000 request_id=w-17`,
		`time=2026-12-05T04:00:00.002Z level=DEBUG msg="command stamped" node=n1 component=fsm index=9 now=1796400002000000000 request_id="id with space"`,
		`time=2026-12-05T04:00:00.003Z level=DEBUG msg="command rejected" node=n1 component=fsm index=10 type=X err="no"`,
		`time=2026-12-05T04:00:01.000Z level=DEBUG msg="command stamped" node=n1 component=fsm index=8 now=1796400001000000000 request_id=w-17`,
	}
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	entries := map[uint64]stampedEntry{9: {now: 5, requestID: "from-raft"}}
	require.NoError(t, logStamps(dir, "n1", entries))
	require.Equal(t, map[uint64]stampedEntry{
		7: {now: 1796400000000000000},
		8: {now: 1796400001000000000, requestID: "w-17"},
		9: {now: 5, requestID: "from-raft"},
	}, entries)
	require.Equal(t, "id with space", logString(lines[2], "request_id"))
	require.NoError(t, logStamps(dir, "n9", entries)) // no such log
}
