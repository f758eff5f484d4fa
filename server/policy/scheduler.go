package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/duty"
)

// tick is how often the scheduler looks at the policies when nothing wakes it: the
// lateness of a run past its due time.
const tick = 250 * time.Millisecond

// Cluster is what the scheduler needs of its node.
type Cluster interface {
	// View is the node's current read view of the replicated state.
	View() *fsm.View
	// Propose applies a command through the log with a request id (a retried run
	// is answered with its first result).
	Propose(ctx context.Context, requestID string, cmd, resp proto.Message) error
	// SnapshotsTaken and SnapshotsDropped wake the duties that finish snapshots and
	// collect what dropped ones held.
	SnapshotsTaken()
	SnapshotsDropped()
}

// Config tunes a Scheduler.
type Config struct {
	// The limits every snapshot is taken with (the server's, as for CreateSnapshot).
	MaxPerCollection int
	PendingTimeout   time.Duration
	// Now is the cluster clock (time.Now when nil): tests run years on a fake one.
	Now    func() time.Time
	Logger *slog.Logger
	// Ran counts proposals by kind (run, retain, export, export-retain) and outcome
	// (ok, refused, error).
	Ran func(kind, outcome string)
	// ExportMaxAttempts is the attempts per file of a policy's exports (0: the
	// engine's default).
	ExportMaxAttempts int
	// Hooks stop the leader at chosen points of its work, for tests; nil in production.
	Hooks Hooks
}

// Hooks run on the leader at points of a run or a retention where a failover matters.
// A hook returning an error abandons that attempt: the next pass, on this leader or
// the next, computes it again from the replicated state. A hook must return when ctx
// is done.
type Hooks struct {
	// BeforeRun runs before a run is proposed.
	BeforeRun func(ctx context.Context, cmd *fsmpb.PolicyRun) error
	// AfterRun runs once the run's proposal returned (err is its outcome), before the
	// leader acts on the result: stopping the leader here loses the response of an
	// entry that may have committed.
	AfterRun func(ctx context.Context, cmd *fsmpb.PolicyRun, err error) error
	// BeforeRetain runs before PolicyRetain is proposed, once the plan from the view
	// expires something.
	BeforeRetain func(ctx context.Context, policy string) error
}

// Scheduler runs the policies while its node leads. Its methods are safe for
// concurrent use.
type Scheduler struct {
	cluster Cluster
	repos   Repositories // nil: policies do not export (tests)
	cfg     Config
	kick    duty.Kicker

	mu       sync.Mutex
	compiled map[uint64]compiled  // by policy id
	retained map[uint64]time.Time // when retention last ran, by policy id (this term)
	exp      exportState
}

type compiled struct {
	revision uint64
	sched    *Schedule
	err      error
	// The next due time after base, computed once per base.
	base, next time.Time
}

// New returns a scheduler for cluster; repos (nil: none) serves the policies'
// exports.
func New(cluster Cluster, repos Repositories, cfg Config) *Scheduler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Ran == nil {
		cfg.Ran = func(string, string) {}
	}
	return &Scheduler{cluster: cluster, repos: repos, cfg: cfg, kick: duty.NewKicker(), compiled: map[uint64]compiled{},
		retained: map[uint64]time.Time{}, exp: newExportState()}
}

// Kick wakes the scheduler now (a policy was created or changed).
func (s *Scheduler) Kick() { s.kick.Kick() }

// Loop is the scheduler's duty for one term as leader.
func (s *Scheduler) Loop() duty.Loop {
	return duty.Loop{Name: "policies", Every: tick, Kick: s.kick, Pass: s.Pass,
		Finally: func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			clear(s.retained) // a new term checks every retention at once
		}}
}

// Pass runs what is due: each enabled policy's latest due time not yet run, and each
// retention whose interval has passed and that has something to expire.
func (s *Scheduler) Pass(ctx context.Context) {
	view := s.cluster.View()
	now := s.cfg.Now()
	for _, p := range view.Policies() {
		if ctx.Err() != nil {
			return
		}
		s.runDue(ctx, p, now)
		s.retain(ctx, p, now)
	}
}

