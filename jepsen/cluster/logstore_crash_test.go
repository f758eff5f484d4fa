package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/internal/harness"
	"github.com/snapkeep/snapkeep/internal/raftstore"
	"github.com/snapkeep/snapkeep/jepsen/cluster"
)

// acked records the writes the cluster acknowledged: collections created and segments
// allocated (in collection "docs").
type acked struct {
	mu          sync.Mutex
	collections []string
	segments    []uint64
	failed      int // calls that returned an error: their outcome is unknown
}

// writeLoop runs CreateCollection (even writers) or AllocateSegment (odd ones) until
// stop is closed, each call with a request id (the client's, kept across its retries)
// and a 5 s deadline.
func (a *acked) writeLoop(ctx context.Context, cl *client.Client, w int, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if w%2 == 0 {
			name := fmt.Sprintf("w%d_%d", w, i)
			_, err := cl.CreateCollection(cctx, client.NewCreateCollectionOption(name))
			a.mu.Lock()
			if err == nil {
				a.collections = append(a.collections, name)
			} else {
				a.failed++
			}
			a.mu.Unlock()
		} else {
			seg, err := cl.AllocateSegment(cctx, client.NewAllocateSegmentOption("docs"))
			a.mu.Lock()
			if err == nil {
				a.segments = append(a.segments, seg.Id)
			} else {
				a.failed++
			}
			a.mu.Unlock()
		}
		cancel()
	}
}

func (a *acked) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.collections) + len(a.segments)
}

// check reads the catalog linearizably (the default) and requires every acknowledged
// write in it.
func (a *acked) check(ctx context.Context, t *testing.T, cl *client.Client) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	cols, err := cl.ListCollections(ctx, client.NewListCollectionsOption())
	require.NoError(t, err)
	have := map[string]bool{}
	for _, c := range cols {
		have[c.Name] = true
	}
	for _, name := range a.collections {
		require.True(t, have[name], "collection %s was acknowledged and is lost", name)
	}
	segs := map[uint64]bool{}
	for s, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption("docs").WithoutFiles()) {
		require.NoError(t, err)
		segs[s.Id] = true
	}
	for _, id := range a.segments {
		require.True(t, segs[id], "segment %d was acknowledged and is lost", id)
	}
}

// startCrashCluster starts three `snapkeep server` processes (the WAL, the default log
// store) and creates collection "docs".
func startCrashCluster(t *testing.T, ctx context.Context) (*cluster.Cluster, *client.Client) {
	t.Helper()
	bin, err := harness.BuildSnapkeep(ctx, harness.BuildOptions{})
	require.NoError(t, err)
	c, err := cluster.Start(ctx, cluster.Options{Dir: t.TempDir(), Binary: bin, ExtraArgs: []string{"--log-level", "info"}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cl, err := c.Client(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	return c, cl
}

// waitServing waits until node id answers for itself.
func waitServing(ctx context.Context, t *testing.T, c *cluster.Cluster, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _, err := c.SelfStatus(sctx, id)
		cancel()
		if err == nil {
			return
		}
		require.NoError(t, ctx.Err(), "%s does not answer: %v", id, err)
		time.Sleep(100 * time.Millisecond)
	}
}

// requireConverged waits for every node to apply the same index and compares their
// FSM hashes.
func requireConverged(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hashes, errs, err := c.Quiesce(qctx)
	require.NoError(t, err, "%v", errs)
	require.Len(t, hashes, 3)
	for id, h := range hashes {
		require.Equal(t, hashes["n1"], h, "%s's FSM hash differs: %v", id, hashes)
	}
}

// TestAcknowledgedWritesSurviveKill9 (issue 19): eight clients write to three `snapkeep
// server` processes (WAL log store) while the leader, then a follower, is kill -9'd in
// the middle of their appends and restarted, three times over; then a leader that had
// to cut a suffix off its log (it was partitioned while the clients wrote to it) is
// kill -9'd and restarted (every round waits for 20 more acknowledged writes before the
// next kill). Every write the cluster acknowledged must be in a
// linearizable read at the end, and every node must reach the same FSM hash. (With
// raft-wal v0.4.0 a node restarted after such a truncation panicked, "sealed segment
// has no index block": raft-wal#31, fixed in v0.4.1.)
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary and runs three server processes and versitygw (make test runs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, cl := startCrashCluster(t, ctx)

	var a acked
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() { a.writeLoop(ctx, cl, w, stop) })
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	kill := func(role, id string) {
		before := a.count()
		t.Logf("kill -9 %s (%s) after %d acknowledged writes", id, role, before)
		require.NoError(t, c.Kill(id))
		time.Sleep(300 * time.Millisecond)
		require.NoError(t, c.Restart(id))
		waitServing(ctx, t, c, id)
		// The cluster takes writes again before the next kill.
		require.Eventually(t, func() bool { return a.count() > before+20 }, 30*time.Second, 50*time.Millisecond,
			"no writes acknowledged after %s restarted", id)
	}
	time.Sleep(time.Second)
	for range 3 {
		leader, err := c.WaitLeader(ctx)
		require.NoError(t, err)
		kill("leader", leader)
		// The old leader, restarted as a follower, usually cut from its log the entries
		// it had written that the new leader never got (raft's "clearing log suffix"):
		// it is the follower killed next, so its next start reads a truncated WAL.
		now, err := c.WaitLeader(ctx)
		require.NoError(t, err)
		follower := leader
		if now == leader {
			follower = slices.DeleteFunc(c.IDs(), func(id string) bool { return id == now })[0]
		}
		kill("follower", follower)
	}

	// Once more, sure to truncate: the leader, cut off from the others, appends entries
	// of writes sent to it after the cut that no one else gets; the others elect a new
	// leader; when the links heal the old leader clears that suffix of its log. Then it
	// is killed.
	leader, err := c.WaitLeader(ctx)
	require.NoError(t, err)
	others := slices.DeleteFunc(c.IDs(), func(id string) bool { return id == leader })
	t.Logf("partition %s from %v", leader, others)
	c.Partition([]string{leader}, others)
	// The writers' calls in flight were replicated before the cut; these reach the
	// cut-off leader after it, and are appended to its log only. Never acknowledged.
	lone, err := c.NodeClient(ctx, leader)
	require.NoError(t, err)
	var lonely sync.WaitGroup
	for i := range 16 {
		lonely.Go(func() {
			lctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, _ = lone.CreateCollection(lctx, client.NewCreateCollectionOption(fmt.Sprintf("lonely_%d", i)))
		})
	}
	lonely.Wait()
	lone.Close()
	require.Eventually(t, func() bool {
		now, err := c.Leader(ctx)
		return err == nil && now != leader
	}, 30*time.Second, 100*time.Millisecond, "no new leader on the majority side")
	before := a.count()
	require.Eventually(t, func() bool { return a.count() > before+20 }, 30*time.Second, 50*time.Millisecond)
	c.HealNetwork()
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(c.Node(leader).LogPath)
		require.NoError(t, err)
		return strings.Contains(string(b), "clearing log suffix")
	}, 30*time.Second, 100*time.Millisecond, "%s did not truncate its log after the partition healed", leader)
	kill("truncated", leader)
	close(stop)
	wg.Wait()
	truncations := 0
	for _, n := range c.Nodes {
		b, err := os.ReadFile(n.LogPath)
		require.NoError(t, err)
		truncations += strings.Count(string(b), "clearing log suffix")
	}
	t.Logf("%d collections and %d segments acknowledged, %d calls failed; %d tail truncations", len(a.collections), len(a.segments), a.failed, truncations)
	require.Greater(t, a.count(), 200)

	requireConverged(ctx, t, c)
	a.check(ctx, t, cl)
}

