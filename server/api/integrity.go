package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/manifest/repository"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/fsck"
	"github.com/snapkeep/snapkeep/server/scrub"
)

type integrityService struct {
	pb.UnimplementedIntegrityServer
	*services
}

// maxFsckConcurrency bounds a request's reads in flight.
const maxFsckConcurrency = 256

func (s *integrityService) Fsck(ctx context.Context, req *pb.FsckRequest) (*pb.FsckResponse, error) {
	switch {
	case req.Database != "" && req.Collection == "":
		return nil, status.Error(codes.InvalidArgument, "a database without a collection: give the collection too, or neither for every collection")
	case req.BytesPerSecond < 0:
		return nil, status.Errorf(codes.InvalidArgument, "bytes_per_second %d cannot be negative (0: no limit)", req.BytesPerSecond)
	case req.Concurrency > maxFsckConcurrency:
		return nil, status.Errorf(codes.InvalidArgument, "concurrency %d is over the limit of %d", req.Concurrency, maxFsckConcurrency)
	}
	if req.Collection != "" {
		if err := fsm.ValidateName("collection", req.Collection); err != nil {
			return nil, err
		}
	}
	store, err := s.b.Store()
	if err != nil {
		return nil, err
	}
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	opts := fsck.Options{Database: req.Database, Collection: req.Collection,
		Deep: req.Deep, Concurrency: int(req.Concurrency), BytesPerSecond: req.BytesPerSecond, Now: s.cfg.Now()}
	if req.Deep {
		opts.Readers = s.b.FsckReaders()
	}
	rep, err := fsck.Check(ctx, v, store, s.cfg.Root, opts)
	if err != nil {
		return nil, err
	}
	out := &pb.FsckResponse{AppliedIndex: rep.AppliedIndex, Collections: uint32(rep.Collections),
		FilesExpected: rep.FilesExpected, BytesExpected: rep.BytesExpected, ObjectsListed: rep.ObjectsListed,
		BytesListed: rep.BytesListed, FilesRead: rep.FilesRead, BytesRead: rep.BytesRead,
		ManifestsChecked: uint32(rep.ManifestsChecked), Deep: rep.Deep, BrokenSnapshotIds: rep.BrokenSnapshots(),
		ReadersFailed: rep.ReadersFailed, Readers: uint32(1 + len(opts.Readers))}
	for _, p := range rep.Problems {
		out.Problems = append(out.Problems, &pb.FsckProblem{Kind: p.Kind, Key: p.Key, Size: p.Size, Want: p.Want, Detail: p.Detail,
			Collection: p.Collection, SegmentIds: p.Segments, BuildIds: p.Builds, SnapshotIds: p.Snapshots})
	}
	for _, o := range rep.Orphans {
		out.Orphans = append(out.Orphans, &pb.FsckOrphan{Key: o.Key, Size: o.Size, AgeMs: o.Age.Milliseconds()})
	}
	if req.Collection == "" && !req.SkipRepositories {
		if err := s.fsckRepositories(ctx, v, req.Deep, out); err != nil {
			return nil, err
		}
	}
	out.Clean = len(out.Problems) == 0
	out.TookMs = time.Since(start).Milliseconds()
	return out, nil
}

// Kinds of the problems fsck finds in repositories.
const (
	fsckRepository            = "repository"             // what the repository's verify found
	fsckRepositoryUnreachable = "repository-unreachable" // could not be opened or read
)

// fsckRepositories verifies every registered repository as `repository verify` does
// (deep: every referenced object read back) and adds what it finds to out.
func (s *integrityService) fsckRepositories(ctx context.Context, v *fsm.View, deep bool, out *pb.FsckResponse) error {
	for _, rec := range v.Repositories() {
		if err := ctx.Err(); err != nil {
			return err
		}
		out.RepositoriesChecked++
		where := fmt.Sprintf("repository %s (bucket %s, prefix %q)", rec.Name, rec.Bucket, rec.Prefix)
		unreachable := func(err error) {
			out.Problems = append(out.Problems, &pb.FsckProblem{Kind: fsckRepositoryUnreachable, Collection: where,
				Detail: where + ": " + status.Convert(err).Message()})
		}
		_, repo, err := s.openRepository(ctx, rec.Name)
		if err != nil {
			unreachable(err)
			continue
		}
		report, err := repo.Verify(ctx, repository.VerifyOptions{Deep: deep})
		if err != nil && ctx.Err() == nil {
			unreachable(repositoryError(rec.Name, err))
		}
		out.RepositoryObjects += report.DataObjects
		out.RepositoryBytes += report.DataBytes
		for _, p := range report.Problems {
			detail := "repository " + rec.Name + ": " + p.Detail
			if p.Snapshot != "" {
				detail = fmt.Sprintf("repository %s, snapshot %s: %s", rec.Name, p.Snapshot, p.Detail)
			}
			out.Problems = append(out.Problems, &pb.FsckProblem{Kind: fsckRepository, Key: p.Key, Detail: detail, Collection: where})
		}
		if more := report.ProblemCount - len(report.Problems); more > 0 {
			out.Problems = append(out.Problems, &pb.FsckProblem{Kind: fsckRepository, Collection: where,
				Detail: fmt.Sprintf("… and %d more problems: run `snapkeep repository verify %s` for the list", more, rec.Name)})
		}
	}
	return nil
}

// VerifySnapshot verifies one committed snapshot now and records the result.
func (s *integrityService) VerifySnapshot(ctx context.Context, req *pb.VerifySnapshotRequest) (*pb.VerifySnapshotResponse, error) {
	if req.Id == 0 && (req.Collection == "" || req.Name == "") {
		return nil, status.Error(codes.InvalidArgument, "name the snapshot: its collection and name, or its id")
	}
	v, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return nil, err
	}
	snap, err := snapshotOf(v, req.Id, req.Database, req.Collection, req.Name)
	if err != nil {
		return nil, err
	}
	if snap.State != fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED {
		return nil, status.Errorf(codes.FailedPrecondition, "snapshot %s/%s (id %d) is %s: only a committed snapshot has a manifest and files to verify",
			snap.CollectionName, snap.Name, snap.Id, strings.ToLower(strings.TrimPrefix(snap.State.String(), "SNAPSHOT_STATE_")))
	}
	if _, err := s.b.VerifySnapshot(ctx, snap.Id, req.Deep); err != nil {
		return nil, verifyError(err)
	}
	after, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return nil, err
	}
	rec, err := after.Snapshot(snap.Id)
	if err != nil {
		return nil, err
	}
	return &pb.VerifySnapshotResponse{Snapshot: (&snapshotsService{services: s.services}).convert(after, rec, false)}, nil
}

// verifyError gives a verification's errors their status codes: one that could not
// read or list the bucket recorded nothing and is worth retrying (Unavailable), like an
// undecided one; statuses (a refused proposal) and context errors keep their codes.
func verifyError(err error) error {
	var fe *fsm.Error
	switch {
	case errors.Is(err, scrub.ErrUndecided):
		return status.Errorf(codes.Unavailable, "%v; nothing was recorded: try again", err)
	case errors.As(err, &fe), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.Unavailable, "could not verify: %v; nothing was recorded: try again", err)
}
