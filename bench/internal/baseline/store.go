package baseline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/snapkeep/snapkeep/objstore"
)

// DefaultParallelism is how many objects one snapshot writes or reads at a time: the
// same total as snapkeep's restore executors in BENCHMARKS-GO.md (two followers × 16)
// and datagen's upload concurrency there, and enough to keep versitygw busy on this
// machine (more in flight only queues on its two cores).
const DefaultParallelism = 32

// Baseline keeps snapshots the Milvus way: records in etcd, manifests in S3.
type Baseline struct {
	Etcd  *clientv3.Client
	Store objstore.Store
	// Root is the key prefix of the snapshot objects in the bucket (Milvus's
	// rootPath); segment data paths in the manifests are under Root too.
	Root string
	// Parallelism bounds the object PUTs (Create) and GETs (ReadBack) one call has
	// in flight (0: DefaultParallelism).
	Parallelism int
}

// Field is one field of a collection schema.
type Field struct {
	FieldID      int64             `json:"fieldID"`
	Name         string            `json:"name"`
	IsPrimaryKey bool              `json:"is_primary_key,omitempty"`
	DataType     string            `json:"data_type"`
	TypeParams   map[string]string `json:"type_params,omitempty"`
}

// CollectionDescription is what the metadata JSON records of the collection.
type CollectionDescription struct {
	ID                  int64             `json:"collection_id"`
	Name                string            `json:"collection_name"`
	DBName              string            `json:"db_name"`
	Fields              []Field           `json:"fields"`
	ShardsNum           int32             `json:"shards_num"`
	Partitions          map[string]int64  `json:"partitions"` // name → id
	VirtualChannelNames []string          `json:"virtual_channel_names"`
	Properties          map[string]string `json:"properties,omitempty"`
}

// IndexInfo is an index definition in the metadata JSON.
type IndexInfo struct {
	IndexID     int64             `json:"index_id"`
	FieldID     int64             `json:"field_id"`
	IndexName   string            `json:"index_name"`
	IndexParams map[string]string `json:"index_params"`
}

// snapshotInfoJSON is SnapshotInfo as the metadata JSON holds it.
type snapshotInfoJSON struct {
	ID               int64   `json:"id"`
	CollectionID     int64   `json:"collection_id"`
	CreateTS         uint64  `json:"create_ts"`
	Name             string  `json:"name"`
	Description      string  `json:"description"`
	S3Location       string  `json:"s3_location"`
	PartitionIDs     []int64 `json:"partition_ids"`
	State            string  `json:"state"`
	PendingStartTime int64   `json:"pending_start_time"`
}

// Metadata is the snapshot's metadata JSON object.
type Metadata struct {
	FormatVersion int                   `json:"format_version"`
	SnapshotInfo  snapshotInfoJSON      `json:"snapshot_info"`
	Collection    CollectionDescription `json:"collection"`
	Indexes       []IndexInfo           `json:"indexes"`
	ManifestList  []string              `json:"manifest_list"`
	SegmentIDs    []int64               `json:"segment_ids"`
	IndexIDs      []int64               `json:"index_ids"`
}

// TestCollection is a collection description in Milvus's shape: an int64 primary
// key, a float vector and two scalar fields, one shard, the given partitions.
func TestCollection(id uint64, name string, partitions map[string]int64) CollectionDescription {
	return CollectionDescription{
		ID: int64(id), Name: name, DBName: "default", ShardsNum: 1, Partitions: partitions,
		VirtualChannelNames: []string{channelName(id)},
		Fields: []Field{
			{FieldID: 0, Name: "RowID", DataType: "Int64"},
			{FieldID: 1, Name: "Timestamp", DataType: "Int64"},
			{FieldID: 100, Name: "id", IsPrimaryKey: true, DataType: "Int64"},
			{FieldID: 101, Name: "vector", DataType: "FloatVector", TypeParams: map[string]string{"dim": "768"}},
			{FieldID: 102, Name: "title", DataType: "VarChar", TypeParams: map[string]string{"max_length": "512"}},
			{FieldID: 103, Name: "created", DataType: "Int64"},
		},
		Properties: map[string]string{"collection.ttl.seconds": "86400"},
	}
}

// Keys.

// RecordKey is the snapshot record's etcd key.
func RecordKey(collectionID, snapshotID int64) string {
	return fmt.Sprintf("datacoord-meta/snapshot/%d/%d", collectionID, snapshotID)
}

// ManifestKey is a segment's manifest object key.
func (b *Baseline) ManifestKey(collectionID, snapshotID, segmentID int64) string {
	return fmt.Sprintf("%s/snapshots/%d/manifests/%d/%d.avro", b.Root, collectionID, snapshotID, segmentID)
}

// MetadataKey is the snapshot's metadata JSON key.
func (b *Baseline) MetadataKey(collectionID, snapshotID int64) string {
	return fmt.Sprintf("%s/snapshots/%d/metadata/%d.json", b.Root, collectionID, snapshotID)
}

func (b *Baseline) parallelism() int {
	if b.Parallelism > 0 {
		return b.Parallelism
	}
	return DefaultParallelism
}

// CreateResult says what Create wrote.
type CreateResult struct {
	Objects     int   // S3 objects (manifests + metadata JSON)
	ObjectBytes int64 // their bytes
	EtcdPuts    int
	RecordBytes int // the COMMITTED record's size
}

