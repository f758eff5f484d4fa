package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// handler applies one command type. Handlers validate everything against the state in
// the transaction and return an *Error for bad input; Apply discards the transaction on
// any error, so a handler may fail after partial writes without harm.
type handler struct {
	name    string
	newBody func() proto.Message
	apply   func(*applyCtx, proto.Message) (proto.Message, error)
}

// handlers is the one place where command types meet their code.
var (
	handlers    = map[fsmpb.CommandType]handler{}
	typesByName = map[string]fsmpb.CommandType{}
)

func register[T proto.Message](t fsmpb.CommandType, fn func(*applyCtx, T) (proto.Message, error)) {
	if _, dup := handlers[t]; dup {
		panic(fmt.Sprintf("fsm: command type %v registered twice", t))
	}
	var zero T
	name := string(zero.ProtoReflect().Descriptor().Name())
	typesByName[name] = t
	handlers[t] = handler{
		name:    name,
		newBody: func() proto.Message { return zero.ProtoReflect().New().Interface() },
		apply:   func(c *applyCtx, m proto.Message) (proto.Message, error) { return fn(c, m.(T)) },
	}
}

func init() {
	register(fsmpb.CommandType_COMMAND_TYPE_CREATE_DATABASE, applyCreateDatabase)
	register(fsmpb.CommandType_COMMAND_TYPE_DROP_DATABASE, applyDropDatabase)
	register(fsmpb.CommandType_COMMAND_TYPE_CREATE_COLLECTION, applyCreateCollection)
	register(fsmpb.CommandType_COMMAND_TYPE_DROP_COLLECTION, applyDropCollection)
	register(fsmpb.CommandType_COMMAND_TYPE_ALTER_COLLECTION, applyAlterCollection)
	register(fsmpb.CommandType_COMMAND_TYPE_CREATE_PARTITION, applyCreatePartition)
	register(fsmpb.CommandType_COMMAND_TYPE_DROP_PARTITION, applyDropPartition)
	register(fsmpb.CommandType_COMMAND_TYPE_CREATE_INDEX, applyCreateIndex)
	register(fsmpb.CommandType_COMMAND_TYPE_DROP_INDEX, applyDropIndex)
	register(fsmpb.CommandType_COMMAND_TYPE_ALLOCATE_SEGMENT, applyAllocateSegment)
	register(fsmpb.CommandType_COMMAND_TYPE_FLUSH_SEGMENT, applyFlushSegment)
	register(fsmpb.CommandType_COMMAND_TYPE_ALLOCATE_INDEX_BUILD, applyAllocateIndexBuild)
	register(fsmpb.CommandType_COMMAND_TYPE_ADD_INDEX_BUILD, applyAddIndexBuild)
	register(fsmpb.CommandType_COMMAND_TYPE_COMPACT, applyCompact)
	register(fsmpb.CommandType_COMMAND_TYPE_DROP_SEGMENTS, applyDropSegments)
	register(fsmpb.CommandType_COMMAND_TYPE_EXPIRE_ALLOCATIONS, applyExpireAllocations)
	register(fsmpb.CommandType_COMMAND_TYPE_REGISTER_NODE, applyRegisterNode)
	register(fsmpb.CommandType_COMMAND_TYPE_SNAPSHOT_BEGIN, applySnapshotBegin)
	register(fsmpb.CommandType_COMMAND_TYPE_SNAPSHOT_COMMIT, applySnapshotCommit)
	register(fsmpb.CommandType_COMMAND_TYPE_SNAPSHOT_MARK_DELETING, applySnapshotMarkDeleting)
	register(fsmpb.CommandType_COMMAND_TYPE_SNAPSHOT_REMOVE, applySnapshotRemove)
	register(fsmpb.CommandType_COMMAND_TYPE_RESTORE_BEGIN, applyRestoreBegin)
	register(fsmpb.CommandType_COMMAND_TYPE_RESTORE_START, applyRestoreStart)
	register(fsmpb.CommandType_COMMAND_TYPE_RESTORE_GRANT, applyRestoreGrant)
	register(fsmpb.CommandType_COMMAND_TYPE_RESTORE_REPORT, applyRestoreReport)
	register(fsmpb.CommandType_COMMAND_TYPE_RESTORE_FAIL, applyRestoreFail)
	register(fsmpb.CommandType_COMMAND_TYPE_RESTORE_CANCEL, applyRestoreCancel)
	register(fsmpb.CommandType_COMMAND_TYPE_EXPIRE_RESTORE_LEASES, applyExpireRestoreLeases)
	register(fsmpb.CommandType_COMMAND_TYPE_RESTORE_REMOVE, applyRestoreRemove)
	register(fsmpb.CommandType_COMMAND_TYPE_GC_CHECK, applyGCCheck)
	register(fsmpb.CommandType_COMMAND_TYPE_GC_REMOVE, applyGCRemove)
	register(fsmpb.CommandType_COMMAND_TYPE_GC_RECORD_REPORT, applyGCRecordReport)
	register(fsmpb.CommandType_COMMAND_TYPE_RELEASE_FOR_DELETION, applyReleaseForDeletion)
	register(fsmpb.CommandType_COMMAND_TYPE_REGISTER_SEGMENTS, applyRegisterSegments)
	register(fsmpb.CommandType_COMMAND_TYPE_CLUSTER_IDENTIFY, applyClusterIdentify)
	register(fsmpb.CommandType_COMMAND_TYPE_REPOSITORY_REGISTER, applyRepositoryRegister)
	register(fsmpb.CommandType_COMMAND_TYPE_REPOSITORY_UNREGISTER, applyRepositoryUnregister)
	register(fsmpb.CommandType_COMMAND_TYPE_EXPORT_BEGIN, applyExportBegin)
	register(fsmpb.CommandType_COMMAND_TYPE_EXPORT_COMPLETE, applyExportComplete)
	register(fsmpb.CommandType_COMMAND_TYPE_RESTORE_PLAN_SEGMENTS, applyRestorePlanSegments)
	register(fsmpb.CommandType_COMMAND_TYPE_REPOSITORY_GC_BEGIN, applyRepositoryGCBegin)
	register(fsmpb.CommandType_COMMAND_TYPE_REPOSITORY_GC_END, applyRepositoryGCEnd)
	register(fsmpb.CommandType_COMMAND_TYPE_POLICY_PUT, applyPolicyPut)
	register(fsmpb.CommandType_COMMAND_TYPE_POLICY_DELETE, applyPolicyDelete)
	register(fsmpb.CommandType_COMMAND_TYPE_POLICY_RUN, applyPolicyRun)
	register(fsmpb.CommandType_COMMAND_TYPE_POLICY_RETAIN, applyPolicyRetain)
	register(fsmpb.CommandType_COMMAND_TYPE_SNAPSHOT_HOLD_ADD, applySnapshotHoldAdd)
	register(fsmpb.CommandType_COMMAND_TYPE_SNAPSHOT_HOLD_REMOVE, applySnapshotHoldRemove)
	register(fsmpb.CommandType_COMMAND_TYPE_POLICY_EXPORT, applyPolicyExport)
	register(fsmpb.CommandType_COMMAND_TYPE_POLICY_EXPORTS_EXPIRED, applyPolicyExportsExpired)
	register(fsmpb.CommandType_COMMAND_TYPE_SNAPSHOT_VERIFIED, applySnapshotVerified)
	register(fsmpb.CommandType_COMMAND_TYPE_RESTORE_SOURCES_CHECKED, applyRestoreSourcesChecked)
}

