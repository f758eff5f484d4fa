package scenario

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/baseline"
	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/bench/internal/report"
	"github.com/snapkeep/snapkeep/bench/internal/stats"
	"github.com/snapkeep/snapkeep/client"
)

// commitsCollections is how many collections the snapshot clients spread over
// (client w snapshots collection w % commitsCollections); commitsSegments the
// segments (× 8 files) of each.
const (
	commitsCollections = 16
	commitsSegments    = 10
)

var commitClientCounts = []int{1, 64}

// S1Commits is scenario 1: small snapshots created and committed back to back by 1
// and 64 clients, and plain catalog writes, snapkeep against etcd + Avro.
var S1Commits = Scenario{Number: 1, Name: "commits", Title: "Metadata commits: small snapshots and plain catalog writes", Run: runCommits}

// commitSide is one side's latencies and rates over the rounds of one client count.
type commitSide struct {
	opsPerSec, p50, p99 []float64
	cpuPerOp            []float64 // µs of server CPU per operation (catalog writes only)
}

func (s *commitSide) add(ops float64, l *stats.Latencies) {
	s.opsPerSec = append(s.opsPerSec, ops)
	s.p50 = append(s.p50, l.Millis(50))
	s.p99 = append(s.p99, l.Millis(99))
}

func runCommits(ctx context.Context, e *Env, r *report.Scenario) error {
	rounds := e.Pick(3, 2)
	snapDur := time.Duration(e.Pick(8, 3)) * time.Second
	writeDur := time.Duration(e.Pick(5, 2)) * time.Second

	sk, err := e.StartSnapkeep(ctx, "s1-snapkeep", env.SnapkeepOptions{Extra: []string{"--snapshots-per-collection", "100000"}})
	if err != nil {
		return err
	}
	et, err := e.StartEtcd(ctx, "s1-etcd")
	if err != nil {
		return err
	}
	cl, err := sk.Client(ctx)
	if err != nil {
		return fmt.Errorf("snapkeep client: %w", err)
	}
	defer cl.Close()
	ec, err := et.Client()
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer ec.Close()
	bl := &baseline.Baseline{Etcd: ec, Store: e.S3.Store, Root: "s1-baseline"}

	// The same collections on both sides: snapkeep's catalog holds them; the baseline
	// keeps their segments in memory, as DataCoord does.
	type coll struct {
		name string
		desc baseline.CollectionDescription
		segs []baseline.Segment
	}
	colls := make([]coll, commitsCollections)
	for i := range colls {
		name := fmt.Sprintf("commits_%02d", i)
		c, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(name))
		if err != nil {
			return fmt.Errorf("create collection %s: %w", name, err)
		}
		segs, err := flushMilvusSegments(ctx, cl, name, "", commitsSegments, commitsSegments)
		if err != nil {
			return err
		}
		parts := map[string]int64{}
		for _, p := range c.Partitions {
			parts[p.Name] = int64(p.Id)
		}
		colls[i] = coll{name: name, desc: baseline.TestCollection(c.Id, name, parts), segs: segs}
	}
	if _, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("writes")); err != nil {
		return fmt.Errorf("create collection writes: %w", err)
	}

	var seq atomic.Int64 // names and baseline ids, unique across rounds
	snapkeepSnapshot := func(ctx context.Context, w, _ int) error {
		c := colls[w%len(colls)]
		_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption(c.name, "s"+strconv.FormatInt(seq.Add(1), 10)))
		if err != nil {
			return fmt.Errorf("snapkeep CreateSnapshot: %w", err)
		}
		return nil
	}
	baselineSnapshot := func(ctx context.Context, w, _ int) error {
		c := colls[w%len(colls)]
		id := 463_000_000_000_000_000 + seq.Add(1) // Milvus's ids come from a cached allocator: no round trip
		parts := make([]int64, 0, len(c.desc.Partitions))
		for _, p := range c.desc.Partitions {
			parts = append(parts, p)
		}
		info := baseline.TestSnapshotInfo(id, c.desc.ID, "s"+strconv.FormatInt(id, 10), parts)
		if _, err := bl.Create(ctx, info, c.desc, nil, c.segs); err != nil {
			return fmt.Errorf("baseline create: %w", err)
		}
		return nil
	}
	snapkeepWrite := func(ctx context.Context, _, _ int) error {
		_, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("writes"))
		if err != nil {
			return fmt.Errorf("snapkeep AllocateSegment: %w", err)
		}
		return nil
	}
	etcdWrite := func(ctx context.Context, _, _ int) error {
		key := fmt.Sprintf("datacoord-meta/s/%d/1/%d", 449_000_000, seq.Add(1))
		if _, err := ec.Put(ctx, key, milvusRecordValue(key)); err != nil {
			return fmt.Errorf("etcd put: %w", err)
		}
		return nil
	}

	// Warm both sides (connections, leader caches) outside the measurement.
	for _, op := range []func(context.Context, int, int) error{snapkeepSnapshot, baselineSnapshot, snapkeepWrite, etcdWrite} {
		if _, _, err := closedLoop(ctx, 4, 300*time.Millisecond, op); err != nil {
			return err
		}
	}

	type result struct{ snapkeep, baseline commitSide }
	// timed runs op and, when pids are given, the CPU those processes used per op.
	timed := func(clients int, d time.Duration, op func(context.Context, int, int) error, pids []int, side *commitSide) (float64, *stats.Latencies, error) {
		var cpu0 time.Duration
		if pids != nil {
			if cpu0, err = processCPU(pids); err != nil {
				return 0, nil, err
			}
		}
		ops, lat, err := closedLoop(ctx, clients, d, op)
		if err != nil {
			return 0, nil, err
		}
		side.add(ops, lat)
		if pids != nil {
			cpu1, err := processCPU(pids)
			if err != nil {
				return 0, nil, err
			}
			side.cpuPerOp = append(side.cpuPerOp, float64((cpu1-cpu0).Microseconds())/float64(lat.Len()))
		}
		return ops, lat, nil
	}
	measure := func(what string, a, b func(context.Context, int, int) error, d time.Duration, aPids, bPids []int) (map[int]*result, error) {
		out := map[int]*result{}
		for _, clients := range commitClientCounts {
			res := &result{}
			out[clients] = res
			for round := range rounds {
				ops, lat, err := timed(clients, d, a, aPids, &res.snapkeep)
				if err != nil {
					return nil, err
				}
				e.Logf("  %s, %d clients, round %d: snapkeep %.0f ops/s p50 %.1f ms p99 %.1f ms", what, clients, round, ops, lat.Millis(50), lat.Millis(99))
				ops, lat, err = timed(clients, d, b, bPids, &res.baseline)
				if err != nil {
					return nil, err
				}
				e.Logf("  %s, %d clients, round %d: baseline %.0f ops/s p50 %.1f ms p99 %.1f ms", what, clients, round, ops, lat.Millis(50), lat.Millis(99))
			}
		}
		return out, nil
	}

	sample := baseline.TestSnapshotInfo(463_000_000_000_000_001, int64(colls[0].desc.ID), "s463000000000000001", []int64{1})
	sample.S3Location = bl.MetadataKey(sample.CollectionID, sample.ID)
	recordSize := len(sample.Marshal())
	r.Setup = fmt.Sprintf("**Snapshot commits.** %d collections of %d flushed segments × 8 Milvus-shaped files; client *w* snapshots collection *w* mod %d back to back for %v per round, %d rounds A B A B, with 1 and 64 clients. "+
		"**snapkeep**: `CreateSnapshot` through the Go client (one connection, following the leader) on three `snapkeep server` processes (fsync on, `--snapshots-per-collection 100000`): SnapshotBegin through Raft, the leader's finisher writes and PUTs the manifest (1 object), SnapshotCommit through Raft; the call returns once the snapshot is COMMITTED. "+
		"**Baseline** (etcd + Avro): three etcd %s members on the same disk; per snapshot a ~%d-byte SnapshotInfo put PENDING, one raw Avro object per segment (%d PUTs, up to %d in flight) and the metadata JSON (1 PUT), the record put COMMITTED; the segment descriptions come from memory, as in DataCoord; ids from a local counter. "+
		"**Plain catalog writes.** snapkeep `AllocateSegment` (one Raft entry) against etcd `Put` of a 300-byte value (one etcd entry), both through one gRPC client, %v per round; server CPU is the three server processes' user + system time (/proc) over the round, per write. "+
		"S3 is one versitygw (posix backend) for both; it does not fsync on PUT, so its figures are an upper bound on what real object storage gives. Everything shares the machine's cores.",
		commitsCollections, commitsSegments, commitsCollections, snapDur, rounds, "3.7.3", recordSize,
		commitsSegments, baseline.DefaultParallelism, writeDur)

	snaps, err := measure("snapshot commits", snapkeepSnapshot, baselineSnapshot, snapDur, nil, nil)
	if err != nil {
		return err
	}
	var skPids, etcdPids []int
	for _, n := range sk.Nodes {
		skPids = append(skPids, n.Pid())
	}
	for _, m := range et.Members {
		etcdPids = append(etcdPids, m.Pid())
	}
	writes, err := measure("catalog writes", snapkeepWrite, etcdWrite, writeDur, skPids, etcdPids)
	if err != nil {
		return err
	}

	const base = "etcd + Avro"
	for _, clients := range commitClientCounts {
		s := snaps[clients]
		var opsT, p99T *report.Target
		if clients == 64 {
			opsT = &report.Target{Op: ">=", Ratio: 1.5, Text: "≥ 1.5× the baseline's snapshots/s"}
			p99T = &report.Target{Op: "<=", Ratio: 1.0, Text: "p99 no worse than the baseline's"}
		}
		label := fmt.Sprintf("snapshot commits, %d client(s)", clients)
		r.Comparisons = append(r.Comparisons,
			report.NewComparison(label+": snapshots/s", "snapshots/s", report.Higher, s.snapkeep.opsPerSec, base, s.baseline.opsPerSec, opsT),
			report.NewComparison(label+": p50", "ms", report.Lower, s.snapkeep.p50, base, s.baseline.p50, nil),
			report.NewComparison(label+": p99", "ms", report.Lower, s.snapkeep.p99, base, s.baseline.p99, p99T))
	}
	for _, clients := range commitClientCounts {
		w := writes[clients]
		label := fmt.Sprintf("catalog writes, %d client(s)", clients)
		r.Comparisons = append(r.Comparisons,
			report.NewComparison(label+": writes/s", "writes/s", report.Higher, w.snapkeep.opsPerSec, "etcd Put", w.baseline.opsPerSec,
				&report.Target{Op: ">=", Ratio: 1.0, Text: "≥ 1.0× etcd's puts/s"}),
			report.NewComparison(label+": p50", "ms", report.Lower, w.snapkeep.p50, "etcd Put", w.baseline.p50, nil),
			report.NewComparison(label+": p99", "ms", report.Lower, w.snapkeep.p99, "etcd Put", w.baseline.p99, nil),
			report.NewComparison(label+": server CPU per write (3 processes)", "µs", report.Lower, w.snapkeep.cpuPerOp, "etcd Put", w.baseline.cpuPerOp, nil))
	}
	r.Figures = append(r.Figures,
		report.Figure{Name: "baseline objects written per snapshot", Value: float64(commitsSegments + 1), Unit: "objects", Note: "one Avro object per segment + the metadata JSON"},
		report.Figure{Name: "snapkeep objects written per snapshot", Value: 1, Unit: "objects", Note: "the manifest"})

	chart := report.Chart{File: "s1-commit-latency.svg", Title: "Snapshot commit and catalog write latency (median of rounds)", YLabel: "ms", LogY: true}
	var skVals, blVals []float64
	for _, set := range []struct {
		name string
		m    map[int]*result
	}{{"snapshot", snaps}, {"write", writes}} {
		for _, clients := range commitClientCounts {
			s := set.m[clients]
			chart.Labels = append(chart.Labels, fmt.Sprintf("%s %dc p50", set.name, clients), fmt.Sprintf("%s %dc p99", set.name, clients))
			skVals = append(skVals, stats.Summarize(s.snapkeep.p50).Median, stats.Summarize(s.snapkeep.p99).Median)
			blVals = append(blVals, stats.Summarize(s.baseline.p50).Median, stats.Summarize(s.baseline.p99).Median)
		}
	}
	chart.Series = []report.Series{{Name: "snapkeep", Values: skVals}, {Name: "etcd + Avro / etcd Put", Values: blVals}}
	r.Charts = append(r.Charts, chart)
	return nil
}
