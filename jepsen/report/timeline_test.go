package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/snapkeep/snapkeep/jepsen/checker"
	"github.com/snapkeep/snapkeep/jepsen/history"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWriteTimeline(t *testing.T) {
	ops := []history.Op{
		{ID: 1, Client: 0, Kind: history.SnapshotCreate, Input: history.Input{Collection: "c", Name: "<a&b>"}, Call: 0, Return: 5e8,
			Node: "n1", Result: history.OK, Output: history.Output{SnapshotID: 7, State: "COMMITTED"}},
		{ID: 3, Client: 1, Kind: history.SnapshotDescribe, Input: history.Input{Collection: "c", Name: "<a&b>"}, Call: 6e8, Return: 7e8,
			Node: "n2", Result: history.OK, Output: history.Output{}},
		{ID: 4, Client: 2, Kind: history.SegmentFlush, Input: history.Input{SegmentID: 9}, Call: 1e8, Return: 0,
			Node: "n3", Result: history.Unknown, Error: "deadline exceeded"},
		{ID: 5, Client: 1, Kind: history.SnapshotDrop, Call: 8e8, Return: 9e8, Result: history.Fail, Error: `"quoted"`},
	}
	faults := []history.Fault{
		{ID: 2, Kind: "partition-leader", Target: "n1 | n2,n3", Start: 2e8, End: 6e8},
		{ID: 6, Kind: "kill", Target: "n3", Start: 5e8},
	}
	vs := []checker.Violation{{Checker: "linearizable-registry", Message: "stale <read>", OpIDs: []int64{3}, Artifact: "linearizable-registry-c_a.html"}}
	var buf bytes.Buffer
	require.NoError(t, WriteTimeline(&buf, ops, faults, vs))
	page := buf.String()

	// The SVG is well-formed XML on its own.
	start, stop := strings.Index(page, "<svg"), strings.Index(page, "</svg>")
	require.Positive(t, start)
	svg := page[start : stop+len("</svg>")]
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
	}
	require.Equal(t, 3, strings.Count(svg, ">client "), "one row per client")
	require.Equal(t, 2, strings.Count(svg, ">nemesis "), "one row per kind of fault")
	require.Equal(t, 4, strings.Count(svg, `<rect id="op-`))
	require.Contains(t, svg, `<rect id="op-3"`)
	require.Regexp(t, `<rect id="op-3"[^>]*stroke="#d50000"`, svg, "the violating op is outlined")
	require.NotRegexp(t, `<rect id="op-1"[^>]*stroke=`, svg)
	require.Contains(t, svg, "VIOLATION (linearizable-registry): stale &lt;read&gt;")
	require.Contains(t, svg, "&lt;a&amp;b&gt;", "inputs are escaped")
	require.Contains(t, svg, "not healed")
	require.Contains(t, page, `<a href="linearizable-registry-c_a.html">`)
	require.NotContains(t, page, "<script")

	buf.Reset()
	require.NoError(t, WriteTimeline(&buf, nil, nil, nil))
	require.Contains(t, buf.String(), "No violations.")
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteTimelineReportsWriteErrors(t *testing.T) {
	ops := make([]history.Op, 500)
	for i := range ops {
		ops[i] = history.Op{ID: int64(i + 1), Kind: history.SegmentGet, Call: int64(i), Return: int64(i + 1), Result: history.OK}
	}
	require.ErrorContains(t, WriteTimeline(failWriter{}, ops, nil, nil), "disk full")
}
