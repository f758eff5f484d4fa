package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// snapshotStates maps the --state values to states.
var snapshotStates = map[string]snapkeepv1.SnapshotState{
	"pending":   snapkeepv1.SnapshotState_SNAPSHOT_STATE_PENDING,
	"committed": snapkeepv1.SnapshotState_SNAPSHOT_STATE_COMMITTED,
	"deleting":  snapkeepv1.SnapshotState_SNAPSHOT_STATE_DELETING,
}

func (a *app) snapshotCmd() *cobra.Command {
	cmd := groupCmd("snapshot", "Create, list, describe, drop and export collection snapshots")
	var database string

	var description string
	var labels []string
	var async bool
	create := &cobra.Command{
		Use:   "create COLLECTION NAME",
		Short: "Snapshot a collection (waits until the snapshot is committed unless --async)",
		Long: `Capture a collection's flushed segments and index builds now, under NAME. The
snapshot keeps every file it captured alive, even after compaction, segment drops,
index drops or the collection's own drop. Names are 1–255 characters from
[A-Za-z0-9_.-], starting with a letter or '_' (dated names such as nightly-2026.12.02
work), unique among the collection's pending and committed snapshots.`,
		Args: exactArgs("COLLECTION", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			lbls, err := keyValues("label", labels)
			if err != nil {
				return err
			}
			opt := client.NewCreateSnapshotOption(args[0], args[1]).WithDatabase(database).WithDescription(description).WithLabels(lbls)
			if async {
				opt.WithAsync()
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				snap, err := cl.CreateSnapshot(ctx, opt)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.CreateSnapshotResponse{Snapshot: snap})
				}
				return printSnapshot(cmd.OutOrStdout(), snap)
			})
		},
	}
	create.Flags().StringVar(&description, "description", "", "free text describing the snapshot")
	create.Flags().StringArrayVar(&labels, "label", nil, "a label `key=value` (repeatable)")
	create.Flags().BoolVar(&async, "async", false, "return once captured (pending), without waiting for the commit")

	var collection string
	var states, labelFilter []string
	var withSchemas bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List snapshots in creation order (every page)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt := client.NewListSnapshotsOption().WithDatabase(database).WithCollection(collection)
			if withSchemas {
				opt.WithSchema()
			}
			for _, s := range states {
				st, ok := snapshotStates[strings.ToLower(strings.TrimSpace(s))]
				if !ok {
					return usageErrorf("--state %q: want pending, committed or deleting", s)
				}
				opt.WithStates(st)
			}
			lbls, err := keyValues("label", labelFilter)
			if err != nil {
				return err
			}
			for k, v := range lbls {
				opt.WithLabel(k, v)
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				var snaps []*snapkeepv1.Snapshot
				for s, err := range cl.ListAllSnapshots(ctx, opt) {
					if err != nil {
						return err
					}
					snaps = append(snaps, s)
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.ListSnapshotsResponse{Snapshots: snaps})
				}
				return printSnapshots(cmd.OutOrStdout(), snaps)
			})
		},
	}
	list.Flags().StringVar(&collection, "collection", "", "only snapshots of this collection")
	list.Flags().StringArrayVar(&states, "state", nil, "only snapshots in this state: pending, committed or deleting (repeatable)")
	list.Flags().StringArrayVar(&labelFilter, "label", nil, "only snapshots with label `key=value` (repeatable; all must match)")
	list.Flags().BoolVar(&withSchemas, "schema", false, "include what each snapshot captured: schema, properties, partitions, indexes (with --output json)")

	var id uint64
	describe := &cobra.Command{
		Use:   "describe COLLECTION NAME",
		Short: "Show a snapshot with everything it captured (or --id ID)",
		Args: func(cmd *cobra.Command, args []string) error {
			if id != 0 {
				return exactArgs()(cmd, args)
			}
			return exactArgs("COLLECTION", "NAME")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opt := client.NewDescribeSnapshotByIDOption(id)
			if id == 0 {
				opt = client.NewDescribeSnapshotOption(args[0], args[1]).WithDatabase(database)
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				snap, err := cl.DescribeSnapshot(ctx, opt)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.DescribeSnapshotResponse{Snapshot: snap})
				}
				return printSnapshot(cmd.OutOrStdout(), snap)
			})
		},
	}
	describe.Flags().Uint64Var(&id, "id", 0, "describe the snapshot with this id instead (any state)")

	var verifyID uint64
	var verifyDeep bool
	verify := &cobra.Command{
		Use:   "verify COLLECTION NAME",
		Short: "Verify a committed snapshot now, as the scrubber does, and record the result (or --id ID)",
		Long: `Check the snapshot's manifest (present, the recorded size and xxhash64, decodes,
lists exactly what was captured) and the sizes of its files by listing; with --deep
read every byte of its files and compare their CRC-32C. A damaged or missing manifest
is rewritten from the catalog when the fresh encoding is byte-identical to the one
committed. The result is recorded in the snapshot (describe's Verified line, list's
VERIFIED column, /health). The exit status is 1 unless the outcome is ok or repaired.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if verifyID != 0 {
				return exactArgs()(cmd, args)
			}
			return exactArgs("COLLECTION", "NAME")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opt := client.NewVerifySnapshotByIDOption(verifyID)
			if verifyID == 0 {
				opt = client.NewVerifySnapshotOption(args[0], args[1]).WithDatabase(database)
			}
			if verifyDeep {
				opt.WithDeep()
			}
			return a.withClient(cmd, flagChanged(cmd.Flags(), "timeout"), func(ctx context.Context, cl *client.Client) error {
				snap, err := cl.VerifySnapshot(ctx, opt)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				v := snap.GetVerification()
				if a.json() {
					err = writeJSON(out, &snapkeepv1.VerifySnapshotResponse{Snapshot: snap})
				} else {
					fmt.Fprintf(out, "snapshot %s/%s (id %d): %s\n", snap.GetCollection(), snap.GetName(), snap.GetId(), verificationText(v))
				}
				if err != nil {
					return err
				}
				switch v.GetOutcome() {
				case snapkeepv1.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_OK, snapkeepv1.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_REPAIRED:
					return nil
				}
				return fmt.Errorf("snapshot %d failed its verification: %d problems", snap.GetId(), v.GetProblemCount())
			})
		},
	}
	verify.Flags().Uint64Var(&verifyID, "id", 0, "verify the snapshot with this id instead")
	verify.Flags().BoolVar(&verifyDeep, "deep", false, "read every byte of its files and check their CRC-32C")

	drop := &cobra.Command{
		Use:   "drop COLLECTION NAME",
		Short: "Drop a snapshot (succeeds if it does not exist)",
		Args:  exactArgs("COLLECTION", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.DropSnapshot(ctx, client.NewDropSnapshotOption(args[0], args[1]).WithDatabase(database))
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				if !resp.GetExisted() {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "No snapshot %q on collection %q: nothing to drop.\n", args[1], args[0])
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Dropped snapshot %q (id %d) of collection %q; its manifest is being deleted.\n",
					args[1], resp.GetSnapshot().GetId(), args[0])
				return err
			})
		},
	}
	export := a.snapshotExportCmd(&database)
	holdAdd, holdRemove := a.snapshotHoldCmds(&database)
	for _, c := range []*cobra.Command{create, list, describe, drop, export, holdAdd, holdRemove} {
		c.Flags().StringVar(&database, "database", "", "the collection's database (default \"default\")")
	}
	hold := groupCmd("hold", "Keep a snapshot from being dropped or expired: add and remove holds")
	hold.Long = `A hold keeps a committed snapshot: nobody can drop it, and no policy's retention
expires it, while the hold stands. A hold --until a time is a retention lock: before
then nobody, admins included, can drop the snapshot or remove the hold. Holds show in
snapshot describe and snapshot list.`
	hold.AddCommand(holdAdd, holdRemove)
	cmd.AddCommand(create, list, describe, verify, drop, export, hold)
	return cmd
}

// snapshotHoldCmds are snapshot hold add and remove; database is the group's
// --database.
func (a *app) snapshotHoldCmds(database *string) (add, remove *cobra.Command) {
	var reason, until string
	add = &cobra.Command{
		Use:   "add COLLECTION SNAPSHOT --reason R [--until TIME]",
		Short: "Hold a committed snapshot (prints the hold's id)",
		Long: `Hold the committed snapshot SNAPSHOT of COLLECTION for --reason: while the hold
stands nobody can drop it and no retention expires it. Without --until the hold
stands until removed (snapkeep snapshot hold remove, an admin's command). With --until
TIME — RFC 3339 (2027-01-31T00:00:00Z) or a duration from now (720h, 30d) — nobody,
admins included, can drop the snapshot or remove the hold before then; afterwards the
hold no longer holds.`,
		Args: exactArgs("COLLECTION", "SNAPSHOT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageErrorf("--reason is required: why the snapshot is held")
			}
			opt := client.NewSnapshotHoldOption(args[0], args[1], reason).WithDatabase(*database)
			if until != "" {
				t, err := parseUntil(until, time.Now())
				if err != nil {
					return usageErrorf("--until: %w", err)
				}
				opt.WithUntil(t)
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.AddSnapshotHold(ctx, opt)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.json() {
					return writeJSON(out, resp)
				}
				h := resp.GetHold()
				if h.GetUntilUnixMs() == 0 {
					_, err = fmt.Fprintf(out, "Added hold %d to snapshot %q of %q, until removed: snapkeep snapshot hold remove %s %s %d\n",
						h.GetId(), args[1], args[0], args[0], args[1], h.GetId())
					return err
				}
				_, err = fmt.Fprintf(out, "Added hold %d to snapshot %q of %q, until %s: nobody, admins included, can drop the snapshot or remove the hold before then.\n",
					h.GetId(), args[1], args[0], timestamp(h.GetUntilUnixMs()))
				return err
			})
		},
	}
	add.Flags().StringVar(&reason, "reason", "", "why the snapshot is held (required)")
	add.Flags().StringVar(&until, "until", "", "hold until `TIME`, RFC 3339 or a duration from now (720h, 30d); nobody can remove the hold before then")

	remove = &cobra.Command{
		Use:   "remove COLLECTION SNAPSHOT HOLD_ID",
		Short: "Remove a hold (refused before the hold's until)",
		Args:  exactArgs("COLLECTION", "SNAPSHOT", "HOLD_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[2], 10, 64)
			if err != nil || id == 0 {
				return usageErrorf("HOLD_ID %q is not a hold id (a positive number; snapkeep snapshot describe shows them)", args[2])
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				snap, err := cl.RemoveSnapshotHold(ctx, *database, args[0], args[1], id)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.json() {
					return writeJSON(out, &snapkeepv1.RemoveSnapshotHoldResponse{Snapshot: snap})
				}
				still := "it is no longer held"
				if held := heldText(snap); held != "-" {
					still = "it is still " + held
				}
				_, err = fmt.Fprintf(out, "Removed hold %d from snapshot %q of %q; %s.\n", id, args[1], args[0], still)
				return err
			})
		},
	}
	return add, remove
}

// parseUntil reads a hold's until: an RFC 3339 time, or a duration from now.
func parseUntil(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, strings.TrimSpace(s)); err == nil {
		return t, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2027-01-31T00:00:00Z) nor a duration from now (720h, 30d)", s)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("%q: want a time to come", s)
	}
	return now.Add(d), nil
}

// heldText says whether a snapshot is held: "held" (until removed), "held until
// TIME" (the latest until of its active holds), or "-".
func heldText(s *snapkeepv1.Snapshot) string {
	var until int64
	held := false
	for _, h := range s.GetHolds() {
		if !h.GetActive() {
			continue
		}
		if h.GetUntilUnixMs() == 0 {
			return "held"
		}
		held, until = true, max(until, h.GetUntilUnixMs())
	}
	if !held {
		return "-"
	}
	return "held until " + timestamp(until)
}

// snapshotPolicy names the policy that took a snapshot: its name, "(deleted)" when it
// is gone, or "-" for a snapshot taken on request.
func snapshotPolicy(s *snapkeepv1.Snapshot) string {
	switch {
	case s.GetPolicy() != "":
		return s.GetPolicy()
	case s.GetPolicyId() != 0:
		return "(deleted)"
	}
	return "-"
}

// snapshotExportCmd is snapshot export; database is the group's --database.
func (a *app) snapshotExportCmd(database *string) *cobra.Command {
	var to string
	var concurrency int
	var readBack, wait bool
	export := &cobra.Command{
		Use:   "export COLLECTION SNAPSHOT --to REPO",
		Short: "Export a committed snapshot to a repository (prints the job id; --wait follows it)",
		Long: `Start a job that copies the snapshot to the registered repository REPO (see snapkeep
repository): the files the repository does not hold yet, then the snapshot's
manifest, and records it in a new generation of the repository's index. Exports are
incremental: a file an earlier export already put there is skipped, so exporting
tonight's snapshot after last night's copies only what changed. Each copy is
checked: a server-side copy as a restore's are, a copy streamed through the node by
the source's CRC-32C computed on the fly and declared to the repository's server;
--read-back also reads every copy back in full.

The job is listed, followed and cancelled with the restore commands (snapkeep restore
status|list|cancel JOB; restore list --kind export), until its files are copied: once
FINALIZING it can no longer be cancelled. With --wait the command follows the job (a
progress bar on a terminal, progress lines otherwise) and exits non-zero unless it
completes.`,
		Args: exactArgs("COLLECTION", "SNAPSHOT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageErrorf("--to is required: the repository to export to (snapkeep repository list)")
			}
			if concurrency < 0 {
				return usageErrorf("--max-concurrency %d cannot be negative", concurrency)
			}
			opt := client.NewExportSnapshotOption(args[0], args[1], to).WithDatabase(*database).WithMaxConcurrency(concurrency)
			if readBack {
				opt.WithReadBack()
			}
			return a.withClient(cmd, !wait, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.ExportSnapshot(ctx, opt)
				if err != nil {
					return err
				}
				if wait {
					return a.waitJob(ctx, cmd, cl, resp.GetJobId())
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				verb := "Started"
				if resp.GetExisting() {
					verb = "Already running:"
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s export job %d: snapshot %q of %q to repository %q. Follow it with: snapkeep restore status %d\n",
					verb, resp.GetJobId(), args[1], args[0], to, resp.GetJobId())
				return err
			})
		},
	}
	export.Flags().StringVar(&to, "to", "", "the registered repository to export to (required)")
	export.Flags().IntVar(&concurrency, "max-concurrency", 0, "copies one node runs at once for this job (0: the node's default)")
	export.Flags().BoolVar(&readBack, "read-back", false, "read every copy back from the repository in full and check its CRC-32C")
	export.Flags().BoolVar(&wait, "wait", false, "follow the job until it ends; exit non-zero unless it completes")
	return export
}

// printSnapshots writes a table of snapshots.
func printSnapshots(w io.Writer, snaps []*snapkeepv1.Snapshot) error {
	t := newTable(w, "ID", "COLLECTION", "NAME", "STATE", "CREATED", "SEGMENTS", "FILES", "SIZE", "EXCLUSIVE", "SHARED", "VERIFIED", "HELD", "POLICY", "LABELS")
	for _, s := range snaps {
		coll := s.GetCollection()
		if s.GetCollectionDropped() {
			coll += " (dropped)"
		}
		sum := s.GetSummary()
		t.row(s.GetId(), coll, s.GetName(), enumName(s.GetState()), timestamp(s.GetCreatedAtUnixMs()),
			sum.GetSegments(), sum.GetFiles(), humanBytes(sum.GetBytes()), spaceBytes(s, (*snapkeepv1.SnapshotSpace).GetExclusiveBytes),
			spaceBytes(s, (*snapkeepv1.SnapshotSpace).GetSharedBytes), verifyOutcome(s.GetVerification()), heldText(s), snapshotPolicy(s), orDash(keyValueList(s.GetLabels())))
	}
	return t.flush()
}

// verifyOutcome names a verification's outcome ("-": never verified).
func verifyOutcome(v *snapkeepv1.SnapshotVerification) string {
	if v == nil || v.GetOutcome() == snapkeepv1.SnapshotVerifyOutcome_SNAPSHOT_VERIFY_OUTCOME_UNSPECIFIED {
		return "-"
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v.GetOutcome().String(), "SNAPSHOT_VERIFY_OUTCOME_")), "_", "-")
}

// verificationText says in a line how and when a snapshot was last verified and what
// was found.
func verificationText(v *snapkeepv1.SnapshotVerification) string {
	if v == nil {
		return "never (the leader's scrubber verifies every committed snapshot; snapkeep snapshot verify checks it now)"
	}
	how := "sizes"
	if v.GetDeep() {
		how = "deep"
	}
	out := fmt.Sprintf("%s at %s (%s)", verifyOutcome(v), timestamp(v.GetVerifiedAtUnixMs()), how)
	if v.GetDeepVerifiedAtUnixMs() != 0 && !v.GetDeep() {
		out += ", last deep at " + timestamp(v.GetDeepVerifiedAtUnixMs())
	}
	if v.GetRepairs() > 0 {
		out += fmt.Sprintf(", manifest repaired %d times", v.GetRepairs())
	}
	if v.GetProblemCount() > 0 {
		out += fmt.Sprintf("; %d problems: %s", v.GetProblemCount(), strings.Join(v.GetProblems(), "; "))
	}
	return out
}

// spaceBytes is one of a snapshot's space figures, "-" when it has none (DELETING).
func spaceBytes(s *snapkeepv1.Snapshot, figure func(*snapkeepv1.SnapshotSpace) uint64) string {
	if s.GetSpace() == nil {
		return "-"
	}
	return humanBytes(figure(s.GetSpace()))
}

// heldSummary says in a line whether a snapshot is held, and by how many holds.
func heldSummary(s *snapkeepv1.Snapshot) string {
	active := 0
	for _, h := range s.GetHolds() {
		if h.GetActive() {
			active++
		}
	}
	switch {
	case active == 0 && len(s.GetHolds()) == 0:
		return "no"
	case active == 0:
		return fmt.Sprintf("no (%d expired holds)", len(s.GetHolds()))
	}
	until := "until removed"
	if held := heldText(s); held != "held" {
		until = strings.TrimPrefix(held, "held ")
	}
	return fmt.Sprintf("yes, %s (%d active holds): it cannot be dropped or expired", until, active)
}

// printSnapshot writes one snapshot in detail.
func printSnapshot(w io.Writer, s *snapkeepv1.Snapshot) error {
	t := newTable(w)
	t.row("Snapshot:", fmt.Sprintf("%s (id %d)", s.GetName(), s.GetId()))
	coll := fmt.Sprintf("%s (id %d)", s.GetCollection(), s.GetCollectionId())
	if s.GetCollectionDropped() {
		coll += ", dropped since"
	}
	t.row("Collection:", coll)
	t.row("Database:", s.GetDatabase())
	t.row("State:", enumName(s.GetState()))
	t.row("Key layout:", enumName(s.GetLayout()))
	if s.GetDeleteReason() != "" {
		t.row("Reason:", s.GetDeleteReason())
	}
	t.row("Description:", orDash(s.GetDescription()))
	t.row("Labels:", orDash(keyValueList(s.GetLabels())))
	if s.GetPolicyId() != 0 {
		policy := s.GetPolicy()
		if policy == "" {
			policy = fmt.Sprintf("a deleted policy (id %d)", s.GetPolicyId())
		}
		if s.GetPolicyDueUnixMs() != 0 {
			policy += ", due " + timestamp(s.GetPolicyDueUnixMs())
		} else {
			policy += ", run on request"
		}
		t.row("Policy:", policy)
	}
	t.row("Held:", heldSummary(s))
	t.row("Captured at:", fmt.Sprintf("log index %d, %s", s.GetCapturedIndex(), timestamp(s.GetCreatedAtUnixMs())))
	if s.GetCommittedAtUnixMs() != 0 {
		t.row("Committed:", timestamp(s.GetCommittedAtUnixMs()))
	}
	sum := s.GetSummary()
	t.row("Segments:", fmt.Sprintf("%d (%d rows, %d index builds)", sum.GetSegments(), sum.GetRows(), sum.GetIndexBuilds()))
	if s.GetState() == snapkeepv1.SnapshotState_SNAPSHOT_STATE_COMMITTED {
		t.row("Files:", fmt.Sprintf("%d, %s", sum.GetFiles(), humanBytes(sum.GetBytes())))
		for _, k := range sum.GetByKind() {
			t.row("", fmt.Sprintf("%-6s %d files, %s", enumName(k.GetKind()), k.GetFiles(), humanBytes(k.GetBytes())))
		}
		t.row("Manifest:", fmt.Sprintf("%s (%s, xxhash64 %016x)", s.GetManifestKey(), humanBytes(s.GetManifestSize()), s.GetManifestXxhash64()))
		t.row("Verified:", verificationText(s.GetVerification()))
	}
	if sp := s.GetSpace(); sp != nil {
		t.row("Exclusive:", fmt.Sprintf("%d objects, %s: kept by this snapshot alone; dropping it frees them", sp.GetExclusiveObjects(), humanBytes(sp.GetExclusiveBytes())))
		t.row("Shared:", fmt.Sprintf("%d objects, %s: dropped from the collection, also kept by other snapshots", sp.GetSharedObjects(), humanBytes(sp.GetSharedBytes())))
		t.row("Live:", fmt.Sprintf("%d objects, %s: still in use by the collection", sp.GetLiveObjects(), humanBytes(sp.GetLiveBytes())))
	}
	t.row("Schema:", humanBytes(uint64(len(s.GetSchema()))))
	t.row("Properties:", orDash(keyValueList(s.GetProperties())))
	if err := t.flush(); err != nil {
		return err
	}
	if len(s.GetHolds()) > 0 {
		fmt.Fprintln(w)
		t = newTable(w, "HOLD", "REASON", "UNTIL", "STATE", "ADDED")
		for _, h := range s.GetHolds() {
			until, state := "until removed", "active"
			if h.GetUntilUnixMs() != 0 {
				until = timestamp(h.GetUntilUnixMs())
			}
			if !h.GetActive() {
				state = "expired"
			}
			t.row(h.GetId(), h.GetReason(), until, state, timestamp(h.GetAddedAtUnixMs()))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(s.GetPartitions()) > 0 {
		fmt.Fprintln(w)
		t = newTable(w, "PARTITION", "ID")
		for _, p := range s.GetPartitions() {
			t.row(p.GetName(), p.GetId())
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(s.GetIndexes()) > 0 {
		fmt.Fprintln(w)
		t = newTable(w, "INDEX", "ID", "FIELD", "PARAMS")
		for _, idx := range s.GetIndexes() {
			t.row(idx.GetName(), idx.GetId(), idx.GetFieldId(), keyValueList(idx.GetParams()))
		}
		return t.flush()
	}
	return nil
}
