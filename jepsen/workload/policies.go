package workload

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// The policies workload: SetupPolicies creates PolicySpecs, which the leader runs by
// themselves every few seconds while the clients read them (policy-describe), list
// their snapshots (policy-snapshots), run them by hand now and then (policy-execute)
// and hold and release their snapshots (hold-add, hold-remove); StopPolicies disables
// them once the clients stopped.

// PolicySpec is a policy the workload creates: an interval schedule over its
// collections with a count-based retention.
type PolicySpec struct {
	Name        string
	Collections []string
	Interval    time.Duration
	Min, Max    uint32
}

// PolicySpecs are the workload's policies. They share collection pa1, so each one's
// retention must count its own snapshots there and leave the other's alone.
var PolicySpecs = []PolicySpec{
	{Name: "pol-a", Collections: []string{"pa0", "pa1"}, Interval: 2 * time.Second, Min: 3, Max: 6},
	{Name: "pol-b", Collections: []string{"pa1", "pb0"}, Interval: 3 * time.Second, Min: 2, Max: 4},
}

// PolicyRetentionEvery is how often the leader checks each policy's retention.
const PolicyRetentionEvery = time.Second

// holdReleaseAfter is how long a hold without until stays before a client removes
// it: long enough for retention to want the snapshot meanwhile.
const holdReleaseAfter = 4 * time.Second

// PolicyTemplate is a policy's snapshot name template: seconds, so two due times
// never render the same name.
func PolicyTemplate(policy string) string { return policy + "-{20060102-150405}" }

// SetupPolicies creates the policies' collections and the policies (existing ones
// are fine).
func SetupPolicies(ctx context.Context, cl *client.Client) error {
	for _, spec := range PolicySpecs {
		for _, c := range spec.Collections {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := cl.CreateCollection(cctx, client.NewCreateCollectionOption(c))
			cancel()
			if err != nil && !errors.Is(err, client.ErrAlreadyExists) {
				return fmt.Errorf("create collection %s: %w", c, err)
			}
		}
		opt := client.NewPolicyOption(spec.Name, PolicyTemplate(spec.Name)).WithCollections(spec.Collections...).
			WithInterval(spec.Interval).WithRetention(0, spec.Min, spec.Max).WithRetentionInterval(PolicyRetentionEvery).
			WithDescription("jepsen policies workload")
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := cl.CreatePolicy(cctx, opt)
		cancel()
		if err != nil {
			return fmt.Errorf("create policy %s: %w", spec.Name, err)
		}
	}
	return nil
}

