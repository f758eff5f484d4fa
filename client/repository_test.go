package client

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

func TestRepositoryBuildersFillTheirRequests(t *testing.T) {
	tests := []struct {
		name string
		got  proto.Message
		want proto.Message
	}{
		{
			"register, bare",
			NewRegisterRepositoryOption("offsite", "backups").req,
			&snapkeepv1.RegisterRepositoryRequest{Spec: &snapkeepv1.RepositorySpec{Name: "offsite", Bucket: "backups"}},
		},
		{
			"register, everything",
			NewRegisterRepositoryOption("offsite", "backups").WithEndpoint("https://minio.dr:9000").WithRegion("eu-west-1").
				WithPrefix("snapkeep/prod").WithPathStyle().WithCredentials("dr-minio").ReadOnly().
				WithBytesPerSecond(100 << 20).WithDescription("the DR site").req,
			&snapkeepv1.RegisterRepositoryRequest{Spec: &snapkeepv1.RepositorySpec{
				Name: "offsite", Bucket: "backups", Endpoint: "https://minio.dr:9000", Region: "eu-west-1",
				Prefix: "snapkeep/prod", PathStyle: true, Credentials: "dr-minio", ReadOnly: true,
				BytesPerSecond: 100 << 20, Description: "the DR site",
			}},
		},
		{
			"export",
			NewExportSnapshotOption("docs", "nightly", "offsite").WithDatabase("db").WithMaxConcurrency(8).WithReadBack().req,
			&snapkeepv1.ExportSnapshotRequest{Database: "db", Collection: "docs", Snapshot: "nightly", Repository: "offsite",
				MaxConcurrency: 8, ReadBack: true},
		},
		{
			"export, negative concurrency is the default",
			NewExportSnapshotOption("docs", "nightly", "offsite").WithMaxConcurrency(-3).req,
			&snapkeepv1.ExportSnapshotRequest{Collection: "docs", Snapshot: "nightly", Repository: "offsite"},
		},
		{
			"list repository snapshots",
			NewListRepositorySnapshotsOption("offsite").WithDatabase("db").WithCollection("docs").req,
			&snapkeepv1.ListRepositorySnapshotsRequest{Repository: "offsite", Database: "db", Collection: "docs"},
		},
		{
			"restore from a repository",
			NewRestoreFromRepositoryOption("offsite", "nightly", "docs_back").WithCollection("docs").WithDatabase("db").
				WithTargetDatabase("dr").WithPartitions("p1").WithReadBack().WithMaxConcurrency(4).req,
			&snapkeepv1.RestoreSnapshotRequest{FromRepository: "offsite", RepositorySnapshot: "nightly", Collection: "docs",
				Database: "db", TargetDatabase: "dr", TargetCollection: "docs_back", Partitions: []string{"p1"},
				ReadBack: true, MaxConcurrency: 4},
		},
		{
			"restore snapshot with from repository",
			NewRestoreSnapshotOption("docs", "nightly", "docs_back").WithFromRepository("offsite", "0193a2b4").req,
			&snapkeepv1.RestoreSnapshotRequest{Collection: "docs", TargetCollection: "docs_back",
				FromRepository: "offsite", RepositorySnapshot: "0193a2b4"},
		},
		{
			"list jobs by kind",
			NewListRestoreJobsOption().WithKinds(snapkeepv1.JobKind_JOB_KIND_EXPORT).
				WithKinds(snapkeepv1.JobKind_JOB_KIND_REPOSITORY_RESTORE).req,
			&snapkeepv1.ListRestoreJobsRequest{Kinds: []snapkeepv1.JobKind{snapkeepv1.JobKind_JOB_KIND_EXPORT,
				snapkeepv1.JobKind_JOB_KIND_REPOSITORY_RESTORE}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.True(t, proto.Equal(tt.want, tt.got), "got %v\nwant %v", tt.got, tt.want)
		})
	}
}

