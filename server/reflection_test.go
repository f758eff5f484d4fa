package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// grpcurlBinary is bin/grpcurl of the repository (`make tools` installs it).
func grpcurlBinary(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "bin", "grpcurl"))
	require.NoError(t, err)
	_, err = os.Stat(path)
	require.NoError(t, err, "grpcurl is missing: run `make tools` (installs github.com/fullstorydev/grpcurl/cmd/grpcurl into ./bin)")
	return path
}

// TestReflectionWithGrpcurl lists the API's services and calls a method with grpcurl,
// which knows the API only through gRPC server reflection. Reflection is role-checked:
// without a token it is refused; the Internal service is not listed.
func TestReflectionWithGrpcurl(t *testing.T) {
	grpcurl := grpcurlBinary(t)
	const readerToken = "tok-reader-for-grpcurl"
	c := servertest.Start(t, 1, servertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.Auth = server.AuthConfig{Tokens: []string{server.TokenLine(server.RoleReader, readerToken)}, InternalToken: internalSecret}
	}})
	addr := c.Nodes[0].GRPCAddr()
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, grpcurl, append([]string{"-plaintext"}, args...)...).CombinedOutput()
		return string(out), err
	}
	auth := "authorization: Bearer " + readerToken

	out, err := run("-H", auth, addr, "list")
	require.NoError(t, err, out)
	for _, svc := range []string{"snapkeep.v1.Catalog", "snapkeep.v1.Snapshots", "snapkeep.v1.Restores", "snapkeep.v1.GC", "snapkeep.v1.Cluster"} {
		require.Contains(t, out, svc+"\n")
	}
	require.NotContains(t, out, "snapkeep.internal.v1.Internal")

	out, err = run("-H", auth, addr, "describe", "snapkeep.v1.ListCollectionsRequest")
	require.NoError(t, err, out)
	require.Contains(t, out, "include_schema")

	out, err = run("-H", auth, "-d", `{"page_size": 10}`, addr, "snapkeep.v1.Catalog/ListDatabases")
	require.NoError(t, err, out)
	require.Contains(t, out, `"name": "default"`)

	out, err = run(addr, "list")
	require.Error(t, err, out)
	require.Contains(t, out, "Unauthenticated")
}
