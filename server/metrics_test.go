package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// families is one scrape of /metrics, parsed.
type families map[string]*dto.MetricFamily

func scrape(t *testing.T, addr string) families {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// value is the value of the family's sample whose labels include want (a counter, a
// gauge or, for a histogram, its count); ok is false when there is none.
func (f families) value(name string, want map[string]string) (float64, bool) {
	fam, ok := f[name]
	if !ok {
		return 0, false
	}
	sum, found := 0.0, false
	for _, m := range fam.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, found
}

// get is value for a sample that must exist.
func (f families) get(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	v, ok := f.value(name, want)
	require.True(t, ok, "no sample of %s with labels %v", name, want)
	return v
}

// sum adds a sample over several scrapes (it may be missing from some).
func sum(scrapes []families, name string, labels ...string) float64 {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	total := 0.0
	for _, f := range scrapes {
		v, _ := f.value(name, want)
		total += v
	}
	return total
}

// testHTTP bounds every request of the tests: a node that never answers fails the
// request, not the whole package at its timeout.
var testHTTP = &http.Client{Timeout: 10 * time.Second}

func tryGet(url string) (int, []byte, error) {
	resp, err := testHTTP.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	code, body, err := tryGet(url)
	require.NoError(t, err)
	return code, body
}

// tryHealth reads a health endpoint; inside Eventually conditions, where failing t
// from the condition's goroutine would stall the wait, use it rather than healthOf.
func tryHealth(addr, path string) (int, server.Health, error) {
	var h server.Health
	code, body, err := tryGet("http://" + addr + path)
	if err == nil {
		if err = json.Unmarshal(body, &h); err != nil {
			err = fmt.Errorf("%w: %s", err, body)
		}
	}
	return code, h, err
}

func healthOf(t *testing.T, addr, path string) (int, server.Health) {
	t.Helper()
	code, h, err := tryHealth(addr, path)
	require.NoError(t, err)
	return code, h
}

func grpcHealth(t *testing.T, addr, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	require.NoError(t, err)
	return resp.Status
}

// TestMetricsReflectTheWork does some writes, a snapshot, a restore and a GC run on a
// three-node cluster, then scrapes /metrics of the leader and a follower and checks
// that the metrics say what was done; then health over HTTP and gRPC, and pprof only
// where enabled.
func TestMetricsReflectTheWork(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.HTTP = server.HTTPConfig{Addr: "127.0.0.1:0", EnablePprof: i == 0}
		cfg.GCDisabled = true // only the run below, so its counters are exact
	}})
	ctx := context.Background()
	cl := gcClient(t, c)

	// Writes and a snapshot, then a restore of it.
	restoreSource(t, c, cl, 2)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)
	job := waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	// A refused write: the collection exists.
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.ErrorIs(t, err, client.ErrAlreadyExists)
	// Garbage: a dropped collection's segments, collected by one run.
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("junk"))
	require.NoError(t, err)
	gcGenerate(t, c, cl, "junk", 3, 2, 7)
	_, err = cl.DropCollection(ctx, client.NewDropCollectionOption("junk"))
	require.NoError(t, err)
	gcResp := gcRun(t, cl, gcRunOpt().WithoutOrphanScan())
	require.Positive(t, gcResp.Report.ObjectsDeleted)
	c.WaitConverged()

	leader, follower := c.Leader(), c.Follower()
	var all []families
	for _, n := range c.Nodes {
		require.NotEmpty(t, n.HTTPAddr())
		all = append(all, scrape(t, n.HTTPAddr()))
	}
	require.Equal(t, leader, c.Leader(), "the leader changed while scraping")
	for i, f := range []families{all[leader], all[follower]} {
		role := []string{"leader", "follower"}[i]
		require.Equal(t, 1.0, f.get(t, "snapkeep_raft_state", "state", role), role)
		require.Equal(t, 0.0, f.get(t, "snapkeep_raft_state", "state", "candidate"), role)
		require.Equal(t, 1.0, f.get(t, "snapkeep_raft_has_leader"), role)
		require.Equal(t, 1.0, f.get(t, "snapkeep_node_healthy"), role)
		require.Equal(t, 1.0, f.get(t, "snapkeep_node_info", "node", c.Nodes[[]int{leader, follower}[i]].ID()), role)
		require.GreaterOrEqual(t, f.get(t, "snapkeep_raft_term"), 1.0, role)
		require.Positive(t, f.get(t, "snapkeep_raft_commit_index"), role)
		require.Positive(t, f.get(t, "snapkeep_raft_applied_index"), role)
		require.Positive(t, f.get(t, "snapkeep_fsm_applied_index"), role)
		require.GreaterOrEqual(t, f.get(t, "snapkeep_raft_last_log_index"), f.get(t, "snapkeep_raft_commit_index"), role)
		contact := f.get(t, "snapkeep_raft_last_contact_seconds")
		require.GreaterOrEqual(t, contact, 0.0, role)
		require.Less(t, contact, 5.0, role)
		require.Positive(t, f.get(t, "snapkeep_fsm_apply_seconds"), "apply latency observations on the %s", role)

		// The FSM's sizes: the same on every node once converged.
		require.Equal(t, 1.0, f.get(t, "snapkeep_fsm_databases"), role)
		require.Equal(t, 3.0, f.get(t, "snapkeep_fsm_registered_nodes"), role)
		require.Equal(t, 2.0, f.get(t, "snapkeep_fsm_collections", "state", "active"), role) // docs, copy
		require.Equal(t, 0.0, f.get(t, "snapkeep_fsm_collections", "state", "restoring"), role)
		require.Equal(t, 1.0, f.get(t, "snapkeep_fsm_snapshots", "state", "committed"), role)
		require.Equal(t, 0.0, f.get(t, "snapkeep_fsm_snapshots", "state", "pending"), role)
		require.Equal(t, 1.0, f.get(t, "snapkeep_fsm_restore_jobs", "state", "completed"), role)
		require.Equal(t, 0.0, f.get(t, "snapkeep_fsm_restore_jobs", "state", "copying"), role)
		require.Equal(t, 8.0, f.get(t, "snapkeep_fsm_segments", "state", "flushed"), role) // 4 in docs, 4 restored
		require.Equal(t, 0.0, f.get(t, "snapkeep_fsm_segments", "state", "allocated"), role)
		// 4 files a segment, and the index build's one file, in docs and in its copy.
		require.Equal(t, 2*(4*4+1.0), f.get(t, "snapkeep_fsm_segment_files", "state", "flushed"), role)
		require.Positive(t, f.get(t, "snapkeep_fsm_dedup_requests"), role)

		require.Positive(t, f.get(t, "go_goroutines"), role)
	}
	// Followers forward writes: only leaders propose to Raft.
	require.Positive(t, sum(all, "snapkeep_raft_apply_seconds"))
	require.Zero(t, sum([]families{all[follower]}, "snapkeep_raft_apply_seconds"))

	// gRPC requests by method and code, over the three nodes (the client picks which
	// node answers a read).
	handled := "snapkeep_grpc_server_handled_total"
	for _, m := range []struct{ service, method string }{
		{"snapkeep.v1.Catalog", "CreateCollection"}, {"snapkeep.v1.Catalog", "DropCollection"},
		{"snapkeep.v1.Snapshots", "CreateSnapshot"}, {"snapkeep.v1.Restores", "RestoreSnapshot"},
		{"snapkeep.v1.Restores", "GetRestoreState"}, {"snapkeep.v1.GC", "GCRun"},
		{"snapkeep.internal.v1.Internal", "LeaseRestoreTasks"},
	} {
		require.Positive(t, sum(all, handled, "service", m.service, "method", m.method, "code", "OK"), "%s/%s", m.service, m.method)
		require.Positive(t, sum(all, "snapkeep_grpc_server_handling_seconds", "service", m.service, "method", m.method), "%s/%s", m.service, m.method)
	}
	require.Equal(t, 1.0, sum(all, handled, "service", "snapkeep.v1.Catalog", "method", "CreateCollection", "code", "AlreadyExists"))

	// The restore's copies, by whichever executors ran them.
	require.GreaterOrEqual(t, sum(all, "snapkeep_restore_copied_files_total"), float64(job.FilesTotal))
	require.GreaterOrEqual(t, sum(all, "snapkeep_restore_copied_bytes_total"), float64(job.BytesTotal))
	require.Positive(t, job.BytesTotal)
	require.Zero(t, sum(all, "snapkeep_restore_failed_tasks_total"))

	// The GC run, counted by the leader that ran it (gcRun retries on another leader if
	// leadership moves; a failed attempt counts nothing but itself).
	require.Equal(t, 1.0, sum(all, "snapkeep_gc_runs_total", "result", "ok"))
	require.Equal(t, float64(gcResp.Report.ObjectsDeleted), sum(all, "snapkeep_gc_deleted_objects_total"))
	require.Equal(t, float64(gcResp.Report.BytesFreed), sum(all, "snapkeep_gc_freed_bytes_total"))
	require.Equal(t, float64(gcResp.Report.RecordsRemoved), sum(all, "snapkeep_gc_removed_records_total"))
	require.Equal(t, sum(all, "snapkeep_gc_runs_total"), sum(all, "snapkeep_gc_run_seconds"))
	ran := gcResp.Report.Node
	for i, n := range c.Nodes {
		if n.ID() == ran {
			require.Equal(t, 1.0, all[i].get(t, "snapkeep_gc_runs_total", "result", "ok"))
			require.InDelta(t, float64(time.Now().Unix()), all[i].get(t, "snapkeep_gc_last_completed_timestamp_seconds"), 60)
		} else {
			require.Zero(t, all[i].get(t, "snapkeep_gc_runs_total", "result", "ok"))
		}
	}

	// Health, over HTTP and gRPC.
	for i, n := range c.Nodes {
		for _, path := range []string{"/health", "/v1/health"} {
			code, h := healthOf(t, n.HTTPAddr(), path)
			require.Equal(t, http.StatusOK, code, "%s: %+v", path, h)
			require.True(t, h.Healthy)
			require.Equal(t, c.Nodes[leader].ID(), h.Leader)
			require.Equal(t, map[bool]string{true: "leader", false: "follower"}[i == leader], h.Role)
			require.Positive(t, h.AppliedIndex)
			require.Positive(t, h.FSMAppliedIndex)
		}
		for _, svc := range []string{"", "snapkeep.v1.Catalog"} {
			require.Equal(t, healthpb.HealthCheckResponse_SERVING, grpcHealth(t, n.GRPCAddr(), svc), "node %d service %q", i, svc)
		}
		// pprof only where enabled.
		code, _ := httpGet(t, "http://"+n.HTTPAddr()+"/debug/pprof/")
		require.Equal(t, map[bool]int{true: http.StatusOK, false: http.StatusNotFound}[i == 0], code, "node %d pprof", i)
		code, _ = httpGet(t, "http://"+n.HTTPAddr()+"/debug/pprof/cmdline")
		require.Equal(t, map[bool]int{true: http.StatusOK, false: http.StatusNotFound}[i == 0], code, "node %d pprof", i)
		code, _ = httpGet(t, "http://"+n.HTTPAddr()+"/nothing-here")
		require.Equal(t, http.StatusNotFound, code)
	}

	// A node cut off from the others stops being healthy, on both protocols.
	last := leader
	for i := range c.Nodes {
		if i != last {
			c.Stop(i)
		}
	}
	n := c.Nodes[last]
	require.Eventually(t, func() bool {
		code, h, err := tryHealth(n.HTTPAddr(), "/health")
		return err == nil && code == http.StatusServiceUnavailable && !h.Healthy && len(h.Problems) > 0 && h.Status == "unavailable"
	}, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		return grpcHealth(t, n.GRPCAddr(), "") == healthpb.HealthCheckResponse_NOT_SERVING
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, 0.0, scrape(t, n.HTTPAddr()).get(t, "snapkeep_node_healthy"))
}

