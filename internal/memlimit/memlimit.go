// Package memlimit chooses a node's soft memory limit (the Go runtime's, see
// runtime/debug.SetMemoryLimit). Without one, Go lets the heap grow to twice what is
// live and keeps freed memory until well past that, so a node whose catalog needs
// 800 MiB can sit at 1.2 GiB or more of RSS (bench scenario 7); in a container with a
// memory limit that is how a node gets killed. With a limit the collector works harder
// as the heap nears it and returns freed memory to the OS.
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ContainerShare is the part of a container's memory limit given to the Go heap by
// "auto": the rest is for what the runtime does not count (thread stacks, mapped files,
// the kernel's per-process memory) and a margin.
const ContainerShare = 0.9

// Choice is the limit chosen and why.
type Choice struct {
	// Bytes is the limit to set; 0: leave the runtime as it is (no limit, or the
	// GOMEMLIMIT it read at start), math.MaxInt64: no limit, GOMEMLIMIT overridden.
	Bytes int64
	// Reason says where it came from, for the node's log.
	Reason string
}

// Choose decides the limit from --memory-limit's value: "auto" keeps GOMEMLIMIT when it
// is set (gomemlimit is its value), else takes ContainerShare of the memory limit of
// the cgroup the process runs in (container), else sets none; "none" sets none, even
// over GOMEMLIMIT; anything else is a size, parsed by parse.
func Choose(value, gomemlimit string, container func() (int64, bool, error), parse func(string) (int64, error)) (Choice, error) {
	switch v := strings.ToLower(strings.TrimSpace(value)); v {
	case "", "auto":
		if gomemlimit != "" {
			return Choice{Reason: "GOMEMLIMIT=" + gomemlimit}, nil
		}
		limit, ok, err := container()
		if err != nil {
			// Not knowing the container's limit is no reason not to start.
			return Choice{Reason: fmt.Sprintf("none: the cgroup's memory limit could not be read (%v)", err)}, nil
		}
		if !ok {
			return Choice{Reason: "none: no GOMEMLIMIT and no cgroup memory limit"}, nil
		}
		bytes := int64(float64(limit) * ContainerShare)
		return Choice{Bytes: bytes, Reason: fmt.Sprintf("%.0f%% of the cgroup's memory limit of %d bytes", ContainerShare*100, limit)}, nil
	case "none", "off":
		return Choice{Bytes: math.MaxInt64, Reason: "none (--memory-limit " + v + ")"}, nil
	default:
		bytes, err := parse(value)
		if err != nil {
			return Choice{}, err
		}
		if bytes <= 0 {
			return Choice{}, fmt.Errorf("memory limit %q: want a positive size, auto or none", value)
		}
		return Choice{Bytes: bytes, Reason: "--memory-limit " + value}, nil
	}
}

// CgroupLimit reads the memory limit of the cgroup this process runs in, with the file
// system mounted at root ("/" on a real system): cgroup v2's memory.max, else v1's
// memory.limit_in_bytes (of the process's own memory cgroup, or of the hierarchy's root
// when a cgroup namespace makes that the process's). ok is false when there is none
// ("max", v1's near-2^63 value, or no memory controller).
func CgroupLimit(root string) (limit int64, ok bool, err error) {
	v2, hasV2, v1, err := cgroupPaths(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false, err
	}
	var candidates []string
	if hasV2 {
		candidates = append(candidates, filepath.Join(root, "sys/fs/cgroup", v2, "memory.max"))
	}
	if v1 != "" {
		candidates = append(candidates, filepath.Join(root, "sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"))
	}
	candidates = append(candidates, filepath.Join(root, "sys/fs/cgroup/memory/memory.limit_in_bytes"))
	for _, path := range candidates {
		limit, ok, err := readLimit(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return limit, ok, err
	}
	return 0, false, nil
}

// cgroupPaths reads /proc/self/cgroup: the process's cgroup v2 path ("0::/path"), and
// its v1 memory cgroup's ("N:...memory...:/path"), relative to their hierarchies.
func cgroupPaths(procCgroup string) (v2 string, hasV2 bool, v1Memory string, err error) {
	f, err := os.Open(procCgroup)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, "", nil
	}
	if err != nil {
		return "", false, "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), ":", 3)
		if len(fields) != 3 {
			continue
		}
		path := strings.TrimPrefix(fields[2], "/")
		switch {
		case fields[0] == "0" && fields[1] == "":
			v2, hasV2 = path, true
		case slices.Contains(strings.Split(fields[1], ","), "memory"):
			v1Memory = path
		}
	}
	return v2, hasV2, v1Memory, sc.Err()
}

// noLimitV1 is at or above what cgroup v1 reports for "no limit" (2^63 rounded down to
// the page size).
const noLimitV1 = 1 << 62

func readLimit(path string) (int64, bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %q is not a number of bytes", path, s)
	}
	if n <= 0 || n >= noLimitV1 {
		return 0, false, nil
	}
	return n, true, nil
}
