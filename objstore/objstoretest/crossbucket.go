package objstoretest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
)

// CopierStore is a Store that can copy from another bucket of its endpoint.
type CopierStore interface {
	objstore.Store
	objstore.BucketCopier
}

// Buckets are two buckets of one endpoint, for RunCrossBucket.
type Buckets struct {
	// Dst is a store on the bucket copies are made into.
	Dst CopierStore
	// Src is a store on the other bucket, named SrcBucket, that copies read.
	Src       objstore.Store
	SrcBucket string
}

// RunCrossBucket checks server-side copies from one bucket into another of the
// same endpoint (objstore.BucketCopier). newBuckets is called once per subtest
// (in parallel subtests) and may hand out the same buckets each time; every
// subtest works under its own key prefix.
func RunCrossBucket(t *testing.T, newBuckets func(t *testing.T) Buckets, caps Capabilities) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, b Buckets, prefix string, caps Capabilities)
	}{
		{"Copy", testCrossBucketCopy},
		{"MissingSource", testCrossBucketMissing},
		{"SpecialKeys", testCrossBucketSpecialKeys},
		{"MultipartCopy", testCrossBucketMultipartCopy},
	}
	t.Run("cross-bucket", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, newBuckets(t), uniquePrefix(tc.name), caps)
			})
		}
	})
}

func putIn(t *testing.T, store objstore.Store, key string, data []byte) {
	t.Helper()
	_, err := store.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	require.NoError(t, err, "put %q", key)
}

func getFrom(t *testing.T, store objstore.Store, key string) []byte {
	t.Helper()
	s := &suite{store: store}
	data, _ := s.get(t, key)
	return data
}

func testCrossBucketCopy(t *testing.T, b Buckets, prefix string, caps Capabilities) {
	data := randomBytes(1<<20 + 3)
	src, dst := prefix+"src", prefix+"dst"
	putIn(t, b.Src, src, data)
	from := b.Dst.CopyingFrom(b.SrcBucket)

	info, err := from.Copy(t.Context(), src, dst)
	require.NoError(t, err)
	require.NotEmpty(t, info.ETag)
	requireCopyCRC(t, info, data, caps.CopyCRC32C)
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(getFrom(t, b.Dst, dst)), "the copy is in the destination bucket")
	_, err = b.Src.Head(t.Context(), dst)
	requireNotFound(t, err, "not in the source bucket")
	_, err = b.Dst.Head(t.Context(), src)
	requireNotFound(t, err, "the source was read from the other bucket")

	t.Run("other-methods-act-on-the-destination-bucket", func(t *testing.T) {
		require.Equal(t, sha256.Sum256(data), sha256.Sum256(getFrom(t, from, dst)))
		head, err := from.Head(t.Context(), dst)
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), head.Size)
		putIn(t, from, prefix+"put", []byte("here"))
		require.Equal(t, []byte("here"), getFrom(t, b.Dst, prefix+"put"))
		page, err := from.List(t.Context(), prefix, "", 0)
		require.NoError(t, err)
		require.Len(t, page.Objects, 2, "dst and put, not src")
		res, err := from.Delete(t.Context(), []string{prefix + "put"})
		require.NoError(t, err)
		require.Empty(t, res.Failed)
		_, err = b.Dst.Head(t.Context(), prefix+"put")
		requireNotFound(t, err)
	})
	t.Run("same-key-in-both-buckets", func(t *testing.T) {
		_, err := from.Copy(t.Context(), src, src)
		require.NoError(t, err)
		require.Equal(t, sha256.Sum256(data), sha256.Sum256(getFrom(t, b.Dst, src)))
		require.Equal(t, sha256.Sum256(data), sha256.Sum256(getFrom(t, b.Src, src)), "the source is untouched")
	})
	t.Run("empty", func(t *testing.T) {
		putIn(t, b.Src, prefix+"empty", nil)
		_, err := from.Copy(t.Context(), prefix+"empty", prefix+"empty-copy")
		require.NoError(t, err)
		head, err := b.Dst.Head(t.Context(), prefix+"empty-copy")
		require.NoError(t, err)
		require.Zero(t, head.Size)
	})
}

func testCrossBucketMissing(t *testing.T, b Buckets, prefix string, caps Capabilities) {
	from := b.Dst.CopyingFrom(b.SrcBucket)
	// The key exists, but in the destination bucket only.
	putIn(t, b.Dst, prefix+"only-in-dst", []byte("not the source"))
	for _, mp := range []bool{false, true} {
		if mp && !caps.MultipartCopy {
			continue // UploadPartCopy fails whatever the source
		}
		var err error
		dst := fmt.Sprintf("%scopy-%v", prefix, mp)
		if mp {
			_, err = from.MultipartCopy(t.Context(), prefix+"only-in-dst", dst, 14, minPartSize)
		} else {
			_, err = from.Copy(t.Context(), prefix+"only-in-dst", dst)
		}
		requireNotFound(t, err, "multipart=%v", mp)
		_, err = b.Dst.Head(t.Context(), dst)
		requireNotFound(t, err, "a failed copy leaves no destination")
	}
}

func testCrossBucketSpecialKeys(t *testing.T, b Buckets, prefix string, _ Capabilities) {
	from := b.Dst.CopyingFrom(b.SrcBucket)
	for i, name := range []string{"spaces/a b  c ", "plus/a+b+c", "percent/100%/%41%2F", "unicode/日本語/ü", "query-like/a?b=c&d#frag"} {
		key := prefix + name
		data := []byte(fmt.Sprintf("content %d of %q", i, name))
		putIn(t, b.Src, key, data)
		_, err := from.Copy(t.Context(), key, key+"-copy")
		require.NoError(t, err, "copy %q", key)
		require.Equal(t, data, getFrom(t, b.Dst, key+"-copy"), "%q", key)
	}
}

func testCrossBucketMultipartCopy(t *testing.T, b Buckets, prefix string, caps Capabilities) {
	if !caps.MultipartCopy {
		t.Skip("backend lacks UploadPartCopy")
	}
	data := randomBytes(2*minPartSize + 777) // three parts, the last one short
	src, dst := prefix+"src", prefix+"dst"
	putIn(t, b.Src, src, data)
	info, err := b.Dst.CopyingFrom(b.SrcBucket).MultipartCopy(t.Context(), src, dst, int64(len(data)), minPartSize)
	require.NoError(t, err)
	requireCopyCRC(t, info, data, caps.MultipartCopyCRC32C)
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(getFrom(t, b.Dst, dst)))
	_, err = b.Src.Head(t.Context(), dst)
	requireNotFound(t, err, "not in the source bucket")
}
