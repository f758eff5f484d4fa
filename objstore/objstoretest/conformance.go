// Package objstoretest is a conformance suite for objstore.Store
// implementations: every backend snapkeep runs against must pass it, minus the
// features its Capabilities rule out.
package objstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
)

// Capabilities lists optional S3 features; the tests needing a missing one are
// skipped with the reason.
type Capabilities struct {
	// MultipartCopy: the server implements UploadPartCopy.
	MultipartCopy bool
	// CRC32C: the server verifies an uploaded x-amz-checksum-crc32c (refusing a
	// wrong one) and reports it back on HEAD.
	CRC32C bool
	// CopyCRC32C: CopyObject with x-amz-checksum-algorithm CRC32C returns the
	// copy's CRC-32C in its response.
	CopyCRC32C bool
	// MultipartCopyCRC32C: a multipart copy (FULL_OBJECT CRC32C) of a source
	// uploaded without a checksum returns the full-object CRC-32C.
	MultipartCopyCRC32C bool
}

// minPartSize is the smallest part S3 accepts, except for the last one.
const minPartSize = 5 << 20

// Run runs the suite. newStore is called once per subtest (in parallel
// subtests) and may hand out the same server each time; every subtest works
// under its own key prefix. Run returns when all subtests are done.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store, caps Capabilities) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s *suite)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"Missing", testMissing},
		{"Head", testHead},
		{"GetRange", testGetRange},
		{"Copy", testCopy},
		{"MultipartCopy", testMultipartCopy},
		{"PutMultipart", testPutMultipart},
		{"SpecialKeys", testSpecialKeys},
		{"ListPagination", testListPagination},
		{"Delete", testDelete},
		{"CRC32CAccepted", testCRC32CAccepted},
		{"ConditionalCreate", testConditionalCreate},
		{"CRC32CVerified", testCRC32CVerified},
		{"SizeMismatch", testSizeMismatch},
		{"Concurrent", testConcurrent},
		{"ContextCanceled", testContextCanceled},
	}
	t.Run("conformance", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, &suite{
					store:  newStore(t),
					prefix: uniquePrefix(tc.name),
					caps:   caps,
				})
			})
		}
	})
}

type suite struct {
	store  objstore.Store
	prefix string // every key a subtest touches starts with it
	caps   Capabilities
}

func (s *suite) key(name string) string { return s.prefix + name }

// uniquePrefix keeps subtests, and runs against a server that keeps its data,
// from seeing each other's keys.
func uniquePrefix(name string) string {
	return fmt.Sprintf("conformance-%s/%s/", randomHex(6), name)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func crc32c(data []byte) uint32 {
	return crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
}

// onlyReader hides every method but Read, as a network stream or pipe would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func (s *suite) put(t *testing.T, key string, data []byte) objstore.ObjectInfo {
	t.Helper()
	info, err := s.store.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	require.NoError(t, err, "put %q", key)
	return info
}

func (s *suite) get(t *testing.T, key string) ([]byte, objstore.ObjectInfo) {
	t.Helper()
	rc, info, err := s.store.Get(t.Context(), key)
	require.NoError(t, err, "get %q", key)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err, "read %q", key)
	return data, info
}

func (s *suite) getRange(t *testing.T, key string, offset, length int64) ([]byte, error) {
	t.Helper()
	rc, err := s.store.GetRange(t.Context(), key, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// listAll pages through prefix and returns the keys in the order listed.
func (s *suite) listAll(t *testing.T, prefix string, pageSize int) []string {
	t.Helper()
	var keys []string
	token := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10000, "listing %q does not end", prefix)
		page, err := s.store.List(t.Context(), prefix, token, pageSize)
		require.NoError(t, err, "list %q", prefix)
		if pageSize > 0 {
			require.LessOrEqual(t, len(page.Objects), pageSize, "page larger than asked for")
		}
		for _, obj := range page.Objects {
			keys = append(keys, obj.Key)
		}
		if page.NextToken == "" {
			return keys
		}
		token = page.NextToken
	}
}

