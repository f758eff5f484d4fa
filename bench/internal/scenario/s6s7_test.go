package scenario

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/backupfile"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

func TestFailoverTimeCountsOnlyWritesIssuedAfterTheKill(t *testing.T) {
	kill := time.Unix(100, 0)
	at := func(ms int) time.Time { return kill.Add(time.Duration(ms) * time.Millisecond) }
	history := []writeAttempt{
		{Issued: at(-50), Done: at(-40), OK: true},   // before the kill
		{Issued: at(-10), Done: at(900), OK: true},   // issued before, acknowledged after: the old leader may have committed it
		{Issued: at(0), Done: at(1000), OK: false},   // abandoned at its deadline
		{Issued: at(5), Done: at(2600), OK: true},    // a late acknowledgement...
		{Issued: at(1005), Done: at(2400), OK: true}, // ...is not the first one
		{Issued: at(2500), Done: at(2510), OK: true},
	}
	d, ok := failoverTime(history, kill)
	if !ok || d != 2400*time.Millisecond {
		t.Fatalf("failover time %v %v, want 2.4s", d, ok)
	}
	if _, ok := failoverTime(history[:3], kill); ok {
		t.Fatal("no write issued after the kill was acknowledged, yet a failover time was found")
	}
	if _, ok := failoverTime(nil, kill); ok {
		t.Fatal("empty history gave a failover time")
	}
}

// The writers abandon a stuck call at its deadline and keep writing; waitAckAfter
// finds the first write issued after a moment that succeeds.
func TestWritersRecoverAfterFailures(t *testing.T) {
	var healthy atomic.Bool
	w := startWriters(context.Background(), 2, 20*time.Millisecond, func(ctx context.Context, _ int) error {
		if healthy.Load() {
			return nil
		}
		<-ctx.Done() // stuck until abandoned
		return ctx.Err()
	})
	broke := time.Now()
	time.Sleep(50 * time.Millisecond)
	healthy.Store(true)
	if _, ok := w.waitAckAfter(context.Background(), broke, 10*time.Second); !ok {
		t.Fatal("no acknowledgement after the writes became healthy")
	}
	history := w.stop()
	var failed, ok int
	for _, a := range history {
		if a.OK {
			ok++
		} else {
			failed++
		}
		if a.Done.Before(a.Issued) {
			t.Fatalf("attempt done before issued: %+v", a)
		}
	}
	if failed == 0 || ok == 0 {
		t.Fatalf("%d failed, %d acknowledged attempts: want both", failed, ok)
	}
}

func TestWriterDeadlinesAreStaggered(t *testing.T) {
	var got []time.Duration
	for i := range 8 {
		got = append(got, writerDeadline(i, 8, 400*time.Millisecond))
	}
	want := []time.Duration{400, 450, 500, 550, 600, 650, 700, 750}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("deadlines %v, want %v ms", got, want)
		}
	}
}

