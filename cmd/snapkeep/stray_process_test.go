package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// TestStrayObjectAndDutyPanicThreeProcesses is acceptance point 2 of the hardening
// issue: one object at <root>/collections/C/segments/S/index/B (no trailing slash) of a
// READY build made every leader's orphan scan panic, one after the other, until no
// quorum was left. Three server processes (built with the fault-injection tag, so the
// first GC pass of each node and its first register-node pass panic on purpose), the
// object planted, leadership moved three times with GC run on each leader, periodic
// orphan scans every half second: no process dies, each run reports the object as an
// orphan, and the injected panics are counted while the nodes keep serving.
func TestStrayObjectAndDutyPanicThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary and runs three server processes (make test runs it)")
	}
	bin := buildBinary(t, "jepsenbug")
	ctx := context.Background()
	s3, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{})
	require.NoError(t, err)
	defer s3.Close()
	s3cfg := s3.Config()
	store, err := objstore.NewS3(ctx, s3cfg)
	require.NoError(t, err)

	dir := t.TempDir()
	procs := make([]*serverProcess, 3)
	var peers []string
	for i := range procs {
		id := fmt.Sprintf("n%d", i+1)
		procs[i] = &serverProcess{id: id, grpc: freePort(t), raft: freePort(t), gossip: freePort(t),
			log: filepath.Join(dir, id+".log")}
		peers = append(peers, id+"="+procs[i].raft)
	}
	httpAddrs := make([]string, 3)
	t.Setenv("SNAPKEEP_PANIC_DUTY", "gc,register-node")
	for i, p := range procs {
		httpAddrs[i] = freePort(t)
		startServer(t, bin, p, "--peers", strings.Join(peers, ","), "--http-addr", httpAddrs[i],
			"--s3-endpoint", s3cfg.Endpoint, "--s3-bucket", s3cfg.Bucket, "--s3-path-style",
			"--s3-access-key", s3cfg.AccessKey, "--s3-secret-key", s3cfg.SecretKey,
			"--gc-interval", "500ms", "--gc-orphan-interval", "500ms")
	}
	logs := func() string {
		var b strings.Builder
		for _, p := range procs {
			data, _ := os.ReadFile(p.log)
			fmt.Fprintf(&b, "--- %s\n%s", p.id, data)
		}
		return b.String()
	}
	requireAlive := func(what string) {
		t.Helper()
		for _, p := range procs {
			require.True(t, p.alive(), "%s: %s exited\n%s", what, p.id, logs())
		}
	}

	cl, err := client.New(ctx, procs[0].grpc, procs[1].grpc, procs[2].grpc)
	require.NoError(t, err)
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err = cl.CreateCollection(cctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err, logs())
	_, err = cl.CreateIndex(cctx, client.NewCreateIndexOption("docs", "vec", 101))
	require.NoError(t, err)
	put := func(key string, kind snapkeepv1.FileKind) *snapkeepv1.File {
		body := []byte("data of " + key)
		info, err := store.Put(cctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{})
		require.NoError(t, err)
		return &snapkeepv1.File{Key: key, Kind: kind, FieldId: 101, Size: uint64(len(body)), Crc32C: info.CRC32C}
	}
	seg, err := cl.AllocateSegment(cctx, client.NewAllocateSegmentOption("docs"))
	require.NoError(t, err)
	_, err = cl.FlushSegment(cctx, client.NewFlushSegmentOption(seg.Id).WithRowCount(10).
		WithFiles(put(seg.Prefix+"insert/101/1", snapkeepv1.FileKind_FILE_KIND_INSERT)))
	require.NoError(t, err)
	build, err := cl.AllocateIndexBuild(cctx, client.NewAllocateIndexBuildOption(seg.Id, "vec"))
	require.NoError(t, err)
	_, err = cl.AddIndexBuild(cctx, client.NewAddIndexBuildOption(seg.Id, build.Build.BuildId).
		WithFiles(put(build.Build.Prefix+"HNSW_0", snapkeepv1.FileKind_FILE_KIND_INDEX)))
	require.NoError(t, err)
	stray := strings.TrimSuffix(build.Build.Prefix, "/")
	put(stray, snapkeepv1.FileKind_FILE_KIND_INDEX)

	leaderOf := func() string {
		t.Helper()
		var leader string
		require.Eventually(t, func() bool {
			st, err := nodeStatus(procs[0].grpc)
			if err != nil {
				return false
			}
			leader = st.LeaderId
			return leader != ""
		}, 30*time.Second, 100*time.Millisecond, "no leader\n%s", logs())
		return leader
	}
	seen := map[string]bool{}
	for round := 0; round < 4; round++ {
		leader := leaderOf()
		seen[leader] = true
		// The leader's periodic GC (with the orphan scan) runs a few times meanwhile.
		time.Sleep(1500 * time.Millisecond)
		requireAlive(fmt.Sprintf("round %d, leader %s", round, leader))
		resp, err := cl.GCRun(cctx, client.NewGCRunOption().WithDryRun().WithOrphanGrace(0))
		require.NoError(t, err, logs())
		require.Equal(t, leader, resp.Report.Node, "the leader ran it")
		var orphan *snapkeepv1.GCCandidate
		for _, c := range resp.Candidates {
			if c.Key == stray {
				orphan = c
			}
		}
		require.NotNil(t, orphan, "round %d: the stray object is reported as an orphan", round)
		require.Equal(t, fsm.ReasonOrphan, orphan.Reason)
		if round < 3 {
			_, err := cl.TransferLeadership(cctx, client.NewTransferLeadershipOption())
			require.NoError(t, err, logs())
			require.Eventually(t, func() bool { return leaderOf() != leader }, 30*time.Second, 100*time.Millisecond)
		}
	}
	require.GreaterOrEqual(t, len(seen), 2, "leadership moved")
	requireAlive("the end")

	// The injected panics were recovered and counted; the nodes kept serving.
	all := logs()
	require.Contains(t, all, "background duty panicked")
	total := 0.0
	for _, addr := range httpAddrs {
		resp, err := http.Get("http://" + addr + "/metrics")
		require.NoError(t, err)
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(body.String(), "\n") {
			if strings.HasPrefix(line, "snapkeep_duty_panics_total{") {
				var v float64
				_, _ = fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
				total += v
			}
		}
	}
	require.GreaterOrEqual(t, total, 4.0, "register-node on each node and gc on at least one leader")
	_, err = cl.CreateCollection(cctx, client.NewCreateCollectionOption("after"))
	require.NoError(t, err)
}
