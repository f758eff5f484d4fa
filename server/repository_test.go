package server_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/repostore"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// repoWrites counts the objects written into a repository's data keys (PUT, COPY and
// multipart uploads), over every node's client.
type repoWrites struct {
	mu   sync.Mutex
	keys map[string]int
}

func (w *repoWrites) wrap(_ string, s objstore.Store) objstore.Store {
	return &countedRepo{Store: s, w: w}
}

func (w *repoWrites) note(key string) {
	if !strings.Contains(key, "/data/") {
		return
	}
	w.mu.Lock()
	w.keys[key]++
	w.mu.Unlock()
}

// take returns the writes counted since the last take and forgets them.
func (w *repoWrites) take() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.keys
	w.keys = map[string]int{}
	return out
}

type countedRepo struct {
	objstore.Store
	w *repoWrites
}

func (c *countedRepo) Put(ctx context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	c.w.note(key)
	return c.Store.Put(ctx, key, body, size, opts)
}

func (c *countedRepo) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	c.w.note(dst)
	return c.Store.Copy(ctx, src, dst)
}

func (c *countedRepo) MultipartCopy(ctx context.Context, src, dst string, size, part int64) (objstore.CopyInfo, error) {
	c.w.note(dst)
	return c.Store.MultipartCopy(ctx, src, dst, size, part)
}

func (c *countedRepo) PutMultipart(ctx context.Context, key string, body io.Reader, size, part int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	c.w.note(key)
	return c.Store.PutMultipart(ctx, key, body, size, part, opts)
}

// savedObjects serves reads of objects saved before their bucket was wiped.
type savedObjects struct {
	objstore.Store
	objects map[string][]byte
}