// schedule compiles p's schedule once per revision, and returns it with the next due
// time after base (computed once per base: passes run every tick).
func (s *Scheduler) schedule(p *fsmpb.Policy) (*Schedule, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.compiled[p.Id]
	if !ok || c.revision != p.Revision {
		c = compiled{revision: p.Revision}
		c.sched, c.err = Compile(p)
		if c.err != nil {
			s.cfg.Logger.Error("policy schedule does not compile on this node; it will not run while this node leads",
				"policy", p.Name, "err", c.err)
		}
	}
	if c.err == nil && !c.base.Equal(base(p)) {
		c.base = base(p)
		c.next = c.sched.Next(c.base)
	}
	s.compiled[p.Id] = c
	return c.sched, c.next, c.err
}

// Due is the due time p should run for at now, if any, and its snapshot name. An
// error with a due time means the run cannot be taken (the name does not render);
// an error without one, that the schedule does not compile on this node.
func (s *Scheduler) Due(p *fsmpb.Policy, now time.Time) (time.Time, string, bool, error) {
	if !p.Enabled {
		return time.Time{}, "", false, nil
	}
	sched, next, err := s.schedule(p)
	if err != nil {
		return time.Time{}, "", false, err
	}
	if next.IsZero() || next.After(now) {
		return time.Time{}, "", false, nil
	}
	due, ok := sched.Latest(base(p), now)
	if !ok {
		return time.Time{}, "", false, nil
	}
	name, err := sched.SnapshotName(p, due)
	return due, name, true, err
}

// failEvery bounds how often a policy whose schedule does not compile on this leader
// is recorded as failed.
const failEvery = time.Minute

func (s *Scheduler) runDue(ctx context.Context, p *fsmpb.Policy, now time.Time) {
	due, name, ok, err := s.Due(p, now)
	cmd := &fsmpb.PolicyRun{
		Policy: p.Name, Revision: p.Revision, Due: due.UnixNano(), SnapshotName: name,
		MaxPerCollection: uint32(s.cfg.MaxPerCollection), PendingTimeout: int64(s.cfg.PendingTimeout),
	}
	switch {
	case err != nil && !ok:
		// No due time can be computed here: record a failed run now and then (the
		// status shows it), rather than a policy that silently does not run.
		if now.UnixNano()-p.LastDue < int64(failEvery) || now.UnixNano() <= p.ScheduleFrom {
			return
		}
		cmd.Due, cmd.SnapshotName, cmd.LeaderError = now.UnixNano(), "", err.Error()
	case err != nil:
		cmd.SnapshotName, cmd.LeaderError = "", err.Error()
	case !ok:
		return
	}
	if h := s.cfg.Hooks.BeforeRun; h != nil {
		if err := h(ctx, cmd); err != nil {
			return
		}
	}
	var resp fsmpb.PolicyRunResponse
	err = s.cluster.Propose(ctx, RunRequestID(p.Id, cmd.Due), cmd, &resp)
	if h := s.cfg.Hooks.AfterRun; h != nil {
		if err := h(ctx, cmd, err); err != nil {
			return
		}
	}
	switch {
	case errors.Is(err, fsm.ErrFailedPrecondition), errors.Is(err, fsm.ErrNotFound):
		// Run already (by an earlier leader), changed or deleted meanwhile: the next
		// pass sees the state that refused it.
		s.cfg.Ran("run", "refused")
		s.cfg.Logger.Debug("policy run refused", "policy", p.Name, "due", time.Unix(0, cmd.Due), "err", err)
		return
	case err != nil:
		s.cfg.Ran("run", "error")
		if ctx.Err() == nil {
			s.cfg.Logger.Warn("policy run not proposed; will retry", "policy", p.Name, "due", time.Unix(0, cmd.Due), "err", err)
		}
		return
	}
	s.cfg.Ran("run", "ok")
	if cmd.LeaderError != "" {
		s.cfg.Logger.Error("policy run could not be taken; recorded as failed", "policy", p.Name, "due", time.Unix(0, cmd.Due), "err", cmd.LeaderError)
		return
	}
	s.cluster.SnapshotsTaken()
	if bugDoubleRun {
		s.runAgain(ctx, p, cmd)
	}
	taken, failed := 0, []string{}
	for _, r := range resp.Results {
		if r.Error != "" {
			failed = append(failed, fmt.Sprintf("%s: %s", r.Collection, r.Error))
		} else {
			taken++
		}
	}
	if len(failed) > 0 || taken == 0 {
		s.cfg.Logger.Warn("policy run", "policy", p.Name, "due", due, "snapshot", name, "taken", taken, "failed", failed)
	} else {
		s.cfg.Logger.Info("policy run", "policy", p.Name, "due", due, "snapshot", name, "taken", taken)
	}
}

