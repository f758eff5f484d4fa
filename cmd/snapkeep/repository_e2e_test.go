package main

// End-to-end tests of the repository commands against a real one-node cluster (as the
// other CLI tests use) and repositories in embedded S3 servers
// (go test -race ./cmd/snapkeep/ -run E2E).

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// repoBucket is a repository's storage: its own embedded S3 server (another
// endpoint than the cluster's), and a client to look into it.
type repoBucket struct {
	t     *testing.T
	emb   *objstore.Embedded
	store *objstore.S3
}

func startRepoBucket(t *testing.T) *repoBucket {
	t.Helper()
	ctx := context.Background()
	emb, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{Bucket: "backups"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, emb.Close()) })
	store, err := objstore.NewS3(ctx, emb.Config())
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return &repoBucket{t: t, emb: emb, store: store}
}

// registerArgs are the arguments that register the bucket as repository name.
func (b *repoBucket) registerArgs(name string, extra ...string) []string {
	cfg := b.emb.Config()
	return append([]string{"repository", "register", name, "--bucket", cfg.Bucket, "--endpoint", cfg.Endpoint,
		"--region", cfg.Region, "--path-style", "--prefix", "prod"}, extra...)
}

// keys lists every key under prefix in the repository's bucket.
func (b *repoBucket) keys(prefix string) []string {
	b.t.Helper()
	var keys []string
	token := ""
	for {
		page, err := b.store.List(context.Background(), prefix, token, 1000)
		require.NoError(b.t, err)
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.NextToken == "" {
			return keys
		}
		token = page.NextToken
	}
}

// repositorySnapshotIDs returns name → id of the snapshots in repo, as c sees them.
func repositorySnapshotIDs(t *testing.T, c *cli, repo string) map[string]string {
	t.Helper()
	var resp snapkeepv1.ListRepositorySnapshotsResponse
	require.NoError(t, protojson.Unmarshal([]byte(c.ok("repository", "snapshots", repo, "-o", "json")), &resp))
	ids := make(map[string]string)
	for _, s := range resp.GetSnapshots() {
		ids[s.GetName()] = s.GetId()
	}
	return ids
}

var jobIDPattern = regexp.MustCompile(`(?m)^Job:\s+(\d+)$`)

