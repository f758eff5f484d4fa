package jepsen

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/jepsen/workload"
	snapkeepv1 "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// resolveSettle is how long after an operation's deadline the resolver waits before it
// looks the operation up: by then nothing on any node can still propose its write (a
// server's work on a call ends with the call's deadline, which gRPC carries to it), so
// the leader's barrier settles it for good.
const resolveSettle = 2 * time.Second

// lookupBatch is how many request ids one LookupRequests call asks about.
const lookupBatch = 1000

// resolver decides the operations recorded as Unknown from the cluster's deduplication
// window (LookupRequests), so that a history of any length stays decidable: a write
// the window holds was applied — as a refusal (Fail) or not (it stays Unknown, its
// output unknown, marked applied); a write it does not hold was never applied (Fail),
// provided the window still holds everything applied since the write was called. That
// is judged from the rounds: a round's answer arrives after its barrier, so a write
// called after round r's answer, if ever applied, has a seq above r's last seq; when
// the window's oldest seq is at most one above it, the window has forgotten nothing the
// write could be. Rounds run during the run (so the window never forgets an operation
// between two of them) and once at the end.
type resolver struct {
	h      *history.History
	lookup func(ctx context.Context, ids []string) (*snapkeepv1.LookupRequestsResponse, error)
	// settle is the time after an operation's call when it may be looked up: its
	// deadline (every operation of workload.WritesWithRequestID runs under
	// workload.OpTimeout) plus resolveSettle.
	settle time.Duration
	rounds []resolverRound // oldest first; round 0 is the run's start (seq 0)
	stats  resolveStats
}

// resolverRound is a lookup round's answer: when it arrived (history time) and the
// newest seq the window held.
type resolverRound struct {
	at      int64
	lastSeq uint64
}

// resolveStats counts the decisions.
type resolveStats struct {
	notApplied, refused, applied, undecidable int
	rounds, failedRounds                      int
	acknowledgedFound                         int // the self-check's
}

func (s resolveStats) String() string {
	return fmt.Sprintf("%d not applied, %d refused, %d applied (output unknown), %d undecidable; %d lookup rounds (%d failed); self-check: %d acknowledged writes found",
		s.notApplied, s.refused, s.applied, s.undecidable, s.rounds, s.failedRounds, s.acknowledgedFound)
}

// selfCheck looks up the last acknowledged writes: each that changed the state must be
// in the window, or the ids the history records are not the ones the cluster saw, and
// "not found" would prove nothing.
func (r *resolver) selfCheck(ctx context.Context) error {
	var acked []history.Op
	for _, op := range r.h.AcknowledgedWrites(100) {
		if proposed(op) {
			acked = append(acked, op)
		}
	}
	if len(acked) == 0 {
		return nil
	}
	ids := make([]string, len(acked))
	for i, op := range acked {
		ids[i] = op.RequestID
	}
	resp, err := r.lookup(ctx, ids)
	if err != nil {
		return err
	}
	if len(resp.GetOutcomes()) != len(ids) {
		return fmt.Errorf("lookup of %d request ids answered %d", len(ids), len(resp.GetOutcomes()))
	}
	for i, o := range resp.GetOutcomes() {
		if !o.GetFound() {
			return fmt.Errorf("acknowledged write %d (%s, request id %q) is not in the deduplication window (seqs %d..%d): the request ids recorded are not the ones the cluster saw",
				acked[i].ID, acked[i].Kind, ids[i], resp.GetOldestSeq(), resp.GetLastSeq())
		}
	}
	r.stats.acknowledgedFound = len(acked)
	return nil
}

func newResolver(h *history.History, lookup func(context.Context, []string) (*snapkeepv1.LookupRequestsResponse, error)) *resolver {
	return &resolver{h: h, lookup: lookup, rounds: []resolverRound{{at: 0, lastSeq: 0}},
		settle: workload.OpTimeout + resolveSettle}
}

