package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// These tests run the repository, export and restore commands against a scripted
// gRPC server (fakeServer) with fixed answers: they check the requests the flags make,
// the output and the exit codes, and need no cluster. The end-to-end tests against a
// real cluster are in repository_e2e_test.go (build tag repoe2e).

// answer answers one call; a nil response with a nil error is an empty response.
type answer func(req proto.Message) (proto.Message, error)

// fakeServer serves the Repositories and Restores services from a table of answers,
// method name → answer; other methods are Unimplemented.
type fakeServer struct {
	t       *testing.T
	addr    string
	answers map[string]answer
	// terminal makes commands see a terminal (progress bars instead of lines).
	terminal bool

	mu    sync.Mutex
	calls []fakeRequest
}

// fakeRequest is one call the fake received.
type fakeRequest struct {
	method string
	req    proto.Message
}

func startFakeServer(t *testing.T, answers map[string]answer) *fakeServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeServer{t: t, addr: lis.Addr().String(), answers: answers}
	srv := grpc.NewServer(grpc.UnaryInterceptor(f.answer))
	snapkeepv1.RegisterRepositoriesServer(srv, snapkeepv1.UnimplementedRepositoriesServer{})
	snapkeepv1.RegisterRestoresServer(srv, snapkeepv1.UnimplementedRestoresServer{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f
}

func (f *fakeServer) answer(_ context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	msg := req.(proto.Message)
	f.mu.Lock()
	f.calls = append(f.calls, fakeRequest{method: method, req: proto.Clone(msg)})
	f.mu.Unlock()
	a, ok := f.answers[method]
	if !ok {
		return handler(context.Background(), req) // Unimplemented
	}
	resp, err := a(msg)
	if err != nil || resp != nil {
		return resp, err
	}
	return nil, status.Errorf(codes.Internal, "the test's answer to %s returned nothing", method)
}

// requests returns the requests received so far, of every method or of one.
func (f *fakeServer) requests(method ...string) []proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []proto.Message
	for _, c := range f.calls {
		if len(method) == 0 || slices.Contains(method, c.method) {
			out = append(out, c.req)
		}
	}
	return out
}

