package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/backupfile"
	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Metadata backups (docs/OPERATIONS.md): a backup file is a checksummed header
// (package backup) and a raft snapshot of the FSM taken from a linearizable read view.
// Backup streams one to a client; RestoreBackup installs one through the leader with
// raft's user-snapshot restore (replicated to the followers by InstallSnapshot);
// the leader also writes them to the bucket on a schedule and keeps the newest few.

// BackupConfig configures scheduled backups to the bucket.
type BackupConfig struct {
	// Interval is how often the leader writes a backup to the bucket (0: never; on
	// demand with BackupToStore still works).
	Interval time.Duration
	// Retain is how many scheduled or on-demand backups are kept in the bucket, the
	// oldest deleted first (default 7).
	Retain int
	// Prefix is where backups go under the storage root (default "backups/"). The GC
	// orphan scan never deletes anything under it.
	Prefix string
}

// Backup defaults.
const (
	DefaultBackupRetain = 7
	DefaultBackupPrefix = "backups/"
	// backupRestoreTimeout bounds raft's restore of a backup on the leader.
	backupRestoreTimeout = 10 * time.Minute
	backupChunk          = 1 << 20
	backupKeyTime        = "20060102T150405.000Z"
)

func (c *BackupConfig) applyDefaults() {
	if c.Retain == 0 {
		c.Retain = DefaultBackupRetain
	}
	if c.Prefix == "" {
		c.Prefix = DefaultBackupPrefix
	}
	c.Prefix = strings.TrimLeft(c.Prefix, "/")
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
}

func (c *BackupConfig) validate() []error {
	var errs []error
	if c.Interval < 0 || (c.Interval > 0 && c.Interval < 10*time.Millisecond) {
		errs = append(errs, fmt.Errorf("--backup-interval %v must be 0 (off) or at least 10ms", c.Interval))
	}
	if c.Retain < 1 || c.Retain > 10000 {
		errs = append(errs, fmt.Errorf("--backup-retain %d must be between 1 and 10000", c.Retain))
	}
	p := strings.TrimSuffix(c.Prefix, "/")
	switch {
	case p == "" || strings.Contains(p, "..") || strings.Contains(p, "//"):
		errs = append(errs, fmt.Errorf("--backup-prefix %q must be a relative path without '..' or '//'", c.Prefix))
	case p == "collections" || p == "snapshots" || strings.HasPrefix(p, "collections/") || strings.HasPrefix(p, "snapshots/"):
		errs = append(errs, fmt.Errorf("--backup-prefix %q must not be under collections/ or snapshots/ (they hold the catalog's objects)", c.Prefix))
	}
	return errs
}

// registerBackup serves the Backup API; the leader's backupLoop shares the service.
func (n *Node) registerBackup() {
	n.backups = &backupService{n: n}
	pb.RegisterBackupServer(n.grpcServer, n.backups)
}

type backupService struct {
	pb.UnimplementedBackupServer
	n *Node

	restoreMu sync.Mutex // one restore at a time
	storeMu   sync.Mutex // one backup to the bucket at a time
}

// spooledBackup is a backup written to a temporary file in the data dir.
type spooledBackup struct {
	file   *os.File
	header *backupfile.Header
	head   []byte
}

func (s *spooledBackup) size() uint64 { return uint64(len(s.head)) + s.header.BodySize }

func (s *spooledBackup) close() {
	s.file.Close()
	os.Remove(s.file.Name())
}

// reader returns the whole file: header then body.
func (s *spooledBackup) reader() (io.Reader, error) {
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.MultiReader(bytes.NewReader(s.head), io.LimitReader(s.file, int64(s.header.BodySize))), nil
}

func (s *spooledBackup) info() *pb.BackupInfo { return backupInfo(s.header, s.size()) }

func backupInfo(h *backupfile.Header, fileSize uint64) *pb.BackupInfo {
	return &pb.BackupInfo{
		RaftIndex: h.Index, RaftTerm: h.Term, CreatedAt: h.CreatedAt.UnixNano(), NodeId: h.Node,
		FileSize: fileSize, BodySize: h.BodySize, Sha256: hex.EncodeToString(h.SHA256[:]),
	}
}

