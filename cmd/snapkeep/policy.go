package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// snapshotPoll is how often policy execute --wait asks whether its snapshots are
// committed.
var snapshotPoll = 100 * time.Millisecond

func (a *app) policyCmd() *cobra.Command {
	cmd := groupCmd("policy", "Take snapshots on a schedule and expire them: snapshot policies")
	cmd.Long = `A policy snapshots collections — by name, or every active one matching a glob — on a
schedule (a cron expression in a time zone, or a fixed interval), names the
snapshots from a template rendered at the due time ("nightly-{2006.01.02-15.04}"),
labels them snapkeep.policy=NAME, and expires the ones it took by age and count while
keeping a minimum. The cluster's leader runs it: exactly once per due time, through
failovers; after downtime across several due times, once for the latest. A held
snapshot (snapkeep snapshot hold) is never expired.`
	cmd.AddCommand(a.policyCreateCmd(), a.policyUpdateCmd(), a.policyListCmd(), a.policyDescribeCmd(),
		a.policyDeleteCmd(), a.policyExecuteCmd(), a.policyPreviewCmd())
	return cmd
}

// policyFlags are the settings create and update take; update changes only those
// given.
type policyFlags struct {
	collections           []string
	glob, database        string
	cron, timeZone        string
	every                 durationFlag
	template, description string
	labels, unsetLabels   []string
	expireAfter           durationFlag
	keepMin, keepMax      uint32
	retentionEvery        durationFlag
	exportTo              string
	exportExpireAfter     durationFlag
	exportKeepMin         uint32
	exportKeepMax         uint32
	exportRetentionEvery  durationFlag
	noExport              bool // update
	disabled              bool // create
	enable, disable       bool // update
}

func (f *policyFlags) register(fs *pflag.FlagSet, update bool) {
	fs.StringSliceVar(&f.collections, "collections", nil, "snapshot these collections (comma-separated names)")
	fs.StringVar(&f.glob, "glob", "", "snapshot every active collection whose name matches this `PATTERN` (\"*\": all)")
	fs.StringVar(&f.database, "database", "", "the collections' database (default \"default\")")
	fs.StringVar(&f.cron, "cron", "", "schedule by a 5-field cron `EXPR` (\"0 2 * * *\", @daily, ...)")
	fs.StringVar(&f.timeZone, "time-zone", "", "the cron's IANA time `ZONE` (default UTC)")
	fs.Var(&f.every, "every", "schedule at this interval (at least 1s) from the policy's creation: 2s, 6h, 1d")
	fs.StringVar(&f.template, "name-template", "", "snapshot names: Go time layouts in braces, rendered at the due time (\"nightly-{2006.01.02-15.04}\")")
	fs.StringArrayVar(&f.labels, "label", nil, "a label `key=value` given to every snapshot taken (repeatable)")
	fs.StringVar(&f.description, "description", "", "free text describing the policy (given to its snapshots)")
	fs.Var(&f.expireAfter, "expire-after", "expire the policy's snapshots older than this (30d, 720h; 0: never by age)")
	fs.Uint32Var(&f.keepMin, "keep-min", 0, "keep at least this many committed snapshots per collection, whatever their age")
	fs.Uint32Var(&f.keepMax, "keep-max", 0, "keep at most this many per collection, the oldest expiring first (0: no limit)")
	fs.Var(&f.retentionEvery, "retention-every", "how often the retention is checked (default 1m)")
	fs.StringVar(&f.exportTo, "export-to", "", "export each snapshot, once committed, to the registered repository `REPO`")
	fs.Var(&f.exportExpireAfter, "export-expire-after", "expire the exported copies older than this (0: never by age)")
	fs.Uint32Var(&f.exportKeepMin, "export-keep-min", 0, "keep at least this many exported copies per collection")
	fs.Uint32Var(&f.exportKeepMax, "export-keep-max", 0, "keep at most this many exported copies per collection (0: no limit)")
	fs.Var(&f.exportRetentionEvery, "export-retention-every", "how often the export retention is checked (default 1m)")
	if update {
		fs.BoolVar(&f.noExport, "no-export", false, "stop exporting (the copies already in the repository stay)")
		fs.StringArrayVar(&f.unsetLabels, "unset-label", nil, "remove the label `KEY` (repeatable)")
		fs.BoolVar(&f.enable, "enable", false, "enable the schedule")
		fs.BoolVar(&f.disable, "disable", false, "disable the schedule (execute still runs it; its retention goes on)")
	} else {
		fs.BoolVar(&f.disabled, "disabled", false, "create it with its schedule disabled")
	}
}

