package api

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// catalogService implements the public Catalog API: it validates what it can without
// the state, turns requests into FSM commands (writes) or view queries (reads), and
// converts the results back.
type catalogService struct {
	pb.UnimplementedCatalogServer
	*services
}

// segments converts segments with their files.
func (s *catalogService) segments(in []*fsmpb.Segment) ([]*pb.Segment, error) {
	out := make([]*pb.Segment, len(in))
	for i, seg := range in {
		var err error
		if out[i], err = s.segment(seg, true); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// segment converts a segment, its keys built in its collection's layout.
func (s *catalogService) segment(seg *fsmpb.Segment, withFiles bool) (*pb.Segment, error) {
	return toSegment(s.cfg.Root, s.b.View().KeysOfCollection(seg.CollectionId), seg, withFiles)
}

// lease converts a request's lease (ms, 0 = default) to nanoseconds.
func (s *catalogService) lease(ms int64) (int64, error) {
	if ms == 0 {
		return int64(s.cfg.DefaultLease), nil
	}
	if ms < 0 || ms > int64(7*24*time.Hour/time.Millisecond) {
		return 0, status.Errorf(codes.InvalidArgument, "lease_ms %d is out of range: give 1000 to 604800000 (7 days), or 0 for the default", ms)
	}
	ns := ms * int64(time.Millisecond)
	return ns, fsm.ValidateLease(ns)
}

func (s *catalogService) CreateDatabase(ctx context.Context, req *pb.CreateDatabaseRequest) (*pb.CreateDatabaseResponse, error) {
	if err := fsm.ValidateName("database", req.Name); err != nil {
		return nil, err
	}
	var out fsmpb.DatabaseResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.CreateDatabase{Name: req.Name, Properties: req.Properties}, &out); err != nil {
		return nil, err
	}
	return &pb.CreateDatabaseResponse{Database: toDatabase(out.Database)}, nil
}

func (s *catalogService) DropDatabase(ctx context.Context, req *pb.DropDatabaseRequest) (*pb.DropDatabaseResponse, error) {
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.DropDatabase{Name: req.Name}, nil); err != nil {
		return nil, err
	}
	return &pb.DropDatabaseResponse{}, nil
}

func (s *catalogService) ListDatabases(ctx context.Context, req *pb.ListDatabasesRequest) (*pb.ListDatabasesResponse, error) {
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	pageSize, err := parsePageSize(req.PageSize, defaultNamePage, maxNamePage)
	if err != nil {
		return nil, err
	}
	dbs := v.Databases()
	out := &pb.ListDatabasesResponse{}
	budget := newPageBudget(pageSize)
	for _, d := range dbs[afterName(dbs, (*fsmpb.Database).GetName, req.PageToken):] {
		conv := toDatabase(d)
		if !budget.fits(conv) {
			out.NextPageToken = out.Databases[len(out.Databases)-1].Name
			break
		}
		out.Databases = append(out.Databases, conv)
	}
	return out, nil
}

func (s *catalogService) CreateCollection(ctx context.Context, req *pb.CreateCollectionRequest) (*pb.CreateCollectionResponse, error) {
	keyLayout, err := fromKeyLayout(req.Layout)
	if err != nil {
		return nil, err
	}
	cmd := &fsmpb.CreateCollection{
		Database:      req.Database,
		Name:          req.Name,
		Schema:        req.Schema,
		Properties:    req.Properties,
		Partitions:    req.Partitions,
		Description:   req.Description,
		Layout:        keyLayout,
		CollectionId:  req.CollectionId,
		PartitionIds:  req.PartitionIds,
		VerifyOnFlush: req.VerifyOnFlush,
	}
	if err := fsm.ValidateCreateCollection(cmd); err != nil {
		return nil, err
	}
	var out fsmpb.CollectionResponse
	if err := s.b.Propose(ctx, req.RequestId, cmd, &out); err != nil {
		return nil, err
	}
	return &pb.CreateCollectionResponse{Collection: toCollection(out.Collection, out.Database)}, nil
}

