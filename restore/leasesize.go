package restore

import (
	"math"
	"time"
)

// Lease sizing. Every lease costs two Raft entries (its grant and its report), a
// lease request and a report on the wire, and the executor's bookkeeping, whatever its
// size: the scheduler's CPU per file falls with the tasks per lease. But a lease is
// also the work lost when its executor is, the granularity of the job's progress,
// and, at a job's end, the work one executor may still hold while another has none.
// So the scheduler measures each executor's throughput (from its reports) and grants
// about leaseWork of it, and near the end of a job splits what is left (pooled and
// still held) in proportion to the executors' throughputs, so that they finish
// together.

const (
	// leaseWork is how much of its measured throughput an executor gets per lease.
	leaseWork = 2 * time.Second
	// initialLeaseTasks is the size of a lease to an executor whose throughput is not
	// known yet (none reported during this leader's term): the old fixed batch.
	initialLeaseTasks = 256
	// minLeaseTasks is the smallest lease sized by throughput (a slow executor, large
	// files), unless less is left: at least a default executor's concurrency.
	minLeaseTasks = DefaultConcurrency
	// rateWeight is the weight of a new measurement in an executor's throughput (an
	// exponentially weighted moving average over its measurement windows).
	rateWeight = 0.5
	// rateWindow is the longest an executor's throughput is measured over before a new
	// window starts: an executor busy for an hour that slows down (its S3 throttles
	// it) would otherwise keep the hour's average. Far longer than the tasks in flight
	// when a window starts take, whose counting is what a short window overstated.
	rateWindow = 10 * time.Second
)

// executorStats is what the scheduler knows of one executor.
type executorStats struct {
	asked    time.Time // its last lease request or report
	reported time.Time // its last report with outcomes
	rate     float64   // tasks per second, measured from its reports; 0: not yet

	// The current busy period: from the grant of the first lease it reported since it
	// last held none, to now. busyBase is the rate before the period.
	busySince time.Time
	busyDone  int
	busyBase  float64
}

// observeReport updates an executor's throughput with a report of n outcomes at now,
// for a lease granted at granted; stillHolds says whether it holds other leases.
//
// The throughput is measured over the executor's busy period — every task it
// reported since the grant that found it holding no lease — not over the time since
// its previous report: an executor holds the next lease while it finishes the last,
// so the next lease's first tasks are done before the last one's report, and
// counting them from that report overstated the throughput of the executor that got
// more work (measured 1,450 tasks/s against 1,050 over its busy period). The split of
// the next job followed the overstated rate, that executor finished last, alone on
// the machine and faster still: the error fed itself. A period's measurement is
// averaged with the rate before it (rateWeight); a long period is measured in windows
// of rateWindow, each averaged with the rate before it.
func (s *executorStats) observeReport(n int, granted, now time.Time, stillHolds bool) {
	if n <= 0 {
		if !stillHolds {
			s.busySince = time.Time{}
		}
		return
	}
	if s.busySince.IsZero() {
		// A lease granted by another leader has no known grant: the period starts at
		// the previous report, or, with none, at this one (it measures nothing yet).
		since := granted
		if since.IsZero() {
			since = s.reported
		}
		if since.IsZero() {
			since = now
		}
		s.busySince, s.busyDone, s.busyBase = since, 0, s.rate
	}
	s.reported = now
	s.busyDone += n
	if d := now.Sub(s.busySince); d > 0 {
		r := float64(s.busyDone) / d.Seconds()
		if s.busyBase == 0 {
			s.rate = r
		} else {
			s.rate = rateWeight*r + (1-rateWeight)*s.busyBase
		}
	}
	switch {
	case !stillHolds:
		s.busySince = time.Time{}
	case now.Sub(s.busySince) >= rateWindow:
		s.busySince, s.busyDone, s.busyBase = now, 0, s.rate
	}
}

// leaseSizing is what one grant's size is decided from.
type leaseSizing struct {
	maxTasks int // the most the request and the configuration allow (≥ 1)
	pooled   int // the job's tasks waiting for a lease
	// rate is the asking executor's throughput (tasks/s; 0: unknown). rates are those
	// of every executor the job's remaining work is spread over, the asking one
	// included (0: unknown).
	rate  float64
	rates []float64
	// held is what the asking executor holds of the job (tasks of its leases not yet
	// reported); heldAll what they all hold.
	held, heldAll int
}

// leaseSize is how many tasks to grant: about leaseWork of the executor's throughput
// (initialLeaseTasks while it is unknown), at most its share of the job's remaining
// work (pooled and held) less what it holds already, at most the pool and maxTasks.
// 0 means the executor holds its share already: it gets nothing now (the others take
// the rest, and ask as soon as their queues run low).
func leaseSize(s leaseSizing) int {
	if s.pooled <= 0 || s.maxTasks <= 0 {
		return 0
	}
	// Unknown throughputs count as the mean of the known ones; with none known, all
	// are equal.
	known, sum := 0, 0.0
	for _, r := range s.rates {
		if r > 0 {
			known++
			sum += r
		}
	}
	mean := 1.0
	if known > 0 {
		mean = sum / float64(known)
	}
	total := 0.0
	for _, r := range s.rates {
		if r <= 0 {
			r = mean
		}
		total += r
	}
	rate := s.rate
	if rate <= 0 || known == 0 {
		rate = mean
	}
	if total < rate {
		total = rate // the asking executor is always one of them
	}
	remaining := float64(s.pooled + s.heldAll)
	share := int(math.Ceil(remaining*rate/total)) - s.held
	if share <= 0 {
		return 0
	}
	want := initialLeaseTasks
	if s.rate > 0 {
		want = max(minLeaseTasks, int(s.rate*leaseWork.Seconds()))
	}
	return max(1, min(want, share, s.pooled, s.maxTasks))
}
