package jepsen

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/internal/harness"
	"github.com/snapkeep/snapkeep/jepsen/checker"
	"github.com/snapkeep/snapkeep/jepsen/cluster"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/jepsen/nemesis"
	"github.com/snapkeep/snapkeep/jepsen/workload"
)

// Runs write their artifacts under jepsen/out (gitignored), kept for inspection.
const testOut = "out"

func leakOptions() []goleak.Option {
	return []goleak.Option{
		// the AWS SDK's HTTP transport keeps idle connections to the S3 server
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	}
}

func run(t *testing.T, o Options) *Result {
	t.Helper()
	var log bytes.Buffer
	o.Log = &log
	o.Out = testOut
	ctx, cancel := context.WithTimeout(context.Background(), o.Duration+3*time.Minute)
	defer cancel()
	res, err := Run(ctx, o)
	t.Log(log.String())
	require.NoError(t, err)
	t.Log(res.Summary(), "in", res.Dir)
	t.Cleanup(func() {
		if !t.Failed() {
			_ = os.RemoveAll(res.Dir) // a failed run's directory is kept for inspection
		}
	})
	for _, name := range []string{"history.jsonl", "results.json", "summary.txt", "timeline.html", "logs/n1.log"} {
		require.FileExists(t, filepath.Join(res.Dir, name))
	}
	f, err := os.Open(filepath.Join(res.Dir, "history.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	ops, faults, err := history.Read(f)
	require.NoError(t, err)
	require.Len(t, ops, res.Ops)
	require.Len(t, faults, res.Faults)
	return res
}

// TestSmoke: 60 s of every workload under kills, partitions, clock skews and disk faults must end healed,
// quiesced (every node the same FSM hash) and with no violation.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a 60-second cluster run of real processes (make test runs it)")
	}
	defer goleak.VerifyNone(t, leakOptions()...)
	kinds, err := nemesis.Parse("kill,partition,clock,disk")
	require.NoError(t, err)
	res := run(t, Options{Duration: 60 * time.Second, Seed: 7, Clients: 4, Workloads: workload.All, Nemeses: kinds})
	require.Greater(t, res.Ops, 100)
	require.Greater(t, res.Faults, 0)
	require.Empty(t, res.Problems, "the cluster must heal, quiesce and finish its restores")
	require.NotEmpty(t, checker.All(), "the smoke run must be checked")
	require.Empty(t, res.CheckerErrors)
	require.Empty(t, res.Violations)
	require.Zero(t, res.Undecided, "every unknown write decided from the deduplication window: %s", res.Resolved)
}

