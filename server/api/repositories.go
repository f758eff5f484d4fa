package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/manifest/repository"
	"github.com/snapkeep/snapkeep/restore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// repositoriesService implements the public Repositories API. Registrations, exports
// and repository GC holds go through the log; reading a repository (its index, its
// manifests) is done by the serving node with its own credentials.
type repositoriesService struct {
	pb.UnimplementedRepositoriesServer
	*services
}

// A repository GC run holds its repository for repositoryGCLease, renewed every
// repositoryGCRenew while it runs; it stops deleting once repositoryGCMargin is all
// that is left of the last hold it got, so a run cut off from the leader (or a node
// that died mid-run) blocks exports for one lease at most, and never deletes unheld.
const (
	repositoryGCLease  = 30 * time.Second
	repositoryGCRenew  = 10 * time.Second
	repositoryGCMargin = 10 * time.Second
)

// repositoryHold is a repository GC run's hold: ctx ends when the hold may have
// lapsed (or the caller's ctx ends).
type repositoryHold struct {
	ctx     context.Context
	release func()
}

func (s *services) holdRepository(ctx context.Context, name string) (*repositoryHold, error) {
	run := rand.Uint64()>>1 + 1
	begin := &fsmpb.RepositoryGCBegin{Name: name, Run: run, Lease: int64(repositoryGCLease)}
	if err := s.b.Propose(ctx, "", begin, nil); err != nil {
		return nil, err
	}
	held, cancel := context.WithCancel(ctx)
	deadline := time.Now().Add(repositoryGCLease - repositoryGCMargin)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer func() {
			// A panic here must not take the node down: the run stops (its context
			// ends) before the hold can lapse under it.
			if r := recover(); r != nil {
				slog.Error("repository GC: the hold's renewal panicked; the run stops", "repository", name, "panic", r, "stack", string(debug.Stack()))
				cancel()
			}
		}()
		renew := time.NewTicker(repositoryGCRenew)
		defer renew.Stop()
		lapse := time.NewTimer(time.Until(deadline))
		defer lapse.Stop()
		for {
			select {
			case <-done:
				return
			case <-lapse.C:
				slog.Warn("repository GC: the hold could not be renewed; the run stops before it lapses", "repository", name)
				cancel()
				return
			case <-renew.C:
				asked := time.Now()
				if err := s.b.Propose(held, "", begin, nil); err == nil {
					lapse.Reset(time.Until(asked.Add(repositoryGCLease - repositoryGCMargin)))
				}
			}
		}
	}()
	release := func() {
		close(done)
		<-stopped
		cancel()
		end := &fsmpb.RepositoryGCEnd{Name: name, Run: run}
		ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), repositoryGCRenew)
		defer ecancel()
		for ectx.Err() == nil {
			if err := s.b.Propose(ectx, "", end, nil); err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		slog.Warn("repository GC: releasing the hold failed; it lapses at its deadline", "repository", name)
	}
	return &repositoryHold{ctx: held, release: release}, nil
}

// defaultRepositoryGrace keeps objects younger than this from a repository GC.
const defaultRepositoryGrace = time.Hour

// RepositoryRecord is the catalog's record of a repository's settings (the rest —
// id, writer, copy directions — is filled in by registration).
func RepositoryRecord(spec *pb.RepositorySpec) *fsmpb.Repository {
	return &fsmpb.Repository{Name: spec.GetName(), Endpoint: spec.GetEndpoint(), Region: spec.GetRegion(), Bucket: spec.GetBucket(),
		Prefix: strings.TrimSuffix(spec.GetPrefix(), "/"), PathStyle: spec.GetPathStyle(), Credentials: spec.GetCredentials(),
		ReadOnly: spec.GetReadOnly(), BytesPerSecond: spec.GetBytesPerSecond(), Description: spec.GetDescription()}
}

// RepositorySpecOf is a record's settings as the API states them.
func RepositorySpecOf(r *fsmpb.Repository) *pb.RepositorySpec {
	return &pb.RepositorySpec{Name: r.Name, Endpoint: r.Endpoint, Region: r.Region, Bucket: r.Bucket, Prefix: r.Prefix,
		PathStyle: r.PathStyle, Credentials: r.Credentials, ReadOnly: r.ReadOnly, BytesPerSecond: r.BytesPerSecond, Description: r.Description}
}

