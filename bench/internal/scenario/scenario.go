// Package scenario holds the benchmark scenarios, each comparing snapkeep with the
// etcd + Avro baseline or with a raw limit, and the environment they share.
//
// A scenario starts the clusters it needs (fresh ones, under its own directory) and
// the shared S3 server's bucket under its own key prefix, measures both sides round
// after round (A B A B), and fills in its report.Scenario. Scenarios are listed in one
// place, All.
package scenario

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/bench/internal/report"
)

// Scenario is one numbered scenario of the benchmark.
type Scenario struct {
	Number int
	Name   string // short, for --only
	Title  string
	// Run measures and fills r (Setup, Comparisons, Figures, Charts, Notes). An error
	// ends the scenario; what r holds by then is still reported.
	Run func(ctx context.Context, e *Env, r *report.Scenario) error
}

// Env is what every scenario gets: the run's work directory, the shared S3 server,
// the run's size (quick or full) and a log.
type Env struct {
	Dir   string
	Quick bool
	S3    *env.S3
	Logf  func(format string, args ...any)
	// RaftLogStore is the snapkeep nodes' --raft-log-store (bench --raft-log-store);
	// empty: the server's default.
	RaftLogStore string
	// S3CloseConnections: the gateways close every connection after its response
	// (bench --s3-close-connections); by default they keep them alive.
	S3CloseConnections bool

	mu       sync.Mutex
	cleanups []func()
}

// Pick returns full, or quick in a quick run.
func (e *Env) Pick(full, quick int) int {
	if e.Quick {
		return quick
	}
	return full
}

// StartSnapkeep starts a fresh three-node cluster under Dir/name whose objects go
// under the key prefix name/ in the shared bucket; it is stopped by Cleanup.
func (e *Env) StartSnapkeep(ctx context.Context, name string, opts env.SnapkeepOptions) (*env.Snapkeep, error) {
	return e.StartSnapkeepOn(ctx, name, e.S3, opts)
}

// StartSnapkeepOn is StartSnapkeep with the nodes' bucket on s3 instead of the shared
// server.
func (e *Env) StartSnapkeepOn(ctx context.Context, name string, s3 *env.S3, opts env.SnapkeepOptions) (*env.Snapkeep, error) {
	if opts.Root == "" {
		opts.Root = name
	}
	if opts.RaftLogStore == "" {
		opts.RaftLogStore = e.RaftLogStore
	}
	c, err := env.StartSnapkeep(ctx, filepath.Join(e.Dir, name), s3, opts)
	if err != nil {
		return nil, fmt.Errorf("start snapkeep %s: %w", name, err)
	}
	e.OnCleanup(c.Stop)
	return c, nil
}

// memoryFS is where StartS3InMemory puts a gateway's objects: a tmpfs.
const memoryFS = "/dev/shm"

// StartS3InMemory starts another versitygw (another endpoint than the shared one, with
// the same keys) under Dir/name, its bucket named bucket (empty: the default), stopped
// by Cleanup. Its objects are on a tmpfs when one has need bytes free (and the machine
// that much available memory), else under Dir/name; inMemory says which. Its log is
// under Dir/name either way.
//
// Why: on a disk filesystem a gateway's cost per PUT depends on what that filesystem
// did in the minutes before — ext4 without a journal, as on the benchmark machine,
// scans past every inode deleted in the last 60–360 s on each file it creates, and
// writes back earlier phases' pages meanwhile — and lands on whichever side of a
// comparison runs at that moment (bench/notes/09-repository.md). Objects in memory cost
// the same for both sides.
func (e *Env) StartS3InMemory(ctx context.Context, name, bucket string, need int64) (s *env.S3, inMemory bool, err error) {
	opts := env.S3Options{Bucket: bucket, CloseConnections: e.S3CloseConnections}
	var data string
	if env.MemoryFSFree(memoryFS) >= need && env.MemAvailable() >= need {
		if data, err = os.MkdirTemp(memoryFS, "snapkeep-bench-"+name+"-"); err != nil {
			return nil, false, err
		}
		opts.DataDir = data
	}
	s, err = env.StartS3With(ctx, filepath.Join(e.Dir, name), opts)
	if err != nil {
		if data != "" {
			_ = os.RemoveAll(data)
		}
		return nil, false, fmt.Errorf("start versitygw %s: %w", name, err)
	}
	e.OnCleanup(func() {
		s.Stop()
		if data != "" {
			_ = os.RemoveAll(data) // memory, not disk: quick, and nothing else's figures
		}
	})
	return s, data != "", nil
}

// StartEtcd starts a fresh three-member etcd cluster under Dir/name; it is stopped by
// Cleanup.
func (e *Env) StartEtcd(ctx context.Context, name string) (*env.Etcd, error) {
	c, err := env.StartEtcd(ctx, filepath.Join(e.Dir, name))
	if err != nil {
		return nil, fmt.Errorf("start etcd %s: %w", name, err)
	}
	e.OnCleanup(c.Stop)
	return c, nil
}

// OnCleanup registers f to run at Cleanup (last registered first).
func (e *Env) OnCleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

// Cleanup stops what the scenario started.
func (e *Env) Cleanup() {
	e.mu.Lock()
	fs := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
