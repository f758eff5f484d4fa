package analyze_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/analyze"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newStore(t *testing.T, cfg objstore.S3Config) *objstore.S3 {
	t.Helper()
	s, err := objstore.NewS3(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// run analyzes cfg's bucket and checks that nothing is left under the prefix.
func run(t *testing.T, cfg objstore.S3Config) map[string]analyze.Result {
	t.Helper()
	store := newStore(t, cfg)
	prefix := "root/.snapkeep-analyze/n1/run/"
	rep, err := analyze.Run(t.Context(), analyze.Target{Store: store, Prefix: prefix, Config: cfg}, analyze.Options{})
	require.NoError(t, err)
	require.Empty(t, rep.CleanupError)
	page, err := store.List(t.Context(), "root/", "", 0)
	require.NoError(t, err)
	require.Empty(t, page.Objects, "the analysis cleans up everything it wrote")
	out := map[string]analyze.Result{}
	for _, r := range rep.Results {
		t.Logf("%-22s %-11s %s", r.Name, r.Outcome, r.Detail)
		require.NotEmpty(t, r.Detail)
		require.NotEmpty(t, r.Feature)
		out[r.Name] = r
	}
	require.Len(t, out, len(analyze.Checks()))
	ops := map[string]bool{}
	for _, o := range rep.Ops {
		t.Logf("%-15s n=%d p50=%v max=%v %.1f MiB/s", o.Op, o.Count, o.P50, o.Max, o.BytesPerSecond()/(1<<20))
		ops[o.Op] = true
	}
	for _, op := range []string{"put", "get", "head", "list", "delete", "put-large", "get-large"} {
		require.True(t, ops[op], "latency of %s", op)
	}
	return out
}

func outcomes(results map[string]analyze.Result) map[string]analyze.Outcome {
	out := map[string]analyze.Outcome{}
	for name, r := range results {
		out[name] = r.Outcome
	}
	return out
}

// allOK is every check OK, with exceptions.
func allOK(except map[string]analyze.Outcome) map[string]analyze.Outcome {
	out := map[string]analyze.Outcome{}
	for _, c := range analyze.Checks() {
		out[c.Name] = analyze.OK
	}
	for k, v := range except {
		out[k] = v
	}
	return out
}

func TestAnalyzeEmbedded(t *testing.T) {
	t.Parallel()
	emb, err := objstore.StartEmbedded(t.Context(), objstore.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, emb.Close()) })
	results := run(t, emb.Config())
	require.Equal(t, allOK(map[string]analyze.Outcome{
		"copy-checksum":     analyze.Unsupported,
		"upload-part-copy":  analyze.Unsupported,
		"access-denied-403": analyze.Unsupported,
	}), outcomes(results))
}

func TestAnalyzeVersityGW(t *testing.T) {
	t.Parallel()
	gw := versitygw.Start(t)
	results := run(t, gw.Config())
	require.Equal(t, allOK(nil), outcomes(results))
}
