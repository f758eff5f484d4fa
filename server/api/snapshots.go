package api

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// snapshotsService implements the public Snapshots API. Creating a snapshot is one
// command (SnapshotBegin, which captures and pins); the leader's finisher then writes
// the manifest and commits it (server/finisher), so a snapshot started under one
// leader is finished by the next.
type snapshotsService struct {
	pb.UnimplementedSnapshotsServer
	*services
}

// Page sizes of ListSnapshots.
const (
	defaultSnapshotPage = 100
	maxSnapshotPage     = 1000
)

func (s *snapshotsService) CreateSnapshot(ctx context.Context, req *pb.CreateSnapshotRequest) (*pb.CreateSnapshotResponse, error) {
	cmd := &fsmpb.SnapshotBegin{
		Database:         req.Database,
		Collection:       req.Collection,
		Name:             req.Name,
		Description:      req.Description,
		Labels:           req.Labels,
		MaxPerCollection: uint32(s.cfg.SnapshotsPerCollection),
		PendingTimeout:   int64(s.cfg.SnapshotPendingTimeout),
	}
	if err := fsm.ValidateSnapshotBegin(cmd); err != nil {
		return nil, err
	}
	var out fsmpb.SnapshotResponse
	if err := s.b.Propose(ctx, req.RequestId, cmd, &out); err != nil {
		return nil, err
	}
	s.b.KickFinisher()
	snap := out.Snapshot
	if !req.Async {
		var err error
		if snap, err = s.waitSnapshotSettled(ctx, snap.Id); err != nil {
			return nil, err
		}
	}
	return &pb.CreateSnapshotResponse{Snapshot: s.convert(s.b.View(), snap, true)}, nil
}

// waitSnapshotSettled waits until a snapshot is committed (returned) or given up (an
// error with the reason), watching this node's state.
func (s *services) waitSnapshotSettled(ctx context.Context, id uint64) (*fsmpb.Snapshot, error) {
	for {
		changed := s.b.Changed()
		snap, err := s.b.View().Snapshot(id)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "snapshot %d was removed before it was committed", id)
		}
		switch snap.State {
		case fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED:
			return snap, nil
		case fsmpb.SnapshotState_SNAPSHOT_STATE_DELETING:
			return nil, status.Errorf(codes.Internal, "snapshot %q (id %d) was not committed: %s", snap.Name, id, snap.DeleteReason)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, status.Errorf(status.FromContextError(ctx.Err()).Code(),
				"snapshot %q (id %d) is still pending; the leader goes on finishing it: describe it to follow up", snap.Name, id)
		case <-s.b.Stopping():
			return nil, status.Error(codes.Unavailable, "the node is shutting down; describe the snapshot on another node")
		}
	}
}

func (s *snapshotsService) DropSnapshot(ctx context.Context, req *pb.DropSnapshotRequest) (*pb.DropSnapshotResponse, error) {
	v, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return nil, err
	}
	snap, err := v.SnapshotByName(req.Database, req.Collection, req.Name)
	if err != nil {
		if errors.Is(err, fsm.ErrNotFound) {
			return &pb.DropSnapshotResponse{Existed: false}, nil
		}
		return nil, err
	}
	var out fsmpb.SnapshotResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id, Reason: "dropped on request"}, &out); err != nil {
		return nil, err
	}
	s.b.KickGC()
	return &pb.DropSnapshotResponse{Existed: true, Snapshot: s.convert(s.b.View(), out.Snapshot, false)}, nil
}

