package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/benchctl"
	"github.com/wspub/wspub/internal/wstest"
)

// helperEnv makes the test binary run wspub-bench with the variable's arguments instead
// of the tests: TestRunIdle measures a server in a process of its own, as the tool is
// meant to be used.
const helperEnv = "WSPUB_BENCH_HELPER_ARGS"

// TestMain fails the run if a test leaves a goroutine behind: every client, the hub and
// the HTTP transports must have stopped.
func TestMain(m *testing.M) {
	wstest.Main(m, helperEnv, func(args string) int { return realMain(strings.Fields(args), os.Stdout, os.Stderr) })
}

const testTimeout = 20 * time.Second

// startServer serves the bench server on an httptest server and returns its base URL
// (http://host:port). Cleanup shuts the hub down, then the server.
func startServer(t *testing.T) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	handler, shutdown := newServer(serveConfig{}, log)
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		assert.NoError(t, shutdown(ctx))
		srv.Close()
	})
	return srv.URL
}

func wsURL(base string) string { return wstest.WSURL(base) + "/ws" }

func TestServeStats(t *testing.T) {
	base := startServer(t)
	var st serverStats
	wstest.GetJSON(t, base+"/stats", &st)
	assert.False(t, st.GC)
	assert.Positive(t, st.HeapInuse)
	assert.Positive(t, st.StackInuse)
	assert.Positive(t, st.HeapAlloc)
	assert.Positive(t, st.Sys)
	assert.Positive(t, st.Goroutines)
	assert.Zero(t, st.Hub.Connections)

	var after serverStats
	wstest.GetJSON(t, base+"/stats?gc=1", &after)
	assert.True(t, after.GC)
	assert.Greater(t, after.NumGC, st.NumGC, "?gc=1 runs a collection")

	// The hub's Stats are there under their Go names.
	var raw struct{ Hub map[string]any }
	wstest.GetJSON(t, base+"/stats", &raw)
	assert.Contains(t, raw.Hub, "SlowEvictions")
	assert.Contains(t, raw.Hub, "Dropped")
}

func TestServePublishValidation(t *testing.T) {
	base := startServer(t)
	for _, tc := range []struct {
		name, method, query string
		want                int
	}{
		{"GET is not allowed", http.MethodGet, "", http.StatusMethodNotAllowed},
		{"n zero", http.MethodPost, "n=0", http.StatusBadRequest},
		{"n not a number", http.MethodPost, "n=many", http.StatusBadRequest},
		{"size negative", http.MethodPost, "size=-1", http.StatusBadRequest},
		{"size too large", http.MethodPost, "size=2000000", http.StatusBadRequest},
		{"rate negative", http.MethodPost, "rate=-5", http.StatusBadRequest},
		{"invalid channel", http.MethodPost, "channel=a%20b", http.StatusBadRequest},
		{"start negative", http.MethodPost, "start=-1", http.StatusBadRequest},
		{"no subscribers is fine", http.MethodPost, "n=3", http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+"/publish?"+tc.query, nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
		})
	}
}

