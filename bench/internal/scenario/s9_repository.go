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
	"slices"
	"strings"
	"sync"
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

// Repository is scenario 9: backups in another storage. An export of a snapshot to a
// repository on a second S3 endpoint, and a restore from it, each against the raw
// limit of the same transfers (a plain parallel GET → PUT loop between the two
// endpoints); and an incremental export after 10% churn, whose bytes written into the
// repository are counted by a proxy in front of it.
var Repository = Scenario{
	Number: 9,
	Name:   "repository",
	Title:  "Repositories: export and restore of 10k files vs a plain GET→PUT loop between two endpoints; incremental export after 10% churn",
	Run:    runRepository,
}

const (
	// repoBucket is the second versitygw's bucket, which holds every repository.
	repoBucket = "repository"
	// repoChurnPercent of the segments are dropped and as many added between
	// incremental exports.
	repoChurnPercent = 10
	// repoCollection is the source collection.
	repoCollection = "src"
)

// Job kinds as the copy counters label them.
const (
	kindExport            = "export"
	kindRepositoryRestore = "repository_restore"
)

// jobRound is one export's or repository restore's measurements.
type jobRound struct {
	job  *pb.RestoreJob
	took time.Duration // call to completion
	// precheck is created → started (planning and the pre-check listing); tail is
	// from the first poll that saw every file copied (or the job FINALIZING: an
	// export's manifest and index) to the completion stamp.
	precheck, tail time.Duration
	cpu            cpuSample
	nodeCopied     []float64 // from the nodes' copy counters of the job's kind
}

