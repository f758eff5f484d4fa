package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/bench/internal/report"
	"github.com/snapkeep/snapkeep/bench/internal/stats"
	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// restoreVsCopy is scenario 4: a restore of a snapshot against the raw limit of the
// same copies, a plain parallel CopyObject loop at the same concurrency.
var restoreVsCopy = Scenario{
	Number: 4,
	Name:   "restore",
	Title:  "Restore of 10k files vs a plain parallel CopyObject loop",
	Run:    runRestoreVsCopy,
}

const (
	restoreFilesPerSegment = 8
	restoreFileSize        = 16 << 10
	// restoreNodeConcurrency is --restore-concurrency (the default, given explicitly).
	restoreNodeConcurrency = 16
	// restoreCopyingNodes: the scheduler leases work to the followers only while they
	// are healthy executors (LeaseRestoreTasks in restore/coordinator.go), so two of
	// the three nodes copy.
	restoreCopyingNodes = 2
	restorePoll         = 50 * time.Millisecond
)

// restoreRound is one restore's measurements.
type restoreRound struct {
	took             time.Duration // call to completion
	precheck, copied time.Duration // the job's phases, from its timestamps
	leases, attempts uint64
	cpu              cpuSample
	// half and ninety are when the polls first saw half and 90% of the files done:
	// a pipeline that keeps every copy slot busy to the end spends ~10% of its copy
	// phase on the last 10%.
	half, ninety time.Duration
	// From the nodes' snapkeep_restore_copied_files_total, scraped at every poll:
	// when the first copy was seen, when each node's count last rose, and its share.
	firstCopy  time.Duration
	nodeLast   []time.Duration
	nodeCopied []float64
}

