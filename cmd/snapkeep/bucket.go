package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/objstore"
)

// bucketNamePattern is S3's rule for new bucket names: 3–63 lowercase letters, digits,
// dots and hyphens, starting and ending with a letter or digit.
var bucketNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// bucketCreator is a store that can create its bucket (*objstore.S3).
type bucketCreator interface {
	CreateBucket(ctx context.Context) error
}

func (a *app) bucketCmd() *cobra.Command {
	cmd := groupCmd("bucket", "Manage S3 buckets (create the one a new cluster will use)")
	var cfg objstore.S3Config
	var dev bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an S3 bucket; one you already own is not an error",
		Long: `create makes the bucket NAME on the S3 server of --s3-endpoint (empty: AWS), for a
cluster to be started with --s3-bucket NAME. Credentials come from
--s3-access-key/--s3-secret-key, else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else
the default AWS chain; --dev uses the dev keys of snapkeep dev's embedded S3.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !bucketNamePattern.MatchString(name) {
				return usageErrorf("bucket name %q: want 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit", name)
			}
			creds, err := resolveCredentials(cfg.AccessKey, cfg.SecretKey, dev)
			if err != nil {
				return err
			}
			s3cfg := cfg
			s3cfg.Bucket = name
			s3cfg.AccessKey, s3cfg.SecretKey, s3cfg.SessionToken = creds.accessKey, creds.secretKey, creds.sessionToken
			ctx := cmd.Context()
			if a.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, a.timeout)
				defer cancel()
			}
			store, err := a.openStore(ctx, s3cfg)
			if err != nil {
				return fmt.Errorf("open S3 at %s: %w", endpointName(s3cfg.Endpoint), err)
			}
			defer store.Close()
			creator, ok := store.(bucketCreator)
			if !ok {
				return errors.New("this object store cannot create buckets")
			}
			if err := creator.CreateBucket(ctx); err != nil {
				return explainAuthError(fmt.Errorf("create bucket %q at %s: %w", name, endpointName(s3cfg.Endpoint), err), creds)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Bucket %q is ready at %s.\n", name, endpointName(s3cfg.Endpoint))
			return err
		},
	}
	fl := create.Flags()
	fl.StringVar(&cfg.Endpoint, "s3-endpoint", "", "S3 endpoint URL (empty: AWS)")
	fl.StringVar(&cfg.Region, "s3-region", "us-east-1", "S3 region")
	fl.BoolVar(&cfg.PathStyle, "s3-path-style", false, "use path-style addressing (most self-hosted S3 servers need it)")
	fl.StringVar(&cfg.AccessKey, "s3-access-key", "", "S3 access key (default: env AWS_ACCESS_KEY_ID, then the AWS default chain)")
	fl.StringVar(&cfg.SecretKey, "s3-secret-key", "", "S3 secret key (default: env AWS_SECRET_ACCESS_KEY)")
	fl.BoolVar(&dev, "dev", false, "use the dev keys of snapkeep dev's embedded S3")
	cmd.AddCommand(create)
	return cmd
}

// endpointName is how messages name an endpoint.
func endpointName(endpoint string) string {
	if endpoint == "" {
		return "AWS S3"
	}
	return endpoint
}