// run runs snapkeep with args against the fake.
func (f *fakeServer) run(args ...string) result {
	f.t.Helper()
	a := newApp()
	a.clientConfig = func(cfg *client.Config) {
		cfg.RetryBackoff, cfg.MaxRetryBackoff, cfg.MaxRetries = time.Millisecond, time.Millisecond, 2
	}
	a.isTerminal = func(io.Writer) bool { return f.terminal }
	root := a.rootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := execute(ctx, root, append([]string{"--endpoints", f.addr}, args...), &stderr)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// ok runs a command that must succeed and returns its stdout.
func (f *fakeServer) ok(args ...string) string {
	f.t.Helper()
	r := f.run(args...)
	require.Equal(f.t, exitOK, r.code, "snapkeep %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	return r.stdout
}

// withoutRequestID returns a copy of req with its request id cleared, after checking
// that it had one.
func withoutRequestID(t *testing.T, req proto.Message) proto.Message {
	t.Helper()
	r, ok := req.(interface{ GetRequestId() string })
	require.True(t, ok, "%T has no request id", req)
	require.Regexp(t, `^[0-9a-f]{32}$`, r.GetRequestId())
	out := proto.Clone(req)
	out.ProtoReflect().Clear(out.ProtoReflect().Descriptor().Fields().ByName("request_id"))
	return out
}

func requireProto(t *testing.T, want, got proto.Message) {
	t.Helper()
	require.True(t, proto.Equal(want, got), "got  %v\nwant %v", got, want)
}

var testRepository = &snapkeepv1.Repository{
	Spec: &snapkeepv1.RepositorySpec{Name: "offsite", Endpoint: "https://minio.dr:9000", Region: "eu-west-1",
		Bucket: "backups", Prefix: "prod", PathStyle: true, Credentials: "dr-minio", BytesPerSecond: 100 << 20},
	RepositoryId: "r-7f3a", WriterClusterId: "c-1111", ClusterId: "c-1111", CopyToRepository: true,
	RegisteredAtUnixMs: 1796241319080,
}

func TestRepositoryRegisterPrintsEveryNodesProbe(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, map[string]answer{
		"RegisterRepository": func(proto.Message) (proto.Message, error) {
			return &snapkeepv1.RegisterRepositoryResponse{Repository: testRepository, Initialized: true,
				Probes: []*snapkeepv1.RepositoryProbe{
					{Node: "n1", Ok: true, CopyToRepository: true, ConditionalCreate: true},
					{Node: "n2", Ok: true, CopyToRepository: true, ConditionalCreate: true},
					{Node: "n3", Ok: true, ConditionalCreate: true},
				}}, nil
		},
	})
	out := f.ok("repository", "register", "offsite", "--bucket", "backups", "--endpoint", "https://minio.dr:9000",
		"--region", "eu-west-1", "--prefix", "prod", "--path-style", "--credentials", "dr-minio",
		"--bytes-per-second", "100MiB", "--description", "the DR site")
	reqs := f.requests("RegisterRepository")
	require.Len(t, reqs, 1)
	requireProto(t, &snapkeepv1.RegisterRepositoryRequest{Spec: &snapkeepv1.RepositorySpec{
		Name: "offsite", Bucket: "backups", Endpoint: "https://minio.dr:9000", Region: "eu-west-1", Prefix: "prod",
		PathStyle: true, Credentials: "dr-minio", BytesPerSecond: 100 << 20, Description: "the DR site",
	}}, withoutRequestID(t, reqs[0]))

	require.Contains(t, out, `Registered repository "offsite"; it was empty, and now has a format marker naming this cluster its writer.`)
	require.Contains(t, out, "Repository:   offsite (id r-7f3a)\n")
	require.Contains(t, out, "Location:     s3://backups/prod at https://minio.dr:9000 (region eu-west-1, path-style)\n")
	require.Contains(t, out, "Access:       read-write\n")
	require.Contains(t, out, "Writer:       c-1111 (this cluster)\n")
	require.Contains(t, out, "Credentials:  dr-minio (resolved by each node)\n")
	require.Contains(t, out, "Rate limit:   100.0 MiB/s per node\n")
	require.Regexp(t, `(?m)^NODE\s+OK\s+COPY TO\s+COPY FROM\s+CONDITIONAL CREATE\s+ERROR$`, out)
	require.Regexp(t, `(?m)^n1\s+yes\s+yes\s+no\s+yes\s+-$`, out)
	require.Regexp(t, `(?m)^n3\s+yes\s+no\s+no\s+yes\s+-$`, out)

	// A plain byte count works too, and --read-only.
	f.ok("repository", "register", "dr", "--bucket", "b", "--bytes-per-second", "4096", "--read-only")
	reqs = f.requests("RegisterRepository")
	requireProto(t, &snapkeepv1.RegisterRepositoryRequest{Spec: &snapkeepv1.RepositorySpec{
		Name: "dr", Bucket: "b", BytesPerSecond: 4096, ReadOnly: true,
	}}, withoutRequestID(t, reqs[1]))
}

func TestRepositoryRegisterRefusedExits1NamingTheNode(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, map[string]answer{
		"RegisterRepository": func(req proto.Message) (proto.Message, error) {
			if req.(*snapkeepv1.RegisterRepositoryRequest).GetSpec().GetName() == "half" {
				// A server that answered with a failed probe instead of refusing.
				return &snapkeepv1.RegisterRepositoryResponse{Repository: testRepository, Probes: []*snapkeepv1.RepositoryProbe{
					{Node: "n1", Ok: true}, {Node: "n2", Error: "write probe: access denied"},
				}}, nil
			}
			return nil, status.Error(codes.FailedPrecondition, `repository "offsite": node n2 cannot reach it: write probe: access denied`)
		},
	})
	r := f.run("repository", "register", "offsite", "--bucket", "backups")
	require.Equal(t, exitError, r.code)
	require.Equal(t, "Error: failed precondition: repository \"offsite\": node n2 cannot reach it: write probe: access denied\n", r.stderr)
	require.Empty(t, r.stdout)

	r = f.run("repository", "register", "half", "--bucket", "backups")
	require.Equal(t, exitError, r.code)
	require.Regexp(t, `(?m)^n2\s+no\s+no\s+no\s+no\s+write probe: access denied$`, r.stdout)
	require.Contains(t, r.stderr, `repository "half" is not usable from every node: node n2: write probe: access denied`)
}

