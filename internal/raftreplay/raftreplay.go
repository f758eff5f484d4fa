// Package raftreplay rebuilds a node's FSM offline from its data directory (the Raft log
// in raft/wal or raft.db, and the raft snapshots beside it) at any log index it still
// holds, and finds the first index at which two nodes' states part. It changes nothing
// in the data directory (internal/raftstore.OpenReadOnly: bolt read-only, a WAL read
// from a copy) and refuses the data directory of a running node.
package raftreplay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/raft"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/internal/raftstore"
)

// Empty names the start from the empty state (the log must begin at index 1).
const Empty = "empty"

// Source is one node's data directory, opened read-only.
type Source struct {
	Name        string
	logs        *raftstore.Store
	snapDir     string
	First, Last uint64 // the log entries it holds
	Snapshots   []*raft.SnapshotMeta
}

// Open opens the Raft log of <dataDir>/raft for reading (raftstore.OpenReadOnly) and
// lists the raft snapshots.
func Open(name, dataDir string) (*Source, error) {
	raftDir := filepath.Join(dataDir, "raft")
	logs, err := raftstore.OpenReadOnly(raftDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &Source{Name: name, logs: logs, snapDir: filepath.Join(raftDir, "snapshots")}
	if s.First, err = logs.FirstIndex(); err != nil {
		logs.Close()
		return nil, err
	}
	if s.Last, err = logs.LastIndex(); err != nil {
		logs.Close()
		return nil, err
	}
	if s.Snapshots, err = listSnapshots(s.snapDir); err != nil {
		logs.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// Close closes the log store.
func (s *Source) Close() error { return s.logs.Close() }

// listSnapshots reads the meta.json of each raft snapshot directory, oldest first. It
// reads the directory itself rather than through raft's FileSnapshotStore, which would
// create and prune directories.
func listSnapshots(dir string) ([]*raft.SnapshotMeta, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*raft.SnapshotMeta
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		meta, err := readMeta(filepath.Join(dir, e.Name(), "meta.json"))
		if err != nil {
			continue // a snapshot raft did not finish writing
		}
		out = append(out, meta)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// Start chooses where a replay up to index `to` begins: the snapshot with the given ID,
// Empty, or (id "") the newest snapshot at or below `to` from which the log continues,
// else the empty state when the log begins at 1.
func (s *Source) Start(id string, to uint64) (*raft.SnapshotMeta, error) {
	switch id {
	case Empty:
		if s.First > 1 {
			return nil, fmt.Errorf("%s: the log begins at %d, not 1: cannot start from the empty state", s.Name, s.First)
		}
		return nil, nil
	case "":
		for i := len(s.Snapshots) - 1; i >= 0; i-- {
			m := s.Snapshots[i]
			if m.Index <= to && (m.Index+1 >= s.First || m.Index == to) {
				return m, nil
			}
		}
		if s.First <= 1 {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: no snapshot at or below %d from which the log (%d..%d) continues", s.Name, to, s.First, s.Last)
	}
	for _, m := range s.Snapshots {
		if m.ID == id {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%s: no snapshot %q", s.Name, id)
}

// Replayer applies one node's log to an FSM, entry by entry.
type Replayer struct {
	src *Source
	FSM *fsm.FSM
	// Next is the index of the next entry to apply.
	Next uint64
}

// NewReplayer restores start (nil: the empty state) into a fresh FSM.
func (s *Source) NewReplayer(start *raft.SnapshotMeta) (*Replayer, error) {
	f := fsm.New(slog.New(slog.DiscardHandler))
	r := &Replayer{src: s, FSM: f, Next: 1}
	if start != nil {
		file, err := os.Open(filepath.Join(s.snapDir, start.ID, "state.bin"))
		if err != nil {
			return nil, err
		}
		if err := f.Restore(file); err != nil {
			return nil, fmt.Errorf("%s: restore snapshot %s: %w", s.Name, start.ID, err)
		}
		r.Next = start.Index + 1
	}
	return r, nil
}

// Step applies the next entry and returns it.
func (r *Replayer) Step() (*raft.Log, error) {
	var l raft.Log
	if err := r.src.logs.GetLog(r.Next, &l); err != nil {
		return nil, fmt.Errorf("%s: entry %d: %w (the log holds %d..%d)", r.src.Name, r.Next, err, r.src.First, r.src.Last)
	}
	r.FSM.Apply(&l)
	r.Next++
	return &l, nil
}

// To applies entries up to and including index.
func (r *Replayer) To(index uint64) error {
	for r.Next <= index {
		if _, err := r.Step(); err != nil {
			return err
		}
	}
	return nil
}

// Entry reads one entry of the source's log.
func (s *Source) Entry(index uint64) (*raft.Log, error) {
	var l raft.Log
	if err := s.logs.GetLog(index, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// readMeta reads a raft snapshot's meta.json.
func readMeta(path string) (*raft.SnapshotMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decodeMeta(f)
}

var _ io.Reader = (*os.File)(nil)

func decodeMeta(r io.Reader) (*raft.SnapshotMeta, error) {
	var m raft.SnapshotMeta
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// SnapshotMeta describes a raft snapshot.
type SnapshotMeta = raft.SnapshotMeta
