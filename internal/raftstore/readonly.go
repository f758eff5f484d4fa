package raftstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// OpenReadOnly opens the log of a stopped node for reading and changes nothing in its
// data dir: raft.db is opened read-only; the WAL is copied to a temporary directory and
// opened there (raft-wal has no read-only mode: opening a WAL recovers its tail segment
// in place, truncating a torn write). Close removes the copy. The data dir of a running
// node is refused.
func OpenReadOnly(raftDir string) (*Store, error) {
	unlock, err := lockDir(raftDir, false, time.Second)
	if err != nil {
		return nil, err
	}
	defer unlock()
	walDir, boltPath := filepath.Join(raftDir, WALDir), filepath.Join(raftDir, BoltFile)
	hasWAL, err := exists(walDir)
	if err != nil {
		return nil, err
	}
	if !hasWAL {
		if _, err := os.Stat(boltPath); err != nil {
			return nil, fmt.Errorf("no Raft log in %s (neither %s/ nor %s): %w", raftDir, WALDir, BoltFile, err)
		}
		store, err := raftboltdb.New(raftboltdb.Options{Path: boltPath, BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: time.Second}})
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", boltPath, err)
		}
		return &Store{Kind: Bolt, Path: boltPath, LogStore: store, StableStore: store, close: store.Close}, nil
	}
	tmp, err := os.MkdirTemp("", "snapkeep-wal-copy-")
	if err != nil {
		return nil, err
	}
	if err := copyWAL(tmp, walDir); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("copy %s: %w", walDir, err)
	}
	opts := Options{NoSync: true}
	opts.defaults()
	st, err := openWAL(tmp, opts)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	inner := st.close
	st.Path, st.close = walDir, func() error { return errors.Join(inner(), os.RemoveAll(tmp)) }
	return st, nil
}

// copyWAL copies a WAL's metadata and segments.
func copyWAL(dst, src string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || (e.Name() != metadb.FileName && !strings.HasSuffix(e.Name(), ".wal")) {
			continue
		}
		if err := copyFile(filepath.Join(dst, e.Name()), filepath.Join(src, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// LogBytes is how much of the disk the log under raftDir uses: raft.db's size, or the
// WAL's metadata and the written part of its segments (raft-wal preallocates each
// segment file to its full size, so their sizes say nothing).
func LogBytes(raftDir string) (int64, error) {
	walDir := filepath.Join(raftDir, WALDir)
	hasWAL, err := exists(walDir)
	if err != nil {
		return 0, err
	}
	if !hasWAL {
		st, err := os.Stat(filepath.Join(raftDir, BoltFile))
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	entries, err := os.ReadDir(walDir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range entries {
		path := filepath.Join(walDir, e.Name())
		switch {
		case e.Name() == metadb.FileName:
			st, err := os.Stat(path)
			if err != nil {
				return 0, err
			}
			total += st.Size()
		case strings.HasSuffix(e.Name(), ".wal"):
			n, err := writtenBytes(path)
			if err != nil {
				return 0, err
			}
			total += n
		}
	}
	return total, nil
}

// writtenBytes is the offset just past a file's last non-zero byte.
func writtenBytes(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	for end := st.Size(); end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && err != io.EOF {
			return 0, err
		}
		if !allZero(b) {
			i := len(b) - 1
			for b[i] == 0 {
				i--
			}
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}
