package scenario

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/bench/internal/report"
	"github.com/snapkeep/snapkeep/bench/internal/stats"
	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Fsck is scenario 10: fsck of a large collection, sizes only, against the raw limit
// of listing the same keys (a plain ListObjectsV2 walk), and fsck --deep of a
// collection of larger files against the raw limit of reading them (a plain parallel
// GET loop computing each file's CRC-32C).
var Fsck = Scenario{
	Number: 10,
	Name:   "fsck",
	Title:  "fsck of 1M files (sizes only) vs a plain ListObjectsV2 walk; fsck --deep vs a plain parallel GET loop",
	Run:    runFsck,
}

const (
	fsckFilesPerSegment = 8
	fsckCollection      = "bench"
	fsckDeepCollection  = "deep"
	// fsckDeepFileSize is the size of each of the deep collection's files.
	fsckDeepFileSize = 1 << 20
	// fsckDeepConcurrency is the plain loop's reads in flight; fsck --deep shares its
	// reads between the three nodes, fsckDeepPerNode in flight on each (33 in all).
	fsckDeepConcurrency = 32
	fsckDeepPerNode     = 11
	fsckLoadWorkers     = 64
	// fsckDeepLoadWorkers write the 1 MiB files (each holds its body in memory).
	fsckDeepLoadWorkers = 8
	fsckDeepSeed        = 10
	// fsckCallTimeout bounds one Fsck call (a full sizes-only check of 1M files takes
	// minutes on the shared cores).
	fsckCallTimeout = 30 * time.Minute
)

// fsckRound is one Fsck call's measurements.
type fsckRound struct {
	resp *pb.FsckResponse
	took time.Duration // the call, as the client saw it
	cpu  cpuSample
}

