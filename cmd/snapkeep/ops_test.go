package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sampleValue is the value of the first sample of a gauge or counter whose labels
// include want.
func sampleValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := findSample(fams, name, want)
	require.True(t, ok, "no sample of %s with %v", name, want)
	return v
}

func findSample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range fam.Metric {
		match := true
		for _, l := range m.Label {
			if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

// TestDevServesMetrics is the acceptance check of issue 6: `curl 127.0.0.1:PORT/metrics`
// on a dev node shows live values, and /health answers 200.
func TestDevServesMetrics(t *testing.T) {
	base := freeBasePort(t)
	root := newRootCmd()
	var stdout, stderr syncBuffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, root, []string{"dev", "--base-port", fmt.Sprint(base), "--log-level", "error"}, &stderr)
	}()
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "\nready\n") }, time.Minute, 20*time.Millisecond,
		"stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.Contains(t, stdout.String(), fmt.Sprintf("http: 127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d\n", base+31, base+32, base+33))

	leaders, statusCalls := 0.0, 0.0
	for i := 0; i < devNodes; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", base+devHTTPOffset+i)
		// Followers may not have applied the last registration yet: scrape until they have.
		var fams map[string]*dto.MetricFamily
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://" + addr + "/metrics")
			require.NoError(t, err)
			defer resp.Body.Close()
			parser := expfmt.NewTextParser(model.UTF8Validation)
			fams, err = parser.TextToMetricFamilies(resp.Body)
			require.NoError(t, err)
			registered, _ := findSample(fams, "snapkeep_fsm_registered_nodes", nil)
			return registered == devNodes
		}, 10*time.Second, 20*time.Millisecond, "node %d: not every node registered", i)
		require.Equal(t, 1.0, sampleValue(t, fams, "snapkeep_node_info", map[string]string{"node": devNodeID(i), "version": version}))
		require.Positive(t, sampleValue(t, fams, "snapkeep_fsm_applied_index", nil))
		require.Equal(t, 1.0, sampleValue(t, fams, "snapkeep_fsm_databases", nil))
		leaders += sampleValue(t, fams, "snapkeep_raft_state", map[string]string{"state": "leader"})
		// dev's ready check called ClusterStatus on some node.
		calls, _ := findSample(fams, "snapkeep_grpc_server_handled_total",
			map[string]string{"service": "snapkeep.v1.Cluster", "method": "ClusterStatus", "code": "OK"})
		statusCalls += calls
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://" + addr + "/health")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"healthy": true`)
		}, 10*time.Second, 20*time.Millisecond, "node %d is not healthy", i)
	}
	require.Equal(t, 1.0, leaders, "one leader among the dev nodes")
	require.Positive(t, statusCalls)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop")
	}
}

// `snapkeep server --http-addr ... --enable-pprof` serves metrics, health and pprof, and
// says where.
func TestServerServesMetricsWithHTTPAddr(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emb, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{})
	require.NoError(t, err)
	defer emb.Close()
	s3 := emb.Config()
	raftAddr := freePort(t)

	root := newRootCmd()
	var stdout, stderr syncBuffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, root, []string{"server", "--node-id", "n1", "--data-dir", t.TempDir(),
			"--raft-addr", raftAddr, "--grpc-addr", "127.0.0.1:0", "--peers", "n1=" + raftAddr,
			"--s3-endpoint", s3.Endpoint, "--s3-bucket", s3.Bucket, "--s3-path-style",
			"--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey,
			"--http-addr", "127.0.0.1:0", "--enable-pprof", "--log-level", "error", "--insecure"}, &stderr)
	}()
	line := regexp.MustCompile(`node n1 serves metrics on http://(127\.0\.0\.1:\d+)/metrics and health on http://127\.0\.0\.1:\d+/health\n`)
	require.Eventually(t, func() bool { return line.MatchString(stdout.String()) }, 30*time.Second, 20*time.Millisecond,
		"stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	addr := line.FindStringSubmatch(stdout.String())[1]

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	require.Eventually(t, func() bool {
		code, body := get("/health")
		return code == http.StatusOK && strings.Contains(body, `"role": "leader"`)
	}, 30*time.Second, 20*time.Millisecond, "the lone node did not become a healthy leader")
	code, body := get("/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `snapkeep_raft_state{state="leader"} 1`)
	require.Contains(t, body, `snapkeep_node_info{node="n1",version="`+version+`"} 1`)
	code, _ = get("/debug/pprof/goroutine?debug=1")
	require.Equal(t, http.StatusOK, code)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
}
