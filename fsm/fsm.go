// Package fsm is snapkeep's replicated state machine: the command types, Apply, the
// indexed state store (copy-on-write B-trees, tables.go) and the raft snapshot of the
// whole state (raftsnapshot.go); collection snapshots are in collection_snapshots.go.
//
// It is pure: Apply reads no clock, draws no random number and does no I/O. Every time
// it records comes from the cluster clock the leader stamps, carried in the log entry's envelope; every
// id comes from a counter in the state. The same log therefore gives the same state on
// every node, which Hash checks.
//
// Concurrency: Apply, ApplyBatch, Snapshot and Restore are called by Raft from one
// goroutine. Read views (View) may be taken from any goroutine at any time; each is a
// consistent point-in-time view that never blocks Apply.
package fsm

import (
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// EnvelopeVersion is the envelope encoding this code writes and the newest it reads.
const EnvelopeVersion = 1

// ApplyResult is what Apply returns for a command entry (raft.ApplyFuture.Response()).
type ApplyResult struct {
	Index  uint64
	Result *fsmpb.Result
}

// Err is the command's rejection, or nil when it succeeded.
func (r *ApplyResult) Err() error { return ResultError(r.Result) }

// FSM is the state machine. Create it with New.
type FSM struct {
	logger *slog.Logger

	// mu guards committed (every clone of it is taken under mu, as the B-trees require;
	// once published it is only read) and the applied index with its change channel.
	mu        sync.Mutex
	committed *tables
	applied   uint64
	appliedCh chan struct{}

	// lastNow is the latest envelope time among the commands this process applied: the
	// node's cluster clock carries it forward (server/clustertime). Not state: 0 after a
	// restart until a command is applied.
	lastNow atomic.Int64

	// invariantChecks counts the commands this process checked the invariants after
	// (fault-injection builds only; see invariants.go).
	invariantChecks atomic.Uint64

	// keep packs the long-lived records of the commands applied (arena.go); only
	// Raft's apply goroutine uses it.
	keep arena

	// validation is the leader's running validation state (Validate).
	validation validation
}

var _ raft.FSM = (*FSM)(nil)

// New returns an FSM holding the initial state: the "default" database.
func New(logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FSM{logger: logger, committed: initialTables(), appliedCh: make(chan struct{})}
}

// initialTables is the state before any log entry: the default database, id 1.
func initialTables() *tables {
	t := newTables()
	t.meta = &fsmpb.Meta{LastId: 1}
	t.databases.put(&fsmpb.Database{Id: 1, Name: DefaultDatabase})
	return t
}

// current returns a private copy-on-write clone of the committed state.
func (f *FSM) current() *tables {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.committed.clone(&f.mu)
}

// Apply applies one Raft log entry. Command entries return *ApplyResult; a malformed
// or rejected command changes nothing but the applied index and is answered with its
// error inside the result.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	tx := f.current()
	result := f.execute(&tx, l.Index, l.Data)
	meta := proto.CloneOf(tx.meta)
	meta.AppliedIndex = l.Index
	tx.meta = meta

	f.mu.Lock()
	f.committed = tx
	f.applied = l.Index
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.mu.Unlock()
	f.validation.release()
	return &ApplyResult{Index: l.Index, Result: result}
}

// execute runs one command against *tx. When the command is rejected it replaces *tx
// by a fresh clone of the committed state: nothing the handler changed survives.
func (f *FSM) execute(tx **tables, index uint64, data []byte) *fsmpb.Result {
	return f.executeFrom(tx, index, data, f.current).result
}

// executed is what one command did to the state, enough to do it again (replay).
type executed struct {
	result *fsmpb.Result
	// ran: the handler ran and its changes stand; running the command again on the
	// same state makes the same changes.
	ran bool
	// remembered is the request the deduplication window recorded for a rejected
	// command (nil for none): its only change to the state.
	remembered *fsmpb.RequestRecord
}