// check rejects flag combinations that cannot be meant, before any call.
func (f *policyFlags) check(fs *pflag.FlagSet, create bool) error {
	changed := func(name string) bool { return flagChanged(fs, name) }
	if changed("collections") && changed("glob") {
		return usageErrorf("--collections and --glob exclude each other: name the collections or match them")
	}
	if changed("cron") && changed("every") {
		return usageErrorf("--cron and --every exclude each other: one schedule")
	}
	if f.enable && f.disable {
		return usageErrorf("--enable and --disable exclude each other")
	}
	if changed("every") && f.every <= 0 {
		return usageErrorf("--every %v: want a positive interval", time.Duration(f.every))
	}
	exportRetention := changed("export-expire-after") || changed("export-keep-min") || changed("export-keep-max") || changed("export-retention-every")
	if f.noExport && (changed("export-to") || exportRetention) {
		return usageErrorf("--no-export stops exporting: it takes no --export-to nor export retention")
	}
	if create && exportRetention && f.exportTo == "" {
		return usageErrorf("an export retention needs --export-to REPO")
	}
	for _, name := range []string{"expire-after", "retention-every", "export-expire-after", "export-retention-every"} {
		if d := fs.Lookup(name).Value.(*durationFlag); changed(name) && *d < 0 {
			return usageErrorf("--%s %v cannot be negative", name, time.Duration(*d))
		}
	}
	if !create {
		return nil
	}
	switch {
	case !changed("collections") && !changed("glob"):
		return usageErrorf("give --collections a,b or --glob PATTERN: which collections the policy snapshots")
	case !changed("cron") && !changed("every"):
		return usageErrorf("give --cron \"EXPR\" or --every DURATION: when the policy runs")
	case changed("time-zone") && !changed("cron"):
		return usageErrorf("--time-zone applies to a --cron schedule")
	case f.template == "":
		return usageErrorf("--name-template is required, e.g. \"nightly-{2006.01.02-15.04}\"")
	}
	return nil
}

