package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/devca"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// devCerts writes a CA, one node certificate per node (SANs 127.0.0.1, localhost) and a
// client certificate into dir.
func devCerts(t *testing.T, dir string, nodes int) *devca.CA {
	t.Helper()
	ca, err := devca.NewCA("snapkeep test CA", time.Hour)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CertPEM, 0o644))
	for i := 1; i <= nodes; i++ {
		leaf, err := ca.Issue("n"+string(rune('0'+i)), []string{"127.0.0.1", "localhost"}, devca.Node, time.Hour)
		require.NoError(t, err)
		name := "n" + string(rune('0'+i))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".pem"), leaf.CertPEM, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+"-key.pem"), leaf.KeyPEM, 0o600))
	}
	leaf, err := ca.Issue("client", nil, devca.Client, time.Hour)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "client.pem"), leaf.CertPEM, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "client-key.pem"), leaf.KeyPEM, 0o600))
	return ca
}

func dialWith(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestSecurityTLSCluster runs three nodes with TLS from PEM files and mTLS on: Raft,
// forwarding and status calls between nodes go over TLS; a client with the CA and a
// client certificate works, one without a certificate or without TLS is refused.
func TestSecurityTLSCluster(t *testing.T) {
	dir := t.TempDir()
	devCerts(t, dir, 3)
	c := servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		name := "n" + string(rune('1'+i))
		cfg.TLS = server.TLSConfig{
			CAFile:         filepath.Join(dir, "ca.pem"),
			CertFile:       filepath.Join(dir, name+".pem"),
			KeyFile:        filepath.Join(dir, name+"-key.pem"),
			VerifyIncoming: true,
		}
	}})
	follower := c.Follower()
	addr := c.Nodes[follower].GRPCAddr()

	withCert, err := client.LoadTLSConfig(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
	require.NoError(t, err)
	conn := dialWith(t, addr, client.WithTLS(withCert))

	// A write through a follower is forwarded to the leader over TLS and replicated by
	// Raft over TLS.
	cat := pb.NewCatalogClient(conn)
	_, err = cat.CreateCollection(shortCtx(t), &pb.CreateCollectionRequest{RequestId: "tls-1", Name: "over_tls"})
	require.NoError(t, err)
	c.WaitConverged()
	for _, n := range c.Nodes {
		_, _, err := n.FSM().View().Collection("default", "over_tls")
		require.NoError(t, err, "node %s", n.ID())
	}
	// Cluster status asks every peer over TLS.
	st, err := pb.NewClusterClient(conn).ClusterStatus(shortCtx(t), &pb.ClusterStatusRequest{})
	require.NoError(t, err)
	require.Len(t, st.Nodes, 3)
	for _, n := range st.Nodes {
		require.Empty(t, n.Error, "node %s", n.Id)
	}

	// The Go client with the CA and a client certificate.
	cl, err := client.NewWithConfig(context.Background(), client.Config{
		Endpoints: c.Endpoints(), DialOptions: []grpc.DialOption{client.WithTLS(withCert)},
	})
	require.NoError(t, err)
	defer cl.Close()
	_, err = cl.ListCollections(shortCtx(t), client.NewListCollectionsOption())
	require.NoError(t, err)

	// mTLS: a client that trusts the CA but has no certificate is refused.
	noCert, err := client.LoadTLSConfig(filepath.Join(dir, "ca.pem"), "", "")
	require.NoError(t, err)
	_, err = pb.NewClusterClient(dialWith(t, addr, client.WithTLS(noCert))).ClusterStatus(shortCtx(t), &pb.ClusterStatusRequest{})
	require.Error(t, err)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)

	// Plaintext is refused.
	_, err = pb.NewClusterClient(dialWith(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials()))).
		ClusterStatus(shortCtx(t), &pb.ClusterStatusRequest{})
	require.Error(t, err)

	// A client that does not trust the cluster's CA refuses the server.
	other := devCerts(t, t.TempDir(), 0)
	_, err = pb.NewClusterClient(dialWith(t, addr, client.WithTLS(&tls.Config{RootCAs: other.Pool()}))).
		ClusterStatus(shortCtx(t), &pb.ClusterStatusRequest{})
	require.Error(t, err)

	// The Raft port refuses a TLS peer without a CA-signed certificate.
	raftAddr := c.Nodes[follower].RaftAddr()
	rc, err := tls.Dial("tcp", raftAddr, &tls.Config{RootCAs: withCert.RootCAs, ServerName: "127.0.0.1"})
	if err == nil {
		require.NoError(t, rc.SetDeadline(time.Now().Add(5*time.Second)))
		_, err = rc.Read(make([]byte, 1))
		rc.Close()
	}
	require.Error(t, err)
	// And a plaintext Raft peer gets nothing it can use.
	pc, err := net.DialTimeout("tcp", raftAddr, 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, pc.SetDeadline(time.Now().Add(5*time.Second)))
	_, _ = pc.Write(bytes.Repeat([]byte{0x42}, 64))
	_, err = pc.Read(make([]byte, 1))
	pc.Close()
	require.Error(t, err)
}

