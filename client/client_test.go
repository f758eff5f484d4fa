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

// failFirst answers the first n calls of method with err, and later ones with resp.
func failFirst(method string, n int32, err error, resp proto.Message) script {
	var seen atomic.Int32
	return func(_ context.Context, m string, _ proto.Message) (proto.Message, error) {
		if m != method {
			return nil, nil
		}
		if seen.Add(1) <= n {
			return nil, err
		}
		return resp, nil
	}
}

// always answers every call with err.
func always(err error) script {
	return func(context.Context, string, proto.Message) (proto.Message, error) { return nil, err }
}

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestIDStaysTheSameAcrossRetries(t *testing.T) {
	ctx := testContext(t)
	srv := startFake(t)
	srv.setScript(failFirst("CreateCollection", 2, status.Error(codes.Unavailable, "no leader"),
		&snapkeepv1.CreateCollectionResponse{Collection: &snapkeepv1.Collection{Id: 7, Name: "docs"}}))
	cl := newTestClient(t, Config{}, srv.addr)

	opt := NewCreateCollectionOption("docs")
	coll, err := cl.CreateCollection(ctx, opt)
	require.NoError(t, err)
	require.Equal(t, "docs", coll.GetName())
	require.EqualValues(t, 7, coll.GetId())

	calls := srv.received("CreateCollection")
	require.Len(t, calls, 3)
	require.Regexp(t, requestIDPattern, calls[0].RequestID)
	for _, c := range calls {
		require.Equal(t, calls[0].RequestID, c.RequestID, "a retry must reuse the request id")
	}

	// The same builder used again is a new logical call: new id.
	_, err = cl.CreateCollection(ctx, opt)
	require.NoError(t, err)
	calls = srv.received("CreateCollection")
	require.Len(t, calls, 4)
	require.Regexp(t, requestIDPattern, calls[3].RequestID)
	require.NotEqual(t, calls[0].RequestID, calls[3].RequestID)
}

func TestEveryWriteSetsARequestID(t *testing.T) {
	ctx := testContext(t)
	srv := startFake(t)
	cl := newTestClient(t, Config{}, srv.addr)

	discard := func(_ any, err error) error { return err }
	writes := []struct {
		method string
		call   func() error
	}{
		{"CreateDatabase", func() error { return discard(cl.CreateDatabase(ctx, NewCreateDatabaseOption("db1"))) }},
		{"CreateCollection", func() error { return discard(cl.CreateCollection(ctx, NewCreateCollectionOption("docs"))) }},
		{"AlterCollection", func() error {
			return discard(cl.AlterCollection(ctx, NewAlterCollectionOption("docs").WithProperty("k", "v")))
		}},
		{"CreatePartition", func() error { return discard(cl.CreatePartition(ctx, NewCreatePartitionOption("docs", "p2"))) }},
		{"DropPartition", func() error { return discard(cl.DropPartition(ctx, NewDropPartitionOption("docs", "p2"))) }},
		{"CreateIndex", func() error { return discard(cl.CreateIndex(ctx, NewCreateIndexOption("docs", "vec", 101))) }},
		{"AllocateSegment", func() error { return discard(cl.AllocateSegment(ctx, NewAllocateSegmentOption("docs"))) }},
		{"FlushSegment", func() error { return discard(cl.FlushSegment(ctx, NewFlushSegmentOption(1))) }},
		{"AllocateIndexBuild", func() error { return discard(cl.AllocateIndexBuild(ctx, NewAllocateIndexBuildOption(1, "vec"))) }},
		{"AddIndexBuild", func() error { return discard(cl.AddIndexBuild(ctx, NewAddIndexBuildOption(1, 2))) }},
		{"CompactSegments", func() error {
			return discard(cl.CompactSegments(ctx, NewCompactSegmentsOption(1).WithOutput(3, 1)))
		}},
		{"DropSegments", func() error { return discard(cl.DropSegments(ctx, NewDropSegmentsOption(3))) }},
		{"DropIndex", func() error { return discard(cl.DropIndex(ctx, NewDropIndexOption("docs", "vec"))) }},
		{"DropCollection", func() error { return discard(cl.DropCollection(ctx, NewDropCollectionOption("docs"))) }},
		{"DropDatabase", func() error { return cl.DropDatabase(ctx, NewDropDatabaseOption("db1")) }},
	}
	for _, w := range writes {
		require.NoError(t, w.call(), w.method)
	}

	calls := srv.received()
	require.Len(t, calls, len(writes))
	seen := make(map[string]bool)
	for i, c := range calls {
		require.Equal(t, writes[i].method, c.Method)
		require.Regexp(t, requestIDPattern, c.RequestID, "%s has no request id", c.Method)
		require.False(t, seen[c.RequestID], "%s reuses a request id", c.Method)
		seen[c.RequestID] = true
	}
}

