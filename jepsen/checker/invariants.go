package checker

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	var vs []Violation
	lines := 0
	for _, id := range ids {
		path := filepath.Join(in.OutDir, "logs", id+".log")
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name(), err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			lines++
			if line := sc.Text(); strings.Contains(line, needle) {
				vs = append(vs, Violation{Checker: c.Name(), Message: id + ": " + line})
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: read %s: %w", c.Name(), path, err)
		}
	}
	c.summary = fmt.Sprintf("%d log lines of %d nodes read", lines, len(ids))
	return vs, nil
}