func runRepository(ctx context.Context, e *Env, r *report.Scenario) error {
	files := e.Pick(10000, 2000)
	rounds := e.Pick(5, 3)
	segments := files / restoreFilesPerSegment
	churnSegments := segments * repoChurnPercent / 100
	concurrency := restoreCopyingNodes * restoreNodeConcurrency
	r.Setup = fmt.Sprintf("A three-node snapkeep cluster (fsync on, `--restore-concurrency %d` per node) stores in its own versitygw; "+
		"a **second versitygw** (another endpoint, the same keys, so the nodes reach it with their own S3 credentials) holds the repositories, one prefix each. "+
		"The source collection holds %s files (%s segments × %d files of %d KiB, by `datagen`), with one snapshot. "+
		"Round after round (%d rounds%s), A B for each of two comparisons: "+
		"(1) **A** `ExportSnapshot` to a fresh repository (registered before the round, a new prefix, so nothing is skipped), from the call to the job's completion stamp "+
		"(pre-check listings, leases through Raft, copies streamed GET → PUT by the executors with the CRC-32C computed on the fly and declared to the repository's server, "+
		"then the manifest and a new index generation); **B** a plain loop of %d goroutines in the benchmark process, `objstore.S3` Get from the cluster's bucket and Put "+
		"to the repository's endpoint (no checksum), of the same %s keys. "+
		"(2) **A** a restore from that repository (`NewRestoreFromRepositoryOption`) into a new collection, call to completion (planning from the manifest, pre-check, streamed copies verified by their CRC-32C); "+
		"**B** the same loop the other way, Get from the repository's data objects and Put into the cluster's bucket. "+
		"Both jobs lease to the two followers only, %d × %d = **%d copies at once**, as many as the loops run. "+
		"(3) After the rounds, a repository registered through a **byte-counting reverse proxy** (`bench/internal/env/proxy.go`) in front of the second versitygw receives a full export; "+
		"then, %d times, %d%% of the segments (%s) are dropped and as many added with %d files each, a snapshot taken and exported to it. "+
		"The proxy counts the request bodies of every PUT (objects, parts), and copies by their source's size, by key: data objects (`data/`) apart from the manifest (`snapshots/`) and the index (`index/`); "+
		"the ratio is the data bytes written over the bytes of the new files. "+
		"versitygw's posix backend does not fsync on PUT: both sides' figures are an upper bound on what real object storage gives.",
		restoreNodeConcurrency, commaInt(files), commaInt(segments), restoreFilesPerSegment, restoreFileSize>>10,
		rounds, map[bool]string{true: ", quick mode: 2,000 files instead of 10,000", false: ""}[e.Quick],
		concurrency, commaInt(files), restoreCopyingNodes, restoreNodeConcurrency, concurrency,
		rounds, repoChurnPercent, commaInt(churnSegments)+" segments", restoreFilesPerSegment)

	// Both endpoints are the scenario's own gateways, started first so that they stop
	// after the nodes, with their objects in memory when the machine has room
	// (Env.StartS3InMemory says why). Each holds at most 2 × rounds + 2 copies of the
	// collection; twice that for the filesystem's own overhead.
	need := int64(files) * restoreFileSize * int64(2*rounds+2) * 2
	clusterS3, clusterInMemory, err := e.StartS3InMemory(ctx, "cluster-s3", "", 2*need)
	if err != nil {
		return err
	}
	repoS3, repoInMemory, err := e.StartS3InMemory(ctx, "repository-s3", repoBucket, need)
	if err != nil {
		return err
	}
	r.Setup += " " + gatewayPlacement(clusterInMemory, repoInMemory)
	c, err := e.StartSnapkeepOn(ctx, "s9", clusterS3, env.SnapkeepOptions{HTTP: true,
		Extra: []string{"--restore-concurrency", fmt.Sprint(restoreNodeConcurrency)}})
	if err != nil {
		return err
	}
	cl, err := c.Client(ctx)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	store := clusterS3.Store

	loadStart := time.Now()
	if _, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(repoCollection)); err != nil {
		return fmt.Errorf("create collection: %w", err)
	}
	if _, err := datagen.Generate(ctx, cl, store, datagen.Options{Collection: repoCollection, Segments: segments,
		FilesPerSegment: restoreFilesPerSegment, FileSize: restoreFileSize, Concurrency: 32}); err != nil {
		return fmt.Errorf("load the source: %w", err)
	}
	if _, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption(repoCollection, "snap")); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	srcKeys, srcCRCs, err := flushedFiles(ctx, cl, repoCollection)
	if err != nil {
		return err
	}
	if len(srcKeys) != files {
		return fmt.Errorf("the source lists %d files, want %d", len(srcKeys), files)
	}
	e.Logf("s9: %d files loaded and snapshotted in %v", files, time.Since(loadStart).Round(time.Millisecond))

	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	meter := &cpuMeter{pids: map[string][]int{"versitygw": {clusterS3.Pid()}, "versitygw-repo": {repoS3.Pid()}}, self: "bench"}
	for _, n := range c.Nodes {
		meter.pids["snapkeep"] = append(meter.pids["snapkeep"], n.Pid())
	}
	idle0 := meter.sample()
	idleStart := time.Now()
	time.Sleep(time.Second)
	idleCPU := float64(meter.since(idle0)["snapkeep"]) / float64(time.Since(idleStart))

	repoEndpoint := repoS3.Config().Endpoint
	var exportRates, plainExportRates, restoreRates, plainRestoreRates []float64
	var exports, restores []jobRound
	var plainExportCPU, plainRestoreCPU []cpuSample
	var lastRepo string
	for round := range rounds {
		name := fmt.Sprintf("exp%d", round+1)
		if err := registerRepository(ctx, cl, name, repoEndpoint, name); err != nil {
			return fmt.Errorf("round %d: %w", round+1, err)
		}
		lastRepo = name

		ex, err := followJob(ctx, cl, c.Nodes, meter, kindExport, func() (uint64, error) {
			resp, err := cl.ExportSnapshot(ctx, client.NewExportSnapshotOption(repoCollection, "snap", name))
			return resp.GetJobId(), err
		})
		if err != nil {
			return fmt.Errorf("round %d: export: %w", round+1, err)
		}
		if ex.job.FilesTotal != uint64(files) || ex.job.FilesSkipped != 0 {
			return fmt.Errorf("round %d: the export copied %d files of %d, skipped %d: want all %d copied", round+1, ex.job.FilesDone, ex.job.FilesTotal, ex.job.FilesSkipped, files)
		}
		exports = append(exports, ex)
		exportRates = append(exportRates, float64(files)/ex.took.Seconds())

		cpu0 := meter.sample()
		took, err := plainStreamLoop(ctx, store, repoS3.Store, srcKeys, fmt.Sprintf("plain-export/%d/", round), concurrency, nil)
		if err != nil {
			return fmt.Errorf("round %d: plain export loop: %w", round+1, err)
		}
		plainExportCPU = append(plainExportCPU, meter.since(cpu0))
		plainExportRates = append(plainExportRates, float64(files)/took.Seconds())

		rr, err := followJob(ctx, cl, c.Nodes, meter, kindRepositoryRestore, func() (uint64, error) {
			resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreFromRepositoryOption(name, ex.job.RepositorySnapshot, fmt.Sprintf("restored%d", round+1)))
			return resp.GetJobId(), err
		})
		if err != nil {
			return fmt.Errorf("round %d: restore from the repository: %w", round+1, err)
		}
		if rr.job.FilesTotal != uint64(files) {
			return fmt.Errorf("round %d: the repository restore copied %d files, want %d", round+1, rr.job.FilesTotal, files)
		}
		restores = append(restores, rr)
		restoreRates = append(restoreRates, float64(files)/rr.took.Seconds())

		repoKeys, err := listKeys(ctx, repoS3.Store, name+"/data/")
		if err != nil {
			return fmt.Errorf("round %d: list the repository: %w", round+1, err)
		}
		if len(repoKeys) != files {
			return fmt.Errorf("round %d: the repository holds %d data objects, want %d", round+1, len(repoKeys), files)
		}
		cpu0 = meter.sample()
		took, err = plainStreamLoop(ctx, repoS3.Store, store, repoKeys, fmt.Sprintf("s9-plain-restore/%d/", round), concurrency, nil)
		if err != nil {
			return fmt.Errorf("round %d: plain restore loop: %w", round+1, err)
		}
		plainRestoreCPU = append(plainRestoreCPU, meter.since(cpu0))
		plainRestoreRates = append(plainRestoreRates, float64(files)/took.Seconds())

		perFile := func(c cpuSample) string {
			return fmt.Sprintf("snapkeep %.0f µs, versitygw %.0f µs, versitygw-repo %.0f µs, bench %.0f µs", microsPer(c["snapkeep"], files),
				microsPer(c["versitygw"], files), microsPer(c["versitygw-repo"], files), microsPer(c["bench"], files))
		}
		e.Logf("s9: round %d: CPU per file: export %s; plain loop %s", round+1, perFile(ex.cpu), perFile(plainExportCPU[round]))
		e.Logf("s9: round %d: CPU per file: repository restore %s; plain loop %s", round+1, perFile(rr.cpu), perFile(plainRestoreCPU[round]))
		e.Logf("s9: round %d: export %.0f files/s (%v: pre-check %v, tail after the copies ~%v; %d leases; per node %v), plain loop %.0f files/s, ratio %.3f",
			round+1, exportRates[round], ex.took.Round(time.Millisecond), ex.precheck, ex.tail.Round(time.Millisecond), ex.job.Leases, ex.nodeCopied,
			plainExportRates[round], exportRates[round]/plainExportRates[round])
		e.Logf("s9: round %d: repository restore %.0f files/s (%v: planning + pre-check %v; %d leases; per node %v), plain loop %.0f files/s, ratio %.3f",
			round+1, restoreRates[round], rr.took.Round(time.Millisecond), rr.precheck, rr.job.Leases, rr.nodeCopied,
			plainRestoreRates[round], restoreRates[round]/plainRestoreRates[round])
	}

	r.Comparisons = append(r.Comparisons,
		report.NewComparison(fmt.Sprintf("export of %s files to another endpoint, %d copies at once", commaInt(files), concurrency), "files/s", report.Higher,
			exportRates, "plain GET→PUT loop, cluster → repository", plainExportRates,
			&report.Target{Op: ">=", Ratio: 0.9, Text: "≥ 0.9× the plain copy loop's files/s"}),
		report.NewComparison(fmt.Sprintf("restore of %s files from the repository, %d copies at once", commaInt(files), concurrency), "files/s", report.Higher,
			restoreRates, "plain GET→PUT loop, repository → cluster", plainRestoreRates,
			&report.Target{Op: ">=", Ratio: 0.9, Text: "≥ 0.9× the plain copy loop's files/s"}))

	median := func(n int, f func(i int) float64) float64 {
		var v []float64
		for i := range n {
			v = append(v, f(i))
		}
		return stats.Summarize(v).Median
	}
	r.Figures = append(r.Figures,
		report.Figure{Name: "export/plain of each round's pair (median)", Value: pairRatioMedian(exportRates, plainExportRates), Unit: "×",
			Note: "the load of a shared machine moves between A and B; a pair's ratio sees the same moment"},
		report.Figure{Name: "repository restore/plain of each round's pair (median)", Value: pairRatioMedian(restoreRates, plainRestoreRates), Unit: "×"},
		report.Figure{Name: "files per export and per restore", Value: float64(files), Unit: "files", Note: fmt.Sprintf("%d KiB each", restoreFileSize>>10)},
		report.Figure{Name: "rounds (A B each)", Value: float64(rounds), Unit: "rounds"},
		report.Figure{Name: "copies at once, every side", Value: float64(concurrency), Unit: "copies", Note: "two followers × --restore-concurrency 16"},
		report.Figure{Name: "export: created → copying (median)", Value: median(rounds, func(i int) float64 { return msOf(exports[i].precheck) }), Unit: "ms",
			Note: "listing the sources and the repository's data prefix"},
		report.Figure{Name: "export: every file copied → completed, as polled (median)", Value: median(rounds, func(i int) float64 { return msOf(exports[i].tail) }), Unit: "ms",
			Note: "FINALIZING: the manifest copied and the index generation written; 0 when one 50 ms poll saw both"},
		report.Figure{Name: "repository restore: created → copying (median)", Value: median(rounds, func(i int) float64 { return msOf(restores[i].precheck) }), Unit: "ms",
			Note: "planning from the manifest, then the pre-check listing of the repository"},
		report.Figure{Name: "leases per export (median)", Value: median(rounds, func(i int) float64 { return float64(exports[i].job.Leases) }), Unit: "leases"},
		report.Figure{Name: "files the leader copied (most in any job)", Value: maxOver(rounds, func(i int) float64 {
			return max(nodeShare(exports[i], c.Nodes, leader), nodeShare(restores[i], c.Nodes, leader))
		}), Unit: "files", Note: "from the nodes' snapkeep_restore_copied_files_total by kind: the followers do the copying"},
		report.Figure{Name: "snapkeep CPU per exported file (3 nodes, median)", Value: median(rounds, func(i int) float64 { return microsPer(exports[i].cpu["snapkeep"], files) }), Unit: "µs"},
		report.Figure{Name: "snapkeep CPU per restored file (3 nodes, median)", Value: median(rounds, func(i int) float64 { return microsPer(restores[i].cpu["snapkeep"], files) }), Unit: "µs"},
		report.Figure{Name: "benchmark process CPU per file, plain export loop (median)", Value: median(rounds, func(i int) float64 { return microsPer(plainExportCPU[i]["bench"], files) }), Unit: "µs",
			Note: "the loop's client side, the counterpart of the executors' share of the snapkeep CPU"},
		report.Figure{Name: "benchmark process CPU per file, plain restore loop (median)", Value: median(rounds, func(i int) float64 { return microsPer(plainRestoreCPU[i]["bench"], files) }), Unit: "µs"},
		report.Figure{Name: "snapkeep CPU while idle (3 nodes)", Value: idleCPU * 1000, Unit: "ms/s", Note: "heartbeats and gossip, included above for the jobs' duration"},
		report.Figure{Name: "both versitygw CPU per file: export / plain export loop (medians)", Value: median(rounds, func(i int) float64 {
			return microsPer(exports[i].cpu["versitygw"]+exports[i].cpu["versitygw-repo"], files)
		}), Unit: "µs",
			Note: fmt.Sprintf("plain loop: %.0f µs", median(rounds, func(i int) float64 {
				return microsPer(plainExportCPU[i]["versitygw"]+plainExportCPU[i]["versitygw-repo"], files)
			}))},
		report.Figure{Name: "both versitygw CPU per file: repository restore / plain restore loop (medians)", Value: median(rounds, func(i int) float64 {
			return microsPer(restores[i].cpu["versitygw"]+restores[i].cpu["versitygw-repo"], files)
		}), Unit: "µs",
			Note: fmt.Sprintf("plain loop: %.0f µs", median(rounds, func(i int) float64 {
				return microsPer(plainRestoreCPU[i]["versitygw"]+plainRestoreCPU[i]["versitygw-repo"], files)
			}))},
	)
	var labels []string
	for i := range rounds {
		labels = append(labels, fmt.Sprintf("round %d", i+1))
	}
	r.Charts = append(r.Charts, report.Chart{File: "s9-repository.svg", Title: fmt.Sprintf("Export and restore of %s files between two endpoints vs plain GET→PUT loops (%d at once)", commaInt(files), concurrency),
		YLabel: "files/s", Labels: labels, Series: []report.Series{{Name: "export", Values: exportRates}, {Name: "plain loop to the repository", Values: plainExportRates},
			{Name: "restore from the repository", Values: restoreRates}, {Name: "plain loop from the repository", Values: plainRestoreRates}}})

	if dir := profileDir(); dir != "" {
		if err := profileRepository(ctx, e, c, leader, cl, clusterS3, repoS3, srcKeys, srcCRCs, lastRepo, exports, dir); err != nil {
			return err
		}
	}

	return measureChurn(ctx, e, r, cl, store, repoS3, rounds, churnSegments)
}