func runFsck(ctx context.Context, e *Env, r *report.Scenario) error {
	files := e.Pick(1000000, 100000)
	segments := files / fsckFilesPerSegment
	deepFiles := e.Pick(4096, 512)
	deepSegments := deepFiles / fsckFilesPerSegment
	deepBytes := int64(deepFiles) * fsckDeepFileSize
	deepMiB := int(deepBytes >> 20)
	rounds := e.Pick(3, 3)
	// The deep rounds take seconds, not minutes: more of them, for a median that the
	// shared machine's other work moves less.
	deepRounds := e.Pick(5, 3)
	const root = "s10"
	r.Setup = fmt.Sprintf("A three-node snapkeep cluster (fsync on, periodic GC off) stores in the shared versitygw under the root `%s/`. "+
		"Collection `%s` holds **%s files**%s: %s flushed segments × %d files of 16 bytes, registered through the client (AllocateSegment, FlushSegment with sizes and CRC-32C) "+
		"with the objects written straight into versitygw's posix directory with the xattrs its PUT leaves (as in scenario 5: PUTs run under 1,000/s on the shared cores), "+
		"and **one committed snapshot** of it, whose manifest fsck reads and checks too. "+
		"Collection `%s` holds %s files of 1 MiB (%s segments × %d, %s MiB in all%s), loaded the same way, without a snapshot: "+
		"enough bytes for the reads to outweigh the listing and the call's fixed costs, few enough to load in a minute and to stay in the page cache. "+
		"After the load, `sync`; then, round after round, A then B (%d rounds of the first comparison, %d of the second): "+
		"(1) **A** `Fsck` of `%s`, sizes only: a linearizable read view, the catalog's expected files, parallel listings of the collection's nine segment-id shards and of `snapshots/` "+
		"(ListObjectsV2 pages of 1,000, up to 8 listings at once), the comparison of every key and size, then the manifest read back and checked (size, xxhash64, decoding, segments and file lists against the catalog); "+
		"files/s = files expected / the call's time. **B** a plain walk of the same keys from the benchmark process: the collection's prefix, then the manifest's key "+
		"(`objstore.S3.List`, pages of 1,000, one after another, as in scenario 5); keys/s. "+
		"(2) **A** `Fsck` of `%s` with `--deep` (no rate limit): the listing, then a GET of every file with its CRC-32C computed and compared with the catalog's, in batches of 64 files shared between the node called and the two others (`Internal.FsckRead`), %d reads in flight on each (33 in all); "+
		"MB/s = bytes read / the call's time. **B** a plain loop of %d goroutines in the benchmark process: a GET of every key, each body read to its end through a CRC-32C (Castagnoli) compared with the catalog's; MB/s. "+
		"One unmeasured pass of each side comes before these rounds (the 1M listings push some of the files out of the page cache; each side's client opens its connections), "+
		"and each round starts with a sizes-only fsck of the same collection, outside the comparison, to show the part of a deep check before its reads. "+
		"versitygw's posix backend lists from its directory tree and serves GETs from its files, without fsync, and the objects are re-read **from the page cache** on every round, by both sides: "+
		"an upper bound on what real object storage gives, and a comparison of the work each side does on two shared cores, not of a disk or a network.",
		root, fsckCollection, commaInt(files), map[bool]string{true: " (quick mode: 100,000 instead of 1,000,000)", false: ""}[e.Quick],
		commaInt(segments), fsckFilesPerSegment,
		fsckDeepCollection, commaInt(deepFiles), commaInt(deepSegments), fsckFilesPerSegment, commaInt(deepMiB), map[bool]string{true: "; quick mode: 512 files instead of 4,096", false: ""}[e.Quick],
		rounds, deepRounds, fsckCollection, fsckDeepCollection, fsckDeepPerNode, fsckDeepConcurrency)

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
	w := newPosixWriter(e.S3.Dir, e.S3.Config().Bucket)

	// The large collection and its snapshot.
	loadStart := time.Now()
	coll, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(fsckCollection))
	if err != nil {
		return fmt.Errorf("create collection: %w", err)
	}
	load := segmentLoad{cl: cl, w: w, coll: fsckCollection, layout: datagen.Layout(fsckFilesPerSegment), body: keyBody}
	if err := inParallel(ctx, segments, fsckLoadWorkers, load.one); err != nil {
		return fmt.Errorf("load %s: %w", fsckCollection, err)
	}
	loadTook := time.Since(loadStart)
	snapStart := time.Now()
	snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption(fsckCollection, "snap"))
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if snap.State != pb.SnapshotState_SNAPSHOT_STATE_COMMITTED || snap.ManifestKey == "" {
		return fmt.Errorf("snapshot %d is %v with manifest %q, want COMMITTED with a manifest", snap.Id, snap.State, snap.ManifestKey)
	}
	snapTook := time.Since(snapStart)
	e.Logf("s10: %d files in %d segments loaded in %v; snapshot committed in %v (manifest %s, %d bytes)", files, segments,
		loadTook.Round(time.Millisecond), snapTook.Round(time.Millisecond), snap.ManifestKey, snap.ManifestSize)
	collPrefix := collectionPrefix(root, coll.Id)

	// The deep collection.
	deepStart := time.Now()
	if _, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(fsckDeepCollection)); err != nil {
		return fmt.Errorf("create collection: %w", err)
	}
	deepLoad := segmentLoad{cl: cl, w: w, coll: fsckDeepCollection, layout: datagen.Layout(fsckFilesPerSegment),
		body: func(seg, file int, _ string) []byte {
			b := make([]byte, fsckDeepFileSize)
			_, _ = datagen.NewContent(fsckDeepSeed, seg, file, fsckDeepFileSize).ReadAt(b, 0)
			return b
		}}
	if err := inParallel(ctx, deepSegments, fsckDeepLoadWorkers, deepLoad.one); err != nil {
		return fmt.Errorf("load %s: %w", fsckDeepCollection, err)
	}
	deepKeys, deepCRCs, err := flushedFiles(ctx, cl, fsckDeepCollection)
	if err != nil {
		return err
	}
	if len(deepKeys) != deepFiles {
		return fmt.Errorf("%s lists %d files, want %d", fsckDeepCollection, len(deepKeys), deepFiles)
	}
	e.Logf("s10: %d files of %d KiB loaded in %v", deepFiles, fsckDeepFileSize>>10, time.Since(deepStart).Round(time.Millisecond))
	syncStart := time.Now()
	syscall.Sync() // no writeback of the load during the rounds
	e.Logf("s10: sync took %v", time.Since(syncStart).Round(time.Millisecond))

	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	meter := &cpuMeter{pids: map[string][]int{"versitygw": {e.S3.Pid()}, "leader": {leader.Pid()}}, self: "bench"}
	for _, n := range c.Nodes {
		meter.pids["snapkeep"] = append(meter.pids["snapkeep"], n.Pid())
	}
	perUnit := func(s cpuSample, n int) string {
		return fmt.Sprintf("snapkeep %.1f µs (leader %.1f), versitygw %.1f µs, bench %.1f µs", microsPer(s["snapkeep"], n), microsPer(s["leader"], n),
			microsPer(s["versitygw"], n), microsPer(s["bench"], n))
	}

	rss0, _ := procStatusBytes(leader.Pid(), "VmRSS")
	hwm0, _ := procStatusBytes(leader.Pid(), "VmHWM")

	// (1) Sizes only against the list walk.
	var fsckRates, walkRates []float64
	var fscks []fsckRound
	var walkCPU []cpuSample
	var walked int
	for round := range rounds {
		fr, err := fsckMeasured(ctx, cl, meter, fsckCollection, false)
		if err != nil {
			return fmt.Errorf("round %d: fsck: %w", round+1, err)
		}
		if err := checkSizesOnly(fr.resp, files); err != nil {
			return fmt.Errorf("round %d: fsck: %w", round+1, err)
		}
		fscks = append(fscks, fr)
		fsckRates = append(fsckRates, float64(fr.resp.FilesExpected)/fr.took.Seconds())

		cpu0 := meter.sample()
		n, wtook, err := listWalks(ctx, store, collPrefix, snap.ManifestKey)
		if err != nil {
			return fmt.Errorf("round %d: list walk: %w", round+1, err)
		}
		walkCPU = append(walkCPU, meter.since(cpu0))
		walkRates = append(walkRates, float64(n)/wtook.Seconds())
		if uint64(n) != fr.resp.ObjectsListed {
			return fmt.Errorf("round %d: the walk listed %d keys under %s and %s, fsck listed %d objects", round+1, n, collPrefix, snap.ManifestKey, fr.resp.ObjectsListed)
		}
		walked = n
		e.Logf("s10: round %d: fsck %.0f files/s (%v, server %d ms), list walk %.0f keys/s (%v), ratio %.3f", round+1,
			fsckRates[round], fr.took.Round(time.Millisecond), fr.resp.TookMs, walkRates[round], wtook.Round(time.Millisecond), fsckRates[round]/walkRates[round])
		e.Logf("s10: round %d: CPU per file: fsck %s; walk %s", round+1, perUnit(fr.cpu, files), perUnit(walkCPU[round], n))
	}

	hwm1, _ := procStatusBytes(leader.Pid(), "VmHWM")
	e.Logf("s10: leader RSS %d MiB before the sizes-only rounds (peak so far %d MiB); peak after them %d MiB", rss0>>20, hwm0>>20, hwm1>>20)

	// (2) Deep against the GET loop. First one unmeasured pass of each side: the 1M
	// listings above pushed some of the deep files out of the page cache (the first
	// deep round of a run without this pass ran at half the speed of the next, on
	// both sides, versitygw included), and each side's client opens its 32
	// connections.
	warmStart := time.Now()
	if _, err := fsckMeasured(ctx, cl, nil, fsckDeepCollection, true); err != nil {
		return fmt.Errorf("warm-up fsck --deep: %w", err)
	}
	if _, _, err := plainReadLoop(ctx, store, deepKeys, deepCRCs, fsckDeepConcurrency); err != nil {
		return fmt.Errorf("warm-up GET loop: %w", err)
	}
	e.Logf("s10: warm-up pass of fsck --deep and the GET loop took %v", time.Since(warmStart).Round(time.Millisecond))
	var deepRates, getRates []float64
	var deeps, deepListings []fsckRound
	var getCPU []cpuSample
	for round := range deepRounds {
		// Not in the comparison: a sizes-only fsck of the deep collection, the part of
		// a deep check before its reads (read view, listing, comparison).
		lr, err := fsckMeasured(ctx, cl, nil, fsckDeepCollection, false)
		if err != nil {
			return fmt.Errorf("round %d: sizes-only fsck of %s: %w", round+1, fsckDeepCollection, err)
		}
		deepListings = append(deepListings, lr)

		fr, err := fsckMeasured(ctx, cl, meter, fsckDeepCollection, true)
		if err != nil {
			return fmt.Errorf("round %d: fsck --deep: %w", round+1, err)
		}
		if err := checkDeep(fr.resp, deepFiles, deepBytes); err != nil {
			return fmt.Errorf("round %d: fsck --deep: %w", round+1, err)
		}
		deeps = append(deeps, fr)
		deepRates = append(deepRates, float64(fr.resp.BytesRead)/1e6/fr.took.Seconds())

		cpu0 := meter.sample()
		n, gtook, err := plainReadLoop(ctx, store, deepKeys, deepCRCs, fsckDeepConcurrency)
		if err != nil {
			return fmt.Errorf("round %d: GET loop: %w", round+1, err)
		}
		getCPU = append(getCPU, meter.since(cpu0))
		if n != deepBytes {
			return fmt.Errorf("round %d: the GET loop read %d bytes, want %d", round+1, n, deepBytes)
		}
		getRates = append(getRates, float64(n)/1e6/gtook.Seconds())
		e.Logf("s10: round %d: fsck --deep %.0f MB/s (%v, server %d ms; sizes only %v), GET loop %.0f MB/s (%v), ratio %.3f", round+1,
			deepRates[round], fr.took.Round(time.Millisecond), fr.resp.TookMs, lr.took.Round(time.Millisecond), getRates[round], gtook.Round(time.Millisecond),
			deepRates[round]/getRates[round])
		e.Logf("s10: round %d: CPU per MiB: fsck --deep %s; GET loop %s", round+1, perUnit(fr.cpu, deepMiB), perUnit(getCPU[round], deepMiB))
	}

	r.Comparisons = append(r.Comparisons,
		report.NewComparison(fmt.Sprintf("fsck of %s files, sizes only (+ 1 manifest)", commaInt(files)), "files/s", report.Higher,
			fsckRates, "plain ListObjectsV2 walk of the same keys", walkRates,
			&report.Target{Op: ">=", Ratio: 0.8, Text: "≥ 0.8× the plain list walk's keys/s"}),
		report.NewComparison(fmt.Sprintf("fsck --deep of %s files of 1 MiB, 3 nodes × %d reads in flight", commaInt(deepFiles), fsckDeepPerNode), "MB/s", report.Higher,
			deepRates, fmt.Sprintf("plain GET loop with CRC-32C, %d goroutines", fsckDeepConcurrency), getRates,
			&report.Target{Op: ">=", Ratio: 0.8, Text: "≥ 0.8× the plain parallel GET loop's MB/s"}))
	r.Comparisons[0].Note = fmt.Sprintf("fsck: files expected / the call's time; the walk: keys listed / its time (the %s files and the manifest)", commaInt(files))
	r.Comparisons[1].Note = "bytes read / time, MB = 10⁶ bytes; fsck's time includes its listing of the collection"

	median := func(n int, f func(i int) float64) float64 {
		var v []float64
		for i := range n {
			v = append(v, f(i))
		}
		return stats.Summarize(v).Median
	}
	r.Figures = append(r.Figures,
		report.Figure{Name: "sizes only: fsck/walk of each round's pair (median)", Value: pairRatioMedian(fsckRates, walkRates), Unit: "×",
			Note: "the load of a shared machine moves between A and B; a pair's ratio sees the same moment"},
		report.Figure{Name: "deep: fsck/GET loop of each round's pair (median)", Value: pairRatioMedian(deepRates, getRates), Unit: "×"},
		report.Figure{Name: "files fsck expected (sizes only)", Value: float64(files), Unit: "files", Note: fmt.Sprintf("%s segments × %d", commaInt(segments), fsckFilesPerSegment)},
		report.Figure{Name: "objects fsck listed / keys the walk listed", Value: float64(walked), Unit: "objects", Note: "the files and the snapshot's manifest, equal on both sides every round"},
		report.Figure{Name: "manifest checked", Value: float64(snap.ManifestSize) / 1024, Unit: "KiB", Note: fmt.Sprintf("one snapshot of %s segments", commaInt(segments))},
		report.Figure{Name: "rounds (A B each): sizes only / deep", Value: float64(rounds), Unit: "rounds", Note: fmt.Sprintf("deep: %d rounds", deepRounds)},
		report.Figure{Name: "sizes only: fsck's own time / the call's time (median)", Value: median(rounds, func(i int) float64 {
			return 100 * float64(fscks[i].resp.TookMs) / msOf(fscks[i].took)
		}), Unit: "%", Note: "TookMs: the check on the leader, without the read view and the RPC"},
		report.Figure{Name: "sizes only: snapkeep CPU per file (3 nodes, median)", Value: median(rounds, func(i int) float64 { return microsPer(fscks[i].cpu["snapkeep"], files) }), Unit: "µs",
			Note: fmt.Sprintf("the leader: %.1f µs", median(rounds, func(i int) float64 { return microsPer(fscks[i].cpu["leader"], files) }))},
		report.Figure{Name: "sizes only: versitygw CPU per file, fsck / walk (medians)", Value: median(rounds, func(i int) float64 { return microsPer(fscks[i].cpu["versitygw"], files) }), Unit: "µs",
			Note: fmt.Sprintf("walk: %.1f µs per key", median(rounds, func(i int) float64 { return microsPer(walkCPU[i]["versitygw"], walked) }))},
		report.Figure{Name: "sizes only: benchmark process CPU per key, walk (median)", Value: median(rounds, func(i int) float64 { return microsPer(walkCPU[i]["bench"], walked) }), Unit: "µs",
			Note: "the walk's client side, the counterpart of the leader's"},
		report.Figure{Name: "sizes only: the leader's peak RSS after the rounds", Value: float64(hwm1 >> 20), Unit: "MiB",
			Note: fmt.Sprintf("before them: %d MiB resident, peak %d MiB (the load); VmHWM from /proc", rss0>>20, hwm0>>20)},
		report.Figure{Name: "deep: files read per round", Value: float64(deepFiles), Unit: "files", Note: fmt.Sprintf("%s MiB", commaInt(deepMiB))},
		report.Figure{Name: "deep: a sizes-only fsck of the same collection (median)", Value: median(deepRounds, func(i int) float64 { return msOf(deepListings[i].took) }), Unit: "ms",
			Note: fmt.Sprintf("the part of a deep check before its reads (read view, listing, comparison), run before each round's A; the deep calls took %.0f ms (median)",
				median(deepRounds, func(i int) float64 { return msOf(deeps[i].took) }))},
		report.Figure{Name: "deep: snapkeep CPU per MiB read (3 nodes, median)", Value: median(deepRounds, func(i int) float64 { return microsPer(deeps[i].cpu["snapkeep"], deepMiB) }), Unit: "µs",
			Note: fmt.Sprintf("the leader: %.0f µs", median(deepRounds, func(i int) float64 { return microsPer(deeps[i].cpu["leader"], deepMiB) }))},
		report.Figure{Name: "deep: versitygw CPU per MiB, fsck / GET loop (medians)", Value: median(deepRounds, func(i int) float64 { return microsPer(deeps[i].cpu["versitygw"], deepMiB) }), Unit: "µs",
			Note: fmt.Sprintf("GET loop: %.0f µs", median(deepRounds, func(i int) float64 { return microsPer(getCPU[i]["versitygw"], deepMiB) }))},
		report.Figure{Name: "deep: benchmark process CPU per MiB, GET loop (median)", Value: median(deepRounds, func(i int) float64 { return microsPer(getCPU[i]["bench"], deepMiB) }), Unit: "µs",
			Note: "the loop's client side, the counterpart of the leader's"},
		report.Figure{Name: "load of the large collection (before the snapshot)", Value: loadTook.Seconds(), Unit: "s",
			Note: fmt.Sprintf("%d goroutines; the snapshot then took %.1f s", fsckLoadWorkers, snapTook.Seconds())},
	)
	roundLabels := func(n int) []string {
		var labels []string
		for i := range n {
			labels = append(labels, fmt.Sprintf("round %d", i+1))
		}
		return labels
	}
	r.Charts = append(r.Charts,
		report.Chart{File: "s10-fsck-vs-list.svg", Title: fmt.Sprintf("fsck (sizes only) vs plain list walk, %s files", commaInt(files)),
			YLabel: "files/s (keys/s)", Labels: roundLabels(rounds), Series: []report.Series{{Name: "snapkeep fsck", Values: fsckRates}, {Name: "plain ListObjectsV2 walk", Values: walkRates}}},
		report.Chart{File: "s10-fsck-deep-vs-get.svg", Title: fmt.Sprintf("fsck --deep vs plain GET loop, %s files of 1 MiB, %d at once", commaInt(deepFiles), fsckDeepConcurrency),
			YLabel: "MB/s", Labels: roundLabels(deepRounds), Series: []report.Series{{Name: "snapkeep fsck --deep", Values: deepRates}, {Name: "plain GET loop with CRC-32C", Values: getRates}}})

	if dir := profileDir(); dir != "" {
		secs := func(rs []fsckRound) int {
			// A little longer than a measured call, so the profile sees all of one.
			return int(1.2*median(len(rs), func(i int) float64 { return rs[i].took.Seconds() })) + 1
		}
		if err := profileFsck(ctx, e, cl, leader, meter, dir, secs(fscks), secs(deeps), files, deepMiB, collPrefix, snap.ManifestKey, deepKeys, deepCRCs); err != nil {
			return err
		}
	}
	return nil
}