// TestRepositoryE2EExportIsIncrementalAndRestores: register, export (the second
// export skips what the first copied), list, restore by id and by name, verify.
func TestRepositoryE2EExportIsIncrementalAndRestores(t *testing.T) {
	t.Parallel()
	repo := startRepoBucket(t) // before the cluster: it stops after the nodes
	c := newCLI(t)
	c.ok("generate", "--collection", "docs", "--create", "--segments", "3", "--files-per-segment", "4", "--file-size", "2KiB", "--dev")
	c.ok("snapshot", "create", "docs", "nightly")

	out := c.ok(repo.registerArgs("offsite", "--description", "the DR site")...)
	require.Contains(t, out, `Registered repository "offsite"`)
	require.Regexp(t, `(?m)^n1\s+yes\s+(yes|no)\s+(yes|no)\s+yes\s+-$`, out, "the node's probe passed, conditional create included")
	require.NotEmpty(t, repo.keys("prod/snapkeep-repository"), "the format marker")
	out = c.ok("repository", "list")
	require.Regexp(t, `(?m)^offsite\s+s3://backups/prod\s+http://\S+\s+read-write\s+\S+ \(this cluster\)\s+-\s+-\s+`, out)

	out = c.ok("snapshot", "export", "docs", "nightly", "--to", "offsite", "--wait")
	require.Contains(t, out, "Kind:      export")
	require.Contains(t, out, "State:     completed")
	require.Contains(t, out, "Progress:  100.0%: 12/12 files")
	require.Contains(t, out, "Skipped:   0 files (0 B)")
	first := jobIDPattern.FindStringSubmatch(out)
	require.NotNil(t, first, out)

	// More segments, a second snapshot: only the new files are copied.
	c.ok("generate", "--collection", "docs", "--segments", "1", "--files-per-segment", "4", "--file-size", "2KiB", "--seed", "2", "--dev")
	c.ok("snapshot", "create", "docs", "nightly2")
	out = c.ok("snapshot", "export", "docs", "nightly2", "--to", "offsite", "--wait")
	require.Contains(t, out, "Progress:  100.0%: 16/16 files")
	require.Contains(t, out, "skipped 12 files (24.0 KiB) already in the repository")
	require.Contains(t, out, "Skipped:   12 files (24.0 KiB) already in the repository")

	out = c.ok("repository", "snapshots", "offsite")
	require.Regexp(t, `(?m)^\S+\s+nightly\s+default/docs\s+\S+\s+12\s+24\.0 KiB\s+\S+$`, out)
	require.Regexp(t, `(?m)^\S+\s+nightly2\s+default/docs\s+\S+\s+16\s+32\.0 KiB\s+\S+$`, out)
	ids := repositorySnapshotIDs(t, c, "offsite")
	require.NotEmpty(t, ids["nightly"])
	out = c.ok("repository", "snapshots", "offsite", "--collection", "nope")
	require.Contains(t, out, ": 0 snapshots")

	// Restore by id, then by name narrowed by the collection.
	out = c.ok("restore", "start", "--from", "offsite", ids["nightly"], "--target", "docs_back", "--wait")
	require.Contains(t, out, "Kind:      repository-restore")
	require.Contains(t, out, "State:     completed")
	require.Contains(t, out, "Progress:  100.0%: 12/12 files")
	out = c.ok("restore", "start", "--from", "offsite", "docs", "nightly2", "--target", "docs_back2", "--wait")
	require.Contains(t, out, "Progress:  100.0%: 16/16 files")
	out = c.ok("collection", "list")
	require.Contains(t, out, "docs_back2")
	require.Len(t, regexp.MustCompile(`(?m)^\d+\s+_default\s+flushed`).FindAllString(c.ok("segment", "list", "docs_back"), -1), 3)

	// The jobs, by kind.
	out = c.ok("restore", "list", "--kind", "export")
	require.Regexp(t, `(?m)^`+first[1]+`\s+export\s+completed\s+docs/nightly\s+offsite:docs/nightly\s+100%\s+12/12\s+0\s+`, out)
	require.NotContains(t, out, "repository-restore")
	out = c.ok("restore", "list", "--kind", "repository-restore")
	require.Regexp(t, `(?m)^\d+\s+repository-restore\s+completed\s+offsite:docs/nightly\s+docs_back\s+100%`, out)
	require.NotContains(t, out, " export ")
	out = c.ok("restore", "status", first[1])
	require.Contains(t, out, "Target:    repository offsite, snapshot id "+ids["nightly"])
	r := c.run("restore", "cancel", first[1])
	require.Equal(t, exitError, r.code, "a completed export cannot be cancelled")

	out = c.ok("repository", "verify", "offsite", "--deep")
	require.Regexp(t, `checked 2 snapshots, \d+ objects \(\S+ \S+, \S+ \S+ read\): ok\.\n`, out)

	// A job uses it no more: it can be unregistered (nothing in it is deleted).
	before := repo.keys("prod/")
	require.Contains(t, c.ok("repository", "unregister", "offsite"), `Unregistered repository "offsite"`)
	require.Equal(t, before, repo.keys("prod/"))
	require.Contains(t, c.ok("repository", "unregister", "offsite"), "nothing to unregister")
}

// TestRepositoryE2EDisasterRecoveryIntoANewCluster: a brand-new cluster with an empty
// catalog registers the repository read-only, lists it and restores from it; it
// cannot register it as a second writer, nor export to it.
func TestRepositoryE2EDisasterRecoveryIntoANewCluster(t *testing.T) {
	t.Parallel()
	old := newCLI(t)
	repo := startRepoBucket(t)
	old.ok("generate", "--collection", "docs", "--create", "--segments", "2", "--files-per-segment", "3", "--file-size", "1KiB", "--dev")
	old.ok("snapshot", "create", "docs", "nightly")
	old.ok(repo.registerArgs("offsite")...)
	old.ok("snapshot", "export", "docs", "nightly", "--to", "offsite", "--wait")
	old.cluster.StopAll() // the old cluster and its bucket are gone

	fresh := newCLI(t)
	r := fresh.run(repo.registerArgs("offsite")...)
	require.Equal(t, exitError, r.code, "a second writer is refused: %s", r.stdout)
	require.Contains(t, r.stderr, "read-only")

	out := fresh.ok(repo.registerArgs("offsite", "--read-only")...)
	require.Contains(t, out, "Access:       read-only (written by cluster ")
	require.Regexp(t, `(?m)^n1\s+yes\s+`, out)
	out = fresh.ok("repository", "snapshots", "offsite")
	require.Regexp(t, `(?m)^\S+\s+nightly\s+default/docs\s+\S+\s+6\s+6\.0 KiB\s+\S+$`, out)

	out = fresh.ok("restore", "start", "--from", "offsite", "nightly", "--target", "docs", "--wait")
	require.Contains(t, out, "State:     completed")
	require.Contains(t, out, "Progress:  100.0%: 6/6 files")
	require.Contains(t, fresh.ok("collection", "list"), "docs")
	require.Len(t, regexp.MustCompile(`(?m)^\d+\s+_default\s+flushed`).FindAllString(fresh.ok("segment", "list", "docs"), -1), 2)

	// Read-only: nothing is written to it.
	fresh.ok("snapshot", "create", "docs", "restored")
	before := repo.keys("")
	r = fresh.run("snapshot", "export", "docs", "restored", "--to", "offsite")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "read-only")
	r = fresh.run("repository", "delete-snapshot", "offsite", repositorySnapshotIDs(t, fresh, "offsite")["nightly"])
	require.Equal(t, exitError, r.code)
	require.Equal(t, before, repo.keys(""))
}

