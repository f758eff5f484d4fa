package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// exitWait bounds how long Kill and Stop wait for the process to exit.
const exitWait = 10 * time.Second

// Process supervises one server process: started in its own process group (so a
// signal reaches whatever it runs) with stdout and stderr appended to a log file, and
// reaped by the harness. It can be started again once it has exited.
type Process struct {
	Name    string   // names the process in errors
	Binary  string   // the executable
	Args    []string // Start's arguments
	Env     []string // added to the harness's environment at each start
	LogPath string   // stdout and stderr, appended across starts

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process is reaped
}

// Start starts the process with Args (a no-op while it runs).
func (p *Process) Start() error { return p.StartWith(p.Args, "") }

// StartWith starts the process with args instead of Args, first writing banner (when
// not empty) as a line of the log (a no-op while it runs).
func (p *Process) StartWith(args []string, banner string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runningLocked() {
		return nil
	}
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	if banner != "" {
		if _, err := fmt.Fprintln(logFile, banner); err != nil {
			_ = logFile.Close()
			return fmt.Errorf("start %s: %w", p.Name, err)
		}
	}
	cmd := exec.Command(p.Binary, args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

func (p *Process) runningLocked() bool {
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

// Running reports whether the process is alive (a paused one is).
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runningLocked()
}

// Exited is closed once the current process has exited and been reaped (nil before
// the first start).
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// Pid is the process id (0 when not started).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the process group of the running process.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	// An exited process's group id may belong to someone else by now.
	if !p.runningLocked() {
		return fmt.Errorf("%v to %s: not running", sig, p.Name)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("%v to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Pause stops the process group (SIGSTOP); it stays alive.
func (p *Process) Pause() error { return p.Signal(syscall.SIGSTOP) }

// Resume continues a paused process group (SIGCONT).
func (p *Process) Resume() error { return p.Signal(syscall.SIGCONT) }

// Kill sends SIGKILL to the process group and waits for the exit. A process not
// running is left as it is.
func (p *Process) Kill() error {
	exited, running := p.state()
	if !running {
		return nil
	}
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Signal(syscall.SIGKILL)
	return p.waitExit(exited, syscall.SIGKILL)
}

// Stop sends SIGTERM (and SIGCONT, should it be paused) to the process group, waits
// for the exit and kills it when it has not exited after 10 s. A process not running
// is left as it is.
func (p *Process) Stop() error {
	exited, running := p.state()
	if !running {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	_ = p.Signal(syscall.SIGCONT)
	if err := p.waitExit(exited, syscall.SIGTERM); err != nil {
		return errors.Join(err, p.Kill())
	}
	return nil
}

func (p *Process) state() (exited <-chan struct{}, running bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited, p.runningLocked()
}

func (p *Process) waitExit(exited <-chan struct{}, sig syscall.Signal) error {
	select {
	case <-exited:
		return nil
	case <-time.After(exitWait):
		return fmt.Errorf("%s did not exit within %v of %v", p.Name, exitWait, sig)
	}
}

// WaitReady calls ready every interval, each call bounded by attempt, until it
// returns nil; it fails when ctx ends or the process exits first.
func (p *Process) WaitReady(ctx context.Context, interval, attempt time.Duration, ready func(context.Context) error) error {
	exited := p.Exited()
	if exited == nil {
		return fmt.Errorf("%s not started", p.Name)
	}
	if err := poll(ctx, interval, attempt, ready, exited); err != nil {
		return fmt.Errorf("%s (log %s): %w", p.Name, p.LogPath, err)
	}
	return nil
}

// errExited: the process exited while a WaitReady polled it.
var errExited = errors.New("exited before it was ready")

// Poll calls check every interval, each call bounded by attempt, until it returns nil
// or ctx ends.
func Poll(ctx context.Context, interval, attempt time.Duration, check func(context.Context) error) error {
	return poll(ctx, interval, attempt, check, nil)
}

// poll is Poll that also gives up once exited is closed (never, when it is nil).
func poll(ctx context.Context, interval, attempt time.Duration, check func(context.Context) error, exited <-chan struct{}) error {
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := check(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%w (last: %w)", errExited, err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// RSS is the process's resident set size in bytes, from /proc.
func (p *Process) RSS() (int64, error) {
	pid := p.Pid()
	if pid == 0 {
		return 0, fmt.Errorf("%s not running", p.Name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss of %s: %w", p.Name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kib, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss of %s: %w", p.Name, err)
			}
			return kib << 10, nil
		}
	}
	return 0, fmt.Errorf("rss of %s: no VmRSS in /proc/%d/status", p.Name, pid)
}
