package restore_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/faults"
	"github.com/snapkeep/snapkeep/restore"
)

// echoStore is a third kind of S3 server, next to one that returns the CRC-32C in the
// copy response (versitygw) and one that keeps no checksums (the embedded gofakes3):
// CopyObject's response carries no checksum, and HEAD answers the checksum stored with
// the object, which a copy carries over from the source as metadata. Its copies can be
// made to go wrong (corrupt): the bytes then differ while HEAD still reports the
// source's checksum.
type echoStore struct {
	objstore.Store
	corrupt bool

	mu     sync.Mutex
	stored map[string]uint32 // the checksum "metadata" of each copy, from its source
}

func (s *echoStore) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	rc, _, err := s.Store.Get(ctx, src)
	if err != nil {
		return objstore.CopyInfo{}, err
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return objstore.CopyInfo{}, err
	}
	sum := crc32c(data)
	if s.corrupt && len(data) > 0 {
		data = bytes.Clone(data)
		data[len(data)-1] ^= 0x55
	}
	if _, err := s.Store.Put(ctx, dst, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{}); err != nil {
		return objstore.CopyInfo{}, err
	}
	s.mu.Lock()
	s.stored[dst] = sum
	s.mu.Unlock()
	return objstore.CopyInfo{}, nil // no checksum in the copy response
}

func (s *echoStore) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	info, err := s.Store.Head(ctx, key)
	s.mu.Lock()
	sum, ok := s.stored[key]
	s.mu.Unlock()
	if err == nil && ok {
		info.CRC32C, info.HasCRC32C = sum, true
	}
	return info, err
}

// Verification says what it checked: on a server whose HEAD echoes the source's
// stored checksum, a corrupt copy passes a HEAD check — and the result says it was
// checked by HEAD, not by its content — while --verify=readback (ReadBack) reads the
// copy and finds it wrong. The two known behaviours say what they checked too.
func TestExecutorSaysWhatEachVerificationChecked(t *testing.T) {
	t.Parallel()
	inner := newStore(t, embeddedBackend(t).cfg)
	f := makeFixture(t, inner, "echo/", uploadOpts{sizes: []int{100, 4096, 70_000}})
	tasks := f.tasks

	t.Run("head echoes the source's checksum: a corrupt copy passes HEAD, and says so", func(t *testing.T) {
		store := faults.Wrap(&echoStore{Store: inner, corrupt: true, stored: map[string]uint32{}}, faults.Options{})
		results := (&restore.Executor{Store: store, Verify: true}).Run(t.Context(), tasks)
		for i, r := range results {
			require.NoError(t, r.Err, "task %d", i)
			require.Equal(t, restore.VerifiedByHead, r.Verified, "task %d: only HEAD checked it", i)
		}
		require.Zero(t, store.Calls(faults.OpGet), "nothing was read back")
	})
	t.Run("read-back finds the corrupt copies", func(t *testing.T) {
		store := &echoStore{Store: inner, corrupt: true, stored: map[string]uint32{}}
		results := (&restore.Executor{Store: store, Verify: true, ReadBack: true}).Run(t.Context(), tasks)
		for i, r := range results {
			require.ErrorIs(t, r.Err, restore.ErrMismatch, "task %d", i)
			require.True(t, r.Permanent)
			require.Contains(t, r.Err.Error(), "the content read back")
		}
	})
	t.Run("read-back of good copies", func(t *testing.T) {
		store := faults.Wrap(&echoStore{Store: inner, stored: map[string]uint32{}}, faults.Options{})
		results := (&restore.Executor{Store: store, Verify: true, ReadBack: true}).Run(t.Context(), tasks)
		requireCopied(t, inner, f, tasks, results)
		for _, r := range results {
			require.Equal(t, restore.VerifiedByReadBack, r.Verified)
		}
		require.Equal(t, len(tasks), store.Calls(faults.OpGet), "each copy read once")
		require.Zero(t, store.Calls(faults.OpHead), "read-back needs no HEAD")
	})
	t.Run("the known behaviours", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, b backend) {
			inner := newStore(t, b.cfg)
			f := makeFixture(t, inner, "known/", uploadOpts{sizes: []int{100, 5000}, withCRC: func(int) bool { return false }})
			results := (&restore.Executor{Store: inner, Verify: true}).Run(t.Context(), f.tasks)
			requireCopied(t, inner, f, f.tasks, results)
			want := restore.VerifiedByReadBack // the embedded server keeps no checksum
			if b.copyCRC {
				want = restore.VerifiedByCopyResponse
			}
			for _, r := range results {
				require.Equal(t, want, r.Verified)
			}
			results = (&restore.Executor{Store: inner}).Run(t.Context(), f.tasks)
			for _, r := range results {
				require.Equal(t, restore.NotVerified, r.Verified)
			}
		})
	})
}
