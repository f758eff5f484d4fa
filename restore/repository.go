package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
	"github.com/snapkeep/snapkeep/manifest/repository"
	"github.com/snapkeep/snapkeep/objstore"
)

// The leader's steps of the jobs that touch a repository, besides the pre-check:
// planning a repository restore from the repository's manifest, and finalizing an
// export (its manifest and a new index generation in the repository).

// planBatchSegments and planBatchBytes bound one RestorePlanSegments entry.
const (
	planBatchSegments = 1000
	planBatchBytes    = 4 << 20
)

// maxManifestBytes bounds a manifest an export copies through memory (about 8 bytes
// per file: 100 M files).
const maxManifestBytes = 1 << 30

// openRepository opens a registered repository's format in store.
func (c *Coordinator) openRepository(ctx context.Context, name string, store objstore.Store) (*repository.Repository, error) {
	rec, err := c.cluster.View().Repository(name)
	if err != nil {
		return nil, err
	}
	return repository.Open(ctx, store, rec.Prefix, repository.Options{Logger: c.cfg.Logger})
}

// plan adds a repository restore's segments to its plan, from where it stands, in
// batches; the last batch makes the job PENDING.
func (c *Coordinator) plan(ctx context.Context, job *fsmpb.RestoreJob) error {
	stores, err := c.cluster.JobStores(job.Kind, job.Repository)
	if err != nil {
		return err
	}
	repo, err := c.openRepository(ctx, job.Repository, stores.Source)
	if err != nil {
		return err
	}
	entry, err := repo.Snapshot(ctx, job.RepositorySnapshot)
	if err != nil {
		return ignoreGone(ctx, c, job, err)
	}
	rd, err := repo.OpenManifest(ctx, entry)
	if err != nil {
		return ignoreGone(ctx, c, job, err)
	}
	partitions, err := ManifestPartitions(rd, job.Partitions)
	if err != nil {
		return ignoreDone(c.cluster.Propose(ctx, &fsmpb.RestoreFail{JobId: job.Id, Error: err.Error()}, nil))
	}
	var batch []*fsmpb.SourceSegment
	var batchBytes int
	n := uint64(0) // segments seen, in manifest order
	send := func(last bool) error {
		first := n - uint64(len(batch))
		var resp fsmpb.RestoreJobResponse
		err := c.cluster.Propose(ctx, &fsmpb.RestorePlanSegments{JobId: job.Id, First: first, Segments: batch, Last: last}, &resp)
		batch, batchBytes = nil, 0
		return err
	}
	err = rd.Segments(ctx, manifest.ReadOptions{Partitions: partitions, Parallelism: 2}, func(s *manifest.Segment) error {
		n++
		if n <= job.SegmentsPlanned {
			return nil // planned by an earlier leader or pass
		}
		src := &fsmpb.SourceSegment{Id: s.ID, PartitionId: s.PartitionID, RowCount: s.RowCount, Files: s.Files, Meta: s.Meta}
		batchBytes += len(s.Files) + 64
		for _, b := range s.IndexBuilds {
			src.Builds = append(src.Builds, &fsmpb.SourceBuild{BuildId: b.BuildID, IndexId: b.IndexID, Files: b.Files})
			batchBytes += len(b.Files) + 16
		}
		batch = append(batch, src)
		if len(batch) >= planBatchSegments || batchBytes >= planBatchBytes {
			return send(false)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, manifest.ErrCorrupt) {
			return ignoreDone(c.cluster.Propose(ctx, &fsmpb.RestoreFail{JobId: job.Id,
				Error:       fmt.Sprintf("the manifest of repository snapshot %s is damaged: %v", job.RepositorySnapshot, err),
				FailingKeys: []string{repo.Keys().Manifest(job.RepositorySnapshot)}}, nil))
		}
		return ignoreDone(err)
	}
	if n < job.SegmentsPlanned {
		return fmt.Errorf("restore job %d planned %d segments, the manifest has %d", job.Id, job.SegmentsPlanned, n)
	}
	err = ignoreDone(send(true))
	c.Kick()
	return err
}

// ignoreGone fails a job whose repository snapshot is gone or damaged (retrying cannot
// help) and passes other errors on to be retried.
func ignoreGone(ctx context.Context, c *Coordinator, job *fsmpb.RestoreJob, err error) error {
	if errors.Is(err, repository.ErrNotFound) || errors.Is(err, repository.ErrCorrupt) || errors.Is(err, manifest.ErrCorrupt) {
		return ignoreDone(c.cluster.Propose(ctx, &fsmpb.RestoreFail{JobId: job.Id,
			Error: fmt.Sprintf("repository %q: snapshot %s cannot be read: %v", job.Repository, job.RepositorySnapshot, err)}, nil))
	}
	return err
}

// ManifestPartitions are the ids of the manifest's partitions named (nil: all of
// them); a name the manifest lacks is an error.
func ManifestPartitions(rd *manifest.Reader, names []string) ([]uint64, error) {
	if len(names) == 0 {
		return nil, nil
	}
	ids := make([]uint64, 0, len(names))
	for _, name := range names {
		i := slices.IndexFunc(rd.Header().Partitions, func(p *manifestpb.Partition) bool { return p.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("partition %q is not in the snapshot", name)
		}
		ids = append(ids, rd.Header().Partitions[i].Id)
	}
	slices.Sort(ids)
	return ids, nil
}

// finalize records a FINALIZING export in its repository: the snapshot's manifest is
// copied (checked against the size and xxhash64 the catalog recorded), then a new index
// generation lists the snapshot, then ExportComplete. Each step is idempotent, so a
// new leader redoes whatever its predecessor may have done.
func (c *Coordinator) finalize(ctx context.Context, job *fsmpb.RestoreJob) error {
	stores, err := c.cluster.JobStores(job.Kind, job.Repository)
	if err != nil {
		return err
	}
	v := c.cluster.View()
	snap, err := v.Snapshot(job.SnapshotId)
	if err != nil {
		return err
	}
	repo, err := c.openRepository(ctx, job.Repository, stores.Dest)
	if err != nil {
		return err
	}
	if err := c.copyManifest(ctx, stores, repo, snap, job.RepositorySnapshot); err != nil {
		return err
	}
	entry := repository.Entry{
		ID:               job.RepositorySnapshot,
		Name:             snap.Name,
		Database:         snap.DatabaseName,
		Collection:       snap.CollectionName,
		CollectionID:     snap.CollectionId,
		SourceClusterID:  job.SourceClusterId,
		SourceSnapshotID: snap.Id,
		Layout:           layoutName(snap.Layout),
		CreatedAt:        time.Unix(0, snap.CreatedAt),
		ExportedAt:       time.Now(),
		ManifestKey:      repository.ManifestRel(job.RepositorySnapshot),
		ManifestSize:     int64(snap.ManifestSize),
		ManifestXXHash64: snap.ManifestChecksum,
		Segments:         snap.GetSummary().GetSegments(),
		Rows:             snap.GetSummary().GetRows(),
		Files:            snap.GetSummary().GetFiles(),
		Bytes:            snap.GetSummary().GetBytes(),
		Labels:           snap.Labels,
		Description:      snap.Description,
	}
	index, err := repo.Update(ctx, job.SourceClusterId, time.Now(), func(ix *repository.Index) error {
		if _, ok := ix.Find(entry.ID); !ok {
			ix.Snapshots = append(ix.Snapshots, entry)
		}
		return nil
	})
	if errors.Is(err, repository.ErrOtherWriter) {
		return ignoreDone(c.cluster.Propose(ctx, &fsmpb.RestoreFail{JobId: job.Id, Error: err.Error()}, nil))
	}
	if err != nil {
		return fmt.Errorf("record export job %d in repository %q: %w", job.Id, job.Repository, err)
	}
	c.cfg.Logger.Info("export recorded in its repository", "job", job.Id, "repository", job.Repository,
		"snapshot", job.RepositorySnapshot, "generation", index.Generation)
	return ignoreDone(c.cluster.Propose(ctx, &fsmpb.ExportComplete{JobId: job.Id, Generation: index.Generation}, nil))
}

// copyManifest copies a snapshot's manifest from the cluster's bucket into the
// repository, through memory, checking its size and xxhash64 against the catalog's
// and uploading it with its CRC-32C.
func (c *Coordinator) copyManifest(ctx context.Context, stores JobStores, repo *repository.Repository, snap *fsmpb.Snapshot, id string) error {
	if snap.ManifestSize > maxManifestBytes {
		return fmt.Errorf("the manifest of snapshot %q is %d bytes; an export copies at most %d", snap.Name, snap.ManifestSize, maxManifestBytes)
	}
	key := c.cfg.Root.Full(snap.ManifestKey)
	rc, _, err := stores.Source.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read manifest %q: %w", key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
	if err != nil {
		return fmt.Errorf("read manifest %q: %w", key, err)
	}
	if uint64(len(body)) != snap.ManifestSize || xxhash.Sum64(body) != snap.ManifestChecksum {
		return fmt.Errorf("manifest %q is %d bytes with xxhash64 %016x; the catalog recorded %d bytes and %016x: not exported",
			key, len(body), xxhash.Sum64(body), snap.ManifestSize, snap.ManifestChecksum)
	}
	dst := repo.Keys().Manifest(id)
	crc := crc32.Checksum(body, castagnoli)
	if _, err := stores.Dest.Put(ctx, dst, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{CRC32C: crc, HasCRC32C: true}); err != nil {
		return fmt.Errorf("write manifest %q: %w", dst, err)
	}
	return nil
}

func layoutName(l fsmpb.KeyLayout) string {
	if l == fsmpb.KeyLayout_KEY_LAYOUT_MILVUS {
		return repository.LayoutMilvus
	}
	return repository.LayoutSnapkeep
}
