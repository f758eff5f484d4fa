package finisher

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func readAllFrom(t *testing.T, b *spillBuffer) []byte {
	t.Helper()
	r, err := b.Reader()
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	return got
}

func TestSpillBufferKeepsSmallManifestsInMemory(t *testing.T) {
	dir := t.TempDir()
	b := &spillBuffer{limit: 100, dir: dir, pattern: "m-*.skm"}
	_, err := b.Write(bytes.Repeat([]byte("a"), 60))
	require.NoError(t, err)
	_, err = b.Write(bytes.Repeat([]byte("b"), 40)) // exactly the limit
	require.NoError(t, err)
	require.Nil(t, b.file)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "no file below the limit")
	require.Equal(t, append(bytes.Repeat([]byte("a"), 60), bytes.Repeat([]byte("b"), 40)...), readAllFrom(t, b))
	require.NoError(t, b.Close())
}

func TestSpillBufferSpillsPastTheLimitAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	b := &spillBuffer{limit: 100, dir: dir + "/tmp", pattern: "m-*.skm"}
	var want []byte
	for i := range 30 {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, 7)
		want = append(want, p...)
		_, err := b.Write(p)
		require.NoError(t, err)
	}
	require.NotNil(t, b.file)
	require.Equal(t, want, readAllFrom(t, b))
	require.Equal(t, want, readAllFrom(t, b), "a second read starts from the beginning again")
	require.NoError(t, b.Close())
	entries, err := os.ReadDir(dir + "/tmp")
	require.NoError(t, err)
	require.Empty(t, entries, "Close removes the temporary file")
}
