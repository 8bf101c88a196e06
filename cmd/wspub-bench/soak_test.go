package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startSoakServer serves the bench server with cfg's hub options, and cfg.SndBuf on its
// accepted connections, like serve does.
func startSoakServer(t *testing.T, cfg serveConfig) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	handler, shutdown := newServer(cfg, log)
	srv := httptest.NewUnstartedServer(handler)
	if cfg.SndBuf > 0 {
		srv.Listener = sndBufListener{srv.Listener, cfg.SndBuf}
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		assert.NoError(t, shutdown(ctx))
		srv.Close()
	})
	return srv.URL
}

// soakArgs parses flags as the command line would and runs a soak.
func soakArgs(t *testing.T, args ...string) (*soakResult, error) {
	t.Helper()
	cfg, err := parseSoakFlags(args, io.Discard)
	require.NoError(t, err)
	cfg.Progress = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	return soakBench(ctx, cfg)
}

// TestSoakLeavesInEveryWay runs a 5-second soak against a bench server whose heartbeat,
// write timeout and buffers are short enough for every way of leaving to complete many
// times: the server answers closes and FINs, evicts clients that stop reading and reaps
// those that stop answering pings. The samples go to a CSV and a chart.
func TestSoakLeavesInEveryWay(t *testing.T) {
	base := startSoakServer(t, serveConfig{
		PingInterval: time.Second, PongTimeout: 500 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, CloseTimeout: time.Second,
		MaxQueueBytes: 64 << 10, SndBuf: 16 << 10,
	})
	dir := t.TempDir()
	csvPath, svgPath := filepath.Join(dir, "soak.csv"), filepath.Join(dir, "soak.svg")
	res, err := soakArgs(t, "-url", wsURL(base), "-duration", "5s", "-interval", "250ms",
		"-conns", "20", "-churn", "25", "-channels", "2", "-publish", "200", "-size", "1024",
		"-server-wait", "3s", "-close-wait", "2s", "-ramp", "0",
		"-csv", csvPath, "-svg", svgPath,
		// The verdict of 5 seconds is not this test's point: TestJudgeTrend is.
		"-max-heap-growth", "1000%", "-max-goroutine-growth", "1000%")
	require.NoError(t, err)

	assert.Equal(t, "soak", res.Mode)
	assert.Contains(t, []string{verdictFlat, verdictRising}, res.Verdict)
	assert.Equal(t, []string{"close", "fin", "rst", "stall", "nopong"}, res.Ways)
	assert.GreaterOrEqual(t, res.Samples, 15, "a base sample and one every 250ms")
	assert.Zero(t, res.NoGC, "the bench server collects garbage on ?gc=1")
	assert.GreaterOrEqual(t, res.Heap.Samples, 6, "the second half is judged")
	assert.InDelta(t, 2.5, res.WindowS[0], 0.5)
	assert.Positive(t, res.Heap.First)
	assert.Positive(t, res.Goroutines.First)
	assert.InDelta(t, 20, res.Connections.First, 12, "the population and the departures under way")

	for _, name := range res.Ways {
		l := res.Leaves[name]
		assert.Positive(t, l.Started, name)
		assert.Positive(t, l.OK, "%s: the server did its part: %+v", name, l)
		assert.Zero(t, l.Late, "%s: %+v", name, l)
		assert.Zero(t, l.Other, "%s: %+v", name, l)
		assert.LessOrEqual(t, l.OK+l.Cut, l.Started, name)
	}
	for _, name := range []string{"stall", "nopong"} {
		assert.Positive(t, res.Leaves[name].Codes["1006"], "%s: the server dropped the connection: %+v", name, res.Leaves[name])
	}
	assert.Positive(t, res.Leaves["nopong"].MeanS)
	assert.Less(t, res.Leaves["nopong"].MaxS, 2.5, "reaped within PingInterval+PongTimeout (1.5s), give or take the scheduler")
	assert.Positive(t, res.Server.SlowEvictions, "clients that stopped reading were evicted")
	assert.Positive(t, res.Server.Reaped, "clients that stopped answering pings were reaped")
	assert.GreaterOrEqual(t, res.Joins, int64(20+100), "the population, then a join per departure")
	assert.Positive(t, res.Published)
	assert.Positive(t, res.Received)
	assert.Positive(t, res.Server.Delivered)
	assert.Zero(t, res.PublishErrors)
	assert.Zero(t, res.DialErrors)
	require.NotNil(t, res.After)
	assert.Zero(t, res.After.Connections, "every client has gone")
	t.Logf("lost %d, unexpected ends %d %v, leaves %+v", res.Lost, res.Unexpected, res.UnexpectedCodes, res.Leaves)

	// The CSV: a header, then a row per sample and one after the clients left.
	f, err := os.Open(csvPath)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 1+res.Samples+1)
	assert.Equal(t, strings.Split(csvHeader, ","), rows[0])
	phases := map[string]int{}
	for _, r := range rows[1:] {
		require.Len(t, r, len(rows[0]))
		phases[r[1]]++
	}
	assert.Equal(t, map[string]int{"base": 1, "warmup": res.Samples - 1 - res.Heap.Samples, "measure": res.Heap.Samples, "after": 1}, phases)
	assert.Equal(t, "0", rows[len(rows)-1][6], "no connection after the soak")

	// The chart: well-formed, with its lines and the verdict in the title.
	svg, err := os.ReadFile(svgPath)
	require.NoError(t, err)
	assertWellFormed(t, svg)
	assert.Equal(t, 3, bytes.Count(svg, []byte("<polyline")), "heap, goroutines, connections")
	assert.Contains(t, string(svg), "wspub soak: "+strings.ToUpper(res.Verdict))
	assert.Equal(t, csvPath, res.CSV)
	assert.Equal(t, svgPath, res.SVG)

	// The JSON has the documented fields.
	line, err := json.Marshal(res)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(line, &m))
	for _, k := range []string{"verdict", "duration_s", "samples", "window_s", "heap", "goroutines", "connections",
		"joins", "leaves", "received", "lost", "published", "server", "base", "after", "csv", "svg"} {
		assert.Contains(t, m, k)
	}
	for _, k := range []string{"samples", "first", "last", "start", "end", "slope_per_10m", "err_per_10m", "limit_per_10m", "rising"} {
		assert.Contains(t, m["heap"], k)
	}
}

