package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// rawCodec sends and receives bytes as they are: a client that speaks garbage.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}
func (rawCodec) Name() string { return "proto" }

// A request whose bytes are not its protobuf message is the caller's mistake:
// InvalidArgument with a message saying so (it was Internal, which pages the
// operator), for unary calls and client streams alike, and the catalog is untouched.
func TestUndecodableRequestsAreInvalidArgument(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl, err := client.New(context.Background(), c.Endpoints()...)
	require.NoError(t, err)
	defer cl.Close()
	_, err = cl.CreateCollection(context.Background(), client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	before := c.WaitConverged()

	conn, err := grpc.NewClient(c.Endpoints()[c.Leader()], grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	garbage := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	for _, method := range []string{
		"/snapkeep.v1.Catalog/CreateCollection",
		"/snapkeep.v1.Catalog/FlushSegment",
		"/snapkeep.v1.Snapshots/CreateSnapshot",
		"/snapkeep.v1.Restores/RestoreSnapshot",
		"/snapkeep.v1.GC/GCRun",
		"/snapkeep.internal.v1.Internal/Propose",
	} {
		var out []byte
		callCtx := ctx
		if strings.HasPrefix(method, "/snapkeep.internal.") {
			// The node-to-node service authenticates first: a caller without the
			// cluster secret is Unauthenticated whatever it sends.
			callCtx = metadata.AppendToOutgoingContext(ctx, "snapkeep-internal-token", servertest.ClusterSecret)
		}
		err := conn.Invoke(callCtx, method, &garbage, &out)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", method, err)
		require.Contains(t, status.Convert(err).Message(), "could not be decoded", method)
	}

	// A client stream: the chunk is not a RestoreBackupChunk.
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, "/snapkeep.v1.Backup/RestoreBackup")
	require.NoError(t, err)
	require.NoError(t, stream.SendMsg(&garbage))
	require.NoError(t, stream.CloseSend())
	var out []byte
	err = stream.RecvMsg(&out)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	require.Equal(t, before, c.WaitConverged(), "nothing changed")
}
