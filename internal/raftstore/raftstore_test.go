package raftstore

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// entries makes log entries first..last with varied types, terms and payloads.
func entries(first, last uint64) []*raft.Log {
	r := rand.New(rand.NewPCG(first, last))
	var out []*raft.Log
	for i := first; i <= last; i++ {
		l := &raft.Log{Index: i, Term: 1 + i/100, Type: raft.LogCommand,
			Data:       make([]byte, r.IntN(2000)),
			AppendedAt: time.Unix(1700000000, int64(i)*1e6).UTC()}
		for j := range l.Data {
			l.Data[j] = byte(r.Uint32())
		}
		switch i % 97 {
		case 0:
			l.Type, l.Data = raft.LogNoop, nil
		case 1:
			l.Type, l.Extensions = raft.LogConfiguration, []byte("ext")
		}
		out = append(out, l)
	}
	return out
}

// write stores entries in batches of 100 (raft's appends) and the stable keys.
func write(t *testing.T, s *Store, logs []*raft.Log) {
	t.Helper()
	for len(logs) > 0 {
		n := min(100, len(logs))
		require.NoError(t, s.StoreLogs(logs[:n]))
		logs = logs[n:]
	}
}

func setStable(t *testing.T, s *Store) {
	t.Helper()
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 7))
	require.NoError(t, s.SetUint64([]byte("LastVoteTerm"), 6))
	require.NoError(t, s.Set([]byte("LastVoteCand"), []byte("n2")))
	require.NoError(t, s.Set([]byte("SomethingElse"), []byte("kept as is")))
}

func checkStable(t *testing.T, s *Store) {
	t.Helper()
	term, err := s.GetUint64([]byte("CurrentTerm"))
	require.NoError(t, err)
	require.Equal(t, uint64(7), term)
	vote, err := s.GetUint64([]byte("LastVoteTerm"))
	require.NoError(t, err)
	require.Equal(t, uint64(6), vote)
	cand, err := s.Get([]byte("LastVoteCand"))
	require.NoError(t, err)
	require.Equal(t, "n2", string(cand))
	other, err := s.Get([]byte("SomethingElse"))
	require.NoError(t, err)
	require.Equal(t, "kept as is", string(other))
}

// checkLog requires the store to hold exactly want.
func checkLog(t *testing.T, s raft.LogStore, want []*raft.Log) {
	t.Helper()
	first, err := s.FirstIndex()
	require.NoError(t, err)
	last, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, want[0].Index, first)
	require.Equal(t, want[len(want)-1].Index, last)
	for _, w := range want {
		var got raft.Log
		require.NoError(t, s.GetLog(w.Index, &got), "entry %d", w.Index)
		require.Equal(t, w.Index, got.Index)
		require.Equal(t, w.Term, got.Term, "entry %d", w.Index)
		require.Equal(t, w.Type, got.Type, "entry %d", w.Index)
		require.Equal(t, len(w.Data), len(got.Data), "entry %d", w.Index)
		require.Equal(t, string(w.Data), string(got.Data), "entry %d", w.Index)
		require.Equal(t, string(w.Extensions), string(got.Extensions), "entry %d", w.Index)
		require.True(t, w.AppendedAt.Equal(got.AppendedAt), "entry %d appended at %v, not %v", w.Index, got.AppendedAt, w.AppendedAt)
	}
}

