package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// cli runs snapkeep commands in-process against a one-node cluster whose storage is
// an embedded S3 server.
type cli struct {
	t       *testing.T
	cluster *servertest.Cluster
	emb     *objstore.Embedded
	// store reads the cluster's bucket, to check what commands wrote.
	store *objstore.S3

	mu sync.Mutex
	// opened records the S3 configuration generate asked for.
	opened []objstore.S3Config
	// rpcs records the methods of the calls commands sent to the cluster.
	rpcs []string
	// refuseUploads makes generate's store refuse every upload with access denied,
	// as S3 does with credentials it does not know.
	refuseUploads bool
}

// uploadRefusingStore refuses every Put as S3 refuses unknown credentials.
type uploadRefusingStore struct{ *objstore.S3 }

func (uploadRefusingStore) Put(context.Context, string, io.Reader, int64, objstore.PutOptions) (objstore.ObjectInfo, error) {
	return objstore.ObjectInfo{}, fmt.Errorf("operation error S3: PutObject, StatusCode: 403, api error InvalidAccessKeyId: %w", objstore.ErrAccessDenied)
}

func (uploadRefusingStore) Close() error { return nil }

func newCLI(t *testing.T) *cli {
	t.Helper()
	ctx := context.Background()
	emb, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, emb.Close()) })
	cluster := startNode(t, emb.Config())
	store, err := objstore.NewS3(ctx, emb.Config())
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return &cli{t: t, cluster: cluster, emb: emb, store: store}
}

// startNode starts a one-node cluster that reports storage as its bucket. A lone voter
// has no peer to lose, so short Raft timeouts only make it elect itself sooner.
func startNode(t *testing.T, storage objstore.S3Config) *servertest.Cluster {
	t.Helper()
	return servertest.Start(t, 1, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Storage = storage
		cfg.Store = nil // the node opens storage itself (none when storage is empty)
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	}})
}

// keys lists every key in the cluster's bucket.
func (c *cli) keys() []string {
	c.t.Helper()
	var keys []string
	token := ""
	for {
		page, err := c.store.List(context.Background(), "", token, 1000)
		require.NoError(c.t, err)
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.NextToken == "" {
			return keys
		}
		token = page.NextToken
	}
}

// sent returns the methods of the calls commands sent so far.
func (c *cli) sent() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.rpcs)
}

func (c *cli) record(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.mu.Lock()
	c.rpcs = append(c.rpcs, method[strings.LastIndexByte(method, '/')+1:])
	c.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

type result struct {
	stdout, stderr string
	code           int
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	a := newApp()
	a.clientConfig = func(cfg *client.Config) {
		cfg.RetryBackoff, cfg.MaxRetryBackoff, cfg.MaxRetries = time.Millisecond, time.Millisecond, 2
		cfg.DialOptions = append(cfg.DialOptions, grpc.WithChainUnaryInterceptor(c.record))
	}
	a.openStore = func(ctx context.Context, cfg objstore.S3Config) (closableStore, error) {
		c.mu.Lock()
		c.opened = append(c.opened, cfg)
		refuse := c.refuseUploads
		c.mu.Unlock()
		if refuse {
			return uploadRefusingStore{c.store}, nil
		}
		return openS3Store(ctx, cfg)
	}
	a.isTerminal = func(io.Writer) bool { return false }
	root := a.rootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	endpoints := strings.Join(c.cluster.Endpoints(), ",")
	code := execute(ctx, root, append([]string{"--endpoints", endpoints}, args...), &stderr)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// ok runs a command that must succeed and returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	require.Equal(c.t, exitOK, r.code, "snapkeep %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	return r.stdout
}

func TestCollectionCreateThenListAsJSON(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.ok("collection", "create", "docs", "--partition", "y2024", "--partition", "y2025",
		"--property", "ttl=86400", "--property", "note=a=b", "--description", "support articles")
	require.Contains(t, out, "Collection:   docs (id")
	require.Contains(t, out, "Properties:   note=a=b, ttl=86400")
	require.Regexp(t, `(?m)^y2025\s+\d+\s+`, out)
	c.ok("collection", "create", "alpha")

	out = c.ok("collection", "list", "-o", "json")
	var resp snapkeepv1.ListCollectionsResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &resp))
	require.Len(t, resp.GetCollections(), 2)
	docs := resp.GetCollections()[1]
	require.Equal(t, "docs", docs.GetName())
	require.Equal(t, map[string]string{"ttl": "86400", "note": "a=b"}, docs.GetProperties())
	var names []string
	for _, p := range docs.GetPartitions() {
		names = append(names, p.GetName())
	}
	require.Equal(t, []string{"_default", "y2024", "y2025"}, names)

	// The JSON is indented, uses the .proto names and shows unset fields.
	require.Contains(t, out, "\n      \"name\": \"alpha\",\n")
	require.Contains(t, out, `"created_at_unix_ms": "`)
	require.Contains(t, out, `"dropped_at_unix_ms": "0"`)
	var generic map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &generic))

	out = c.ok("collection", "list")
	require.Regexp(t, `(?m)^NAME\s+ID\s+STATE\s+PARTITIONS\s+INDEXES\s+CREATED\s+DESCRIPTION$`, out)
	require.Regexp(t, `(?m)^docs\s+\d+\s+active\s+3\s+0\s+\S+\s+support articles$`, out)
}

