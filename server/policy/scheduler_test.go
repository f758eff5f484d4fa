package policy

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// simCluster is the real FSM behind a fake clock: entries are stamped with the
// clock as a leader stamps them, and applied at once. The finisher and the GC are
// simulated by finish: pending snapshots commit, deleting ones are removed.
type simCluster struct {
	t     testing.TB
	f     *fsm.FSM
	index uint64
	now   time.Time
	runs  map[string][]int64 // successful scheduled runs' due times, by policy
}

func newSim(t testing.TB, start time.Time) *simCluster {
	return &simCluster{t: t, f: fsm.New(nil), now: start, runs: map[string][]int64{}}
}

func (c *simCluster) View() *fsm.View   { return c.f.View() }
func (c *simCluster) SnapshotsTaken()   {}
func (c *simCluster) SnapshotsDropped() {}

func (c *simCluster) Propose(_ context.Context, requestID string, cmd, resp proto.Message) error {
	data, err := fsm.EncodeCommand(requestID, c.now.UnixNano(), cmd)
	require.NoError(c.t, err)
	c.index++
	res := c.f.Apply(&raft.Log{Index: c.index, Term: 1, Type: raft.LogCommand, Data: data}).(*fsm.ApplyResult)
	if err := res.Err(); err != nil {
		return err
	}
	if resp != nil {
		require.NoError(c.t, proto.Unmarshal(res.Result.Response, resp))
	}
	if run, ok := cmd.(*fsmpb.PolicyRun); ok && run.Due != 0 {
		c.runs[run.Policy] = append(c.runs[run.Policy], run.Due)
	}
	return nil
}

func (c *simCluster) must(cmd, resp proto.Message) {
	c.t.Helper()
	require.NoError(c.t, c.Propose(context.Background(), "", cmd, resp))
}

// finish commits pending snapshots and removes deleting ones.
func (c *simCluster) finish() {
	for _, s := range c.View().UnfinishedSnapshots() {
		switch s.State {
		case fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING:
			c.must(&fsmpb.SnapshotCommit{SnapshotId: s.Id, ManifestSize: 1, ManifestChecksum: 1,
				Summary: &fsmpb.SnapshotSummary{Segments: uint64(len(s.SegmentIds)), IndexBuilds: uint64(len(s.BuildIds))}}, nil)
		case fsmpb.SnapshotState_SNAPSHOT_STATE_DELETING:
			c.must(&fsmpb.SnapshotRemove{SnapshotId: s.Id}, nil)
		}
	}
}

func (c *simCluster) committed(p *fsmpb.Policy) []*fsmpb.Snapshot { return committedIn(c.View(), p) }

