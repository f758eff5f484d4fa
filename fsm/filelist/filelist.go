// Package filelist is the compact file list of a segment or index build: one blob
// holding every file's key (relative to its owner), kind, field, size, CRC-32C and
// Milvus's per-file metadata. The catalog keeps millions of them in memory and the
// manifest carries them as they are, so both use this codec.
package filelist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/varint"
)

// A file list is kept as one compact blob per segment (and per index build) rather than
// one record per file: the catalog must hold millions of segments in memory, and a
// string plus a struct per file costs three times as much.
//
// Layout (version 1):
//
//	version byte (1) | count uvarint | count × entry
//	entry: kind byte | field id zigzag varint | size uvarint | crc32c uint32 LE |
//	       dir: shared-prefix length uvarint | suffix length uvarint | suffix bytes |
//	       name: 0 | length uvarint | bytes          (any name)
//	          or 1 | zigzag varint delta             (a decimal number, such as a log id)
//
// A key is split at its last '/' into dir and name. Keys are relative to the owner's
// prefix and sorted, so each dir shares most of the one before it, and numeric names
// (Milvus's 18-digit log ids) are stored as small differences from the previous one.
//
// Version 2 adds the vector database's per-file metadata after the crc32c: a presence
// byte (bit 0 log id, 1 entries, 2 timestamp from, 3 timestamp to, 4 memory size),
// then the present values: log id as a zigzag delta from the previous entry's,
// entries uvarint, timestamp from as a zigzag delta from the previous entry's,
// timestamp to as a zigzag difference from timestamp from, memory size uvarint. A list
// without any metadata is written as version 1, so the blobs of earlier log entries are
// rebuilt byte for byte.
//
// Version 3, what lists with metadata are written as now, adds two bits to the
// presence byte, for what Milvus's binlogs repeat: bit 5, the log id is the key's
// numeric name (nothing stored; bit 0 clear); bit 6, entries and both timestamps are
// the previous entry's (nothing stored for them; bits 1–3 clear). Version 2 lists are
// still read, and rewritten as version 3 when a raft snapshot holding them is loaded.

const (
	fileListVersion       = 1
	fileListVersionMetaV2 = 2
	fileListVersionMeta   = 3
)

const (
	metaLogID = 1 << iota
	metaEntries
	metaTSFrom
	metaTSTo
	metaMemorySize
	metaLogIDIsName
	metaSameAsPrevious
)

// metaState is what an entry's metadata is encoded relative to: the entry before it.
type metaState struct {
	log       int64  // the last log id
	ts        uint64 // the last timestamp from
	prev      Entry
	havePrior bool
}

// Entry is one file of a file list; Key is relative to its owner's prefix.
type Entry struct {
	Key     string
	Kind    fsmpb.FileKind
	FieldID int64
	Size    uint64
	CRC32C  uint32
	// The vector database's metadata (Milvus's binlog fields); 0 when not given.
	LogID, Entries, MemorySize int64
	TimestampFrom, TimestampTo uint64
}

// hasMeta reports whether the entry carries per-file metadata.
func (e Entry) hasMeta() bool {
	return e.LogID != 0 || e.Entries != 0 || e.MemorySize != 0 || e.TimestampFrom != 0 || e.TimestampTo != 0
}

var errCorrupt = errors.New("corrupt file list")

// minEntryBytes is the smallest encoded entry: kind, field id, size, crc32c, shared
// length, suffix length, name tag, name.
const minEntryBytes = 1 + 1 + 1 + 4 + 1 + 1 + 1 + 1

// Encode encodes entries into a file list blob, sorted by key; it refuses
// duplicate keys. Commands build their lists through validation (FlushSegment,
// AddIndexBuild); this is for tools and tests that hold entries already.
func Encode(entries []Entry) ([]byte, error) {
	sorted := slices.SortedFunc(slices.Values(entries), func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Key == sorted[i-1].Key {
			return nil, fmt.Errorf("file %q is listed twice", sorted[i].Key)
		}
	}
	return EncodeSorted(sorted), nil
}