// TestRepositoryAndExportUsageErrorsExit2: a bad command line never reaches the server.
func TestRepositoryAndExportUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, nil)
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"repository", "register", "offsite"}, `--bucket is required`},
		{[]string{"repository", "register"}, `takes NAME; got 0 argument(s)`},
		{[]string{"repository", "register", "offsite", "--bucket", "b", "--bytes-per-second", "fast"}, `--bytes-per-second: size "fast"`},
		{[]string{"repository", "snapshots"}, `takes REPO; got 0 argument(s)`},
		{[]string{"repository", "delete-snapshot", "offsite"}, `takes REPO ID; got 1 argument(s)`},
		{[]string{"repository", "gc", "offsite", "--grace", "-1s"}, `--grace -1s cannot be negative`},
		{[]string{"repository", "verify"}, `takes REPO; got 0 argument(s)`},
		{[]string{"repository", "frob"}, `unknown command "frob" for "snapkeep repository"`},
		{[]string{"snapshot", "export", "docs", "nightly"}, `--to is required`},
		{[]string{"snapshot", "export", "docs", "--to", "offsite"}, `takes COLLECTION SNAPSHOT; got 1 argument(s)`},
		{[]string{"snapshot", "export", "docs", "nightly", "--to", "offsite", "--max-concurrency", "-1"}, `--max-concurrency -1 cannot be negative`},
		{[]string{"restore", "start", "nightly", "--from", "offsite"}, `--target is required`},
		{[]string{"restore", "start", "a", "b", "c", "--from", "offsite", "--target", "x"}, `takes [COLLECTION] SNAPSHOT; got 3 argument(s)`},
		{[]string{"restore", "start", "nightly", "--target", "x"}, `takes COLLECTION SNAPSHOT; got 1 argument(s)`},
		{[]string{"restore", "list", "--kind", "backup"}, `--kind "backup": want restore, export or repository-restore`},
		{[]string{"restore", "list", "--state", "sealed"}, `want pending, planning, copying, finalizing, completed, failed or cancelled`},
	}
	for _, tt := range tests {
		r := f.run(tt.args...)
		require.Equal(t, exitUsage, r.code, "%q: %s", tt.args, r.stderr)
		require.Contains(t, r.stderr, tt.msg, "%q", tt.args)
	}
	require.Empty(t, f.requests(), "a bad command line must not reach the server")
}

