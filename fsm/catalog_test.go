package fsm

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

const (
	codeInvalid      = fsmpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
	codeNotFound     = fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND
	codeExists       = fsmpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS
	codePrecondition = fsmpb.ErrorCode_ERROR_CODE_FAILED_PRECONDITION
	codeExhausted    = fsmpb.ErrorCode_ERROR_CODE_RESOURCE_EXHAUSTED
)

func TestDefaultDatabaseExists(t *testing.T) {
	h := newHarness(t)
	db, err := h.f.View().Database("")
	require.NoError(t, err)
	require.Equal(t, DefaultDatabase, db.Name)
	h.fails(codeInvalid, &fsmpb.DropDatabase{Name: DefaultDatabase})
}

func TestCollectionLifecycle(t *testing.T) {
	h := newHarness(t)
	var resp fsmpb.CollectionResponse
	h.ok(&fsmpb.CreateCollection{Name: "docs", Schema: []byte("s"), Properties: map[string]string{"ttl": "3600"}, Partitions: []string{"a", "b"}}, &resp)
	c := resp.Collection
	require.Equal(t, []string{"_default", "a", "b"}, partitionNames(c))
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_ACTIVE, c.State)

	h.ok(&fsmpb.AlterCollection{Name: "docs", SetProperties: map[string]string{"x": "1"}, DeleteProperties: []string{"ttl"}}, &resp)
	require.Equal(t, map[string]string{"x": "1"}, resp.Collection.Properties)

	h.ok(&fsmpb.CreatePartition{Collection: "docs", Name: "c"}, &resp)
	h.ok(&fsmpb.DropPartition{Collection: "docs", Name: "a"}, &resp)
	require.Equal(t, []string{"_default", "b", "c"}, partitionNames(resp.Collection))

	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101, Params: map[string]string{"type": "HNSW"}}, &resp)
	require.Len(t, resp.Collection.Indexes, 1)

	s := h.flushedSegment("docs", 3)
	h.ok(&fsmpb.DropCollection{Name: "docs"}, &resp)
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_DROPPED, resp.Collection.State)
	require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_DROPPED, h.segment(s.Id).State)
	require.Equal(t, fsmpb.DropReason_DROP_REASON_COLLECTION_DROPPED, h.segment(s.Id).DropReason)

	// The name is free again; the dropped record stays under its id.
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, &resp)
	require.NotEqual(t, c.Id, resp.Collection.Id)
	old, err := h.f.View().CollectionByID(c.Id)
	require.NoError(t, err)
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_DROPPED, old.State)
}

func partitionNames(c *fsmpb.Collection) []string {
	var out []string
	for _, p := range c.Partitions {
		out = append(out, p.Name)
	}
	return out
}