func TestRetriableErrorsMoveToTheNextEndpoint(t *testing.T) {
	tests := []struct {
		name   string
		breakA func(a *fakeNode)
	}{
		{"unavailable", func(a *fakeNode) {
			a.setScript(always(status.Error(codes.Unavailable, "node is shutting down")))
		}},
		{"aborted", func(a *fakeNode) { a.setScript(always(status.Error(codes.Aborted, "leadership lost"))) }},
		{"connection refused", func(a *fakeNode) { a.stop() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			a := startFake(t)
			b := startFake(t)
			a.setLeader("") // a does not know the leader, so the client must search
			tt.breakA(a)
			cl := newTestClient(t, Config{}, a.addr, b.addr)

			_, err := cl.CreateCollection(ctx, NewCreateCollectionOption("docs"))
			require.NoError(t, err)
			require.Len(t, b.received("CreateCollection"), 1)
			require.Equal(t, b.addr, cl.PreferredEndpoint())

			// Reads that are not stale follow the preference too.
			_, err = cl.DescribeCollection(ctx, NewDescribeCollectionOption("docs"))
			require.NoError(t, err)
			require.Empty(t, a.received("DescribeCollection"))
		})
	}
}

func TestLeaderMetadataMovesWritesToTheLeader(t *testing.T) {
	ctx := testContext(t)
	follower := startFake(t)
	leader := startFake(t)
	follower.setLeader(leader.addr)
	cl := newTestClient(t, Config{}, follower.addr, leader.addr)

	// The follower serves the first call (the server forwards it) and names the leader.
	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("one"))
	require.NoError(t, err)
	require.Equal(t, leader.addr, cl.PreferredEndpoint())

	_, err = cl.CreateDatabase(ctx, NewCreateDatabaseOption("two"))
	require.NoError(t, err)
	require.Len(t, follower.received("CreateDatabase"), 1)
	require.Len(t, leader.received("CreateDatabase"), 1)
}

func TestLeaderInErrorMetadataRedirectsAtOnce(t *testing.T) {
	for _, where := range []string{"header", "trailer"} {
		t.Run(where, func(t *testing.T) {
			ctx := testContext(t)
			follower := startFake(t)
			leader := startFake(t)
			follower.setLeader("")
			follower.setScript(func(ctx context.Context, _ string, _ proto.Message) (proto.Message, error) {
				md := metadata.Pairs(LeaderMetadataKey, leader.addr)
				if where == "header" {
					_ = grpc.SetHeader(ctx, md)
				} else {
					_ = grpc.SetTrailer(ctx, md)
				}
				return nil, status.Error(codes.Unavailable, "not the leader")
			})
			// A long backoff shows that the redirect does not wait for it.
			cl := newTestClient(t, Config{RetryBackoff: time.Minute, MaxRetryBackoff: time.Minute}, follower.addr, leader.addr)

			_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("db"))
			require.NoError(t, err)
			fc, lc := follower.received("CreateDatabase"), leader.received("CreateDatabase")
			require.Len(t, fc, 1)
			require.Len(t, lc, 1)
			require.Equal(t, fc[0].RequestID, lc[0].RequestID)
		})
	}
}

func TestLeaderOutsideTheEndpointsIsDialled(t *testing.T) {
	ctx := testContext(t)
	follower := startFake(t)
	leader := startFake(t)
	follower.setLeader(leader.addr)
	cl := newTestClient(t, Config{}, follower.addr)

	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("one"))
	require.NoError(t, err)
	require.Equal(t, []string{follower.addr, leader.addr}, cl.Endpoints())
	_, err = cl.CreateDatabase(ctx, NewCreateDatabaseOption("two"))
	require.NoError(t, err)
	require.Len(t, leader.received("CreateDatabase"), 1)
}

func TestUnreachableLeaderIsNotChased(t *testing.T) {
	ctx := testContext(t)
	follower := startFake(t)
	follower.setLeader("127.0.0.1:1") // an advertised address this client cannot reach
	cl := newTestClient(t, Config{}, follower.addr)

	_, err := cl.ListDatabases(ctx)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:1", cl.PreferredEndpoint())

	// The leader refuses the connection; the follower serves the call instead.
	_, err = cl.ListDatabases(ctx)
	require.NoError(t, err)
	require.Equal(t, follower.addr, cl.PreferredEndpoint(), "the failed leader is not followed again at once")
	_, err = cl.ListDatabases(ctx)
	require.NoError(t, err)
	require.Len(t, follower.received(), 3)
}