func (s *catalogService) DropCollection(ctx context.Context, req *pb.DropCollectionRequest) (*pb.DropCollectionResponse, error) {
	var out fsmpb.CollectionResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.DropCollection{Database: req.Database, Name: req.Name}, &out); err != nil {
		return nil, err
	}
	return &pb.DropCollectionResponse{Collection: toCollection(out.Collection, out.Database)}, nil
}

func (s *catalogService) AlterCollection(ctx context.Context, req *pb.AlterCollectionRequest) (*pb.AlterCollectionResponse, error) {
	if len(req.SetProperties) == 0 && len(req.DeleteProperties) == 0 {
		return nil, status.Error(codes.InvalidArgument, "nothing to alter: give properties to set or to delete")
	}
	var out fsmpb.CollectionResponse
	cmd := &fsmpb.AlterCollection{Database: req.Database, Name: req.Name, SetProperties: req.SetProperties, DeleteProperties: req.DeleteProperties}
	if err := s.b.Propose(ctx, req.RequestId, cmd, &out); err != nil {
		return nil, err
	}
	return &pb.AlterCollectionResponse{Collection: toCollection(out.Collection, out.Database)}, nil
}

func (s *catalogService) DescribeCollection(ctx context.Context, req *pb.DescribeCollectionRequest) (*pb.DescribeCollectionResponse, error) {
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	// A dropped collection stays describable (state DROPPED) until GC removes its
	// record.
	c, db, err := v.CollectionOrDropped(req.Database, req.Name)
	if err != nil {
		return nil, err
	}
	sum, err := v.SummarizeSegments(c.Id)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "summarize segments of %q: %v", c.Name, err)
	}
	return &pb.DescribeCollectionResponse{
		Collection: toCollection(c, db.Name),
		Segments: &pb.SegmentSummary{
			Allocated: sum.Allocated, Flushed: sum.Flushed, Dropped: sum.Dropped,
			FlushedRows: sum.FlushedRows, FlushedFiles: sum.FlushedFiles, FlushedBytes: sum.FlushedBytes,
		},
	}, nil
}

func (s *catalogService) ListCollections(ctx context.Context, req *pb.ListCollectionsRequest) (*pb.ListCollectionsResponse, error) {
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	db, err := v.Database(req.Database)
	if err != nil {
		return nil, err
	}
	colls, err := v.Collections(db.Name)
	if err != nil {
		return nil, err
	}
	pageSize, err := parsePageSize(req.PageSize, defaultNamePage, maxNamePage)
	if err != nil {
		return nil, err
	}
	out := &pb.ListCollectionsResponse{}
	budget := newPageBudget(pageSize)
	for _, c := range colls[afterName(colls, (*fsmpb.Collection).GetName, req.PageToken):] {
		conv := toCollection(c, db.Name)
		if !req.IncludeSchema {
			conv.Schema = nil
		}
		if !budget.fits(conv) {
			out.NextPageToken = out.Collections[len(out.Collections)-1].Name
			break
		}
		out.Collections = append(out.Collections, conv)
	}
	return out, nil
}

func (s *catalogService) CreatePartition(ctx context.Context, req *pb.CreatePartitionRequest) (*pb.CreatePartitionResponse, error) {
	if err := fsm.ValidateName("partition", req.Name); err != nil {
		return nil, err
	}
	var out fsmpb.CollectionResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.CreatePartition{Database: req.Database, Collection: req.Collection, Name: req.Name, PartitionId: req.PartitionId}, &out); err != nil {
		return nil, err
	}
	return &pb.CreatePartitionResponse{Collection: toCollection(out.Collection, out.Database)}, nil
}

func (s *catalogService) DropPartition(ctx context.Context, req *pb.DropPartitionRequest) (*pb.DropPartitionResponse, error) {
	var out fsmpb.CollectionResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.DropPartition{Database: req.Database, Collection: req.Collection, Name: req.Name}, &out); err != nil {
		return nil, err
	}
	return &pb.DropPartitionResponse{Collection: toCollection(out.Collection, out.Database)}, nil
}

