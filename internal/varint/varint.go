// Package varint reads the varints of snapkeep's compact encodings (file lists, packed
// segment metadata) in the form their decoders walk a buffer: value, the rest, ok.
package varint

import "encoding/binary"

// Uvarint reads an unsigned varint from the front of p; ok is false when p does not
// start with one (too short or overflowing), and then p is returned as it was.
func Uvarint(p []byte) (v uint64, rest []byte, ok bool) {
	v, k := binary.Uvarint(p)
	if k <= 0 {
		return 0, p, false
	}
	return v, p[k:], true
}

// Varint reads a zigzag-encoded signed varint, like Uvarint.
func Varint(p []byte) (v int64, rest []byte, ok bool) {
	v, k := binary.Varint(p)
	if k <= 0 {
		return 0, p, false
	}
	return v, p[k:], true
}
