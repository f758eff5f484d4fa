package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLSConfig turns on TLS for the gRPC API, the node's connections to its peers and the
// Raft transport. The zero value is plaintext (as before TLS existed).
//
// With TLS on, every node needs a certificate valid for server and client use (it
// serves and dials its peers) whose SANs cover the addresses peers dial (its gRPC and
// Raft advertise addresses), and the CA that signed its peers' certificates.
// The Raft transport always requires and verifies a peer certificate signed by the
// CA: Raft has no other authentication. VerifyIncoming extends that to the gRPC API
// (mTLS): a client must present a certificate signed by the CA.
type TLSConfig struct {
	// CAFile is a PEM bundle of CA certificates trusted for peers (and, with
	// VerifyIncoming, clients). During a CA rotation it holds the old and the new CA.
	CAFile string
	// CertFile and KeyFile are this node's certificate (chain) and key, PEM.
	CertFile, KeyFile string
	// VerifyIncoming requires every gRPC client to present a certificate signed by a
	// CA in CAFile (mTLS).
	VerifyIncoming bool

	// ServerTLS and ClientTLS, when set, are used instead of the files (tests, or an
	// embedding program with its own certificate source). ServerTLS serves the gRPC
	// API and the Raft listener (whose copy always gets RequireAndVerifyClientCert, so
	// ServerTLS needs ClientCAs); ClientTLS dials peers and needs RootCAs and a client
	// certificate. Setting either turns TLS on and both are required.
	ServerTLS *tls.Config
	ClientTLS *tls.Config
}

// Enabled reports whether any TLS setting is given.
func (c TLSConfig) Enabled() bool {
	return c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerTLS != nil || c.ClientTLS != nil
}

// build returns the server and client tls.Configs, or nil, nil when TLS is off.
func (c TLSConfig) build() (serverTLS, clientTLS *tls.Config, err error) {
	if !c.Enabled() {
		if c.VerifyIncoming {
			return nil, nil, errors.New("--tls-verify-clients needs TLS: give --tls-ca, --tls-cert and --tls-key")
		}
		return nil, nil, nil
	}
	if c.ServerTLS != nil || c.ClientTLS != nil {
		if c.ServerTLS == nil || c.ClientTLS == nil {
			return nil, nil, errors.New("TLS: set both ServerTLS and ClientTLS, or neither")
		}
		serverTLS = c.ServerTLS.Clone()
		if c.VerifyIncoming {
			serverTLS.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return serverTLS, c.ClientTLS.Clone(), nil
	}
	var missing []string
	if c.CAFile == "" {
		missing = append(missing, "--tls-ca")
	}
	if c.CertFile == "" {
		missing = append(missing, "--tls-cert")
	}
	if c.KeyFile == "" {
		missing = append(missing, "--tls-key")
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("TLS needs --tls-ca, --tls-cert and --tls-key together; missing %s (snapkeep tls init makes a dev set)", strings.Join(missing, ", "))
	}
	pool, err := loadCAPool(c.CAFile)
	if err != nil {
		return nil, nil, err
	}
	cert, err := newCertReloader(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	serverTLS = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cert.get(), nil
		},
		ClientCAs:  pool,
		ClientAuth: tls.VerifyClientCertIfGiven,
	}
	if c.VerifyIncoming {
		serverTLS.ClientAuth = tls.RequireAndVerifyClientCert
	}
	clientTLS = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert.get(), nil
		},
		RootCAs: pool,
	}
	return serverTLS, clientTLS, nil
}

// certReloader serves the node's certificate and reloads it when its files change,
// so a renewed certificate is used for new connections without a restart. A pair
// that fails to load (say, the key written before the certificate) is ignored until
// it loads; the previous certificate stays in use meanwhile.
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // the files' sizes and modification times when cert was loaded
	checked time.Time
}

// certCheckInterval bounds how often the files are looked at (handshakes are rare:
// connections are long-lived, but a burst of clients should not stat the files each).
const certCheckInterval = time.Second

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	stamp, err := r.fileStamp()
	if err == nil {
		err = r.load(stamp)
	}
	if err != nil {
		return nil, fmt.Errorf("TLS: load --tls-cert %s and --tls-key %s: %w", certFile, keyFile, err)
	}
	return r, nil
}

func (r *certReloader) fileStamp() (string, error) {
	var b strings.Builder
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", st.Size(), st.ModTime().UnixNano())
	}
	return b.String(), nil
}