func (s *catalogService) CreateIndex(ctx context.Context, req *pb.CreateIndexRequest) (*pb.CreateIndexResponse, error) {
	if err := fsm.ValidateName("index", req.Name); err != nil {
		return nil, err
	}
	var out fsmpb.CollectionResponse
	cmd := &fsmpb.CreateIndex{Database: req.Database, Collection: req.Collection, Name: req.Name, FieldId: req.FieldId, Params: req.Params, IndexId: req.IndexId}
	if err := s.b.Propose(ctx, req.RequestId, cmd, &out); err != nil {
		return nil, err
	}
	return &pb.CreateIndexResponse{Collection: toCollection(out.Collection, out.Database)}, nil
}

func (s *catalogService) DropIndex(ctx context.Context, req *pb.DropIndexRequest) (*pb.DropIndexResponse, error) {
	var out fsmpb.CollectionResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.DropIndex{Database: req.Database, Collection: req.Collection, Name: req.Name}, &out); err != nil {
		return nil, err
	}
	return &pb.DropIndexResponse{Collection: toCollection(out.Collection, out.Database)}, nil
}

func (s *catalogService) AllocateSegment(ctx context.Context, req *pb.AllocateSegmentRequest) (*pb.AllocateSegmentResponse, error) {
	lease, err := s.lease(req.LeaseMs)
	if err != nil {
		return nil, err
	}
	var out fsmpb.SegmentResponse
	cmd := &fsmpb.AllocateSegment{Database: req.Database, Collection: req.Collection, Partition: req.Partition, Lease: lease, SegmentId: req.SegmentId}
	if err := s.b.Propose(ctx, req.RequestId, cmd, &out); err != nil {
		return nil, err
	}
	seg, err := s.segment(out.Segment, true)
	if err != nil {
		return nil, err
	}
	return &pb.AllocateSegmentResponse{Segment: seg}, nil
}

func (s *catalogService) FlushSegment(ctx context.Context, req *pb.FlushSegmentRequest) (*pb.FlushSegmentResponse, error) {
	files, err := fromFiles(s.cfg.Root, req.Files)
	if err != nil {
		return nil, err
	}
	if err := s.verifyFlush(ctx, req.SegmentId, files, req.VerifyFiles); err != nil {
		return nil, err
	}
	var out fsmpb.SegmentResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.FlushSegment{SegmentId: req.SegmentId, RowCount: req.RowCount, Files: files, Meta: fromSegmentMeta(req.Meta)}, &out); err != nil {
		return nil, err
	}
	seg, err := s.segment(out.Segment, true)
	if err != nil {
		return nil, err
	}
	return &pb.FlushSegmentResponse{Segment: seg}, nil
}

func (s *catalogService) AllocateIndexBuild(ctx context.Context, req *pb.AllocateIndexBuildRequest) (*pb.AllocateIndexBuildResponse, error) {
	lease, err := s.lease(req.LeaseMs)
	if err != nil {
		return nil, err
	}
	var out fsmpb.IndexBuildResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.AllocateIndexBuild{SegmentId: req.SegmentId, Index: req.Index, Lease: lease, BuildId: req.BuildId}, &out); err != nil {
		return nil, err
	}
	seg, err := s.segment(out.Segment, true)
	if err != nil {
		return nil, err
	}
	resp := &pb.AllocateIndexBuildResponse{Segment: seg}
	for _, b := range seg.IndexBuilds {
		if b.BuildId == out.BuildId {
			resp.Build = b
		}
	}
	return resp, nil
}

func (s *catalogService) AddIndexBuild(ctx context.Context, req *pb.AddIndexBuildRequest) (*pb.AddIndexBuildResponse, error) {
	files, err := fromFiles(s.cfg.Root, req.Files)
	if err != nil {
		return nil, err
	}
	var out fsmpb.SegmentResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.AddIndexBuild{SegmentId: req.SegmentId, BuildId: req.BuildId, Files: files}, &out); err != nil {
		return nil, err
	}
	seg, err := s.segment(out.Segment, true)
	if err != nil {
		return nil, err
	}
	return &pb.AddIndexBuildResponse{Segment: seg}, nil
}

