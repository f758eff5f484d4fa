package scenario

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// posixWriter writes objects straight into versitygw's posix directory, the way its
// PutObject leaves them: the file at the key under the bucket's directory, with the
// ETag, the CRC-32C checksum and the content type in the same xattrs. Scenario 5 needs
// 200,000 objects and versitygw takes PUTs at under 1,000/s on the shared two cores,
// while what it measures — listing them — reads the directory tree and these xattrs,
// and sees these objects exactly as it would uploaded ones.
type posixWriter struct {
	bucketDir string
}

func newPosixWriter(dir, bucket string) *posixWriter {
	return &posixWriter{bucketDir: filepath.Join(dir, bucket)}
}

// put writes body under key and returns its CRC-32C.
func (w *posixWriter) put(key string, body []byte) (uint32, error) {
	path := filepath.Join(w.bucketDir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return 0, err
	}
	sum := crc32.Checksum(body, castagnoli)
	for _, x := range posixXattrs(body, sum) {
		if err := syscall.Setxattr(path, x[0], []byte(x[1]), 0); err != nil {
			return 0, fmt.Errorf("set %s on %s: %w", x[0], path, err)
		}
	}
	return sum, nil
}

// posixXattrs are the xattrs versitygw's posix backend sets on a PUT object (as read
// back from one: the quoted MD5 ETag, the checksum record, the content type).
func posixXattrs(body []byte, crc uint32) [][2]string {
	md := md5.Sum(body)
	var c [4]byte
	binary.BigEndian.PutUint32(c[:], crc)
	checksums := `{"Algorithm":"CRC32C","Type":"FULL_OBJECT","CRC32":null,"CRC32C":"` + base64.StdEncoding.EncodeToString(c[:]) +
		`","SHA1":null,"SHA256":null,"CRC64NVME":null,"SHA512":null,"MD5":null,"XXHASH64":null,"XXHASH3":null,"XXHASH128":null}`
	return [][2]string{
		{"user.etag", `"` + hex.EncodeToString(md[:]) + `"`},
		{"user.checksums", checksums},
		{"user.content-type", "application/octet-stream"},
	}
}

// segmentLoad registers flushed segments of a collection whose files are written
// straight into versitygw's posix directory (posixWriter): for each, AllocateSegment,
// the files of layout under the segment's prefix, then FlushSegment with their sizes
// and CRC-32C — two Raft entries per segment, no PUT. Scenarios 5 and 10 load this way.
type segmentLoad struct {
	cl     *client.Client
	w      *posixWriter
	coll   string
	layout []datagen.FileSpec
	// body is the content of file number file (in layout order) of segment number
	// seg (in load order) at key.
	body func(seg, file int, key string) []byte
	// extra, when set, runs after segment number seg's files are written and before
	// its flush (scenario 5: an upload its file list leaves out).
	extra func(seg int, s *pb.Segment) error
}

// keyBody is a small file's content: 16 hex digits of its key's CRC-32 (IEEE).
func keyBody(_, _ int, key string) []byte {
	return []byte(fmt.Sprintf("%016x", crc32.ChecksumIEEE([]byte(key))))
}

// one loads segment number i.
func (l segmentLoad) one(ctx context.Context, i int) error {
	seg, err := l.cl.AllocateSegment(ctx, client.NewAllocateSegmentOption(l.coll))
	if err != nil {
		return fmt.Errorf("allocate segment: %w", err)
	}
	files := make([]*pb.File, 0, len(l.layout))
	for j, spec := range l.layout {
		key := datagen.Key(seg.Prefix, spec)
		body := l.body(i, j, key)
		sum, err := l.w.put(key, body)
		if err != nil {
			return err
		}
		files = append(files, &pb.File{Key: key, Kind: spec.Kind, FieldId: spec.FieldID, Size: uint64(len(body)), Crc32C: sum})
	}
	if l.extra != nil {
		if err := l.extra(i, seg); err != nil {
			return err
		}
	}
	if _, err := l.cl.FlushSegment(ctx, client.NewFlushSegmentOption(seg.Id).WithRowCount(1).WithFiles(files...)); err != nil {
		return fmt.Errorf("flush segment %d: %w", seg.Id, err)
	}
	return nil
}

// inParallel runs f(ctx, i) for every i in [0, n) from workers goroutines taking the
// next i in turn; the first error cancels ctx for the others and is returned.
func inParallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if ctx.Err() != nil {
					return
				}
				if err := f(ctx, int(i)); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}
