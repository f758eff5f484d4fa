// Package jepsen is the fault-injection harness (issue 7): it builds snapkeep, starts
// a three-node cluster behind link proxies and an S3 fault proxy (jepsen/cluster),
// runs the clients (jepsen/workload) against every node while the nemesis
// (jepsen/nemesis) injects faults, heals and quiesces the cluster, runs every checker
// (jepsen/checker) on the recorded history (jepsen/history) and writes the run's
// artifacts. `go run ./jepsen/cmd/jepsen` and `make jepsen` run it.
package jepsen

import (
	"context"
	"encoding/json"
	"slices"

	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/internal/harness"
	"github.com/snapkeep/snapkeep/jepsen/checker"
	"github.com/snapkeep/snapkeep/jepsen/cluster"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/jepsen/nemesis"
	"github.com/snapkeep/snapkeep/jepsen/report"
	"github.com/snapkeep/snapkeep/jepsen/workload"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Bugs are the deliberate bugs of a -tags jepsenbug build (SNAPKEEP_BUG).
var Bugs = []string{"stale-describe", "gc-skip-refs", "policy-double-run", "clock-wall", "disk-healthy", "release-ignores-pins",
	"allocation-lease-short", "lease-twice", "scrub-false-loss"}

// Options configure a run.
type Options struct {
	Duration  time.Duration
	Seed      int64
	Clients   int
	Workloads []string // workload names
	Nemeses   []string // fault kinds (nemesis.Parse)
	Bug       string   // "" or one of Bugs
	Out       string   // parent of the run directory
	// RaftLogStore is the nodes' --raft-log-store (wal, bolt); "": the default (wal).
	RaftLogStore string
	Schedule     nemesis.Schedule
	// Checkers to run (nil: checker.All()).
	Checkers []checker.Checker
	// EndWait bounds the wait for quiesce, and how long the restore and export jobs left
	// at the end may go without copying a file (default 60 s).
	EndWait time.Duration
	Log     io.Writer // progress (nil: discard)
}

// Result is a run's outcome.
type Result struct {
	Dir           string
	Ops           int
	Faults        int
	Violations    []checker.Violation
	CheckerErrors map[string]string
	// Problems are harness-level failures at the end of the run (no quiesce, restore
	// jobs that never finished): reported, and they fail the run.
	Problems []string
	// Resolved says how the Unknown writes were decided (see resolver); Undecided
	// counts those left Unknown for want of a decision (not those found applied).
	Resolved  string
	Undecided int
}

// Failed reports whether the run must exit non-zero.
func (r *Result) Failed() bool {
	return len(r.Violations) > 0 || len(r.CheckerErrors) > 0 || len(r.Problems) > 0
}

// Summary is the last line of a run.
func (r *Result) Summary() string {
	return fmt.Sprintf("jepsen: %d ops, %d faults, %d violations", r.Ops, r.Faults, len(r.Violations))
}

// Run runs the harness once. An error means the run could not be made (build, start);
// what the run found is in the Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.EndWait == 0 {
		o.EndWait = 60 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Bug != "" {
		known := false
		for _, b := range Bugs {
			known = known || b == o.Bug
		}
		if !known {
			return nil, fmt.Errorf("unknown --bug %q (known: %s)", o.Bug, strings.Join(Bugs, ", "))
		}
	}
	checkers := o.Checkers
	if checkers == nil {
		checkers = checker.All()
	}
	runID := fmt.Sprintf("%s-seed%d", time.Now().UTC().Format("20060102T150405Z"), o.Seed)
	if o.Bug != "" {
		runID += "-bug-" + o.Bug
	}
	dir, err := filepath.Abs(filepath.Join(o.Out, runID))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Log, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, args...)...)
	}
	logf("jepsen: run %s in %s", runID, dir)
	// The binary goes into the output directory, shared by the runs (the Go build cache
	// makes a rebuild cheap); everything else into the run's directory.
	// faultinject: the clock nemesis skews a node's clock through a file only such a
	// build reads (internal/wallclock); jepsenbug adds the deliberate bugs.
	build := harness.BuildOptions{Dir: o.Out, Tags: []string{"faultinject"}}
	if o.Bug != "" {
		build.Tags = append(build.Tags, "jepsenbug")
	}
	bin, err := harness.BuildSnapkeep(ctx, build)
	if err != nil {
		return nil, err
	}
	extra := []string{
		// Small batches: the runs' jobs of tens of files spread over several leases at
		// once, so the lease invariants (fsm/invariants.go) have leases to hold.
		"--restore-batch", "4",
		// The scrubber verifies every committed snapshot every 2 s (its data read back
		// every 5 s), 16 a pass, a pass every 10 s: under every fault.
		"--scrub-every", "2s", "--scrub-deep-every", "5s", "--scrub-per-pass", "16",
	}
	if o.RaftLogStore != "" {
		extra = append(extra, "--raft-log-store", o.RaftLogStore)
	}
	c, err := cluster.Start(ctx, cluster.Options{Dir: dir, Binary: bin, Bug: o.Bug, ExtraArgs: extra})
	if err != nil {
		return nil, fmt.Errorf("start the cluster: %w", err)
	}
	defer c.Close()
	admin, err := c.Client(ctx)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if err := workload.Setup(ctx, admin); err != nil {
		return nil, err
	}
	var repoEnd *checker.RepositoryEnd
	if slices.Contains(o.Workloads, workload.Repositories) {
		if repoEnd, err = setupRepository(ctx, c, admin); err != nil {
			return nil, err
		}
	}
	if slices.Contains(o.Workloads, workload.Policies) {
		if err := workload.SetupPolicies(ctx, admin); err != nil {
			return nil, err
		}
	}
	if slices.Contains(o.Workloads, workload.Milvus) {
		if err := workload.SetupMilvus(ctx, admin); err != nil {
			return nil, err
		}
	}
	leader, _ := c.Leader(ctx)
	logf("jepsen: cluster up (leader %s), %d clients, workloads %v, nemeses %v, for %v", leader, o.Clients, o.Workloads, o.Nemeses, o.Duration)

	h := history.New()
	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	nem := &nemesis.Nemesis{C: c, H: h, Kinds: o.Nemeses, Seed: o.Seed, Schedule: o.Schedule, Log: logf}
	var wg sync.WaitGroup
	var faults int
	wg.Add(1)
	go func() {
		defer wg.Done()
		faults = nem.Run(runCtx)
	}()
	// Unknown writes are looked up while the run goes on, so the deduplication window
	// never forgets one before it is decided.
	resolve := newResolver(h, func(ctx context.Context, ids []string) (*snapkeepv1.LookupRequestsResponse, error) {
		return admin.LookupRequests(ctx, client.NewLookupRequestsOption(ids...))
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		resolve.run(runCtx, resolveEvery, 10*time.Second)
	}()
	ops := workload.Run(runCtx, workload.Config{
		Clients: o.Clients, Seed: o.Seed, Workloads: o.Workloads, Nodes: c.IDs(),
		Dial: c.NodeClient, History: h, Store: c.Store, Root: cluster.Root + "/",
	})
	wg.Wait()
	logf("jepsen: %d ops, %d faults; healing", ops, faults)

	res := &Result{Dir: dir, Ops: len(h.Ops()), Faults: len(h.Faults()), CheckerErrors: map[string]string{}}
	endCtx := context.WithoutCancel(ctx)
	hctx, hcancel := context.WithTimeout(endCtx, o.EndWait)
	if err := c.HealAll(hctx); err != nil {
		res.Problems = append(res.Problems, "heal: "+err.Error())
	}
	hcancel()
	if slices.Contains(o.Workloads, workload.Policies) {
		pctx, pcancel := context.WithTimeout(endCtx, o.EndWait)
		if err := workload.StopPolicies(pctx, admin); err != nil {
			res.Problems = append(res.Problems, err.Error())
		}
		pcancel()
	}
	if err := waitJobs(endCtx, admin, o.EndWait); err != nil {
		res.Problems = append(res.Problems, err.Error())
	}
	qctx, qcancel := context.WithTimeout(endCtx, o.EndWait)
	hashes, nodeErrs, err := c.Quiesce(qctx)
	qcancel()
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
		dumpGoroutines(endCtx, c, dir, logf)
	}
	logf("jepsen: quiesced: hashes %v errors %v", hashes, nodeErrs)
	// The last Unknown writes are decided once the cluster is healed.
	if err := resolveAtEnd(endCtx, resolve, o.EndWait); err != nil {
		res.Problems = append(res.Problems, "resolve unknown writes: "+err.Error())
	}
	res.Resolved = resolve.stats.String()
	res.Undecided = resolve.stats.undecidable + len(h.UnresolvedWrites())
	logf("jepsen: unknown writes: %s", res.Resolved)

	in := checker.Input{
		Ops:    h.Ops(),
		Faults: h.Faults(),
		End: &checker.EndState{Client: admin, Store: c.Store, Root: cluster.Root, NodeHashes: hashes, NodeErrors: nodeErrs, DataDirs: c.DataDirs(),
			Repository: repoEnd},
		OutDir: dir,
		Start:  h.Start(),
	}
	perChecker := map[string][]checker.Violation{}
	summaries := map[string]string{}
	// Checkers over the live cluster first, then those reading the stopped nodes' data.
	checkers = slices.Clone(checkers)
	slices.SortStableFunc(checkers, func(a, b checker.Checker) int { return cmpBool(needsStopped(a), needsStopped(b)) })
	stopped := false
	for _, ch := range checkers {
		if needsStopped(ch) && !stopped {
			c.StopNodes()
			stopped = true
		}
		cctx, ccancel := context.WithTimeout(endCtx, checkerTimeout(o.Duration))
		vs, err := ch.Check(cctx, in)
		ccancel()
		if err != nil {
			res.CheckerErrors[ch.Name()] = err.Error()
		}
		perChecker[ch.Name()] = vs
		res.Violations = append(res.Violations, vs...)
		logf("jepsen: checker %s: %d violations, error %v", ch.Name(), len(vs), err)
		if s, ok := ch.(checker.Summarizer); ok && s.Summary() != "" {
			summaries[ch.Name()] = s.Summary()
			logf("jepsen: checker %s: %s", ch.Name(), s.Summary())
		}
	}
	if err := writeArtifacts(dir, o, h, res, perChecker, summaries, hashes, nodeErrs, len(checkers)); err != nil {
		return res, err
	}
	return res, nil
}

