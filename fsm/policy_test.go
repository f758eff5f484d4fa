package fsm

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

func testPolicy(name string) *fsmpb.Policy {
	return &fsmpb.Policy{
		Name: name, CollectionGlob: "*", Enabled: true,
		Schedule:     &fsmpb.PolicySchedule{Interval: 3600 * second},
		NameTemplate: "hourly-{2006.01.02-15.04.05}",
		Retention:    &fsmpb.PolicyRetention{MaxCount: 3, MinCount: 1},
	}
}

func (h *harness) policy(name string) *fsmpb.Policy {
	h.t.Helper()
	p, err := h.f.View().Policy(name)
	require.NoError(h.t, err)
	return p
}

// run applies a scheduled run of policy name at due and returns its response.
func (h *harness) run(name string, due int64) *fsmpb.PolicyRunResponse {
	h.t.Helper()
	p := h.policy(name)
	var resp fsmpb.PolicyRunResponse
	h.ok(&fsmpb.PolicyRun{Policy: name, Revision: p.Revision, Due: due,
		SnapshotName: "s-" + time.Unix(0, due).UTC().Format("20060102-150405"), MaxPerCollection: 100, PendingTimeout: 600 * second}, &resp)
	return &resp
}

func TestPolicyValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(p *fsmpb.Policy)
		want string
	}{
		{"no collections", func(p *fsmpb.Policy) { p.CollectionGlob = "" }, "which collections"},
		{"names and glob", func(p *fsmpb.Policy) { p.Collections = []string{"a"} }, "not both"},
		{"bad glob", func(p *fsmpb.Policy) { p.CollectionGlob = "[a" }, "malformed"},
		{"no schedule", func(p *fsmpb.Policy) { p.Schedule = nil }, "schedule is required"},
		{"cron and interval", func(p *fsmpb.Policy) { p.Schedule.Cron = "0 2 * * *" }, "not both"},
		{"bad cron", func(p *fsmpb.Policy) { p.Schedule = &fsmpb.PolicySchedule{Cron: "61 * * * *"} }, "cron"},
		{"six fields", func(p *fsmpb.Policy) { p.Schedule = &fsmpb.PolicySchedule{Cron: "0 0 2 * * *"} }, "five fields"},
		{"zone in cron", func(p *fsmpb.Policy) { p.Schedule = &fsmpb.PolicySchedule{Cron: "TZ=UTC 0 2 * * *"} }, "time zone"},
		{"every", func(p *fsmpb.Policy) { p.Schedule = &fsmpb.PolicySchedule{Cron: "@every 1h"} }, "interval schedule"},
		{"short interval", func(p *fsmpb.Policy) { p.Schedule.Interval = second / 2 }, "1s"},
		{"zone with interval", func(p *fsmpb.Policy) { p.Schedule.TimeZone = "Europe/Berlin" }, "no time zone"},
		{"no time in template", func(p *fsmpb.Policy) { p.NameTemplate = "nightly" }, "no time in braces"},
		{"unclosed template", func(p *fsmpb.Policy) { p.NameTemplate = "n-{2006" }, "without its '}'"},
		{"bad rendered name", func(p *fsmpb.Policy) { p.NameTemplate = "n {2006}" }, "not a valid snapshot name"},
		{"space on single-digit days", func(p *fsmpb.Policy) { p.NameTemplate = "n-{_2}" }, "not a valid snapshot name"},
		{"reserved label", func(p *fsmpb.Policy) { p.Labels = map[string]string{PolicyLabel: "x"} }, "set by snapkeep"},
		{"min over max", func(p *fsmpb.Policy) { p.Retention = &fsmpb.PolicyRetention{MinCount: 5, MaxCount: 2} }, "must not exceed"},
		{"negative age", func(p *fsmpb.Policy) { p.Retention = &fsmpb.PolicyRetention{ExpireAfter: -1} }, "expire-after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy("p")
			tc.edit(p)
			err := ValidatePolicy(p)
			require.ErrorIs(t, err, ErrInvalidArgument)
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.NoError(t, ValidatePolicy(testPolicy("p")))
	p := testPolicy("p")
	p.Schedule = &fsmpb.PolicySchedule{Cron: "@daily", TimeZone: "Europe/Berlin"}
	require.NoError(t, ValidatePolicy(p))
}

func TestRenderSnapshotName(t *testing.T) {
	at := time.Date(2026, 3, 29, 2, 30, 0, 0, time.UTC)
	name, err := RenderSnapshotName("nightly-{2006.01.02-15.04}", at)
	require.NoError(t, err)
	require.Equal(t, "nightly-2026.03.29-02.30", name)
	name, err = RenderSnapshotName("x{2006}_{01}", at)
	require.NoError(t, err)
	require.Equal(t, "x2026_03", name)
	_, err = RenderSnapshotName("a}{", at)
	require.ErrorContains(t, err, "without its '{'")
	_, err = RenderSnapshotName("a-{}", at)
	require.ErrorContains(t, err, "empty {}")
}

func TestPolicyPutUpdateDelete(t *testing.T) {
	h := newHarness(t)
	var resp fsmpb.PolicyResponse
	h.ok(&fsmpb.PolicyPut{Policy: testPolicy("hourly"), Create: true}, &resp)
	p := resp.Policy
	require.NotZero(t, p.Id)
	require.EqualValues(t, 1, p.Revision)
	require.Equal(t, h.now, p.ScheduleFrom)

	h.ok(&fsmpb.PolicyPut{Policy: testPolicy("hourly"), Create: true}, &resp)
	require.True(t, resp.Existed, "the same create again is answered with the policy")
	other := testPolicy("hourly")
	other.Description = "else"
	h.fails(codeExists, &fsmpb.PolicyPut{Policy: other, Create: true})
	h.fails(codeNotFound, &fsmpb.PolicyPut{Policy: testPolicy("nope"), Revision: 1})
	bad := testPolicy("indb")
	bad.Database = "missing"
	h.fails(codeNotFound, &fsmpb.PolicyPut{Policy: bad, Create: true})

	// An update needs the current revision; a new schedule counts from now.
	h.now += 10 * second
	h.fails(codePrecondition, &fsmpb.PolicyPut{Policy: other, Revision: 7})
	h.ok(&fsmpb.PolicyPut{Policy: other, Revision: 1}, &resp)
	require.EqualValues(t, 2, resp.Policy.Revision)
	require.Equal(t, p.ScheduleFrom, resp.Policy.ScheduleFrom, "a description change keeps the schedule")
	require.Equal(t, p.Id, resp.Policy.Id)
	other.Schedule = &fsmpb.PolicySchedule{Interval: 60 * second}
	h.ok(&fsmpb.PolicyPut{Policy: other, Revision: 2}, &resp)
	require.Equal(t, h.now, resp.Policy.ScheduleFrom)

	h.ok(&fsmpb.PolicyDelete{Name: "hourly"}, &resp)
	require.True(t, resp.Existed)
	h.ok(&fsmpb.PolicyDelete{Name: "hourly"}, &resp)
	require.False(t, resp.Existed)
}

func TestPolicyRunIsOncePerDueTime(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.CreateCollection{Name: "logs"}, nil)
	h.flushedSegment("docs", 2)
	var put fsmpb.PolicyResponse
	pol := testPolicy("hourly")
	pol.Labels = map[string]string{"tier": "gold"}
	h.ok(&fsmpb.PolicyPut{Policy: pol, Create: true}, &put)
	start := h.now

	h.now = start + 3600*second
	due := h.now
	resp := h.run("hourly", due)
	require.Len(t, resp.Results, 2)
	for _, r := range resp.Results {
		require.Empty(t, r.Error)
		s, err := h.f.View().Snapshot(r.SnapshotId)
		require.NoError(t, err)
		require.Equal(t, put.Policy.Id, s.PolicyId)
		require.Equal(t, due, s.PolicyDue)
		require.Equal(t, map[string]string{"tier": "gold", PolicyLabel: "hourly"}, s.Labels)
	}
	require.Equal(t, due, resp.Policy.LastDue)

	// The same due time again, an earlier one, a future one, an old revision: refused.
	p := h.policy("hourly")
	cmd := &fsmpb.PolicyRun{Policy: "hourly", Revision: p.Revision, Due: due, SnapshotName: "again", MaxPerCollection: 100, PendingTimeout: 600 * second}
	require.Contains(t, h.fails(codePrecondition, cmd), "already ran")
	cmd.Due = due - second
	h.fails(codePrecondition, cmd)
	cmd.Due = h.now + second
	require.Contains(t, h.fails(codePrecondition, cmd), "future")
	cmd.Due, cmd.Revision = h.now, p.Revision+1
	h.now += second
	cmd.Due = h.now
	require.Contains(t, h.fails(codePrecondition, cmd), "revision")

	// A run on request (due 0) leaves the schedule alone.
	cmd.Revision, cmd.Due, cmd.SnapshotName = p.Revision, 0, "manual"
	var manual fsmpb.PolicyRunResponse
	h.ok(cmd, &manual)
	require.Equal(t, due, manual.Policy.LastDue)
	require.EqualValues(t, 2, manual.Policy.Status.Runs)

	// A name already taken fails that collection, and the due time is still used up.
	h.ok(&fsmpb.SnapshotBegin{Collection: "logs", Name: "taken", MaxPerCollection: 10, PendingTimeout: 600 * second}, nil)
	h.now += 3600 * second
	cmd.Due, cmd.SnapshotName = h.now, "taken"
	var clash fsmpb.PolicyRunResponse
	h.ok(cmd, &clash)
	require.Equal(t, h.now, clash.Policy.LastDue)
	require.Len(t, clash.Results, 2)
	require.Empty(t, clash.Results[0].Error)
	require.Contains(t, clash.Results[1].Error, "already exists")
	require.EqualValues(t, 1, clash.Policy.Status.SnapshotsFailed)
	require.Contains(t, clash.Policy.Status.LastFailure, "logs")

	// Disabled: scheduled runs refused.
	off := proto.CloneOf(pol)
	off.Enabled = false
	h.ok(&fsmpb.PolicyPut{Policy: off, Revision: h.policy("hourly").Revision}, nil)
	h.now += 3600 * second
	require.Contains(t, h.fails(codePrecondition, &fsmpb.PolicyRun{Policy: "hourly", Revision: h.policy("hourly").Revision, Due: h.now,
		SnapshotName: "x", MaxPerCollection: 100, PendingTimeout: 600 * second}), "disabled")
	// The label a policy sets cannot be set by hand.
	h.fails(codeInvalid, &fsmpb.SnapshotBegin{Collection: "docs", Name: "fake", Labels: map[string]string{PolicyLabel: "hourly"}, MaxPerCollection: 10, PendingTimeout: 600 * second})
}

