package restore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLeaseSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    leaseSizing
		want int
	}{
		{"no throughput known yet: the initial size",
			leaseSizing{maxTasks: 1024, pooled: 10000, rates: []float64{0, 0}}, initialLeaseTasks},
		{"no throughput known yet, a small pool: split over the executors",
			leaseSizing{maxTasks: 1024, pooled: 100, rates: []float64{0, 0}}, 50},
		{"leaseWork of the measured throughput",
			leaseSizing{maxTasks: 1024, pooled: 10000, rate: 300, rates: []float64{300, 300}}, 600},
		{"a fast executor: at most maxTasks",
			leaseSizing{maxTasks: 1024, pooled: 10000, rate: 2000, rates: []float64{2000, 2000}}, 1024},
		{"a slow executor: at least minLeaseTasks",
			leaseSizing{maxTasks: 1024, pooled: 10000, rate: 0.5, rates: []float64{0.5, 0.5}}, minLeaseTasks},
		// Counted as 300 of 900 tasks/s, it gets a third of the pool.
		{"an executor whose throughput is unknown counts as the mean of the others",
			leaseSizing{maxTasks: 1024, pooled: 500, rate: 0, rates: []float64{0, 400, 200}}, 167},
		// 900 left, held 0 and 300: A's share of (900+300) at 3:1 is 900.
		{"the tail splits by throughput: the faster executor",
			leaseSizing{maxTasks: 1024, pooled: 900, rate: 600, rates: []float64{600, 200}, held: 0, heldAll: 300}, 900},
		// B's share is 300, which it holds.
		{"the tail splits by throughput: the slower one holds its share",
			leaseSizing{maxTasks: 1024, pooled: 900, rate: 200, rates: []float64{600, 200}, held: 300, heldAll: 300}, 0},
		{"the tail: what the others hold counts",
			leaseSizing{maxTasks: 1024, pooled: 100, rate: 500, rates: []float64{500, 500}, held: 0, heldAll: 500}, 100},
		{"the tail: never more than the pool",
			leaseSizing{maxTasks: 1024, pooled: 3, rate: 500, rates: []float64{500, 500}}, 2},
		{"the last task",
			leaseSizing{maxTasks: 1024, pooled: 1, rate: 500, rates: []float64{500, 500}}, 1},
		{"an empty pool", leaseSizing{maxTasks: 1024, pooled: 0, rate: 500, rates: []float64{500}}, 0},
		{"alone: the asking executor is always counted",
			leaseSizing{maxTasks: 64, pooled: 1000, rate: 500}, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, leaseSize(tc.s))
		})
	}
}

// Two executors draining a pool with the sizes leaseSize gives, each asking as soon as
// it holds nothing: they finish within a lease's worth of each other, in about
// leaseWork-sized leases, however unequal their throughputs.
func TestLeaseSizeFinishesExecutorsTogether(t *testing.T) {
	for _, rates := range [][2]float64{{500, 500}, {900, 300}, {100, 1000}} {
		pooled := 20000
		held := [2]int{}
		busyUntil := [2]float64{} // simulated seconds
		leases := 0
		for pooled > 0 {
			// The executor that runs out of work first asks.
			i := 0
			if busyUntil[1] < busyUntil[0] {
				i = 1
			}
			held[i] = 0 // it reported everything it held
			n := leaseSize(leaseSizing{maxTasks: 1024, pooled: pooled, rate: rates[i], rates: rates[:],
				held: held[i], heldAll: held[0] + held[1]})
			require.Positive(t, n, "an executor with nothing left gets work while the pool has some")
			pooled -= n
			held[i] = n
			busyUntil[i] += float64(n) / rates[i]
			leases++
		}
		gap := busyUntil[0] - busyUntil[1]
		if gap < 0 {
			gap = -gap
		}
		require.Less(t, gap, leaseWork.Seconds(), "rates %v: finished %.2f s apart", rates, gap)
		require.Less(t, leases, 40, "rates %v: %d leases for 20,000 tasks", rates, leases)
	}
}

func TestExecutorThroughputFromReports(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	var s executorStats
	// The first lease: reported 2 s after its grant (its copies and its queueing),
	// holding no other.
	s.observeReport(1000, start, start.Add(2*time.Second), false)
	require.InDelta(t, 500, s.rate, 0.01)
	// A new busy period of pipelined leases: the second was granted 1 s after the
	// first and is done 1 s after the first's report. Its tasks began before that
	// report: the period measures 2,000 tasks in 3 s, not 1,000 in the last 1 s.
	p := start.Add(time.Minute)
	s.observeReport(1000, p, p.Add(2*time.Second), true)
	require.InDelta(t, 500, s.rate, 0.01) // 1000/2 s, averaged with 500
	s.observeReport(1000, p.Add(time.Second), p.Add(3*time.Second), false)
	require.InDelta(t, 583.33, s.rate, 0.01) // 2000/3 s, averaged with 500
	// Idle for a minute, then a new job's lease: measured from its grant, not from the
	// report before the idle minute.
	later := p.Add(time.Minute)
	s.observeReport(500, later, later.Add(time.Second), false)
	require.InDelta(t, 541.67, s.rate, 0.01) // 500/s, averaged with 583.33
	// Empty reports (a lease ended by a cancel) measure nothing.
	s.observeReport(0, later, later.Add(10*time.Second), false)
	require.InDelta(t, 541.67, s.rate, 0.01)
	// A long busy period is measured in windows of rateWindow: an executor that slows
	// down to 100 tasks/s after a minute at 1,000 is at 100 + 900/2^k after k windows
	// (156 after four), where one average over the whole period would still say ~640.
	var long executorStats
	t0 := later.Add(time.Hour)
	for i := 1; i <= 60; i++ { // a report of 1,000 tasks every second, always holding the next lease
		long.observeReport(1000, t0, t0.Add(time.Duration(i)*time.Second), true)
	}
	require.InDelta(t, 1000, long.rate, 1)
	slow := t0.Add(60 * time.Second)
	for i := 1; i <= 40; i++ { // then 100 tasks a second
		long.observeReport(100, t0, slow.Add(time.Duration(i)*time.Second), true)
	}
	require.InDelta(t, 156.25, long.rate, 1, "the rate after 40 s at 100 tasks/s")
	// A lease granted by another leader (unknown grant time) and no report before.
	var fresh executorStats
	fresh.observeReport(100, time.Time{}, later, false)
	require.Zero(t, fresh.rate)
	fresh.observeReport(100, time.Time{}, later.Add(time.Second), false)
	require.InDelta(t, 100, fresh.rate, 0.01)
}
