package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/finisher"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// TestScrubberRepairsManifestsAndReportsDataLoss: the leader's scrubber, verifying
// every snapshot each second, records a clean snapshot OK; a manifest with a flipped
// byte, truncated or deleted is rewritten byte for byte as a fresh encode from the
// catalog and recorded REPAIRED; a deleted data file is recorded DATA_LOSS with its
// key, makes /health degraded (still serving) and the broken-snapshots gauge 1, until
// the file is back.
func TestScrubberRepairsManifestsAndReportsDataLoss(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.ScrubEvery, cfg.ScrubTick = time.Second, 50*time.Millisecond
		cfg.HTTP = server.HTTPConfig{Addr: "127.0.0.1:0"}
	}})
	cl := gcClient(t, c)
	store := c.Bucket.Store
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	segs := gcGenerate(t, c, cl, "docs", 3, 2, 1)
	snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "s1"))
	require.NoError(t, err)
	// A second snapshot of the collection: the scrubber verifies the two with one
	// listing, and must tell which of them a problem is about.
	other, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "s2"))
	require.NoError(t, err)

	// verificationOf waits for a verification of snapshot id recorded after since that
	// done accepts; verification is snapshot s1's.
	verificationOf := func(id uint64, since int64, done func(*pb.SnapshotVerification) bool) *pb.SnapshotVerification {
		t.Helper()
		var v *pb.SnapshotVerification
		require.Eventually(t, func() bool {
			s, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(id))
			require.NoError(t, err)
			v = s.GetVerification()
			return v != nil && v.GetVerifiedAtUnixMs() > since && done(v)
		}, 15*time.Second, 20*time.Millisecond, "last: %v", v)
		return v
	}
	verification := func(since int64, done func(*pb.SnapshotVerification) bool) *pb.SnapshotVerification {
		t.Helper()
		return verificationOf(snap.GetId(), since, done)
	}
	v := verification(0, func(v *pb.SnapshotVerification) bool { return true })
	require.Equal(t, pb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK, v.GetOutcome(), "%v", v.GetProblems())

	read := func(key string) []byte { return readObject(t, store, key) }
	put := func(key string, body []byte) { putObject(t, store, key, body) }
	manifestKey := snap.GetManifestKey()
	good := read(manifestKey)
	// A fresh encode from the catalog is the manifest written at commit.
	leader := c.Nodes[c.Leader()].FSM().View()
	rec, err := leader.Snapshot(snap.GetId())
	require.NoError(t, err)
	var fresh bytes.Buffer
	_, err = finisher.EncodeManifest(ctx, &fresh, leader, rec)
	require.NoError(t, err)
	require.Equal(t, good, fresh.Bytes())

	repairs := uint32(0)
	for _, tc := range []struct {
		name   string
		damage func()
	}{
		{"byte flipped", func() {
			b := slices.Clone(good)
			b[len(b)/3] ^= 0x08
			put(manifestKey, b)
		}},
		{"truncated", func() { put(manifestKey, good[:len(good)/2]) }},
		{"deleted", func() {
			_, err := store.Delete(ctx, []string{manifestKey})
			require.NoError(t, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			since := time.Now().UnixMilli()
			tc.damage()
			v := verification(since, func(v *pb.SnapshotVerification) bool { return v.GetRepairs() > repairs })
			repairs = v.GetRepairs()
			require.Equal(t, pb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_REPAIRED, v.GetOutcome(), "%v", v.GetProblems())
			require.Contains(t, v.GetProblems()[0], manifestKey)
			require.Equal(t, fresh.Bytes(), read(manifestKey), "repaired byte for byte")
		})
	}

	// s2's manifest was never damaged: s1's problems were not put on it.
	v2 := verificationOf(other.GetId(), time.Now().UnixMilli(), func(v *pb.SnapshotVerification) bool { return true })
	require.Equal(t, pb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK, v2.GetOutcome(), "%v", v2.GetProblems())
	require.Zero(t, v2.GetRepairs())

	httpAddr := c.Nodes[c.Leader()].HTTPAddr()
	lost := segs[1].Files[0]
	body := read(lost.Key)
	since := time.Now().UnixMilli()
	_, err = store.Delete(ctx, []string{lost.Key})
	require.NoError(t, err)
	v = verification(since, func(v *pb.SnapshotVerification) bool {
		return v.GetOutcome() == pb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_DATA_LOSS
	})
	require.EqualValues(t, 1, v.GetProblemCount())
	require.Contains(t, v.GetProblems()[0], "missing "+lost.Key)
	// s2 pins the same segment: the same loss breaks it too.
	v2 = verificationOf(other.GetId(), since, func(v *pb.SnapshotVerification) bool {
		return v.GetOutcome() == pb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_DATA_LOSS
	})
	require.Contains(t, v2.GetProblems()[0], "missing "+lost.Key)
	code, h := healthOf(t, httpAddr, "/health")
	require.Equal(t, http.StatusOK, code, "a node with a broken snapshot still serves")
	require.Equal(t, "degraded", h.Status)
	require.Contains(t, h.Degraded[0], "2 committed snapshots failed their last verification")
	require.Equal(t, 2.0, scrape(t, httpAddr).get(t, "snapkeep_fsm_snapshots_broken"))

	put(lost.Key, body)
	since = time.Now().UnixMilli()
	for _, id := range []uint64{snap.GetId(), other.GetId()} {
		verificationOf(id, since, func(v *pb.SnapshotVerification) bool {
			return v.GetOutcome() == pb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK
		})
	}
	_, h = healthOf(t, httpAddr, "/health")
	require.Equal(t, "ok", h.Status)
	require.Empty(t, h.Degraded)
}

