// Package backupfile is the file format of snapkeep metadata backups: a checksummed header
// followed by a raft snapshot of the FSM (the bytes fsm.FSM.Restore reads).
//
//	offset  size  field
//	0       8     magic "SNAPKBAK"
//	8       2     format version (big-endian), 1
//	10      2     header length in bytes, this field's header included (big-endian)
//	12      8     body length in bytes
//	20      32    SHA-256 of the body
//	52      8     raft index: the last log index applied to the backed-up state
//	60      8     raft term of the node when the backup was taken
//	68      8     created at, unix nanoseconds
//	76      1     node id length n (≤ 128)
//	77      n     node id (UTF-8) of the node that took the backup
//	77+n    4     CRC-32C (Castagnoli) of the header bytes before it
//
// The body follows the header. A reader checks the magic, version, header CRC, then
// the body's length and SHA-256 before anything is restored.
package backupfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"
	"unicode/utf8"
)

// Magic opens every backup file.
const Magic = "SNAPKBAK"

// Version is the format version written; readers refuse others.
const Version = 1

// MaxNodeID bounds the node id stored in a header.
const MaxNodeID = 128

const fixedHeader = 77

// MaxHeaderSize is the largest header.
const MaxHeaderSize = fixedHeader + MaxNodeID + 4

// ErrCorrupt is wrapped by every error about a damaged backup.
var ErrCorrupt = errors.New("corrupt backup")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header describes a backup's body.
type Header struct {
	BodySize  uint64
	SHA256    [32]byte
	Index     uint64
	Term      uint64
	CreatedAt time.Time
	Node      string
}

// Encode returns the header's bytes.
func (h *Header) Encode() ([]byte, error) {
	if len(h.Node) > MaxNodeID || !utf8.ValidString(h.Node) {
		return nil, fmt.Errorf("backup header: node id %q is not 0–%d bytes of UTF-8", h.Node, MaxNodeID)
	}
	b := make([]byte, 0, MaxHeaderSize)
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, Version)
	b = binary.BigEndian.AppendUint16(b, uint16(fixedHeader+len(h.Node)+4))
	b = binary.BigEndian.AppendUint64(b, h.BodySize)
	b = append(b, h.SHA256[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Index)
	b = binary.BigEndian.AppendUint64(b, h.Term)
	b = binary.BigEndian.AppendUint64(b, uint64(h.CreatedAt.UnixNano()))
	b = append(b, byte(len(h.Node)))
	b = append(b, h.Node...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b, nil
}

// DecodeHeader reads a header from the start of data and returns it with its length.
// It never panics; any damage wraps ErrCorrupt.
func DecodeHeader(data []byte) (*Header, int, error) {
	if len(data) < len(Magic) || string(data[:len(Magic)]) != Magic {
		return nil, 0, fmt.Errorf("%w: not a snapkeep backup (bad magic)", ErrCorrupt)
	}
	if len(data) < 12 {
		return nil, 0, fmt.Errorf("%w: header truncated", ErrCorrupt)
	}
	if v := binary.BigEndian.Uint16(data[8:]); v != Version {
		return nil, 0, fmt.Errorf("backup format version %d is not supported (this binary reads version %d)", v, Version)
	}
	size := int(binary.BigEndian.Uint16(data[10:]))
	if size < fixedHeader+4 || size > MaxHeaderSize {
		return nil, 0, fmt.Errorf("%w: bad header length %d", ErrCorrupt, size)
	}
	if len(data) < size {
		return nil, 0, fmt.Errorf("%w: header truncated (%d of %d bytes)", ErrCorrupt, len(data), size)
	}
	if got, want := crc32.Checksum(data[:size-4], castagnoli), binary.BigEndian.Uint32(data[size-4:]); got != want {
		return nil, 0, fmt.Errorf("%w: header checksum mismatch", ErrCorrupt)
	}
	h := &Header{
		BodySize:  binary.BigEndian.Uint64(data[12:]),
		Index:     binary.BigEndian.Uint64(data[52:]),
		Term:      binary.BigEndian.Uint64(data[60:]),
		CreatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(data[68:]))).UTC(),
	}
	copy(h.SHA256[:], data[20:52])
	n := int(data[76])
	if fixedHeader+n+4 != size {
		return nil, 0, fmt.Errorf("%w: node id length %d does not match the header length %d", ErrCorrupt, n, size)
	}
	h.Node = string(data[fixedHeader : fixedHeader+n])
	if !utf8.ValidString(h.Node) {
		return nil, 0, fmt.Errorf("%w: node id is not UTF-8", ErrCorrupt)
	}
	return h, size, nil
}

// ReadHeader reads and decodes a header from r, leaving r at the start of the body.
func ReadHeader(r io.Reader) (*Header, error) {
	buf := make([]byte, 12, MaxHeaderSize)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if string(buf[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: not a snapkeep backup (bad magic)", ErrCorrupt)
	}
	if v := binary.BigEndian.Uint16(buf[8:]); v != Version {
		return nil, fmt.Errorf("backup format version %d is not supported (this binary reads version %d)", v, Version)
	}
	size := int(binary.BigEndian.Uint16(buf[10:]))
	if size < fixedHeader+4 || size > MaxHeaderSize {
		return nil, fmt.Errorf("%w: bad header length %d", ErrCorrupt, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(r, buf[12:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	h, _, err := DecodeHeader(buf)
	return h, err
}

// Verifier checks a body against its header as it is read.
type Verifier struct {
	h   *Header
	r   io.Reader
	sum hash.Hash
	n   uint64
}

// NewVerifier returns a reader of r that counts and hashes the body; call Check at
// the end.
func NewVerifier(h *Header, r io.Reader) *Verifier {
	return &Verifier{h: h, r: r, sum: sha256.New()}
}

func (v *Verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.n += uint64(n)
	v.sum.Write(p[:n])
	if v.n > v.h.BodySize {
		return n, fmt.Errorf("%w: body longer than the %d bytes the header says", ErrCorrupt, v.h.BodySize)
	}
	return n, err
}

// Check reports whether the body read so far is the whole body with the right SHA-256.
func (v *Verifier) Check() error {
	if v.n != v.h.BodySize {
		return fmt.Errorf("%w: body is %d bytes, the header says %d (truncated file?)", ErrCorrupt, v.n, v.h.BodySize)
	}
	if !bytes.Equal(v.sum.Sum(nil), v.h.SHA256[:]) {
		return fmt.Errorf("%w: body SHA-256 does not match the header: the file is damaged; use another backup", ErrCorrupt)
	}
	return nil
}

// VerifyFile checks a whole backup (header and body) read from r and returns the header.
func VerifyFile(r io.Reader) (*Header, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	v := NewVerifier(h, r)
	if _, err := io.Copy(io.Discard, v); err != nil {
		return nil, err
	}
	return h, v.Check()
}

// Write writes a backup of body (read once; its size and SHA-256 must be known, as
// from a spooled file) to w.
func Write(w io.Writer, h *Header, body io.Reader) error {
	head, err := h.Encode()
	if err != nil {
		return err
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	n, err := io.Copy(w, body)
	if err != nil {
		return err
	}
	if uint64(n) != h.BodySize {
		return fmt.Errorf("backup body is %d bytes, expected %d", n, h.BodySize)
	}
	return nil
}
