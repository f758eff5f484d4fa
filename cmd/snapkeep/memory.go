package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/snapkeep/snapkeep/internal/memlimit"
)

// applyMemoryLimit sets the Go runtime's soft memory limit from --memory-limit (see
// internal/memlimit) and logs what the node runs with.
func applyMemoryLimit(value string, logger *slog.Logger) error {
	c, err := memlimit.Choose(value, os.Getenv("GOMEMLIMIT"), func() (int64, bool, error) { return memlimit.CgroupLimit("/") }, parseSize)
	if err != nil {
		return err
	}
	if c.Bytes != 0 {
		debug.SetMemoryLimit(c.Bytes)
	}
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		logger.Info("soft memory limit", "bytes", limit, "from", c.Reason)
	} else {
		logger.Info("no soft memory limit", "why", c.Reason)
	}
	return nil
}