// CommandTypeOf returns the command type of a command message, for building envelopes.
func CommandTypeOf(m proto.Message) (fsmpb.CommandType, error) {
	name := string(m.ProtoReflect().Descriptor().Name())
	if t, ok := typesByName[name]; ok {
		return t, nil
	}
	return 0, fmt.Errorf("%s is not a command", name)
}

// EncodeCommand builds the log entry data for a command. The leader stamps now.
func EncodeCommand(requestID string, now int64, cmd proto.Message) ([]byte, error) {
	t, err := CommandTypeOf(cmd)
	if err != nil {
		return nil, err
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&fsmpb.Envelope{Version: EnvelopeVersion, Type: t, RequestId: requestID, Now: now, Body: body})
}

// applyCtx is a handler's view of the write transaction.
type applyCtx struct {
	reader
	now   int64
	index uint64
	// keep allocates the records the state keeps (nil when validating: see arena).
	keep *arena
	// taken holds the ids handed out by this command so far, by kind: a command may
	// create several objects of a kind before it stores any (a restore's partitions).
	taken map[idKind]map[uint64]bool
}

// idKind is a kind of object whose id a caller may choose.
type idKind int

const (
	idCollection idKind = iota
	idPartition
	idIndex
	idSegment
	idBuild
)

var idKindNames = [...]string{"collection", "partition", "index", "segment", "index build"}

// idInUse reports whether an object of kind holds id.
func (r reader) idInUse(kind idKind, id uint64) bool {
	switch kind {
	case idCollection:
		_, ok := r.t.collections.get(&fsmpb.Collection{Id: id})
		return ok
	case idPartition:
		return r.t.collections.holdsNested(collectionsPartitionIDs, id)
	case idIndex:
		return r.t.collections.holdsNested(collectionsIndexIDs, id)
	case idSegment:
		_, ok := r.t.segments.get(&fsmpb.Segment{Id: id})
		return ok
	case idBuild:
		return r.t.segments.holdsNested(segmentsBuildIDs, id)
	}
	return false
}

// takeID returns the id of a new object: the caller's (requested, when not 0), which
// must be unused by every other object of its kind, or the next of the id space. The
// id space moves past every caller's id, so an id snapkeep hands out later never
// meets one a caller chose, of any kind.
func (c *applyCtx) takeID(kind idKind, requested uint64) (uint64, error) {
	if c.taken == nil {
		c.taken = map[idKind]map[uint64]bool{}
	}
	if c.taken[kind] == nil {
		c.taken[kind] = map[uint64]bool{}
	}
	if requested == 0 {
		id := c.nextID()
		c.taken[kind][id] = true
		return id, nil
	}
	if c.taken[kind][requested] || c.idInUse(kind, requested) {
		return 0, existsf("%s id %d is already in use", idKindNames[kind], requested)
	}
	if requested > c.t.meta.LastId {
		meta := proto.CloneOf(c.t.meta)
		meta.LastId = requested
		c.t.meta = meta
	}
	c.taken[kind][requested] = true
	return requested, nil
}

// nextID hands out the next id of the one id space.
func (c *applyCtx) nextID() uint64 {
	meta := proto.CloneOf(c.t.meta)
	meta.LastId++
	c.t.meta = meta
	return meta.LastId
}

// CommandName is the name of a command type's message (e.g. "AllocateSegment"), or
// the type's enum name when this version does not know it.
func CommandName(t fsmpb.CommandType) string {
	if h, ok := handlers[t]; ok {
		return h.name
	}
	return t.String()
}
