package stats

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{5, 1, 3, 2, 4})
	if s.Median != 3 || s.Min != 1 || s.Max != 5 || s.N != 5 {
		t.Fatalf("got %+v", s)
	}
	if got := s.Spread(); got != 4.0/3 {
		t.Fatalf("spread %v", got)
	}
	if s.Values[0] != 5 {
		t.Fatal("values reordered")
	}
	if e := Summarize(nil); e.N != 0 || e.Median != 0 {
		t.Fatalf("empty: %+v", e)
	}
}

func TestPercentile(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(i + 1)
	}
	for _, c := range []struct{ p, want float64 }{{50, 50}, {99, 99}, {100, 100}, {0, 1}, {1, 1}} {
		if got := Percentile(v, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	var l Latencies
	for i := 1; i <= 100; i++ {
		l.Add(time.Duration(i) * time.Millisecond)
	}
	if l.Millis(99) != 99 || l.Len() != 100 {
		t.Fatalf("p99 %v", l.Millis(99))
	}
}
