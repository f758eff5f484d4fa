package fsm

import (
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Verifications. The leader's scrubber checks committed snapshots against the bucket
// (their manifest, their data files) and records each result in the snapshot
// (SnapshotVerified): describe and list show it, and the tally counts the snapshots
// whose last verification found them broken, which health reports.

const (
	// MaxVerifyProblems is how many problems a verification keeps (it counts all).
	MaxVerifyProblems = 10
	// maxVerifyProblemBytes bounds one problem's text.
	maxVerifyProblemBytes = 1024
)

// VerifyBroken reports whether a verification outcome means a restore of the
// snapshot cannot be trusted: its manifest could not be repaired, or data is lost.
func VerifyBroken(o fsmpb.SnapshotVerifyOutcome) bool {
	return o == fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_DAMAGED ||
		o == fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_DATA_LOSS
}

func validateSnapshotVerified(cmd *fsmpb.SnapshotVerified) error {
	if _, ok := fsmpb.SnapshotVerifyOutcome_name[int32(cmd.Outcome)]; !ok || cmd.Outcome == fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_UNSPECIFIED {
		return invalidf("a verification needs an outcome (ok, repaired, damaged or data loss), not %d", cmd.Outcome)
	}
	if len(cmd.Problems) > MaxVerifyProblems {
		return invalidf("a verification keeps at most %d problems, not %d", MaxVerifyProblems, len(cmd.Problems))
	}
	if int(cmd.ProblemCount) < len(cmd.Problems) {
		return invalidf("a verification counts %d problems but lists %d", cmd.ProblemCount, len(cmd.Problems))
	}
	for _, p := range cmd.Problems {
		if len(p) > maxVerifyProblemBytes || !utf8.ValidString(p) {
			return invalidf("a verification's problem is at most %d bytes of UTF-8", maxVerifyProblemBytes)
		}
	}
	ok := cmd.Outcome == fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK
	if ok != (cmd.ProblemCount == 0) {
		return invalidf("a verification is ok exactly when it found no problem")
	}
	return nil
}

func applySnapshotVerified(c *applyCtx, cmd *fsmpb.SnapshotVerified) (proto.Message, error) {
	if err := validateSnapshotVerified(cmd); err != nil {
		return nil, err
	}
	s, err := c.snapshotByID(cmd.SnapshotId)
	if err != nil {
		return nil, err
	}
	if s.State != fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED {
		return nil, preconditionf("snapshot %q is %s; only a committed snapshot is verified", s.Name, snapshotStateName(s.State))
	}
	next := proto.CloneOf(s)
	v := &fsmpb.SnapshotVerification{VerifiedAt: c.now, Deep: cmd.Deep, Outcome: cmd.Outcome,
		Problems: cmd.Problems, ProblemCount: cmd.ProblemCount}
	if prev := s.Verification; prev != nil {
		v.DeepVerifiedAt, v.Repairs = prev.DeepVerifiedAt, prev.Repairs
	}
	if cmd.Deep {
		v.DeepVerifiedAt = c.now
	}
	if cmd.Outcome == fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_REPAIRED {
		v.Repairs++
	}
	next.Verification = v
	c.t.snapshots.put(next)
	return snapshotResponse(next), nil
}
