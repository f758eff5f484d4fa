// Package history is the record of a fault-injection run: every client operation with
// its call and return times on one monotonic clock, its input and output, and the node
// that served it; and every fault the nemesis injected. The harness writes it; the
// checkers read it. It is encoded as JSON lines (one Event per line) so a run's history
// can be read back, checked again and diffed.
package history

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Kind names an operation.
type Kind string

// Operations of the workloads.
const (
	// Snapshot registry (per collection: name → state).
	SnapshotCreate   Kind = "snapshot-create"   // In: Collection, Name. Out: SnapshotID, State.
	SnapshotDrop     Kind = "snapshot-drop"     // In: Collection, Name. Out: Existed.
	SnapshotDescribe Kind = "snapshot-describe" // In: Collection, Name. Out: Found, SnapshotID, State.
	SnapshotList     Kind = "snapshot-list"     // In: Collection. Out: Names (committed and pending, with States).

	// Segment catalog.
	SegmentAllocate Kind = "segment-allocate" // In: Collection. Out: SegmentID.
	SegmentFlush    Kind = "segment-flush"    // In: SegmentID, Files. Out: State.
	SegmentCompact  Kind = "segment-compact"  // In: Inputs, SegmentID (output). Out: State.
	SegmentDrop     Kind = "segment-drop"     // In: SegmentIDs. Out: —.
	SegmentGet      Kind = "segment-get"      // In: SegmentID. Out: Found, State, Files.

	// Restores and GC.
	RestoreStart  Kind = "restore-start"  // In: Collection, Name (snapshot), Target. Out: JobID.
	RestoreStatus Kind = "restore-status" // In: JobID. Out: State.
	RestoreCancel Kind = "restore-cancel" // In: JobID. Out: State.
	GCRun         Kind = "gc-run"         // In: DryRun. Out: Deleted.

	// Repositories (jobs are followed with RestoreStatus and RestoreCancel).
	ExportStart      Kind = "export-start"       // In: Collection, Name (snapshot). Out: JobID.
	RepoRestoreStart Kind = "repo-restore-start" // In: Name (repository snapshot id), Target. Out: JobID.
	RepoCollect      Kind = "repo-collect"       // In: —. Out: Deleted.

	// Snapshot policies and holds. Snapshot states as for SnapshotDescribe; times in
	// Unix milliseconds of the cluster's (the leader's) clock, as the API returns them.
	PolicyDescribe  Kind = "policy-describe"  // In: Policy. Out: Policy.
	PolicySnapshots Kind = "policy-snapshots" // In: Policy. Out: Snapshots (every state, one page), Truncated.
	PolicyExecute   Kind = "policy-execute"   // In: Policy. Out: Snapshots (ID, Collection, Name of the run's snapshots).
	HoldAdd         Kind = "hold-add"         // In: Collection, Name, Reason, UntilMs. Out: HoldID, Snapshots (the held one).
	HoldRemove      Kind = "hold-remove"      // In: Collection, Name, HoldID. Out: Snapshots (the released one).

	// The Milvus layout's index builds and the external collector (its segments are
	// the segment catalog's, with the caller's ids).
	BuildAllocate Kind = "build-allocate" // In: SegmentID, BuildID. Out: —.
	BuildAdd      Kind = "build-add"      // In: SegmentID, BuildID, Files. Out: —.
	// Release is ReleaseForDeletion. In: SegmentIDs, Builds, Keys. Out: Verdicts (one
	// per item, in that order: deletable or not) and Files, the objects the collector
	// deleted because they were answered deletable (it deletes them after the call).
	Release Kind = "release"

	// Scrubbing: a verification on request, as the leader's scrubber makes them.
	SnapshotVerify Kind = "snapshot-verify" // In: Collection, Name, Deep. Out: SnapshotID, State, Outcome.
)

// Outcome says how an operation ended. An operation that timed out or whose
// connection broke may or may not have taken effect: it is Unknown, never retried
// inside the operation, and a checker must allow both.
type Outcome string

