package varint

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadVarints(t *testing.T) {
	buf := binary.AppendUvarint(nil, 300)
	buf = binary.AppendVarint(buf, -5)
	buf = append(buf, 0xff) // a truncated varint
	u, rest, ok := Uvarint(buf)
	require.True(t, ok)
	require.EqualValues(t, 300, u)
	s, rest, ok := Varint(rest)
	require.True(t, ok)
	require.EqualValues(t, -5, s)
	_, left, ok := Uvarint(rest)
	require.False(t, ok)
	require.Equal(t, rest, left, "a failed read consumes nothing")
	_, _, ok = Varint(nil)
	require.False(t, ok)
}
