package checker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/manifest/repository"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// RepositoryEnd is the repository of the repositories workload, read directly.
type RepositoryEnd struct {
	Name   string
	Store  objstore.Store // its bucket
	Prefix string
}

// Repository audits the repository workload's jobs and the repository at the end:
//
//   - every export and repository restore the history started (and every one the
//     cluster lists) is final, and one seen COMPLETED is still COMPLETED;
//   - every COMPLETED export is in the repository's index, and restorable: the
//     repository verifies deeply (every manifest, every data object read back with its
//     CRC-32C), and up to AuditRestores of them are restored into new collections,
//     which must complete;
//   - every COMPLETED repository restore holds the file lists of the repository's
//     manifest, and every target object reads back with its size and CRC-32C.
type Repository struct {
	// AuditRestores bounds the exports restored at the end (0: 3).
	AuditRestores int
}

func (Repository) Name() string { return "repository" }

func (c Repository) Check(ctx context.Context, in Input) ([]Violation, error) {
	if err := needEnd(c.Name(), in); err != nil {
		return nil, err
	}
	end := in.End.Repository
	if end == nil {
		return nil, nil // the workload did not run
	}
	cl := in.End.Client
	started := map[uint64]int64{}
	completed := map[uint64]int64{}
	for _, op := range normalize(in.Ops) {
		switch {
		case (op.Kind == history.ExportStart || op.Kind == history.RepoRestoreStart) && op.Result == history.OK && op.Output.JobID != 0:
			started[op.Output.JobID] = op.ID
		case (op.Kind == history.RestoreStatus || op.Kind == history.RestoreCancel) && op.Result == history.OK:
			if strings.HasSuffix(strings.ToUpper(op.Output.State), "COMPLETED") {
				completed[op.Input.JobID] = op.ID
			}
		}
	}
	jobs := map[uint64]*pb.RestoreJob{}
	for j, err := range cl.ListAllRestoreJobs(ctx, client.NewListRestoreJobsOption().WithKinds(pb.JobKind_JOB_KIND_EXPORT, pb.JobKind_JOB_KIND_REPOSITORY_RESTORE)) {
		if err != nil {
			return nil, fmt.Errorf("%s: list jobs: %w", c.Name(), err)
		}
		jobs[j.GetId()] = j
	}
	repo, err := repository.Open(ctx, end.Store, end.Prefix, repository.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: open the repository: %w", c.Name(), err)
	}
	index, err := repo.Latest(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: read the repository's index: %w", c.Name(), err)
	}
	var vs []Violation
	var exported []string // repository snapshots of completed exports
	for _, id := range jobIDs(jobs, started) {
		var opIDs []int64
		if o, ok := started[id]; ok {
			opIDs = append(opIDs, o)
		}
		job := jobs[id]
		switch {
		case job == nil:
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: opIDs, Message: fmt.Sprintf("job %d, started by op %v, is not found at the end", id, opIDs)})
			continue
		case !finalRestore(job.GetState()):
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: opIDs, Message: fmt.Sprintf("%s job %d is %s at the end, not final", job.GetKind(), id, job.GetState())})
			continue
		}
		if o, ok := completed[id]; ok && job.GetState() != pb.RestoreState_RESTORE_STATE_COMPLETED {
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: append(opIDs, o),
				Message: fmt.Sprintf("%s job %d was seen COMPLETED by op %d, but is %s at the end", job.GetKind(), id, o, job.GetState())})
			continue
		}
		if job.GetState() != pb.RestoreState_RESTORE_STATE_COMPLETED {
			continue
		}
		if job.GetKind() == pb.JobKind_JOB_KIND_EXPORT {
			if _, ok := index.Find(job.GetRepositorySnapshot()); !ok {
				vs = append(vs, Violation{Checker: c.Name(), OpIDs: opIDs, Message: fmt.Sprintf(
					"export job %d completed (generation %d) but repository snapshot %s is not in the index (generation %d)",
					id, job.GetRepositoryGeneration(), job.GetRepositorySnapshot(), index.Generation)})
				continue
			}
			exported = append(exported, job.GetRepositorySnapshot())
			continue
		}
		entry, err := repo.Snapshot(ctx, job.GetRepositorySnapshot())
		source := func(fn func(*manifest.Reader, *manifest.Segment) error) (bool, error) {
			if errors.Is(err, repository.ErrNotFound) {
				return false, nil // deleted from the repository since: nothing to compare
			}
			if err != nil {
				return false, err
			}
			rd, err := repo.OpenManifest(ctx, entry)
			if err != nil {
				return false, err
			}
			return true, rd.Segments(ctx, manifest.ReadOptions{}, func(s *manifest.Segment) error { return fn(rd, s) })
		}
		msgs, cerr := checkRestoredFiles(ctx, cl, in.End.Store, in.End.Root, job, source)
		if cerr != nil {
			return nil, fmt.Errorf("%s: job %d: %w", c.Name(), id, cerr)
		}
		for _, m := range msgs {
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: opIDs, Message: fmt.Sprintf("repository restore job %d: %s", id, m)})
		}
	}

	// The repository itself: every manifest and data object, read back.
	report, err := repo.Verify(ctx, repository.VerifyOptions{Deep: true})
	if err != nil {
		return nil, fmt.Errorf("%s: verify the repository: %w", c.Name(), err)
	}
	for _, p := range report.Problems {
		vs = append(vs, Violation{Checker: c.Name(), Message: "repository: " + p.String()})
	}

	// Acknowledged exports are restorable: restore some into new collections.
	limit := c.AuditRestores
	if limit == 0 {
		limit = 3
	}
	slices.Sort(exported)
	exported = slices.Compact(exported)
	for i, id := range exported {
		if i >= limit {
			break
		}
		target := fmt.Sprintf("audit_%d", i)
		resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreFromRepositoryOption(end.Name, id, target))
		if err != nil {
			vs = append(vs, Violation{Checker: c.Name(), Message: fmt.Sprintf("repository snapshot %s: the audit's restore was refused: %v", id, err)})
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		job, err := cl.WaitRestore(wctx, resp.GetJobId(), nil)
		cancel()
		switch {
		case err != nil:
			vs = append(vs, Violation{Checker: c.Name(), Message: fmt.Sprintf("repository snapshot %s: the audit's restore job %d: %v", id, resp.GetJobId(), err)})
		case job.GetState() != pb.RestoreState_RESTORE_STATE_COMPLETED:
			vs = append(vs, Violation{Checker: c.Name(), Message: fmt.Sprintf("repository snapshot %s: the audit's restore job %d is %s: %s %v",
				id, job.GetId(), job.GetState(), job.GetError(), job.GetFailingKeys())})
		}
	}
	return vs, nil
}