// measureChurn is the third comparison: a repository behind a counting proxy, one full
// export, then rounds of churn → snapshot → incremental export, each one's bytes
// written into the repository counted by the proxy.
func measureChurn(ctx context.Context, e *Env, r *report.Scenario, cl *client.Client, store objstore.Store, repoS3 *env.S3, rounds, churnSegments int) error {
	const prefix = "churn"
	sizer := &objectSizer{cfg: repoS3.Config(), stores: map[string]*objstore.S3{}}
	defer sizer.close()
	proxy, err := env.StartCountingProxy(repoS3.Config().Endpoint, env.ProxyOptions{
		Classify: func(_, key string) string { return repositoryClass(prefix, key) },
		CopySize: sizer.size,
	})
	if err != nil {
		return err
	}
	defer proxy.Stop()
	if err := registerRepository(ctx, cl, prefix, proxy.URL, prefix); err != nil {
		return err
	}
	exportTo := func(snapshot string) (jobRound, env.TrafficByClass, error) {
		before := proxy.Counts()
		ex, err := followJob(ctx, cl, nil, nil, kindExport, func() (uint64, error) {
			resp, err := cl.ExportSnapshot(ctx, client.NewExportSnapshotOption(repoCollection, snapshot, prefix))
			return resp.GetJobId(), err
		})
		return ex, proxy.Counts().Since(before), err
	}

	full, fullTraffic, err := exportTo("snap")
	if err != nil {
		return fmt.Errorf("full export through the proxy: %w", err)
	}
	fullCheck := float64(fullTraffic["data"].Written()) / float64(full.job.BytesTotal)
	e.Logf("s9: full export through the proxy: %d files, %s of data objects written for %s of files (%.4f×); traffic %s",
		full.job.FilesTotal, mib(fullTraffic["data"].Written()), mib(int64(full.job.BytesTotal)), fullCheck, describeTraffic(fullTraffic))

	var moved, changed, withMeta, metaBytes, listed, requests, skippedFiles, skippedBytes, selfCounted []float64
	for round := range rounds {
		newBytes, err := churn(ctx, cl, store, churnSegments, int64(1000+round))
		if err != nil {
			return fmt.Errorf("churn %d: %w", round+1, err)
		}
		snapshot := fmt.Sprintf("churn%d", round+1)
		if _, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption(repoCollection, snapshot)); err != nil {
			return fmt.Errorf("churn %d: snapshot: %w", round+1, err)
		}
		ex, traffic, err := exportTo(snapshot)
		if err != nil {
			return fmt.Errorf("churn %d: export: %w", round+1, err)
		}
		data := traffic["data"].Written()
		meta := traffic["manifest"].Written() + traffic["index"].Written()
		moved = append(moved, float64(data)/(1<<20))
		changed = append(changed, float64(newBytes)/(1<<20))
		withMeta = append(withMeta, 100*float64(meta)/float64(newBytes))
		metaBytes = append(metaBytes, float64(meta)/1024)
		listed = append(listed, float64(traffic.Total().ResponseBytes)/1024)
		requests = append(requests, float64(traffic.Total().Requests))
		skippedFiles = append(skippedFiles, float64(ex.job.FilesSkipped))
		skippedBytes = append(skippedBytes, float64(ex.job.BytesSkipped)/(1<<20))
		selfCounted = append(selfCounted, float64(ex.job.BytesDone-ex.job.BytesSkipped)/(1<<20))
		e.Logf("s9: churn %d: %s of new files; the export wrote %s of data objects (%.4f×) and %s of manifest + index; skipped %d of %d files (%s); took %v; traffic %s",
			round+1, mib(newBytes), mib(data), float64(data)/float64(newBytes), kib(meta), ex.job.FilesSkipped, ex.job.FilesTotal,
			mib(int64(ex.job.BytesSkipped)), ex.took.Round(time.Millisecond), describeTraffic(traffic))
	}
	if errs := proxy.Errors(); len(errs) > 0 {
		return fmt.Errorf("the counting proxy: %s", strings.Join(errs, "; "))
	}

	r.Comparisons = append(r.Comparisons, report.NewComparison(
		fmt.Sprintf("incremental export after %d%% churn: data bytes written into the repository", repoChurnPercent), "MiB", report.Lower,
		moved, "bytes of the new files (the change)", changed,
		&report.Target{Op: "<=", Ratio: 1.05, Text: "≤ 1.05× the changed bytes"}))
	r.Comparisons[len(r.Comparisons)-1].Note = "counted by the proxy in front of the repository: request bodies of PUTs (and copies by their size) to keys under `data/`; " +
		"the manifest and the index generation are extra, listed below, not in the ratio"
	r.Figures = append(r.Figures,
		report.Figure{Name: "incremental export, manifest + index over the new files' bytes (median)", Value: stats.Summarize(withMeta).Median, Unit: "%",
			Note: "what counting them would add to the ratio"},
		report.Figure{Name: "incremental export, manifest + index generation written (median)", Value: stats.Summarize(metaBytes).Median, Unit: "KiB",
			Note: "the manifest lists every file of the snapshot: it grows with the collection, not with the change"},
		report.Figure{Name: "incremental export, files skipped (median)", Value: stats.Summarize(skippedFiles).Median, Unit: "files",
			Note: fmt.Sprintf("%.1f MiB (BytesSkipped, the job's own count)", stats.Summarize(skippedBytes).Median)},
		report.Figure{Name: "incremental export, bytes copied by the job's own count (median)", Value: stats.Summarize(selfCounted).Median, Unit: "MiB",
			Note: "BytesDone − BytesSkipped, next to the proxy's count above"},
		report.Figure{Name: "incremental export, requests to the repository (median)", Value: stats.Summarize(requests).Median, Unit: "requests"},
		report.Figure{Name: "incremental export, response bytes read from the repository (median)", Value: stats.Summarize(listed).Median, Unit: "KiB",
			Note: "mostly the listing of the repository's data prefix: it grows with the repository"},
		report.Figure{Name: "full export through the proxy: data bytes written / the snapshot's bytes", Value: 100 * fullCheck, Unit: "%",
			Note: "a check of the count: every file once"},
	)
	return nil
}