func TestPolicyStatusCountsCommitsAndFailures(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.PolicyPut{Policy: testPolicy("hourly"), Create: true}, nil)
	h.now += 3600 * second
	a := h.run("hourly", h.now).Results[0].SnapshotId
	h.now += 3600 * second
	b := h.run("hourly", h.now).Results[0].SnapshotId
	sa, _ := h.f.View().Snapshot(a)
	h.ok(commitFor(sa), nil)
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: b, Reason: "gave up: manifest upload failed"}, nil)
	st := h.policy("hourly").Status
	require.EqualValues(t, 1, st.SnapshotsTaken)
	require.EqualValues(t, 1, st.SnapshotsFailed)
	require.Contains(t, st.LastFailure, "manifest upload failed")
	require.Contains(t, st.LastSuccess, sa.Name)
}

// Retention: max-count and expire-after select the oldest; the minimum, holds and a
// job reading a snapshot keep it; the preview is exactly what PolicyRetain does.
func TestPolicyRetention(t *testing.T) {
	h, _ := restoreFixture(t) // collection docs with snapshot "s" (not a policy's)
	pol := testPolicy("hourly")
	pol.Collections, pol.CollectionGlob = []string{"docs"}, ""
	pol.Retention = &fsmpb.PolicyRetention{MaxCount: 3, MinCount: 2, ExpireAfter: 5 * 3600 * second}
	h.ok(&fsmpb.PolicyPut{Policy: pol, Create: true}, nil)
	var ids []uint64
	for i := 0; i < 6; i++ {
		h.now += 3600 * second
		id := h.run("hourly", h.now).Results[0].SnapshotId
		s, err := h.f.View().Snapshot(id)
		require.NoError(t, err)
		h.ok(commitFor(s), nil)
		ids = append(ids, id)
	}
	// Hold the oldest; restore the second oldest.
	var held fsmpb.SnapshotResponse
	h.ok(&fsmpb.SnapshotHoldAdd{SnapshotId: ids[0], Reason: "legal"}, &held)
	second1, _ := h.f.View().Snapshot(ids[1])
	h.ok(&fsmpb.RestoreBegin{Collection: "docs", Snapshot: second1.Name, TargetCollection: "copy", MaxAttempts: 3}, nil)

	plan := h.f.View().RetentionPlan(h.policy("hourly"), h.now)
	var want []uint64
	for _, d := range plan {
		if d.Delete {
			want = append(want, d.Snapshot.Id)
		}
	}
	require.Equal(t, []uint64{ids[2]}, want, "0 held, 1 restoring, 2 expired, 3-5 are the newest three")
	require.Contains(t, plan[0].Reason, "held")
	require.Contains(t, plan[1].Reason, "reads it")
	var resp fsmpb.PolicyRetainResponse
	h.ok(&fsmpb.PolicyRetain{Policy: "hourly"}, &resp)
	require.Equal(t, want, resp.Deleted)
	require.EqualValues(t, 1, resp.Policy.Status.SnapshotsDeleted)
	s2, _ := h.f.View().Snapshot(ids[2])
	require.Equal(t, fsmpb.SnapshotState_SNAPSHOT_STATE_DELETING, s2.State)
	require.Contains(t, s2.DeleteReason, "retention of policy")

	// Much later everything has expired: the minimum (2) is kept, held ones count.
	h.now += 100 * 3600 * second
	h.ok(&fsmpb.PolicyRetain{Policy: "hourly"}, &resp)
	var left []uint64
	h.f.View().EachPolicySnapshot(h.policy("hourly").Id, func(s *fsmpb.Snapshot) bool {
		if s.State == fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED {
			left = append(left, s.Id)
		}
		return true
	})
	require.Equal(t, []uint64{ids[0], ids[1]}, left, "held, restoring: two left, the minimum")
	require.NoError(t, h.f.View().CheckDerived())

	// A raft snapshot carries the policies and the policy index.
	snapshot, err := h.f.Snapshot()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, snapshot.Persist(&memorySink{Buffer: &buf}))
	g := New(nil)
	require.NoError(t, g.Restore(nopCloser{bytes.NewReader(buf.Bytes())}))
	require.Equal(t, h.f.Hash(), g.Hash())
	require.NoError(t, g.View().CheckDerived())
	gp, err := g.View().Policy("hourly")
	require.NoError(t, err)
	require.True(t, proto.Equal(h.policy("hourly"), gp))
}

