package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// restoreStates maps the --state values to states.
var restoreStates = map[string]snapkeepv1.RestoreState{
	"pending":    snapkeepv1.RestoreState_RESTORE_STATE_PENDING,
	"planning":   snapkeepv1.RestoreState_RESTORE_STATE_PLANNING,
	"copying":    snapkeepv1.RestoreState_RESTORE_STATE_COPYING,
	"finalizing": snapkeepv1.RestoreState_RESTORE_STATE_FINALIZING,
	"completed":  snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED,
	"failed":     snapkeepv1.RestoreState_RESTORE_STATE_FAILED,
	"cancelled":  snapkeepv1.RestoreState_RESTORE_STATE_CANCELLED,
}

// jobKinds maps the --kind values to job kinds.
var jobKinds = map[string]snapkeepv1.JobKind{
	"restore":            snapkeepv1.JobKind_JOB_KIND_RESTORE,
	"export":             snapkeepv1.JobKind_JOB_KIND_EXPORT,
	"repository-restore": snapkeepv1.JobKind_JOB_KIND_REPOSITORY_RESTORE,
}

// jobKindName spells a job kind as --kind takes it: restore, export or
// repository-restore.
func jobKindName(k snapkeepv1.JobKind) string {
	return strings.ReplaceAll(enumName(k), "_", "-")
}

// jobNoun is what a job is called in messages: "export" or "restore" (from this
// cluster's bucket or from a repository).
func jobNoun(j *snapkeepv1.RestoreJob) string {
	if j.GetKind() == snapkeepv1.JobKind_JOB_KIND_EXPORT {
		return "export"
	}
	return "restore"
}

// restorePoll is how often --wait asks for progress.
var restorePoll = 500 * time.Millisecond

