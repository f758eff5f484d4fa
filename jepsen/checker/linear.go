package checker

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/snapkeep/snapkeep/jepsen/history"
)

// DefaultTimeout bounds porcupine's search per partition.
const DefaultTimeout = 60 * time.Second

// pop is one model operation derived from a history operation: a history op can give
// several (a create is a begin and a finish; a compaction one op per segment).
type pop struct {
	in     any
	out    any
	call   int64
	ret    int64
	op     history.Op
	client int
}

// infinity is the return time given to operations whose outcome is unknown: after
// every call and return of the history, so porcupine may place them anywhere after
// their call, including "never happened" at the very end.
func infinity(ops []history.Op) int64 {
	var end int64
	for _, op := range ops {
		end = max(end, op.Call, op.Return)
	}
	return end + 1
}

// returnOf is an op's return time for the model: infinity when Unknown.
func returnOf(op history.Op, inf int64) int64 {
	if op.Result == history.Unknown || op.Return == 0 {
		return inf
	}
	return op.Return
}

// notFound says whether an op reports that its object does not exist: OK with
// Found=false, or Fail with an error saying "not found".
func notFound(op history.Op) bool {
	switch op.Result {
	case history.OK:
		return !op.Output.Found
	case history.Fail:
		return strings.Contains(strings.ToLower(op.Error), "not found")
	}
	return false
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// checkPartitions runs porcupine on each partition (key → model operations) and
// turns illegal partitions into violations with a visualization in outDir. Partitions
// whose search timed out are returned in unknown.
func checkPartitions(name string, model porcupine.NondeterministicModel, parts map[string][]pop, timeout time.Duration, outDir string) (vs []Violation, unknown []string, err error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m := model.ToModel()
	m.DescribeOperationMetadata = func(info any) string {
		op := info.(history.Op)
		return fmt.Sprintf("op %d: %s %s on %s (%s)", op.ID, op.Kind, op.Result, op.Node, op.Error)
	}
	for _, key := range keys {
		pops := parts[key]
		hist := make([]porcupine.Operation, len(pops))
		for i, p := range pops {
			hist[i] = porcupine.Operation{ClientId: p.client, Input: p.in, Output: p.out, Call: p.call, Return: p.ret, Metadata: p.op}
		}
		res, info := porcupine.CheckOperationsVerbose(m, hist, timeout)
		switch res {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			unknown = append(unknown, key)
			continue
		}
		v := Violation{Checker: name, OpIDs: frontier(pops, info)}
		v.Message = fmt.Sprintf("%s: the operations on %s are not linearizable; no order of them fits the model past ops %v", name, key, v.OpIDs)
		if outDir != "" {
			file := unsafeChars.ReplaceAllString(name+"-"+key, "_") + ".html"
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				return nil, nil, err
			}
			if err := porcupine.VisualizePath(m, info, filepath.Join(outDir, file)); err != nil {
				return nil, nil, fmt.Errorf("%s: visualize %s: %w", name, key, err)
			}
			v.Artifact = file
		}
		vs = append(vs, v)
	}
	return vs, unknown, nil
}

// frontier names the operations that break a partition: those outside porcupine's
// longest partial linearization that could have come next (called before the
// earliest return among them). The op that cannot be placed is among them.
func frontier(pops []pop, info porcupine.LinearizationInfo) []int64 {
	in := make([]bool, len(pops))
	if parts := info.PartialLinearizations(); len(parts) > 0 {
		var best []int
		for _, l := range parts[0] {
			if len(l) > len(best) {
				best = l
			}
		}
		for _, i := range best {
			in[i] = true
		}
	}
	minRet := int64(1<<63 - 1)
	for i, p := range pops {
		if !in[i] {
			minRet = min(minRet, p.ret)
		}
	}
	var ids []int64
	for i, p := range pops {
		if !in[i] && p.call <= minRet && !slices.Contains(ids, p.op.ID) {
			ids = append(ids, p.op.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// unknownErr reports partitions whose search timed out.
func unknownErr(name string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w: %d partition(s) not decided within the time budget: %s",
		name, ErrUnknown, len(keys), strings.Join(keys, ", "))
}

// mix is a 64-bit finalizer (splitmix64) for state hashes.
func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// normalize returns the ops with every outcome that is neither OK nor Fail (a
// pending op, Return 0, or an unrecognised result) as Unknown.
func normalize(ops []history.Op) []history.Op {
	out := make([]history.Op, len(ops))
	for i, op := range ops {
		if op.Return == 0 || (op.Result != history.OK && op.Result != history.Fail) {
			op.Result = history.Unknown
		}
		out[i] = op
	}
	return out
}
