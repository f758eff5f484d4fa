package client

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// GCRunOption builds a GCRun call.
type GCRunOption struct {
	req *snapkeepv1.GCRunRequest
}

// NewGCRunOption runs a garbage collection now, with the orphan scan.
func NewGCRunOption() *GCRunOption { return &GCRunOption{req: &snapkeepv1.GCRunRequest{}} }

// WithDryRun plans only: nothing is deleted, every candidate is listed with its reason.
func (o *GCRunOption) WithDryRun() *GCRunOption {
	o.req.DryRun = true
	return o
}

// WithoutOrphanScan skips listing the whole storage root.
func (o *GCRunOption) WithoutOrphanScan() *GCRunOption {
	o.req.SkipOrphanScan = true
	return o
}

// WithGrace replaces, for this run, how long dropped segments and builds are kept.
func (o *GCRunOption) WithGrace(d time.Duration) *GCRunOption {
	ms := d.Milliseconds()
	o.req.GraceMs = &ms
	return o
}

// WithOrphanGrace replaces, for this run, how old an orphan must be to go.
func (o *GCRunOption) WithOrphanGrace(d time.Duration) *GCRunOption {
	ms := d.Milliseconds()
	o.req.OrphanGraceMs = &ms
	return o
}

// WithDropSnapshot, with WithDryRun, previews instead of collecting: what dropping the
// snapshot (together with any others given) would free. id 0 names it by database
// ("" for default), collection and name.
func (o *GCRunOption) WithDropSnapshot(database, collection, name string, id uint64) *GCRunOption {
	o.req.DropSnapshots = append(o.req.DropSnapshots, &snapkeepv1.SnapshotRef{Database: database, Collection: collection, Name: name, Id: id})
	return o
}

// GCRun runs a collection on the leader and returns its report and candidates. It is
// not retried on another node once started: a collection is not a write with a
// request id, though running it twice is harmless.
func (c *Client) GCRun(ctx context.Context, opt *GCRunOption) (*snapkeepv1.GCRunResponse, error) {
	if opt == nil {
		return nil, nilOption("GCRun")
	}
	req := clone(opt.req)
	return invoke(ctx, c, "GCRun", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.GCRunResponse, error) {
			return ep.gc.GCRun(ctx, req, o...)
		})
}

// GCStatus returns the last collection reports and when the next is due.
func (c *Client) GCStatus(ctx context.Context) (*snapkeepv1.GCStatusResponse, error) {
	return invoke(ctx, c, "GCStatus", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.GCStatusResponse, error) {
			return ep.gc.GCStatus(ctx, &snapkeepv1.GCStatusRequest{}, o...)
		})
}

// ReleaseForDeletionOption builds a ReleaseForDeletion call.
type ReleaseForDeletionOption struct {
	req *snapkeepv1.ReleaseForDeletionRequest
}

// NewReleaseForDeletionOption asks about nothing yet: add segments, builds and keys.
func NewReleaseForDeletionOption() *ReleaseForDeletionOption {
	return &ReleaseForDeletionOption{req: &snapkeepv1.ReleaseForDeletionRequest{}}
}

// WithSegments asks about whole segments (their files and their builds' files).
func (o *ReleaseForDeletionOption) WithSegments(ids ...uint64) *ReleaseForDeletionOption {
	o.req.SegmentIds = append(o.req.SegmentIds, ids...)
	return o
}

// WithBuild asks about one index build of a segment.
func (o *ReleaseForDeletionOption) WithBuild(segmentID, buildID uint64) *ReleaseForDeletionOption {
	o.req.Builds = append(o.req.Builds, &snapkeepv1.ReleaseBuild{SegmentId: segmentID, BuildId: buildID})
	return o
}

// WithKeys asks about single objects (full keys, under the storage root).
func (o *ReleaseForDeletionOption) WithKeys(keys ...string) *ReleaseForDeletionOption {
	o.req.Keys = append(o.req.Keys, keys...)
	return o
}

// ReleaseForDeletion is for an external collector (a system that runs its own GC, as
// Milvus does): it returns one verdict per item, in order (segments, builds, keys).
// Delete exactly what is answered Deletable: snapkeep has recorded the answer, so no
// snapshot will capture and no restore will read it afterwards. The rest is needed,
// Reason says by what. The call has a request id: a retry gets the same answer.
func (c *Client) ReleaseForDeletion(ctx context.Context, opt *ReleaseForDeletionOption) ([]*snapkeepv1.ReleaseVerdict, error) {
	if opt == nil {
		return nil, nilOption("ReleaseForDeletion")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "ReleaseForDeletion", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ReleaseForDeletionResponse, error) {
			return ep.gc.ReleaseForDeletion(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetVerdicts(), nil
}
