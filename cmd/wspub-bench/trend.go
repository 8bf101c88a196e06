package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A soak's verdict on a series (heap after GC, goroutines) is the least-squares line
// through its samples after the warm-up. The series rises when the line climbs more than
// a limit per 10 minutes and its slope is more than trendSigmas standard errors above
// zero: noise alone (a sample taken during a ping round, the connections that happen to
// be leaving) does not fail a soak, and a steady climb fails it however small its noise.
const (
	trendSigmas = 3
	trendPer    = 600.0 // seconds: slopes and limits are per 10 minutes
)

// linearFit is the least-squares line y = Intercept + Slope·x through points.
type linearFit struct {
	N         int
	Slope     float64 // y per x
	Intercept float64
	SlopeErr  float64 // the slope's standard error; +Inf with fewer than 3 points
	X0, X1    float64 // the range of x
}

func fitLine(x, y []float64) linearFit {
	f := linearFit{N: len(x), SlopeErr: math.Inf(1)}
	if len(x) == 0 || len(x) != len(y) {
		f.N = 0
		return f
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	n := float64(len(x))
	mx, my = mx/n, my/n
	var sxx, sxy float64
	for i := range x {
		dx := x[i] - mx
		sxx += dx * dx
		sxy += dx * (y[i] - my)
	}
	f.X0, f.X1 = x[0], x[len(x)-1]
	if sxx == 0 {
		f.Intercept = my
		return f
	}
	f.Slope = sxy / sxx
	f.Intercept = my - f.Slope*mx
	if len(x) >= 3 {
		var ssr float64
		for i := range x {
			r := y[i] - f.at(x[i])
			ssr += r * r
		}
		f.SlopeErr = math.Sqrt(ssr / (n - 2) / sxx)
	}
	return f
}

func (f linearFit) at(x float64) float64 { return f.Intercept + f.Slope*x }

// growthLimit is how much a series may grow per 10 minutes: an amount, or a percentage of
// its fitted value at the start of the window.
type growthLimit struct {
	Amount  float64
	Percent float64 // used instead of Amount when positive
	bytes   bool    // the series is bytes: String prints units
}

// parseGrowthLimit parses "1MiB", "512KiB", "2GiB", "1048576" (with bytes) or "10"
// (without), or a percentage such as "2%".
func parseGrowthLimit(s string, bytes bool) (growthLimit, error) {
	l := growthLimit{bytes: bytes}
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || math.IsInf(v, 0) {
			return l, fmt.Errorf("bad percentage %q", s)
		}
		l.Percent = v
		return l, nil
	}
	mult := 1.0
	if bytes {
		for _, u := range []struct {
			suffix string
			mult   float64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
			if v, ok := strings.CutSuffix(t, u.suffix); ok {
				t, mult = strings.TrimSpace(v), u.mult
				break
			}
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		if bytes {
			return l, fmt.Errorf("bad amount %q: want e.g. 1MiB, 512KiB or 2%%", s)
		}
		return l, fmt.Errorf("bad amount %q: want e.g. 10 or 2%%", s)
	}
	l.Amount = v * mult
	return l, nil
}

// of is the limit for a series whose window starts at base.
func (l growthLimit) of(base float64) float64 {
	if l.Percent > 0 {
		return math.Abs(base) * l.Percent / 100
	}
	return l.Amount
}

func (l growthLimit) String() string {
	switch {
	case l.Percent > 0:
		return strconv.FormatFloat(l.Percent, 'g', -1, 64) + "%"
	case l.bytes:
		return fmtBytes(l.Amount)
	default:
		return strconv.FormatFloat(l.Amount, 'g', -1, 64)
	}
}

// trend is the verdict on one series, as the JSON reports it. Slopes and the limit are
// per 10 minutes, in the series' unit (bytes, goroutines, connections).
type trend struct {
	Samples     int     `json:"samples"`       // in the window
	First       float64 `json:"first"`         // the window's first sample
	Last        float64 `json:"last"`          // and its last
	Start       float64 `json:"start"`         // the fitted line at the window's start
	End         float64 `json:"end"`           // and at its end
	SlopePer10m float64 `json:"slope_per_10m"` // the fitted line's slope
	ErrPer10m   float64 `json:"err_per_10m"`   // its standard error (-1 when it has none: fewer than 3 samples)
	LimitPer10m float64 `json:"limit_per_10m"` // -1: not judged
	Rising      bool    `json:"rising"`
}

// judgeTrend fits a line through (x seconds, y) and decides whether y rises by more than
// limit per 10 minutes, beyond noise. A nil limit only describes the series.
func judgeTrend(x, y []float64, limit *growthLimit) trend {
	f := fitLine(x, y)
	tr := trend{Samples: f.N, SlopePer10m: f.Slope * trendPer, ErrPer10m: -1, LimitPer10m: -1}
	if f.N == 0 {
		return tr
	}
	tr.First, tr.Last = y[0], y[len(y)-1]
	tr.Start, tr.End = f.at(f.X0), f.at(f.X1)
	if !math.IsInf(f.SlopeErr, 0) {
		tr.ErrPer10m = f.SlopeErr * trendPer
	}
	if limit != nil {
		tr.LimitPer10m = limit.of(tr.Start)
		tr.Rising = f.N >= 3 && tr.SlopePer10m > tr.LimitPer10m && f.Slope > trendSigmas*f.SlopeErr
	}
	return tr
}

// fmtBytes prints a byte count in KiB, MiB or GiB.
func fmtBytes(b float64) string {
	a := math.Abs(b)
	switch {
	case a >= 1<<30:
		return strconv.FormatFloat(b/(1<<30), 'f', 2, 64) + " GiB"
	case a >= 1<<20:
		return strconv.FormatFloat(b/(1<<20), 'f', 2, 64) + " MiB"
	case a >= 1<<10:
		return strconv.FormatFloat(b/(1<<10), 'f', 1, 64) + " KiB"
	default:
		return strconv.FormatFloat(b, 'f', 0, 64) + " B"
	}
}
