package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
)

// faultyS3 answers every request according to the key's first path element,
// so a test can get the SDK's real error value for each kind of failure.
func faultyS3(t *testing.T) (*httptest.Server, chan struct{}) {
	t.Helper()
	hang := make(chan struct{}) // closed at cleanup, releasing handlers that hang
	xmlError := func(w http.ResponseWriter, status int, code string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s happened</Message><RequestId>r1</RequestId></Error>`, code, code)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		path := strings.TrimPrefix(r.URL.Path, "/bucket/")
		if r.URL.Query().Get("list-type") == "2" {
			path = r.URL.Query().Get("prefix")
		}
		scenario, _, _ := strings.Cut(path, "/")
		switch scenario {
		case "slowdown":
			xmlError(w, http.StatusServiceUnavailable, "SlowDown")
		case "internal":
			xmlError(w, http.StatusInternalServerError, "InternalError")
		case "throttling":
			xmlError(w, http.StatusBadRequest, "ThrottlingException")
		case "too-many":
			xmlError(w, http.StatusTooManyRequests, "TooManyRequests")
		case "request-timeout":
			xmlError(w, http.StatusBadRequest, "RequestTimeout")
		case "bad-gateway":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html><body>502 Bad Gateway</body></html>")
		case "denied":
			xmlError(w, http.StatusForbidden, "AccessDenied")
		case "signature":
			xmlError(w, http.StatusForbidden, "SignatureDoesNotMatch")
		case "unknown-key":
			xmlError(w, http.StatusNotFound, "XAdminUserNotFound") // versitygw's answer to an unknown access key
		case "skewed":
			xmlError(w, http.StatusForbidden, "RequestTimeTooSkewed")
		case "invalid":
			xmlError(w, http.StatusBadRequest, "InvalidArgument")
		case "too-large":
			xmlError(w, http.StatusBadRequest, "EntityTooLarge")
		case "no-such-key":
			xmlError(w, http.StatusNotFound, "NoSuchKey")
		case "no-such-bucket":
			xmlError(w, http.StatusNotFound, "NoSuchBucket")
		case "bare-403":
			w.WriteHeader(http.StatusForbidden)
		case "bare-503":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "reset", "eof":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			if scenario == "reset" {
				_ = conn.(*net.TCPConn).SetLinger(0) // RST instead of FIN
			}
			_ = conn.Close()
		case "truncated":
			// A GET whose body stops short of its Content-Length.
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(make([]byte, 10))
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		case "truncated-xml":
			// A listing cut off in the middle of its XML.
			body := `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bucket</Name><Contents><Key>a</Key>`
			w.Header().Set("Content-Type", "application/xml")
			w.Header().Set("Content-Length", "4000")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, body)
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		case "hang":
			select {
			case <-r.Context().Done():
			case <-hang:
			}
		default:
			xmlError(w, http.StatusNotImplemented, "NotImplemented")
		}
	}))
	t.Cleanup(func() {
		close(hang)
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv, hang
}

func faultyStore(t *testing.T, endpoint string) *objstore.S3 {
	t.Helper()
	return newStore(t, objstore.S3Config{
		Endpoint:         endpoint,
		Bucket:           "bucket",
		PathStyle:        true,
		AccessKey:        "k",
		SecretKey:        "s",
		RetryMaxAttempts: 1, // the SDK's own retries would only slow the test down
	})
}

func TestIsTransient(t *testing.T) {
	t.Parallel()
	srv, _ := faultyS3(t)
	store := faultyStore(t, srv.URL)
	ctx := t.Context()

	head := func(key string) error { _, err := store.Head(ctx, key); return err }
	get := func(key string) error {
		rc, _, err := store.Get(ctx, key)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err
	}
	cp := func(key string) error { _, err := store.Copy(ctx, "src", key); return err }
	list := func(prefix string) error { _, err := store.List(ctx, prefix, "", 0); return err }

	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refusedEndpoint := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	refused := faultyStore(t, refusedEndpoint)

	// An I/O timeout of one request (a socket deadline), not the caller's context.
	socketTimeout := func() error {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(-time.Second)))
		_, err = conn.Read(make([]byte, 1))
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		return fmt.Errorf("get %q: %w", "x", err)
	}
	// An http.Client timeout of one request.
	clientTimeout := func() error {
		c := &http.Client{Timeout: 50 * time.Millisecond}
		resp, err := c.Get(srv.URL + "/bucket/hang/x")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}

	cases := []struct {
		name      string
		err       func() error
		transient bool
		is        error // the error must also match this, if set
	}{
		{"nil", func() error { return nil }, false, nil},
		{"503 SlowDown on copy", func() error { return cp("slowdown/dst") }, true, nil},
		{"503 SlowDown on get", func() error { return get("slowdown/k") }, true, nil},
		{"503 on HEAD (no body)", func() error { return head("bare-503/k") }, true, nil},
		{"500 InternalError", func() error { return cp("internal/dst") }, true, nil},
		{"502 HTML from a proxy", func() error { return list("bad-gateway/") }, true, nil},
		{"400 ThrottlingException", func() error { return cp("throttling/dst") }, true, nil},
		{"429", func() error { return get("too-many/k") }, true, nil},
		{"400 RequestTimeout", func() error { return cp("request-timeout/dst") }, true, nil},
		{"403 RequestTimeTooSkewed", func() error { return get("skewed/k") }, true, nil},
		{"connection reset", func() error { return get("reset/k") }, true, nil},
		{"connection closed before the response (EOF)", func() error { return get("eof/k") }, true, nil},
		{"body cut short (unexpected EOF)", func() error { return get("truncated/k") }, true, nil},
		{"listing XML cut short", func() error { return list("truncated-xml/") }, true, nil},
		{"connection refused", func() error { _, err := refused.Head(ctx, "k"); return err }, true, nil},
		{"socket deadline", socketTimeout, true, nil},
		{"http.Client timeout", clientTimeout, true, nil},

		{"404 NoSuchKey on copy", func() error { return cp("no-such-key/dst") }, false, objstore.ErrNotFound},
		{"404 on HEAD", func() error { return head("no-such-key/k") }, false, objstore.ErrNotFound},
		{"404 NoSuchBucket", func() error { return get("no-such-bucket/k") }, false, nil},
		{"403 AccessDenied on copy", func() error { return cp("denied/dst") }, false, objstore.ErrAccessDenied},
		{"403 AccessDenied on list", func() error { return list("denied/") }, false, objstore.ErrAccessDenied},
		{"403 on HEAD (no body)", func() error { return head("bare-403/k") }, false, objstore.ErrAccessDenied},
		{"403 SignatureDoesNotMatch", func() error { return get("signature/k") }, false, objstore.ErrAccessDenied},
		{"404 XAdminUserNotFound (unknown access key)", func() error { return get("unknown-key/k") }, false, objstore.ErrAccessDenied},
		{"400 InvalidArgument", func() error { return cp("invalid/dst") }, false, nil},
		{"400 EntityTooLarge", func() error { return cp("too-large/dst") }, false, nil},
		{"Put body shorter than its size", func() error {
			_, err := store.Put(ctx, "slowdown/short", onlyReader{strings.NewReader("abc")}, 10, objstore.PutOptions{})
			return err
		}, false, nil},
		{"caller canceled", func() error {
			ctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(20*time.Millisecond, cancel)
			_, err := store.Head(ctx, "hang/k")
			return err
		}, false, context.Canceled},
		{"caller deadline", func() error {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			_, err := store.Head(ctx, "hang/k")
			return err
		}, false, context.DeadlineExceeded},
		{"canceled before the call", func() error {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := store.Copy(ctx, "src", "slowdown/dst")
			return err
		}, false, context.Canceled},
		{"synthetic SlowDown", func() error {
			return fmt.Errorf("copy: %w", &smithy.GenericAPIError{Code: "SlowDown", Message: "reduce your rate"})
		}, true, nil},
		{"synthetic server fault", func() error {
			return &smithy.GenericAPIError{Code: "Weird", Fault: smithy.FaultServer}
		}, true, nil},
		{"synthetic client fault", func() error {
			return &smithy.GenericAPIError{Code: "Weird", Fault: smithy.FaultClient}
		}, false, nil},
		{"DNS: no such host", func() error {
			return &net.DNSError{Err: "no such host", Name: "s3.invalid", IsNotFound: true}
		}, false, nil},
		{"DNS: lookup timed out", func() error {
			return &net.DNSError{Err: "i/o timeout", Name: "s3.example", IsTimeout: true}
		}, true, nil},
		{"unrelated error", func() error { return errors.New("something else") }, false, nil},
		{"not found joined with a transient error", func() error {
			return errors.Join(objstore.ErrNotFound, io.ErrUnexpectedEOF)
		}, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			t.Logf("%v", err)
			if tc.name != "nil" {
				require.Error(t, err)
			}
			require.Equal(t, tc.transient, objstore.IsTransient(err), "%v", err)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
			if !errors.Is(tc.is, objstore.ErrAccessDenied) {
				require.NotErrorIs(t, err, objstore.ErrAccessDenied)
			}
		})
	}
}

func TestAccessDeniedKeepsCause(t *testing.T) {
	t.Parallel()
	srv, _ := faultyS3(t)
	store := faultyStore(t, srv.URL)
	_, err := store.Copy(t.Context(), "src", "denied/dst")
	require.ErrorIs(t, err, objstore.ErrAccessDenied)
	var apiErr smithy.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "AccessDenied", apiErr.ErrorCode())
	require.Contains(t, err.Error(), `"denied/dst"`)
	require.NotErrorIs(t, err, objstore.ErrNotFound)
}

// onlyReader hides every method but Read, so Put streams it.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
