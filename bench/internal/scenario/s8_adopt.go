package scenario

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/bench/internal/report"
	"github.com/snapkeep/snapkeep/bench/internal/stats"
	"github.com/snapkeep/snapkeep/client/adopt"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
)

// Adoption is scenario 8: adopting a bucket Milvus filled — listing its keys and
// registering them through Raft — against a plain listing of the same prefixes.
var Adoption = Scenario{
	Number: 8,
	Name:   "adopt",
	Title:  "Adoption of a Milvus bucket: registration from a listing, and end to end vs a plain ListObjectsV2 walk",
	Run:    runAdoption,
}

const (
	adoptFilesPerSegment = 8
	adoptIndexFiles      = 2 // one index build per segment, 2 files
	adoptTextFiles       = 1 // one text index file per segment
	adoptRoot            = "s8"
	adoptTargetFilesPerS = 20000
	// adoptCollectionBase spaces the rounds' Milvus ids (collection, partitions,
	// segments, log ids, builds) far apart, as Milvus's allocator would.
	adoptCollectionBase = 449_000_000_000_000_000
	adoptCollectionStep = 10_000_000
)

func runAdoption(ctx context.Context, e *Env, r *report.Scenario) error {
	segments := e.Pick(5000, 1000)
	rounds := 3
	perSegment := adoptFilesPerSegment + adoptTextFiles + adoptIndexFiles
	r.Setup = fmt.Sprintf("A three-node snapkeep cluster (fsync on, periodic GC off) stores in the shared versitygw under the root `%s`, which holds, "+
		"at Milvus's own keys, %d collections Milvus might have written: **%s segments each**%s in 2 partitions, each segment with %d log files "+
		"(insert_log, delta_log, stats_log, bm25_stats), %d text index file (text_log/) and one index build of %d files (index_files/) — %s files per collection, 16 bytes each. "+
		"The objects are written straight into versitygw's posix directory with the xattrs its PUT leaves (as in scenario 5). "+
		"Round after round, A then B, one collection per round: **A** `snapkeep adopt`'s path (`client/adopt`): `Scan` lists the collection's prefixes "+
		"(insert_log/C/, delta_log/C/, stats_log/C/, bm25_stats/C/) and text_log/, json_key_index_log/, json_stats/ and index_files/ whole "+
		"(so later rounds also list the earlier rounds' text and index files), parses every key with the Milvus layout, then `Apply` creates the collection "+
		"with Milvus's ids and its index and registers the segments with their builds through Raft (`RegisterSegments`, 500 segments per call); "+
		"files/s = files registered (segment and build files) / the time of `Apply` (registration from the listing) and of both (end to end). **B** a plain walk of the same prefixes from the benchmark process "+
		"(`objstore.S3.List`, pages of 1,000, one after another). Target: at least %s files/s.",
		adoptRoot, rounds, commaInt(segments), map[bool]string{true: " (quick mode: 1,000 instead of 5,000)", false: ""}[e.Quick],
		adoptFilesPerSegment, adoptTextFiles, adoptIndexFiles, commaInt(segments*perSegment), commaInt(adoptTargetFilesPerS))

	c, err := e.StartSnapkeep(ctx, adoptRoot, env.SnapkeepOptions{})
	if err != nil {
		return err
	}
	cl, err := c.Client(ctx)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer cl.Close()

	w := newPosixWriter(e.S3.Dir, e.S3.Config().Bucket)
	loadStart := time.Now()
	layouts := make([]datagen.MilvusLayoutOptions, rounds)
	for i := range layouts {
		coll := uint64(adoptCollectionBase + i*adoptCollectionStep)
		layouts[i] = datagen.MilvusLayoutOptions{Root: adoptRoot, CollectionID: coll, PartitionIDs: []uint64{coll + 1, coll + 2},
			Segments: segments, FilesPerSegment: adoptFilesPerSegment, FileSize: 16,
			FirstSegmentID: coll + 100, FirstLogID: int64(coll) + 100_000, Seed: int64(i + 1),
			IndexBuilds: 1, IndexFilesPerBuild: adoptIndexFiles, TextIndexFiles: adoptTextFiles, FirstBuildID: coll + 5_000_000}
		if err := writeMilvusLayoutPosix(ctx, w, layouts[i]); err != nil {
			return fmt.Errorf("write collection %d: %w", coll, err)
		}
	}
	e.Logf("  wrote %d Milvus collections × %s files straight into versitygw's directory in %s",
		rounds, commaInt(segments*perSegment), time.Since(loadStart).Round(time.Millisecond))

	var adoptRates, scanRates, applyRates, listRates []float64
	for i, lo := range layouts {
		opts := adopt.Options{Name: fmt.Sprintf("adopted%d", i), CollectionID: lo.CollectionID, Root: adoptRoot,
			Indexes: []adopt.Index{{ID: lo.CollectionID + 50, Name: "vec", FieldID: 101}}}
		start := time.Now()
		plan, err := adopt.Scan(ctx, e.S3.Store, opts)
		if err != nil {
			return fmt.Errorf("round %d: scan: %w", i, err)
		}
		scanned := time.Since(start)
		res, err := adopt.Apply(ctx, cl, plan, opts)
		if err != nil {
			return fmt.Errorf("round %d: apply: %w", i, err)
		}
		took := time.Since(start)
		files := res.Files + res.BuildFiles
		if want := segments * perSegment; files != want || res.Builds != segments {
			return fmt.Errorf("round %d: adoption registered %d files and %d builds, want %d files and %d builds", i, files, res.Builds, want, segments)
		}
		adoptRates = append(adoptRates, float64(files)/took.Seconds())
		scanRates = append(scanRates, float64(files)/scanned.Seconds())
		applyRates = append(applyRates, float64(files)/(took-scanned).Seconds())

		listStart := time.Now()
		listed, err := listMilvusPrefixes(ctx, e.S3.Store, lo.CollectionID)
		if err != nil {
			return fmt.Errorf("round %d: list: %w", i, err)
		}
		listTook := time.Since(listStart)
		// The walk lists every round's text and index files, as Scan does: the rate
		// counts this collection's files, the work both sides did is the same.
		listRates = append(listRates, float64(files)/listTook.Seconds())
		e.Logf("    round %d: adoption %s files in %s (%.0f files/s; scan %s, registration %s: %.0f files/s), plain walk %s keys in %s",
			i+1, commaInt(files), took.Round(time.Millisecond), adoptRates[i], scanned.Round(time.Millisecond),
			(took - scanned).Round(time.Millisecond), applyRates[i], commaInt(listed), listTook.Round(time.Millisecond))
	}

	target := commaInt(adoptTargetFilesPerS) + " files/s"
	r.Comparisons = append(r.Comparisons,
		report.NewComparison(fmt.Sprintf("registration from the listing (Apply), %s segments × %d files, files/s", commaInt(segments), perSegment), "files/s", report.Higher,
			applyRates, "target: "+target, []float64{adoptTargetFilesPerS},
			&report.Target{Op: ">=", Ratio: adoptTargetFilesPerS, Absolute: true, Text: "adoption registers ≥ " + target + " from a listing"}),
		report.NewComparison(fmt.Sprintf("adoption end to end (listing + registration), %s segments × %d files, files/s", commaInt(segments), perSegment), "files/s", report.Higher,
			adoptRates, "plain ListObjectsV2 walk of the same prefixes (limit)", listRates, nil))
	if e.Quick {
		first := &r.Comparisons[len(r.Comparisons)-2]
		first.Target, first.Met = nil, nil
		first.Note = "quick run: the target is stated for the full run's collections"
	}
	r.Figures = append(r.Figures, report.Figure{Name: "adoption's scan alone (listing + parsing), files/s", Value: stats.Summarize(scanRates).Median, Unit: "files/s"})
	labels := make([]string, rounds)
	for i := range labels {
		labels[i] = "round " + strconv.Itoa(i+1)
	}
	r.Charts = append(r.Charts, report.Chart{File: "adoption-rate.svg", Title: "Adoption of a Milvus collection: registration, end to end, scan, plain walk",
		YLabel: "files/s", Labels: labels, Series: []report.Series{{Name: "registration (Apply)", Values: applyRates}, {Name: "adoption end to end", Values: adoptRates}, {Name: "adoption's scan", Values: scanRates}, {Name: "plain walk", Values: listRates}}})
	r.Notes = append(r.Notes, "End to end, adoption here is bounded by versitygw's listing, not by registration: "+
		"the scan lists its prefixes concurrently and still spends most of the round waiting for pages (the plain walk, one page after another, is slower still). "+
		"The target is the adoption path's, registration from the listing: it is what snapkeep does with a listing whatever the server lists at.")
	r.Notes = append(r.Notes, "Registration goes through Raft with fsync on: one log entry per call of 500 segments with their files and builds, "+
		"so the rate is bounded by the listing and the entry's encoding and apply, not by fsyncs. versitygw's posix backend lists from its directory tree: "+
		"an upper bound on what real object storage lists per second.")
	return nil
}