// TestSecurityTLSWithoutClientCerts: TLS given as tls.Configs (no files), without
// mTLS: a client that only trusts the CA works.
func TestSecurityTLSWithoutClientCerts(t *testing.T) {
	ca, err := devca.NewCA("test CA", time.Hour)
	require.NoError(t, err)
	c := servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		leaf, err := ca.Issue(cfg.NodeID, []string{"127.0.0.1"}, devca.Node, time.Hour)
		require.NoError(t, err)
		cert, err := leaf.TLSCertificate()
		require.NoError(t, err)
		cfg.TLS = server.TLSConfig{
			ServerTLS: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven},
			ClientTLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool()},
		}
	}})
	conn := dialWith(t, c.Nodes[c.Follower()].GRPCAddr(), client.WithTLS(&tls.Config{RootCAs: ca.Pool()}))
	_, err = pb.NewCatalogClient(conn).CreateCollection(shortCtx(t), &pb.CreateCollectionRequest{RequestId: "r1", Name: "a"})
	require.NoError(t, err)
	c.WaitConverged()
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// auditLines returns the decoded audit records logged so far.
func (b *syncBuffer) auditLines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(b.buf.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		if m["component"] == "audit" {
			out = append(out, m)
		}
	}
	return out
}

const internalSecret = "cluster-secret-0123456789"