// registerRepository registers a repository under prefix of the repositories'
// bucket at endpoint, with the nodes' own credentials, and checks every node's probe.
func registerRepository(ctx context.Context, cl *client.Client, name, endpoint, prefix string) error {
	resp, err := cl.RegisterRepository(ctx, client.NewRegisterRepositoryOption(name, repoBucket).
		WithEndpoint(endpoint).WithPathStyle().WithPrefix(prefix))
	if err != nil {
		return fmt.Errorf("register repository %s: %w", name, err)
	}
	for _, p := range resp.GetProbes() {
		if !p.GetOk() {
			return fmt.Errorf("register repository %s: node %s: %s", name, p.GetNode(), p.GetError())
		}
	}
	if resp.GetRepository().GetCopyToRepository() || resp.GetRepository().GetCopyFromRepository() {
		return fmt.Errorf("register repository %s: server-side copies were found to work, the copies would not be streamed", name)
	}
	return nil
}

// followJob starts a job (start returns its id), polls it every restorePoll until it
// ends, and fails unless it completed. nodes and meter may be nil (no counters, no
// CPU).
func followJob(ctx context.Context, cl *client.Client, nodes []*env.SnapkeepNode, meter *cpuMeter, kind string, start func() (uint64, error)) (jobRound, error) {
	label := `kind="` + kind + `"`
	base := make([]float64, len(nodes))
	for i, n := range nodes {
		base[i], _ = scrapeCounter(ctx, n.HTTPAddr, copiedFilesMetric, label) // no series before the first copy
	}
	var cpu0 cpuSample
	if meter != nil {
		cpu0 = meter.sample()
	}
	t0 := time.Now()
	id, err := start()
	if err != nil {
		return jobRound{}, err
	}
	var copiedSeen time.Duration
	for {
		job, err := cl.GetRestoreState(ctx, id)
		if err != nil {
			return jobRound{}, fmt.Errorf("job %d state: %w", id, err)
		}
		if copiedSeen == 0 && (job.State == pb.RestoreState_RESTORE_STATE_FINALIZING || job.FilesTotal > 0 && job.FilesDone >= job.FilesTotal) {
			copiedSeen = time.Since(t0)
		}
		if client.JobEnded(job.State) {
			if job.State != pb.RestoreState_RESTORE_STATE_COMPLETED {
				return jobRound{}, fmt.Errorf("job %d ended %v: %s", id, job.State, job.Error)
			}
			jr := jobRound{job: job, precheck: time.Duration(job.StartedAtUnixMs-job.CreatedAtUnixMs) * time.Millisecond}
			if meter != nil {
				jr.cpu = meter.since(cpu0)
			}
			// The completion stamp (the leader's clock, this machine's) ends the time,
			// not the poll that saw it.
			jr.took = time.UnixMilli(job.FinishedAtUnixMs).Sub(t0)
			if observed := time.Since(t0); jr.took <= 0 || jr.took > observed {
				jr.took = observed
			}
			if copiedSeen > 0 && jr.took > copiedSeen {
				jr.tail = jr.took - copiedSeen
			}
			for i, n := range nodes {
				v, _ := scrapeCounter(ctx, n.HTTPAddr, copiedFilesMetric, label)
				jr.nodeCopied = append(jr.nodeCopied, v-base[i])
			}
			return jr, nil
		}
		select {
		case <-ctx.Done():
			return jobRound{}, ctx.Err()
		case <-time.After(restorePoll):
		}
	}
}