// waitJobs waits for every restore and export job to reach a final state, as long
// as they make progress: it gives up when no open job copied a file for stall (or
// after maxJobsWait in all). A long run ends with a backlog of jobs its last minutes
// started (tens, of up to thousands of files each), which the nodes drain at their own
// pace; a job that stops moving is what the wait is there to catch.
func waitJobs(ctx context.Context, cl *client.Client, stall time.Duration) error {
	var open []string
	lastDone, progressed := int64(-1), time.Now()
	limit := time.NewTimer(maxJobsWait)
	defer limit.Stop()
	for {
		open = open[:0]
		var done int64
		var listErr error
		for j, err := range cl.ListAllRestoreJobs(ctx, client.NewListRestoreJobsOption()) {
			if err != nil {
				listErr = err
				break
			}
			switch j.GetState() {
			case snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED, snapkeepv1.RestoreState_RESTORE_STATE_FAILED, snapkeepv1.RestoreState_RESTORE_STATE_CANCELLED:
				done += int64(j.GetFilesTotal()) // a finished job is progress too
			default:
				done += int64(j.GetFilesDone())
				open = append(open, fmt.Sprintf("%d:%s", j.GetId(), j.GetState()))
			}
		}
		if listErr == nil && len(open) == 0 {
			return nil
		}
		if listErr == nil && done > lastDone {
			lastDone, progressed = done, time.Now()
		}
		wait := time.Until(progressed.Add(stall))
		select {
		case <-ctx.Done():
			return fmt.Errorf("restore jobs: %w", ctx.Err())
		case <-limit.C:
			return fmt.Errorf("restore jobs not finished %v after the heal, still copying: %v", maxJobsWait, open)
		case <-time.After(min(time.Second, max(wait, 0))):
		}
		if wait <= 0 {
			if listErr != nil {
				return fmt.Errorf("restore jobs: list: %w", listErr)
			}
			return fmt.Errorf("restore jobs copied nothing for %v after the heal: %v", stall, open)
		}
	}
}

