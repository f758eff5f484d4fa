package client

import (
	"context"
	"errors"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/client/clienttest"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestClient connects to addrs with fast retries and closes the client at the end
// of the test.
func newTestClient(t *testing.T, cfg Config, addrs ...string) *Client {
	t.Helper()
	cfg.Endpoints = addrs
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = time.Millisecond
	}
	if cfg.MaxRetryBackoff == 0 {
		cfg.MaxRetryBackoff = 5 * time.Millisecond
	}
	cl, err := NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cl.Close()) })
	return cl
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// failFirst answers the first n calls of method with err.
func failFirst(method string, n int32, err error) clienttest.Interceptor {
	var seen atomic.Int32
	return func(_ context.Context, m string, _ proto.Message) error {
		if m == method && seen.Add(1) <= n {
			return err
		}
		return nil
	}
}

func always(err error) clienttest.Interceptor {
	return func(context.Context, string, proto.Message) error { return err }
}

// callsOf returns the calls of method a server received.
func callsOf(s *clienttest.Server, method string) []clienttest.Call {
	var out []clienttest.Call
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestIDStaysTheSameAcrossRetries(t *testing.T) {
	ctx := testContext(t)
	srv := clienttest.Start(t, clienttest.Options{})
	srv.SetInterceptor(failFirst("CreateCollection", 2, status.Error(codes.Unavailable, "no leader")))
	cl := newTestClient(t, Config{}, srv.Addr())

	opt := NewCreateCollectionOption("docs")
	coll, err := cl.CreateCollection(ctx, opt)
	require.NoError(t, err)
	require.Equal(t, "docs", coll.GetName())

	calls := callsOf(srv, "CreateCollection")
	require.Len(t, calls, 3)
	require.Regexp(t, requestIDPattern, calls[0].RequestID)
	for _, c := range calls {
		require.Equal(t, calls[0].RequestID, c.RequestID, "a retry must reuse the request id")
	}

	// The same builder used again is a new logical call: new id (and here a name clash).
	_, err = cl.CreateCollection(ctx, opt)
	require.ErrorIs(t, err, ErrAlreadyExists)
	calls = callsOf(srv, "CreateCollection")
	require.Len(t, calls, 4)
	require.NotEqual(t, calls[0].RequestID, calls[3].RequestID)
}

func TestEveryWriteSetsARequestID(t *testing.T) {
	ctx := testContext(t)
	srv := clienttest.Start(t, clienttest.Options{})
	cl := newTestClient(t, Config{}, srv.Addr())

	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("db1").WithProperty("owner", "me"))
	require.NoError(t, err)
	_, err = cl.CreateCollection(ctx, NewCreateCollectionOption("docs").WithDatabase("db1").WithPartitions("p1"))
	require.NoError(t, err)
	_, err = cl.AlterCollection(ctx, NewAlterCollectionOption("docs").WithDatabase("db1").WithProperty("k", "v"))
	require.NoError(t, err)
	_, err = cl.CreatePartition(ctx, NewCreatePartitionOption("docs", "p2").WithDatabase("db1"))
	require.NoError(t, err)
	_, err = cl.DropPartition(ctx, NewDropPartitionOption("docs", "p2").WithDatabase("db1"))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, NewCreateIndexOption("docs", "vec", 101).WithDatabase("db1").WithParam("index_type", "HNSW"))
	require.NoError(t, err)
	seg, err := cl.AllocateSegment(ctx, NewAllocateSegmentOption("docs").WithDatabase("db1").WithPartition("p1").WithLease(time.Minute))
	require.NoError(t, err)
	file := &snapkeepv1.File{Key: seg.GetPrefix() + "insert/100/1", Kind: snapkeepv1.FileKind_FILE_KIND_INSERT, FieldId: 100, Size: 1}
	_, err = cl.FlushSegment(ctx, NewFlushSegmentOption(seg.GetId()).WithRowCount(1).WithFiles(file))
	require.NoError(t, err)
	build, err := cl.AllocateIndexBuild(ctx, NewAllocateIndexBuildOption(seg.GetId(), "vec").WithLease(time.Minute))
	require.NoError(t, err)
	indexFile := &snapkeepv1.File{Key: build.GetBuild().GetPrefix() + "hnsw.bin", Kind: snapkeepv1.FileKind_FILE_KIND_INDEX, Size: 1}
	_, err = cl.AddIndexBuild(ctx, NewAddIndexBuildOption(seg.GetId(), build.GetBuild().GetBuildId()).WithFiles(indexFile))
	require.NoError(t, err)
	out, err := cl.AllocateSegment(ctx, NewAllocateSegmentOption("docs").WithDatabase("db1"))
	require.NoError(t, err)
	_, err = cl.CompactSegments(ctx, NewCompactSegmentsOption(seg.GetId()).WithOutput(out.GetId(), 1))
	require.NoError(t, err)
	_, err = cl.DropSegments(ctx, NewDropSegmentsOption(out.GetId()))
	require.NoError(t, err)
	_, err = cl.DropIndex(ctx, NewDropIndexOption("docs", "vec").WithDatabase("db1"))
	require.NoError(t, err)
	_, err = cl.DropCollection(ctx, NewDropCollectionOption("docs").WithDatabase("db1"))
	require.NoError(t, err)
	require.NoError(t, cl.DropDatabase(ctx, NewDropDatabaseOption("db1")))

	seen := make(map[string]bool)
	for _, c := range srv.Calls() {
		require.Regexp(t, requestIDPattern, c.RequestID, "%s has no request id", c.Method)
		require.False(t, seen[c.RequestID], "%s reuses a request id", c.Method)
		seen[c.RequestID] = true
	}
	require.Len(t, seen, 16)
}