func TestSnapshotHolds(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	snap := h.snapshot("s")
	h.fails(codePrecondition, &fsmpb.SnapshotHoldAdd{SnapshotId: snap.Id, Reason: "x"}) // pending
	h.ok(commitFor(snap), nil)
	h.fails(codeInvalid, &fsmpb.SnapshotHoldAdd{SnapshotId: snap.Id})
	h.fails(codeInvalid, &fsmpb.SnapshotHoldAdd{SnapshotId: snap.Id, Reason: "past", Until: h.now - second})

	var resp fsmpb.SnapshotResponse
	h.ok(&fsmpb.SnapshotHoldAdd{SnapshotId: snap.Id, Reason: "audit 2026"}, &resp)
	plain := resp.Snapshot.Holds[0]
	h.ok(&fsmpb.SnapshotHoldAdd{SnapshotId: snap.Id, Reason: "SEC 17a-4", Until: h.now + 3600*second}, &resp)
	compliance := resp.Snapshot.Holds[1]

	msg := h.fails(codePrecondition, &fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id})
	require.Contains(t, msg, "held until")
	require.Contains(t, msg, "admins included")
	h.ok(&fsmpb.SnapshotHoldRemove{SnapshotId: snap.Id, HoldId: plain.Id}, nil)
	msg = h.fails(codePrecondition, &fsmpb.SnapshotHoldRemove{SnapshotId: snap.Id, HoldId: compliance.Id})
	require.Contains(t, msg, "retained until")
	h.fails(codeNotFound, &fsmpb.SnapshotHoldRemove{SnapshotId: snap.Id, HoldId: 12345})

	// Past its until the hold holds nothing; it can then be removed.
	h.now += 3601 * second
	require.Nil(t, ActiveHold(h.snapshotByID(snap.Id), h.now))
	h.ok(&fsmpb.SnapshotHoldRemove{SnapshotId: snap.Id, HoldId: compliance.Id}, nil)
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id}, nil)
}

