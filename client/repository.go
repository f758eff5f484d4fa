package client

import (
	"context"
	"math"
	"time"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// RegisterRepositoryOption builds a RegisterRepository call.
type RegisterRepositoryOption struct {
	req *snapkeepv1.RegisterRepositoryRequest
}

// NewRegisterRepositoryOption registers the repository name in bucket (on AWS, in
// us-east-1, at the bucket's root, reached with the nodes' own S3 credentials, unless
// the With methods say otherwise). Names are 1–255 of [A-Za-z0-9_-], starting with a
// letter or '_'.
func NewRegisterRepositoryOption(name, bucket string) *RegisterRepositoryOption {
	return &RegisterRepositoryOption{req: &snapkeepv1.RegisterRepositoryRequest{
		Spec: &snapkeepv1.RepositorySpec{Name: name, Bucket: bucket},
	}}
}

// WithEndpoint sets the S3 endpoint URL (default: AWS).
func (o *RegisterRepositoryOption) WithEndpoint(url string) *RegisterRepositoryOption {
	o.req.Spec.Endpoint = url
	return o
}

// WithRegion sets the bucket's region (default us-east-1).
func (o *RegisterRepositoryOption) WithRegion(region string) *RegisterRepositoryOption {
	o.req.Spec.Region = region
	return o
}

// WithPrefix puts the repository under this key prefix of the bucket (default: the
// bucket's root).
func (o *RegisterRepositoryOption) WithPrefix(prefix string) *RegisterRepositoryOption {
	o.req.Spec.Prefix = prefix
	return o
}

// WithPathStyle addresses the bucket path-style (http://host/bucket/key), as MinIO
// and most S3-compatible servers need.
func (o *RegisterRepositoryOption) WithPathStyle() *RegisterRepositoryOption {
	o.req.Spec.PathStyle = true
	return o
}

// WithCredentials names the credentials each node resolves from its own
// configuration (--repository-credentials FILE, or the environment
// SNAPKEEP_REPO_<NAME>_ACCESS_KEY and _SECRET_KEY). It is a name, never a secret;
// without it the nodes use their own S3 credentials.
func (o *RegisterRepositoryOption) WithCredentials(ref string) *RegisterRepositoryOption {
	o.req.Spec.Credentials = ref
	return o
}

// ReadOnly registers the repository for restores only: nothing is ever written to it.
// A repository another cluster writes can only be registered this way.
func (o *RegisterRepositoryOption) ReadOnly() *RegisterRepositoryOption {
	o.req.Spec.ReadOnly = true
	return o
}

// WithBytesPerSecond caps how fast each node copies to or from the repository
// (0: no limit).
func (o *RegisterRepositoryOption) WithBytesPerSecond(n uint64) *RegisterRepositoryOption {
	o.req.Spec.BytesPerSecond = n
	return o
}

// WithDescription sets free text describing the repository.
func (o *RegisterRepositoryOption) WithDescription(description string) *RegisterRepositoryOption {
	o.req.Spec.Description = description
	return o
}

// RegisterRepository checks the repository from every node (a probe object written,
// read, listed and deleted with each node's credentials; conditional create; whether
// server-side copies work between the buckets), creates its format marker if it has
// none, and records it. The response carries every node's probe. A node that cannot
// reach the repository, or a second writer cluster, makes the call fail (the error's
// message names the node or the writer); registering the same spec again succeeds
// with Existing set.
func (c *Client) RegisterRepository(ctx context.Context, opt *RegisterRepositoryOption) (*snapkeepv1.RegisterRepositoryResponse, error) {
	if opt == nil {
		return nil, nilOption("RegisterRepository")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	return invoke(ctx, c, "RegisterRepository", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.RegisterRepositoryResponse, error) {
			return ep.repositories.RegisterRepository(ctx, req, o...)
		})
}

// UnregisterRepository forgets the repository name; nothing in it is deleted. It is
// refused (ErrFailedPrecondition) while a job uses the repository. Unregistering one
// that is not registered succeeds; the response's Existed says which happened.
func (c *Client) UnregisterRepository(ctx context.Context, name string) (*snapkeepv1.UnregisterRepositoryResponse, error) {
	req := &snapkeepv1.UnregisterRepositoryRequest{RequestId: requestID(ctx), Name: name}
	return invoke(ctx, c, "UnregisterRepository", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.UnregisterRepositoryResponse, error) {
			return ep.repositories.UnregisterRepository(ctx, req, o...)
		})
}