func TestRejectedCommands(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs", Partitions: []string{"p"}}, nil)
	h.ok(&fsmpb.CreateCollection{Name: "other"}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, nil)
	flushed := h.flushedSegment("docs", 2)
	flushed2 := h.flushedSegment("docs", 1)
	allocated := h.allocate("docs")
	otherSeg := h.flushedSegment("other", 1)
	droppedSeg := h.flushedSegment("docs", 1)
	h.ok(&fsmpb.DropSegments{SegmentIds: []uint64{droppedSeg.Id}}, nil)
	var pseg fsmpb.SegmentResponse
	h.ok(&fsmpb.AllocateSegment{Collection: "docs", Partition: "p", Lease: 60 * second}, &pseg)
	prefix := SegmentPrefix(allocated.CollectionId, allocated.Id)
	file := func(key string, kind fsmpb.FileKind) []*fsmpb.File {
		return []*fsmpb.File{{Key: key, Kind: kind, Size: 1}}
	}

	cases := []struct {
		name string
		code fsmpb.ErrorCode
		cmd  proto.Message
		want string
	}{
		{"empty database name", codeInvalid, &fsmpb.CreateDatabase{}, "empty"},
		{"bad database name", codeInvalid, &fsmpb.CreateDatabase{Name: "9lives"}, "must start with"},
		{"duplicate database", codeExists, &fsmpb.CreateDatabase{Name: "default"}, "already exists"},
		{"drop unknown database", codeNotFound, &fsmpb.DropDatabase{Name: "nope"}, "not found"},
		{"collection in unknown database", codeNotFound, &fsmpb.CreateCollection{Database: "nope", Name: "x"}, `database "nope"`},
		{"over-long collection name", codeInvalid, &fsmpb.CreateCollection{Name: strings.Repeat("a", 256)}, "limit is 255"},
		{"collection name with space", codeInvalid, &fsmpb.CreateCollection{Name: "a b"}, "character"},
		{"duplicate collection", codeExists, &fsmpb.CreateCollection{Name: "docs"}, "already exists"},
		{"schema over 1 MiB", codeInvalid, &fsmpb.CreateCollection{Name: "big", Schema: make([]byte, MaxSchemaBytes+1)}, "1 MiB"},
		{"duplicate partition in create", codeExists, &fsmpb.CreateCollection{Name: "x", Partitions: []string{"a", "a"}}, "twice"},
		{"_default partition in create", codeExists, &fsmpb.CreateCollection{Name: "x", Partitions: []string{"_default"}}, "twice"},
		{"too many properties", codeInvalid, &fsmpb.CreateCollection{Name: "x", Properties: manyProps(MaxProperties + 1)}, "limit"},
		{"drop unknown collection", codeNotFound, &fsmpb.DropCollection{Name: "nope"}, "not found"},
		{"duplicate partition", codeExists, &fsmpb.CreatePartition{Collection: "docs", Name: "p"}, "already exists"},
		{"drop unknown partition", codeNotFound, &fsmpb.DropPartition{Collection: "docs", Name: "zz"}, "not found"},
		{"drop default partition", codeInvalid, &fsmpb.DropPartition{Collection: "docs", Name: "_default"}, "cannot be dropped"},
		{"duplicate index", codeExists, &fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, "already exists"},
		{"drop unknown index", codeNotFound, &fsmpb.DropIndex{Collection: "docs", Name: "nope"}, "not found"},
		{"allocate in unknown partition", codeNotFound, &fsmpb.AllocateSegment{Collection: "docs", Partition: "zz", Lease: 60 * second}, "partition"},
		{"allocate with zero lease", codeInvalid, &fsmpb.AllocateSegment{Collection: "docs", Lease: 0}, "lease"},
		{"flush unknown segment", codeNotFound, &fsmpb.FlushSegment{SegmentId: 999999}, "segment 999999"},
		{"flush twice", codePrecondition, &fsmpb.FlushSegment{SegmentId: flushed.Id}, "already flushed"},
		{"flush dropped", codePrecondition, &fsmpb.FlushSegment{SegmentId: droppedSeg.Id}, "dropped"},
		{"key outside prefix", codeInvalid, &fsmpb.FlushSegment{SegmentId: allocated.Id, Files: file("collections/1/segments/2/insert/1", fsmpb.FileKind_FILE_KIND_INSERT)}, "outside"},
		{"key with ..", codeInvalid, &fsmpb.FlushSegment{SegmentId: allocated.Id, Files: file(prefix+"insert/../../x", fsmpb.FileKind_FILE_KIND_INSERT)}, `".."`},
		{"key with empty component", codeInvalid, &fsmpb.FlushSegment{SegmentId: allocated.Id, Files: file(prefix+"insert//x", fsmpb.FileKind_FILE_KIND_INSERT)}, "empty path component"},
		{"key is the prefix", codeInvalid, &fsmpb.FlushSegment{SegmentId: allocated.Id, Files: file(prefix, fsmpb.FileKind_FILE_KIND_INSERT)}, "prefix itself"},
		{"kind in wrong directory", codeInvalid, &fsmpb.FlushSegment{SegmentId: allocated.Id, Files: file(prefix+"delta/1", fsmpb.FileKind_FILE_KIND_INSERT)}, `"insert/"`},
		{"index file in flush", codeInvalid, &fsmpb.FlushSegment{SegmentId: allocated.Id, Files: file(prefix+"index/1", fsmpb.FileKind_FILE_KIND_INDEX)}, "index builds"},
		{"file listed twice", codeInvalid, &fsmpb.FlushSegment{SegmentId: allocated.Id, Files: append(file(prefix+"insert/1", fsmpb.FileKind_FILE_KIND_INSERT), file(prefix+"insert/1", fsmpb.FileKind_FILE_KIND_INSERT)...)}, "twice"},
		{"negative rows", codeInvalid, &fsmpb.FlushSegment{SegmentId: allocated.Id, RowCount: -1}, "row count"},
		{"compact nothing", codeInvalid, &fsmpb.Compact{}, "at least one"},
		{"compact across collections", codeInvalid, &fsmpb.Compact{Inputs: []uint64{flushed.Id, otherSeg.Id}}, "mixes collections"},
		{"compact across partitions", codeInvalid, &fsmpb.Compact{Inputs: []uint64{flushed.Id}, Outputs: []*fsmpb.CompactOutput{{SegmentId: pseg.Segment.Id}}}, "mixes partitions"},
		{"compact dropped input", codePrecondition, &fsmpb.Compact{Inputs: []uint64{flushed.Id, droppedSeg.Id}}, "already dropped"},
		{"compact allocated input", codePrecondition, &fsmpb.Compact{Inputs: []uint64{allocated.Id}}, "must be flushed"},
		{"compact flushed output", codePrecondition, &fsmpb.Compact{Inputs: []uint64{flushed.Id}, Outputs: []*fsmpb.CompactOutput{{SegmentId: flushed2.Id}}}, "freshly allocated"},
		{"compact output is input", codeInvalid, &fsmpb.Compact{Inputs: []uint64{flushed.Id}, Outputs: []*fsmpb.CompactOutput{{SegmentId: flushed.Id}}}, "twice"},
		{"compact input twice", codeInvalid, &fsmpb.Compact{Inputs: []uint64{flushed.Id, flushed.Id}}, "twice"},
		{"compact output with bad file", codeInvalid, &fsmpb.Compact{Inputs: []uint64{flushed.Id}, Outputs: []*fsmpb.CompactOutput{{SegmentId: allocated.Id, Files: file(prefix+"../x", fsmpb.FileKind_FILE_KIND_INSERT)}}}, `".."`},
		{"drop unknown segment", codeNotFound, &fsmpb.DropSegments{SegmentIds: []uint64{flushed.Id, 424242}}, "424242"},
		{"drop no segments", codeInvalid, &fsmpb.DropSegments{}, "no segment"},
		{"build on allocated segment", codePrecondition, &fsmpb.AllocateIndexBuild{SegmentId: allocated.Id, Index: "vec", Lease: 60 * second}, "not flushed"},
		{"build of unknown index", codeNotFound, &fsmpb.AllocateIndexBuild{SegmentId: flushed.Id, Index: "nope", Lease: 60 * second}, "index"},
		{"add unknown build", codeNotFound, &fsmpb.AddIndexBuild{SegmentId: flushed.Id, BuildId: 77777}, "77777"},
		{"register node without id", codeInvalid, &fsmpb.RegisterNode{Node: &fsmpb.Node{}}, "node id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			msg := h.fails(tc.code, tc.cmd)
			require.Contains(t, msg, tc.want)
		})
	}
}

func manyProps(n int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[strings.Repeat("k", i+1)] = "v"
	}
	return m
}

func TestDropDatabaseNeedsNoCollections(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateDatabase{Name: "db1"}, nil)
	h.ok(&fsmpb.CreateCollection{Database: "db1", Name: "c"}, nil)
	msg := h.fails(codePrecondition, &fsmpb.DropDatabase{Name: "db1"})
	require.Contains(t, msg, "drop them first")
	h.ok(&fsmpb.DropCollection{Database: "db1", Name: "c"}, nil)
	h.ok(&fsmpb.DropDatabase{Name: "db1"}, nil)
	_, err := h.f.View().Database("db1")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestCollectionLimits(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < MaxDatabases-1; i++ {
		h.ok(&fsmpb.CreateDatabase{Name: "db" + formatUint(uint64(i))}, nil)
	}
	msg := h.fails(codeExhausted, &fsmpb.CreateDatabase{Name: "onemore"})
	require.Contains(t, msg, "limit")
}