// requireCopyCRC checks a copy's reported CRC-32C against the content: it
// must be there when required, and right whenever it is there.
func requireCopyCRC(t *testing.T, info objstore.CopyInfo, data []byte, required bool) {
	t.Helper()
	if required {
		require.True(t, info.HasCRC32C, "the copy response carries a CRC-32C")
	}
	if info.HasCRC32C {
		require.Equal(t, crc32c(data), info.CRC32C, "the copy response's CRC-32C is the content's")
	}
}

// requireHeadCRC checks that a CRC-32C that HEAD reports for key is the content's.
func requireHeadCRC(t *testing.T, s *suite, key string, data []byte) {
	t.Helper()
	head, err := s.store.Head(t.Context(), key)
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), head.Size)
	if head.HasCRC32C {
		require.Equal(t, crc32c(data), head.CRC32C, "HEAD's CRC-32C of %q is the content's", key)
	}
}

func requireNotFound(t *testing.T, err error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.ErrorIs(t, err, objstore.ErrNotFound, msgAndArgs...)
}

func testPutGet(t *testing.T, s *suite) {
	cases := []struct {
		name     string
		size     int
		seekable bool
	}{
		{"empty", 0, true},
		{"one-byte", 1, true},
		{"5MiB", 5<<20 + 123, true},
		{"non-seekable", 1<<20 + 7, false},
		{"non-seekable-empty", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := s.key(tc.name)
			data := randomBytes(tc.size)
			var body io.Reader = bytes.NewReader(data)
			if !tc.seekable {
				body = onlyReader{body}
			}
			info, err := s.store.Put(t.Context(), key, body, int64(len(data)), objstore.PutOptions{})
			require.NoError(t, err)
			require.Equal(t, key, info.Key)
			require.Equal(t, int64(len(data)), info.Size)
			require.NotEmpty(t, info.ETag)
			require.False(t, strings.HasPrefix(info.ETag, `"`), "ETag %s keeps its quotes", info.ETag)

			got, getInfo := s.get(t, key)
			require.Equal(t, sha256.Sum256(data), sha256.Sum256(got), "content differs")
			require.Equal(t, int64(len(data)), getInfo.Size)
			require.Equal(t, info.ETag, getInfo.ETag)
		})
	}
}

func testOverwrite(t *testing.T, s *suite) {
	key := s.key("obj")
	first := s.put(t, key, []byte("first version, longer than the second"))
	second := s.put(t, key, []byte("second"))
	require.NotEqual(t, first.ETag, second.ETag)

	got, _ := s.get(t, key)
	require.Equal(t, "second", string(got))
	head, err := s.store.Head(t.Context(), key)
	require.NoError(t, err)
	require.Equal(t, int64(len("second")), head.Size)
	require.Equal(t, second.ETag, head.ETag)
}

func testMissing(t *testing.T, s *suite) {
	key := s.key("never-written")
	_, _, err := s.store.Get(t.Context(), key)
	requireNotFound(t, err, "get")
	require.Contains(t, err.Error(), key, "error names the key")

	_, err = s.store.Head(t.Context(), key)
	requireNotFound(t, err, "head")
	require.Contains(t, err.Error(), key, "error names the key")

	_, err = s.store.GetRange(t.Context(), key, 0, 10)
	requireNotFound(t, err, "get range")

	_, err = s.store.GetRange(t.Context(), key, 0, 0)
	requireNotFound(t, err, "get empty range")
}

func testHead(t *testing.T, s *suite) {
	key := s.key("obj")
	data := randomBytes(4321)
	// Servers keep whole seconds; allow for that and a little clock skew.
	before := time.Now().Add(-2 * time.Minute)
	put := s.put(t, key, data)
	after := time.Now().Add(2 * time.Minute)

	head, err := s.store.Head(t.Context(), key)
	require.NoError(t, err)
	require.Equal(t, key, head.Key)
	require.Equal(t, int64(len(data)), head.Size)
	require.Equal(t, put.ETag, head.ETag)
	require.NotEmpty(t, head.ETag)
	require.WithinRange(t, head.LastModified, before, after)
}

