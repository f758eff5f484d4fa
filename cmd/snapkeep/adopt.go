package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/adopt"
)

// adoptCmd is `snapkeep collection adopt`: register a Milvus collection's files that
// are already in the bucket, without copying anything.
func (a *app) adoptCmd() *cobra.Command {
	var database, keyLayout, accessKey, secretKey string
	var collectionID, defaultPartition uint64
	var names []string
	var dryRun, dev bool
	cmd := &cobra.Command{
		Use:   "adopt NAME --layout milvus --collection-id N",
		Short: "Register a Milvus collection's existing files as collection NAME, without copying or rewriting anything",
		Long: `Adopt lists the Milvus collection's keys under the cluster's storage root
(insert_log/N/, delta_log/N/, stats_log/N/, bm25_stats/N/), groups them into
partitions and segments by the ids in the keys, creates collection NAME in the Milvus
key layout with Milvus's collection and partition ids, and registers every segment
as flushed with its id, its files and their sizes from the listing (one Raft entry
per 500 segments). --dry-run prints the same plan and registers nothing. An
adoption interrupted part-way is resumed by running it again.

What the keys do not say stays empty until you supply it: partition names (ids
become "p<id>", the lowest id "_default"; --partition-name and --default-partition
override), row counts, Milvus's segment and binlog metadata, CRC-32C (unless the
listing carries it; restores then verify by reading source and copy). Index files
and text/JSON key index files are not adopted (their index definitions are not in the
keys). Keys under the collection's prefixes that are not a segment file in Milvus's
shape are reported, never fatal.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyLayout != "milvus" {
				return usageErrorf("--layout %q: adopt reads Milvus's layout; give --layout milvus", keyLayout)
			}
			if collectionID == 0 {
				return usageErrorf("--collection-id is required: the Milvus collection id in the keys")
			}
			partitionNames := map[uint64]string{}
			for _, kv := range names {
				id, name, ok := strings.Cut(kv, "=")
				n, err := strconv.ParseUint(id, 10, 64)
				if !ok || err != nil || name == "" {
					return usageErrorf("--partition-name %q: want ID=NAME", kv)
				}
				partitionNames[n] = name
			}
			creds, err := resolveCredentials(accessKey, secretKey, dev)
			if err != nil {
				return err
			}
			limit := flagChanged(cmd.Flags(), "timeout")
			return a.withClient(cmd, limit, func(ctx context.Context, cl *client.Client) error {
				status, err := cl.ClusterStatus(ctx)
				if err != nil {
					return err
				}
				store, err := a.openClusterStore(ctx, cl, creds)
				if err != nil {
					return err
				}
				defer store.Close()
				opts := adopt.Options{Database: database, Name: args[0], CollectionID: collectionID,
					Root: status.GetStorage().GetRoot(), DefaultPartition: defaultPartition, PartitionNames: partitionNames}
				plan, err := adopt.Scan(ctx, store, opts)
				if err != nil {
					return explainAuthError(err, creds)
				}
				if dryRun {
					return a.printAdoptPlan(cmd.OutOrStdout(), args[0], plan, nil)
				}
				res, err := adopt.Apply(ctx, cl, plan, opts)
				if perr := a.printAdoptPlan(cmd.OutOrStdout(), args[0], plan, res); perr != nil && err == nil {
					err = perr
				}
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&database, "database", "", "the new collection's database (default \"default\")")
	fl.StringVar(&keyLayout, "layout", "milvus", "the key layout to read (milvus)")
	fl.Uint64Var(&collectionID, "collection-id", 0, "the Milvus collection id in the keys (required)")
	fl.Uint64Var(&defaultPartition, "default-partition", 0, "the partition id to call \"_default\" (default: the lowest found)")
	fl.StringArrayVar(&names, "partition-name", nil, "name a partition: `ID=NAME` (repeatable; others are \"p<id>\")")
	fl.BoolVar(&dryRun, "dry-run", false, "print what would be registered; register nothing")
	fl.StringVar(&accessKey, "s3-access-key", "", "S3 access key (env AWS_ACCESS_KEY_ID)")
	fl.StringVar(&secretKey, "s3-secret-key", "", "S3 secret key (env AWS_SECRET_ACCESS_KEY)")
	fl.BoolVar(&dev, "dev", false, "use the dev keys of snapkeep dev's embedded S3")
	return cmd
}

// adoptSummary is the -o json output of adopt.
type adoptSummary struct {
	Collection   string             `json:"collection"`
	CollectionID uint64             `json:"collection_id"`
	DryRun       bool               `json:"dry_run"`
	Partitions   []adopt.Partition  `json:"partitions"`
	Segments     int                `json:"segments"`
	Files        int                `json:"files"`
	Bytes        uint64             `json:"bytes"`
	Listed       int                `json:"listed"`
	Skipped      []string           `json:"skipped"`
	Registered   *adoptRegistration `json:"registered,omitempty"`
}

type adoptRegistration struct {
	Segments int    `json:"segments"`
	Files    int    `json:"files"`
	Bytes    uint64 `json:"bytes"`
}

func (a *app) printAdoptPlan(w io.Writer, name string, plan *adopt.Plan, res *adopt.Result) error {
	if a.json() {
		s := adoptSummary{Collection: name, CollectionID: plan.CollectionID, DryRun: res == nil, Partitions: plan.Partitions,
			Segments: len(plan.Segments), Files: plan.Files, Bytes: plan.Bytes, Listed: plan.Listed, Skipped: plan.Skipped}
		if res != nil {
			s.Registered = &adoptRegistration{Segments: res.Segments, Files: res.Files, Bytes: res.Bytes}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	verb := "Would register"
	if res != nil {
		verb = "Registered"
	}
	fmt.Fprintf(w, "%s Milvus collection %d as %s: %d segments, %d files, %s (%d objects listed).\n",
		verb, plan.CollectionID, name, len(plan.Segments), plan.Files, humanBytes(plan.Bytes), plan.Listed)
	t := newTable(w, "PARTITION", "ID", "SEGMENTS", "FILES", "SIZE")
	for _, p := range plan.Partitions {
		t.row(p.Name, p.ID, p.Segments, p.Files, humanBytes(p.Bytes))
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, s := range plan.Skipped {
		fmt.Fprintf(w, "skipped %s\n", s)
	}
	if res != nil && res.Resumed > 0 {
		fmt.Fprintf(w, "Resumed an earlier adoption: %d segments were registered already.\n", res.Resumed)
	}
	if res != nil && res.Segments+res.Resumed < len(plan.Segments) {
		fmt.Fprintf(w, "Only %d of %d segments are registered: run the adoption again to resume.\n", res.Segments+res.Resumed, len(plan.Segments))
	}
	return nil
}
