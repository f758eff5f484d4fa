package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

func (a *app) gcCmd() *cobra.Command {
	cmd := groupCmd("gc", "Run and inspect garbage collection")
	var dryRun, noOrphans, listAll bool
	var grace, orphanGrace time.Duration
	var dropSnapshots []string
	run := &cobra.Command{
		Use:   "run",
		Short: "Collect garbage now on the leader and print the report (--dry-run: delete nothing)",
		Long: `Reclaim now what nothing needs any more: dropped segments and index builds past
the grace period, the manifests of dropped snapshots, the targets of failed restores,
expired allocations, records of dropped collections, and (unless --no-orphan-scan)
objects under the storage root no record owns. Files a live segment, a pending or
committed snapshot or a running restore can read are never deleted. With --dry-run
nothing is deleted and every candidate is listed with its reason.

With --dry-run --drop-snapshot COLLECTION/NAME (repeatable; DATABASE/COLLECTION/NAME
for another database than default) it runs no collection but previews what dropping
those snapshots together would free once the grace period has passed: the objects only
they keep (their manifests included), the exclusive figure of snapshot describe.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt := client.NewGCRunOption()
			if len(dropSnapshots) > 0 {
				if !dryRun {
					return usageErrorf("--drop-snapshot previews a drop and needs --dry-run; drop a snapshot with snapkeep snapshot drop")
				}
				if cmd.Flags().Changed("grace") || cmd.Flags().Changed("orphan-grace") {
					return usageErrorf("--grace and --orphan-grace do not apply to --drop-snapshot: it lists what goes once the grace has passed")
				}
				for _, ref := range dropSnapshots {
					database, collection, name, err := parseSnapshotRef(ref)
					if err != nil {
						return err
					}
					opt.WithDropSnapshot(database, collection, name, 0)
				}
			}
			if dryRun {
				opt.WithDryRun()
			}
			if noOrphans {
				opt.WithoutOrphanScan()
			}
			if cmd.Flags().Changed("grace") {
				opt.WithGrace(grace)
			}
			if cmd.Flags().Changed("orphan-grace") {
				opt.WithOrphanGrace(orphanGrace)
			}
			return a.withClient(cmd, false, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.GCRun(ctx, opt)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				out := cmd.OutOrStdout()
				if len(dropSnapshots) > 0 {
					r := resp.GetReport()
					fmt.Fprintf(out, "Dropping %s would free %d objects (%s) once the grace period has passed, %d records removed; nothing was dropped or deleted\n",
						strings.Join(dropSnapshots, ", "), r.GetObjectsDeleted(), humanBytes(r.GetBytesFreed()), r.GetRecordsRemoved())
				} else if err := printGCReport(out, resp.GetReport()); err != nil {
					return err
				}
				if dryRun || listAll {
					fmt.Fprintln(out)
					t := newTable(out, "KEY", "SIZE", "REASON", "OWNER")
					for _, c := range resp.GetCandidates() {
						t.row(c.GetKey(), humanBytes(c.GetSize()), c.GetReason(), c.GetOwner())
					}
					if err := t.flush(); err != nil {
						return err
					}
					if resp.GetCandidatesCut() {
						fmt.Fprintln(out, "(the list is cut; the report counts every candidate)")
					}
				}
				return nil
			})
		},
	}
	run.Flags().BoolVar(&dryRun, "dry-run", false, "delete nothing; list every candidate with its reason")
	run.Flags().BoolVar(&noOrphans, "no-orphan-scan", false, "skip listing the whole storage root for orphans")
	run.Flags().BoolVar(&listAll, "list", false, "list what was deleted")
	run.Flags().DurationVar(&grace, "grace", 0, "keep dropped segments and builds this long (default: the server's)")
	run.Flags().StringArrayVar(&dropSnapshots, "drop-snapshot", nil, "with --dry-run: preview what dropping snapshot `COLLECTION/NAME` would free (repeatable)")
	run.Flags().DurationVar(&orphanGrace, "orphan-grace", 0, "delete orphans at least this old (default: the server's)")

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the last collection reports and when the next run is due",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				st, err := cl.GCStatus(ctx)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				out := cmd.OutOrStdout()
				next := "periodic collection is off"
				if st.GetEnabled() {
					next = "next run " + timestamp(st.GetNextRunUnixMs())
					if st.GetNextRunOrphanScan() {
						next += " (with the orphan scan)"
					}
				}
				fmt.Fprintf(out, "GC: %s\n\n", next)
				t := newTable(out, "RUN", "STARTED", "TOOK", "DRY", "ORPHAN SCAN", "DELETED", "FREED", "RECORDS", "ERRORS")
				for _, r := range st.GetReports() {
					t.row(r.GetId(), timestamp(r.GetStartedAtUnixMs()),
						(time.Duration(r.GetFinishedAtUnixMs()-r.GetStartedAtUnixMs()) * time.Millisecond).String(),
						yesNo(r.GetDryRun()), orphanScanText(r), r.GetObjectsDeleted(), humanBytes(r.GetBytesFreed()), r.GetRecordsRemoved(), r.GetErrorCount())
				}
				return t.flush()
			})
		},
	}
	cmd.AddCommand(run, status)
	return cmd
}

// parseSnapshotRef splits COLLECTION/NAME or DATABASE/COLLECTION/NAME.
func parseSnapshotRef(ref string) (database, collection, name string, err error) {
	parts := strings.Split(ref, "/")
	for _, p := range parts {
		if p == "" {
			parts = nil
		}
	}
	switch len(parts) {
	case 2:
		return "", parts[0], parts[1], nil
	case 3:
		return parts[0], parts[1], parts[2], nil
	}
	return "", "", "", usageErrorf("--drop-snapshot %q: want COLLECTION/NAME or DATABASE/COLLECTION/NAME", ref)
}

func orphanScanText(r *snapkeepv1.GCReport) string {
	if !r.GetOrphanScan() {
		return "-"
	}
	return fmt.Sprintf("%d listed", r.GetObjectsScanned())
}

// printGCReport writes a report: totals, then what was deleted and kept by reason.
func printGCReport(w io.Writer, r *snapkeepv1.GCReport) error {
	verb := "deleted"
	if r.GetDryRun() {
		verb = "would delete"
	}
	fmt.Fprintf(w, "GC run %d on %s: %s %d objects (%s), %d records removed, %d errors, in %s",
		r.GetId(), r.GetNode(), verb, r.GetObjectsDeleted(), humanBytes(r.GetBytesFreed()), r.GetRecordsRemoved(), r.GetErrorCount(),
		time.Duration(r.GetFinishedAtUnixMs()-r.GetStartedAtUnixMs())*time.Millisecond)
	if r.GetOrphanScan() {
		fmt.Fprintf(w, "; orphan scan listed %d objects", r.GetObjectsScanned())
	}
	fmt.Fprintln(w)
	t := newTable(w, "", "REASON", "OBJECTS", "BYTES", "RECORDS")
	for _, c := range r.GetDeleted() {
		t.row(verb, c.GetReason(), c.GetObjects(), humanBytes(c.GetBytes()), c.GetRecords())
	}
	for _, c := range r.GetKept() {
		t.row("kept", c.GetReason(), c.GetObjects(), humanBytes(c.GetBytes()), c.GetRecords())
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, e := range r.GetErrors() {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	return nil
}