func testGetRange(t *testing.T, s *suite) {
	key := s.key("obj")
	data := randomBytes(1000)
	s.put(t, key, data)

	cases := []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"middle", 100, 200, data[100:300]},
		{"first-byte", 0, 1, data[:1]},
		{"last-byte", 999, 1, data[999:]},
		{"to-end", 900, -1, data[900:]},
		{"whole", 0, -1, data},
		{"past-end-is-cut-short", 950, 100, data[950:]},
		{"empty", 500, 0, []byte{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.getRange(t, key, tc.offset, tc.length)
			require.NoError(t, err)
			require.Equal(t, tc.want, append([]byte{}, got...))
		})
	}

	t.Run("empty-object", func(t *testing.T) {
		emptyKey := s.key("empty")
		s.put(t, emptyKey, nil)
		for _, length := range []int64{-1, 0, 10} {
			got, err := s.getRange(t, emptyKey, 0, length)
			require.NoError(t, err, "length %d", length)
			require.Empty(t, got, "length %d", length)
		}
	})
	t.Run("offset-at-end-is-an-error", func(t *testing.T) {
		_, err := s.getRange(t, key, 1000, 10)
		require.Error(t, err)
		require.NotErrorIs(t, err, objstore.ErrNotFound)
	})
	t.Run("negative-offset-is-an-error", func(t *testing.T) {
		_, err := s.getRange(t, key, -1, 10)
		require.Error(t, err)
	})
}

func testCopy(t *testing.T, s *suite) {
	src, dst := s.key("src"), s.key("dst")
	data := randomBytes(1<<20 + 3)
	s.put(t, src, data)

	info, err := s.store.Copy(t.Context(), src, dst)
	require.NoError(t, err)
	require.NotEmpty(t, info.ETag)
	requireCopyCRC(t, info, data, s.caps.CopyCRC32C)

	got, _ := s.get(t, dst)
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(got), "copy differs from source")
	head, err := s.store.Head(t.Context(), dst)
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), head.Size)

	// The source is untouched.
	got, _ = s.get(t, src)
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(got))

	t.Run("source-with-crc32c", func(t *testing.T) {
		// The copy's checksum is the content's, whatever the source carries.
		data := randomBytes(70000)
		_, err := s.store.Put(t.Context(), s.key("crc-src"), bytes.NewReader(data), int64(len(data)),
			objstore.PutOptions{CRC32C: crc32c(data), HasCRC32C: true})
		require.NoError(t, err)
		info, err := s.store.Copy(t.Context(), s.key("crc-src"), s.key("crc-dst"))
		require.NoError(t, err)
		requireCopyCRC(t, info, data, s.caps.CopyCRC32C)
		got, _ := s.get(t, s.key("crc-dst"))
		require.Equal(t, data, got)
		requireHeadCRC(t, s, s.key("crc-dst"), data)
	})
	t.Run("empty", func(t *testing.T) {
		s.put(t, s.key("empty"), nil)
		info, err := s.store.Copy(t.Context(), s.key("empty"), s.key("empty-copy"))
		require.NoError(t, err)
		requireCopyCRC(t, info, nil, s.caps.CopyCRC32C)
		head, err := s.store.Head(t.Context(), s.key("empty-copy"))
		require.NoError(t, err)
		require.Zero(t, head.Size)
	})
	t.Run("missing-source", func(t *testing.T) {
		_, err := s.store.Copy(t.Context(), s.key("no-such-src"), s.key("dst2"))
		requireNotFound(t, err)
		_, err = s.store.Head(t.Context(), s.key("dst2"))
		requireNotFound(t, err, "a failed copy leaves no destination")
	})
}

