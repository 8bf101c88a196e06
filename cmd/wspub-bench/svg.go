package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// chartSeries is one line of a chart panel.
type chartSeries struct {
	Name  string
	Color string
	Y     []float64 // one per chart x
	Fit   *trend    // drawn dashed over the window, if set
}

// chartPanel is a plot of series against the chart's x.
type chartPanel struct {
	Title  string // the y axis label
	Series []chartSeries
}

// chart is the soak's picture: panels stacked over one time axis, the warm-up shaded.
type chart struct {
	Title  string
	Lines  []string  // under the title: the figures of the verdict, then the setup
	Bad    bool      // the title is a failing verdict: red
	X      []float64 // seconds since the soak began
	Window [2]float64
	Panels []chartPanel
}

// Chart geometry, in SVG user units.
const (
	chartWidth   = 960
	chartLeft    = 80 // room for the y tick labels
	chartRight   = 24
	chartTop     = 40 // the title; each of chart.Lines adds chartLineH
	chartLineH   = 17
	chartPanelH  = 230
	chartGap     = 60 // between panels: the x tick labels and the next panel's legend
	chartBottom  = 50 // x tick labels and the x axis title
	chartPlotW   = chartWidth - chartLeft - chartRight
	chartFont    = `font-family="sans-serif"`
	chartMaxTick = 6
)

// writeSVG draws c as a self-contained SVG document.
func writeSVG(w io.Writer, c chart) error {
	var b strings.Builder
	top0 := chartTop + len(c.Lines)*chartLineH + 10
	height := top0 + len(c.Panels)*chartPanelH + (len(c.Panels)-1)*chartGap + chartBottom
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s font-size="12">`+"\n",
		chartWidth, height, chartWidth, height, chartFont)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	color := "#1a7f37"
	if c.Bad {
		color = "#cf222e"
	}
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="18" font-weight="bold" fill="%s">%s</text>`+"\n", chartLeft, color, esc(c.Title))
	for i, l := range c.Lines {
		fill, size := "#222", 13
		if i > 0 {
			fill, size = "#555", 12
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="%d" fill="%s">%s</text>`+"\n", chartLeft, chartTop+6+i*chartLineH, size, fill, esc(l))
	}

	x0, x1 := 0.0, 1.0 // the soak's time starts at 0
	if len(c.X) > 0 {
		x0, x1 = min(0, c.X[0]), c.X[len(c.X)-1]
	}
	if x1 <= x0 {
		x1 = x0 + 1
	}
	xStep := niceStep(x1-x0, chartMaxTick)
	px := func(x float64) float64 { return chartLeft + (x-x0)/(x1-x0)*chartPlotW }

	for i, p := range c.Panels {
		top := float64(top0 + i*(chartPanelH+chartGap))
		bottom := top + chartPanelH
		yMax := 0.0
		for _, s := range p.Series {
			for _, v := range s.Y {
				yMax = math.Max(yMax, v)
			}
		}
		yMax *= 1.08 // headroom: a line at the top is not lost in the frame
		yStep := niceStep(yMax, chartMaxTick-1)
		yTop := math.Max(yStep, math.Ceil(yMax/yStep)*yStep)
		py := func(y float64) float64 { return bottom - y/yTop*chartPanelH }

		// The warm-up, shaded: the trend is fitted to what follows.
		if wx := px(c.Window[0]); wx > chartLeft {
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="#f0f0f0"/>`+"\n", chartLeft, top, wx-chartLeft, chartPanelH)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#888" text-anchor="middle">warm-up (not judged)</text>`+"\n", (chartLeft+wx)/2, bottom-8)
		}
		// Grid and y ticks.
		for y := 0.0; y <= yTop*(1+1e-9); y += yStep {
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", chartLeft, chartLeft+chartPlotW, py(y), py(y))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#444">%s</text>`+"\n", chartLeft-6, py(y)+4, tickLabel(y, yStep))
		}
		// x ticks.
		for x := math.Ceil(x0/xStep) * xStep; x <= x1*(1+1e-9); x += xStep {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", px(x), px(x), top, bottom)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">%s</text>`+"\n", px(x), bottom+16, timeLabel(x, xStep))
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", chartLeft, top, chartPlotW, chartPanelH)
		fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle" fill="#222">%s</text>`+"\n",
			top+chartPanelH/2, esc(p.Title))

		for _, s := range p.Series {
			var pts strings.Builder
			for j, v := range s.Y {
				if j < len(c.X) && !math.IsNaN(v) {
					fmt.Fprintf(&pts, "%.1f,%.1f ", px(c.X[j]), py(v))
				}
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"/>`+"\n", strings.TrimSpace(pts.String()), s.Color)
			if f := s.Fit; f != nil && f.Samples >= 2 {
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#222" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n",
					px(c.Window[0]), py(f.Start), px(c.Window[1]), py(f.End))
			}
		}
		// Legend, top left inside the panel.
		lx, ly := chartLeft+10.0, top+18
		for _, s := range p.Series {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", lx, lx+18, ly-4, ly-4, s.Color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#222">%s</text>`+"\n", lx+24, ly, esc(s.Name))
			ly += 16
		}
		if hasFit(p) {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#222" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n", lx, lx+18, ly-4, ly-4)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#222">least-squares trend after the warm-up</text>`+"\n", lx+24, ly)
		}
	}
	last := float64(top0 + len(c.Panels)*chartPanelH + (len(c.Panels)-1)*chartGap)
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="middle" fill="#222">time since the soak began</text>`+"\n", chartLeft+chartPlotW/2, last+38)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func hasFit(p chartPanel) bool {
	for _, s := range p.Series {
		if s.Fit != nil {
			return true
		}
	}
	return false
}

func esc(s string) string { return html.EscapeString(s) }

// niceStep is a round step (1, 2 or 5 times a power of ten) that cuts span into at most
// about n intervals.
func niceStep(span float64, n int) float64 {
	if span <= 0 || math.IsNaN(span) || math.IsInf(span, 0) {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// tickLabel prints y with as many decimals as the step needs.
func tickLabel(y, step float64) string {
	decimals := 0
	if step < 1 {
		decimals = int(math.Ceil(-math.Log10(step)))
	}
	return strconv.FormatFloat(y, 'f', decimals, 64)
}

// timeLabel prints seconds as "45s", "2m" or "1m30s".
func timeLabel(x, step float64) string {
	if step < 60 && x < 120 {
		return tickLabel(x, step) + "s"
	}
	m, s := math.Floor(x/60), math.Mod(x, 60)
	if s < 0.5 {
		return strconv.FormatFloat(m, 'f', 0, 64) + "m"
	}
	return strconv.FormatFloat(m, 'f', 0, 64) + "m" + strconv.FormatFloat(s, 'f', 0, 64) + "s"
}