func toRepository(r *fsmpb.Repository, cluster string) *pb.Repository {
	return &pb.Repository{Spec: RepositorySpecOf(r), RepositoryId: r.RepositoryId, WriterClusterId: r.WriterClusterId,
		CopyToRepository: r.CopyToRepository, CopyFromRepository: r.CopyFromRepository, RegisteredAtUnixMs: unixMS(r.RegisteredAt), ClusterId: cluster}
}

// clusterID gives the cluster its id if it has none (idempotent) and returns it.
func (s *repositoriesService) clusterID(ctx context.Context) (string, error) {
	if id := s.b.View().ClusterID(); id != "" {
		return id, nil
	}
	var out fsmpb.ClusterIdentifyResponse
	if err := s.b.Propose(ctx, "", &fsmpb.ClusterIdentify{ClusterId: repository.NewID()}, &out); err != nil {
		return "", err
	}
	return out.ClusterId, nil
}

func (s *repositoriesService) RegisterRepository(ctx context.Context, req *pb.RegisterRepositoryRequest) (*pb.RegisterRepositoryResponse, error) {
	rec := RepositoryRecord(req.GetSpec())
	check := proto.CloneOf(rec)
	check.RepositoryId, check.WriterClusterId = "placeholder", ""
	if err := fsm.ValidateRepository(check); err != nil {
		return nil, err
	}
	cluster, err := s.clusterID(ctx)
	if err != nil {
		return nil, err
	}
	probes, err := s.b.ProbeRepository(ctx, rec)
	if err != nil {
		return nil, err
	}
	out := &pb.RegisterRepositoryResponse{Probes: probes}
	rec.CopyToRepository, rec.CopyFromRepository = len(probes) > 0, len(probes) > 0
	for _, p := range probes {
		if !p.Ok {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s cannot use repository %q (bucket %q at %q): %s", p.Node, rec.Name, rec.Bucket, rec.Endpoint, p.Error)
		}
		if !rec.ReadOnly && !p.ConditionalCreate {
			return nil, status.Errorf(codes.FailedPrecondition, "repository %q: the server at %q does not refuse a conditional create (If-None-Match: *) over an existing object, as seen from node %s: two writers could lose each other's index updates; register it --read-only, or use a server with conditional writes",
				rec.Name, rec.Endpoint, p.Node)
		}
		rec.CopyToRepository = rec.CopyToRepository && p.CopyToRepository
		rec.CopyFromRepository = rec.CopyFromRepository && p.CopyFromRepository
	}
	store, err := s.b.RepositoryStore(rec)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "repository %q: %v", rec.Name, err)
	}
	var repo *repository.Repository
	if rec.ReadOnly {
		repo, err = repository.Open(ctx, store, rec.Prefix, repository.Options{})
		if errors.Is(err, repository.ErrNotARepository) {
			return nil, status.Errorf(codes.FailedPrecondition, "there is no repository in bucket %q under %q (no format marker); a read-only registration needs one an export created", rec.Bucket, rec.Prefix)
		}
	} else {
		repo, out.Initialized, err = repository.Init(ctx, store, rec.Prefix, cluster, s.cfg.Now(), repository.Options{})
	}
	if err != nil {
		return nil, repositoryError(rec.Name, err)
	}
	marker := repo.Marker()
	rec.RepositoryId, rec.WriterClusterId = marker.RepositoryID, marker.WriterClusterID
	var resp fsmpb.RepositoryResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.RepositoryRegister{Repository: rec}, &resp); err != nil {
		return nil, err
	}
	out.Repository, out.Existing = toRepository(resp.Repository, cluster), resp.Existed
	return out, nil
}