// The HTTP endpoint is off unless configured; gRPC health is served either way.
func TestHTTPEndpointIsOptional(t *testing.T) {
	c := servertest.Start(t, 1, servertest.Options{})
	require.Empty(t, c.Nodes[0].HTTPAddr())
	require.Eventually(t, func() bool {
		return grpcHealth(t, c.Nodes[0].GRPCAddr(), "") == healthpb.HealthCheckResponse_SERVING
	}, 10*time.Second, 50*time.Millisecond)
}

// A node whose HTTP port is taken fails to start, naming the flag, and leaves nothing
// running (goleak checks at the end of the package).
func TestStartFailsCleanlyWhenTheHTTPPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	_, err = server.Start(server.Config{
		NodeID:   "n1",
		DataDir:  t.TempDir(),
		RaftAddr: "127.0.0.1:0",
		GRPCAddr: "127.0.0.1:0",
		Peers:    map[string]string{"n1": "127.0.0.1:1"},
		HTTP:     server.HTTPConfig{Addr: taken.Addr().String()},
		Auth:     server.AuthConfig{Insecure: true},
	})
	require.ErrorContains(t, err, "listen on --http-addr "+taken.Addr().String())
}

// A raft snapshot a node takes itself is timed and sized on its /metrics.
func TestRaftSnapshotMetrics(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.HTTP = server.HTTPConfig{Addr: "127.0.0.1:0"}
		cfg.SnapshotThreshold = 64
		cfg.SnapshotInterval = 100 * time.Millisecond
	}})
	for _, n := range c.Nodes {
		f := scrape(t, n.HTTPAddr())
		require.Zero(t, f.get(t, "snapkeep_raft_snapshot_persist_seconds"), "no snapshot yet")
		require.Zero(t, f.get(t, "snapkeep_raft_snapshot_persisted_bytes"))
	}
	ctx := context.Background()
	cat, _ := dial(t, c.Nodes[c.Leader()].GRPCAddr())
	_, err := cat.CreateCollection(ctx, &pb.CreateCollectionRequest{Name: "docs"})
	require.NoError(t, err)
	for i := 0; i < 100; i++ {
		retry(t, func() (*pb.AllocateSegmentResponse, error) {
			return cat.AllocateSegment(ctx, &pb.AllocateSegmentRequest{RequestId: fmt.Sprint("a", i), Collection: "docs"})
		})
	}
	// Every node compacts its own log.
	for i, n := range c.Nodes {
		require.Eventually(t, func() bool {
			return scrape(t, n.HTTPAddr()).get(t, "snapkeep_raft_snapshot_persist_seconds") >= 1
		}, 30*time.Second, 50*time.Millisecond, "node %d took no raft snapshot", i)
		snaps, err := filepath.Glob(filepath.Join(n.DataDir(), "raft", "snapshots", "*", "state.bin"))
		require.NoError(t, err)
		require.NotEmpty(t, snaps)
		f := scrape(t, n.HTTPAddr())
		require.Positive(t, f.get(t, "snapkeep_raft_snapshot_persisted_bytes"), "node %d", i)
	}
}
