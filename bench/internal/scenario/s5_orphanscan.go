package scenario

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/bench/internal/report"
	"github.com/snapkeep/snapkeep/bench/internal/stats"
	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// orphanScanVsList is scenario 5: a garbage collection's orphan scan against the raw
// limit of listing the same keys, a plain ListObjectsV2 walk.
var orphanScanVsList = Scenario{
	Number: 5,
	Name:   "orphan-scan",
	Title:  "Orphan scan of 200k objects vs a plain ListObjectsV2 walk",
	Run:    runOrphanScanVsList,
}

const (
	orphanFilesPerSegment = 8
	// orphanUnlistedEvery: every 16th segment also gets an upload its file list leaves
	// out, as a writer that crashed before its flush would leave.
	orphanUnlistedEvery = 16
	orphanListPage      = 1000
	orphanLoadWorkers   = 64
	// orphanGrace keeps every orphan: they are all minutes old, so the scan counts
	// them and deletes nothing, and every round scans the same keys.
	orphanGrace = 24 * time.Hour
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func runOrphanScanVsList(ctx context.Context, e *Env, r *report.Scenario) error {
	total := e.Pick(200000, 50000)
	rounds := e.Pick(3, 3)
	segments := total * 95 / 100 / orphanFilesPerSegment
	unlisted := (segments + orphanUnlistedEvery - 1) / orphanUnlistedEvery
	junk := total - segments*orphanFilesPerSegment - unlisted
	const root = "s5"
	prefix := root + "/"
	r.Setup = fmt.Sprintf("A three-node snapkeep cluster (fsync on, periodic GC off) stores in the shared versitygw. Its root `%s` holds **%s objects**%s: "+
		"%s flushed segments × %d files (16 bytes each, registered through the client with their sizes and CRC-32C), %s unlisted uploads (every %dth segment) and %s keys no record owns — "+
		"%s orphans, all younger than the run's orphan grace (%s), so the scan counts them and deletes nothing. "+
		"The objects are written straight into versitygw's posix directory with the xattrs its PUT leaves (ETag, CRC-32C, content type): PUTs run under 1,000/s on the shared cores, "+
		"and a listing reads the same directory tree and xattrs either way. "+
		"Round after round, A then B (%d rounds): **A** `GCRun` with the orphan scan (one read view, the records' plan, a paginated listing of snapkeep's namespaces under the root — here every object, all under collections/ — with every key parsed to its owner and looked up, "+
		"`GCCheck` of the orphans through Raft, the report); keys/s = objects scanned / the call's time. **B** a plain walk of the same prefix from the benchmark process "+
		"(`objstore.S3.List`, ListObjectsV2 pages of %s, one after another). "+
		"versitygw's posix backend lists from its directory tree and does not fsync: an upper bound on what real object storage gives.",
		prefix, commaInt(total), map[bool]string{true: " (quick mode: 50,000 instead of 200,000)", false: ""}[e.Quick],
		commaInt(segments), orphanFilesPerSegment, commaInt(unlisted), orphanUnlistedEvery, commaInt(junk), commaInt(unlisted+junk), "24 h",
		rounds, commaInt(orphanListPage))

	c, err := e.StartSnapkeep(ctx, root, env.SnapkeepOptions{HTTP: true})
	if err != nil {
		return err
	}
	cl, err := c.Client(ctx)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	store := e.S3.Store

	loadStart := time.Now()
	if _, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("bench")); err != nil {
		return fmt.Errorf("create collection: %w", err)
	}
	w := newPosixWriter(e.S3.Dir, e.S3.Config().Bucket)
	orphans, err := loadOrphanScanRoot(ctx, cl, w, "bench", prefix, segments, junk)
	if err != nil {
		return err
	}
	e.Logf("s5: %d objects (%d orphans) loaded in %v", total, orphans, time.Since(loadStart).Round(time.Millisecond))

	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	meter := &cpuMeter{pids: map[string][]int{"versitygw": {e.S3.Pid()}}, self: "bench"}
	for _, n := range c.Nodes {
		meter.pids["snapkeep"] = append(meter.pids["snapkeep"], n.Pid())
	}

	var scanRates, walkRates []float64
	var scanCPU, walkCPU []cpuSample
	var scanned int
	for round := range rounds {
		cpu0 := meter.sample()
		n, took, err := orphanScan(ctx, cl, orphans)
		if err != nil {
			return fmt.Errorf("round %d: orphan scan: %w", round+1, err)
		}
		scanCPU = append(scanCPU, meter.since(cpu0))
		scanRates = append(scanRates, float64(n)/took.Seconds())
		scanned = n

		cpu0 = meter.sample()
		walked, wtook, err := listWalk(ctx, store, prefix)
		if err != nil {
			return fmt.Errorf("round %d: list walk: %w", round+1, err)
		}
		walkCPU = append(walkCPU, meter.since(cpu0))
		walkRates = append(walkRates, float64(walked)/wtook.Seconds())
		if walked != n {
			return fmt.Errorf("round %d: the scan counted %d objects and the walk %d under %s", round+1, n, walked, prefix)
		}
		e.Logf("s5: round %d: orphan scan %.0f keys/s (%v), list walk %.0f keys/s (%v), ratio %.3f", round+1,
			scanRates[round], took.Round(time.Millisecond), walkRates[round], wtook.Round(time.Millisecond), scanRates[round]/walkRates[round])
	}

	r.Comparisons = append(r.Comparisons, report.NewComparison(
		fmt.Sprintf("orphan scan of %s objects", commaInt(scanned)), "keys/s", report.Higher,
		scanRates, "plain ListObjectsV2 walk", walkRates,
		&report.Target{Op: ">=", Ratio: 0.8, Text: "≥ 0.8× the plain list walk's keys/s"}))
	median := func(samples []cpuSample, group string) float64 {
		var v []float64
		for _, s := range samples {
			v = append(v, microsPer(s[group], scanned))
		}
		return stats.Summarize(v).Median
	}
	r.Figures = append(r.Figures,
		report.Figure{Name: "scan/walk of each round's pair (median)", Value: pairRatioMedian(scanRates, walkRates), Unit: "×",
			Note: "the load of a shared machine moves between A and B; a pair's ratio sees the same moment"},
		report.Figure{Name: "objects under the root", Value: float64(scanned), Unit: "objects"},
		report.Figure{Name: "orphans among them (all kept)", Value: float64(orphans), Unit: "objects", Note: "inside the orphan grace: counted, not deleted"},
		report.Figure{Name: "rounds (A B each)", Value: float64(rounds), Unit: "rounds"},
		report.Figure{Name: "snapkeep CPU per key, scan (3 nodes, median)", Value: median(scanCPU, "snapkeep"), Unit: "µs", Note: "from /proc; the leader does the scan"},
		report.Figure{Name: "versitygw CPU per key, scan (median)", Value: median(scanCPU, "versitygw"), Unit: "µs"},
		report.Figure{Name: "versitygw CPU per key, walk (median)", Value: median(walkCPU, "versitygw"), Unit: "µs"},
		report.Figure{Name: "benchmark process CPU per key, walk (median)", Value: median(walkCPU, "bench"), Unit: "µs", Note: "the walk's client side"},
	)
	var labels []string
	for i := range rounds {
		labels = append(labels, fmt.Sprintf("round %d", i+1))
	}
	r.Charts = append(r.Charts, report.Chart{File: "s5-orphan-scan-vs-list.svg", Title: fmt.Sprintf("Orphan scan vs plain list walk, %s objects", commaInt(scanned)),
		YLabel: "keys/s", Labels: labels, Series: []report.Series{{Name: "snapkeep orphan scan", Values: scanRates}, {Name: "plain ListObjectsV2 walk", Values: walkRates}}})

	if dir := profileDir(); dir != "" {
		var secs []float64
		for _, rate := range scanRates {
			secs = append(secs, float64(scanned)/rate)
		}
		seconds := max(1, int(stats.Summarize(secs).Median+0.5))
		errc := make(chan error, 1)
		go func() {
			errc <- fetchProfile(ctx, leader.HTTPAddr, seconds, filepath.Join(dir, "s5-orphan-scan-leader.pprof"))
		}()
		time.Sleep(100 * time.Millisecond)
		_, took, err := orphanScan(ctx, cl, orphans)
		if err := errors.Join(err, <-errc); err != nil {
			return fmt.Errorf("profiled orphan scan: %w", err)
		}
		e.Logf("s5: profiled orphan scan took %v; leader profile (%d s) in %s", took.Round(time.Millisecond), seconds, dir)
	}
	return nil
}

