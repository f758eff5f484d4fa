package datagen

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/objstore"
)

// Fields and numbers of the index files WriteMilvusLayout writes.
var (
	// TextFieldID is the varchar field text index files (text_log/) describe.
	TextFieldID int64 = 102
	// JSONFieldID is the JSON field JSON key index files (json_key_index_log/,
	// json_stats/) describe.
	JSONFieldID int64 = 103
)

const (
	// MilvusIndexVersion is the version of the generated index builds
	// (index_files/<build>/<version>/...).
	MilvusIndexVersion = 2
	// MilvusTextVersion is the version of the generated text and JSON key index
	// files (text_log/<build>/<version>/...).
	MilvusTextVersion = 1
	// MilvusJSONStatsFormat is the format number of json_stats/<format>/... keys.
	MilvusJSONStatsFormat = 2
)

// MilvusLayoutOptions say what WriteMilvusLayout writes.
type MilvusLayoutOptions struct {
	// Root is the storage root (Milvus's rootPath).
	Root string
	// CollectionID and PartitionIDs (Milvus's ids) own the segments, spread evenly.
	CollectionID uint64
	PartitionIDs []uint64
	// Segments in all, numbered from FirstSegmentID; FilesPerSegment files each (see
	// Layout), FileSize bytes each; log ids from FirstLogID.
	Segments, FilesPerSegment int
	FileSize                  int64
	FirstSegmentID            uint64
	FirstLogID                int64
	Seed                      int64
	// Concurrency bounds the uploads in flight (0: DefaultConcurrency).
	Concurrency int

	// IndexBuilds is the index builds per segment (one per index: WrittenFile.Index
	// tells which), IndexFilesPerBuild files each, at
	// index_files/<build>/<MilvusIndexVersion>/<partition>/<segment>/<name>.
	IndexBuilds, IndexFilesPerBuild int
	// TextIndexFiles, JSONKeyIndexFiles and JSONStatsFiles are the files per segment
	// of one text index build (text_log/, field TextFieldID), one JSON key index build
	// (json_key_index_log/, field JSONFieldID) and one JSON stats build (json_stats/,
	// field JSONFieldID, files in a subdirectory); 0: none.
	TextIndexFiles, JSONKeyIndexFiles, JSONStatsFiles int
	// FirstBuildID numbers the builds (index, text, JSON key and JSON stats builds, in
	// that order per segment); needed when any is written.
	FirstBuildID uint64
}

// WrittenFile is one object WriteMilvusLayout wrote.
type WrittenFile struct {
	Key     string
	Segment uint64
	Size    int64
	CRC32C  uint32
	Kind    fsmpb.FileKind
	// Build is the build id of an index, text or JSON key index file (0 for logs);
	// Index is the ordinal (0 to IndexBuilds-1) of an index file's index, -1 for any
	// other file.
	Build uint64
	Index int

	ordinal, file int // content stream: segment ordinal, file ordinal in the segment
}

