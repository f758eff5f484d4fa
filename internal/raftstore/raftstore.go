// Package raftstore opens a node's Raft log and stable store under <data-dir>/raft:
// hashicorp/raft-wal (the default: segment files, one fsync per appended batch) or
// raft-boltdb (raft.db, two fsyncs per append), migrates a bolt store to the WAL when
// a node that used bolt starts with the WAL, and opens either for the offline tools
// without changing the data directory.
//
// Layout of <data-dir>/raft:
//
//	LOCK              held (flock) by the process using the store
//	wal/              raft-wal: wal-meta.db (segment list, stable store) and *.wal segments
//	raft.db           raft-boltdb (--raft-log-store bolt, or a data dir from before the WAL)
//	raft.db.pre-wal   the bolt store a migration copied into wal/, kept as a backup
//	wal.migrating/    a migration in progress; removed and redone if a start finds it
//	snapshots/        raft snapshots (raft's file snapshot store; not this package's)
//
// wal/ existing is the migration's commit point: it is renamed into place only once
// every entry and stable key has been written and synced, and from then on it is the
// log. raft.db beside it is the backup not yet renamed (a crash between the two
// renames) and is renamed at the next start.
package raftstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
	"go.etcd.io/bbolt"
)

// The stores a node can keep its log in.
const (
	WAL  = "wal"  // hashicorp/raft-wal (the default)
	Bolt = "bolt" // hashicorp/raft-boltdb/v2
)

// Names under <data-dir>/raft.
const (
	WALDir     = "wal"
	BoltFile   = "raft.db"
	BoltBackup = "raft.db.pre-wal"
	walTemp    = "wal.migrating"
	lockFile   = "LOCK"
)

// Kinds lists the valid --raft-log-store values.
var Kinds = []string{WAL, Bolt}

// ValidKind reports whether kind names a store ("" is the default, WAL).
func ValidKind(kind string) bool { return kind == "" || kind == WAL || kind == Bolt }

// Options configure Open.
type Options struct {
	// Kind is the store a data dir without a log starts with, and the one a bolt data
	// dir is migrated to (WAL) or kept in (Bolt). "" is WAL.
	Kind string
	// NoSync skips fsync (tests only: a crash may lose acknowledged entries).
	NoSync bool
	// LockTimeout is how long Open waits for another process to release the data dir
	// (default 5s).
	LockTimeout time.Duration
	// SegmentSize is raft-wal's segment file size (default raft-wal's 64 MiB).
	SegmentSize int
	// Logger gets the migration's messages; HCLogger raft-wal's own (nil: discarded).
	Logger   *slog.Logger
	HCLogger hclog.Logger
}