// repositoryError gives a repository's errors their status codes.
func repositoryError(name string, err error) error {
	code := codes.Unavailable
	switch {
	case errors.Is(err, repository.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, repository.ErrOtherWriter), errors.Is(err, repository.ErrNotARepository):
		code = codes.FailedPrecondition
	case errors.Is(err, repository.ErrCorrupt), errors.Is(err, repository.ErrUnsupportedVersion), errors.Is(err, manifest.ErrCorrupt):
		code = codes.DataLoss
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Errorf(code, "repository %q: %v", name, err)
}

func (s *repositoriesService) UnregisterRepository(ctx context.Context, req *pb.UnregisterRepositoryRequest) (*pb.UnregisterRepositoryResponse, error) {
	var resp fsmpb.RepositoryResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.RepositoryUnregister{Name: req.Name}, &resp); err != nil {
		return nil, err
	}
	return &pb.UnregisterRepositoryResponse{Existed: resp.Existed}, nil
}

func (s *repositoriesService) ListRepositories(ctx context.Context, req *pb.ListRepositoriesRequest) (*pb.ListRepositoriesResponse, error) {
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	out := &pb.ListRepositoriesResponse{}
	for _, r := range v.Repositories() {
		out.Repositories = append(out.Repositories, toRepository(r, v.ClusterID()))
	}
	return out, nil
}

func (s *repositoriesService) ExportSnapshot(ctx context.Context, req *pb.ExportSnapshotRequest) (*pb.ExportSnapshotResponse, error) {
	cmd := &fsmpb.ExportBegin{Database: req.Database, Collection: req.Collection, Snapshot: req.Snapshot, Repository: req.Repository,
		RepositorySnapshot: repository.NewID(), MaxConcurrency: req.MaxConcurrency, MaxAttempts: uint32(s.cfg.RestoreMaxAttempts), ReadBack: req.ReadBack}
	if err := fsm.ValidateExportBegin(cmd); err != nil {
		return nil, err
	}
	var out fsmpb.RestoreJobResponse
	if err := s.b.Propose(ctx, req.RequestId, cmd, &out); err != nil {
		return nil, err
	}
	s.b.KickRestores()
	return &pb.ExportSnapshotResponse{JobId: out.Job.Id, Job: s.restoreStatus(toRestoreJob(out.Job, s.cfg.Now())), Existing: out.Existing}, nil
}

// open opens a registered repository with this node's credentials.
func (s *services) openRepository(ctx context.Context, name string) (*fsmpb.Repository, *repository.Repository, error) {
	v, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return nil, nil, err
	}
	rec, err := v.Repository(name)
	if err != nil {
		return nil, nil, err
	}
	store, err := s.b.RepositoryStore(rec)
	if err != nil {
		return nil, nil, status.Errorf(codes.FailedPrecondition, "repository %q: %v", name, err)
	}
	repo, err := repository.Open(ctx, store, rec.Prefix, repository.Options{})
	if err != nil {
		return nil, nil, repositoryError(name, err)
	}
	return rec, repo, nil
}

func toRepositorySnapshot(e repository.Entry) *pb.RepositorySnapshot {
	return &pb.RepositorySnapshot{Id: e.ID, Name: e.Name, Database: e.Database, Collection: e.Collection, CollectionId: e.CollectionID,
		SourceClusterId: e.SourceClusterID, SourceSnapshotId: e.SourceSnapshotID, Layout: e.Layout,
		CreatedAtUnixMs: e.CreatedAt.UnixMilli(), ExportedAtUnixMs: e.ExportedAt.UnixMilli(), Segments: e.Segments, Rows: uint64(max(e.Rows, 0)),
		Files: e.Files, Bytes: e.Bytes, Labels: e.Labels, Description: e.Description, ManifestKey: e.ManifestKey, ManifestSize: uint64(max(e.ManifestSize, 0))}
}

func (s *repositoriesService) ListRepositorySnapshots(ctx context.Context, req *pb.ListRepositorySnapshotsRequest) (*pb.ListRepositorySnapshotsResponse, error) {
	_, repo, err := s.openRepository(ctx, req.Repository)
	if err != nil {
		return nil, err
	}
	index, err := repo.Latest(ctx)
	if err != nil {
		return nil, repositoryError(req.Repository, err)
	}
	out := &pb.ListRepositorySnapshotsResponse{Generation: index.Generation, RepositoryId: repo.Marker().RepositoryID}
	for _, e := range index.Snapshots {
		if (req.Collection != "" && e.Collection != req.Collection) || (req.Database != "" && e.Database != req.Database) {
			continue
		}
		out.Snapshots = append(out.Snapshots, toRepositorySnapshot(e))
	}
	return out, nil
}