// takeBackup writes a backup of a linearizable view of the state to a temporary file.
func (n *Node) takeBackup(ctx context.Context) (*spooledBackup, error) {
	view, err := n.readView(ctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(n.cfg.DataDir, "backup-*.tmp")
	if err != nil {
		return nil, status.Errorf(codes.Internal, "backup: temporary file: %v", err)
	}
	sp := &spooledBackup{file: f}
	digest := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, digest)}
	if _, err := view.WriteSnapshot(cw); err != nil {
		sp.close()
		return nil, status.Errorf(codes.Internal, "backup: write the snapshot: %v", err)
	}
	sp.header = &backupfile.Header{BodySize: cw.n, Index: view.AppliedIndex(), Term: n.raft.CurrentTerm(),
		CreatedAt: time.Now().UTC(), Node: n.cfg.NodeID}
	copy(sp.header.SHA256[:], digest.Sum(nil))
	if sp.head, err = sp.header.Encode(); err != nil {
		sp.close()
		return nil, status.Errorf(codes.Internal, "backup: %v", err)
	}
	return sp, nil
}

type countingWriter struct {
	w io.Writer
	n uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

func (s *backupService) setLeaderHeader(stream interface{ SetHeader(metadata.MD) error }) {
	if addr, _ := s.n.leaderGRPCAddr(); addr != "" {
		_ = stream.SetHeader(metadata.Pairs(LeaderMetadataKey, addr))
	}
}

// Backup streams a backup file.
func (s *backupService) Backup(_ *pb.BackupRequest, stream pb.Backup_BackupServer) error {
	s.setLeaderHeader(stream)
	sp, err := s.n.takeBackup(stream.Context())
	if err != nil {
		return err
	}
	defer sp.close()
	r, err := sp.reader()
	if err != nil {
		return status.Errorf(codes.Internal, "backup: %v", err)
	}
	buf := make([]byte, backupChunk)
	first := true
	for {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 || first {
			chunk := &pb.BackupChunk{Data: buf[:k]}
			if first {
				chunk.Info, first = sp.info(), false
			}
			if err := stream.Send(chunk); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return status.Errorf(codes.Internal, "backup: read the spooled file: %v", rerr)
		}
	}
}

// RestoreBackup installs a backup through the leader.
func (s *backupService) RestoreBackup(stream pb.Backup_RestoreBackupServer) error {
	n := s.n
	s.setLeaderHeader(stream)
	if n.raft.State() != raft.Leader {
		// Unavailable with the leader named in the trailer: the client retries there.
		addr, id := n.leaderGRPCAddr()
		if addr != "" {
			stream.SetTrailer(metadata.Pairs(LeaderMetadataKey, addr))
		}
		return status.Errorf(codes.Unavailable, "not the leader: a restore must go to the leader %s (%s)", id, addr)
	}
	if !s.restoreMu.TryLock() {
		return status.Error(codes.Aborted, "another restore is running on this node")
	}
	defer s.restoreMu.Unlock()

	// Spool the upload: it is verified in full before anything changes.
	f, err := os.CreateTemp(n.cfg.DataDir, "restore-*.tmp")
	if err != nil {
		return status.Errorf(codes.Internal, "restore: temporary file: %v", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	force := false
	for first := true; ; first = false {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if first {
			force = msg.Force
		}
		if _, err := f.Write(msg.Data); err != nil {
			return status.Errorf(codes.Internal, "restore: spool the upload: %v", err)
		}
	}

	// 1. The header, the length and the SHA-256 of the body.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return status.Errorf(codes.Internal, "restore: %v", err)
	}
	h, err := backupfile.VerifyFile(f)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "backup refused, nothing was changed: %v", err)
	}
	headLen := int64(0)
	if head, err := h.Encode(); err == nil {
		headLen = int64(len(head))
	}
	body := func() (io.Reader, error) {
		if _, err := f.Seek(headLen, io.SeekStart); err != nil {
			return nil, err
		}
		return io.LimitReader(f, int64(h.BodySize)), nil
	}
	// 2. Every record: raft panics if the FSM cannot restore a user snapshot, so the
	// body is decoded into a scratch FSM first.
	r, err := body()
	if err != nil {
		return status.Errorf(codes.Internal, "restore: %v", err)
	}
	scratch := fsm.New(nil)
	if err := scratch.Restore(io.NopCloser(r)); err != nil {
		return status.Errorf(codes.InvalidArgument, "backup refused, nothing was changed: %v", err)
	}
	// 3. Only into an empty cluster, unless forced.
	view, err := n.readView(stream.Context(), pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	if err != nil {
		return err
	}
	if !view.CatalogEmpty() && !force {
		return status.Error(codes.FailedPrecondition, "the cluster's catalog is not empty: restoring would replace all of it; restore into a fresh cluster, or pass --force to replace it")
	}
	// Raft installs the snapshot at max(its last index, meta.Index)+1. The state is
	// re-encoded with that index as its applied index, so the FSM's applied index
	// matches Raft's on every node (reads wait on it), and with this cluster's node
	// registrations, not the backed-up cluster's (nodes forward to the registered
	// addresses). The catalog is unchanged.
	target := max(n.raft.LastIndex(), h.Index) + 1
	install, err := os.CreateTemp(n.cfg.DataDir, "restore-*.tmp")
	if err != nil {
		return status.Errorf(codes.Internal, "restore: temporary file: %v", err)
	}
	defer func() {
		install.Close()
		os.Remove(install.Name())
	}()
	cw := &countingWriter{w: install}
	if _, err := scratch.View().WriteSnapshotAt(cw, target, view.Nodes()); err != nil {
		return status.Errorf(codes.Internal, "restore: re-encode the state: %v", err)
	}
	if _, err := install.Seek(0, io.SeekStart); err != nil {
		return status.Errorf(codes.Internal, "restore: %v", err)
	}
	n.logger.Warn("restoring a metadata backup: the whole catalog is replaced", "backup_index", h.Index,
		"backup_node", h.Node, "backup_created", h.CreatedAt, "force", force, "install_index", target)
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: target - 1, Term: h.Term, Size: int64(cw.n)}
	if err := n.raft.Restore(meta, install, backupRestoreTimeout); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return status.Errorf(codes.Unavailable, "leadership changed before the restore started (%v); retry", err)
		}
		// Not retried by clients: the restore may or may not have been installed.
		return status.Errorf(codes.Internal, "raft restore: %v; check the catalog (snapkeep collection list) before restoring again with --force", err)
	}
	// The leader's duties pick up what the restored state holds: PENDING snapshots to
	// finish, restore jobs to pre-check or lease, expired leases and allocations.
	n.finisher.Kick()
	n.kickRestores()
	// The scratch state (as large as the catalog) is garbage now, but Go's scavenger
	// leaves freed memory resident while the process stays under its heap goal (twice
	// the live heap by default): the leader could keep up to ~1.8× the catalog's
	// memory (667–879 MiB RSS for 487 MiB of heap in use after a 1M-segment restore,
	// bench scenario 7). Hand it back now; a restore is rare, one forced GC cheap
	// beside it.
	go func() {
		start := time.Now()
		debug.FreeOSMemory()
		n.logger.Info("memory of the restore's scratch state returned to the OS", "took", time.Since(start))
	}()
	installed := n.fsm.AppliedIndex()
	n.logger.Warn("metadata backup restored", "backup_index", h.Index, "installed_index", installed)
	return stream.SendAndClose(&pb.RestoreBackupResponse{Restored: backupInfo(h, uint64(headLen)+h.BodySize), InstalledIndex: installed})
}

