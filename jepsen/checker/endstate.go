package checker

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/sync/errgroup"
	"hash/crc32"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func needEnd(name string, in Input) error {
	if in.End == nil || in.End.Client == nil {
		return fmt.Errorf("%s: no end state (client) to check", name)
	}
	return nil
}

// ---------------------------------------------------------------------------
// No acknowledged snapshot lost, no acknowledged drop undone.

// LostUndone checks, against the healed cluster, that every snapshot whose create was
// acknowledged and that no drop may have removed since is COMMITTED, and that no
// snapshot an acknowledged drop removed (every id the name had before the drop was
// called) is PENDING or COMMITTED at the end.
type LostUndone struct{}

func (LostUndone) Name() string { return "lost-undone" }

func (c LostUndone) Check(ctx context.Context, in Input) ([]Violation, error) {
	if err := needEnd(c.Name(), in); err != nil {
		return nil, err
	}
	type known struct {
		id      uint64
		op      history.Op
		created bool // from an OK create (else from a describe)
	}
	byName := map[string][]known{}
	drops := map[string][]history.Op{}
	for _, op := range normalize(in.Ops) {
		key := regKey(op.Input.Collection, op.Input.Name)
		switch {
		case op.Kind == history.SnapshotCreate && op.Result == history.OK && op.Output.SnapshotID != 0:
			byName[key] = append(byName[key], known{op.Output.SnapshotID, op, true})
		case op.Kind == history.SnapshotDescribe && op.Result == history.OK && op.Output.Found && op.Output.SnapshotID != 0:
			if st, ok := snapState(op.Output.State); ok && live(st) {
				byName[key] = append(byName[key], known{op.Output.SnapshotID, op, false})
			}
		case op.Kind == history.SnapshotDrop && op.Result != history.Fail:
			drops[key] = append(drops[key], op)
		}
	}
	keys := make([]string, 0, len(byName))
	for k := range byName {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var vs []Violation
	checked := map[uint64]bool{}
	for _, key := range keys {
		for _, k := range byName[key] {
			if checked[k.id] {
				continue
			}
			// A drop that returned before the id was known cannot have removed it; any
			// other drop (acknowledged or unknown) may have.
			var mayDrop, mustDrop []history.Op
			for _, d := range drops[key] {
				if d.Result == history.Unknown || d.Return > k.op.Call {
					mayDrop = append(mayDrop, d)
				}
				if d.Result == history.OK && d.Call > k.op.Return {
					mustDrop = append(mustDrop, d)
				}
			}
			if len(mayDrop) > 0 && len(mustDrop) == 0 {
				continue // dropped or not: both are legitimate
			}
			checked[k.id] = true
			snap, err := in.End.Client.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(k.id))
			gone := errors.Is(err, client.ErrNotFound)
			if err != nil && !gone {
				return nil, fmt.Errorf("%s: describe snapshot %d: %w", c.Name(), k.id, err)
			}
			switch {
			case len(mustDrop) > 0: // an acknowledged drop called after the id was known
				if !gone && (snap.State == pb.SnapshotState_SNAPSHOT_STATE_COMMITTED || snap.State == pb.SnapshotState_SNAPSHOT_STATE_PENDING) {
					vs = append(vs, Violation{Checker: c.Name(), OpIDs: []int64{k.op.ID, mustDrop[0].ID},
						Message: fmt.Sprintf("snapshot %s id %d was dropped by acknowledged op %d, yet is %s at the end",
							key, k.id, mustDrop[0].ID, snap.State)})
				}
			case k.created:
				if gone || snap.State != pb.SnapshotState_SNAPSHOT_STATE_COMMITTED {
					state := "not found"
					if !gone {
						state = snap.State.String()
					}
					vs = append(vs, Violation{Checker: c.Name(), OpIDs: []int64{k.op.ID},
						Message: fmt.Sprintf("snapshot %s id %d, created by acknowledged op %d and never dropped, is %s at the end",
							key, k.id, k.op.ID, state)})
				}
			}
		}
	}
	return vs, nil
}

// ---------------------------------------------------------------------------
// Bucket audit.