// orphanScan runs one collection with the orphan scan and checks that it deleted
// nothing and kept every orphan; it returns the objects scanned and the call's time.
func orphanScan(ctx context.Context, cl *client.Client, orphans int) (int, time.Duration, error) {
	start := time.Now()
	resp, err := cl.GCRun(ctx, client.NewGCRunOption().WithOrphanGrace(orphanGrace))
	took := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	rep := resp.Report
	if rep.ErrorCount > 0 {
		return 0, 0, fmt.Errorf("%d errors: %v", rep.ErrorCount, rep.Errors)
	}
	if rep.ObjectsDeleted > 0 || !rep.OrphanScan {
		return 0, 0, fmt.Errorf("the run deleted %d objects (orphan scan %v); it should only count", rep.ObjectsDeleted, rep.OrphanScan)
	}
	kept := uint64(0)
	for _, k := range rep.Kept {
		kept += k.Objects
	}
	if kept != uint64(orphans) {
		return 0, 0, fmt.Errorf("the run kept %d objects, want the %d orphans", kept, orphans)
	}
	return int(rep.ObjectsScanned), took, nil
}

// listWalk lists every key under prefix, page after page.
func listWalk(ctx context.Context, store objstore.Store, prefix string) (int, time.Duration, error) {
	start := time.Now()
	n, token := 0, ""
	for {
		page, err := store.List(ctx, prefix, token, orphanListPage)
		if err != nil {
			return 0, 0, err
		}
		n += len(page.Objects)
		if page.NextToken == "" {
			return n, time.Since(start), nil
		}
		token = page.NextToken
	}
}

