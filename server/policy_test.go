package server_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/policy"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// The acceptance tests of snapshot policies (issue 17) through three real nodes: a
// leader lost at a due time, the whole cluster down for several due times, retention
// racing a restore, and holds nobody may release early. The subtests share one
// cluster (tokens on, failpoints armed by each subtest) and run one after another.

// policyFaults are the failpoints of every node of the test cluster; a subtest arms
// the ones it needs and disarms them when it ends. An unarmed failpoint does nothing.
type policyFaults struct {
	mu           sync.Mutex
	beforeRun    func(ctx context.Context, node string, cmd *fsmpb.PolicyRun) error
	afterRun     func(ctx context.Context, node string, cmd *fsmpb.PolicyRun, err error) error
	beforeRetain func(ctx context.Context, node, policy string) error
	beforeReport func(ctx context.Context) error
}

func (f *policyFaults) arm(fn func(f *policyFaults)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *policyFaults) disarm() {
	f.arm(func(f *policyFaults) { f.beforeRun, f.afterRun, f.beforeRetain, f.beforeReport = nil, nil, nil, nil })
}

// failpoints are node's failpoints, calling whatever is armed at the time.
func (f *policyFaults) failpoints(node string) *server.Failpoints {
	get := func() policyFaults {
		f.mu.Lock()
		defer f.mu.Unlock()
		return policyFaults{beforeRun: f.beforeRun, afterRun: f.afterRun, beforeRetain: f.beforeRetain, beforeReport: f.beforeReport}
	}
	return &server.Failpoints{
		BeforePolicyRun: func(ctx context.Context, cmd *fsmpb.PolicyRun) error {
			if h := get().beforeRun; h != nil {
				return h(ctx, node, cmd)
			}
			return nil
		},
		AfterPolicyRun: func(ctx context.Context, cmd *fsmpb.PolicyRun, err error) error {
			if h := get().afterRun; h != nil {
				return h(ctx, node, cmd, err)
			}
			return nil
		},
		BeforePolicyRetain: func(ctx context.Context, policy string) error {
			if h := get().beforeRetain; h != nil {
				return h(ctx, node, policy)
			}
			return nil
		},
		BeforeRestoreReport: func(ctx context.Context, _, _ uint64) error {
			if h := get().beforeReport; h != nil {
				return h(ctx)
			}
			return nil
		},
	}
}

// caughtRun is where a failpoint caught a policy's run: the node and the command.
type caughtRun struct {
	node string
	cmd  *fsmpb.PolicyRun
	err  error
}

// holdFirstRun returns a run failpoint that catches the first run of policy on any
// node, reports it on caught and holds that node's scheduler until its leadership
// ends (the node is stopped); every other call goes through.
func holdFirstRun(policy string, caught chan<- caughtRun) func(ctx context.Context, node string, cmd *fsmpb.PolicyRun, err error) error {
	var once sync.Once
	return func(ctx context.Context, node string, cmd *fsmpb.PolicyRun, err error) error {
		first := false
		if cmd.Policy == policy {
			once.Do(func() { first = true })
		}
		if !first {
			return nil
		}
		caught <- caughtRun{node: node, cmd: proto.CloneOf(cmd), err: err}
		<-ctx.Done()
		return ctx.Err()
	}
}

var policyTokens = map[server.Role]string{
	server.RoleReader: "tok-policy-reader-xxxx",
	server.RoleWriter: "tok-policy-writer-xxxx",
	server.RoleAdmin:  "tok-policy-admin-xxxxx",
}

