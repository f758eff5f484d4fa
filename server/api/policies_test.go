package api

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// hourlyPolicy serves the policies of backend b, on a clock reading *now, with a
// collection "docs" and a policy "hourly" snapshotting it, named by the hour.
func hourlyPolicy(t *testing.T, b Backend, now *time.Time) *policiesService {
	t.Helper()
	s := New(b, Config{Root: "root", DefaultLease: time.Minute, SnapshotsPerCollection: 10, SnapshotPendingTimeout: time.Minute,
		Now: func() time.Time { return *now }}, nil)
	cat, pols := &catalogService{services: s.services}, &policiesService{services: s.services}
	ctx := context.Background()
	_, err := cat.CreateCollection(ctx, &pb.CreateCollectionRequest{Name: "docs"})
	require.NoError(t, err)
	_, err = pols.CreatePolicy(ctx, &pb.CreatePolicyRequest{Policy: &pb.Policy{Name: "hourly", Collections: []string{"docs"},
		Cron: "0 * * * *", NameTemplate: "hourly-{2006.01.02-15}"}})
	require.NoError(t, err)
	return pols
}

// A run on request takes the template's name at the call's time with "-manual"
// (numbered when the policy has it already), so it neither takes the name of the
// scheduled run of that time nor fails on it; a retried request is answered with its
// first result even after the rendered name changed.
func TestExecutePolicyNames(t *testing.T) {
	now := time.Date(2026, time.December, 5, 10, 0, 0, 0, time.UTC)
	pols := hourlyPolicy(t, newFakeBackend(), &now)
	ctx := context.Background()

	run := func(requestID string) *pb.PolicyRunResult {
		t.Helper()
		resp, err := pols.ExecutePolicy(ctx, &pb.ExecutePolicyRequest{Name: "hourly", RequestId: requestID})
		require.NoError(t, err)
		require.Len(t, resp.Results, 1)
		require.Empty(t, resp.Results[0].Error)
		return resp.Results[0]
	}
	first := run("r1")
	require.Equal(t, "hourly-2026.12.05-10-manual", first.SnapshotName)
	second := run("r2")
	require.Equal(t, "hourly-2026.12.05-10-manual-2", second.SnapshotName)

	now = now.Add(time.Hour) // the retry renders another name: the first result still stands
	again := run("r1")
	require.Equal(t, first.SnapshotId, again.SnapshotId)
	require.Equal(t, first.SnapshotName, again.SnapshotName)
	require.Equal(t, "hourly-2026.12.05-11-manual", run("r3").SnapshotName)

	// The id of another policy's run is refused, not answered with that run.
	_, err := pols.CreatePolicy(ctx, &pb.CreatePolicyRequest{Policy: &pb.Policy{Name: "daily", Collections: []string{"docs"},
		Cron: "0 0 * * *", NameTemplate: "daily-{2006.01.02}"}})
	require.NoError(t, err)
	_, err = pols.ExecutePolicy(ctx, &pb.ExecutePolicyRequest{Name: "daily", RequestId: "r1"})
	require.Equal(t, codes.InvalidArgument, status.Code(Status(err, "root")), "%v", err)
	require.Contains(t, err.Error(), "already used")
}

// racingBackend runs before once, just before the next proposal: what another call
// does between this one's look at the window and its proposal.
type racingBackend struct {
	*fakeBackend
	before func()
}

func (b *racingBackend) Propose(ctx context.Context, requestID string, cmd, resp proto.Message) error {
	if f := b.before; f != nil {
		b.before = nil
		f()
	}
	return b.fakeBackend.Propose(ctx, requestID, cmd, resp)
}

// A retried run on request that raced its first call — neither applied when both
// looked in the deduplication window, and the clock crossed the template's hour in
// between — is answered with the first call's result, not refused as another request
// under the same id.
func TestExecutePolicyRetryRacingItsFirstCall(t *testing.T) {
	now := time.Date(2026, time.December, 5, 10, 59, 59, 0, time.UTC)
	b := &racingBackend{fakeBackend: newFakeBackend()}
	pols := hourlyPolicy(t, b, &now)
	ctx := context.Background()
	var err error

	var first *pb.ExecutePolicyResponse
	b.before = func() { // the retry rendered its name at 11:00; the first call, of 10:59, applies now
		at := now
		now = now.Add(-time.Second)
		first, err = pols.ExecutePolicy(ctx, &pb.ExecutePolicyRequest{Name: "hourly", RequestId: "r1"})
		require.NoError(t, err)
		now = at
	}
	now = now.Add(time.Second)
	retry, err := pols.ExecutePolicy(ctx, &pb.ExecutePolicyRequest{Name: "hourly", RequestId: "r1"})
	require.NoError(t, err)
	require.NotNil(t, first)
	require.Equal(t, "hourly-2026.12.05-10-manual", first.Results[0].SnapshotName)
	require.True(t, proto.Equal(first, retry), "first %v\nretry %v", first, retry)

}
