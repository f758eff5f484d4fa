// Package scrub is the leader's scrubber: it verifies committed snapshots against the
// bucket continuously — each one's manifest and the sizes of its data files (by
// listing) every Every, and their CRC-32C (by reading) every DeepEvery — repairs a
// missing or damaged manifest by rewriting it from the catalog, and records every
// result in the snapshot (SnapshotVerified), where describe, list, health and metrics
// see it.
//
// A manifest is a pure function of the catalog (server/finisher.EncodeManifest): a
// repair writes the bytes written at commit, and only when their size and xxhash64
// are the ones the catalog recorded; otherwise the snapshot is recorded DAMAGED. A
// data file cannot be rewritten: its loss is recorded as DATA_LOSS with its key.
package scrub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/server/finisher"
	"github.com/snapkeep/snapkeep/server/fsck"
)

// Cluster is the node as the scrubber sees it.
type Cluster interface {
	View() *fsm.View
	Propose(ctx context.Context, cmd, resp proto.Message) error
	Store() (objstore.Store, error)
}

// Config tunes the scrubber.
type Config struct {
	Root layout.Root
	// Every is how often each committed snapshot is verified (manifest and sizes); 0
	// turns the scrubber off.
	Every time.Duration
	// DeepEvery is how often each one is also read back in full (0: never on a
	// schedule).
	DeepEvery time.Duration
	// PerPass bounds the snapshots one pass verifies (default 4); passes run every
	// Tick (default 10 s), so at most PerPass/Tick snapshots are verified.
	PerPass int
	Tick    time.Duration
	// BytesPerSecond limits deep reads (0: no limit).
	BytesPerSecond int64
	Logger         *slog.Logger
	// Verified is called after each verification is recorded (metrics).
	Verified func(outcome fsmpb.SnapshotVerifyOutcome, deep bool)
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Scrubber verifies snapshots. Its methods are safe for concurrent use.
type Scrubber struct {
	cluster Cluster
	cfg     Config
	kick    duty.Kicker

	mu sync.Mutex
	// nextWalk: no snapshot can be due before it, so a pass before it skips the walk
	// over every committed snapshot (zero: walk).
	nextWalk time.Time
}

// walkAtLeastEvery bounds how long a pass trusts nextWalk: the catalog can be
// replaced wholesale (a raft snapshot installed, a metadata backup restored).
const walkAtLeastEvery = 10 * time.Minute

// New returns a scrubber; Loop is its leader duty.
func New(cluster Cluster, cfg Config) *Scrubber {
	if cfg.PerPass <= 0 {
		cfg.PerPass = 4
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scrubber{cluster: cluster, cfg: cfg, kick: duty.NewKicker()}
}

// Kick runs a pass now, walking every snapshot.
func (s *Scrubber) Kick() {
	s.mu.Lock()
	s.nextWalk = time.Time{}
	s.mu.Unlock()
	s.kick.Kick()
}

// Loop is the scrubber's duty for one term as leader.
func (s *Scrubber) Loop() duty.Loop {
	return duty.Loop{Name: "scrubber", Every: s.cfg.Tick, Kick: s.kick, Pass: s.pass}
}

// Group is snapshots of one collection verified together, deep or not: one listing
// of the collection serves them all.
type Group struct {
	Deep  bool
	Snaps []*fsmpb.Snapshot
}

// candidate is a committed snapshot with when it was last verified (or committed).
type candidate struct {
	snap           *fsmpb.Snapshot
	last, lastDeep int64
}

// Due returns what to verify at now: the committed snapshots due, oldest verification
// first, at most PerPass of them, each in a group with the other snapshots of its
// collection that are at least half way to due (verifying them early costs no
// listing, and keeps a collection's snapshots verified together from then on).
func (s *Scrubber) Due(view *fsm.View, now time.Time) []Group {
	if s.cfg.Every <= 0 {
		return nil
	}
	nanos := now.UnixNano()
	isDeep := func(c candidate) bool {
		return s.cfg.DeepEvery > 0 && nanos-c.lastDeep >= int64(s.cfg.DeepEvery)
	}
	var due []candidate
	byColl := map[uint64][]candidate{}
	next := nanos + int64(min(s.cfg.Every, walkAtLeastEvery))
	for _, db := range view.Databases() {
		_ = view.EachSnapshot(fsm.SnapshotFilter{Database: db.Name, States: []fsmpb.SnapshotState{fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED}}, 0,
			func(snap *fsmpb.Snapshot) bool {
				c := candidate{snap: snap, last: snap.CommittedAt, lastDeep: snap.CommittedAt}
				if v := snap.Verification; v != nil {
					c.last = v.VerifiedAt
					c.lastDeep = max(v.DeepVerifiedAt, snap.CommittedAt)
				}
				byColl[snap.CollectionId] = append(byColl[snap.CollectionId], c)
				if isDeep(c) || nanos-c.last >= int64(s.cfg.Every) {
					due = append(due, c)
					return true
				}
				next = min(next, c.last+int64(s.cfg.Every))
				if s.cfg.DeepEvery > 0 {
					next = min(next, c.lastDeep+int64(s.cfg.DeepEvery))
				}
				return true
			})
	}
	sort.SliceStable(due, func(i, j int) bool { return due[i].last < due[j].last })
	if len(due) > s.cfg.PerPass {
		due = due[:s.cfg.PerPass]
		next = nanos // more are due: the next pass walks again
	}
	s.mu.Lock()
	s.nextWalk = time.Unix(0, next)
	s.mu.Unlock()

	var groups []Group
	index := map[[2]uint64]int{} // (collection, deep) → group
	taken := map[uint64]bool{}
	for _, d := range due {
		deep := isDeep(d)
		k := [2]uint64{d.snap.CollectionId, map[bool]uint64{true: 1}[deep]}
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, Group{Deep: deep})
		}
		groups[i].Snaps = append(groups[i].Snaps, d.snap)
		taken[d.snap.Id] = true
	}
	for k, i := range index {
		for _, c := range byColl[k[0]] {
			if taken[c.snap.Id] {
				continue
			}
			early := nanos-c.last >= int64(s.cfg.Every/2)
			if groups[i].Deep {
				early = nanos-c.lastDeep >= int64(s.cfg.DeepEvery/2)
			}
			if early {
				groups[i].Snaps = append(groups[i].Snaps, c.snap)
				taken[c.snap.Id] = true
			}
		}
	}
	return groups
}