func runRestoreVsCopy(ctx context.Context, e *Env, r *report.Scenario) error {
	files := e.Pick(10000, 2000)
	rounds := e.Pick(5, 3)
	concurrency := restoreCopyingNodes * restoreNodeConcurrency
	r.Setup = fmt.Sprintf("A three-node snapkeep cluster (fsync on, `--restore-concurrency %d` per node) stores in the shared versitygw. "+
		"The source collection holds %s files (%s segments × %d files of %d KiB, uploaded and flushed with their sizes and CRC-32C by `datagen`), "+
		"with one snapshot. Round after round, A then B (%d rounds%s): "+
		"**A** `RestoreSnapshot` into a new collection, polled with `GetRestoreState` every %v until COMPLETED; the time runs from the call to the job's completion stamp "+
		"(pre-check listing of the source, leases through Raft, copies by the executors with CRC-32C verification, reports through Raft). "+
		"The scheduler leases to the two followers only (the leader copies only when no follower is a healthy executor), so the restore runs %d × %d = **%d copies at once**. "+
		"**B** a plain loop of %d goroutines calling CopyObject (`objstore.S3.Copy`, no verification) on the same %s source keys to another prefix, from the benchmark process. "+
		"versitygw's posix backend does not fsync on PUT or copy: both sides' figures are an upper bound on what real object storage gives.",
		restoreNodeConcurrency, commaInt(files), commaInt(files/restoreFilesPerSegment), restoreFilesPerSegment, restoreFileSize>>10,
		rounds, map[bool]string{true: ", quick mode: 2,000 files instead of 10,000", false: ""}[e.Quick], restorePoll,
		restoreCopyingNodes, restoreNodeConcurrency, concurrency, concurrency, commaInt(files))

	c, err := e.StartSnapkeep(ctx, "s4", env.SnapkeepOptions{HTTP: true,
		Extra: []string{"--restore-concurrency", fmt.Sprint(restoreNodeConcurrency)}})
	if err != nil {
		return err
	}
	cl, err := c.Client(ctx)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	store := e.S3.Store

	loadStart := time.Now()
	if _, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("src")); err != nil {
		return fmt.Errorf("create collection: %w", err)
	}
	if _, err := datagen.Generate(ctx, cl, store, datagen.Options{Collection: "src", Segments: files / restoreFilesPerSegment,
		FilesPerSegment: restoreFilesPerSegment, FileSize: restoreFileSize, Concurrency: 32}); err != nil {
		return fmt.Errorf("load the source: %w", err)
	}
	if _, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("src", "snap")); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	var srcKeys []string
	for s, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption("src")) {
		if err != nil {
			return fmt.Errorf("list segments: %w", err)
		}
		for _, f := range s.Files {
			srcKeys = append(srcKeys, f.Key)
		}
	}
	if len(srcKeys) != files {
		return fmt.Errorf("the source lists %d files, want %d", len(srcKeys), files)
	}
	e.Logf("s4: %d files loaded and snapshotted in %v", files, time.Since(loadStart).Round(time.Millisecond))

	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	meter := &cpuMeter{pids: map[string][]int{"versitygw": {e.S3.Pid()}}, self: "bench"}
	for _, n := range c.Nodes {
		meter.pids["snapkeep"] = append(meter.pids["snapkeep"], n.Pid())
	}

	// The nodes' CPU while idle (Raft heartbeats, gossip): a cost per second, not per
	// file, that the restore's CPU per file includes for as long as it runs.
	idle0 := meter.sample()
	idleStart := time.Now()
	time.Sleep(time.Second)
	idleCPU := float64(meter.since(idle0)["snapkeep"]) / float64(time.Since(idleStart))

	var restoreRates, plainRates []float64
	var restores []restoreRound
	var plainCPU []cpuSample
	for round := range rounds {
		rr, err := restoreOnce(ctx, cl, c.Nodes, meter, fmt.Sprintf("copy%d", round))
		if err != nil {
			return fmt.Errorf("round %d: restore: %w", round+1, err)
		}
		restores = append(restores, rr)
		restoreRates = append(restoreRates, float64(files)/rr.took.Seconds())

		cpu0 := meter.sample()
		took, err := plainCopyLoop(ctx, store, srcKeys, fmt.Sprintf("s4-plain/%d/", round), concurrency)
		if err != nil {
			return fmt.Errorf("round %d: plain copy loop: %w", round+1, err)
		}
		plainCPU = append(plainCPU, meter.since(cpu0))
		plainRates = append(plainRates, float64(files)/took.Seconds())
		if profileDir() != "" { // scraped at every poll: the timings mean something
			e.Logf("s4: round %d: restore: first copy seen at %v; per node: copied %v, last copy seen at %v", round+1,
				rr.firstCopy.Round(time.Millisecond), rr.nodeCopied, roundAll(rr.nodeLast))
		} else {
			e.Logf("s4: round %d: restore: per node: copied %v", round+1, rr.nodeCopied)
		}
		e.Logf("s4: round %d: restore %.0f files/s (%v: pre-check %v, half done %v, 90%% %v; %d leases), plain loop %.0f files/s, ratio %.3f", round+1,
			restoreRates[round], rr.took.Round(time.Millisecond), rr.precheck, rr.half.Round(time.Millisecond), rr.ninety.Round(time.Millisecond), rr.leases, plainRates[round], restoreRates[round]/plainRates[round])
	}

	r.Comparisons = append(r.Comparisons, report.NewComparison(
		fmt.Sprintf("restore of %s files, %d copies at once", commaInt(files), concurrency), "files/s", report.Higher,
		restoreRates, "plain CopyObject loop", plainRates,
		&report.Target{Op: ">=", Ratio: 0.9, Text: "≥ 0.9× the plain copy loop's files/s"}))

	median := func(f func(i int) float64) float64 {
		var v []float64
		for i := range rounds {
			v = append(v, f(i))
		}
		return stats.Summarize(v).Median
	}
	r.Figures = append(r.Figures,
		report.Figure{Name: "restore/plain of each round's pair (median)", Value: pairRatioMedian(restoreRates, plainRates), Unit: "×",
			Note: "the load of a shared machine moves between A and B; a pair's ratio sees the same moment"},
		report.Figure{Name: "files restored per round", Value: float64(files), Unit: "files", Note: fmt.Sprintf("%d KiB each", restoreFileSize>>10)},
		report.Figure{Name: "rounds (A B each)", Value: float64(rounds), Unit: "rounds"},
		report.Figure{Name: "copies at once, both sides", Value: float64(concurrency), Unit: "copies", Note: "two followers × --restore-concurrency 16"},
		report.Figure{Name: "restore pre-check (median)", Value: median(func(i int) float64 { return msOf(restores[i].precheck) }), Unit: "ms",
			Note: "listing the source collection before any copy"},
		report.Figure{Name: "restore copy phase (median)", Value: median(func(i int) float64 { return msOf(restores[i].copied) }), Unit: "ms"},
		report.Figure{Name: "leases per restore (median)", Value: median(func(i int) float64 { return float64(restores[i].leases) }), Unit: "leases",
			Note: "each lease is a grant and a report: two Raft entries"},
		report.Figure{Name: "files the leader copied (most in a round)", Value: maxOver(rounds, func(i int) float64 { return leaderCopied(restores[i], c.Nodes, leader) }), Unit: "files",
			Note: "from the nodes' snapkeep_restore_copied_files_total: the followers do the copying"},
		report.Figure{Name: "snapkeep CPU per restored file (3 nodes, median)", Value: median(func(i int) float64 { return microsPer(restores[i].cpu["snapkeep"], files) }), Unit: "µs",
			Note: "from /proc of the three server processes; bounds the scheduling cost"},
		report.Figure{Name: "snapkeep CPU while idle (3 nodes)", Value: idleCPU * 1000, Unit: "ms/s", Note: "heartbeats and gossip, included above for the restore's duration"},
		report.Figure{Name: "versitygw CPU per file, restore (median)", Value: median(func(i int) float64 { return microsPer(restores[i].cpu["versitygw"], files) }), Unit: "µs"},
		report.Figure{Name: "versitygw CPU per file, plain loop (median)", Value: median(func(i int) float64 { return microsPer(plainCPU[i]["versitygw"], files) }), Unit: "µs"},
		report.Figure{Name: "benchmark process CPU per file, plain loop (median)", Value: median(func(i int) float64 { return microsPer(plainCPU[i]["bench"], files) }), Unit: "µs",
			Note: "the loop's client side, the counterpart of the executors' share of the snapkeep CPU"},
	)
	var labels []string
	for i := range rounds {
		labels = append(labels, fmt.Sprintf("round %d", i+1))
	}
	r.Charts = append(r.Charts, report.Chart{File: "s4-restore-vs-copy.svg", Title: fmt.Sprintf("Restore of %s files vs plain CopyObject loop (%d at once)", commaInt(files), concurrency),
		YLabel: "files/s", Labels: labels, Series: []report.Series{{Name: "snapkeep restore", Values: restoreRates}, {Name: "plain CopyObject loop", Values: plainRates}}})

	if dir := profileDir(); dir != "" {
		if err := profileRestore(ctx, e, c, leader, cl, srcKeys, restores, dir); err != nil {
			return err
		}
	}
	return nil
}

