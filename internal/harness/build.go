package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// BuildOptions say which snapkeep binary BuildSnapkeep builds and where.
type BuildOptions struct {
	// Dir receives the binary; default <repository>/bin/harness.
	Dir string
	// Tags are build tags (e.g. jepsenbug); they name the binary: snapkeep-TAG1-TAG2.
	Tags []string
}

var builds = struct {
	mu   sync.Mutex
	done map[string]bool // binaries built by this process
}{done: map[string]bool{}}

// defaultBinDir is the cache the tests' binaries are built into (bin/ is ignored by
// git).
func defaultBinDir(root string) string { return filepath.Join(root, "bin", "harness") }

// binaryName is the file name of a binary built with tags.
func binaryName(tags []string) string {
	if len(tags) == 0 {
		return "snapkeep"
	}
	return "snapkeep-" + strings.Join(tags, "-")
}

// BuildSnapkeep compiles ./cmd/snapkeep with opts.Tags into opts.Dir and returns the
// binary's path. The first call for a binary in a process builds it (the Go build
// cache makes that cheap when nothing changed); later calls reuse it. The binary is
// built beside its final name and renamed into place, so another process running or
// building the same path never sees half a file.
func BuildSnapkeep(ctx context.Context, opts BuildOptions) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := opts.Dir
	if dir == "" {
		dir = defaultBinDir(root)
	}
	name := binaryName(opts.Tags)
	out, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.done[out] {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), name+".building-*")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name()) // gone after the rename; left behind by a failed build
	args := []string{"build", "-o", tmp.Name()}
	if len(opts.Tags) > 0 {
		args = append(args, "-tags", strings.Join(opts.Tags, ","))
	}
	args = append(args, "./cmd/snapkeep")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, output)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	builds.done[out] = true
	return out, nil
}
