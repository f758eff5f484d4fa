package report

import (
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}

// SVG draws the chart: groups along x, one bar per series, the value above each bar,
// a linear or log10 y axis.
func (c Chart) SVG() string {
	const (
		width, height = 760, 420
		left, right   = 80, 20
		top, bottom   = 50, 90
	)
	plotW, plotH := float64(width-left-right), float64(height-top-bottom)
	maxV, minV := 0.0, math.Inf(1)
	for _, s := range c.Series {
		for _, v := range s.Values {
			if v > maxV {
				maxV = v
			}
			if v > 0 && v < minV {
				minV = v
			}
		}
	}
	if maxV <= 0 {
		maxV = 1
	}
	// y maps a value to a pixel row; ticks are the axis labels.
	var y func(v float64) float64
	var ticks []float64
	if c.LogY {
		lo := math.Floor(math.Log10(minV))
		hi := math.Ceil(math.Log10(maxV))
		if hi <= lo {
			hi = lo + 1
		}
		y = func(v float64) float64 {
			if v <= 0 {
				return top + plotH
			}
			return top + plotH - (math.Log10(v)-lo)/(hi-lo)*plotH
		}
		for e := lo; e <= hi; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
	} else {
		step := niceStep(maxV / 5)
		hi := math.Ceil(maxV/step) * step
		y = func(v float64) float64 { return top + plotH - v/hi*plotH }
		for t := 0.0; t <= hi+step/2; t += step {
			ticks = append(ticks, t)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(c.Title))
	for _, t := range ticks {
		ty := y(t)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, width-right, ty, ty)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, ty+4, formatValue(t))
	}
	fmt.Fprintf(&b, `<text transform="translate(18 %.0f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", top+plotH/2, html.EscapeString(c.YLabel))
	groupW := plotW / float64(max(len(c.Labels), 1))
	barW := groupW * 0.8 / float64(max(len(c.Series), 1))
	for g, label := range c.Labels {
		gx := float64(left) + float64(g)*groupW
		for i, s := range c.Series {
			if g >= len(s.Values) {
				continue
			}
			v := s.Values[g]
			x := gx + groupW*0.1 + float64(i)*barW
			by := y(v)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				x, by, barW-2, top+plotH-by, palette[i%len(palette)], html.EscapeString(s.Name), html.EscapeString(label), formatValue(v))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", x+barW/2-1, by-3, formatValue(v))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", gx+groupW/2, top+plotH+18, html.EscapeString(label))
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, width-right, top+plotH, top+plotH)
	for i, s := range c.Series {
		lx := left + i*200
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, height-30, palette[i%len(palette)], lx+16, height-20, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// WriteSVG writes the chart to path.
func (c Chart) WriteSVG(path string) error { return os.WriteFile(path, []byte(c.SVG()), 0o644) }

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// formatValue prints a value compactly: 1.2k, 3.4M, 0.52.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trim(fmt.Sprintf("%.1f", v/1e9)) + "G"
	case a >= 1e6:
		return trim(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case a >= 1e4:
		return trim(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return trim(fmt.Sprintf("%.2f", v))
	case a == 0:
		return "0"
	}
	return fmt.Sprintf("%.2g", v)
}

func trim(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