// A failover as the client sees it: the leader's connection is refused, a follower
// answers Unavailable naming the new leader, and the call goes there — each step at
// once, with the same request id (so the write applies once), although a wait would
// take a minute.
func TestFailoverGoesToTheNamedLeaderWithoutWaiting(t *testing.T) {
	ctx := testContext(t)
	a, b, c := startFake(t), startFake(t), startFake(t)
	cl := newTestClient(t, Config{RetryBackoff: time.Minute, MaxRetryBackoff: time.Minute}, a.addr, b.addr, c.addr)
	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("before"))
	require.NoError(t, err)
	require.Equal(t, a.addr, cl.PreferredEndpoint())

	a.stop()
	b.setLeader(c.addr)
	b.setScript(always(status.Error(codes.Unavailable, "leader changed; retry")))
	c.setLeader(c.addr)
	start := time.Now()
	_, err = cl.CreateDatabase(ctx, NewCreateDatabaseOption("after"))
	require.NoError(t, err)
	require.Less(t, time.Since(start), 5*time.Second, "no wait: every retry had somewhere new to go")
	bc, cc := b.received("CreateDatabase"), c.received("CreateDatabase")
	require.Len(t, bc, 1)
	require.Len(t, cc, 1)
	require.Equal(t, bc[0].RequestID, cc[0].RequestID, "a retried write keeps its request id")
	require.Equal(t, c.addr, cl.PreferredEndpoint())
}

// Every hint that points somewhere new is followed at once, not only the first.
func TestEveryNewLeaderHintIsFollowedAtOnce(t *testing.T) {
	ctx := testContext(t)
	a, b, c := startFake(t), startFake(t), startFake(t)
	// a names b, b (which lost the leadership meanwhile) names c.
	a.setLeader(b.addr)
	a.setScript(always(status.Error(codes.Unavailable, "leader changed; retry")))
	b.setLeader(c.addr)
	b.setScript(always(status.Error(codes.Unavailable, "not the leader any more")))
	cl := newTestClient(t, Config{RetryBackoff: time.Minute, MaxRetryBackoff: time.Minute}, a.addr)

	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("db"))
	require.NoError(t, err)
	require.Len(t, a.received(), 1)
	require.Len(t, b.received(), 1)
	require.Len(t, c.received(), 1)
	require.Equal(t, c.addr, cl.PreferredEndpoint())
}

// While no node names a leader (an election), every endpoint is tried once, then the
// call waits RetryBackoff and polls again; the waits count against MaxRetries.
func TestNoLeaderAnywhereWaitsBetweenRounds(t *testing.T) {
	ctx := testContext(t)
	a, b := startFake(t), startFake(t)
	for _, f := range []*fakeNode{a, b} {
		f.setLeader("")
		f.setScript(always(status.Error(codes.Unavailable, "no leader elected right now; retry shortly")))
	}
	const backoff = 40 * time.Millisecond
	cl := newTestClient(t, Config{MaxRetries: 3, RetryBackoff: backoff, MaxRetryBackoff: time.Minute}, a.addr, b.addr)

	start := time.Now()
	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("db"))
	elapsed := time.Since(start)
	require.ErrorIs(t, err, ErrUnavailable)
	// Four rounds (the first and one after each of the 3 waits), each on both nodes.
	require.Len(t, a.received(), 4)
	require.Len(t, b.received(), 4)
	require.GreaterOrEqual(t, elapsed, 3*backoff/2, "three waits of at least RetryBackoff/2")

	// Once a node names the leader, the next round goes there.
	b.setScript(nil)
	a.setLeader(b.addr)
	_, err = cl.CreateDatabase(ctx, NewCreateDatabaseOption("db"))
	require.NoError(t, err)
	require.Equal(t, b.addr, cl.PreferredEndpoint())
}

// A leader that could not be reached is not chased while the followers still name it
// (they have not noticed it died): the call waits between rounds instead of spinning.
func TestDeadLeaderNamedByFollowersIsNotRetriedAtOnce(t *testing.T) {
	ctx := testContext(t)
	a, b, c := startFake(t), startFake(t), startFake(t)
	a.stop()
	for _, f := range []*fakeNode{b, c} {
		f.setLeader(a.addr)
		f.setScript(always(status.Error(codes.Unavailable, "leader n1 could not take the write; retry")))
	}
	cl := newTestClient(t, Config{MaxRetries: 2, RetryBackoff: 10 * time.Millisecond}, a.addr, b.addr, c.addr)

	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("db"))
	require.ErrorIs(t, err, ErrUnavailable)
	// Three rounds: a (refused), b, c; then b and c twice more, a cooling down.
	require.Len(t, b.received(), 3)
	require.Len(t, c.received(), 3)
}

