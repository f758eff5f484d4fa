// Command jepsen runs the fault-injection harness once:
//
//	go run ./jepsen/cmd/jepsen --duration 5m --nemesis all --workload all
//
// It exits non-zero on any violation, checker error or end-of-run problem; its last
// line is "jepsen: N ops, F faults, V violations".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/snapkeep/snapkeep/jepsen"
	"github.com/snapkeep/snapkeep/jepsen/checker"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/jepsen/nemesis"
	"github.com/snapkeep/snapkeep/jepsen/workload"
)

func main() {
	duration := flag.Duration("duration", 5*time.Minute, "how long clients and nemesis run")
	seed := flag.Int64("seed", time.Now().UnixNano(), "seed of the nemesis schedule and the clients' choices")
	clients := flag.Int("clients", 4, "concurrent clients")
	wl := flag.String("workload", "all", "comma list of "+strings.Join(workload.All, ",")+" or all")
	nem := flag.String("nemesis", "all", "comma list of "+strings.Join(nemesis.All, ",")+", partition, all or none")
	bug := flag.String("bug", "", "build with -tags jepsenbug and run with this bug: "+strings.Join(jepsen.Bugs, ", "))
	out := flag.String("out", "jepsen/out", "output directory (a run directory is made inside)")
	recheck := flag.String("recheck", "", "check a finished run's history again (its directory): the linearizability checkers, with --search-timeout per partition; no cluster is started")
	searchTimeout := flag.Duration("search-timeout", 5*time.Minute, "with --recheck: porcupine's budget per partition")
	logStore := flag.String("raft-log-store", "", "the nodes' --raft-log-store: wal (the default) or bolt")
	flag.Parse()
	if *recheck != "" {
		os.Exit(recheckRun(*recheck, *searchTimeout))
	}

	var workloads []string
	for _, w := range strings.Split(*wl, ",") {
		w = strings.TrimSpace(w)
		switch {
		case w == "all":
			workloads = append(workloads, workload.All...)
		case contains(workload.All, w):
			workloads = append(workloads, w)
		default:
			fail(fmt.Errorf("unknown workload %q", w))
		}
	}
	nemeses, err := nemesis.Parse(*nem)
	if err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := jepsen.Run(ctx, jepsen.Options{
		Duration: *duration, Seed: *seed, Clients: *clients, Workloads: workloads, Nemeses: nemeses,
		Bug: *bug, Out: *out, Log: os.Stderr, RaftLogStore: *logStore,
	})
	if err != nil {
		fail(err)
	}
	fmt.Printf("seed %d, results in %s\n", *seed, res.Dir)
	for _, p := range res.Problems {
		fmt.Println("problem:", p)
	}
	for n, e := range res.CheckerErrors {
		fmt.Printf("checker %s error: %s\n", n, e)
	}
	fmt.Println(res.Summary())
	if res.Failed() {
		os.Exit(1)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "jepsen:", err)
	fmt.Println("jepsen: 0 ops, 0 faults, 0 violations (the run failed: " + err.Error() + ")")
	os.Exit(2)
}

// recheckRun runs the history-only linearizability checkers again on a finished run's
// history.jsonl with a larger search budget: a partition porcupine left undecided on a
// busy machine is decided offline (violation or not), never assumed.
func recheckRun(dir string, timeout time.Duration) int {
	f, err := os.Open(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		fail(err)
	}
	ops, faults, err := history.Read(f)
	f.Close()
	if err != nil {
		fail(err)
	}
	outDir, err := os.MkdirTemp("", "jepsen-recheck-")
	if err != nil {
		fail(err)
	}
	code := 0
	for _, ch := range []checker.Checker{&checker.Registry{Timeout: timeout}, &checker.Catalog{Timeout: timeout}} {
		vs, err := ch.Check(context.Background(), checker.Input{Ops: ops, Faults: faults, OutDir: outDir})
		fmt.Printf("checker %s: %d violations, error %v\n", ch.Name(), len(vs), err)
		for _, v := range vs {
			fmt.Println("  ", v.Message)
		}
		if err != nil || len(vs) > 0 {
			code = 1
		}
	}
	return code
}
