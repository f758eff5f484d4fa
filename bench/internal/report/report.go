// Package report holds a benchmark run's results and writes them: the
// machine-readable JSON (bench/results/<date>.json), docs/BENCHMARKS.md and SVG charts.
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/stats"
)

// Better says which direction of a metric is good.
type Better string

const (
	Higher Better = "higher"
	Lower  Better = "lower"
)

// Target is a condition on a comparison's ratio (snapkeep / baseline), or, when
// Absolute, on snapkeep's median itself (e.g. scale's memory under a limit in MiB).
type Target struct {
	// Op is ">=" or "<="; Ratio the bound on snapkeep/baseline (or on snapkeep's
	// median, in the comparison's metric, when Absolute).
	Op       string  `json:"op"`
	Ratio    float64 `json:"ratio"`
	Absolute bool    `json:"absolute,omitempty"`
	// Text says it the way the issue does, e.g. "≥ 1.5× the baseline's snapshots/s".
	Text string `json:"text"`
}

// Holds reports whether ratio meets the target.
func (t Target) Holds(ratio float64) bool {
	switch t.Op {
	case ">=":
		return ratio >= t.Ratio
	case "<=":
		return ratio <= t.Ratio
	}
	return false
}

// Comparison is one metric measured for snapkeep and for a baseline (the etcd + Avro
// design, or a raw limit such as a plain copy loop or the disk's fsync), round by
// round, A B A B.
type Comparison struct {
	Name         string        `json:"name"`   // e.g. "commits/64 clients ops/s"
	Metric       string        `json:"metric"` // unit of the values, e.g. "ops/s", "ms"
	Better       Better        `json:"better"`
	Snapkeep     stats.Summary `json:"snapkeep"`
	BaselineName string        `json:"baseline_name"`
	Baseline     stats.Summary `json:"baseline"`
	// Ratio is the median of snapkeep over the median of the baseline.
	Ratio  float64 `json:"ratio"`
	Target *Target `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
	Note   string  `json:"note,omitempty"`
}

// NewComparison summarizes both sides' rounds, computes the ratio and checks the
// target (nil: no target).
func NewComparison(name, metric string, better Better, snapkeep []float64, baselineName string, baseline []float64, target *Target) Comparison {
	c := Comparison{Name: name, Metric: metric, Better: better,
		Snapkeep: stats.Summarize(snapkeep), BaselineName: baselineName, Baseline: stats.Summarize(baseline), Target: target}
	if c.Baseline.Median != 0 {
		c.Ratio = c.Snapkeep.Median / c.Baseline.Median
	}
	switch {
	case target != nil && target.Absolute && c.Snapkeep.N > 0:
		met := target.Holds(c.Snapkeep.Median)
		c.Met = &met
	case target != nil && c.Snapkeep.N > 0 && c.Baseline.N > 0:
		met := target.Holds(c.Ratio)
		c.Met = &met
	}
	return c
}

// Headline is the ratio as the scenario prints it, with what it means:
// "0.018× (55× faster)", "2.1× (more ops/s)".
func (c Comparison) Headline() string {
	r := fmt.Sprintf("%s×", FormatRatio(c.Ratio))
	switch {
	case c.Ratio == 0:
		return "n/a"
	case c.Better == Lower && c.Ratio < 1:
		return fmt.Sprintf("%s (%s× better)", r, FormatRatio(1/c.Ratio))
	case c.Better == Lower && c.Ratio > 1:
		return fmt.Sprintf("%s (%s× worse)", r, FormatRatio(c.Ratio))
	}
	return r
}

// FormatRatio prints a ratio with three significant digits.
func FormatRatio(r float64) string {
	switch {
	case r == 0:
		return "0"
	case math.Abs(r) >= 100:
		return fmt.Sprintf("%.0f", r)
	case math.Abs(r) >= 10:
		return fmt.Sprintf("%.1f", r)
	case math.Abs(r) >= 1:
		return fmt.Sprintf("%.2f", r)
	case math.Abs(r) >= 0.01:
		return fmt.Sprintf("%.3f", r)
	}
	return fmt.Sprintf("%.2g", r)
}

// Figure is a measured value with no counterpart (e.g. objects written).
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Note  string  `json:"note,omitempty"`
}

// Series is one line or bar group of a chart: y values at the chart's x labels.
type Series struct {
	Name   string    `json:"name"`
	Values []float64 `json:"values"`
}

// Chart is a grouped bar chart drawn as SVG: one group per label, one bar per series.
type Chart struct {
	File   string   `json:"file"` // file name under docs/bench/, e.g. "latency.svg"
	Title  string   `json:"title"`
	YLabel string   `json:"y_label"`
	Labels []string `json:"labels"`
	Series []Series `json:"series"`
	LogY   bool     `json:"log_y"`
}

// Scenario is one scenario's result.
type Scenario struct {
	Number      int          `json:"number"`
	Name        string       `json:"name"`
	Title       string       `json:"title"`
	Setup       string       `json:"setup"` // what ran, in a sentence or three (markdown)
	Comparisons []Comparison `json:"comparisons"`
	Figures     []Figure     `json:"figures,omitempty"`
	Charts      []Chart      `json:"charts,omitempty"`
	Notes       []string     `json:"notes,omitempty"` // markdown lines
	Seconds     float64      `json:"seconds"`
	Error       string       `json:"error,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryGiB int    `json:"memory_gib"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	Disk      string `json:"disk"`
}

// Run is a whole benchmark run.
type Run struct {
	Date     string    `json:"date"` // YYYY-MM-DD
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Command  string    `json:"command"`
	Quick    bool      `json:"quick"`
	Machine  Machine   `json:"machine"`
	Versions []string  `json:"versions"` // etcd, versitygw, ...
	// S3KeepAlive: the gateways kept client connections alive (versitygw --keep-alive,
	// the default since 2026-12-04); before, and with --s3-close-connections, every S3
	// request dialled a new connection.
	S3KeepAlive bool       `json:"s3_keep_alive,omitempty"`
	Scenarios   []Scenario `json:"scenarios"`
}

// WriteJSON writes the run, indented.
func (r *Run) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadJSON reads a run written by WriteJSON.
func ReadJSON(path string) (*Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// DescribeMachine reads /proc and runtime for the machine's description; dir's
// filesystem is named as the disk.
func DescribeMachine(dir string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			m.MemoryGiB = int(math.Round(float64(kib) / (1 << 20)))
		}
	}
	if b, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := exec.Command("df", "--output=source,fstype", dir).Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		m.Disk = strings.Join(strings.Fields(lines[len(lines)-1]), " ")
	}
	return m
}