func assertWellFormed(t *testing.T, doc []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err, "the SVG is not well-formed XML")
	}
}

func TestSoakFlags(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := parseSoakFlags([]string{"-url", "wss://h:1/ws", "-header", "Authorization: Bearer x", "-header", "X-A:b"}, io.Discard)
		require.NoError(t, err)
		assert.Equal(t, "https://h:1/stats", cfg.StatsURL)
		assert.Equal(t, "https://h:1/publish", cfg.PublishURL)
		assert.Equal(t, 10*time.Minute, cfg.Duration)
		assert.Equal(t, 5*time.Minute, cfg.Warmup, "half the duration")
		assert.Equal(t, []way{wayClose, wayFIN, wayRST, wayStall, wayNoPong}, cfg.Ways)
		assert.Equal(t, "Bearer x", cfg.Header.Get("Authorization"))
		assert.Equal(t, "b", cfg.Header.Get("X-A"))
		assert.Equal(t, float64(1<<20), cfg.HeapLimit.Amount)
		assert.Equal(t, 10.0, cfg.GoroLimit.Amount)
	})
	t.Run("ways, warm-up, no publisher", func(t *testing.T) {
		cfg, err := parseSoakFlags([]string{"-ways", "rst, nopong,rst", "-warmup", "1m", "-publish-url", ""}, io.Discard)
		require.NoError(t, err)
		assert.Equal(t, []way{wayRST, wayNoPong}, cfg.Ways)
		assert.Equal(t, time.Minute, cfg.Warmup)
		assert.Empty(t, cfg.PublishURL)
	})
	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		_, err := parseSoakFlags([]string{"-h"}, &out)
		assert.ErrorIs(t, err, flag.ErrHelp)
		for _, s := range []string{"-churn", "nopong", "heap_alloc", "hub.Stats()", "-max-heap-growth"} {
			assert.Contains(t, out.String(), s)
		}
	})
	for _, args := range [][]string{
		{"-duration", "0s"},
		{"-interval", "0s"},
		{"-duration", "30s", "-interval", "5s"}, // 3 samples in the second half
		{"-warmup", "10m"},
		{"-warmup", "-1s"},
		{"-conns", "0"},
		{"-churn", "-1"},
		{"-channels", "0"},
		{"-channels", "1001"},
		{"-channel", ""},
		{"-publish", "-5"},
		{"-size", "-1"},
		{"-stats", ""},
		{"-stats", "ftp://h/stats"},
		{"-publish-url", "ws://h/publish"},
		{"-server-wait", "0s"},
		{"-close-wait", "0s"},
		{"-ways", "close,smoke"},
		{"-ways", ""},
		{"-ramp", "fast"},
		{"-url", "http://h/ws"},
		{"-header", "no colon"},
		{"-max-heap-growth", "lots"},
		{"-max-goroutine-growth", "1MiB"},
		{"-stall-rcvbuf", "-1"},
		{"extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, err := parseSoakFlags(args, io.Discard)
			assert.Error(t, err)
		})
	}
}