// StopPolicies disables the policies once the clients stopped and waits until their
// retention has nothing left to do, so the end-of-run audits read a catalog that
// holds still: a run every few seconds would keep the applied index moving while the
// harness waits for every node to apply the same one, and a retention expiring a
// snapshot while the bucket audit reads it would take its manifest away. Retention
// goes on for a disabled policy; it is settled once none of the policy's snapshots
// is PENDING (committing adds to the count), no hold with an until still to come
// holds one (its expiry may free one), and the retention's preview deletes nothing.
func StopPolicies(ctx context.Context, cl *client.Client) error {
	for _, spec := range PolicySpecs {
		for {
			p, err := cl.DescribePolicy(ctx, spec.Name)
			if err == nil {
				_, err = cl.UpdatePolicy(ctx, client.PolicyOptionFrom(p).WithEnabled(false), p.GetRevision())
			}
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("disable policy %s: %w", spec.Name, err)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	for {
		busy, err := policiesBusy(ctx, cl)
		if err == nil && busy == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("policies' retention not settled: %w", err)
			}
			return fmt.Errorf("policies' retention not settled: %s", busy)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// policiesBusy says what the policies' retention may still do ("" when nothing).
func policiesBusy(ctx context.Context, cl *client.Client) (string, error) {
	for _, spec := range PolicySpecs {
		snaps, _, err := ListPolicySnapshots(ctx, cl, spec.Name, "")
		if err != nil {
			return "", err
		}
		now := time.Now().UnixMilli()
		for _, s := range snaps {
			if s.State == "PENDING" {
				return fmt.Sprintf("policy %s: snapshot %s/%s is PENDING", spec.Name, s.Collection, s.Name), nil
			}
			for _, h := range s.Holds {
				if h.UntilMs > now {
					return fmt.Sprintf("policy %s: snapshot %s/%s is held until %s", spec.Name, s.Collection, s.Name, time.UnixMilli(h.UntilMs).UTC().Format(time.RFC3339Nano)), nil
				}
			}
		}
		preview, err := cl.PreviewPolicyRetention(ctx, spec.Name)
		if err != nil {
			return "", err
		}
		for _, d := range preview.GetDecisions() {
			if d.GetDelete() {
				return fmt.Sprintf("policy %s: its retention expires %s/%s", spec.Name, d.GetCollection(), d.GetSnapshot()), nil
			}
		}
	}
	return "", nil
}

// HistoryPolicy is a policy as the history records it.
func HistoryPolicy(p *snapkeepv1.Policy) *history.Policy {
	st := p.GetStatus()
	return &history.Policy{
		ID: p.GetId(), Revision: p.GetRevision(), Enabled: p.GetEnabled(), Collections: p.GetCollections(),
		CreatedAtMs: p.GetCreatedAtUnixMs(), IntervalMs: p.GetIntervalMs(),
		MinCount: p.GetRetention().GetMinCount(), MaxCount: p.GetRetention().GetMaxCount(),
		Runs: st.GetRuns(), LastDueMs: st.GetLastDueUnixMs(), LastRunDueMs: st.GetLastRunDueUnixMs(), LastRunAtMs: st.GetLastRunAtUnixMs(),
		SnapshotsTaken: st.GetSnapshotsTaken(), SnapshotsFailed: st.GetSnapshotsFailed(), SnapshotsDeleted: st.GetSnapshotsDeleted(),
	}
}

// HistorySnapshot is a snapshot record as the history records it.
func HistorySnapshot(s *snapkeepv1.Snapshot) history.Snapshot {
	out := history.Snapshot{
		ID: s.GetId(), Collection: s.GetCollection(), Name: s.GetName(), State: state(s.GetState()),
		PolicyID: s.GetPolicyId(), DueMs: s.GetPolicyDueUnixMs(),
		CreatedAtMs: s.GetCreatedAtUnixMs(), CommittedAtMs: s.GetCommittedAtUnixMs(), DeletingAtMs: s.GetDeletingAtUnixMs(),
	}
	for _, h := range s.GetHolds() {
		out.Holds = append(out.Holds, history.Hold{ID: h.GetId(), UntilMs: h.GetUntilUnixMs(), AddedAtMs: h.GetAddedAtUnixMs(), Active: h.GetActive()})
	}
	return out
}

// ListPolicySnapshots is one page (at most 1,000) of a policy's snapshots in every
// state, as a linearizable read; more reports whether more pages follow.
func ListPolicySnapshots(ctx context.Context, cl *client.Client, policy, pageToken string) (snaps []history.Snapshot, next string, err error) {
	opt := client.NewListSnapshotsOption().WithLabel(fsm.PolicyLabel, policy).WithPageSize(1000)
	if pageToken != "" {
		opt = opt.WithPageToken(pageToken)
	}
	r, err := cl.ListSnapshots(ctx, opt)
	if err != nil {
		return nil, "", err
	}
	for _, s := range r.GetSnapshots() {
		snaps = append(snaps, HistorySnapshot(s))
	}
	return snaps, r.GetNextPageToken(), nil
}

// policyShared is what the clients know of the policies: each one's snapshots in
// its latest listing (for holds to take and release). Guarded by shared.mu.
type policyShared struct {
	latest map[string][]history.Snapshot
	holds  int
}

func (w *worker) pickPolicy() string { return PolicySpecs[w.rng.IntN(len(PolicySpecs))].Name }

func (w *worker) policyDescribe(ctx context.Context) bool {
	in := history.Input{Policy: w.pickPolicy()}
	w.call(ctx, history.PolicyDescribe, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		p, err := cl.DescribePolicy(ctx, in.Policy)
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{Policy: HistoryPolicy(p)}, nil
	})
	return true
}

func (w *worker) policySnapshots(ctx context.Context) bool {
	in := history.Input{Policy: w.pickPolicy()}
	out, res := w.call(ctx, history.PolicySnapshots, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		snaps, next, err := ListPolicySnapshots(ctx, cl, in.Policy, "")
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{Snapshots: snaps, Truncated: next != ""}, nil
	})
	if res == history.OK {
		w.sh.mu.Lock()
		if w.sh.pol.latest == nil {
			w.sh.pol.latest = map[string][]history.Snapshot{}
		}
		w.sh.pol.latest[in.Policy] = out.Snapshots
		w.sh.mu.Unlock()
	}
	return true
}

// policyExecute runs a policy by hand (a run on request: due time 0), now and then.
func (w *worker) policyExecute(ctx context.Context) bool {
	if w.rng.IntN(10) != 0 {
		return false // each run on request shortens the life of the scheduled ones
	}
	in := history.Input{Policy: w.pickPolicy()}
	w.call(ctx, history.PolicyExecute, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		r, err := cl.ExecutePolicy(ctx, in.Policy)
		if err != nil {
			return history.Output{}, err
		}
		var out history.Output
		for _, res := range r.GetResults() {
			if res.GetSnapshotId() != 0 {
				out.Snapshots = append(out.Snapshots, history.Snapshot{ID: res.GetSnapshotId(), Collection: res.GetCollection(), Name: res.GetSnapshotName()})
			}
		}
		return out, nil
	})
	return true
}