func testMultipartCopy(t *testing.T, s *suite) {
	if !s.caps.MultipartCopy {
		t.Skip("backend lacks UploadPartCopy")
	}
	src, dst := s.key("src"), s.key("dst")
	data := randomBytes(2*minPartSize + 12345) // three parts, the last one short
	s.put(t, src, data)

	info, err := s.store.MultipartCopy(t.Context(), src, dst, int64(len(data)), minPartSize)
	require.NoError(t, err)
	require.NotEmpty(t, info.ETag)
	requireCopyCRC(t, info, data, s.caps.MultipartCopyCRC32C)

	got, _ := s.get(t, dst)
	require.Equal(t, len(data), len(got))
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(got), "multipart copy differs from source")
	requireHeadCRC(t, s, dst, data)

	t.Run("source-with-crc32c", func(t *testing.T) {
		// A source that carries a CRC-32C of its own: whatever checksum the
		// copy reports, and the destination keeps, must be the content's.
		data := randomBytes(2*minPartSize + 777)
		_, err := s.store.Put(t.Context(), s.key("crc-src"), bytes.NewReader(data), int64(len(data)),
			objstore.PutOptions{CRC32C: crc32c(data), HasCRC32C: true})
		require.NoError(t, err)
		for _, dst := range []string{s.key("crc-dst1"), s.key("crc-dst2")} {
			info, err := s.store.MultipartCopy(t.Context(), s.key("crc-src"), dst, int64(len(data)), minPartSize)
			require.NoError(t, err)
			requireCopyCRC(t, info, data, false)
			got, _ := s.get(t, dst)
			require.Equal(t, sha256.Sum256(data), sha256.Sum256(got))
			requireHeadCRC(t, s, dst, data)
		}
	})

	t.Run("single-part", func(t *testing.T) {
		small := randomBytes(1000)
		s.put(t, s.key("small"), small)
		_, err := s.store.MultipartCopy(t.Context(), s.key("small"), s.key("small-copy"), int64(len(small)), minPartSize)
		require.NoError(t, err)
		got, _ := s.get(t, s.key("small-copy"))
		require.Equal(t, small, got)
	})
	t.Run("missing-source", func(t *testing.T) {
		_, err := s.store.MultipartCopy(t.Context(), s.key("no-such-src"), s.key("dst2"), 3*minPartSize, minPartSize)
		requireNotFound(t, err)
		_, err = s.store.Head(t.Context(), s.key("dst2"))
		requireNotFound(t, err, "a failed copy leaves no destination")
	})
	t.Run("invalid-part-size", func(t *testing.T) {
		_, err := s.store.MultipartCopy(t.Context(), src, s.key("dst3"), int64(len(data)), 0)
		require.Error(t, err)
	})
}

// failAtEnd passes on all of r but its last byte, then fails with err: a
// stream that breaks off, or a caller that withholds the end of a body it found wrong.
type failAtEnd struct {
	r    io.Reader
	left int64 // bytes of r to pass on
	err  error
}

