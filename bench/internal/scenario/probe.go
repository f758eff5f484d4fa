package scenario

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// fsyncBlock is what the disk probe writes per operation: one 4 KiB block, about one
// small Raft entry's page.
const fsyncBlock = 4096

// fsyncProbe measures the disk's own commit latency in dir: n times, write one 4 KiB
// block and fdatasync it. The file is preallocated (written with zeros and fsynced)
// first and the blocks are overwritten in order, as a write-ahead log with
// preallocated segments does, so each fdatasync flushes data only, never the file's
// size: the lowest latency a commit to this disk can have.
func fsyncProbe(dir string, n int) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-*.dat")
	if err != nil {
		return nil, fmt.Errorf("fsync probe: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	zero := make([]byte, fsyncBlock)
	for range n {
		if _, err := f.Write(zero); err != nil {
			return nil, fmt.Errorf("fsync probe: preallocate: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("fsync probe: preallocate: %w", err)
	}
	block := make([]byte, fsyncBlock)
	out := make([]time.Duration, 0, n)
	for i := range n {
		block[0], block[1] = byte(i), byte(i>>8) // different bytes each time
		start := time.Now()
		if _, err := f.WriteAt(block, int64(i)*fsyncBlock); err != nil {
			return nil, fmt.Errorf("fsync probe: write: %w", err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return nil, fmt.Errorf("fsync probe: fdatasync: %w", err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// metricSample finds the sample of name in a Prometheus text exposition whose labels
// contain every one of labels (`state="flushed"` strings); ok is false when there is
// none. Histograms are read through their _sum and _count samples.
func metricSample(r io.Reader, name string, labels ...string) (v float64, ok bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, found := strings.Cut(line, " ")
		if !found {
			continue
		}
		metric, labelPart, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(labelPart, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		value, _, _ = strings.Cut(value, " ") // a timestamp may follow
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric %s: %w", name, err)
		}
		return f, true, nil
	}
	return 0, false, sc.Err()
}

// scrapeMetric reads one sample from a node's /metrics.
func scrapeMetric(ctx context.Context, httpAddr, name string, labels ...string) (float64, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET /metrics on %s: %s", httpAddr, resp.Status)
	}
	return metricSample(resp.Body, name, labels...)
}

// saveURL writes the body of GET url to path (a profile).
func saveURL(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// procStatusBytes reads a "VmRSS:"-style field (kB) of /proc/<pid>/status in bytes.
func procStatusBytes(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kib, err := strconv.ParseInt(f[1], 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
