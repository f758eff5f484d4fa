package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/snapkeep/snapkeep/objstore"
)

// fromStream is MismatchError.From for a mismatch of the source's bytes found
// while streaming them.
const fromStream = "the source read while streaming"

// stream copies t by reading it from Source and uploading it into Store (see
// Executor.Stream), retrying the whole stream when a GET or upload fails
// transiently, and says how the copy was verified. attempts counts the streams.
func (c *config) stream(ctx context.Context, t Task, attempts *int) (Verification, error) {
	// A non-empty file without a CRC-32C was registered without one: stream it,
	// compute it, and declare none (the upload would be refused if it were wrong).
	registered := t.CRC32C != 0 || t.Size == 0
	var put objstore.ObjectInfo
	var crc uint32
	err := c.retry(ctx, t, "stream", func() error {
		*attempts++
		var err error
		put, crc, err = c.streamOnce(ctx, t, registered)
		return err
	})
	if err != nil {
		return NotVerified, err
	}
	// From here on the content to expect is the one streamed: the task's when
	// registered (the stream checked it), else the one computed.
	want := t
	want.CRC32C = crc
	if put.HasCRC32C && put.CRC32C != crc {
		// The server's own computation over what it stored disagrees: read the copy
		// before failing the task (see confirm).
		return VerifiedByReadBack, c.confirm(ctx, want, mismatch(want, "CRC-32C", uint64(crc), uint64(put.CRC32C), "the upload response"))
	}
	if c.Verify && c.ReadBack {
		backCRC, n, err := c.readBack(ctx, t)
		if err != nil {
			return NotVerified, err
		}
		if err := checkContent(want, backCRC, n, nil); err != nil {
			var m *MismatchError
			if !registered && errors.As(err, &m) {
				m.From = fmt.Sprintf("the content read back (the source streamed has CRC-32C %08x)", crc)
			}
			return VerifiedByReadBack, err
		}
		return VerifiedByReadBack, nil
	}
	if !registered {
		// Only the length was checked: nothing to compare the CRC-32C with.
		return NotVerified, nil
	}
	return VerifiedByStream, nil
}

// streamOnce streams t once: a GET of the source, read through a verifyingReader
// into one upload (a multipart one at or above MultipartThreshold). It returns
// the upload's result and the CRC-32C of the bytes streamed.
func (c *config) streamOnce(ctx context.Context, t Task, registered bool) (objstore.ObjectInfo, uint32, error) {
	rc, info, err := c.Source.Get(ctx, t.Src)
	if err != nil {
		return objstore.ObjectInfo{}, 0, fmt.Errorf("stream %q to %q: %w", t.Src, t.Dst, err)
	}
	defer rc.Close()
	// A wrong size the GET response already shows needs no upload to find out.
	// (A size of 0 may be a response without Content-Length: the stream will tell.)
	if info.Size > 0 && uint64(info.Size) != t.Size {
		return objstore.ObjectInfo{}, 0, mismatch(t, "size", t.Size, uint64(info.Size), "the source's GET response")
	}
	vr := &verifyingReader{r: limitReader(ctx, rc, c.Limiter), t: t, checkCRC: registered}
	opts := objstore.PutOptions{CRC32C: t.CRC32C, HasCRC32C: registered}
	var put objstore.ObjectInfo
	switch {
	case t.Size == 0:
		// A zero-length upload may never read its body: check the source first.
		if _, err = io.Copy(io.Discard, vr); err == nil {
			put, err = c.Store.Put(ctx, t.Dst, bytes.NewReader(nil), 0, opts)
		}
	case int64(t.Size) >= c.MultipartThreshold:
		put, err = c.Store.PutMultipart(ctx, t.Dst, vr, int64(t.Size), partSizeFor(c.StreamPartSize, t.Size), opts)
	default:
		put, err = c.Store.Put(ctx, t.Dst, vr, int64(t.Size), opts)
	}
	// The source's failure is the cause of the upload's: report it, so that a
	// mismatch is permanent and a broken read transient, whatever the upload made
	// of it.
	if vr.err != nil {
		return objstore.ObjectInfo{}, 0, vr.err
	}
	if err != nil {
		return objstore.ObjectInfo{}, 0, fmt.Errorf("stream %q to %q: %w", t.Src, t.Dst, err)
	}
	if !vr.done {
		return objstore.ObjectInfo{}, 0, fmt.Errorf("stream %q to %q: the upload succeeded before the source was read to its end", t.Src, t.Dst)
	}
	return put, vr.crc, nil
}

// verifyingReader passes on a task's source bytes while computing their CRC-32C
// and counting them, and withholds the last ones (the read that reaches the task's
// size) until the source has ended there and, with checkCRC, the CRC-32C is the
// task's. A wrong source thus makes the upload reading it fail before the server
// has the whole body, and nothing is stored, whatever the server checks.
type verifyingReader struct {
	r        io.Reader
	t        Task
	checkCRC bool

	crc  uint32
	n    uint64
	done bool  // read to the end and found right: next is io.EOF
	err  error // the first failure (*MismatchError, or the source's read error), returned from then on
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.done {
		return 0, io.EOF
	}
	remaining := v.t.Size - v.n
	if remaining == 0 { // an empty source
		if err := v.finish(false); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if uint64(len(p)) > remaining {
		p = p[:remaining]
	}
	k, err := v.r.Read(p)
	v.crc = crc32.Update(v.crc, castagnoli, p[:k])
	v.n += uint64(k)
	switch {
	case err != nil && !errors.Is(err, io.EOF):
		return 0, v.fail(fmt.Errorf("stream %q to %q: read the source: %w", v.t.Src, v.t.Dst, err))
	case v.n < v.t.Size && err != nil: // io.EOF before the end
		return 0, v.fail(mismatch(v.t, "size", v.t.Size, v.n, fromStream))
	case v.n < v.t.Size:
		return k, nil
	}
	// These are the last bytes: pass them on only if all is right.
	if err := v.finish(err != nil); err != nil {
		return 0, err
	}
	return k, nil
}

// finish checks, once Size bytes were read, that the source ends there (atEOF:
// it said so already) and that their CRC-32C is the task's.
func (v *verifyingReader) finish(atEOF bool) error {
	for try := 0; !atEOF; try++ {
		var probe [1]byte
		k, err := v.r.Read(probe[:])
		switch {
		case k > 0:
			return v.fail(mismatch(v.t, "size", v.t.Size, v.n+uint64(k), fromStream+", which had more bytes; it was not read further"))
		case errors.Is(err, io.EOF):
			atEOF = true
		case err != nil:
			return v.fail(fmt.Errorf("stream %q to %q: read the source: %w", v.t.Src, v.t.Dst, err))
		case try >= 100: // a reader may return (0, nil) a few times; not forever
			return v.fail(fmt.Errorf("stream %q to %q: read the source: %w", v.t.Src, v.t.Dst, io.ErrNoProgress))
		}
	}
	if v.checkCRC && v.crc != v.t.CRC32C {
		return v.fail(mismatch(v.t, "CRC-32C", uint64(v.t.CRC32C), uint64(v.crc), fromStream))
	}
	v.done = true
	return nil
}

func (v *verifyingReader) fail(err error) error {
	v.err = err
	return err
}