// EncodeSorted encodes entries, which must be sorted by key without duplicates (the
// catalog's validation has sorted and checked them).
func EncodeSorted(entries []Entry) []byte {
	if len(entries) == 0 {
		return nil
	}
	withMeta := slices.ContainsFunc(entries, Entry.hasMeta)
	buf := make([]byte, 0, 16+24*len(entries))
	if withMeta {
		buf = append(buf, fileListVersionMeta)
	} else {
		buf = append(buf, fileListVersion)
	}
	buf = binary.AppendUvarint(buf, uint64(len(entries)))
	prevDir, prevNum := "", uint64(0)
	var st metaState
	for _, e := range entries {
		dir, name := splitKey(e.Key)
		shared := commonPrefixLen(prevDir, dir)
		num, numeric := decimalName(name)
		buf = append(buf, byte(e.Kind))
		buf = binary.AppendVarint(buf, e.FieldID)
		buf = binary.AppendUvarint(buf, e.Size)
		buf = binary.LittleEndian.AppendUint32(buf, e.CRC32C)
		if withMeta {
			buf = appendFileMeta(buf, e, numeric && e.LogID != 0 && uint64(e.LogID) == num, &st)
		}
		buf = binary.AppendUvarint(buf, uint64(shared))
		buf = binary.AppendUvarint(buf, uint64(len(dir)-shared))
		buf = append(buf, dir[shared:]...)
		if numeric {
			buf = append(buf, nameNumeric)
			buf = binary.AppendVarint(buf, int64(num-prevNum))
			prevNum = num
		} else {
			buf = append(buf, nameString)
			buf = binary.AppendUvarint(buf, uint64(len(name)))
			buf = append(buf, name...)
		}
		prevDir = dir
	}
	// Trim the capacity estimate: these blobs live as long as the catalog.
	return append([]byte(nil), buf...)
}

const (
	nameString  = 0
	nameNumeric = 1
)

// appendFileMeta appends an entry's metadata (version 3); logIsName says its log id
// is its key's numeric name.
func appendFileMeta(buf []byte, e Entry, logIsName bool, st *metaState) []byte {
	var present byte
	switch {
	case logIsName:
		present |= metaLogIDIsName
	case e.LogID != 0:
		present |= metaLogID
	}
	sameAsPrevious := st.havePrior && (e.Entries != 0 || e.TimestampFrom != 0 || e.TimestampTo != 0) &&
		e.Entries == st.prev.Entries && e.TimestampFrom == st.prev.TimestampFrom && e.TimestampTo == st.prev.TimestampTo
	if sameAsPrevious {
		present |= metaSameAsPrevious
	} else {
		if e.Entries != 0 {
			present |= metaEntries
		}
		if e.TimestampFrom != 0 {
			present |= metaTSFrom
		}
		if e.TimestampTo != 0 {
			present |= metaTSTo
		}
	}
	if e.MemorySize != 0 {
		present |= metaMemorySize
	}
	buf = append(buf, present)
	if present&metaLogID != 0 {
		buf = binary.AppendVarint(buf, e.LogID-st.log)
	}
	if e.LogID != 0 {
		st.log = e.LogID
	}
	if present&metaEntries != 0 {
		buf = binary.AppendVarint(buf, e.Entries)
	}
	if present&metaTSFrom != 0 {
		buf = binary.AppendVarint(buf, int64(e.TimestampFrom-st.ts))
		st.ts = e.TimestampFrom
	}
	if present&metaTSTo != 0 {
		buf = binary.AppendVarint(buf, int64(e.TimestampTo-e.TimestampFrom))
	}
	if present&metaMemorySize != 0 {
		buf = binary.AppendVarint(buf, e.MemorySize)
	}
	st.prev, st.havePrior = e, true
	return buf
}