func TestRepositoryListUnregisterSnapshotsAndDelete(t *testing.T) {
	t.Parallel()
	readOnly := proto.Clone(testRepository).(*snapkeepv1.Repository)
	readOnly.Spec.Name, readOnly.Spec.ReadOnly, readOnly.WriterClusterId = "old-site", true, "c-2222"
	readOnly.Spec.Credentials, readOnly.Spec.BytesPerSecond, readOnly.Spec.Endpoint = "", 0, ""
	f := startFakeServer(t, map[string]answer{
		"ListRepositories": func(proto.Message) (proto.Message, error) {
			return &snapkeepv1.ListRepositoriesResponse{Repositories: []*snapkeepv1.Repository{readOnly, testRepository}}, nil
		},
		"UnregisterRepository": func(req proto.Message) (proto.Message, error) {
			return &snapkeepv1.UnregisterRepositoryResponse{Existed: req.(*snapkeepv1.UnregisterRepositoryRequest).GetName() == "offsite"}, nil
		},
		"ListRepositorySnapshots": func(proto.Message) (proto.Message, error) {
			return &snapkeepv1.ListRepositorySnapshotsResponse{Generation: 7, RepositoryId: "r-7f3a", Snapshots: []*snapkeepv1.RepositorySnapshot{
				{Id: "01JEXAMPLE", Name: "nightly", Database: "default", Collection: "docs", SourceClusterId: "c-1111",
					ExportedAtUnixMs: 1796241319080, Files: 12, Bytes: 3 << 20},
			}}, nil
		},
		"DeleteRepositorySnapshot": func(req proto.Message) (proto.Message, error) {
			return &snapkeepv1.DeleteRepositorySnapshotResponse{Existed: req.(*snapkeepv1.DeleteRepositorySnapshotRequest).GetSnapshot() == "01JEXAMPLE", Generation: 8}, nil
		},
	})

	out := f.ok("repository", "list")
	require.Regexp(t, `(?m)^NAME\s+LOCATION\s+ENDPOINT\s+ACCESS\s+WRITER\s+CREDENTIALS\s+RATE LIMIT\s+REGISTERED$`, out)
	require.Regexp(t, `(?m)^old-site\s+s3://backups/prod\s+-\s+read-only\s+c-2222\s+-\s+-\s+2026-`, out)
	require.Regexp(t, `(?m)^offsite\s+s3://backups/prod\s+https://minio.dr:9000\s+read-write\s+c-1111 \(this cluster\)\s+dr-minio\s+100.0 MiB/s\s+2026-`, out)

	out = f.ok("repository", "list", "-o", "json")
	var list snapkeepv1.ListRepositoriesResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &list))
	require.Len(t, list.GetRepositories(), 2)

	require.Equal(t, "Unregistered repository \"offsite\"; nothing in it was deleted.\n", f.ok("repository", "unregister", "offsite"))
	require.Equal(t, "No repository \"nope\": nothing to unregister.\n", f.ok("repository", "unregister", "nope"))

	out = f.ok("repository", "snapshots", "offsite", "--collection", "docs", "--database", "default")
	requireProto(t, &snapkeepv1.ListRepositorySnapshotsRequest{Repository: "offsite", Database: "default", Collection: "docs"},
		f.requests("ListRepositorySnapshots")[0])
	require.Contains(t, out, "Repository \"offsite\" (id r-7f3a), index generation 7: 1 snapshots\n")
	require.Regexp(t, `(?m)^ID\s+NAME\s+DATABASE/COLLECTION\s+EXPORTED\s+FILES\s+BYTES\s+SOURCE CLUSTER$`, out)
	require.Regexp(t, `(?m)^01JEXAMPLE\s+nightly\s+default/docs\s+2026-\S+\s+12\s+3.0 MiB\s+c-1111$`, out)

	out = f.ok("repository", "delete-snapshot", "offsite", "01JEXAMPLE")
	require.Equal(t, "Deleted snapshot 01JEXAMPLE from repository \"offsite\" (index generation 8). Its objects go at the next: snapkeep repository gc offsite\n", out)
	requireProto(t, &snapkeepv1.DeleteRepositorySnapshotRequest{Repository: "offsite", Snapshot: "01JEXAMPLE"},
		withoutRequestID(t, f.requests("DeleteRepositorySnapshot")[0]))
	require.Equal(t, "No snapshot 01JNOPE in repository \"offsite\": nothing to delete.\n", f.ok("repository", "delete-snapshot", "offsite", "01JNOPE"))
}

