package jepsen

import (
	"fmt"
	"html"
	"sort"
	"strings"

	"github.com/snapkeep/snapkeep/jepsen/history"
)

// Timeline renders a self-contained HTML page: one row per client and one per fault
// kind, operations as bars coloured by outcome (hover for details), faults as shaded
// spans across the client rows.
func Timeline(ops []history.Op, faults []history.Fault, clients int, title string) string {
	var end int64 = 1
	for _, op := range ops {
		end = max(end, op.Return)
	}
	for _, f := range faults {
		end = max(end, f.End, f.Start)
	}
	for _, op := range ops {
		clients = max(clients, op.Client+1)
	}
	var kinds []string
	seen := map[string]bool{}
	for _, f := range faults {
		if !seen[f.Kind] {
			seen[f.Kind] = true
			kinds = append(kinds, f.Kind)
		}
	}
	sort.Strings(kinds)
	const (
		left  = 140.0
		width = 1600.0
		rowH  = 22.0
		top   = 30.0
	)
	x := func(t int64) float64 { return left + float64(t)/float64(end)*width }
	rows := clients + len(kinds)
	height := top + float64(rows)*rowH + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<!DOCTYPE html><html><head><meta charset="utf-8"><title>%s</title>
<style>body{font-family:sans-serif;font-size:12px} rect.ok{fill:#3a3} rect.fail{fill:#d33} rect.unknown{fill:#e90} rect.fault{fill:#88f;opacity:.15} rect.nem{fill:#66c}</style>
</head><body><h3>%s</h3><p>%d operations, %d faults. Green: ok, red: fail, orange: unknown; blue spans: faults. Hover a bar for details.</p>
<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f">
`, html.EscapeString(title), html.EscapeString(title), len(ops), len(faults), left+width+20, height)
	// time axis, every 10% of the run
	for i := 0; i <= 10; i++ {
		t := end * int64(i) / 10
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ddd"/><text x="%.1f" y="%.0f">%.1fs</text>`+"\n",
			x(t), top-5, x(t), height-20, x(t)-10, top-10, float64(t)/1e9)
	}
	for _, f := range faults {
		fe := f.End
		if fe == 0 {
			fe = end
		}
		fmt.Fprintf(&b, `<rect class="fault" x="%.1f" y="%.0f" width="%.1f" height="%.0f"><title>%s</title></rect>`+"\n",
			x(f.Start), top, max(x(fe)-x(f.Start), 1), float64(clients)*rowH, html.EscapeString(f.Kind+" "+f.Target))
	}
	for i := 0; i < clients; i++ {
		fmt.Fprintf(&b, `<text x="5" y="%.0f">client %d</text>`+"\n", top+float64(i)*rowH+15, i)
	}
	for i, k := range kinds {
		fmt.Fprintf(&b, `<text x="5" y="%.0f">nemesis %s</text>`+"\n", top+float64(clients+i)*rowH+15, html.EscapeString(k))
	}
	for _, op := range ops {
		y := top + float64(op.Client)*rowH + 3
		tip := fmt.Sprintf("#%d %s on %s: %s\nin %s\nout %s\n%s\n%.3fs-%.3fs", op.ID, op.Kind, op.Node, op.Result,
			compact(op.Input), compact(op.Output), op.Error, secs(op.Call), secs(op.Return))
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.0f" width="%.1f" height="%.0f"><title>%s</title></rect>`+"\n",
			op.Result, x(op.Call), y, max(x(op.Return)-x(op.Call), 1), rowH-6, html.EscapeString(tip))
	}
	for _, f := range faults {
		row := clients
		for i, k := range kinds {
			if k == f.Kind {
				row += i
			}
		}
		fe := f.End
		if fe == 0 {
			fe = end
		}
		fmt.Fprintf(&b, `<rect class="nem" x="%.1f" y="%.0f" width="%.1f" height="%.0f"><title>%s</title></rect>`+"\n",
			x(f.Start), top+float64(row)*rowH+3, max(x(fe)-x(f.Start), 1), rowH-6,
			html.EscapeString(fmt.Sprintf("%s %s\n%s\n%.3fs-%.3fs", f.Kind, f.Target, f.Note, secs(f.Start), secs(fe))))
	}
	b.WriteString("</svg></body></html>\n")
	return b.String()
}

func compact(v any) string {
	s := fmt.Sprintf("%+v", v)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