// TestServePublish subscribes a real client and checks what POST /publish sends: the
// envelope, its size, the order and the timestamps.
func TestServePublish(t *testing.T) {
	base := startServer(t)
	for _, tc := range []struct {
		name, channel string
		size, n       int
		rate          string
		wantLen       int // 0: size
		start         int
	}{
		{"128 bytes", "bench", 128, 200, "0", 0, 0},
		{"1 KiB", "bench", 1024, 20, "0", 0, 0},
		{"smaller than the envelope", "bench", 10, 12, "0", -1, 0},
		{"channel with a quote", `q"uote`, 200, 5, "0", 0, 0},
		{"paced", "paced", 128, 20, "1000", 0, 0},
		{"numbered from start", "bench", 128, 10, "0", 0, 12345},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := wstest.Dial(t, wsURL(base), &wstest.DialOptions{Timeout: testTimeout})
			c.Subscribe(tc.channel, "s")

			q := "channel=" + strings.ReplaceAll(tc.channel, `"`, "%22") + "&n=" + strconv.Itoa(tc.n) + "&size=" + strconv.Itoa(tc.size) + "&rate=" + tc.rate + "&start=" + strconv.Itoa(tc.start)
			before := time.Now().UnixNano()
			resp, err := http.Post(base+"/publish?"+q, "", nil)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusAccepted, resp.StatusCode)
			var pr benchctl.Response
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&pr))
			assert.Equal(t, tc.n, pr.Published)
			assert.Positive(t, pr.DurationNS)
			assert.GreaterOrEqual(t, pr.FirstTS, before)
			if tc.rate == "1000" {
				assert.GreaterOrEqual(t, pr.DurationNS, int64(time.Duration(tc.n-1)*time.Millisecond), "paced at 1000/s")
			}

			var lastTS int64
			for seq := range tc.n {
				line, err := c.NextRaw()
				require.NoError(t, err)
				var m struct {
					Type    string `json:"type"`
					Channel string `json:"channel"`
					Data    struct {
						Seq int    `json:"seq"`
						TS  int64  `json:"ts"`
						Pad string `json:"pad"`
					} `json:"data"`
				}
				require.NoError(t, json.Unmarshal(line, &m), "%s", line)
				assert.Equal(t, "bench", m.Type)
				assert.Equal(t, tc.channel, m.Channel)
				assert.Equal(t, tc.start+seq, m.Data.Seq)
				assert.GreaterOrEqual(t, m.Data.TS, lastTS)
				assert.Equal(t, strings.Repeat("x", len(m.Data.Pad)), m.Data.Pad)
				switch {
				case tc.wantLen == 0:
					assert.Len(t, line, tc.size, "the envelope is size bytes")
				case tc.wantLen < 0:
					assert.Empty(t, m.Data.Pad)
				}
				if seq == 0 {
					assert.Equal(t, pr.EnvelopeBytes, len(line))
					assert.Equal(t, pr.FirstTS, m.Data.TS)
				}
				got, ts, ok := scanBench(line)
				require.True(t, ok)
				assert.Equal(t, int64(tc.start+seq), got)
				assert.Equal(t, m.Data.TS, ts)
				lastTS = m.Data.TS
			}
			c.NothingPending("end") // the n messages, and nothing more
		})
	}
}

// runArgs parses flags as the command line would and runs the benchmark.
func runArgs(t *testing.T, args ...string) (*result, error) {
	t.Helper()
	cfg, err := parseRunFlags(args, io.Discard)
	require.NoError(t, err)
	cfg.Progress = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return runBench(ctx, cfg)
}