func TestCollectionLifecycle(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("database", "create", "shop", "--property", "owner=team-a")
	out := c.ok("database", "list")
	require.Regexp(t, `(?m)^shop\s+\d+\s+\S+\s+owner=team-a$`, out)
	require.Regexp(t, `(?m)^default\s+`, out)

	c.ok("collection", "create", "items", "--database", "shop", "--property", "a=1", "--property", "b=2")
	out = c.ok("collection", "alter", "items", "--database", "shop", "--set", "c=3", "--unset", "a")
	require.Contains(t, out, "Properties:   b=2, c=3")

	out = c.ok("partition", "create", "items", "p1", "--database", "shop")
	require.Regexp(t, `(?m)^p1\s+\d+`, out)
	out = c.ok("index", "create", "items", "vec", "--field", "101", "--param", "index_type=HNSW", "--database", "shop", "-o", "json")
	var created snapkeepv1.CreateIndexResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &created))
	require.Equal(t, int64(101), created.GetCollection().GetIndexes()[0].GetFieldId())
	require.Equal(t, map[string]string{"index_type": "HNSW"}, created.GetCollection().GetIndexes()[0].GetParams())

	out = c.ok("collection", "describe", "items", "--database", "shop")
	require.Contains(t, out, "Segments:     0 allocated, 0 flushed (0 rows, 0 files, 0 B), 0 dropped")
	require.Regexp(t, `(?m)^vec\s+\d+\s+101\s+index_type=HNSW$`, out)

	out = c.ok("index", "drop", "items", "vec", "--database", "shop")
	require.NotContains(t, out, "INDEX")
	out = c.ok("partition", "drop", "items", "p1", "--database", "shop")
	require.NotRegexp(t, `(?m)^p1\s`, out)

	out = c.ok("collection", "drop", "items", "--database", "shop")
	require.Regexp(t, `Dropped collection "items" \(id \d+\) of database "shop"\.`, out)
	require.Equal(t, "Dropped database \"shop\".\n", c.ok("database", "drop", "shop"))
	require.Equal(t, "{}\n", c.ok("database", "create", "x", "-o", "json")[:0]+c.ok("database", "drop", "x", "-o", "json"))
}

