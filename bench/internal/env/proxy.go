package env

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapkeep/snapkeep/internal/harness"
)

// CountingProxy is a reverse proxy in front of a path-style S3 endpoint that counts
// what passes through it, independently of what the client or the server reports:
// the request body bytes of every PUT (objects and multipart parts) and POST, the
// bytes server-side copies ask for (CopyObject: the source object's size;
// UploadPartCopy: its range), and the response body bytes. Counts are kept per class,
// which a classifier makes of each request's object key (e.g. "data", "index").
//
// Requests go to the target unchanged — method, path, query, headers, Host — so
// SigV4 signatures made for the proxy's address still verify at the target: give the
// S3 client the proxy's URL as its endpoint.
type CountingProxy struct {
	// URL is the proxy's endpoint, "http://127.0.0.1:PORT".
	URL string

	target   *url.URL
	classify func(bucket, key string) string
	copySize func(ctx context.Context, bucket, key string) (int64, error)
	rp       *httputil.ReverseProxy
	srv      *http.Server

	mu     sync.Mutex
	counts map[string]Traffic
	errs   []string
}

// Traffic is what went through the proxy for one class of keys.
type Traffic struct {
	Requests int64 `json:"requests"`
	// Puts are PutObject and UploadPart requests (a PUT with a body and no copy
	// source); PutBytes the body bytes the proxy read from them.
	Puts     int64 `json:"puts"`
	PutBytes int64 `json:"put_bytes"`
	// Copies are CopyObject and UploadPartCopy requests; CopyBytes the bytes they
	// asked the server to copy (the source's size, or the part's range).
	Copies    int64 `json:"copies"`
	CopyBytes int64 `json:"copy_bytes"`
	// PostBytes are the bodies of POSTs (CompleteMultipartUpload, DeleteObjects).
	PostBytes int64 `json:"post_bytes"`
	// ResponseBytes are the response bodies returned (GETs, listings, errors).
	ResponseBytes int64 `json:"response_bytes"`
	// Failed counts responses with a status of 300 or more.
	Failed int64 `json:"failed"`
}

// Written is the object bytes the class received: uploaded bodies and copied bytes.
func (t Traffic) Written() int64 { return t.PutBytes + t.CopyBytes }

func (t Traffic) add(o Traffic) Traffic {
	return Traffic{Requests: t.Requests + o.Requests, Puts: t.Puts + o.Puts, PutBytes: t.PutBytes + o.PutBytes,
		Copies: t.Copies + o.Copies, CopyBytes: t.CopyBytes + o.CopyBytes, PostBytes: t.PostBytes + o.PostBytes,
		ResponseBytes: t.ResponseBytes + o.ResponseBytes, Failed: t.Failed + o.Failed}
}

func (t Traffic) sub(o Traffic) Traffic {
	return Traffic{Requests: t.Requests - o.Requests, Puts: t.Puts - o.Puts, PutBytes: t.PutBytes - o.PutBytes,
		Copies: t.Copies - o.Copies, CopyBytes: t.CopyBytes - o.CopyBytes, PostBytes: t.PostBytes - o.PostBytes,
		ResponseBytes: t.ResponseBytes - o.ResponseBytes, Failed: t.Failed - o.Failed}
}

// TrafficByClass is a CountingProxy's counts, class → traffic.
type TrafficByClass map[string]Traffic

// Since is what was counted from before to t (t taken later).
func (t TrafficByClass) Since(before TrafficByClass) TrafficByClass {
	out := TrafficByClass{}
	for c, v := range t {
		if d := v.sub(before[c]); d != (Traffic{}) {
			out[c] = d
		}
	}
	return out
}

// Total is every class's traffic added up.
func (t TrafficByClass) Total() Traffic {
	var sum Traffic
	for _, v := range t {
		sum = sum.add(v)
	}
	return sum
}

// ProxyOptions configure StartCountingProxy.
type ProxyOptions struct {
	// Classify names the class of a request's object (path-style: bucket, then key;
	// key "" for a bucket-level request such as a listing); nil puts every request in
	// class "".
	Classify func(bucket, key string) string
	// CopySize gives the size of a CopyObject's source (bucket and key as the
	// x-amz-copy-source header names them), asked after the copy succeeded; nil, or
	// an error, counts the copy with 0 bytes and records the error (Errors).
	CopySize func(ctx context.Context, bucket, key string) (int64, error)
}

