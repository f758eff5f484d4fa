package api

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/gc"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Garbage collection is a leader duty (package gc): every GCInterval the leader runs a
// collection of the records-based kind, and every GCOrphanInterval one with the
// orphan scan; GCRun runs one on demand (forwarded to the leader). One run at a time.

// gcService implements the public GC API.
type gcService struct {
	pb.UnimplementedGCServer
	*services
}

func (s *gcService) GCRun(ctx context.Context, req *pb.GCRunRequest) (*pb.GCRunResponse, error) {
	if len(req.DropSnapshots) > 0 {
		return s.previewDrop(ctx, req) // a read: any node answers
	}
	if s.b.IsLeader() {
		return s.RunHere(ctx, req)
	}
	leader, leaderID, err := s.b.Leader()
	if err != nil {
		return nil, err
	}
	resp, err := leader.RunGC(ctx, req)
	if status.Code(err) == codes.FailedPrecondition && status.Convert(err).Message() == "not leader" {
		return nil, status.Errorf(codes.Unavailable, "leader %s changed while starting the collection; retry", leaderID)
	}
	return resp, err
}

// RunHere runs a collection on this node, the leader (GCRun, or the Internal RunGC of
// another node's GCRun).
func (s *services) RunHere(ctx context.Context, req *pb.GCRunRequest) (*pb.GCRunResponse, error) {
	if len(req.DropSnapshots) > 0 {
		return s.previewDrop(ctx, req)
	}
	if !s.b.IsLeaderReady() {
		return nil, status.Error(codes.Unavailable, "the leader is not ready yet; retry")
	}
	opts := gc.Options{DryRun: req.DryRun, OrphanScan: !req.SkipOrphanScan}
	if req.GraceMs != nil {
		if *req.GraceMs < 0 {
			return nil, status.Error(codes.InvalidArgument, "grace_ms cannot be negative")
		}
		g := time.Duration(*req.GraceMs) * time.Millisecond
		opts.Grace = &g
	}
	if req.OrphanGraceMs != nil {
		if *req.OrphanGraceMs < 0 {
			return nil, status.Error(codes.InvalidArgument, "orphan_grace_ms cannot be negative")
		}
		g := time.Duration(*req.OrphanGraceMs) * time.Millisecond
		opts.OrphanGrace = &g
	}
	res, err := s.gc.Run(ctx, opts)
	if errors.Is(err, gc.ErrNoStore) {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	if err != nil {
		return nil, err
	}
	out := &pb.GCRunResponse{Report: toGCReport(res.Report), CandidatesCut: res.CandidatesCut}
	for _, c := range res.Candidates {
		out.Candidates = append(out.Candidates, &pb.GCCandidate{Key: c.Key, Size: c.Size, Reason: c.Reason, Owner: c.Owner})
	}
	return out, nil
}

// maxDropPreview bounds the snapshots one drop preview takes.
const maxDropPreview = 100

// previewDrop answers a dry run with drop_snapshots: what dropping those snapshots
// would free (gc.PreviewDrop), from a linearizable read view; nothing is proposed.
func (s *services) previewDrop(ctx context.Context, req *pb.GCRunRequest) (*pb.GCRunResponse, error) {
	switch {
	case !req.DryRun:
		return nil, status.Error(codes.InvalidArgument, "drop_snapshots previews a drop and needs dry_run; drop a snapshot with DropSnapshot (snapkeep snapshot drop)")
	case len(req.DropSnapshots) > maxDropPreview:
		return nil, status.Errorf(codes.InvalidArgument, "a drop preview takes at most %d snapshots, not %d", maxDropPreview, len(req.DropSnapshots))
	case req.GraceMs != nil || req.OrphanGraceMs != nil:
		return nil, status.Error(codes.InvalidArgument, "the grace periods do not apply to a drop preview: it lists what goes once they have passed")
	}
	for i, ref := range req.DropSnapshots {
		if ref.GetId() == 0 && (ref.GetCollection() == "" || ref.GetName() == "") {
			return nil, status.Errorf(codes.InvalidArgument, "drop_snapshots[%d]: give the snapshot's id, or its collection and name", i)
		}
	}
	v, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return nil, err
	}
	snaps := make([]*fsmpb.Snapshot, 0, len(req.DropSnapshots))
	for _, ref := range req.DropSnapshots {
		var snap *fsmpb.Snapshot
		if ref.GetId() != 0 {
			snap, err = v.Snapshot(ref.GetId())
		} else {
			snap, err = v.SnapshotByName(ref.GetDatabase(), ref.GetCollection(), ref.GetName())
		}
		if err != nil {
			return nil, err
		}
		if snap.State == fsmpb.SnapshotState_SNAPSHOT_STATE_DELETING {
			return nil, status.Errorf(codes.FailedPrecondition, "snapshot %q (id %d) of collection %q is already DELETING: its pins are released, and the next GC run frees what it alone kept",
				snap.Name, snap.Id, snap.CollectionName)
		}
		snaps = append(snaps, snap)
	}
	res, _ := s.gc.PreviewDrop(v, snaps, 0)
	out := &pb.GCRunResponse{Report: toGCReport(res.Report), CandidatesCut: res.CandidatesCut}
	for _, c := range res.Candidates {
		out.Candidates = append(out.Candidates, &pb.GCCandidate{Key: c.Key, Size: c.Size, Reason: c.Reason, Owner: c.Owner})
	}
	return out, nil
}

