package client

import (
	"context"
	"iter"
	"maps"
	"math"
	"slices"
	"time"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// RestoreSnapshotOption builds a RestoreSnapshot call.
type RestoreSnapshotOption struct {
	req *snapkeepv1.RestoreSnapshotRequest
}

// NewRestoreSnapshotOption restores snapshot of collection (of the "default"
// database) into a new collection named target (in the "default" database).
func NewRestoreSnapshotOption(collection, snapshot, target string) *RestoreSnapshotOption {
	return &RestoreSnapshotOption{req: &snapkeepv1.RestoreSnapshotRequest{Collection: collection, Snapshot: snapshot, TargetCollection: target}}
}

// NewRestoreFromRepositoryOption restores the snapshot repositorySnapshot of the
// registered repository (its id there, or its name when one snapshot of that name is
// there; WithCollection and WithDatabase narrow a name) into a new collection named
// target (in the "default" database). The snapshot need not be known to this
// cluster: this is how a brand-new cluster recovers from a repository.
func NewRestoreFromRepositoryOption(repository, repositorySnapshot, target string) *RestoreSnapshotOption {
	return &RestoreSnapshotOption{req: &snapkeepv1.RestoreSnapshotRequest{
		FromRepository: repository, RepositorySnapshot: repositorySnapshot, TargetCollection: target,
	}}
}

// WithFromRepository restores from the registered repository instead of this
// cluster's bucket: snapshot is the snapshot's id in the repository, or its name (the
// collection and database, when set, narrow a name). It replaces the snapshot name
// given to NewRestoreSnapshotOption.
func (o *RestoreSnapshotOption) WithFromRepository(repository, snapshot string) *RestoreSnapshotOption {
	o.req.FromRepository, o.req.RepositorySnapshot = repository, snapshot
	o.req.Snapshot = ""
	return o
}

// WithDatabase names the snapshot's database (default "default").
func (o *RestoreSnapshotOption) WithDatabase(db string) *RestoreSnapshotOption {
	o.req.Database = db
	return o
}

// WithCollection names the snapshot's collection (set by NewRestoreSnapshotOption);
// for a restore from a repository, it narrows a snapshot name.
func (o *RestoreSnapshotOption) WithCollection(collection string) *RestoreSnapshotOption {
	o.req.Collection = collection
	return o
}

// WithTargetDatabase puts the new collection in database db (default "default").
func (o *RestoreSnapshotOption) WithTargetDatabase(db string) *RestoreSnapshotOption {
	o.req.TargetDatabase = db
	return o
}

// WithPartitions restores only these partitions (added to earlier ones).
func (o *RestoreSnapshotOption) WithPartitions(names ...string) *RestoreSnapshotOption {
	o.req.Partitions = append(o.req.Partitions, names...)
	return o
}

// WithoutVerify skips checking each copy's size and CRC-32C (on by default).
func (o *RestoreSnapshotOption) WithoutVerify() *RestoreSnapshotOption {
	verify := false
	o.req.Verify = &verify
	return o
}

// WithReadBack verifies each copy by reading it back in full and computing its
// CRC-32C, whatever checksums the server reports (slower; needs verification on).
func (o *RestoreSnapshotOption) WithReadBack() *RestoreSnapshotOption {
	o.req.ReadBack = true
	return o
}

// WithMaxConcurrency bounds the copies one node runs at once for this job.
func (o *RestoreSnapshotOption) WithMaxConcurrency(n int) *RestoreSnapshotOption {
	o.req.MaxConcurrency = uint32(min(max(n, 0), math.MaxUint32))
	return o
}

// TargetIDs are the ids a caller (Milvus's allocator) chooses for a restore's new
// objects: the collection's, and source id → target id per kind (the source ids are
// the snapshot's). Anything left out gets an id from snapkeep.
type TargetIDs struct {
	Collection                            uint64
	Partitions, Indexes, Segments, Builds map[uint64]uint64
}

// WithTargetIDs gives the restored objects the caller's ids.
func (o *RestoreSnapshotOption) WithTargetIDs(ids TargetIDs) *RestoreSnapshotOption {
	o.req.TargetCollectionId = ids.Collection
	o.req.TargetPartitions = idMappings(ids.Partitions)
	o.req.TargetIndexes = idMappings(ids.Indexes)
	o.req.TargetSegments = idMappings(ids.Segments)
	o.req.TargetBuilds = idMappings(ids.Builds)
	return o
}

func idMappings(m map[uint64]uint64) []*snapkeepv1.IdMapping {
	out := make([]*snapkeepv1.IdMapping, 0, len(m))
	for _, src := range slices.Sorted(maps.Keys(m)) {
		out = append(out, &snapkeepv1.IdMapping{Source: src, Target: m[src]})
	}
	return out
}

// RestoreSnapshot starts a restore job (from a repository with
// NewRestoreFromRepositoryOption or WithFromRepository); the response carries its id.
// The same request while that job runs returns it again (Existing).
func (c *Client) RestoreSnapshot(ctx context.Context, opt *RestoreSnapshotOption) (*snapkeepv1.RestoreSnapshotResponse, error) {
	if opt == nil {
		return nil, nilOption("RestoreSnapshot")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	return invoke(ctx, c, "RestoreSnapshot", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.RestoreSnapshotResponse, error) {
			return ep.restores.RestoreSnapshot(ctx, req, o...)
		})
}

// JobEnded reports whether a job in state has ended: COMPLETED, FAILED or CANCELLED.
// Every other state (PENDING, PLANNING, COPYING, FINALIZING, and any a newer server
// adds) is a running one.
func JobEnded(state snapkeepv1.RestoreState) bool {
	switch state {
	case snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED, snapkeepv1.RestoreState_RESTORE_STATE_FAILED,
		snapkeepv1.RestoreState_RESTORE_STATE_CANCELLED:
		return true
	}
	return false
}

// GetRestoreState returns a job's state and progress: a restore's, an export's or a
// repository restore's (Kind says which).
func (c *Client) GetRestoreState(ctx context.Context, jobID uint64, opts ...ReadOption) (*snapkeepv1.RestoreJob, error) {
	var rs readSettings
	for _, o := range opts {
		o(&rs)
	}
	cons, route := consistency(rs.stale)
	req := &snapkeepv1.GetRestoreStateRequest{JobId: jobID, Consistency: cons}
	resp, err := invoke(ctx, c, "GetRestoreState", route,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.GetRestoreStateResponse, error) {
			return ep.restores.GetRestoreState(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetJob(), nil
}

// WaitRestore polls a job (every 200 ms, then up to every 2 s) until it ends and
// returns it: COMPLETED, FAILED or CANCELLED (see JobEnded), with the source → target
// id maps for a restore. It follows exports and repository restores the same way.
// onProgress, when set, is called with the job each time its progress or state
// changes. The error is ctx's when it ends first, or a read's that retries did not
// cure; a FAILED job is not an error (look at its state and Error).
func (c *Client) WaitRestore(ctx context.Context, jobID uint64, onProgress func(*snapkeepv1.RestoreJob)) (*snapkeepv1.RestoreJob, error) {
	wait := 200 * time.Millisecond
	var last *snapkeepv1.RestoreJob
	for {
		job, err := c.GetRestoreState(ctx, jobID)
		if err != nil {
			return nil, err
		}
		changed := last == nil || job.GetState() != last.GetState() || job.GetFilesDone() != last.GetFilesDone()
		if changed && onProgress != nil {
			onProgress(job)
		}
		if JobEnded(job.GetState()) {
			return job, nil
		}
		if changed {
			wait = 200 * time.Millisecond
		} else {
			wait = min(2*wait, 2*time.Second)
		}
		last = job
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// CancelRestoreOption builds a CancelRestore call.
type CancelRestoreOption struct {
	req *snapkeepv1.CancelRestoreRequest
}

// NewCancelRestoreOption cancels restore job jobID.
func NewCancelRestoreOption(jobID uint64) *CancelRestoreOption {
	return &CancelRestoreOption{req: &snapkeepv1.CancelRestoreRequest{JobId: jobID}}
}

// WithReason records why (kept as the job's error).
func (o *CancelRestoreOption) WithReason(reason string) *CancelRestoreOption {
	o.req.Reason = reason
	return o
}

// CancelRestore stops a running job and rolls it back: a restore's target collection
// is dropped. It cancels exports too, except once FINALIZING (their manifest and index
// generation are being written).
func (c *Client) CancelRestore(ctx context.Context, opt *CancelRestoreOption) (*snapkeepv1.RestoreJob, error) {
	if opt == nil {
		return nil, nilOption("CancelRestore")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "CancelRestore", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.CancelRestoreResponse, error) {
			return ep.restores.CancelRestore(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetJob(), nil
}

// ListRestoreJobsOption builds a ListRestoreJobs or ListAllRestoreJobs call.
type ListRestoreJobsOption struct {
	req *snapkeepv1.ListRestoreJobsRequest
}

// NewListRestoreJobsOption lists every job in creation order: restores, exports and
// repository restores.
func NewListRestoreJobsOption() *ListRestoreJobsOption {
	return &ListRestoreJobsOption{req: &snapkeepv1.ListRestoreJobsRequest{}}
}

// WithStates lists only jobs in one of states (adding to earlier WithStates).
func (o *ListRestoreJobsOption) WithStates(states ...snapkeepv1.RestoreState) *ListRestoreJobsOption {
	o.req.States = append(o.req.States, states...)
	return o
}

// WithKinds lists only jobs of these kinds (adding to earlier WithKinds); without it,
// every kind: restores, exports and repository restores.
func (o *ListRestoreJobsOption) WithKinds(kinds ...snapkeepv1.JobKind) *ListRestoreJobsOption {
	o.req.Kinds = append(o.req.Kinds, kinds...)
	return o
}

// WithTarget lists only jobs restoring into collection (of database db; "" for
// "default").
func (o *ListRestoreJobsOption) WithTarget(db, collection string) *ListRestoreJobsOption {
	o.req.TargetDatabase, o.req.TargetCollection = db, collection
	return o
}

// WithSnapshot lists only jobs restoring a snapshot of this name.
func (o *ListRestoreJobsOption) WithSnapshot(name string) *ListRestoreJobsOption {
	o.req.Snapshot = name
	return o
}

// WithPageSize sets how many jobs one page holds (0: 100; at most 1,000).
func (o *ListRestoreJobsOption) WithPageSize(n int) *ListRestoreJobsOption {
	o.req.PageSize = uint32(min(max(n, 0), math.MaxUint32))
	return o
}

// WithPageToken continues a listing from a previous page's NextPageToken.
func (o *ListRestoreJobsOption) WithPageToken(token string) *ListRestoreJobsOption {
	o.req.PageToken = token
	return o
}

// ListRestoreJobs returns one page of restore jobs.
func (c *Client) ListRestoreJobs(ctx context.Context, opt *ListRestoreJobsOption) (*snapkeepv1.ListRestoreJobsResponse, error) {
	if opt == nil {
		return nil, nilOption("ListRestoreJobs")
	}
	return c.listRestoreJobsPage(ctx, clone(opt.req))
}

func (c *Client) listRestoreJobsPage(ctx context.Context, req *snapkeepv1.ListRestoreJobsRequest) (*snapkeepv1.ListRestoreJobsResponse, error) {
	return invoke(ctx, c, "ListRestoreJobs", readRoute(req.Consistency),
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ListRestoreJobsResponse, error) {
			return ep.restores.ListRestoreJobs(ctx, req, o...)
		})
}

// ListAllRestoreJobs iterates over every job the listing selects, a page at a time;
// see ListAllSegments for the error and early-stop behaviour.
func (c *Client) ListAllRestoreJobs(ctx context.Context, opt *ListRestoreJobsOption) iter.Seq2[*snapkeepv1.RestoreJob, error] {
	if opt == nil {
		return failedIteration[*snapkeepv1.RestoreJob](nilOption("ListAllRestoreJobs"))
	}
	return allPages(clone(opt.req),
		func(req *snapkeepv1.ListRestoreJobsRequest) (*snapkeepv1.ListRestoreJobsResponse, error) {
			return c.listRestoreJobsPage(ctx, req)
		},
		(*snapkeepv1.ListRestoreJobsResponse).GetJobs,
		func(req *snapkeepv1.ListRestoreJobsRequest, token string) { req.PageToken = token })
}
