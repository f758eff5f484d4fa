package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/server/devca"
)

// TestCertReloaderPicksUpRenewedCertificate: replacing the certificate files changes
// the certificate new handshakes use; a broken pair keeps the previous one.
func TestCertReloaderPicksUpRenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := devca.NewCA("ca", time.Hour)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "n1.pem"), filepath.Join(dir, "n1-key.pem")
	write := func(name string) []byte {
		leaf, err := ca.Issue(name, []string{"127.0.0.1"}, devca.Node, time.Hour)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(certFile, leaf.CertPEM, 0o644))
		require.NoError(t, os.WriteFile(keyFile, leaf.KeyPEM, 0o600))
		c, err := leaf.TLSCertificate()
		require.NoError(t, err)
		return c.Certificate[0]
	}
	first := write("first")
	r, err := newCertReloader(certFile, keyFile)
	require.NoError(t, err)
	require.Equal(t, first, r.get().Certificate[0])

	second := write("second-name-longer")
	r.mu.Lock()
	r.checked = time.Now()
	r.mu.Unlock()
	require.Equal(t, first, r.get().Certificate[0], "files are looked at once a second at most")
	r.mu.Lock()
	r.checked = time.Time{}
	r.mu.Unlock()
	require.Equal(t, second, r.get().Certificate[0])

	require.NoError(t, os.WriteFile(keyFile, []byte("not a key"), 0o600))
	r.mu.Lock()
	r.checked = time.Time{}
	r.mu.Unlock()
	require.Equal(t, second, r.get().Certificate[0], "a broken pair keeps the old certificate")

	_, err = newCertReloader(certFile, keyFile)
	require.ErrorContains(t, err, "--tls-key")
}