// testWriter sends the run's progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestRunFanout(t *testing.T) {
	base := startServer(t)
	// The server runs in this process: -server-pid measures this process's CPU.
	res, err := runArgs(t, "-url", wsURL(base), "-conns", "50", "-msgs", "200", "-size", "128", "-ramp", "0",
		"-server-pid", strconv.Itoa(os.Getpid()))
	require.NoError(t, err)

	assert.Equal(t, "fanout", res.Mode)
	assert.Equal(t, 50, res.Conns)
	assert.EqualValues(t, 10_000, res.Deliveries)
	assert.EqualValues(t, 10_000, res.Expected)
	assert.Zero(t, res.Lost)
	assert.Zero(t, res.OutOfOrder)
	assert.Zero(t, res.Disconnected)
	assert.Zero(t, res.Evicted)
	assert.False(t, res.TimedOut)
	assert.False(t, res.failed())
	assert.Positive(t, res.DurationS)
	assert.InDelta(t, float64(res.Deliveries)/res.DurationS, res.DeliveriesPerS, 1)
	assert.Positive(t, res.LatencyUS.P50)
	assert.LessOrEqual(t, res.LatencyUS.P50, res.LatencyUS.P90)
	assert.LessOrEqual(t, res.LatencyUS.P90, res.LatencyUS.P99)
	assert.LessOrEqual(t, res.LatencyUS.P99, res.LatencyUS.Max)
	assert.Less(t, res.LatencyUS.Max, uint64(testTimeout/time.Microsecond))
	assert.Positive(t, res.Frames)
	assert.LessOrEqual(t, res.Frames, res.Deliveries)
	assert.InDelta(t, float64(res.Deliveries)/float64(res.Frames), res.MsgsPerFrame, 1e-9)
	assert.Positive(t, res.PublishS)
	assert.True(t, res.Stats)
	assert.Positive(t, res.HeapInuse)
	assert.Positive(t, res.StackInuse)
	assert.GreaterOrEqual(t, res.Goroutines, 50, "one reader per connection at least")
	assert.Zero(t, res.SlowEvictions)
	assert.Zero(t, res.Dropped)
	assert.InDelta(t, res.MsgsPerFrame, res.ServerMsgsPerFrame, 0.2, "the server wrote the frames the clients read (give or take a late-counted ack)")
	assert.Nil(t, res.Slow)
	if res.ServerCPUS > 0 { // 10 ms ticks: a fast machine may do the burst in less than one
		assert.InDelta(t, res.ServerCPUS*1e6/float64(res.Deliveries), res.ServerCPUUSPerDelivery, 1e-6)
	}

	// The JSON line has every documented field.
	line, err := json.Marshal(res)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(line, &m))
	for _, k := range []string{"conns", "msgs", "size", "deliveries", "expected", "lost", "out_of_order",
		"duration_s", "deliveries_per_s", "latency_us", "frames", "msgs_per_frame", "evicted",
		"heap_inuse", "stack_inuse", "goroutines", "slow_evictions", "dropped", "timed_out"} {
		assert.Contains(t, m, k)
	}
	assert.Len(t, m["latency_us"], 4)
	assert.NotContains(t, m, "bytes_per_conn", "-idle only")
	assert.NotContains(t, m, "slow", "-slow only")
	assert.NotContains(t, string(line), "\n", "one line")
}

// TestRunSlowAccounting checks that the slow clients are counted apart. With the
// default hub (1 MiB queues) a few hundred small messages fit the kernel's socket
// buffers and the queue, so nobody is evicted; the slow clients read them at the end.
func TestRunSlowAccounting(t *testing.T) {
	base := startServer(t)
	res, err := runArgs(t, "-url", wsURL(base), "-conns", "20", "-msgs", "100", "-slow", "0.25", "-ramp", "0")
	require.NoError(t, err)

	assert.Equal(t, 15, res.Conns, "healthy clients")
	assert.EqualValues(t, 1500, res.Deliveries)
	assert.EqualValues(t, 1500, res.Expected)
	assert.Zero(t, res.Lost)
	require.NotNil(t, res.Slow)
	assert.Equal(t, 5, res.Slow.Conns)
	assert.EqualValues(t, 500, res.Slow.Expected)
	assert.Equal(t, res.Slow.Expected, res.Slow.Deliveries+res.Slow.Lost)
	assert.Equal(t, int64(500), res.Slow.Deliveries, "the slow clients read everything at the end")
	assert.Zero(t, res.Evicted)
	assert.Zero(t, res.SlowEvictions)
	assert.False(t, res.failed())
}

func TestRunTimeout(t *testing.T) {
	base := startServer(t)
	// Nobody publishes: the run times out, and that is a failure, not an error.
	res, err := runArgs(t, "-url", wsURL(base), "-conns", "3", "-msgs", "5", "-wait", "-timeout", "500ms")
	require.NoError(t, err)
	assert.True(t, res.TimedOut)
	assert.EqualValues(t, 15, res.Lost)
	assert.True(t, res.failed())
}