// readFileMeta reads an entry's metadata (version 2 or 3) into e and returns its
// presence byte: with metaLogIDIsName, the caller sets the log id from the key's name.
func readFileMeta(p []byte, version byte, e *Entry, st *metaState) ([]byte, byte, bool) {
	if len(p) < 1 {
		return p, 0, false
	}
	present := p[0]
	p = p[1:]
	known := byte(metaLogID | metaEntries | metaTSFrom | metaTSTo | metaMemorySize)
	if version == fileListVersionMeta {
		known |= metaLogIDIsName | metaSameAsPrevious
	}
	switch {
	case present&^known != 0,
		present&metaLogIDIsName != 0 && present&metaLogID != 0,
		present&metaSameAsPrevious != 0 && (present&(metaEntries|metaTSFrom|metaTSTo) != 0 || !st.havePrior):
		return p, 0, false
	}
	var v int64
	var ok bool
	if present&metaLogID != 0 {
		if v, p, ok = varint.Varint(p); !ok {
			return p, 0, false
		}
		st.log += v
		e.LogID = st.log
	}
	if present&metaSameAsPrevious != 0 {
		e.Entries, e.TimestampFrom, e.TimestampTo = st.prev.Entries, st.prev.TimestampFrom, st.prev.TimestampTo
	}
	if present&metaEntries != 0 {
		if e.Entries, p, ok = varint.Varint(p); !ok {
			return p, 0, false
		}
	}
	if present&metaTSFrom != 0 {
		if v, p, ok = varint.Varint(p); !ok {
			return p, 0, false
		}
		st.ts += uint64(v)
		e.TimestampFrom = st.ts
	}
	if present&metaTSTo != 0 {
		if v, p, ok = varint.Varint(p); !ok {
			return p, 0, false
		}
		e.TimestampTo = e.TimestampFrom + uint64(v)
	}
	if present&metaMemorySize != 0 {
		if e.MemorySize, p, ok = varint.Varint(p); !ok {
			return p, 0, false
		}
	}
	return p, present, true
}

// splitKey splits a key after its last '/'.
func splitKey(key string) (dir, name string) {
	i := strings.LastIndexByte(key, '/')
	return key[:i+1], key[i+1:]
}

