package restore

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// TestVerifyingReaderWithholds: whatever way the source hands out its bytes, the
// reader passes on all of them when they are right, and otherwise fails before the
// last ones, so an upload of exactly Size bytes never gets them all.
func TestVerifyingReaderWithholds(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	right := crc32.Checksum(data, castagnoli)
	readers := map[string]func([]byte) io.Reader{
		"plain":          func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one-byte":       func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"data-with-eof":  func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		"half-then-rest": func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
	}
	cases := []struct {
		name   string
		source []byte
		task   Task
		check  bool
		what   string // the mismatch expected; "" for none
	}{
		{"right", data, Task{Size: uint64(len(data)), CRC32C: right}, true, ""},
		{"wrong-crc", data, Task{Size: uint64(len(data)), CRC32C: right ^ 1}, true, "CRC-32C"},
		{"unregistered-crc-not-checked", data, Task{Size: uint64(len(data))}, false, ""},
		{"source-shorter", data[:len(data)-1], Task{Size: uint64(len(data)), CRC32C: right}, true, "size"},
		{"source-longer", append(bytes.Clone(data), 'x'), Task{Size: uint64(len(data)), CRC32C: right}, true, "size"},
		{"source-longer-unregistered", append(bytes.Clone(data), 'x'), Task{Size: uint64(len(data))}, false, "size"},
		{"empty", nil, Task{}, true, ""},
		{"empty-expected-not-empty", nil, Task{Size: 5, CRC32C: 1}, true, "size"},
		{"expected-empty-not-empty", []byte("x"), Task{}, true, "size"},
	}
	for rname, newReader := range readers {
		for _, tc := range cases {
			t.Run(rname+"/"+tc.name, func(t *testing.T) {
				tc.task.Src, tc.task.Dst = "s", "d"
				v := &verifyingReader{r: newReader(tc.source), t: tc.task, checkCRC: tc.check}
				// What an upload of Size bytes does: read exactly that many, then look for the end.
				got, err := io.ReadAll(io.LimitReader(v, int64(tc.task.Size)))
				if err == nil {
					_, err = v.Read(make([]byte, 1))
					require.Error(t, err)
					if errors.Is(err, io.EOF) {
						err = nil
					}
				}
				if tc.what == "" {
					require.NoError(t, err)
					require.True(t, bytes.Equal(tc.source, got), "every byte passed on")
					require.True(t, v.done)
					require.Equal(t, crc32.Checksum(tc.source, castagnoli), v.crc)
					return
				}
				var m *MismatchError
				require.ErrorAs(t, err, &m)
				require.Equal(t, tc.what, m.What)
				require.Contains(t, m.From, fromStream)
				require.Equal(t, "s", m.Src)
				require.Equal(t, "d", m.Dst)
				require.Less(t, len(got), int(tc.task.Size)+1, "never more than Size bytes")
				if tc.task.Size > 0 {
					require.Less(t, len(got), int(tc.task.Size), "the last bytes were withheld")
				}
				_, again := v.Read(make([]byte, 10))
				require.Equal(t, err, again, "the failure sticks")
			})
		}
	}
}

func TestVerifyingReaderSourceError(t *testing.T) {
	boom := errors.New("connection reset")
	v := &verifyingReader{r: iotest.TimeoutReader(bytes.NewReader([]byte("abcdef"))), t: Task{Src: "s", Dst: "d", Size: 6}}
	buf := make([]byte, 3)
	n, err := v.Read(buf)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	_, err = v.Read(buf)
	require.ErrorIs(t, err, iotest.ErrTimeout)
	require.ErrorContains(t, err, `stream "s" to "d": read the source`)
	require.NotErrorIs(t, err, ErrMismatch)

	v = &verifyingReader{r: iotest.ErrReader(boom), t: Task{Src: "s", Dst: "d", Size: 6}}
	_, err = v.Read(buf)
	require.ErrorIs(t, err, boom)
}

// countingLimiter records what it is asked for.
type countingLimiter struct {
	burst    int
	asked    int
	requests int
	largest  int
}

func (l *countingLimiter) WaitN(_ context.Context, n int) error {
	l.asked += n
	l.requests++
	l.largest = max(l.largest, n)
	return nil
}

func (l *countingLimiter) Burst() int { return l.burst }

func TestLimiterHelpers(t *testing.T) {
	require.Equal(t, 100, NewLimiter(100).Burst(), "one second's worth when below 1 MiB")
	require.Equal(t, rate.Limit(100), NewLimiter(100).Limit())
	require.Equal(t, DefaultLimiterChunk, NewLimiter(50<<20).Burst())
	require.Equal(t, rate.Inf, NewLimiter(0).Limit(), "0: unlimited")
	require.NoError(t, NewLimiter(0).WaitN(t.Context(), 1<<30))
	require.NoError(t, NewLimiter(-1).WaitN(t.Context(), 1<<30))

	l := &countingLimiter{burst: 1000}
	require.NoError(t, waitBytes(t.Context(), l, 4500))
	require.Equal(t, 4500, l.asked)
	require.Equal(t, 5, l.requests)
	require.Equal(t, 1000, l.largest, "never more than the burst at once")
	require.NoError(t, waitBytes(t.Context(), nil, 4500), "nil: unlimited")

	// A limiter without Burst is asked for DefaultLimiterChunk at most.
	noBurst := &countingLimiter{}
	require.NoError(t, waitBytes(t.Context(), waitOnly{noBurst}, 3*DefaultLimiterChunk+1))
	require.Equal(t, DefaultLimiterChunk, noBurst.largest)
	require.Equal(t, 4, noBurst.requests)

	l = &countingLimiter{burst: 7}
	data := bytes.Repeat([]byte("x"), 100)
	got, err := io.ReadAll(limitReader(t.Context(), bytes.NewReader(data), l))
	require.NoError(t, err)
	require.Equal(t, data, got)
	require.Equal(t, 100, l.asked, "every byte read was waited for")
	require.Equal(t, 7, l.largest)

	// A limiter that refuses (ctx ended, a deadline too close) is errLimit.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = waitBytes(ctx, NewLimiter(10), 100)
	require.ErrorIs(t, err, errLimit)
	_, err = io.ReadAll(limitReader(ctx, bytes.NewReader(data), NewLimiter(10)))
	require.ErrorIs(t, err, errLimit)
}

// waitOnly hides Burst.
type waitOnly struct{ l *countingLimiter }

func (w waitOnly) WaitN(ctx context.Context, n int) error { return w.l.WaitN(ctx, n) }
