package client

import (
	"context"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// FsckOption builds an Fsck call.
type FsckOption struct {
	req *snapkeepv1.FsckRequest
}

// NewFsckOption checks every collection, sizes only.
func NewFsckOption() *FsckOption { return &FsckOption{req: &snapkeepv1.FsckRequest{}} }

// WithCollection checks one collection of database ("" is "default").
func (o *FsckOption) WithCollection(database, collection string) *FsckOption {
	o.req.Database, o.req.Collection = database, collection
	return o
}

// WithDeep reads every data file back and compares its CRC-32C, at most
// bytesPerSecond (0: no limit) with concurrency reads in flight (0: the default, 8).
func (o *FsckOption) WithDeep(bytesPerSecond int64, concurrency uint32) *FsckOption {
	o.req.Deep, o.req.BytesPerSecond, o.req.Concurrency = true, bytesPerSecond, concurrency
	return o
}

// WithoutRepositories skips the registered repositories, which a check of every
// collection otherwise verifies too.
func (o *FsckOption) WithoutRepositories() *FsckOption {
	o.req.SkipRepositories = true
	return o
}

// Fsck cross-checks the catalog, the snapshots' manifests and the bucket; it writes
// nothing. A report with problems is not an error: see FsckResponse.Clean.
func (c *Client) Fsck(ctx context.Context, opt *FsckOption) (*snapkeepv1.FsckResponse, error) {
	if opt == nil {
		return nil, nilOption("Fsck")
	}
	req := clone(opt.req)
	return invoke(ctx, c, "Fsck", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.FsckResponse, error) {
			return ep.integrity.Fsck(ctx, req, o...)
		})
}

// VerifySnapshotOption builds a VerifySnapshot call.
type VerifySnapshotOption struct {
	req *snapkeepv1.VerifySnapshotRequest
}

// NewVerifySnapshotOption verifies collection's committed snapshot name (manifest and
// file sizes).
func NewVerifySnapshotOption(collection, name string) *VerifySnapshotOption {
	return &VerifySnapshotOption{req: &snapkeepv1.VerifySnapshotRequest{Collection: collection, Name: name}}
}

// NewVerifySnapshotByIDOption verifies the committed snapshot with this id.
func NewVerifySnapshotByIDOption(id uint64) *VerifySnapshotOption {
	return &VerifySnapshotOption{req: &snapkeepv1.VerifySnapshotRequest{Id: id}}
}

// WithDatabase names the collection's database (default "default").
func (o *VerifySnapshotOption) WithDatabase(db string) *VerifySnapshotOption {
	o.req.Database = db
	return o
}

// WithDeep reads every byte of the snapshot's files and compares their CRC-32C.
func (o *VerifySnapshotOption) WithDeep() *VerifySnapshotOption {
	o.req.Deep = true
	return o
}

// VerifySnapshot verifies a committed snapshot now as the scrubber does, repairs its
// manifest from the catalog if it can, and returns the snapshot with the verification
// recorded (Snapshot.Verification). Damage found is in the verification, not an error.
func (c *Client) VerifySnapshot(ctx context.Context, opt *VerifySnapshotOption) (*snapkeepv1.Snapshot, error) {
	if opt == nil {
		return nil, nilOption("VerifySnapshot")
	}
	req := clone(opt.req)
	resp, err := invoke(ctx, c, "VerifySnapshot", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.VerifySnapshotResponse, error) {
			return ep.integrity.VerifySnapshot(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetSnapshot(), nil
}