// restoreOnce restores snap into target and waits for the job to complete.
func restoreOnce(ctx context.Context, cl *client.Client, nodes []*env.SnapkeepNode, meter *cpuMeter, target string) (restoreRound, error) {
	base := make([]float64, len(nodes))
	for i, n := range nodes {
		base[i], _ = scrapeCounter(ctx, n.HTTPAddr, copiedFilesMetric)
	}
	var firstCopy time.Duration
	nodeLast := make([]time.Duration, len(nodes))
	nodeCopied := make([]float64, len(nodes))
	cpu0 := meter.sample()
	start := time.Now()
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("src", "snap", target))
	if err != nil {
		return restoreRound{}, err
	}
	var half, ninety time.Duration
	// Scraping every node at every poll costs the servers some CPU: only when
	// profiling (diagnosis); otherwise once at the end, for the nodes' shares.
	scrapeEveryPoll := profileDir() != ""
	scrape := func() {
		for i, n := range nodes {
			v, err := scrapeCounter(ctx, n.HTTPAddr, copiedFilesMetric)
			if err != nil || v-base[i] <= nodeCopied[i] {
				continue
			}
			nodeCopied[i], nodeLast[i] = v-base[i], time.Since(start)
			if firstCopy == 0 {
				firstCopy = nodeLast[i]
			}
		}
	}
	for {
		if scrapeEveryPoll {
			scrape()
		}
		job, err := cl.GetRestoreState(ctx, resp.JobId)
		if err != nil {
			return restoreRound{}, fmt.Errorf("restore state: %w", err)
		}
		if job.FilesTotal > 0 {
			if half == 0 && job.FilesDone*2 >= job.FilesTotal {
				half = time.Since(start)
			}
			if ninety == 0 && job.FilesDone*10 >= job.FilesTotal*9 {
				ninety = time.Since(start)
			}
		}
		switch job.State {
		case pb.RestoreState_RESTORE_STATE_COMPLETED:
			scrape()
			rr := restoreRound{cpu: meter.since(cpu0), leases: job.Leases, attempts: job.Attempts, half: half, ninety: ninety,
				firstCopy: firstCopy, nodeLast: nodeLast, nodeCopied: nodeCopied,
				precheck: time.Duration(job.StartedAtUnixMs-job.CreatedAtUnixMs) * time.Millisecond,
				copied:   time.Duration(job.FinishedAtUnixMs-job.StartedAtUnixMs) * time.Millisecond}
			// The completion stamp (the leader's clock, the same machine's) ends the
			// time, not the poll that saw it: the poll interval would add up to 50 ms.
			rr.took = time.UnixMilli(job.FinishedAtUnixMs).Sub(start)
			if observed := time.Since(start); rr.took <= 0 || rr.took > observed {
				rr.took = observed
			}
			return rr, nil
		case pb.RestoreState_RESTORE_STATE_PENDING, pb.RestoreState_RESTORE_STATE_COPYING:
		default:
			return restoreRound{}, fmt.Errorf("job %d ended %v: %s", resp.JobId, job.State, job.Error)
		}
		select {
		case <-ctx.Done():
			return restoreRound{}, ctx.Err()
		case <-time.After(restorePoll):
		}
	}
}