// Create takes a snapshot of segs the way Milvus does: put the record PENDING, write
// one Avro object per segment (Parallelism at a time) and the metadata JSON, put the
// record COMMITTED. The segments' descriptions come from memory, as they do in
// DataCoord, whose segment metadata is cached.
func (b *Baseline) Create(ctx context.Context, info SnapshotInfo, coll CollectionDescription, indexes []IndexInfo, segs []Segment) (CreateResult, error) {
	var res CreateResult
	info.CollectionID = coll.ID
	info.State = StatePending
	info.PendingStartTime = time.Now().UnixMilli()
	info.S3Location = b.MetadataKey(info.CollectionID, info.ID)
	key := RecordKey(info.CollectionID, info.ID)
	if _, err := b.Etcd.Put(ctx, key, string(info.Marshal())); err != nil {
		return res, fmt.Errorf("put %s PENDING: %w", key, err)
	}
	res.EtcdPuts++

	written, err := b.WriteObjects(ctx, info, coll, indexes, segs)
	res.Objects, res.ObjectBytes = written.Objects, written.ObjectBytes
	if err != nil {
		return res, err
	}

	info.State = StateCommitted
	rec := info.Marshal()
	if _, err := b.Etcd.Put(ctx, key, string(rec)); err != nil {
		return res, fmt.Errorf("put %s COMMITTED: %w", key, err)
	}
	res.EtcdPuts++
	res.RecordBytes = len(rec)
	return res, nil
}

// WriteObjects writes a snapshot's objects: one Avro object per segment
// (Parallelism at a time), then the metadata JSON at info.S3Location (set it, or
// leave it empty for MetadataKey). It is Create without the etcd records.
func (b *Baseline) WriteObjects(ctx context.Context, info SnapshotInfo, coll CollectionDescription, indexes []IndexInfo, segs []Segment) (CreateResult, error) {
	var res CreateResult
	info.CollectionID = coll.ID
	if info.S3Location == "" {
		info.S3Location = b.MetadataKey(info.CollectionID, info.ID)
	}
	manifests := make([]string, len(segs))
	segIDs := make([]int64, len(segs))
	var bytesMu sync.Mutex
	err := forEach(ctx, len(segs), b.parallelism(), func(ctx context.Context, i int) error {
		s := segs[i]
		data, err := EncodeEntry(EntryOf(s, b.Root))
		if err != nil {
			return err
		}
		k := b.ManifestKey(info.CollectionID, info.ID, int64(s.ID))
		if _, err := b.Store.Put(ctx, k, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{}); err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
		manifests[i], segIDs[i] = k, int64(s.ID)
		bytesMu.Lock()
		res.ObjectBytes += int64(len(data))
		bytesMu.Unlock()
		return nil
	})
	if err != nil {
		return res, err
	}
	res.Objects += len(segs)

	md := Metadata{FormatVersion: 1, SnapshotInfo: infoJSON(info, StateCommitted), Collection: coll, Indexes: indexes,
		ManifestList: manifests, SegmentIDs: segIDs, IndexIDs: []int64{}}
	for _, ix := range indexes {
		md.IndexIDs = append(md.IndexIDs, ix.IndexID)
	}
	data, err := json.Marshal(&md)
	if err != nil {
		return res, fmt.Errorf("encode metadata: %w", err)
	}
	if _, err := b.Store.Put(ctx, info.S3Location, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{ContentType: "application/json"}); err != nil {
		return res, fmt.Errorf("put %s: %w", info.S3Location, err)
	}
	res.Objects++
	res.ObjectBytes += int64(len(data))
	return res, nil
}

func infoJSON(s SnapshotInfo, state SnapshotState) snapshotInfoJSON {
	names := map[SnapshotState]string{StatePending: "Pending", StateCommitted: "Committed", StateDeleting: "Deleting"}
	return snapshotInfoJSON{ID: s.ID, CollectionID: s.CollectionID, CreateTS: s.CreateTS, Name: s.Name, Description: s.Description,
		S3Location: s.S3Location, PartitionIDs: s.PartitionIDs, State: names[state], PendingStartTime: s.PendingStartTime}
}

// ReadBackResult says what ReadBack read.
type ReadBackResult struct {
	Metadata Metadata
	Segments int
	Files    int
	Objects  int
	Bytes    int64
}

// ReadBack reads a snapshot's whole manifest the Milvus way (ReadSnapshot with
// segments): GET the metadata JSON, then every Avro object in its manifest list
// (Parallelism at a time), decoding each.
func (b *Baseline) ReadBack(ctx context.Context, collectionID, snapshotID int64) (ReadBackResult, error) {
	var res ReadBackResult
	key := b.MetadataKey(collectionID, snapshotID)
	data, err := b.get(ctx, key)
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal(data, &res.Metadata); err != nil {
		return res, fmt.Errorf("decode %s: %w", key, err)
	}
	res.Objects, res.Bytes = 1, int64(len(data))
	var mu sync.Mutex
	err = forEach(ctx, len(res.Metadata.ManifestList), b.parallelism(), func(ctx context.Context, i int) error {
		k := res.Metadata.ManifestList[i]
		data, err := b.get(ctx, k)
		if err != nil {
			return err
		}
		e, err := DecodeEntry(data)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		mu.Lock()
		res.Segments++
		res.Files += e.FileCount()
		res.Objects++
		res.Bytes += int64(len(data))
		mu.Unlock()
		return nil
	})
	return res, err
}

func (b *Baseline) get(ctx context.Context, key string) ([]byte, error) {
	rc, info, err := b.Store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	buf := bytes.NewBuffer(make([]byte, 0, info.Size))
	if _, err := io.Copy(buf, rc); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return buf.Bytes(), nil
}

// forEach runs fn(i) for i in [0, n) with at most par calls at a time; the first
// error cancels the rest and is returned.
func forEach(ctx context.Context, n, par int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(par, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx) // nil unless fn failed or ctx ended
}
