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
}

// WrittenFile is one object WriteMilvusLayout wrote.
type WrittenFile struct {
	Key     string
	Segment uint64
	Size    int64
	CRC32C  uint32
}

// WriteMilvusLayout writes a collection's segment files the way Milvus lays them out
// (insert_log, delta_log, stats_log, bm25_stats under the root, with Milvus's ids),
// without registering anything: the state of a bucket Milvus filled, for adoption
// tests, the demo and benchmarks. It returns what it wrote, in segment order.
func WriteMilvusLayout(ctx context.Context, store objstore.Store, o MilvusLayoutOptions) ([]WrittenFile, error) {
	if o.CollectionID == 0 || len(o.PartitionIDs) == 0 || o.FirstSegmentID == 0 || o.FilesPerSegment < 1 {
		return nil, fmt.Errorf("datagen: a Milvus layout needs a collection id, partition ids, a first segment id and files per segment")
	}
	specs := Layout(o.FilesPerSegment)
	out := make([]WrittenFile, 0, o.Segments*len(specs))
	root := strings.Trim(o.Root, "/")
	logID := max(o.FirstLogID, 1)
	for i := range o.Segments {
		seg := layout.Segment{Collection: o.CollectionID, Partition: o.PartitionIDs[i%len(o.PartitionIDs)], Segment: o.FirstSegmentID + uint64(i)}
		for _, spec := range specs {
			key, err := layout.DataFileKey(layout.Milvus, seg, fsmpb.FileKind(spec.Kind), spec.FieldID, logID)
			if err != nil {
				return nil, fmt.Errorf("datagen: %w", err)
			}
			logID++
			if root != "" {
				key = root + "/" + key
			}
			out = append(out, WrittenFile{Key: key, Segment: seg.Segment, Size: o.FileSize})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.Concurrency, 1))
	if o.Concurrency <= 0 {
		g.SetLimit(DefaultConcurrency)
	}
	for i := range out {
		g.Go(func() error {
			content := NewContent(o.Seed, i/len(specs), i%len(specs), o.FileSize)
			out[i].CRC32C = content.CRC32C()
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