func TestRunDialError(t *testing.T) {
	base := startServer(t)
	// A 404 is not worth a retry: the run fails at once.
	start := time.Now()
	_, err := runArgs(t, "-url", wsURL(base)+"/nope", "-conns", "3", "-msgs", "5")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "404")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestRunIdle runs the bench server as a process of its own (this test binary, see
// TestMain), measures 100 idle connections, and shuts the server down with SIGTERM.
func TestRunIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=serve -addr 127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stderr)
	var addr string
	var log strings.Builder
	for addr == "" && lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if _, rest, ok := strings.Cut(lines.Text(), "listening on http://"); ok {
			addr, _, _ = strings.Cut(rest, " ")
		}
	}
	require.NotEmpty(t, addr, "the server did not start:\n%s", log.String())
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(stderr)
		rest <- string(b)
	}()

	res, runErr := runArgs(t, "-url", "ws://"+addr+"/ws", "-conns", "100", "-idle", "-settle", "500ms", "-ramp", "0")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	out := <-rest
	require.NoError(t, cmd.Wait(), "a graceful shutdown exits 0:\n%s%s", log.String(), out)
	assert.Contains(t, out, "shutting down")

	require.NoError(t, runErr)
	assert.Equal(t, "idle", res.Mode)
	assert.Equal(t, 100, res.Conns)
	assert.Equal(t, 100, res.Channels)
	require.NotNil(t, res.BytesPerConn)
	assert.Positive(t, *res.BytesPerConn)
	assert.InDelta(t, *res.BytesPerConn, *res.HeapPerConn+*res.StackPerConn, 1e-6)
	require.NotNil(t, res.GoroutinesPerConn)
	assert.InDelta(t, 1, *res.GoroutinesPerConn, 0.1, "one goroutine per idle connection")
	assert.Greater(t, res.Goroutines, res.BaseGoroutines)
	assert.False(t, res.failed())
}

func TestRunFlags(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := parseRunFlags([]string{"-url", "ws://h:1/ws", "-channel", "c", "-msgs", "7", "-size", "64"}, io.Discard)
		require.NoError(t, err)
		assert.Equal(t, "http://h:1/stats", cfg.StatsURL)
		assert.Equal(t, "http://h:1/publish?channel=c&n=7&rate=0&size=64", cfg.Trigger)
		assert.Equal(t, 2000.0, cfg.Ramp)
	})
	t.Run("wss and a trigger of one's own", func(t *testing.T) {
		cfg, err := parseRunFlags([]string{"-url", "wss://h/ws", "-trigger", "http://p/go?n=3", "-ramp", "500"}, io.Discard)
		require.NoError(t, err)
		assert.Equal(t, "https://h/stats", cfg.StatsURL)
		assert.Equal(t, "http://p/go?channel=bench&n=3&rate=0&size=128", cfg.Trigger, "parameters already set are kept")
		assert.Equal(t, 500.0, cfg.Ramp)
	})
	t.Run("wait", func(t *testing.T) {
		cfg, err := parseRunFlags([]string{"-trigger", "", "-wait", "-stats", ""}, io.Discard)
		require.NoError(t, err)
		assert.Empty(t, cfg.Trigger)
		assert.Empty(t, cfg.StatsURL)
	})
	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		_, err := parseRunFlags([]string{"-h"}, &out)
		assert.ErrorIs(t, err, flag.ErrHelp)
		assert.Contains(t, out.String(), "-conns")
	})
	for _, args := range [][]string{
		{"-conns", "0"},
		{"-conns", "-5"},
		{"-msgs", "0"},
		{"-size", "-1"},
		{"-slow", "1"},
		{"-slow", "-0.1"},
		{"-conns", "2", "-slow", "0.9"},
		{"-idle", "-slow", "0.1"},
		{"-idle", "-stats", ""},
		{"-idle", "-channels", "0"},
		{"-ramp", "fast"},
		{"-url", "http://h/ws"},
		{"-url", "ws:///ws"},
		{"-trigger", ""},
		{"-wait", "-trigger", "http://h/publish"},
		{"-trigger", "ftp://h/publish"},
		{"-timeout", "0s"},
		{"-dialers", "0"},
		{"-channel", ""},
		{"-flood", "-1"},
		{"-flood", "1", "-flood-kind", "binary"},
		{"-idle", "-flood", "1"},
		{"-proto", "mqtt"},
		{"-proto", "centrifuge", "-flood", "1"},
		{"-server-pid", "-1"},
		{"extra"},
		{"-nosuchflag"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, err := parseRunFlags(args, io.Discard)
			assert.Error(t, err)
		})
	}
}

