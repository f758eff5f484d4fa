package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// closableStore is an object store that holds connections until closed, like
// *objstore.S3.
type closableStore interface {
	objstore.Store
	io.Closer
}

func openS3Store(ctx context.Context, cfg objstore.S3Config) (closableStore, error) {
	return objstore.NewS3(ctx, cfg)
}

// isTerminal reports whether w is an interactive terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// sizeUnits are the suffixes parseSize accepts (case-insensitive), binary and decimal.
var sizeUnits = []struct {
	suffix string
	factor int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// parseSize parses a byte size: plain bytes ("4096") or a number with a unit
// ("4KiB", "1.5MiB", "2MB", "64k"). K, M, G and T alone are binary.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	factor := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, factor = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.factor
			break
		}
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil && n >= 0 {
		if n > math.MaxInt64/factor {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return n * factor, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || t == "" {
		return 0, fmt.Errorf("size %q: want bytes, or a number with a unit such as 4KiB, 1MiB or 2GB", s)
	}
	if f*float64(factor) >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(f * float64(factor)), nil
}

// s3Credentials are the credentials generate and manifest use, and where they came
// from (named in an error when S3 refuses them).
type s3Credentials struct {
	accessKey, secretKey, sessionToken string
	source                             string
}

// Where credentials came from.
const (
	credsFromFlag  = "flag --s3-access-key"
	credsFromEnv   = "env AWS_ACCESS_KEY_ID"
	credsFromDev   = "--dev: the dev keys of snapkeep dev's embedded S3"
	credsFromChain = "the AWS default credential chain (no --s3-access-key, AWS_ACCESS_KEY_ID or --dev given)"
)

// resolveCredentials takes S3 credentials from the flags, else from the environment;
// with dev, the embedded server's dev keys (and nothing else: they are wrong for any
// other S3, even one on 127.0.0.1); none at all leaves the AWS default chain to find
// them.
func resolveCredentials(accessKey, secretKey string, dev bool) (s3Credentials, error) {
	if dev {
		if accessKey != "" || secretKey != "" {
			return s3Credentials{}, usageErrorf("--dev uses the dev keys of snapkeep dev's embedded S3: give --dev or --s3-access-key/--s3-secret-key, not both")
		}
		return s3Credentials{accessKey: objstore.EmbeddedAccessKey, secretKey: objstore.EmbeddedSecretKey, source: credsFromDev}, nil
	}
	creds := s3Credentials{accessKey: accessKey, secretKey: secretKey, source: credsFromFlag}
	if creds.accessKey == "" && creds.secretKey == "" {
		creds = s3Credentials{
			accessKey:    os.Getenv("AWS_ACCESS_KEY_ID"),
			secretKey:    os.Getenv("AWS_SECRET_ACCESS_KEY"),
			sessionToken: os.Getenv("AWS_SESSION_TOKEN"),
			source:       credsFromEnv,
		}
	}
	if (creds.accessKey == "") != (creds.secretKey == "") {
		return s3Credentials{}, usageErrorf("give both an S3 access key and a secret key, or neither")
	}
	if creds.accessKey == "" {
		creds.source = credsFromChain
	}
	return creds, nil
}

// describe names the credentials for an error message: the access key id (not a
// secret) and where it came from.
func (c s3Credentials) describe() string {
	if c.accessKey == "" {
		return c.source
	}
	return fmt.Sprintf("access key id %q (from %s)", c.accessKey, c.source)
}

// explainAuthError adds to an error S3 answered with 403 (InvalidAccessKeyId,
// SignatureDoesNotMatch, AccessDenied) which credentials were used, since the
// server's message does not say.
func explainAuthError(err error, creds s3Credentials) error {
	if err == nil || !errors.Is(err, objstore.ErrAccessDenied) {
		return err
	}
	hint := ""
	if creds.source != credsFromDev {
		hint = "; against snapkeep dev's embedded S3, add --dev"
	}
	return fmt.Errorf("%w\nS3 refused the credentials: %s%s", err, creds.describe(), hint)
}

// openClusterStore opens the bucket the cluster reports in its status.
func (a *app) openClusterStore(ctx context.Context, cl *client.Client, creds s3Credentials) (closableStore, error) {
	status, err := cl.ClusterStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("ask the cluster where it stores objects: %w", err)
	}
	cfg, err := storeConfig(status.GetStorage(), creds)
	if err != nil {
		return nil, err
	}
	store, err := a.openStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open bucket %q: %w", cfg.Bucket, err)
	}
	return store, nil
}

// storeConfig turns the cluster's storage description and the credentials into an
// S3 configuration. Without credentials it leaves the SDK's default chain to find
// them.
func storeConfig(info *snapkeepv1.StorageInfo, creds s3Credentials) (objstore.S3Config, error) {
	if info.GetBucket() == "" {
		return objstore.S3Config{}, errors.New("the cluster reports no storage bucket; is it configured with one?")
	}
	return objstore.S3Config{
		Endpoint:     info.GetEndpoint(),
		Region:       info.GetRegion(),
		Bucket:       info.GetBucket(),
		PathStyle:    info.GetPathStyle(),
		AccessKey:    creds.accessKey,
		SecretKey:    creds.secretKey,
		SessionToken: creds.sessionToken,
	}, nil
}