func (s *repositoriesService) DeleteRepositorySnapshot(ctx context.Context, req *pb.DeleteRepositorySnapshotRequest) (*pb.DeleteRepositorySnapshotResponse, error) {
	deleted, generation, err := s.deleteRepositorySnapshots(ctx, req.Repository, []string{req.Snapshot})
	if err != nil {
		return nil, err
	}
	return &pb.DeleteRepositorySnapshotResponse{Existed: deleted == 1, Generation: generation}, nil
}

// DeleteRepositorySnapshots removes snapshots from a repository's index in one new
// generation (a policy's export retention); it returns how many were there. Their
// objects go with the next repository GC.
func (s Services) DeleteRepositorySnapshots(ctx context.Context, repository string, ids []string) (int, error) {
	n, _, err := s.deleteRepositorySnapshots(ctx, repository, ids)
	return n, err
}

func (s *services) deleteRepositorySnapshots(ctx context.Context, name string, ids []string) (int, uint64, error) {
	rec, repo, err := s.openRepository(ctx, name)
	if err != nil {
		return 0, 0, err
	}
	v := s.b.View()
	if rec.ReadOnly || rec.WriterClusterId != v.ClusterID() {
		return 0, 0, status.Errorf(codes.FailedPrecondition, "repository %q is read-only for this cluster; delete its snapshots from the cluster that writes it (%s)", rec.Name, rec.WriterClusterId)
	}
	for _, j := range v.RunningRestoreJobs() {
		if j.Repository == rec.Name && slices.Contains(ids, j.RepositorySnapshot) {
			return 0, 0, status.Errorf(codes.FailedPrecondition, "%s job %d is using snapshot %s of repository %q; cancel it or wait for it to end",
				strings.ToLower(strings.TrimPrefix(pb.JobKind(j.Kind).String(), "JOB_KIND_")), j.Id, j.RepositorySnapshot, rec.Name)
		}
	}
	deleted := 0
	index, err := repo.Update(ctx, v.ClusterID(), s.cfg.Now(), func(ix *repository.Index) error {
		deleted = 0
		ix.Snapshots = slices.DeleteFunc(ix.Snapshots, func(e repository.Entry) bool {
			if slices.Contains(ids, e.ID) {
				deleted++
				return true
			}
			return false
		})
		return nil
	})
	if err != nil {
		return 0, 0, repositoryError(rec.Name, err)
	}
	return deleted, index.Generation, nil
}

// RepositoryIndex is the latest index of a registered repository, read with this
// node's credentials.
func (s Services) RepositoryIndex(ctx context.Context, name string) ([]repository.Entry, error) {
	_, repo, err := s.openRepository(ctx, name)
	if err != nil {
		return nil, err
	}
	index, err := repo.Latest(ctx)
	if err != nil {
		return nil, repositoryError(name, err)
	}
	return index.Snapshots, nil
}