// apply sets the flags given on opt; cur is the policy being updated (nil on create).
func (f *policyFlags) apply(fs *pflag.FlagSet, opt *client.PolicyOption, cur *snapkeepv1.Policy) error {
	changed := func(name string) bool { return flagChanged(fs, name) }
	if changed("collections") {
		opt.WithCollections(f.collections...)
	}
	if changed("glob") {
		opt.WithCollectionGlob(f.glob)
	}
	if changed("database") {
		opt.WithDatabase(f.database)
	}
	switch {
	case changed("cron"):
		tz := f.timeZone
		if !changed("time-zone") {
			tz = cur.GetTimeZone() // a new expression in the zone it had
		}
		opt.WithCron(f.cron, tz)
	case changed("time-zone"):
		if cur.GetCron() == "" {
			return usageErrorf("--time-zone applies to a cron schedule; policy %q runs every %s: give --cron too",
				cur.GetName(), shortDuration(time.Duration(cur.GetIntervalMs())*time.Millisecond))
		}
		opt.WithCron(cur.GetCron(), f.timeZone)
	case changed("every"):
		opt.WithInterval(time.Duration(f.every))
	}
	lbls, err := keyValues("label", f.labels)
	if err != nil {
		return err
	}
	opt.WithLabels(lbls)
	if changed("description") {
		opt.WithDescription(f.description)
	}
	if changed("name-template") {
		opt.WithNameTemplate(f.template)
	}
	if changed("expire-after") || changed("keep-min") || changed("keep-max") {
		r := cur.GetRetention()
		expire, keepMin, keepMax := time.Duration(r.GetExpireAfterMs())*time.Millisecond, r.GetMinCount(), r.GetMaxCount()
		if changed("expire-after") {
			expire = time.Duration(f.expireAfter)
		}
		if changed("keep-min") {
			keepMin = f.keepMin
		}
		if changed("keep-max") {
			keepMax = f.keepMax
		}
		opt.WithRetention(expire, keepMin, keepMax)
	}
	if changed("retention-every") {
		opt.WithRetentionInterval(time.Duration(f.retentionEvery))
	}
	switch {
	case f.noExport:
		opt.WithExport("").WithoutExportRetention()
	case changed("export-to"):
		opt.WithExport(f.exportTo)
	}
	if changed("export-expire-after") || changed("export-keep-min") || changed("export-keep-max") || changed("export-retention-every") {
		r := cur.GetExportRetention()
		expire, keepMin, keepMax := time.Duration(r.GetExpireAfterMs())*time.Millisecond, r.GetMinCount(), r.GetMaxCount()
		every := time.Duration(r.GetIntervalMs()) * time.Millisecond
		if changed("export-expire-after") {
			expire = time.Duration(f.exportExpireAfter)
		}
		if changed("export-keep-min") {
			keepMin = f.exportKeepMin
		}
		if changed("export-keep-max") {
			keepMax = f.exportKeepMax
		}
		if changed("export-retention-every") {
			every = time.Duration(f.exportRetentionEvery)
		}
		opt.WithExportRetention(expire, keepMin, keepMax, every)
	}
	switch {
	case f.disabled || f.disable:
		opt.WithEnabled(false)
	case f.enable:
		opt.WithEnabled(true)
	}
	return nil
}

func (a *app) policyCreateCmd() *cobra.Command {
	var f policyFlags
	create := &cobra.Command{
		Use:   "create NAME (--collections a,b | --glob PATTERN) (--cron EXPR | --every DURATION) --name-template T",
		Short: "Create a policy (prints it with its next run)",
		Long: `Create the policy NAME. It snapshots the collections named by --collections, or every
active collection matching --glob, of --database; on a schedule: --cron "EXPR" (5
fields, or @daily, @hourly, ...; in --time-zone, default UTC, with cron's rules on
daylight-saving days) or --every DURATION from now. Snapshots are named by
--name-template, Go time layouts in braces rendered at the due time
("nightly-{2006.01.02-15.04}"): two due times in a row must render different names.
Retention: --expire-after (age), --keep-max (count per collection, oldest first),
never below --keep-min; checked every --retention-every (default 1m). Durations take
Go's units and d for days (30d). Creating a policy identical to an existing one
succeeds.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd.Flags(), true); err != nil {
				return err
			}
			opt := client.NewPolicyOption(args[0], f.template)
			if err := f.apply(cmd.Flags(), opt, nil); err != nil {
				return err
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.CreatePolicy(ctx, opt)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.json() {
					return writeJSON(out, resp)
				}
				if resp.GetExisted() {
					fmt.Fprintf(out, "Policy %q already existed with these settings.\n\n", args[0])
				} else {
					fmt.Fprintf(out, "Created policy %q.\n\n", args[0])
				}
				return printPolicy(out, resp.GetPolicy())
			})
		},
	}
	f.register(create.Flags(), false)
	return create
}

func (a *app) policyUpdateCmd() *cobra.Command {
	var f policyFlags
	update := &cobra.Command{
		Use:   "update NAME [flags]",
		Short: "Change a policy's settings: only those given (prints it)",
		Long: `Change the settings given and keep the others: the policy is read, changed and
written back with the revision read, so a change made meanwhile by someone else fails
instead of being overwritten (run it again). A new schedule starts from now. The
flags are those of policy create, plus --enable, --disable and --unset-label.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if onlyGlobalFlags(cmd) {
				return usageErrorf("nothing to change: give at least one setting (see --help)")
			}
			if err := f.check(cmd.Flags(), false); err != nil {
				return err
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				cur, err := cl.DescribePolicy(ctx, args[0])
				if err != nil {
					return err
				}
				base := proto.CloneOf(cur)
				for _, k := range f.unsetLabels {
					delete(base.Labels, k)
				}
				opt := client.PolicyOptionFrom(base)
				if err := f.apply(cmd.Flags(), opt, cur); err != nil {
					return err
				}
				p, err := cl.UpdatePolicy(ctx, opt, cur.GetRevision())
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.json() {
					return writeJSON(out, &snapkeepv1.UpdatePolicyResponse{Policy: p})
				}
				fmt.Fprintf(out, "Updated policy %q (revision %d).\n\n", args[0], p.GetRevision())
				return printPolicy(out, p)
			})
		},
	}
	f.register(update.Flags(), true)
	return update
}

