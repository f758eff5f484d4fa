package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/adopt"
)

// adoptCmd is `snapkeep collection adopt`: register a Milvus collection's files that
// are already in the bucket, without copying anything.
func (a *app) adoptCmd() *cobra.Command {
	var database, keyLayout, accessKey, secretKey, buildMap, checksumRate string
	var collectionID, defaultPartition uint64
	var names, indexes, buildIndexes []string
	var dryRun, dev, checksum bool
	var checksumConcurrency int
	cmd := &cobra.Command{
		Use:   "adopt NAME --layout milvus --collection-id N",
		Short: "Register a Milvus collection's existing files as collection NAME, without copying or rewriting anything",
		Long: `Adopt lists the Milvus collection's keys under the cluster's storage root and
registers them as collection NAME, in the Milvus key layout with Milvus's collection,
partition, segment, index and build ids. Nothing is copied, rewritten or deleted.

Listed: insert_log/N/, delta_log/N/, stats_log/N/ and bm25_stats/N/ (the segments:
every segment with such a log), text_log/, json_key_index_log/ and json_stats/ whole
(text and JSON key index files start with their build id, so these directories are
listed entirely, every collection's keys, and filtered by the collection id in each
key; they become files of their segment), and index_files/ whole (index builds name
no collection: the builds of the adopted segments are kept). Listing whole
directories costs a LIST request per 1,000 objects of the whole bucket's.

Segments are registered flushed with their files and sizes from the listing, and
index builds ready with their files, in the same Raft entry as their segment (500
segments per entry). --dry-run prints the same plan and registers nothing. An
adoption interrupted part-way is resumed by running it again: only what is missing
(segments, and builds of segments registered before) is registered.

Index builds: the index a build belongs to is not in its key (Milvus keeps it in
etcd's segment-index records). Give the collection's indexes with Milvus's ids,
--index ID:NAME:FIELD[:KEY=VALUE,...] (repeatable; created on the collection), and
the build → index mapping, --build-index BUILD=INDEX (repeatable) or --build-map FILE
("-": standard input) with one "BUILD INDEX" pair per line ('#' comments); INDEX is an
index id or name. With exactly one --index, a build of a segment that has no other
build belongs to it. Any other build is reported as unmapped, with the reason, and
not registered: never guessed. Run the adoption again with the mapping to add them.

--checksum reads every adopted file and records its CRC-32C (Castagnoli), at most
--checksum-rate bytes per second (e.g. 50MiB; 0: unbounded), --checksum-concurrency
reads at a time; a dry run with --checksum reads them too. Without it, a CRC-32C is
kept only when the listing carries one; restores verify the others by reading source
and copy.

What the keys do not say stays empty until you supply it: partition names (ids become
"p<id>", the lowest id "_default"; --partition-name and --default-partition
override), row counts, Milvus's segment and binlog metadata, index parameters (unless
given with --index). Every file listed is adopted, including superseded text/JSON key
index builds or older index versions still in the bucket (reported as warnings).
Keys that are not in Milvus's shape, files of segments without logs, and inconsistent
builds are reported as skipped, never fatal.`,
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
			opts := adopt.Options{Database: database, Name: args[0], CollectionID: collectionID,
				DefaultPartition: defaultPartition, PartitionNames: partitionNames, Checksum: checksum,
				ChecksumConcurrency: checksumConcurrency}
			var err error
			if opts.Indexes, err = parseIndexFlags(indexes); err != nil {
				return err
			}
			if opts.BuildIndex, err = parseBuildMapping(opts.Indexes, buildIndexes, buildMap, cmd.InOrStdin()); err != nil {
				return err
			}
			if checksumRate != "" {
				rate, err := parseSize(checksumRate)
				if err != nil {
					return usageErrorf("--checksum-rate: %v", err)
				}
				opts.ChecksumRate = float64(rate)
			}
			if checksumConcurrency < 0 {
				return usageErrorf("--checksum-concurrency %d: give 1 or more (0: %d)", checksumConcurrency, adopt.DefaultChecksumConcurrency)
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
				opts.Root = status.GetStorage().GetRoot()
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
	fl.StringArrayVar(&indexes, "index", nil, "an index of the collection with Milvus's index id: `ID:NAME:FIELD[:KEY=VALUE,...]` (repeatable)")
	fl.StringArrayVar(&buildIndexes, "build-index", nil, "the index of an index build: `BUILD=INDEX`, INDEX an --index id or name (repeatable)")
	fl.StringVar(&buildMap, "build-map", "", "a `FILE` of \"BUILD INDEX\" lines (\"-\": standard input)")
	fl.BoolVar(&checksum, "checksum", false, "read every adopted file and record its CRC-32C")
	fl.StringVar(&checksumRate, "checksum-rate", "", "with --checksum, read at most this many `BYTES` per second (e.g. 50MiB; default unbounded)")
	fl.IntVar(&checksumConcurrency, "checksum-concurrency", adopt.DefaultChecksumConcurrency, "with --checksum, files read at a time")
	fl.BoolVar(&dryRun, "dry-run", false, "print what would be registered; register nothing")
	fl.StringVar(&accessKey, "s3-access-key", "", "S3 access key (env AWS_ACCESS_KEY_ID)")
	fl.StringVar(&secretKey, "s3-secret-key", "", "S3 secret key (env AWS_SECRET_ACCESS_KEY)")
	fl.BoolVar(&dev, "dev", false, "use the dev keys of snapkeep dev's embedded S3")
	return cmd
}

// parseIndexFlags parses --index ID:NAME:FIELD[:KEY=VALUE,...] values.
func parseIndexFlags(values []string) ([]adopt.Index, error) {
	var out []adopt.Index
	for _, v := range values {
		parts := strings.SplitN(v, ":", 4)
		if len(parts) < 3 {
			return nil, usageErrorf("--index %q: want ID:NAME:FIELD[:KEY=VALUE,...]", v)
		}
		id, err := strconv.ParseUint(parts[0], 10, 64)
		if err != nil || id == 0 {
			return nil, usageErrorf("--index %q: the id %q is not Milvus's index id (a number above 0)", v, parts[0])
		}
		field, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || field < 0 {
			return nil, usageErrorf("--index %q: the field %q is not a field id", v, parts[2])
		}
		ix := adopt.Index{ID: id, Name: parts[1], FieldID: field}
		if ix.Name == "" {
			return nil, usageErrorf("--index %q: the name is empty", v)
		}
		if len(parts) == 4 {
			ix.Params = map[string]string{}
			for kv := range strings.SplitSeq(parts[3], ",") {
				k, val, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return nil, usageErrorf("--index %q: parameter %q: want KEY=VALUE", v, kv)
				}
				ix.Params[k] = val
			}
		}
		for _, o := range out {
			if o.ID == ix.ID || o.Name == ix.Name {
				return nil, usageErrorf("--index %q: an index of that id or name is given twice", v)
			}
		}
		out = append(out, ix)
	}
	return out, nil
}

// parseBuildMapping reads --build-index values and the --build-map file into build id
// → index id. An index is named by id or name (names start with a letter or '_').
func parseBuildMapping(indexes []adopt.Index, pairs []string, file string, stdin io.Reader) (map[uint64]uint64, error) {
	out := map[uint64]uint64{}
	add := func(where, build, index string) error {
		b, err := strconv.ParseUint(build, 10, 64)
		if err != nil || b == 0 {
			return usageErrorf("%s: build %q is not a build id", where, build)
		}
		var ix uint64
		for _, d := range indexes {
			if strconv.FormatUint(d.ID, 10) == index || d.Name == index {
				ix = d.ID
			}
		}
		if ix == 0 {
			return usageErrorf("%s: index %q is not the id or name of an --index", where, index)
		}
		if prev, ok := out[b]; ok && prev != ix {
			return usageErrorf("%s: build %d is mapped to two indexes (%d and %d)", where, b, prev, ix)
		}
		out[b] = ix
		return nil
	}
	for _, p := range pairs {
		build, index, ok := strings.Cut(p, "=")
		if !ok {
			return nil, usageErrorf("--build-index %q: want BUILD=INDEX", p)
		}
		if err := add("--build-index "+strconv.Quote(p), build, index); err != nil {
			return nil, err
		}
	}
	if file != "" {
		r := stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return nil, usageErrorf("--build-map: %v", err)
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		for line := 1; sc.Scan(); line++ {
			text, _, _ := strings.Cut(sc.Text(), "#")
			fields := strings.Fields(text)
			if len(fields) == 0 {
				continue
			}
			where := fmt.Sprintf("--build-map %s line %d", file, line)
			if len(fields) != 2 {
				return nil, usageErrorf("%s: want \"BUILD INDEX\", got %q", where, sc.Text())
			}
			if err := add(where, fields[0], fields[1]); err != nil {
				return nil, err
			}
		}
		if err := sc.Err(); err != nil {
			return nil, usageErrorf("--build-map %s: %v", file, err)
		}
	}
	if len(out) > 0 && len(indexes) == 0 {
		return nil, usageErrorf("a build mapping needs the indexes: give --index ID:NAME:FIELD")
	}
	return out, nil
}

// adoptSummary is the -o json output of adopt.
type adoptSummary struct {
	Collection   string             `json:"collection"`
	CollectionID uint64             `json:"collection_id"`
	DryRun       bool               `json:"dry_run"`
	Partitions   []adopt.Partition  `json:"partitions"`
	Indexes      []adoptIndex       `json:"indexes"`
	Segments     int                `json:"segments"`
	Files        int                `json:"files"`
	Bytes        uint64             `json:"bytes"`
	Builds       []adoptBuild       `json:"builds"`
	BuildFiles   int                `json:"build_files"`
	BuildBytes   uint64             `json:"build_bytes"`
	Unmapped     []adopt.Unmapped   `json:"unmapped"`
	Checksummed  int                `json:"checksummed"`
	Listed       int                `json:"listed"`
	Skipped      []string           `json:"skipped"`
	Warnings     []string           `json:"warnings"`
	Registered   *adoptRegistration `json:"registered,omitempty"`
}

type adoptIndex struct {
	adopt.Index
	Builds int    `json:"builds"`
	Files  int    `json:"files"`
	Bytes  uint64 `json:"bytes"`
}

type adoptBuild struct {
	BuildID   uint64 `json:"build_id"`
	SegmentID uint64 `json:"segment_id"`
	IndexID   uint64 `json:"index_id"`
	Files     int    `json:"files"`
	Bytes     uint64 `json:"bytes"`
}

type adoptRegistration struct {
	Segments       int    `json:"segments"`
	Files          int    `json:"files"`
	Bytes          uint64 `json:"bytes"`
	Builds         int    `json:"builds"`
	BuildFiles     int    `json:"build_files"`
	BuildBytes     uint64 `json:"build_bytes"`
	Resumed        int    `json:"resumed"`
	ResumedBuilds  int    `json:"resumed_builds"`
	IndexesCreated int    `json:"indexes_created"`
}

func (a *app) printAdoptPlan(w io.Writer, name string, plan *adopt.Plan, res *adopt.Result) error {
	indexes := make([]adoptIndex, len(plan.Indexes))
	at := map[uint64]int{}
	for i, ix := range plan.Indexes {
		indexes[i].Index = ix
		at[ix.ID] = i
	}
	builds := make([]adoptBuild, len(plan.Builds))
	for i, b := range plan.Builds {
		builds[i] = adoptBuild{BuildID: b.BuildId, SegmentID: b.SegmentId, IndexID: b.IndexId, Files: len(b.Files)}
		for _, f := range b.Files {
			builds[i].Bytes += f.Size
		}
		ix := &indexes[at[b.IndexId]]
		ix.Builds++
		ix.Files += builds[i].Files
		ix.Bytes += builds[i].Bytes
	}
	if a.json() {
		s := adoptSummary{Collection: name, CollectionID: plan.CollectionID, DryRun: res == nil, Partitions: plan.Partitions,
			Indexes: indexes, Segments: len(plan.Segments), Files: plan.Files, Bytes: plan.Bytes, Builds: builds,
			BuildFiles: plan.BuildFiles, BuildBytes: plan.BuildBytes, Unmapped: plan.Unmapped, Checksummed: plan.Checksummed,
			Listed: plan.Listed, Skipped: plan.Skipped, Warnings: plan.Warnings}
		if res != nil {
			s.Registered = &adoptRegistration{Segments: res.Segments, Files: res.Files, Bytes: res.Bytes, Builds: res.Builds,
				BuildFiles: res.BuildFiles, BuildBytes: res.BuildBytes, Resumed: res.Resumed, ResumedBuilds: res.ResumedBuilds,
				IndexesCreated: res.IndexesCreated}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	verb := "Would register"
	if res != nil {
		verb = "Registered"
	}
	fmt.Fprintf(w, "%s Milvus collection %d as %s: %d segments, %d files, %s; %d index builds, %d files, %s (%d objects listed).\n",
		verb, plan.CollectionID, name, len(plan.Segments), plan.Files, humanBytes(plan.Bytes),
		len(plan.Builds), plan.BuildFiles, humanBytes(plan.BuildBytes), plan.Listed)
	t := newTable(w, "PARTITION", "ID", "SEGMENTS", "FILES", "SIZE", "BUILDS")
	for _, p := range plan.Partitions {
		t.row(p.Name, p.ID, p.Segments, p.Files, humanBytes(p.Bytes), p.Builds)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(indexes) > 0 {
		t = newTable(w, "INDEX", "ID", "FIELD", "BUILDS", "FILES", "SIZE")
		for _, ix := range indexes {
			t.row(ix.Name, ix.ID, ix.FieldID, ix.Builds, ix.Files, humanBytes(ix.Bytes))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if plan.Checksummed > 0 {
		fmt.Fprintf(w, "CRC-32C computed by reading %d files.\n", plan.Checksummed)
	}
	for _, u := range plan.Unmapped {
		fmt.Fprintf(w, "unmapped build %d (segment %d, %d files, %s), not registered: %s\n", u.BuildID, u.SegmentID, u.Files, humanBytes(u.Bytes), u.Reason)
	}
	for _, s := range plan.Skipped {
		fmt.Fprintf(w, "skipped %s\n", s)
	}
	for _, s := range plan.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
	if res != nil && (res.Resumed > 0 || res.ResumedBuilds > 0) {
		fmt.Fprintf(w, "Resumed an earlier adoption: %d segments and %d index builds were registered already.\n", res.Resumed, res.ResumedBuilds)
	}
	if res != nil && (res.Segments+res.Resumed < len(plan.Segments) || res.Builds+res.ResumedBuilds < len(plan.Builds)) {
		fmt.Fprintf(w, "Only %d of %d segments and %d of %d index builds are registered: run the adoption again to resume.\n",
			res.Segments+res.Resumed, len(plan.Segments), res.Builds+res.ResumedBuilds, len(plan.Builds))
	}
	return nil
}