func TestRepositoryGCReportAndGrace(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, map[string]answer{
		"CollectRepository": func(req proto.Message) (proto.Message, error) {
			return &snapkeepv1.CollectRepositoryResponse{ObjectsListed: 40, ObjectsReferenced: 30, ObjectsProtected: 4, ObjectsYoung: 3,
				ObjectsDeleted: 3, BytesDeleted: 3 << 10, GenerationsDeleted: 2,
				Keys:   []string{"prod/data/c-1111/collections/1/segments/5/insert/a", "prod/snapshots/01JOLD.skm"},
				Errors: []string{"delete prod/data/x: access denied"}}, nil
		},
	})
	out := f.ok("repository", "gc", "offsite", "--dry-run")
	require.Contains(t, out, "Repository \"offsite\": would delete 3 objects (3.0 KiB) and 2 index generations, 1 errors.\n")
	require.Contains(t, out, "Listed 40 objects: 30 referenced by its snapshots, 4 needed by exports in progress, 3 younger than the grace.\n")
	require.Contains(t, out, "error: delete prod/data/x: access denied\n")
	require.Regexp(t, `(?m)^prod/snapshots/01JOLD\.skm$`, out)
	require.Contains(t, out, "(the first 2 of 3 keys)\n")

	out = f.ok("repository", "gc", "offsite", "--grace", "0s")
	require.Contains(t, out, "deleted 3 objects")
	require.NotContains(t, out, "01JOLD", "keys only with --dry-run or --list")
	f.ok("repository", "gc", "offsite", "--grace", "2h", "--list")

	reqs := f.requests("CollectRepository")
	require.Len(t, reqs, 3)
	requireProto(t, &snapkeepv1.CollectRepositoryRequest{Repository: "offsite", DryRun: true}, reqs[0])
	requireProto(t, &snapkeepv1.CollectRepositoryRequest{Repository: "offsite", GraceMs: -1}, reqs[1])
	requireProto(t, &snapkeepv1.CollectRepositoryRequest{Repository: "offsite", GraceMs: 7_200_000}, reqs[2])
}

func TestRepositoryVerifyExitStatus(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, map[string]answer{
		"VerifyRepository": func(req proto.Message) (proto.Message, error) {
			if req.(*snapkeepv1.VerifyRepositoryRequest).GetRepository() == "good" {
				return &snapkeepv1.VerifyRepositoryResponse{Ok: true, Snapshots: 2, Objects: 24, Bytes: 6 << 20, BytesRead: 6 << 20}, nil
			}
			return &snapkeepv1.VerifyRepositoryResponse{Snapshots: 2, Objects: 24, Bytes: 6 << 20, ProblemCount: 3, Problems: []*snapkeepv1.RepositoryProblem{
				{Snapshot: "01JA", Key: "prod/data/c-1111/collections/1/segments/5/insert/a", Problem: "missing"},
				{Snapshot: "01JB", Key: "prod/data/c-1111/collections/1/segments/6/insert/b", Problem: "size 10, the manifest says 12"},
			}}, nil
		},
	})
	out := f.ok("repository", "verify", "good", "--deep", "--snapshot", "01JA")
	require.Equal(t, "Repository \"good\": checked 2 snapshots, 24 objects (6.0 MiB, 6.0 MiB read): ok.\n", out)
	requireProto(t, &snapkeepv1.VerifyRepositoryRequest{Repository: "good", Deep: true, Snapshot: "01JA"}, f.requests("VerifyRepository")[0])

	r := f.run("repository", "verify", "bad")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stdout, "Repository \"bad\": checked 2 snapshots, 24 objects (6.0 MiB): 3 problems.\n")
	require.Regexp(t, `(?m)^SNAPSHOT\s+KEY\s+PROBLEM$`, r.stdout)
	require.Regexp(t, `(?m)^01JA\s+prod/data/c-1111/collections/1/segments/5/insert/a\s+missing$`, r.stdout)
	require.Regexp(t, `(?m)^01JB\s+\S+/6/insert/b\s+size 10, the manifest says 12$`, r.stdout)
	require.Contains(t, r.stdout, "(the first 2 of 3 problems)\n")
	require.Equal(t, "Error: repository \"bad\" failed verification: 3 problems\n", r.stderr)

	r = f.run("repository", "verify", "bad", "-o", "json")
	require.Equal(t, exitError, r.code, "-o json keeps the exit status")
	var resp snapkeepv1.VerifyRepositoryResponse
	require.NoError(t, protojson.Unmarshal([]byte(r.stdout), &resp))
	require.Len(t, resp.GetProblems(), 2)
}

