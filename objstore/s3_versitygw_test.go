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
var versityGWCaps = objstoretest.Capabilities{MultipartCopy: true, CRC32C: true}

func TestVersityGWConformance(t *testing.T) {
	t.Parallel()
	gw := versitygw.Start(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Store { return newStore(t, gw.Config()) }, versityGWCaps)
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
		info, err = store.Copy(ctx, "crc/src", "crc/dst")
		require.NoError(t, err)
		require.True(t, info.HasCRC32C)
		require.Equal(t, crc, info.CRC32C)
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
