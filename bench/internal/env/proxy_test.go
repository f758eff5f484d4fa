package env

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
)

func classifyForTest(_, key string) string {
	switch {
	case key == "":
		return "bucket"
	case strings.Contains(key, "/data/"):
		return "data"
	}
	return "other"
}

// TestCountingProxyCountsWhatPassesThrough: against a scripted upstream, PUT bodies,
// copies (by the source's size or the part's range), POST bodies and responses are
// counted per class, and the request reaches the upstream with the client's Host.
func TestCountingProxyCountsWhatPassesThrough(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/missing"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("nope"))
		case r.Method == http.MethodGet:
			_, _ = w.Write(bytes.Repeat([]byte("g"), 700))
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer upstream.Close()
	var sized []string
	p, err := StartCountingProxy(upstream.URL, ProxyOptions{Classify: classifyForTest,
		CopySize: func(_ context.Context, bucket, key string) (int64, error) {
			sized = append(sized, bucket+"|"+key)
			return 5000, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	do := func(method, path string, body []byte, header map[string]string) {
		t.Helper()
		req, err := http.NewRequest(method, p.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	do(http.MethodPut, "/b/repo/data/c1/k1", make([]byte, 1000), nil)
	do(http.MethodPut, "/b/repo/data/c1/k2?partNumber=1&uploadId=u", make([]byte, 300), nil)
	do(http.MethodPut, "/b/repo/index/00000000000000000001", make([]byte, 40), nil)
	do(http.MethodPut, "/b/repo/data/c1/k3", nil, map[string]string{"X-Amz-Copy-Source": "/src%20bucket/root/a%2Bb?versionId=1"})
	do(http.MethodPut, "/b/repo/data/c1/k4?partNumber=2&uploadId=u", nil, map[string]string{"X-Amz-Copy-Source": "src/x", "X-Amz-Copy-Source-Range": "bytes=100-199"})
	do(http.MethodPost, "/b/repo/data/c1/k2?uploadId=u", make([]byte, 120), nil)
	do(http.MethodGet, "/b/repo/data/c1/k1", nil, nil)
	do(http.MethodGet, "/b/repo/data/c1/missing", nil, nil)
	do(http.MethodGet, "/b?list-type=2&prefix=repo/", nil, nil)

	c := p.Counts()
	want := TrafficByClass{
		"data":   {Requests: 7, Puts: 2, PutBytes: 1300, Copies: 2, CopyBytes: 5100, PostBytes: 120, ResponseBytes: 704, Failed: 1},
		"other":  {Requests: 1, Puts: 1, PutBytes: 40},
		"bucket": {Requests: 1, ResponseBytes: 700},
	}
	for class, w := range want {
		if c[class] != w {
			t.Errorf("class %q: %+v, want %+v", class, c[class], w)
		}
	}
	if len(c) != len(want) {
		t.Errorf("classes %v", c)
	}
	if got := c["data"].Written(); got != 6400 {
		t.Errorf("data written %d, want 6400", got)
	}
	if len(sized) != 1 || sized[0] != "src bucket|root/a+b" {
		t.Errorf("copy sources sized: %q", sized)
	}
	u, _ := url.Parse(p.URL)
	for _, h := range hosts {
		if h != u.Host {
			t.Fatalf("the upstream saw Host %q, want the proxy's %q (the client signed it)", h, u.Host)
		}
	}
	if errs := p.Errors(); len(errs) != 0 {
		t.Errorf("errors %v", errs)
	}
	later := p.Counts()
	do(http.MethodPut, "/b/repo/data/c1/k5", make([]byte, 10), nil)
	if d := p.Counts().Since(later); len(d) != 1 || d["data"] != (Traffic{Requests: 1, Puts: 1, PutBytes: 10}) {
		t.Errorf("since: %+v", d)
	}
	if tot := c.Total(); tot.Requests != 9 || tot.Written() != 6440 {
		t.Errorf("total %+v", tot)
	}
}

func TestRangeLength(t *testing.T) {
	for rng, want := range map[string]int64{"bytes=0-0": 1, "bytes=100-199": 100, "bytes=5242880-10485759": 5 << 20} {
		if got, err := rangeLength(rng); err != nil || got != want {
			t.Errorf("rangeLength(%q) = %d, %v; want %d", rng, got, err, want)
		}
	}
	for _, bad := range []string{"", "bytes=", "bytes=5-", "bytes=9-3", "items=0-1"} {
		if _, err := rangeLength(bad); err == nil {
			t.Errorf("rangeLength(%q) parsed", bad)
		}
	}
}

// TestCountingProxyKeepsSignaturesValid: a real S3 client signs for the proxy's
// address, and versitygw behind the proxy accepts every request kind the benchmark
// makes; the counts match what was written.
func TestCountingProxyKeepsSignaturesValid(t *testing.T) {
	// Runs in make test too (versitygw is one of its tools): it takes a second.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bin, err := Bin("versitygw")
	if err != nil {
		t.Fatal(err)
	}
	gw := versitygw.StartWith(t, versitygw.Options{Binary: bin})
	direct, err := objstore.NewS3(ctx, gw.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	p, err := StartCountingProxy(gw.Endpoint(), ProxyOptions{Classify: classifyForTest,
		CopySize: func(ctx context.Context, bucket, key string) (int64, error) {
			info, err := direct.Head(ctx, key)
			return info.Size, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	cfg := gw.Config()
	cfg.Endpoint = p.URL
	via, err := objstore.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer via.Close()

	body := bytes.Repeat([]byte("x"), 16<<10)
	if _, err := via.Put(ctx, "repo/data/c1/a", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// A plain reader: an unsigned payload, as streamed copies send it.
	if _, err := via.Put(ctx, "repo/data/c1/b", io.LimitReader(bytes.NewReader(body), int64(len(body))), int64(len(body)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := via.Copy(ctx, "repo/data/c1/a", "repo/data/c1/c"); err != nil {
		t.Fatal(err)
	}
	rc, _, err := via.Get(ctx, "repo/data/c1/c")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	_ = rc.Close()
	if !bytes.Equal(got, body) {
		t.Fatal("the copy read back differs")
	}
	if _, err := via.Put(ctx, "repo/index/1", bytes.NewReader([]byte("idx")), 3, objstore.PutOptions{IfNoneMatch: true}); err != nil {
		t.Fatal(err)
	}
	c := p.Counts()
	if d := c["data"]; d.Puts != 2 || d.PutBytes != 2*16<<10 || d.Copies != 1 || d.CopyBytes != 16<<10 || d.ResponseBytes < 16<<10 || d.Failed != 0 {
		t.Errorf("data %+v", d)
	}
	if o := c["other"]; o.Puts != 1 || o.PutBytes != 3 {
		t.Errorf("other %+v", o)
	}
	if errs := p.Errors(); len(errs) != 0 {
		t.Errorf("errors %v", errs)
	}
}
