// Package env starts what the benchmarks run against — a versitygw S3 server, a
// three-node snapkeep cluster and a three-member etcd cluster — as real processes on
// 127.0.0.1 (supervised by internal/harness), with their data under one work directory
// (one disk), and stops them.
//
// Binaries come from <repo>/bin: versitygw (make tools), snapkeep (built here from the
// repository's own source) and etcd (built by `make bench` from the bench module).
package env

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/snapkeep/snapkeep/internal/harness"
)

// Bin is <repo>/bin/name, which must exist.
func Bin(name string) (string, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("env: %w", err)
	}
	p := filepath.Join(root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("env: %s missing (make bench builds it): %w", p, err)
	}
	return p, nil
}
