package client

import (
	"context"
	"iter"
	"math"
	"time"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// leaseMillis converts a lease to the wire's milliseconds, rounding a positive
// sub-millisecond lease up so that it does not turn into "server default".
func leaseMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(d.Milliseconds(), 1)
}

// AllocateSegmentOption builds an AllocateSegment call.
type AllocateSegmentOption struct {
	req *snapkeepv1.AllocateSegmentRequest
}

// NewAllocateSegmentOption reserves a new segment in the "_default" partition of
// collection (of the "default" database).
func NewAllocateSegmentOption(collection string) *AllocateSegmentOption {
	return &AllocateSegmentOption{req: &snapkeepv1.AllocateSegmentRequest{Collection: collection}}
}

// WithDatabase names the collection's database (default "default").
func (o *AllocateSegmentOption) WithDatabase(db string) *AllocateSegmentOption {
	o.req.Database = db
	return o
}

// WithPartition allocates the segment in partition p instead of "_default".
func (o *AllocateSegmentOption) WithPartition(p string) *AllocateSegmentOption {
	o.req.Partition = p
	return o
}

// WithID gives the segment the caller's id (Milvus's allocator), unused by any other
// segment (ErrAlreadyExists); without it snapkeep allocates one.
func (o *AllocateSegmentOption) WithID(id uint64) *AllocateSegmentOption {
	o.req.SegmentId = id
	return o
}

// WithLease sets how long the writer has to upload and flush (0: the server default,
// one hour; at most seven days).
func (o *AllocateSegmentOption) WithLease(d time.Duration) *AllocateSegmentOption {
	o.req.LeaseMs = leaseMillis(d)
	return o
}

