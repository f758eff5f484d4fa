package finisher

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
	"github.com/snapkeep/snapkeep/objstore"
)

// Written is what SnapshotCommit records about a manifest.
type Written struct {
	Size     int64
	Checksum uint64
	Summary  *fsmpb.SnapshotSummary
}

// manifestMemoryLimit is the largest manifest encoded in memory; a larger one spills
// to a temporary file in the data dir. A 10k-segment manifest is ~600 KB. Creating and
// deleting a file per snapshot once cost a quarter of the leader's CPU under 64 clients
// creating small snapshots (ext4's inode allocator skipping recently deleted inodes,
// which depends on the filesystem's churn), so small manifests never touch the disk.
const manifestMemoryLimit = 4 << 20

// WriteManifest writes a snapshot's manifest from a read view and uploads it to store
// under root. The manifest is a pure function of the snapshot record and the segment
// records it pins, so any leader writes the same bytes. Memory holds at most
// manifestMemoryLimit of it (plus one block): beyond that it streams through a
// temporary file in spillDir.
func WriteManifest(ctx context.Context, store objstore.Store, root layout.Root, spillDir string, view *fsm.View, snap *fsmpb.Snapshot) (Written, error) {
	spool := &spillBuffer{limit: manifestMemoryLimit, dir: spillDir, pattern: fmt.Sprintf("manifest-%d-*.skm", snap.Id)}
	defer spool.Close()

	res, err := EncodeManifest(ctx, spool, view, snap)
	if err != nil {
		return Written{}, err
	}
	body, err := spool.Reader()
	if err != nil {
		return Written{}, err
	}
	key := root.Full(snap.ManifestKey)
	if _, err := store.Put(ctx, key, body, res.Size, objstore.PutOptions{}); err != nil {
		return Written{}, fmt.Errorf("upload %s: %w", key, err)
	}
	return Written{Size: res.Size, Checksum: res.Checksum, Summary: res.Summary.SnapshotSummary()}, nil
}

// spillBuffer keeps what is written in memory up to limit bytes, then moves it to a
// temporary file in dir and writes on there, through a 1 MiB buffer (allocated only
// then: a small manifest costs no more than its bytes). Close removes the file.
type spillBuffer struct {
	limit        int
	dir, pattern string
	mem          bytes.Buffer
	file         *os.File
	fileBuf      *bufio.Writer
}

func (b *spillBuffer) Write(p []byte) (int, error) {
	if b.file == nil && b.mem.Len()+len(p) > b.limit {
		if err := os.MkdirAll(b.dir, 0o755); err != nil {
			return 0, err
		}
		f, err := os.CreateTemp(b.dir, b.pattern)
		if err != nil {
			return 0, err
		}
		b.file, b.fileBuf = f, bufio.NewWriterSize(f, 1<<20)
		if _, err := b.fileBuf.Write(b.mem.Bytes()); err != nil {
			return 0, err
		}
		b.mem = bytes.Buffer{}
	}
	if b.file != nil {
		return b.fileBuf.Write(p)
	}
	return b.mem.Write(p)
}

// Reader reads back everything written, from the start.
func (b *spillBuffer) Reader() (io.ReadSeeker, error) {
	if b.file == nil {
		return bytes.NewReader(b.mem.Bytes()), nil
	}
	if err := b.fileBuf.Flush(); err != nil {
		return nil, err
	}
	if _, err := b.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return b.file, nil
}

// Close removes the temporary file, if there is one.
func (b *spillBuffer) Close() error {
	if b.file == nil {
		return nil
	}
	err := b.file.Close()
	if rmErr := os.Remove(b.file.Name()); err == nil {
		err = rmErr
	}
	return err
}

// EncodeManifest writes the manifest of snap to w: its segments in (partition, id)
// order, each with its pinned index builds. The same view of the same snapshot always
// gives the same bytes: what a repair compares with the catalog's checksum.
func EncodeManifest(ctx context.Context, w io.Writer, view *fsm.View, snap *fsmpb.Snapshot) (manifest.Result, error) {
	// The records, in one walk of the collection's segments; the view is immutable, so
	// they can be held while sorted.
	segs, err := view.SnapshotSegments(snap)
	if err != nil {
		return manifest.Result{}, err
	}
	withMeta := false
	for _, seg := range segs {
		withMeta = withMeta || len(seg.PackedMeta) != 0
	}
	slices.SortFunc(segs, func(a, b *fsmpb.Segment) int {
		return cmp.Or(cmp.Compare(a.PartitionId, b.PartitionId), cmp.Compare(a.Id, b.Id))
	})

	hdr := manifestHeader(snap)
	hdr.SegmentMeta = withMeta // records carry the segments' metadata (format version 2)
	mw, err := manifest.NewWriter(w, hdr, manifest.WriterOptions{})
	if err != nil {
		return manifest.Result{}, err
	}
	for i, seg := range segs {
		if i%1024 == 0 && ctx.Err() != nil {
			return manifest.Result{}, ctx.Err()
		}
		meta, err := fsm.SegmentMetaOf(seg)
		if err != nil {
			return manifest.Result{}, fmt.Errorf("segment %d: %w", seg.Id, err)
		}
		rec := &manifest.Segment{ID: seg.Id, PartitionID: seg.PartitionId, RowCount: seg.RowCount, Files: seg.Files, Meta: meta}
		for _, b := range seg.IndexBuilds {
			if _, pinned := slices.BinarySearch(snap.BuildIds, b.BuildId); pinned {
				rec.IndexBuilds = append(rec.IndexBuilds, manifest.IndexBuild{BuildID: b.BuildId, IndexID: b.IndexId, Files: b.Files})
			}
		}
		if err := mw.Add(rec); err != nil {
			return manifest.Result{}, fmt.Errorf("segment %d: %w", seg.Id, err)
		}
	}
	return mw.Close()
}

// manifestHeader is the manifest's header: everything the snapshot captured but the
// segments. Only fields of the snapshot record go in, so every leader writes the same
// bytes.
func manifestHeader(snap *fsmpb.Snapshot) *manifestpb.Header {
	h := &manifestpb.Header{
		SnapshotId:            snap.Id,
		SnapshotName:          snap.Name,
		CollectionId:          snap.CollectionId,
		CollectionName:        snap.CollectionName,
		DatabaseId:            snap.DatabaseId,
		DatabaseName:          snap.DatabaseName,
		CreatedAt:             snap.CreatedAt,
		CapturedIndex:         snap.CapturedIndex,
		Description:           snap.Description,
		CollectionDescription: snap.CollectionDescription,
		Labels:                snap.Labels,
		Schema:                snap.Schema,
		Properties:            snap.Properties,
		Writer:                "snapkeep",
		KeyLayout:             manifestpb.KeyLayout(snap.Layout),
	}
	for _, p := range snap.Partitions {
		h.Partitions = append(h.Partitions, &manifestpb.Partition{Id: p.Id, Name: p.Name, CreatedAt: p.CreatedAt})
	}
	for _, ix := range snap.Indexes {
		h.Indexes = append(h.Indexes, &manifestpb.IndexDef{Id: ix.Id, Name: ix.Name, FieldId: ix.FieldId, Params: ix.Params, CreatedAt: ix.CreatedAt})
	}
	return h
}