func TestRetriesDisabledGoNowhereElse(t *testing.T) {
	ctx := testContext(t)
	follower, leader := startFake(t), startFake(t)
	follower.setLeader(leader.addr)
	follower.setScript(always(status.Error(codes.Unavailable, "leader changed; retry")))
	cl := newTestClient(t, Config{MaxRetries: -1}, follower.addr, leader.addr)
	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("db"))
	require.ErrorIs(t, err, ErrUnavailable)
	require.Len(t, follower.received(), 1)
	require.Empty(t, leader.received())
}

// A call polling through an election ends at its deadline with the default policy.
func TestPollingStopsAtTheDeadline(t *testing.T) {
	a, b := startFake(t), startFake(t)
	for _, f := range []*fakeNode{a, b} {
		f.setLeader("")
		f.setScript(always(status.Error(codes.Unavailable, "no leader elected right now; retry shortly")))
	}
	cl, err := NewWithConfig(context.Background(), Config{Endpoints: []string{a.addr, b.addr}})
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = cl.CreateDatabase(ctx, NewCreateDatabaseOption("db"))
	elapsed := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), "last error: unavailable: no leader elected")
	require.Less(t, elapsed, 5*time.Second)
	// It kept polling until the deadline (how often is TestBackoffPollsThenGrowsWith-
	// JitterUpToTheCap's, without a clock: a count of rounds in 300 ms depends on the
	// machine's load).
	require.GreaterOrEqual(t, len(a.received()), 2)
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
			srv := startFake(t)
			const msg = `collection "docs" not found in database "default"`
			srv.setScript(always(status.Error(tt.code, msg)))
			cl := newTestClient(t, Config{}, srv.addr)

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
			require.Len(t, srv.received(), 1, "non-retriable errors must not be retried")
		})
	}
}

func TestRetriesStopAtTheContextDeadline(t *testing.T) {
	srv := startFake(t)
	srv.setScript(always(status.Error(codes.Unavailable, "no leader")))
	cl := newTestClient(t, Config{MaxRetries: 1000, RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond}, srv.addr)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cl.CreateDatabase(ctx, NewCreateDatabaseOption("db"))
	elapsed := time.Since(start)

	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, ErrDeadlineExceeded)
	require.Contains(t, err.Error(), "last error: unavailable: no leader")
	require.Less(t, elapsed, 10*time.Second, "retries must stop at the deadline, not run on")
	require.Greater(t, len(srv.received()), 1)
}

