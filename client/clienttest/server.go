// Package clienttest provides in-memory fakes for testing code that uses the snapkeep
// client: a one-node fake of the gRPC API and an in-memory object store.
//
// The fake Server keeps a plausible catalog (databases, collections, partitions,
// indexes, segments and their lineage) with the server's conventions: every response
// names the leader in the snapkeep-leader header, writes are deduplicated by
// request_id, reads ignore consistency. It checks what tests of clients need (names
// exist, states, keys under prefixes) and nothing more: it is not the real state
// machine, so never use it to test the server's rules.
package clienttest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

const (
	defaultDatabase  = "default"
	defaultPartition = "_default"
	leaderKey        = "snapkeep-leader"
)

// Options configure a fake Server.
type Options struct {
	// NodeID names the node in ClusterStatus (default "node1").
	NodeID string
	// Storage is what ClusterStatus reports (default: endpoint http://127.0.0.1:9000,
	// bucket "snapkeep", root "snapkeep", path style).
	Storage *snapkeepv1.StorageInfo
}

// Call is one RPC the fake received, in arrival order.
type Call struct {
	Method    string // e.g. "CreateCollection"
	RequestID string // "" for reads
	Request   proto.Message
}

// Interceptor runs before the fake handles a call. A non-nil error is answered
// instead (use status.Error for a code); ctx can be used with grpc.SetHeader and
// grpc.SetTrailer.
type Interceptor func(ctx context.Context, method string, req proto.Message) error

// Server is a fake snapkeep node listening on 127.0.0.1. Its methods are safe for
// concurrent use.
type Server struct {
	snapkeepv1.UnimplementedCatalogServer
	snapkeepv1.UnimplementedClusterServer

	addr   string
	srv    *grpc.Server
	nodeID string

	mu          sync.Mutex
	storage     *snapkeepv1.StorageInfo
	leader      string
	intercept   Interceptor
	calls       []Call
	results     map[string]proto.Message // write responses by request id
	nextID      uint64
	databases   map[string]*snapkeepv1.Database
	collections map[uint64]*snapkeepv1.Collection
	segments    map[uint64]*snapkeepv1.Segment
}

// Start starts a fake server on a free loopback port; it stops when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Listen(opts)
	if err != nil {
		tb.Fatalf("clienttest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Listen starts a fake server on a free loopback port. Stop it with Stop.
func Listen(opts Options) (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &Server{
		addr:        lis.Addr().String(),
		nodeID:      opts.NodeID,
		storage:     opts.Storage,
		results:     make(map[string]proto.Message),
		databases:   make(map[string]*snapkeepv1.Database),
		collections: make(map[uint64]*snapkeepv1.Collection),
		segments:    make(map[uint64]*snapkeepv1.Segment),
	}
	if s.nodeID == "" {
		s.nodeID = "node1"
	}
	if s.storage == nil {
		s.storage = &snapkeepv1.StorageInfo{Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", Bucket: "snapkeep", Root: "snapkeep", PathStyle: true}
	}
	s.leader = s.addr
	s.databases[defaultDatabase] = &snapkeepv1.Database{Id: s.newID(), Name: defaultDatabase, CreatedAtUnixMs: nowMs()}
	s.srv = grpc.NewServer(grpc.UnaryInterceptor(s.interceptor))
	snapkeepv1.RegisterCatalogServer(s.srv, s)
	snapkeepv1.RegisterClusterServer(s.srv, s)
	go func() { _ = s.srv.Serve(lis) }()
	return s, nil
}

// Addr is the server's gRPC address, "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// Stop stops the server at once, failing calls in flight.
func (s *Server) Stop() { s.srv.Stop() }

// SetStorage changes what ClusterStatus reports as the cluster's storage.
func (s *Server) SetStorage(info *snapkeepv1.StorageInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.storage = info
}

// SetLeader changes the address the server names in the snapkeep-leader header of
// every response (its own by default; "" names none).
func (s *Server) SetLeader(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leader = addr
}

// SetInterceptor installs f to run before every call (nil removes it).
func (s *Server) SetInterceptor(f Interceptor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.intercept = f
}

// Calls returns the calls received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Segment returns a copy of segment id, or nil.
func (s *Server) Segment(id uint64) *snapkeepv1.Segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seg := s.segments[id]; seg != nil {
		return clone(seg)
	}
	return nil
}

type requestWithID interface {
	GetRequestId() string
}

func (s *Server) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	msg, _ := req.(proto.Message)
	var requestID string
	if r, ok := req.(requestWithID); ok {
		requestID = r.GetRequestId()
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: method, RequestID: requestID, Request: clone(msg)})
	intercept, leader := s.intercept, s.leader
	s.mu.Unlock()

	if leader != "" {
		_ = grpc.SetHeader(ctx, metadata.Pairs(leaderKey, leader))
	}
	if intercept != nil {
		if err := intercept(ctx, method, msg); err != nil {
			return nil, err
		}
	}
	if requestID != "" {
		s.mu.Lock()
		prev, ok := s.results[requestID]
		s.mu.Unlock()
		if ok {
			return clone(prev), nil
		}
	}
	resp, err := handler(ctx, req)
	if err == nil && requestID != "" {
		if m, ok := resp.(proto.Message); ok {
			s.mu.Lock()
			s.results[requestID] = clone(m)
			s.mu.Unlock()
		}
	}
	return resp, err
}