// exportKeys are the repository keys the running exports into a repository write or
// rely on: every task's destination and the manifest each will write.
func (s *services) exportKeys(v *fsm.View, repo *repository.Repository, name string) (map[string]bool, error) {
	keys := map[string]bool{}
	for _, j := range v.RunningRestoreJobs() {
		if j.Kind != fsmpb.JobKind_JOB_KIND_EXPORT || j.Repository != name {
			continue
		}
		keys[repo.Keys().Manifest(j.RepositorySnapshot)] = true
		if err := restore.EachDestination(v, s.cfg.Root, j, func(key string) { keys[key] = true }); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func (s *repositoriesService) CollectRepository(ctx context.Context, req *pb.CollectRepositoryRequest) (*pb.CollectRepositoryResponse, error) {
	grace := defaultRepositoryGrace
	switch {
	case req.GraceMs < 0:
		grace = 0
	case req.GraceMs > 0:
		grace = time.Duration(req.GraceMs) * time.Millisecond
	}
	report, err := s.collectRepository(ctx, req.Repository, req.DryRun, grace)
	if err != nil {
		return nil, err
	}
	return toCollectResponse(report), nil
}

// CollectRepository runs a repository GC with the default grace (after a policy's
// export retention removed snapshots from its index).
func (s Services) CollectRepository(ctx context.Context, name string) (repository.CollectReport, error) {
	return s.collectRepository(ctx, name, false, defaultRepositoryGrace)
}

func (s *services) collectRepository(ctx context.Context, name string, dryRun bool, grace time.Duration) (repository.CollectReport, error) {
	rec, repo, err := s.openRepository(ctx, name)
	if err != nil {
		return repository.CollectReport{}, err
	}
	if !dryRun {
		// Hold the repository: no export opens for copying while the run deletes, and
		// one whose listing predates the hold lists again (fsm.RestoreStart).
		hold, err := s.holdRepository(ctx, rec.Name)
		if err != nil {
			return repository.CollectReport{}, err
		}
		defer hold.release()
		ctx = hold.ctx
	}
	// Exports that began before the hold keep everything they need.
	v, err := s.b.ReadView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return repository.CollectReport{}, err
	}
	protected, err := s.exportKeys(v, repo, rec.Name)
	if err != nil {
		return repository.CollectReport{}, status.Errorf(codes.Internal, "the keys of running exports: %v", err)
	}
	report, err := repo.Collect(ctx, repository.CollectOptions{DryRun: dryRun, Grace: grace, Now: s.cfg.Now(), Protected: func(key string) bool { return protected[key] }})
	if err != nil {
		return repository.CollectReport{}, repositoryError(rec.Name, err)
	}
	return report, nil
}

func (s *repositoriesService) VerifyRepository(ctx context.Context, req *pb.VerifyRepositoryRequest) (*pb.VerifyRepositoryResponse, error) {
	rec, repo, err := s.openRepository(ctx, req.Repository)
	if err != nil {
		return nil, err
	}
	report, err := repo.Verify(ctx, repository.VerifyOptions{Deep: req.Deep})
	if err != nil {
		return nil, repositoryError(rec.Name, err)
	}
	out := &pb.VerifyRepositoryResponse{Snapshots: uint64(report.Snapshots), Objects: report.DataObjects, Bytes: report.DataBytes}
	if req.Deep {
		out.BytesRead = report.DataBytes
	}
	for _, p := range report.Problems {
		// One snapshot asked: its problems and the repository's own.
		if req.Snapshot == "" || p.Snapshot == "" || p.Snapshot == req.Snapshot {
			out.Problems = append(out.Problems, &pb.RepositoryProblem{Snapshot: p.Snapshot, Key: p.Key, Problem: p.Detail})
		}
	}
	out.ProblemCount = uint64(len(out.Problems))
	if req.Snapshot == "" {
		out.ProblemCount = uint64(report.ProblemCount)
	}
	out.Ok = out.ProblemCount == 0
	return out, nil
}

func toCollectResponse(r repository.CollectReport) *pb.CollectRepositoryResponse {
	out := &pb.CollectRepositoryResponse{ObjectsListed: r.Scanned, ObjectsReferenced: r.Referenced, ObjectsProtected: r.Protected + r.Spared,
		ObjectsDeleted: r.Deleted, BytesDeleted: r.DeletedBytes, ObjectsYoung: r.Young, Errors: r.Errors, GenerationsDeleted: r.Generations}
	if r.DryRun {
		out.ObjectsDeleted, out.BytesDeleted = r.CandidateCount, r.CandidateBytes
	}
	for _, c := range r.Candidates {
		out.Keys = append(out.Keys, c.Key)
	}
	return out
}

// fromRepository makes cmd a restore of a repository's snapshot: the capture (schema,
// properties, partitions, indexes) comes from the index entry and the manifest's
// header, read here; the leader then plans the segments from the manifest. The
// request's collection and database only narrow a snapshot name.
func (s *restoresService) fromRepository(ctx context.Context, req *pb.RestoreSnapshotRequest, cmd *fsmpb.RestoreBegin) error {
	if req.FromRepository == "" || req.RepositorySnapshot == "" {
		return status.Error(codes.InvalidArgument, "a restore from a repository names the repository and the snapshot (its id in the repository, or its name)")
	}
	if req.Snapshot != "" {
		return status.Error(codes.InvalidArgument, "a restore from a repository names a repository snapshot, not a snapshot of this cluster")
	}
	_, repo, err := s.openRepository(ctx, req.FromRepository)
	if err != nil {
		return err
	}
	entry, err := findRepositorySnapshot(ctx, repo, req)
	if err != nil {
		return err
	}
	rd, err := repo.OpenManifest(ctx, entry)
	if err != nil {
		return repositoryError(req.FromRepository, err)
	}
	partitions, err := restore.ManifestPartitions(rd, req.Partitions)
	if err != nil {
		return status.Errorf(codes.NotFound, "repository snapshot %s: %v", entry.ID, err)
	}
	hdr := rd.Header()
	capture := &fsmpb.RepositorySnapshot{
		Id: entry.ID, SourceClusterId: entry.SourceClusterID, SourceSnapshotId: entry.SourceSnapshotID, SnapshotName: entry.Name,
		Database: entry.Database, Collection: entry.Collection, CollectionId: hdr.CollectionId, CollectionDescription: hdr.CollectionDescription,
		Schema: hdr.Schema, Properties: hdr.Properties, Layout: fsmpb.KeyLayout(hdr.KeyLayout), Segments: countSegments(rd, partitions),
	}
	for _, p := range hdr.Partitions {
		capture.Partitions = append(capture.Partitions, &fsmpb.Partition{Id: p.Id, Name: p.Name, CreatedAt: p.CreatedAt})
	}
	for _, ix := range hdr.Indexes {
		capture.Indexes = append(capture.Indexes, &fsmpb.IndexDef{Id: ix.Id, Name: ix.Name, FieldId: ix.FieldId, Params: ix.Params, CreatedAt: ix.CreatedAt})
	}
	cmd.Repository, cmd.FromRepository = req.FromRepository, capture
	cmd.Database, cmd.Collection, cmd.Snapshot = "", "", ""
	return nil
}

// findRepositorySnapshot finds a repository snapshot by id, or by name when one
// snapshot of the collection (and database) asked has it.
func findRepositorySnapshot(ctx context.Context, repo *repository.Repository, req *pb.RestoreSnapshotRequest) (repository.Entry, error) {
	index, err := repo.Latest(ctx)
	if err != nil {
		return repository.Entry{}, repositoryError(req.FromRepository, err)
	}
	if e, ok := index.Find(req.RepositorySnapshot); ok {
		return e, nil
	}
	var found []repository.Entry
	for _, e := range index.Snapshots {
		if e.Name == req.RepositorySnapshot && (req.Collection == "" || e.Collection == req.Collection) && (req.Database == "" || e.Database == req.Database) {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		return repository.Entry{}, status.Errorf(codes.NotFound, "repository %q has no snapshot with id or name %q (generation %d)", req.FromRepository, req.RepositorySnapshot, index.Generation)
	case 1:
		return found[0], nil
	}
	var which []string
	for _, e := range found {
		which = append(which, fmt.Sprintf("%s (%s.%s)", e.ID, e.Database, e.Collection))
	}
	return repository.Entry{}, status.Errorf(codes.FailedPrecondition, "repository %q has %d snapshots named %q: %s; name one by its id", req.FromRepository, len(found), req.RepositorySnapshot, strings.Join(which, ", "))
}

// countSegments counts the manifest's segments of the partitions selected (nil: all),
// from its block index.
func countSegments(rd *manifest.Reader, partitions []uint64) uint64 {
	var n uint64
	for _, b := range rd.Blocks() {
		if partitions == nil || slices.Contains(partitions, b.PartitionID) {
			n += b.Segments
		}
	}
	return n
}
