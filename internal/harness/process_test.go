package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// childEnv makes the test binary a child server: it listens on the address the
// variable names until SIGTERM, which it logs before exiting.
const childEnv = "HARNESS_TEST_CHILD_LISTEN"

func TestMain(m *testing.M) {
	if addr := os.Getenv(childEnv); addr != "" {
		os.Exit(runChild(addr))
	}
	goleak.VerifyTestMain(m)
}

func runChild(addr string) int {
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("child:", err)
		return 1
	}
	defer ln.Close()
	fmt.Println("child: listening on", addr, "with", os.Getenv("HARNESS_TEST_EXTRA"))
	<-terms
	fmt.Println("child: terminated")
	return 0
}

// startChild starts the test binary as a child server and waits until it listens.
func startChild(t *testing.T) (*Process, string) {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	addr, err := FreeAddr()
	require.NoError(t, err)
	p := &Process{Name: "child", Binary: self, Args: []string{"-test.run=^$"},
		Env: []string{childEnv + "=" + addr, "HARNESS_TEST_EXTRA=extra-value"}, LogPath: filepath.Join(t.TempDir(), "child.log")}
	t.Cleanup(func() { require.NoError(t, p.Kill()) })
	require.NoError(t, p.StartWith(p.Args, "=== start 1"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.WaitReady(ctx, 20*time.Millisecond, time.Second, dialable(addr)))
	// The child prints its line after it listens, so the dial can win that race;
	// the tests read the log, so wait for the line too.
	require.Eventually(t, func() bool { return strings.Contains(readLog(t, p), "child: listening") }, 10*time.Second, 10*time.Millisecond)
	return p, addr
}

func dialable(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// procState is the state letter of /proc/<pid>/stat (R, S, T for stopped, ...).
func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return fields[0]
}

func readLog(t *testing.T, p *Process) string {
	t.Helper()
	b, err := os.ReadFile(p.LogPath)
	require.NoError(t, err)
	return string(b)
}

func TestProcessSignals(t *testing.T) {
	for _, tc := range []struct {
		name string
		act  func(t *testing.T, p *Process, addr string)
	}{
		{name: "kill", act: func(t *testing.T, p *Process, addr string) {
			require.NoError(t, p.Kill())
			require.False(t, p.Running())
			require.NotContains(t, readLog(t, p), "terminated", "SIGKILL leaves no time to log")
			require.NoError(t, p.Kill(), "killing a dead process is a no-op")
		}},
		{name: "stop", act: func(t *testing.T, p *Process, addr string) {
			require.NoError(t, p.Stop())
			require.False(t, p.Running())
			require.Contains(t, readLog(t, p), "child: terminated")
		}},
		{name: "pause and resume", act: func(t *testing.T, p *Process, addr string) {
			require.NoError(t, p.Pause())
			require.Eventually(t, func() bool { return procState(t, p.Pid()) == "T" }, 10*time.Second, 10*time.Millisecond)
			require.True(t, p.Running(), "a paused process is alive")
			require.NoError(t, p.Resume())
			require.Eventually(t, func() bool { return procState(t, p.Pid()) != "T" }, 10*time.Second, 10*time.Millisecond)
			require.NoError(t, dialable(addr)(context.Background()))
		}},
		{name: "stop a paused process", act: func(t *testing.T, p *Process, addr string) {
			require.NoError(t, p.Pause())
			require.NoError(t, p.Stop())
			require.Contains(t, readLog(t, p), "child: terminated")
		}},
		{name: "restart after a kill", act: func(t *testing.T, p *Process, addr string) {
			first := p.Pid()
			require.NoError(t, p.StartWith(p.Args, "=== not written: it runs"), "a no-op while it runs")
			require.Equal(t, first, p.Pid())
			require.NoError(t, p.Kill())
			require.ErrorContains(t, p.Signal(syscall.SIGCONT), "not running")
			require.NoError(t, p.StartWith(p.Args, "=== start 2"))
			require.NotEqual(t, first, p.Pid())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, p.WaitReady(ctx, 20*time.Millisecond, time.Second, dialable(addr)))
			// The child prints its line after it listens: the dial can win that race.
			want := regexp.MustCompile(`(?s)=== start 1\nchild: listening on \S+ with extra-value\n.*=== start 2\nchild: listening`)
			require.Eventually(t, func() bool { return want.MatchString(readLog(t, p)) }, 10*time.Second, 10*time.Millisecond,
				"the log is appended across starts, the environment reaches the child: %q", readLog(t, p))
			require.NotContains(t, readLog(t, p), "not written")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, addr := startChild(t)
			rss, err := p.RSS()
			require.NoError(t, err)
			require.Positive(t, rss)
			tc.act(t, p, addr)
		})
	}
}

func TestWaitReadyFailsWhenTheProcessExits(t *testing.T) {
	p := &Process{Name: "false", Binary: "/bin/false", LogPath: filepath.Join(t.TempDir(), "false.log")}
	require.ErrorContains(t, p.WaitReady(context.Background(), time.Millisecond, time.Second, nil), "not started")
	require.NoError(t, p.Start())
	never := func(context.Context) error { return errors.New("not yet") }
	err := p.WaitReady(context.Background(), 10*time.Millisecond, time.Second, never)
	require.ErrorIs(t, err, errExited)
	require.ErrorContains(t, err, "not yet")
	require.ErrorContains(t, err, p.LogPath)
}

func TestPollStopsAtTheDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	calls := 0
	err := Poll(ctx, 10*time.Millisecond, time.Second, func(context.Context) error {
		calls++
		return errors.New("never")
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "never")
	require.Greater(t, calls, 1)
}
