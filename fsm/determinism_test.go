package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

var (
	determinismSteps = flag.Int("fsm.steps", 3000, "commands in the determinism test's random log")
	determinismSeed  = flag.Uint64("fsm.seed", 1, "seed of the determinism test's random log")
)

// randomLog builds a log of mostly valid, sometimes invalid commands, steered by a
// reference FSM so that ids and names refer to real objects often enough.
func randomLog(t testing.TB, seed uint64, steps int) (entries [][]byte, ref *harness) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ref = newHarness(t)
	collections := []string{"c0", "c1", "c2", "c3"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	segmentsOf := func(state fsmpb.SegmentState) []*fsmpb.Segment {
		var out []*fsmpb.Segment
		v := ref.f.View()
		for _, name := range collections {
			c, _, err := v.Collection("", name)
			if err != nil {
				continue
			}
			v.EachSegment(c.Id, 0, func(s *fsmpb.Segment) bool {
				if s.State == state {
					out = append(out, s)
				}
				return true
			})
		}
		return out
	}
	someSegment := func(state fsmpb.SegmentState) *fsmpb.Segment {
		segs := segmentsOf(state)
		if len(segs) == 0 {
			return &fsmpb.Segment{Id: uint64(rng.IntN(500) + 1), CollectionId: 2}
		}
		return segs[rng.IntN(len(segs))]
	}
	for i := 0; i < steps; i++ {
		ref.now += int64(rng.IntN(5)) * second
		var cmd proto.Message
		switch r := rng.IntN(108); {
		case r >= 100: // policies: create or update, run, retain; holds
			policy := pick([]string{"pa", "pb"})
			s := &fsmpb.Snapshot{Id: uint64(rng.IntN(500) + 1)}
			switch rng.IntN(7) {
			case 0:
				p := &fsmpb.Policy{Name: policy, CollectionGlob: pick([]string{"*", "c[01]"}), Enabled: rng.IntN(4) != 0,
					Schedule: &fsmpb.PolicySchedule{Interval: int64(rng.IntN(3)+1) * second}, NameTemplate: "p-{150405}",
					Retention: &fsmpb.PolicyRetention{MinCount: uint32(rng.IntN(3)), MaxCount: uint32(rng.IntN(3) + 2), ExpireAfter: int64(rng.IntN(30)) * second}}
				put := &fsmpb.PolicyPut{Policy: p, Create: true}
				if old, err := ref.f.View().Policy(policy); err == nil {
					put = &fsmpb.PolicyPut{Policy: p, Revision: old.Revision + uint64(rng.IntN(2))}
				}
				cmd = put
			case 1, 2, 3:
				run := &fsmpb.PolicyRun{Policy: policy, Due: ref.now - int64(rng.IntN(3))*second, SnapshotName: fmt.Sprintf("p-%d", i),
					MaxPerCollection: 5, PendingTimeout: 60 * second}
				if p, err := ref.f.View().Policy(policy); err == nil {
					run.Revision = p.Revision
				}
				if rng.IntN(5) == 0 {
					run.Due = 0
				}
				cmd = run
			case 4:
				cmd = &fsmpb.PolicyRetain{Policy: policy}
			default:
				// Holds are on committed snapshots: pick any snapshot by id.
				var committed []*fsmpb.Snapshot
				_ = ref.f.View().EachSnapshot(SnapshotFilter{States: []fsmpb.SnapshotState{fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED}}, 0,
					func(c *fsmpb.Snapshot) bool { committed = append(committed, c); return true })
				if len(committed) > 0 {
					s = committed[rng.IntN(len(committed))]
				}
				switch rng.IntN(3) {
				case 0:
					cmd = &fsmpb.SnapshotHoldAdd{SnapshotId: s.Id, Reason: "r", Until: ref.now + int64(rng.IntN(20)-5)*second}
				case 1:
					// A scrubber's result: any outcome, sometimes inconsistent (refused).
					outcome := fsmpb.SnapshotVerifyOutcome(rng.IntN(5))
					v := &fsmpb.SnapshotVerified{SnapshotId: s.Id, Deep: rng.IntN(2) == 0, Outcome: outcome}
					if outcome != fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK || rng.IntN(8) == 0 {
						v.Problems, v.ProblemCount = []string{"missing k"}, uint32(1+rng.IntN(3))
					}
					cmd = v
				default:
					var hold uint64
					if len(s.Holds) > 0 {
						hold = s.Holds[0].Id
					}
					cmd = &fsmpb.SnapshotHoldRemove{SnapshotId: s.Id, HoldId: hold}
				}
			}
		case r < 8:
			cmd = &fsmpb.CreateCollection{Name: pick(collections), Partitions: []string{"p1"}, Properties: map[string]string{"k": fmt.Sprint(i)}}
		case r < 10:
			cmd = &fsmpb.DropCollection{Name: pick(append([]string{"t1", "t2", "t3"}, collections...))}
		case r < 12:
			cmd = &fsmpb.AlterCollection{Name: pick(collections), SetProperties: map[string]string{"a": fmt.Sprint(i), "b": "x"}, DeleteProperties: []string{"k"}}
		case r < 14:
			cmd = &fsmpb.CreatePartition{Collection: pick(collections), Name: pick([]string{"p1", "p2", "p3"})}
		case r < 15:
			cmd = &fsmpb.DropPartition{Collection: pick(collections), Name: pick([]string{"p1", "p2", "p3"})}
		case r < 17:
			cmd = &fsmpb.CreateIndex{Collection: pick(collections), Name: pick([]string{"vec", "txt"}), FieldId: 101}
		case r < 18:
			cmd = &fsmpb.DropIndex{Collection: pick(collections), Name: pick([]string{"vec", "txt"})}
		case r < 40:
			cmd = &fsmpb.AllocateSegment{Collection: pick(collections), Partition: pick([]string{"", "p1", "p2"}), Lease: int64(rng.IntN(120)+1) * second}
		case r < 60:
			s := someSegment(fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED)
			cmd = &fsmpb.FlushSegment{SegmentId: s.Id, RowCount: int64(rng.IntN(1000)), Files: files(s, rng.IntN(10))}
		case r < 68:
			in1, in2 := someSegment(fsmpb.SegmentState_SEGMENT_STATE_FLUSHED), someSegment(fsmpb.SegmentState_SEGMENT_STATE_FLUSHED)
			out := someSegment(fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED)
			cmd = &fsmpb.Compact{Inputs: []uint64{in1.Id, in2.Id}, Outputs: []*fsmpb.CompactOutput{{SegmentId: out.Id, RowCount: 5, Files: files(out, 3)}}}
		case r < 74:
			cmd = &fsmpb.DropSegments{SegmentIds: []uint64{someSegment(fsmpb.SegmentState(rng.IntN(3) + 1)).Id}}
		case r < 80:
			cmd = &fsmpb.AllocateIndexBuild{SegmentId: someSegment(fsmpb.SegmentState_SEGMENT_STATE_FLUSHED).Id, Index: pick([]string{"vec", "txt"}), Lease: 30 * second}
		case r < 86:
			s := someSegment(fsmpb.SegmentState_SEGMENT_STATE_FLUSHED)
			var bid uint64
			if n := len(s.IndexBuilds); n > 0 {
				bid = s.IndexBuilds[rng.IntN(n)].BuildId
			}
			cmd = &fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: bid, Files: []*fsmpb.File{{Key: BuildPrefix(s.CollectionId, s.Id, bid) + "f", Kind: fsmpb.FileKind_FILE_KIND_INDEX, Size: 3}}}
		case r < 87:
			cmd = &fsmpb.ExpireAllocations{}
		case r < 89:
			var dropped []uint64
			ref.f.View().EachDroppedSegment(func(s *fsmpb.Segment) bool {
				dropped = append(dropped, s.Id)
				return len(dropped) < 5
			})
			var colls []uint64
			ref.f.View().EachCollection(func(c *fsmpb.Collection) bool {
				colls = append(colls, c.Id)
				return true
			})
			switch rng.IntN(3) {
			case 0:
				cmd = &fsmpb.GCCheck{Segments: dropped, Collections: colls, Grace: int64(rng.IntN(30)) * second,
					Orphans: []*fsmpb.OrphanCandidate{{Key: "junk", LastModified: ref.now - 100*second}}}
			case 1:
				cmd = &fsmpb.GCRemove{Segments: dropped, Collections: colls, Grace: int64(rng.IntN(30)) * second}
			default:
				cmd = &fsmpb.GCRecordReport{Report: &fsmpb.GCReport{ObjectsDeleted: uint64(i)}}
			}
		case r < 90:
			cmd = &fsmpb.RegisterNode{Node: &fsmpb.Node{Id: pick([]string{"n1", "n2", "n3"}), GrpcAddr: fmt.Sprint(i)}}
		case r < 92:
			cmd = &fsmpb.SnapshotBegin{Collection: pick(collections), Name: pick([]string{"s1", "s2", "s3"}), MaxPerCollection: 4, PendingTimeout: 60 * second}
		case r < 98:
			v := ref.f.View()
			jobs := v.RunningRestoreJobs()
			if len(jobs) == 0 || rng.IntN(6) == 0 {
				cmd = &fsmpb.RestoreBegin{Collection: pick(collections), Snapshot: pick([]string{"s1", "s2", "s3"}), TargetCollection: pick([]string{"t1", "t2", "t3"}), MaxAttempts: 2}
				break
			}
			j := jobs[rng.IntN(len(jobs))]
			leases := v.RestoreLeases()
			switch k := rng.IntN(10); {
			case k < 1:
				cmd = &fsmpb.RestoreStart{JobId: j.Id}
			case k < 2:
				if rng.IntN(2) == 0 {
					cmd = &fsmpb.RestoreStart{JobId: j.Id, SourcesUnchecked: true}
				} else {
					cmd = &fsmpb.RestoreSourcesChecked{JobId: j.Id}
				}
			case k < 5:
				cmd = &fsmpb.RestoreGrant{JobId: j.Id, Node: "n1", MaxTasks: uint32(rng.IntN(5) + 1), Lease: int64(rng.IntN(20)+1) * second}
			case k < 8 && len(leases) > 0:
				l := leases[rng.IntN(len(leases))]
				rep := &fsmpb.RestoreReport{JobId: l.JobId, LeaseId: l.Id, Attempts: uint64(len(l.Tasks))}
				for _, task := range l.Tasks {
					if rng.IntN(4) == 0 {
						rep.Failed = append(rep.Failed, &fsmpb.TaskFailed{Task: task, Key: "k", Error: "e", Permanent: rng.IntN(10) == 0})
					} else {
						rep.Done = append(rep.Done, &fsmpb.TaskDone{Task: task, Bytes: 3})
					}
				}
				cmd = rep
			case k < 9:
				cmd = &fsmpb.ExpireRestoreLeases{}
			default:
				cmd = &fsmpb.RestoreCancel{JobId: j.Id}
			}
		case r < 99:
			snaps := ref.f.View().UnfinishedSnapshots()
			s := &fsmpb.Snapshot{Id: uint64(rng.IntN(500) + 1)}
			if len(snaps) > 0 {
				s = snaps[rng.IntN(len(snaps))]
			}
			switch rng.IntN(3) {
			case 0:
				cmd = &fsmpb.SnapshotCommit{SnapshotId: s.Id, ManifestSize: 10, Summary: &fsmpb.SnapshotSummary{Segments: uint64(len(s.SegmentIds)), IndexBuilds: uint64(len(s.BuildIds))}}
			case 1:
				cmd = &fsmpb.SnapshotMarkDeleting{SnapshotId: s.Id, Reason: "test"}
			default:
				cmd = &fsmpb.SnapshotRemove{SnapshotId: s.Id}
			}
		default:
			cmd = &fsmpb.CreateDatabase{Name: pick([]string{"db1", "db2"})}
		}
		reqID := ""
		if rng.IntN(3) == 0 {
			reqID = fmt.Sprintf("req-%d", rng.IntN(steps))
		}
		data, err := EncodeCommand(reqID, ref.now, cmd)
		require.NoError(t, err)
		if rng.IntN(50) == 0 {
			data = data[:rng.IntN(len(data))] // a torn entry must be rejected the same way everywhere
		}
		entries = append(entries, data)
		ref.applyRaw(data)
	}
	return entries, ref
}