// TestRepositoryE2EDeleteCollectAndVerify: a deleted snapshot's objects go at the
// next repository gc (listed, not deleted, by --dry-run); verify finds a missing
// object and exits 1.
func TestRepositoryE2EDeleteCollectAndVerify(t *testing.T) {
	t.Parallel()
	repo := startRepoBucket(t) // before the cluster: it stops after the nodes
	c := newCLI(t)
	c.ok("generate", "--collection", "docs", "--create", "--segments", "2", "--files-per-segment", "2", "--file-size", "1KiB", "--dev")
	c.ok("snapshot", "create", "docs", "old")
	c.ok("segment", "drop", regexp.MustCompile(`(?m)^(\d+)\s+_default\s+flushed`).FindStringSubmatch(c.ok("segment", "list", "docs"))[1])
	c.ok("generate", "--collection", "docs", "--segments", "1", "--files-per-segment", "2", "--file-size", "1KiB", "--seed", "2", "--dev")
	c.ok("snapshot", "create", "docs", "new")
	c.ok(repo.registerArgs("offsite")...)
	c.ok("snapshot", "export", "docs", "old", "--to", "offsite", "--wait")
	c.ok("snapshot", "export", "docs", "new", "--to", "offsite", "--wait")
	ids := repositorySnapshotIDs(t, c, "offsite")

	out := c.ok("repository", "delete-snapshot", "offsite", ids["old"])
	require.Contains(t, out, "Deleted snapshot "+ids["old"]+` from repository "offsite"`)
	require.Contains(t, c.ok("repository", "delete-snapshot", "offsite", ids["old"]), "nothing to delete")
	require.NotContains(t, c.ok("repository", "snapshots", "offsite"), " old ")

	before := repo.keys("prod/data/")
	out = c.ok("repository", "gc", "offsite", "--dry-run", "--grace", "0s")
	require.Contains(t, out, "would delete 3 objects") // the dropped segment's two files and old's manifest
	require.Contains(t, out, "prod/snapshots/"+ids["old"]+".skm")
	require.Equal(t, before, repo.keys("prod/data/"), "a dry run deletes nothing")

	out = c.ok("repository", "gc", "offsite") // the default grace keeps everything this young
	require.Contains(t, out, "deleted 0 objects")
	out = c.ok("repository", "gc", "offsite", "--grace", "0s")
	require.Contains(t, out, "deleted 3 objects")
	require.Len(t, repo.keys("prod/data/"), len(before)-2)

	out = c.ok("repository", "verify", "offsite", "--deep")
	require.Contains(t, out, "checked 1 snapshots")
	require.Contains(t, out, ": ok.")

	// Lose an object: verify names it and fails.
	lost := repo.keys("prod/data/")[0]
	_, err := repo.store.Delete(context.Background(), []string{lost})
	require.NoError(t, err)
	r := c.run("repository", "verify", "offsite", "--snapshot", ids["new"])
	require.Equal(t, exitError, r.code)
	require.Regexp(t, `(?m)^`+regexp.QuoteMeta(ids["new"])+`\s+`+regexp.QuoteMeta(lost)+`\s+\S`, r.stdout)
	require.Contains(t, r.stderr, `repository "offsite" failed verification: 1 problems`)
}

