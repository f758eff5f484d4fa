package report

import (
	"encoding/xml"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestComparisonRatioAndTargets(t *testing.T) {
	tests := []struct {
		name      string
		better    Better
		sk, base  []float64
		target    *Target
		ratio     float64
		met       *bool
		headlines string
	}{
		{"throughput met", Higher, []float64{300, 200, 400}, []float64{100, 100, 120}, &Target{Op: ">=", Ratio: 1.5}, 3, ptr(true), "3.00×"},
		{"throughput missed", Higher, []float64{140}, []float64{100}, &Target{Op: ">=", Ratio: 1.5}, 1.4, ptr(false), "1.40×"},
		{"latency 50x faster", Lower, []float64{0.1}, []float64{8}, &Target{Op: "<=", Ratio: 0.02}, 0.0125, ptr(true), "0.013× (80.0× better)"},
		{"latency worse", Lower, []float64{2}, []float64{1}, &Target{Op: "<=", Ratio: 1}, 2, ptr(false), "2.00× (2.00× worse)"},
		{"absolute", Lower, []float64{1200, 1500}, nil, &Target{Op: "<=", Ratio: 3000, Absolute: true}, 0, ptr(true), "n/a"},
		{"no target", Higher, []float64{1}, []float64{2}, nil, 0.5, nil, "0.500×"},
		{"no baseline rounds", Higher, []float64{1}, nil, &Target{Op: ">=", Ratio: 1}, 0, nil, "n/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewComparison(tt.name, "x", tt.better, tt.sk, "base", tt.base, tt.target)
			if c.Ratio < tt.ratio*0.999 || c.Ratio > tt.ratio*1.001 {
				t.Errorf("ratio %v, want %v", c.Ratio, tt.ratio)
			}
			switch {
			case tt.met == nil && c.Met != nil:
				t.Errorf("met %v, want none", *c.Met)
			case tt.met != nil && (c.Met == nil || *c.Met != *tt.met):
				t.Errorf("met %v, want %v", c.Met, *tt.met)
			}
			if got := c.Headline(); got != tt.headlines {
				t.Errorf("headline %q, want %q", got, tt.headlines)
			}
		})
	}
}

func ptr(b bool) *bool { return &b }

func TestChartIsWellFormedSVG(t *testing.T) {
	for _, logY := range []bool{false, true} {
		c := Chart{File: "x.svg", Title: "a < b & c", YLabel: "ms", Labels: []string{"1k", "10k"},
			Series: []Series{{Name: "snapkeep", Values: []float64{8, 32}}, {Name: "baseline", Values: []float64{900, 0}}}, LogY: logY}
		d := xml.NewDecoder(strings.NewReader(c.SVG()))
		rects := 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("logY=%v: %v", logY, err)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
				rects++
			}
		}
		// background + 4 bars + 2 legend boxes
		if rects != 7 {
			t.Errorf("logY=%v: %d rects", logY, rects)
		}
	}
}

func TestRunRoundTripsAndRenders(t *testing.T) {
	r := &Run{Date: "2026-11-25", Command: "make bench QUICK=1", Quick: true, Machine: Machine{CPU: "cpu", Cores: 2}}
	r.Scenarios = []Scenario{{Number: 1, Title: "Metadata commits", Setup: "setup text",
		Comparisons: []Comparison{NewComparison("64 clients", "ops/s", Higher, []float64{30}, "etcd + Avro", []float64{10}, &Target{Op: ">=", Ratio: 1.5, Text: "≥ 1.5×"})},
		Charts:      []Chart{{File: "latency.svg", Title: "Latency"}}},
		{Number: 2, Title: "Broken", Error: "boom | bad"}}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	md := back.Markdown("bench", "## Analysis\n\nnotes here")
	for _, want := range []string{"# Benchmarks", "make bench QUICK=1", "| 1 | 64 clients | 30 ops/s | etcd + Avro: 10 ops/s | **3.00×** | ≥ 1.5× | met |",
		"![Latency](bench/latency.svg)", "## 2. Broken", "boom \\| bad", "notes here", "upper bound"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