func TestRetriableErrorsMoveToTheNextEndpoint(t *testing.T) {
	tests := []struct {
		name   string
		breakA func(a *clienttest.Server)
	}{
		{"unavailable", func(a *clienttest.Server) {
			a.SetInterceptor(always(status.Error(codes.Unavailable, "node is shutting down")))
		}},
		{"aborted", func(a *clienttest.Server) { a.SetInterceptor(always(status.Error(codes.Aborted, "leadership lost"))) }},
		{"connection refused", func(a *clienttest.Server) { a.Stop() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			a := clienttest.Start(t, clienttest.Options{NodeID: "a"})
			b := clienttest.Start(t, clienttest.Options{NodeID: "b"})
			a.SetLeader("") // a does not know the leader, so the client must search
			tt.breakA(a)
			cl := newTestClient(t, Config{}, a.Addr(), b.Addr())

			_, err := cl.CreateCollection(ctx, NewCreateCollectionOption("docs"))
			require.NoError(t, err)
			require.Len(t, callsOf(b, "CreateCollection"), 1)
			require.Equal(t, b.Addr(), cl.PreferredEndpoint())

			// Reads that are not stale follow the preference too.
			_, err = cl.DescribeCollection(ctx, NewDescribeCollectionOption("docs"))
			require.NoError(t, err)
			require.Empty(t, callsOf(a, "DescribeCollection"))
		})
	}
}

func TestLeaderMetadataMovesWritesToTheLeader(t *testing.T) {
	ctx := testContext(t)
	follower := clienttest.Start(t, clienttest.Options{NodeID: "follower"})
	leader := clienttest.Start(t, clienttest.Options{NodeID: "leader"})
	follower.SetLeader(leader.Addr())
	cl := newTestClient(t, Config{}, follower.Addr(), leader.Addr())

	// The follower serves the first call (the server forwards it) and names the leader.
	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("one"))
	require.NoError(t, err)
	require.Equal(t, leader.Addr(), cl.PreferredEndpoint())

	_, err = cl.CreateDatabase(ctx, NewCreateDatabaseOption("two"))
	require.NoError(t, err)
	require.Len(t, callsOf(follower, "CreateDatabase"), 1)
	require.Len(t, callsOf(leader, "CreateDatabase"), 1)
}