func applyAll(f *FSM, entries [][]byte, from uint64) {
	for i, data := range entries {
		f.Apply(&raft.Log{Index: from + uint64(i), Type: raft.LogCommand, Data: data})
	}
}

func TestDeterminism(t *testing.T) {
	entries, ref := randomLog(t, *determinismSeed, *determinismSteps)
	want := ref.f.Hash()

	// The derived state kept by Apply (secondary orders, pins, leased tasks, totals) is
	// what a rebuild from the records gives, all along the log: a raft snapshot restore
	// rebuilds it, so any drift would make a restored node decide differently.
	checked := New(nil)
	for i, data := range entries {
		checked.Apply(&raft.Log{Index: uint64(i) + 1, Type: raft.LogCommand, Data: data})
		if i%100 == 99 || i == len(entries)-1 {
			require.NoError(t, checked.View().CheckDerived(), "after entry %d", i+1)
		}
	}

	// Three fresh FSMs given the same log end in the same state.
	for i := 0; i < 3; i++ {
		f := New(nil)
		applyAll(f, entries, 1)
		require.Equal(t, want, f.Hash(), "FSM %d diverged", i)
	}

	// A raft snapshot taken half-way, restored into a fresh FSM, then the rest of the
	// log: the same state again.
	half := len(entries) / 2
	f := New(nil)
	applyAll(f, entries[:half], 1)
	var buf bytes.Buffer
	snap, err := f.Snapshot()
	require.NoError(t, err)
	require.NoError(t, snap.Persist(&memorySink{Buffer: &buf}))
	restored := New(nil)
	require.NoError(t, restored.Restore(nopCloser{bytes.NewReader(buf.Bytes())}))
	require.Equal(t, f.Hash(), restored.Hash())
	require.EqualValues(t, half, restored.AppliedIndex())
	applyAll(restored, entries[half:], uint64(half)+1)
	require.Equal(t, want, restored.Hash())
}