func clone[M proto.Message](m M) M {
	if any(m) == nil {
		return m
	}
	return proto.Clone(m).(M)
}

func nowMs() int64 { return time.Now().UnixMilli() }

// newID returns the next id of the one sequence all objects share. Callers hold mu
// (or own s exclusively).
func (s *Server) newID() uint64 {
	s.nextID++
	return s.nextID
}

func invalidf(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func notFoundf(format string, args ...any) error {
	return status.Errorf(codes.NotFound, format, args...)
}

func existsf(format string, args ...any) error {
	return status.Errorf(codes.AlreadyExists, format, args...)
}

func preconditionf(format string, args ...any) error {
	return status.Errorf(codes.FailedPrecondition, format, args...)
}

func dbName(db string) string {
	if db == "" {
		return defaultDatabase
	}
	return db
}

// liveCollection finds a live collection by name. Callers hold mu.
func (s *Server) liveCollection(db, name string) (*snapkeepv1.Collection, error) {
	db = dbName(db)
	if s.databases[db] == nil {
		return nil, notFoundf("database %q not found", db)
	}
	for _, c := range s.collections {
		if c.Database == db && c.Name == name && c.State != snapkeepv1.CollectionState_COLLECTION_STATE_DROPPED {
			return c, nil
		}
	}
	return nil, notFoundf("collection %q not found in database %q", name, db)
}

func partitionByName(c *snapkeepv1.Collection, name string) *snapkeepv1.Partition {
	for _, p := range c.Partitions {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (s *Server) CreateDatabase(_ context.Context, req *snapkeepv1.CreateDatabaseRequest) (*snapkeepv1.CreateDatabaseResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Name == "" {
		return nil, invalidf("database name is empty")
	}
	if s.databases[req.Name] != nil {
		return nil, existsf("database %q already exists", req.Name)
	}
	db := &snapkeepv1.Database{Id: s.newID(), Name: req.Name, Properties: req.Properties, CreatedAtUnixMs: nowMs()}
	s.databases[req.Name] = db
	return &snapkeepv1.CreateDatabaseResponse{Database: clone(db)}, nil
}

func (s *Server) DropDatabase(_ context.Context, req *snapkeepv1.DropDatabaseRequest) (*snapkeepv1.DropDatabaseResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Name == defaultDatabase {
		return nil, invalidf("the %q database cannot be dropped", defaultDatabase)
	}
	if s.databases[req.Name] == nil {
		return nil, notFoundf("database %q not found", req.Name)
	}
	for _, c := range s.collections {
		if c.Database == req.Name && c.State != snapkeepv1.CollectionState_COLLECTION_STATE_DROPPED {
			return nil, preconditionf("database %q still has collection %q", req.Name, c.Name)
		}
	}
	delete(s.databases, req.Name)
	return &snapkeepv1.DropDatabaseResponse{}, nil
}

func (s *Server) ListDatabases(context.Context, *snapkeepv1.ListDatabasesRequest) (*snapkeepv1.ListDatabasesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &snapkeepv1.ListDatabasesResponse{}
	for _, db := range s.databases {
		resp.Databases = append(resp.Databases, clone(db))
	}
	slices.SortFunc(resp.Databases, func(a, b *snapkeepv1.Database) int { return strings.Compare(a.Name, b.Name) })
	return resp, nil
}

func (s *Server) CreateCollection(_ context.Context, req *snapkeepv1.CreateCollectionRequest) (*snapkeepv1.CreateCollectionResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	db := dbName(req.Database)
	if s.databases[db] == nil {
		return nil, notFoundf("database %q not found", db)
	}
	if req.Name == "" {
		return nil, invalidf("collection name is empty")
	}
	if _, err := s.liveCollection(db, req.Name); err == nil {
		return nil, existsf("collection %q already exists in database %q", req.Name, db)
	}
	now := nowMs()
	c := &snapkeepv1.Collection{
		Id: s.newID(), Database: db, Name: req.Name, State: snapkeepv1.CollectionState_COLLECTION_STATE_ACTIVE,
		Schema: req.Schema, Properties: req.Properties, Description: req.Description, CreatedAtUnixMs: now,
	}
	for _, name := range append([]string{defaultPartition}, req.Partitions...) {
		if name == "" {
			return nil, invalidf("partition name is empty")
		}
		if partitionByName(c, name) != nil {
			return nil, existsf("partition %q is named twice", name)
		}
		c.Partitions = append(c.Partitions, &snapkeepv1.Partition{Id: s.newID(), Name: name, CreatedAtUnixMs: now})
	}
	s.collections[c.Id] = c
	return &snapkeepv1.CreateCollectionResponse{Collection: clone(c)}, nil
}

// dropSegments drops the live segments of collection cid that match. Callers hold mu.
func (s *Server) dropSegments(match func(*snapkeepv1.Segment) bool, reason snapkeepv1.DropReason) {
	now := nowMs()
	for _, seg := range s.segments {
		if seg.State != snapkeepv1.SegmentState_SEGMENT_STATE_DROPPED && match(seg) {
			seg.State = snapkeepv1.SegmentState_SEGMENT_STATE_DROPPED
			seg.DropReason = reason
			seg.DroppedAtUnixMs = now
		}
	}
}

func (s *Server) DropCollection(_ context.Context, req *snapkeepv1.DropCollectionRequest) (*snapkeepv1.DropCollectionResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.liveCollection(req.Database, req.Name)
	if err != nil {
		return nil, err
	}
	c.State = snapkeepv1.CollectionState_COLLECTION_STATE_DROPPED
	c.DroppedAtUnixMs = nowMs()
	s.dropSegments(func(seg *snapkeepv1.Segment) bool { return seg.CollectionId == c.Id }, snapkeepv1.DropReason_DROP_REASON_COLLECTION_DROPPED)
	return &snapkeepv1.DropCollectionResponse{Collection: clone(c)}, nil
}

func (s *Server) AlterCollection(_ context.Context, req *snapkeepv1.AlterCollectionRequest) (*snapkeepv1.AlterCollectionResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.liveCollection(req.Database, req.Name)
	if err != nil {
		return nil, err
	}
	for k, v := range req.SetProperties {
		if c.Properties == nil {
			c.Properties = make(map[string]string)
		}
		c.Properties[k] = v
	}
	for _, k := range req.DeleteProperties {
		delete(c.Properties, k)
	}
	return &snapkeepv1.AlterCollectionResponse{Collection: clone(c)}, nil
}

func (s *Server) DescribeCollection(_ context.Context, req *snapkeepv1.DescribeCollectionRequest) (*snapkeepv1.DescribeCollectionResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.liveCollection(req.Database, req.Name)
	if err != nil {
		return nil, err
	}
	sum := &snapkeepv1.SegmentSummary{}
	for _, seg := range s.segments {
		if seg.CollectionId != c.Id {
			continue
		}
		switch seg.State {
		case snapkeepv1.SegmentState_SEGMENT_STATE_ALLOCATED:
			sum.Allocated++
		case snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED:
			sum.Flushed++
			sum.FlushedRows += seg.RowCount
			sum.FlushedFiles += uint64(len(seg.Files))
			for _, f := range seg.Files {
				sum.FlushedBytes += f.Size
			}
		case snapkeepv1.SegmentState_SEGMENT_STATE_DROPPED:
			sum.Dropped++
		}
	}
	return &snapkeepv1.DescribeCollectionResponse{Collection: clone(c), Segments: sum}, nil
}

func (s *Server) ListCollections(_ context.Context, req *snapkeepv1.ListCollectionsRequest) (*snapkeepv1.ListCollectionsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	db := dbName(req.Database)
	if s.databases[db] == nil {
		return nil, notFoundf("database %q not found", db)
	}
	resp := &snapkeepv1.ListCollectionsResponse{}
	for _, c := range s.collections {
		if c.Database == db && c.State != snapkeepv1.CollectionState_COLLECTION_STATE_DROPPED {
			resp.Collections = append(resp.Collections, clone(c))
		}
	}
	slices.SortFunc(resp.Collections, func(a, b *snapkeepv1.Collection) int { return strings.Compare(a.Name, b.Name) })
	return resp, nil
}

func (s *Server) CreatePartition(_ context.Context, req *snapkeepv1.CreatePartitionRequest) (*snapkeepv1.CreatePartitionResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.liveCollection(req.Database, req.Collection)
	if err != nil {
		return nil, err
	}
	if req.Name == "" {
		return nil, invalidf("partition name is empty")
	}
	if partitionByName(c, req.Name) != nil {
		return nil, existsf("partition %q already exists in collection %q", req.Name, c.Name)
	}
	c.Partitions = append(c.Partitions, &snapkeepv1.Partition{Id: s.newID(), Name: req.Name, CreatedAtUnixMs: nowMs()})
	return &snapkeepv1.CreatePartitionResponse{Collection: clone(c)}, nil
}

func (s *Server) DropPartition(_ context.Context, req *snapkeepv1.DropPartitionRequest) (*snapkeepv1.DropPartitionResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.liveCollection(req.Database, req.Collection)
	if err != nil {
		return nil, err
	}
	if req.Name == defaultPartition {
		return nil, invalidf("the %q partition cannot be dropped", defaultPartition)
	}
	p := partitionByName(c, req.Name)
	if p == nil {
		return nil, notFoundf("partition %q not found in collection %q", req.Name, c.Name)
	}
	c.Partitions = slices.DeleteFunc(c.Partitions, func(q *snapkeepv1.Partition) bool { return q == p })
	s.dropSegments(func(seg *snapkeepv1.Segment) bool { return seg.PartitionId == p.Id }, snapkeepv1.DropReason_DROP_REASON_PARTITION_DROPPED)
	return &snapkeepv1.DropPartitionResponse{Collection: clone(c)}, nil
}

func (s *Server) CreateIndex(_ context.Context, req *snapkeepv1.CreateIndexRequest) (*snapkeepv1.CreateIndexResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.liveCollection(req.Database, req.Collection)
	if err != nil {
		return nil, err
	}
	if req.Name == "" {
		return nil, invalidf("index name is empty")
	}
	for _, idx := range c.Indexes {
		if idx.Name == req.Name {
			return nil, existsf("index %q already exists in collection %q", req.Name, c.Name)
		}
	}
	c.Indexes = append(c.Indexes, &snapkeepv1.Index{Id: s.newID(), Name: req.Name, FieldId: req.FieldId, Params: req.Params, CreatedAtUnixMs: nowMs()})
	return &snapkeepv1.CreateIndexResponse{Collection: clone(c)}, nil
}

func (s *Server) DropIndex(_ context.Context, req *snapkeepv1.DropIndexRequest) (*snapkeepv1.DropIndexResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.liveCollection(req.Database, req.Collection)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(c.Indexes, func(idx *snapkeepv1.Index) bool { return idx.Name == req.Name })
	if i < 0 {
		return nil, notFoundf("index %q not found in collection %q", req.Name, c.Name)
	}
	indexID := c.Indexes[i].Id
	c.Indexes = slices.Delete(c.Indexes, i, i+1)
	now := nowMs()
	for _, seg := range s.segments {
		for _, b := range seg.IndexBuilds {
			if b.IndexId == indexID && b.State != snapkeepv1.IndexBuildState_INDEX_BUILD_STATE_DROPPED {
				b.State = snapkeepv1.IndexBuildState_INDEX_BUILD_STATE_DROPPED
				b.DropReason = snapkeepv1.DropReason_DROP_REASON_INDEX_DROPPED
				b.DroppedAtUnixMs = now
			}
		}
	}
	return &snapkeepv1.DropIndexResponse{Collection: clone(c)}, nil
}

func (s *Server) segmentPrefix(collectionID, segmentID uint64) string {
	p := "collections/" + strconv.FormatUint(collectionID, 10) + "/segments/" + strconv.FormatUint(segmentID, 10) + "/"
	if root := strings.Trim(s.storage.GetRoot(), "/"); root != "" {
		p = root + "/" + p
	}
	return p
}

func leaseDeadline(leaseMs int64) int64 {
	if leaseMs <= 0 {
		leaseMs = time.Hour.Milliseconds()
	}
	return nowMs() + leaseMs
}

func (s *Server) AllocateSegment(_ context.Context, req *snapkeepv1.AllocateSegmentRequest) (*snapkeepv1.AllocateSegmentResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.liveCollection(req.Database, req.Collection)
	if err != nil {
		return nil, err
	}
	pname := req.Partition
	if pname == "" {
		pname = defaultPartition
	}
	p := partitionByName(c, pname)
	if p == nil {
		return nil, notFoundf("partition %q not found in collection %q", pname, c.Name)
	}
	id := s.newID()
	seg := &snapkeepv1.Segment{
		Id: id, CollectionId: c.Id, PartitionId: p.Id, State: snapkeepv1.SegmentState_SEGMENT_STATE_ALLOCATED,
		Prefix: s.segmentPrefix(c.Id, id), LeaseDeadlineUnixMs: leaseDeadline(req.LeaseMs), AllocatedAtUnixMs: nowMs(),
	}
	s.segments[id] = seg
	return &snapkeepv1.AllocateSegmentResponse{Segment: clone(seg)}, nil
}

// checkFiles checks that every file sits under prefix with an allowed kind.
func checkFiles(files []*snapkeepv1.File, prefix string, index bool) error {
	for _, f := range files {
		if !strings.HasPrefix(f.Key, prefix) || len(f.Key) == len(prefix) || strings.Contains(f.Key, "..") {
			return invalidf("key %q is not under the prefix %q", f.Key, prefix)
		}
		isIndex := f.Kind == snapkeepv1.FileKind_FILE_KIND_INDEX
		if f.Kind == snapkeepv1.FileKind_FILE_KIND_UNSPECIFIED || isIndex != index {
			return invalidf("file %q has kind %s, not allowed here", f.Key, f.Kind)
		}
	}
	return nil
}

func (s *Server) segment(id uint64) (*snapkeepv1.Segment, error) {
	seg := s.segments[id]
	if seg == nil {
		return nil, notFoundf("segment %d not found", id)
	}
	return seg, nil
}

func (s *Server) FlushSegment(_ context.Context, req *snapkeepv1.FlushSegmentRequest) (*snapkeepv1.FlushSegmentResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg, err := s.segment(req.SegmentId)
	if err != nil {
		return nil, err
	}
	if seg.State != snapkeepv1.SegmentState_SEGMENT_STATE_ALLOCATED {
		return nil, preconditionf("segment %d is %s, not allocated", seg.Id, seg.State)
	}
	if err := checkFiles(req.Files, seg.Prefix, false); err != nil {
		return nil, err
	}
	seg.State = snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED
	seg.RowCount = req.RowCount
	seg.Files = req.Files
	seg.LeaseDeadlineUnixMs = 0
	seg.FlushedAtUnixMs = nowMs()
	return &snapkeepv1.FlushSegmentResponse{Segment: clone(seg)}, nil
}

func (s *Server) AllocateIndexBuild(_ context.Context, req *snapkeepv1.AllocateIndexBuildRequest) (*snapkeepv1.AllocateIndexBuildResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg, err := s.segment(req.SegmentId)
	if err != nil {
		return nil, err
	}
	if seg.State != snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED {
		return nil, preconditionf("segment %d is %s, not flushed", seg.Id, seg.State)
	}
	c := s.collections[seg.CollectionId]
	i := slices.IndexFunc(c.Indexes, func(idx *snapkeepv1.Index) bool { return idx.Name == req.Index })
	if i < 0 {
		return nil, notFoundf("index %q not found in collection %q", req.Index, c.Name)
	}
	id := s.newID()
	b := &snapkeepv1.IndexBuild{
		BuildId: id, IndexId: c.Indexes[i].Id, State: snapkeepv1.IndexBuildState_INDEX_BUILD_STATE_ALLOCATED,
		Prefix: seg.Prefix + "index/" + strconv.FormatUint(id, 10) + "/", LeaseDeadlineUnixMs: leaseDeadline(req.LeaseMs), CreatedAtUnixMs: nowMs(),
	}
	seg.IndexBuilds = append(seg.IndexBuilds, b)
	return &snapkeepv1.AllocateIndexBuildResponse{Segment: clone(seg), Build: clone(b)}, nil
}

func (s *Server) AddIndexBuild(_ context.Context, req *snapkeepv1.AddIndexBuildRequest) (*snapkeepv1.AddIndexBuildResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg, err := s.segment(req.SegmentId)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(seg.IndexBuilds, func(b *snapkeepv1.IndexBuild) bool { return b.BuildId == req.BuildId })
	if i < 0 {
		return nil, notFoundf("index build %d not found in segment %d", req.BuildId, seg.Id)
	}
	b := seg.IndexBuilds[i]
	if b.State != snapkeepv1.IndexBuildState_INDEX_BUILD_STATE_ALLOCATED {
		return nil, preconditionf("index build %d is %s, not allocated", b.BuildId, b.State)
	}
	if err := checkFiles(req.Files, b.Prefix, true); err != nil {
		return nil, err
	}
	now := nowMs()
	for _, old := range seg.IndexBuilds {
		if old != b && old.IndexId == b.IndexId && old.State == snapkeepv1.IndexBuildState_INDEX_BUILD_STATE_READY {
			old.State = snapkeepv1.IndexBuildState_INDEX_BUILD_STATE_DROPPED
			old.DropReason = snapkeepv1.DropReason_DROP_REASON_SUPERSEDED
			old.DroppedAtUnixMs = now
		}
	}
	b.State = snapkeepv1.IndexBuildState_INDEX_BUILD_STATE_READY
	b.Files = req.Files
	b.LeaseDeadlineUnixMs = 0
	b.ReadyAtUnixMs = now
	return &snapkeepv1.AddIndexBuildResponse{Segment: clone(seg)}, nil
}

func (s *Server) CompactSegments(_ context.Context, req *snapkeepv1.CompactSegmentsRequest) (*snapkeepv1.CompactSegmentsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(req.Inputs) == 0 {
		return nil, invalidf("a compaction needs at least one input segment")
	}
	var collectionID uint64
	var inputs, outputs []*snapkeepv1.Segment
	for _, id := range req.Inputs {
		seg, err := s.segment(id)
		if err != nil {
			return nil, err
		}
		if seg.State != snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED {
			return nil, preconditionf("input segment %d is %s, not flushed", id, seg.State)
		}
		if collectionID == 0 {
			collectionID = seg.CollectionId
		}
		if seg.CollectionId != collectionID {
			return nil, invalidf("input segment %d belongs to collection %d, not %d", id, seg.CollectionId, collectionID)
		}
		inputs = append(inputs, seg)
	}
	var outputIDs []uint64
	for _, out := range req.Outputs {
		seg, err := s.segment(out.SegmentId)
		if err != nil {
			return nil, err
		}
		if seg.State != snapkeepv1.SegmentState_SEGMENT_STATE_ALLOCATED {
			return nil, preconditionf("output segment %d is %s, not allocated", seg.Id, seg.State)
		}
		if seg.CollectionId != collectionID {
			return nil, invalidf("output segment %d belongs to collection %d, not %d", seg.Id, seg.CollectionId, collectionID)
		}
		if err := checkFiles(out.Files, seg.Prefix, false); err != nil {
			return nil, err
		}
		outputs = append(outputs, seg)
		outputIDs = append(outputIDs, seg.Id)
	}
	now := nowMs()
	resp := &snapkeepv1.CompactSegmentsResponse{}
	for _, in := range inputs {
		in.State = snapkeepv1.SegmentState_SEGMENT_STATE_DROPPED
		in.DropReason = snapkeepv1.DropReason_DROP_REASON_COMPACTED
		in.DroppedAtUnixMs = now
		in.CompactedTo = slices.Clone(outputIDs)
		resp.Segments = append(resp.Segments, clone(in))
	}
	for i, out := range outputs {
		out.State = snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED
		out.RowCount = req.Outputs[i].RowCount
		out.Files = req.Outputs[i].Files
		out.CompactedFrom = slices.Clone(req.Inputs)
		out.LeaseDeadlineUnixMs = 0
		out.FlushedAtUnixMs = now
		resp.Segments = append(resp.Segments, clone(out))
	}
	return resp, nil
}

func (s *Server) DropSegments(_ context.Context, req *snapkeepv1.DropSegmentsRequest) (*snapkeepv1.DropSegmentsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range req.SegmentIds {
		if _, err := s.segment(id); err != nil {
			return nil, err
		}
	}
	resp := &snapkeepv1.DropSegmentsResponse{}
	s.dropSegments(func(seg *snapkeepv1.Segment) bool { return slices.Contains(req.SegmentIds, seg.Id) }, snapkeepv1.DropReason_DROP_REASON_USER)
	for _, id := range req.SegmentIds {
		resp.Segments = append(resp.Segments, clone(s.segments[id]))
	}
	return resp, nil
}

func (s *Server) GetSegment(_ context.Context, req *snapkeepv1.GetSegmentRequest) (*snapkeepv1.GetSegmentResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg, err := s.segment(req.SegmentId)
	if err != nil {
		return nil, err
	}
	return &snapkeepv1.GetSegmentResponse{Segment: clone(seg)}, nil
}

func (s *Server) ListSegments(_ context.Context, req *snapkeepv1.ListSegmentsRequest) (*snapkeepv1.ListSegmentsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.liveCollection(req.Database, req.Collection)
	if err != nil {
		return nil, err
	}
	var partitionID uint64
	if req.Partition != "" {
		p := partitionByName(c, req.Partition)
		if p == nil {
			return nil, notFoundf("partition %q not found in collection %q", req.Partition, c.Name)
		}
		partitionID = p.Id
	}
	var after uint64
	if req.PageToken != "" {
		after, err = strconv.ParseUint(req.PageToken, 10, 64)
		if err != nil {
			return nil, invalidf("page token %q is not valid", req.PageToken)
		}
	}
	pageSize := int(req.PageSize)
	if pageSize == 0 {
		pageSize = 1000
	}
	var ids []uint64
	for id, seg := range s.segments {
		if id > after && seg.CollectionId == c.Id &&
			(partitionID == 0 || seg.PartitionId == partitionID) &&
			(len(req.States) == 0 || slices.Contains(req.States, seg.State)) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	resp := &snapkeepv1.ListSegmentsResponse{}
	if len(ids) > pageSize {
		ids = ids[:pageSize]
		resp.NextPageToken = strconv.FormatUint(ids[len(ids)-1], 10)
	}
	for _, id := range ids {
		seg := clone(s.segments[id])
		if req.WithoutFiles {
			seg.Files, seg.IndexBuilds = nil, nil
		}
		resp.Segments = append(resp.Segments, seg)
	}
	return resp, nil
}

func (s *Server) ClusterStatus(context.Context, *snapkeepv1.ClusterStatusRequest) (*snapkeepv1.ClusterStatusResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &snapkeepv1.ClusterStatusResponse{
		LeaderId: s.nodeID,
		Nodes: []*snapkeepv1.NodeStatus{{
			Id: s.nodeID, RaftAddr: "127.0.0.1:0", GrpcAddr: s.addr, Voter: true, Role: snapkeepv1.NodeRole_NODE_ROLE_LEADER,
			Term: 1, CommitIndex: s.nextID, AppliedIndex: s.nextID, LastLogIndex: s.nextID, Version: "fake",
		}},
		Storage: clone(s.storage),
	}, nil
}
