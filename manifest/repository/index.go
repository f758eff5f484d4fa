package repository

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Errors. Every error of the package that is about the repository's content wraps one
// of these (test with errors.Is); the message names the key and says what is wrong.
var (
	// ErrNotARepository: no format marker under the prefix, a marker of another format,
	// or (Init) a prefix that holds objects but no marker.
	ErrNotARepository = errors.New("not a snapkeep repository")
	// ErrCorrupt: an object of the repository is damaged or inconsistent (bad frame,
	// checksum, JSON, a value out of range, an index of another repository, a manifest
	// whose size or xxhash64 differs from its entry's).
	ErrCorrupt = errors.New("repository corrupt")
	// ErrUnsupportedVersion: the marker or an index generation is of a newer format
	// version than this code reads.
	ErrUnsupportedVersion = errors.New("repository format version not supported")
	// ErrOtherWriter: an update by a cluster that is not the repository's writer (the
	// marker or the latest index generation names another cluster, or none).
	ErrOtherWriter = errors.New("repository written by another cluster")
	// ErrNotFound: no snapshot with that id in the latest index.
	ErrNotFound = errors.New("repository snapshot not found")
)

// Format constants.
const (
	// FormatName is the marker's "format" value.
	FormatName = "snapkeep-repository"
	// Version is the format version this package writes and the newest it reads.
	Version = 1
	// IndexMagic starts every index generation.
	IndexMagic = "SNAPKIDX"
	// IndexHeaderLen is the length of an index generation's frame header.
	IndexHeaderLen = 20
	// MaxIndexJSON bounds an index generation's decompressed JSON (and its compressed
	// body): about half a million entries.
	MaxIndexJSON = 256 << 20
	// MaxManifestSize bounds an entry's manifest_size: OpenManifest holds a manifest
	// in memory (about 8.5 bytes per file: 1 GiB is over 100 million files).
	MaxManifestSize = 1 << 30
)

// Layout names of Entry.Layout.
const (
	LayoutSnapkeep = "snapkeep"
	LayoutMilvus   = "milvus"
)

// Index is one generation of a repository's index: every snapshot the repository
// holds. Generation 0 is the empty index of a repository without index objects.
// An Index is a plain value without synchronization.
type Index struct {
	RepositoryID    string
	Generation      uint64
	WriterClusterID string
	WrittenAt       time.Time
	// Snapshots are sorted by ID, each ID once.
	Snapshots []Entry
}

// Entry is one exported snapshot in the index.
type Entry struct {
	// ID is the repository's id for the exported snapshot (a UUID, see NewID).
	ID string
	// Name, Database and Collection are the snapshot's, database's and collection's
	// names when the snapshot was taken; CollectionID the collection's id in the
	// source cluster.
	Name, Database, Collection string
	CollectionID               uint64
	// SourceClusterID is the exporting cluster; SourceSnapshotID the snapshot's id
	// there.
	SourceClusterID  string
	SourceSnapshotID uint64
	// Layout is the collection's key layout: LayoutSnapkeep or LayoutMilvus.
	Layout string
	// CreatedAt is when the snapshot was taken; ExportedAt when the export finished.
	CreatedAt, ExportedAt time.Time
	// ManifestKey is the manifest's key relative to the repository's prefix:
	// ManifestRel(ID). ManifestSize and ManifestXXHash64 are its size and xxhash64
	// (seed 0) of the whole object.
	ManifestKey      string
	ManifestSize     int64
	ManifestXXHash64 uint64
	// Segments, Rows, Files and Bytes are the manifest's totals.
	Segments uint64
	Rows     int64
	Files    uint64
	Bytes    uint64
	// Labels and Description are the snapshot's.
	Labels      map[string]string
	Description string
}

// NewID returns a random (version 4) UUID in canonical form, for repository ids and
// repository snapshot ids (crypto/rand, which does not fail).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// jsonIndex and jsonEntry are the JSON shapes. uint64 ids are decimal strings and the
// xxhash64 16 hex digits, so tools that read numbers as doubles (jq, JavaScript) keep
// them exact.
type jsonIndex struct {
	RepositoryID    string       `json:"repository_id"`
	Generation      uint64       `json:"generation"`
	WriterClusterID string       `json:"writer_cluster_id"`
	WrittenAt       time.Time    `json:"written_at"`
	Snapshots       *[]jsonEntry `json:"snapshots"` // a pointer: a missing or null array is refused
}

