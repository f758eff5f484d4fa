// Package versitygw runs a real versitygw S3 gateway (posix backend on a local
// directory) for tests and dev tools, so the S3 client is exercised against a
// server that implements checksums and UploadPartCopy.
//
// The binary is <repo root>/bin/versitygw, installed by `make tools`, or the
// file named by $SNAPKEEP_VERSITYGW.
package versitygw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/snapkeep/snapkeep/internal/harness"
	"github.com/snapkeep/snapkeep/objstore"
)

// EnvBinary names an environment variable that overrides the binary's path.
const EnvBinary = "SNAPKEEP_VERSITYGW"

// Default credentials of the gateway's root account: it only ever listens on loopback.
const (
	AccessKey = "snapkeep-test"
	SecretKey = "snapkeep-test-secret"
)

// DefaultBucket is the bucket Start and StartProcess create.
const DefaultBucket = "snapkeep-test"

const (
	startTimeout = 20 * time.Second
	stopTimeout  = 5 * time.Second
	logTailBytes = 64 << 10
)

// Binary returns the versitygw binary's path: $SNAPKEEP_VERSITYGW if set, else
// bin/versitygw under the repository root (the directory holding go.mod, found
// by walking up from the working directory). It fails if the file is missing.
func Binary() (string, error) {
	path := os.Getenv(EnvBinary)
	if path == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		path = filepath.Join(root, "bin", "versitygw")
	}
	if _, err := os.Stat(path); err != nil {
		return path, fmt.Errorf("versitygw not found at %s: run `make tools` (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0 into ./bin): %w", path, err)
	}
	return path, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("versitygw: find repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("versitygw: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Options configure StartProcess.
type Options struct {
	// Binary defaults to Binary().
	Binary string
	// Dir is the posix backend's root; buckets are its subdirectories. Required.
	Dir string
	// Bucket is created once the gateway answers; default DefaultBucket.
	Bucket string
	// Log receives the gateway's stdout and stderr (besides the tail kept for
	// LogTail); nil keeps only the tail.
	Log io.Writer
	// AccessKey and SecretKey are the root account's credentials; default
	// AccessKey and SecretKey (the constants). Tests of copies between two
	// gateways give them different ones.
	AccessKey, SecretKey string
	// KeepAlive keeps client connections open between requests (versitygw's
	// --keep-alive), as most S3 services do; by default versitygw closes each one
	// after its response, and every request dials anew.
	KeepAlive bool
}

// Process is a running versitygw.
type Process struct {
	cmd      *exec.Cmd
	endpoint string
	bucket   string
	access   string
	secret   string
	logs     *tailBuffer
	exited   chan struct{} // closed once cmd.Wait returns
	waitErr  error         // valid after exited is closed

	stopOnce sync.Once
	stopErr  error
}

// StartProcess starts versitygw on a free 127.0.0.1 port (harness.FreeAddr), waits
// (up to 20 s) until it serves S3 requests, and creates the bucket. Stop it with Stop.
func StartProcess(ctx context.Context, opts Options) (*Process, error) {
	if opts.Dir == "" {
		return nil, errors.New("versitygw: Options.Dir is empty")
	}
	if opts.Binary == "" {
		bin, err := Binary()
		if err != nil {
			return nil, err
		}
		opts.Binary = bin
	}
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.AccessKey == "" {
		opts.AccessKey, opts.SecretKey = AccessKey, SecretKey
	}
	// The port is free when picked but could be taken before versitygw binds it;
	// a gateway that exits before serving is retried on a new port.
	var err error
	for range 3 {
		var p *Process
		p, err = startOnce(ctx, opts)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, errExitedEarly) || ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

// errExitedEarly: the gateway process ended before it answered a request.
var errExitedEarly = errors.New("versitygw exited before serving")

func startOnce(ctx context.Context, opts Options) (*Process, error) {
	addr, err := harness.FreeAddr()
	if err != nil {
		return nil, fmt.Errorf("versitygw: pick a port: %w", err)
	}
	logs := &tailBuffer{max: logTailBytes}
	var out io.Writer = logs
	if opts.Log != nil {
		out = io.MultiWriter(logs, opts.Log)
	}
	args := []string{"--access", opts.AccessKey, "--secret", opts.SecretKey, "--port", addr}
	if opts.KeepAlive {
		args = append(args, "--keep-alive")
	}
	cmd := exec.Command(opts.Binary, append(args, "posix", opts.Dir)...)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("versitygw: start %s: %w", opts.Binary, err)
	}
	p := &Process{
		cmd:      cmd,
		endpoint: "http://" + addr,
		bucket:   opts.Bucket,
		access:   opts.AccessKey,
		secret:   opts.SecretKey,
		logs:     logs,
		exited:   make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("%w\nversitygw output (tail):\n%s", err, p.LogTail())
	}
	return p, nil
}

// waitReady polls with CreateBucket, a real signed S3 call, until it succeeds:
// that proves the gateway is serving and leaves the bucket in place.
func (p *Process) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	store, err := objstore.NewS3(ctx, p.Config())
	if err != nil {
		return fmt.Errorf("versitygw: client: %w", err)
	}
	defer store.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		err = store.CreateBucket(attemptCtx)
		cancelAttempt()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%w (%v)", errExitedEarly, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("versitygw not ready after %s: %w", startTimeout, err)
		case <-tick.C:
		}
	}
}

// Endpoint is the gateway's base URL, "http://127.0.0.1:PORT".
func (p *Process) Endpoint() string { return p.endpoint }

// Bucket is the bucket created at start.
func (p *Process) Bucket() string { return p.bucket }

// Config is what objstore.NewS3 needs to talk to the gateway.
func (p *Process) Config() objstore.S3Config {
	return objstore.S3Config{
		Endpoint:  p.endpoint,
		Region:    objstore.DefaultRegion,
		Bucket:    p.bucket,
		PathStyle: true,
		AccessKey: p.access,
		SecretKey: p.secret,
	}
}

// LogTail is the last 64 KiB of the gateway's output.
func (p *Process) LogTail() string { return p.logs.String() }

// Stop sends SIGTERM, kills the gateway if it has not exited after 5 s, and
// waits for it. A gateway that had already exited is reported as an error.
// Calling it again returns the first result.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			p.stopErr = fmt.Errorf("versitygw exited by itself: %v", p.waitErr)
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("versitygw: SIGTERM: %w", err)
		}
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = errors.Join(p.stopErr, fmt.Errorf("versitygw: killed after not stopping within %s", stopTimeout))
		}
	})
	return p.stopErr
}

// Server is a versitygw started for one test.
type Server struct {
	*Process
}

// Start runs versitygw on a fresh t.TempDir() and stops it when the test ends.
// A missing binary fails the test with instructions.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options; an empty Dir is a fresh t.TempDir().
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := Binary()
	if opts.Binary != "" {
		bin, err = opts.Binary, nil
	}
	if err != nil {
		t.Fatalf("versitygw not found at %s: run `make tools` (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0 into ./bin)", bin)
	}
	opts.Binary = bin
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	p, err := StartProcess(context.Background(), opts)
	if err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("%v\nversitygw output (tail):\n%s", err, p.LogTail())
		}
	})
	return &Server{Process: p}
}

// tailBuffer keeps the last max bytes written to it; safe for concurrent use
// (exec copies stdout and stderr from two goroutines).
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	data []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data = append(b.data, p...)
	if over := len(b.data) - b.max; over > 0 {
		b.data = append(b.data[:0], b.data[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.data)
}