// BucketAudit reads back, from the bucket, every file a FLUSHED segment (with its
// READY index builds) or a COMMITTED snapshot owns — the manifest object (size and
// xxhash64) and every file it lists — and checks each file's size and CRC-32C
// against the catalog's or the manifest's record.
type BucketAudit struct{}

func (BucketAudit) Name() string { return "bucket-audit" }

// want is a file as a record describes it.
type want struct {
	size  uint64
	crc   uint32
	owner string
}

func (c BucketAudit) Check(ctx context.Context, in Input) ([]Violation, error) {
	if err := needEnd(c.Name(), in); err != nil {
		return nil, err
	}
	if in.End.Store == nil {
		return nil, fmt.Errorf("%s: no store in the end state", c.Name())
	}
	files, vs, err := liveFiles(ctx, c.Name(), in)
	if err != nil {
		return nil, err
	}
	msgs, err := verifyObjects(ctx, in.End.Store, files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name(), err)
	}
	for _, msg := range msgs {
		vs = append(vs, Violation{Checker: c.Name(), Message: msg})
	}
	return vs, nil
}

// liveFiles is every file the healed cluster needs, by full key: each FLUSHED
// segment's (with its READY builds') and each COMMITTED snapshot's manifest's (a
// manifest that cannot be read is a violation of checker name).
func liveFiles(ctx context.Context, name string, in Input) (map[string]want, []Violation, error) {
	cl := in.End.Client
	files := map[string]want{}
	var vs []Violation
	dbs, err := cl.ListDatabases(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: list databases: %w", name, err)
	}
	for _, db := range dbs {
		colls, err := cl.ListCollections(ctx, client.NewListCollectionsOption().WithDatabase(db.GetName()))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: list collections of %s: %w", name, db.GetName(), err)
		}
		for _, coll := range colls {
			opt := client.NewListSegmentsOption(coll.GetName()).WithDatabase(db.GetName()).WithStates(pb.SegmentState_SEGMENT_STATE_FLUSHED)
			for seg, err := range cl.ListAllSegments(ctx, opt) {
				if err != nil {
					return nil, nil, fmt.Errorf("%s: list segments of %s: %w", name, coll.GetName(), err)
				}
				addSegmentFiles(files, seg)
			}
		}
		opt := client.NewListSnapshotsOption().WithDatabase(db.GetName()).WithStates(pb.SnapshotState_SNAPSHOT_STATE_COMMITTED)
		for snap, err := range cl.ListAllSnapshots(ctx, opt) {
			if err != nil {
				return nil, nil, fmt.Errorf("%s: list snapshots: %w", name, err)
			}
			owner := fmt.Sprintf("snapshot %s/%s id %d", snap.GetCollection(), snap.GetName(), snap.GetId())
			mf, err := manifestFiles(ctx, in.End.Store, in.End.Root, snap)
			if err != nil {
				vs = append(vs, Violation{Checker: name, Message: fmt.Sprintf("%s: manifest %s: %v", owner, snap.GetManifestKey(), err)})
				continue
			}
			for k, w := range mf {
				w.owner = owner
				files[k] = w
			}
		}
	}
	return files, vs, nil
}

// auditReaders is how many objects the audits read at once.
const auditReaders = 16