// TestSecurityTokens checks roles, the cluster secret on internal calls, and the audit log.
func TestSecurityTokens(t *testing.T) {
	tokens := map[string]string{"reader": "tok-reader-xxxxxxxx", "writer": "tok-writer-xxxxxxxx", "admin": "tok-admin-xxxxxxxxx"}
	var lines []string
	for role, tok := range tokens {
		r, err := server.ParseRole(role)
		require.NoError(t, err)
		lines = append(lines, server.TokenLine(r, tok))
	}
	logs := &syncBuffer{}
	c := servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.Auth = server.AuthConfig{Tokens: lines, InternalToken: internalSecret}
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test_node", i)
	}})
	follower := c.Follower()
	conn := dialWith(t, c.Nodes[follower].GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	cat, gc := pb.NewCatalogClient(conn), pb.NewGCClient(conn)
	as := func(role string) context.Context {
		return metadata.AppendToOutgoingContext(shortCtx(t), "authorization", "Bearer "+tokens[role])
	}

	// No token, an unknown token, a malformed header: Unauthenticated.
	_, err := cat.ListCollections(shortCtx(t), &pb.ListCollectionsRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "needs a token")
	_, err = cat.ListCollections(metadata.AppendToOutgoingContext(shortCtx(t), "authorization", "Bearer nope"), &pb.ListCollectionsRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	_, err = cat.ListCollections(metadata.AppendToOutgoingContext(shortCtx(t), "authorization", tokens["admin"]), &pb.ListCollectionsRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	// Health probes need no token.
	require.Eventually(t, func() bool {
		hc, err := healthpb.NewHealthClient(conn).Check(shortCtx(t), &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		return hc.Status == healthpb.HealthCheckResponse_SERVING
	}, 10*time.Second, 50*time.Millisecond)

	// A reader lists but cannot write.
	_, err = cat.ListCollections(as("reader"), &pb.ListCollectionsRequest{})
	require.NoError(t, err)
	_, err = cat.CreateCollection(as("reader"), &pb.CreateCollectionRequest{RequestId: "r1", Name: "docs"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "needs role writer; this token has role reader")

	// A writer writes (through a follower: forwarding carries the cluster secret) but
	// cannot run GC or drop.
	_, err = cat.CreateCollection(as("writer"), &pb.CreateCollectionRequest{RequestId: "r2", Name: "docs"})
	require.NoError(t, err)
	_, err = gc.GCRun(as("writer"), &pb.GCRunRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err = cat.DropCollection(as("writer"), &pb.DropCollectionRequest{RequestId: "r3", Name: "docs"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	// An admin runs GC (forwarded to the leader's Internal.RunGC) and drops.
	_, err = gc.GCRun(as("admin"), &pb.GCRunRequest{})
	require.NoError(t, err)
	_, err = cat.DropCollection(as("admin"), &pb.DropCollectionRequest{RequestId: "r4", Name: "docs"})
	require.NoError(t, err)
	// Cluster status (calls every peer's Internal.NodeStatus) as a reader.
	st, err := pb.NewClusterClient(conn).ClusterStatus(as("reader"), &pb.ClusterStatusRequest{})
	require.NoError(t, err)
	for _, n := range st.Nodes {
		require.Empty(t, n.Error, "node %s", n.Id)
	}

	// The Internal service takes only the cluster secret: not nothing, not a user's
	// admin token, not a wrong secret.
	in := internalv1.NewInternalClient(conn)
	_, err = in.ReadIndex(shortCtx(t), &internalv1.ReadIndexRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	_, err = in.ReadIndex(as("admin"), &internalv1.ReadIndexRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	_, err = in.Propose(metadata.AppendToOutgoingContext(shortCtx(t), "snapkeep-internal-token", "wrong-secret-0123456789"), &internalv1.ProposeRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	_, err = in.NodeStatus(metadata.AppendToOutgoingContext(shortCtx(t), "snapkeep-internal-token", internalSecret), &internalv1.NodeStatusRequest{})
	require.NoError(t, err)

	// The Go client sends its token on every call.
	for role, want := range map[string]error{"reader": client.ErrPermissionDenied, "writer": nil} {
		cl, err := client.NewWithConfig(context.Background(), client.Config{
			Endpoints: c.Endpoints(), DialOptions: []grpc.DialOption{client.WithToken(tokens[role])},
		})
		require.NoError(t, err)
		_, err = cl.CreateCollection(shortCtx(t), client.NewCreateCollectionOption("by_"+role))
		if want == nil {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, want)
		}
		require.NoError(t, cl.Close())
	}

	// The audit log has the admin calls and the denials, with method, role, peer and
	// outcome; a plain read is not audited.
	audit := logs.auditLines(t)
	find := func(method, role, outcome string) bool {
		for _, m := range audit {
			if m["method"] == method && m["role"] == role && m["outcome"] == outcome && m["peer"] != "" {
				return true
			}
		}
		return false
	}
	require.True(t, find("/snapkeep.v1.GC/GCRun", "admin", "ok"), "%v", audit)
	require.True(t, find("/snapkeep.v1.GC/GCRun", "writer", "denied"), "%v", audit)
	require.True(t, find("/snapkeep.v1.Catalog/DropCollection", "admin", "ok"), "%v", audit)
	require.True(t, find("/snapkeep.v1.Catalog/CreateCollection", "reader", "denied"), "%v", audit)
	require.False(t, find("/snapkeep.v1.Catalog/ListCollections", "reader", "ok"), "%v", audit)
	for _, m := range audit {
		for _, tok := range tokens {
			require.NotContains(t, m, tok)
			require.NotEqual(t, tok, m["token"])
		}
	}
}

// TestSecurityConfigErrors: bad settings stop the node at start with a message naming
// the flag.
func TestSecurityConfigErrors(t *testing.T) {
	good := server.TokenLine(server.RoleAdmin, "some-token-value")
	for name, tc := range map[string]struct {
		cfg  server.Config
		want string
	}{
		"tokens without secret": {server.Config{Auth: server.AuthConfig{Tokens: []string{good}}}, "--tokens needs --internal-token"},
		"bad token line":        {server.Config{Auth: server.AuthConfig{Tokens: []string{"admin:md5:00"}, InternalToken: internalSecret}}, "ROLE:sha256:HEX"},
		"bad role":              {server.Config{Auth: server.AuthConfig{Tokens: []string{"root" + good[len("admin"):]}, InternalToken: internalSecret}}, "want reader, writer or admin"},
		"short secret":          {server.Config{Auth: server.AuthConfig{InternalToken: "short"}}, "at least 16"},
		"mtls without tls":      {server.Config{TLS: server.TLSConfig{VerifyIncoming: true}}, "--tls-verify-clients needs TLS"},
		"tls missing key":       {server.Config{TLS: server.TLSConfig{CAFile: "ca.pem", CertFile: "n1.pem"}}, "missing --tls-key"},
		"tls missing ca file":   {server.Config{TLS: server.TLSConfig{CAFile: filepath.Join(t.TempDir(), "none.pem"), CertFile: "a", KeyFile: "b"}}, "read --tls-ca"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.NodeID, cfg.DataDir = "n1", t.TempDir()
			cfg.RaftAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
			cfg.Peers = map[string]string{"n1": "127.0.0.1:1"}
			cfg.Logger = slog.New(slog.DiscardHandler)
			_, err := server.Start(cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestSecurityInternalSecretRotation is the middle step of a rotation: one node sends
// the new secret, the others still send the old one, and all accept both.
func TestSecurityInternalSecretRotation(t *testing.T) {
	const oldSecret, newSecret = "old-secret-0123456789", "new-secret-0123456789"
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(newSecret+"\n"+oldSecret+"\n"), 0o600))
	c := servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		if i == 0 {
			cfg.Auth.InternalToken, cfg.Auth.InternalTokenFile = "", secretFile
		} else {
			cfg.Auth.InternalToken = oldSecret + "," + newSecret
		}
	}})
	for i, n := range c.Nodes {
		conn := dialWith(t, n.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		_, err := pb.NewCatalogClient(conn).CreateCollection(shortCtx(t), &pb.CreateCollectionRequest{RequestId: "r" + n.ID(), Name: "c_" + n.ID()})
		require.NoError(t, err, "write through node %d", i)
		st, err := pb.NewClusterClient(conn).ClusterStatus(shortCtx(t), &pb.ClusterStatusRequest{})
		require.NoError(t, err)
		for _, s := range st.Nodes {
			require.Empty(t, s.Error, "node %d asking %s", i, s.Id)
		}
		in := internalv1.NewInternalClient(conn)
		for _, secret := range []string{oldSecret, newSecret} {
			_, err = in.NodeStatus(metadata.AppendToOutgoingContext(shortCtx(t), "snapkeep-internal-token", secret), &internalv1.NodeStatusRequest{})
			require.NoError(t, err)
		}
	}
	c.WaitConverged()
}

// TestSecurityNoClusterSecretRefusesToStart (issue 13 item 7): a node with no cluster
// secret used to start with the Internal service open to anyone, who could append raw
// entries to the log. Now it refuses to start unless --insecure says so, and a node
// with a secret refuses every internal call without it, Propose and
// ReportRestoreTasks included.
func TestSecurityNoClusterSecretRefusesToStart(t *testing.T) {
	cfg := server.Config{NodeID: "n1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Peers: map[string]string{"n1": "127.0.0.1:1"}, NoSync: true, Logger: slog.New(slog.DiscardHandler)}
	_, err := server.Start(cfg)
	require.ErrorContains(t, err, "no cluster secret")
	require.ErrorContains(t, err, "--insecure")

	c := servertest.Start(t, 1, servertest.Options{})
	conn := dialWith(t, c.Nodes[0].GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	in := internalv1.NewInternalClient(conn)
	_, err = in.Propose(shortCtx(t), &internalv1.ProposeRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	_, err = in.ReportRestoreTasks(shortCtx(t), &internalv1.ReportRestoreTasksRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	_, err = in.NodeStatus(metadata.AppendToOutgoingContext(shortCtx(t), "snapkeep-internal-token", servertest.ClusterSecret), &internalv1.NodeStatusRequest{})
	require.NoError(t, err)
}

// TestSecurityInsecureOpensTheInternalService: --insecure is the explicit way to run
// without a secret; the node starts and answers internal calls from anyone.
func TestSecurityInsecureOpensTheInternalService(t *testing.T) {
	c := servertest.Start(t, 1, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Auth = server.AuthConfig{Insecure: true}
	}})
	conn := dialWith(t, c.Nodes[0].GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	_, err := internalv1.NewInternalClient(conn).NodeStatus(shortCtx(t), &internalv1.NodeStatusRequest{})
	require.NoError(t, err)
}
