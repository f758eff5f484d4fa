package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ReaderAt reads one object with range GETs, so a reader that needs only parts of a
// large object (a manifest's footer and some blocks) fetches only those. It is safe
// for concurrent use; each ReadAt is one request.
type ReaderAt struct {
	ctx   context.Context
	store Store
	key   string
	size  int64
}

// NewReaderAt returns a ReaderAt over key, whose size the caller knows (Head).
func NewReaderAt(ctx context.Context, store Store, key string, size int64) *ReaderAt {
	return &ReaderAt{ctx: ctx, store: store, key: key, size: size}
}

// Size is the object's size as given to NewReaderAt.
func (r *ReaderAt) Size() int64 { return r.size }

// ReadAt reads len(p) bytes at off; a read past the end returns what there is and
// io.EOF, as io.ReaderAt requires.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %q at negative offset %d", r.key, off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), r.size-off)
	rc, err := r.store.GetRange(r.ctx, r.key, off, want)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p[:want])
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return n, fmt.Errorf("read %q at %d: the object is shorter than %d bytes: %w", r.key, off, r.size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return n, err
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}
