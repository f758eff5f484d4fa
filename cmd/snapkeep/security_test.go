package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// TestTLSInitAndTokenCreate makes certificates and tokens with the CLI, starts a node
// with them (TLS with mTLS, tokens), and talks to it with the CLI's --tls-* and --token.
// Not parallel: it sets SNAPKEEP_TOKEN.
func TestTLSInitAndTokenCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	c := &cli{t: t}
	// tls and token need no cluster; they hang off the full command tree.
	run := func(args ...string) result {
		root := newRootCmd()
		var stdout, stderr bytes.Buffer
		root.SetOut(&stdout)
		root.SetErr(&stderr)
		code := execute(context.Background(), root, args, &stderr)
		return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	}
	ok := func(args ...string) string {
		r := run(args...)
		require.Equal(t, exitOK, r.code, "snapkeep %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
		return r.stdout
	}
	out := ok("tls", "init", "--dir", dir, "--nodes", "n1", "--hosts", "127.0.0.1,localhost")
	require.Contains(t, out, "--tls-cert "+filepath.Join(dir, "n1.pem"))
	for _, f := range []string{"ca.pem", "ca-key.pem", "n1.pem", "n1-key.pem", "client.pem", "client-key.pem"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		if strings.HasSuffix(f, "-key.pem") {
			require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
		}
	}
	// Again: the files exist; a new node reuses the CA.
	r := run("tls", "init", "--dir", dir, "--nodes", "n1")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "--force")
	caBefore, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	out = ok("tls", "init", "--dir", dir, "--nodes", "n2", "--client-name", "")
	require.Contains(t, out, "using the CA")
	caAfter, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	require.Equal(t, caBefore, caAfter)

	tokenRe := regexp.MustCompile(`(?m)^token: (\S+)\nnode flag: --tokens (\S+)$`)
	m := tokenRe.FindStringSubmatch(ok("token", "create", "--role", "reader"))
	require.Len(t, m, 3)
	readerTok, readerLine := m[1], m[2]
	require.Equal(t, server.TokenLine(server.RoleReader, readerTok), readerLine)
	m = tokenRe.FindStringSubmatch(ok("token", "create", "--role", "writer"))
	require.Len(t, m, 3)
	writerTok, writerLine := m[1], m[2]
	require.NotEqual(t, readerTok, writerTok)
	secret := regexp.MustCompile(`cluster secret: (\S+)`).FindStringSubmatch(ok("token", "create", "--role", "internal"))
	require.Len(t, secret, 2)
	require.Equal(t, exitUsage, run("token", "create", "--role", "root").code)

	c.cluster = servertest.Start(t, 1, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
		cfg.TLS = server.TLSConfig{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "n1.pem"), KeyFile: filepath.Join(dir, "n1-key.pem"), VerifyIncoming: true}
		cfg.Auth = server.AuthConfig{Tokens: []string{readerLine, writerLine}, InternalToken: secret[1]}
	}})
	tlsFlags := []string{"--tls-ca", filepath.Join(dir, "ca.pem"), "--tls-cert", filepath.Join(dir, "client.pem"), "--tls-key", filepath.Join(dir, "client-key.pem")}
	args := func(extra ...string) []string { return append(append([]string{}, tlsFlags...), extra...) }

	c.ok(args("--token", writerTok, "collection", "create", "docs")...)
	require.Contains(t, c.ok(args("--token", readerTok, "collection", "list")...), "docs")
	r = c.run(args("--token", readerTok, "collection", "create", "other")...)
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "needs role writer")
	r = c.run(args("collection", "list")...)
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "needs a token")
	// The token from the environment.
	t.Setenv(tokenEnv, readerTok)
	c.ok(args("collection", "list")...)
	// Without a client certificate the node refuses the connection (mTLS).
	r = c.run("--tls-ca", filepath.Join(dir, "ca.pem"), "--timeout", "2s", "collection", "list")
	require.Equal(t, exitError, r.code, r.stderr)
	// Half a client certificate is a usage error.
	r = c.run("--tls-ca", filepath.Join(dir, "ca.pem"), "--tls-cert", filepath.Join(dir, "client.pem"), "collection", "list")
	require.Equal(t, exitUsage, r.code, r.stderr)
}