func (f *failAtEnd) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= int64(n)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func testPutMultipart(t *testing.T, s *suite) {
	data := randomBytes(2*minPartSize + 12345) // three parts, the last one short
	key := s.key("obj")
	info, err := s.store.PutMultipart(t.Context(), key, onlyReader{bytes.NewReader(data)}, int64(len(data)), minPartSize,
		objstore.PutOptions{CRC32C: crc32c(data), HasCRC32C: true})
	require.NoError(t, err)
	require.Equal(t, key, info.Key)
	require.Equal(t, int64(len(data)), info.Size)
	require.NotEmpty(t, info.ETag)
	if s.caps.CRC32C {
		require.True(t, info.HasCRC32C, "the full-object CRC-32C is returned")
	}
	if info.HasCRC32C {
		require.Equal(t, crc32c(data), info.CRC32C)
	}
	got, _ := s.get(t, key)
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(got), "multipart upload differs from its body")
	requireHeadCRC(t, s, key, data)

	t.Run("without-checksum", func(t *testing.T) {
		key := s.key("plain")
		info, err := s.store.PutMultipart(t.Context(), key, onlyReader{bytes.NewReader(data)}, int64(len(data)), minPartSize, objstore.PutOptions{})
		require.NoError(t, err)
		if info.HasCRC32C {
			require.Equal(t, crc32c(data), info.CRC32C, "computed from the parts' CRC-32Cs")
		}
		got, _ := s.get(t, key)
		require.Equal(t, sha256.Sum256(data), sha256.Sum256(got))
	})
	t.Run("single-part", func(t *testing.T) {
		small := randomBytes(1000)
		_, err := s.store.PutMultipart(t.Context(), s.key("small"), bytes.NewReader(small), int64(len(small)), minPartSize,
			objstore.PutOptions{CRC32C: crc32c(small), HasCRC32C: true})
		require.NoError(t, err)
		got, _ := s.get(t, s.key("small"))
		require.Equal(t, small, got)
	})
	t.Run("empty", func(t *testing.T) {
		_, err := s.store.PutMultipart(t.Context(), s.key("empty"), onlyReader{bytes.NewReader(nil)}, 0, minPartSize,
			objstore.PutOptions{HasCRC32C: true})
		require.NoError(t, err)
		head, err := s.store.Head(t.Context(), s.key("empty"))
		require.NoError(t, err)
		require.Zero(t, head.Size)
		_, err = s.store.PutMultipart(t.Context(), s.key("empty-long"), bytes.NewReader([]byte("x")), 0, minPartSize, objstore.PutOptions{})
		require.Error(t, err, "a body longer than its size")
		_, err = s.store.Head(t.Context(), s.key("empty-long"))
		requireNotFound(t, err)
	})
	// Each of these must fail and store nothing; over an existing object, the old
	// content stays.
	bad := []struct {
		name string
		body io.Reader
		size int64
		opts objstore.PutOptions
	}{
		{"wrong-checksum", onlyReader{bytes.NewReader(data)}, int64(len(data)), objstore.PutOptions{CRC32C: crc32c(data) ^ 1, HasCRC32C: true}},
		{"short-body", onlyReader{bytes.NewReader(data[:len(data)-1])}, int64(len(data)), objstore.PutOptions{}},
		{"long-body", onlyReader{bytes.NewReader(append(bytes.Clone(data), 'x'))}, int64(len(data)), objstore.PutOptions{}},
		{"body-fails-at-the-end", &failAtEnd{r: bytes.NewReader(data), left: int64(len(data)) - 1, err: errors.New("withheld")}, int64(len(data)), objstore.PutOptions{}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.store.PutMultipart(t.Context(), s.key(tc.name), tc.body, tc.size, minPartSize, tc.opts)
			require.Error(t, err)
			require.False(t, objstore.IsTransient(err), "%v", err)
			_, err = s.store.Head(t.Context(), s.key(tc.name))
			requireNotFound(t, err, "nothing stored")
		})
	}
	t.Run("failure-keeps-the-old-object", func(t *testing.T) {
		_, err := s.store.PutMultipart(t.Context(), key, onlyReader{bytes.NewReader(data[:len(data)-5])}, int64(len(data)), minPartSize, objstore.PutOptions{})
		require.Error(t, err)
		got, _ := s.get(t, key)
		require.Equal(t, sha256.Sum256(data), sha256.Sum256(got))
	})
	t.Run("invalid", func(t *testing.T) {
		_, err := s.store.PutMultipart(t.Context(), s.key("x"), bytes.NewReader(data), int64(len(data)), 0, objstore.PutOptions{})
		require.Error(t, err)
		_, err = s.store.PutMultipart(t.Context(), s.key("x"), bytes.NewReader(data), int64(len(data)), 1, objstore.PutOptions{})
		require.ErrorContains(t, err, "exceed the limit of 10000 parts")
		_, err = s.store.PutMultipart(t.Context(), s.key("x"), bytes.NewReader(data), -1, minPartSize, objstore.PutOptions{})
		require.Error(t, err)
	})
}

func testSpecialKeys(t *testing.T, s *suite) {
	names := []string{
		"unicode/日本語/ключ/ü",
		"spaces/a b  c ",
		"plus/a+b+c",
		"percent/100%/%41%2F%zz",
		"deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p",
		"punct/!$&'()*,;=:@~._-[]{}^`|",
		"query-like/a?b=c&d#frag",
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			key := s.key(name)
			data := []byte("content of " + name)
			s.put(t, key, data)

			head, err := s.store.Head(t.Context(), key)
			require.NoError(t, err)
			require.Equal(t, int64(len(data)), head.Size)
			got, _ := s.get(t, key)
			require.Equal(t, data, got)

			require.Equal(t, []string{key}, s.listAll(t, key, 0), "list finds exactly this key")

			copyKey := key + " copy+%"
			_, err = s.store.Copy(t.Context(), key, copyKey)
			require.NoError(t, err)
			got, _ = s.get(t, copyKey)
			require.Equal(t, data, got)

			res, err := s.store.Delete(t.Context(), []string{key, copyKey})
			require.NoError(t, err)
			require.Empty(t, res.Failed)
			require.ElementsMatch(t, []string{key, copyKey}, res.Deleted)
			_, err = s.store.Head(t.Context(), key)
			requireNotFound(t, err)
		})
	}
}