func TestLeaderInErrorMetadataRedirectsAtOnce(t *testing.T) {
	for _, where := range []string{"header", "trailer"} {
		t.Run(where, func(t *testing.T) {
			ctx := testContext(t)
			follower := clienttest.Start(t, clienttest.Options{NodeID: "follower"})
			leader := clienttest.Start(t, clienttest.Options{NodeID: "leader"})
			follower.SetLeader("")
			follower.SetInterceptor(func(ctx context.Context, _ string, _ proto.Message) error {
				md := metadata.Pairs(LeaderMetadataKey, leader.Addr())
				if where == "header" {
					_ = grpc.SetHeader(ctx, md)
				} else {
					_ = grpc.SetTrailer(ctx, md)
				}
				return status.Error(codes.Unavailable, "not the leader")
			})
			// A long backoff shows that the redirect does not wait for it.
			cl := newTestClient(t, Config{RetryBackoff: time.Minute, MaxRetryBackoff: time.Minute}, follower.Addr(), leader.Addr())

			_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("db"))
			require.NoError(t, err)
			fc, lc := callsOf(follower, "CreateDatabase"), callsOf(leader, "CreateDatabase")
			require.Len(t, fc, 1)
			require.Len(t, lc, 1)
			require.Equal(t, fc[0].RequestID, lc[0].RequestID)
		})
	}
}

func TestLeaderOutsideTheEndpointsIsDialled(t *testing.T) {
	ctx := testContext(t)
	follower := clienttest.Start(t, clienttest.Options{NodeID: "follower"})
	leader := clienttest.Start(t, clienttest.Options{NodeID: "leader"})
	follower.SetLeader(leader.Addr())
	cl := newTestClient(t, Config{}, follower.Addr())

	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("one"))
	require.NoError(t, err)
	require.Equal(t, []string{follower.Addr(), leader.Addr()}, cl.Endpoints())
	_, err = cl.CreateDatabase(ctx, NewCreateDatabaseOption("two"))
	require.NoError(t, err)
	require.Len(t, callsOf(leader, "CreateDatabase"), 1)
}

func TestUnreachableLeaderIsNotChased(t *testing.T) {
	ctx := testContext(t)
	follower := clienttest.Start(t, clienttest.Options{NodeID: "follower"})
	follower.SetLeader("127.0.0.1:1") // an advertised address this client cannot reach
	cl := newTestClient(t, Config{}, follower.Addr())

	_, err := cl.ListDatabases(ctx)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:1", cl.PreferredEndpoint())

	// The leader refuses the connection; the follower serves the call instead.
	_, err = cl.ListDatabases(ctx)
	require.NoError(t, err)
	require.Equal(t, follower.Addr(), cl.PreferredEndpoint(), "the failed leader is not followed again at once")
	_, err = cl.ListDatabases(ctx)
	require.NoError(t, err)
	require.Len(t, follower.Calls(), 3)
}

