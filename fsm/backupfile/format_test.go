package backupfile

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sample(t testing.TB, body []byte) []byte {
	h := &Header{BodySize: uint64(len(body)), SHA256: sha256.Sum256(body), Index: 42, Term: 3,
		CreatedAt: time.Unix(1700000000, 5).UTC(), Node: "n1"}
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, h, bytes.NewReader(body)))
	return buf.Bytes()
}

func TestBackupHeaderRoundTrip(t *testing.T) {
	body := []byte("SNAPKFSM body bytes")
	file := sample(t, body)
	h, err := VerifyFile(bytes.NewReader(file))
	require.NoError(t, err)
	require.Equal(t, uint64(42), h.Index)
	require.Equal(t, uint64(3), h.Term)
	require.Equal(t, "n1", h.Node)
	require.Equal(t, time.Unix(1700000000, 5).UTC(), h.CreatedAt)

	// Every flipped byte, in the header or the body, is refused.
	for i := range file {
		bad := bytes.Clone(file)
		bad[i] ^= 0x40
		_, err := VerifyFile(bytes.NewReader(bad))
		require.Error(t, err, "flipped byte %d", i)
	}
	// Truncated and extended files are refused.
	_, err = VerifyFile(bytes.NewReader(file[:len(file)-1]))
	require.True(t, errors.Is(err, ErrCorrupt))
	_, err = VerifyFile(bytes.NewReader(append(bytes.Clone(file), 0)))
	require.True(t, errors.Is(err, ErrCorrupt))
}

func FuzzBackupHeader(f *testing.F) {
	f.Add(sample(f, []byte("body")))
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, n, err := DecodeHeader(data)
		if err != nil {
			return
		}
		require.LessOrEqual(t, n, len(data))
		// A decoded header encodes to the same bytes.
		again, err := h.Encode()
		require.NoError(t, err)
		require.Equal(t, data[:n], again)
		_, _ = VerifyFile(bytes.NewReader(data))
	})
}
