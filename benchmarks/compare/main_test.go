package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/benchmarks/compare/internal/peers"
	"github.com/wspub/wspub/internal/wstest"
)

// helperEnv makes the test binary serve the peer it names instead of running the tests,
// so that the tests start a server as a child process the way the harness does.
const helperEnv = "WSPUB_COMPARE_HELPER_PEER"

// TestMain fails the run if a test leaves a goroutine behind.
func TestMain(m *testing.M) {
	wstest.Main(m, helperEnv, servePeer)
}

// servePeer serves the peer name until SIGTERM.
func servePeer(name string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := peers.Serve(ctx, name, "127.0.0.1:0", os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// TestChildServer starts a peer as a child process, reads its /stats and stops it.
func TestChildServer(t *testing.T) {
	t.Setenv(helperEnv, "gorilla")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := startServer(ctx, serverSpec{name: "gorilla", argv: []string{os.Args[0]}}, nil)
	require.NoError(t, err)
	assert.Regexp(t, `^127\.0\.0\.1:\d+$`, c.addr)

	var st map[string]any
	wstest.GetJSON(t, "http://"+c.addr+"/stats?gc=1", &st)
	assert.Equal(t, true, st["gc"])
	assert.Contains(t, st, "heap_inuse")
	assert.Contains(t, st, "goroutines")

	assert.NoError(t, c.stop(), "a clean exit on SIGTERM")
	assert.Contains(t, c.log.String(), "listening on http://"+c.addr)
	http.DefaultClient.CloseIdleConnections()
}

func TestChildServerThatFails(t *testing.T) {
	t.Setenv(helperEnv, "no-such-peer")
	_, err := startServer(context.Background(), serverSpec{name: "x", argv: []string{os.Args[0]}}, nil)
	assert.ErrorContains(t, err, "exited before listening")
	assert.ErrorContains(t, err, "unknown server")
}

func TestListeningAddr(t *testing.T) {
	a, ok := listeningAddr("wspub-bench: listening on http://127.0.0.1:4242 (WebSocket at ws://127.0.0.1:4242/ws)")
	assert.True(t, ok)
	assert.Equal(t, "127.0.0.1:4242", a)
	_, ok = listeningAddr("wspub-bench: open-file limit 1048576")
	assert.False(t, ok)
}

func TestFlags(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c", "d", "e"}, cfg.Scenarios)
	assert.Equal(t, allServers(), cfg.Servers)
	assert.Equal(t, 1, cfg.Runs)
	assert.Equal(t, 10*time.Second, cfg.Duration)
	cfg, err = parseFlags([]string{"-quick", "-servers", "wspub,melody", "-scenarios", "c"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, cfg.Duration)
	assert.Equal(t, []string{"wspub", "melody"}, cfg.Servers)
	for _, bad := range [][]string{{"-runs", "0"}, {"-servers", "socketio"}, {"-scenarios", "f"}, {"-duration", "-1s"}, {"extra"}} {
		_, err := parseFlags(bad, io.Discard)
		assert.Error(t, err, bad)
	}
}

func TestScenarioArgs(t *testing.T) {
	sc := scenarios(false, 10*time.Second)
	require.Len(t, sc, 5)
	assert.Equal(t, []string{"run", "-conns", "1000", "-timeout", "1m0s", "-msgs", "1000", "-size", "128"}, sc[0].args())
	assert.Equal(t, []string{"run", "-conns", "10000", "-timeout", "1m8s", "-idle", "-settle", "3s"}, sc[2].args())
	assert.Equal(t, []string{"run", "-conns", "1000", "-timeout", "1m10s", "-msgs", "2000", "-size", "128", "-rate", "200"}, sc[3].args())
	assert.Equal(t, 200, sc[4].msgs, "20 msgs/s for 10 s")
	assert.Equal(t, "e: 10 000 conns, steady 20 msgs/s of 128 B for 10 s (200 000 deliveries/s): p99, server CPU per delivery", sc[4].title())
}

func TestCommandLine(t *testing.T) {
	assert.Equal(t, "go run ./benchmarks/compare -out 'my file.md' -quick", commandLine([]string{"-out", "my file.md", "-quick"}))
}

func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n"
	assert.Equal(t, "AMD EPYC 7B13", cpuModel([]byte(info)))
	assert.Empty(t, cpuModel([]byte("processor : 0\n")))
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 5}
	_, _ = b.Write([]byte("abc"))
	_, _ = b.Write([]byte("defg"))
	assert.Equal(t, "cdefg", b.String())
}

// TestRender checks the table: one row per scenario, one column per server, medians of
// the runs, losses and failures shown.
func TestRender(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	lr := func(rate float64, p99 uint64, cpu float64) *loadResult {
		r := &loadResult{DeliveriesPerS: rate, ServerCPUUSPerDelivery: cpu, Expected: 1000}
		r.LatencyUS.P99 = p99
		return r
	}
	lossy := lr(2e5, 200_000, 3)
	lossy.Lost, lossy.Disconnected = 10, 2
	sc := scenarios(true, 2*time.Second)
	res := results{}
	res.add("a", "wspub", measurement{res: lr(3e6, 10_000, 0.2)})
	res.add("a", "wspub", measurement{res: lr(5e6, 30_000, 0.4)})
	res.add("a", "wspub", measurement{res: lr(4e6, 20_000, 0.3)})
	res.add("a", "melody", measurement{res: lossy})
	res.add("c", "wspub", measurement{res: &loadResult{BytesPerConn: f(9900), GoroutinesPerConn: f(1)}})
	res.add("c", "melody", measurement{err: fmt.Errorf("melody exited before listening")})
	rep := &report{
		machine:   machine{date: "2026-12-04 10:00 UTC", goVersion: "go1.26.8 linux/amd64", nproc: 2, cpu: "AMD EPYC", kernel: "6.1", loadAvg: "0.1 0.2 0.3", commit: "abc123"},
		command:   "go run ./benchmarks/compare -quick",
		runs:      3,
		duration:  "1m0s",
		scenarios: []scenario{sc[0], sc[2]},
		servers:   []serverSpec{{name: "wspub", label: "wspub (abc123)"}, {name: "melody", label: "melody v1.4.0"}},
		results:   res,
	}
	var b strings.Builder
	rep.render(&b)
	out := b.String()
	assert.Contains(t, out, "`go run ./benchmarks/compare -quick`")
	assert.Contains(t, out, "2 CPUs (AMD EPYC), go1.26.8 linux/amd64")
	assert.Contains(t, out, "| scenario | wspub (abc123) | melody v1.4.0 |\n|---|---|---|\n")
	assert.Contains(t, out, "| 4.00 M/s, p99 20.0 ms, 0.30 µs CPU, 0 lost | 200 k/s, p99 200 ms, 3.00 µs CPU, **lost 10 (1 %)**, **2 of 200 clients disconnected** |")
	assert.Contains(t, out, "| 9.9 KB, 1.00 goroutines | failed: melody exited before listening |")
	assert.Contains(t, out, "median")
	assert.Equal(t, 3, strings.Count(out, "\n| "), "the heading and two rows")
}