func TestRealMain(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    int
		wantOut string
	}{
		{nil, exitError, "Usage"},
		{[]string{"bogus"}, exitError, "unknown subcommand"},
		{[]string{"-h"}, exitOK, "Usage"},
		{[]string{"serve", "-h"}, exitOK, "POST /publish"},
		{[]string{"run", "-h"}, exitOK, "-slow"},
		{[]string{"run", "-conns", "0"}, exitError, "-conns must be at least 1"},
		{[]string{"soak", "-h"}, exitOK, "nopong"},
		{[]string{"soak", "-churn", "-1"}, exitError, "-churn must not be negative"},
		{[]string{"serve", "-max-conns", "-1"}, exitError, "-max-conns"},
		{[]string{"serve", "-pong-timeout", "-1s"}, exitError, "must not be negative"},
		{[]string{"serve", "-addr", "256.0.0.1:bad"}, exitError, "listen"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			assert.Equal(t, tc.want, realMain(tc.args, &out, &out))
			assert.Contains(t, out.String(), tc.wantOut)
		})
	}
}

func TestScanBench(t *testing.T) {
	for _, tc := range []struct {
		line    string
		seq, ts int64
		ok      bool
	}{
		{`{"type":"bench","channel":"b","data":{"seq":42,"ts":1700000000000000000,"pad":"xx"}}`, 42, 1700000000000000000, true},
		{`{"type":"x","data":{"seq": 7, "ts": 9}}`, 7, 9, true},
		{`{"type":"subscribed","channel":"b","id":"1"}`, 0, 0, false},
		{`{"data":{"seq":"a","ts":1}}`, 0, 0, false},
		{`{"data":{"seq":1}}`, 0, 0, false},
		{`{"data":{"ts":1,"seq":2}}`, 0, 0, false}, // ts must follow seq, as the bench server writes them
	} {
		seq, ts, ok := scanBench([]byte(tc.line))
		assert.Equal(t, tc.ok, ok, tc.line)
		if tc.ok {
			assert.Equal(t, tc.seq, seq, tc.line)
			assert.Equal(t, tc.ts, ts, tc.line)
		}
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		scanBench([]byte(`{"type":"bench","data":{"seq":42,"ts":1700000000000000000,"pad":"xx"}}`))
	}))
}

// TestClientFrame checks the per-client accounting: batches, gaps, late messages, in
// either protocol.
func TestClientFrame(t *testing.T) {
	for _, tc := range []struct {
		proto, ack, errReply string
		msg                  func(seq int) string
	}{
		{protoWspub, `{"type":"subscribed","channel":"b","id":"1"}`, `{"type":"error","code":"internal","message":"x"}`,
			func(seq int) string { return `{"type":"bench","data":{"seq":` + strconv.Itoa(seq) + `,"ts":1000000}}` }},
		{protoCentrifuge, `{"id":2,"subscribe":{}}`, `{"id":3,"error":{"code":100,"message":"internal server error"}}`,
			func(seq int) string {
				return `{"push":{"channel":"b","pub":{"data":{"seq":` + strconv.Itoa(seq) + `,"ts":1000000}}}}`
			}},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			proto, ok := protoFor(tc.proto)
			require.True(t, ok)
			r := &runner{cfg: runConfig{Msgs: 6}, proto: proto, allFinished: make(chan struct{}), sem: make(chan struct{}, 1),
				allSubscribed: make(chan struct{}), failed: make(chan struct{})}
			r.clients = make([]*client, 1)
			c := &client{r: r}
			r.clients[0] = c
			msg := tc.msg

			r.sem <- struct{}{}
			if tc.proto == protoCentrifuge {
				c.frame(nil, []byte(`{"id":1,"connect":{"client":"x","version":"","ping":25,"pong":true}}`), 0)
				assert.False(t, c.acked, "the connect reply is not the subscription's")
			}
			c.frame(nil, []byte(tc.ack), 0)
			assert.True(t, c.acked)
			assert.True(t, isClosed(r.allSubscribed))

			c.frame(nil, []byte(msg(0)+"\n"+msg(1)+"\n"+msg(3)), 3_000_000) // 2 is late
			c.frame(nil, []byte(msg(2)), 4_000_000)
			assert.EqualValues(t, 4, c.delivered)
			assert.EqualValues(t, 1, c.outOfOrder)
			assert.EqualValues(t, 2, c.lost(6), "4 and 5 have not come")
			assert.EqualValues(t, 2, c.frames)
			assert.EqualValues(t, 4, r.deliveries.Load())
			assert.False(t, c.done)

			c.frame(nil, []byte(msg(5)), 5_000_000) // 4 is lost
			assert.True(t, c.done)
			assert.True(t, isClosed(r.allFinished))
			assert.EqualValues(t, 1, c.lost(6))
			assert.EqualValues(t, 4000, c.hist.max, "latency in microseconds")
			assert.EqualValues(t, 1_000_000, c.firstTS)
			assert.EqualValues(t, 5_000_000, c.lastRecv)

			c.frame(nil, []byte(`{}`), 0) // a centrifuge ping, or nothing to wspub
			assert.Zero(t, c.errors)
			c.frame(nil, []byte(tc.errReply), 0)
			assert.EqualValues(t, 1, c.errors)
			assert.False(t, isClosed(r.failed), "an error after the subscription does not fail the run")
		})
	}
}