// TestRepositoryWritesKeepTheirRequestIDAcrossRetries: every repository write (and a
// restore from a repository) carries a fresh request id, the same on each retry.
func TestRepositoryWritesKeepTheirRequestIDAcrossRetries(t *testing.T) {
	ctx := testContext(t)
	srv := startFake(t)
	cl := newTestClient(t, Config{}, srv.addr)
	discard := func(_ any, err error) error { return err }
	writes := []struct {
		method string
		call   func() error
	}{
		{"RegisterRepository", func() error {
			return discard(cl.RegisterRepository(ctx, NewRegisterRepositoryOption("offsite", "backups")))
		}},
		{"UnregisterRepository", func() error { return discard(cl.UnregisterRepository(ctx, "offsite")) }},
		{"ExportSnapshot", func() error {
			return discard(cl.ExportSnapshot(ctx, NewExportSnapshotOption("docs", "nightly", "offsite")))
		}},
		{"DeleteRepositorySnapshot", func() error { return discard(cl.DeleteRepositorySnapshot(ctx, "offsite", "0193a2b4")) }},
		{"RestoreSnapshot", func() error {
			return discard(cl.RestoreSnapshot(ctx, NewRestoreFromRepositoryOption("offsite", "nightly", "docs_back")))
		}},
	}
	seen := make(map[string]bool)
	for _, w := range writes {
		srv.setScript(failFirst(w.method, 2, status.Error(codes.Unavailable, "no leader"), nil))
		require.NoError(t, w.call(), w.method)
		calls := srv.received(w.method)
		require.Len(t, calls, 3, w.method)
		require.Regexp(t, requestIDPattern, calls[0].RequestID, "%s has no request id", w.method)
		for _, c := range calls {
			require.Equal(t, calls[0].RequestID, c.RequestID, "%s: a retry must reuse the request id", w.method)
		}
		require.False(t, seen[calls[0].RequestID], "%s reuses another call's request id", w.method)
		seen[calls[0].RequestID] = true
	}
}

// TestRepositoryCallsSendTheirRequests: each method sends what its arguments say and
// returns the server's answer.
func TestRepositoryCallsSendTheirRequests(t *testing.T) {
	ctx := testContext(t)
	srv := startFake(t)
	repos := []*snapkeepv1.Repository{{Spec: &snapkeepv1.RepositorySpec{Name: "offsite", Bucket: "backups"}, RepositoryId: "r1"}}
	srv.setScript(func(_ context.Context, method string, _ proto.Message) (proto.Message, error) {
		switch method {
		case "RegisterRepository":
			return &snapkeepv1.RegisterRepositoryResponse{Repository: repos[0], Initialized: true,
				Probes: []*snapkeepv1.RepositoryProbe{{Node: "n1", Ok: true, ConditionalCreate: true}}}, nil
		case "ListRepositories":
			return &snapkeepv1.ListRepositoriesResponse{Repositories: repos}, nil
		case "ListRepositorySnapshots":
			return &snapkeepv1.ListRepositorySnapshotsResponse{Generation: 4, RepositoryId: "r1",
				Snapshots: []*snapkeepv1.RepositorySnapshot{{Id: "s1", Name: "nightly"}}}, nil
		case "ExportSnapshot":
			return &snapkeepv1.ExportSnapshotResponse{JobId: 12, Job: &snapkeepv1.RestoreJob{Id: 12, Kind: snapkeepv1.JobKind_JOB_KIND_EXPORT}}, nil
		case "DeleteRepositorySnapshot":
			return &snapkeepv1.DeleteRepositorySnapshotResponse{Existed: true, Generation: 5}, nil
		case "CollectRepository":
			return &snapkeepv1.CollectRepositoryResponse{ObjectsListed: 10, Keys: []string{"data/c/k"}}, nil
		case "VerifyRepository":
			return &snapkeepv1.VerifyRepositoryResponse{Snapshots: 1, Problems: []*snapkeepv1.RepositoryProblem{{Snapshot: "s1", Key: "k", Problem: "missing"}}, ProblemCount: 1}, nil
		case "UnregisterRepository":
			return &snapkeepv1.UnregisterRepositoryResponse{Existed: true}, nil
		}
		return nil, nil
	})
	cl := newTestClient(t, Config{}, srv.addr)

	reg, err := cl.RegisterRepository(ctx, NewRegisterRepositoryOption("offsite", "backups").WithPrefix("p"))
	require.NoError(t, err)
	require.True(t, reg.GetInitialized())
	require.Equal(t, "n1", reg.GetProbes()[0].GetNode())

	got, err := cl.ListRepositories(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "r1", got[0].GetRepositoryId())
	_, err = cl.ListRepositories(ctx, WithStale())
	require.NoError(t, err)

	snaps, err := cl.ListRepositorySnapshots(ctx, NewListRepositorySnapshotsOption("offsite").WithCollection("docs"))
	require.NoError(t, err)
	require.EqualValues(t, 4, snaps.GetGeneration())
	require.Equal(t, "nightly", snaps.GetSnapshots()[0].GetName())

	exp, err := cl.ExportSnapshot(ctx, NewExportSnapshotOption("docs", "nightly", "offsite"))
	require.NoError(t, err)
	require.EqualValues(t, 12, exp.GetJobId())

	del, err := cl.DeleteRepositorySnapshot(ctx, "offsite", "s1")
	require.NoError(t, err)
	require.True(t, del.GetExisted())

	col, err := cl.CollectRepository(ctx, "offsite", true, 90*time.Second)
	require.NoError(t, err)
	require.Equal(t, []string{"data/c/k"}, col.GetKeys())

	ver, err := cl.VerifyRepository(ctx, "offsite", true, "s1")
	require.NoError(t, err)
	require.False(t, ver.GetOk())
	require.Equal(t, "missing", ver.GetProblems()[0].GetProblem())

	unreg, err := cl.UnregisterRepository(ctx, "offsite")
	require.NoError(t, err)
	require.True(t, unreg.GetExisted())

	// What the server received, request ids aside.
	want := []proto.Message{
		&snapkeepv1.RegisterRepositoryRequest{Spec: &snapkeepv1.RepositorySpec{Name: "offsite", Bucket: "backups", Prefix: "p"}},
		&snapkeepv1.ListRepositoriesRequest{},
		&snapkeepv1.ListRepositoriesRequest{Consistency: snapkeepv1.ReadConsistency_READ_CONSISTENCY_STALE},
		&snapkeepv1.ListRepositorySnapshotsRequest{Repository: "offsite", Collection: "docs"},
		&snapkeepv1.ExportSnapshotRequest{Collection: "docs", Snapshot: "nightly", Repository: "offsite"},
		&snapkeepv1.DeleteRepositorySnapshotRequest{Repository: "offsite", Snapshot: "s1"},
		&snapkeepv1.CollectRepositoryRequest{Repository: "offsite", DryRun: true, GraceMs: 90_000},
		&snapkeepv1.VerifyRepositoryRequest{Repository: "offsite", Deep: true, Snapshot: "s1"},
		&snapkeepv1.UnregisterRepositoryRequest{Name: "offsite"},
	}
	calls := srv.received()
	require.Len(t, calls, len(want))
	for i, c := range calls {
		req := proto.Clone(c.Request)
		if r, ok := req.(interface{ GetRequestId() string }); ok && r.GetRequestId() != "" {
			req.ProtoReflect().Clear(req.ProtoReflect().Descriptor().Fields().ByName("request_id"))
		}
		require.True(t, proto.Equal(want[i], req), "%s: got %v\nwant %v", c.Method, req, want[i])
	}
}

