// Package stats summarizes repeated measurements: median and spread of rounds, and
// percentiles of latency samples.
package stats

import (
	"math"
	"slices"
	"time"
)

// Summary describes a set of values: the rounds of one measurement, or latencies.
type Summary struct {
	N      int       `json:"n"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values,omitempty"`
}

// Summarize returns the summary of values (kept in the order given).
func Summarize(values []float64) Summary {
	s := Summary{N: len(values), Values: slices.Clone(values)}
	if len(values) == 0 {
		return s
	}
	sorted := slices.Sorted(slices.Values(values))
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	s.Median = Percentile(sorted, 50)
	return s
}

// Spread is (max-min)/median, 0 for fewer than two values.
func (s Summary) Spread() float64 {
	if s.N < 2 || s.Median == 0 {
		return 0
	}
	return (s.Max - s.Min) / math.Abs(s.Median)
}

// Percentile of sorted values (nearest rank, p in 0..100); 0 when empty.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

// Latencies collects operation latencies.
type Latencies struct {
	d []time.Duration
}

// Add records one latency.
func (l *Latencies) Add(d time.Duration) { l.d = append(l.d, d) }

// Merge appends another collection.
func (l *Latencies) Merge(o *Latencies) { l.d = append(l.d, o.d...) }

// Len is the number of latencies.
func (l *Latencies) Len() int { return len(l.d) }

// Millis returns the p-th percentile in milliseconds.
func (l *Latencies) Millis(p float64) float64 {
	ms := make([]float64, len(l.d))
	for i, d := range l.d {
		ms[i] = float64(d) / float64(time.Millisecond)
	}
	slices.Sort(ms)
	return Percentile(ms, p)
}
