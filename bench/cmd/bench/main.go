// Command bench runs snapkeep's side-by-side benchmarks (see bench/DESIGN.md): it
// starts versitygw, snapkeep clusters and etcd clusters on 127.0.0.1, runs every
// scenario, stops everything, and writes docs/BENCHMARKS.md, bench/results/<date>.json
// and the charts in docs/bench/. `make bench` runs it; `make bench QUICK=1` is the
// short run.
package main

import (
	"context"
	"debug/buildinfo"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/bench/internal/report"
	"github.com/snapkeep/snapkeep/bench/internal/scenario"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	quick := flag.Bool("quick", false, "a short run: fewer rounds, smaller sizes (under 5 minutes)")
	only := flag.String("only", "", "comma-separated scenario numbers or names to run (default: all)")
	out := flag.String("out", "../docs/BENCHMARKS.md", "the markdown report to write")
	resultsDir := flag.String("results", "results", "directory for <date>.json")
	chartDir := flag.String("charts", "../docs/bench", "directory for the SVG charts")
	notesDir := flag.String("notes", "notes", "directory of hand-written analysis (*.md, in name order) appended to the report")
	workDir := flag.String("work", "", "directory for the servers' data (default: a new temporary directory, removed afterwards)")
	render := flag.String("render", "", "only render the report from this results JSON (no benchmarks)")
	logStore := flag.String("raft-log-store", "", "the snapkeep nodes' --raft-log-store: wal or bolt (default: the server's, the WAL)")
	closeConns := flag.Bool("s3-close-connections", false, "run versitygw without --keep-alive: every S3 request dials a new connection (versitygw's default; S3 services keep them alive)")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

	if *render != "" {
		r, err := report.ReadJSON(*render)
		if err != nil {
			return err
		}
		return writeReport(r, *out, *chartDir, *notesDir)
	}

	var selected []scenario.Scenario
	for _, s := range scenario.All {
		if *only == "" || slices.Contains(strings.Split(*only, ","), strconv.Itoa(s.Number)) || slices.Contains(strings.Split(*only, ","), s.Name) {
			selected = append(selected, s)
		}
	}
	if len(selected) == 0 {
		return fmt.Errorf("--only %q matches no scenario", *only)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir := *workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "snapkeep-bench-")
		if err != nil {
			return err
		}
		dir = d
		defer removeInBackground(d)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	started := time.Now()
	logf("building snapkeep")
	if _, err := env.BuildSnapkeep(ctx); err != nil {
		return err
	}
	s3, err := env.StartS3With(ctx, dir, env.S3Options{CloseConnections: *closeConns})
	if err != nil {
		return err
	}
	defer s3.Stop()

	cmdline := "make bench"
	if *quick {
		cmdline = "make bench QUICK=1"
	}
	var benchFlags []string
	if *only != "" {
		benchFlags = append(benchFlags, "--only "+*only)
	}
	if *logStore != "" {
		benchFlags = append(benchFlags, "--raft-log-store "+*logStore)
	}
	if *closeConns {
		benchFlags = append(benchFlags, "--s3-close-connections")
	}
	if len(benchFlags) > 0 {
		cmdline += " BENCH_FLAGS='" + strings.Join(benchFlags, " ") + "'"
	}
	r := &report.Run{Date: started.UTC().Format("2006-01-02"), Started: started.UTC(), Command: cmdline, Quick: *quick,
		Machine: report.DescribeMachine(dir), Versions: versions(), S3KeepAlive: !*closeConns}
	for _, s := range selected {
		// No scenario measures another's writeback: the disk starts each one settled
		// (scenario 7 alone leaves gigabytes of dirty pages behind).
		syncStart := time.Now()
		syscall.Sync()
		logf("sync before scenario %d took %v", s.Number, time.Since(syncStart).Round(time.Millisecond))
		logf("scenario %d: %s", s.Number, s.Title)
		e := &scenario.Env{Dir: filepath.Join(dir, fmt.Sprintf("s%d", s.Number)), Quick: *quick, S3: s3, Logf: logf, RaftLogStore: *logStore, S3CloseConnections: *closeConns}
		res := report.Scenario{Number: s.Number, Name: s.Name, Title: s.Title}
		t0 := time.Now()
		err := runOne(ctx, s, e, &res)
		e.Cleanup()
		res.Seconds = time.Since(t0).Seconds()
		if err != nil {
			res.Error = err.Error()
			logf("scenario %d FAILED: %v", s.Number, err)
		}
		for _, c := range res.Comparisons {
			met := ""
			if c.Met != nil {
				met = map[bool]string{true: "  target met", false: "  TARGET MISSED"}[*c.Met]
			}
			fmt.Printf("scenario %d  %-48s snapkeep %s %s vs %s %s  ratio %s%s\n", s.Number, c.Name,
				strconv.FormatFloat(c.Snapkeep.Median, 'g', 4, 64), c.Metric, c.BaselineName,
				strconv.FormatFloat(c.Baseline.Median, 'g', 4, 64), c.Headline(), met)
		}
		r.Scenarios = append(r.Scenarios, res)
		if ctx.Err() != nil {
			// An interrupted run keeps what it measured: the scenarios before the
			// interruption (and the interrupted one's error), apart from a complete run's
			// results, and no report.
			r.Seconds = time.Since(started).Seconds()
			path := resultsPath(*resultsDir, r.Date, *quick, "-interrupted")
			err := os.MkdirAll(*resultsDir, 0o755)
			if err == nil {
				err = r.WriteJSON(path)
			}
			if err != nil {
				logf("interrupted: could not keep the results: %v", err)
			} else {
				logf("interrupted: wrote %s", path)
			}
			return ctx.Err()
		}
	}
	r.Seconds = time.Since(started).Seconds()
	if err := os.MkdirAll(*resultsDir, 0o755); err != nil {
		return err
	}
	jsonPath := resultsPath(*resultsDir, r.Date, *quick, "")
	if err := r.WriteJSON(jsonPath); err != nil {
		return err
	}
	logf("wrote %s", jsonPath)
	if err := writeReport(r, *out, *chartDir, *notesDir); err != nil {
		return err
	}
	for _, s := range r.Scenarios {
		if s.Error != "" {
			return fmt.Errorf("scenario %d failed: %s", s.Number, s.Error)
		}
	}
	return nil
}