func TestErrorsMapFromStatusCodesAndAreNotRetried(t *testing.T) {
	tests := []struct {
		code     codes.Code
		sentinel error
		text     string
	}{
		{codes.NotFound, ErrNotFound, "not found"},
		{codes.AlreadyExists, ErrAlreadyExists, "already exists"},
		{codes.InvalidArgument, ErrInvalidArgument, "invalid argument"},
		{codes.FailedPrecondition, ErrFailedPrecondition, "failed precondition"},
		{codes.ResourceExhausted, ErrResourceExhausted, "resource exhausted"},
		{codes.PermissionDenied, ErrPermissionDenied, "permission denied"},
		{codes.Unauthenticated, ErrUnauthenticated, "unauthenticated"},
		{codes.DeadlineExceeded, ErrDeadlineExceeded, "deadline exceeded"},
		{codes.Internal, ErrInternal, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			ctx := testContext(t)
			srv := clienttest.Start(t, clienttest.Options{})
			const msg = `collection "docs" not found in database "default"`
			srv.SetInterceptor(always(status.Error(tt.code, msg)))
			cl := newTestClient(t, Config{}, srv.Addr())

			_, err := cl.DescribeCollection(ctx, NewDescribeCollectionOption("docs"))
			require.ErrorIs(t, err, tt.sentinel)
			require.Equal(t, tt.text+": "+msg, err.Error())
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tt.code, e.Code)
			require.Equal(t, msg, e.Message)
			require.Equal(t, tt.code, status.Code(err))
			require.Equal(t, tt.code, Code(err))
			require.NotErrorIs(t, err, context.DeadlineExceeded, "a server's status is not the caller's deadline")
			for _, other := range []error{ErrNotFound, ErrAlreadyExists, ErrUnavailable} {
				if other != tt.sentinel {
					require.NotErrorIs(t, err, other)
				}
			}
			require.Len(t, srv.Calls(), 1, "non-retriable errors must not be retried")
		})
	}
}

func TestRetriesStopAtTheContextDeadline(t *testing.T) {
	srv := clienttest.Start(t, clienttest.Options{})
	srv.SetInterceptor(always(status.Error(codes.Unavailable, "no leader")))
	cl := newTestClient(t, Config{MaxRetries: 1000, RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond}, srv.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("db"))
	elapsed := time.Since(start)

	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, ErrDeadlineExceeded)
	require.Contains(t, err.Error(), "last error: unavailable: no leader")
	require.Less(t, elapsed, 2*time.Second)
	require.Greater(t, len(srv.Calls()), 1)
}