// ListRepositories returns every registered repository, ordered by name.
func (c *Client) ListRepositories(ctx context.Context, opts ...ReadOption) ([]*snapkeepv1.Repository, error) {
	var rs readSettings
	for _, o := range opts {
		o(&rs)
	}
	cons, route := consistency(rs.stale)
	req := &snapkeepv1.ListRepositoriesRequest{Consistency: cons}
	resp, err := invoke(ctx, c, "ListRepositories", route,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ListRepositoriesResponse, error) {
			return ep.repositories.ListRepositories(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetRepositories(), nil
}

// ExportSnapshotOption builds an ExportSnapshot call.
type ExportSnapshotOption struct {
	req *snapkeepv1.ExportSnapshotRequest
}

// NewExportSnapshotOption exports the committed snapshot of collection (of the
// "default" database) to the registered repository.
func NewExportSnapshotOption(collection, snapshot, repository string) *ExportSnapshotOption {
	return &ExportSnapshotOption{req: &snapkeepv1.ExportSnapshotRequest{
		Collection: collection, Snapshot: snapshot, Repository: repository,
	}}
}

// WithDatabase names the collection's database (default "default").
func (o *ExportSnapshotOption) WithDatabase(db string) *ExportSnapshotOption {
	o.req.Database = db
	return o
}

// WithMaxConcurrency bounds the copies one node runs at once for this job (0: the
// node's default).
func (o *ExportSnapshotOption) WithMaxConcurrency(n int) *ExportSnapshotOption {
	o.req.MaxConcurrency = uint32(min(max(n, 0), math.MaxUint32))
	return o
}

// WithReadBack verifies each copy by reading it back from the repository in full.
func (o *ExportSnapshotOption) WithReadBack() *ExportSnapshotOption {
	o.req.ReadBack = true
	return o
}

// ExportSnapshot starts a job that copies the snapshot's files the repository does not
// hold yet, then its manifest, and records it in a new generation of the repository's
// index. The response carries the job's id; the same request while that job runs
// returns it again (Existing). Follow it with WaitExport or GetRestoreState, stop it
// with CancelRestore.
func (c *Client) ExportSnapshot(ctx context.Context, opt *ExportSnapshotOption) (*snapkeepv1.ExportSnapshotResponse, error) {
	if opt == nil {
		return nil, nilOption("ExportSnapshot")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	return invoke(ctx, c, "ExportSnapshot", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ExportSnapshotResponse, error) {
			return ep.repositories.ExportSnapshot(ctx, req, o...)
		})
}

// WaitExport follows an export job until it ends, as WaitRestore does (it is
// WaitRestore: exports are jobs of the same table). PLANNING and FINALIZING are
// running states; the job ends COMPLETED, FAILED or CANCELLED.
func (c *Client) WaitExport(ctx context.Context, jobID uint64, onProgress func(*snapkeepv1.RestoreJob)) (*snapkeepv1.RestoreJob, error) {
	return c.WaitRestore(ctx, jobID, onProgress)
}

// ListRepositorySnapshotsOption builds a ListRepositorySnapshots call.
type ListRepositorySnapshotsOption struct {
	req *snapkeepv1.ListRepositorySnapshotsRequest
}

// NewListRepositorySnapshotsOption lists every snapshot in the repository's latest
// index.
func NewListRepositorySnapshotsOption(repository string) *ListRepositorySnapshotsOption {
	return &ListRepositorySnapshotsOption{req: &snapkeepv1.ListRepositorySnapshotsRequest{Repository: repository}}
}

// WithDatabase lists only snapshots of collections of database db.
func (o *ListRepositorySnapshotsOption) WithDatabase(db string) *ListRepositorySnapshotsOption {
	o.req.Database = db
	return o
}

// WithCollection lists only snapshots of collections named collection.
func (o *ListRepositorySnapshotsOption) WithCollection(collection string) *ListRepositorySnapshotsOption {
	o.req.Collection = collection
	return o
}

// ListRepositorySnapshots reads the repository's latest index: its generation, the
// repository's id and its snapshots. It needs nothing of this cluster's catalog but
// the repository's registration, so it works on a brand-new cluster.
func (c *Client) ListRepositorySnapshots(ctx context.Context, opt *ListRepositorySnapshotsOption) (*snapkeepv1.ListRepositorySnapshotsResponse, error) {
	if opt == nil {
		return nil, nilOption("ListRepositorySnapshots")
	}
	req := clone(opt.req)
	return invoke(ctx, c, "ListRepositorySnapshots", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ListRepositorySnapshotsResponse, error) {
			return ep.repositories.ListRepositorySnapshots(ctx, req, o...)
		})
}

// DeleteRepositorySnapshot removes the snapshot with this id (its id in the
// repository) from the repository's index, in a new generation; CollectRepository
// deletes its objects later. Deleting one that is not there succeeds; the response's
// Existed says which happened.
func (c *Client) DeleteRepositorySnapshot(ctx context.Context, repository, snapshotID string) (*snapkeepv1.DeleteRepositorySnapshotResponse, error) {
	req := &snapkeepv1.DeleteRepositorySnapshotRequest{RequestId: requestID(ctx), Repository: repository, Snapshot: snapshotID}
	return invoke(ctx, c, "DeleteRepositorySnapshot", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DeleteRepositorySnapshotResponse, error) {
			return ep.repositories.DeleteRepositorySnapshot(ctx, req, o...)
		})
}