func committedIn(v *fsm.View, p *fsmpb.Policy) []*fsmpb.Snapshot {
	var out []*fsmpb.Snapshot
	v.EachPolicySnapshot(p.Id, func(s *fsmpb.Snapshot) bool {
		if s.State == fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED {
			out = append(out, s)
		}
		return true
	})
	return out
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A year of a daily and an hourly policy in Europe/Berlin through the real FSM and
// scheduler, on a fake clock: every due time runs exactly once (daylight-saving days
// included), retention keeps the minimum and never drops a held snapshot.
func TestSimulatedYear(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, berlin)
	end := start.AddDate(1, 0, 0)
	c := newSim(t, start.Add(-time.Minute)) // created just before the year begins
	c.must(&fsmpb.CreateCollection{Name: "docs"}, nil)

	daily := &fsmpb.Policy{Name: "daily", Collections: []string{"docs"}, Enabled: true,
		Schedule:     &fsmpb.PolicySchedule{Cron: "30 2 * * *", TimeZone: "Europe/Berlin"},
		NameTemplate: "daily-{2006-01-02}",
		Retention:    &fsmpb.PolicyRetention{ExpireAfter: int64(30 * 24 * time.Hour), MinCount: 7, Interval: int64(time.Hour)}}
	// Clocks going back repeat 02:00: the zone's abbreviation keeps the names apart.
	hourly := &fsmpb.Policy{Name: "hourly", CollectionGlob: "*", Enabled: true,
		Schedule:     &fsmpb.PolicySchedule{Cron: "0 * * * *", TimeZone: "Europe/Berlin"},
		NameTemplate: "hourly-{2006-01-02-15MST}",
		Retention:    &fsmpb.PolicyRetention{MaxCount: 48, MinCount: 24, Interval: int64(20 * time.Minute)}}
	for _, p := range []*fsmpb.Policy{daily, hourly} {
		var resp fsmpb.PolicyResponse
		c.must(&fsmpb.PolicyPut{Policy: p, Create: true}, &resp)
		p.Id = resp.Policy.Id
	}
	s := New(c, nil, Config{MaxPerCollection: 100000, PendingTimeout: time.Hour, Now: func() time.Time { return c.now }, Logger: quietLogger()})

	held := map[uint64]int64{} // snapshot id → until (0: until removed)
	step := 0
	for c.now = start; c.now.Before(end); c.now = c.now.Add(10 * time.Minute) {
		step++
		s.Pass(context.Background())
		c.finish()
		now := c.now.UnixNano()
		v := c.View()
		dailies := committedIn(v, daily)
		// Hold every 50th daily snapshot for 60 days, and the first one for good.
		if n := len(c.runs["daily"]); n%50 == 1 && len(dailies) > 0 {
			last := dailies[len(dailies)-1]
			if _, ok := held[last.Id]; !ok && last.PolicyDue == c.runs["daily"][n-1] {
				until := now + int64(60*24*time.Hour)
				if n == 1 {
					until = 0
				}
				c.must(&fsmpb.SnapshotHoldAdd{SnapshotId: last.Id, Reason: "audit", Until: until}, nil)
				held[last.Id] = until
			}
		}
		// Invariants at every step.
		require.GreaterOrEqual(t, len(dailies), min(7, len(c.runs["daily"])), "daily minimum at %v", c.now)
		require.GreaterOrEqual(t, len(committedIn(v, hourly)), min(24, len(c.runs["hourly"])), "hourly minimum at %v", c.now)
		for id, until := range held {
			if until == 0 || until > now {
				snap, err := v.Snapshot(id)
				require.NoError(t, err, "held snapshot %d removed at %v", id, c.now)
				require.Equal(t, fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED, snap.State)
			}
		}
	}

	// Every due time exactly once: 365 days, and 8,760 hours (a 23-hour day in
	// March, a 25-hour one in October).
	require.Equal(t, 365, len(c.runs["daily"]))
	require.Equal(t, 365*24, len(c.runs["hourly"]))
	ref, err := Compile(hourly)
	require.NoError(t, err)
	want := dues(t, ref, start.Add(-time.Nanosecond), end.Add(-time.Nanosecond))
	require.Equal(t, 365*24, len(want))
	for i, d := range c.runs["hourly"] {
		require.Equal(t, want[i].UnixNano(), d, "hourly run %d", i)
	}
	spring := time.Date(2026, 3, 29, 3, 0, 0, 0, berlin).UnixNano() // 02:30 skipped: at the change
	require.Contains(t, c.runs["daily"], spring)
	fall := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC).UnixNano() // 02:30 CEST, once
	require.Contains(t, c.runs["daily"], fall)
	require.NotContains(t, c.runs["daily"], fall+int64(time.Hour))

	// Counts in the status, and what retention left.
	v := c.View()
	dp, err := v.Policy("daily")
	require.NoError(t, err)
	hp, err := v.Policy("hourly")
	require.NoError(t, err)
	require.EqualValues(t, 365, dp.Status.SnapshotsTaken)
	require.EqualValues(t, 365*24, hp.Status.SnapshotsTaken)
	require.Zero(t, dp.Status.SnapshotsFailed+hp.Status.SnapshotsFailed, "%s %s", dp.Status.LastFailure, hp.Status.LastFailure)
	require.Equal(t, 48, len(c.committed(hourly)))
	require.EqualValues(t, 365*24-48, hp.Status.SnapshotsDeleted)
	kept := c.committed(daily)
	var young, oldHeld int
	for _, snap := range kept {
		switch {
		case c.now.UnixNano()-snap.CreatedAt < int64(30*24*time.Hour):
			young++
		case fsm.ActiveHold(snap, c.now.UnixNano()) != nil:
			oldHeld++
		default:
			t.Fatalf("daily snapshot %q is past expire-after and not held, yet kept", snap.Name)
		}
	}
	require.Equal(t, 30, young, "the last 30 days' dailies")
	require.Equal(t, 1, oldHeld, "the first one, held for good (the 60-day holds of the year ran out or are in the window)")
	require.EqualValues(t, 365, int(dp.Status.SnapshotsDeleted)+len(kept))
}

// A schedule this leader cannot compute (its tzdata lacks the zone) is not a policy
// that silently stops: each minute a failed run is recorded with the reason.
func TestUncompilableScheduleIsRecordedAsFailed(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	c := newSim(t, start)
	c.must(&fsmpb.CreateCollection{Name: "docs"}, nil)
	c.must(&fsmpb.PolicyPut{Create: true, Policy: &fsmpb.Policy{Name: "mars", CollectionGlob: "*", Enabled: true,
		Schedule: &fsmpb.PolicySchedule{Cron: "@hourly", TimeZone: "Mars/Olympus"}, NameTemplate: "m-{150405}"}}, nil)
	s := New(c, nil, Config{MaxPerCollection: 10, PendingTimeout: time.Hour, Now: func() time.Time { return c.now }, Logger: quietLogger()})
	for i := 0; i < 150; i++ { // two and a half minutes, a pass a second
		c.now = c.now.Add(time.Second)
		s.Pass(context.Background())
	}
	p, err := c.View().Policy("mars")
	require.NoError(t, err)
	require.EqualValues(t, 3, p.Status.SnapshotsFailed, "at once, then once a minute: at 1 s, 61 s and 121 s")
	require.Contains(t, p.Status.LastFailure, "Mars/Olympus")
	require.Zero(t, p.Status.SnapshotsTaken)
}