func TestASlowCallEndsAtTheContextDeadline(t *testing.T) {
	srv := clienttest.Start(t, clienttest.Options{})
	srv.SetInterceptor(func(ctx context.Context, _ string, _ proto.Message) error {
		<-ctx.Done() // the server never answers in time
		return status.FromContextError(ctx.Err()).Err()
	})
	cl := newTestClient(t, Config{}, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := cl.DropSegments(ctx, NewDropSegmentsOption(1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, ErrDeadlineExceeded)
	require.Len(t, srv.Calls(), 1)
}

func TestCancelStopsRetries(t *testing.T) {
	srv := clienttest.Start(t, clienttest.Options{})
	cl := newTestClient(t, Config{RetryBackoff: time.Hour, MaxRetryBackoff: time.Hour}, srv.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	srv.SetInterceptor(func(context.Context, string, proto.Message) error {
		cancel() // the caller gives up while the first attempt is in flight
		return status.Error(codes.Unavailable, "no leader")
	})
	_, err := cl.ListDatabases(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, ErrCanceled)
	require.Len(t, srv.Calls(), 1)

	// A context that is already done makes no call at all.
	_, err = cl.ListDatabases(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, srv.Calls(), 1)
}

func TestMaxRetries(t *testing.T) {
	tests := []struct {
		maxRetries int
		wantCalls  int
	}{
		{maxRetries: 3, wantCalls: 4},
		{maxRetries: -1, wantCalls: 1},
		{maxRetries: 0, wantCalls: DefaultMaxRetries + 1},
	}
	for _, tt := range tests {
		ctx := testContext(t)
		srv := clienttest.Start(t, clienttest.Options{})
		srv.SetInterceptor(always(status.Error(codes.Unavailable, "no leader")))
		cl := newTestClient(t, Config{MaxRetries: tt.maxRetries, RetryBackoff: time.Microsecond, MaxRetryBackoff: time.Microsecond}, srv.Addr())
		_, err := cl.ListDatabases(ctx)
		require.ErrorIs(t, err, ErrUnavailable)
		require.Equal(t, "unavailable: no leader", err.Error())
		require.Len(t, srv.Calls(), tt.wantCalls, "MaxRetries %d", tt.maxRetries)
	}
}

func TestStaleReadsSpreadOverEndpoints(t *testing.T) {
	ctx := testContext(t)
	a := clienttest.Start(t, clienttest.Options{NodeID: "a"})
	b := clienttest.Start(t, clienttest.Options{NodeID: "b"})
	cl := newTestClient(t, Config{}, a.Addr(), b.Addr())
	for range 4 {
		_, err := cl.ListDatabases(ctx, WithStale())
		require.NoError(t, err)
	}
	require.Len(t, a.Calls(), 2)
	require.Len(t, b.Calls(), 2)
	req := a.Calls()[0].Request.(*snapkeepv1.ListDatabasesRequest)
	require.Equal(t, snapkeepv1.ReadConsistency_READ_CONSISTENCY_STALE, req.GetConsistency())
}

func TestListAllSegmentsPagesThroughEverything(t *testing.T) {
	ctx := testContext(t)
	srv := clienttest.Start(t, clienttest.Options{})
	cl := newTestClient(t, Config{}, srv.Addr())
	_, err := cl.CreateCollection(ctx, NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	var want []uint64
	for range 5 {
		seg, err := cl.AllocateSegment(ctx, NewAllocateSegmentOption("docs"))
		require.NoError(t, err)
		want = append(want, seg.GetId())
	}

	opt := NewListSegmentsOption("docs").WithPageSize(2).WithoutFiles().
		WithStates(snapkeepv1.SegmentState_SEGMENT_STATE_ALLOCATED)
	var got []uint64
	for seg, err := range cl.ListAllSegments(ctx, opt) {
		require.NoError(t, err)
		got = append(got, seg.GetId())
	}
	require.Equal(t, want, got)
	require.Len(t, callsOf(srv, "ListSegments"), 3)

	// Breaking out of the loop fetches no more pages.
	for range cl.ListAllSegments(ctx, opt) {
		break
	}
	require.Len(t, callsOf(srv, "ListSegments"), 4)

	// An error ends the iteration with that error.
	var errs []error
	for seg, err := range cl.ListAllSegments(ctx, NewListSegmentsOption("nope")) {
		require.Nil(t, seg)
		errs = append(errs, err)
	}
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], ErrNotFound)
}

func TestBuildersFillTheirRequests(t *testing.T) {
	tests := []struct {
		name string
		got  proto.Message
		want proto.Message
	}{
		{
			"create collection",
			NewCreateCollectionOption("docs").WithDatabase("db").WithSchema([]byte("s")).
				WithProperties(map[string]string{"a": "1"}).WithProperty("b", "2").
				WithPartitions("p1").WithPartitions("p2").WithDescription("d").req,
			&snapkeepv1.CreateCollectionRequest{Database: "db", Name: "docs", Schema: []byte("s"),
				Properties: map[string]string{"a": "1", "b": "2"}, Partitions: []string{"p1", "p2"}, Description: "d"},
		},
		{
			"alter collection",
			NewAlterCollectionOption("docs").WithDatabase("db").WithProperty("a", "1").WithDeleteProperty("b", "c").req,
			&snapkeepv1.AlterCollectionRequest{Database: "db", Name: "docs", SetProperties: map[string]string{"a": "1"}, DeleteProperties: []string{"b", "c"}},
		},
		{
			"describe collection stale",
			NewDescribeCollectionOption("docs").WithDatabase("db").WithStale().req,
			&snapkeepv1.DescribeCollectionRequest{Database: "db", Name: "docs", Consistency: snapkeepv1.ReadConsistency_READ_CONSISTENCY_STALE},
		},
		{
			"create index",
			NewCreateIndexOption("docs", "vec", 7).WithParams(map[string]string{"M": "16"}).WithParam("metric", "L2").req,
			&snapkeepv1.CreateIndexRequest{Collection: "docs", Name: "vec", FieldId: 7, Params: map[string]string{"M": "16", "metric": "L2"}},
		},
		{
			"allocate segment",
			NewAllocateSegmentOption("docs").WithDatabase("db").WithPartition("p").WithLease(90 * time.Second).req,
			&snapkeepv1.AllocateSegmentRequest{Database: "db", Collection: "docs", Partition: "p", LeaseMs: 90000},
		},
		{
			"allocate segment sub-millisecond lease",
			NewAllocateSegmentOption("docs").WithLease(time.Microsecond).req,
			&snapkeepv1.AllocateSegmentRequest{Collection: "docs", LeaseMs: 1},
		},
		{
			"compact",
			NewCompactSegmentsOption(1, 2).WithOutput(3, 10, &snapkeepv1.File{Key: "k"}).req,
			&snapkeepv1.CompactSegmentsRequest{Inputs: []uint64{1, 2}, Outputs: []*snapkeepv1.CompactOutput{{SegmentId: 3, RowCount: 10, Files: []*snapkeepv1.File{{Key: "k"}}}}},
		},
		{
			"list segments",
			NewListSegmentsOption("docs").WithDatabase("db").WithPartition("p").
				WithStates(snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED).WithPageSize(-5).
				WithPageToken("t").WithoutFiles().WithStale().req,
			&snapkeepv1.ListSegmentsRequest{Database: "db", Collection: "docs", Partition: "p",
				States: []snapkeepv1.SegmentState{snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED}, PageToken: "t",
				WithoutFiles: true, Consistency: snapkeepv1.ReadConsistency_READ_CONSISTENCY_STALE},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.True(t, proto.Equal(tt.want, tt.got), "got %v\nwant %v", tt.got, tt.want)
		})
	}
}

func TestNilOptionIsAnInvalidArgument(t *testing.T) {
	srv := clienttest.Start(t, clienttest.Options{})
	cl := newTestClient(t, Config{}, srv.Addr())
	_, err := cl.CreateCollection(testContext(t), nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.Empty(t, srv.Calls())
}

func TestNewRejectsBadEndpoints(t *testing.T) {
	for _, eps := range [][]string{nil, {""}, {"127.0.0.1:1", " "}} {
		_, err := New(context.Background(), eps...)
		require.ErrorIs(t, err, ErrInvalidArgument, "%q", eps)
	}
}

func TestCallsAfterCloseFail(t *testing.T) {
	cl, err := New(context.Background(), "127.0.0.1:1")
	require.NoError(t, err)
	require.NoError(t, cl.Close())
	require.NoError(t, cl.Close(), "Close is idempotent")
	_, err = cl.ClusterStatus(context.Background())
	require.ErrorIs(t, err, ErrClosed)
}

func TestBackoffGrowsWithJitterUpToTheCap(t *testing.T) {
	cl := &Client{cfg: Config{RetryBackoff: 100 * time.Millisecond, MaxRetryBackoff: time.Second}}
	for n, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 80: time.Second} {
		for range 20 {
			d := cl.backoff(n)
			require.GreaterOrEqual(t, d, full/2, "retry %d", n)
			require.Less(t, d, full, "retry %d", n)
		}
	}
}

func TestErrorText(t *testing.T) {
	require.Equal(t, "failed precondition: segment 3 is flushed", (&Error{Code: codes.FailedPrecondition, Message: "segment 3 is flushed"}).Error())
	require.Equal(t, "not found", ErrNotFound.Error())
	require.Equal(t, "data loss", codeText(codes.DataLoss))
	require.Equal(t, "ok", codeText(codes.OK))
	require.False(t, errors.Is(&Error{Code: codes.NotFound, Message: "a"}, &Error{Code: codes.NotFound, Message: "b"}))
	require.Equal(t, codes.Unknown, Code(errors.New("x")))
	require.Equal(t, codes.OK, Code(nil))
}