// nodeShare is how many files node copied in a job.
func nodeShare(jr jobRound, nodes []*env.SnapkeepNode, node *env.SnapkeepNode) float64 {
	for i, n := range nodes {
		if n == node && i < len(jr.nodeCopied) {
			return jr.nodeCopied[i]
		}
	}
	return 0
}

// plainStreamLoop copies every key from src to dstPrefix+key in dst with n goroutines
// taking keys in turn, each copy a Get streamed into a Put: the raw limit of streamed
// copies between two endpoints at that concurrency. With crcs (key → CRC-32C) each
// upload also declares its CRC-32C to the server, which then checks it, and the loop
// computes it on the fly and compares, as the executors do; nil: no checksum at all.
func plainStreamLoop(ctx context.Context, src, dst objstore.Store, keys []string, dstPrefix string, n int, crcs map[string]uint32) (time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := next.Add(1) - 1; k < int64(len(keys)); k = next.Add(1) - 1 {
				key := keys[k]
				crc, declare := crcs[key]
				if crcs != nil && !declare {
					cancel(fmt.Errorf("%s: no CRC-32C to declare", key))
					return
				}
				if err := streamOne(ctx, src, dst, key, dstPrefix+key, crc, declare); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return took, nil
}

func streamOne(ctx context.Context, src, dst objstore.Store, from, to string, crc uint32, declare bool) error {
	rc, info, err := src.Get(ctx, from)
	if err != nil {
		return fmt.Errorf("get %s: %w", from, err)
	}
	defer rc.Close()
	if info.Size <= 0 {
		return fmt.Errorf("get %s: no size in the response", from)
	}
	// A plain reader, as the executors stream: an unsigned payload.
	var body io.Reader = struct{ io.Reader }{rc}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if declare {
		body = io.TeeReader(rc, h)
	}
	if _, err := dst.Put(ctx, to, body, info.Size, objstore.PutOptions{CRC32C: crc, HasCRC32C: declare}); err != nil {
		return fmt.Errorf("put %s: %w", to, err)
	}
	if declare && h.Sum32() != crc {
		return fmt.Errorf("%s: streamed CRC-32C %08x, want %08x", from, h.Sum32(), crc)
	}
	return nil
}

// flushedFiles lists the files of a collection's flushed segments: their keys, and
// key → CRC-32C.
func flushedFiles(ctx context.Context, cl *client.Client, collection string) ([]string, map[string]uint32, error) {
	var keys []string
	crcs := map[string]uint32{}
	for s, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption(collection).WithStates(pb.SegmentState_SEGMENT_STATE_FLUSHED)) {
		if err != nil {
			return nil, nil, fmt.Errorf("list segments: %w", err)
		}
		for _, f := range s.Files {
			keys = append(keys, f.Key)
			crcs[f.Key] = f.Crc32C
		}
	}
	return keys, crcs, nil
}

