package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/objstore"
)

func (a *app) manifestCmd() *cobra.Command {
	cmd := groupCmd("manifest", "Inspect and verify snapshot manifests (a local file or an object)")
	var key, accessKey, secretKey string
	var dev bool

	// withManifest opens the manifest named by the argument (a file) or by --key (an
	// object in the cluster's bucket) and calls fn with it.
	withManifest := func(cmd *cobra.Command, args []string, fn func(r io.ReaderAt, size int64) error) error {
		switch {
		case key == "" && len(args) != 1:
			return usageErrorf("give a manifest FILE or --key KEY")
		case key != "" && len(args) != 0:
			return usageErrorf("give a manifest FILE or --key KEY, not both")
		}
		if key == "" {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			info, err := f.Stat()
			if err != nil {
				return err
			}
			return fn(f, info.Size())
		}
		creds, err := resolveCredentials(accessKey, secretKey, dev)
		if err != nil {
			return err
		}
		return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
			store, err := a.openClusterStore(ctx, cl, creds)
			if err != nil {
				return err
			}
			defer store.Close()
			info, err := store.Head(ctx, key)
			if err != nil {
				return explainAuthError(fmt.Errorf("manifest object %q: %w", key, err), creds)
			}
			return explainAuthError(fn(objstore.NewReaderAt(ctx, store, key, info.Size), info.Size), creds)
		})
	}
	inspect := &cobra.Command{
		Use:   "inspect [FILE]",
		Short: "Print a manifest as JSON: header, summary, blocks and every segment with its files",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManifest(cmd, args, func(r io.ReaderAt, size int64) error {
				rd, err := manifest.Open(r, size)
				if err != nil {
					return err
				}
				return manifest.Dump(cmd.OutOrStdout(), rd)
			})
		},
	}
	verify := &cobra.Command{
		Use:   "verify [FILE]",
		Short: "Check every checksum, block, file list and count of a manifest (exit 1 if anything is wrong)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManifest(cmd, args, func(r io.ReaderAt, size int64) error {
				report, err := manifest.Verify(r, size)
				if err != nil {
					return err
				}
				if a.json() {
					return writePlainJSON(cmd.OutOrStdout(), report)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "OK: %s\n", report)
				return err
			})
		},
	}
	for _, c := range []*cobra.Command{inspect, verify} {
		c.Flags().StringVar(&key, "key", "", "read the manifest object with this full key from the cluster's bucket (as snapshot describe shows it)")
		c.Flags().StringVar(&accessKey, "s3-access-key", "", "S3 access key (default: env AWS_ACCESS_KEY_ID, then the AWS default chain)")
		c.Flags().StringVar(&secretKey, "s3-secret-key", "", "S3 secret key (default: env AWS_SECRET_ACCESS_KEY)")
		c.Flags().BoolVar(&dev, "dev", false, "with --key: use the dev keys of snapkeep dev's embedded S3")
	}
	cmd.AddCommand(inspect, verify)
	return cmd
}