func TestGenerateThenListAndDescribeSegments(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.ok("generate", "--collection", "docs", "--create", "--partition", "hot",
		"--segments", "3", "--files-per-segment", "3", "--file-size", "4KiB", "--seed", "9", "--dev")
	require.Regexp(t, `Generated 3 segments in collection "docs": 9 files, 36.0 KiB in \S+ \(\d+\.\d MB/s\)`, out)
	require.Len(t, c.keys(), 9)
	require.Len(t, c.opened, 1)
	require.Equal(t, "snapkeep", c.opened[0].Bucket)
	require.Equal(t, c.emb.Endpoint(), c.opened[0].Endpoint)
	require.Equal(t, objstore.EmbeddedAccessKey, c.opened[0].AccessKey, "--dev uses the dev keys")

	out = c.ok("generate", "--collection", "docs", "--segments", "1", "--files-per-segment", "1", "--file-size", "100", "-o", "json", "--dev")
	var summary generateSummary
	require.NoError(t, json.Unmarshal([]byte(out), &summary))
	require.Equal(t, 1, summary.Segments)
	require.EqualValues(t, 100, summary.Bytes)
	require.Len(t, summary.SegmentIDs, 1)

	out = c.ok("segment", "list", "docs")
	require.Regexp(t, `(?m)^ID\s+PARTITION\s+STATE\s+ROWS\s+LINEAGE$`, out)
	require.Regexp(t, `(?m)^\d+\s+hot\s+flushed\s+1000\s+-$`, out)
	require.Regexp(t, `(?m)^\d+\s+_default\s+flushed\s+1000\s+-$`, out)

	out = c.ok("segment", "list", "docs", "--partition", "hot", "--state", "flushed", "--files")
	require.Regexp(t, `(?m)^\d+\s+hot\s+flushed\s+1000\s+3\s+12\.0 KiB\s+-$`, out)
	require.Regexp(t, `(?m)^insert\s+100\s+4096\s+[0-9a-f]{8}\s+snapkeep/collections/\d+/segments/\d+/insert/100/1$`, out)
	require.Equal(t, 3, strings.Count(out, "\nSegment "))

	out = c.ok("segment", "list", "docs", "--state", "dropped,allocated", "-o", "json")
	require.Equal(t, "{\n  \"segments\": [],\n  \"next_page_token\": \"\"\n}\n", out)

	id := strings.Fields(strings.Split(c.ok("segment", "list", "docs"), "\n")[1])[0]
	out = c.ok("segment", "describe", id)
	require.Contains(t, out, "State:       flushed")
	require.Regexp(t, `(?m)^stats\s+100\s+4096\s+[0-9a-f]{8}\s+\S+/stats/100/3$`, out)
	out = c.ok("segment", "describe", id, "-o", "json")
	var seg snapkeepv1.GetSegmentResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &seg))
	require.Len(t, seg.GetSegment().GetFiles(), 3)
}

// TestGenerateNeedsTheClustersBucket: generate writes where the cluster says it keeps
// objects, and a cluster started without storage says nothing.
func TestGenerateNeedsTheClustersBucket(t *testing.T) {
	t.Parallel()
	cluster := startNode(t, objstore.S3Config{})
	out, errOut, code := runAgainst(t, cluster.Endpoints(), "generate", "--collection", "docs", "--create", "--segments", "1")
	require.Equal(t, exitError, code)
	require.Empty(t, out)
	require.Equal(t, "Error: the cluster reports no storage bucket; is it configured with one?\n", errOut)
}