func TestProtoSubscribeFrames(t *testing.T) {
	p, _ := protoFor(protoWspub)
	assert.JSONEq(t, `{"type":"subscribe","channel":"a\"b","id":"1"}`, string(p.subscribe(`a"b`)))
	p, _ = protoFor(protoCentrifuge)
	lines := strings.Split(string(p.subscribe("idle:3")), "\n")
	require.Len(t, lines, 2, "connect and subscribe in one frame")
	assert.JSONEq(t, `{"id":1,"connect":{}}`, lines[0])
	assert.JSONEq(t, `{"id":2,"subscribe":{"channel":"idle:3"}}`, lines[1])
	assert.True(t, p.isPing([]byte(`{}`)))
	assert.False(t, p.isPing([]byte(`{"id":2,"subscribe":{}}`)))
}

func TestParseProcStat(t *testing.T) {
	// A command name with a space and a parenthesis; utime 250 and stime 50 ticks.
	line := "4242 (a b) c) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 0 0\n"
	d, err := parseProcStat([]byte(line))
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, d)
	for _, bad := range []string{"", "4242 (x S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 u 50 0"} {
		_, err := parseProcStat([]byte(bad))
		assert.Error(t, err, bad)
	}
	own, err := processCPU(os.Getpid())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, own, time.Duration(0))
}

func TestHist(t *testing.T) {
	for v := uint64(0); v < 1<<20; v += 1 + v/300 {
		i := bucketOf(v)
		require.LessOrEqual(t, v, bucketHigh(i), "v=%d", v)
		if i > 0 {
			require.Greater(t, v, bucketHigh(i-1), "v=%d", v)
		}
	}
	var c clientHist
	for v := uint64(1); v <= 100_000; v++ {
		c.record(v)
	}
	var h hist
	h.merge(&c)
	h.merge(&clientHist{}) // empty: nothing changes
	assert.EqualValues(t, 100_000, h.n)
	assert.EqualValues(t, 100_000, h.max)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * 100_000
		assert.InEpsilon(t, want, float64(h.quantile(q)), 0.01, "q=%v", q)
	}
	assert.EqualValues(t, 100_000, h.quantile(1))
	assert.Zero(t, (&hist{}).quantile(0.5))
	assert.Zero(t, testing.AllocsPerRun(100, func() { c.record(50_000) }))
}

func TestErrorsAreReported(t *testing.T) {
	// A subscription the hub refuses fails the run with the hub's reply.
	base := startServer(t)
	_, err := runArgs(t, "-url", wsURL(base), "-conns", "1", "-msgs", "1", "-channel", strings.Repeat("c", 300))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid_channel")
	assert.False(t, errors.Is(err, context.DeadlineExceeded))
}