// BackupToStore writes a backup to the bucket now (on the leader).
func (s *backupService) BackupToStore(ctx context.Context, req *pb.BackupToStoreRequest) (*pb.BackupToStoreResponse, error) {
	n := s.n
	if n.raft.State() != raft.Leader {
		// Not forwarded: the caller's token must reach the leader, so the client
		// retries there (it follows the leader named in the error and header).
		return nil, n.notLeader("a backup to the bucket")
	}
	return s.backupToStore(ctx)
}

func (s *backupService) backupToStore(ctx context.Context) (*pb.BackupToStoreResponse, error) {
	n := s.n
	store, err := n.objectStore()
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "backup to the bucket: %v", err)
	}
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	sp, err := n.takeBackup(ctx)
	if err != nil {
		return nil, err
	}
	defer sp.close()
	r, err := sp.reader()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "backup: %v", err)
	}
	key := n.backupKey(fmt.Sprintf("backup-%020d-%s.skb", sp.header.Index, sp.header.CreatedAt.Format(backupKeyTime)))
	if _, err := store.Put(ctx, key, r, int64(sp.size()), objstore.PutOptions{}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "upload backup %s: %v", key, err)
	}
	deleted, err := s.prune(ctx, store)
	if err != nil {
		n.logger.Warn("prune old backups", "err", err)
	}
	n.logger.Info("metadata backup written", "key", key, "index", sp.header.Index, "bytes", sp.size(), "deleted", len(deleted))
	return &pb.BackupToStoreResponse{Key: key, Info: sp.info(), Deleted: deleted}, nil
}

