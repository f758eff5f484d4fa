package gc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/objstore"
)

// ErrNoStore is returned when a collection was asked for on a node without object
// storage.
var ErrNoStore = errors.New("garbage collection needs object storage")

// Schedule is the leader duty that collects on a schedule: every Interval a run of the
// records-based kind, every OrphanInterval one with the orphan scan, and a cheap run
// at once when kicked (a dropped snapshot's manifest can go). Run serves on-demand
// collections; one run at a time either way. Its methods are safe for concurrent use.
type Schedule struct {
	cluster Cluster
	store   func() (objstore.Store, error)
	cfg     Config
	sched   ScheduleConfig

	kick   duty.Kicker
	kicked atomic.Bool

	running    sync.Mutex // one collection at a time
	mu         sync.Mutex
	nextRun    time.Time
	lastOrphan time.Time
}

// ScheduleConfig says when collections run and who hears about them.
type ScheduleConfig struct {
	Interval, OrphanInterval time.Duration
	// Ran, when set, is told of every run (metrics).
	Ran func(opts Options, start time.Time, res *Result, err error)
}

// NewSchedule returns the schedule of cluster's collections; the first periodic run
// is an Interval from now.
func NewSchedule(cluster Cluster, store func() (objstore.Store, error), cfg Config, sched ScheduleConfig) *Schedule {
	s := &Schedule{cluster: cluster, store: store, cfg: cfg, sched: sched, kick: duty.NewKicker()}
	s.setNext(time.Now().Add(sched.Interval))
	return s
}

// Kick asks for a cheap collection (no orphan scan) now.
func (s *Schedule) Kick() {
	s.kicked.Store(true)
	s.kick.Kick()
}

// Next is when the next periodic collection runs and whether it scans for orphans.
func (s *Schedule) Next() (at time.Time, orphanScan bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextRun, s.nextRun.Sub(s.lastOrphan) >= s.sched.OrphanInterval
}

// Loop is the duty for one term as leader.
func (s *Schedule) Loop() duty.Loop {
	return duty.Loop{Name: "gc", Every: min(s.sched.Interval, time.Second), Kick: s.kick, Pass: s.pass}
}

func (s *Schedule) pass(ctx context.Context) {
	kicked := s.kicked.Swap(false)
	s.mu.Lock()
	due := !time.Now().Before(s.nextRun)
	orphans := time.Since(s.lastOrphan) >= s.sched.OrphanInterval
	s.mu.Unlock()
	if !due && !kicked {
		return
	}
	if due {
		// Whatever this run does, the next one is an interval away (a panic included:
		// the duty's backoff then applies).
		defer s.setNext(time.Now().Add(s.sched.Interval))
	}
	if _, err := s.Run(ctx, Options{OrphanScan: orphans && due, SkipQuietReport: true}); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("garbage collection failed; will retry", "err", err)
	}
}

// Run runs one collection now, after any run in progress.
func (s *Schedule) Run(ctx context.Context, opts Options) (*Result, error) {
	store, err := s.store()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoStore, err)
	}
	s.running.Lock()
	defer s.running.Unlock()
	start := time.Now()
	res, err := Run(ctx, s.cluster, store, s.cfg, opts)
	if s.sched.Ran != nil {
		s.sched.Ran(opts, start, res, err)
	}
	if err != nil {
		return nil, err
	}
	if opts.OrphanScan && !opts.DryRun {
		s.mu.Lock()
		s.lastOrphan = start
		s.mu.Unlock()
	}
	rep := res.Report
	if rep.ObjectsDeleted > 0 || rep.RecordsRemoved > 0 || rep.ErrorCount > 0 || opts.DryRun {
		s.cfg.Logger.Info("garbage collected", "dry_run", opts.DryRun, "orphan_scan", opts.OrphanScan, "objects", rep.ObjectsDeleted,
			"bytes", rep.BytesFreed, "records", rep.RecordsRemoved, "errors", rep.ErrorCount, "took", time.Since(start))
	}
	return res, nil
}

func (s *Schedule) setNext(at time.Time) {
	s.mu.Lock()
	s.nextRun = at
	s.mu.Unlock()
}