// verifyObjects reads every file back (auditReaders at a time: a long run's bucket
// holds tens of thousands) and returns verifyObject's messages in key order.
func verifyObjects(ctx context.Context, store objstore.Store, files map[string]want) ([]string, error) {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	msgs := make([]string, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(auditReaders)
	for i, k := range keys {
		g.Go(func() error {
			msg, err := verifyObject(gctx, store, k, files[k])
			msgs[i] = msg
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(msgs, func(m string) bool { return m == "" }), nil
}

func addSegmentFiles(files map[string]want, seg *pb.Segment) {
	owner := fmt.Sprintf("segment %d", seg.GetId())
	for _, f := range seg.GetFiles() {
		files[f.GetKey()] = want{f.GetSize(), f.GetCrc32C(), owner}
	}
	for _, b := range seg.GetIndexBuilds() {
		if b.GetState() == pb.IndexBuildState_INDEX_BUILD_STATE_READY {
			for _, f := range b.GetFiles() {
				files[f.GetKey()] = want{f.GetSize(), f.GetCrc32C(), fmt.Sprintf("%s build %d", owner, b.GetBuildId())}
			}
		}
	}
}

// verifyObject reads key and compares it with w; it returns a message when the
// object is missing or differs, an error when it cannot be read otherwise.
func verifyObject(ctx context.Context, store objstore.Store, key string, w want) (string, error) {
	body, _, err := store.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return fmt.Sprintf("%s: file %s is missing from the bucket", w.owner, key), nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	defer body.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, body)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	if uint64(n) != w.size || h.Sum32() != w.crc {
		return fmt.Sprintf("%s: file %s has %d bytes with CRC-32C %08x, the record says %d bytes with %08x",
			w.owner, key, n, h.Sum32(), w.size, w.crc), nil
	}
	return "", nil
}

// joinKey puts a key relative to the root under it.
func joinKey(root, rel string) string {
	root = strings.TrimSuffix(root, "/")
	if root == "" {
		return rel
	}
	return root + "/" + rel
}

// manifestFiles checks a committed snapshot's manifest object (size and xxhash64 as
// the catalog records them) and returns every file it lists, by full key.
func manifestFiles(ctx context.Context, store objstore.Store, root string, snap *pb.Snapshot) (map[string]want, error) {
	out := map[string]want{}
	err := eachManifestSegment(ctx, store, snap, func(rd *manifest.Reader, s *manifest.Segment) error {
		return rd.Files(s, func(key string, e filelist.Entry) bool {
			out[joinKey(root, key)] = want{size: e.Size, crc: e.CRC32C}
			return true
		})
	})
	return out, err
}

// eachManifestSegment verifies the manifest object's size and xxhash64 and calls fn
// for each segment it lists.
func eachManifestSegment(ctx context.Context, store objstore.Store, snap *pb.Snapshot, fn func(*manifest.Reader, *manifest.Segment) error) error {
	key := snap.GetManifestKey()
	body, _, err := store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	d := xxhash.New()
	n, err := io.Copy(d, body)
	body.Close()
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if uint64(n) != snap.GetManifestSize() || (snap.GetManifestXxhash64() != 0 && d.Sum64() != snap.GetManifestXxhash64()) {
		return fmt.Errorf("the object has %d bytes with xxhash64 %016x, the catalog records %d bytes with %016x",
			n, d.Sum64(), snap.GetManifestSize(), snap.GetManifestXxhash64())
	}
	rd, err := manifest.Open(objstore.NewReaderAt(ctx, store, key, n), n)
	if err != nil {
		return err
	}
	return rd.Segments(ctx, manifest.ReadOptions{}, func(s *manifest.Segment) error { return fn(rd, s) })
}

// ---------------------------------------------------------------------------
// Restores.

// Restores checks that every restore job the history started (and every job the
// cluster lists) is final at the end, that a job once reported COMPLETED is still
// COMPLETED, and that every COMPLETED job's target files match its snapshot's
// files: the same relative keys with the same sizes and CRC-32C in the catalog, and
// each target object read back with that size and CRC-32C.
type Restores struct{}

func (Restores) Name() string { return "restores" }

func finalRestore(s pb.RestoreState) bool {
	return s == pb.RestoreState_RESTORE_STATE_COMPLETED || s == pb.RestoreState_RESTORE_STATE_FAILED ||
		s == pb.RestoreState_RESTORE_STATE_CANCELLED
}

func (c Restores) Check(ctx context.Context, in Input) ([]Violation, error) {
	if err := needEnd(c.Name(), in); err != nil {
		return nil, err
	}
	cl := in.End.Client
	started := map[uint64]int64{}   // job → the op that started it
	completed := map[uint64]int64{} // job → an op that saw it COMPLETED
	for _, op := range normalize(in.Ops) {
		switch {
		case op.Kind == history.RestoreStart && op.Result == history.OK && op.Output.JobID != 0:
			started[op.Output.JobID] = op.ID
		case (op.Kind == history.RestoreStatus || op.Kind == history.RestoreCancel) && op.Result == history.OK:
			if strings.HasSuffix(strings.ToUpper(op.Output.State), "COMPLETED") {
				completed[op.Input.JobID] = op.ID
			}
		}
	}
	jobs := map[uint64]*pb.RestoreJob{}
	for j, err := range cl.ListAllRestoreJobs(ctx, client.NewListRestoreJobsOption().WithKinds(pb.JobKind_JOB_KIND_RESTORE)) {
		if err != nil {
			return nil, fmt.Errorf("%s: list restore jobs: %w", c.Name(), err)
		}
		jobs[j.GetId()] = j
	}
	var vs []Violation
	for _, id := range jobIDs(jobs, started) {
		var opIDs []int64
		if o, ok := started[id]; ok {
			opIDs = append(opIDs, o)
		}
		job := jobs[id]
		if job == nil {
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: opIDs, Message: fmt.Sprintf("restore job %d, started by op %v, is not found at the end", id, opIDs)})
			continue
		}
		if !finalRestore(job.GetState()) {
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: opIDs, Message: fmt.Sprintf("restore job %d is %s at the end, not final", id, job.GetState())})
			continue
		}
		if o, ok := completed[id]; ok && job.GetState() != pb.RestoreState_RESTORE_STATE_COMPLETED {
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: append(opIDs, o),
				Message: fmt.Sprintf("restore job %d was seen COMPLETED by op %d, but is %s at the end", id, o, job.GetState())})
			continue
		}
		if job.GetState() != pb.RestoreState_RESTORE_STATE_COMPLETED {
			continue
		}
		msgs, err := checkRestoredFiles(ctx, cl, in.End.Store, in.End.Root, job, snapshotSource(ctx, cl, in.End.Store, job))
		if err != nil {
			return nil, fmt.Errorf("%s: job %d: %w", c.Name(), id, err)
		}
		for _, m := range msgs {
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: opIDs, Message: fmt.Sprintf("restore job %d: %s", id, m)})
		}
	}
	return vs, nil
}

