package s3proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestProxyFaults(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "host="+r.Host)
	}))
	t.Cleanup(backend.Close)
	p, err := Start(backend.URL)
	require.NoError(t, err)
	defer p.Close()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}

	get := func() (int, string) {
		resp, err := hc.Get(p.Endpoint() + "/bucket/key")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get()
	require.Equal(t, http.StatusOK, code)
	// the Host header the client signed is kept
	require.Equal(t, "host="+p.Endpoint()[len("http://"):], body)

	p.Set(Faults{SlowDownRate: 1})
	code, body = get()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "<Code>SlowDown</Code>")

	p.Set(Faults{HoldRate: 1, Hold: 300 * time.Millisecond})
	start := time.Now()
	code, _ = get()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.EqualValues(t, 2, p.Injected.Load())

	// an object read cut off half-way: the headers say the whole length, the body
	// ends early; a listing is never cut
	p.Set(Faults{CutRate: 1})
	resp, err := hc.Get(p.Endpoint() + "/bucket/key")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Error(t, err, "read %q", b)
	require.Less(t, len(b), int(resp.ContentLength))
	resp, err = hc.Get(p.Endpoint() + "/bucket?list-type=2")
	require.NoError(t, err)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.EqualValues(t, 3, p.Injected.Load())

	p.Set(Faults{})
	code, _ = get()
	require.Equal(t, http.StatusOK, code)
}
