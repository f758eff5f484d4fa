package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

func TestSnapshotVerified(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	snap := h.snapshot("s")
	ok := &fsmpb.SnapshotVerified{SnapshotId: snap.Id, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK}
	h.fails(codePrecondition, ok) // pending
	h.ok(commitFor(snap), nil)

	for _, bad := range []*fsmpb.SnapshotVerified{
		{SnapshotId: snap.Id},
		{SnapshotId: snap.Id, Outcome: 9},
		{SnapshotId: snap.Id, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK, Problems: []string{"x"}, ProblemCount: 1},
		{SnapshotId: snap.Id, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_DATA_LOSS},
		{SnapshotId: snap.Id, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_DATA_LOSS, Problems: []string{"a", "b"}, ProblemCount: 1},
		{SnapshotId: snap.Id, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_DAMAGED, Problems: make([]string, MaxVerifyProblems+1), ProblemCount: 20},
	} {
		h.fails(codeInvalid, bad)
	}
	h.fails(codeNotFound, &fsmpb.SnapshotVerified{SnapshotId: 999, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK})

	h.ok(&fsmpb.SnapshotVerified{SnapshotId: snap.Id, Deep: true, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK}, nil)
	v := h.snapshotByID(snap.Id).Verification
	require.Equal(t, h.now, v.VerifiedAt)
	require.Equal(t, h.now, v.DeepVerifiedAt)
	deepAt := v.DeepVerifiedAt

	h.now += second
	h.ok(&fsmpb.SnapshotVerified{SnapshotId: snap.Id, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_REPAIRED,
		Problems: []string{"manifest-damaged snapshots/1.skm"}, ProblemCount: 1}, nil)
	v = h.snapshotByID(snap.Id).Verification
	require.Equal(t, deepAt, v.DeepVerifiedAt, "a shallow verification keeps the last deep one's time")
	require.EqualValues(t, 1, v.Repairs)
	require.Zero(t, h.f.View().Stats().SnapshotsBroken, "a repaired snapshot is not broken")

	h.ok(&fsmpb.SnapshotVerified{SnapshotId: snap.Id, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_DATA_LOSS,
		Problems: []string{"missing k"}, ProblemCount: 3}, nil)
	require.EqualValues(t, 1, h.f.View().Stats().SnapshotsBroken)
	require.EqualValues(t, 1, h.snapshotByID(snap.Id).Verification.Repairs)

	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id}, nil)
	require.Zero(t, h.f.View().Stats().SnapshotsBroken, "only committed snapshots count")
}
