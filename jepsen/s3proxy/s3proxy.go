// Package s3proxy is the harness's HTTP reverse proxy in front of the S3 server: the
// nodes use it as --s3-endpoint, and during a fault window it answers a share of the
// requests with 503 SlowDown or holds them (a timeout, as the SDK sees it) instead of
// forwarding them, and cuts a share of object reads off half-way.
package s3proxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Faults is the proxy's fault window; the zero value forwards everything.
type Faults struct {
	// SlowDownRate is the share of requests answered 503 SlowDown.
	SlowDownRate float64
	// HoldRate is the share of requests held for Hold (then answered 503) — long
	// enough that the SDK's own attempt times out first, or the caller's deadline.
	HoldRate float64
	Hold     time.Duration
	// CutRate is the share of object GETs whose body is cut off half-way (the
	// connection closed after the headers and half the bytes): an error the SDK does
	// not retry, which its caller sees while reading.
	CutRate float64
}

// Proxy forwards HTTP to the S3 server, injecting Faults.
type Proxy struct {
	srv    *http.Server
	ln     net.Listener
	rp     *httputil.ReverseProxy
	mu     sync.Mutex
	faults Faults
	stop   chan struct{}
	once   sync.Once

	Injected atomic.Int64 // requests that got a fault

	copiesMu sync.Mutex
	copies   map[string]int // CopyObject requests forwarded, by destination path
}

// CopyCounts returns how many CopyObject requests were forwarded for each destination
// (the request path: /bucket/key).
func (p *Proxy) CopyCounts() map[string]int {
	p.copiesMu.Lock()
	defer p.copiesMu.Unlock()
	out := make(map[string]int, len(p.copies))
	for k, v := range p.copies {
		out[k] = v
	}
	return out
}

// ResetCopyCounts forgets the counted CopyObject requests.
func (p *Proxy) ResetCopyCounts() {
	p.copiesMu.Lock()
	p.copies = map[string]int{}
	p.copiesMu.Unlock()
}

// Start proxies 127.0.0.1:<ephemeral> to target (e.g. "http://127.0.0.1:7070").
func Start(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// NewSingleHostReverseProxy keeps the request's Host header, which the SigV4
	// signature covers.
	p := &Proxy{ln: ln, rp: httputil.NewSingleHostReverseProxy(u), stop: make(chan struct{})}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Endpoint is the URL the nodes use.
func (p *Proxy) Endpoint() string { return "http://" + p.ln.Addr().String() }

// Set starts (or, with the zero Faults, ends) a fault window.
func (p *Proxy) Set(f Faults) {
	p.mu.Lock()
	p.faults = f
	p.mu.Unlock()
}

// Close stops the proxy, releasing held requests.
func (p *Proxy) Close() {
	p.once.Do(func() {
		close(p.stop)
		_ = p.srv.Close()
	})
}

const slowDown = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate. (injected by the jepsen s3proxy)</Message><RequestId>jepsen</RequestId></Error>`

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	f := p.faults
	p.mu.Unlock()
	x := rand.Float64()
	switch {
	case x < f.SlowDownRate:
		p.Injected.Add(1)
		p.fail(w)
		return
	case x < f.SlowDownRate+f.HoldRate:
		p.Injected.Add(1)
		t := time.NewTimer(f.Hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		case <-p.stop:
		}
		p.fail(w)
		return
	}
	if x < f.SlowDownRate+f.HoldRate+f.CutRate && objectGet(r) {
		p.Injected.Add(1)
		w = &cutWriter{ResponseWriter: w, left: -1}
	}
	if r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "" && r.URL.Query().Get("partNumber") == "" {
		p.copiesMu.Lock()
		if p.copies == nil {
			p.copies = map[string]int{}
		}
		p.copies[r.URL.Path]++
		p.copiesMu.Unlock()
	}
	p.rp.ServeHTTP(w, r)
}

// objectGet says whether r reads an object (not a listing or the bucket).
func objectGet(r *http.Request) bool {
	if r.Method != http.MethodGet || r.URL.Query().Has("list-type") || r.URL.Query().Has("uploads") {
		return false
	}
	_, key, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	return ok && key != ""
}

// errCut ends a response the proxy cuts off; ReverseProxy then aborts the connection.
var errCut = errors.New("s3proxy: response cut off (injected)")

// cutWriter passes on half of a response's body (by its Content-Length), then fails.
type cutWriter struct {
	http.ResponseWriter
	left int64 // -1: not known yet
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.left < 0 {
		n, _ := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64)
		c.left = n / 2
	}
	if c.left <= 0 {
		return 0, errCut
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.ResponseWriter.Write(b)
	c.left -= int64(n)
	if err == nil && c.left <= 0 {
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		return n, errCut
	}
	return n, err
}

func (p *Proxy) fail(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", fmt.Sprint(len(slowDown)))
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(slowDown))
}
