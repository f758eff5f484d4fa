// Package harness is what every harness that runs snapkeep for real needs: the
// fault-injection cluster (jepsen/cluster), the benchmarks (bench/internal/env), the
// in-process test clusters (server/servertest) and the CLI's process tests
// (cmd/snapkeep); objstore/versitygw takes its port from here too. It picks free
// ports on 127.0.0.1 (FreeAddr, FreeBlock), builds the snapkeep binary (BuildSnapkeep)
// and supervises server processes (Process).
package harness

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Module is the snapkeep module's path.
const Module = "github.com/snapkeep/snapkeep"

// RepoRoot is the snapkeep repository: the nearest directory above the working
// directory whose go.mod declares Module (the bench module's go.mod is skipped).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("harness: find the repository: %w", err)
	}
	for {
		if declaresModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("harness: no go.mod of " + Module + " above the working directory")
		}
		dir = parent
	}
}

func declaresModule(goMod string) bool {
	f, err := os.Open(goMod)
	if err != nil {
		return false
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		if fields := strings.Fields(lines.Text()); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == Module
		}
	}
	return false
}