const (
	OK      Outcome = "ok"      // succeeded; Output holds the result
	Fail    Outcome = "fail"    // refused for sure (a definite error: not found, exists, precondition, invalid)
	Unknown Outcome = "unknown" // timeout, unavailable, connection lost: may have happened
)

// File is a segment file as the workload wrote it.
type File struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

// Input is what an operation asked for; only the fields of its Kind are set.
type Input struct {
	Collection string   `json:"collection,omitempty"`
	Name       string   `json:"name,omitempty"`
	Target     string   `json:"target,omitempty"`
	SegmentID  uint64   `json:"segment_id,omitempty"`
	SegmentIDs []uint64 `json:"segment_ids,omitempty"`
	Inputs     []uint64 `json:"inputs,omitempty"`
	Files      []File   `json:"files,omitempty"`
	JobID      uint64   `json:"job_id,omitempty"`
	// DryRun: a gc-run that only planned (a real run is with grace 0).
	DryRun bool `json:"dry_run,omitempty"`
	// Policy names a snapshot policy; HoldID a snapshot hold; Reason and UntilMs
	// (0: until removed) are a new hold's.
	Policy  string `json:"policy,omitempty"`
	HoldID  uint64 `json:"hold_id,omitempty"`
	Reason  string `json:"reason,omitempty"`
	UntilMs int64  `json:"until_ms,omitempty"`
	// BuildID is an index build's id; Builds and Keys are a release's builds and
	// object keys (full keys).
	BuildID uint64     `json:"build_id,omitempty"`
	Builds  []BuildRef `json:"builds,omitempty"`
	Keys    []string   `json:"keys,omitempty"`
	// Deep: a verification that reads the data back.
	Deep bool `json:"deep,omitempty"`
}

// BuildRef names an index build by its segment.
type BuildRef struct {
	SegmentID uint64 `json:"segment_id"`
	BuildID   uint64 `json:"build_id"`
}

// Output is what an OK operation returned; only the fields of its Kind are set.
type Output struct {
	Found      bool              `json:"found,omitempty"`
	Existed    bool              `json:"existed,omitempty"`
	SnapshotID uint64            `json:"snapshot_id,omitempty"`
	SegmentID  uint64            `json:"segment_id,omitempty"`
	JobID      uint64            `json:"job_id,omitempty"`
	State      string            `json:"state,omitempty"`  // e.g. COMMITTED, PENDING, FLUSHED, DROPPED, COMPLETED
	States     map[string]string `json:"states,omitempty"` // list: name → state
	Files      []File            `json:"files,omitempty"`
	Deleted    uint64            `json:"deleted,omitempty"`
	Policy     *Policy           `json:"policy,omitempty"`
	Snapshots  []Snapshot        `json:"snapshots,omitempty"`
	HoldID     uint64            `json:"hold_id,omitempty"`
	// Truncated: the listing had more pages than the one recorded.
	Truncated bool `json:"truncated,omitempty"`
	// Verdicts: a release's answers, in its request's order (true: deletable).
	Verdicts []bool `json:"verdicts,omitempty"`
	// Outcome: a verification's (OK, REPAIRED, DAMAGED, DATA_LOSS).
	Outcome string `json:"outcome,omitempty"`
}

// Policy is a snapshot policy as DescribePolicy returned it: its settings that the
// checker needs and its status.
type Policy struct {
	ID          uint64   `json:"id"`
	Revision    uint64   `json:"revision"`
	Enabled     bool     `json:"enabled,omitempty"`
	Collections []string `json:"collections,omitempty"`
	CreatedAtMs int64    `json:"created_at_ms"`
	IntervalMs  int64    `json:"interval_ms,omitempty"`
	MinCount    uint32   `json:"min_count,omitempty"`
	MaxCount    uint32   `json:"max_count,omitempty"`
	// Status: every run (on request included), the latest due time run, and the due
	// time and entry time of the latest run (due 0: on request).
	Runs             uint64 `json:"runs"`
	LastDueMs        int64  `json:"last_due_ms,omitempty"`
	LastRunDueMs     int64  `json:"last_run_due_ms,omitempty"`
	LastRunAtMs      int64  `json:"last_run_at_ms,omitempty"`
	SnapshotsTaken   uint64 `json:"snapshots_taken,omitempty"`
	SnapshotsFailed  uint64 `json:"snapshots_failed,omitempty"`
	SnapshotsDeleted uint64 `json:"snapshots_deleted,omitempty"`
}