// decimalName parses a name that is exactly the canonical decimal form of a uint64.
func decimalName(name string) (uint64, bool) {
	if name == "" || len(name) > 19 || (name[0] == '0' && len(name) > 1) {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

func commonPrefixLen(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// Count returns how many entries a file list holds without decoding it.
func Count(blob []byte) (int, error) {
	if len(blob) == 0 {
		return 0, nil
	}
	if blob[0] != fileListVersion && blob[0] != fileListVersionMetaV2 && blob[0] != fileListVersionMeta {
		return 0, fmt.Errorf("%w: version %d", errCorrupt, blob[0])
	}
	n, k := binary.Uvarint(blob[1:])
	// Every entry takes at least minEntryBytes, which bounds a sane count.
	if k <= 0 || n > uint64(len(blob))/minEntryBytes {
		return 0, errCorrupt
	}
	return int(n), nil
}

// ForEach calls fn for every entry of an encoded file list, in key order, until fn
// returns false. It never panics on bad input: a malformed blob gives an error.
func ForEach(blob []byte, fn func(Entry) bool) error {
	return walkFileList(blob, true, fn)
}

// ForEachMeta is ForEach without the keys (Key is empty): it allocates
// nothing per file, for totals and counts.
func ForEachMeta(blob []byte, fn func(Entry) bool) error {
	return walkFileList(blob, false, fn)
}

func walkFileList(blob []byte, withKeys bool, fn func(Entry) bool) error {
	count, err := Count(blob)
	if err != nil || count == 0 {
		return err
	}
	version := blob[0]
	withMeta := version != fileListVersion
	p := blob[1:]
	_, k := binary.Uvarint(p)
	p = p[k:]
	// Without keys only the directory's length is tracked (the checks need it): no key
	// is built, which was most of a totals walk's time.
	var dir, key []byte
	if withKeys {
		dir, key = make([]byte, 0, 64), make([]byte, 0, 96)
	}
	dirLen := uint64(0)
	prevNum := uint64(0)
	var st metaState
	for i := 0; i < count; i++ {
		if len(p) < 1 {
			return errCorrupt
		}
		var e Entry
		e.Kind = fsmpb.FileKind(p[0])
		p = p[1:]
		var ok bool
		if e.FieldID, p, ok = varint.Varint(p); !ok {
			return errCorrupt
		}
		if e.Size, p, ok = varint.Uvarint(p); !ok {
			return errCorrupt
		}
		if len(p) < 4 {
			return errCorrupt
		}
		e.CRC32C = binary.LittleEndian.Uint32(p)
		p = p[4:]
		var present byte
		if withMeta {
			if p, present, ok = readFileMeta(p, version, &e, &st); !ok {
				return errCorrupt
			}
		}
		var shared, suffix uint64
		if shared, p, ok = varint.Uvarint(p); !ok || shared > dirLen {
			return errCorrupt
		}
		if suffix, p, ok = varint.Uvarint(p); !ok || suffix > uint64(len(p)) {
			return errCorrupt
		}
		if withKeys {
			dir = append(dir[:shared], p[:suffix]...)
			key = append(key[:0], dir...)
		}
		dirLen = shared + suffix
		p = p[suffix:]
		if len(p) < 1 {
			return errCorrupt
		}
		tag := p[0]
		p = p[1:]
		switch tag {
		case nameNumeric:
			var delta int64
			if delta, p, ok = varint.Varint(p); !ok {
				return errCorrupt
			}
			prevNum += uint64(delta)
			if withKeys {
				key = strconv.AppendUint(key, prevNum, 10)
			}
			if present&metaLogIDIsName != 0 {
				if prevNum == 0 || prevNum > math.MaxInt64 {
					return errCorrupt
				}
				e.LogID, st.log = int64(prevNum), int64(prevNum)
			}
		case nameString:
			var n uint64
			if n, p, ok = varint.Uvarint(p); !ok || n > uint64(len(p)) {
				return errCorrupt
			}
			if present&metaLogIDIsName != 0 {
				return errCorrupt
			}
			if withKeys {
				key = append(key, p[:n]...)
			}
			p = p[n:]
		default:
			return errCorrupt
		}
		if withMeta {
			st.prev, st.havePrior = e, true
		}
		if withKeys {
			e.Key = string(key)
		}
		if !fn(e) {
			return nil
		}
	}
	if len(p) != 0 {
		return errCorrupt
	}
	return nil
}

// Upgrade rewrites a version 2 list as version 3 (the same entries); any
// other list is returned as it is.
func Upgrade(blob []byte) ([]byte, error) {
	if len(blob) == 0 || blob[0] != fileListVersionMetaV2 {
		return blob, nil
	}
	entries, err := Decode(blob)
	if err != nil {
		return nil, err
	}
	return EncodeSorted(entries), nil
}

// maxPreallocated bounds what Decode allocates before reading the entries: a corrupt
// count must not allocate gigabytes.
const maxPreallocated = 10_000

// Decode decodes a whole file list.
func Decode(blob []byte) ([]Entry, error) {
	n, err := Count(blob)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, min(n, maxPreallocated))
	err = ForEach(blob, func(e Entry) bool {
		out = append(out, e)
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Totals sums the sizes of a file list.
func Totals(blob []byte) (files int, bytes uint64, err error) {
	err = ForEachMeta(blob, func(e Entry) bool {
		files++
		bytes += e.Size
		return true
	})
	return files, bytes, err
}