func TestSnapshotWhileApplying(t *testing.T) {
	entries, _ := randomLog(t, 7, 1500)
	f := New(nil)
	applyAll(f, entries[:500], 1)
	snap, err := f.Snapshot()
	require.NoError(t, err)
	atSnapshot := f.Hash()

	var buf bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		require.NoError(t, snap.Persist(&memorySink{Buffer: &buf}))
	}()
	applyAll(f, entries[500:], 501) // Apply goes on while the snapshot is written
	wg.Wait()

	restored := New(nil)
	require.NoError(t, restored.Restore(nopCloser{bytes.NewReader(buf.Bytes())}))
	require.Equal(t, atSnapshot, restored.Hash())
	require.NotEqual(t, atSnapshot, f.Hash())
}

func TestRestoreDiscardsPriorState(t *testing.T) {
	empty := New(nil)
	var buf bytes.Buffer
	snap, err := empty.Snapshot()
	require.NoError(t, err)
	require.NoError(t, snap.Persist(&memorySink{Buffer: &buf}))

	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	require.NoError(t, h.f.Restore(nopCloser{bytes.NewReader(buf.Bytes())}))
	require.Equal(t, empty.Hash(), h.f.Hash())
	_, _, err = h.f.View().Collection("", "docs")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestCorruptSnapshotIsRefused(t *testing.T) {
	entries, ref := randomLog(t, 3, 300)
	_ = entries
	var buf bytes.Buffer
	_, err := writeSnapshot(&buf, ref.f.current())
	require.NoError(t, err)
	good := buf.Bytes()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		bad := bytes.Clone(good)
		pos := rng.IntN(len(bad))
		bad[pos] ^= byte(1 + rng.IntN(255))
		f := New(nil)
		before := f.Hash()
		if err := f.Restore(nopCloser{bytes.NewReader(bad)}); err == nil {
			// Some bits mean nothing (the padding of a zstd bitstream's last byte):
			// the flip may restore, but only to exactly the state written.
			require.Equal(t, ref.f.Hash(), f.Hash(), "flipped byte %d restored to another state", pos)
			continue
		}
		require.Equal(t, before, f.Hash(), "a failed restore must keep the old state")
	}
	for _, n := range []int{0, 5, 9, len(good) / 2, len(good) - 1} {
		require.Error(t, New(nil).Restore(nopCloser{bytes.NewReader(good[:n])}), "truncated to %d", n)
	}
}