func testListPagination(t *testing.T, s *suite) {
	var want []string
	for i := range 24 {
		want = append(want, s.key(fmt.Sprintf("list/key-%02d", i)))
	}
	want = append(want, s.key("list/nested/key")) // listed flat, after "list/key-*"
	// Neighbours that share all but the last bytes of the prefix. Not the key
	// "list" itself: a posix-backed server (versitygw) cannot hold an object
	// that is also a "directory" of other keys.
	neighbours := []string{s.key("lis"), s.key("list-"), s.key("list.x"), s.key("list0"), s.key("lisu/key")}

	var wg sync.WaitGroup
	errs := make(chan error, len(want)+len(neighbours))
	for _, key := range append(append([]string{}, want...), neighbours...) {
		wg.Go(func() {
			_, err := s.store.Put(t.Context(), key, strings.NewReader(key), int64(len(key)), objstore.PutOptions{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	prefix := s.key("list/")
	require.Equal(t, want, s.listAll(t, prefix, 7), "pages of 7")
	require.Equal(t, want, s.listAll(t, prefix, 0), "server's default page size")
	require.Equal(t, want, s.listAll(t, prefix, 1), "pages of 1")

	first, err := s.store.List(t.Context(), prefix, "", 7)
	require.NoError(t, err)
	require.Len(t, first.Objects, 7)
	require.NotEmpty(t, first.NextToken)
	for i, obj := range first.Objects {
		require.Equal(t, int64(len(want[i])), obj.Size)
		require.NotEmpty(t, obj.ETag)
		require.False(t, obj.LastModified.IsZero())
	}

	empty, err := s.store.List(t.Context(), s.key("nothing-here/"), "", 0)
	require.NoError(t, err)
	require.Empty(t, empty.Objects)
	require.Empty(t, empty.NextToken)
}

func testDelete(t *testing.T, s *suite) {
	var keys []string
	for i := range 5 {
		key := s.key(fmt.Sprintf("obj-%d", i))
		s.put(t, key, []byte(key))
		keys = append(keys, key)
	}
	missing := []string{s.key("missing-1"), s.key("missing-2")}

	res, err := s.store.Delete(t.Context(), append(append([]string{}, keys...), missing...))
	require.NoError(t, err)
	require.Empty(t, res.Failed)
	require.ElementsMatch(t, append(append([]string{}, keys...), missing...), res.Deleted,
		"missing keys count as deleted")

	require.Empty(t, s.listAll(t, s.prefix, 0))
	for _, key := range keys {
		_, err := s.store.Head(t.Context(), key)
		requireNotFound(t, err)
	}

	t.Run("none", func(t *testing.T) {
		res, err := s.store.Delete(t.Context(), nil)
		require.NoError(t, err)
		require.Empty(t, res.Deleted)
		require.Empty(t, res.Failed)
	})
	t.Run("too-many", func(t *testing.T) {
		tooMany := make([]string, objstore.MaxDeleteBatch+1)
		for i := range tooMany {
			tooMany[i] = s.key(fmt.Sprintf("bulk-%04d", i))
		}
		_, err := s.store.Delete(t.Context(), tooMany)
		require.Error(t, err)
	})
	t.Run("full-batch", func(t *testing.T) {
		batch := make([]string, objstore.MaxDeleteBatch)
		for i := range batch {
			batch[i] = s.key(fmt.Sprintf("bulk-%04d", i))
		}
		s.put(t, batch[0], []byte("x"))
		res, err := s.store.Delete(t.Context(), batch)
		require.NoError(t, err)
		require.Empty(t, res.Failed)
		require.Len(t, res.Deleted, len(batch))
	})
}

// testCRC32CAccepted: sending a correct checksum works everywhere, whether or
// not the server checks it.
func testCRC32CAccepted(t *testing.T, s *suite) {
	for _, seekable := range []bool{true, false} {
		t.Run(fmt.Sprintf("seekable=%v", seekable), func(t *testing.T) {
			key := s.key(fmt.Sprintf("obj-%v", seekable))
			data := randomBytes(256<<10 + 1)
			var body io.Reader = bytes.NewReader(data)
			if !seekable {
				body = onlyReader{body}
			}
			_, err := s.store.Put(t.Context(), key, body, int64(len(data)),
				objstore.PutOptions{CRC32C: crc32c(data), HasCRC32C: true, ContentType: "application/x-test"})
			require.NoError(t, err)
			got, _ := s.get(t, key)
			require.Equal(t, sha256.Sum256(data), sha256.Sum256(got))
		})
	}
}

// testConditionalCreate: a Put with IfNoneMatch creates a missing object and is
// refused with ErrPreconditionFailed over an existing one, which keeps its content.
func testConditionalCreate(t *testing.T, s *suite) {
	key := s.key("gen-1")
	_, err := s.store.Put(t.Context(), key, bytes.NewReader([]byte("first")), 5, objstore.PutOptions{IfNoneMatch: true})
	require.NoError(t, err)
	_, err = s.store.Put(t.Context(), key, bytes.NewReader([]byte("second")), 6, objstore.PutOptions{IfNoneMatch: true})
	require.ErrorIs(t, err, objstore.ErrPreconditionFailed)
	require.False(t, objstore.IsTransient(err))
	got, _ := s.get(t, key)
	require.Equal(t, "first", string(got))
	// A plain Put still overwrites.
	_, err = s.store.Put(t.Context(), key, bytes.NewReader([]byte("third")), 5, objstore.PutOptions{})
	require.NoError(t, err)
	got, _ = s.get(t, key)
	require.Equal(t, "third", string(got))
}

// testCRC32CVerified: a server with checksum support reports the stored CRC
// and refuses an upload whose CRC does not match.
func testCRC32CVerified(t *testing.T, s *suite) {
	if !s.caps.CRC32C {
		t.Skip("backend does not verify CRC32C checksums")
	}
	key := s.key("obj")
	data := randomBytes(100_000)
	want := crc32c(data)
	put, err := s.store.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)),
		objstore.PutOptions{CRC32C: want, HasCRC32C: true})
	require.NoError(t, err)
	if put.HasCRC32C {
		require.Equal(t, want, put.CRC32C)
	}

	head, err := s.store.Head(t.Context(), key)
	require.NoError(t, err)
	require.True(t, head.HasCRC32C, "head reports the checksum")
	require.Equal(t, want, head.CRC32C)

	t.Run("wrong-checksum-refused", func(t *testing.T) {
		for _, seekable := range []bool{true, false} {
			badKey := s.key(fmt.Sprintf("bad-%v", seekable))
			var body io.Reader = bytes.NewReader(data)
			if !seekable {
				body = onlyReader{body}
			}
			_, err := s.store.Put(t.Context(), badKey, body, int64(len(data)),
				objstore.PutOptions{CRC32C: want ^ 1, HasCRC32C: true})
			require.Error(t, err, "seekable=%v", seekable)
			_, err = s.store.Head(t.Context(), badKey)
			requireNotFound(t, err, "a refused upload stores nothing")
		}

		// Over an existing object, the old content stays.
		_, err := s.store.Put(t.Context(), key, bytes.NewReader([]byte("other")), 5,
			objstore.PutOptions{CRC32C: want, HasCRC32C: true})
		require.Error(t, err)
		got, _ := s.get(t, key)
		require.Equal(t, sha256.Sum256(data), sha256.Sum256(got))
	})
}

// testSizeMismatch: a body shorter or longer than the declared size fails
// instead of hanging or storing a truncated object.
func testSizeMismatch(t *testing.T, s *suite) {
	cases := []struct {
		name     string
		body     []byte
		size     int64
		seekable bool
	}{
		{"short", []byte("12345"), 10, true},
		{"short-non-seekable", []byte("12345"), 10, false},
		{"long", []byte("1234567890"), 5, true},
		{"long-non-seekable", []byte("1234567890"), 5, false},
		{"negative-size", []byte("x"), -1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var body io.Reader = bytes.NewReader(tc.body)
			if !tc.seekable {
				body = onlyReader{body}
			}
			key := s.key(tc.name)
			_, err := s.store.Put(ctx, key, body, tc.size, objstore.PutOptions{})
			require.Error(t, err)
			require.NoError(t, ctx.Err(), "put hung until the deadline")
			_, err = s.store.Head(t.Context(), key)
			requireNotFound(t, err, "nothing stored")
		})
	}
}

func testConcurrent(t *testing.T, s *suite) {
	const workers = 32
	shared := s.key("shared")
	sharedData := randomBytes(64 << 10)
	s.put(t, shared, sharedData)

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			errs <- concurrentWorker(t.Context(), s, i, shared, sharedData)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, s.listAll(t, s.key("w"), 0), workers)
}