// AllocateSegment reserves a segment and returns it in state ALLOCATED, with the key
// prefix (Segment.Prefix) its files must be uploaded under and its lease deadline.
func (c *Client) AllocateSegment(ctx context.Context, opt *AllocateSegmentOption) (*snapkeepv1.Segment, error) {
	if opt == nil {
		return nil, nilOption("AllocateSegment")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "AllocateSegment", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.AllocateSegmentResponse, error) {
			return ep.catalog.AllocateSegment(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSegment(), nil
}

// FlushSegmentOption builds a FlushSegment call.
type FlushSegmentOption struct {
	req *snapkeepv1.FlushSegmentRequest
}

// NewFlushSegmentOption seals the allocated segment segmentID.
func NewFlushSegmentOption(segmentID uint64) *FlushSegmentOption {
	return &FlushSegmentOption{req: &snapkeepv1.FlushSegmentRequest{SegmentId: segmentID}}
}

// WithMeta records the vector database's metadata of the segment (Milvus's level,
// channel, start and DML positions, storage version, sorted flag), kept exactly,
// carried in snapshots and given to restored copies.
func (o *FlushSegmentOption) WithMeta(meta *snapkeepv1.SegmentMeta) *FlushSegmentOption {
	o.req.Meta = meta
	return o
}

// WithVerify has the server list the segment's prefixes first and refuse the flush
// (ErrFailedPrecondition, naming the keys) unless every file is there with its size.
func (o *FlushSegmentOption) WithVerify() *FlushSegmentOption {
	o.req.VerifyFiles = true
	return o
}

// WithRowCount records the segment's number of rows.
func (o *FlushSegmentOption) WithRowCount(n int64) *FlushSegmentOption {
	o.req.RowCount = n
	return o
}

// WithFiles adds files to the segment's file list: full keys under the segment's
// prefix, kinds insert, delta, stats or bm25.
func (o *FlushSegmentOption) WithFiles(files ...*snapkeepv1.File) *FlushSegmentOption {
	o.req.Files = append(o.req.Files, files...)
	return o
}

// FlushSegment seals an allocated segment with its final file list and returns it.
func (c *Client) FlushSegment(ctx context.Context, opt *FlushSegmentOption) (*snapkeepv1.Segment, error) {
	if opt == nil {
		return nil, nilOption("FlushSegment")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "FlushSegment", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.FlushSegmentResponse, error) {
			return ep.catalog.FlushSegment(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSegment(), nil
}

// AllocateIndexBuildOption builds an AllocateIndexBuild call.
type AllocateIndexBuildOption struct {
	req *snapkeepv1.AllocateIndexBuildRequest
}

// NewAllocateIndexBuildOption reserves a build of the collection's index indexName for
// the flushed segment segmentID.
func NewAllocateIndexBuildOption(segmentID uint64, indexName string) *AllocateIndexBuildOption {
	return &AllocateIndexBuildOption{req: &snapkeepv1.AllocateIndexBuildRequest{SegmentId: segmentID, Index: indexName}}
}

// WithID gives the build the caller's id, unused by any other index build
// (ErrAlreadyExists); without it snapkeep allocates one.
func (o *AllocateIndexBuildOption) WithID(id uint64) *AllocateIndexBuildOption {
	o.req.BuildId = id
	return o
}

// WithLease sets how long the builder has to upload and add the build (0: the server
// default, one hour).
func (o *AllocateIndexBuildOption) WithLease(d time.Duration) *AllocateIndexBuildOption {
	o.req.LeaseMs = leaseMillis(d)
	return o
}

// AllocateIndexBuild reserves an index build; the response holds the segment and the
// new build (state ALLOCATED) with the prefix its files must be uploaded under.
func (c *Client) AllocateIndexBuild(ctx context.Context, opt *AllocateIndexBuildOption) (*snapkeepv1.AllocateIndexBuildResponse, error) {
	if opt == nil {
		return nil, nilOption("AllocateIndexBuild")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	return invoke(ctx, c, "AllocateIndexBuild", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.AllocateIndexBuildResponse, error) {
			return ep.catalog.AllocateIndexBuild(ctx, req, o...)
		})
}

// AddIndexBuildOption builds an AddIndexBuild call.
type AddIndexBuildOption struct {
	req *snapkeepv1.AddIndexBuildRequest
}

// NewAddIndexBuildOption completes the allocated build buildID of segment segmentID.
func NewAddIndexBuildOption(segmentID, buildID uint64) *AddIndexBuildOption {
	return &AddIndexBuildOption{req: &snapkeepv1.AddIndexBuildRequest{SegmentId: segmentID, BuildId: buildID}}
}

// WithFiles adds files to the build: full keys under the build's prefix, kind index.
func (o *AddIndexBuildOption) WithFiles(files ...*snapkeepv1.File) *AddIndexBuildOption {
	o.req.Files = append(o.req.Files, files...)
	return o
}

// AddIndexBuild completes an index build and returns the segment.
func (c *Client) AddIndexBuild(ctx context.Context, opt *AddIndexBuildOption) (*snapkeepv1.Segment, error) {
	if opt == nil {
		return nil, nilOption("AddIndexBuild")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "AddIndexBuild", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.AddIndexBuildResponse, error) {
			return ep.catalog.AddIndexBuild(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSegment(), nil
}

// CompactSegmentsOption builds a CompactSegments call.
type CompactSegmentsOption struct {
	req *snapkeepv1.CompactSegmentsRequest
}

// NewCompactSegmentsOption replaces the flushed segments inputs (of one collection).
// Without any WithOutput the inputs compact to nothing (every row was deleted).
func NewCompactSegmentsOption(inputs ...uint64) *CompactSegmentsOption {
	return &CompactSegmentsOption{req: &snapkeepv1.CompactSegmentsRequest{Inputs: inputs}}
}

// WithOutput adds an output segment: one allocated beforehand with AllocateSegment in
// the inputs' collection, its files uploaded under its prefix.
func (o *CompactSegmentsOption) WithOutput(segmentID uint64, rowCount int64, files ...*snapkeepv1.File) *CompactSegmentsOption {
	o.req.Outputs = append(o.req.Outputs, &snapkeepv1.CompactOutput{SegmentId: segmentID, RowCount: rowCount, Files: files})
	return o
}

// WithOutputMeta records the metadata of an output added with WithOutput.
func (o *CompactSegmentsOption) WithOutputMeta(segmentID uint64, meta *snapkeepv1.SegmentMeta) *CompactSegmentsOption {
	for _, out := range o.req.Outputs {
		if out.SegmentId == segmentID {
			out.Meta = meta
		}
	}
	return o
}

// CompactSegments atomically drops the inputs and flushes the outputs, recording the
// lineage both ways. It returns the inputs (now dropped) followed by the outputs (now
// flushed).
func (c *Client) CompactSegments(ctx context.Context, opt *CompactSegmentsOption) ([]*snapkeepv1.Segment, error) {
	if opt == nil {
		return nil, nilOption("CompactSegments")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "CompactSegments", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.CompactSegmentsResponse, error) {
			return ep.catalog.CompactSegments(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSegments(), nil
}

// DropSegmentsOption builds a DropSegments call.
type DropSegmentsOption struct {
	req *snapkeepv1.DropSegmentsRequest
}

// NewDropSegmentsOption marks the segments ids dropped.
func NewDropSegmentsOption(ids ...uint64) *DropSegmentsOption {
	return &DropSegmentsOption{req: &snapkeepv1.DropSegmentsRequest{SegmentIds: ids}}
}

// DropSegments marks segments dropped and returns them. Dropping a dropped segment
// changes nothing.
func (c *Client) DropSegments(ctx context.Context, opt *DropSegmentsOption) ([]*snapkeepv1.Segment, error) {
	if opt == nil {
		return nil, nilOption("DropSegments")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "DropSegments", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DropSegmentsResponse, error) {
			return ep.catalog.DropSegments(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSegments(), nil
}

// GetSegmentOption builds a GetSegment call.
type GetSegmentOption struct {
	req *snapkeepv1.GetSegmentRequest
}

// NewGetSegmentOption reads segment id.
func NewGetSegmentOption(id uint64) *GetSegmentOption {
	return &GetSegmentOption{req: &snapkeepv1.GetSegmentRequest{SegmentId: id}}
}

// WithStale serves the read from any node's local state; see the package WithStale.
func (o *GetSegmentOption) WithStale() *GetSegmentOption {
	o.req.Consistency, _ = consistency(true)
	return o
}

// GetSegment returns one segment with its files and index builds.
func (c *Client) GetSegment(ctx context.Context, opt *GetSegmentOption) (*snapkeepv1.Segment, error) {
	if opt == nil {
		return nil, nilOption("GetSegment")
	}
	req := clone(opt.req)
	resp, err := invoke(ctx, c, "GetSegment", readRoute(req.Consistency),
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.GetSegmentResponse, error) {
			return ep.catalog.GetSegment(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSegment(), nil
}

// ListSegmentsOption builds a ListSegments or ListAllSegments call.
type ListSegmentsOption struct {
	req *snapkeepv1.ListSegmentsRequest
}

// NewListSegmentsOption lists the segments of collection (of the "default" database),
// in every partition and state, with their files, ordered by id.
func NewListSegmentsOption(collection string) *ListSegmentsOption {
	return &ListSegmentsOption{req: &snapkeepv1.ListSegmentsRequest{Collection: collection}}
}

// WithDatabase names the collection's database (default "default").
func (o *ListSegmentsOption) WithDatabase(db string) *ListSegmentsOption {
	o.req.Database = db
	return o
}

// WithPartition lists only the segments of partition p.
func (o *ListSegmentsOption) WithPartition(p string) *ListSegmentsOption {
	o.req.Partition = p
	return o
}

// WithStates lists only segments in one of states (adding to earlier WithStates).
func (o *ListSegmentsOption) WithStates(states ...snapkeepv1.SegmentState) *ListSegmentsOption {
	o.req.States = append(o.req.States, states...)
	return o
}

// WithPageSize sets how many segments one page holds (0: the server default, 1000;
// at most 10,000).
func (o *ListSegmentsOption) WithPageSize(n int) *ListSegmentsOption {
	o.req.PageSize = uint32(min(max(n, 0), math.MaxUint32))
	return o
}

// WithPageToken continues a listing from a previous page's NextPageToken.
func (o *ListSegmentsOption) WithPageToken(token string) *ListSegmentsOption {
	o.req.PageToken = token
	return o
}

// WithoutFiles leaves out file lists and index builds (faster for large listings).
func (o *ListSegmentsOption) WithoutFiles() *ListSegmentsOption {
	o.req.WithoutFiles = true
	return o
}

// WithStale serves the read from any node's local state; see the package WithStale.
// Each page may then come from a different node.
func (o *ListSegmentsOption) WithStale() *ListSegmentsOption {
	o.req.Consistency, _ = consistency(true)
	return o
}

// ListSegments returns one page of a collection's segments; the response's
// NextPageToken, empty on the last page, continues the listing via WithPageToken.
func (c *Client) ListSegments(ctx context.Context, opt *ListSegmentsOption) (*snapkeepv1.ListSegmentsResponse, error) {
	if opt == nil {
		return nil, nilOption("ListSegments")
	}
	return c.listSegmentsPage(ctx, clone(opt.req))
}

func (c *Client) listSegmentsPage(ctx context.Context, req *snapkeepv1.ListSegmentsRequest) (*snapkeepv1.ListSegmentsResponse, error) {
	return invoke(ctx, c, "ListSegments", readRoute(req.Consistency),
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ListSegmentsResponse, error) {
			return ep.catalog.ListSegments(ctx, req, o...)
		})
}

// ListAllSegments iterates over every segment the listing selects, fetching one page
// at a time (each page with the client's retry policy) from opt's page token onwards:
//
//	for seg, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption("docs")) {
//		if err != nil {
//			return err
//		}
//		...
//	}
//
// A failed page yields (nil, err) once and ends the iteration. Stopping the loop early
// fetches no further pages.
func (c *Client) ListAllSegments(ctx context.Context, opt *ListSegmentsOption) iter.Seq2[*snapkeepv1.Segment, error] {
	if opt == nil {
		return failedIteration[*snapkeepv1.Segment](nilOption("ListAllSegments"))
	}
	return allPages(clone(opt.req),
		func(req *snapkeepv1.ListSegmentsRequest) (*snapkeepv1.ListSegmentsResponse, error) {
			return c.listSegmentsPage(ctx, req)
		},
		(*snapkeepv1.ListSegmentsResponse).GetSegments,
		func(req *snapkeepv1.ListSegmentsRequest, token string) { req.PageToken = token })
}

// RegisterSegments registers segments whose files are already in the bucket (data
// another system wrote: adoption) as flushed, with their ids, in one Raft entry per
// call (at most 1,000 segments): all or nothing. Keys are full keys, checked against
// the collection's layout as at flush.
func (c *Client) RegisterSegments(ctx context.Context, database, collection string, segments []*snapkeepv1.RegisteredSegment) ([]*snapkeepv1.Segment, error) {
	return c.RegisterSegmentsWithBuilds(ctx, database, collection, segments, nil)
}

// RegisterSegmentsWithBuilds is RegisterSegments with ready index builds whose files
// are already in the bucket (at most 4,000 per call), registered after the segments in
// the same Raft entry: each on a flushed segment of the collection, of this call or
// registered before, with the caller's build id and the id of one of the
// collection's indexes, its full keys under the build's prefix. A segment holds at
// most one allocated or ready build per index. All or nothing. The result lists the
// registered segments, then those registered before that took builds.
func (c *Client) RegisterSegmentsWithBuilds(ctx context.Context, database, collection string, segments []*snapkeepv1.RegisteredSegment, builds []*snapkeepv1.RegisteredBuild) ([]*snapkeepv1.Segment, error) {
	req := &snapkeepv1.RegisterSegmentsRequest{RequestId: requestID(ctx), Database: database, Collection: collection, Segments: segments, Builds: builds}
	resp, err := invoke(ctx, c, "RegisterSegments", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.RegisterSegmentsResponse, error) {
			return ep.catalog.RegisterSegments(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSegments(), nil
}
