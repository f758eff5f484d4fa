package fsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Raft snapshot format of the FSM:
//
//	magic "SNAPKFSM" | format version byte | zstd stream of:
//	  records: table tag byte | uvarint length | protobuf record
//	  end:     tag 0 | xxhash64 (big-endian) of every byte before it in the stream
//
// Records come table by table in a fixed order, each table in id order, so the same
// state always gives the same bytes; Hash digests exactly this stream.

const (
	snapshotMagic   = "SNAPKFSM"
	snapshotVersion = 1
	tagEnd          = 0
	// The largest record is a segment with MaxFilesPerSegment files or a collection
	// with a 1 MiB schema: far below this.
	maxSnapshotRecord = 256 << 20
)

// ErrCorruptSnapshot is returned when a raft snapshot of the FSM cannot be read.
var ErrCorruptSnapshot = errors.New("corrupt FSM snapshot")

// section is one table in the snapshot: its tag, how to visit its records and how to
// load one. Adding a table means adding a section; tags are never reused.
type section struct {
	tag  byte
	name string
	each func(t *tables, fn func(proto.Message) bool)
	load func(t *tables, data []byte) error
}

func tableSection[T proto.Message](tag byte, name string, of func(*tables) *table[T]) section {
	return section{
		tag:  tag,
		name: name,
		each: func(t *tables, fn func(proto.Message) bool) {
			of(t).each(func(rec T) bool { return fn(rec) })
		},
		load: func(t *tables, data []byte) error {
			var zero T
			rec := zero.ProtoReflect().New().Interface().(T)
			if err := proto.Unmarshal(data, rec); err != nil {
				return err
			}
			if seg, ok := any(rec).(*fsmpb.Segment); ok {
				if err := upgradeSegment(seg); err != nil {
					return err
				}
			}
			tbl := of(t)
			if _, dup := tbl.get(rec); dup {
				return fmt.Errorf("duplicate record")
			}
			tbl.put(rec)
			return nil
		},
	}
}

var sections = []section{
	{
		tag:  1,
		name: "meta",
		each: func(t *tables, fn func(proto.Message) bool) { fn(t.meta) },
		load: func(t *tables, data []byte) error {
			meta := &fsmpb.Meta{}
			if err := proto.Unmarshal(data, meta); err != nil {
				return err
			}
			t.meta = meta
			return nil
		},
	},
	tableSection(2, "databases", func(t *tables) *table[*fsmpb.Database] { return t.databases }),
	tableSection(3, "collections", func(t *tables) *table[*fsmpb.Collection] { return t.collections }),
	tableSection(4, "segments", func(t *tables) *table[*fsmpb.Segment] { return t.segments }),
	tableSection(5, "nodes", func(t *tables) *table[*fsmpb.Node] { return t.nodes }),
	tableSection(6, "requests", func(t *tables) *table[*fsmpb.RequestRecord] { return t.requests }),
	tableSection(7, "snapshots", func(t *tables) *table[*fsmpb.Snapshot] { return t.snapshots }),
	tableSection(8, "restore jobs", func(t *tables) *table[*fsmpb.RestoreJob] { return t.restoreJobs }),
	tableSection(9, "restore plans", func(t *tables) *table[*fsmpb.RestorePlan] { return t.restorePlans }),
	tableSection(10, "restore leases", func(t *tables) *table[*fsmpb.RestoreLease] { return t.restoreLeases }),
	{
		tag:  11,
		name: "restore pools",
		each: eachRestorePool,
		load: loadRestorePool,
	},
	tableSection(12, "gc reports", func(t *tables) *table[*fsmpb.GCReport] { return t.gcReports }),
	tableSection(13, "repositories", func(t *tables) *table[*fsmpb.Repository] { return t.repositories }),
	tableSection(14, "policies", func(t *tables) *table[*fsmpb.Policy] { return t.policies }),
}

// poolChunk bounds a RestorePool record (ranges and attempted tasks).
const poolChunk = 1 << 16

