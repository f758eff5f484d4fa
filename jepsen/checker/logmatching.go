package checker

import (
	"context"
	"fmt"
	"sort"

	"github.com/snapkeep/snapkeep/internal/raftreplay"
)

// LogMatching checks Raft's log matching property on the stopped nodes' logs: two
// entries with the same index and term are the same entry. The hash comparison of
// Convergence sees a broken log only when it changed state the hash covers (a rejected
// command without a request id changes nothing hashed); this sees every such entry, as
// long as both nodes still hold it. It reads the data directories, so the harness runs
// it after stopping the nodes (StoppedNodes).
type LogMatching struct{}

func (LogMatching) Name() string { return "log-matching" }

// StoppedNodes tells the harness to stop the nodes before this checker runs.
func (LogMatching) StoppedNodes() bool { return true }

func (c LogMatching) Check(ctx context.Context, in Input) ([]Violation, error) {
	if in.End == nil || len(in.End.DataDirs) == 0 {
		return nil, fmt.Errorf("%s: no data directories in the end state", c.Name())
	}
	ids := make([]string, 0, len(in.End.DataDirs))
	for id := range in.End.DataDirs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var srcs []*raftreplay.Source
	defer func() {
		for _, s := range srcs {
			s.Close()
		}
	}()
	for _, id := range ids {
		s, err := raftreplay.Open(id, in.End.DataDirs[id])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name(), err)
		}
		srcs = append(srcs, s)
	}
	var vs []Violation
	for i := range srcs {
		for j := i + 1; j < len(srcs); j++ {
			if err := ctx.Err(); err != nil {
				return vs, err
			}
			mm, err := raftreplay.LogMismatches(srcs[i], srcs[j])
			if err != nil {
				return vs, fmt.Errorf("%s: %w", c.Name(), err)
			}
			for k, m := range mm {
				if k == 10 {
					vs = append(vs, Violation{Checker: c.Name(), Message: fmt.Sprintf("%s and %s: %d more mismatched entries", m.A, m.B, len(mm)-k)})
					break
				}
				vs = append(vs, Violation{Checker: c.Name(), Message: m.String()})
			}
		}
	}
	return vs, nil
}