// exportJob is an export job of snapshot docs/nightly to offsite.
func exportJob(state snapkeepv1.RestoreState, done, skipped uint64) *snapkeepv1.RestoreJob {
	return &snapkeepv1.RestoreJob{Id: 12, Kind: snapkeepv1.JobKind_JOB_KIND_EXPORT, State: state, Database: "default",
		Collection: "docs", Snapshot: "nightly", SnapshotId: 5, Repository: "offsite", Verify: true,
		FilesTotal: 10, FilesDone: done, BytesTotal: 10 << 10, BytesDone: done << 10, ProgressPercent: float64(done) * 10,
		FilesSkipped: skipped, BytesSkipped: skipped << 10, EtaMs: -1}
}

func TestSnapshotExportStartsAJob(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, map[string]answer{
		"ExportSnapshot": func(req proto.Message) (proto.Message, error) {
			if req.(*snapkeepv1.ExportSnapshotRequest).GetRepository() == "dr" {
				return nil, status.Error(codes.FailedPrecondition, `repository "dr" is read-only`)
			}
			return &snapkeepv1.ExportSnapshotResponse{JobId: 12, Job: exportJob(snapkeepv1.RestoreState_RESTORE_STATE_PENDING, 0, 0)}, nil
		},
	})
	out := f.ok("snapshot", "export", "docs", "nightly", "--to", "offsite", "--database", "db", "--max-concurrency", "8", "--read-back")
	require.Equal(t, "Started export job 12: snapshot \"nightly\" of \"docs\" to repository \"offsite\". Follow it with: snapkeep restore status 12\n", out)
	requireProto(t, &snapkeepv1.ExportSnapshotRequest{Database: "db", Collection: "docs", Snapshot: "nightly", Repository: "offsite",
		MaxConcurrency: 8, ReadBack: true}, withoutRequestID(t, f.requests("ExportSnapshot")[0]))

	out = f.ok("snapshot", "export", "docs", "nightly", "--to", "offsite", "-o", "json")
	var resp snapkeepv1.ExportSnapshotResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &resp))
	require.EqualValues(t, 12, resp.GetJobId())

	r := f.run("snapshot", "export", "docs", "nightly", "--to", "dr")
	require.Equal(t, exitError, r.code)
	require.Equal(t, "Error: failed precondition: repository \"dr\" is read-only\n", r.stderr)
}

// TestSnapshotExportWaitFollowsTheJob: --wait prints progress lines (off a terminal)
// with the skipped files, the job at the end, and exits non-zero unless it completed.
func TestSnapshotExportWaitFollowsTheJob(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		end  snapkeepv1.RestoreState
		code int
	}{
		{snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED, exitOK},
		{snapkeepv1.RestoreState_RESTORE_STATE_FAILED, exitError},
	} {
		var mu sync.Mutex
		polls := 0
		f := startFakeServer(t, map[string]answer{
			"ExportSnapshot": func(proto.Message) (proto.Message, error) {
				return &snapkeepv1.ExportSnapshotResponse{JobId: 12}, nil
			},
			"GetRestoreState": func(proto.Message) (proto.Message, error) {
				mu.Lock()
				defer mu.Unlock()
				polls++
				job := exportJob(snapkeepv1.RestoreState_RESTORE_STATE_FINALIZING, 10, 3) // running: not the end
				if polls > 1 {
					job = exportJob(tt.end, 10, 3)
					job.RepositorySnapshot, job.RepositoryGeneration, job.VerifiedByStream = "01JEXAMPLE", 4, 7
					if tt.end == snapkeepv1.RestoreState_RESTORE_STATE_FAILED {
						job.Error = "copy data/x: access denied"
					}
				}
				return &snapkeepv1.GetRestoreStateResponse{Job: job}, nil
			},
		})
		r := f.run("snapshot", "export", "docs", "nightly", "--to", "offsite", "--wait")
		require.Equal(t, tt.code, r.code, "%s\n%s", r.stdout, r.stderr)
		require.Contains(t, r.stdout, "export job 12 finalizing: 100.0%, 10/10 files, 10.0 KiB/10.0 KiB, 0 B/s, ETA -, skipped 3 files (3.0 KiB) already in the repository\n")
		require.Contains(t, r.stdout, "Kind:      export\n")
		require.Contains(t, r.stdout, "Target:    repository offsite, snapshot id 01JEXAMPLE, index generation 4\n")
		require.Contains(t, r.stdout, "Skipped:   3 files (3.0 KiB) already in the repository")
		require.Contains(t, r.stdout, "Verified:  7 while streamed")
		if tt.code != exitOK {
			require.Equal(t, "Error: export job 12 failed: copy data/x: access denied\n", r.stderr)
		}
	}
}