// resultsPath is where a run's results go: <dir>/<date>[-quick]<suffix>.json.
func resultsPath(dir, date string, quick bool, suffix string) string {
	if quick {
		suffix = "-quick" + suffix
	}
	return filepath.Join(dir, date+suffix+".json")
}

// runOne runs a scenario, turning a panic into its error so the rest still run.
func runOne(ctx context.Context, s scenario.Scenario, e *scenario.Env, res *report.Scenario) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return s.Run(ctx, e, res)
}

func writeReport(r *report.Run, out, chartDir, notesDir string) error {
	if err := os.MkdirAll(chartDir, 0o755); err != nil {
		return err
	}
	for _, s := range r.Scenarios {
		for _, c := range s.Charts {
			if err := c.WriteSVG(filepath.Join(chartDir, c.File)); err != nil {
				return err
			}
		}
	}
	var notes strings.Builder
	files, err := filepath.Glob(filepath.Join(notesDir, "*.md"))
	if err != nil {
		return err
	}
	slices.Sort(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		notes.Write(b)
		notes.WriteString("\n")
	}
	rel, err := filepath.Rel(filepath.Dir(out), chartDir)
	if err != nil {
		rel = chartDir
	}
	if err := os.WriteFile(out, []byte(r.Markdown(filepath.ToSlash(rel), notes.String())), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %d chart(s) in %s\n", out, countCharts(r), chartDir)
	return nil
}

func countCharts(r *report.Run) int {
	n := 0
	for _, s := range r.Scenarios {
		n += len(s.Charts)
	}
	return n
}

// versions names the servers' versions, read from their binaries' build information.
func versions() []string {
	var vs []string
	for _, b := range []struct{ name, module string }{
		{"etcd", "go.etcd.io/etcd/server/v3"},
		{"versitygw", "github.com/versity/versitygw"},
	} {
		bin, err := env.Bin(b.name)
		if err != nil {
			continue
		}
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			continue
		}
		v := ""
		if info.Main.Path == b.module {
			v = info.Main.Version
		}
		for _, d := range info.Deps {
			if d.Path == b.module {
				v = d.Version
			}
		}
		if v != "" {
			vs = append(vs, b.name+" "+v)
		}
	}
	return vs
}

// removeInBackground deletes the work directory with a detached `rm -rf`: the S3
// server's posix tree of a full run holds hundreds of thousands of directories and takes
// minutes to delete, which no benchmark figure needs to wait for.
func removeInBackground(dir string) {
	cmd := exec.Command("rm", "-rf", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return
	}
	fmt.Fprintf(os.Stderr, "removing %s in the background (pid %d)\n", dir, cmd.Process.Pid)
	_ = cmd.Process.Release()
}
