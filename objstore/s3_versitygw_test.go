package objstore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/objstoretest"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
)

// versityGWCaps is what versitygw v1.8.0 (posix backend) supports, as found by
// this suite: UploadPartCopy, and CRC32C checksums that are verified on upload
// (BadDigest on mismatch), stored, kept by CopyObject and reported by HEAD.
var versityGWCaps = objstoretest.Capabilities{MultipartCopy: true, CRC32C: true, CopyCRC32C: true, MultipartCopyCRC32C: true}

func TestVersityGWConformance(t *testing.T) {
	t.Parallel()
	gw := versitygw.Start(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Store { return newStore(t, gw.Config()) }, versityGWCaps)
}

// TestVersityGWCrossBucket copies server-side between two buckets of one gateway.
func TestVersityGWCrossBucket(t *testing.T) {
	t.Parallel()
	gw := versitygw.Start(t)
	srcCfg := gw.Config()
	srcCfg.Bucket = "snapkeep-other"
	require.NoError(t, newStore(t, srcCfg).CreateBucket(t.Context()))
	objstoretest.RunCrossBucket(t, func(t *testing.T) objstoretest.Buckets {
		return objstoretest.Buckets{Dst: newStore(t, gw.Config()), Src: newStore(t, srcCfg), SrcBucket: srcCfg.Bucket}
	}, versityGWCaps)
}

// TestVersityGWBehaviour pins down details of versitygw that snapkeep's key
// layout and checksum handling depend on.
func TestVersityGWBehaviour(t *testing.T) {
	t.Parallel()
	gw := versitygw.Start(t)
	store := newStore(t, gw.Config())
	ctx := t.Context()
	put := func(key string, data []byte, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
		return store.Put(ctx, key, bytes.NewReader(data), int64(len(data)), opts)
	}

	t.Run("object-and-directory-cannot-share-a-name", func(t *testing.T) {
		// The posix backend stores "a/b" as file b in directory a, so "a" cannot
		// also be an object.
		_, err := put("dir/child", []byte("x"), objstore.PutOptions{})
		require.NoError(t, err)
		_, err = put("dir", []byte("x"), objstore.PutOptions{})
		require.ErrorContains(t, err, "ExistingObjectIsDirectory")
	})
	t.Run("copy-keeps-crc32c", func(t *testing.T) {
		data := []byte("checksummed")
		crc := crc32cOf(data)
		info, err := put("crc/src", data, objstore.PutOptions{CRC32C: crc, HasCRC32C: true})
		require.NoError(t, err)
		require.True(t, info.HasCRC32C, "put echoes the checksum")
		require.Equal(t, crc, info.CRC32C)
		copied, err := store.Copy(ctx, "crc/src", "crc/dst")
		require.NoError(t, err)
		require.True(t, copied.HasCRC32C, "the CopyObject response carries the CRC-32C")
		require.Equal(t, crc, copied.CRC32C)
		info, err = store.Head(ctx, "crc/dst")
		require.NoError(t, err)
		require.True(t, info.HasCRC32C)
		require.Equal(t, crc, info.CRC32C)
	})
	t.Run("copy-computes-crc32c-of-unchecksummed-source", func(t *testing.T) {
		// A source stored without a CRC-32C (versitygw keeps a CRC64NVME for
		// it): asked for one, the copy computes it from the bytes it writes.
		data := bytes.Repeat([]byte("no checksum given "), 1000)
		_, err := put("crc/plain", data, objstore.PutOptions{})
		require.NoError(t, err)
		copied, err := store.Copy(ctx, "crc/plain", "crc/plain-copy")
		require.NoError(t, err)
		require.True(t, copied.HasCRC32C)
		require.Equal(t, crc32cOf(data), copied.CRC32C)
	})
	t.Run("multipart-copy-crc32c", func(t *testing.T) {
		// Each test gets its own store: MultipartCopy remembers a server fault.
		store := newStore(t, gw.Config())
		data := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, (11<<20)/7)
		_, err := store.Put(ctx, "mp/plain", bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
		require.NoError(t, err)
		copied, err := store.MultipartCopy(ctx, "mp/plain", "mp/plain-copy", int64(len(data)), 5<<20)
		require.NoError(t, err)
		require.True(t, copied.HasCRC32C, "FULL_OBJECT CRC32C of a source without a CRC-32C")
		require.Equal(t, crc32cOf(data), copied.CRC32C)
		require.Regexp(t, `-3$`, copied.ETag, "a three-part multipart ETag")
	})
	t.Run("multipart-copy-of-crc32c-source-is-not-trusted", func(t *testing.T) {
		// versitygw v1.8's UploadPartCopy reports a source's stored CRC-32C as
		// the checksum of every part, so the combined "full-object" CRC is
		// wrong. MultipartCopy notices, redoes the copy without checksums and
		// reports none, and stops asking for them on this store. If this
		// starts failing because HasCRC32C is true, versitygw fixed the bug:
		// update objstore/DESIGN.md.
		store := newStore(t, gw.Config())
		data := bytes.Repeat([]byte{9, 8, 7, 6, 5}, (11<<20)/5)
		_, err := store.Put(ctx, "mp/crc", bytes.NewReader(data), int64(len(data)),
			objstore.PutOptions{CRC32C: crc32cOf(data), HasCRC32C: true})
		require.NoError(t, err)
		copied, err := store.MultipartCopy(ctx, "mp/crc", "mp/crc-copy", int64(len(data)), 5<<20)
		require.NoError(t, err)
		require.False(t, copied.HasCRC32C)
		head, err := store.Head(ctx, "mp/crc-copy")
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), head.Size)
		require.False(t, head.HasCRC32C, "no wrong checksum is left stored on the copy")

		// The store has learnt: a source without a checksum is now copied
		// without one too.
		_, err = store.Put(ctx, "mp/plain2", bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
		require.NoError(t, err)
		copied, err = store.MultipartCopy(ctx, "mp/plain2", "mp/plain2-copy", int64(len(data)), 5<<20)
		require.NoError(t, err)
		require.False(t, copied.HasCRC32C)
	})
	t.Run("multipart-put-if-none-match", func(t *testing.T) {
		// CompleteMultipartUpload honours If-None-Match: the upload is refused
		// over an existing object, which keeps its content.
		data := bytes.Repeat([]byte("multipart "), (6<<20)/10)
		put := func(key string) error {
			_, err := store.PutMultipart(ctx, key, bytes.NewReader(data), int64(len(data)), 5<<20,
				objstore.PutOptions{CRC32C: crc32cOf(data), HasCRC32C: true, IfNoneMatch: true})
			return err
		}
		require.NoError(t, put("mp/create"))
		_, err := store.Put(ctx, "mp/exists", bytes.NewReader([]byte("old")), 3, objstore.PutOptions{})
		require.NoError(t, err)
		require.ErrorIs(t, put("mp/exists"), objstore.ErrPreconditionFailed)
		info, err := store.Head(ctx, "mp/exists")
		require.NoError(t, err)
		require.EqualValues(t, 3, info.Size)
	})
	t.Run("wrong-crc32c-is-BadDigest", func(t *testing.T) {
		_, err := put("crc/bad", []byte("x"), objstore.PutOptions{CRC32C: 1, HasCRC32C: true})
		require.ErrorContains(t, err, "BadDigest")
	})
	t.Run("signature-checked", func(t *testing.T) {
		cfg := gw.Config()
		cfg.SecretKey = "wrong"
		bad := newStore(t, cfg)
		_, err := bad.Head(ctx, "crc/src")
		require.Error(t, err)
		require.NotErrorIs(t, err, objstore.ErrNotFound)
	})
	t.Run("unknown-access-key", func(t *testing.T) {
		// versitygw answers 404 XAdminUserNotFound, which is access denied; on HEAD
		// that is a bare 404, which cannot be told from a missing object.
		cfg := gw.Config()
		cfg.AccessKey = "nobody"
		bad := newStore(t, cfg)
		rc, _, err := bad.Get(ctx, "crc/src")
		if rc != nil {
			_ = rc.Close()
		}
		require.ErrorIs(t, err, objstore.ErrAccessDenied)
		require.NotErrorIs(t, err, objstore.ErrNotFound)
		_, err = bad.Head(ctx, "crc/src")
		require.ErrorIs(t, err, objstore.ErrNotFound, "if this fails, versitygw fixed it: update objstore/DESIGN.md")
	})
}

func TestVersityGWBinaryMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-versitygw")
	t.Setenv(versitygw.EnvBinary, missing)
	path, err := versitygw.Binary()
	require.Error(t, err)
	require.Equal(t, missing, path)
	require.Contains(t, err.Error(), "make tools")
}

func TestVersityGWStartFailureShowsOutput(t *testing.T) {
	t.Parallel()
	// A "gateway" that prints and exits: StartProcess must notice at once
	// rather than poll for 20 s, and report what it printed.
	script := filepath.Join(t.TempDir(), "fake-versitygw")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho fake gateway refusing to start >&2\nexit 3\n"), 0o755))
	_, err := versitygw.StartProcess(context.Background(), versitygw.Options{Binary: script, Dir: t.TempDir()})
	require.Error(t, err)
	require.Contains(t, err.Error(), "fake gateway refusing to start")
	require.True(t, strings.Contains(err.Error(), "exited"), err.Error())
}

func TestVersityGWProcessStop(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	p, err := versitygw.StartProcess(context.Background(), versitygw.Options{Dir: t.TempDir(), Bucket: "other", Log: &log})
	require.NoError(t, err)
	require.Equal(t, "other", p.Bucket())
	require.True(t, strings.HasPrefix(p.Endpoint(), "http://127.0.0.1:"), p.Endpoint())
	require.NoError(t, p.Stop())
	require.NoError(t, p.Stop(), "Stop is idempotent")
	require.Contains(t, p.LogTail(), "VersityGW")
	require.Contains(t, log.String(), "VersityGW", "output goes to Options.Log too")
}
