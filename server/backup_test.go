package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/backupfile"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// backupCatalogHash decodes a backup file's body into a scratch FSM and returns its
// catalog hash.
func backupCatalogHash(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = backupfile.ReadHeader(f)
	require.NoError(t, err)
	scratch := fsm.New(nil)
	require.NoError(t, scratch.Restore(io.NopCloser(f)))
	return scratch.CatalogHash()
}

func catalogHashes(c *servertest.Cluster) []string {
	var out []string
	for _, n := range c.Nodes {
		if n != nil {
			out = append(out, n.FSM().CatalogHash())
		}
	}
	return out
}

// TestBackupRestoreIntoFreshCluster backs up a cluster with databases, collections,
// segments (flushed, compacted, dropped) and a committed snapshot through the client,
// restores the file into a second, fresh cluster and finds the identical catalog on
// all three of its nodes. A damaged backup is refused and changes nothing; a cluster
// that is not empty is refused without force.
func TestBackupRestoreIntoFreshCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The source cluster and its catalog.
	src := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, src)
	_, err := cl.CreateDatabase(ctx, client.NewCreateDatabaseOption("analytics"))
	require.NoError(t, err)
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs").WithPartitions("p1").WithSchema([]byte("schema-v1")).WithProperty("ttl", "60"))
	require.NoError(t, err)
	a := flushSegment(t, ctx, cl, "docs", 3)
	b := flushSegment(t, ctx, cl, "docs", 2)
	flushSegment(t, ctx, cl, "docs", 4)
	snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "nightly").WithLabel("env", "prod"))
	require.NoError(t, err)
	require.Equal(t, pb.SnapshotState_SNAPSHOT_STATE_COMMITTED, snap.State)
	out, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs"))
	require.NoError(t, err)
	_, err = cl.CompactSegments(ctx, client.NewCompactSegmentsOption(a.Id, b.Id).WithOutput(out.Id, 200, insertFile(out.Prefix, "insert/101/1")))
	require.NoError(t, err)
	_, err = cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs")) // in flight
	require.NoError(t, err)
	srcHash := src.WaitConverged()
	require.NotEmpty(t, srcHash)

	// Back up through the client, to a file.
	dir := t.TempDir()
	path := filepath.Join(dir, "meta.skb")
	info, err := cl.BackupToFile(ctx, path)
	require.NoError(t, err)
	require.NotZero(t, info.RaftIndex)
	require.NotEmpty(t, info.NodeId)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.EqualValues(t, info.FileSize, st.Size())
	want := backupCatalogHash(t, path)
	require.Equal(t, src.Nodes[src.Leader()].FSM().CatalogHash(), want)
	// A follower serves a backup too (a linearizable read): the same catalog.
	scl, err := client.New(ctx, src.Nodes[src.Follower()].GRPCAddr())
	require.NoError(t, err)
	defer scl.Close()
	_, err = scl.BackupToFile(ctx, filepath.Join(dir, "from-follower.skb"))
	require.NoError(t, err)
	require.Equal(t, want, backupCatalogHash(t, filepath.Join(dir, "from-follower.skb")))
	require.NoError(t, os.Remove(filepath.Join(dir, "from-follower.skb")))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")

	// A fresh cluster.
	dst := servertest.Start(t, 3, servertest.Options{})
	dcl := newClient(t, dst)
	emptyHash := dst.Nodes[dst.Leader()].FSM().CatalogHash()
	require.NotEqual(t, want, emptyHash)

	// A damaged backup is refused — by the client before sending, and by the leader
	// when sent anyway — and changes nothing.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, at := range []int{10, 30, len(data) / 2, len(data) - 3} {
		bad := bytes.Clone(data)
		bad[at] ^= 0x01
		badPath := filepath.Join(dir, "bad.skb")
		require.NoError(t, os.WriteFile(badPath, bad, 0o644))
		_, err := dcl.RestoreBackupFile(ctx, badPath, false)
		require.Error(t, err, "flipped byte %d", at)
		require.True(t, errors.Is(err, backupfile.ErrCorrupt), "flipped byte %d: %v", at, err)
		require.Contains(t, err.Error(), "restore refused")
		_, err = dcl.RestoreBackup(ctx, bytes.NewReader(bad), true)
		require.ErrorIs(t, err, client.ErrInvalidArgument, "flipped byte %d: %v", at, err)
		require.Contains(t, err.Error(), "backup refused, nothing was changed")
	}
	truncated := bytes.NewReader(data[:len(data)-10])
	_, err = dcl.RestoreBackup(ctx, truncated, true)
	require.ErrorIs(t, err, client.ErrInvalidArgument)
	require.Contains(t, err.Error(), "truncated")
	for _, h := range catalogHashes(dst) {
		require.Equal(t, emptyHash, h)
	}

	// The real restore; every node ends with the identical catalog.
	resp, err := dcl.RestoreBackupFile(ctx, path, false)
	require.NoError(t, err)
	require.Equal(t, info.RaftIndex, resp.Restored.RaftIndex)
	require.Greater(t, resp.InstalledIndex, info.RaftIndex)
	require.Eventually(t, func() bool {
		hs := catalogHashes(dst)
		for _, h := range hs {
			if h != want {
				return false
			}
		}
		return len(hs) == 3
	}, 30*time.Second, 50*time.Millisecond, "the restored catalogs differ: %v, want %s", catalogHashes(dst), want)
	// Each node's applied index is the index the state was installed at (or later), not
	// the source cluster's: reads wait on it.
	// And its node registrations are its own, never the source cluster's addresses
	// (nodes forward writes to them).
	for _, node := range dst.Nodes {
		require.GreaterOrEqual(t, node.FSM().AppliedIndex(), resp.InstalledIndex)
		for _, reg := range node.FSM().View().Nodes() {
			require.Contains(t, dst.Endpoints(), reg.GrpcAddr, "node %s registered at %s", reg.Id, reg.GrpcAddr)
		}
	}

	// The restored cluster serves the catalog and takes writes; nodes re-register.
	dst.WaitReady()
	got, err := dcl.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption("docs", "nightly"))
	require.NoError(t, err)
	require.Equal(t, snap.Id, got.Id)
	require.Equal(t, pb.SnapshotState_SNAPSHOT_STATE_COMMITTED, got.State)
	dbs, err := dcl.ListDatabases(ctx)
	require.NoError(t, err)
	require.Len(t, dbs, 2)
	_, err = dcl.CreateCollection(ctx, client.NewCreateCollectionOption("after"))
	require.NoError(t, err)
	dst.WaitConverged()

	// Not empty now: refused without force, accepted with it.
	_, err = dcl.RestoreBackupFile(ctx, path, false)
	require.ErrorIs(t, err, client.ErrFailedPrecondition)
	require.Contains(t, err.Error(), "--force")
	// Through a client that knows only a follower: the follower names the leader and
	// the client sends the restore there.
	fcl, err := client.New(ctx, dst.Nodes[dst.Follower()].GRPCAddr())
	require.NoError(t, err)
	defer fcl.Close()
	_, err = fcl.RestoreBackupFile(ctx, path, true)
	require.NoError(t, err)
	// A follower answers a restore with Unavailable, naming the leader in the trailer.
	conn, err := grpc.NewClient(dst.Nodes[dst.Follower()].GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	var trailer metadata.MD
	stream, err := pb.NewBackupClient(conn).RestoreBackup(ctx, grpc.Trailer(&trailer))
	require.NoError(t, err)
	_ = stream.Send(&pb.RestoreBackupChunk{Data: data})
	_, err = stream.CloseAndRecv()
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "not the leader")
	require.Equal(t, []string{dst.Nodes[dst.Leader()].GRPCAddr()}, trailer.Get(client.LeaderMetadataKey))
	require.Eventually(t, func() bool {
		for _, h := range catalogHashes(dst) {
			if h != want {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond)
	_, err = dcl.DescribeCollection(ctx, client.NewDescribeCollectionOption("after"))
	require.ErrorIs(t, err, client.ErrNotFound)
}

// TestScheduledBackups: the leader writes backups to the bucket on a schedule and
// keeps the newest --backup-retain; cluster backup --to-s3 writes one at once; the GC
// orphan scan, which deletes a stray object, leaves the backups alone.
func TestScheduledBackups(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Backup = server.BackupConfig{Interval: 150 * time.Millisecond, Retain: 2, Prefix: "backups"}
		cfg.GCDisabled = true
	}})
	cl := newClient(t, c)
	store := c.Bucket.Store
	list := func() []string {
		var keys []string
		page, err := store.List(ctx, "snapkeep/backups/", "", 1000)
		require.NoError(t, err)
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		return keys
	}
	seen := map[string]bool{}
	require.Eventually(t, func() bool {
		keys := list()
		for _, k := range keys {
			seen[k] = true
		}
		return len(seen) >= 4 && len(keys) == 2
	}, 30*time.Second, 20*time.Millisecond, "scheduled backups: saw %d", len(seen))
	for _, k := range list() {
		require.True(t, strings.HasPrefix(k, "snapkeep/backups/backup-") && strings.HasSuffix(k, ".skb"), k)
		rc, _, err := store.Get(ctx, k)
		require.NoError(t, err)
		_, err = backupfile.VerifyFile(rc)
		rc.Close()
		require.NoError(t, err, k)
	}
	// A backup is written before the oldest is pruned: three exist for a moment.
	require.Eventually(t, func() bool { return len(list()) <= 2 }, 10*time.Second, 20*time.Millisecond)

	// On demand, through a follower (forwarded to the leader).
	fcl, err := client.New(ctx, c.Nodes[c.Follower()].GRPCAddr())
	require.NoError(t, err)
	defer fcl.Close()
	resp, err := fcl.BackupToStore(ctx)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(resp.Key, "snapkeep/backups/backup-"), resp.Key)

	// The orphan scan deletes a stray object in snapkeep's namespaces but no backup.
	_, err = store.Put(ctx, "snapkeep/collections/stray/junk", strings.NewReader("x"), 1, objstore.PutOptions{})
	require.NoError(t, err)

	run, err := cl.GCRun(ctx, client.NewGCRunOption().WithOrphanGrace(0))
	require.NoError(t, err)
	var deleted []string
	for _, cand := range run.Candidates {
		deleted = append(deleted, cand.Key)
	}
	require.Contains(t, deleted, "snapkeep/collections/stray/junk")
	for _, k := range deleted {
		require.False(t, strings.HasPrefix(k, "snapkeep/backups/"), "GC deleted backup %s", k)
	}
	_, err = store.Head(ctx, "snapkeep/collections/stray/junk")
	require.ErrorIs(t, err, objstore.ErrNotFound)
	require.NotEmpty(t, list())
}

