package scenario

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/env"
)

// cpuMeter measures the CPU time that named processes use between two points: the
// snapkeep nodes and versitygw by their pids (from /proc), this process itself by
// getrusage. A process it cannot read counts as zero (its figure is then left out).
type cpuMeter struct {
	pids map[string][]int // group name → pids
	self string           // group name for this process ("" for none)
}

type cpuSample map[string]time.Duration

func (m *cpuMeter) sample() cpuSample {
	s := cpuSample{}
	for name, pids := range m.pids {
		for _, pid := range pids {
			if d, err := env.ProcessCPU(pid); err == nil {
				s[name] += d
			}
		}
	}
	if m.self != "" {
		s[m.self] = env.SelfCPU()
	}
	return s
}

// since is the CPU each group used from start to now.
func (m *cpuMeter) since(start cpuSample) cpuSample {
	now := m.sample()
	for name := range now {
		now[name] -= start[name]
	}
	return now
}

// microsPer is d in microseconds per unit of work (files, keys).
func microsPer(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

// fetchProfile saves a CPU profile of seconds from a server's /debug/pprof/ into
// path; it runs while the caller does the work being profiled.
func fetchProfile(ctx context.Context, httpAddr string, seconds int, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", httpAddr, seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", httpAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profile %s: %s: %s", httpAddr, resp.Status, b)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("profile %s: %w", httpAddr, err)
	}
	return f.Close()
}

// profileDir is where scenarios 4, 5, 9 and 10 save CPU profiles of one extra,
// unmeasured round: $SNAPKEEP_BENCH_PROFILE_DIR, or "" for no profiling.
func profileDir() string { return os.Getenv("SNAPKEEP_BENCH_PROFILE_DIR") }