// boltDir makes a raft dir whose bolt store holds logs and the stable keys.
func boltDir(t *testing.T, logs []*raft.Log) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "raft")
	s, err := Open(dir, Options{Kind: Bolt})
	require.NoError(t, err)
	require.Equal(t, Bolt, s.Kind)
	require.False(t, s.Monotonic())
	write(t, s, logs)
	setStable(t, s)
	require.NoError(t, s.Close())
	return dir
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// A bolt data dir opened with the WAL is migrated: every entry and stable key is in
// the WAL, raft.db is kept as raft.db.pre-wal, and the next start opens the WAL as is.
func TestBoltLogMigratesToTheWAL(t *testing.T) {
	logs := entries(1, 3000)
	dir := boltDir(t, logs)

	s, err := Open(dir, Options{})
	require.NoError(t, err)
	require.Equal(t, WAL, s.Kind)
	require.True(t, s.Monotonic())
	require.NotNil(t, s.Migration)
	require.Equal(t, uint64(1), s.Migration.First)
	require.Equal(t, uint64(3000), s.Migration.Last)
	require.Zero(t, s.Migration.Skipped)
	require.Equal(t, []string{"CurrentTerm", "LastVoteCand", "LastVoteTerm", "SomethingElse"}, s.Migration.StableKeys)
	require.Equal(t, filepath.Join(dir, BoltBackup), s.Migration.Backup)
	checkLog(t, s, logs)
	checkStable(t, s)
	require.ElementsMatch(t, []string{lockFile, WALDir, BoltBackup}, names(t, dir))
	// The WAL takes appends after the copied entries.
	more := entries(3001, 3010)
	write(t, s, more)
	require.NoError(t, s.Close())

	s, err = Open(dir, Options{})
	require.NoError(t, err)
	require.Nil(t, s.Migration)
	checkLog(t, s, append(logs, more...))
	checkStable(t, s)
	require.NoError(t, s.Close())

	_, err = Open(dir, Options{Kind: Bolt})
	require.ErrorContains(t, err, "holds this node's Raft log in the WAL")
}

// An empty bolt store (a node that stopped before its first entry) migrates too.
func TestEmptyBoltLogMigrates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	s, err := Open(dir, Options{Kind: Bolt})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s, err = Open(dir, Options{Kind: WAL})
	require.NoError(t, err)
	defer s.Close()
	require.NotNil(t, s.Migration)
	last, err := s.LastIndex()
	require.NoError(t, err)
	require.Zero(t, last)
	write(t, s, entries(1, 5))
}

// raft-boltdb keeps entries before a gap (a snapshot install or a restore leaves one);
// the WAL holds none, so the migration copies the entries after the last gap.
func TestMigrationCopiesTheTailAfterAGap(t *testing.T) {
	head, tail := entries(1, 40), entries(100, 180)
	dir := filepath.Join(t.TempDir(), "raft")
	s, err := Open(dir, Options{Kind: Bolt})
	require.NoError(t, err)
	write(t, s, head)
	write(t, s, entries(50, 60))
	write(t, s, tail)
	setStable(t, s)
	require.NoError(t, s.Close())

	s, err = Open(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, 51, s.Migration.Skipped)
	checkLog(t, s, tail)
	checkStable(t, s)
}

// A migration the node did not finish (killed while copying) leaves wal.migrating: the
// next start removes it and migrates again from the untouched bolt store.
func TestUnfinishedMigrationIsRedone(t *testing.T) {
	logs := entries(1, 2000)
	dir := boltDir(t, logs)
	// Half a copy, as a kill in the middle of migrate leaves it.
	require.NoError(t, os.Mkdir(filepath.Join(dir, walTemp), 0o755))
	half, err := openWAL(filepath.Join(dir, walTemp), withDefaults(Options{}))
	require.NoError(t, err)
	write(t, half, logs[:900])
	require.NoError(t, half.Close())
	segs, err := filepath.Glob(filepath.Join(dir, walTemp, "*.wal"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	require.NoError(t, os.Truncate(segs[len(segs)-1], 12345)) // and torn

	s, err := Open(dir, Options{})
	require.NoError(t, err)
	require.NotNil(t, s.Migration)
	checkLog(t, s, logs)
	checkStable(t, s)
	require.NoError(t, s.Close())
	require.ElementsMatch(t, []string{lockFile, WALDir, BoltBackup}, names(t, dir))
}

// Killed after the commit point (wal/ renamed into place) but before raft.db was
// renamed: the next start uses the WAL and renames raft.db, without overwriting an
// older backup.
func TestMigrationInterruptedAfterCommitIsFinished(t *testing.T) {
	logs := entries(1, 500)
	dir := boltDir(t, logs)
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	write(t, s, entries(501, 510)) // the WAL moved on: raft.db must not come back
	require.NoError(t, s.Close())
	b, err := os.ReadFile(filepath.Join(dir, BoltBackup))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, BoltFile), b, 0o644))

	s, err = Open(dir, Options{})
	require.NoError(t, err)
	require.Nil(t, s.Migration)
	checkLog(t, s, append(logs, entries(501, 510)...))
	require.NoError(t, s.Close())
	require.ElementsMatch(t, []string{lockFile, WALDir, BoltBackup, BoltBackup + ".1"}, names(t, dir))
}