// executeFrom runs one command against *tx. When the command is rejected it replaces
// *tx by before(), the state as it was before the command: nothing the handler
// changed survives.
func (f *FSM) executeFrom(tx **tables, index uint64, data []byte, before func() *tables) executed {
	env, h, bodyHash, early := prepare(*tx, index, data)
	if early != nil {
		return executed{result: early}
	}
	if env.Now > f.lastNow.Load() {
		f.lastNow.Store(env.Now) // only Raft's one apply goroutine writes it
	}
	var leasesBefore map[uint64]*fsmpb.RestoreLease
	if checkInvariants {
		leasesBefore = leaseMap(*tx)
		// Every command's stamp, for the harness's cluster-clock check: the Raft log
		// loses its older entries to raft snapshots, a node's log keeps them.
		f.logger.Debug(CommandStamped, "index", index, "now", env.Now, "request_id", env.RequestId)
	}
	result := run(h, *tx, env, index, &f.keep)
	ok := result.Code == fsmpb.ErrorCode_ERROR_CODE_OK
	if !ok {
		*tx = before()
		f.logger.Debug("command rejected", "index", index, "type", h.name, "err", result.Message)
	}
	if checkInvariants && ok {
		for _, v := range leaseViolations(leasesBefore, *tx, env) {
			f.logger.Error(InvariantViolated, "invariant", "restore-leases", "index", index, "detail", v)
		}
		if n := f.invariantChecks.Add(1); n%InvariantsCheckedEvery == 0 {
			f.logger.Info(InvariantsChecked, "commands", n, "index", index)
		}
	}
	var remembered *fsmpb.RequestRecord
	if env.RequestId != "" {
		rememberRequest(*tx, env.RequestId, env.Type, bodyHash, result)
		if !ok {
			remembered = &fsmpb.RequestRecord{RequestId: env.RequestId, Type: env.Type, BodyHash: bodyHash, Result: result}
		}
	}
	return executed{result: result, ran: ok, remembered: remembered}
}

// prepare decodes a log entry and looks its request id up in the deduplication
// window. early is the entry's whole result when it is decided without running the
// handler: malformed, unsupported, or a request already applied (its remembered
// result).
func prepare(t *tables, index uint64, data []byte) (env *fsmpb.Envelope, h handler, bodyHash uint64, early *fsmpb.Result) {
	env = &fsmpb.Envelope{}
	if err := proto.Unmarshal(data, env); err != nil {
		return nil, h, 0, errorResult(invalidf("malformed command entry at index %d: %v", index, err))
	}
	if env.Version == 0 || env.Version > EnvelopeVersion {
		return nil, h, 0, errorResult(invalidf("command entry version %d is not supported (this node reads up to %d); upgrade the node", env.Version, EnvelopeVersion))
	}
	h, ok := handlers[env.Type]
	if !ok {
		return nil, h, 0, errorResult(invalidf("unknown command type %d", env.Type))
	}
	if env.RequestId != "" {
		bodyHash = hashBody(env.Type, env.Body)
		if rec := (reader{t}).request(env.RequestId); rec != nil {
			if rec.BodyHash != bodyHash {
				return nil, h, 0, errorResult(invalidf("request id %q was already used for a different request", env.RequestId))
			}
			return nil, h, 0, rec.Result
		}
	}
	return env, h, bodyHash, nil
}

// Validate runs the command in data (an encoded envelope, as a log entry carries it)
// as Apply would and returns nil when Apply would accept it (or answer it from the
// deduplication window) on the committed state or after the commands accepted since,
// else the rejection Apply would answer on the committed state. The
// leader calls it before proposing so that a command Apply would reject never
// reaches the log: it is Apply's own code, so the two cannot drift. Apply still checks
// everything, since the state may change between Validate and Apply. Safe to call
// concurrently with Apply and with itself.
//
// Each command is first run on the leader's running validation state (see
// validation): the committed state plus the commands accepted since it was
// published, as Apply will meet them if they are proposed in that order. A command
// accepted there is accepted. One rejected there is checked again on a fresh copy of
// the committed state, and that answer is Validate's: a command is never turned away
// because of another that is still in flight.
func (f *FSM) Validate(data []byte) *fsmpb.Result {
	if f.validateRunning(data) {
		return nil
	}
	return validateOn(f.current(), data)
}

