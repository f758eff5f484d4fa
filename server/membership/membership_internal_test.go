package membership

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"

	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// server keeps a nil *Membership when gossip is off and calls it anyway.
func TestGossipOffIsANilMembership(t *testing.T) {
	m, err := Start(Config{}, Node{})
	require.NoError(t, err)
	require.Nil(t, m)
	require.True(t, m.Healthy("n2"), "without gossip every node is healthy")
	require.Equal(t, pb.MemberStatus_MEMBER_STATUS_UNSPECIFIED, m.StatusOf("n2"))
	m.Leave()
}

func TestMemberMetaRoundTrip(t *testing.T) {
	for _, m := range []memberMeta{
		{},
		{ID: "n1", RaftAddr: "10.0.0.1:7011", GRPCAddr: "10.0.0.1:7001", Version: "v1.2.3", Expect: 3, HasState: true},
		{ID: "node-with-a-long-name", RaftAddr: "[::1]:7011", Leaving: true},
	} {
		got, err := decodeMeta(m.encode())
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
	for _, bad := range [][]byte{nil, {2, 0, 0}, {metaFormat}, {metaFormat, 0, 3, 5, 'a'}} {
		_, err := decodeMeta(bad)
		require.Error(t, err, "%v", bad)
	}
}

func TestRemovalUnsafe(t *testing.T) {
	require.NotEmpty(t, RemovalUnsafe(1, 1), "last voter")
	require.Empty(t, RemovalUnsafe(3, 2), "3 voters, one failed: the other two are a quorum of 2")
	require.NotEmpty(t, RemovalUnsafe(3, 1), "3 voters, two failed")
	require.Empty(t, RemovalUnsafe(5, 3))
	require.NotEmpty(t, RemovalUnsafe(5, 2))
	require.Empty(t, RemovalUnsafe(2, 1), "2 voters, one failed: the survivor alone is a quorum of 1")
}

func TestParseGossipKey(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		key, err := ParseKey(base64.StdEncoding.EncodeToString(make([]byte, n)))
		require.NoError(t, err)
		require.Len(t, key, n)
	}
	_, err := ParseKey(base64.StdEncoding.EncodeToString(make([]byte, 20)))
	require.ErrorContains(t, err, "want 16, 24 or 32")
	_, err = ParseKey("not base64!")
	require.ErrorContains(t, err, "not base64")
}

func TestGossipConfigValidate(t *testing.T) {
	var errs []string
	bad := func(f string, args ...any) { errs = append(errs, f) }
	(&Config{Join: []string{"a:1"}}).Validate(bad)
	require.Len(t, errs, 1)
	errs = nil
	(&Config{Addr: "nohost", Join: []string{"x"}, BootstrapExpect: -1, Key: []byte("short"), DeadServerTimeout: -1}).Validate(bad)
	require.Len(t, errs, 5)
}