// eachRestorePool writes the task pools as RestorePool records, one job at a time in
// chunks: the ranges, then the attempts of pooled tasks that failed before.
func eachRestorePool(t *tables, fn func(proto.Message) bool) {
	var cur *fsmpb.RestorePool
	flush := func() bool {
		if cur == nil {
			return true
		}
		ok := fn(cur)
		cur = nil
		return ok
	}
	at := func(job uint64) *fsmpb.RestorePool {
		if cur != nil && (cur.JobId != job || len(cur.Starts)+len(cur.AttemptedTasks) >= poolChunk) {
			if !flush() {
				return nil
			}
		}
		if cur == nil {
			cur = &fsmpb.RestorePool{JobId: job}
		}
		return cur
	}
	stopped := false
	t.restorePool.Ascend(func(r taskRange) bool {
		p := at(r.job)
		if p == nil {
			stopped = true
			return false
		}
		p.Starts = append(p.Starts, r.start)
		p.Ends = append(p.Ends, r.end)
		return true
	})
	if stopped || !flush() {
		return
	}
	t.restoreAttempts.Ascend(func(a taskAttempts) bool {
		p := at(a.job)
		if p == nil {
			stopped = true
			return false
		}
		p.AttemptedTasks = append(p.AttemptedTasks, a.task)
		p.Attempts = append(p.Attempts, a.attempts)
		return true
	})
	if !stopped {
		flush()
	}
}

func loadRestorePool(t *tables, data []byte) error {
	var p fsmpb.RestorePool
	if err := proto.Unmarshal(data, &p); err != nil {
		return err
	}
	if len(p.Starts) != len(p.Ends) || len(p.AttemptedTasks) != len(p.Attempts) {
		return fmt.Errorf("restore pool of job %d: mismatched lists", p.JobId)
	}
	for i := range p.Starts {
		if p.Starts[i] >= p.Ends[i] {
			return fmt.Errorf("restore pool of job %d: empty range", p.JobId)
		}
		if _, dup := t.restorePool.ReplaceOrInsert(taskRange{job: p.JobId, start: p.Starts[i], end: p.Ends[i]}); dup {
			return fmt.Errorf("restore pool of job %d: duplicate range", p.JobId)
		}
	}
	for i, task := range p.AttemptedTasks {
		t.restoreAttempts.ReplaceOrInsert(taskAttempts{job: p.JobId, task: task, attempts: p.Attempts[i]})
	}
	return nil
}

type fsmSnapshot struct {
	t      *tables
	logger *slog.Logger
}

// Persist streams the snapshot to the sink; Apply continues meanwhile.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	n, err := writeSnapshot(sink, s.t)
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist FSM snapshot: %w", err)
	}
	s.logger.Info("FSM snapshot persisted", "records", n) // raft logs how long it took
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// writeSnapshot writes the whole state to w in the snapshot format and returns the
// number of records.
func writeSnapshot(w io.Writer, t *tables) (int, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return 0, err
	}
	if err := bw.WriteByte(snapshotVersion); err != nil {
		return 0, err
	}
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return 0, err
	}
	n, err := writeRecords(zw, t)
	if err != nil {
		zw.Close()
		return n, err
	}
	if err := zw.Close(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// writeRecords writes the record stream, ending with its checksum.
func writeRecords(w io.Writer, t *tables) (n int, err error) {
	return writeSections(w, t, sections)
}

func writeSections(w io.Writer, t *tables, sections []section) (n int, err error) {
	digest := xxhash.New()
	out := io.MultiWriter(w, digest)
	var buf []byte
	marshal := proto.MarshalOptions{Deterministic: true}
	for _, sec := range sections {
		sec.each(t, func(rec proto.Message) bool {
			buf = append(buf[:0], sec.tag)
			buf = binary.AppendUvarint(buf, uint64(marshal.Size(rec)))
			if buf, err = marshal.MarshalAppend(buf, rec); err != nil {
				return false
			}
			if _, err = out.Write(buf); err != nil {
				return false
			}
			n++
			return true
		})
		if err != nil {
			return n, err
		}
	}
	if _, err := out.Write([]byte{tagEnd}); err != nil {
		return n, err
	}
	_, err = w.Write(binary.BigEndian.AppendUint64(nil, digest.Sum64()))
	return n, err
}

// readSnapshot reads a snapshot written by writeSnapshot into new tables. Anything
// malformed gives an error wrapping ErrCorruptSnapshot, never a panic.
func readSnapshot(r io.Reader) (*tables, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorruptSnapshot, err)
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorruptSnapshot)
	}
	if v := head[len(snapshotMagic)]; v != snapshotVersion {
		return nil, fmt.Errorf("FSM snapshot format version %d is not supported (this node reads version %d); upgrade the node", v, snapshotVersion)
	}
	zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return nil, err
	}
	defer zr.Close()

	t := newTables()
	in := &digestReader{r: bufio.NewReaderSize(zr, 1<<16), d: xxhash.New()}
	byTag := map[byte]section{}
	for _, sec := range sections {
		byTag[sec.tag] = sec
	}
	var buf []byte
	for {
		tag, err := in.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
		}
		if tag == tagEnd {
			break
		}
		sec, ok := byTag[tag]
		if !ok {
			return nil, fmt.Errorf("%w: unknown table tag %d", ErrCorruptSnapshot, tag)
		}
		size, err := binary.ReadUvarint(in)
		if err != nil || size > maxSnapshotRecord {
			return nil, fmt.Errorf("%w: bad record length", ErrCorruptSnapshot)
		}
		if buf, err = readChunked(in, buf[:0], int(size)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
		}
		if err := sec.load(t, buf); err != nil {
			return nil, fmt.Errorf("%w: %s record: %v", ErrCorruptSnapshot, sec.name, err)
		}
	}
	// The checksum covers everything up to and including the end tag.
	want := in.d.Sum64()
	var sum [8]byte
	if _, err := io.ReadFull(in.r, sum[:]); err != nil {
		return nil, fmt.Errorf("%w: missing checksum: %v", ErrCorruptSnapshot, err)
	}
	if binary.BigEndian.Uint64(sum[:]) != want {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptSnapshot)
	}
	if _, err := in.r.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the checksum", ErrCorruptSnapshot)
	}
	t.rebuildPins()
	t.rebuildLeasedTasks()
	return t, nil
}