func (s *Scrubber) pass(ctx context.Context) {
	now := s.cfg.Now()
	s.mu.Lock()
	skip := now.Before(s.nextWalk)
	s.mu.Unlock()
	if skip {
		return
	}
	view := s.cluster.View()
	for _, g := range s.Due(view, now) {
		if ctx.Err() != nil {
			return
		}
		if _, err := s.verify(ctx, g.Snaps, g.Deep); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("snapshot verification not recorded; will retry", "snapshots", ids(g.Snaps), "err", err)
			s.mu.Lock()
			s.nextWalk = time.Time{}
			s.mu.Unlock()
		}
	}
}

func ids(snaps []*fsmpb.Snapshot) []uint64 {
	out := make([]uint64, len(snaps))
	for i, s := range snaps {
		out[i] = s.Id
	}
	return out
}

// Verify verifies the committed snapshot id now (deep: reading every data file),
// repairs its manifest if it can, records the result and returns it.
func (s *Scrubber) Verify(ctx context.Context, id uint64, deep bool) (*fsmpb.SnapshotVerification, error) {
	snap, err := s.cluster.View().Snapshot(id)
	if err != nil {
		return nil, err
	}
	out, err := s.verify(ctx, []*fsmpb.Snapshot{snap}, deep)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// verify checks snaps with one listing, repairs each one's manifest if it can, and
// records each result.
func (s *Scrubber) verify(ctx context.Context, snaps []*fsmpb.Snapshot, deep bool) ([]*fsmpb.SnapshotVerification, error) {
	view := s.cluster.View()
	store, err := s.cluster.Store()
	if err != nil {
		return nil, err
	}
	rep, err := fsck.CheckSnapshots(ctx, view, store, s.cfg.Root, snaps, fsck.Options{Deep: deep, BytesPerSecond: s.cfg.BytesPerSecond})
	if err != nil {
		return nil, fmt.Errorf("verify snapshots %v: %w", ids(snaps), err)
	}
	out := make([]*fsmpb.SnapshotVerification, 0, len(snaps))
	var undecided []error
	for _, snap := range snaps {
		v, err := s.record(ctx, view, store, snap, rep.Problems, deep)
		if errors.Is(err, ErrUndecided) {
			undecided = append(undecided, err)
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, errors.Join(undecided...)
}

// ErrUndecided is wrapped by the error of a verification that could not read every
// object it needed (an S3 fault): nothing is recorded, and the snapshot stays due, so
// the next pass verifies it again. A failed read proves no damage.
var ErrUndecided = errors.New("verification undecided: an object could not be read")

// record repairs snap's manifest if a problem of problems about snap needs it and
// records the verification.
func (s *Scrubber) record(ctx context.Context, view *fsm.View, store objstore.Store, snap *fsmpb.Snapshot, problems []fsck.Problem, deep bool) (*fsmpb.SnapshotVerification, error) {
	id := snap.Id
	cmd := &fsmpb.SnapshotVerified{SnapshotId: id, Deep: deep, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK}
	manifestBroken, dataLost := false, false
	for _, p := range problems {
		if !slices.Contains(p.Snapshots, id) {
			continue
		}
		if fsck.IsReadFailure(p.Kind) && !bugScrubFalseLoss {
			return nil, fmt.Errorf("snapshot %s (id %d): %s %s: %w", snap.Name, id, p.Kind, p.Key, ErrUndecided)
		}
		if fsck.IsManifestProblem(p.Kind) || p.Kind == fsck.ManifestReadError {
			manifestBroken = true
		} else {
			dataLost = true
		}
		cmd.ProblemCount++
		if len(cmd.Problems) < fsm.MaxVerifyProblems {
			cmd.Problems = append(cmd.Problems, problemText(p))
		}
	}
	if manifestBroken {
		cmd.Outcome = fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_REPAIRED
		if err := s.repair(ctx, view, store, snap); err != nil {
			cmd.Outcome = fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_DAMAGED
			cmd.ProblemCount++
			if len(cmd.Problems) < fsm.MaxVerifyProblems {
				cmd.Problems = append(cmd.Problems, "repair failed: "+err.Error())
			}
			s.cfg.Logger.Error("snapshot manifest damaged and not repaired", "snapshot", id, "name", snap.Name, "err", err)
		} else {
			s.cfg.Logger.Warn("snapshot manifest repaired from the catalog", "snapshot", id, "name", snap.Name,
				"key", s.cfg.Root.Full(snap.ManifestKey), "problems", cmd.Problems)
		}
	}
	if dataLost {
		cmd.Outcome = fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_DATA_LOSS
		s.cfg.Logger.Error("snapshot data lost: a file it needs is missing or damaged", "snapshot", id, "name", snap.Name,
			"problems", cmd.ProblemCount, "first", cmd.Problems)
	}
	var resp fsmpb.SnapshotResponse
	if err := s.cluster.Propose(ctx, cmd, &resp); err != nil {
		return nil, fmt.Errorf("record the verification of snapshot %d: %w", id, err)
	}
	if s.cfg.Verified != nil {
		s.cfg.Verified(cmd.Outcome, deep)
	}
	return resp.GetSnapshot().GetVerification(), nil
}

func problemText(p fsck.Problem) string {
	t := p.Kind + " " + p.Key + ": " + p.Detail
	if len(t) > 1000 {
		t = t[:1000]
	}
	return t
}

// repair rewrites snap's manifest from the catalog, if the fresh encoding has the
// size and xxhash64 recorded at commit (so it is the very manifest that was lost),
// and reads it back.
func (s *Scrubber) repair(ctx context.Context, view *fsm.View, store objstore.Store, snap *fsmpb.Snapshot) error {
	var buf bytes.Buffer
	res, err := finisher.EncodeManifest(ctx, &buf, view, snap)
	if err != nil {
		return fmt.Errorf("encode from the catalog: %w", err)
	}
	if uint64(res.Size) != snap.ManifestSize || res.Checksum != snap.ManifestChecksum {
		return fmt.Errorf("the catalog encodes to %d bytes with xxhash64 %016x, not the %d bytes with %016x recorded at commit: not rewritten",
			res.Size, res.Checksum, snap.ManifestSize, snap.ManifestChecksum)
	}
	key := s.cfg.Root.Full(snap.ManifestKey)
	if _, err := store.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), objstore.PutOptions{}); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	rep, err := fsck.CheckSnapshot(ctx, view, store, s.cfg.Root, snap, fsck.Options{})
	if err != nil {
		return fmt.Errorf("check the rewritten manifest: %w", err)
	}
	for _, p := range rep.Problems {
		if fsck.IsManifestProblem(p.Kind) {
			return fmt.Errorf("the rewritten manifest still fails: %s", problemText(p))
		}
	}
	return nil
}