// StartCountingProxy listens on a free 127.0.0.1 port and forwards to target (an
// http:// S3 endpoint). Stop it with Stop.
func StartCountingProxy(target string, opts ProxyOptions) (*CountingProxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("proxy target %q: not an endpoint URL (%v)", target, err)
	}
	p := &CountingProxy{target: u, classify: opts.Classify, copySize: opts.CopySize, counts: map[string]Traffic{}}
	if p.classify == nil {
		p.classify = func(string, string) string { return "" }
	}
	p.rp = &httputil.ReverseProxy{
		// Only the scheme and the address change: the Host header stays the proxy's,
		// which the client signed.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.recordError(fmt.Sprintf("%s %s: %v", r.Method, r.URL.Path, err))
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	var ln net.Listener
	for range 3 { // a port picked free may be taken before it is bound
		addr, err := harness.FreeAddr()
		if err != nil {
			return nil, err
		}
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
	}
	if ln == nil {
		return nil, fmt.Errorf("proxy: no port to listen on")
	}
	p.URL = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Stop closes the listener and every connection.
func (p *CountingProxy) Stop() {
	_ = p.srv.Close()
	if tr, ok := p.rp.Transport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// Counts returns the traffic counted so far, by class.
func (p *CountingProxy) Counts() TrafficByClass {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := TrafficByClass{}
	for c, v := range p.counts {
		out[c] = v
	}
	return out
}

// Errors returns what the proxy could not forward or count (at most 100).
func (p *CountingProxy) Errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

func (p *CountingProxy) recordError(e string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) < 100 {
		p.errs = append(p.errs, e)
	}
}

// ServeHTTP forwards one request and counts it.
func (p *CountingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key := splitPathStyle(r.URL.Path)
	class := p.classify(bucket, key)
	var t Traffic
	t.Requests = 1
	body := &countingReader{r: r.Body}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = body
	}
	cw := &countingWriter{ResponseWriter: w}
	p.rp.ServeHTTP(cw, r)

	src := r.Header.Get("X-Amz-Copy-Source")
	switch {
	case r.Method == http.MethodPut && src != "":
		t.Copies = 1
		if cw.status() < 300 {
			n, err := p.copied(r, src)
			if err != nil {
				p.recordError(fmt.Sprintf("copy %s: %v", src, err))
			}
			t.CopyBytes = n
		}
	case r.Method == http.MethodPut:
		t.Puts, t.PutBytes = 1, body.n.Load()
	case r.Method == http.MethodPost:
		t.PostBytes = body.n.Load()
	}
	t.ResponseBytes = cw.n
	if cw.status() >= 300 {
		t.Failed = 1
	}
	p.mu.Lock()
	p.counts[class] = p.counts[class].add(t)
	p.mu.Unlock()
}

// copied is the number of bytes a successful copy request asked for: its range's
// length (UploadPartCopy), else its source's size.
func (p *CountingProxy) copied(r *http.Request, src string) (int64, error) {
	if rng := r.Header.Get("X-Amz-Copy-Source-Range"); rng != "" {
		return rangeLength(rng)
	}
	if p.copySize == nil {
		return 0, fmt.Errorf("no way to size the copy's source")
	}
	bucket, key, err := parseCopySource(src)
	if err != nil {
		return 0, err
	}
	return p.copySize(r.Context(), bucket, key)
}

// splitPathStyle splits a path-style request path, "/bucket/key", into its bucket
// and key (key "" for a bucket-level request).
func splitPathStyle(path string) (bucket, key string) {
	path = strings.TrimPrefix(path, "/")
	bucket, key, _ = strings.Cut(path, "/")
	return bucket, key
}

// parseCopySource reads an x-amz-copy-source header: "[/]bucket/key[?versionId=…]",
// URL-encoded.
func parseCopySource(src string) (bucket, key string, err error) {
	src, _, _ = strings.Cut(src, "?")
	dec, err := url.PathUnescape(src)
	if err != nil {
		return "", "", fmt.Errorf("copy source %q: %w", src, err)
	}
	bucket, key = splitPathStyle(dec)
	if bucket == "" || key == "" {
		return "", "", fmt.Errorf("copy source %q: no bucket/key", src)
	}
	return bucket, key, nil
}

// rangeLength is the length of an x-amz-copy-source-range, "bytes=first-last".
func rangeLength(rng string) (int64, error) {
	spec, ok := strings.CutPrefix(rng, "bytes=")
	first, last, ok2 := strings.Cut(spec, "-")
	if !ok || !ok2 {
		return 0, fmt.Errorf("copy source range %q", rng)
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("copy source range %q: %w", rng, err)
	}
	b, err := strconv.ParseInt(last, 10, 64)
	if err != nil || b < a {
		return 0, fmt.Errorf("copy source range %q: bad last byte", rng)
	}
	return b - a + 1, nil
}

// countingReader counts the bytes read through it. The proxy's transport reads the
// body on its own goroutine, which may still hold it after the response came back
// (an early error response): hence the atomic. A successful upload's response comes
// after the target read the whole body.
type countingReader struct {
	r io.ReadCloser
	n atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// countingWriter counts the response body bytes written and keeps the status.
type countingWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) status() int {
	if c.code == 0 {
		return http.StatusOK
	}
	return c.code
}

// Unwrap lets http.ResponseController reach the server's writer (flushes).
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
