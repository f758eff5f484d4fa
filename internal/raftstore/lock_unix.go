//go:build unix

package raftstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockDir takes an flock on dir/LOCK, exclusive for a node, shared for a reader,
// waiting up to timeout for another process to let go. A reader of a data dir that has
// no LOCK file (written before it existed) takes none.
func lockDir(dir string, exclusive bool, timeout time.Duration) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	var f *os.File
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
		f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	} else {
		f, err = os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return func() {}, nil
		}
	}
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s is locked: another process (a running node?) is using this data dir", path)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