type jsonEntry struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Database         string            `json:"database"`
	Collection       string            `json:"collection"`
	CollectionID     uint64            `json:"collection_id,string"`
	SourceClusterID  string            `json:"source_cluster_id"`
	SourceSnapshotID uint64            `json:"source_snapshot_id,string"`
	Layout           string            `json:"layout"`
	CreatedAt        time.Time         `json:"created_at"`
	ExportedAt       time.Time         `json:"exported_at"`
	ManifestKey      string            `json:"manifest_key"`
	ManifestSize     int64             `json:"manifest_size"`
	ManifestXXHash64 string            `json:"manifest_xxhash64"`
	Segments         uint64            `json:"segments"`
	Rows             int64             `json:"rows"`
	Files            uint64            `json:"files"`
	Bytes            uint64            `json:"bytes"`
	Labels           map[string]string `json:"labels,omitempty"`
	Description      string            `json:"description"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	encOnce sync.Once
	encoder *zstd.Encoder
	encErr  error
)

func indexEncoder() (*zstd.Encoder, error) {
	encOnce.Do(func() {
		encoder, encErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	})
	return encoder, encErr
}

// EncodeIndex encodes an index generation: the frame (magic, version, flags, length,
// CRC-32C) around the zstd-compressed JSON. The index must pass the checks DecodeIndex
// makes (Generation ≥ 1, entries sorted by ID, …); times are written in UTC. The same
// index always gives the same bytes. Safe for concurrent use.
func EncodeIndex(ix *Index) ([]byte, error) {
	if ix == nil {
		return nil, errors.New("repository: encode index: nil index")
	}
	if err := validateIndex(ix); err != nil {
		return nil, fmt.Errorf("repository: encode index generation %d: %s", ix.Generation, err)
	}
	js, err := json.Marshal(toJSON(ix))
	if err != nil {
		return nil, fmt.Errorf("repository: encode index generation %d: %w", ix.Generation, err)
	}
	if len(js) > MaxIndexJSON {
		return nil, fmt.Errorf("repository: index generation %d takes %d bytes of JSON; the limit is %d", ix.Generation, len(js), MaxIndexJSON)
	}
	enc, err := indexEncoder()
	if err != nil {
		return nil, fmt.Errorf("repository: zstd: %w", err)
	}
	out := make([]byte, IndexHeaderLen, IndexHeaderLen+len(js)/4+64)
	out = enc.EncodeAll(js, out)
	body := out[IndexHeaderLen:]
	copy(out, IndexMagic)
	binary.BigEndian.PutUint16(out[8:], Version)
	binary.BigEndian.PutUint16(out[10:], 0)
	binary.BigEndian.PutUint32(out[12:], uint32(len(body)))
	binary.BigEndian.PutUint32(out[16:], frameCRC(out[8:16], body))
	return out, nil
}

// frameCRC is the CRC-32C of the frame's version, flags and length fields followed by
// the body.
func frameCRC(fields, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(fields, castagnoli), castagnoli, body)
}

// DecodeIndex decodes and checks the index generation stored under key (the full key:
// the generation in the JSON must be the one the key names). Any damage gives an error
// wrapping ErrCorrupt that names the key and what is wrong; a newer format version
// gives ErrUnsupportedVersion. It never panics and allocates at most MaxIndexJSON for
// the JSON. Safe for concurrent use.
func DecodeIndex(key string, b []byte) (*Index, error) {
	return decodeIndex(key, b, MaxIndexJSON)
}

func decodeIndex(key string, b []byte, maxJSON int) (*Index, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: index %q: %s", ErrCorrupt, key, fmt.Sprintf(format, args...))
	}
	gen, ok := parseGeneration(key[strings.LastIndexByte(key, '/')+1:])
	if base := key[:max(len(key)-genDigits, 0)]; !ok || (base != indexDir && !strings.HasSuffix(base, "/"+indexDir)) {
		return nil, bad("not an index generation's key (…/index/<20 digits>)")
	}
	if len(b) < IndexHeaderLen {
		return nil, bad("%d bytes: too short for the %d-byte frame header (truncated?)", len(b), IndexHeaderLen)
	}
	if string(b[:8]) != IndexMagic {
		return nil, bad("no %q magic at the start (not an index generation)", IndexMagic)
	}
	n := binary.BigEndian.Uint32(b[12:])
	if uint64(n) != uint64(len(b)-IndexHeaderLen) {
		return nil, bad("the frame says a %d-byte body; %d bytes follow the header (truncated or extended)", n, len(b)-IndexHeaderLen)
	}
	body := b[IndexHeaderLen:]
	if got, want := frameCRC(b[8:16], body), binary.BigEndian.Uint32(b[16:]); got != want {
		return nil, bad("CRC-32C mismatch: computed %08x, the frame says %08x", got, want)
	}
	switch v := binary.BigEndian.Uint16(b[8:]); {
	case v == 0:
		return nil, bad("format version 0")
	case v > Version:
		return nil, fmt.Errorf("%w: index %q is format version %d; this reader supports versions 1 to %d (upgrade snapkeep to read it)",
			ErrUnsupportedVersion, key, v, Version)
	}
	if f := binary.BigEndian.Uint16(b[10:]); f != 0 {
		return nil, bad("unknown flags %04x", f)
	}
	if len(body) > maxJSON {
		return nil, bad("a body of %d bytes is over the limit of %d", len(body), maxJSON)
	}
	js, err := decompress(body, maxJSON)
	if err != nil {
		return nil, bad("%v", err)
	}
	var j jsonIndex
	if err := json.Unmarshal(js, &j); err != nil {
		return nil, bad("JSON: %v", err)
	}
	if j.Snapshots == nil {
		return nil, bad("JSON: no snapshots array")
	}
	ix, err := fromJSON(&j)
	if err != nil {
		return nil, bad("%v", err)
	}
	if ix.Generation != gen {
		return nil, bad("holds generation %d, not the key's %d", ix.Generation, gen)
	}
	if err := validateIndex(ix); err != nil {
		return nil, bad("%v", err)
	}
	return ix, nil
}

// decompress inflates one zstd body into at most limit bytes, with a decoder of its
// own (streaming, so memory follows the actual output, never a size read from input).
func decompress(body []byte, limit int) ([]byte, error) {
	dec, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(uint64(limit)), zstd.WithDecoderMaxWindow(uint64(max(limit, zstd.MinWindowSize))))
	if err != nil {
		return nil, fmt.Errorf("zstd: %v", err)
	}
	defer dec.Close()
	js, err := io.ReadAll(io.LimitReader(dec, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("zstd: %v", err)
	}
	if len(js) > limit {
		return nil, fmt.Errorf("the JSON is over the limit of %d bytes", limit)
	}
	return js, nil
}

func toJSON(ix *Index) *jsonIndex {
	snaps := make([]jsonEntry, len(ix.Snapshots))
	j := &jsonIndex{
		RepositoryID: ix.RepositoryID, Generation: ix.Generation, WriterClusterID: ix.WriterClusterID,
		WrittenAt: utc(ix.WrittenAt), Snapshots: &snaps,
	}
	for i, e := range ix.Snapshots {
		snaps[i] = jsonEntry{
			ID: e.ID, Name: e.Name, Database: e.Database, Collection: e.Collection, CollectionID: e.CollectionID,
			SourceClusterID: e.SourceClusterID, SourceSnapshotID: e.SourceSnapshotID, Layout: e.Layout,
			CreatedAt: utc(e.CreatedAt), ExportedAt: utc(e.ExportedAt), ManifestKey: e.ManifestKey,
			ManifestSize: e.ManifestSize, ManifestXXHash64: fmt.Sprintf("%016x", e.ManifestXXHash64),
			Segments: e.Segments, Rows: e.Rows, Files: e.Files, Bytes: e.Bytes,
			Labels: e.Labels, Description: e.Description,
		}
		if len(e.Labels) == 0 {
			snaps[i].Labels = nil
		}
	}
	return j
}

func fromJSON(j *jsonIndex) (*Index, error) {
	ix := &Index{
		RepositoryID: j.RepositoryID, Generation: j.Generation, WriterClusterID: j.WriterClusterID,
		WrittenAt: utc(j.WrittenAt), Snapshots: make([]Entry, len(*j.Snapshots)),
	}
	for i, e := range *j.Snapshots {
		h, err := parseHash64(e.ManifestXXHash64)
		if err != nil {
			return nil, fmt.Errorf("snapshot %d (%q): manifest_xxhash64: %v", i, e.ID, err)
		}
		ix.Snapshots[i] = Entry{
			ID: e.ID, Name: e.Name, Database: e.Database, Collection: e.Collection, CollectionID: e.CollectionID,
			SourceClusterID: e.SourceClusterID, SourceSnapshotID: e.SourceSnapshotID, Layout: e.Layout,
			CreatedAt: utc(e.CreatedAt), ExportedAt: utc(e.ExportedAt), ManifestKey: e.ManifestKey,
			ManifestSize: e.ManifestSize, ManifestXXHash64: h,
			Segments: e.Segments, Rows: e.Rows, Files: e.Files, Bytes: e.Bytes,
			Labels: e.Labels, Description: e.Description,
		}
		if len(e.Labels) == 0 {
			ix.Snapshots[i].Labels = nil
		}
	}
	return ix, nil
}

// parseHash64 parses exactly 16 lowercase hex digits.
func parseHash64(s string) (uint64, error) {
	if len(s) != 16 || strings.ToLower(s) != s {
		return 0, fmt.Errorf("%q is not 16 lowercase hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not 16 lowercase hex digits", s)
	}
	return v, nil
}

// utc is t in UTC without a monotonic clock reading, as it reads back from JSON.
func utc(t time.Time) time.Time { return t.UTC().Round(0) }

// validateIndex checks an index's values (not its generation against a key).
func validateIndex(ix *Index) error {
	switch {
	case !ValidID(ix.RepositoryID):
		return fmt.Errorf("repository_id %q is not a UUID", ix.RepositoryID)
	case ix.Generation == 0:
		return fmt.Errorf("generation 0 is the empty index and is never stored")
	case ix.WrittenAt.IsZero():
		return fmt.Errorf("written_at is missing")
	}
	if err := checkTime("written_at", ix.WrittenAt); err != nil {
		return err
	}
	if err := CheckClusterID(ix.WriterClusterID); err != nil {
		return fmt.Errorf("writer_cluster_id: %v", err)
	}
	for i := range ix.Snapshots {
		e := &ix.Snapshots[i]
		if err := validateEntry(e); err != nil {
			return fmt.Errorf("snapshot %d (%q): %v", i, e.ID, err)
		}
		if i > 0 {
			switch p := ix.Snapshots[i-1].ID; {
			case p == e.ID:
				return fmt.Errorf("snapshot id %q is listed twice", e.ID)
			case p > e.ID:
				return fmt.Errorf("snapshots are not sorted by id: %q comes after %q", e.ID, p)
			}
		}
	}
	return nil
}

func validateEntry(e *Entry) error {
	switch {
	case !ValidID(e.ID):
		return fmt.Errorf("id is not a UUID")
	case e.Layout != LayoutSnapkeep && e.Layout != LayoutMilvus:
		return fmt.Errorf("layout %q is neither %q nor %q", e.Layout, LayoutSnapkeep, LayoutMilvus)
	case e.ManifestKey != ManifestRel(e.ID):
		return fmt.Errorf("manifest_key %q is not %q", e.ManifestKey, ManifestRel(e.ID))
	case e.ManifestSize <= 0 || e.ManifestSize > MaxManifestSize:
		return fmt.Errorf("manifest_size %d is out of range (1 to %d)", e.ManifestSize, MaxManifestSize)
	case e.Rows < 0:
		return fmt.Errorf("rows %d is negative", e.Rows)
	case e.ExportedAt.IsZero():
		return fmt.Errorf("exported_at is missing")
	}
	if err := CheckClusterID(e.SourceClusterID); err != nil {
		return fmt.Errorf("source_cluster_id: %v", err)
	}
	if err := checkTime("created_at", e.CreatedAt); err != nil {
		return err
	}
	return checkTime("exported_at", e.ExportedAt)
}

// checkTime refuses a time RFC 3339 cannot write in UTC (years 0 to 9999).
func checkTime(name string, t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%s: year %d is out of range", name, y)
	}
	return nil
}

// sortEntries puts entries in index order (by id).
func sortEntries(es []Entry) {
	slices.SortStableFunc(es, func(a, b Entry) int { return cmp.Compare(a.ID, b.ID) })
}

// clone returns a deep copy of ix.
func (ix *Index) clone() *Index {
	c := *ix
	c.Snapshots = slices.Clone(ix.Snapshots)
	for i := range c.Snapshots {
		c.Snapshots[i].Labels = maps.Clone(c.Snapshots[i].Labels)
	}
	if c.Snapshots == nil {
		c.Snapshots = []Entry{}
	}
	return &c
}

// Find returns the entry with the given id, by binary search: Snapshots must be sorted
// by id, as they are in every index Latest, Update and DecodeIndex return. It only
// reads ix.
func (ix *Index) Find(id string) (Entry, bool) {
	i, ok := slices.BinarySearchFunc(ix.Snapshots, id, func(e Entry, id string) int { return cmp.Compare(e.ID, id) })
	if !ok {
		return Entry{}, false
	}
	return ix.Snapshots[i], true
}
