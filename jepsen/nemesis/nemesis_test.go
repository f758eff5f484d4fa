package nemesis

import (
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
		{in: "member,all", want: append([]string{Member}, All[:len(All)-1]...)},
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