// TestRepositoryE2ERegisterRefusedNamesTheNode: a repository the node cannot reach
// is refused, the error naming the node; nothing is registered.
func TestRepositoryE2ERegisterRefusedNamesTheNode(t *testing.T) {
	t.Parallel()
	repo := startRepoBucket(t) // before the cluster: it stops after the nodes
	c := newCLI(t)
	for _, args := range [][]string{
		{"repository", "register", "nowhere", "--bucket", "backups", "--endpoint", "http://127.0.0.1:1", "--path-style"},
		{"repository", "register", "nobucket", "--bucket", "no-such-bucket", "--endpoint", repo.emb.Config().Endpoint, "--path-style"},
	} {
		r := c.run(args...)
		require.Equal(t, exitError, r.code, "%q: %s", args, r.stdout)
		require.Contains(t, r.stderr, "n1", "%q: the error names the node", args)
	}
	require.NotContains(t, c.ok("repository", "list"), "nowhere")
	require.Empty(t, repo.keys(""), "nothing was written")
}

// TestRepositoryE2ECredentialsByName: --credentials names credentials the node
// resolves from its environment; an unknown name is refused.
func TestRepositoryE2ECredentialsByName(t *testing.T) {
	// Not parallel: the node reads the environment.
	t.Setenv("SNAPKEEP_REPO_DR_MINIO_ACCESS_KEY", objstore.EmbeddedAccessKey)
	t.Setenv("SNAPKEEP_REPO_DR_MINIO_SECRET_KEY", objstore.EmbeddedSecretKey)
	repo := startRepoBucket(t) // before the cluster: it stops after the nodes
	c := newCLI(t)
	out := c.ok(repo.registerArgs("offsite", "--credentials", "dr-minio")...)
	require.Contains(t, out, "Credentials:  dr-minio (resolved by each node)")
	r := c.run(repo.registerArgs("other", "--credentials", "unknown-name")...)
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "unknown-name")
	require.True(t, strings.Contains(r.stderr, "n1"), r.stderr)
}

// TestRepositoryE2ESameEndpointCopiesServerSide: a repository in the cluster's own
// bucket (another prefix) is reached by server-side copies.
func TestRepositoryE2ESameEndpointCopiesServerSide(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	cfg := c.emb.Config()
	c.ok("generate", "--collection", "docs", "--create", "--segments", "1", "--files-per-segment", "3", "--file-size", "1KiB", "--dev")
	c.ok("snapshot", "create", "docs", "nightly")
	out := c.ok("repository", "register", "local", "--bucket", cfg.Bucket, "--endpoint", cfg.Endpoint, "--region", cfg.Region,
		"--path-style", "--prefix", "repositories/local")
	require.Regexp(t, `(?m)^n1\s+yes\s+yes\s+yes\s+yes\s+-$`, out)
	out = c.ok("snapshot", "export", "docs", "nightly", "--to", "local", "--wait", "-o", "json")
	var job snapkeepv1.GetRestoreStateResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &job), "with -o json, --wait prints the job at the end only")
	require.Equal(t, snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED, job.GetJob().GetState())
	require.Equal(t, snapkeepv1.JobKind_JOB_KIND_EXPORT, job.GetJob().GetKind())
	require.Zero(t, job.GetJob().GetVerifiedByStream(), "server-side copies, not streams")
}

// TestRepositoryE2ERegisterRetriesAProbe: a probe write the server refuses once (as
// versitygw's posix backend once answered 409 ExistingObjectIsDirectory to a node's
// probe while another node deleted its own) is tried again: the registration succeeds.
func TestRepositoryE2ERegisterRetriesAProbe(t *testing.T) {
	t.Parallel()
	repo := startRepoBucket(t) // before the cluster: it stops after the nodes
	target, err := url.Parse(repo.emb.Config().Endpoint)
	require.NoError(t, err)
	var refused atomic.Int32
	forward := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/probes/") && refused.CompareAndSwap(0, 1) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ExistingObjectIsDirectory</Code><Message>Existing Object is a directory.</Message></Error>`)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	c := newCLI(t)
	cfg := repo.emb.Config()
	out := c.ok("repository", "register", "flaky", "--bucket", cfg.Bucket, "--endpoint", proxy.URL, "--region", cfg.Region, "--path-style", "--prefix", "prod")
	require.Equal(t, int32(1), refused.Load(), "the proxy refused one probe write")
	require.Contains(t, out, "flaky")
	require.Contains(t, c.ok("repository", "list"), "flaky")
}