// Snapshot is a snapshot record as a listing or a hold call returned it.
type Snapshot struct {
	ID         uint64 `json:"id"`
	Collection string `json:"collection"`
	Name       string `json:"name"`
	State      string `json:"state,omitempty"`
	// The policy that took it and the due time of that run (0: on request).
	PolicyID      uint64 `json:"policy_id,omitempty"`
	DueMs         int64  `json:"due_ms,omitempty"`
	CreatedAtMs   int64  `json:"created_at_ms,omitempty"`
	CommittedAtMs int64  `json:"committed_at_ms,omitempty"`
	DeletingAtMs  int64  `json:"deleting_at_ms,omitempty"`
	Holds         []Hold `json:"holds,omitempty"`
}

// Hold is a snapshot hold; Active as the serving node computed it when it read.
type Hold struct {
	ID        uint64 `json:"id"`
	UntilMs   int64  `json:"until_ms,omitempty"`
	AddedAtMs int64  `json:"added_at_ms,omitempty"`
	Active    bool   `json:"active,omitempty"`
}

// Op is one client operation. Call and Return are nanoseconds since the run began, on
// the harness's monotonic clock; Return is 0 while the operation is pending.
type Op struct {
	ID     int64   `json:"id"`
	Client int     `json:"client"`
	Kind   Kind    `json:"kind"`
	Input  Input   `json:"input"`
	Call   int64   `json:"call"`
	Return int64   `json:"return"`
	Node   string  `json:"node,omitempty"` // the node the client sent it to
	Result Outcome `json:"result"`
	Output Output  `json:"output"`
	Error  string  `json:"error,omitempty"`
	// RequestID is the request id the operation's one write carried (writes whose
	// outcome the cluster's deduplication window can tell afterwards).
	RequestID string `json:"request_id,omitempty"`
	// Resolved says how an Unknown outcome was decided after the operation returned
	// (see Resolve); empty while it is not.
	Resolved string `json:"resolved,omitempty"`
}

// How an Unknown outcome was decided (Op.Resolved).
const (
	// NotApplied: the write never took effect (Result becomes Fail).
	NotApplied = "not-applied"
	// Refused: the write was applied as a refusal (Result becomes Fail).
	Refused = "refused"
	// Applied: the write took effect; its output is not known (Result stays Unknown).
	Applied = "applied"
	// Undecidable: the deduplication window had forgotten what came after it.
	Undecidable = "undecidable"
)

// Fault is one nemesis action: Start and End on the same clock (End 0: not healed
// before the run ended).
type Fault struct {
	ID     int64  `json:"id"`
	Kind   string `json:"kind"`   // kill, pause, partition-leader, partition-majority, bridge, delay, drop, leader-churn, member-remove, s3-faults
	Target string `json:"target"` // nodes or links affected, human readable
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	Note   string `json:"note,omitempty"`
}

// Event is one line of the encoded history: an operation or a fault.
type Event struct {
	Op    *Op    `json:"op,omitempty"`
	Fault *Fault `json:"fault,omitempty"`
}

// History collects a run's operations and faults. Its methods are safe for
// concurrent use.
type History struct {
	mu     sync.Mutex
	start  time.Time
	ops    []*Op
	faults []*Fault
	nextID int64
}

// New starts a history; its clock starts now.
func New() *History { return &History{start: time.Now()} }

// Start is the wall-clock time of the history's time 0: the checkers that compare
// the history's times with times the cluster stamped (Unix milliseconds) add it.
func (h *History) Start() time.Time { return h.start }

// Now is the history's clock: nanoseconds since New (monotonic).
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Invoke records the call of an operation and returns it; the caller fills Node and
// completes it with Complete.
func (h *History) Invoke(client int, kind Kind, in Input) *Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextID++
	op := &Op{ID: h.nextID, Client: client, Kind: kind, Input: in, Call: h.Now()}
	h.ops = append(h.ops, op)
	return op
}