// TestTornWALTailIsRecovered (issue 19): the end of a stopped node's last WAL segment
// is torn — garbled (a follower), then cut short (the leader) — so that the node's log
// loses its last, committed batch when it restarts (raft-wal's recovery truncates to
// the previous intact commit; the test checks it lost entries). The node then has to
// form a quorum with the one node that still holds everything while the third is
// down: no entry the cluster acknowledged may be lost, the restarted node takes the
// lost entries back from the leader, and every node reaches the same FSM hash.
func TestTornWALTailIsRecovered(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary and runs three server processes and versitygw (make test runs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, cl := startCrashCluster(t, ctx)

	var a acked
	write := func(n int) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() { a.writeLoop(ctx, cl, w, stop) })
		}
		start := a.count()
		require.Eventually(t, func() bool { return a.count() >= start+n }, 60*time.Second, 20*time.Millisecond)
		close(stop)
		wg.Wait()
	}

	for round, how := range []string{"garble a follower's", "truncate the leader's"} {
		write(100)
		requireConverged(ctx, t, c)
		leader, err := c.WaitLeader(ctx)
		require.NoError(t, err)
		ids := c.IDs()
		victim := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == leader })[0]
		if round == 1 {
			victim = leader
		}
		others := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == victim })
		down := others[0] // the other, others[1], keeps every entry and stays up

		require.NoError(t, c.Kill(victim))
		raftDir := filepath.Join(c.Node(victim).DataDir, "raft")
		lastBefore := lastIndex(t, raftDir)
		seg := lastSegment(t, filepath.Join(raftDir, raftstore.WALDir))
		end := writtenBytes(t, seg)
		if round == 0 {
			f, err := os.OpenFile(seg, os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteAt([]byte("torn torn torn torn torn torn torn torn"), end-40)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		} else {
			require.NoError(t, os.Truncate(seg, end-40))
		}
		lastAfter := lastIndex(t, raftDir)
		t.Logf("%s tail (%s): its log now ends at %d, not %d", how, victim, lastAfter, lastBefore)
		require.Less(t, lastAfter, lastBefore, "the torn tail lost nothing: the test tore nothing")

		// The victim and others[1] form the quorum; others[1] must lead (its log is
		// longer).
		require.NoError(t, c.Kill(down))
		require.NoError(t, c.Restart(victim))
		waitServing(ctx, t, c, victim)
		write(20)
		a.check(ctx, t, cl)

		require.NoError(t, c.Restart(down))
		waitServing(ctx, t, c, down)
		requireConverged(ctx, t, c)
		a.check(ctx, t, cl)
	}
}

// lastIndex reads the last index of a stopped node's log (from a copy: the node's own
// files are untouched).
func lastIndex(t *testing.T, raftDir string) uint64 {
	t.Helper()
	s, err := raftstore.OpenReadOnly(raftDir)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, raftstore.WAL, s.Kind)
	last, err := s.LastIndex()
	require.NoError(t, err)
	return last
}

// lastSegment is the newest segment file of a WAL.
func lastSegment(t *testing.T, walDir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(walDir, "*.wal"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	slices.Sort(segs) // named by zero-padded base index
	return segs[len(segs)-1]
}

// writtenBytes is the offset past a segment's last non-zero byte (segments are
// preallocated with zeros).
func writtenBytes(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	require.Greater(t, n, 40)
	return int64(n)
}
