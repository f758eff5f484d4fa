package client

import (
	"context"
	"iter"
	"math"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// CreateCollectionOption builds a CreateCollection call.
type CreateCollectionOption struct {
	req *snapkeepv1.CreateCollectionRequest
}

// NewCreateCollectionOption creates the collection name in the "default" database,
// with a "_default" partition.
func NewCreateCollectionOption(name string) *CreateCollectionOption {
	return &CreateCollectionOption{req: &snapkeepv1.CreateCollectionRequest{Name: name}}
}

// WithDatabase creates the collection in database db instead of "default".
func (o *CreateCollectionOption) WithDatabase(db string) *CreateCollectionOption {
	o.req.Database = db
	return o
}

// WithSchema stores schema, opaque bytes of at most 1 MiB, with the collection.
func (o *CreateCollectionOption) WithSchema(schema []byte) *CreateCollectionOption {
	o.req.Schema = schema
	return o
}

// WithProperties sets every property in props (on top of those already set).
func (o *CreateCollectionOption) WithProperties(props map[string]string) *CreateCollectionOption {
	mergeProperties(&o.req.Properties, props)
	return o
}

// WithProperty sets the collection property key to value.
func (o *CreateCollectionOption) WithProperty(key, value string) *CreateCollectionOption {
	setProperty(&o.req.Properties, key, value)
	return o
}

// WithPartitions adds partitions to create besides "_default".
func (o *CreateCollectionOption) WithPartitions(names ...string) *CreateCollectionOption {
	o.req.Partitions = append(o.req.Partitions, names...)
	return o
}

// WithDescription sets the collection's free-text description (at most 4 KiB).
func (o *CreateCollectionOption) WithDescription(description string) *CreateCollectionOption {
	o.req.Description = description
	return o
}

// WithLayout chooses where the collection's files sit: snapkeepv1.KeyLayout_KEY_LAYOUT_SNAPKEEP
// (the default) or KEY_LAYOUT_MILVUS (Milvus's own keys). Fixed for the collection's
// life; its snapshots and restores keep it.
func (o *CreateCollectionOption) WithLayout(l snapkeepv1.KeyLayout) *CreateCollectionOption {
	o.req.Layout = l
	return o
}

// WithVerifyOnFlush makes every flush of the collection list the bucket first and be
// refused unless every file is there with its size.
func (o *CreateCollectionOption) WithVerifyOnFlush() *CreateCollectionOption {
	o.req.VerifyOnFlush = true
	return o
}

// WithIDs gives the collection and its partitions the caller's ids (Milvus's
// allocator): partitionIDs holds "_default"'s first, then one per WithPartitions name,
// in order (none: snapkeep allocates the partitions'). Each id must be unused by any
// other object of its kind (ErrAlreadyExists); 0 leaves an id to snapkeep.
func (o *CreateCollectionOption) WithIDs(collectionID uint64, partitionIDs ...uint64) *CreateCollectionOption {
	o.req.CollectionId = collectionID
	o.req.PartitionIds = partitionIDs
	return o
}

// CreateCollection creates a collection and returns it. A taken name gives
// ErrAlreadyExists; an unknown database ErrNotFound.
func (c *Client) CreateCollection(ctx context.Context, opt *CreateCollectionOption) (*snapkeepv1.Collection, error) {
	if opt == nil {
		return nil, nilOption("CreateCollection")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "CreateCollection", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.CreateCollectionResponse, error) {
			return ep.catalog.CreateCollection(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetCollection(), nil
}

// DropCollectionOption builds a DropCollection call.
type DropCollectionOption struct {
	req *snapkeepv1.DropCollectionRequest
}

// NewDropCollectionOption drops the collection name of the "default" database.
func NewDropCollectionOption(name string) *DropCollectionOption {
	return &DropCollectionOption{req: &snapkeepv1.DropCollectionRequest{Name: name}}
}

// WithDatabase names the collection's database (default "default").
func (o *DropCollectionOption) WithDatabase(db string) *DropCollectionOption {
	o.req.Database = db
	return o
}

// DropCollection drops a collection, marks its segments dropped and returns its final
// record. The name is free again at once.
func (c *Client) DropCollection(ctx context.Context, opt *DropCollectionOption) (*snapkeepv1.Collection, error) {
	if opt == nil {
		return nil, nilOption("DropCollection")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "DropCollection", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DropCollectionResponse, error) {
			return ep.catalog.DropCollection(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetCollection(), nil
}

// AlterCollectionOption builds an AlterCollection call.
type AlterCollectionOption struct {
	req *snapkeepv1.AlterCollectionRequest
}

// NewAlterCollectionOption alters the properties of the collection name of the
// "default" database.
func NewAlterCollectionOption(name string) *AlterCollectionOption {
	return &AlterCollectionOption{req: &snapkeepv1.AlterCollectionRequest{Name: name}}
}

// WithDatabase names the collection's database (default "default").
func (o *AlterCollectionOption) WithDatabase(db string) *AlterCollectionOption {
	o.req.Database = db
	return o
}

// WithProperty sets (adds or replaces) the property key.
func (o *AlterCollectionOption) WithProperty(key, value string) *AlterCollectionOption {
	setProperty(&o.req.SetProperties, key, value)
	return o
}

// WithProperties sets every property in props.
func (o *AlterCollectionOption) WithProperties(props map[string]string) *AlterCollectionOption {
	mergeProperties(&o.req.SetProperties, props)
	return o
}

// WithDeleteProperty deletes the property keys; absent keys are ignored.
func (o *AlterCollectionOption) WithDeleteProperty(keys ...string) *AlterCollectionOption {
	o.req.DeleteProperties = append(o.req.DeleteProperties, keys...)
	return o
}

// AlterCollection sets and deletes collection properties and returns the collection.
func (c *Client) AlterCollection(ctx context.Context, opt *AlterCollectionOption) (*snapkeepv1.Collection, error) {
	if opt == nil {
		return nil, nilOption("AlterCollection")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "AlterCollection", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.AlterCollectionResponse, error) {
			return ep.catalog.AlterCollection(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetCollection(), nil
}

// DescribeCollectionOption builds a DescribeCollection call.
type DescribeCollectionOption struct {
	req *snapkeepv1.DescribeCollectionRequest
}

// NewDescribeCollectionOption describes the collection name of the "default" database.
func NewDescribeCollectionOption(name string) *DescribeCollectionOption {
	return &DescribeCollectionOption{req: &snapkeepv1.DescribeCollectionRequest{Name: name}}
}

// WithDatabase names the collection's database (default "default").
func (o *DescribeCollectionOption) WithDatabase(db string) *DescribeCollectionOption {
	o.req.Database = db
	return o
}

// WithStale serves the read from any node's local state; see the package WithStale.
func (o *DescribeCollectionOption) WithStale() *DescribeCollectionOption {
	o.req.Consistency, _ = consistency(true)
	return o
}

// DescribeCollection returns a live collection and a summary of its segments.
func (c *Client) DescribeCollection(ctx context.Context, opt *DescribeCollectionOption) (*snapkeepv1.DescribeCollectionResponse, error) {
	if opt == nil {
		return nil, nilOption("DescribeCollection")
	}
	req := clone(opt.req)
	return invoke(ctx, c, "DescribeCollection", readRoute(req.Consistency),
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DescribeCollectionResponse, error) {
			return ep.catalog.DescribeCollection(ctx, req, o...)
		})
}

// ListCollectionsOption builds a ListCollections call.
type ListCollectionsOption struct {
	req *snapkeepv1.ListCollectionsRequest
}

// NewListCollectionsOption lists the live collections of the "default" database.
func NewListCollectionsOption() *ListCollectionsOption {
	return &ListCollectionsOption{req: &snapkeepv1.ListCollectionsRequest{}}
}

// WithDatabase lists the collections of database db instead.
func (o *ListCollectionsOption) WithDatabase(db string) *ListCollectionsOption {
	o.req.Database = db
	return o
}

// WithSchema includes each collection's schema (up to 1 MiB each); left out by
// default to keep pages small.
func (o *ListCollectionsOption) WithSchema() *ListCollectionsOption {
	o.req.IncludeSchema = true
	return o
}

// WithPageSize sets how many collections one page holds at most (0: 100; at most
// 1,000). The server also ends a page before it passes 3 MiB.
func (o *ListCollectionsOption) WithPageSize(n int) *ListCollectionsOption {
	o.req.PageSize = uint32(min(max(n, 0), math.MaxUint32))
	return o
}

// WithPageToken continues a listing from a previous page's NextPageToken.
func (o *ListCollectionsOption) WithPageToken(token string) *ListCollectionsOption {
	o.req.PageToken = token
	return o
}

// WithStale serves the read from any node's local state; see the package WithStale.
func (o *ListCollectionsOption) WithStale() *ListCollectionsOption {
	o.req.Consistency, _ = consistency(true)
	return o
}

// ListCollections lists every live collection of a database, ordered by name, fetching
// page after page (from the option's page token, if any). ListCollectionsPage fetches
// one page; ListAllCollections iterates without holding them all.
func (c *Client) ListCollections(ctx context.Context, opt *ListCollectionsOption) ([]*snapkeepv1.Collection, error) {
	if opt == nil {
		opt = NewListCollectionsOption()
	}
	var out []*snapkeepv1.Collection
	for coll, err := range c.ListAllCollections(ctx, opt) {
		if err != nil {
			return nil, err
		}
		out = append(out, coll)
	}
	return out, nil
}

// ListCollectionsPage returns one page of a database's live collections.
func (c *Client) ListCollectionsPage(ctx context.Context, opt *ListCollectionsOption) (*snapkeepv1.ListCollectionsResponse, error) {
	if opt == nil {
		opt = NewListCollectionsOption()
	}
	return c.listCollectionsPage(ctx, clone(opt.req))
}

func (c *Client) listCollectionsPage(ctx context.Context, req *snapkeepv1.ListCollectionsRequest) (*snapkeepv1.ListCollectionsResponse, error) {
	return invoke(ctx, c, "ListCollections", readRoute(req.Consistency),
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ListCollectionsResponse, error) {
			return ep.catalog.ListCollections(ctx, req, o...)
		})
}

// ListAllCollections iterates over a database's live collections, a page at a time;
// see ListAllSegments for the error and early-stop behaviour.
func (c *Client) ListAllCollections(ctx context.Context, opt *ListCollectionsOption) iter.Seq2[*snapkeepv1.Collection, error] {
	if opt == nil {
		opt = NewListCollectionsOption()
	}
	return allPages(clone(opt.req),
		func(req *snapkeepv1.ListCollectionsRequest) (*snapkeepv1.ListCollectionsResponse, error) {
			return c.listCollectionsPage(ctx, req)
		},
		(*snapkeepv1.ListCollectionsResponse).GetCollections,
		func(req *snapkeepv1.ListCollectionsRequest, token string) { req.PageToken = token })
}

// CreatePartitionOption builds a CreatePartition call.
type CreatePartitionOption struct {
	req *snapkeepv1.CreatePartitionRequest
}

// NewCreatePartitionOption adds partition name to collection (of the "default"
// database).
func NewCreatePartitionOption(collection, name string) *CreatePartitionOption {
	return &CreatePartitionOption{req: &snapkeepv1.CreatePartitionRequest{Collection: collection, Name: name}}
}

// WithDatabase names the collection's database (default "default").
func (o *CreatePartitionOption) WithDatabase(db string) *CreatePartitionOption {
	o.req.Database = db
	return o
}

// WithID gives the partition the caller's id (Milvus's allocator), unused by any
// other partition; without it snapkeep allocates one.
func (o *CreatePartitionOption) WithID(id uint64) *CreatePartitionOption {
	o.req.PartitionId = id
	return o
}

// CreatePartition adds a partition and returns the collection.
func (c *Client) CreatePartition(ctx context.Context, opt *CreatePartitionOption) (*snapkeepv1.Collection, error) {
	if opt == nil {
		return nil, nilOption("CreatePartition")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "CreatePartition", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.CreatePartitionResponse, error) {
			return ep.catalog.CreatePartition(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetCollection(), nil
}

// DropPartitionOption builds a DropPartition call.
type DropPartitionOption struct {
	req *snapkeepv1.DropPartitionRequest
}

// NewDropPartitionOption drops partition name (never "_default") of collection (of the
// "default" database), and with it the partition's segments.
func NewDropPartitionOption(collection, name string) *DropPartitionOption {
	return &DropPartitionOption{req: &snapkeepv1.DropPartitionRequest{Collection: collection, Name: name}}
}

// WithDatabase names the collection's database (default "default").
func (o *DropPartitionOption) WithDatabase(db string) *DropPartitionOption {
	o.req.Database = db
	return o
}

// DropPartition removes a partition, drops its segments and returns the collection.
func (c *Client) DropPartition(ctx context.Context, opt *DropPartitionOption) (*snapkeepv1.Collection, error) {
	if opt == nil {
		return nil, nilOption("DropPartition")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "DropPartition", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DropPartitionResponse, error) {
			return ep.catalog.DropPartition(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetCollection(), nil
}

// CreateIndexOption builds a CreateIndex call.
type CreateIndexOption struct {
	req *snapkeepv1.CreateIndexRequest
}

// NewCreateIndexOption defines index name on schema field fieldID of collection (of
// the "default" database).
func NewCreateIndexOption(collection, name string, fieldID int64) *CreateIndexOption {
	return &CreateIndexOption{req: &snapkeepv1.CreateIndexRequest{Collection: collection, Name: name, FieldId: fieldID}}
}

// WithDatabase names the collection's database (default "default").
func (o *CreateIndexOption) WithDatabase(db string) *CreateIndexOption {
	o.req.Database = db
	return o
}

// WithID gives the index the caller's id, unused by any other index; without it
// snapkeep allocates one.
func (o *CreateIndexOption) WithID(id uint64) *CreateIndexOption {
	o.req.IndexId = id
	return o
}

// WithParams sets every index parameter in params (type, metric, ...; opaque to
// snapkeep), on top of those already set.
func (o *CreateIndexOption) WithParams(params map[string]string) *CreateIndexOption {
	mergeProperties(&o.req.Params, params)
	return o
}

// WithParam sets the index parameter key to value.
func (o *CreateIndexOption) WithParam(key, value string) *CreateIndexOption {
	setProperty(&o.req.Params, key, value)
	return o
}

// CreateIndex adds an index definition and returns the collection.
func (c *Client) CreateIndex(ctx context.Context, opt *CreateIndexOption) (*snapkeepv1.Collection, error) {
	if opt == nil {
		return nil, nilOption("CreateIndex")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "CreateIndex", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.CreateIndexResponse, error) {
			return ep.catalog.CreateIndex(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetCollection(), nil
}

// DropIndexOption builds a DropIndex call.
type DropIndexOption struct {
	req *snapkeepv1.DropIndexRequest
}

// NewDropIndexOption removes index name from collection (of the "default" database);
// the segments' builds of it are dropped.
func NewDropIndexOption(collection, name string) *DropIndexOption {
	return &DropIndexOption{req: &snapkeepv1.DropIndexRequest{Collection: collection, Name: name}}
}

// WithDatabase names the collection's database (default "default").
func (o *DropIndexOption) WithDatabase(db string) *DropIndexOption {
	o.req.Database = db
	return o
}

// DropIndex removes an index definition and returns the collection.
func (c *Client) DropIndex(ctx context.Context, opt *DropIndexOption) (*snapkeepv1.Collection, error) {
	if opt == nil {
		return nil, nilOption("DropIndex")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "DropIndex", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DropIndexResponse, error) {
			return ep.catalog.DropIndex(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetCollection(), nil
}