func (h *harness) snapshotByID(id uint64) *fsmpb.Snapshot {
	h.t.Helper()
	s, err := h.f.View().Snapshot(id)
	require.NoError(h.t, err)
	return s
}

func TestPolicyRunLimitsAndLeaderErrors(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < MaxPolicyCollections+2; i++ {
		h.ok(&fsmpb.CreateCollection{Name: fmt.Sprintf("c%04d", i)}, nil)
	}
	h.ok(&fsmpb.PolicyPut{Policy: testPolicy("all"), Create: true}, nil)
	h.now += 3600 * second
	resp := h.run("all", h.now)
	taken, failed := 0, 0
	for _, r := range resp.Results {
		if r.Error == "" {
			taken++
		} else {
			failed++
			require.Contains(t, r.Error, "2 more collections match")
		}
	}
	require.Equal(t, MaxPolicyCollections, taken)
	require.Equal(t, 1, failed)

	// A run the leader could not take uses the due time up and says why.
	h.now += 3600 * second
	p := h.policy("all")
	var out fsmpb.PolicyRunResponse
	h.ok(&fsmpb.PolicyRun{Policy: "all", Revision: p.Revision, Due: h.now, LeaderError: `time zone "Mars/Olympus": unknown`}, &out)
	require.Equal(t, h.now, out.Policy.LastDue)
	require.Contains(t, out.Policy.Status.LastFailure, "Mars/Olympus")
	require.Equal(t, p.Status.SnapshotsFailed+1, out.Policy.Status.SnapshotsFailed)
	h.fails(codeInvalid, &fsmpb.PolicyRun{Policy: "all", Revision: p.Revision, LeaderError: "x"})
}