type memorySink struct {
	*bytes.Buffer
}

func (s *memorySink) ID() string    { return "test" }
func (s *memorySink) Cancel() error { return nil }
func (s *memorySink) Close() error  { return nil }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// Validate (the leader's check before proposing) answers what Apply answers on the same
// state, for every entry of the random log: accepted or the same rejection.
func TestValidateAgreesWithApply(t *testing.T) {
	entries, _ := randomLog(t, 11, 2000)
	f := New(nil)
	rejected := 0
	for i, data := range entries {
		before := f.Hash()
		v := f.Validate(data)
		require.Equal(t, before, f.Hash(), "Validate changed the state at entry %d", i+1)
		res := f.Apply(&raft.Log{Index: uint64(i) + 1, Type: raft.LogCommand, Data: data}).(*ApplyResult).Result
		if res.Code == fsmpb.ErrorCode_ERROR_CODE_OK {
			require.Nil(t, v, "entry %d: Validate rejected what Apply accepted: %v", i+1, v)
			continue
		}
		rejected++
		require.NotNil(t, v, "entry %d: Validate accepted what Apply rejected: %s", i+1, res.Message)
		require.Equal(t, res.Code, v.Code, "entry %d", i+1)
		require.Equal(t, res.Message, v.Message, "entry %d", i+1)
	}
	require.Greater(t, rejected, 100, "the log exercises rejections")
}