func TestRestoreStartFromRepository(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, map[string]answer{
		"RestoreSnapshot": func(proto.Message) (proto.Message, error) {
			return &snapkeepv1.RestoreSnapshotResponse{JobId: 7}, nil
		},
	})
	out := f.ok("restore", "start", "--from", "offsite", "01JEXAMPLE", "--target", "docs_back")
	require.Equal(t, "Started restore job 7: snapshot \"01JEXAMPLE\" of repository \"offsite\" into \"docs_back\". Follow it with: snapkeep restore status 7\n", out)
	out = f.ok("restore", "start", "--from", "offsite", "docs", "nightly", "--database", "db", "--target", "docs_back",
		"--target-database", "dr", "--verify", "readback", "--concurrency", "4")
	require.Contains(t, out, `snapshot "nightly" of "docs" from repository "offsite" into "docs_back"`)
	// The usual restore is unchanged.
	f.ok("restore", "start", "docs", "nightly", "--target", "docs_copy")

	reqs := f.requests("RestoreSnapshot")
	require.Len(t, reqs, 3)
	requireProto(t, &snapkeepv1.RestoreSnapshotRequest{FromRepository: "offsite", RepositorySnapshot: "01JEXAMPLE",
		TargetCollection: "docs_back"}, withoutRequestID(t, reqs[0]))
	requireProto(t, &snapkeepv1.RestoreSnapshotRequest{FromRepository: "offsite", RepositorySnapshot: "nightly",
		Collection: "docs", Database: "db", TargetCollection: "docs_back", TargetDatabase: "dr", ReadBack: true,
		MaxConcurrency: 4}, withoutRequestID(t, reqs[1]))
	requireProto(t, &snapkeepv1.RestoreSnapshotRequest{Collection: "docs", Snapshot: "nightly", TargetCollection: "docs_copy"},
		withoutRequestID(t, reqs[2]))
}

