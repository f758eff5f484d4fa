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

func (a *app) repositoryCmd() *cobra.Command {
	cmd := groupCmd("repository", "Register backup repositories (other buckets) and manage the snapshots exported to them")
	cmd.Long = `A repository is another bucket — on another S3 endpoint, with other credentials if
need be — that snapshots are exported to (snapkeep snapshot export) and restored from
(snapkeep restore start --from). It is self-describing: any cluster that registers
it can list and restore its snapshots, including a brand-new one. One cluster writes a
repository; others can register it read-only.`
	cmd.AddCommand(a.repositoryRegisterCmd(), a.repositoryListCmd(), a.repositoryUnregisterCmd(),
		a.repositorySnapshotsCmd(), a.repositoryDeleteSnapshotCmd(), a.repositoryGCCmd(), a.repositoryVerifyCmd())
	return cmd
}

func (a *app) repositoryRegisterCmd() *cobra.Command {
	var bucket, endpoint, region, prefix, credentials, rate, description string
	var pathStyle, readOnly bool
	register := &cobra.Command{
		Use:   "register NAME --bucket B",
		Short: "Register a repository after checking it from every node (prints each node's probe)",
		Long: `Register the repository NAME in bucket B. Every node checks it first with its own
credentials: it writes, reads, lists and deletes a probe object, checks that the
server refuses a conditional create over an existing object, and whether server-side
copies work between the cluster's bucket and the repository's in each direction
(where they do not, files are streamed through the nodes). A repository without a
format marker gets one, naming this cluster as its writer. Registration is refused —
exit status 1, the error naming the node — when a node cannot reach the repository,
and when another cluster writes it and --read-only is not given.

--credentials is a name, never a secret: each node resolves it from its
--repository-credentials file or from SNAPKEEP_REPO_<NAME>_ACCESS_KEY and
SNAPKEEP_REPO_<NAME>_SECRET_KEY in its environment. Without it the nodes use their
own S3 credentials.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if bucket == "" {
				return usageErrorf("--bucket is required: the repository's bucket")
			}
			opt := client.NewRegisterRepositoryOption(args[0], bucket).WithEndpoint(endpoint).WithRegion(region).
				WithPrefix(prefix).WithCredentials(credentials).WithDescription(description)
			if pathStyle {
				opt.WithPathStyle()
			}
			if readOnly {
				opt.ReadOnly()
			}
			if rate != "" {
				n, err := parseSize(rate)
				if err != nil {
					return usageErrorf("--bytes-per-second: %w", err)
				}
				opt.WithBytesPerSecond(uint64(n))
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.RegisterRepository(ctx, opt)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.json() {
					err = writeJSON(out, resp)
				} else {
					err = printRegistration(out, resp)
				}
				if err != nil {
					return err
				}
				return failedProbes(args[0], resp.GetProbes())
			})
		},
	}
	fl := register.Flags()
	fl.StringVar(&bucket, "bucket", "", "the repository's bucket (required)")
	fl.StringVar(&endpoint, "endpoint", "", "the S3 endpoint URL (default: AWS)")
	fl.StringVar(&region, "region", "", "the bucket's region (default us-east-1)")
	fl.StringVar(&prefix, "prefix", "", "the key prefix the repository lives under (default: the bucket's root)")
	fl.BoolVar(&pathStyle, "path-style", false, "path-style addressing (MinIO and most S3-compatible servers)")
	fl.StringVar(&credentials, "credentials", "", "the `NAME` of the credentials each node resolves (default: the nodes' own S3 credentials)")
	fl.BoolVar(&readOnly, "read-only", false, "restore from it only; never write to it (required for a repository another cluster writes)")
	fl.StringVar(&rate, "bytes-per-second", "", "cap on each node's copy rate to or from it: bytes, or with a unit (100MiB) (default: no limit)")
	fl.StringVar(&description, "description", "", "free text describing the repository")
	return register
}

// failedProbes is the error for probes that did not pass (the server refuses such a
// registration, so this guards against one that answered otherwise), or nil.
func failedProbes(name string, probes []*snapkeepv1.RepositoryProbe) error {
	var failed []string
	for _, p := range probes {
		if !p.GetOk() {
			failed = append(failed, fmt.Sprintf("node %s: %s", p.GetNode(), orDash(p.GetError())))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("repository %q is not usable from every node: %s", name, strings.Join(failed, "; "))
}

// printRegistration writes a registration's outcome, the repository and each node's
// probe.
func printRegistration(w io.Writer, resp *snapkeepv1.RegisterRepositoryResponse) error {
	name := resp.GetRepository().GetSpec().GetName()
	switch {
	case resp.GetExisting():
		fmt.Fprintf(w, "Repository %q was already registered with this spec.\n\n", name)
	case resp.GetInitialized():
		fmt.Fprintf(w, "Registered repository %q; it was empty, and now has a format marker naming this cluster its writer.\n\n", name)
	default:
		fmt.Fprintf(w, "Registered repository %q.\n\n", name)
	}
	if err := printRepository(w, resp.GetRepository()); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return printProbes(w, resp.GetProbes())
}

// printProbes writes a table of the nodes' probes.
func printProbes(w io.Writer, probes []*snapkeepv1.RepositoryProbe) error {
	t := newTable(w, "NODE", "OK", "COPY TO", "COPY FROM", "CONDITIONAL CREATE", "ERROR")
	for _, p := range probes {
		t.row(p.GetNode(), yesNo(p.GetOk()), yesNo(p.GetCopyToRepository()), yesNo(p.GetCopyFromRepository()),
			yesNo(p.GetConditionalCreate()), orDash(p.GetError()))
	}
	return t.flush()
}

// repositoryLocation is s3://bucket/prefix.
func repositoryLocation(s *snapkeepv1.RepositorySpec) string {
	loc := "s3://" + s.GetBucket()
	if p := strings.Trim(s.GetPrefix(), "/"); p != "" {
		loc += "/" + p
	}
	return loc
}

// repositoryAccess says who writes the repository.
func repositoryAccess(r *snapkeepv1.Repository) string {
	switch {
	case !r.GetSpec().GetReadOnly():
		return "read-write"
	case r.GetWriterClusterId() != "" && r.GetWriterClusterId() != r.GetClusterId():
		return "read-only (written by cluster " + r.GetWriterClusterId() + ")"
	default:
		return "read-only"
	}
}

// repositoryWriter names the cluster that writes the repository.
func repositoryWriter(r *snapkeepv1.Repository) string {
	w := r.GetWriterClusterId()
	switch {
	case w == "":
		return "-"
	case w == r.GetClusterId():
		return w + " (this cluster)"
	default:
		return w
	}
}

func repositoryCredentials(s *snapkeepv1.RepositorySpec) string {
	if s.GetCredentials() == "" {
		return "the nodes' own S3 credentials"
	}
	return s.GetCredentials() + " (resolved by each node)"
}

func repositoryRate(s *snapkeepv1.RepositorySpec) string {
	if s.GetBytesPerSecond() == 0 {
		return "no limit"
	}
	return humanBytes(s.GetBytesPerSecond()) + "/s per node"
}

// printRepository writes one repository in detail.
func printRepository(w io.Writer, r *snapkeepv1.Repository) error {
	s := r.GetSpec()
	t := newTable(w)
	t.row("Repository:", fmt.Sprintf("%s (id %s)", s.GetName(), orDash(r.GetRepositoryId())))
	loc := repositoryLocation(s) + " at " + orDash(s.GetEndpoint())
	var details []string
	if s.GetRegion() != "" {
		details = append(details, "region "+s.GetRegion())
	}
	if s.GetPathStyle() {
		details = append(details, "path-style")
	}
	if len(details) > 0 {
		loc += " (" + strings.Join(details, ", ") + ")"
	}
	t.row("Location:", loc)
	t.row("Access:", repositoryAccess(r))
	t.row("Writer:", repositoryWriter(r))
	t.row("Credentials:", repositoryCredentials(s))
	t.row("Rate limit:", repositoryRate(s))
	t.row("Copies:", fmt.Sprintf("server-side to the repository: %s; from it: %s (otherwise streamed through the nodes)",
		yesNo(r.GetCopyToRepository()), yesNo(r.GetCopyFromRepository())))
	t.row("Description:", orDash(s.GetDescription()))
	t.row("Registered:", timestamp(r.GetRegisteredAtUnixMs()))
	return t.flush()
}

// printRepositories writes a table of repositories.
func printRepositories(w io.Writer, repos []*snapkeepv1.Repository) error {
	t := newTable(w, "NAME", "LOCATION", "ENDPOINT", "ACCESS", "WRITER", "CREDENTIALS", "RATE LIMIT", "REGISTERED")
	for _, r := range repos {
		s := r.GetSpec()
		access := "read-write"
		if s.GetReadOnly() {
			access = "read-only"
		}
		rate := "-"
		if s.GetBytesPerSecond() > 0 {
			rate = humanBytes(s.GetBytesPerSecond()) + "/s"
		}
		t.row(s.GetName(), repositoryLocation(s), orDash(s.GetEndpoint()), access, repositoryWriter(r),
			orDash(s.GetCredentials()), rate, timestamp(r.GetRegisteredAtUnixMs()))
	}
	return t.flush()
}

func (a *app) repositoryListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the registered repositories",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				repos, err := cl.ListRepositories(ctx)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.ListRepositoriesResponse{Repositories: repos})
				}
				return printRepositories(cmd.OutOrStdout(), repos)
			})
		},
	}
}

func (a *app) repositoryUnregisterCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unregister NAME",
		Short: "Forget a repository (nothing in it is deleted; refused while a job uses it)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.UnregisterRepository(ctx, args[0])
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				if !resp.GetExisted() {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "No repository %q: nothing to unregister.\n", args[0])
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Unregistered repository %q; nothing in it was deleted.\n", args[0])
				return err
			})
		},
	}
}

func (a *app) repositorySnapshotsCmd() *cobra.Command {
	var database, collection string
	snapshots := &cobra.Command{
		Use:   "snapshots REPO",
		Short: "List the snapshots in a repository (its latest index; any cluster can restore them)",
		Args:  exactArgs("REPO"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opt := client.NewListRepositorySnapshotsOption(args[0]).WithDatabase(database).WithCollection(collection)
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.ListRepositorySnapshots(ctx, opt)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				return printRepositorySnapshots(cmd.OutOrStdout(), args[0], resp)
			})
		},
	}
	snapshots.Flags().StringVar(&database, "database", "", "only snapshots of collections of this database")
	snapshots.Flags().StringVar(&collection, "collection", "", "only snapshots of this collection")
	return snapshots
}

// printRepositorySnapshots writes a repository's index: a line, then its snapshots.
func printRepositorySnapshots(w io.Writer, repo string, resp *snapkeepv1.ListRepositorySnapshotsResponse) error {
	fmt.Fprintf(w, "Repository %q (id %s), index generation %d: %d snapshots\n\n",
		repo, orDash(resp.GetRepositoryId()), resp.GetGeneration(), len(resp.GetSnapshots()))
	t := newTable(w, "ID", "NAME", "DATABASE/COLLECTION", "EXPORTED", "FILES", "BYTES", "SOURCE CLUSTER")
	for _, s := range resp.GetSnapshots() {
		t.row(s.GetId(), s.GetName(), orDash(s.GetDatabase())+"/"+s.GetCollection(), timestamp(s.GetExportedAtUnixMs()),
			s.GetFiles(), humanBytes(s.GetBytes()), orDash(s.GetSourceClusterId()))
	}
	return t.flush()
}

func (a *app) repositoryDeleteSnapshotCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete-snapshot REPO ID",
		Short: "Remove a snapshot from a repository's index (repository gc deletes its objects)",
		Args:  exactArgs("REPO", "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.DeleteRepositorySnapshot(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				if !resp.GetExisted() {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "No snapshot %s in repository %q: nothing to delete.\n", args[1], args[0])
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Deleted snapshot %s from repository %q (index generation %d). "+
					"Its objects go at the next: snapkeep repository gc %s\n", args[1], args[0], resp.GetGeneration(), args[0])
				return err
			})
		},
	}
}

func (a *app) repositoryGCCmd() *cobra.Command {
	var dryRun, listAll bool
	var grace time.Duration
	gc := &cobra.Command{
		Use:   "gc REPO",
		Short: "Delete a repository's objects no snapshot of its index references (--dry-run: list them)",
		Long: `Delete the repository's objects that no snapshot of its latest index references
(the data objects and manifests of deleted snapshots, superseded index generations).
Objects an export in progress needs are never deleted, nor objects younger than the
grace (default: the server's, 1 hour; --grace 0s keeps none back). With --dry-run
nothing is deleted and the candidates are listed.`,
		Args: exactArgs("REPO"),
		RunE: func(cmd *cobra.Command, args []string) error {
			g := time.Duration(0) // the server's default
			if flagChanged(cmd.Flags(), "grace") {
				if grace < 0 {
					return usageErrorf("--grace %v cannot be negative", grace)
				}
				g = grace
				if grace == 0 {
					g = -1 // keep none back
				}
			}
			limit := flagChanged(cmd.Flags(), "timeout")
			return a.withClient(cmd, limit, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.CollectRepository(ctx, args[0], dryRun, g)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				return printRepositoryGC(cmd.OutOrStdout(), args[0], resp, dryRun, dryRun || listAll)
			})
		},
	}
	gc.Flags().BoolVar(&dryRun, "dry-run", false, "delete nothing; list the objects that would go")
	gc.Flags().BoolVar(&listAll, "list", false, "list the keys deleted (the first 1,000)")
	gc.Flags().DurationVar(&grace, "grace", 0, "keep objects younger than this (default: the server's, 1h; 0s: none)")
	return gc
}

// printRepositoryGC writes a repository collection's report, and its keys when
// withKeys.
func printRepositoryGC(w io.Writer, repo string, r *snapkeepv1.CollectRepositoryResponse, dryRun, withKeys bool) error {
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	fmt.Fprintf(w, "Repository %q: %s %d objects (%s) and %d index generations, %d errors.\n",
		repo, verb, r.GetObjectsDeleted(), humanBytes(r.GetBytesDeleted()), r.GetGenerationsDeleted(), len(r.GetErrors()))
	fmt.Fprintf(w, "Listed %d objects: %d referenced by its snapshots, %d needed by exports in progress, %d younger than the grace.\n",
		r.GetObjectsListed(), r.GetObjectsReferenced(), r.GetObjectsProtected(), r.GetObjectsYoung())
	for _, e := range r.GetErrors() {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	if !withKeys || len(r.GetKeys()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w, "KEY")
	for _, k := range r.GetKeys() {
		t.row(k)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if uint64(len(r.GetKeys())) < r.GetObjectsDeleted() {
		fmt.Fprintf(w, "(the first %d of %d keys)\n", len(r.GetKeys()), r.GetObjectsDeleted())
	}
	return nil
}

func (a *app) repositoryVerifyCmd() *cobra.Command {
	var deep bool
	var snapshot string
	verify := &cobra.Command{
		Use:   "verify REPO",
		Short: "Check a repository's snapshots (exit status 1 unless every check passes)",
		Long: `Check every snapshot in the repository's index (or only --snapshot ID): its manifest,
and that every data object it names is there with the right size (by listing). With
--deep every object is also read in full and its CRC-32C compared with the
manifest's: this reads the whole repository. Each problem is listed with its
snapshot, key and what is wrong; the exit status is 1 unless there is none.`,
		Args: exactArgs("REPO"),
		RunE: func(cmd *cobra.Command, args []string) error {
			limit := flagChanged(cmd.Flags(), "timeout")
			return a.withClient(cmd, limit, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.VerifyRepository(ctx, args[0], deep, snapshot)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.json() {
					err = writeJSON(out, resp)
				} else {
					err = printRepositoryVerification(out, args[0], resp)
				}
				if err != nil {
					return err
				}
				if !resp.GetOk() {
					return fmt.Errorf("repository %q failed verification: %d problems", args[0], problemCount(resp))
				}
				return nil
			})
		},
	}
	verify.Flags().BoolVar(&deep, "deep", false, "read every object in full and check its CRC-32C")
	verify.Flags().StringVar(&snapshot, "snapshot", "", "check only the snapshot with this `ID` (its id in the repository)")
	return verify
}

// problemCount is how many problems a verification found (the list may be cut).
func problemCount(r *snapkeepv1.VerifyRepositoryResponse) uint64 {
	return max(r.GetProblemCount(), uint64(len(r.GetProblems())))
}

// printRepositoryVerification writes a verification's totals and every problem.
func printRepositoryVerification(w io.Writer, repo string, r *snapkeepv1.VerifyRepositoryResponse) error {
	verdict := "ok"
	if !r.GetOk() {
		verdict = fmt.Sprintf("%d problems", problemCount(r))
	}
	read := ""
	if r.GetBytesRead() > 0 {
		read = fmt.Sprintf(", %s read", humanBytes(r.GetBytesRead()))
	}
	fmt.Fprintf(w, "Repository %q: checked %d snapshots, %d objects (%s%s): %s.\n",
		repo, r.GetSnapshots(), r.GetObjects(), humanBytes(r.GetBytes()), read, verdict)
	if len(r.GetProblems()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w, "SNAPSHOT", "KEY", "PROBLEM")
	for _, p := range r.GetProblems() {
		t.row(orDash(p.GetSnapshot()), orDash(p.GetKey()), p.GetProblem())
	}
	if err := t.flush(); err != nil {
		return err
	}
	if n := problemCount(r); uint64(len(r.GetProblems())) < n {
		fmt.Fprintf(w, "(the first %d of %d problems)\n", len(r.GetProblems()), n)
	}
	return nil
}