// TestBugs: each deliberate bug of a jepsenbug build must be caught.
func TestBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: nine cluster runs of real processes, 8–30 s each (make test runs them)")
	}
	for _, tc := range []struct {
		bug, nemeses string
		workloads    []string
		duration     time.Duration
		// checker must be among those reporting it ("": any)
		checker string
	}{
		// a partitioned follower keeps answering reads from its stale state
		{"stale-describe", "partition-majority,partition-leader", []string{workload.Snapshots, workload.Segments}, 30 * time.Second, ""},
		// GC with grace 0 deletes the files of dropped segments that snapshots pin.
		// Without the repositories workload: an export of a snapshot whose segments
		// the bug took retries for good, and the end of the run then waits its 60 s
		// for it (about one run in two); the bucket audit catches the bug without it.
		{"gc-skip-refs", "none", []string{workload.Snapshots, workload.Segments, workload.Restores, workload.GC}, 20 * time.Second, ""},
		// the scheduler runs every due time twice more and the FSM lets them in:
		// the first due time comes 2 s after the policies are created
		{"policy-double-run", "none", []string{workload.Policies}, 6 * time.Second, (&checker.Policy{}).Name()},
		// the leader stamps commands with its own wall clock: the clock nemesis's first
		// fault skews the leader's by an hour or more, 2 s into the run
		{"clock-wall", "clock", []string{workload.Snapshots, workload.Segments}, 8 * time.Second, (&checker.ClusterClock{}).Name()},
		// health ignores the Raft log's write errors: the disk nemesis's first fault
		// fails a node's writes, 2 s into the run
		{"disk-healthy", "disk", []string{workload.Snapshots, workload.Segments}, 8 * time.Second, checker.DiskFaults{}.Name()},
		// ReleaseForDeletion ignores snapshot pins: the milvus workload's collector
		// deletes the files of segments its snapshots hold
		{"release-ignores-pins", "none", []string{workload.Snapshots, workload.Milvus}, 8 * time.Second, checker.ExternalCollector{}.Name()},
		// an allocation lease is 36 ms instead of an hour: uploads in flight lose it
		{"allocation-lease-short", "none", []string{workload.Snapshots, workload.Segments}, 8 * time.Second, checker.InFlight{}.Name()},
		// a task grant takes the job's other leases back: their tasks are granted
		// again while their holders copy them (the runs' restore batches are 4 files)
		{"lease-twice", "none", []string{workload.Snapshots, workload.Segments, workload.Restores}, 10 * time.Second, (&checker.NodeInvariants{}).Name()},
		// a verification takes a failed read for damage: the S3 fault (from 2 s in)
		// cuts object reads off half-way
		{"scrub-false-loss", "s3-faults", []string{workload.Snapshots, workload.Segments, workload.Scrub}, 12 * time.Second, (&checker.Scrub{}).Name()},
	} {
		t.Run(tc.bug, func(t *testing.T) {
			require.NotEmpty(t, checker.All(), "a bug run needs the checkers to catch it")
			kinds, err := nemesis.Parse(tc.nemeses)
			require.NoError(t, err)
			res := run(t, Options{Duration: tc.duration, Seed: 11, Clients: 4, Workloads: tc.workloads, Nemeses: kinds, Bug: tc.bug})
			require.True(t, res.Failed())
			require.NotEmpty(t, res.Violations, "the %s bug must be caught", tc.bug)
			if tc.checker != "" {
				require.True(t, slices.ContainsFunc(res.Violations, func(v checker.Violation) bool { return v.Checker == tc.checker }),
					"the %s bug must be caught by the %s checker: %v", tc.bug, tc.checker, res.Violations)
			}
		})
	}
}

// TestBugBuild: the bug runs' build compiles (faultinject and jepsenbug, as Run builds
// it for --bug).
func TestBugBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary with the jepsenbug tag (make test runs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := harness.BuildSnapkeep(ctx, harness.BuildOptions{Tags: []string{"faultinject", "jepsenbug"}})
	require.NoError(t, err)
	require.FileExists(t, bin)
}

// recordingChecker reports one violation and keeps what it was given.
type recordingChecker struct{ in checker.Input }

func (*recordingChecker) Name() string { return "recording" }

func (c *recordingChecker) Check(ctx context.Context, in checker.Input) ([]checker.Violation, error) {
	c.in = in
	// the end state's client reaches the healed cluster
	if _, err := in.End.Client.ListCollections(ctx, client.NewListCollectionsOption()); err != nil {
		return nil, err
	}
	return []checker.Violation{{Checker: "recording", Message: "always", OpIDs: []int64{1}}}, nil
}

// TestCheckerWiring: a short run hands the checkers the history and a healed, quiesced
// end state, and a violation fails the run and lands in results.json.
func TestCheckerWiring(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a cluster run of real processes (make test runs it)")
	}
	rc := &recordingChecker{}
	res := run(t, Options{Duration: 5 * time.Second, Seed: 1, Clients: 2, Workloads: workload.All, Checkers: []checker.Checker{rc}})
	require.True(t, res.Failed())
	require.Len(t, res.Violations, 1)
	require.Empty(t, res.Problems)
	require.Len(t, rc.in.Ops, res.Ops)
	require.Equal(t, res.Dir, rc.in.OutDir)
	require.Equal(t, cluster.Root, rc.in.End.Root)
	require.NotNil(t, rc.in.End.Store)
	require.Len(t, rc.in.End.NodeHashes, 3)
	require.Empty(t, rc.in.End.NodeErrors)
	var first string
	for _, h := range rc.in.End.NodeHashes {
		if first == "" {
			first = h
		}
		require.Equal(t, first, h, "quiesced nodes have the same FSM hash")
	}
	b, err := os.ReadFile(filepath.Join(res.Dir, "results.json"))
	require.NoError(t, err)
	require.Contains(t, string(b), `"always"`)
}