func TestCollectRepositoryGrace(t *testing.T) {
	ctx := testContext(t)
	srv := startFake(t)
	cl := newTestClient(t, Config{}, srv.addr)
	for _, tt := range []struct {
		grace time.Duration
		want  int64
	}{
		{0, 0},                 // the server's default
		{-time.Second, -1},     // none
		{time.Microsecond, 1},  // short, not the default
		{2 * time.Hour, 7.2e6}, // as given
	} {
		_, err := cl.CollectRepository(ctx, "offsite", false, tt.grace)
		require.NoError(t, err)
		calls := srv.received("CollectRepository")
		got := calls[len(calls)-1].Request.(*snapkeepv1.CollectRepositoryRequest).GetGraceMs()
		require.Equal(t, tt.want, got, "grace %v", tt.grace)
	}
}

// TestRepositoryReadsAndCollectionsAreRetried: the calls without a request id are
// retried on Unavailable like every other read.
func TestRepositoryReadsAndCollectionsAreRetried(t *testing.T) {
	ctx := testContext(t)
	srv := startFake(t)
	cl := newTestClient(t, Config{}, srv.addr)
	discard := func(_ any, err error) error { return err }
	for _, r := range []struct {
		method string
		call   func() error
	}{
		{"ListRepositories", func() error { return discard(cl.ListRepositories(ctx)) }},
		{"ListRepositorySnapshots", func() error {
			return discard(cl.ListRepositorySnapshots(ctx, NewListRepositorySnapshotsOption("offsite")))
		}},
		{"CollectRepository", func() error { return discard(cl.CollectRepository(ctx, "offsite", false, 0)) }},
		{"VerifyRepository", func() error { return discard(cl.VerifyRepository(ctx, "offsite", false, "")) }},
	} {
		srv.setScript(failFirst(r.method, 2, status.Error(codes.Aborted, "leadership lost"), nil))
		require.NoError(t, r.call(), r.method)
		require.Len(t, srv.received(r.method), 3, r.method)
	}
}