// TestSoakNeedsTheStatsFields fails a soak at once whose -stats answer lacks what the
// verdict is made of.
func TestSoakNeedsTheStatsFields(t *testing.T) {
	base := startServer(t)
	stats := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"heap_inuse":1,"goroutines":3,"hub":{"Connections":0}}`)
	}))
	defer stats.Close()
	start := time.Now()
	_, err := soakArgs(t, "-url", wsURL(base), "-stats", stats.URL, "-duration", "2s", "-interval", "100ms", "-csv", "", "-svg", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "heap_alloc")
	assert.Less(t, time.Since(start), time.Second)
}

// TestSoakStopsOnRefusedUpgrade fails a soak whose URL the server refuses for good.
func TestSoakStopsOnRefusedUpgrade(t *testing.T) {
	base := startServer(t)
	start := time.Now()
	_, err := soakArgs(t, "-url", wsURL(base)+"/nope", "-stats", base+"/stats", "-publish-url", base+"/publish",
		"-duration", "5s", "-interval", "100ms", "-conns", "3", "-csv", "", "-svg", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 404")
	assert.Less(t, time.Since(start), 3*time.Second)
}

// TestSoakChart draws a chart of synthetic samples: well-formed, escaped, with a
// polyline per series.
func TestSoakChart(t *testing.T) {
	cfg, err := parseSoakFlags([]string{"-duration", "100s", "-interval", "10s"}, io.Discard)
	require.NoError(t, err)
	var samples []sample
	for i := range 11 {
		phase := phaseMeasure
		if i < 5 {
			phase = phaseWarmup
		}
		samples = append(samples, sample{T: float64(i * 10), Phase: phase, GC: true,
			HeapAlloc: uint64(10<<20 + i*(100<<10)), Goroutines: 1000 + i, Connections: 990})
	}
	s := &soaker{cfg: cfg, unexCode: map[int]int64{}, lastErr: map[string]string{}}
	res := s.result(samples, sample{}, false, false)
	assert.Equal(t, 6, res.Heap.Samples)
	assert.True(t, res.Heap.Rising, "100 KiB per 10 s is 6 MiB per 10 min")
	assert.Equal(t, verdictRising, res.Verdict)
	assert.True(t, res.failed())

	var b bytes.Buffer
	require.NoError(t, writeSVG(&b, soakChart(cfg, res, samples)))
	assertWellFormed(t, b.Bytes())
	out := b.String()
	assert.Equal(t, 3, strings.Count(out, "<polyline"))
	assert.Contains(t, out, "wspub soak: RISING")
	assert.Contains(t, out, "RISING;")
	assert.Contains(t, out, "stroke-dasharray", "the fitted trends")
	assert.Contains(t, out, "warm-up")
	assert.Contains(t, out, ">100s<", "the last tick")

	b.Reset()
	require.NoError(t, writeSVG(&b, chart{Title: `<a & "b">`, Lines: []string{"x < y"},
		Panels: []chartPanel{{Title: "&", Series: []chartSeries{{Name: "<s>", Color: "#000"}}}}}))
	assertWellFormed(t, b.Bytes())
	assert.Contains(t, b.String(), "&lt;a &amp; &#34;b&#34;&gt;")
}