func (r *certReloader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// get returns the current certificate, reloading it first if the files changed.
func (r *certReloader) get() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) < certCheckInterval {
		return r.cert
	}
	r.checked = time.Now()
	if stamp, err := r.fileStamp(); err == nil && stamp != r.stamp {
		_ = r.load(stamp) // on failure: keep the old one, try again next time
	}
	return r.cert
}

// loadCAPool reads a PEM bundle of CA certificates.
func loadCAPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("TLS: read --tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("TLS: --tls-ca %s holds no PEM certificate", path)
	}
	return pool, nil
}

// security is what a node loaded from its TLS and Auth settings at start.
type security struct {
	serverTLS, clientTLS *tls.Config // nil: plaintext
	auth                 *authenticator
	logger               *slog.Logger
}

// newSecurity loads certificates and tokens; an error names the setting to fix.
func newSecurity(cfg Config, logger *slog.Logger) (*security, error) {
	s := &security{logger: logger}
	var err error
	if s.serverTLS, s.clientTLS, err = cfg.TLS.build(); err != nil {
		return nil, err
	}
	if s.auth, err = newAuthenticator(cfg.Auth, logger.With("component", "audit")); err != nil {
		return nil, err
	}
	if s.auth.insecure {
		logger.Warn("INSECURE: no cluster secret (--insecure): anyone who reaches this node's gRPC port can call the Internal service and append raw entries to the Raft log, report restore tasks and run GC; give every node --internal-token-file instead")
	}
	if s.serverTLS != nil {
		logger.Info("TLS on", "verify_clients", s.serverTLS.ClientAuth == tls.RequireAndVerifyClientCert)
	} else if s.auth.enabled() {
		logger.Warn("tokens are on but TLS is off: tokens and the cluster secret cross the network in the clear; turn TLS on (--tls-ca, --tls-cert, --tls-key) unless the network is trusted")
	}
	return s, nil
}

// serverCreds is the gRPC server's transport security option.
func (s *security) serverCreds() grpc.ServerOption {
	if s.serverTLS == nil {
		return grpc.EmptyServerOption{}
	}
	return grpc.Creds(credentials.NewTLS(s.serverTLS))
}

// peerDialOptions are the options of this node's connections to its peers: TLS when on,
// and the cluster secret on every call when one is configured.
func (s *security) peerDialOptions() []grpc.DialOption {
	var opts []grpc.DialOption
	if s.clientTLS != nil {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(s.clientTLS)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if s.auth.internalToken != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(internalCreds{token: s.auth.internalToken, secure: s.clientTLS != nil}))
	}
	return opts
}

// internalCreds sends the cluster secret on every internal call.
type internalCreds struct {
	token  string
	secure bool
}

func (c internalCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{internalTokenKey: c.token}, nil
}

func (c internalCreds) RequireTransportSecurity() bool { return c.secure }

// streamLayer wraps the Raft stream layer in TLS when it is on.
func (s *security) streamLayer(inner *tcpStreamLayer) raft.StreamLayer {
	if s.serverTLS == nil {
		return inner
	}
	srv := s.serverTLS.Clone()
	// Raft has no other authentication: a peer must prove it holds a CA-signed
	// certificate, whatever VerifyIncoming says for the API.
	srv.ClientAuth = tls.RequireAndVerifyClientCert
	return &tlsStreamLayer{inner: inner, server: srv, client: s.clientTLS}
}

// tlsStreamLayer is the Raft stream layer over TLS (mutual: both sides present
// CA-signed certificates).
type tlsStreamLayer struct {
	inner          *tcpStreamLayer
	server, client *tls.Config
}

// Accept returns the next peer connection; the handshake runs on its first read, in
// the transport's per-connection goroutine, so a slow peer cannot stall Accept.
func (t *tlsStreamLayer) Accept() (net.Conn, error) {
	c, err := t.inner.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, t.server), nil
}

// Dial connects to a peer and completes the handshake within timeout. The inner layer
// applies DialVia; the certificate is checked against address, the peer's real one.
func (t *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	cfg := t.client.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(string(address))
		if err != nil {
			c.Close()
			return nil, err
		}
		cfg.ServerName = host
	}
	tc := tls.Client(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft TLS handshake with %s: %w", address, err)
	}
	return tc, nil
}

func (t *tlsStreamLayer) Close() error   { return t.inner.Close() }
func (t *tlsStreamLayer) Addr() net.Addr { return t.inner.Addr() }