// TestRepositoryErrorsKeepTheServersCodeAndMessage: a refusal is an *Error matching
// its sentinel, with the server's message (naming the node) intact, and not retried.
func TestRepositoryErrorsKeepTheServersCodeAndMessage(t *testing.T) {
	ctx := testContext(t)
	tests := []struct {
		method   string
		code     codes.Code
		sentinel error
		msg      string
		call     func(cl *Client) error
	}{
		{"RegisterRepository", codes.FailedPrecondition, ErrFailedPrecondition,
			`repository "offsite": node n2 cannot reach it: write probe: access denied`,
			func(cl *Client) error {
				_, err := cl.RegisterRepository(ctx, NewRegisterRepositoryOption("offsite", "backups"))
				return err
			}},
		{"RegisterRepository", codes.FailedPrecondition, ErrFailedPrecondition,
			`repository "offsite" is written by cluster c-0193; register it read-only`,
			func(cl *Client) error {
				_, err := cl.RegisterRepository(ctx, NewRegisterRepositoryOption("offsite", "backups"))
				return err
			}},
		{"UnregisterRepository", codes.FailedPrecondition, ErrFailedPrecondition, `repository "offsite" is used by job 12`,
			func(cl *Client) error { _, err := cl.UnregisterRepository(ctx, "offsite"); return err }},
		{"ExportSnapshot", codes.NotFound, ErrNotFound, `repository "nope" is not registered`,
			func(cl *Client) error {
				_, err := cl.ExportSnapshot(ctx, NewExportSnapshotOption("docs", "nightly", "nope"))
				return err
			}},
		{"ExportSnapshot", codes.FailedPrecondition, ErrFailedPrecondition, `repository "dr" is read-only`,
			func(cl *Client) error {
				_, err := cl.ExportSnapshot(ctx, NewExportSnapshotOption("docs", "nightly", "dr"))
				return err
			}},
		{"DeleteRepositorySnapshot", codes.PermissionDenied, ErrPermissionDenied, `role reader cannot delete`,
			func(cl *Client) error { _, err := cl.DeleteRepositorySnapshot(ctx, "offsite", "s1"); return err }},
		{"VerifyRepository", codes.NotFound, ErrNotFound, `snapshot "s9" is not in repository "offsite"`,
			func(cl *Client) error { _, err := cl.VerifyRepository(ctx, "offsite", false, "s9"); return err }},
		{"CollectRepository", codes.Unimplemented, ErrUnimplemented, `unknown service snapkeep.v1.Repositories`,
			func(cl *Client) error { _, err := cl.CollectRepository(ctx, "offsite", true, 0); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			srv := startFake(t)
			srv.setScript(always(status.Error(tt.code, tt.msg)))
			cl := newTestClient(t, Config{}, srv.addr)
			err := tt.call(cl)
			require.ErrorIs(t, err, tt.sentinel)
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tt.msg, e.Message)
			require.Equal(t, codeText(tt.code)+": "+tt.msg, err.Error())
			require.Len(t, srv.received(), 1, "not retried")
		})
	}
}