// validation is the leader's running validation state. Its tables are a clone of the
// committed state that Validate keeps writing into, so that its B-tree nodes, copied
// once, serve every command validated until the next publication instead of one copy
// of each path per command. That is all it is for: which commands it accepts changes
// no answer Validate gives (see Validate), and no node's state depends on it.
type validation struct {
	mu   sync.Mutex
	base *tables // the committed state tx was cloned from
	tx   *tables
	// ran are the commands run on tx since base, in order: after a rejection, whose
	// handler may have written half its changes, tx is base with these run again.
	// ranBytes is their size.
	ran      [][]byte
	ranBytes int
	// requests are the request ids of ran with their body hashes: as in Apply's
	// deduplication window, a retry of a request in flight is not run a second time.
	requests map[string]uint64
}

// maxRunningValidations and maxRunningValidationBytes bound validation.ran: past
// either (a leader whose proposals do not commit: its disk is full, it lost its
// quorum) the running state starts again from the committed state, so that it never
// holds more than this of commands the clients have given up on.
const (
	maxRunningValidations     = 4096
	maxRunningValidationBytes = 64 << 20
)

// validateRunning runs the command in data on the running validation state and keeps
// its changes when it is accepted. It reports whether it was.
func (f *FSM) validateRunning(data []byte) bool {
	v := &f.validation
	v.mu.Lock()
	defer v.mu.Unlock()
	f.mu.Lock()
	if v.tx == nil || v.base != f.committed || len(v.ran) >= maxRunningValidations || v.ranBytes >= maxRunningValidationBytes {
		v.reset(f.committed, f.committed.clone(&f.mu))
	}
	f.mu.Unlock()
	ok, ran := v.run(data)
	switch {
	case ok && ran:
		v.keep(data)
	case !ok && ran:
		v.rebuild(&f.mu)
	}
	return ok
}

// reset makes tx, a clone of base, the running state, with no command run on it.
func (v *validation) reset(base, tx *tables) {
	clear(v.ran)
	clear(v.requests)
	v.base, v.tx, v.ran, v.ranBytes = base, tx, v.ran[:0], 0
}

// keep records a command accepted on tx.
func (v *validation) keep(data []byte) {
	v.ran = append(v.ran, data)
	v.ranBytes += len(data)
}

// release drops the running state, which a publication has just made stale, unless a
// validation holds it (that one starts again from the new state): a node that no
// longer leads must not keep an old state alive. It never waits, so that Apply never
// waits for a validation.
func (v *validation) release() {
	if !v.mu.TryLock() {
		return
	}
	v.reset(nil, nil)
	v.mu.Unlock()
}

// rebuild makes tx the base state with the commands of ran run on it again.
func (v *validation) rebuild(mu *sync.Mutex) {
	mu.Lock()
	tx := v.base.clone(mu)
	mu.Unlock()
	ran := v.ran
	v.ran = nil
	v.reset(v.base, tx)
	for _, data := range ran {
		if ok, _ := v.run(data); !ok {
			// Accepted on this very state before: only a nondeterministic handler gets
			// here. Start again from the committed state.
			v.reset(nil, nil)
			return
		}
		v.keep(data)
	}
}

// run runs the command in data on tx as Apply would, and reports whether it was
// accepted and whether its handler ran (else tx is unchanged).
func (v *validation) run(data []byte) (ok, ran bool) {
	index := v.base.meta.AppliedIndex + 1
	env, h, bodyHash, early := prepare(v.tx, index, data)
	if early != nil {
		return early.Code == fsmpb.ErrorCode_ERROR_CODE_OK, false
	}
	if env.RequestId != "" {
		if hash, inFlight := v.requests[env.RequestId]; inFlight {
			return hash == bodyHash, false
		}
	}
	if run(h, v.tx, env, index, nil).Code != fsmpb.ErrorCode_ERROR_CODE_OK {
		return false, true
	}
	if env.RequestId != "" {
		if v.requests == nil {
			v.requests = map[string]uint64{}
		}
		v.requests[env.RequestId] = bodyHash
	}
	return true, true
}

// validateOn runs the command in data on tx, a private clone of the committed state,
// and returns the rejection, or nil.
func validateOn(tx *tables, data []byte) *fsmpb.Result {
	index := tx.meta.AppliedIndex + 1
	env, h, _, early := prepare(tx, index, data)
	if early != nil {
		if early.Code == fsmpb.ErrorCode_ERROR_CODE_OK {
			return nil
		}
		return early // what Apply would answer, a remembered rejection included
	}
	result := run(h, tx, env, index, nil)
	if result.Code == fsmpb.ErrorCode_ERROR_CODE_OK {
		return nil
	}
	return result
}