// onlyGlobalFlags reports whether every flag given is one of the root's (--endpoints,
// --output, ...), so none of the command's own.
func onlyGlobalFlags(cmd *cobra.Command) bool {
	own := false
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { own = own || f.Changed })
	return !own
}

func (a *app) policyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the policies with their schedule, next run and last results",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				ps, err := cl.ListPolicies(ctx)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.ListPoliciesResponse{Policies: ps})
				}
				return printPolicies(cmd.OutOrStdout(), ps)
			})
		},
	}
}

func (a *app) policyDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a policy's settings and status",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				p, err := cl.DescribePolicy(ctx, args[0])
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.DescribePolicyResponse{Policy: p})
				}
				return printPolicy(cmd.OutOrStdout(), p)
			})
		},
	}
}

func (a *app) policyDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy; the snapshots it took stay (succeeds if it does not exist)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.DeletePolicy(ctx, args[0])
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				if !resp.GetExisted() {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "No policy %q: nothing to delete.\n", args[0])
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Deleted policy %q. The snapshots it took stay, no longer expired: "+
					"snapkeep snapshot list --label %s=%s\n", args[0], fsm.PolicyLabel, args[0])
				return err
			})
		},
	}
}

func (a *app) policyExecuteCmd() *cobra.Command {
	var wait bool
	execute := &cobra.Command{
		Use:   "execute NAME",
		Short: "Run a policy now, outside its schedule (prints each collection's snapshot or error)",
		Long: `Run the policy now: one snapshot of each of its collections, named by its template
at the current time, outside its schedule (which it leaves alone). Prints each
collection's snapshot, or why none was taken. The snapshots are pending at first; with
--wait the command waits until each is committed. The exit status is 1 when a
collection got no snapshot or (with --wait) one was not committed.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			limit := !wait || flagChanged(cmd.Flags(), "timeout")
			return a.withClient(cmd, limit, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.ExecutePolicy(ctx, args[0])
				if err != nil {
					return err
				}
				snaps := map[uint64]*snapkeepv1.Snapshot{}
				if wait {
					if snaps, err = waitSnapshots(ctx, cl, resp.GetResults()); err != nil {
						return err
					}
				}
				out := cmd.OutOrStdout()
				if a.json() {
					err = writeJSON(out, resp)
				} else {
					err = printPolicyRun(out, args[0], resp.GetResults(), snaps, wait)
				}
				if err != nil {
					return err
				}
				if len(resp.GetResults()) == 0 {
					return fmt.Errorf("policy %q took no snapshot: %s", args[0], orDash(resp.GetPolicy().GetStatus().GetLastFailure()))
				}
				return failedRuns(args[0], resp.GetResults(), snaps, wait)
			})
		},
	}
	execute.Flags().BoolVar(&wait, "wait", false, "wait until every snapshot taken is committed")
	return execute
}

// waitSnapshots waits until each snapshot the run took is no longer pending, and
// returns them by id.
func waitSnapshots(ctx context.Context, cl *client.Client, results []*snapkeepv1.PolicyRunResult) (map[uint64]*snapkeepv1.Snapshot, error) {
	out := map[uint64]*snapkeepv1.Snapshot{}
	for _, r := range results {
		if r.GetSnapshotId() == 0 {
			continue
		}
		for {
			s, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(r.GetSnapshotId()))
			if err != nil {
				return nil, fmt.Errorf("wait for snapshot %q of %q: %w", r.GetSnapshotName(), r.GetCollection(), err)
			}
			if s.GetState() != snapkeepv1.SnapshotState_SNAPSHOT_STATE_PENDING {
				out[s.GetId()] = s
				break
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("wait for snapshot %q of %q, still pending: %w", r.GetSnapshotName(), r.GetCollection(), ctx.Err())
			case <-time.After(snapshotPoll):
			}
		}
	}
	return out, nil
}

// printPolicyRun writes a run's results: a line, then one row per collection.
func printPolicyRun(w io.Writer, name string, results []*snapkeepv1.PolicyRunResult, snaps map[uint64]*snapkeepv1.Snapshot, waited bool) error {
	taken := 0
	for _, r := range results {
		if r.GetError() == "" {
			taken++
		}
	}
	fmt.Fprintf(w, "Ran policy %q: %d snapshots taken, %d collections failed.\n", name, taken, len(results)-taken)
	if len(results) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w, "COLLECTION", "SNAPSHOT", "ID", "STATE", "ERROR")
	for _, r := range results {
		state := "pending"
		switch s, ok := snaps[r.GetSnapshotId()]; {
		case r.GetError() != "":
			state = "-"
		case ok:
			state = enumName(s.GetState())
			if s.GetDeleteReason() != "" {
				state += " (" + s.GetDeleteReason() + ")"
			}
		}
		id := "-"
		if r.GetSnapshotId() != 0 {
			id = strconv.FormatUint(r.GetSnapshotId(), 10)
		}
		t.row(orDash(r.GetCollection()), orDash(r.GetSnapshotName()), id, state, orDash(r.GetError()))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if !waited && taken > 0 {
		fmt.Fprintln(w, "\nThe snapshots are pending until the cluster commits them (--wait waits).")
	}
	return nil
}

// failedRuns is the error for collections that got no snapshot, or (after waiting)
// whose snapshot was not committed; nil when there is none.
func failedRuns(name string, results []*snapkeepv1.PolicyRunResult, snaps map[uint64]*snapkeepv1.Snapshot, waited bool) error {
	var failed []string
	for _, r := range results {
		switch s := snaps[r.GetSnapshotId()]; {
		case r.GetError() != "":
			failed = append(failed, fmt.Sprintf("%s: %s", r.GetCollection(), r.GetError()))
		case waited && s.GetState() != snapkeepv1.SnapshotState_SNAPSHOT_STATE_COMMITTED:
			failed = append(failed, fmt.Sprintf("%s: snapshot %q is %s: %s", r.GetCollection(), r.GetSnapshotName(),
				enumName(s.GetState()), orDash(s.GetDeleteReason())))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("policy %q: %d of %d collections have no committed snapshot: %s", name, len(failed), len(results), strings.Join(failed, "; "))
}

func (a *app) policyPreviewCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "preview NAME",
		Short: "Show what the policy's retention would expire now, and why it keeps the rest",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.PreviewPolicyRetention(ctx, args[0])
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				return printRetentionPreview(cmd.OutOrStdout(), args[0], resp)
			})
		},
	}
}

// printRetentionPreview writes a line, then one row per committed snapshot of the
// policy.
func printRetentionPreview(w io.Writer, name string, resp *snapkeepv1.PreviewPolicyRetentionResponse) error {
	expire := 0
	for _, d := range resp.GetDecisions() {
		if d.GetDelete() {
			expire++
		}
	}
	fmt.Fprintf(w, "Retention of policy %q at %s: %d of its %d committed snapshots would expire.\n",
		name, timestamp(resp.GetAtUnixMs()), expire, len(resp.GetDecisions()))
	if len(resp.GetDecisions()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w, "ID", "COLLECTION", "SNAPSHOT", "CREATED", "DECISION", "REASON")
	for _, d := range resp.GetDecisions() {
		decision, reason := "KEEP", strings.TrimPrefix(d.GetReason(), "kept: ")
		if d.GetDelete() {
			decision, reason = "DELETE", strings.TrimPrefix(d.GetReason(), "expired: ")
		}
		t.row(d.GetSnapshotId(), d.GetCollection(), d.GetSnapshot(), timestamp(d.GetCreatedAtUnixMs()), decision, reason)
	}
	return t.flush()
}

// policySchedule describes a policy's schedule: `cron "0 2 * * *" (Europe/Paris)` or
// "every 6h".
func policySchedule(p *snapkeepv1.Policy) string {
	if p.GetCron() != "" {
		return fmt.Sprintf("cron %q (%s)", p.GetCron(), cmpOr(p.GetTimeZone(), "UTC"))
	}
	return "every " + shortDuration(time.Duration(p.GetIntervalMs())*time.Millisecond)
}

// policyCollections says which collections a policy snapshots.
func policyCollections(p *snapkeepv1.Policy) string {
	db := cmpOr(p.GetDatabase(), "default")
	if p.GetCollectionGlob() != "" {
		return fmt.Sprintf("every active collection of database %s matching %q", db, p.GetCollectionGlob())
	}
	return fmt.Sprintf("%s (database %s)", strings.Join(p.GetCollections(), ", "), db)
}

// policyRetention describes a policy's retention in one line.
func policyRetention(p *snapkeepv1.Policy) string {
	r := p.GetRetention()
	if r.GetExpireAfterMs() == 0 && r.GetMaxCount() == 0 {
		return "none: its snapshots stay until dropped"
	}
	return retentionText(r)
}

// retentionText describes a retention's rules in one line.
func retentionText(r *snapkeepv1.PolicyRetention) string {
	var parts []string
	if r.GetExpireAfterMs() > 0 {
		parts = append(parts, "expire after "+shortDuration(time.Duration(r.GetExpireAfterMs())*time.Millisecond))
	}
	if r.GetMaxCount() > 0 {
		parts = append(parts, fmt.Sprintf("keep at most %d", r.GetMaxCount()))
	}
	if r.GetMinCount() > 0 {
		parts = append(parts, fmt.Sprintf("keep at least %d", r.GetMinCount()))
	}
	every := time.Minute
	if r.GetIntervalMs() > 0 {
		every = time.Duration(r.GetIntervalMs()) * time.Millisecond
	}
	return fmt.Sprintf("%s per collection; checked every %s", strings.Join(parts, ", "), shortDuration(every))
}

// policyNextRun is a policy's next due time, or why there is none.
func policyNextRun(p *snapkeepv1.Policy) string {
	switch {
	case !p.GetEnabled():
		return "- (disabled)"
	case p.GetStatus().GetNextRunUnixMs() == 0:
		return "-"
	}
	return timestamp(p.GetStatus().GetNextRunUnixMs())
}

// printPolicies writes a table of policies.
func printPolicies(w io.Writer, ps []*snapkeepv1.Policy) error {
	t := newTable(w, "NAME", "SCHEDULE", "ENABLED", "NEXT RUN", "LAST SUCCESS", "LAST FAILURE", "TAKEN/FAILED/DELETED")
	for _, p := range ps {
		st := p.GetStatus()
		t.row(p.GetName(), policySchedule(p), yesNo(p.GetEnabled()), policyNextRun(p), timestamp(st.GetLastSuccessAtUnixMs()),
			timestamp(st.GetLastFailureAtUnixMs()), fmt.Sprintf("%d/%d/%d", st.GetSnapshotsTaken(), st.GetSnapshotsFailed(), st.GetSnapshotsDeleted()))
	}
	return t.flush()
}

// printPolicy writes one policy in detail: its settings, then its status.
func printPolicy(w io.Writer, p *snapkeepv1.Policy) error {
	st := p.GetStatus()
	t := newTable(w)
	t.row("Policy:", fmt.Sprintf("%s (id %d, revision %d)", p.GetName(), p.GetId(), p.GetRevision()))
	t.row("Description:", orDash(p.GetDescription()))
	t.row("Collections:", policyCollections(p))
	t.row("Schedule:", policySchedule(p))
	t.row("Enabled:", yesNo(p.GetEnabled()))
	t.row("Name template:", p.GetNameTemplate())
	labels := map[string]string{fsm.PolicyLabel: p.GetName()}
	maps.Copy(labels, p.GetLabels())
	t.row("Labels:", keyValueList(labels))
	t.row("Retention:", policyRetention(p))
	if repo := p.GetExportRepository(); repo != "" {
		t.row("Export:", "each snapshot to repository "+repo)
		ret := "none: the exported copies stay"
		if r := p.GetExportRetention(); r.GetExpireAfterMs() != 0 || r.GetMaxCount() != 0 {
			ret = retentionText(r)
		}
		t.row("Export retention:", ret)
	}
	t.row("Created:", timestamp(p.GetCreatedAtUnixMs()))
	t.row("Updated:", timestamp(p.GetUpdatedAtUnixMs()))
	t.row("Next run:", policyNextRun(p))
	t.row("Last due run:", timestamp(st.GetLastDueUnixMs()))
	lastRun := "-"
	if st.GetLastRunAtUnixMs() != 0 {
		lastRun = timestamp(st.GetLastRunAtUnixMs())
		if st.GetLastRunDueUnixMs() != 0 {
			lastRun += " (due " + timestamp(st.GetLastRunDueUnixMs()) + ")"
		} else {
			lastRun += " (on request)"
		}
	}
	t.row("Runs:", fmt.Sprintf("%d, the last at %s", st.GetRuns(), lastRun))
	t.row("Snapshots:", fmt.Sprintf("%d taken, %d failed, %d deleted by the retention", st.GetSnapshotsTaken(), st.GetSnapshotsFailed(), st.GetSnapshotsDeleted()))
	t.row("Last success:", timedMessage(st.GetLastSuccessAtUnixMs(), st.GetLastSuccess()))
	t.row("Last failure:", timedMessage(st.GetLastFailureAtUnixMs(), st.GetLastFailure()))
	t.row("Last retention:", timestamp(st.GetLastRetentionAtUnixMs()))
	if p.GetExportRepository() != "" || st.GetExportsStarted() != 0 {
		t.row("Exports:", fmt.Sprintf("%d started (the last at %s), %d expired from the repository (the last at %s); the jobs: snapkeep restore list --kind export",
			st.GetExportsStarted(), timestamp(st.GetLastExportAtUnixMs()), st.GetExportsExpired(), timestamp(st.GetLastExportExpiryAtUnixMs())))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nIts snapshots: snapkeep snapshot list --label %s=%s\n", fsm.PolicyLabel, p.GetName())
	return err
}

// timedMessage is "TIME: message", or "-".
func timedMessage(ms int64, msg string) string {
	switch {
	case ms == 0 && msg == "":
		return "-"
	case msg == "":
		return timestamp(ms)
	}
	return timestamp(ms) + ": " + msg
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// shortDuration writes d without zero units: 2s, 6h, 1h30m, 30d.
func shortDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// durationFlag is a duration flag that also takes days: 30d, 1d12h.
type durationFlag time.Duration

var daysPrefix = regexp.MustCompile(`^(\d+)d`)

// parseDuration parses Go durations with d for days in front: 30d, 1d12h, 90m.
func parseDuration(in string) (time.Duration, error) {
	s := strings.TrimSpace(in)
	var days time.Duration
	if m := daysPrefix.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 32)
		if err != nil || n > 365*200 {
			return 0, fmt.Errorf("duration %q: too many days", in)
		}
		days, s = time.Duration(n)*24*time.Hour, s[len(m[0]):]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want e.g. 2s, 90m, 6h or 30d", in)
	}
	return days + d, nil
}

func (d *durationFlag) String() string {
	if *d == 0 {
		return "0" // what pflag takes for an unset default, which it then leaves out of help
	}
	return shortDuration(time.Duration(*d))
}

func (d *durationFlag) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationFlag(v)
	return nil
}

func (d *durationFlag) Type() string { return "duration" }