// TestBackupConfigValidation: bad backup settings are refused at start, each named.
func TestBackupConfigValidation(t *testing.T) {
	cfg := server.Config{NodeID: "n1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Peers:  map[string]string{"n1": "127.0.0.1:1"},
		Backup: server.BackupConfig{Interval: -time.Second, Retain: -1, Prefix: "collections/x"}}
	_, err := server.Start(cfg)
	require.Error(t, err)
	for _, want := range []string{"--backup-interval -1s", "--backup-retain -1", `--backup-prefix "collections/x/"`} {
		require.Contains(t, err.Error(), want)
	}
}

// TestBackupRestoreResumesInFlightRestoreJob is the disaster-recovery case: a backup
// taken while a restore job is copying is restored into a fresh cluster on the same
// bucket after the old cluster is gone; the new leader expires the old cluster's
// leases, and the new nodes finish the job with byte-identical copies.
func TestBackupRestoreResumesInFlightRestoreJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var reports atomic.Int32
	src := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.RestoreBatch = 4
		cfg.RestoreLease = 2 * time.Second
		// The first batch is reported; then the old cluster's executors stall.
		cfg.Failpoints = &server.Failpoints{BeforeRestoreReport: func(ctx context.Context, _, _ uint64) error {
			if reports.Add(1) == 1 {
				return nil
			}
			<-ctx.Done()
			return ctx.Err()
		}}
	}})
	cl := newClient(t, src)
	restoreSource(t, src, cl, 2)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(ctx, resp.JobId)
		return err == nil && j.FilesDone > 0 && j.State == pb.RestoreState_RESTORE_STATE_COPYING
	}, 30*time.Second, 20*time.Millisecond)
	path := filepath.Join(t.TempDir(), "meta.skb")
	_, err = cl.BackupToFile(ctx, path)
	require.NoError(t, err)
	src.StopAll() // the old cluster is lost; its bucket is not

	dst := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Store = src.Bucket.Store
		cfg.Storage = src.Bucket.Server.Config()
		cfg.RestoreBatch = 4
		cfg.RestoreLease = 2 * time.Second
	}})
	dcl := newClient(t, dst)
	_, err = dcl.RestoreBackupFile(ctx, path, false)
	require.NoError(t, err)
	job := waitJob(t, dcl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	require.Equal(t, job.FilesTotal, job.FilesDone)
	requireSameContent(t, src, dcl, "docs", "copy")
}