// collectionPrefix is the key prefix of a collection's objects in the snapkeep
// layout under root.
func collectionPrefix(root string, id uint64) string {
	return fmt.Sprintf("%s/collections/%d/", strings.TrimSuffix(root, "/"), id)
}

// fsckMeasured runs one Fsck of coll (deep: no rate limit, fsckDeepPerNode reads in
// flight on each node) and fails unless it found the collection clean.
func fsckMeasured(ctx context.Context, cl *client.Client, meter *cpuMeter, coll string, deep bool) (fsckRound, error) {
	opt := client.NewFsckOption().WithCollection("", coll)
	if deep {
		opt = opt.WithDeep(0, fsckDeepPerNode)
	}
	ctx, cancel := context.WithTimeout(ctx, fsckCallTimeout)
	defer cancel()
	var cpu0 cpuSample
	if meter != nil {
		cpu0 = meter.sample()
	}
	start := time.Now()
	resp, err := cl.Fsck(ctx, opt)
	fr := fsckRound{resp: resp, took: time.Since(start)}
	if meter != nil {
		fr.cpu = meter.since(cpu0)
	}
	if err != nil {
		return fr, err
	}
	if !resp.Clean {
		return fr, fmt.Errorf("not clean: %s", describeProblems(resp.Problems))
	}
	return fr, nil
}