func (s *catalogService) CompactSegments(ctx context.Context, req *pb.CompactSegmentsRequest) (*pb.CompactSegmentsResponse, error) {
	cmd := &fsmpb.Compact{Inputs: req.Inputs}
	for _, o := range req.Outputs {
		if o == nil {
			return nil, status.Error(codes.InvalidArgument, "empty compaction output")
		}
		files, err := fromFiles(s.cfg.Root, o.Files)
		if err != nil {
			return nil, err
		}
		cmd.Outputs = append(cmd.Outputs, &fsmpb.CompactOutput{SegmentId: o.SegmentId, RowCount: o.RowCount, Files: files, Meta: fromSegmentMeta(o.Meta)})
	}
	var out fsmpb.SegmentsResponse
	if err := s.b.Propose(ctx, req.RequestId, cmd, &out); err != nil {
		return nil, err
	}
	segs, err := s.segments(out.Segments)
	if err != nil {
		return nil, err
	}
	return &pb.CompactSegmentsResponse{Segments: segs}, nil
}

func (s *catalogService) DropSegments(ctx context.Context, req *pb.DropSegmentsRequest) (*pb.DropSegmentsResponse, error) {
	var out fsmpb.SegmentsResponse
	if err := s.b.Propose(ctx, req.RequestId, &fsmpb.DropSegments{SegmentIds: req.SegmentIds}, &out); err != nil {
		return nil, err
	}
	segs := make([]*pb.Segment, len(out.Segments))
	for i, seg := range out.Segments {
		segs[i], _ = s.segment(seg, false) // without files, it cannot fail
	}
	return &pb.DropSegmentsResponse{Segments: segs}, nil
}

func (s *catalogService) RegisterSegments(ctx context.Context, req *pb.RegisterSegmentsRequest) (*pb.RegisterSegmentsResponse, error) {
	cmd := &fsmpb.RegisterSegments{Database: req.Database, Collection: req.Collection}
	for _, r := range req.Segments {
		if r == nil {
			return nil, status.Error(codes.InvalidArgument, "empty segment entry")
		}
		files, err := fromFiles(s.cfg.Root, r.Files)
		if err != nil {
			return nil, err
		}
		cmd.Segments = append(cmd.Segments, &fsmpb.RegisteredSegment{SegmentId: r.SegmentId, PartitionId: r.PartitionId,
			RowCount: r.RowCount, Files: files, Meta: fromSegmentMeta(r.Meta)})
	}
	for _, b := range req.Builds {
		if b == nil {
			return nil, status.Error(codes.InvalidArgument, "empty index build entry")
		}
		files, err := fromFiles(s.cfg.Root, b.Files)
		if err != nil {
			return nil, err
		}
		cmd.Builds = append(cmd.Builds, &fsmpb.RegisteredBuild{SegmentId: b.SegmentId, BuildId: b.BuildId, IndexId: b.IndexId, Files: files})
	}
	var out fsmpb.SegmentsResponse
	if err := s.b.Propose(ctx, req.RequestId, cmd, &out); err != nil {
		return nil, err
	}
	segs := make([]*pb.Segment, len(out.Segments))
	for i, seg := range out.Segments {
		segs[i], _ = s.segment(seg, false) // without files, it cannot fail
	}
	return &pb.RegisterSegmentsResponse{Segments: segs}, nil
}

func (s *catalogService) GetSegment(ctx context.Context, req *pb.GetSegmentRequest) (*pb.GetSegmentResponse, error) {
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	seg, err := v.Segment(req.SegmentId)
	if err != nil {
		return nil, err
	}
	out, err := s.segment(seg, true)
	if err != nil {
		return nil, err
	}
	return &pb.GetSegmentResponse{Segment: out}, nil
}

// Page sizes of ListSegments.
const (
	defaultSegmentPage = 1000
	maxSegmentPage     = 10000
)

// Page sizes of ListDatabases and ListCollections, whose tokens are names.
const (
	defaultNamePage = 100
	maxNamePage     = 1000
)

// pageByteBudget bounds the encoded items of one listing page. It is well below the
// 16 MiB gRPC message limit — and below the 4 MiB receive limit most gRPC clients
// (grpcurl, a default Go client) start with — so a page always fits; a page holds at
// least one item, and no single item (a 1 MiB schema, a 10,000-file segment) comes
// near the message limit.
const pageByteBudget = 3 << 20

// pageBudget counts a page's items and encoded bytes.
type pageBudget struct {
	items, maxItems, bytes int
}

