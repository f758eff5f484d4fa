package analyze

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/objstore"
)

// Cross-node checks: every node writes an object of its own and, all at once, its
// own body to one shared key (CrossWrite); then every node reads the others'
// objects, lists them and reads the shared key (CrossRead); the caller compares what
// each node read from the shared key (SharedAgreement) and deletes the prefix.

// Object is one object a node wrote for the cross-node checks.
type Object struct {
	Node   string `json:"node"`
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

// The cross-node checks' names.
const (
	CrossReadAfterWrite     = "cross-node-read-after-write"
	CrossListAfterWrite     = "cross-node-list-after-write"
	CrossConcurrentWriters  = "cross-node-concurrent-writers"
	crossReadAfterWriteFeat = "a file uploaded by one node is read by another at once: snapshot finishing on the leader, restore tasks copied by any node"
	crossListAfterWriteFeat = "a listing on one node sees what another node wrote: the leader's GC, export and restore pre-checks over what executors wrote"
	crossConcurrentFeat     = "nodes writing one key at once (two executors of one re-leased task) leave one whole object that every node reads alike"
)

// CrossKeys are the keys of node's own object and of the shared key under prefix.
func CrossKeys(prefix, node string) (own, shared string) {
	return prefix + "nodes/" + node, prefix + "shared"
}

// CrossWrite writes node's object and its body to the shared key, concurrently.
func CrossWrite(ctx context.Context, s objstore.Store, prefix, node string) (own, shared Object, err error) {
	ownKey, sharedKey := CrossKeys(prefix, node)
	ownBody := body("cross-node "+node, 1000+len(node))
	sharedBody := body("shared by "+node, 1500+7*len(node))
	errs := make([]error, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, errs[1] = s.Put(ctx, sharedKey, bytes.NewReader(sharedBody), int64(len(sharedBody)), withCRC(sharedBody))
	}()
	_, errs[0] = s.Put(ctx, ownKey, bytes.NewReader(ownBody), int64(len(ownBody)), withCRC(ownBody))
	<-done
	if errs[0] != nil {
		return Object{}, Object{}, errs[0]
	}
	if errs[1] != nil {
		return Object{}, Object{}, errs[1]
	}
	return Object{Node: node, Key: ownKey, Size: int64(len(ownBody)), CRC32C: CRC32C(ownBody)},
		Object{Node: node, Key: sharedKey, Size: int64(len(sharedBody)), CRC32C: CRC32C(sharedBody)}, nil
}

// CrossRead reads and lists, on this node, the objects the other nodes wrote, and
// reads the shared key. sharedSeen is the CRC-32C of what the shared key held (ok
// false when it could not be read).
func CrossRead(ctx context.Context, s objstore.Store, prefix, node string, written, shared []Object) (results []Result, sharedSeen uint32, ok bool) {
	start := time.Now()
	res := func(name, feature string, o Outcome, detail string) Result {
		return Result{Name: name, Outcome: o, Detail: detail, Feature: feature, Elapsed: time.Since(start)}
	}
	// Read-after-write: every other node's object, right after it was acknowledged.
	var bad []string
	var others []string
	for _, o := range written {
		if o.Node == node {
			continue
		}
		others = append(others, o.Node)
		data, err := readAll(ctx, s, o.Key)
		switch {
		case isNotFound(err):
			bad = append(bad, fmt.Sprintf("%s's object: not found", o.Node))
		case err != nil:
			results = append(results, res(CrossReadAfterWrite, crossReadAfterWriteFeat, Error, err.Error()))
			bad = nil
			goto list
		case int64(len(data)) != o.Size || CRC32C(data) != o.CRC32C:
			bad = append(bad, fmt.Sprintf("%s's object: %d bytes that differ from the %d written", o.Node, len(data), o.Size))
		}
	}
	if len(bad) > 0 {
		results = append(results, res(CrossReadAfterWrite, crossReadAfterWriteFeat, Unsafe, "GET on "+node+" of objects other nodes had just written: "+strings.Join(bad, "; ")))
	} else {
		results = append(results, res(CrossReadAfterWrite, crossReadAfterWriteFeat, OK, fmt.Sprintf("GET on %s of the objects %s had just written returned their bytes", node, strings.Join(others, ", "))))
	}
list:
	start = time.Now()
	page, err := s.List(ctx, prefix+"nodes/", "", 0)
	if err != nil {
		results = append(results, res(CrossListAfterWrite, crossListAfterWriteFeat, Error, err.Error()))
	} else {
		listed := map[string]int64{}
		for _, o := range page.Objects {
			listed[o.Key] = o.Size
		}
		var missing []string
		for _, o := range written {
			if size, ok := listed[o.Key]; !ok || size != o.Size {
				missing = append(missing, o.Node)
			}
		}
		if len(missing) > 0 {
			results = append(results, res(CrossListAfterWrite, crossListAfterWriteFeat, Unsafe, fmt.Sprintf("a listing on %s missed (or had the wrong size of) the objects of %s", node, strings.Join(missing, ", "))))
		} else {
			results = append(results, res(CrossListAfterWrite, crossListAfterWriteFeat, OK, fmt.Sprintf("a listing on %s showed the objects of all %d nodes with their sizes", node, len(written))))
		}
	}
	// The shared key: one writer's whole body.
	start = time.Now()
	if len(shared) == 0 {
		return results, 0, false
	}
	data, err := readAll(ctx, s, shared[0].Key)
	if err != nil {
		results = append(results, res(CrossConcurrentWriters, crossConcurrentFeat, Error, err.Error()))
		return results, 0, false
	}
	crc := CRC32C(data)
	i := slices.IndexFunc(shared, func(o Object) bool { return o.CRC32C == crc && o.Size == int64(len(data)) })
	if i < 0 {
		results = append(results, res(CrossConcurrentWriters, crossConcurrentFeat, Unsafe, fmt.Sprintf("after %d nodes wrote one key at once, GET on %s returned %d bytes that are none of their bodies", len(shared), node, len(data))))
		return results, crc, true
	}
	results = append(results, res(CrossConcurrentWriters, crossConcurrentFeat, OK, fmt.Sprintf("after %d nodes wrote one key at once, GET on %s returned %s's whole body", len(shared), node, shared[i].Node)))
	return results, crc, true
}

// SharedAgreement judges what every node read from the shared key: all must have
// read the same body.
func SharedAgreement(seen map[string]uint32) Result {
	r := Result{Name: "cross-node-agreement", Feature: crossConcurrentFeat}
	nodes := make([]string, 0, len(seen))
	for n := range seen {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	values := map[uint32][]string{}
	for _, n := range nodes {
		values[seen[n]] = append(values[seen[n]], n)
	}
	if len(values) > 1 {
		var parts []string
		for crc, ns := range values {
			parts = append(parts, fmt.Sprintf("%s read CRC-32C %08x", strings.Join(ns, ", "), crc))
		}
		slices.Sort(parts)
		r.Outcome, r.Detail = Unsafe, "after concurrent writes settled, nodes read different bodies from one key: "+strings.Join(parts, "; ")
		return r
	}
	r.Outcome, r.Detail = OK, fmt.Sprintf("%s read the same body from the key all of them had written", strings.Join(nodes, ", "))
	return r
}

// FeatureRow is one line of the feature map: a behaviour, what relies on it, the
// worst outcome over the nodes, and what snapkeep uses.
type FeatureRow struct {
	Behaviour string  `json:"behaviour"`
	Feature   string  `json:"feature"`
	Outcome   Outcome `json:"outcome"`
	Uses      string  `json:"uses"`
}

// FeatureMap folds results (of any number of nodes) into one row per check, in the
// order first seen.
func FeatureMap(results ...[]Result) []FeatureRow {
	var rows []FeatureRow
	index := map[string]int{}
	for _, rs := range results {
		for _, r := range rs {
			i, ok := index[r.Name]
			if !ok {
				i = len(rows)
				index[r.Name] = i
				rows = append(rows, FeatureRow{Behaviour: r.Name, Feature: r.Feature, Outcome: OK})
				rows[i].Uses = uses(r, OK)
			}
			if r.Outcome.Rank() > rows[i].Outcome.Rank() {
				rows[i].Outcome = r.Outcome
				rows[i].Uses = uses(r, r.Outcome)
			}
		}
	}
	return rows
}

func uses(r Result, o Outcome) string {
	switch o {
	case OK:
		return "the behaviour"
	case Unsupported:
		if r.Fallback != "" {
			return "fallback: " + r.Fallback
		}
		return "nothing: the behaviour is missing"
	case Error:
		return "unknown: the check failed"
	default:
		if r.Fallback != "" && strings.HasPrefix(r.Fallback, "none") {
			return r.Fallback
		}
		return "none: unsafe"
	}
}