// InvokeWrite is Invoke for an operation whose one write carries requestID.
func (h *History) InvokeWrite(client int, kind Kind, in Input, requestID string) *Op {
	op := h.Invoke(client, kind, in)
	h.mu.Lock()
	defer h.mu.Unlock()
	op.RequestID = requestID
	return op
}

// UnresolvedWrites returns copies of the completed operations whose outcome is Unknown,
// that carry a request id and are not resolved yet.
func (h *History) UnresolvedWrites() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Op
	for _, op := range h.ops {
		if op.Result == Unknown && op.RequestID != "" && op.Resolved == "" && op.Return != 0 {
			out = append(out, *op)
		}
	}
	return out
}

// AcknowledgedWrites returns copies of the last n operations that succeeded and carry
// a request id.
func (h *History) AcknowledgedWrites(n int) []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Op
	for i := len(h.ops) - 1; i >= 0 && len(out) < n; i-- {
		if op := h.ops[i]; op.Result == OK && op.RequestID != "" {
			out = append(out, *op)
		}
	}
	return out
}

// Resolve records how an Unknown operation was decided: NotApplied and Refused make it
// Fail, Applied and Undecidable leave it Unknown. note is kept with it. An operation
// that is not Unknown, or already resolved, is left as it is.
func (h *History) Resolve(id int64, how, note string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i, ok := slices.BinarySearchFunc(h.ops, id, func(op *Op, id int64) int { return cmp.Compare(op.ID, id) })
	if !ok {
		return
	}
	op := h.ops[i]
	if op.Result != Unknown || op.Resolved != "" || op.Return == 0 {
		return
	}
	op.Resolved = how
	if note != "" {
		op.Resolved += ": " + note
	}
	if how == NotApplied || how == Refused {
		op.Result = Fail
	}
}

// Complete records an operation's return.
func (h *History) Complete(op *Op, node string, result Outcome, out Output, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.Return = h.Now()
	op.Node = node
	op.Result = result
	op.Output = out
	if err != nil {
		op.Error = err.Error()
	}
}

// StartFault records the start of a fault and returns it; EndFault records its end.
func (h *History) StartFault(kind, target, note string) *Fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextID++
	f := &Fault{ID: h.nextID, Kind: kind, Target: target, Start: h.Now(), Note: note}
	h.faults = append(h.faults, f)
	return f
}

// AddNote appends to a fault's note what became known while it ran (say, whether a
// member was removed).
func (h *History) AddNote(f *Fault, note string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.Note += "; " + note
}

// EndFault records the end of a fault.
func (h *History) EndFault(f *Fault) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.End = h.Now()
}

// Ops returns copies of the operations in call order. Pending operations (Return 0)
// are returned as Unknown with Return set to the end of the history.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	end := h.Now()
	out := make([]Op, len(h.ops))
	for i, op := range h.ops {
		out[i] = *op
		if out[i].Return == 0 {
			out[i].Return = end
			out[i].Result = Unknown
		}
	}
	return out
}

// Faults returns copies of the faults in start order.
func (h *History) Faults() []Fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Fault, len(h.faults))
	for i, f := range h.faults {
		out[i] = *f
	}
	return out
}

// Write encodes the history as JSON lines: faults, then operations.
func (h *History) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, f := range h.Faults() {
		if err := enc.Encode(Event{Fault: &f}); err != nil {
			return err
		}
	}
	for _, op := range h.Ops() {
		if err := enc.Encode(Event{Op: &op}); err != nil {
			return err
		}
	}
	return nil
}

// Read decodes a history written by Write.
func Read(r io.Reader) (ops []Op, faults []Fault, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, nil, fmt.Errorf("history line %d: %w", line, err)
		}
		switch {
		case e.Op != nil:
			ops = append(ops, *e.Op)
		case e.Fault != nil:
			faults = append(faults, *e.Fault)
		default:
			return nil, nil, fmt.Errorf("history line %d: neither an operation nor a fault", line)
		}
	}
	return ops, faults, sc.Err()
}