// listKeys lists every key under prefix.
func listKeys(ctx context.Context, store objstore.Store, prefix string) ([]string, error) {
	var keys []string
	token := ""
	for {
		page, err := store.List(ctx, prefix, token, 1000)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.NextToken == "" {
			return keys, nil
		}
		token = page.NextToken
	}
}

// churn drops n of the collection's flushed segments (the oldest) and adds n new ones
// of as many files, and returns the new files' bytes.
func churn(ctx context.Context, cl *client.Client, store objstore.Store, n int, seed int64) (int64, error) {
	var ids []uint64
	for s, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption(repoCollection).WithStates(pb.SegmentState_SEGMENT_STATE_FLUSHED).WithoutFiles()) {
		if err != nil {
			return 0, fmt.Errorf("list segments: %w", err)
		}
		ids = append(ids, s.Id)
	}
	slices.Sort(ids)
	if len(ids) < n {
		return 0, fmt.Errorf("%d flushed segments, cannot drop %d", len(ids), n)
	}
	if _, err := cl.DropSegments(ctx, client.NewDropSegmentsOption(ids[:n]...)); err != nil {
		return 0, fmt.Errorf("drop segments: %w", err)
	}
	res, err := datagen.Generate(ctx, cl, store, datagen.Options{Collection: repoCollection, Segments: n,
		FilesPerSegment: restoreFilesPerSegment, FileSize: restoreFileSize, Concurrency: 32, Seed: seed})
	if err != nil {
		return 0, fmt.Errorf("add segments: %w", err)
	}
	return res.Bytes, nil
}