// The leader validates each proposal on its running validation state: the committed
// state plus the commands accepted since. Proposed in the order they were accepted,
// those commands meet in Apply exactly the state they were validated on, so Apply
// accepts every one of them: a rejection in between must neither leave its
// half-written changes behind nor lose the accepted commands'.
// Validate changes no committed state, and a command the running state rejects gets
// the answer of the committed state alone.
func TestValidateRunsProposalsInFlight(t *testing.T) {
	entries, _ := randomLog(t, 13, 2000)
	rng := rand.New(rand.NewPCG(13, 5))
	f := New(nil)
	index := uint64(0)
	var pending []*raft.Log // accepted by the running state, not yet applied
	apply := func() {
		for i, out := range f.ApplyBatch(pending) {
			res := out.(*ApplyResult).Result
			require.Equal(t, fsmpb.ErrorCode_ERROR_CODE_OK, res.Code, "entry %d, accepted by the running validation state, was rejected by Apply: %s", pending[i].Index, res.Message)
		}
		pending = nil
	}
	rejected, accepted, inFlight := 0, 0, 0
	for next := 0; next < len(entries); {
		chunk := entries[next:min(len(entries), next+rng.IntN(24)+1)]
		next += len(chunk)
		for i, data := range chunk {
			check := i%8 == 0 // Hash walks the whole state
			var before string
			if check {
				before = f.Hash()
			}
			ok := f.validateRunning(data)
			fresh := validateOn(f.current(), data)
			if check {
				require.Equal(t, before, f.Hash(), "validating changed the committed state")
			}
			if !ok {
				rejected++
				require.True(t, proto.Equal(fresh, f.Validate(data)), "a command the running state rejects gets the committed state's answer")
				continue
			}
			accepted++
			if len(pending) > 0 {
				inFlight++
			}
			index++
			pending = append(pending, &raft.Log{Index: index, Type: raft.LogCommand, Data: data})
		}
		apply()
	}
	require.Greater(t, rejected, 100, "the log exercises rejections")
	require.Greater(t, inFlight, 150, "commands are validated with others in flight")
	require.Greater(t, accepted, 500)
	require.NoError(t, f.View().CheckDerived())
}

// After a rejection the running validation state is the committed state with the
// accepted commands run again: whatever the rejected handler wrote is gone.
func TestValidationRebuildDropsHalfWrittenChanges(t *testing.T) {
	entries, _ := randomLog(t, 13, 80)
	f := New(nil)
	accepted := 0
	for _, data := range entries {
		if f.validateRunning(data) {
			accepted++
		}
	}
	require.Greater(t, accepted, 5)
	v := &f.validation
	records := func() string {
		h := sha256.New()
		_, err := writeRecords(h, v.tx)
		require.NoError(t, err)
		return hex.EncodeToString(h.Sum(nil))
	}
	want := records()
	// What a handler rejected halfway may leave: a record of its own.
	v.tx.collections.put(&fsmpb.Collection{Id: 1 << 40, DatabaseId: 1, Name: "half-written"})
	require.NotEqual(t, want, records())
	v.rebuild(&f.mu)
	require.Equal(t, want, records(), "the rebuilt state is the committed one with the accepted commands")
	require.NotEmpty(t, v.ran)

	// A running state holding its budget of commands starts again from the committed
	// state before the next one.
	v.ranBytes = maxRunningValidationBytes
	f.validateRunning(entries[len(entries)-1])
	require.LessOrEqual(t, len(v.ran), 1, "the running state over its budget was not dropped")
	require.Less(t, v.ranBytes, maxRunningValidationBytes)

	// A publication makes the running state stale: it is dropped at once, so that a
	// node that stops leading keeps no old state alive.
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: entries[0]})
	require.Nil(t, v.tx)
	require.Nil(t, v.base)
	require.Empty(t, v.ran)
}