// failingGets is a bucket whose GETs of the keys in fail return an error, as an S3
// server answering 503 does.
type failingGets struct {
	objstore.Store
	fail *sync.Map
}

func (s failingGets) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	if _, ok := s.fail.Load(key); ok {
		return nil, objstore.ObjectInfo{}, fmt.Errorf("get %s: SlowDown: please reduce your request rate (503)", key)
	}
	return s.Store.Get(ctx, key)
}

// TestVerificationUndecidedByAFailedRead: a verification that cannot read a data file
// (deep) or the manifest records nothing — not DATA_LOSS, not a repair — and is
// refused Unavailable; once the reads work it records OK.
func TestVerificationUndecidedByAFailedRead(t *testing.T) {
	fail := &sync.Map{}
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Store = failingGets{Store: cfg.Store, fail: fail}
	}})
	cl := gcClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	segs := gcGenerate(t, c, cl, "docs", 2, 2, 1)
	snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "s1"))
	require.NoError(t, err)
	manifest := readObject(t, c.Bucket.Store, snap.GetManifestKey())

	for _, tc := range []struct {
		name string
		key  string
		deep bool
	}{
		{"a data file", segs[1].Files[0].Key, true},
		{"the manifest", snap.GetManifestKey(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption("docs", "s1"))
			require.NoError(t, err)
			fail.Store(tc.key, true)
			opt := client.NewVerifySnapshotOption("docs", "s1")
			if tc.deep {
				opt = opt.WithDeep()
			}
			_, err = cl.VerifySnapshot(ctx, opt)
			require.Error(t, err)
			require.Equal(t, codes.Unavailable, client.Code(err), "%v", err)
			require.Contains(t, err.Error(), tc.key)
			s, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption("docs", "s1"))
			require.NoError(t, err)
			require.True(t, proto.Equal(before.GetVerification(), s.GetVerification()), "nothing recorded: %v", s.GetVerification())
			require.Equal(t, manifest, readObject(t, c.Bucket.Store, snap.GetManifestKey()), "no repair")

			fail.Delete(tc.key)
			s, err = cl.VerifySnapshot(ctx, opt)
			require.NoError(t, err)
			require.Equal(t, pb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK, s.GetVerification().GetOutcome(), "%v", s.GetVerification().GetProblems())
			require.Equal(t, tc.deep, s.GetVerification().GetDeep())
		})
	}
}