// jobIDs are the jobs the cluster lists and those the history started, in order.
func jobIDs(jobs map[uint64]*pb.RestoreJob, started map[uint64]int64) []uint64 {
	ids := make([]uint64, 0, len(jobs)+len(started))
	for id := range jobs {
		ids = append(ids, id)
	}
	for id := range started {
		if jobs[id] == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// relKey is what a segment's file list keeps of one of its keys: the key below the
// segment's prefix, or, in the Milvus layout (no prefix), the key without its owner's
// ids (what the layout parses out of it).
func relKey(root, prefix, key string) string {
	if prefix != "" {
		return strings.TrimPrefix(key, prefix)
	}
	rel := strings.TrimPrefix(key, strings.TrimSuffix(root, "/")+"/")
	if own, ok := layout.Parse(rel); ok {
		return own.Rel
	}
	return key
}

// segFiles is a canonical segment file list: relative key, size, CRC-32C, sorted.
func segFilesKey(entries []string) string {
	slices.Sort(entries)
	return strings.Join(entries, "\n")
}

// sourceSegments yields the segments a job restored from (a manifest's), or reports
// (false) that they can no longer be read.
type sourceSegments func(fn func(rd *manifest.Reader, s *manifest.Segment) error) (bool, error)

// snapshotSource is a restore's source: its snapshot's manifest in the bucket, while
// the snapshot is COMMITTED (a snapshot dropped after the restore cannot be compared).
func snapshotSource(ctx context.Context, cl *client.Client, store objstore.Store, job *pb.RestoreJob) sourceSegments {
	return func(fn func(*manifest.Reader, *manifest.Segment) error) (bool, error) {
		snap, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(job.GetSnapshotId()))
		if errors.Is(err, client.ErrNotFound) || (err == nil && snap.GetState() != pb.SnapshotState_SNAPSHOT_STATE_COMMITTED) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return true, eachManifestSegment(ctx, store, snap, fn)
	}
}

// checkRestoredFiles compares a completed job's target segments with its source's
// segments (as multisets of per-segment file lists, keys relative to the segment's
// prefix) and reads every target file back. A source that can no longer be read is
// not compared: only the read-back is done then.
func checkRestoredFiles(ctx context.Context, cl *client.Client, store objstore.Store, root string, job *pb.RestoreJob, sourceOf sourceSegments) ([]string, error) {
	var msgs []string
	opt := client.NewListSegmentsOption(job.GetTargetCollection()).WithDatabase(job.GetTargetDatabase())
	target := map[string]int{}
	files := map[string]want{}
	for seg, err := range cl.ListAllSegments(ctx, opt) {
		if errors.Is(err, client.ErrNotFound) {
			return []string{fmt.Sprintf("target collection %s is gone", job.GetTargetCollection())}, nil
		}
		if err != nil {
			return nil, err
		}
		if seg.GetState() != pb.SegmentState_SEGMENT_STATE_FLUSHED {
			msgs = append(msgs, fmt.Sprintf("target segment %d is %s, not FLUSHED", seg.GetId(), seg.GetState()))
			continue
		}
		var entries []string
		for _, f := range seg.GetFiles() {
			rel := relKey(root, seg.GetPrefix(), f.GetKey())
			entries = append(entries, fmt.Sprintf("%s %d %08x", rel, f.GetSize(), f.GetCrc32C()))
		}
		target[segFilesKey(entries)]++
		addSegmentFiles(files, seg)
	}
	source := map[string]int{}
	readable, err := sourceOf(func(rd *manifest.Reader, s *manifest.Segment) error {
		if len(job.GetPartitions()) > 0 {
			name := ""
			for _, p := range rd.Header().GetPartitions() {
				if p.GetId() == s.PartitionID {
					name = p.GetName()
				}
			}
			if name != "_default" && !slices.Contains(job.GetPartitions(), name) {
				return nil
			}
		}
		var entries []string
		err := filelist.ForEach(s.Files, func(e filelist.Entry) bool {
			entries = append(entries, fmt.Sprintf("%s %d %08x", e.Key, e.Size, e.CRC32C))
			return true
		})
		source[segFilesKey(entries)]++
		return err
	})
	switch {
	case err != nil:
		msgs = append(msgs, fmt.Sprintf("the source's manifest: %v", err))
	case readable && !mapsEqual(source, target):
		msgs = append(msgs, fmt.Sprintf("the target's %d segments' file lists differ from the %d segments of its source", count(target), count(source)))
	}
	read, err := verifyObjects(ctx, store, files)
	if err != nil {
		return nil, err
	}
	return append(msgs, read...), nil
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func count(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// ---------------------------------------------------------------------------
// Convergence.

// Convergence checks that every node reported the same FSM hash and none failed to.
type Convergence struct{}

func (Convergence) Name() string { return "convergence" }

func (c Convergence) Check(_ context.Context, in Input) ([]Violation, error) {
	if in.End == nil {
		return nil, fmt.Errorf("%s: no end state to check", c.Name())
	}
	var vs []Violation
	nodes := make([]string, 0, len(in.End.NodeErrors))
	for n := range in.End.NodeErrors {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		vs = append(vs, Violation{Checker: c.Name(), Message: fmt.Sprintf("node %s: no hash: %s", n, in.End.NodeErrors[n])})
	}
	if len(in.End.NodeHashes) == 0 && len(nodes) == 0 {
		vs = append(vs, Violation{Checker: c.Name(), Message: "no node hashes in the end state"})
	}
	byHash := map[string][]string{}
	for n, h := range in.End.NodeHashes {
		byHash[h] = append(byHash[h], n)
	}
	if len(byHash) > 1 {
		var parts []string
		for h, ns := range byHash {
			slices.Sort(ns)
			parts = append(parts, fmt.Sprintf("%s: %s", strings.Join(ns, ","), h))
		}
		slices.Sort(parts)
		vs = append(vs, Violation{Checker: c.Name(), Message: "the nodes' FSM hashes differ: " + strings.Join(parts, "; ")})
	}
	return vs, nil
}
