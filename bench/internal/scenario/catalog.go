package scenario

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/backupfile"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/fsmtest"
)

// catalogBuilder applies commands to an FSM the way a node's Raft does (one log entry
// each, in index order), without Raft or the network.
type catalogBuilder struct {
	f     *fsm.FSM
	index uint64
}

func (b *catalogBuilder) apply(requestID string, cmd proto.Message) (*fsmpb.Result, error) {
	data, err := fsm.EncodeCommand(requestID, time.Now().UnixNano(), cmd)
	if err != nil {
		return nil, err
	}
	b.index++
	res := b.f.Apply(&raft.Log{Index: b.index, Type: raft.LogCommand, Data: data}).(*fsm.ApplyResult)
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("apply %T: %w", cmd, err)
	}
	return res.Result, nil
}

// buildCatalogBackup builds a catalog of one collection with segments flushed
// segments × 8 files through fsm Apply — an AllocateSegment and a FlushSegment entry
// per segment with request ids, as the client sends them — and writes it as a metadata
// backup file (header + raft snapshot, what `snapkeep cluster backup` writes) to path.
// With milvus, the collection has the Milvus layout and every segment and binlog
// Milvus's metadata (fsmtest.MilvusFiles, fsmtest.MilvusSegmentMeta); else the
// snapkeep layout without it (fsmtest.SnapkeepFiles). It returns the Go heap in use,
// after a garbage collection, while the catalog built entry by entry is alive: the
// figure to compare with a node that loaded it from a snapshot.
func buildCatalogBackup(path, collection string, segments int, milvus bool) (heapInuse uint64, err error) {
	b := &catalogBuilder{f: fsm.New(nil)}
	create := &fsmpb.CreateCollection{Name: collection}
	if milvus {
		create.Layout = fsmpb.KeyLayout_KEY_LAYOUT_MILVUS
	}
	if _, err := b.apply("create-"+collection, create); err != nil {
		return 0, err
	}
	coll, _, err := b.f.View().Collection("", collection)
	if err != nil {
		return 0, err
	}
	for i := range segments {
		res, err := b.apply(fmt.Sprintf("alloc-%d", i), &fsmpb.AllocateSegment{Collection: collection, Lease: int64(time.Hour)})
		if err != nil {
			return 0, err
		}
		var seg fsmpb.SegmentResponse
		if err := proto.Unmarshal(res.Response, &seg); err != nil {
			return 0, fmt.Errorf("allocate response: %w", err)
		}
		s := seg.Segment
		flush := &fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 1000, Files: fsmtest.SnapkeepFiles(coll.Id, s.Id)}
		if milvus {
			flush.Files, flush.Meta = fsmtest.MilvusFiles(coll.Id, s.PartitionId, s.Id), fsmtest.MilvusSegmentMeta(s.Id)
		}
		if _, err := b.apply(fmt.Sprintf("flush-%d", i), flush); err != nil {
			return 0, err
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	err = writeBackupFile(path, b.f.View())
	// The catalog is the bench process's largest allocation; hand it back before the
	// nodes load their copies.
	b.f = nil
	runtime.GC()
	debug.FreeOSMemory()
	return ms.HeapInuse, err
}

// writeBackupFile writes view as a backup file: the body (a raft snapshot) goes to a
// temporary file first, since the header holds its length and SHA-256.
func writeBackupFile(path string, view *fsm.View) error {
	body, err := os.CreateTemp(filepath.Dir(path), "backup-body-*")
	if err != nil {
		return err
	}
	defer func() {
		body.Close()
		os.Remove(body.Name())
	}()
	digest := sha256.New()
	if _, err := view.WriteSnapshot(io.MultiWriter(body, digest)); err != nil {
		return fmt.Errorf("write the snapshot: %w", err)
	}
	size, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	h := &backupfile.Header{BodySize: uint64(size), Index: view.AppliedIndex(), Term: 1, CreatedAt: time.Now().UTC(), Node: "bench"}
	copy(h.SHA256[:], digest.Sum(nil))
	head, err := h.Encode()
	if err != nil {
		return err
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := out.Write(head); err != nil {
		out.Close()
		return err
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		out.Close()
		return err
	}
	if _, err := io.Copy(out, body); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
