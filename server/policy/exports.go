package policy

import (
	"context"
	"strconv"
	"time"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/manifest/repository"
)

// Exports: a policy with an export repository has each of its committed snapshots
// exported there once (PolicyExport records the job in the snapshot), and expires the
// exported copies by its export retention: the repository's index entries this
// cluster exported for the policy (by its label), removed in one new index
// generation, then a repository GC frees their objects. This runs in a duty of its
// own: reading and collecting a repository takes time the schedule must not wait for.

// exportTick is how often the exports duty looks at the policies.
const exportTick = time.Second

// exportRetry is how long a snapshot whose export could not be started waits before
// the next attempt (the repository unregistered, read-only, held by a GC...).
const exportRetry = time.Minute

// maxExportsPerPass bounds the exports one pass starts.
const maxExportsPerPass = 16

// Repositories is what the exports duty needs of the node's repositories.
type Repositories interface {
	// RepositoryIndex is the latest index of a registered repository.
	RepositoryIndex(ctx context.Context, name string) ([]repository.Entry, error)
	// DeleteRepositorySnapshots removes entries from its index in one generation
	// and returns how many were there.
	DeleteRepositorySnapshots(ctx context.Context, name string, ids []string) (int, error)
	// CollectRepository deletes what no entry of its index references.
	CollectRepository(ctx context.Context, name string) error
	// ExportsStarted wakes the job coordinator.
	ExportsStarted()
}

// exportState is the exports duty's memory of one term.
type exportState struct {
	ids      map[uint64]string    // repository snapshot id chosen per snapshot, reused by retries
	retryAt  map[uint64]time.Time // by snapshot id
	expired  map[uint64]time.Time // when the export retention last ran, by policy id
	warnedAt map[uint64]time.Time // by policy id
}

// ExportLoop is the exports duty for one term as leader.
func (s *Scheduler) ExportLoop() duty.Loop {
	return duty.Loop{Name: "policy-exports", Every: exportTick, Pass: s.ExportPass,
		Finally: func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.exp = newExportState()
		}}
}

func newExportState() exportState {
	return exportState{ids: map[uint64]string{}, retryAt: map[uint64]time.Time{}, expired: map[uint64]time.Time{}, warnedAt: map[uint64]time.Time{}}
}

// ExportPass starts the exports due and runs the export retentions due.
func (s *Scheduler) ExportPass(ctx context.Context) {
	if s.repos == nil {
		return
	}
	v := s.cluster.View()
	now := s.cfg.Now()
	for _, p := range v.Policies() {
		if ctx.Err() != nil {
			return
		}
		if p.ExportRepository == "" {
			continue
		}
		s.startExports(ctx, v, p, now)
		s.expireExports(ctx, v, p, now)
	}
}

func (s *Scheduler) startExports(ctx context.Context, v *fsm.View, p *fsmpb.Policy, now time.Time) {
	var todo []*fsmpb.Snapshot
	v.EachPolicySnapshot(p.Id, func(snap *fsmpb.Snapshot) bool {
		if snap.State == fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED && snap.PolicyExportJob == 0 {
			todo = append(todo, snap)
		}
		return len(todo) < maxExportsPerPass
	})
	for _, snap := range todo {
		s.mu.Lock()
		wait := now.Before(s.exp.retryAt[snap.Id])
		id, ok := s.exp.ids[snap.Id]
		if !ok {
			id = repository.NewID()
			s.exp.ids[snap.Id] = id
		}
		s.mu.Unlock()
		if wait {
			continue
		}
		cmd := &fsmpb.PolicyExport{Policy: p.Name, SnapshotId: snap.Id, RepositorySnapshot: id, MaxAttempts: uint32(s.cfg.ExportMaxAttempts)}
		var resp fsmpb.RestoreJobResponse
		err := s.cluster.Propose(ctx, "policy-export-"+strconv.FormatUint(snap.Id, 10), cmd, &resp)
		s.mu.Lock()
		if err != nil {
			s.exp.retryAt[snap.Id] = now.Add(exportRetry)
		} else {
			delete(s.exp.ids, snap.Id)
			delete(s.exp.retryAt, snap.Id)
		}
		s.mu.Unlock()
		if err != nil {
			s.cfg.Ran("export", "error")
			if ctx.Err() == nil {
				s.cfg.Logger.Warn("policy export not started; will retry", "policy", p.Name, "snapshot", snap.Name,
					"collection", snap.CollectionName, "repository", p.ExportRepository, "retry_in", exportRetry, "err", err)
			}
			continue
		}
		s.cfg.Ran("export", "ok")
		s.repos.ExportsStarted()
		s.cfg.Logger.Info("policy export started", "policy", p.Name, "snapshot", snap.Name, "collection", snap.CollectionName,
			"repository", p.ExportRepository, "job", resp.Job.GetId())
	}
}

func (s *Scheduler) expireExports(ctx context.Context, v *fsm.View, p *fsmpb.Policy, now time.Time) {
	if !fsm.HasRetention(p.ExportRetention) {
		return
	}
	s.mu.Lock()
	last, ok := s.exp.expired[p.Id]
	s.mu.Unlock()
	if ok && now.Sub(last) < fsm.RetentionEvery(p.ExportRetention) {
		return
	}
	s.mu.Lock()
	s.exp.expired[p.Id] = now
	s.mu.Unlock()
	entries, err := s.repos.RepositoryIndex(ctx, p.ExportRepository)
	if err != nil {
		s.exportRetentionFailed(ctx, p, now, "read the index", err)
		return
	}
	cluster := v.ClusterID()
	var ours []fsm.ExportedEntry
	for _, e := range entries {
		if e.SourceClusterID == cluster && e.Labels[fsm.PolicyLabel] == p.Name {
			ours = append(ours, fsm.ExportedEntry{ID: e.ID, CollectionID: e.CollectionID, CreatedAt: e.CreatedAt.UnixNano()})
		}
	}
	busy := map[string]bool{}
	for _, j := range v.RunningRestoreJobs() {
		if j.Repository == p.ExportRepository {
			busy[j.RepositorySnapshot] = true
		}
	}
	var ids []string
	for _, d := range fsm.ExportRetentionPlan(p, ours, now.UnixNano(), func(id string) bool { return busy[id] }) {
		if d.Delete {
			ids = append(ids, d.Entry.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	n, err := s.repos.DeleteRepositorySnapshots(ctx, p.ExportRepository, ids)
	if err != nil {
		s.exportRetentionFailed(ctx, p, now, "remove expired snapshots from the index", err)
		return
	}
	if err := s.cluster.Propose(ctx, "", &fsmpb.PolicyExportsExpired{Policy: p.Name, Count: uint32(n)}, nil); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("policy export retention: count not recorded", "policy", p.Name, "err", err)
	}
	s.cfg.Ran("export-retain", "ok")
	s.cfg.Logger.Info("policy export retention removed snapshots from the repository", "policy", p.Name,
		"repository", p.ExportRepository, "snapshots", ids)
	if err := s.repos.CollectRepository(ctx, p.ExportRepository); err != nil {
		s.exportRetentionFailed(ctx, p, now, "collect the repository (the next run retries)", err)
	}
}

func (s *Scheduler) exportRetentionFailed(ctx context.Context, p *fsmpb.Policy, now time.Time, what string, err error) {
	s.cfg.Ran("export-retain", "error")
	if ctx.Err() != nil {
		return
	}
	s.cfg.Logger.Warn("policy export retention could not "+what, "policy", p.Name, "repository", p.ExportRepository, "err", err)
}