func TestRepositoryNilOptionsAreInvalidArguments(t *testing.T) {
	ctx := testContext(t)
	srv := startFake(t)
	cl := newTestClient(t, Config{}, srv.addr)
	_, err := cl.RegisterRepository(ctx, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = cl.ExportSnapshot(ctx, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = cl.ListRepositorySnapshots(ctx, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.Empty(t, srv.received())
}

// TestWaitExportFollowsPlanningAndFinalizing: PLANNING and FINALIZING are running
// states; the wait ends at COMPLETED and reports every change.
func TestWaitExportFollowsPlanningAndFinalizing(t *testing.T) {
	ctx := testContext(t)
	srv := startFake(t)
	export := func(state snapkeepv1.RestoreState, done uint64) *snapkeepv1.GetRestoreStateResponse {
		return &snapkeepv1.GetRestoreStateResponse{Job: &snapkeepv1.RestoreJob{Id: 12, Kind: snapkeepv1.JobKind_JOB_KIND_EXPORT,
			State: state, FilesDone: done, FilesTotal: 4, FilesSkipped: 2, Repository: "offsite"}}
	}
	script := []*snapkeepv1.GetRestoreStateResponse{
		export(snapkeepv1.RestoreState_RESTORE_STATE_PENDING, 0),
		export(snapkeepv1.RestoreState_RESTORE_STATE_PLANNING, 0),
		export(snapkeepv1.RestoreState_RESTORE_STATE_COPYING, 2),
		export(snapkeepv1.RestoreState_RESTORE_STATE_COPYING, 2), // no change: not reported again
		export(snapkeepv1.RestoreState_RESTORE_STATE_FINALIZING, 4),
		export(snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED, 4),
	}
	var mu sync.Mutex
	next := 0
	srv.setScript(func(_ context.Context, method string, req proto.Message) (proto.Message, error) {
		if method != "GetRestoreState" || req.(*snapkeepv1.GetRestoreStateRequest).GetJobId() != 12 {
			return nil, status.Error(codes.NotFound, "no such job")
		}
		mu.Lock()
		defer mu.Unlock()
		resp := script[min(next, len(script)-1)]
		next++
		return resp, nil
	})
	cl := newTestClient(t, Config{}, srv.addr)

	var seen []snapkeepv1.RestoreState
	job, err := cl.WaitExport(ctx, 12, func(j *snapkeepv1.RestoreJob) { seen = append(seen, j.GetState()) })
	require.NoError(t, err)
	require.Equal(t, snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED, job.GetState())
	require.EqualValues(t, 2, job.GetFilesSkipped())
	require.Equal(t, []snapkeepv1.RestoreState{
		snapkeepv1.RestoreState_RESTORE_STATE_PENDING, snapkeepv1.RestoreState_RESTORE_STATE_PLANNING,
		snapkeepv1.RestoreState_RESTORE_STATE_COPYING, snapkeepv1.RestoreState_RESTORE_STATE_FINALIZING,
		snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED,
	}, seen)
	require.Len(t, srv.received("GetRestoreState"), len(script))
}

func TestRestoreJobEnded(t *testing.T) {
	for state, ended := range map[snapkeepv1.RestoreState]bool{
		snapkeepv1.RestoreState_RESTORE_STATE_PENDING:    false,
		snapkeepv1.RestoreState_RESTORE_STATE_PLANNING:   false,
		snapkeepv1.RestoreState_RESTORE_STATE_COPYING:    false,
		snapkeepv1.RestoreState_RESTORE_STATE_FINALIZING: false,
		snapkeepv1.RestoreState(99):                      false, // a state a newer server adds
		snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED:  true,
		snapkeepv1.RestoreState_RESTORE_STATE_FAILED:     true,
		snapkeepv1.RestoreState_RESTORE_STATE_CANCELLED:  true,
	} {
		require.Equal(t, ended, JobEnded(state), state.String())
	}
}

// TestListAllRestoreJobsKeepsTheKindsOnEveryPage: the kinds filter is sent with each
// page's request.
func TestListAllRestoreJobsKeepsTheKindsOnEveryPage(t *testing.T) {
	ctx := testContext(t)
	srv := startFake(t)
	srv.setScript(func(_ context.Context, _ string, req proto.Message) (proto.Message, error) {
		if req.(*snapkeepv1.ListRestoreJobsRequest).GetPageToken() == "" {
			return &snapkeepv1.ListRestoreJobsResponse{Jobs: []*snapkeepv1.RestoreJob{{Id: 1}}, NextPageToken: "t"}, nil
		}
		return &snapkeepv1.ListRestoreJobsResponse{Jobs: []*snapkeepv1.RestoreJob{{Id: 2}}}, nil
	})
	cl := newTestClient(t, Config{}, srv.addr)
	var ids []uint64
	for j, err := range cl.ListAllRestoreJobs(ctx, NewListRestoreJobsOption().WithKinds(snapkeepv1.JobKind_JOB_KIND_EXPORT)) {
		require.NoError(t, err)
		ids = append(ids, j.GetId())
	}
	require.Equal(t, []uint64{1, 2}, ids)
	calls := srv.received("ListRestoreJobs")
	require.Len(t, calls, 2)
	for _, c := range calls {
		require.Equal(t, []snapkeepv1.JobKind{snapkeepv1.JobKind_JOB_KIND_EXPORT}, c.Request.(*snapkeepv1.ListRestoreJobsRequest).GetKinds())
	}
}