func (s *snapshotsService) ListSnapshots(ctx context.Context, req *pb.ListSnapshotsRequest) (*pb.ListSnapshotsResponse, error) {
	pageSize, after, err := parsePage(req.PageSize, req.PageToken, defaultSnapshotPage, maxSnapshotPage)
	if err != nil {
		return nil, err
	}
	filter := fsm.SnapshotFilter{Database: req.Database, Collection: req.Collection, Labels: req.Labels}
	for _, st := range req.States {
		if _, ok := pb.SnapshotState_name[int32(st)]; !ok || st == pb.SnapshotState_SNAPSHOT_STATE_UNSPECIFIED {
			return nil, status.Errorf(codes.InvalidArgument, "unknown snapshot state %d in the filter", st)
		}
		filter.States = append(filter.States, fsmpb.SnapshotState(st))
	}
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	out := &pb.ListSnapshotsResponse{}
	budget := newPageBudget(pageSize)
	err = v.EachSnapshot(filter, after, func(snap *fsmpb.Snapshot) bool {
		conv := s.convert(v, snap, req.IncludeSchema)
		if !budget.fits(conv) {
			out.NextPageToken = strconv.FormatUint(out.Snapshots[len(out.Snapshots)-1].Id, 10)
			return false
		}
		out.Snapshots = append(out.Snapshots, conv)
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *snapshotsService) DescribeSnapshot(ctx context.Context, req *pb.DescribeSnapshotRequest) (*pb.DescribeSnapshotResponse, error) {
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	snap, err := snapshotOf(v, req.Id, req.Database, req.Collection, req.Name)
	if err != nil {
		return nil, err
	}
	return &pb.DescribeSnapshotResponse{Snapshot: s.convert(v, snap, true)}, nil
}

// snapshotOf finds a snapshot by id, or (id 0) by its database, collection and name.
func snapshotOf(v *fsm.View, id uint64, database, collection, name string) (*fsmpb.Snapshot, error) {
	if id != 0 {
		return v.Snapshot(id)
	}
	return v.SnapshotByName(database, collection, name)
}

// convert turns a snapshot record into the API's form; full adds the schema,
// properties, partitions and index definitions.
func (s *snapshotsService) convert(v *fsm.View, snap *fsmpb.Snapshot, full bool) *pb.Snapshot {
	out := &pb.Snapshot{
		Id:                    snap.Id,
		Database:              snap.DatabaseName,
		Collection:            snap.CollectionName,
		CollectionId:          snap.CollectionId,
		Name:                  snap.Name,
		State:                 pb.SnapshotState(snap.State),
		Description:           snap.Description,
		CollectionDescription: snap.CollectionDescription,
		Labels:                snap.Labels,
		CapturedIndex:         snap.CapturedIndex,
		CreatedAtUnixMs:       unixMS(snap.CreatedAt),
		CommittedAtUnixMs:     unixMS(snap.CommittedAt),
		DeletingAtUnixMs:      unixMS(snap.DeletingAt),
		PendingDeadlineUnixMs: unixMS(snap.PendingDeadline),
		ManifestKey:           s.cfg.Root.Full(snap.ManifestKey),
		ManifestSize:          snap.ManifestSize,
		ManifestXxhash64:      snap.ManifestChecksum,
		DeleteReason:          snap.DeleteReason,
		Layout:                toKeyLayout(snap.Layout),
		Holds:                 toHolds(snap.Holds, s.cfg.Now().UnixNano()),
		PolicyId:              snap.PolicyId,
		PolicyDueUnixMs:       unixMS(snap.PolicyDue),
		PolicyExportJobId:     snap.PolicyExportJob,
	}
	if snap.PolicyId != 0 {
		if p := v.PolicyByID(snap.PolicyId); p != nil {
			out.Policy = p.Name
		}
	}
	if coll, err := v.CollectionByID(snap.CollectionId); err != nil || coll.State == fsmpb.CollectionState_COLLECTION_STATE_DROPPED {
		out.CollectionDropped = true
	}
	if sum := snap.Summary; sum != nil {
		out.Summary = &pb.SnapshotSummary{Segments: sum.Segments, Rows: sum.Rows, Files: sum.Files, Bytes: sum.Bytes, IndexBuilds: sum.IndexBuilds}
		for _, k := range sum.ByKind {
			out.Summary.ByKind = append(out.Summary.ByKind, &pb.FileKindTotals{Kind: pb.FileKind(k.Kind), Files: k.Files, Bytes: k.Bytes})
		}
	}
	if vr := snap.Verification; vr != nil {
		out.Verification = &pb.SnapshotVerification{VerifiedAtUnixMs: unixMS(vr.VerifiedAt), Deep: vr.Deep,
			Outcome: pb.SnapshotVerifyOutcome(vr.Outcome), Problems: vr.Problems, ProblemCount: vr.ProblemCount,
			DeepVerifiedAtUnixMs: unixMS(vr.DeepVerifiedAt), Repairs: vr.Repairs}
	}
	// The space needs the pinned id lists, which a command's response leaves out: the
	// view's record has them.
	if rec, err := v.Snapshot(snap.Id); err == nil {
		if sp, ok := v.SnapshotSpace(rec); ok {
			out.Space = &pb.SnapshotSpace{
				ExclusiveBytes: sp.ExclusiveBytes, ExclusiveObjects: sp.ExclusiveObjects,
				SharedBytes: sp.SharedBytes, SharedObjects: sp.SharedObjects,
				LiveBytes: sp.LiveBytes, LiveObjects: sp.LiveObjects,
			}
		}
	}
	if full {
		c := toCollection(&fsmpb.Collection{Schema: snap.Schema, Properties: snap.Properties, Partitions: snap.Partitions, Indexes: snap.Indexes}, snap.DatabaseName)
		out.Schema, out.Properties, out.Partitions, out.Indexes = c.Schema, c.Properties, c.Partitions, c.Indexes
	}
	return out
}
