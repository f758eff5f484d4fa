package server

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
	"github.com/snapkeep/snapkeep/objstore"
)

// writtenManifest is what SnapshotCommit records about a manifest.
type writtenManifest struct {
	size     int64
	checksum uint64
	summary  *fsmpb.SnapshotSummary
}

// writeManifest writes a snapshot's manifest from a read view and uploads it. The
// manifest is a pure function of the snapshot record and the segment records it pins,
// so any leader writes the same bytes. It streams through a temporary file in the
// data dir: memory holds one block, never the whole manifest.
func (n *Node) writeManifest(ctx context.Context, view *fsm.View, snap *fsmpb.Snapshot) (writtenManifest, error) {
	objects, err := n.objectStore()
	if err != nil {
		return writtenManifest{}, err
	}
	tmpDir := filepath.Join(n.cfg.DataDir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return writtenManifest{}, err
	}
	f, err := os.CreateTemp(tmpDir, fmt.Sprintf("manifest-%d-*.skm", snap.Id))
	if err != nil {
		return writtenManifest{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()

	buf := bufio.NewWriterSize(f, 1<<20)
	res, err := encodeManifest(ctx, buf, view, snap)
	if err != nil {
		return writtenManifest{}, err
	}
	if err := buf.Flush(); err != nil {
		return writtenManifest{}, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return writtenManifest{}, err
	}
	key := keyspace{root: n.cfg.Root}.full(snap.ManifestKey)
	if _, err := objects.Put(ctx, key, f, res.Size, objstore.PutOptions{}); err != nil {
		return writtenManifest{}, fmt.Errorf("upload %s: %w", key, err)
	}
	return writtenManifest{size: res.Size, checksum: res.Checksum, summary: res.Summary.SnapshotSummary()}, nil
}

// encodeManifest writes the manifest of snap to w: its segments in (partition, id)
// order, each with its pinned index builds.
func encodeManifest(ctx context.Context, w *bufio.Writer, view *fsm.View, snap *fsmpb.Snapshot) (manifest.Result, error) {
	type ref struct{ partition, id uint64 }
	refs := make([]ref, 0, len(snap.SegmentIds))
	for _, id := range snap.SegmentIds {
		seg, err := view.Segment(id)
		if err != nil {
			return manifest.Result{}, fmt.Errorf("pinned segment %d: %w", id, err)
		}
		refs = append(refs, ref{seg.PartitionId, id})
	}
	slices.SortFunc(refs, func(a, b ref) int {
		return cmp.Or(cmp.Compare(a.partition, b.partition), cmp.Compare(a.id, b.id))
	})

	mw, err := manifest.NewWriter(w, manifestHeader(snap), manifest.WriterOptions{})
	if err != nil {
		return manifest.Result{}, err
	}
	for i, r := range refs {
		if i%1024 == 0 && ctx.Err() != nil {
			return manifest.Result{}, ctx.Err()
		}
		seg, err := view.Segment(r.id)
		if err != nil {
			return manifest.Result{}, err
		}
		rec := &manifest.Segment{ID: seg.Id, PartitionID: seg.PartitionId, RowCount: seg.RowCount, Files: seg.Files}
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
		SnapshotId:     snap.Id,
		SnapshotName:   snap.Name,
		CollectionId:   snap.CollectionId,
		CollectionName: snap.CollectionName,
		DatabaseId:     snap.DatabaseId,
		DatabaseName:   snap.DatabaseName,
		CreatedAt:      snap.CreatedAt,
		CapturedIndex:  snap.CapturedIndex,
		Description:    snap.Description,
		Labels:         snap.Labels,
		Schema:         snap.Schema,
		Properties:     snap.Properties,
		Writer:         "snapkeep",
	}
	for _, p := range snap.Partitions {
		h.Partitions = append(h.Partitions, &manifestpb.Partition{Id: p.Id, Name: p.Name, CreatedAt: p.CreatedAt})
	}
	for _, ix := range snap.Indexes {
		h.Indexes = append(h.Indexes, &manifestpb.IndexDef{Id: ix.Id, Name: ix.Name, FieldId: ix.FieldId, Params: ix.Params, CreatedAt: ix.CreatedAt})
	}
	return h
}
