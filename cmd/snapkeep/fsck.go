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

func (a *app) fsckCmd() *cobra.Command {
	var database, collection string
	var deep, skipRepositories bool
	var rate int64
	var concurrency uint32
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Cross-check the catalog, the snapshots' manifests and the bucket (exit status 1 unless clean)",
		Long: `Check that what the catalog says is in the bucket is there: every file of a
flushed segment, of an index build and of the segments and builds a snapshot pins is
listed with its size (one listing per collection prefix, never a HEAD per file);
with --deep each is read back in full and its CRC-32C compared with the catalog's.
Every committed snapshot's manifest must be present with the size and xxhash64 the
catalog recorded, decode, and list exactly the captured segments, file lists and
index builds. Without --collection, every registered repository is verified too, as
'repository verify' does (--deep reads its objects back). Objects under those prefixes that no record owns are listed as
orphans with their ages (the collector's business: they do not make the check
fail). Each problem names the key, what is wrong, and the segments, builds and
snapshots it breaks. Nothing is written. The exit status is 1 unless clean.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt := client.NewFsckOption()
			if collection != "" || database != "" {
				opt.WithCollection(database, collection)
			}
			if deep {
				opt.WithDeep(rate, concurrency)
			}
			if skipRepositories {
				opt.WithoutRepositories()
			}
			limit := flagChanged(cmd.Flags(), "timeout")
			return a.withClient(cmd, limit, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.Fsck(ctx, opt)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.json() {
					err = writeJSON(out, resp)
				} else {
					err = printFsck(out, resp)
				}
				if err != nil {
					return err
				}
				if !resp.GetClean() {
					return fmt.Errorf("fsck found %d problems; snapshots broken: %s", len(resp.GetProblems()), uintsText(resp.GetBrokenSnapshotIds()))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&database, "database", "", "the collection's database (default: default)")
	cmd.Flags().StringVar(&collection, "collection", "", "check only this collection (default: every collection)")
	cmd.Flags().BoolVar(&deep, "deep", false, "read every data file in full and check its CRC-32C")
	cmd.Flags().Int64Var(&rate, "rate", 0, "with --deep: read at most this many bytes per second (0: no limit)")
	cmd.Flags().Uint32Var(&concurrency, "concurrency", 0, "with --deep: reads in flight on each node (0: the server's default, 8)")
	cmd.Flags().BoolVar(&skipRepositories, "skip-repositories", false, "do not verify the registered repositories")
	return cmd
}

func uintsText(ids []uint64) string {
	if len(ids) == 0 {
		return "none"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, ",")
}

// printFsck writes an fsck's verdict and totals, then every problem and orphan.
func printFsck(w io.Writer, r *snapkeepv1.FsckResponse) error {
	verdict := "clean"
	if !r.GetClean() {
		verdict = fmt.Sprintf("%d problems", len(r.GetProblems()))
	}
	fmt.Fprintf(w, "fsck at log index %d: %s (%s)\n", r.GetAppliedIndex(), verdict, time.Duration(r.GetTookMs())*time.Millisecond)
	fmt.Fprintf(w, "  %d collections, %d files expected (%s), %d objects listed (%s), %d manifests checked\n",
		r.GetCollections(), r.GetFilesExpected(), humanBytes(r.GetBytesExpected()), r.GetObjectsListed(), humanBytes(r.GetBytesListed()), r.GetManifestsChecked())
	if r.GetDeep() {
		fmt.Fprintf(w, "  deep: %d files read back (%s) by %d node(s), CRC-32C compared\n", r.GetFilesRead(), humanBytes(r.GetBytesRead()), r.GetReaders())
		for _, f := range r.GetReadersFailed() {
			fmt.Fprintf(w, "  deep: %s; its files were read by the node called\n", f)
		}
	}
	if n := r.GetRepositoriesChecked(); n > 0 {
		fmt.Fprintf(w, "  %d repositories verified: %d objects referenced (%s)\n", n, r.GetRepositoryObjects(), humanBytes(r.GetRepositoryBytes()))
	}
	if len(r.GetProblems()) > 0 {
		fmt.Fprintln(w)
		t := newTable(w, "PROBLEM", "KEY", "SIZE", "WANT", "SEGMENTS", "SNAPSHOTS", "DETAIL")
		for _, p := range r.GetProblems() {
			t.row(p.GetKind(), p.GetKey(), p.GetSize(), p.GetWant(), uintsText(p.GetSegmentIds()), uintsText(p.GetSnapshotIds()), p.GetDetail())
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "snapshots broken: %s\n", uintsText(r.GetBrokenSnapshotIds()))
	}
	if len(r.GetOrphans()) > 0 {
		fmt.Fprintln(w)
		t := newTable(w, "ORPHAN", "SIZE", "AGE")
		for _, o := range r.GetOrphans() {
			t.row(o.GetKey(), humanBytes(o.GetSize()), (time.Duration(o.GetAgeMs()) * time.Millisecond).Round(time.Second))
		}
		return t.flush()
	}
	return nil
}