func TestASlowCallEndsAtTheContextDeadline(t *testing.T) {
	srv := startFake(t)
	srv.setScript(func(ctx context.Context, _ string, _ proto.Message) (proto.Message, error) {
		<-ctx.Done() // the server never answers in time
		return nil, status.FromContextError(ctx.Err()).Err()
	})
	cl := newTestClient(t, Config{}, srv.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := cl.DropSegments(ctx, NewDropSegmentsOption(1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, ErrDeadlineExceeded)
	require.Len(t, srv.received(), 1)
}

func TestCancelStopsRetries(t *testing.T) {
	srv := startFake(t)
	cl := newTestClient(t, Config{RetryBackoff: time.Hour, MaxRetryBackoff: time.Hour}, srv.addr)
	ctx, cancel := context.WithCancel(context.Background())
	srv.setScript(func(context.Context, string, proto.Message) (proto.Message, error) {
		cancel() // the caller gives up while the first attempt is in flight
		return nil, status.Error(codes.Unavailable, "no leader")
	})
	_, err := cl.ListDatabases(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, ErrCanceled)
	require.Len(t, srv.received(), 1)

	// A context that is already done makes no call at all.
	_, err = cl.ListDatabases(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, srv.received(), 1)
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
		srv := startFake(t)
		srv.setScript(always(status.Error(codes.Unavailable, "no leader")))
		cl := newTestClient(t, Config{MaxRetries: tt.maxRetries, RetryBackoff: time.Microsecond, MaxRetryBackoff: time.Microsecond}, srv.addr)
		_, err := cl.ListDatabases(ctx)
		require.ErrorIs(t, err, ErrUnavailable)
		require.Equal(t, "unavailable: no leader", err.Error())
		require.Len(t, srv.received(), tt.wantCalls, "MaxRetries %d", tt.maxRetries)
	}
}

func TestStaleReadsSpreadOverEndpoints(t *testing.T) {
	ctx := testContext(t)
	a := startFake(t)
	b := startFake(t)
	cl := newTestClient(t, Config{}, a.addr, b.addr)
	for range 4 {
		_, err := cl.ListDatabases(ctx, WithStale())
		require.NoError(t, err)
	}
	require.Len(t, a.received(), 2)
	require.Len(t, b.received(), 2)
	req := a.received()[0].Request.(*snapkeepv1.ListDatabasesRequest)
	require.Equal(t, snapkeepv1.ReadConsistency_READ_CONSISTENCY_STALE, req.GetConsistency())
}

func TestListAllSegmentsPagesThroughEverything(t *testing.T) {
	ctx := testContext(t)
	srv := startFake(t)
	// Three pages of segments 1..5, keyed by the token that asks for them.
	pages := map[string]*snapkeepv1.ListSegmentsResponse{
		"":   {Segments: []*snapkeepv1.Segment{{Id: 1}, {Id: 2}}, NextPageToken: "t2"},
		"t2": {Segments: []*snapkeepv1.Segment{{Id: 3}, {Id: 4}}, NextPageToken: "t4"},
		"t4": {Segments: []*snapkeepv1.Segment{{Id: 5}}},
	}
	srv.setScript(func(_ context.Context, _ string, req proto.Message) (proto.Message, error) {
		r := req.(*snapkeepv1.ListSegmentsRequest)
		if r.GetCollection() != "docs" {
			return nil, status.Errorf(codes.NotFound, "collection %q not found in database %q", r.GetCollection(), "default")
		}
		return pages[r.GetPageToken()], nil
	})
	cl := newTestClient(t, Config{}, srv.addr)

	opt := NewListSegmentsOption("docs").WithPageSize(2).WithoutFiles().
		WithStates(snapkeepv1.SegmentState_SEGMENT_STATE_ALLOCATED)
	var got []uint64
	for seg, err := range cl.ListAllSegments(ctx, opt) {
		require.NoError(t, err)
		got = append(got, seg.GetId())
	}
	require.Equal(t, []uint64{1, 2, 3, 4, 5}, got)
	calls := srv.received("ListSegments")
	require.Len(t, calls, 3)
	for i, token := range []string{"", "t2", "t4"} {
		want := &snapkeepv1.ListSegmentsRequest{Collection: "docs", PageSize: 2, WithoutFiles: true, PageToken: token,
			States: []snapkeepv1.SegmentState{snapkeepv1.SegmentState_SEGMENT_STATE_ALLOCATED}}
		require.True(t, proto.Equal(want, calls[i].Request), "page %d: %v", i, calls[i].Request)
	}

	// Breaking out of the loop fetches no more pages.
	for range cl.ListAllSegments(ctx, opt) {
		break
	}
	require.Len(t, srv.received("ListSegments"), 4)

	// A later page can be the first one asked for.
	got = nil
	for seg, err := range cl.ListAllSegments(ctx, opt.WithPageToken("t4")) {
		require.NoError(t, err)
		got = append(got, seg.GetId())
	}
	require.Equal(t, []uint64{5}, got)

	// An error ends the iteration with that error.
	var errs []error
	for seg, err := range cl.ListAllSegments(ctx, NewListSegmentsOption("nope")) {
		require.Nil(t, seg)
		errs = append(errs, err)
	}
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], ErrNotFound)
	require.Equal(t, `not found: collection "nope" not found in database "default"`, errs[0].Error())
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
	srv := startFake(t)
	cl := newTestClient(t, Config{}, srv.addr)
	_, err := cl.CreateCollection(testContext(t), nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.Empty(t, srv.received())
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

func TestBackoffPollsThenGrowsWithJitterUpToTheCap(t *testing.T) {
	cl := &Client{cfg: Config{RetryBackoff: 100 * time.Millisecond, MaxRetryBackoff: time.Second}}
	for n, full := range map[int]time.Duration{
		1: 100 * time.Millisecond, 2: 100 * time.Millisecond, pollWaits: 100 * time.Millisecond, // polling
		pollWaits + 1: 200 * time.Millisecond, pollWaits + 3: 800 * time.Millisecond, pollWaits + 4: time.Second,
		pollWaits + 80: time.Second, 1 << 40: time.Second,
	} {
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