// repositoryClass sorts a repository's keys (under prefix) for the counting proxy:
// "data" (the files), "manifest", "index", "marker", "probe", "listing" (requests on
// the bucket: listings), "other".
func repositoryClass(prefix, key string) string {
	if key == "" {
		return "listing"
	}
	rel, ok := strings.CutPrefix(key, strings.TrimSuffix(prefix, "/")+"/")
	if !ok {
		return "other"
	}
	switch {
	case strings.HasPrefix(rel, "data/"):
		return "data"
	case strings.HasPrefix(rel, "snapshots/"):
		return "manifest"
	case strings.HasPrefix(rel, "index/"):
		return "index"
	case rel == "snapkeep-repository":
		return "marker"
	case strings.HasPrefix(rel, "probes/"):
		return "probe"
	}
	return "other"
}

// objectSizer answers the counting proxy's question "how large is a copy's source",
// by a HEAD on the repositories' server (a copy through the proxy can only read a
// bucket of that server).
type objectSizer struct {
	cfg    objstore.S3Config
	mu     sync.Mutex
	stores map[string]*objstore.S3
}

func (s *objectSizer) size(ctx context.Context, bucket, key string) (int64, error) {
	s.mu.Lock()
	st := s.stores[bucket]
	if st == nil {
		cfg := s.cfg
		cfg.Bucket = bucket
		var err error
		if st, err = objstore.NewS3(ctx, cfg); err != nil {
			s.mu.Unlock()
			return 0, err
		}
		s.stores[bucket] = st
	}
	s.mu.Unlock()
	info, err := st.Head(ctx, key)
	return info.Size, err
}

func (s *objectSizer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.stores {
		_ = st.Close()
	}
}

