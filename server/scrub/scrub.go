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
	"fmt"
	"log/slog"
	"sort"
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
}

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

// Kick runs a pass now.
func (s *Scrubber) Kick() { s.kick.Kick() }

// Loop is the scrubber's duty for one term as leader.
func (s *Scrubber) Loop() duty.Loop {
	return duty.Loop{Name: "scrubber", Every: s.cfg.Tick, Kick: s.kick, Pass: s.pass}
}

// due is a snapshot to verify and whether deep.
type due struct {
	snap *fsmpb.Snapshot
	deep bool
	last int64 // when it was last verified (or committed): the oldest go first
}

// Due lists the committed snapshots due for verification at now, oldest
// verification first, at most PerPass.
func (s *Scrubber) Due(view *fsm.View, now time.Time) []due {
	if s.cfg.Every <= 0 {
		return nil
	}
	var out []due
	for _, db := range view.Databases() {
		_ = view.EachSnapshot(fsm.SnapshotFilter{Database: db.Name, States: []fsmpb.SnapshotState{fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED}}, 0,
			func(snap *fsmpb.Snapshot) bool {
				last, lastDeep := snap.CommittedAt, snap.CommittedAt
				if v := snap.Verification; v != nil {
					last = v.VerifiedAt
					lastDeep = max(v.DeepVerifiedAt, snap.CommittedAt)
				}
				deep := s.cfg.DeepEvery > 0 && now.UnixNano()-lastDeep >= int64(s.cfg.DeepEvery)
				if deep || now.UnixNano()-last >= int64(s.cfg.Every) {
					out = append(out, due{snap: snap, deep: deep, last: last})
				}
				return true
			})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].last < out[j].last })
	if len(out) > s.cfg.PerPass {
		out = out[:s.cfg.PerPass]
	}
	return out
}

func (s *Scrubber) pass(ctx context.Context) {
	view := s.cluster.View()
	for _, d := range s.Due(view, s.cfg.Now()) {
		if ctx.Err() != nil {
			return
		}
		if _, err := s.Verify(ctx, d.snap.Id, d.deep); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("snapshot verification not recorded; will retry", "snapshot", d.snap.Id, "err", err)
		}
	}
}

// Verify verifies the committed snapshot id now (deep: reading every data file),
// repairs its manifest if it can, records the result and returns it.
func (s *Scrubber) Verify(ctx context.Context, id uint64, deep bool) (*fsmpb.SnapshotVerification, error) {
	view := s.cluster.View()
	snap, err := view.Snapshot(id)
	if err != nil {
		return nil, err
	}
	store, err := s.cluster.Store()
	if err != nil {
		return nil, err
	}
	rep, err := fsck.CheckSnapshot(ctx, view, store, s.cfg.Root, snap, fsck.Options{Deep: deep, BytesPerSecond: s.cfg.BytesPerSecond})
	if err != nil {
		return nil, fmt.Errorf("verify snapshot %d: %w", id, err)
	}
	cmd := &fsmpb.SnapshotVerified{SnapshotId: id, Deep: deep, Outcome: fsmpb.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK}
	manifestBroken, dataLost := false, false
	for _, p := range rep.Problems {
		if fsck.IsManifestProblem(p.Kind) {
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