func newPageBudget(maxItems int) *pageBudget { return &pageBudget{maxItems: maxItems} }

// fits reports whether item still fits on the page and, if so, counts it. The first
// item always fits, so a listing always makes progress.
func (b *pageBudget) fits(item proto.Message) bool {
	size := proto.Size(item) + 8 // the field tag and length prefix, generously
	if b.items > 0 && (b.items >= b.maxItems || b.bytes+size > pageByteBudget) {
		return false
	}
	b.items++
	b.bytes += size
	return true
}

// afterName returns the index of the first item of a name-ordered list whose name
// sorts after token (0 for an empty token). The token is the last name of the previous
// page, not an offset, so items created or dropped meanwhile neither repeat nor skip
// the rest.
func afterName[T any](items []T, name func(T) string, token string) int {
	if token == "" {
		return 0
	}
	i, found := slices.BinarySearchFunc(items, token, func(it T, t string) int { return strings.Compare(name(it), t) })
	if found {
		i++
	}
	return i
}

// parsePageSize reads a listing's page size: 0 means def.
func parsePageSize(size uint32, def, limit int) (int, error) {
	switch {
	case size == 0:
		return def, nil
	case int64(size) > int64(limit):
		return 0, status.Errorf(codes.InvalidArgument, "page_size %d is over the limit of %d", size, limit)
	}
	return int(size), nil
}

// parsePage reads a listing's page size (0 means def) and page token: the id of the
// last item of the previous page, as the server wrote it.
func parsePage(size uint32, token string, def, limit int) (pageSize int, after uint64, err error) {
	if pageSize, err = parsePageSize(size, def, limit); err != nil {
		return 0, 0, err
	}
	if token != "" {
		if after, err = strconv.ParseUint(token, 10, 64); err != nil {
			return 0, 0, status.Errorf(codes.InvalidArgument, "page_token %q is not one this server returned", token)
		}
	}
	return pageSize, after, nil
}

func (s *catalogService) ListSegments(ctx context.Context, req *pb.ListSegmentsRequest) (*pb.ListSegmentsResponse, error) {
	pageSize, after, err := parsePage(req.PageSize, req.PageToken, defaultSegmentPage, maxSegmentPage)
	if err != nil {
		return nil, err
	}
	for _, st := range req.States {
		if _, ok := pb.SegmentState_name[int32(st)]; !ok || st == pb.SegmentState_SEGMENT_STATE_UNSPECIFIED {
			return nil, status.Errorf(codes.InvalidArgument, "unknown segment state %d in the filter", st)
		}
	}
	v, err := s.b.ReadView(ctx, req.Consistency)
	if err != nil {
		return nil, err
	}
	c, _, err := v.Collection(req.Database, req.Collection)
	if err != nil {
		return nil, err
	}
	var partitionID uint64
	if req.Partition != "" {
		i := slices.IndexFunc(c.Partitions, func(p *fsmpb.Partition) bool { return p.Name == req.Partition })
		if i < 0 {
			return nil, status.Errorf(codes.NotFound, "partition %q not found in collection %q", req.Partition, c.Name)
		}
		partitionID = c.Partitions[i].Id
	}
	out := &pb.ListSegmentsResponse{}
	var convErr error
	last := uint64(0)
	budget := newPageBudget(pageSize)
	v.EachSegment(c.Id, after, func(seg *fsmpb.Segment) bool {
		if budget.items == pageSize {
			out.NextPageToken = strconv.FormatUint(last, 10)
			return false
		}
		if (partitionID != 0 && seg.PartitionId != partitionID) ||
			(len(req.States) > 0 && !slices.Contains(req.States, pb.SegmentState(seg.State))) {
			last = seg.Id // filtered out: the next page need not look at it again
			return true
		}
		conv, err := s.segment(seg, !req.WithoutFiles)
		if err != nil {
			convErr = err
			return false
		}
		if !budget.fits(conv) {
			// last is the segment before this one: the next page starts here.
			out.NextPageToken = strconv.FormatUint(last, 10)
			return false
		}
		last = seg.Id
		out.Segments = append(out.Segments, conv)
		return true
	})
	if convErr != nil {
		return nil, convErr
	}
	return out, nil
}