// describeProblems is a log line of a few of fsck's problems.
func describeProblems(ps []*pb.FsckProblem) string {
	var parts []string
	for i, p := range ps {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("… %d more", len(ps)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s: %s", p.Kind, p.Key, p.Detail))
	}
	return fmt.Sprintf("%d problems: %s", len(ps), strings.Join(parts, "; "))
}

// checkSizesOnly checks a sizes-only report of the large collection: every loaded
// file expected, the snapshot's manifest checked, nothing read.
func checkSizesOnly(resp *pb.FsckResponse, files int) error {
	switch {
	case resp.Deep || resp.FilesRead != 0:
		return fmt.Errorf("a sizes-only check read %d files (deep %v)", resp.FilesRead, resp.Deep)
	case resp.FilesExpected != uint64(files):
		return fmt.Errorf("%d files expected, want the %d loaded", resp.FilesExpected, files)
	case resp.ManifestsChecked != 1:
		return fmt.Errorf("%d manifests checked, want the snapshot's 1", resp.ManifestsChecked)
	case resp.ObjectsListed < resp.FilesExpected+1:
		return fmt.Errorf("%d objects listed, fewer than the %d files and the manifest", resp.ObjectsListed, resp.FilesExpected)
	}
	return nil
}

// checkDeep checks a deep report of the deep collection: every file read, every byte.
func checkDeep(resp *pb.FsckResponse, files int, bytes int64) error {
	switch {
	case !resp.Deep:
		return errors.New("the report is not deep")
	case resp.FilesExpected != uint64(files) || resp.FilesRead != uint64(files):
		return fmt.Errorf("%d files expected and %d read, want all %d", resp.FilesExpected, resp.FilesRead, files)
	case resp.BytesRead != uint64(bytes):
		return fmt.Errorf("%d bytes read, want %d", resp.BytesRead, bytes)
	case resp.Readers != 3 || len(resp.ReadersFailed) > 0:
		return fmt.Errorf("the reads were shared by %d nodes (failed: %v), want all 3", resp.Readers, resp.ReadersFailed)
	}
	return nil
}

// listWalks walks every prefix in turn (listWalk: pages of 1,000, one after another)
// and returns the keys listed and the time of all of them.
func listWalks(ctx context.Context, store objstore.Store, prefixes ...string) (int, time.Duration, error) {
	total, took := 0, time.Duration(0)
	for _, p := range prefixes {
		n, d, err := listWalk(ctx, store, p)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", p, err)
		}
		total, took = total+n, took+d
	}
	return total, took, nil
}