// runAgain is the policy-double-run bug (bug_jepsenbug.go): the run of cmd once
// more, under another request id and a name rendered a second after its due time.
func (s *Scheduler) runAgain(ctx context.Context, p *fsmpb.Policy, cmd *fsmpb.PolicyRun) {
	sched, _, err := s.schedule(p)
	if err != nil {
		return
	}
	name, err := sched.SnapshotName(p, time.Unix(0, cmd.Due))
	if err != nil {
		return
	}
	// Twice more, under names no other run takes: the first run's own name may have
	// been taken by a run on request in the same second, which fails that run.
	for _, suffix := range []string{"-again1", "-again2"} {
		again := proto.CloneOf(cmd)
		again.SnapshotName = name + suffix
		var resp fsmpb.PolicyRunResponse
		err = s.cluster.Propose(ctx, RunRequestID(p.Id, cmd.Due)+suffix, again, &resp)
		s.cfg.Logger.Warn("policy-double-run bug: ran a due time again", "policy", p.Name, "due", time.Unix(0, cmd.Due), "err", err)
	}
}

// RunRequestID is the request id of a policy's run for a due time: a proposal
// retried after a timeout or by the next leader is answered with the first result.
func RunRequestID(policyID uint64, due int64) string {
	return "policy-run-" + strconv.FormatUint(policyID, 10) + "-" + strconv.FormatInt(due, 10)
}

// retain proposes PolicyRetain when p's retention interval has passed since this
// term last checked and its plan, computed from the current view, expires something.
// PolicyRetain recomputes the plan at its own entry: a restore that began meanwhile
// keeps its snapshot.
func (s *Scheduler) retain(ctx context.Context, p *fsmpb.Policy, now time.Time) {
	if !fsm.HasRetention(p.Retention) {
		return
	}
	s.mu.Lock()
	last, ok := s.retained[p.Id]
	s.mu.Unlock()
	if ok && now.Sub(last) < fsm.RetentionEvery(p.Retention) {
		return
	}
	expire := 0
	for _, d := range s.cluster.View().RetentionPlan(p, now.UnixNano()) {
		if d.Delete {
			expire++
		}
	}
	if expire > 0 {
		if h := s.cfg.Hooks.BeforeRetain; h != nil {
			if err := h(ctx, p.Name); err != nil {
				return
			}
		}
		var resp fsmpb.PolicyRetainResponse
		if err := s.cluster.Propose(ctx, "", &fsmpb.PolicyRetain{Policy: p.Name}, &resp); err != nil {
			s.cfg.Ran("retain", "error")
			if ctx.Err() == nil {
				s.cfg.Logger.Warn("policy retention not proposed; will retry", "policy", p.Name, "err", err)
			}
			return
		}
		s.cfg.Ran("retain", "ok")
		if len(resp.Deleted) > 0 {
			s.cluster.SnapshotsDropped()
			s.cfg.Logger.Info("policy retention expired snapshots", "policy", p.Name, "snapshots", resp.Deleted)
		}
	}
	s.mu.Lock()
	s.retained[p.Id] = now
	s.mu.Unlock()
}
