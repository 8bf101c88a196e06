package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// report is everything the Markdown output holds.
type report struct {
	machine   machine
	command   string
	runs      int
	duration  string // how long the whole comparison took
	scenarios []scenario
	servers   []serverSpec
	results   results
}

// render writes the report as Markdown: a heading, the conditions, the table and how to
// read it.
func (r *report) render(w io.Writer) {
	m := r.machine
	fmt.Fprintf(w, "### Side by side, %s\n\n", m.date)
	fmt.Fprintf(w, "- command: `%s` (%d run(s) of each scenario per server; %s in all)\n", r.command, r.runs, r.duration)
	fmt.Fprintf(w, "- machine: %d CPUs (%s), %s, Linux %s; load average %s at the start\n", m.nproc, m.cpu, m.goVersion, m.kernel, m.loadAvg)
	if m.commit != "" {
		fmt.Fprintf(w, "- wspub: commit %s\n", m.commit)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "| scenario |")
	for _, s := range r.servers {
		fmt.Fprintf(w, " %s |", s.label)
	}
	fmt.Fprint(w, "\n|---|")
	for range r.servers {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, sc := range r.scenarios {
		fmt.Fprintf(w, "| %s |", sc.title())
		for _, s := range r.servers {
			fmt.Fprintf(w, " %s |", cellText(sc, r.results[sc.id][s.name]))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	if r.runs > 1 {
		fmt.Fprintln(w, "Each figure is the median of the runs; lost and disconnected are the most of any run.")
	}
	fmt.Fprintln(w, "Server CPU is user + system time of the server process from the trigger to the last delivery (10 ms ticks), per delivery.")
	fmt.Fprintln(w, "Every server is a fresh process for every measurement; the servers take turns within each scenario and run.")
}

// cellText is one cell: the scenario's figures for one server over its runs.
func cellText(sc scenario, ms []measurement) string {
	var ok []*loadResult
	var firstErr error
	for _, m := range ms {
		if m.err != nil {
			firstErr = m.err
			continue
		}
		ok = append(ok, m.res)
	}
	if len(ok) == 0 {
		if firstErr == nil {
			return "not run"
		}
		return "failed: " + oneLine(firstErr.Error(), 80)
	}
	var parts []string
	switch sc.kind {
	case idle:
		parts = append(parts,
			kilobytes(median(ok, func(r *loadResult) float64 { return deref(r.BytesPerConn) })),
			fmt.Sprintf("%.2f goroutines", median(ok, func(r *loadResult) float64 { return deref(r.GoroutinesPerConn) })))
	case steady:
		parts = append(parts,
			"p99 "+millis(median(ok, func(r *loadResult) float64 { return float64(r.LatencyUS.P99) })),
			micros(median(ok, func(r *loadResult) float64 { return r.ServerCPUUSPerDelivery })))
	default:
		parts = append(parts,
			rate(median(ok, func(r *loadResult) float64 { return r.DeliveriesPerS })),
			"p99 "+millis(median(ok, func(r *loadResult) float64 { return float64(r.LatencyUS.P99) })),
			micros(median(ok, func(r *loadResult) float64 { return r.ServerCPUUSPerDelivery })))
	}
	if sc.kind != idle {
		var lost, expected int64
		var disconnected, timedOut int
		for _, r := range ok {
			if r.Lost > lost {
				lost, expected = r.Lost, r.Expected
			}
			disconnected = max(disconnected, r.Disconnected)
			if r.TimedOut {
				timedOut++
			}
		}
		if lost > 0 {
			parts = append(parts, fmt.Sprintf("**lost %s**", percent(lost, expected)))
		} else {
			parts = append(parts, "0 lost")
		}
		if disconnected > 0 {
			parts = append(parts, fmt.Sprintf("**%s of %s clients disconnected**", thousands(disconnected), thousands(sc.conns)))
		}
		if timedOut > 0 {
			parts = append(parts, fmt.Sprintf("timed out %d×", timedOut))
		}
	}
	if len(ok) < len(ms) {
		parts = append(parts, fmt.Sprintf("failed %d of %d runs: %s", len(ms)-len(ok), len(ms), oneLine(firstErr.Error(), 60)))
	}
	return strings.Join(parts, ", ")
}

// median is the median of f over rs (the mean of the middle two of an even count).
func median(rs []*loadResult, f func(*loadResult) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func rate(perS float64) string {
	switch {
	case perS >= 1e6:
		return fmt.Sprintf("%.2f M/s", perS/1e6)
	case perS >= 1e3:
		return fmt.Sprintf("%.0f k/s", perS/1e3)
	}
	return fmt.Sprintf("%.0f /s", perS)
}

func millis(us float64) string {
	if us >= 100_000 {
		return fmt.Sprintf("%.0f ms", us/1e3)
	}
	return fmt.Sprintf("%.1f ms", us/1e3)
}

func micros(us float64) string {
	if us == 0 {
		return "CPU n/a" // less than a 10 ms tick, or not measured
	}
	return fmt.Sprintf("%.2f µs CPU", us)
}

func kilobytes(b float64) string { return fmt.Sprintf("%.1f KB", b/1000) }

func percent(n, of int64) string {
	if of == 0 {
		return thousands(int(n))
	}
	return fmt.Sprintf("%s (%.2g %%)", thousands(int(n)), 100*float64(n)/float64(of))
}

// oneLine cuts s to its first line and at most n bytes, and escapes the table's '|'.
func oneLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}
