package checker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

func waitRestore(t *testing.T, cl *client.Client, id uint64) *pb.RestoreJob {
	t.Helper()
	var job *pb.RestoreJob
	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(context.Background(), id)
		if err != nil {
			return false
		}
		job = j
		return finalRestore(j.State)
	}, 60*time.Second, 50*time.Millisecond, "restore job %d did not end", id)
	return job
}

func messages(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(v.Message + "\n")
	}
	return b.String()
}

// overwrite replaces an object with other bytes of the same size.
func overwrite(t *testing.T, store objstore.Store, key string) {
	t.Helper()
	ctx := context.Background()
	body, info, err := store.Get(ctx, key)
	require.NoError(t, err)
	b, err := io.ReadAll(body)
	body.Close()
	require.NoError(t, err)
	for i := range b {
		b[i] ^= 0x5a
	}
	_, err = store.Put(ctx, key, bytes.NewReader(b), info.Size, objstore.PutOptions{})
	require.NoError(t, err)
}

// TestEndStateCheckers runs the end-of-run checkers against a real in-process
// cluster: first a healthy one (no violation), then with the bucket corrupted,
// histories claiming what did not happen, and mismatched hashes.
func TestEndStateCheckers(t *testing.T) {
	ctx := context.Background()
	// While stall is set, restore executors hold their reports until release closes:
	// a job stays running.
	var stall atomic.Bool
	release := make(chan struct{})
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Failpoints = &server.Failpoints{BeforeRestoreReport: func(ctx context.Context, _, _ uint64) error {
			if stall.Load() {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}}
	}})
	cl, err := client.New(ctx, c.Endpoints()...)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	store := c.Bucket.Store

	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	gen, err := datagen.Generate(ctx, cl, store, datagen.Options{Collection: "docs", Segments: 3,
		FilesPerSegment: 4, FileSize: 256, Seed: 1, RowsPerSegment: 10})
	require.NoError(t, err)

	h := &hb{}
	s1, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "s1"))
	require.NoError(t, err)
	createS1 := h.add(0, history.SnapshotCreate, 1, 2, history.OK, history.Input{Collection: "docs", Name: "s1"},
		history.Output{SnapshotID: s1.Id, State: "COMMITTED"}, "")
	s2, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "s2"))
	require.NoError(t, err)
	h.add(0, history.SnapshotCreate, 3, 4, history.OK, history.Input{Collection: "docs", Name: "s2"},
		history.Output{SnapshotID: s2.Id, State: "COMMITTED"}, "")
	_, err = cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "s2"))
	require.NoError(t, err)
	h.drop(0, 5, 6, "s2", true)
	h.ops[len(h.ops)-1].Input.Collection = "docs"

	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "s1", "copy"))
	require.NoError(t, err)
	job := waitRestore(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	startOp := h.add(1, history.RestoreStart, 7, 8, history.OK, history.Input{Collection: "docs", Name: "s1", Target: "copy"},
		history.Output{JobID: resp.JobId}, "")
	h.add(1, history.RestoreStatus, 9, 10, history.OK, history.Input{JobID: resp.JobId}, history.Output{State: "COMPLETED"}, "")

	hash := c.WaitConverged()
	end := &EndState{Client: cl, Store: store, Root: "snapkeep", NodeHashes: map[string]string{"n1": hash, "n2": hash, "n3": hash}}
	run := func(t *testing.T, ch Checker, ops []history.Op, end *EndState) []Violation {
		t.Helper()
		vs, err := ch.Check(ctx, Input{Ops: ops, End: end, OutDir: t.TempDir()})
		require.NoError(t, err)
		return vs
	}

	t.Run("healthy", func(t *testing.T) {
		for _, ch := range All()[2:] {
			if s, ok := ch.(StoppedNodes); ok && s.StoppedNodes() {
				continue // below, once the nodes are stopped
			}
			require.Empty(t, run(t, ch, h.ops, end), ch.Name())
		}
	})

	t.Run("lost: an acknowledged create not committed at the end", func(t *testing.T) {
		g := &hb{ops: append([]history.Op(nil), h.ops...)}
		lost := g.add(2, history.SnapshotCreate, 20, 21, history.OK, history.Input{Collection: "docs", Name: "ghost"},
			history.Output{SnapshotID: 987654, State: "COMMITTED"}, "")
		vs := run(t, LostUndone{}, g.ops, end)
		require.Len(t, vs, 1, messages(vs))
		require.Equal(t, []int64{lost}, vs[0].OpIDs)
		// An unknown drop afterwards makes its loss legitimate.
		g.add(2, history.SnapshotDrop, 22, 23, history.Unknown, history.Input{Collection: "docs", Name: "ghost"}, history.Output{}, "timeout")
		require.Empty(t, run(t, LostUndone{}, g.ops, end))
	})

	t.Run("undone: a snapshot an acknowledged drop removed is committed at the end", func(t *testing.T) {
		g := &hb{ops: append([]history.Op(nil), h.ops...)}
		drop := g.add(2, history.SnapshotDrop, 20, 21, history.OK, history.Input{Collection: "docs", Name: "s1"}, history.Output{Existed: true}, "")
		vs := run(t, LostUndone{}, g.ops, end)
		require.Len(t, vs, 1, messages(vs))
		require.Equal(t, []int64{createS1, drop}, vs[0].OpIDs)
	})

	t.Run("convergence", func(t *testing.T) {
		require.Len(t, run(t, Convergence{}, nil, &EndState{NodeHashes: map[string]string{"n1": "a", "n2": "a", "n3": "b"}}), 1)
		vs := run(t, Convergence{}, nil, &EndState{NodeHashes: map[string]string{"n1": "a", "n2": "a"}, NodeErrors: map[string]string{"n3": "unreachable"}})
		require.Len(t, vs, 1)
		require.Contains(t, vs[0].Message, "n3")
		require.Len(t, run(t, Convergence{}, nil, &EndState{}), 1)
	})

	t.Run("restores: a started job missing, a completed job failed", func(t *testing.T) {
		g := &hb{ops: append([]history.Op(nil), h.ops...)}
		missing := g.add(2, history.RestoreStart, 20, 21, history.OK, history.Input{Collection: "docs", Name: "s1", Target: "x"},
			history.Output{JobID: 424242}, "")
		vs := run(t, Restores{}, g.ops, end)
		require.Len(t, vs, 1, messages(vs))
		require.Equal(t, []int64{missing}, vs[0].OpIDs)
	})

	t.Run("restores: a job still running at the end", func(t *testing.T) {
		stall.Store(true)
		resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "s1", "running"))
		require.NoError(t, err)
		g := &hb{ops: append([]history.Op(nil), h.ops...)}
		start := g.add(2, history.RestoreStart, 20, 21, history.OK, history.Input{Collection: "docs", Name: "s1", Target: "running"},
			history.Output{JobID: resp.JobId}, "")
		vs := run(t, Restores{}, g.ops, end)
		require.Len(t, vs, 1, messages(vs))
		require.Equal(t, []int64{start}, vs[0].OpIDs)
		require.Contains(t, vs[0].Message, "not final")
		_, err = cl.CancelRestore(ctx, client.NewCancelRestoreOption(resp.JobId))
		require.NoError(t, err)
		close(release)
		require.Equal(t, pb.RestoreState_RESTORE_STATE_CANCELLED, waitRestore(t, cl, resp.JobId).State)
		require.Empty(t, run(t, Restores{}, g.ops, end), "a cancelled job is final")
	})

	seg, err := cl.GetSegment(ctx, client.NewGetSegmentOption(gen.SegmentIDs[0]))
	require.NoError(t, err)
	seg2, err := cl.GetSegment(ctx, client.NewGetSegmentOption(gen.SegmentIDs[1]))
	require.NoError(t, err)

	t.Run("bucket audit: a file deleted, one overwritten with other bytes of the same size", func(t *testing.T) {
		deleted, changed := seg.Files[0].Key, seg2.Files[1].Key
		_, err := store.Delete(ctx, []string{deleted})
		require.NoError(t, err)
		overwrite(t, store, changed)
		vs := run(t, BucketAudit{}, h.ops, end)
		msgs := messages(vs)
		// Each file is owned by its flushed segment and by snapshot s1: one violation.
		require.Len(t, vs, 2, msgs)
		require.Contains(t, msgs, deleted+" is missing")
		require.Contains(t, msgs, changed+" has 256 bytes with CRC-32C")
	})

	t.Run("restores: a target file overwritten, a failed job seen completed", func(t *testing.T) {
		target, err := cl.ListSegments(ctx, client.NewListSegmentsOption("copy"))
		require.NoError(t, err)
		require.NotEmpty(t, target.Segments)
		key := target.Segments[0].Files[2].Key
		overwrite(t, store, key)
		vs := run(t, Restores{}, h.ops, end)
		require.Len(t, vs, 1, messages(vs))
		require.Equal(t, []int64{startOp}, vs[0].OpIDs)
		require.Contains(t, vs[0].Message, key)

		// s1's sources are damaged now: a new restore fails (a copy finds it).
		resp2, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "s1", "copy2"))
		require.NoError(t, err)
		job2 := waitRestore(t, cl, resp2.JobId)
		require.Equal(t, pb.RestoreState_RESTORE_STATE_FAILED, job2.State)
		g := &hb{ops: append([]history.Op(nil), h.ops...)}
		seen := g.add(2, history.RestoreStatus, 30, 31, history.OK, history.Input{JobID: resp2.JobId}, history.Output{State: "COMPLETED"}, "")
		vs = run(t, Restores{}, g.ops, end)
		require.Len(t, vs, 2, messages(vs))
		require.Contains(t, vs[1].OpIDs, seen)
		require.Contains(t, vs[1].Message, "was seen COMPLETED")
	})
	t.Run("restores: a target segment dropped", func(t *testing.T) {
		target, err := cl.ListSegments(ctx, client.NewListSegmentsOption("copy"))
		require.NoError(t, err)
		_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(target.Segments[0].Id))
		require.NoError(t, err)
		msgs := messages(run(t, Restores{}, h.ops, end))
		require.Contains(t, msgs, "is SEGMENT_STATE_DROPPED, not FLUSHED")
		require.Contains(t, msgs, "file lists differ")
	})

	t.Run("bucket audit: the manifest deleted", func(t *testing.T) {
		_, err := store.Delete(ctx, []string{s1.ManifestKey})
		require.NoError(t, err)
		vs := run(t, BucketAudit{}, h.ops, end)
		require.Contains(t, messages(vs), s1.ManifestKey)
	})

	t.Run("log matching: the stopped nodes' logs agree", func(t *testing.T) {
		dirs := map[string]string{}
		for i := range c.Nodes {
			dirs[fmt.Sprintf("n%d", i+1)] = c.DataDir(i)
		}
		c.StopAll()
		stopped := *end
		stopped.DataDirs = dirs
		require.Empty(t, run(t, LogMatching{}, h.ops, &stopped))
	})
}