// CollectRepository deletes the repository's objects that no snapshot of its index
// references, never one an export in progress needs, and returns the report; with
// dryRun it deletes nothing and lists the candidates. Objects younger than grace are
// kept: 0 means the server's default (1 hour), a negative grace keeps none (a grace
// under a millisecond counts as one). Like GCRun it carries no request id; running
// it twice is harmless.
func (c *Client) CollectRepository(ctx context.Context, repository string, dryRun bool, grace time.Duration) (*snapkeepv1.CollectRepositoryResponse, error) {
	req := &snapkeepv1.CollectRepositoryRequest{Repository: repository, DryRun: dryRun, GraceMs: graceMillis(grace)}
	return invoke(ctx, c, "CollectRepository", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.CollectRepositoryResponse, error) {
			return ep.repositories.CollectRepository(ctx, req, o...)
		})
}

// graceMillis turns CollectRepository's grace into the request's grace_ms: 0 stays 0
// (the server's default), any negative value is -1 (none), and a positive one is at
// least 1 ms, so that a short grace is not read as the default.
func graceMillis(d time.Duration) int64 {
	switch {
	case d == 0:
		return 0
	case d < 0:
		return -1
	default:
		return max(d.Milliseconds(), 1)
	}
}

// VerifyRepository checks the repository's snapshots (only snapshotID's, its id in
// the repository, unless it is ""): every manifest, and every data object's size by
// listing; with deep, every object's CRC-32C too, by reading it all. The response's
// Ok is false when a problem was found; a repository with problems is not an error.
func (c *Client) VerifyRepository(ctx context.Context, repository string, deep bool, snapshotID string) (*snapkeepv1.VerifyRepositoryResponse, error) {
	req := &snapkeepv1.VerifyRepositoryRequest{Repository: repository, Deep: deep, Snapshot: snapshotID}
	return invoke(ctx, c, "VerifyRepository", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.VerifyRepositoryResponse, error) {
			return ep.repositories.VerifyRepository(ctx, req, o...)
		})
}