// checkerTimeout is how long one checker may take after a run of duration d. The
// checkers that read the bucket (bucket-audit, fsck deep) take time in proportion to
// what the run wrote — about 8 s per minute of run with every workload, measured after
// 30 minutes — so a fixed deadline left a 45-minute run's undecided; half the run's
// length (never under 5 minutes) leaves them room with a margin of about 3×.
func checkerTimeout(d time.Duration) time.Duration {
	return max(5*time.Minute, d/2)
}

// maxJobsWait bounds waitJobs however its jobs progress.
const maxJobsWait = 15 * time.Minute

func writeArtifacts(dir string, o Options, h *history.History, res *Result, per map[string][]checker.Violation,
	summaries, hashes, nodeErrs map[string]string, nCheckers int) error {
	f, err := os.Create(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return err
	}
	if err := h.Write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	results := map[string]any{
		"violations":     per,
		"checker_errors": res.CheckerErrors,
		"problems":       res.Problems,
		"node_hashes":    hashes,
		"node_errors":    nodeErrs,
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return err
	}
	ops := h.Ops()
	counts := map[string]map[history.Outcome]int{}
	for _, op := range ops {
		if counts[string(op.Kind)] == nil {
			counts[string(op.Kind)] = map[history.Outcome]int{}
		}
		counts[string(op.Kind)][op.Result]++
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "run %s\nseed %d, duration %v, clients %d, workloads %v, nemeses %v, bug %q\n\n",
		filepath.Base(dir), o.Seed, o.Duration, o.Clients, o.Workloads, o.Nemeses, o.Bug)
	var kinds []string
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(&sb, "%-18s %6s %6s %8s\n", "operation", "ok", "fail", "unknown")
	for _, k := range kinds {
		c := counts[k]
		fmt.Fprintf(&sb, "%-18s %6d %6d %8d\n", k, c[history.OK], c[history.Fail], c[history.Unknown])
	}
	fmt.Fprintf(&sb, "\nunknown writes decided afterwards from the deduplication window: %s\n", res.Resolved)
	fmt.Fprintf(&sb, "\nfaults:\n")
	for _, f := range h.Faults() {
		fmt.Fprintf(&sb, "  %7.2fs-%7.2fs %-18s %s (%s)\n", secs(f.Start), secs(f.End), f.Kind, f.Target, f.Note)
	}
	fmt.Fprintf(&sb, "\nnode FSM hashes: %v\nnode errors: %v\n", hashes, nodeErrs)
	if nCheckers == 0 {
		fmt.Fprintf(&sb, "\nno checkers ran (checker.All() is empty)\n")
	}
	names := make([]string, 0, len(per))
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&sb, "checker %s: %d violations\n", n, len(per[n]))
		if s := summaries[n]; s != "" {
			fmt.Fprintf(&sb, "  covered: %s\n", strings.ReplaceAll(s, "\n", "\n  covered: "))
		}
		for _, v := range per[n] {
			fmt.Fprintf(&sb, "  %s (ops %v)\n", v.Message, v.OpIDs)
		}
	}
	for n, e := range res.CheckerErrors {
		fmt.Fprintf(&sb, "checker %s could not run: %s\n", n, e)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(&sb, "problem: %s\n", p)
	}
	fmt.Fprintf(&sb, "\n%s\n", res.Summary())
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(sb.String()), 0o644); err != nil {
		return err
	}
	var all []checker.Violation
	for _, n := range names {
		all = append(all, per[n]...)
	}
	tf, err := os.Create(filepath.Join(dir, "timeline.html"))
	if err != nil {
		return err
	}
	if err := report.WriteTimeline(tf, ops, h.Faults(), all); err != nil {
		tf.Close()
		return err
	}
	return tf.Close()
}

