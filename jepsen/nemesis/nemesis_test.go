package nemesis

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "all", want: All},
		{in: "member", want: []string{Member}},
		{in: "kill,partition,member", want: []string{Kill, PartitionLeader, PartitionMajority, Bridge, Member}},
		{in: "none", want: nil},
		{in: "member,all", want: append([]string{Member}, slices.DeleteFunc(slices.Clone(All), func(k string) bool { return k == Member })...)},
		{in: "remove", wantErr: `unknown nemesis "remove"`},
	} {
		got, err := Parse(tc.in)
		if tc.wantErr != "" {
			require.ErrorContains(t, err, tc.wantErr, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	require.Contains(t, All, Member, "--nemesis all must include the member fault")
}

// TestEveryKindHasOneFault pins the kinds' names and order (--nemesis all picks from
// All by index, so the order is part of a seed's schedule) and that each kind has
// exactly one fault type.
func TestEveryKindHasOneFault(t *testing.T) {
	require.Equal(t, []string{"kill", "pause", "partition-leader", "partition-majority", "bridge", "delay", "drop",
		"leader-churn", "s3-faults", "member", "clock", "disk", "gossip"}, All)
	require.Len(t, byKind, len(All), "two fault types claim one kind")
	for _, kind := range All {
		f, ok := byKind[kind]
		require.True(t, ok, kind)
		require.Equal(t, kind, f.kind())
	}
}