// writeMilvusLayoutPosix writes what datagen.WriteMilvusLayout would upload straight
// into versitygw's directory.
func writeMilvusLayoutPosix(ctx context.Context, w *posixWriter, o datagen.MilvusLayoutOptions) error {
	files, err := datagen.PlanMilvusLayout(o)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(orphanLoadWorkers)
	for _, f := range files {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			body, err := io.ReadAll(f.Content(o.Seed))
			if err != nil {
				return err
			}
			crc, err := w.put(f.Key, body)
			if err != nil {
				return err
			}
			if crc != f.CRC32C {
				return fmt.Errorf("%s: wrote CRC-32C %08x, the plan says %08x", f.Key, crc, f.CRC32C)
			}
			return nil
		})
	}
	return g.Wait()
}

// listMilvusPrefixes walks what adopt.Scan lists for collection coll under the root,
// one page after another, and returns the keys seen.
func listMilvusPrefixes(ctx context.Context, store objstore.Store, coll uint64) (int, error) {
	c := strconv.FormatUint(coll, 10)
	n := 0
	for _, p := range []string{"insert_log/" + c + "/", "delta_log/" + c + "/", "stats_log/" + c + "/", "bm25_stats/" + c + "/",
		"text_log/", "json_key_index_log/", "json_stats/", "index_files/"} {
		token := ""
		for {
			page, err := store.List(ctx, adoptRoot+"/"+p, token, orphanListPage)
			if err != nil {
				return n, err
			}
			n += len(page.Objects)
			if page.NextToken == "" {
				break
			}
			token = page.NextToken
		}
	}
	return n, nil
}
