package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

func TestLookupRequestsSaysWhatBecameOfWrites(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(client.WithRequestID(ctx, "test-create"), client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	seg, err := cl.AllocateSegment(client.WithRequestID(ctx, "test-allocate"), client.NewAllocateSegmentOption("docs"))
	require.NoError(t, err)
	// The same id again is answered from the window: the same segment, nothing applied.
	again, err := cl.AllocateSegment(client.WithRequestID(ctx, "test-allocate"), client.NewAllocateSegmentOption("docs"))
	require.NoError(t, err)
	require.Equal(t, seg.GetId(), again.GetId())

	resp, err := cl.LookupRequests(ctx, client.NewLookupRequestsOption("test-allocate", "never-sent", "test-create"))
	require.NoError(t, err)
	require.Len(t, resp.GetOutcomes(), 3)
	alloc, never, create := resp.GetOutcomes()[0], resp.GetOutcomes()[1], resp.GetOutcomes()[2]
	require.True(t, alloc.GetFound())
	require.Equal(t, "AllocateSegment", alloc.GetCommand())
	require.Zero(t, alloc.GetCode())
	require.Equal(t, "never-sent", never.GetRequestId())
	require.False(t, never.GetFound())
	require.True(t, create.GetFound())
	require.Equal(t, "CreateCollection", create.GetCommand())
	require.Less(t, create.GetSeq(), alloc.GetSeq(), "seqs are in the order the writes were applied")
	require.LessOrEqual(t, resp.GetOldestSeq(), create.GetSeq())
	require.GreaterOrEqual(t, resp.GetLastSeq(), alloc.GetSeq())

	for _, tc := range []struct {
		name string
		ids  []string
		want string
	}{
		{"none", nil, "at least one request id"},
		{"too many", make([]string, server.MaxLookupRequests+1), "at most 1000 request ids"},
		{"empty", []string{"a", ""}, "request id 2 of the list is empty"},
		{"too long", []string{strings.Repeat("x", 129)}, "request id is 129 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.LookupRequests(ctx, client.NewLookupRequestsOption(tc.ids...))
			require.Equal(t, codes.InvalidArgument, status.Code(err), err)
			require.Contains(t, status.Convert(err).Message(), tc.want)
		})
	}
}
