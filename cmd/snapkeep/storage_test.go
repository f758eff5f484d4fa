package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// TestStorageAnalyze runs `storage analyze` against a node on the embedded server:
// a table of checks and the feature map, exit status 0 (unsupported behaviours have
// fallbacks); --json prints the response; an unknown repository exits 1.
func TestStorageAnalyze(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.ok("storage", "analyze")
	require.Contains(t, out, "Storage analysis of bucket ")
	require.Regexp(t, `(?m)^Node n1 \(under snapkeep/\.snapkeep-analyze/\S+/nodes/n1/\)$`, out)
	require.Regexp(t, `(?m)^conditional-put\s+ok\s+`, out)
	require.Regexp(t, `(?m)^upload-part-copy\s+unsupported\s+\S+\s+MultipartCopy`, out)
	require.Regexp(t, `(?m)^upload-part-copy\s+unsupported\s+fallback: streamed copy`, out, "the feature map")
	require.Contains(t, out, "Verdict: safe")
	require.NotContains(t, out, "Across nodes", "one node: no cross-node checks")

	out = c.ok("storage", "analyze", "--json")
	var resp map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &resp), out)
	require.Len(t, resp["nodes"], 1)
	require.NotEmpty(t, resp["features"])

	r := c.run("storage", "analyze", "--repository", "nosuch")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, `repository "nosuch" is not registered`)
	require.Empty(t, c.keys(), "nothing is left in the bucket")
}

func TestAnalysisVerdict(t *testing.T) {
	require.NoError(t, analysisVerdict(&snapkeepv1.AnalyzeStorageResponse{}))
	require.ErrorContains(t, analysisVerdict(&snapkeepv1.AnalyzeStorageResponse{Target: "bucket b", Unsafe: true, Errors: true}), "bucket b: unsafe behaviour found")
	require.ErrorContains(t, analysisVerdict(&snapkeepv1.AnalyzeStorageResponse{Target: "bucket b", Errors: true}), "could not finish")
}
