package api

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/restore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// restoresService implements the public Restores API: RestoreSnapshot is one command
// (RestoreBegin); the leader's coordinator checks the sources and opens the job for
// copying, and every node's executor copies leased tasks (restore.Coordinator,
// restore.Runner).
type restoresService struct {
	pb.UnimplementedRestoresServer
	*services
}

// Page sizes of ListRestoreJobs.
const (
	defaultRestorePage = 100
	maxRestorePage     = 1000
)

func (s *restoresService) RestoreSnapshot(ctx context.Context, req *pb.RestoreSnapshotRequest) (*pb.RestoreSnapshotResponse, error) {
	cmd := &fsmpb.RestoreBegin{
		Database:         req.Database,
		Collection:       req.Collection,
		Snapshot:         req.Snapshot,
		TargetDatabase:   req.TargetDatabase,
		TargetCollection: req.TargetCollection,
		Partitions:       req.Partitions,
		Verify:           req.Verify == nil || *req.Verify,
		ReadBack:         req.ReadBack,
		MaxConcurrency:   req.MaxConcurrency,
		MaxAttempts:      uint32(s.cfg.RestoreMaxAttempts),

		TargetCollectionId: req.TargetCollectionId,
		TargetPartitions:   fromIDMappings(req.TargetPartitions),
		TargetIndexes:      fromIDMappings(req.TargetIndexes),
		TargetSegments:     fromIDMappings(req.TargetSegments),
		TargetBuilds:       fromIDMappings(req.TargetBuilds),
	}
	if req.FromRepository != "" || req.RepositorySnapshot != "" {
		if err := s.fromRepository(ctx, req, cmd); err != nil {
			return nil, err
		}
	}
	if err := fsm.ValidateRestoreBegin(cmd); err != nil {
		return nil, err
	}
	var out fsmpb.RestoreJobResponse
	if err := s.b.Propose(ctx, req.RequestId, cmd, &out); err != nil {
		return nil, err
	}
	s.b.KickRestores()
	return &pb.RestoreSnapshotResponse{JobId: out.Job.Id, Job: s.restoreStatus(toRestoreJob(out.Job, s.cfg.Now())), Existing: out.Existing}, nil
}

func (s *restoresService) GetRestoreState(ctx context.Context, req *pb.GetRestoreStateRequest) (*pb.GetRestoreStateResponse, error) {
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	job, err := v.RestoreJob(req.JobId)
	if err != nil {
		return nil, err
	}
	out := s.restoreStatus(toRestoreJob(job, s.cfg.Now()))
	out.PartitionMap, out.IndexMap = toIDMappings(job.PartitionMap), toIDMappings(job.IndexMap)
	if plan, err := v.RestorePlan(job.Id); err == nil { // gone once the job's record is trimmed
		for _, ps := range plan.Segments {
			out.SegmentMap = append(out.SegmentMap, &pb.IdMapping{Source: ps.SourceId, Target: ps.TargetId})
			for _, b := range ps.Builds {
				out.BuildMap = append(out.BuildMap, &pb.IdMapping{Source: b.SourceBuildId, Target: b.TargetBuildId})
			}
		}
	}
	return &pb.GetRestoreStateResponse{Job: out}, nil
}

func fromIDMappings(in []*pb.IdMapping) []*fsmpb.IdMapping {
	out := make([]*fsmpb.IdMapping, len(in))
	for i, m := range in {
		out[i] = &fsmpb.IdMapping{Source: m.GetSource(), Target: m.GetTarget()}
	}
	return out
}

func toIDMappings(in []*fsmpb.IdMapping) []*pb.IdMapping {
	out := make([]*pb.IdMapping, len(in))
	for i, m := range in {
		out[i] = &pb.IdMapping{Source: m.Source, Target: m.Target}
	}
	return out
}

func (s *restoresService) ListRestoreJobs(ctx context.Context, req *pb.ListRestoreJobsRequest) (*pb.ListRestoreJobsResponse, error) {
	pageSize, after, err := parsePage(req.PageSize, req.PageToken, defaultRestorePage, maxRestorePage)
	if err != nil {
		return nil, err
	}
	kinds := map[fsmpb.JobKind]bool{}
	for _, k := range req.Kinds {
		if _, ok := pb.JobKind_name[int32(k)]; !ok {
			return nil, status.Errorf(codes.InvalidArgument, "unknown job kind %d in the filter", k)
		}
		kinds[fsmpb.JobKind(k)] = true
	}
	states := map[fsmpb.RestoreState]bool{}
	for _, st := range req.States {
		if _, ok := pb.RestoreState_name[int32(st)]; !ok || st == pb.RestoreState_RESTORE_STATE_UNSPECIFIED {
			return nil, status.Errorf(codes.InvalidArgument, "unknown restore state %d in the filter", st)
		}
		states[fsmpb.RestoreState(st)] = true
	}
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	targetDB := ""
	if req.TargetCollection != "" || req.TargetDatabase != "" {
		db, err := v.Database(req.TargetDatabase)
		if err != nil {
			return nil, err
		}
		targetDB = db.Name
	}
	now := s.cfg.Now()
	out := &pb.ListRestoreJobsResponse{}
	budget := newPageBudget(pageSize)
	v.EachRestoreJob(after, func(j *fsmpb.RestoreJob) bool {
		switch {
		case len(states) > 0 && !states[j.State], len(kinds) > 0 && !kinds[j.Kind],
			targetDB != "" && j.TargetDatabase != targetDB,
			req.TargetCollection != "" && j.TargetCollection != req.TargetCollection,
			req.Snapshot != "" && j.SnapshotName != req.Snapshot:
			return true
		}
		conv := s.restoreStatus(toRestoreJob(j, now))
		if !budget.fits(conv) {
			out.NextPageToken = formatID(out.Jobs[len(out.Jobs)-1].Id)
			return false
		}
		out.Jobs = append(out.Jobs, conv)
		return true
	})
	return out, nil
}

