package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// writeJSON prints m as indented protojson with the .proto field names and every
// field present. protojson varies its whitespace on purpose; re-indenting with
// encoding/json makes the output byte-stable for scripts and tests.
func writeJSON(w io.Writer, m proto.Message) error {
	raw, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s as JSON: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return writeIndented(w, raw)
}

// writePlainJSON prints v (not a protobuf message) as indented JSON.
func writePlainJSON(w io.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	return writeIndented(w, raw)
}

func writeIndented(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("indent JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// table writes aligned columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(toAny(header)...)
	}
	return t
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (t *table) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprint(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// enumName spells an enum value the short way: SEGMENT_STATE_FLUSHED → "flushed".
func enumName(e protoreflect.Enum) string {
	d := e.Descriptor()
	v := d.Values().ByNumber(e.Number())
	if v == nil {
		return strconv.Itoa(int(e.Number()))
	}
	// The values share the enum's name as a prefix: SegmentState → SEGMENT_STATE_.
	name := string(v.Name())
	prefix := enumPrefix(string(d.Name()))
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

// enumPrefix turns an enum type name into its values' prefix: NodeRole → "NODE_ROLE_".
func enumPrefix(typeName string) string {
	var b strings.Builder
	for i, r := range typeName {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String()) + "_"
}

// timestamp formats Unix milliseconds as UTC RFC 3339, or "-" for unset.
func timestamp(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05Z")
}

// humanBytes formats a byte count with binary units: 1536 → "1.5 KiB".
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// keyValueList formats a map as "k1=v1, k2=v2" in key order, or "-".
func keyValueList(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func idList(ids []uint64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(parts, ",")
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// printDatabases writes a table of databases.
func printDatabases(w io.Writer, dbs []*snapkeepv1.Database) error {
	t := newTable(w, "NAME", "ID", "CREATED", "PROPERTIES")
	for _, db := range dbs {
		t.row(db.GetName(), db.GetId(), timestamp(db.GetCreatedAtUnixMs()), keyValueList(db.GetProperties()))
	}
	return t.flush()
}

// printCollections writes a table of collections.
func printCollections(w io.Writer, colls []*snapkeepv1.Collection) error {
	t := newTable(w, "NAME", "ID", "STATE", "PARTITIONS", "INDEXES", "CREATED", "DESCRIPTION")
	for _, c := range colls {
		t.row(c.GetName(), c.GetId(), enumName(c.GetState()), len(c.GetPartitions()), len(c.GetIndexes()),
			timestamp(c.GetCreatedAtUnixMs()), orDash(truncate(c.GetDescription(), 40)))
	}
	return t.flush()
}

// printCollection writes one collection in detail, with its segment summary when
// sum is not nil.
func printCollection(w io.Writer, c *snapkeepv1.Collection, sum *snapkeepv1.SegmentSummary) error {
	t := newTable(w)
	t.row("Collection:", fmt.Sprintf("%s (id %d)", c.GetName(), c.GetId()))
	t.row("Database:", c.GetDatabase())
	t.row("State:", enumName(c.GetState()))
	t.row("Key layout:", enumName(c.GetLayout()))
	if c.GetVerifyOnFlush() {
		t.row("Flushes:", "verified against a listing of the bucket")
	}
	t.row("Description:", orDash(c.GetDescription()))
	t.row("Created:", timestamp(c.GetCreatedAtUnixMs()))
	if c.GetDroppedAtUnixMs() != 0 {
		t.row("Dropped:", timestamp(c.GetDroppedAtUnixMs()))
	}
	t.row("Schema:", humanBytes(uint64(len(c.GetSchema()))))
	t.row("Properties:", keyValueList(c.GetProperties()))
	if sum != nil {
		t.row("Segments:", fmt.Sprintf("%d allocated, %d flushed (%d rows, %d files, %s), %d dropped",
			sum.GetAllocated(), sum.GetFlushed(), sum.GetFlushedRows(), sum.GetFlushedFiles(),
			humanBytes(sum.GetFlushedBytes()), sum.GetDropped()))
	}
	if err := t.flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	t = newTable(w, "PARTITION", "ID", "CREATED")
	for _, p := range c.GetPartitions() {
		t.row(p.GetName(), p.GetId(), timestamp(p.GetCreatedAtUnixMs()))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(c.GetIndexes()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t = newTable(w, "INDEX", "ID", "FIELD", "PARAMS")
	for _, idx := range c.GetIndexes() {
		t.row(idx.GetName(), idx.GetId(), idx.GetFieldId(), keyValueList(idx.GetParams()))
	}
	return t.flush()
}

// segmentState is a segment's state, with the drop reason for a dropped one.
func segmentState(s *snapkeepv1.Segment) string {
	state := enumName(s.GetState())
	if s.GetState() == snapkeepv1.SegmentState_SEGMENT_STATE_DROPPED && s.GetDropReason() != snapkeepv1.DropReason_DROP_REASON_UNSPECIFIED {
		state += " (" + strings.ReplaceAll(enumName(s.GetDropReason()), "_", " ") + ")"
	}
	return state
}

// lineage describes where a segment came from and went: "from 3,4", "to 9".
func lineage(s *snapkeepv1.Segment) string {
	var parts []string
	if from := s.GetCompactedFrom(); len(from) > 0 {
		parts = append(parts, "from "+idList(from))
	}
	if to := s.GetCompactedTo(); len(to) > 0 {
		parts = append(parts, "to "+idList(to))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

func fileBytes(files []*snapkeepv1.File) uint64 {
	var n uint64
	for _, f := range files {
		n += f.GetSize()
	}
	return n
}

// printSegments writes a table of segments; partitions maps partition ids to names
// (unknown ids print as numbers). withFiles adds file counts and sizes.
func printSegments(w io.Writer, segs []*snapkeepv1.Segment, partitions map[uint64]string, withFiles bool) error {
	header := []string{"ID", "PARTITION", "STATE", "ROWS"}
	if withFiles {
		header = append(header, "FILES", "SIZE")
	}
	t := newTable(w, append(header, "LINEAGE")...)
	for _, s := range segs {
		part, ok := partitions[s.GetPartitionId()]
		if !ok {
			part = strconv.FormatUint(s.GetPartitionId(), 10)
		}
		cells := []any{s.GetId(), part, segmentState(s), s.GetRowCount()}
		if withFiles {
			cells = append(cells, len(s.GetFiles()), humanBytes(fileBytes(s.GetFiles())))
		}
		t.row(append(cells, lineage(s))...)
	}
	return t.flush()
}

// printFiles writes a table of files.
func printFiles(w io.Writer, files []*snapkeepv1.File) error {
	t := newTable(w, "KIND", "FIELD", "SIZE", "CRC32C", "KEY")
	for _, f := range files {
		t.row(enumName(f.GetKind()), f.GetFieldId(), f.GetSize(), fmt.Sprintf("%08x", f.GetCrc32C()), f.GetKey())
	}
	return t.flush()
}

// printSegment writes one segment in detail, with its files and index builds.
func printSegment(w io.Writer, s *snapkeepv1.Segment) error {
	t := newTable(w)
	t.row("Segment:", s.GetId())
	t.row("Collection:", s.GetCollectionId())
	t.row("Partition:", s.GetPartitionId())
	t.row("State:", segmentState(s))
	t.row("Rows:", s.GetRowCount())
	t.row("Prefix:", s.GetPrefix())
	t.row("Files:", fmt.Sprintf("%d (%s)", len(s.GetFiles()), humanBytes(fileBytes(s.GetFiles()))))
	t.row("Lineage:", lineage(s))
	t.row("Allocated:", timestamp(s.GetAllocatedAtUnixMs()))
	if s.GetState() == snapkeepv1.SegmentState_SEGMENT_STATE_ALLOCATED {
		t.row("Lease until:", timestamp(s.GetLeaseDeadlineUnixMs()))
	}
	t.row("Flushed:", timestamp(s.GetFlushedAtUnixMs()))
	if s.GetDroppedAtUnixMs() != 0 {
		t.row("Dropped:", timestamp(s.GetDroppedAtUnixMs()))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(s.GetFiles()) > 0 {
		fmt.Fprintln(w)
		if err := printFiles(w, s.GetFiles()); err != nil {
			return err
		}
	}
	for _, b := range s.GetIndexBuilds() {
		fmt.Fprintf(w, "\nIndex build %d of index %d: %s, %d files (%s) under %s\n",
			b.GetBuildId(), b.GetIndexId(), enumName(b.GetState()), len(b.GetFiles()), humanBytes(fileBytes(b.GetFiles())), b.GetPrefix())
		if len(b.GetFiles()) > 0 {
			if err := printFiles(w, b.GetFiles()); err != nil {
				return err
			}
		}
	}
	return nil
}

// printClusterStatus writes the nodes' table and where the cluster stores objects.
func printClusterStatus(w io.Writer, st *snapkeepv1.ClusterStatusResponse) error {
	fmt.Fprintf(w, "Leader: %s\n\n", orDash(st.GetLeaderId()))
	t := newTable(w, "NODE", "ROLE", "VOTER", "TERM", "COMMIT", "APPLIED", "LAST CONTACT", "GOSSIP", "GRPC ADDR")
	var problems []string
	for _, n := range st.GetNodes() {
		contact := "-"
		if n.GetRole() != snapkeepv1.NodeRole_NODE_ROLE_LEADER && n.GetRole() != snapkeepv1.NodeRole_NODE_ROLE_UNREACHABLE {
			contact = (time.Duration(n.GetLastContactMs()) * time.Millisecond).String()
		}
		t.row(n.GetId(), enumName(n.GetRole()), yesNo(n.GetVoter()), n.GetTerm(), n.GetCommitIndex(), n.GetAppliedIndex(),
			contact, memberStatusName(n.GetGossipStatus()), orDash(n.GetGrpcAddr()))
		if n.GetError() != "" {
			problems = append(problems, fmt.Sprintf("%s: %s", n.GetId(), n.GetError()))
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(w, p)
	}
	if s := st.GetStorage(); s != nil {
		fmt.Fprintf(w, "\nStorage: s3://%s/%s at %s (region %s)\n", s.GetBucket(), s.GetRoot(), orDash(s.GetEndpoint()), orDash(s.GetRegion()))
	}
	return nil
}
