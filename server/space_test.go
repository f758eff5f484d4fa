package server_test

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// TestSnapshotSpaceIsWhatGCFrees: on a three-node cluster, describe and list show each
// snapshot's exclusive, shared and live figures; a drop preview (GCRun dry run with
// drop_snapshots) lists exactly the exclusive objects; and dropping the snapshot and
// collecting with no grace deletes exactly those objects from the bucket.
func TestSnapshotSpaceIsWhatGCFrees(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.GCDisabled = true // only the test's runs delete
	}})
	cl := gcClient(t, c)
	ctx := context.Background()
	store := c.Bucket.Store
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("docs", "vec", 101))
	require.NoError(t, err)
	segs := gcGenerate(t, c, cl, "docs", 4, 3, 7)
	gcAddBuild(t, cl, store, segs[0].Id, 2)
	snapshot := func(name string) *pb.Snapshot {
		s, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", name))
		require.NoError(t, err)
		return s
	}
	s1 := snapshot("s1")
	snapshot("s2")
	_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(segs[0].Id, segs[1].Id))
	require.NoError(t, err)
	out, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs"))
	require.NoError(t, err)
	_, err = cl.CompactSegments(ctx, client.NewCompactSegmentsOption(segs[2].Id).
		WithOutput(out.Id, 10, gcPut(t, store, out.Prefix+"insert/101/1", pb.FileKind_FILE_KIND_INSERT, 50)))
	require.NoError(t, err)
	s3 := snapshot("s3")
	gcAddBuild(t, cl, store, segs[3].Id, 1) // after s3: captured by none
	_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(segs[3].Id))
	require.NoError(t, err)
	_, err = cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "s2"))
	require.NoError(t, err)
	gcRun(t, cl, gcRunOpt().WithoutOrphanScan()) // s2's manifest

	// s1 alone keeps segments 0–2 (0 with its build); segment 3 it shares with s3.
	seg3Bytes := segmentBytes(segs[3])
	var s1Exclusive uint64
	for _, s := range segs[:3] {
		s1Exclusive += segmentBytes(s)
	}
	s1Exclusive += 40 + 41 // segment 0's build
	d, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption("docs", "s1"))
	require.NoError(t, err)
	require.Equal(t, &pb.SnapshotSpace{ExclusiveObjects: 3*3 + 2 + 1, ExclusiveBytes: s1Exclusive + d.ManifestSize, SharedObjects: 3, SharedBytes: seg3Bytes},
		trimmedSpace(d.Space))
	list, err := cl.ListSnapshots(ctx, client.NewListSnapshotsOption().WithCollection("docs"))
	require.NoError(t, err)
	require.Len(t, list.Snapshots, 2)
	require.Equal(t, trimmedSpace(d.Space), trimmedSpace(list.Snapshots[0].Space), "list and describe agree")
	s3d := list.Snapshots[1]
	require.Equal(t, &pb.SnapshotSpace{ExclusiveObjects: 1, ExclusiveBytes: s3d.ManifestSize, SharedObjects: 3, SharedBytes: seg3Bytes, LiveObjects: 1, LiveBytes: 50},
		trimmedSpace(s3d.Space))

	// Bad previews are refused before anything is looked at or run.
	preview := func(refs ...*pb.SnapshotRef) *client.GCRunOption {
		opt := client.NewGCRunOption().WithDryRun()
		for _, r := range refs {
			opt.WithDropSnapshot(r.Database, r.Collection, r.Name, r.Id)
		}
		return opt
	}
	byName := &pb.SnapshotRef{Collection: "docs", Name: "s1"}
	_, err = cl.GCRun(ctx, client.NewGCRunOption().WithDropSnapshot("", "docs", "s1", 0))
	require.ErrorIs(t, err, client.ErrInvalidArgument, "a preview is a dry run")
	_, err = cl.GCRun(ctx, preview(byName).WithGrace(0))
	require.ErrorIs(t, err, client.ErrInvalidArgument)
	_, err = cl.GCRun(ctx, preview(&pb.SnapshotRef{Collection: "docs"}))
	require.ErrorIs(t, err, client.ErrInvalidArgument)
	require.ErrorContains(t, err, "drop_snapshots[0]: give the snapshot's id, or its collection and name")
	_, err = cl.GCRun(ctx, preview(&pb.SnapshotRef{Collection: "docs", Name: "nope"}))
	require.ErrorIs(t, err, client.ErrNotFound)

	// The preview lists what s1 alone keeps; with s3 too, segment 3 and the build
	// neither captured come along.
	before := gcListAll(t, store, "")
	resp, err := cl.GCRun(ctx, preview(byName))
	require.NoError(t, err)
	require.Equal(t, d.Space.ExclusiveObjects, resp.Report.ObjectsDeleted)
	require.Equal(t, d.Space.ExclusiveBytes, resp.Report.BytesFreed)
	require.Len(t, resp.Candidates, int(d.Space.ExclusiveObjects))
	for _, cand := range resp.Candidates {
		require.Equal(t, int64(cand.Size), before[cand.Key], "candidate %s", cand.Key)
	}
	both, err := cl.GCRun(ctx, preview(byName, &pb.SnapshotRef{Id: s3.Id}))
	require.NoError(t, err)
	require.Equal(t, d.Space.ExclusiveBytes+s3d.ManifestSize+seg3Bytes+40, both.Report.BytesFreed)
	require.Equal(t, before, gcListAll(t, store, ""), "previews delete nothing")

	_, err = cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "s1"))
	require.NoError(t, err)
	_, err = cl.GCRun(ctx, preview(&pb.SnapshotRef{Id: s1.Id}))
	require.ErrorIs(t, err, client.ErrFailedPrecondition, "already deleting")
	gcRun(t, cl, gcRunOpt().WithoutOrphanScan())
	after := gcListAll(t, store, "")
	var freed []string
	var freedBytes uint64
	for k, size := range before {
		if _, ok := after[k]; !ok {
			freed = append(freed, k)
			freedBytes += uint64(size)
		}
	}
	slices.Sort(freed)
	require.Equal(t, gcCandidateKeys(resp), freed, "exactly the previewed objects went")
	require.Equal(t, d.Space.ExclusiveBytes, freedBytes)
	require.Subset(t, slices.Collect(maps.Keys(before)), slices.Collect(maps.Keys(after)))
}

func segmentBytes(s *pb.Segment) uint64 {
	var n uint64
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

// trimmedSpace is a copy without the protobuf internals, for require.Equal.
func trimmedSpace(s *pb.SnapshotSpace) *pb.SnapshotSpace {
	return &pb.SnapshotSpace{ExclusiveObjects: s.GetExclusiveObjects(), ExclusiveBytes: s.GetExclusiveBytes(),
		SharedObjects: s.GetSharedObjects(), SharedBytes: s.GetSharedBytes(), LiveObjects: s.GetLiveObjects(), LiveBytes: s.GetLiveBytes()}
}
