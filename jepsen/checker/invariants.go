package checker

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/snapkeep/snapkeep/fsm"
)

// NodeInvariants reports the invariants the nodes found broken in their own state: a
// fault-injection build's FSM checks itself after every command (fsm/invariants.go —
// among them that no restore or export task is leased twice at once and no lease ends
// before its deadline without its holder restarting or being gone) and logs each
// violation (msg fsm.InvariantViolated). It reads the nodes' logs in the run's
// directory, every process start included.
type NodeInvariants struct{ summary string }

func (*NodeInvariants) Name() string { return "node-invariants" }

func (c *NodeInvariants) Summary() string { return c.summary }

// StoppedNodes: the nodes' logs are complete once they stopped.
func (*NodeInvariants) StoppedNodes() bool { return true }

func (c *NodeInvariants) Check(_ context.Context, in Input) ([]Violation, error) {
	if in.End == nil || len(in.End.DataDirs) == 0 {
		return nil, fmt.Errorf("%s: no nodes in the end state", c.Name())
	}
	ids := make([]string, 0, len(in.End.DataDirs))
	for id := range in.End.DataDirs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	needle := fmt.Sprintf("msg=%q", fsm.InvariantViolated)
	countNeedle := fmt.Sprintf("msg=%q", fsm.InvariantsChecked)
	var vs []Violation
	lines := 0
	var checked uint64
	for _, id := range ids {
		var count processCounts
		n, err := scanNodeLog(in.OutDir, id, func(line string) {
			switch {
			case strings.Contains(line, needle):
				vs = append(vs, Violation{Checker: c.Name(), Message: id + ": " + line})
			case strings.Contains(line, countNeedle):
				count.add(logAttr(line, "commands"))
			}
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name(), err)
		}
		lines += n
		checked += count.total()
	}
	c.summary = fmt.Sprintf("%d log lines of %d nodes read; at least %d commands checked (the nodes count every %d)",
		lines, len(ids), checked, fsm.InvariantsCheckedEvery)
	return vs, nil
}

// processCounts sums a counter one node's log reports as it grows, over the node's
// processes: each restart counts from 0 again.
type processCounts struct{ done, last uint64 }

func (p *processCounts) add(n uint64) {
	if n <= p.last { // a new process: within one the count only grows
		p.done += p.last
	}
	p.last = n
}

func (p *processCounts) total() uint64 { return p.done + p.last }