// round looks up every unresolved Unknown write that has settled and resolves what it
// can. An error leaves them for the next round.
func (r *resolver) round(ctx context.Context) error {
	now := r.h.Now()
	var ops []history.Op
	for _, op := range r.h.UnresolvedWrites() {
		if op.Call+int64(r.settle) <= now {
			ops = append(ops, op)
		}
	}
	r.stats.rounds++
	// Look the operations up in batches (a round without any still asks, to move the
	// anchor forward); each batch is judged by the window its own barrier left.
	for start := 0; start == 0 || start < len(ops); start += lookupBatch {
		batch := ops[start:min(start+lookupBatch, len(ops))]
		ids := make([]string, 0, len(batch)+1)
		for _, op := range batch {
			ids = append(ids, op.RequestID)
		}
		if len(ids) == 0 {
			ids = append(ids, "jepsen-anchor") // never a write's id: only the window's seqs matter
		}
		resp, err := r.lookup(ctx, ids)
		if err != nil {
			r.stats.failedRounds++
			return err
		}
		arrived := r.h.Now()
		if len(resp.GetOutcomes()) != len(ids) {
			return fmt.Errorf("lookup of %d request ids answered %d", len(ids), len(resp.GetOutcomes()))
		}
		for i, op := range batch {
			r.decide(op, resp.GetOutcomes()[i], resp.GetOldestSeq())
		}
		r.rounds = append(r.rounds, resolverRound{at: arrived, lastSeq: resp.GetLastSeq()})
	}
	return nil
}

// decide resolves one operation from its outcome and the window's oldest seq.
func (r *resolver) decide(op history.Op, o *snapkeepv1.RequestOutcome, oldest uint64) {
	switch {
	case o.GetFound() && codes.Code(o.GetCode()) == codes.OK:
		r.stats.applied++
		r.h.Resolve(op.ID, history.Applied, fmt.Sprintf("%s, seq %d", o.GetCommand(), o.GetSeq()))
	case o.GetFound():
		r.stats.refused++
		r.h.Resolve(op.ID, history.Refused, fmt.Sprintf("%s: %s", codes.Code(o.GetCode()), o.GetMessage()))
	case oldest == 0 || oldest <= r.anchor(op.Call)+1:
		r.stats.notApplied++
		r.h.Resolve(op.ID, history.NotApplied, "")
	default:
		r.stats.undecidable++
		r.h.Resolve(op.ID, history.Undecidable, fmt.Sprintf("the window starts at seq %d, after %d", oldest, r.anchor(op.Call)))
	}
}

// anchor is the last seq of the latest round whose answer arrived before call: a write
// called then, if applied, has a higher seq.
func (r *resolver) anchor(call int64) uint64 {
	var seq uint64
	for _, rd := range r.rounds {
		if rd.at >= call {
			break
		}
		seq = rd.lastSeq
	}
	return seq
}

// run resolves in rounds every interval until ctx ends.
func (r *resolver) run(ctx context.Context, interval time.Duration, timeout time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		_ = r.round(rctx) // the faults may leave no leader: the next round tries again
		cancel()
	}
}

// proposed says whether an acknowledged write went through Raft with its request id.
// Every operation of workload.WritesWithRequestID does, but a drop of a snapshot that
// does not exist, which the server answers from a read (Existed false), and a restore
// from a repository that listed no snapshot, which sends no write (no job).
func proposed(op history.Op) bool {
	switch op.Kind {
	case history.SnapshotDrop:
		return op.Output.Existed
	case history.RepoRestoreStart:
		return op.Output.JobID != 0
	}
	return true
}

// resolveEvery is the interval of the lookup rounds during a run: far shorter than it
// takes the workloads to fill the deduplication window (20,000 writes).
const resolveEvery = 15 * time.Second

// resolveAtEnd runs rounds until every Unknown write is decided, within wait.
func resolveAtEnd(ctx context.Context, r *resolver, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		err := r.round(ctx)
		left := len(r.h.UnresolvedWrites())
		if err == nil && left == 0 {
			return r.selfCheck(ctx)
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return err
			}
			return fmt.Errorf("%d unknown writes still undecided after %v", left, wait)
		case <-time.After(time.Second):
		}
	}
}