type generateFlags struct {
	database, collection, partition string
	segments, filesPerSegment       int
	fileSize                        string
	concurrency                     int
	seed, rowsPerSegment            int64
	create                          bool
	layout                          string
	accessKey, secretKey            string
	dev                             bool
}

// generateSummary is the -o json output of generate.
type generateSummary struct {
	Collection  string   `json:"collection"`
	Segments    int      `json:"segments"`
	Files       int      `json:"files"`
	Bytes       int64    `json:"bytes"`
	ElapsedSecs float64  `json:"elapsed_seconds"`
	MBPerSec    float64  `json:"mb_per_second"`
	SegmentIDs  []uint64 `json:"segment_ids"`
}

func (a *app) generateCmd() *cobra.Command {
	var f generateFlags
	cmd := &cobra.Command{
		Use:   "generate --collection C --segments N --files-per-segment F --file-size S",
		Short: "Write synthetic segments: allocate, upload random files to S3, flush",
		Long: `generate writes synthetic segments into a collection: for each segment it
allocates it, uploads its files (insert binlogs, then a delta, stats and bm25 log
as the count allows) with CRC-32C checksums under the segment's prefix, and flushes
it. The content is pseudo-random and a pure function of --seed.

The bucket comes from the cluster (cluster status shows it). Credentials come from
--s3-access-key/--s3-secret-key, else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else
the default AWS chain; against snapkeep dev's embedded S3, give --dev to use its dev
keys. When S3 refuses the credentials, the error says which were used. A failed run
drops the segments it allocated but could not flush.

--timeout does not bound generate unless given explicitly.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runGenerate(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.collection, "collection", "", "collection to write into (required)")
	fl.StringVar(&f.database, "database", "", "the collection's database (default \"default\")")
	fl.StringVar(&f.partition, "partition", "", "partition to write into (default \"_default\")")
	fl.IntVar(&f.segments, "segments", 10, "number of segments")
	fl.IntVar(&f.filesPerSegment, "files-per-segment", 4, "files in each segment")
	fl.StringVar(&f.fileSize, "file-size", "1MiB", "size of each file: bytes, or with a unit (4KiB, 1MiB, 1GB)")
	fl.IntVar(&f.concurrency, "concurrency", datagen.DefaultConcurrency, "uploads in flight")
	fl.Int64Var(&f.seed, "seed", 1, "seed of the pseudo-random content")
	fl.Int64Var(&f.rowsPerSegment, "rows-per-segment", datagen.DefaultRowsPerSegment, "row count recorded for each segment")
	fl.BoolVar(&f.create, "create", false, "create the collection (and --partition) if it does not exist")
	fl.StringVar(&f.layout, "layout", "", "with --create: the new collection's key layout, snapkeep (the default) or milvus (files at Milvus's insert_log/, delta_log/, stats_log/, bm25_stats/ keys)")
	fl.StringVar(&f.accessKey, "s3-access-key", "", "S3 access key (env AWS_ACCESS_KEY_ID)")
	fl.StringVar(&f.secretKey, "s3-secret-key", "", "S3 secret key (env AWS_SECRET_ACCESS_KEY)")
	fl.BoolVar(&f.dev, "dev", false, "use the dev keys of snapkeep dev's embedded S3")
	return cmd
}

func (a *app) runGenerate(cmd *cobra.Command, f generateFlags) error {
	switch {
	case f.collection == "":
		return usageErrorf("--collection is required")
	case f.segments < 1:
		return usageErrorf("--segments %d: want at least 1", f.segments)
	case f.filesPerSegment < 1:
		return usageErrorf("--files-per-segment %d: want at least 1", f.filesPerSegment)
	case f.concurrency < 1:
		return usageErrorf("--concurrency %d: want at least 1", f.concurrency)
	case f.rowsPerSegment < 0:
		return usageErrorf("--rows-per-segment %d: cannot be negative", f.rowsPerSegment)
	}
	fileSize, err := parseSize(f.fileSize)
	if err != nil {
		return &usageError{err: fmt.Errorf("--file-size: %w", err)}
	}
	creds, err := resolveCredentials(f.accessKey, f.secretKey, f.dev)
	if err != nil {
		return err
	}

	// The run time grows with the data: only an explicit --timeout bounds it.
	limit := flagChanged(cmd.Flags(), "timeout")
	return a.withClient(cmd, limit, func(ctx context.Context, cl *client.Client) error {
		store, err := a.openClusterStore(ctx, cl, creds)
		if err != nil {
			return err
		}
		defer store.Close()

		if f.create {
			if err := ensureCollection(ctx, cl, f, cmd.ErrOrStderr()); err != nil {
				return err
			}
		}

		progress, finish := a.progressReporter(cmd, f.segments, int64(f.filesPerSegment)*fileSize)
		res, err := datagen.Generate(ctx, cl, store, datagen.Options{
			Database: f.database, Collection: f.collection, Partition: f.partition,
			Segments: f.segments, FilesPerSegment: f.filesPerSegment, FileSize: fileSize,
			Concurrency: f.concurrency, Seed: f.seed, RowsPerSegment: f.rowsPerSegment,
			Progress: progress,
		})
		finish()
		if res != nil {
			if perr := a.printGenerateSummary(cmd.OutOrStdout(), f.collection, res, err != nil); perr != nil && err == nil {
				err = perr
			}
		}
		return explainAuthError(err, creds)
	})
}

// ensureCollection creates the collection (with the partition) unless it exists.
func ensureCollection(ctx context.Context, cl *client.Client, f generateFlags, log io.Writer) error {
	resp, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(f.collection).WithDatabase(f.database))
	switch {
	case errors.Is(err, client.ErrNotFound) || (err == nil && isDropped(resp.GetCollection())):
		keyLayout, err := parseKeyLayout(f.layout)
		if err != nil {
			return err
		}
		opt := client.NewCreateCollectionOption(f.collection).WithDatabase(f.database).
			WithDescription("synthetic data from snapkeep generate").WithLayout(keyLayout)
		if f.partition != "" && f.partition != "_default" {
			opt.WithPartitions(f.partition)
		}
		if _, err := cl.CreateCollection(ctx, opt); err != nil && !errors.Is(err, client.ErrAlreadyExists) {
			return fmt.Errorf("create collection %q: %w", f.collection, err)
		}
		fmt.Fprintf(log, "Created collection %q.\n", f.collection)
		return nil
	case err != nil:
		return err
	}
	if want, err := parseKeyLayout(f.layout); err == nil && f.layout != "" && resp.GetCollection().GetLayout() != want {
		fmt.Fprintf(log, "Collection %q exists with key layout %s; --layout %s applies only to a new collection.\n",
			f.collection, enumName(resp.GetCollection().GetLayout()), f.layout)
	}
	if f.partition == "" || f.partition == "_default" {
		return nil
	}
	for _, p := range resp.GetCollection().GetPartitions() {
		if p.GetName() == f.partition {
			return nil
		}
	}
	if _, err := cl.CreatePartition(ctx, client.NewCreatePartitionOption(f.collection, f.partition).WithDatabase(f.database)); err != nil && !errors.Is(err, client.ErrAlreadyExists) {
		return fmt.Errorf("create partition %q: %w", f.partition, err)
	}
	fmt.Fprintf(log, "Created partition %q of collection %q.\n", f.partition, f.collection)
	return nil
}

// progressReporter returns a datagen progress callback and a function to call when
// generation ends: a progress bar when stdout is a terminal, otherwise a line on
// stderr every few seconds.
func (a *app) progressReporter(cmd *cobra.Command, total int, bytesPerSegment int64) (func(done, total int), func()) {
	if out := cmd.OutOrStdout(); a.isTerminal(out) {
		bar := progressbar.NewOptions(total,
			progressbar.OptionSetWriter(out),
			progressbar.OptionSetDescription("segments"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("segments"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
		return func(done, _ int) { _ = bar.Set(done) }, func() { _ = bar.Finish() }
	}
	const every = 3 * time.Second
	start := time.Now()
	last := start
	return func(done, total int) { // datagen calls it one call at a time
		if now := time.Now(); now.Sub(last) >= every && done < total {
			last = now
			bytes := int64(done) * bytesPerSegment
			fmt.Fprintf(cmd.ErrOrStderr(), "generate: %d/%d segments, %s, %.1f MB/s\n",
				done, total, humanBytes(uint64(bytes)), mbPerSec(bytes, now.Sub(start)))
		}
	}, func() {}
}

func mbPerSec(bytes int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / elapsed.Seconds()
}

func (a *app) printGenerateSummary(w io.Writer, collection string, res *datagen.Result, failed bool) error {
	rate := mbPerSec(res.Bytes, res.Elapsed)
	if a.json() {
		return writePlainJSON(w, generateSummary{
			Collection: collection, Segments: len(res.SegmentIDs), Files: res.Files, Bytes: res.Bytes,
			ElapsedSecs: res.Elapsed.Seconds(), MBPerSec: math.Round(rate*100) / 100, SegmentIDs: nonNil(res.SegmentIDs),
		})
	}
	verb := "Generated"
	if failed {
		verb = "Before failing, generated"
	}
	_, err := fmt.Fprintf(w, "%s %d segments in collection %q: %d files, %s in %s (%.1f MB/s)\n",
		verb, len(res.SegmentIDs), collection, res.Files, humanBytes(uint64(res.Bytes)), res.Elapsed.Round(time.Millisecond), rate)
	return err
}

func nonNil(ids []uint64) []uint64 {
	if ids == nil {
		return []uint64{}
	}
	return ids
}