func tokenClient(t *testing.T, c *servertest.Cluster, role server.Role) *client.Client {
	t.Helper()
	cl, err := client.NewWithConfig(context.Background(), client.Config{
		Endpoints: c.Endpoints(), DialOptions: []grpc.DialOption{client.WithToken(policyTokens[role])},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

// nodeIndex is the index of the running node with id.
func nodeIndex(t *testing.T, c *servertest.Cluster, id string) int {
	t.Helper()
	for i, n := range c.Nodes {
		if n != nil && n.ID() == id {
			return i
		}
	}
	t.Fatalf("node %s is not running", id)
	return -1
}

// restartStopped starts the nodes a subtest stopped, so the next one has three.
func restartStopped(c *servertest.Cluster) {
	for i, n := range c.Nodes {
		if n == nil {
			c.Restart(i)
		}
	}
	c.WaitReady()
}

// policySnapshots lists the snapshots policy took of coll (every state), by due time.
func policySnapshots(t *testing.T, cl *client.Client, coll, policyName string) []*pb.Snapshot {
	t.Helper()
	var out []*pb.Snapshot
	for s, err := range cl.ListAllSnapshots(context.Background(), client.NewListSnapshotsOption().
		WithCollection(coll).WithLabel(fsm.PolicyLabel, policyName)) {
		require.NoError(t, err)
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *pb.Snapshot) int { return cmp.Compare(a.PolicyDueUnixMs, b.PolicyDueUnixMs) })
	return out
}

// withDue are the snapshots taken for due (in ms).
func withDue(snaps []*pb.Snapshot, due int64) []*pb.Snapshot {
	var out []*pb.Snapshot
	for _, s := range snaps {
		if s.PolicyDueUnixMs == due {
			out = append(out, s)
		}
	}
	return out
}

// runSlack bounds how long after its pass computed a due time the leader stamps the
// run's entry (the pass's clock, then the proposal's).
const runSlack = time.Second

// requireOneRunPerDue checks a policy's snapshots: one per due time, each due time on
// the policy's interval grid, and each the latest due time when its run was taken (a
// catch-up runs the latest missed time, not the oldest, nor each of them).
func requireOneRunPerDue(t *testing.T, p *pb.Policy, snaps []*pb.Snapshot) {
	t.Helper()
	seen := map[int64]string{}
	for _, s := range snaps {
		due := s.PolicyDueUnixMs
		require.NotZero(t, due, "snapshot %q has no due time", s.Name)
		if other, ok := seen[due]; ok {
			t.Fatalf("due time %s was run twice: snapshots %q and %q", time.UnixMilli(due).UTC(), other, s.Name)
		}
		seen[due] = s.Name
		require.Zero(t, (due-p.CreatedAtUnixMs)%p.IntervalMs, "snapshot %q: due time %d is not on the grid from %d every %d ms", s.Name, due, p.CreatedAtUnixMs, p.IntervalMs)
		require.GreaterOrEqual(t, s.CreatedAtUnixMs, due, "snapshot %q taken before its due time", s.Name)
		require.Less(t, s.CreatedAtUnixMs-due, p.IntervalMs+runSlack.Milliseconds(),
			"snapshot %q taken at %d for due time %d: a later due time had passed", s.Name, s.CreatedAtUnixMs, due)
	}
}

// waitRunsAfter waits until policy has run for at least n due times after due (ms)
// and returns its snapshots.
func waitRunsAfter(t *testing.T, cl *client.Client, coll string, p *pb.Policy, due int64, n int) []*pb.Snapshot {
	t.Helper()
	var snaps []*pb.Snapshot
	require.Eventually(t, func() bool {
		snaps = policySnapshots(t, cl, coll, p.Name)
		later := 0
		for _, s := range snaps {
			if s.PolicyDueUnixMs > due {
				later++
			}
		}
		return later >= n
	}, 30*time.Second, 50*time.Millisecond, "policy %q did not run %d more times after due time %d", p.Name, n, due)
	return snaps
}

func requireCommitted(t *testing.T, cl *client.Client, id uint64) *pb.Snapshot {
	t.Helper()
	var snap *pb.Snapshot
	require.Eventually(t, func() bool {
		s, err := cl.DescribeSnapshot(context.Background(), client.NewDescribeSnapshotByIDOption(id))
		require.NoError(t, err)
		snap = s
		return s.State == pb.SnapshotState_SNAPSHOT_STATE_COMMITTED
	}, 30*time.Second, 50*time.Millisecond, "snapshot %d was not committed", id)
	return snap
}

func describePolicy(t *testing.T, cl *client.Client, name string) *pb.Policy {
	t.Helper()
	p, err := cl.DescribePolicy(context.Background(), name)
	require.NoError(t, err)
	return p
}

// proposeOnLeader proposes cmd with requestID on the leader through the node-to-node
// service, as a follower forwards a write, and returns the FSM's answer.
func proposeOnLeader(t *testing.T, c *servertest.Cluster, requestID string, cmd, resp proto.Message) error {
	t.Helper()
	leader := c.Nodes[c.Leader()]
	conn := dialWith(t, leader.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	ctx := metadata.AppendToOutgoingContext(shortCtx(t), "snapkeep-internal-token", servertest.ClusterSecret)
	env, err := fsm.EncodeCommand(requestID, 0, cmd)
	require.NoError(t, err)
	out, err := internalv1.NewInternalClient(conn).Propose(ctx, &internalv1.ProposeRequest{Envelope: env, FromNode: leader.ID()})
	require.NoError(t, err)
	var res fsmpb.Result
	require.NoError(t, proto.Unmarshal(out.Result, &res))
	if err := fsm.ResultError(&res); err != nil {
		return err
	}
	require.NoError(t, proto.Unmarshal(res.Response, resp))
	return nil
}

func TestPolicyAcceptance(t *testing.T) {
	t.Parallel() // long and mostly waiting: it overlaps the package's other parallel tests
	faults := &policyFaults{}
	var tokenLines []string
	for role, tok := range policyTokens {
		tokenLines = append(tokenLines, server.TokenLine(role, tok))
	}
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Auth = server.AuthConfig{Tokens: tokenLines, InternalToken: servertest.ClusterSecret}
		cfg.Failpoints = faults.failpoints(cfg.NodeID)
		cfg.RestoreBatch = 4 // a restore reports several batches: a test holds it between two
	}})
	admin := tokenClient(t, c, server.RoleAdmin)
	ctx := context.Background()

	// newPolicy creates collection coll and a policy taking it every every, and
	// deletes the policy (and disarms the failpoints) when the subtest ends.
	newPolicy := func(t *testing.T, name, coll string, every time.Duration) *pb.Policy {
		t.Cleanup(faults.disarm)
		_, err := admin.CreateCollection(ctx, client.NewCreateCollectionOption(coll))
		require.NoError(t, err)
		resp, err := admin.CreatePolicy(ctx, client.NewPolicyOption(name, name+"-{20060102-150405}").
			WithCollections(coll).WithInterval(every))
		require.NoError(t, err)
		t.Cleanup(func() {
			_, err := admin.DeletePolicy(ctx, name)
			require.NoError(t, err)
		})
		return resp.Policy
	}

	t.Run("leader killed before proposing a due run: the next leader runs it once", func(t *testing.T) {
		t.Cleanup(func() { restartStopped(c) })
		caught := make(chan caughtRun, 1)
		hold := holdFirstRun("kill-before", caught)
		faults.arm(func(f *policyFaults) {
			f.beforeRun = func(ctx context.Context, node string, cmd *fsmpb.PolicyRun) error {
				return hold(ctx, node, cmd, nil)
			}
		})
		// Every two seconds: a failover is usually quicker, so the next leader runs the
		// very due time the killed one was about to propose.
		p := newPolicy(t, "kill-before", "kill_before", 2*time.Second)

		var at caughtRun
		select {
		case at = <-caught:
		case <-time.After(30 * time.Second):
			t.Fatal("no leader came to propose the policy's first run")
		}
		due := time.Unix(0, at.cmd.Due).UnixMilli()
		killed := nodeIndex(t, c, at.node)
		c.Stop(killed)

		// The next leader runs the due time the killed one never proposed (or, had the
		// failover taken longer than the interval, the latest one since), once.
		snaps := waitRunsAfter(t, admin, "kill_before", p, due-1, 1)
		first := snaps[0]
		t.Logf("killed %s at due time %d; the next leader ran due time %d at %d", at.node, due, first.PolicyDueUnixMs, first.CreatedAtUnixMs)
		require.GreaterOrEqual(t, first.PolicyDueUnixMs, due)
		if first.CreatedAtUnixMs < due+p.IntervalMs {
			require.Equal(t, due, first.PolicyDueUnixMs, "the failover was quicker than the interval: the next leader runs the same due time")
		}
		requireCommitted(t, admin, first.Id)

		// The schedule continues, one run per due time.
		snaps = waitRunsAfter(t, admin, "kill_before", p, first.PolicyDueUnixMs, 1)
		requireOneRunPerDue(t, p, snaps)
	})

	t.Run("leader killed after its run committed, before it learned the result: one snapshot", func(t *testing.T) {
		t.Cleanup(func() { restartStopped(c) })
		caught := make(chan caughtRun, 1)
		faults.arm(func(f *policyFaults) { f.afterRun = holdFirstRun("kill-after", caught) })
		// Every second: whether the failover outlasts the interval does not matter here.
		p := newPolicy(t, "kill-after", "kill_after", time.Second)

		var at caughtRun
		select {
		case at = <-caught:
		case <-time.After(30 * time.Second):
			t.Fatal("no leader proposed the policy's first run")
		}
		require.NoError(t, at.err, "the run's entry committed")
		due := time.Unix(0, at.cmd.Due).UnixMilli()
		c.Stop(nodeIndex(t, c, at.node))
		c.Leader()

		// The run the killed leader took is there once, and the next leader's
		// finisher commits its snapshot.
		snaps := policySnapshots(t, admin, "kill_after", p.Name)
		taken := withDue(snaps, due)
		require.Len(t, taken, 1, "one snapshot for the due time the killed leader ran")
		requireCommitted(t, admin, taken[0].Id)

		// The killed leader's proposal retried on the new leader (as a follower
		// forwards it) gets the first run's answer; the same run under another
		// request id is refused: the due time is used up.
		var again fsmpb.PolicyRunResponse
		require.NoError(t, proposeOnLeader(t, c, policy.RunRequestID(p.Id, at.cmd.Due), at.cmd, &again))
		require.Len(t, again.Results, 1)
		require.Equal(t, taken[0].Id, again.Results[0].SnapshotId, "the retried proposal is answered with the first run's snapshot")
		err := proposeOnLeader(t, c, "retried-by-someone-else", at.cmd, &again)
		require.ErrorIs(t, err, fsm.ErrFailedPrecondition)
		require.Contains(t, err.Error(), fmt.Sprintf("policy %q already ran for due time %s", p.Name, time.Unix(0, at.cmd.Due).UTC().Format(time.RFC3339Nano)))

		// Later due times continue, one run each; the killed leader's stays single.
		snaps = waitRunsAfter(t, admin, "kill_after", p, due, 2)
		require.Len(t, withDue(snaps, due), 1)
		requireOneRunPerDue(t, p, snaps)
	})

	t.Run("cluster stopped for three due times: one catch-up run", func(t *testing.T) {
		t.Cleanup(func() { restartStopped(c) })
		const every = time.Second
		p := newPolicy(t, "catch-up", "catch_up", every)
		before := waitRunsAfter(t, admin, "catch_up", p, 0, 1)

		for i := range c.Nodes {
			c.Stop(i)
		}
		stopped := time.Now()
		// Down for three and a half intervals: three due times or more pass.
		time.Sleep(time.Until(stopped.Add(3*every + every/2)))
		for i := range c.Nodes {
			c.Restart(i)
		}
		restarted := time.Now()
		c.WaitReady()

		// The last run before the stop, and the first after the restart.
		var last int64
		for _, s := range policySnapshots(t, admin, "catch_up", p.Name) {
			if s.CreatedAtUnixMs < stopped.UnixMilli() {
				last = max(last, s.PolicyDueUnixMs)
			}
		}
		require.GreaterOrEqual(t, last, before[0].PolicyDueUnixMs)
		snaps := waitRunsAfter(t, admin, "catch_up", p, last, 1)
		var after []*pb.Snapshot
		for _, s := range snaps {
			if s.PolicyDueUnixMs > last {
				after = append(after, s)
			}
		}
		catchUp := after[0]
		require.GreaterOrEqual(t, catchUp.CreatedAtUnixMs, restarted.UnixMilli(), "the first run after the last one before the stop was taken after the restart")
		// One run for all the due times missed, for the latest of them.
		require.Less(t, catchUp.CreatedAtUnixMs-catchUp.PolicyDueUnixMs, every.Milliseconds()+runSlack.Milliseconds(),
			"the first run after the restart, at %d, was for due time %d, not the latest missed one", catchUp.CreatedAtUnixMs, catchUp.PolicyDueUnixMs)
		require.GreaterOrEqual(t, catchUp.PolicyDueUnixMs-last, 3*every.Milliseconds(), "three due times or more passed while the cluster was down")
		requireOneRunPerDue(t, p, snaps)
		requireCommitted(t, admin, catchUp.Id)

		// The schedule continues, one run per due time.
		snaps = waitRunsAfter(t, admin, "catch_up", p, catchUp.PolicyDueUnixMs, 2)
		requireOneRunPerDue(t, p, snaps)
	})

	t.Run("retention racing a restore of the snapshot it would expire: the restore wins", func(t *testing.T) {
		t.Cleanup(faults.disarm)
		_, err := admin.CreateCollection(ctx, client.NewCreateCollectionOption("kept"))
		require.NoError(t, err)
		_, err = datagen.Generate(ctx, admin, c.Bucket.Store, datagen.Options{Collection: "kept",
			Segments: 3, FilesPerSegment: 4, FileSize: 1024, Seed: 17})
		require.NoError(t, err)
		// Runs only when executed (the first due time is an hour away); keeps the
		// newest snapshot; checks its retention every second.
		_, err = admin.CreatePolicy(ctx, client.NewPolicyOption("keep-one", "keep-{20060102-150405.000}").
			WithCollections("kept").WithInterval(time.Hour).WithRetention(0, 0, 1).WithRetentionInterval(time.Second))
		require.NoError(t, err)
		t.Cleanup(func() {
			_, err := admin.DeletePolicy(ctx, "keep-one")
			require.NoError(t, err)
		})

		// The leader decides to expire the older snapshot and is held before it
		// proposes; meanwhile a restore of that snapshot begins.
		retaining, letRetain := make(chan struct{}, 1), make(chan struct{})
		restoring, letRestore := make(chan struct{}, 1), make(chan struct{})
		faults.arm(func(f *policyFaults) {
			var once sync.Once
			f.beforeRetain = func(ctx context.Context, _, policy string) error {
				first := false
				if policy == "keep-one" {
					once.Do(func() { first = true })
				}
				if !first {
					return nil
				}
				retaining <- struct{}{}
				select {
				case <-letRetain:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			f.beforeReport = func(ctx context.Context) error {
				select {
				case restoring <- struct{}{}:
				default:
				}
				select {
				case <-letRestore:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		})
		execute := func() *pb.Snapshot {
			resp, err := admin.ExecutePolicy(ctx, "keep-one")
			require.NoError(t, err)
			require.Len(t, resp.Results, 1)
			require.Empty(t, resp.Results[0].Error)
			return requireCommitted(t, admin, resp.Results[0].SnapshotId)
		}
		older := execute()
		newer := execute()
		select {
		case <-retaining:
		case <-time.After(30 * time.Second):
			t.Fatal("retention never came to expire the older snapshot")
		}
		job, err := admin.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("kept", older.Name, "kept_copy"))
		require.NoError(t, err)
		select {
		case <-restoring:
		case <-time.After(30 * time.Second):
			t.Fatal("the restore never copied a batch")
		}

		// The retention the leader decided before the restore began is applied now:
		// it looks again at its entry's time and keeps the snapshot being restored.
		close(letRetain)
		var p *pb.Policy
		require.Eventually(t, func() bool {
			p = describePolicy(t, admin, "keep-one")
			return p.Status.LastRetentionAtUnixMs != 0
		}, 30*time.Second, 50*time.Millisecond, "the held retention was never applied")
		require.Zero(t, p.Status.SnapshotsDeleted, "retention expired the snapshot being restored")
		s, err := admin.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(older.Id))
		require.NoError(t, err)
		require.Equal(t, pb.SnapshotState_SNAPSHOT_STATE_COMMITTED, s.State, s.DeleteReason)
		preview, err := admin.PreviewPolicyRetention(ctx, "keep-one")
		require.NoError(t, err)
		reasons := map[uint64]string{}
		for _, d := range preview.Decisions {
			reasons[d.SnapshotId] = d.Reason
			require.False(t, d.Delete, "nothing can expire while the restore reads the older snapshot: %v", d)
		}
		require.Equal(t, fmt.Sprintf("kept: job %d reads it", job.JobId), reasons[older.Id])

		// The restore completes with every file.
		close(letRestore)
		done := waitJob(t, admin, job.JobId)
		require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, done.State, done.Error)
		require.EqualValues(t, 3*4, done.FilesTotal)
		require.Equal(t, done.FilesTotal, done.FilesDone)
		requireSameContent(t, c, admin, "kept", "kept_copy")

		// Then retention expires the older snapshot, and only it.
		require.Eventually(t, func() bool {
			s, err := admin.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(older.Id))
			return errors.Is(err, client.ErrNotFound) || (err == nil && s.State == pb.SnapshotState_SNAPSHOT_STATE_DELETING)
		}, 30*time.Second, 50*time.Millisecond, "retention did not expire the older snapshot once the restore ended")
		require.EqualValues(t, 1, describePolicy(t, admin, "keep-one").Status.SnapshotsDeleted)
		s, err = admin.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(newer.Id))
		require.NoError(t, err)
		require.Equal(t, pb.SnapshotState_SNAPSHOT_STATE_COMMITTED, s.State)
	})

	t.Run("held until: refused for admins with a clear error", func(t *testing.T) {
		reader, writer := tokenClient(t, c, server.RoleReader), tokenClient(t, c, server.RoleWriter)
		_, err := writer.CreateCollection(ctx, client.NewCreateCollectionOption("held"))
		require.NoError(t, err)
		for _, name := range []string{"legal", "audit"} {
			_, err := writer.CreateSnapshot(ctx, client.NewCreateSnapshotOption("held", name))
			require.NoError(t, err)
		}

		_, err = reader.AddSnapshotHold(ctx, client.NewSnapshotHoldOption("held", "legal", "case 42"))
		require.ErrorIs(t, err, client.ErrPermissionDenied)

		// A writer retains "legal" for an hour: not even an admin drops it or
		// releases the hold before then.
		held, err := writer.AddSnapshotHold(ctx, client.NewSnapshotHoldOption("held", "legal", "case 42").WithUntil(time.Now().Add(time.Hour)))
		require.NoError(t, err)
		require.True(t, held.Hold.Active)
		until := time.UnixMilli(held.Hold.UntilUnixMs).UTC().Format(time.RFC3339Nano)
		_, err = admin.DropSnapshot(ctx, client.NewDropSnapshotOption("held", "legal"))
		require.ErrorIs(t, err, client.ErrFailedPrecondition)
		require.Contains(t, err.Error(), fmt.Sprintf(`snapshot "legal" is held until %s (hold %d: case 42); nobody, admins included, can drop it before then`, until, held.Hold.Id))
		_, err = admin.RemoveSnapshotHold(ctx, "", "held", "legal", held.Hold.Id)
		require.ErrorIs(t, err, client.ErrFailedPrecondition)
		require.Contains(t, err.Error(), fmt.Sprintf(`snapshot "legal": hold %d is retained until %s (case 42); nobody, admins included, can remove it before then`, held.Hold.Id, until))
		s, err := admin.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption("held", "legal"))
		require.NoError(t, err)
		require.Equal(t, pb.SnapshotState_SNAPSHOT_STATE_COMMITTED, s.State)
		require.Len(t, s.Holds, 1)
		require.True(t, s.Holds[0].Active)

		// A hold until removed: an admin (not a writer) removes it, then drops.
		open, err := writer.AddSnapshotHold(ctx, client.NewSnapshotHoldOption("held", "audit", "quarterly audit"))
		require.NoError(t, err)
		_, err = admin.DropSnapshot(ctx, client.NewDropSnapshotOption("held", "audit"))
		require.ErrorIs(t, err, client.ErrFailedPrecondition)
		require.Contains(t, err.Error(), fmt.Sprintf(`snapshot "audit" is held (hold %d: quarterly audit); remove the hold first`, open.Hold.Id))
		_, err = writer.RemoveSnapshotHold(ctx, "", "held", "audit", open.Hold.Id)
		require.ErrorIs(t, err, client.ErrPermissionDenied)
		s, err = admin.RemoveSnapshotHold(ctx, "", "held", "audit", open.Hold.Id)
		require.NoError(t, err)
		require.Empty(t, s.Holds)
		_, err = admin.DropSnapshot(ctx, client.NewDropSnapshotOption("held", "audit"))
		require.NoError(t, err)
	})
}
