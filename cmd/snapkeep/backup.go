package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
)

// addBackupFlags adds the scheduled-backup flags of `snapkeep server`.
func addBackupFlags(cmd *cobra.Command, cfg *server.BackupConfig) {
	fl := cmd.Flags()
	fl.DurationVar(&cfg.Interval, "backup-interval", 0, "how often the leader writes a metadata backup to the bucket (0: off)")
	fl.IntVar(&cfg.Retain, "backup-retain", server.DefaultBackupRetain, "how many backups in the bucket are kept, the oldest deleted first")
	fl.StringVar(&cfg.Prefix, "backup-prefix", server.DefaultBackupPrefix, "where backups go under --root (never touched by GC's orphan scan)")
}

// backupCmds are `cluster backup` and `cluster restore`.
func (a *app) backupCmds() []*cobra.Command {
	var toS3 bool
	bk := &cobra.Command{
		Use:   "backup FILE | --to-s3",
		Short: "Back up the cluster's metadata (the catalog) to a file, or to the bucket",
		Long: `Back up the cluster's metadata: a raft snapshot of the catalog, taken from a
linearizable read, behind a header with its SHA-256, length, raft index and term,
creation time and node. FILE is written atomically (temporary file, verify, rename).

With --to-s3 the leader writes the backup to the bucket under --backup-prefix (see
snapkeep server) and deletes the oldest beyond --backup-retain; the key is printed.

The segment files themselves are not in the backup: they stay in the bucket.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if toS3 {
				return exactArgs()(cmd, args)
			}
			return exactArgs("FILE")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, false, func(ctx context.Context, cl *client.Client) error {
				if a.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, max(a.timeout, 10*time.Minute))
					defer cancel()
				}
				if toS3 {
					resp, err := cl.BackupToStore(ctx)
					if err != nil {
						return err
					}
					if a.json() {
						return writeJSON(cmd.OutOrStdout(), resp)
					}
					fmt.Fprintln(cmd.OutOrStdout(), resp.Key)
					printBackupInfo(cmd, resp.Info)
					for _, k := range resp.Deleted {
						fmt.Fprintf(cmd.ErrOrStderr(), "deleted old backup %s\n", k)
					}
					return nil
				}
				info, err := cl.BackupToFile(ctx, args[0])
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), info)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", args[0])
				printBackupInfo(cmd, info)
				return nil
			})
		},
	}
	bk.Flags().BoolVar(&toS3, "to-s3", false, "have the leader write the backup to the bucket now and print its key")

	var force bool
	rs := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore the cluster's metadata from a backup file (disaster recovery)",
		Long: `Restore a metadata backup into a running cluster — normally a fresh one — through
the leader, which installs it with raft's snapshot restore and replicates it to the
followers. The file's header, length and SHA-256 are verified first, here and on
the leader, and every record is decoded before anything changes: a damaged file is
refused and the cluster is left as it was.

The whole catalog is replaced. A cluster whose catalog is not empty (any database
besides default, collection, segment, snapshot or restore job) is refused unless
--force is given. See docs/OPERATIONS.md for the disaster-recovery procedure.`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, false, func(ctx context.Context, cl *client.Client) error {
				if a.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, max(a.timeout, 15*time.Minute))
					defer cancel()
				}
				resp, err := cl.RestoreBackupFile(ctx, args[0], force)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "restored %s at raft index %d\n", args[0], resp.InstalledIndex)
				printBackupInfo(cmd, resp.Restored)
				return nil
			})
		},
	}
	rs.Flags().BoolVar(&force, "force", false, "replace a catalog that is not empty")
	return []*cobra.Command{bk, rs}
}

func printBackupInfo(cmd *cobra.Command, info *snapkeepv1.BackupInfo) {
	if info == nil {
		return
	}
	fmt.Fprintf(cmd.OutOrStdout(), "backup of raft index %d (term %d) taken by %s at %s: %d bytes, sha256 %s\n",
		info.RaftIndex, info.RaftTerm, info.NodeId, time.Unix(0, info.CreatedAt).UTC().Format(time.RFC3339),
		info.FileSize, info.Sha256)
}