// backupKey is the full key of a name under the backup prefix.
func (n *Node) backupKey(name string) string {
	key := n.cfg.Backup.Prefix + name
	if n.cfg.Root != "" {
		key = n.cfg.Root + "/" + key
	}
	return key
}

// listBackups returns the backup objects, oldest first (their names sort by index,
// then time).
func (n *Node) listBackups(ctx context.Context, store objstore.Store) ([]objstore.ObjectInfo, error) {
	prefix := n.backupKey("backup-")
	var out []objstore.ObjectInfo
	token := ""
	for {
		page, err := store.List(ctx, prefix, token, 1000)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			if strings.HasSuffix(o.Key, ".skb") {
				out = append(out, o)
			}
		}
		if page.NextToken == "" || page.NextToken == token {
			break
		}
		token = page.NextToken
	}
	slices.SortFunc(out, func(a, b objstore.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// prune deletes the oldest backups beyond the retain count.
func (s *backupService) prune(ctx context.Context, store objstore.Store) ([]string, error) {
	all, err := s.n.listBackups(ctx, store)
	if err != nil {
		return nil, err
	}
	extra := len(all) - s.n.cfg.Backup.Retain
	if extra <= 0 {
		return nil, nil
	}
	var keys []string
	for _, o := range all[:extra] {
		keys = append(keys, o.Key)
	}
	var deleted []string
	for start := 0; start < len(keys); start += objstore.MaxDeleteBatch {
		res, err := store.Delete(ctx, keys[start:min(start+objstore.MaxDeleteBatch, len(keys))])
		deleted = append(deleted, res.Deleted...)
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// backupLoop writes a backup to the bucket every Backup.Interval, for one term as
// leader. A new leader continues from the newest backup in the bucket.
func (n *Node) backupLoop() duty.Loop {
	s := n.backups
	interval := n.cfg.Backup.Interval
	var last time.Time
	started := false
	return duty.Loop{Name: "backup", Every: min(interval, time.Second), Pass: func(ctx context.Context) {
		if !started {
			// The previous leader's schedule counts.
			started = true
			if store, err := n.objectStore(); err == nil {
				if all, err := n.listBackups(ctx, store); err == nil && len(all) > 0 {
					last = backupTime(all[len(all)-1].Key)
				}
			}
		}
		if time.Since(last) < interval {
			return
		}
		last = time.Now()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		if _, err := s.backupToStore(ctx); err != nil && !errors.Is(ctx.Err(), context.Canceled) {
			n.logger.Warn("scheduled metadata backup failed", "err", err)
		}
	}}
}

// backupTime parses the time out of a backup key (zero if it has none).
func backupTime(key string) time.Time {
	name := key[strings.LastIndex(key, "/")+1:]
	name = strings.TrimSuffix(name, ".skb")
	i := strings.LastIndex(name, "-")
	if i < 0 {
		return time.Time{}
	}
	t, err := time.Parse(backupKeyTime, name[i+1:])
	if err != nil {
		return time.Time{}
	}
	return t
}