// plainReadLoop reads every key from n goroutines taking keys in turn, each a GET
// whose body is read to its end through a CRC-32C (Castagnoli) that must equal
// crcs[key], as fsck --deep reads; it returns the bytes read and the loop's time.
func plainReadLoop(ctx context.Context, store objstore.Store, keys []string, crcs map[string]uint32, n int) (int64, time.Duration, error) {
	var read atomic.Int64
	start := time.Now()
	err := inParallel(ctx, len(keys), n, func(ctx context.Context, i int) error {
		key := keys[i]
		want, ok := crcs[key]
		if !ok {
			return fmt.Errorf("%s: no CRC-32C to compare with", key)
		}
		rc, _, err := store.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("get %s: %w", key, err)
		}
		defer rc.Close()
		h := crc32.New(castagnoli)
		m, err := io.Copy(h, rc)
		read.Add(m)
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		if h.Sum32() != want {
			return fmt.Errorf("%s: CRC-32C %08x read back, want %08x", key, h.Sum32(), want)
		}
		return nil
	})
	took := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	return read.Load(), took, nil
}

// profileFsck runs one more, unmeasured fsck of each kind while taking a CPU profile
// of the leader (s10-fsck-leader.pprof, s10-fsck-deep-leader.pprof), and profiles the
// benchmark process during one more walk and one more GET loop
// (s10-list-walk-bench.pprof, s10-get-loop-bench.pprof).
func profileFsck(ctx context.Context, e *Env, cl *client.Client, leader *env.SnapkeepNode, meter *cpuMeter, dir string, seconds, deepSeconds, files, deepMiB int,
	collPrefix, manifestKey string, deepKeys []string, deepCRCs map[string]uint32) error {
	for _, p := range []struct {
		name    string
		coll    string
		deep    bool
		seconds int
		per     int // files, or MiB read
	}{
		{"fsck", fsckCollection, false, seconds, files},
		{"fsck-deep", fsckDeepCollection, true, deepSeconds, deepMiB},
	} {
		errc := make(chan error, 1)
		go func() {
			errc <- fetchProfile(ctx, leader.HTTPAddr, p.seconds, filepath.Join(dir, "s10-"+p.name+"-leader.pprof"))
		}()
		time.Sleep(100 * time.Millisecond) // the profile starts
		fr, err := fsckMeasured(ctx, cl, meter, p.coll, p.deep)
		if err := errors.Join(err, <-errc); err != nil {
			return fmt.Errorf("profiled %s: %w", p.name, err)
		}
		e.Logf("s10: profiled %s took %v (server %d ms); CPU per file (deep: per MiB): snapkeep %.1f µs (leader %.1f), versitygw %.1f µs; leader profile (%d s) in %s",
			p.name, fr.took.Round(time.Millisecond), fr.resp.TookMs, microsPer(fr.cpu["snapkeep"], p.per), microsPer(fr.cpu["leader"], p.per),
			microsPer(fr.cpu["versitygw"], p.per), p.seconds, dir)
	}
	for _, loop := range []struct {
		name string
		run  func() (int, time.Duration, error)
	}{
		{"list-walk", func() (int, time.Duration, error) { return listWalks(ctx, e.S3.Store, collPrefix, manifestKey) }},
		{"get-loop", func() (int, time.Duration, error) {
			_, took, err := plainReadLoop(ctx, e.S3.Store, deepKeys, deepCRCs, fsckDeepConcurrency)
			return deepMiB, took, err
		}},
	} {
		f, err := os.Create(filepath.Join(dir, "s10-"+loop.name+"-bench.pprof"))
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return err
		}
		cpu0 := meter.sample()
		n, took, err := loop.run()
		cpu := meter.since(cpu0)
		pprof.StopCPUProfile()
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("profiled %s: %w", loop.name, err)
		}
		e.Logf("s10: profiled %s took %v; CPU per key (GET loop: per MiB): bench %.1f µs, versitygw %.1f µs", loop.name, took.Round(time.Millisecond),
			microsPer(cpu["bench"], n), microsPer(cpu["versitygw"], n))
	}
	return nil
}
