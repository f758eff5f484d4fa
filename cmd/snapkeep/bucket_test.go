package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
)

// runCLI runs the whole command tree with args (no cluster needed).
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd()
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	code := execute(context.Background(), root, args, &stderr)
	return stdout.String(), stderr.String(), code
}

// TestBucketCreate creates a bucket on the embedded S3 with `snapkeep bucket create`,
// writes into it, and creates it again (not an error); a bad name is a usage error.
func TestBucketCreate(t *testing.T) {
	ctx := context.Background()
	emb, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, emb.Close()) })

	for range 2 {
		out, errOut, code := runCLI(t, "bucket", "create", "fresh-bucket", "--s3-endpoint", emb.Endpoint(), "--s3-path-style", "--dev")
		require.Equal(t, exitOK, code, errOut)
		require.Equal(t, `Bucket "fresh-bucket" is ready at `+emb.Endpoint()+".\n", out)
	}
	cfg := emb.Config()
	cfg.Bucket = "fresh-bucket"
	store, err := objstore.NewS3(ctx, cfg)
	require.NoError(t, err)
	defer store.Close()
	_, err = store.Put(ctx, "k", strings.NewReader("v"), 1, objstore.PutOptions{})
	require.NoError(t, err)

	_, errOut, code := runCLI(t, "bucket", "create", "Bad_Name", "--s3-endpoint", emb.Endpoint(), "--dev")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `bucket name "Bad_Name": want 3 to 63 lowercase letters`)
	_, errOut, code = runCLI(t, "bucket", "create", "b-c-d", "--dev", "--s3-access-key", "AK", "--s3-secret-key", "SK")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "not both")
}

// TestListSchemasOnlyOnRequest: collection list and snapshot list page through
// everything and carry schemas only with --schema.
func TestListSchemasOnlyOnRequest(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	schemaFile := filepath.Join(t.TempDir(), "schema.bin")
	require.NoError(t, os.WriteFile(schemaFile, []byte("my-schema"), 0o600))
	c.ok("collection", "create", "docs", "--schema-file", schemaFile)
	c.ok("snapshot", "create", "docs", "s1")
	encoded := base64.StdEncoding.EncodeToString([]byte("my-schema"))

	require.NotContains(t, c.ok("collection", "list", "-o", "json"), encoded)
	require.Contains(t, c.ok("collection", "list", "-o", "json", "--schema"), `"schema": "`+encoded+`"`)
	require.NotContains(t, c.ok("snapshot", "list", "-o", "json"), encoded)
	require.Contains(t, c.ok("snapshot", "list", "-o", "json", "--schema"), `"schema": "`+encoded+`"`)
}
