package client

import (
	"context"
	"iter"
	"math"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// CreateSnapshotOption builds a CreateSnapshot call.
type CreateSnapshotOption struct {
	req *snapkeepv1.CreateSnapshotRequest
}

// NewCreateSnapshotOption snapshots collection (of the "default" database) under name.
func NewCreateSnapshotOption(collection, name string) *CreateSnapshotOption {
	return &CreateSnapshotOption{req: &snapkeepv1.CreateSnapshotRequest{Collection: collection, Name: name}}
}

// WithDatabase names the collection's database (default "default").
func (o *CreateSnapshotOption) WithDatabase(db string) *CreateSnapshotOption {
	o.req.Database = db
	return o
}

// WithDescription sets free text describing the snapshot (up to 4 KiB).
func (o *CreateSnapshotOption) WithDescription(description string) *CreateSnapshotOption {
	o.req.Description = description
	return o
}

// WithLabels adds labels (merged with earlier ones), for filtering ListSnapshots.
func (o *CreateSnapshotOption) WithLabels(labels map[string]string) *CreateSnapshotOption {
	mergeProperties(&o.req.Labels, labels)
	return o
}

// WithLabel adds one label.
func (o *CreateSnapshotOption) WithLabel(key, value string) *CreateSnapshotOption {
	setProperty(&o.req.Labels, key, value)
	return o
}

// WithAsync returns as soon as the snapshot is captured (PENDING); the cluster
// finishes it in the background. Without it, CreateSnapshot returns once the snapshot
// is COMMITTED.
func (o *CreateSnapshotOption) WithAsync() *CreateSnapshotOption {
	o.req.Async = true
	return o
}

// CreateSnapshot captures a collection and returns the snapshot: COMMITTED, or PENDING
// with WithAsync. If the call times out while the snapshot is pending, the cluster
// still finishes it; DescribeSnapshot tells how it ended.
func (c *Client) CreateSnapshot(ctx context.Context, opt *CreateSnapshotOption) (*snapkeepv1.Snapshot, error) {
	if opt == nil {
		return nil, nilOption("CreateSnapshot")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "CreateSnapshot", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.CreateSnapshotResponse, error) {
			return ep.snapshots.CreateSnapshot(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSnapshot(), nil
}

// DropSnapshotOption builds a DropSnapshot call.
type DropSnapshotOption struct {
	req *snapkeepv1.DropSnapshotRequest
}

// NewDropSnapshotOption drops snapshot name of collection (of the "default" database).
func NewDropSnapshotOption(collection, name string) *DropSnapshotOption {
	return &DropSnapshotOption{req: &snapkeepv1.DropSnapshotRequest{Collection: collection, Name: name}}
}

// WithDatabase names the collection's database (default "default").
func (o *DropSnapshotOption) WithDatabase(db string) *DropSnapshotOption {
	o.req.Database = db
	return o
}

// DropSnapshot drops a snapshot. Dropping one that does not exist succeeds; the
// response's Existed says which happened.
func (c *Client) DropSnapshot(ctx context.Context, opt *DropSnapshotOption) (*snapkeepv1.DropSnapshotResponse, error) {
	if opt == nil {
		return nil, nilOption("DropSnapshot")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	return invoke(ctx, c, "DropSnapshot", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DropSnapshotResponse, error) {
			return ep.snapshots.DropSnapshot(ctx, req, o...)
		})
}

// DescribeSnapshotOption builds a DescribeSnapshot call.
type DescribeSnapshotOption struct {
	req *snapkeepv1.DescribeSnapshotRequest
}

// NewDescribeSnapshotOption describes snapshot name of collection (of the "default"
// database). After the collection is dropped its snapshots are still found this way.
func NewDescribeSnapshotOption(collection, name string) *DescribeSnapshotOption {
	return &DescribeSnapshotOption{req: &snapkeepv1.DescribeSnapshotRequest{Collection: collection, Name: name}}
}

// NewDescribeSnapshotByIDOption describes a snapshot by id, in any state.
func NewDescribeSnapshotByIDOption(id uint64) *DescribeSnapshotOption {
	return &DescribeSnapshotOption{req: &snapkeepv1.DescribeSnapshotRequest{Id: id}}
}

// WithDatabase names the collection's database (default "default").
func (o *DescribeSnapshotOption) WithDatabase(db string) *DescribeSnapshotOption {
	o.req.Database = db
	return o
}

// WithStale serves the read from any node's local state; see the package WithStale.
func (o *DescribeSnapshotOption) WithStale() *DescribeSnapshotOption {
	o.req.Consistency, _ = consistency(true)
	return o
}

// DescribeSnapshot returns a snapshot with everything it captured.
func (c *Client) DescribeSnapshot(ctx context.Context, opt *DescribeSnapshotOption) (*snapkeepv1.Snapshot, error) {
	if opt == nil {
		return nil, nilOption("DescribeSnapshot")
	}
	req := clone(opt.req)
	resp, err := invoke(ctx, c, "DescribeSnapshot", readRoute(req.Consistency),
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DescribeSnapshotResponse, error) {
			return ep.snapshots.DescribeSnapshot(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSnapshot(), nil
}

// ListSnapshotsOption builds a ListSnapshots or ListAllSnapshots call.
type ListSnapshotsOption struct {
	req *snapkeepv1.ListSnapshotsRequest
}

// NewListSnapshotsOption lists the snapshots of the "default" database in creation
// order.
func NewListSnapshotsOption() *ListSnapshotsOption {
	return &ListSnapshotsOption{req: &snapkeepv1.ListSnapshotsRequest{}}
}

// WithDatabase lists the snapshots of database db.
func (o *ListSnapshotsOption) WithDatabase(db string) *ListSnapshotsOption {
	o.req.Database = db
	return o
}

// WithCollection lists only snapshots of collections named collection (dropped ones
// included).
func (o *ListSnapshotsOption) WithCollection(collection string) *ListSnapshotsOption {
	o.req.Collection = collection
	return o
}

// WithStates lists only snapshots in one of states (adding to earlier WithStates).
func (o *ListSnapshotsOption) WithStates(states ...snapkeepv1.SnapshotState) *ListSnapshotsOption {
	o.req.States = append(o.req.States, states...)
	return o
}

// WithLabel lists only snapshots carrying label key=value (every WithLabel must match).
func (o *ListSnapshotsOption) WithLabel(key, value string) *ListSnapshotsOption {
	setProperty(&o.req.Labels, key, value)
	return o
}

// WithPageSize sets how many snapshots one page holds (0: the server default, 100; at
// most 1,000).
func (o *ListSnapshotsOption) WithPageSize(n int) *ListSnapshotsOption {
	o.req.PageSize = uint32(min(max(n, 0), math.MaxUint32))
	return o
}

// WithPageToken continues a listing from a previous page's NextPageToken.
func (o *ListSnapshotsOption) WithPageToken(token string) *ListSnapshotsOption {
	o.req.PageToken = token
	return o
}

// WithSchema includes what each snapshot captured (schema, properties, partitions,
// index definitions); left out by default to keep pages small.
func (o *ListSnapshotsOption) WithSchema() *ListSnapshotsOption {
	o.req.IncludeSchema = true
	return o
}

// WithStale serves the read from any node's local state; see the package WithStale.
func (o *ListSnapshotsOption) WithStale() *ListSnapshotsOption {
	o.req.Consistency, _ = consistency(true)
	return o
}

// ListSnapshots returns one page of snapshots (without their schemas); the response's
// NextPageToken, empty on the last page, continues the listing via WithPageToken.
func (c *Client) ListSnapshots(ctx context.Context, opt *ListSnapshotsOption) (*snapkeepv1.ListSnapshotsResponse, error) {
	if opt == nil {
		return nil, nilOption("ListSnapshots")
	}
	return c.listSnapshotsPage(ctx, clone(opt.req))
}

func (c *Client) listSnapshotsPage(ctx context.Context, req *snapkeepv1.ListSnapshotsRequest) (*snapkeepv1.ListSnapshotsResponse, error) {
	return invoke(ctx, c, "ListSnapshots", readRoute(req.Consistency),
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ListSnapshotsResponse, error) {
			return ep.snapshots.ListSnapshots(ctx, req, o...)
		})
}

// ListAllSnapshots iterates over every snapshot the listing selects, a page at a time;
// see ListAllSegments for the error and early-stop behaviour.
func (c *Client) ListAllSnapshots(ctx context.Context, opt *ListSnapshotsOption) iter.Seq2[*snapkeepv1.Snapshot, error] {
	if opt == nil {
		return failedIteration[*snapkeepv1.Snapshot](nilOption("ListAllSnapshots"))
	}
	return allPages(clone(opt.req),
		func(req *snapkeepv1.ListSnapshotsRequest) (*snapkeepv1.ListSnapshotsResponse, error) {
			return c.listSnapshotsPage(ctx, req)
		},
		(*snapkeepv1.ListSnapshotsResponse).GetSnapshots,
		func(req *snapkeepv1.ListSnapshotsRequest, token string) { req.PageToken = token })
}
