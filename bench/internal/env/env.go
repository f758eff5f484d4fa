// Package env starts what the benchmarks run against — a versitygw S3 server, a
// three-node snapkeep cluster and a three-member etcd cluster — as real processes on
// 127.0.0.1, with their data under one work directory (one disk), and stops them.
//
// Binaries come from <repo>/bin: versitygw (make tools), snapkeep (built here from the
// repository's own source) and etcd (built by `make bench` from the bench module).
package env

import (
	"context"
	"errors"
	"fmt"
	"github.com/snapkeep/snapkeep/internal/loopback"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RepoRoot is the snapkeep repository: the directory above bench/ holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if filepath.Base(dir) != "bench" {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("env: no snapkeep go.mod above the working directory")
		}
		dir = parent
	}
}

// Bin is <repo>/bin/name, which must exist.
func Bin(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("env: %s missing (make bench builds it): %w", p, err)
	}
	return p, nil
}

// FreeAddr picks a free 127.0.0.1 port (TCP and UDP) below Linux's ephemeral range,
// never the same twice in this process, so a restarted server binds its port again.
func FreeAddr() (string, error) { return loopback.FreeAddr() }

// Proc is one server process in its own process group, its output in a log file.
type Proc struct {
	Name    string
	Binary  string
	Args    []string
	Env     []string
	LogPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts the process (a no-op while it runs).
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return nil
		}
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Binary, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Pid is the process id (0 when not started).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL to the process group and waits (up to 10 s) for the exit.
func (p *Proc) Kill() error { return p.stop(syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM, then SIGKILL after 10 s, and waits for the exit.
func (p *Proc) Stop() error {
	if err := p.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		return p.Kill()
	}
	return nil
}

func (p *Proc) stop(sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-exited:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%s did not exit %s after %v", p.Name, wait, sig)
	}
}

// RSS is the process's resident set size in bytes, from /proc.
func (p *Proc) RSS() (int64, error) {
	pid := p.Pid()
	if pid == 0 {
		return 0, fmt.Errorf("%s not running", p.Name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kib, err := strconv.ParseInt(f[1], 10, 64)
			return kib << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// waitFor polls check every interval until it returns nil or ctx ends.
func waitFor(ctx context.Context, interval time.Duration, check func(context.Context) error) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}