func (o *Options) defaults() {
	if o.Kind == "" {
		o.Kind = WAL
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HCLogger == nil {
		o.HCLogger = hclog.NewNullLogger()
	}
}

// Store is an open Raft log and stable store.
type Store struct {
	// Kind is the store in use (WAL or Bolt); Path its directory or file.
	Kind string
	Path string
	raft.LogStore
	raft.StableStore
	// Migration is what Open migrated (nil when it did not).
	Migration *Migration

	close func() error
}

// Monotonic reports whether the log refuses gaps (raft-wal): raft then empties it after
// a snapshot install or a user restore instead of leaving a gap.
func (s *Store) Monotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// Close closes the store and releases the data dir.
func (s *Store) Close() error {
	if s.close == nil {
		return nil
	}
	err := s.close()
	s.close = nil
	return err
}

// Open opens the log under raftDir (<data-dir>/raft) for a node, holding raftDir/LOCK
// until Close: a bolt log is migrated to the WAL first when opts.Kind is WAL, an
// unfinished migration is removed and redone, and a WAL is never opened as bolt.
func Open(raftDir string, opts Options) (_ *Store, err error) {
	opts.defaults()
	if !ValidKind(opts.Kind) {
		return nil, fmt.Errorf("unknown Raft log store %q: want %s", opts.Kind, strings.Join(Kinds, " or "))
	}
	if err := os.MkdirAll(raftDir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockDir(raftDir, true, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	st, err := open(raftDir, opts)
	if err != nil {
		return nil, err
	}
	inner := st.close
	st.close = func() error {
		defer unlock()
		return inner()
	}
	return st, nil
}

func open(raftDir string, opts Options) (*Store, error) {
	walDir, boltPath, tmp := filepath.Join(raftDir, WALDir), filepath.Join(raftDir, BoltFile), filepath.Join(raftDir, walTemp)
	if _, err := os.Stat(tmp); err == nil {
		opts.Logger.Warn("removing an unfinished migration of the Raft log to the WAL (the node stopped during it); the bolt store was not changed and is migrated again",
			"dir", tmp)
		if err := os.RemoveAll(tmp); err != nil {
			return nil, err
		}
	}
	hasWAL, err := exists(walDir)
	if err != nil {
		return nil, err
	}
	hasBolt, err := exists(boltPath)
	if err != nil {
		return nil, err
	}
	switch {
	case hasWAL && opts.Kind == Bolt:
		return nil, fmt.Errorf("%s holds this node's Raft log in the WAL; it cannot be opened with --raft-log-store bolt (there is no migration back: "+
			"start it with --raft-log-store wal, or remove the node from the cluster, empty its data dir and add it again with bolt)", raftDir)
	case hasWAL:
		if hasBolt {
			// The migration committed (wal/ is in place) but the node stopped before
			// it renamed the bolt store.
			backup, err := keepBackup(raftDir)
			if err != nil {
				return nil, err
			}
			opts.Logger.Warn("finished a migration of the Raft log to the WAL that was interrupted after it committed: the bolt store is kept as a backup",
				"backup", backup)
		}
	case hasBolt && opts.Kind == Bolt:
		return openBolt(boltPath, opts)
	case hasBolt:
		m, err := migrate(raftDir, opts)
		if err != nil {
			return nil, fmt.Errorf("migrate the Raft log from %s to the WAL: %w (the bolt store is unchanged; start with --raft-log-store bolt to keep using it)", boltPath, err)
		}
		st, err := openWAL(walDir, opts)
		if err != nil {
			return nil, err
		}
		st.Migration = m
		return st, nil
	case opts.Kind == Bolt:
		return openBolt(boltPath, opts)
	default:
		if err := os.Mkdir(walDir, 0o755); err != nil {
			return nil, err
		}
		if err := syncDir(raftDir, opts.NoSync); err != nil {
			return nil, err
		}
	}
	return openWAL(walDir, opts)
}

func openBolt(path string, opts Options) (*Store, error) {
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        path,
		NoSync:      opts.NoSync,
		BoltOptions: &bbolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync},
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{Kind: Bolt, Path: path, LogStore: store, StableStore: store, close: store.Close}, nil
}

// openWAL opens the raft-wal in dir. Its metadata database is closed here too: before
// v0.4.1 raft-wal's Close left it open, and locked.
func openWAL(dir string, opts Options) (*Store, error) {
	meta := &metadb.BoltMetaDB{}
	var vfs types.VFS = walfs.New()
	if opts.NoSync {
		vfs = noSyncVFS{vfs}
	}
	w, err := wal.Open(dir, wal.WithMetaStore(meta), wal.WithSegmentFiler(segment.NewFiler(dir, vfs)),
		wal.WithLogger(opts.HCLogger), wal.WithSegmentSize(segmentSize(opts)))
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("open the Raft WAL %s: %w", dir, err)
	}
	return &Store{Kind: WAL, Path: dir, LogStore: w, StableStore: w, close: func() error {
		return errors.Join(w.Close(), meta.Close())
	}}, nil
}

func segmentSize(opts Options) int {
	if opts.SegmentSize > 0 {
		return opts.SegmentSize
	}
	return wal.DefaultSegmentSize
}

// noSyncVFS is raft-wal's file system with Sync a no-op (Options.NoSync).
type noSyncVFS struct{ types.VFS }

type noSyncFile struct{ types.WritableFile }

func (noSyncFile) Sync() error { return nil }

func (v noSyncVFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	f, err := v.VFS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (v noSyncVFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := v.VFS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

// uint64Keys are the stable-store keys raft reads with GetUint64: raft-boltdb stores
// them big-endian, raft-wal little-endian, so a migration converts them.
var uint64Keys = map[string]bool{"CurrentTerm": true, "LastVoteTerm": true}

// Migration describes a migration of a bolt log to the WAL.
type Migration struct {
	// First and Last are the entries copied (0, 0: the log was empty).
	First, Last uint64
	// Skipped counts entries before a gap in the bolt log (left by a snapshot install
	// or a backup restore, and covered by a raft snapshot): the WAL holds no gaps, so
	// only the entries after the last gap are copied.
	Skipped int
	// StableKeys are the stable-store keys copied.
	StableKeys []string
	// Backup is where the bolt store was kept.
	Backup string
	Took   time.Duration
}

// migrate copies the bolt log under raftDir into a new WAL: every entry of the log's
// contiguous tail and every stable-store key, written into wal.migrating, synced, and
// renamed to wal (the commit point); raft.db is then renamed to raft.db.pre-wal.
func migrate(raftDir string, opts Options) (*Migration, error) {
	start := time.Now()
	boltPath, tmp := filepath.Join(raftDir, BoltFile), filepath.Join(raftDir, walTemp)
	stable, first, last, skipped, err := scanBolt(boltPath, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	opts.Logger.Info("migrating the Raft log from bolt to the WAL", "from", boltPath, "first", first, "last", last, "stable_keys", len(stable))
	src, err := raftboltdb.New(raftboltdb.Options{Path: boltPath, BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: opts.LockTimeout}})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", boltPath, err)
	}
	defer src.Close()
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return nil, err
	}
	dst, err := openWAL(tmp, opts)
	if err != nil {
		return nil, err
	}
	m := &Migration{First: first, Last: last, Skipped: skipped}
	if err := copyInto(dst, src, first, last, stable, m); err != nil {
		dst.Close()
		return nil, err
	}
	if err := dst.Close(); err != nil {
		return nil, err
	}
	if err := syncDir(tmp, opts.NoSync); err != nil {
		return nil, err
	}
	// The commit point: from here on wal/ is the log.
	if err := os.Rename(tmp, filepath.Join(raftDir, WALDir)); err != nil {
		return nil, err
	}
	if err := syncDir(raftDir, opts.NoSync); err != nil {
		return nil, err
	}
	if m.Backup, err = keepBackup(raftDir); err != nil {
		return nil, err
	}
	m.Took = time.Since(start)
	opts.Logger.Warn("migrated the Raft log from bolt to the WAL; the bolt store is kept as a backup (delete it once the node runs well)",
		"entries", entryCount(first, last), "first", first, "last", last, "skipped_before_gap", skipped,
		"stable_keys", strings.Join(m.StableKeys, ","), "backup", m.Backup, "took", m.Took.Round(time.Millisecond))
	return m, nil
}

func entryCount(first, last uint64) uint64 {
	if last == 0 {
		return 0
	}
	return last - first + 1
}

// copyInto writes src's entries first..last and the stable keys into dst, then checks
// dst holds exactly those entries.
func copyInto(dst *Store, src raft.LogStore, first, last uint64, stable map[string][]byte, m *Migration) error {
	if last > 0 {
		const maxBatchBytes = 4 << 20
		var batch []*raft.Log
		size := 0
		for idx := first; idx <= last; idx++ {
			l := new(raft.Log)
			if err := src.GetLog(idx, l); err != nil {
				return fmt.Errorf("read entry %d: %w", idx, err)
			}
			batch = append(batch, l)
			size += len(l.Data) + len(l.Extensions) + 64
			if size >= maxBatchBytes || len(batch) == 4096 || idx == last {
				if err := dst.StoreLogs(batch); err != nil {
					return fmt.Errorf("write entries %d..%d: %w", batch[0].Index, idx, err)
				}
				batch, size = batch[:0], 0
			}
		}
	}
	for k, v := range stable {
		var err error
		if uint64Keys[k] && len(v) == 8 {
			err = dst.SetUint64([]byte(k), binary.BigEndian.Uint64(v))
		} else {
			err = dst.Set([]byte(k), v)
		}
		if err != nil {
			return fmt.Errorf("write stable key %s: %w", k, err)
		}
		m.StableKeys = append(m.StableKeys, k)
	}
	slices.Sort(m.StableKeys)
	gotFirst, err := dst.FirstIndex()
	if err != nil {
		return err
	}
	gotLast, err := dst.LastIndex()
	if err != nil {
		return err
	}
	if last > 0 && (gotFirst != first || gotLast != last) {
		return fmt.Errorf("the WAL holds entries %d..%d after the copy, not %d..%d", gotFirst, gotLast, first, last)
	}
	return nil
}

// scanBolt reads a bolt store's stable keys and the bounds of its log's contiguous
// tail (entries before the last gap are counted in skipped).
func scanBolt(path string, timeout time.Duration) (stable map[string][]byte, first, last uint64, skipped int, err error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return nil, 0, 0, 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	stable = map[string][]byte{}
	err = db.View(func(tx *bbolt.Tx) error {
		if conf := tx.Bucket([]byte("conf")); conf != nil {
			if err := conf.ForEach(func(k, v []byte) error {
				stable[string(k)] = append([]byte(nil), v...)
				return nil
			}); err != nil {
				return err
			}
		}
		logs := tx.Bucket([]byte("logs"))
		if logs == nil {
			return nil
		}
		c := logs.Cursor()
		k, _ := c.Last()
		if k == nil {
			return nil
		}
		if len(k) != 8 {
			return fmt.Errorf("log key %x is not an index", k)
		}
		last = binary.BigEndian.Uint64(k)
		first = last
		inTail := true
		for k, _ = c.Prev(); k != nil; k, _ = c.Prev() {
			if len(k) != 8 {
				return fmt.Errorf("log key %x is not an index", k)
			}
			idx := binary.BigEndian.Uint64(k)
			if inTail && idx == first-1 {
				first = idx
				continue
			}
			inTail = false
			skipped++
		}
		return nil
	})
	return stable, first, last, skipped, err
}

// keepBackup renames raft.db to raft.db.pre-wal (or .pre-wal.N when taken).
func keepBackup(raftDir string) (string, error) {
	backup := filepath.Join(raftDir, BoltBackup)
	for i := 1; ; i++ {
		ok, err := exists(backup)
		if err != nil {
			return "", err
		}
		if !ok {
			break
		}
		backup = filepath.Join(raftDir, fmt.Sprintf("%s.%d", BoltBackup, i))
	}
	if err := os.Rename(filepath.Join(raftDir, BoltFile), backup); err != nil {
		return "", err
	}
	return backup, syncDir(raftDir, false)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

func syncDir(dir string, noSync bool) error {
	if noSync {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}

// copyFile copies src to dst, leaving holes where src reads as zeros (raft-wal
// preallocates its segments).
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			if !allZero(buf[:n]) {
				if _, err := out.WriteAt(buf[:n], off); err != nil {
					out.Close()
					return err
				}
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	return errors.Join(out.Truncate(off), out.Close())
}

var zeros = make([]byte, 256<<10)

// allZero reports whether b holds only zero bytes (bytes.Equal is vectorised).
func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
