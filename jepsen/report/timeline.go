// Package report renders a fault-injection run for people: a timeline of every
// client operation and every fault, with the operations the checkers blame marked.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"sort"
	"strings"

	"github.com/snapkeep/snapkeep/jepsen/checker"
	"github.com/snapkeep/snapkeep/jepsen/history"
)

// Layout of the chart, in SVG pixels.
const (
	labelW = 130
	plotW  = 1400
	rowH   = 18
	barH   = 12
	axisH  = 24
)

var outcomeColor = map[history.Outcome]string{
	history.OK:      "#4caf50",
	history.Fail:    "#ef6c00",
	history.Unknown: "#9e9e9e",
}

// WriteTimeline writes a self-contained HTML page (inline SVG, no scripts or external
// files): one row per client and one per kind of fault; each operation a bar from its
// call to its return, coloured by outcome, with a tooltip (id, kind, input, output,
// node, error); each fault a bar in its row and a shaded span over the whole chart;
// operations named by a violation outlined in red and listed under the chart.
func WriteTimeline(w io.Writer, ops []history.Op, faults []history.Fault, violations []checker.Violation) error {
	bw := bufio.NewWriter(w)
	var end int64 = 1
	for _, op := range ops {
		end = max(end, op.Call, op.Return)
	}
	for _, f := range faults {
		end = max(end, f.Start, f.End)
	}
	x := func(t int64) float64 { return labelW + float64(t)/float64(end)*plotW }

	bad := map[int64][]int{} // op id → violations naming it
	for i, v := range violations {
		for _, id := range v.OpIDs {
			bad[id] = append(bad[id], i)
		}
	}

	clientSet := map[int]bool{}
	for _, op := range ops {
		clientSet[op.Client] = true
	}
	clients := make([]int, 0, len(clientSet))
	for c := range clientSet {
		clients = append(clients, c)
	}
	sort.Ints(clients)
	kindSet := map[string]bool{}
	for _, f := range faults {
		kindSet[f.Kind] = true
	}
	kinds := make([]string, 0, len(kindSet))
	for k := range kindSet {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)

	row := map[string]int{}
	for i, c := range clients {
		row[fmt.Sprint("c", c)] = i
	}
	for i, k := range kinds {
		row["f"+k] = len(clients) + i
	}
	rows := len(clients) + len(kinds)
	height := axisH + rows*rowH + 10
	y := func(r int) int { return axisH + r*rowH }

	fmt.Fprintf(bw, `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>snapkeep run timeline</title>
<style>
body { font-family: sans-serif; font-size: 13px; margin: 16px; }
svg text { font-size: 11px; font-family: monospace; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }
table { border-collapse: collapse; margin-top: 12px; }
td, th { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
</style></head><body>
<h1>Run timeline</h1>
<p>%d operations, %d faults, %d violations; %.3f s. Hover a bar for its details.</p>
<div class="legend"><span style="background:%s"></span>ok<span style="background:%s"></span>fail<span style="background:%s"></span>unknown<span style="background:#e53935;opacity:.25"></span>fault<span style="border:2px solid #d50000;width:8px;height:8px"></span>named by a violation</div>
`, len(ops), len(faults), len(violations), float64(end)/1e9,
		outcomeColor[history.OK], outcomeColor[history.Fail], outcomeColor[history.Unknown])

	fmt.Fprintf(bw, `<div style="overflow-x:auto"><svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">`+"\n", labelW+plotW+20, height)

	// Faults: shaded spans over the whole chart (under everything else).
	for _, f := range faults {
		fe := f.End
		if fe == 0 {
			fe = end
		}
		fmt.Fprintf(bw, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#e53935" opacity="0.08"/>`+"\n",
			x(f.Start), axisH, max(x(fe)-x(f.Start), 1), rows*rowH)
	}
	// Rows: labels and guides.
	for i, c := range clients {
		fmt.Fprintf(bw, `<text x="4" y="%d">client %d</text><line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#eee"/>`+"\n",
			y(i)+barH, c, labelW, labelW+plotW, y(i)+rowH-1, y(i)+rowH-1)
	}
	for i, k := range kinds {
		r := len(clients) + i
		fmt.Fprintf(bw, `<text x="4" y="%d" fill="#b71c1c">nemesis %s</text><line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#eee"/>`+"\n",
			y(r)+barH, html.EscapeString(k), labelW, labelW+plotW, y(r)+rowH-1, y(r)+rowH-1)
	}
	// Time axis: ten ticks.
	for i := 0; i <= 10; i++ {
		t := end * int64(i) / 10
		fmt.Fprintf(bw, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ccc"/><text x="%.1f" y="12">%.2fs</text>`+"\n",
			x(t), x(t), axisH-6, axisH+rows*rowH, x(t)-10, float64(t)/1e9)
	}
	// Operations.
	for _, op := range ops {
		ret := op.Return
		if ret == 0 {
			ret = end
		}
		color, ok := outcomeColor[op.Result]
		if !ok {
			color = outcomeColor[history.Unknown]
		}
		stroke := ""
		if len(bad[op.ID]) > 0 {
			stroke = ` stroke="#d50000" stroke-width="2"`
		}
		in, out := compactJSON(op.Input), compactJSON(op.Output)
		tip := fmt.Sprintf("op %d: %s → %s\nclient %d, node %s\n%.6fs … %.6fs\ninput %s\noutput %s",
			op.ID, op.Kind, op.Result, op.Client, op.Node, float64(op.Call)/1e9, float64(ret)/1e9, in, out)
		if op.Error != "" {
			tip += "\nerror " + op.Error
		}
		for _, i := range bad[op.ID] {
			tip += fmt.Sprintf("\nVIOLATION (%s): %s", violations[i].Checker, violations[i].Message)
		}
		fmt.Fprintf(bw, `<rect id="op-%d" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"%s><title>%s</title></rect>`+"\n",
			op.ID, x(op.Call), y(row[fmt.Sprint("c", op.Client)])+2, max(x(ret)-x(op.Call), 1), barH, color, stroke, html.EscapeString(tip))
	}
	// Faults in their nemesis rows.
	for _, f := range faults {
		fe := f.End
		healed := fmt.Sprintf("%.6fs", float64(f.End)/1e9)
		if fe == 0 {
			fe, healed = end, "not healed"
		}
		tip := fmt.Sprintf("fault %d: %s on %s\n%.6fs … %s", f.ID, f.Kind, f.Target, float64(f.Start)/1e9, healed)
		if f.Note != "" {
			tip += "\n" + f.Note
		}
		fmt.Fprintf(bw, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#e53935" opacity="0.6"><title>%s</title></rect>`+"\n",
			x(f.Start), y(row["f"+f.Kind])+2, max(x(fe)-x(f.Start), 1), barH, html.EscapeString(tip))
	}
	bw.WriteString("</svg></div>\n")

	// Violations.
	if len(violations) == 0 {
		bw.WriteString("<p>No violations.</p>\n")
	} else {
		bw.WriteString("<h2>Violations</h2><table><tr><th>checker</th><th>message</th><th>operations</th><th>artifact</th></tr>\n")
		for _, v := range violations {
			ids := make([]string, len(v.OpIDs))
			for i, id := range v.OpIDs {
				ids[i] = fmt.Sprint(id)
			}
			art := ""
			if v.Artifact != "" {
				a := html.EscapeString(v.Artifact)
				art = `<a href="` + a + `">` + a + `</a>`
			}
			fmt.Fprintf(bw, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
				html.EscapeString(v.Checker), html.EscapeString(v.Message), strings.Join(ids, ", "), art)
		}
		bw.WriteString("</table>\n")
	}
	bw.WriteString("</body></html>\n")
	return bw.Flush()
}

// compactJSON renders v as one line of JSON, without HTML escapes (the caller
// escapes the whole tooltip).
func compactJSON(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(b.String())
}