// run decodes the command body and calls its handler; keep allocates what the state
// keeps (nil when validating: see arena).
func run(h handler, tx *tables, env *fsmpb.Envelope, index uint64, keep *arena) *fsmpb.Result {
	msg := h.newBody()
	if err := proto.Unmarshal(env.Body, msg); err != nil {
		return errorResult(invalidf("malformed %s command: %v", h.name, err))
	}
	ctx := &applyCtx{reader: reader{tx}, now: env.Now, index: index, keep: keep}
	resp, err := safeHandle(h, ctx, msg)
	if err != nil {
		return errorResult(err)
	}
	result := &fsmpb.Result{}
	if resp != nil {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
		if err != nil {
			return errorResult(err)
		}
		result.Response = b
	}
	return result
}

func errorResult(err error) *fsmpb.Result {
	if err == nil {
		return &fsmpb.Result{}
	}
	e := asError(err)
	return &fsmpb.Result{Code: e.Code, Message: e.Message}
}

func safeHandle(h handler, ctx *applyCtx, msg proto.Message) (resp proto.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			// A bug, not bad input: reject the command on every node alike rather than
			// crash the cluster.
			resp, err = nil, newError(fsmpb.ErrorCode_ERROR_CODE_INTERNAL, "internal error applying %s: %v", h.name, r)
		}
	}()
	return h.apply(ctx, msg)
}

func hashBody(t fsmpb.CommandType, body []byte) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d:", t)
	h.Write(body)
	return h.Sum64()
}

// rememberRequest adds a request to the deduplication window, dropping the oldest
// records while the window holds more than RequestWindow records or RequestWindowBytes
// of results.
func rememberRequest(tx *tables, id string, t fsmpb.CommandType, bodyHash uint64, result *fsmpb.Result) {
	meta := proto.CloneOf(tx.meta)
	meta.LastRequestSeq++
	meta.RequestBytes += resultBytes(result)
	tx.requests.put(&fsmpb.RequestRecord{RequestId: id, Seq: meta.LastRequestSeq, Type: t, BodyHash: bodyHash, Result: result})
	for tx.requests.len() > RequestWindow || meta.RequestBytes > RequestWindowBytes {
		oldest, ok := tx.requests.secondary[requestsBySeq].tree.Min()
		if !ok {
			break
		}
		tx.requests.remove(oldest)
		meta.RequestBytes -= resultBytes(oldest.Result)
	}
	tx.meta = meta
}

func resultBytes(r *fsmpb.Result) uint64 {
	return uint64(len(r.GetResponse()) + len(r.GetMessage()))
}

// AppliedIndex is the index of the last entry applied (or restored).
func (f *FSM) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// LastNow is the latest envelope time (Unix ns) among the commands applied since the
// process started, 0 before the first. Safe to call concurrently with Apply.
func (f *FSM) LastNow() int64 { return f.lastNow.Load() }

// AppliedCh returns the applied index and a channel closed at the next change of it.
func (f *FSM) AppliedCh() (uint64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied, f.appliedCh
}

// View returns a consistent read view of the current state. It is O(1), holds no lock
// after it returns, and never blocks Apply for longer than reading a pointer takes.
//
// It reads the committed state itself, not a clone: a committed state is never written
// again (Apply writes a clone and publishes that), and a B-tree's Clone, which Apply
// and Validate take of it, writes only the tree's copy-on-write context, which no read
// touches. A clone per view cost about 130 allocations, on every read and forwarded
// write.
func (f *FSM) View() *View {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &View{reader{f.committed}}
}

// Snapshot returns a point-in-time raft snapshot of the state (O(1); the encoding
// happens in Persist, concurrently with further Applies).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{t: f.current(), logger: f.logger}, nil
}

// Restore replaces the whole state by the one read from r. On error the old state is
// kept.
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	t, err := readSnapshot(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.committed = t
	f.applied = t.meta.AppliedIndex
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.mu.Unlock()
	f.validation.release()
	return nil
}
