package scenario

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/baseline"
	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/bench/internal/report"
	"github.com/snapkeep/snapkeep/bench/internal/stats"
	"github.com/snapkeep/snapkeep/client"
)

// loadWorkers is the concurrency of the catalog load (AllocateSegment + FlushSegment).
const loadWorkers = 64

// S2Create is scenario 2: one snapshot of a collection of 1k, 10k and 100k segments
// × 8 files, end to end, snapkeep against etcd + Avro.
var S2Create = Scenario{Number: 2, Name: "create", Title: "Snapshot create end to end: 1k, 10k, 100k segments", Run: runCreate}

func runCreate(ctx context.Context, e *Env, r *report.Scenario) error {
	sizes := []int{1_000, 10_000, 100_000}
	if e.Quick {
		sizes = []int{1_000, 10_000}
	}
	roundsFor := func(n int) int {
		if n >= 100_000 {
			return 2 // a baseline round is 100,001 PUTs
		}
		return e.Pick(3, 2)
	}

	sk, err := e.StartSnapkeep(ctx, "s2-snapkeep", env.SnapkeepOptions{})
	if err != nil {
		return err
	}
	et, err := e.StartEtcd(ctx, "s2-etcd")
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
	bl := &baseline.Baseline{Etcd: ec, Store: e.S3.Store, Root: "s2-baseline"}

	const coll = "create"
	c, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(coll).WithPartitions("p1", "p2", "p3"))
	if err != nil {
		return fmt.Errorf("create collection: %w", err)
	}
	parts := map[string]int64{}
	var partIDs []int64
	for _, p := range c.Partitions {
		parts[p.Name] = int64(p.Id)
		partIDs = append(partIDs, int64(p.Id))
	}
	desc := baseline.TestCollection(c.Id, coll, parts)

	var segs []baseline.Segment
	var chartLabels []string
	var skMillis, blMillis []float64
	var loadSeconds float64
	nextID := int64(463_000_000_000_000_000)
	for _, n := range sizes {
		// Grow the collection to n segments (spread over its four partitions), then
		// snapshot it round after round on both sides.
		t0 := time.Now()
		for len(segs) < n {
			batch := min(n-len(segs), 2_500)
			part := c.Partitions[(len(segs)/2_500)%len(c.Partitions)].Name
			more, err := flushMilvusSegments(ctx, cl, coll, part, batch, loadWorkers)
			if err != nil {
				return err
			}
			segs = append(segs, more...)
		}
		loadSeconds += time.Since(t0).Seconds()
		e.Logf("  %d segments loaded in %v", n, time.Since(t0).Round(time.Millisecond))

		var skMs, blMs []float64
		var manifestBytes, blBytes int64
		var blObjects int
		for round := range roundsFor(n) {
			t := time.Now()
			snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption(coll, fmt.Sprintf("n%d-r%d", n, round)))
			if err != nil {
				return fmt.Errorf("snapkeep CreateSnapshot of %d segments: %w", n, err)
			}
			skMs = append(skMs, msSince(t))
			if snap.Summary.Segments != uint64(n) {
				return fmt.Errorf("snapkeep snapshot holds %d segments, want %d", snap.Summary.Segments, n)
			}
			manifestBytes = int64(snap.ManifestSize)

			nextID++
			info := baseline.TestSnapshotInfo(nextID, desc.ID, fmt.Sprintf("n%d-r%d", n, round), partIDs)
			t = time.Now()
			res, err := bl.Create(ctx, info, desc, nil, segs)
			if err != nil {
				return fmt.Errorf("baseline create of %d segments: %w", n, err)
			}
			blMs = append(blMs, msSince(t))
			blObjects, blBytes = res.Objects, res.ObjectBytes
			e.Logf("  %d segments, round %d: snapkeep %.1f ms, baseline %.0f ms (%d objects)", n, round, skMs[round], blMs[round], res.Objects)
		}
		var target *report.Target
		if n == 10_000 {
			target = &report.Target{Op: "<=", Ratio: 1.0 / 50, Text: "≥ 50× faster than the baseline end to end"}
		}
		r.Comparisons = append(r.Comparisons, report.NewComparison(fmt.Sprintf("create, %s segments × 8 files: latency", kilo(n)), "ms", report.Lower, skMs, "etcd + Avro", blMs, target))
		r.Figures = append(r.Figures,
			report.Figure{Name: fmt.Sprintf("%s segments: snapkeep objects written", kilo(n)), Value: 1, Unit: "objects", Note: fmt.Sprintf("one manifest of %d bytes", manifestBytes)},
			report.Figure{Name: fmt.Sprintf("%s segments: baseline objects written", kilo(n)), Value: float64(blObjects), Unit: "objects", Note: fmt.Sprintf("%d bytes: one Avro object per segment + the metadata JSON", blBytes)})
		chartLabels = append(chartLabels, kilo(n))
		skMillis = append(skMillis, stats.Summarize(skMs).Median)
		blMillis = append(blMillis, stats.Summarize(blMs).Median)
	}
	r.Figures = append(r.Figures, report.Figure{Name: "catalog load", Value: loadSeconds, Unit: "s",
		Note: fmt.Sprintf("%d segments: AllocateSegment + FlushSegment through the client, %d workers (not part of any measurement)", len(segs), loadWorkers)})
	r.Setup = fmt.Sprintf("One collection in four partitions grows to %s segments × 8 Milvus-shaped files (six insert binlogs, a delta log, a stats log); at each size both sides snapshot the same segments, A B A B (%d rounds; 2 at 100k). "+
		"**snapkeep**: three `snapkeep server` processes (fsync on) hold the catalog, loaded through the Go client (AllocateSegment + FlushSegment, %d workers); one `CreateSnapshot` call that returns when COMMITTED: SnapshotBegin captures and pins the segments through Raft, the leader encodes the manifest and PUTs it (one object), SnapshotCommit through Raft. "+
		"**Baseline** (etcd + Avro): three etcd 3.7.3 members on the same disk; the same segments' descriptions in memory (as DataCoord caches them); SnapshotInfo put PENDING, one raw Avro object per segment with at most %d PUTs in flight, the metadata JSON, SnapshotInfo put COMMITTED. "+
		"S3 is one versitygw (posix backend) for both: it does not fsync on PUT, so the baseline's %s-object figures are an upper bound on what real object storage gives (and snapkeep's one PUT is affected far less).",
		sizeNames(sizes), e.Pick(3, 2), loadWorkers, baseline.DefaultParallelism, kilo(sizes[len(sizes)-1]))
	r.Charts = append(r.Charts, report.Chart{File: "s2-create-scaling.svg", Title: "Snapshot create latency vs collection size (median)", YLabel: "ms (log)", LogY: true,
		Labels: chartLabels, Series: []report.Series{{Name: "snapkeep", Values: skMillis}, {Name: "etcd + Avro", Values: blMillis}}})
	return nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t)) / float64(time.Millisecond) }

// kilo writes 1000 as 1k, 100000 as 100k.
func kilo(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// sizeNames writes [1000 10000 100000] as "1k, 10k, 100k".
func sizeNames(sizes []int) string {
	var names []string
	for _, n := range sizes {
		names = append(names, kilo(n))
	}
	return strings.Join(names, ", ")
}