func (s *gcService) GCStatus(ctx context.Context, _ *pb.GCStatusRequest) (*pb.GCStatusResponse, error) {
	v, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return nil, err
	}
	out := &pb.GCStatusResponse{}
	for _, r := range v.GCReports() {
		out.Reports = append(out.Reports, toGCReport(r))
	}
	sched := s.GCSchedule()
	if !s.b.IsLeader() {
		if leader, _, err := s.b.Leader(); err == nil {
			if remote, err := leader.GCSchedule(ctx, &internalv1.GCScheduleRequest{}); err == nil {
				sched = remote
			}
		}
	}
	out.Enabled, out.NextRunUnixMs, out.NextRunOrphanScan = sched.Enabled, sched.NextRunUnixMs, sched.NextRunOrphanScan
	return out, nil
}

func toGCReport(r *fsmpb.GCReport) *pb.GCReport {
	out := &pb.GCReport{
		Id: r.Id, DryRun: r.DryRun, Node: r.Node,
		StartedAtUnixMs: unixMS(r.StartedAt), FinishedAtUnixMs: unixMS(r.FinishedAt),
		OrphanScan: r.OrphanScan, ObjectsScanned: r.ObjectsScanned,
		ObjectsDeleted: r.ObjectsDeleted, BytesFreed: r.BytesFreed, RecordsRemoved: r.RecordsRemoved,
		Errors: r.Errors, ErrorCount: r.ErrorCount,
	}
	for _, c := range r.Deleted {
		out.Deleted = append(out.Deleted, &pb.GCCount{Reason: c.Reason, Objects: c.Objects, Bytes: c.Bytes, Records: c.Records})
	}
	for _, c := range r.Kept {
		out.Kept = append(out.Kept, &pb.GCCount{Reason: c.Reason, Objects: c.Objects, Bytes: c.Bytes, Records: c.Records})
	}
	return out
}

// ReleaseForDeletion answers an external collector (see the FSM's ReleaseForDeletion):
// the verdicts are decided and recorded by one log entry.
func (s *gcService) ReleaseForDeletion(ctx context.Context, req *pb.ReleaseForDeletionRequest) (*pb.ReleaseForDeletionResponse, error) {
	cmd := &fsmpb.ReleaseForDeletion{SegmentIds: req.SegmentIds}
	for _, b := range req.Builds {
		cmd.Builds = append(cmd.Builds, &fsmpb.BuildRef{SegmentId: b.GetSegmentId(), BuildId: b.GetBuildId()})
	}
	for _, k := range req.Keys {
		rel, err := relativeKey(s.cfg.Root, k)
		if err != nil {
			return nil, err
		}
		cmd.Keys = append(cmd.Keys, rel)
	}
	var out fsmpb.ReleaseForDeletionResponse
	if err := s.b.Propose(ctx, req.RequestId, cmd, &out); err != nil {
		return nil, err
	}
	if len(out.Verdicts) != len(req.SegmentIds)+len(req.Builds)+len(req.Keys) {
		return nil, status.Errorf(codes.Internal, "%d verdicts for %d items", len(out.Verdicts), len(req.SegmentIds)+len(req.Builds)+len(req.Keys))
	}
	resp := &pb.ReleaseForDeletionResponse{Verdicts: make([]*pb.ReleaseVerdict, len(out.Verdicts))}
	for i, v := range out.Verdicts {
		pv := &pb.ReleaseVerdict{Deletable: v.Deletable, Reason: s.cfg.Root.FullQuoted(v.Reason)}
		switch {
		case i < len(req.SegmentIds):
			pv.SegmentId = req.SegmentIds[i]
		case i < len(req.SegmentIds)+len(req.Builds):
			b := req.Builds[i-len(req.SegmentIds)]
			pv.SegmentId, pv.BuildId = b.GetSegmentId(), b.GetBuildId()
		default:
			pv.Key = req.Keys[i-len(req.SegmentIds)-len(req.Builds)]
		}
		resp.Verdicts[i] = pv
	}
	return resp, nil
}