// plainCopyLoop copies every key to dstPrefix+key with n goroutines taking keys in
// turn: the raw limit of server-side copies at that concurrency.
func plainCopyLoop(ctx context.Context, store objstore.Store, keys []string, dstPrefix string, n int) (time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := next.Add(1) - 1; k < int64(len(keys)); k = next.Add(1) - 1 {
				if _, err := store.Copy(ctx, keys[k], dstPrefix+keys[k]); err != nil {
					cancel(fmt.Errorf("copy %s: %w", keys[k], err))
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return took, nil
}

// profileRestore runs one more, unmeasured restore while taking CPU profiles of the
// leader and a follower, and notes versitygw's CPU meanwhile.
func profileRestore(ctx context.Context, e *Env, c *env.Snapkeep, leader *env.SnapkeepNode, cl *client.Client, keys []string, restores []restoreRound, dir string) error {
	var follower *env.SnapkeepNode
	for _, n := range c.Nodes {
		if n != leader {
			follower = n
			break
		}
	}
	var secs []float64
	for _, rr := range restores {
		secs = append(secs, rr.took.Seconds())
	}
	seconds := max(1, int(stats.Summarize(secs).Median+0.5))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, n := range []*env.SnapkeepNode{leader, follower} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			role := map[int]string{0: "leader", 1: "follower"}[i]
			errs[i] = fetchProfile(ctx, n.HTTPAddr, seconds, filepath.Join(dir, "s4-restore-"+role+".pprof"))
		}()
	}
	meter := &cpuMeter{pids: map[string][]int{"versitygw": {e.S3.Pid()}, "leader": {leader.Pid()}, "follower": {follower.Pid()}}}
	time.Sleep(100 * time.Millisecond) // the profiles start
	rr, err := restoreOnce(ctx, cl, c.Nodes, meter, "profiled")
	wg.Wait()
	if err := errors.Join(append(errs, err)...); err != nil {
		return fmt.Errorf("profiled restore: %w", err)
	}
	var parts []string
	for _, name := range []string{"leader", "follower", "versitygw"} {
		parts = append(parts, fmt.Sprintf("%s %v", name, rr.cpu[name].Round(time.Millisecond)))
	}
	e.Logf("s4: profiled restore took %v, CPU %s; profiles (%d s) in %s", rr.took.Round(time.Millisecond), strings.Join(parts, ", "), seconds, dir)

	// The loop's client side, for comparison with the follower's profile.
	f, err := os.Create(filepath.Join(dir, "s4-plain-loop-bench.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	took, err := plainCopyLoop(ctx, e.S3.Store, keys, "s4-plain/profiled/", restoreCopyingNodes*restoreNodeConcurrency)
	pprof.StopCPUProfile()
	if err != nil {
		return fmt.Errorf("profiled plain loop: %w", err)
	}
	e.Logf("s4: profiled plain loop took %v", took.Round(time.Millisecond))
	return nil
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// commaInt prints n with thousands separators: 10,000.
func commaInt(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + commaInt(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// copiedFilesMetric counts the files a node's restore executor copied.
const copiedFilesMetric = "snapkeep_restore_copied_files_total"

// scrapeCounter reads a counter from a node's /metrics: the sum of its series whose
// labels hold label (e.g. `kind="export"`; "" for every series).
func scrapeCounter(ctx context.Context, httpAddr, name string, label ...string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return parseCounter(string(b), name, label...)
}

// parseCounter finds a counter in a Prometheus text exposition, "name value" or
// "name{labels} value": the sum of its series whose labels hold every one of label
// (`kind="restore"`), all of them when none is given. The restore counters are
// labelled by job kind; a restore-only scenario sums them.
func parseCounter(text, name string, label ...string) (float64, error) {
	sum, found := 0.0, false
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" {
			continue
		}
		labels := ""
		switch rest[0] {
		case ' ':
		case '{':
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		default:
			continue // another metric whose name starts with name
		}
		held := true
		for _, l := range label {
			held = held && slices.Contains(strings.Split(labels, ","), l)
		}
		if !held {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("no %s%v in the metrics", name, label)
	}
	return sum, nil
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// leaderCopied is how many files the leader's own executor copied in a round.
func leaderCopied(rr restoreRound, nodes []*env.SnapkeepNode, leader *env.SnapkeepNode) float64 {
	for i, n := range nodes {
		if n == leader && i < len(rr.nodeCopied) {
			return rr.nodeCopied[i]
		}
	}
	return 0
}

func maxOver(n int, f func(i int) float64) float64 {
	m := 0.0
	for i := range n {
		m = max(m, f(i))
	}
	return m
}

// pairRatioMedian is the median over rounds of a[i]/b[i].
func pairRatioMedian(a, b []float64) float64 {
	var r []float64
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return stats.Summarize(r).Median
}
