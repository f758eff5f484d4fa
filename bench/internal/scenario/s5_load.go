package scenario

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"syscall"
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
