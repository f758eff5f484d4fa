// Package history is the record of a fault-injection run: every client operation with
// its call and return times on one monotonic clock, its input and output, and the node
// that served it; and every fault the nemesis injected. The harness writes it; the
// checkers read it. It is encoded as JSON lines (one Event per line) so a run's history
// can be read back, checked again and diffed.
package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
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
}

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