func concurrentWorker(ctx context.Context, s *suite, id int, shared string, sharedData []byte) error {
	key := s.key(fmt.Sprintf("w%02d", id))
	data := randomBytes(32<<10 + id)
	for round := range 3 {
		if _, err := s.store.Put(ctx, key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{}); err != nil {
			return fmt.Errorf("worker %d round %d: %w", id, round, err)
		}
		for _, want := range []struct {
			key  string
			data []byte
		}{{key, data}, {shared, sharedData}} {
			rc, _, err := s.store.Get(ctx, want.key)
			if err != nil {
				return fmt.Errorf("worker %d round %d: %w", id, round, err)
			}
			got, err := io.ReadAll(rc)
			_ = rc.Close()
			if err != nil {
				return fmt.Errorf("worker %d round %d: read %q: %w", id, round, want.key, err)
			}
			if !bytes.Equal(got, want.data) {
				return fmt.Errorf("worker %d round %d: %q: content differs", id, round, want.key)
			}
		}
		if _, err := s.store.Head(ctx, key); err != nil {
			return fmt.Errorf("worker %d round %d: %w", id, round, err)
		}
	}
	return nil
}

// stallingReader yields one byte, then blocks until ctx is done: an upload
// that can only end by cancellation.
type stallingReader struct {
	ctx  context.Context
	sent bool
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if !r.sent && len(p) > 0 {
		r.sent = true
		p[0] = 'x'
		return 1, nil
	}
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func testContextCanceled(t *testing.T, s *suite) {
	key := s.key("obj")
	data := randomBytes(2 << 20)
	s.put(t, key, data)

	// promptly is how long a canceled call may take to return.
	const promptly = 3 * time.Second

	t.Run("before-call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := map[string]func() error{
			"put": func() error {
				_, err := s.store.Put(ctx, s.key("new"), bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
				return err
			},
			"get": func() error {
				rc, _, err := s.store.Get(ctx, key)
				if err == nil {
					rc.Close()
				}
				return err
			},
			"head": func() error { _, err := s.store.Head(ctx, key); return err },
			"list": func() error { _, err := s.store.List(ctx, s.prefix, "", 0); return err },
			"copy": func() error { _, err := s.store.Copy(ctx, key, s.key("copy")); return err },
			"delete": func() error {
				_, err := s.store.Delete(ctx, []string{key})
				return err
			},
		}
		for name, call := range calls {
			start := time.Now()
			err := call()
			require.Error(t, err, name)
			require.ErrorIs(t, err, context.Canceled, name)
			require.Less(t, time.Since(start), promptly, name)
		}
		// None of them went through.
		got, _ := s.get(t, key)
		require.Equal(t, sha256.Sum256(data), sha256.Sum256(got))
	})

	t.Run("during-upload", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		body := &stallingReader{ctx: ctx}
		timer := time.AfterFunc(200*time.Millisecond, cancel)
		defer timer.Stop()
		start := time.Now()
		_, err := s.store.Put(ctx, s.key("stalled"), body, 1<<20, objstore.PutOptions{})
		require.Error(t, err)
		require.Less(t, time.Since(start), promptly)
		_, err = s.store.Head(t.Context(), s.key("stalled"))
		requireNotFound(t, err, "an interrupted upload stores nothing")
	})

	t.Run("during-download", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		rc, _, err := s.store.Get(ctx, key)
		require.NoError(t, err)
		defer rc.Close()
		_, err = io.ReadFull(rc, make([]byte, 1024))
		require.NoError(t, err)
		cancel()
		start := time.Now()
		_, err = io.Copy(io.Discard, rc)
		// The body may have been buffered whole already; if not, reading fails.
		if err != nil {
			require.True(t, errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "canceled"), "%v", err)
		}
		require.Less(t, time.Since(start), promptly)
	})
}