// A data dir in use is refused, by nodes and by the read-only opener alike.
func TestDataDirInUseIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	_, err = Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	require.ErrorContains(t, err, "another process (a running node?) is using this data dir")
	_, err = OpenReadOnly(dir)
	require.ErrorContains(t, err, "is using this data dir")
	require.NoError(t, s.Close())
	s, err = Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

// dirDigest hashes every file under dir with its name and mode.
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d\n", path, info.Mode(), info.Size())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	}))
	return fmt.Sprintf("%x", h.Sum(nil))
}

// lastSegment is the WAL's newest segment file.
func lastSegment(t *testing.T, walDir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(walDir, "*.wal"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	return segs[len(segs)-1] // named by base index, zero-padded
}

// tear garbles the last n written bytes of a segment (a batch torn by a crash before
// its fsync returned).
func tear(t *testing.T, path string, n int64) {
	t.Helper()
	end, err := writtenBytes(path)
	require.NoError(t, err)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	junk := make([]byte, n)
	for i := range junk {
		junk[i] = byte(0xA5 ^ i)
	}
	_, err = f.WriteAt(junk, end-n)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// A torn last batch (garbled or cut short) is dropped when the WAL opens: the entries
// of every earlier batch are all there, and appends continue after them. The read-only
// opener sees the same log and changes nothing on disk.
func TestTornTailLosesOnlyTheLastBatch(t *testing.T) {
	for _, how := range []string{"garbled", "truncated"} {
		t.Run(how, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "raft")
			s, err := Open(dir, Options{SegmentSize: 1 << 20}) // a few segments
			require.NoError(t, err)
			logs := entries(1, 1500)
			write(t, s, logs) // batches of 100: the last is 1401..1500
			require.NoError(t, s.Close())
			segs, _ := filepath.Glob(filepath.Join(dir, WALDir, "*.wal"))
			require.Greater(t, len(segs), 1)

			seg := lastSegment(t, filepath.Join(dir, WALDir))
			switch how {
			case "garbled":
				tear(t, seg, 100)
			case "truncated":
				end, err := writtenBytes(seg)
				require.NoError(t, err)
				require.NoError(t, os.Truncate(seg, end-700)) // into the last batch's entries
			}

			before := dirDigest(t, dir)
			ro, err := OpenReadOnly(dir)
			require.NoError(t, err)
			checkLog(t, ro, logs[:1400])
			require.NoError(t, ro.Close())
			require.Equal(t, before, dirDigest(t, dir), "the read-only open changed the data dir")

			s, err = Open(dir, Options{SegmentSize: 1 << 20})
			require.NoError(t, err)
			checkLog(t, s, logs[:1400])
			again := entries(1401, 1600) // the leader sends them again
			write(t, s, again)
			require.NoError(t, s.Close())
			s, err = Open(dir, Options{SegmentSize: 1 << 20})
			require.NoError(t, err)
			checkLog(t, s, append(logs[:1400], again...))
			require.NoError(t, s.Close())
		})
	}
}

// LogBytes follows what is written, not the preallocated segment size.
func TestLogBytes(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "raft")
			s, err := Open(dir, Options{Kind: kind})
			require.NoError(t, err)
			defer s.Close()
			write(t, s, entries(1, 10))
			before, err := LogBytes(dir)
			require.NoError(t, err)
			big := &raft.Log{Index: 11, Term: 1, Type: raft.LogCommand, Data: []byte(strings.Repeat("x", 3<<20))}
			require.NoError(t, s.StoreLog(big))
			after, err := LogBytes(dir)
			require.NoError(t, err)
			require.Greater(t, after-before, int64(3<<20))
			if kind == WAL {
				require.Less(t, after, int64(4<<20), "the WAL's segments are preallocated to 64 MiB")
			}
		})
	}
}

func withDefaults(o Options) Options {
	o.defaults()
	return o
}