func TestRestoreListAndStatusShowTheJobKind(t *testing.T) {
	t.Parallel()
	restore := &snapkeepv1.RestoreJob{Id: 3, State: snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED, Collection: "docs",
		Snapshot: "nightly", TargetDatabase: "default", TargetCollection: "docs_copy", FilesDone: 12, FilesTotal: 12, ProgressPercent: 100}
	export := exportJob(snapkeepv1.RestoreState_RESTORE_STATE_COPYING, 4, 3)
	fromRepo := &snapkeepv1.RestoreJob{Id: 14, Kind: snapkeepv1.JobKind_JOB_KIND_REPOSITORY_RESTORE,
		State: snapkeepv1.RestoreState_RESTORE_STATE_PLANNING, Repository: "offsite", RepositorySnapshot: "01JEXAMPLE",
		TargetDatabase: "default", TargetCollection: "docs_back"}
	f := startFakeServer(t, map[string]answer{
		"ListRestoreJobs": func(proto.Message) (proto.Message, error) {
			return &snapkeepv1.ListRestoreJobsResponse{Jobs: []*snapkeepv1.RestoreJob{restore, export, fromRepo}}, nil
		},
		"GetRestoreState": func(req proto.Message) (proto.Message, error) {
			for _, j := range []*snapkeepv1.RestoreJob{restore, export, fromRepo} {
				if j.GetId() == req.(*snapkeepv1.GetRestoreStateRequest).GetJobId() {
					return &snapkeepv1.GetRestoreStateResponse{Job: j}, nil
				}
			}
			return nil, status.Error(codes.NotFound, "no such job")
		},
		"CancelRestore": func(proto.Message) (proto.Message, error) {
			return &snapkeepv1.CancelRestoreResponse{Job: export}, nil
		},
	})
	out := f.ok("restore", "list")
	require.Regexp(t, `(?m)^JOB\s+KIND\s+STATE\s+SNAPSHOT\s+TARGET\s+PROGRESS\s+FILES\s+SKIPPED\s+BYTES\s+CREATED$`, out)
	require.Regexp(t, `(?m)^3\s+restore\s+completed\s+docs/nightly\s+docs_copy\s+100%\s+12/12\s+-\s+`, out)
	require.Regexp(t, `(?m)^12\s+export\s+copying\s+docs/nightly\s+offsite:docs/nightly\s+40%\s+4/10\s+3\s+10\.0 KiB\s+`, out)
	require.Regexp(t, `(?m)^14\s+repository-restore\s+planning\s+offsite:01JEXAMPLE\s+docs_back\s+0%\s+0/0\s+-\s+`, out)

	f.ok("restore", "list", "--kind", "export", "--kind", "Repository-Restore")
	reqs := f.requests("ListRestoreJobs")
	require.Equal(t, []snapkeepv1.JobKind{snapkeepv1.JobKind_JOB_KIND_EXPORT, snapkeepv1.JobKind_JOB_KIND_REPOSITORY_RESTORE},
		reqs[len(reqs)-1].(*snapkeepv1.ListRestoreJobsRequest).GetKinds())

	out = f.ok("restore", "status", "12")
	require.Contains(t, out, "Kind:      export\n")
	require.Contains(t, out, "Snapshot:  nightly (id 5) of default.docs\n")
	require.Contains(t, out, "Target:    repository offsite\n")
	require.Contains(t, out, "Skipped:   3 files (3.0 KiB) already in the repository, not copied again (counted as done)\n")

	out = f.ok("restore", "status", "14")
	require.Contains(t, out, "Kind:      repository-restore\n")
	require.Contains(t, out, "Snapshot:  01JEXAMPLE in repository offsite\n")
	require.Contains(t, out, "Target:    default.docs_back (id 0)\n")
	require.NotContains(t, out, "Skipped:")

	require.Equal(t, "Cancelled export job 12 to repository \"offsite\".\n", f.ok("restore", "cancel", "12"))
}

// TestRestoreFromRepositoryWaitOnATerminal: the progress bar follows a restore from a
// repository through PLANNING (no size yet) to the end, and the job is printed.
func TestRestoreFromRepositoryWaitOnATerminal(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	polls := 0
	f := startFakeServer(t, map[string]answer{
		"RestoreSnapshot": func(proto.Message) (proto.Message, error) {
			return &snapkeepv1.RestoreSnapshotResponse{JobId: 14}, nil
		},
		"GetRestoreState": func(proto.Message) (proto.Message, error) {
			mu.Lock()
			defer mu.Unlock()
			polls++
			job := &snapkeepv1.RestoreJob{Id: 14, Kind: snapkeepv1.JobKind_JOB_KIND_REPOSITORY_RESTORE, Repository: "offsite",
				RepositorySnapshot: "01JEXAMPLE", State: snapkeepv1.RestoreState_RESTORE_STATE_PLANNING, TargetDatabase: "default",
				TargetCollection: "docs_back", EtaMs: -1}
			if polls > 1 {
				job.State, job.Collection, job.Snapshot, job.Database = snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED, "docs", "nightly", "default"
				job.FilesDone, job.FilesTotal, job.BytesDone, job.BytesTotal, job.ProgressPercent = 12, 12, 24<<10, 24<<10, 100
			}
			return &snapkeepv1.GetRestoreStateResponse{Job: job}, nil
		},
	})
	f.terminal = true
	out := f.ok("restore", "start", "--from", "offsite", "01JEXAMPLE", "--target", "docs_back", "--wait")
	require.Contains(t, out, "restore job 14 planning: 0/0 files")
	require.Contains(t, out, "restore job 14 completed: 12/12 files")
	require.Contains(t, out, "Kind:      repository-restore\n")
	require.Contains(t, out, "Snapshot:  nightly of default.docs, id 01JEXAMPLE in repository offsite\n")
	require.Contains(t, out, "Progress:  100.0%: 12/12 files, 24.0 KiB of 24.0 KiB\n")
}