func (a *app) restoreCmd() *cobra.Command {
	cmd := groupCmd("restore", "Restore snapshots into new collections, and follow or cancel the jobs (exports too)")

	var database, targetDatabase, target, partitions, from string
	var wait, noVerify bool
	var verify string
	var concurrency int
	start := &cobra.Command{
		Use:   "start {COLLECTION SNAPSHOT | --from REPO [COLLECTION] SNAPSHOT} --target NAME",
		Short: "Restore a snapshot into a new collection (prints the job id; --wait follows it)",
		Long: `Start a job that copies the snapshot's files server-side into a new collection
NAME, with the snapshot's schema, properties, partitions and index definitions under
new ids. The job survives node and leader failures and completes only when every
file is copied and checked against its size and CRC-32C; a failed or cancelled job
drops the new collection. --verify says how a copy is checked: checksum (the
default: the CRC-32C the server returns for the copy, else HEAD's, else the copy
read back — a server may return the source's checksum copied as metadata), readback
(every copy read back in full and its CRC-32C computed: only this checks the bytes
themselves), or none (the same as --no-verify). restore status counts the files by
what verified them. With --wait the command follows
the job (a progress bar on a terminal, progress lines otherwise) and exits non-zero
unless it completes.

With --from REPO the snapshot comes from a registered repository (see snapkeep
repository) instead of this cluster's bucket: SNAPSHOT is its id in the repository
(snapkeep repository snapshots REPO lists them) or its name, which COLLECTION and
--database narrow when several collections have a snapshot of that name. The
snapshot need not be known to this cluster: this is how a new cluster recovers from a
repository. Files are copied server-side where the two stores allow it, else streamed
through the nodes (each checked by the CRC-32C computed as it streams).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return exactArgs("COLLECTION", "SNAPSHOT")(cmd, args)
			}
			if len(args) == 1 || len(args) == 2 {
				return nil
			}
			return exactArgs("[COLLECTION]", "SNAPSHOT")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if target == "" {
				return usageErrorf("--target is required: the name of the new collection")
			}
			if concurrency < 0 {
				return usageErrorf("--concurrency %d cannot be negative", concurrency)
			}
			var opt *client.RestoreSnapshotOption
			var what string // the snapshot, in the job's message
			if from != "" {
				opt = client.NewRestoreFromRepositoryOption(from, args[len(args)-1], target)
				what = fmt.Sprintf("snapshot %q of repository %q", args[len(args)-1], from)
				if len(args) == 2 {
					opt.WithCollection(args[0])
					what = fmt.Sprintf("snapshot %q of %q from repository %q", args[1], args[0], from)
				}
			} else {
				opt = client.NewRestoreSnapshotOption(args[0], args[1], target)
				what = fmt.Sprintf("snapshot %q of %q", args[1], args[0])
			}
			opt.WithDatabase(database).WithTargetDatabase(targetDatabase).WithMaxConcurrency(concurrency)
			for _, p := range strings.Split(partitions, ",") {
				if p = strings.TrimSpace(p); p != "" {
					opt.WithPartitions(p)
				}
			}
			switch {
			case noVerify || verify == "none":
				if verify == "readback" {
					return usageErrorf("--no-verify and --verify=readback contradict each other")
				}
				opt.WithoutVerify()
			case verify == "readback":
				opt.WithReadBack()
			case verify != "checksum":
				return usageErrorf("--verify %q: want checksum, readback or none", verify)
			}
			return a.withClient(cmd, !wait, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.RestoreSnapshot(ctx, opt)
				if err != nil {
					return err
				}
				if !wait {
					if a.json() {
						return writeJSON(cmd.OutOrStdout(), resp)
					}
					verb := "Started"
					if resp.GetExisting() {
						verb = "Already running:"
					}
					_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s restore job %d: %s into %q. Follow it with: snapkeep restore status %d\n",
						verb, resp.GetJobId(), what, target, resp.GetJobId())
					return err
				}
				return a.waitJob(ctx, cmd, cl, resp.GetJobId())
			})
		},
	}
	start.Flags().StringVar(&target, "target", "", "name of the new collection (required)")
	start.Flags().StringVar(&targetDatabase, "target-database", "", "the new collection's database (default \"default\")")
	start.Flags().StringVar(&partitions, "partitions", "", "restore only these partitions (comma-separated)")
	start.Flags().BoolVar(&wait, "wait", false, "follow the job until it ends; exit non-zero unless it completes")
	start.Flags().BoolVar(&noVerify, "no-verify", false, "do not check each copy's size and CRC-32C (--verify=none)")
	start.Flags().StringVar(&verify, "verify", "checksum", "how each copy is checked: checksum (the server's copy or HEAD checksum, else read back), readback (every copy read back in full), none")
	start.Flags().IntVar(&concurrency, "concurrency", 0, "copies one node runs at once for this job (0: the node's default)")
	start.Flags().StringVar(&database, "database", "", "the snapshot's database (default \"default\")")
	start.Flags().StringVar(&from, "from", "", "restore from the registered repository `REPO` (SNAPSHOT: its id there, or its name)")

	status := &cobra.Command{
		Use:   "status JOB",
		Short: "Show a job's state, progress, rate and ETA (restores and exports)",
		Args:  exactArgs("JOB"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				job, err := cl.GetRestoreState(ctx, id)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.GetRestoreStateResponse{Job: job})
				}
				return printRestoreJob(cmd.OutOrStdout(), job)
			})
		},
	}

	var states, kinds []string
	var snapshot, listTarget string
	list := &cobra.Command{
		Use:   "list",
		Short: "List jobs in creation order (every page): restores, exports, restores from repositories",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt := client.NewListRestoreJobsOption().WithSnapshot(snapshot).WithTarget(targetDatabase, listTarget)
			for _, s := range states {
				st, ok := restoreStates[strings.ToLower(strings.TrimSpace(s))]
				if !ok {
					return usageErrorf("--state %q: want pending, planning, copying, finalizing, completed, failed or cancelled", s)
				}
				opt.WithStates(st)
			}
			for _, k := range kinds {
				kind, ok := jobKinds[strings.ToLower(strings.TrimSpace(k))]
				if !ok {
					return usageErrorf("--kind %q: want restore, export or repository-restore", k)
				}
				opt.WithKinds(kind)
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				var jobs []*snapkeepv1.RestoreJob
				for j, err := range cl.ListAllRestoreJobs(ctx, opt) {
					if err != nil {
						return err
					}
					jobs = append(jobs, j)
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.ListRestoreJobsResponse{Jobs: jobs})
				}
				return printRestoreJobs(cmd.OutOrStdout(), jobs)
			})
		},
	}
	list.Flags().StringArrayVar(&states, "state", nil, "only jobs in this state (repeatable)")
	list.Flags().StringArrayVar(&kinds, "kind", nil, "only jobs of this kind: restore, export or repository-restore (repeatable)")
	list.Flags().StringVar(&listTarget, "target", "", "only jobs restoring into this collection")
	list.Flags().StringVar(&targetDatabase, "target-database", "", "the target's database (default \"default\")")
	list.Flags().StringVar(&snapshot, "snapshot", "", "only jobs restoring a snapshot of this name")

	var reason string
	cancel := &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel a running job (restore or export) and roll it back",
		Args:  exactArgs("JOB"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				job, err := cl.CancelRestore(ctx, client.NewCancelRestoreOption(id).WithReason(reason))
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.CancelRestoreResponse{Job: job})
				}
				if job.GetKind() == snapkeepv1.JobKind_JOB_KIND_EXPORT {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "Cancelled export job %d to repository %q.\n", id, job.GetRepository())
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Cancelled restore job %d; collection %q is dropped.\n", id, job.GetTargetCollection())
				return err
			})
		},
	}
	cancel.Flags().StringVar(&reason, "reason", "", "why (kept as the job's error)")

	cmd.AddCommand(start, status, list, cancel)
	return cmd
}

func parseJobID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, usageErrorf("JOB %q is not a job id (a positive number)", s)
	}
	return id, nil
}

// waitJob follows a job (a restore, an export or a restore from a repository) until
// it ends, with a progress bar on a terminal and a line every few seconds otherwise;
// it fails unless the job completes.
func (a *app) waitJob(ctx context.Context, cmd *cobra.Command, cl *client.Client, id uint64) error {
	out := cmd.OutOrStdout()
	var bar *progressbar.ProgressBar
	lastLine := time.Time{}
	for {
		job, err := cl.GetRestoreState(ctx, id)
		if err != nil {
			return err
		}
		finished := client.JobEnded(job.GetState())
		switch {
		case a.json():
		case a.isTerminal(out):
			total := int64(max(job.GetBytesTotal(), 1))
			switch {
			case bar == nil:
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(out),
					progressbar.OptionShowBytes(true),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionFullWidth())
			case bar.GetMax64() != total:
				// A restore from a repository learns its size once PLANNING is done.
				bar.ChangeMax64(total)
			}
			bar.Describe(fmt.Sprintf("%s job %d %s: %d/%d files%s", jobNoun(job), id, enumName(job.GetState()),
				job.GetFilesDone(), job.GetFilesTotal(), skippedText(job)))
			_ = bar.Set64(int64(job.GetBytesDone()))
		case finished || time.Since(lastLine) >= 3*time.Second:
			lastLine = time.Now()
			fmt.Fprintln(out, progressLine(job))
		}
		if finished {
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(out)
			}
			if a.json() {
				if err := writeJSON(out, &snapkeepv1.GetRestoreStateResponse{Job: job}); err != nil {
					return err
				}
			} else if err := printRestoreJob(out, job); err != nil {
				return err
			}
			if job.GetState() != snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED {
				return fmt.Errorf("%s job %d %s: %s", jobNoun(job), id, enumName(job.GetState()), job.GetError())
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(restorePoll):
		}
	}
}

// progressLine is one line of progress: state, files, bytes, rate and ETA.
func progressLine(j *snapkeepv1.RestoreJob) string {
	eta := "-"
	if j.GetEtaMs() >= 0 {
		eta = (time.Duration(j.GetEtaMs()) * time.Millisecond).Round(time.Second).String()
	}
	line := fmt.Sprintf("%s job %d %s: %.1f%%, %d/%d files, %s/%s, %s/s, ETA %s",
		jobNoun(j), j.GetId(), enumName(j.GetState()), j.GetProgressPercent(), j.GetFilesDone(), j.GetFilesTotal(),
		humanBytes(j.GetBytesDone()), humanBytes(j.GetBytesTotal()), humanBytes(uint64(j.GetBytesPerSecond())), eta)
	if j.GetTasksStalled() > 0 {
		line += fmt.Sprintf(", %d tasks stalled", j.GetTasksStalled())
	}
	return line + skippedText(j)
}

// skippedText is ", skipped N files (B) already in the repository" for an export that
// skipped some, else "".
func skippedText(j *snapkeepv1.RestoreJob) string {
	if j.GetKind() != snapkeepv1.JobKind_JOB_KIND_EXPORT || j.GetFilesSkipped() == 0 {
		return ""
	}
	return fmt.Sprintf(", skipped %d files (%s) already in the repository", j.GetFilesSkipped(), humanBytes(j.GetBytesSkipped()))
}

// jobSource is what a job copies, as the list shows it: COLLECTION/SNAPSHOT, with
// REPO: in front for a restore from a repository (its id there until the job knows
// the name).
func jobSource(j *snapkeepv1.RestoreJob) string {
	if j.GetKind() != snapkeepv1.JobKind_JOB_KIND_REPOSITORY_RESTORE {
		return j.GetCollection() + "/" + j.GetSnapshot()
	}
	if j.GetCollection() == "" || j.GetSnapshot() == "" {
		return j.GetRepository() + ":" + j.GetRepositorySnapshot()
	}
	return j.GetRepository() + ":" + j.GetCollection() + "/" + j.GetSnapshot()
}

// jobTarget is where a job copies to: the new collection, or for an export
// REPO:COLLECTION/SNAPSHOT.
func jobTarget(j *snapkeepv1.RestoreJob) string {
	if j.GetKind() == snapkeepv1.JobKind_JOB_KIND_EXPORT {
		return j.GetRepository() + ":" + j.GetCollection() + "/" + j.GetSnapshot()
	}
	return j.GetTargetCollection()
}

// printRestoreJobs writes a table of jobs of every kind.
func printRestoreJobs(w io.Writer, jobs []*snapkeepv1.RestoreJob) error {
	t := newTable(w, "JOB", "KIND", "STATE", "SNAPSHOT", "TARGET", "PROGRESS", "FILES", "SKIPPED", "BYTES", "CREATED")
	for _, j := range jobs {
		skipped := "-"
		if j.GetKind() == snapkeepv1.JobKind_JOB_KIND_EXPORT {
			skipped = strconv.FormatUint(j.GetFilesSkipped(), 10)
		}
		t.row(j.GetId(), jobKindName(j.GetKind()), enumName(j.GetState()), jobSource(j), jobTarget(j),
			fmt.Sprintf("%.0f%%", j.GetProgressPercent()), fmt.Sprintf("%d/%d", j.GetFilesDone(), j.GetFilesTotal()),
			skipped, humanBytes(j.GetBytesTotal()), timestamp(j.GetCreatedAtUnixMs()))
	}
	return t.flush()
}

// printRestoreJob writes one job in detail.
func printRestoreJob(w io.Writer, j *snapkeepv1.RestoreJob) error {
	t := newTable(w)
	t.row("Job:", j.GetId())
	t.row("Kind:", jobKindName(j.GetKind()))
	t.row("State:", enumName(j.GetState()))
	switch j.GetKind() {
	case snapkeepv1.JobKind_JOB_KIND_REPOSITORY_RESTORE:
		snap := fmt.Sprintf("%s in repository %s", orDash(j.GetRepositorySnapshot()), j.GetRepository())
		if j.GetSnapshot() != "" {
			snap = fmt.Sprintf("%s of %s.%s, id %s", j.GetSnapshot(), orDash(j.GetDatabase()), j.GetCollection(), snap)
		}
		t.row("Snapshot:", snap)
	default:
		t.row("Snapshot:", fmt.Sprintf("%s (id %d) of %s.%s", j.GetSnapshot(), j.GetSnapshotId(), orDash(j.GetDatabase()), j.GetCollection()))
	}
	if j.GetKind() == snapkeepv1.JobKind_JOB_KIND_EXPORT {
		target := "repository " + j.GetRepository()
		if j.GetRepositorySnapshot() != "" {
			target += ", snapshot id " + j.GetRepositorySnapshot()
		}
		if j.GetRepositoryGeneration() != 0 {
			target += fmt.Sprintf(", index generation %d", j.GetRepositoryGeneration())
		}
		t.row("Target:", target)
	} else {
		t.row("Target:", fmt.Sprintf("%s.%s (id %d)", j.GetTargetDatabase(), j.GetTargetCollection(), j.GetTargetCollectionId()))
	}
	if len(j.GetPartitions()) > 0 {
		t.row("Partitions:", strings.Join(j.GetPartitions(), ", "))
	}
	t.row("Progress:", fmt.Sprintf("%.1f%%: %d/%d files, %s of %s", j.GetProgressPercent(), j.GetFilesDone(), j.GetFilesTotal(),
		humanBytes(j.GetBytesDone()), humanBytes(j.GetBytesTotal())))
	if j.GetKind() == snapkeepv1.JobKind_JOB_KIND_EXPORT {
		t.row("Skipped:", fmt.Sprintf("%d files (%s) already in the repository, not copied again (counted as done)",
			j.GetFilesSkipped(), humanBytes(j.GetBytesSkipped())))
	}
	rate := humanBytes(uint64(j.GetBytesPerSecond())) + "/s"
	if j.GetEtaMs() > 0 {
		rate += ", ETA " + (time.Duration(j.GetEtaMs()) * time.Millisecond).Round(time.Second).String()
	} else if j.GetTasksStalled() > 0 {
		rate += ", ETA unknown (tasks stalled)"
	}
	t.row("Rate:", rate)
	if j.GetTasksLeased() > 0 || j.GetLeasesOutstanding() > 0 {
		t.row("Leased:", fmt.Sprintf("%d tasks in %d leases, %d stalled (holder not alive, or no report for 30s)",
			j.GetTasksLeased(), j.GetLeasesOutstanding(), j.GetTasksStalled()))
	}
	switch {
	case !j.GetVerify():
		t.row("Verify:", "no")
	case j.GetReadBack():
		t.row("Verify:", "read back (every copy's content read and its CRC-32C computed)")
	default:
		t.row("Verify:", "checksum (copy response or HEAD, else read back)")
	}
	if v := j.GetVerifiedByCopyResponse() + j.GetVerifiedByHead() + j.GetVerifiedByReadBack() + j.GetNotVerified() + j.GetVerifiedByStream(); v > 0 {
		verified := fmt.Sprintf("%d by the copy response's CRC-32C, %d by HEAD (server-reported: may be the source's checksum copied as metadata), %d read back, %d not verified",
			j.GetVerifiedByCopyResponse(), j.GetVerifiedByHead(), j.GetVerifiedByReadBack(), j.GetNotVerified())
		if j.GetVerifiedByStream() > 0 {
			verified = fmt.Sprintf("%d while streamed (the source's CRC-32C computed on the fly, declared to the destination), ", j.GetVerifiedByStream()) + verified
		}
		t.row("Verified:", verified)
	}
	t.row("Attempts:", fmt.Sprintf("%d copies, %d failed, %d leases", j.GetAttempts(), j.GetFailedAttempts(), j.GetLeases()))
	t.row("Created:", timestamp(j.GetCreatedAtUnixMs()))
	if j.GetStartedAtUnixMs() != 0 {
		t.row("Started:", timestamp(j.GetStartedAtUnixMs()))
	}
	if j.GetFinishedAtUnixMs() != 0 {
		t.row("Finished:", timestamp(j.GetFinishedAtUnixMs()))
	}
	if j.GetError() != "" {
		t.row("Error:", j.GetError())
	}
	for i, k := range j.GetFailingKeys() {
		label := ""
		if i == 0 {
			label = "Failing keys:"
		}
		t.row(label, k)
	}
	return t.flush()
}