// Raft applies committed entries in batches of any size (ApplyBatch), configuration
// entries among them, and a node's batches need not match another's: each batch must
// answer every entry as Apply does and leave the state Apply leaves, rejections in the
// middle of a batch included (the random log has many).
func TestBatchesApplyAsEntriesOneByOne(t *testing.T) {
	entries, _ := randomLog(t, 11, 2000)
	rng := rand.New(rand.NewPCG(11, 3))
	var logs []*raft.Log
	for _, data := range entries {
		if rng.IntN(20) == 0 {
			logs = append(logs, &raft.Log{Index: uint64(len(logs)) + 1, Type: raft.LogConfiguration})
		}
		logs = append(logs, &raft.Log{Index: uint64(len(logs)) + 1, Type: raft.LogCommand, Data: data})
	}
	one := New(nil)
	want := make([]any, len(logs))
	rejected := 0
	for i, l := range logs {
		want[i] = one.Apply(l)
		if r, ok := want[i].(*ApplyResult); ok && r.Result.Code != fsmpb.ErrorCode_ERROR_CODE_OK {
			rejected++
		}
	}
	require.Greater(t, rejected, 100, "the log has rejections to undo inside batches")

	for _, maxBatch := range []int{1, 7, 64, 500} {
		f := New(nil)
		for next := 0; next < len(logs); {
			batch := logs[next:min(len(logs), next+rng.IntN(maxBatch)+1)]
			out := f.ApplyBatch(batch)
			require.Len(t, out, len(batch))
			for i, got := range out {
				w := want[next+i]
				if w == nil {
					require.Nil(t, got)
					continue
				}
				g, wr := got.(*ApplyResult), w.(*ApplyResult)
				require.Equal(t, wr.Index, g.Index)
				require.True(t, proto.Equal(wr.Result, g.Result), "batches of up to %d, entry %d: %v, want %v", maxBatch, wr.Index, g.Result, wr.Result)
			}
			next += len(batch)
		}
		require.Equal(t, one.AppliedIndex(), f.AppliedIndex())
		require.NoError(t, f.View().CheckDerived())
		require.Equal(t, one.Hash(), f.Hash(), "batches of up to %d", maxBatch)
	}
}

// Views read the committed state itself and clones borrow its tables until they write
// (own, under the FSM's lock): while batches are applied, concurrent Validate calls
// (each writing a throwaway clone) and views must neither race (go test -race) nor
// see a view change under them, and the end state must be the one-by-one state.
func TestViewsAndValidateDuringBatches(t *testing.T) {
	entries, ref := randomLog(t, 5, 1500)
	f := New(nil)
	viewHash := func(v *View) string {
		h := sha256.New()
		_, err := writeRecords(h, v.r.t)
		require.NoError(t, err)
		return hex.EncodeToString(h.Sum(nil))
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for {
				select {
				case <-done:
					return
				default:
				}
				f.Validate(entries[rng.IntN(len(entries))])
				v := f.View()
				before := viewHash(v)
				f.Validate(entries[rng.IntN(len(entries))])
				if after := viewHash(v); after != before {
					t.Errorf("a view changed while entries were applied: %s, then %s", before, after)
					return
				}
			}
		})
	}
	for next := 0; next < len(entries); next += 16 {
		var logs []*raft.Log
		for i := next; i < min(len(entries), next+16); i++ {
			logs = append(logs, &raft.Log{Index: uint64(i) + 1, Type: raft.LogCommand, Data: entries[i]})
		}
		f.ApplyBatch(logs)
	}
	close(done)
	wg.Wait()
	require.Equal(t, ref.f.Hash(), f.Hash())
	require.NoError(t, f.View().CheckDerived())
}
