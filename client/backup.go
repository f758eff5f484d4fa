package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/snapkeep/snapkeep/fsm/backupfile"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// BackupToFile streams a metadata backup (a raft snapshot of the catalog behind a
// checksummed header) from the cluster to path, atomically: it is written to a
// temporary file beside path, verified (header, length, SHA-256), synced and renamed.
// A failed call leaves no file at path (and an existing one untouched).
func (c *Client) BackupToFile(ctx context.Context, path string) (*snapkeepv1.BackupInfo, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // a no-op after the rename
	}()
	info, err := c.Backup(ctx, tmp)
	if err != nil {
		return nil, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if _, err := backupfile.VerifyFile(tmp); err != nil {
		return nil, fmt.Errorf("backup received damaged, not written to %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("backup: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return info, nil
}

// Backup streams a metadata backup file to w, which must be an *os.File or another
// io.WriteSeeker with Truncate so that a retried attempt can start over; with any
// other writer the call is not retried.
func (c *Client) Backup(ctx context.Context, w io.Writer) (*snapkeepv1.BackupInfo, error) {
	type truncater interface {
		io.WriteSeeker
		Truncate(int64) error
	}
	attempts := 0
	return invoke(ctx, c, "Backup", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.BackupInfo, error) {
			attempts++
			if attempts > 1 {
				t, ok := w.(truncater)
				if !ok {
					return nil, &Error{Code: codes.Unknown, Message: "backup failed midway and the writer cannot start over"}
				}
				if err := t.Truncate(0); err != nil {
					return nil, err
				}
				if _, err := t.Seek(0, io.SeekStart); err != nil {
					return nil, err
				}
			}
			stream, err := snapkeepv1.NewBackupClient(ep.conn).Backup(ctx, &snapkeepv1.BackupRequest{}, o...)
			if err != nil {
				return nil, err
			}
			var info *snapkeepv1.BackupInfo
			for {
				chunk, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return nil, err
				}
				if chunk.Info != nil && info == nil {
					info = chunk.Info
				}
				if _, err := w.Write(chunk.Data); err != nil {
					return nil, fmt.Errorf("backup: write: %w", err)
				}
			}
			if info == nil {
				return nil, errors.New("backup: the server sent no backup")
			}
			return info, nil
		})
}

// RestoreBackupFile verifies the backup file at path (header, length, SHA-256) and
// installs it into the cluster through the leader, replacing the whole catalog. A
// cluster whose catalog is not empty is refused unless force is set. A damaged file
// is refused before anything is sent, and the server verifies it again.
func (c *Client) RestoreBackupFile(ctx context.Context, path string, force bool) (*snapkeepv1.RestoreBackupResponse, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	if _, err := backupfile.VerifyFile(f); err != nil {
		return nil, fmt.Errorf("restore refused: %s: %w", path, err)
	}
	return c.RestoreBackup(ctx, f, force)
}

// RestoreBackup installs the backup read from r (seekable, so a retry can start
// over) into the cluster through the leader. See RestoreBackupFile.
func (c *Client) RestoreBackup(ctx context.Context, r io.ReadSeeker, force bool) (*snapkeepv1.RestoreBackupResponse, error) {
	// Learn the leader first, so the upload goes there.
	_, _ = c.ClusterStatus(ctx)
	return invoke(ctx, c, "RestoreBackup", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.RestoreBackupResponse, error) {
			if _, err := r.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			stream, err := snapkeepv1.NewBackupClient(ep.conn).RestoreBackup(ctx, o...)
			if err != nil {
				return nil, err
			}
			buf := make([]byte, 1<<20)
			for first := true; ; first = false {
				n, rerr := io.ReadFull(r, buf)
				if n > 0 || first {
					if err := stream.Send(&snapkeepv1.RestoreBackupChunk{Force: force && first, Data: buf[:n]}); err != nil {
						if errors.Is(err, io.EOF) {
							break // the server answered early: CloseAndRecv has its status
						}
						return nil, err
					}
				}
				if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
					break
				}
				if rerr != nil {
					return nil, fmt.Errorf("restore: read: %w", rerr)
				}
			}
			return stream.CloseAndRecv()
		})
}

// BackupToStore asks the leader to write a backup to the bucket now (under the
// cluster's backup prefix, keeping the configured number) and returns its key.
func (c *Client) BackupToStore(ctx context.Context) (*snapkeepv1.BackupToStoreResponse, error) {
	req := &snapkeepv1.BackupToStoreRequest{}
	return invoke(ctx, c, "BackupToStore", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.BackupToStoreResponse, error) {
			return snapkeepv1.NewBackupClient(ep.conn).BackupToStore(ctx, req, o...)
		})
}