func (s *restoresService) CancelRestore(ctx context.Context, req *pb.CancelRestoreRequest) (*pb.CancelRestoreResponse, error) {
	var out fsmpb.RestoreJobResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.RestoreCancel{JobId: req.JobId, Reason: req.Reason}, &out); err != nil {
		return nil, err
	}
	return &pb.CancelRestoreResponse{Job: s.restoreStatus(toRestoreJob(out.Job, s.cfg.Now()))}, nil
}

// toRestoreJob converts a job, computing progress, rate and ETA at now.
func toRestoreJob(j *fsmpb.RestoreJob, now time.Time) *pb.RestoreJob {
	out := &pb.RestoreJob{
		Id:                     j.Id,
		State:                  pb.RestoreState(j.State),
		Database:               j.SourceDatabase,
		Collection:             j.SourceCollection,
		Snapshot:               j.SnapshotName,
		SnapshotId:             j.SnapshotId,
		TargetDatabase:         j.TargetDatabase,
		TargetCollection:       j.TargetCollection,
		TargetCollectionId:     j.TargetCollectionId,
		Partitions:             j.Partitions,
		Verify:                 j.Verify,
		ReadBack:               j.ReadBack,
		VerifiedByCopyResponse: j.VerifiedByCopyResponse,
		VerifiedByHead:         j.VerifiedByHead,
		VerifiedByReadBack:     j.VerifiedByReadBack,
		NotVerified:            j.NotVerified,
		VerifiedByStream:       j.VerifiedByStream,
		Kind:                   pb.JobKind(j.Kind),
		Repository:             j.Repository,
		RepositorySnapshot:     j.RepositorySnapshot,
		FilesSkipped:           j.FilesSkipped,
		BytesSkipped:           j.BytesSkipped,
		RepositoryGeneration:   j.RepositoryGeneration,
		MaxConcurrency:         j.MaxConcurrency,
		FilesDone:              j.FilesDone,
		FilesTotal:             j.FilesTotal,
		BytesDone:              j.BytesDone,
		BytesTotal:             j.BytesTotal,
		EtaMs:                  -1,
		CreatedAtUnixMs:        unixMS(j.CreatedAt),
		StartedAtUnixMs:        unixMS(j.StartedAt),
		FinishedAtUnixMs:       unixMS(j.FinishedAt),
		Attempts:               j.Attempts,
		FailedAttempts:         j.FailedAttempts,
		Leases:                 j.Leases,
		Error:                  j.Error,
		FailingKeys:            j.FailingKeys,
	}
	switch {
	case j.State == fsmpb.RestoreState_RESTORE_STATE_COMPLETED:
		out.ProgressPercent = 100
	case j.BytesTotal > 0:
		out.ProgressPercent = 100 * float64(j.BytesDone) / float64(j.BytesTotal)
	case j.FilesTotal > 0:
		out.ProgressPercent = 100 * float64(j.FilesDone) / float64(j.FilesTotal)
	}
	if j.StartedAt != 0 {
		end := now
		if j.FinishedAt != 0 {
			end = time.Unix(0, j.FinishedAt)
		}
		// Skipped files (an export's, already in the repository) moved no bytes.
		if elapsed := end.Sub(time.Unix(0, j.StartedAt)).Seconds(); elapsed > 0 {
			out.BytesPerSecond = float64(j.BytesDone-j.BytesSkipped) / elapsed
		}
	}
	switch {
	case j.State != fsmpb.RestoreState_RESTORE_STATE_COPYING && j.State != fsmpb.RestoreState_RESTORE_STATE_PENDING &&
		j.State != fsmpb.RestoreState_RESTORE_STATE_PLANNING:
		out.EtaMs = 0
	case out.BytesPerSecond > 0:
		out.EtaMs = int64(float64(j.BytesTotal-j.BytesDone) / out.BytesPerSecond * 1000)
	}
	return out
}

// restoreStatus adds what the job's leases say to a job's status: the tasks leased,
// those that look stalled (held by a node gossip does not see alive, or by a lease
// without a report for restore.ProgressDeadline), and the leases a finished job still
// waits for. While tasks are stalled the ETA is unknown (-1): the average rate says
// nothing of when a stalled lease's tasks will be copied.
func (s *services) restoreStatus(out *pb.RestoreJob) *pb.RestoreJob {
	now := s.cfg.Now()
	for _, l := range s.b.View().RestoreLeases() {
		if l.JobId != out.Id {
			continue
		}
		out.LeasesOutstanding++
		out.TasksLeased += uint64(len(l.Tasks))
		granted := time.Unix(0, l.Deadline).Add(-s.cfg.RestoreLease)
		if !s.b.Alive(l.Node) || now.Sub(granted) > restore.ProgressDeadline {
			out.TasksStalled += uint64(len(l.Tasks))
		}
	}
	if out.TasksStalled > 0 && out.EtaMs > 0 {
		out.EtaMs = -1
	}
	return out
}