func TestClusterStatus(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.ok("cluster", "status")
	require.Contains(t, out, "Leader: n1\n")
	require.Regexp(t, `(?m)^n1\s+leader\s+yes\s+\d+\s+\d+\s+\d+\s+-\s+-\s+`+regexp.QuoteMeta(c.cluster.Endpoints()[0])+`$`, out)
	require.Contains(t, out, "Storage: s3://snapkeep/snapkeep at "+c.emb.Endpoint()+" (region us-east-1)")

	out = c.ok("cluster", "status", "-o", "json")
	var st snapkeepv1.ClusterStatusResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &st))
	require.Equal(t, "snapkeep", st.GetStorage().GetBucket())
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"collection", "create"}, `"snapkeep collection create" takes NAME; got 0 argument(s)`},
		{[]string{"collection", "create", "a", "b"}, `takes NAME; got 2 argument(s)`},
		{[]string{"collection", "create", "docs", "--property", "novalue"}, `--property "novalue": want key=value`},
		{[]string{"collection", "create", "docs", "--property", "=v"}, `--property "=v": want key=value`},
		{[]string{"collection", "alter", "docs"}, `nothing to change`},
		{[]string{"collection", "list", "--bogus"}, `unknown flag: --bogus`},
		{[]string{"collection", "lst"}, `unknown command "lst" for "snapkeep collection" (did you mean "list"?)`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "snapkeep"`},
		{[]string{"collection", "list", "-o", "yaml"}, `--output "yaml": want table or json`},
		{[]string{"segment", "list", "docs", "--state", "sealed"}, `--state "sealed": want allocated, flushed or dropped`},
		{[]string{"segment", "describe", "abc"}, `segment id "abc": want a positive integer`},
		{[]string{"index", "create", "docs", "vec"}, `--field is required`},
		{[]string{"index", "create", "docs", "vec", "--field", "x"}, `invalid argument "x" for "--field"`},
		{[]string{"generate", "--segments", "1"}, `--collection is required`},
		{[]string{"generate", "--collection", "c", "--file-size", "12 parsecs"}, `--file-size: size "12 parsecs"`},
		{[]string{"generate", "--collection", "c", "--segments", "0"}, `--segments 0: want at least 1`},
		{[]string{"generate", "--collection", "c", "--s3-access-key", "AK"}, `both an S3 access key and a secret key`},
		{[]string{"--endpoints", " , ", "database", "list"}, `--endpoints is empty`},
	}
	for _, tt := range tests {
		r := c.run(tt.args...)
		require.Equal(t, exitUsage, r.code, "%q: %s", tt.args, r.stderr)
		require.Contains(t, r.stderr, tt.msg, "%q", tt.args)
		require.Contains(t, r.stderr, "--help' for usage.")
	}
	require.Empty(t, c.sent(), "a bad command line must not reach the server")
}

func TestServerErrorsExit1WithTheServersMessage(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	r := c.run("collection", "describe", "nope")
	require.Equal(t, exitError, r.code)
	require.Equal(t, "Error: not found: collection \"nope\" not found in database \"default\"\n", r.stderr)

	c.ok("collection", "create", "docs")
	r = c.run("collection", "create", "docs")
	require.Equal(t, exitError, r.code)
	require.Equal(t, "Error: already exists: collection \"docs\" already exists in database \"default\"\n", r.stderr)

	// Names are checked before anything is proposed.
	r = c.run("partition", "create", "docs", "2025")
	require.Equal(t, exitError, r.code)
	require.Equal(t, "Error: invalid argument: partition name \"2025\" must start with a letter or an underscore\n", r.stderr)

	r = c.run("collection", "create", "docs2", "--schema-file", "/nonexistent/schema.json")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "read the schema: open /nonexistent/schema.json")
}

func TestUnreachableClusterExits1(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.cluster.Stop(0)
	r := c.run("--timeout", "2s", "database", "list")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "Error: unavailable:")
}

func TestHelpExits0(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, args := range [][]string{{}, {"collection"}, {"--help"}, {"segment", "list", "--help"}} {
		r := c.run(args...)
		require.Equal(t, exitOK, r.code, "%q: %s", args, r.stderr)
		require.Contains(t, r.stdout, "Usage:")
	}
}

func TestRootCommandTree(t *testing.T) {
	root := newRootCmd()
	var names []string
	for _, c := range root.Commands() {
		names = append(names, c.Name())
	}
	for _, want := range []string{"cluster", "database", "collection", "partition", "index", "segment", "generate", "repository", "policy"} {
		require.Contains(t, names, want)
	}
	for _, flag := range []string{"endpoints", "output", "timeout"} {
		require.NotNil(t, root.PersistentFlags().Lookup(flag), flag)
	}
}

func TestEndpointsDefaultComesFromTheEnvironment(t *testing.T) {
	t.Setenv(endpointsEnv, "10.1.1.1:7001")
	require.Equal(t, "10.1.1.1:7001", newRootCmd().PersistentFlags().Lookup("endpoints").DefValue)
	t.Setenv(endpointsEnv, "")
	require.Equal(t, defaultEndpoints, newRootCmd().PersistentFlags().Lookup("endpoints").DefValue)
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"4096", 4096}, {"4KiB", 4096}, {"4kib", 4096}, {"1MiB", 1 << 20}, {"1.5MiB", 3 << 19},
		{"2GiB", 2 << 30}, {"1TiB", 1 << 40}, {"2MB", 2_000_000}, {"1kb", 1000}, {"64k", 64 << 10},
		{"3M", 3 << 20}, {"10B", 10}, {" 8 KiB ", 8192},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
	for _, bad := range []string{"", "KiB", "-1", "-1KiB", "1.2.3", "12 parsecs", "NaN", "Inf", "9999999999TiB"} {
		_, err := parseSize(bad)
		require.Error(t, err, bad)
	}
}

func TestStoreConfig(t *testing.T) {
	info := &snapkeepv1.StorageInfo{Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", Bucket: "b", Root: "r", PathStyle: true}
	cfg, err := storeConfig(info, s3Credentials{})
	require.NoError(t, err)
	require.Equal(t, objstore.S3Config{Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", Bucket: "b", PathStyle: true}, cfg,
		"no credentials, even on loopback: the AWS default chain finds them")

	cfg, err = storeConfig(info, s3Credentials{accessKey: "AK", secretKey: "SK"})
	require.NoError(t, err)
	require.Equal(t, "AK", cfg.AccessKey)

	_, err = storeConfig(&snapkeepv1.StorageInfo{}, s3Credentials{})
	require.Error(t, err)
}

// TestResolveCredentials: flag, then env, then the default chain; the dev keys only
// with --dev, and each says where it came from.
func TestResolveCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	creds, err := resolveCredentials("", "", false)
	require.NoError(t, err)
	require.Empty(t, creds.accessKey)
	require.Equal(t, credsFromChain, creds.describe())

	creds, err = resolveCredentials("", "", true)
	require.NoError(t, err)
	require.Equal(t, objstore.EmbeddedAccessKey, creds.accessKey)
	require.Equal(t, `access key id "snapkeep-dev" (from --dev: the dev keys of snapkeep dev's embedded S3)`, creds.describe())
	_, err = resolveCredentials("AK", "SK", true)
	require.ErrorContains(t, err, "not both")

	creds, err = resolveCredentials("AK", "SK", false)
	require.NoError(t, err)
	require.Equal(t, `access key id "AK" (from flag --s3-access-key)`, creds.describe())

	t.Setenv("AWS_ACCESS_KEY_ID", "AKENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SKENV")
	creds, err = resolveCredentials("", "", false)
	require.NoError(t, err)
	require.Equal(t, `access key id "AKENV" (from env AWS_ACCESS_KEY_ID)`, creds.describe())
}

// TestGenerateUsesDevKeysOnlyWithDev: against an S3 on 127.0.0.1 that is not snapkeep
// dev's, generate used to switch silently to the dev keys and fail with
// InvalidAccessKeyId, leaving allocated segments behind. Now the dev keys need --dev,
// a refused upload names the credentials used, and the failed run drops its
// allocations.
func TestGenerateUsesDevKeysOnlyWithDev(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	c := newCLI(t)
	c.ok("collection", "create", "docs")
	c.refuseUploads = true
	args := []string{"generate", "--collection", "docs", "--segments", "3", "--files-per-segment", "2", "--file-size", "100"}
	r := c.run(args...)
	require.Equal(t, exitError, r.code, r.stderr)
	require.Len(t, c.opened, 1)
	require.Empty(t, c.opened[0].AccessKey, "no dev keys without --dev, even for a loopback endpoint")
	require.Contains(t, r.stderr, "S3 refused the credentials: "+credsFromChain+"; against snapkeep dev's embedded S3, add --dev")

	t.Setenv("AWS_ACCESS_KEY_ID", "AKEXTERNAL")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	r = c.run(args...)
	require.Equal(t, exitError, r.code, r.stderr)
	require.Equal(t, "AKEXTERNAL", c.opened[1].AccessKey)
	require.Contains(t, r.stderr, `S3 refused the credentials: access key id "AKEXTERNAL" (from env AWS_ACCESS_KEY_ID)`)

	// The failed runs left no segment allocated.
	out := c.ok("segment", "list", "docs", "-o", "json")
	require.NotContains(t, out, "SEGMENT_STATE_ALLOCATED")
	require.Contains(t, out, "SEGMENT_STATE_DROPPED")

	c.refuseUploads = false
	c.ok(append(args, "--dev")...)
	require.Equal(t, objstore.EmbeddedAccessKey, c.opened[len(c.opened)-1].AccessKey)
}

func TestHumanBytesAndEnumNames(t *testing.T) {
	require.Equal(t, "0 B", humanBytes(0))
	require.Equal(t, "1023 B", humanBytes(1023))
	require.Equal(t, "1.5 KiB", humanBytes(1536))
	require.Equal(t, "64.0 MiB", humanBytes(64<<20))
	require.Equal(t, "flushed", enumName(snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED))
	require.Equal(t, "unreachable", enumName(snapkeepv1.NodeRole_NODE_ROLE_UNREACHABLE))
	require.Equal(t, "bm25", enumName(snapkeepv1.FileKind_FILE_KIND_BM25))
	require.Equal(t, "partition_dropped", enumName(snapkeepv1.DropReason_DROP_REASON_PARTITION_DROPPED))
	require.Equal(t, "ready", enumName(snapkeepv1.IndexBuildState_INDEX_BUILD_STATE_READY))
}