func secs(ns int64) float64 { return float64(ns) / 1e9 }

func needsStopped(c checker.Checker) bool {
	s, ok := c.(checker.StoppedNodes)
	return ok && s.StoppedNodes()
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// setupRepository creates the repositories workload's bucket on the cluster's S3
// server and registers it, reached through the fault proxy like the cluster's bucket.
func setupRepository(ctx context.Context, c *cluster.Cluster, admin *client.Client) (*checker.RepositoryEnd, error) {
	cfg := c.GW.Config()
	cfg.Bucket = workload.RepositoryBucket
	store, err := objstore.NewS3(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := store.CreateBucket(ctx); err != nil {
		return nil, err
	}
	if err := workload.SetupRepository(ctx, admin, c.S3.Endpoint()); err != nil {
		return nil, fmt.Errorf("register the repository: %w", err)
	}
	return &checker.RepositoryEnd{Name: workload.Repository, Store: store, Prefix: workload.RepositoryPrefix}, nil
}

// dumpGoroutines saves every running node's goroutine dump in dir
// (goroutines-<node>.txt): a cluster that did not quiesce is stuck somewhere, and
// the stacks say where.
func dumpGoroutines(ctx context.Context, c *cluster.Cluster, dir string, logf func(string, ...any)) {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		dump, err := c.Goroutines(gctx, n.ID)
		cancel()
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "goroutines-"+n.ID+".txt"), dump, 0o644)
		}
		if err != nil {
			logf("jepsen: goroutine dump of %s: %v", n.ID, err)
			continue
		}
		logf("jepsen: the cluster did not quiesce: goroutines of %s in %s", n.ID, filepath.Join(dir, "goroutines-"+n.ID+".txt"))
	}
}
