package server

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/snapkeep/snapkeep/server/devca"
)

func TestParseDialVia(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{in: "", want: map[string]string{}},
		{in: " , ", want: map[string]string{}},
		{in: "127.0.0.1:7011=127.0.0.1:9011", want: map[string]string{"127.0.0.1:7011": "127.0.0.1:9011"}},
		{in: "127.0.0.1:7011=127.0.0.1:9011, 127.0.0.1:7001 = 127.0.0.1:9001",
			want: map[string]string{"127.0.0.1:7011": "127.0.0.1:9011", "127.0.0.1:7001": "127.0.0.1:9001"}},
		{in: "127.0.0.1:7011", wantErr: `"127.0.0.1:7011" is not FROM=TO`},
		{in: "=127.0.0.1:1", wantErr: "is not FROM=TO"},
		{in: "127.0.0.1:1=", wantErr: "is not FROM=TO"},
		{in: "127.0.0.1:1=127.0.0.1:2,127.0.0.1:1=127.0.0.1:3", wantErr: "127.0.0.1:1 is mapped twice"},
		{in: "nohost=127.0.0.1:2", wantErr: `"nohost" is not host:port`},
		{in: "127.0.0.1:1=127.0.0.1", wantErr: `"127.0.0.1" is not host:port`},
		{in: "127.0.0.1:1=127.0.0.1:", wantErr: `"127.0.0.1:" is not host:port`},
		{in: "127.0.0.1:1=127.0.0.1:1", wantErr: "maps an address to itself"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDialVia(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestConfigValidateDialVia: a DialVia set by an embedding program (not parsed) is
// checked at start too.
func TestConfigValidateDialVia(t *testing.T) {
	cfg := Config{NodeID: "n1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:1", GRPCAddr: "127.0.0.1:2",
		Peers: map[string]string{"n1": "127.0.0.1:1"}, DialVia: map[string]string{"127.0.0.1:3": "bad"}}
	cfg.applyDefaults()
	require.ErrorContains(t, cfg.validate(), `--dial-via: 127.0.0.1:3=bad: "bad" is not host:port`)
	cfg.DialVia = map[string]string{"127.0.0.1:3": "127.0.0.1:4"}
	require.NoError(t, cfg.validate())
}

// unusedAddr is a 127.0.0.1 address nothing listens on (bound, then released).
func unusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestDialViaRewritesRaftDial: the Raft stream layer dials the mapped address, and
// addresses without a mapping as they are.
func TestDialViaRewritesRaftDial(t *testing.T) {
	real, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer real.Close()
	direct, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer direct.Close()
	own, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	from := unusedAddr(t)
	layer, err := newTCPStreamLayer(own, "", map[string]string{from: real.Addr().String()})
	require.NoError(t, err)
	defer layer.Close()

	for _, tc := range []struct{ dial, lands string }{
		{from, real.Addr().String()},
		{direct.Addr().String(), direct.Addr().String()},
	} {
		c, err := layer.Dial(raft.ServerAddress(tc.dial), 2*time.Second)
		require.NoError(t, err, tc.dial)
		require.Equal(t, tc.lands, c.RemoteAddr().String())
		require.NoError(t, c.Close())
	}

	// Without the mapping the same address has no listener.
	plain, err := newTCPStreamLayer(mustListen(t), "", nil)
	require.NoError(t, err)
	defer plain.Close()
	_, err = plain.Dial(raft.ServerAddress(from), 2*time.Second)
	require.Error(t, err)
}

// TestDialViaRewritesPeerGRPC: node-to-node gRPC to a mapped address reaches the
// server at the target.
func TestDialViaRewritesPeerGRPC(t *testing.T) {
	ln := mustListen(t)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	from := unusedAddr(t)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peers := newPeerConns(map[string]string{from: ln.Addr().String()})
	defer peers.close()
	conn, err := peers.get(from)
	require.NoError(t, err)
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)

	// The same call without the mapping fails: nothing listens at from.
	direct := newPeerConns(nil)
	defer direct.close()
	conn, err = direct.get(from)
	require.NoError(t, err)
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.Error(t, err)
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

// TestDialViaKeepsTLSServerName: with TLS, a translated dial still verifies the peer's
// certificate against the address it was asked for (FROM), not the one it connected to:
// the certificate names only peer.test, the connection goes to 127.0.0.1.
func TestDialViaKeepsTLSServerName(t *testing.T) {
	ca, err := devca.NewCA("ca", time.Hour)
	require.NoError(t, err)
	leaf, err := ca.Issue("n1", []string{"peer.test"}, devca.Node, time.Hour)
	require.NoError(t, err)
	cert, err := leaf.TLSCertificate()
	require.NoError(t, err)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	clientTLS := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool()}
	sec := &security{serverTLS: serverTLS, clientTLS: clientTLS, auth: &authenticator{}}

	t.Run("raft", func(t *testing.T) {
		srvInner, err := newTCPStreamLayer(mustListen(t), "", nil)
		require.NoError(t, err)
		srv := sec.streamLayer(srvInner)
		defer srv.Close()
		go func() {
			for {
				c, err := srv.Accept()
				if err != nil {
					return
				}
				go func() { // the server's handshake runs on its first read
					_, _ = io.Copy(io.Discard, c)
					c.Close()
				}()
			}
		}()
		real := srv.Addr().String()
		cliInner, err := newTCPStreamLayer(mustListen(t), "", map[string]string{"peer.test:7011": real, "other.test:7011": real})
		require.NoError(t, err)
		cli := sec.streamLayer(cliInner)
		defer cli.Close()

		c, err := cli.Dial("peer.test:7011", 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, "peer.test", c.(*tls.Conn).ConnectionState().ServerName)
		require.NoError(t, c.Close())
		// The certificate does not name other.test: verification is on.
		_, err = cli.Dial("other.test:7011", 5*time.Second)
		require.ErrorContains(t, err, "certificate")
	})

	t.Run("grpc", func(t *testing.T) {
		ln := mustListen(t)
		srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)))
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go func() { _ = srv.Serve(ln) }()
		defer srv.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		peers := newPeerConns(map[string]string{"peer.test:7001": ln.Addr().String(), "other.test:7001": ln.Addr().String()},
			sec.peerDialOptions()...)
		defer peers.close()
		conn, err := peers.get("peer.test:7001")
		require.NoError(t, err)
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		conn, err = peers.get("other.test:7001")
		require.NoError(t, err)
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		require.ErrorContains(t, err, "certificate")
	})
}