func TestFsyncProbeWritesAndSyncsBlocks(t *testing.T) {
	dir := t.TempDir()
	lat, err := fsyncProbe(dir, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 8 {
		t.Fatalf("%d latencies, want 8", len(lat))
	}
	for _, d := range lat {
		if d <= 0 {
			t.Fatalf("latency %v", d)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 0 {
		t.Fatalf("probe left %v", left)
	}
	if _, err := fsyncProbe(filepath.Join(dir, "missing"), 1); err == nil {
		t.Fatal("probe in a missing directory succeeded")
	}
}

func TestMetricSample(t *testing.T) {
	const text = `# HELP snapkeep_fsm_segments segments
# TYPE snapkeep_fsm_segments gauge
snapkeep_fsm_segments{state="allocated"} 3
snapkeep_fsm_segments{state="flushed"} 1e+06
snapkeep_raft_snapshot_persist_seconds_sum 2.5
snapkeep_raft_snapshot_persist_seconds_count 1
snapkeep_raft_snapshot_persisted_bytes 1.2345e+07 1700000000000
`
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"snapkeep_fsm_segments", []string{`state="flushed"`}, 1e6, true},
		{"snapkeep_fsm_segments", []string{`state="allocated"`}, 3, true},
		{"snapkeep_fsm_segments", []string{`state="dropped"`}, 0, false},
		{"snapkeep_raft_snapshot_persist_seconds_sum", nil, 2.5, true},
		{"snapkeep_raft_snapshot_persist_seconds", nil, 0, false}, // only _sum and _count exist
		{"snapkeep_raft_snapshot_persisted_bytes", nil, 1.2345e7, true},
	} {
		v, ok, err := metricSample(strings.NewReader(text), c.name, c.labels...)
		if err != nil || ok != c.ok || v != c.want {
			t.Errorf("%s %v: %v %v %v, want %v %v", c.name, c.labels, v, ok, err, c.want, c.ok)
		}
	}
	if _, _, err := metricSample(strings.NewReader("m notanumber\n"), "m"); err == nil {
		t.Error("a bad value was accepted")
	}
}

// The backup file restores, through the same checks the server runs, to the catalog
// that was built.
func TestCatalogBackupRestores(t *testing.T) {
	for _, milvus := range []bool{false, true} {
		t.Run(fmt.Sprintf("milvus=%v", milvus), func(t *testing.T) { testCatalogBackupRestores(t, milvus) })
	}
}

func testCatalogBackupRestores(t *testing.T, milvus bool) {
	path := filepath.Join(t.TempDir(), "c.skb")
	if heap, err := buildCatalogBackup(path, "scale", 50, milvus); err != nil || heap == 0 {
		t.Fatal(heap, err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := backupfile.VerifyFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if h.Index != 101 { // CreateCollection, then an allocate and a flush per segment
		t.Fatalf("backup index %d, want 101", h.Index)
	}
	head, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(int64(len(head)), 0); err != nil {
		t.Fatal(err)
	}
	restored := fsm.New(nil)
	if err := restored.Restore(f); err != nil {
		t.Fatal(err)
	}
	st := restored.View().Stats()
	if st.Segments[fsmpb.SegmentState_SEGMENT_STATE_FLUSHED] != 50 || st.SegmentFiles[fsmpb.SegmentState_SEGMENT_STATE_FLUSHED] != 400 {
		t.Fatalf("restored %v segments with %v files", st.Segments, st.SegmentFiles)
	}
	coll, _, err := restored.View().Collection("", "scale")
	if err != nil {
		t.Fatal(err)
	}
	if got := coll.Layout == fsmpb.KeyLayout_KEY_LAYOUT_MILVUS; got != milvus {
		t.Fatalf("collection layout %v", coll.Layout)
	}
	var withMeta int
	restored.View().EachSegment(coll.Id, 0, func(seg *fsmpb.Segment) bool {
		if meta, err := fsm.SegmentMetaOf(seg); err != nil {
			t.Fatal(err)
		} else if meta != nil {
			withMeta++
		}
		return true
	})
	if want := map[bool]int{false: 0, true: 50}[milvus]; withMeta != want {
		t.Fatalf("%d segments carry Milvus metadata, want %d", withMeta, want)
	}
}

func TestCatalogBackupRefusesAMissingDirectory(t *testing.T) {
	if _, err := buildCatalogBackup(filepath.Join(t.TempDir(), "missing", "c.skb"), "scale", 1, false); err == nil {
		t.Fatal("a backup into a missing directory succeeded")
	}
}

func TestSnapkeepLagging(t *testing.T) {
	node := func(id string, role pb.NodeRole, commit, applied uint64) *pb.NodeStatus {
		return &pb.NodeStatus{Id: id, Role: role, CommitIndex: commit, AppliedIndex: applied}
	}
	const (
		leader   = pb.NodeRole_NODE_ROLE_LEADER
		follower = pb.NodeRole_NODE_ROLE_FOLLOWER
	)
	for _, tc := range []struct {
		name  string
		nodes []*pb.NodeStatus
		want  string
	}{
		{"caught up", []*pb.NodeStatus{node("n1", follower, 33, 33), node("n2", leader, 33, 33), node("n3", follower, 33, 33)}, ""},
		// The newest entry is a new leader's no-op: no FSM applies it.
		{"the newest entry carries no command", []*pb.NodeStatus{node("n1", follower, 33, 32), node("n2", leader, 33, 32), node("n3", follower, 33, 32)}, ""},
		{"a follower has not learnt the commit index", []*pb.NodeStatus{node("n1", follower, 32, 32), node("n2", leader, 33, 32), node("n3", follower, 33, 32)}, "n1 knows commit index 32 of 33"},
		{"a follower has not applied", []*pb.NodeStatus{node("n1", follower, 33, 30), node("n2", leader, 33, 32), node("n3", follower, 33, 32)}, "n1 applied 30 of the leader's 32"},
		{"a candidate", []*pb.NodeStatus{node("n1", pb.NodeRole_NODE_ROLE_CANDIDATE, 33, 32), node("n2", leader, 33, 32), node("n3", follower, 33, 32)}, "n1 is NODE_ROLE_CANDIDATE"},
		{"a node missing", []*pb.NodeStatus{node("n2", leader, 33, 32), node("n3", follower, 33, 32)}, "2 nodes in the status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := snapkeepLagging(&pb.ClusterStatusResponse{LeaderId: "n2", Nodes: tc.nodes}, 3); got != tc.want {
				t.Errorf("snapkeepLagging = %q, want %q", got, tc.want)
			}
		})
	}
	if got := snapkeepLagging(&pb.ClusterStatusResponse{}, 3); got != "no leader" {
		t.Errorf("without a leader: %q", got)
	}
}