// WriteMilvusLayout writes a collection's segment files the way Milvus lays them out
// (insert_log, delta_log, stats_log, bm25_stats under the root, with Milvus's ids),
// and optionally its index builds (index_files/) and text and JSON key index files
// (text_log/, json_key_index_log/, json_stats/), without registering anything: the
// state of a bucket Milvus filled, for adoption tests, the demo and benchmarks. It
// returns what it wrote, in segment order (a segment's logs, then its index builds',
// text and JSON files).
func WriteMilvusLayout(ctx context.Context, store objstore.Store, o MilvusLayoutOptions) ([]WrittenFile, error) {
	out, err := PlanMilvusLayout(o)
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.Concurrency, 1))
	if o.Concurrency <= 0 {
		g.SetLimit(DefaultConcurrency)
	}
	for i := range out {
		g.Go(func() error {
			content := out[i].Content(o.Seed)
			if _, err := store.Put(gctx, out[i].Key, content, content.Size(), objstore.PutOptions{CRC32C: out[i].CRC32C, HasCRC32C: true}); err != nil {
				return fmt.Errorf("datagen: upload %q: %w", out[i].Key, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// PlanMilvusLayout is what WriteMilvusLayout writes, without writing it: the keys,
// sizes and CRC-32Cs in the same order; each file's bytes are Content(o.Seed). For
// loaders that write the objects some other way (a benchmark writes them straight
// into its S3 server's directory).
func PlanMilvusLayout(o MilvusLayoutOptions) ([]WrittenFile, error) {
	if o.CollectionID == 0 || len(o.PartitionIDs) == 0 || o.FirstSegmentID == 0 || o.FilesPerSegment < 1 {
		return nil, fmt.Errorf("datagen: a Milvus layout needs a collection id, partition ids, a first segment id and files per segment")
	}
	builds := o.IndexBuilds > 0 || o.TextIndexFiles > 0 || o.JSONKeyIndexFiles > 0 || o.JSONStatsFiles > 0
	if builds && o.FirstBuildID == 0 {
		return nil, fmt.Errorf("datagen: index builds and text or JSON key index files need a first build id")
	}
	if o.IndexBuilds > 0 && o.IndexFilesPerBuild < 1 {
		return nil, fmt.Errorf("datagen: index builds need files (IndexFilesPerBuild)")
	}
	specs := Layout(o.FilesPerSegment)
	out := make([]WrittenFile, 0, o.Segments*len(specs))
	root := strings.Trim(o.Root, "/")
	full := func(key string) string {
		if root == "" {
			return key
		}
		return root + "/" + key
	}
	logID := max(o.FirstLogID, 1)
	buildID := o.FirstBuildID
	for i := range o.Segments {
		seg := layout.Segment{Collection: o.CollectionID, Partition: o.PartitionIDs[i%len(o.PartitionIDs)], Segment: o.FirstSegmentID + uint64(i)}
		add := func(key string, kind fsmpb.FileKind, build uint64, index int) {
			n := 0
			for j := len(out) - 1; j >= 0 && out[j].ordinal == i; j-- {
				n++
			}
			out = append(out, WrittenFile{Key: full(key), Segment: seg.Segment, Size: o.FileSize, Kind: kind, Build: build, Index: index, ordinal: i, file: n})
		}
		for _, spec := range specs {
			key, err := layout.DataFileKey(layout.Milvus, seg, fsmpb.FileKind(spec.Kind), spec.FieldID, logID)
			if err != nil {
				return nil, fmt.Errorf("datagen: %w", err)
			}
			logID++
			add(key, fsmpb.FileKind(spec.Kind), 0, -1)
		}
		for x := range o.IndexBuilds {
			b := layout.Build{Segment: seg, Build: buildID}
			for k := range o.IndexFilesPerBuild {
				add(layout.Milvus.BuildFileKey(b, fmt.Sprintf("%d/HNSW_%d", MilvusIndexVersion, k)), fsmpb.FileKind_FILE_KIND_INDEX, buildID, x)
			}
			buildID++
		}
		for _, d := range []struct {
			files int
			lead  string
			field int64
			name  string
			kind  fsmpb.FileKind
		}{
			{o.TextIndexFiles, "text_log/", TextFieldID, "index_%d.tar", fsmpb.FileKind_FILE_KIND_TEXT_INDEX},
			{o.JSONKeyIndexFiles, "json_key_index_log/", JSONFieldID, "key_index_%d", fsmpb.FileKind_FILE_KIND_JSON_KEY_INDEX},
			{o.JSONStatsFiles, fmt.Sprintf("json_stats/%d/", MilvusJSONStatsFormat), JSONFieldID, "shared_key_index/%d.idx", fsmpb.FileKind_FILE_KIND_JSON_KEY_INDEX},
		} {
			if d.files == 0 {
				continue
			}
			for k := range d.files {
				rel := fmt.Sprintf("%s%d/%d/%d/"+d.name, d.lead, buildID, MilvusTextVersion, d.field, k)
				add(layout.Milvus.SegmentFileKey(seg, rel), d.kind, buildID, -1)
			}
			buildID++
		}
	}
	for i := range out {
		out[i].CRC32C = out[i].Content(o.Seed).CRC32C()
	}
	return out, nil
}

// Content is the file's bytes, for the seed of the layout that planned it.
func (f WrittenFile) Content(seed int64) *Content {
	return NewContent(seed, f.ordinal, f.file, f.Size)
}