// loadOrphanScanRoot registers segments flushed segments of coll, each with its
// files written under its prefix and every orphanUnlistedEvery-th with one more
// file its list leaves out, then writes junk keys no record owns under root; from
// orphanLoadWorkers goroutines. It returns the number of orphans written.
func loadOrphanScanRoot(ctx context.Context, cl *client.Client, w *posixWriter, coll, root string, segments, junk int) (int, error) {
	var unlisted atomic.Int64
	load := segmentLoad{cl: cl, w: w, coll: coll, layout: datagen.Layout(orphanFilesPerSegment),
		body: keyBody,
		extra: func(i int, seg *pb.Segment) error {
			if i%orphanUnlistedEvery != 0 {
				return nil
			}
			if _, err := w.put(seg.Prefix+"insert/101/unlisted", []byte("x")); err != nil {
				return err
			}
			unlisted.Add(1)
			return nil
		}}
	err := inParallel(ctx, segments+junk, orphanLoadWorkers, func(ctx context.Context, i int) error {
		if i >= segments {
			// Junk in snapkeep's own namespace: the orphan scan lists only collections/
			// and snapshots/ under the root.
			_, err := w.put(fmt.Sprintf("%scollections/junk/%08d", root, i-segments), []byte("x"))
			return err
		}
		return load.one(ctx, i)
	})
	if err != nil {
		return 0, err
	}
	return int(unlisted.Load()) + junk, nil
}