func (s savedObjects) Get(_ context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	b, ok := s.objects[key]
	if !ok {
		return nil, objstore.ObjectInfo{}, objstore.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), objstore.ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

// bucketOn returns a client of another bucket on the same server, created.
func bucketOn(t *testing.T, cfg objstore.S3Config, bucket string) (objstore.S3Config, *objstore.S3) {
	t.Helper()
	cfg.Bucket = bucket
	s, err := objstore.NewS3(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	require.NoError(t, s.CreateBucket(context.Background()))
	return cfg, s
}

// wipe deletes every object under prefix.
func wipe(t *testing.T, s objstore.Store, prefix string) int {
	t.Helper()
	n := 0
	for {
		page, err := s.List(context.Background(), prefix, "", 1000)
		require.NoError(t, err)
		if len(page.Objects) == 0 {
			return n
		}
		var keys []string
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		res, err := s.Delete(context.Background(), keys)
		require.NoError(t, err)
		require.Empty(t, res.Failed)
		n += len(keys)
	}
}

// repoCluster starts three nodes on the bucket cfg names (their own S3 clients) that
// know the repository credentials "offsite".
func repoCluster(t *testing.T, cfg objstore.S3Config, writes *repoWrites) *servertest.Cluster {
	return servertest.Start(t, 3, servertest.Options{Configure: func(_ int, c *server.Config) {
		c.Storage, c.Store = cfg, nil
		c.RepositoryCredentials = map[string]repostore.Credentials{"offsite": {AccessKey: versitygw.AccessKey, SecretKey: versitygw.SecretKey}}
		if writes != nil {
			c.WrapRepositoryStore = writes.wrap
		}
	}})
}

// TestExportAndRestoreFromRepository exports a snapshot to a repository, exports a
// second one after churn (only the new files are written), wipes the cluster's bucket,
// and restores the first snapshot into a fresh three-node cluster with an empty catalog
// and another bucket: byte-identical files, same schema, properties, partitions and
// indexes. Then a flipped byte in the repository fails verify --deep and a restore,
// both naming the key. Once with the repository on another endpoint (streamed copies)
// and once in another bucket of the cluster's endpoint (server-side copies), in the two
// key layouts.
func TestExportAndRestoreFromRepository(t *testing.T) {
	for _, tc := range []struct {
		name       string
		separate   bool // the repository on a second versitygw
		layout     pb.KeyLayout
		serverSide bool
	}{
		{"two-endpoints", true, pb.KeyLayout_KEY_LAYOUT_SNAPKEEP, false},
		{"one-endpoint-two-buckets", false, pb.KeyLayout_KEY_LAYOUT_MILVUS, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			gw := versitygw.Start(t)
			clusterCfg := gw.Config()
			clusterStore, err := objstore.NewS3(ctx, clusterCfg)
			require.NoError(t, err)
			defer clusterStore.Close()
			repoCfg, repoStore := bucketOn(t, clusterCfg, "backups")
			if tc.separate {
				gw2 := versitygw.Start(t)
				repoCfg, repoStore = bucketOn(t, gw2.Config(), "backups")
			}

			writes := &repoWrites{keys: map[string]int{}}
			c := repoCluster(t, clusterCfg, writes)
			cl := newClient(t, c)
			snap := restoreSourceInStore(t, clusterStore, cl, 3, tc.layout)
			source, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption("docs"))
			require.NoError(t, err)
			captured := segmentsOf(t, cl, "docs")

			reg, err := cl.RegisterRepository(ctx, client.NewRegisterRepositoryOption("backup", repoCfg.Bucket).
				WithEndpoint(repoCfg.Endpoint).WithPathStyle().WithPrefix("site-a").WithCredentials("offsite").WithDescription("offsite copies"))
			require.NoError(t, err)
			require.Len(t, reg.Probes, 3)
			for _, p := range reg.Probes {
				require.True(t, p.Ok, "%s: %s", p.Node, p.Error)
				require.True(t, p.ConditionalCreate, p.Node)
			}
			require.True(t, reg.Initialized)
			require.Equal(t, tc.serverSide, reg.Repository.CopyToRepository, "server-side copies exactly when one server holds both buckets")
			require.NotEmpty(t, reg.Repository.RepositoryId)
			require.Equal(t, reg.Repository.ClusterId, reg.Repository.WriterClusterId)

			// The first export copies every file.
			exp, err := cl.ExportSnapshot(ctx, client.NewExportSnapshotOption("docs", "snap", "backup"))
			require.NoError(t, err)
			job := waitJob(t, cl, exp.JobId)
			require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
			require.Equal(t, pb.JobKind_JOB_KIND_EXPORT, job.Kind)
			require.Zero(t, job.FilesSkipped)
			require.NotZero(t, job.RepositoryGeneration)
			firstWrites := writes.take()
			require.Len(t, firstWrites, int(job.FilesTotal), "one write per file")
			if tc.serverSide {
				require.Equal(t, job.FilesTotal, job.VerifiedByCopyResponse+job.VerifiedByHead+job.VerifiedByReadBack)
			} else {
				require.Equal(t, job.FilesTotal, job.VerifiedByStream)
			}

			// Churn: one segment dropped, two new ones; the second export writes only the
			// new segments' files.
			_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(captured[0].Id))
			require.NoError(t, err)
			res, err := datagen.Generate(ctx, cl, clusterStore, datagen.Options{Collection: "docs", Partition: "p2",
				Segments: 2, FilesPerSegment: 4, FileSize: 4096, Seed: 99, RowsPerSegment: 10})
			require.NoError(t, err)
			_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "snap2"))
			require.NoError(t, err)
			exp2, err := cl.ExportSnapshot(ctx, client.NewExportSnapshotOption("docs", "snap2", "backup"))
			require.NoError(t, err)
			job2 := waitJob(t, cl, exp2.JobId)
			require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job2.State, job2.Error)
			second := writes.take()
			require.Len(t, second, len(res.SegmentIDs)*4, "only the new files are written")
			require.Equal(t, job2.FilesTotal-uint64(len(second)), job2.FilesSkipped)
			for key, n := range second {
				require.Equal(t, 1, n, key)
				require.NotContains(t, firstWrites, key)
			}

			list, err := cl.ListRepositorySnapshots(ctx, client.NewListRepositorySnapshotsOption("backup"))
			require.NoError(t, err)
			require.Len(t, list.Snapshots, 2)
			var first *pb.RepositorySnapshot
			for _, s := range list.Snapshots {
				if s.Name == "snap" {
					first = s
				}
			}
			require.NotNil(t, first)
			require.Equal(t, snap.Id, first.SourceSnapshotId)

			// Save what the first snapshot holds, stop the cluster and wipe its bucket.
			saved := map[string][]byte{}
			for _, s := range captured {
				for _, f := range s.Files {
					saved[f.Key] = readObject(t, clusterStore, f.Key)
				}
				for _, b := range s.IndexBuilds {
					for _, f := range b.Files {
						saved[f.Key] = readObject(t, clusterStore, f.Key)
					}
				}
			}
			c.StopAll()
			require.NotZero(t, wipe(t, clusterStore, ""))

			// A brand-new cluster on another bucket restores it from the repository.
			freshCfg, freshStore := bucketOn(t, clusterCfg, "fresh")
			c2 := repoCluster(t, freshCfg, nil)
			cl2 := newClient(t, c2)
			_, err = cl2.RegisterRepository(ctx, client.NewRegisterRepositoryOption("backup", repoCfg.Bucket).
				WithEndpoint(repoCfg.Endpoint).WithPathStyle().WithPrefix("site-a").WithCredentials("offsite"))
			require.Equal(t, codes.FailedPrecondition, status.Code(err), "another cluster writes it: %v", err)
			require.ErrorContains(t, err, "read-only")
			_, err = cl2.RegisterRepository(ctx, client.NewRegisterRepositoryOption("backup", repoCfg.Bucket).
				WithEndpoint(repoCfg.Endpoint).WithPathStyle().WithPrefix("site-a").WithCredentials("offsite").ReadOnly())
			require.NoError(t, err)
			list2, err := cl2.ListRepositorySnapshots(ctx, client.NewListRepositorySnapshotsOption("backup"))
			require.NoError(t, err)
			require.Len(t, list2.Snapshots, 2, "the index is readable by a cluster that never saw the source")

			rs, err := cl2.RestoreSnapshot(ctx, client.NewRestoreFromRepositoryOption("backup", first.Id, "docs"))
			require.NoError(t, err)
			rjob := waitJob(t, cl2, rs.JobId)
			require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, rjob.State, rjob.Error)
			require.Equal(t, pb.JobKind_JOB_KIND_REPOSITORY_RESTORE, rjob.Kind)
			restored, err := cl2.DescribeCollection(ctx, client.NewDescribeCollectionOption("docs"))
			require.NoError(t, err)
			require.Equal(t, source.Collection.Schema, restored.Collection.Schema)
			require.Equal(t, source.Collection.Properties, restored.Collection.Properties)
			require.Equal(t, source.Collection.Description, restored.Collection.Description)
			require.Equal(t, tc.layout, restored.Collection.Layout)
			require.Equal(t, names(source.Collection.Partitions), names(restored.Collection.Partitions))
			require.Len(t, restored.Collection.Indexes, 1)
			require.Equal(t, source.Collection.Indexes[0].Name, restored.Collection.Indexes[0].Name)
			require.Equal(t, source.Collection.Indexes[0].Params, restored.Collection.Indexes[0].Params)
			requireSameSegmentsIn(t, c2.Root(), savedObjects{objects: saved}, freshStore, cl2, source.Collection, captured, "docs")

			// A flipped byte in a repository object: verify --deep and a restore name it.
			ok, err := cl2.VerifyRepository(ctx, "backup", false, "")
			require.NoError(t, err)
			require.True(t, ok.Ok, "%v", ok.Problems)
			var victim string
			for key := range firstWrites {
				if victim == "" || key < victim {
					victim = key
				}
			}
			body := readObject(t, repoStore, victim)
			body[len(body)/2] ^= 0x40
			_, err = repoStore.Put(ctx, victim, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{})
			require.NoError(t, err)
			deep, err := cl2.VerifyRepository(ctx, "backup", true, first.Id)
			require.NoError(t, err)
			require.False(t, deep.Ok)
			require.NotEmpty(t, deep.Problems)
			require.Equal(t, victim, deep.Problems[0].Key, "%v", deep.Problems)
			// fsck verifies the registered repositories too: sizes alone cannot see the
			// flip, reading back can, and names the key.
			fsckRep, err := cl2.Fsck(ctx, client.NewFsckOption())
			require.NoError(t, err)
			require.True(t, fsckRep.Clean, "%v", fsckRep.Problems)
			require.EqualValues(t, 1, fsckRep.RepositoriesChecked)
			require.Equal(t, ok.Objects, fsckRep.RepositoryObjects)
			fsckRep, err = cl2.Fsck(ctx, client.NewFsckOption().WithDeep(0, 0))
			require.NoError(t, err)
			require.False(t, fsckRep.Clean)
			named := false // the object is in both exported snapshots: one problem each
			for _, p := range fsckRep.Problems {
				require.Equal(t, "repository", p.Kind, "%v", fsckRep.Problems)
				require.Equal(t, victim, p.Key)
				named = named || strings.Contains(p.Detail, "repository backup, snapshot "+first.Id+": CRC-32C")
			}
			require.True(t, named, "%v", fsckRep.Problems)
			fsckRep, err = cl2.Fsck(ctx, client.NewFsckOption().WithDeep(0, 0).WithoutRepositories())
			require.NoError(t, err)
			require.True(t, fsckRep.Clean, "the cluster's own bucket is intact: %v", fsckRep.Problems)
			require.Zero(t, fsckRep.RepositoriesChecked)
			rs, err = cl2.RestoreSnapshot(ctx, client.NewRestoreFromRepositoryOption("backup", first.Id, "docs_again"))
			require.NoError(t, err)
			rjob = waitJob(t, cl2, rs.JobId)
			require.Equal(t, pb.RestoreState_RESTORE_STATE_FAILED, rjob.State)
			require.Contains(t, rjob.FailingKeys, victim, rjob.Error)
			// A repository object gone: a streamed restore lists no sources, its copy of
			// the missing one fails the job, naming the key.
			_, err = repoStore.Delete(ctx, []string{victim})
			require.NoError(t, err)
			rs, err = cl2.RestoreSnapshot(ctx, client.NewRestoreFromRepositoryOption("backup", first.Id, "docs_third"))
			require.NoError(t, err)
			rjob = waitJob(t, cl2, rs.JobId)
			require.Equal(t, pb.RestoreState_RESTORE_STATE_FAILED, rjob.State)
			require.Contains(t, rjob.FailingKeys, victim, rjob.Error)
			require.Contains(t, rjob.Error, victim)
			_ = time.Second
		})
	}
}
