package client

import (
	"context"
	"iter"
	"maps"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// ReadOption tunes a read that has no option builder of its own, such as
// ListDatabases.
type ReadOption func(*readSettings)

type readSettings struct {
	stale bool
}

// WithStale serves the read from whichever node answers, from its local state: faster
// and available without a leader, but possibly missing recent writes.
func WithStale() ReadOption {
	return func(s *readSettings) { s.stale = true }
}

// consistency turns the stale flag into the request field and the route.
func consistency(stale bool) (snapkeepv1.ReadConsistency, route) {
	if stale {
		return snapkeepv1.ReadConsistency_READ_CONSISTENCY_STALE, routeAny
	}
	return snapkeepv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED, routeLeader
}

// readRoute is the route for a request's consistency field.
func readRoute(c snapkeepv1.ReadConsistency) route {
	if c == snapkeepv1.ReadConsistency_READ_CONSISTENCY_STALE {
		return routeAny
	}
	return routeLeader
}

// clone copies a request so that a builder reused for several calls never shares a
// request id (or anything else) between them.
func clone[M proto.Message](m M) M {
	return proto.Clone(m).(M)
}

// setProperty adds k=v to *m, allocating the map on first use.
func setProperty(m *map[string]string, k, v string) {
	if *m == nil {
		*m = make(map[string]string)
	}
	(*m)[k] = v
}

// mergeProperties adds every entry of from to *m.
func mergeProperties(m *map[string]string, from map[string]string) {
	if len(from) == 0 {
		return
	}
	if *m == nil {
		*m = make(map[string]string, len(from))
	}
	maps.Copy(*m, from)
}

// CreateDatabaseOption builds a CreateDatabase call.
type CreateDatabaseOption struct {
	req *snapkeepv1.CreateDatabaseRequest
}

// NewCreateDatabaseOption creates the database name.
func NewCreateDatabaseOption(name string) *CreateDatabaseOption {
	return &CreateDatabaseOption{req: &snapkeepv1.CreateDatabaseRequest{Name: name}}
}

// WithProperty sets the database property key to value.
func (o *CreateDatabaseOption) WithProperty(key, value string) *CreateDatabaseOption {
	setProperty(&o.req.Properties, key, value)
	return o
}

// WithProperties sets every property in props (on top of those already set).
func (o *CreateDatabaseOption) WithProperties(props map[string]string) *CreateDatabaseOption {
	mergeProperties(&o.req.Properties, props)
	return o
}

// CreateDatabase creates a database and returns it. A taken name gives
// ErrAlreadyExists.
func (c *Client) CreateDatabase(ctx context.Context, opt *CreateDatabaseOption) (*snapkeepv1.Database, error) {
	if opt == nil {
		return nil, nilOption("CreateDatabase")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	resp, err := invoke(ctx, c, "CreateDatabase", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.CreateDatabaseResponse, error) {
			return ep.catalog.CreateDatabase(ctx, req, o...)
		})
	if err != nil {
		return nil, err
	}
	return resp.GetDatabase(), nil
}

// DropDatabaseOption builds a DropDatabase call.
type DropDatabaseOption struct {
	req *snapkeepv1.DropDatabaseRequest
}

// NewDropDatabaseOption drops the database name, which must have no live collections.
func NewDropDatabaseOption(name string) *DropDatabaseOption {
	return &DropDatabaseOption{req: &snapkeepv1.DropDatabaseRequest{Name: name}}
}

// DropDatabase drops an empty database.
func (c *Client) DropDatabase(ctx context.Context, opt *DropDatabaseOption) error {
	if opt == nil {
		return nilOption("DropDatabase")
	}
	req := clone(opt.req)
	req.RequestId = requestID(ctx)
	_, err := invoke(ctx, c, "DropDatabase", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.DropDatabaseResponse, error) {
			return ep.catalog.DropDatabase(ctx, req, o...)
		})
	return err
}

// ListDatabases lists every database, ordered by name, fetching page after page.
func (c *Client) ListDatabases(ctx context.Context, opts ...ReadOption) ([]*snapkeepv1.Database, error) {
	var out []*snapkeepv1.Database
	for db, err := range c.ListAllDatabases(ctx, opts...) {
		if err != nil {
			return nil, err
		}
		out = append(out, db)
	}
	return out, nil
}

// ListDatabasesPage returns one page of databases: at most pageSize (0: 100; at most
// 1,000) after pageToken (a previous page's NextPageToken; "" for the first page).
func (c *Client) ListDatabasesPage(ctx context.Context, pageSize int, pageToken string, opts ...ReadOption) (*snapkeepv1.ListDatabasesResponse, error) {
	req := listDatabasesRequest(opts)
	req.PageSize = uint32(min(max(pageSize, 0), math.MaxUint32))
	req.PageToken = pageToken
	return c.listDatabasesPage(ctx, req)
}

// ListAllDatabases iterates over every database, a page at a time; see ListAllSegments
// for the error and early-stop behaviour.
func (c *Client) ListAllDatabases(ctx context.Context, opts ...ReadOption) iter.Seq2[*snapkeepv1.Database, error] {
	return allPages(listDatabasesRequest(opts),
		func(req *snapkeepv1.ListDatabasesRequest) (*snapkeepv1.ListDatabasesResponse, error) {
			return c.listDatabasesPage(ctx, req)
		},
		(*snapkeepv1.ListDatabasesResponse).GetDatabases,
		func(req *snapkeepv1.ListDatabasesRequest, token string) { req.PageToken = token })
}

func listDatabasesRequest(opts []ReadOption) *snapkeepv1.ListDatabasesRequest {
	var s readSettings
	for _, o := range opts {
		o(&s)
	}
	cons, _ := consistency(s.stale)
	return &snapkeepv1.ListDatabasesRequest{Consistency: cons}
}

func (c *Client) listDatabasesPage(ctx context.Context, req *snapkeepv1.ListDatabasesRequest) (*snapkeepv1.ListDatabasesResponse, error) {
	return invoke(ctx, c, "ListDatabases", readRoute(req.Consistency),
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ListDatabasesResponse, error) {
			return ep.catalog.ListDatabases(ctx, req, o...)
		})
}
