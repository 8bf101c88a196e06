package main

import (
	"fmt"
	"strconv"
	"time"
)

// kind is what a scenario measures, and so which figures its row shows.
type kind int

const (
	burst  kind = iota // deliveries/s, p99, server CPU per delivery
	idle               // heap+stack and goroutines per connection
	steady             // p99, server CPU per delivery
)

// scenario is one row of the table: a load tool run with the same arguments against
// every server.
type scenario struct {
	id     string // "a" … "e", as shared/PERFORMANCE.md names them
	kind   kind
	conns  int
	msgs   int     // burst and steady
	rate   float64 // steady: messages per second
	size   int
	settle time.Duration // idle: how long the clients stay idle before the server is measured
}

// scenarios returns the five scenarios: the sizes of shared/PERFORMANCE.md, or with
// quick small ones that run in seconds; d and e publish for steadyFor.
func scenarios(quick bool, steadyFor time.Duration) []scenario {
	msgsAt := func(rate float64) int { return max(1, int(rate*steadyFor.Seconds()+0.5)) }
	if quick {
		return []scenario{
			{id: "a", kind: burst, conns: 200, msgs: 200, size: 128},
			{id: "b", kind: burst, conns: 500, msgs: 50, size: 128},
			{id: "c", kind: idle, conns: 1000, settle: time.Second},
			{id: "d", kind: steady, conns: 200, rate: 100, msgs: msgsAt(100), size: 128},
			{id: "e", kind: steady, conns: 1000, rate: 20, msgs: msgsAt(20), size: 128},
		}
	}
	return []scenario{
		{id: "a", kind: burst, conns: 1000, msgs: 1000, size: 128},
		{id: "b", kind: burst, conns: 5000, msgs: 200, size: 128},
		{id: "c", kind: idle, conns: 10_000, settle: 3 * time.Second},
		{id: "d", kind: steady, conns: 1000, rate: 200, msgs: msgsAt(200), size: 128},
		{id: "e", kind: steady, conns: 10_000, rate: 20, msgs: msgsAt(20), size: 128},
	}
}

// timeout bounds one load tool run: connecting at 2 000/s, publishing, and slack.
func (s scenario) timeout() time.Duration {
	d := time.Duration(s.conns/2000)*time.Second + 60*time.Second
	if s.kind == steady {
		d += time.Duration(float64(s.msgs) / s.rate * float64(time.Second))
	}
	return d + s.settle
}

// args are the load tool's arguments for the scenario, but for the server's URL,
// protocol and PID.
func (s scenario) args() []string {
	a := []string{"run", "-conns", strconv.Itoa(s.conns), "-timeout", s.timeout().String()}
	switch s.kind {
	case idle:
		a = append(a, "-idle", "-settle", s.settle.String())
	case steady:
		a = append(a, "-msgs", strconv.Itoa(s.msgs), "-size", strconv.Itoa(s.size),
			"-rate", strconv.FormatFloat(s.rate, 'g', -1, 64))
	default:
		a = append(a, "-msgs", strconv.Itoa(s.msgs), "-size", strconv.Itoa(s.size))
	}
	return a
}

// title is the row's first cell: what the scenario does and which figures the cells hold.
func (s scenario) title() string {
	switch s.kind {
	case idle:
		return fmt.Sprintf("%s: idle heap+stack per conn at %s; goroutines per conn", s.id, thousands(s.conns))
	case steady:
		return fmt.Sprintf("%s: %s conns, steady %s msgs/s of %d B for %s (%s deliveries/s): p99, server CPU per delivery",
			s.id, thousands(s.conns), thousands(int(s.rate)), s.size, durationText(float64(s.msgs)/s.rate),
			thousands(int(s.rate)*s.conns))
	}
	return fmt.Sprintf("%s: %s conns, one channel, %s msgs of %d B as fast as possible: deliveries/s, p99, server CPU per delivery",
		s.id, thousands(s.conns), thousands(s.msgs), s.size)
}

// thousands writes n with a thin space between groups of three digits: 10 000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + " " + s[i:]
	}
	return s
}

func durationText(seconds float64) string {
	return strconv.FormatFloat(seconds, 'g', 3, 64) + " s"
}