// describeTraffic is a log line of a proxy's counts, class by class.
func describeTraffic(t env.TrafficByClass) string {
	var classes []string
	for c := range t {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	var parts []string
	for _, c := range classes {
		v := t[c]
		parts = append(parts, fmt.Sprintf("%s: %d requests, %d puts %s, %d copies %s, %s read, %d failed",
			c, v.Requests, v.Puts, kib(v.PutBytes), v.Copies, kib(v.CopyBytes), kib(v.ResponseBytes), v.Failed))
	}
	return strings.Join(parts, "; ")
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
func kib(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/1024) }

// profileRepository runs one more, unmeasured export (to a fresh repository) and one
// more repository restore while taking CPU profiles of the leader and a follower, and
// profiles the benchmark process during one more run of each plain loop.
func profileRepository(ctx context.Context, e *Env, c *env.Snapkeep, leader *env.SnapkeepNode, cl *client.Client, clusterS3, repoS3 *env.S3,
	srcKeys []string, srcCRCs map[string]uint32, lastRepo string, exports []jobRound, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var follower *env.SnapkeepNode
	for _, n := range c.Nodes {
		if n != leader {
			follower = n
			break
		}
	}
	var secs []float64
	for _, jr := range exports {
		secs = append(secs, jr.took.Seconds())
	}
	seconds := max(1, int(stats.Summarize(secs).Median+0.5))
	if err := registerRepository(ctx, cl, "expprof", repoS3.Config().Endpoint, "expprof"); err != nil {
		return err
	}
	profiled := func(name string, start func() (uint64, error), kind string) (jobRound, error) {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, n := range []*env.SnapkeepNode{leader, follower} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				role := map[int]string{0: "leader", 1: "follower"}[i]
				errs[i] = fetchProfile(ctx, n.HTTPAddr, seconds, filepath.Join(dir, "s9-"+name+"-"+role+".pprof"))
			}()
		}
		meter := &cpuMeter{pids: map[string][]int{"versitygw": {clusterS3.Pid()}, "versitygw-repo": {repoS3.Pid()}, "leader": {leader.Pid()}, "follower": {follower.Pid()}}, self: "bench"}
		// The benchmark process too: what following the job costs it.
		f, err := os.Create(filepath.Join(dir, "s9-"+name+"-bench.pprof"))
		if err != nil {
			return jobRound{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return jobRound{}, err
		}
		time.Sleep(100 * time.Millisecond) // the profiles start
		jr, err := followJob(ctx, cl, c.Nodes, meter, kind, start)
		pprof.StopCPUProfile()
		wg.Wait()
		if err := errors.Join(append(errs, err)...); err != nil {
			return jr, fmt.Errorf("profiled %s: %w", name, err)
		}
		var parts []string
		for _, g := range []string{"leader", "follower", "versitygw", "versitygw-repo", "bench"} {
			parts = append(parts, fmt.Sprintf("%s %v", g, jr.cpu[g].Round(time.Millisecond)))
		}
		e.Logf("s9: profiled %s took %v, per node %v, CPU %s; profiles (%d s) in %s", name, jr.took.Round(time.Millisecond), jr.nodeCopied, strings.Join(parts, ", "), seconds, dir)
		return jr, nil
	}
	ex, err := profiled("export", func() (uint64, error) {
		resp, err := cl.ExportSnapshot(ctx, client.NewExportSnapshotOption(repoCollection, "snap", "expprof"))
		return resp.GetJobId(), err
	}, kindExport)
	if err != nil {
		return err
	}
	if _, err := profiled("repo-restore", func() (uint64, error) {
		resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreFromRepositoryOption("expprof", ex.job.RepositorySnapshot, "restoredprof"))
		return resp.GetJobId(), err
	}, kindRepositoryRestore); err != nil {
		return err
	}

	repoKeys, err := listKeys(ctx, repoS3.Store, lastRepo+"/data/")
	if err != nil {
		return err
	}
	// The loops, each profiled; one more export loop declares the CRC-32C as the
	// executors do, to tell the server's checksum work from the rest.
	meter := &cpuMeter{pids: map[string][]int{"versitygw": {clusterS3.Pid()}, "versitygw-repo": {repoS3.Pid()}}, self: "bench"}
	for _, loop := range []struct {
		name     string
		src, dst objstore.Store
		keys     []string
		prefix   string
		crcs     map[string]uint32
	}{
		{"plain-export", clusterS3.Store, repoS3.Store, srcKeys, "plain-export/profiled/", nil},
		{"plain-export-crc", clusterS3.Store, repoS3.Store, srcKeys, "plain-export/profiled-crc/", srcCRCs},
		{"plain-restore", repoS3.Store, clusterS3.Store, repoKeys, "s9-plain-restore/profiled/", nil},
	} {
		f, err := os.Create(filepath.Join(dir, "s9-"+loop.name+"-bench.pprof"))
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return err
		}
		cpu0 := meter.sample()
		took, err := plainStreamLoop(ctx, loop.src, loop.dst, loop.keys, loop.prefix, restoreCopyingNodes*restoreNodeConcurrency, loop.crcs)
		cpu := meter.since(cpu0)
		pprof.StopCPUProfile()
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("profiled %s loop: %w", loop.name, err)
		}
		e.Logf("s9: profiled %s loop took %v (%.0f files/s); CPU per file: bench %.0f µs, versitygw %.0f µs, versitygw-repo %.0f µs", loop.name, took.Round(time.Millisecond),
			float64(len(loop.keys))/took.Seconds(), microsPer(cpu["bench"], len(loop.keys)), microsPer(cpu["versitygw"], len(loop.keys)), microsPer(cpu["versitygw-repo"], len(loop.keys)))
	}
	return nil
}

// gatewayPlacement says where the two gateways keep their objects, for the setup.
func gatewayPlacement(clusterInMemory, repoInMemory bool) string {
	where := func(inMemory bool) string {
		if inMemory {
			return "in memory (a tmpfs)"
		}
		return "on the work directory's disk (no tmpfs with room: the figures are exposed to that filesystem's recent history)"
	}
	if clusterInMemory == repoInMemory {
		return "Both gateways are this scenario's own and keep their objects " + where(clusterInMemory) +
			": on a disk filesystem a gateway's CPU per PUT depends on what that filesystem did in the minutes before (recent deletions, writeback), " +
			"which lands on whichever side runs then (bench/notes/09-repository.md); the nodes' Raft data stays on disk, fsynced."
	}
	return "The cluster's gateway keeps its objects " + where(clusterInMemory) + ", the repository's " + where(repoInMemory) + "."
}
