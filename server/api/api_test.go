package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/fsck"
)

// fakeBackend applies commands straight to an in-memory FSM: no Raft, no network.
// That the services run on it is the point: they need nothing else of a node.
type fakeBackend struct {
	f *fsm.FSM

	mu    sync.Mutex
	index uint64
	kicks []string
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{f: fsm.New(slog.New(slog.DiscardHandler))}
}

func (b *fakeBackend) Propose(_ context.Context, requestID string, cmd, resp proto.Message) error {
	data, err := fsm.EncodeCommand(requestID, time.Now().UnixNano(), cmd)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.index++
	res := b.f.Apply(&raft.Log{Index: b.index, Term: 1, Type: raft.LogCommand, Data: data}).(*fsm.ApplyResult)
	b.mu.Unlock()
	if err := fsm.ResultError(res.Result); err != nil {
		return err
	}
	if resp != nil {
		return proto.Unmarshal(res.Result.Response, resp)
	}
	return nil
}

func (b *fakeBackend) ReadView(context.Context, pb.ReadConsistency) (*fsm.View, error) {
	return b.f.View(), nil
}
func (b *fakeBackend) View() *fsm.View { return b.f.View() }
func (b *fakeBackend) Changed() <-chan struct{} {
	_, ch := b.f.AppliedCh()
	return ch
}
func (b *fakeBackend) Stopping() <-chan struct{} { return nil }
func (b *fakeBackend) Store() (objstore.Store, error) {
	return nil, fmt.Errorf("no bucket in this test")
}
func (b *fakeBackend) RepositoryStore(*fsmpb.Repository) (objstore.Store, error) {
	return nil, fmt.Errorf("no repositories in this test")
}
func (b *fakeBackend) FsckReaders() []fsck.Reader { return nil }

func (b *fakeBackend) VerifySnapshot(context.Context, uint64, bool) (*fsmpb.SnapshotVerification, error) {
	return nil, errors.New("not in this fake")
}

func (b *fakeBackend) ProbeRepository(context.Context, *fsmpb.Repository) ([]*pb.RepositoryProbe, error) {
	return nil, fmt.Errorf("no repositories in this test")
}
func (b *fakeBackend) Alive(string) bool   { return true }
func (b *fakeBackend) IsLeader() bool      { return true }
func (b *fakeBackend) IsLeaderReady() bool { return true }
func (b *fakeBackend) KickFinisher()       { b.kick("finisher") }
func (b *fakeBackend) KickGC()             { b.kick("gc") }
func (b *fakeBackend) KickRestores()       { b.kick("restores") }
func (b *fakeBackend) KickPolicies()       { b.kick("policies") }
func (b *fakeBackend) kick(what string)    { b.mu.Lock(); b.kicks = append(b.kicks, what); b.mu.Unlock() }
func (b *fakeBackend) Leader() (internalv1.InternalClient, string, error) {
	return nil, "", status.Error(codes.Unavailable, "no leader in this test")
}

func testServices(t *testing.T) (*fakeBackend, *catalogService, *snapshotsService) {
	t.Helper()
	b := newFakeBackend()
	s := New(b, Config{Root: "root", DefaultLease: time.Minute, SnapshotsPerCollection: 10, SnapshotPendingTimeout: time.Minute}, nil)
	return b, &catalogService{services: s.services}, &snapshotsService{services: s.services}
}

// The catalog handlers run without a cluster: keys go in and come out with the storage
// root, a refused command is a status with the root put back in the keys it quotes,
// and a snapshot's creation wakes the finisher.
func TestServicesRunOnABackendAlone(t *testing.T) {
	b, cat, snaps := testServices(t)
	ctx := context.Background()
	_, err := cat.CreateCollection(ctx, &pb.CreateCollectionRequest{Name: "docs"})
	require.NoError(t, err)
	alloc, err := cat.AllocateSegment(ctx, &pb.AllocateSegmentRequest{Collection: "docs"})
	require.NoError(t, err)
	seg := alloc.Segment
	require.Regexp(t, `^root/collections/\d+/segments/\d+/$`, seg.Prefix)

	cases := []struct {
		name    string
		key     string
		code    codes.Code
		message string
	}{
		{name: "outside the storage root", key: "elsewhere/x", code: codes.InvalidArgument, message: `outside the storage root "root/"`},
		{name: "another segment's key", key: "root/collections/1/segments/999/insert/101/1", code: codes.InvalidArgument, message: `"root/collections/`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cat.FlushSegment(ctx, &pb.FlushSegmentRequest{SegmentId: seg.Id, RowCount: 1,
				Files: []*pb.File{{Key: tc.key, Kind: pb.FileKind_FILE_KIND_INSERT, FieldId: 101, Size: 1}}})
			err = Status(err, "root")
			require.Equal(t, tc.code, status.Code(err), "%v", err)
			require.Contains(t, err.Error(), tc.message)
		})
	}

	key := seg.Prefix + "insert/101/1"
	_, err = cat.FlushSegment(ctx, &pb.FlushSegmentRequest{SegmentId: seg.Id, RowCount: 1,
		Files: []*pb.File{{Key: key, Kind: pb.FileKind_FILE_KIND_INSERT, FieldId: 101, Size: 1}}})
	require.NoError(t, err)
	got, err := cat.GetSegment(ctx, &pb.GetSegmentRequest{SegmentId: seg.Id})
	require.NoError(t, err)
	require.Equal(t, pb.SegmentState_SEGMENT_STATE_FLUSHED, got.Segment.State)
	require.Equal(t, key, got.Segment.Files[0].Key)

	created, err := snaps.CreateSnapshot(ctx, &pb.CreateSnapshotRequest{Collection: "docs", Name: "s1", Async: true})
	require.NoError(t, err)
	require.Equal(t, pb.SnapshotState_SNAPSHOT_STATE_PENDING, created.Snapshot.State)
	require.Regexp(t, `^root/snapshots/`, created.Snapshot.ManifestKey)
	require.Equal(t, []string{"finisher"}, b.kicks)
}
