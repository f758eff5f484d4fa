package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

func (a *app) storageCmd() *cobra.Command {
	cmd := groupCmd("storage", "Check the object storage the cluster uses")
	var repo string
	var asJSON bool
	analyzeCmd := &cobra.Command{
		Use:   "analyze",
		Short: "Check what the bucket (or a repository) really does, from every node (exit status 1 on an unsafe behaviour)",
		Long: `analyze has every node of the cluster check the cluster's bucket (or, with
--repository, a registered repository's, with the node's own credentials for it) at
once: read-after-write, overwrite visibility, list-after-write, listing order and
pagination, conditional PUT (If-None-Match: *), CopyObject checksums (in the response,
on HEAD, computed rather than echoed), UploadPartCopy, DeleteObjects, the shapes of
404/416/403 errors, concurrent writers, and each operation's latency and throughput;
then across nodes (written on one node, read and listed on the others; one key written
by all at once). It writes a few MiB under .snapkeep-analyze/ and deletes them.

It prints a table per node and the feature map: which snapkeep feature relies on
which behaviour and what it uses (the behaviour, its fallback, or nothing: unsafe).
The exit status is 1 when any behaviour is unsafe or a check could not finish.
Admin only. --timeout applies only when given (the analysis takes seconds to minutes).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON {
				a.output = "json"
			}
			limit := flagChanged(cmd.Flags(), "timeout")
			return a.withClient(cmd, limit, func(ctx context.Context, cl *client.Client) error {
				if !limit {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 10*time.Minute)
					defer cancel()
				}
				resp, err := cl.AnalyzeStorage(ctx, repo)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.json() {
					err = writeJSON(out, resp)
				} else {
					err = printStorageAnalysis(out, resp)
				}
				if err != nil {
					return err
				}
				return analysisVerdict(resp)
			})
		},
	}
	analyzeCmd.Flags().StringVar(&repo, "repository", "", "analyze this registered `REPO` instead of the cluster's bucket")
	analyzeCmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (as -o json)")
	cmd.AddCommand(analyzeCmd)
	return cmd
}

// analysisVerdict is the command's error: unsafe behaviour first, then checks or
// nodes that did not reach a verdict.
func analysisVerdict(r *snapkeepv1.AnalyzeStorageResponse) error {
	switch {
	case r.GetUnsafe():
		return fmt.Errorf("%s: unsafe behaviour found (see the checks marked unsafe)", r.GetTarget())
	case r.GetErrors():
		return fmt.Errorf("%s: some checks could not finish (see the errors above)", r.GetTarget())
	}
	return nil
}

func printStorageAnalysis(w io.Writer, r *snapkeepv1.AnalyzeStorageResponse) error {
	var errs []error
	p := func(format string, args ...any) {
		_, err := fmt.Fprintf(w, format, args...)
		errs = append(errs, err)
	}
	p("Storage analysis of %s (run %s)\n", r.GetTarget(), r.GetRunId())
	for _, n := range r.GetNodes() {
		p("\nNode %s", n.GetNode())
		if n.GetPrefix() != "" {
			p(" (under %s)", n.GetPrefix())
		}
		p("\n")
		if n.GetError() != "" {
			p("  error: %s\n", n.GetError())
			continue
		}
		t := newTable(w, "CHECK", "OUTCOME", "TIME", "DETAIL")
		for _, c := range n.GetChecks() {
			t.row(c.GetName(), enumName(c.GetOutcome()), micros(c.GetElapsedUs()), c.GetDetail())
		}
		errs = append(errs, t.flush())
		p("\n")
		t = newTable(w, "OP", "COUNT", "MIN", "P50", "MAX", "BYTES", "THROUGHPUT")
		for _, o := range n.GetOps() {
			rate := "-"
			if o.GetBytes() > 0 && o.GetTotalUs() > 0 {
				rate = humanBytes(uint64(float64(o.GetBytes())/(float64(o.GetTotalUs())/1e6))) + "/s"
			}
			t.row(o.GetOp(), o.GetCount(), micros(o.GetMinUs()), micros(o.GetP50Us()), micros(o.GetMaxUs()), humanBytes(o.GetBytes()), rate)
		}
		errs = append(errs, t.flush())
		if n.GetCleanupError() != "" {
			p("  cleanup: %s\n", n.GetCleanupError())
		}
	}
	if len(r.GetCrossNode()) > 0 {
		p("\nAcross nodes\n")
		t := newTable(w, "CHECK", "OUTCOME", "DETAIL")
		for _, c := range r.GetCrossNode() {
			t.row(c.GetName(), enumName(c.GetOutcome()), c.GetDetail())
		}
		errs = append(errs, t.flush())
	}
	p("\nFeature map\n")
	t := newTable(w, "BEHAVIOUR", "OUTCOME", "SNAPKEEP USES", "RELIED ON BY")
	for _, f := range r.GetFeatures() {
		t.row(f.GetBehaviour(), enumName(f.GetOutcome()), f.GetUses(), f.GetFeature())
	}
	errs = append(errs, t.flush())
	verdict := "safe: every behaviour snapkeep relies on is there or has a fallback"
	switch {
	case r.GetUnsafe():
		verdict = "UNSAFE: at least one behaviour snapkeep relies on is broken"
	case r.GetErrors():
		verdict = "incomplete: some checks could not finish"
	}
	p("\nVerdict: %s\n", verdict)
	return errors.Join(errs...)
}

func micros(us int64) string {
	return (time.Duration(us) * time.Microsecond).Round(10 * time.Microsecond).String()
}