// holdAdd holds a committed snapshot of a policy, mostly the oldest unheld one of
// its collection (the one its retention expires next); half the holds until
// removed, half for 1–3 s (short: the end of the run waits for them to expire).
func (w *worker) holdAdd(ctx context.Context) bool {
	policy := w.pickPolicy()
	w.sh.mu.Lock()
	byColl := map[string][]history.Snapshot{}
	for _, s := range w.sh.pol.latest[policy] {
		if s.State == "COMMITTED" {
			byColl[s.Collection] = append(byColl[s.Collection], s)
		}
	}
	w.sh.pol.holds++
	reason := fmt.Sprintf("jepsen client %d hold %d", w.id, w.sh.pol.holds)
	w.sh.mu.Unlock()
	if len(byColl) == 0 {
		return false
	}
	colls := make([]string, 0, len(byColl))
	for c := range byColl {
		colls = append(colls, c)
	}
	slices.Sort(colls) // map order is random: the seed decides
	snaps := byColl[w.pick(colls)]
	slices.SortFunc(snaps, func(a, b history.Snapshot) int { return cmp.Compare(a.ID, b.ID) })
	target := snaps[w.rng.IntN(len(snaps))]
	if w.rng.IntN(3) > 0 {
		for _, s := range snaps {
			if !slices.ContainsFunc(s.Holds, func(h history.Hold) bool { return h.Active }) {
				target = s
				break
			}
		}
	}
	in := history.Input{Collection: target.Collection, Name: target.Name, Reason: reason}
	if w.rng.IntN(2) == 0 {
		in.UntilMs = time.Now().Add(time.Duration(1000+w.rng.IntN(2000)) * time.Millisecond).UnixMilli()
	}
	w.call(ctx, history.HoldAdd, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		opt := client.NewSnapshotHoldOption(in.Collection, in.Name, in.Reason)
		if in.UntilMs != 0 {
			opt = opt.WithUntil(time.UnixMilli(in.UntilMs))
		}
		r, err := cl.AddSnapshotHold(ctx, opt)
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{HoldID: r.GetHold().GetId(), Snapshots: []history.Snapshot{HistorySnapshot(r.GetSnapshot())}}, nil
	})
	return true
}

// holdRemove releases a hold without until that has stood for holdReleaseAfter; one
// time in five it tries a hold retained until a time still to come instead, which
// must be refused.
func (w *worker) holdRemove(ctx context.Context) bool {
	policy := w.pickPolicy()
	early := w.rng.IntN(5) == 0
	now := time.Now()
	type cand struct {
		s history.Snapshot
		h history.Hold
	}
	var cands []cand
	w.sh.mu.Lock()
	for _, s := range w.sh.pol.latest[policy] {
		for _, h := range s.Holds {
			switch {
			case !h.Active:
			case early && h.UntilMs > now.UnixMilli()+500:
				cands = append(cands, cand{s, h})
			case !early && h.UntilMs == 0 && h.AddedAtMs <= now.Add(-holdReleaseAfter).UnixMilli():
				cands = append(cands, cand{s, h})
			}
		}
	}
	w.sh.mu.Unlock()
	if len(cands) == 0 {
		return false
	}
	c := cands[w.rng.IntN(len(cands))]
	in := history.Input{Collection: c.s.Collection, Name: c.s.Name, HoldID: c.h.ID}
	w.call(ctx, history.HoldRemove, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		s, err := cl.RemoveSnapshotHold(ctx, "", in.Collection, in.Name, in.HoldID)
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{Snapshots: []history.Snapshot{HistorySnapshot(s)}}, nil
	})
	return true
}