// readChunked reads n bytes into buf, growing it a chunk at a time, so a corrupt length
// costs no more memory than the data that is really there.
func readChunked(r io.Reader, buf []byte, n int) ([]byte, error) {
	const chunk = 1 << 20
	for len(buf) < n {
		step := min(n-len(buf), chunk)
		buf = slices.Grow(buf, step)
		if _, err := io.ReadFull(r, buf[len(buf):len(buf)+step]); err != nil {
			return nil, err
		}
		buf = buf[:len(buf)+step]
	}
	return buf, nil
}

// digestReader hashes exactly the bytes consumed through it.
type digestReader struct {
	r *bufio.Reader
	d *xxhash.Digest
}

func (d *digestReader) ReadByte() (byte, error) {
	b, err := d.r.ReadByte()
	if err == nil {
		d.d.Write([]byte{b})
	}
	return b, err
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.d.Write(p[:n])
	return n, err
}

// CatalogHash is like Hash but covers only the catalog (databases, collections,
// segments, snapshots and the id counter): what a rejected command must never change. Node
// registrations, the request window and the applied index are left out.
func (f *FSM) CatalogHash() string {
	t := f.current()
	h := sha256.New()
	fmt.Fprintf(h, "last_id=%d\n", t.meta.LastId)
	catalog := append(append([]section{}, sections[1:4]...), sections[6])
	if _, err := writeSections(h, t, catalog); err != nil {
		return "error: " + err.Error()
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Hash returns a SHA-256 over the canonical record stream of the current state: equal
// states give equal hashes on every node.
func (f *FSM) Hash() string {
	h := sha256.New()
	if _, err := writeRecords(h, f.current()); err != nil {
		return "error: " + err.Error()
	}
	return hex.EncodeToString(h.Sum(nil))
}

// HashAt returns Hash together with the applied index of the state it covers, taken
// atomically, so hashes of two nodes can be compared when their indexes are equal.
func (f *FSM) HashAt() (uint64, string) {
	f.mu.Lock()
	t, index := f.committed.clone(&f.mu), f.applied
	f.mu.Unlock()
	h := sha256.New()
	if _, err := writeRecords(h, t); err != nil {
		return index, "error: " + err.Error()
	}
	return index, hex.EncodeToString(h.Sum(nil))
}
