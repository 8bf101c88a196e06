package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const fastTick = time.Millisecond

type testEnv struct {
	app *server
	hub *wspub.Hub
	ts  *httptest.Server
}

// newTestEnv serves newServer(hub, opts) on an httptest server and cleans everything up
// at the end of the test: jobs, then the hub (hijacked connections), then the server.
func newTestEnv(t *testing.T, opts serverOptions) *testEnv {
	t.Helper()
	if opts.TickDelay == 0 {
		opts.TickDelay = fastTick
	}
	hub, metrics, err := newHub(nil)
	require.NoError(t, err)
	opts.Metrics = metrics
	app := newServer(hub, opts)
	ts := httptest.NewServer(app)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, app.Shutdown(ctx))
		assert.NoError(t, hub.Close())
		ts.Close()
	})
	return &testEnv{app: app, hub: hub, ts: ts}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// do sends a request with an optional body and returns the status and the decoded JSON
// response (nil if the body is not a JSON object).
func (e *testEnv) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	return doRequest(t, e.ts.Client(), method, e.ts.URL+path, body)
}

func doRequest(t *testing.T, client *http.Client, method, url, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	require.NoError(t, err)
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var v map[string]any
	if json.Unmarshal(b, &v) == nil {
		assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
	}
	return res.StatusCode, v
}

// createJob creates a job and returns its id and channel.
func (e *testEnv) createJob(t *testing.T, body string) (id, channel string) {
	t.Helper()
	status, v := e.do(t, http.MethodPost, "/jobs", body)
	require.Equal(t, http.StatusAccepted, status, "%v", v)
	id, _ = v["id"].(string)
	channel, _ = v["channel"].(string)
	require.NotEmpty(t, id)
	require.Equal(t, "task:"+id, channel)
	return id, channel
}

// progressOf returns m as a progress update.
func progressOf(t *testing.T, m wstest.Msg) progress {
	t.Helper()
	require.Equal(t, "progress", m.Type, "%+v", m)
	var p progress
	require.NoError(t, json.Unmarshal(m.Data, &p))
	return p
}

func (e *testEnv) dial(t *testing.T, ctx context.Context) *wstest.Conn {
	t.Helper()
	return dialURL(t, ctx, wstest.WSURL(e.ts.URL)+"/ws", e.ts.Client())
}

func dialURL(t *testing.T, ctx context.Context, url string, client *http.Client) *wstest.Conn {
	t.Helper()
	return wstest.Dial(t, url, &wstest.DialOptions{Context: ctx, HTTPClient: client})
}

func TestPage(t *testing.T) {
	e := newTestEnv(t, serverOptions{})
	res, err := e.ts.Client().Get(e.ts.URL + "/")
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, indexHTML, body)
	page := string(body)
	for _, want := range []string{
		"<!doctype html>", `id="start-form"`, `id="symbol"`, `id="start"`, "Start analysis",
		`id="jobs"`, `id="conn-state"`, `id="errors"`, `<script type="module">`,
		`import { connect } from "/wspub.js";`, `connect("/ws")`, `c.subscribe(job.channel,`,
		`await job.sub.ready;`, `job.sub.unsubscribe()`, `c.on("subscribed"`, "/start`", "dataset.jobId",
		"DOM contract",
	} {
		assert.Contains(t, page, want)
	}
	assert.NotContains(t, page, "http://", "the page must load no external resources")
	assert.NotContains(t, page, "https://")
	assert.Less(t, strings.Count(page, "\n"), 200, "the page should stay small")

	status, _ := e.do(t, http.MethodGet, "/nope", "")
	assert.Equal(t, http.StatusNotFound, status)
	status, v := e.do(t, http.MethodPost, "/", "")
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	assert.NotEmpty(t, v["error"])
}

func TestClientScript(t *testing.T) {
	e := newTestEnv(t, serverOptions{})
	res, err := e.ts.Client().Get(e.ts.URL + "/wspub.js")
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, res.Header.Get("Content-Type"), "javascript")
	assert.Contains(t, string(body), "export function connect", "the module the page imports")
}

// readJob reads the progress messages of channel until the job ends and checks their
// order: percent and step never go back, and the last message is "done" at 100%.
func readJob(t *testing.T, channel, symbol string, msgs []wstest.Msg) []progress {
	t.Helper()
	var got []progress
	for _, m := range msgs {
		require.Equal(t, channel, m.Channel)
		p := progressOf(t, m)
		got = append(got, p)
		assert.Equal(t, symbol, p.Symbol)
		if len(got) > 1 {
			prev := got[len(got)-2]
			assert.GreaterOrEqual(t, p.Percent, prev.Percent, "percent went back: %v", got)
			assert.GreaterOrEqual(t, slices.Index(steps, p.Step), slices.Index(steps, prev.Step), "step went back: %v", got)
		}
	}
	return got
}

func TestJobProgress(t *testing.T) {
	const ticks = 3
	e := newTestEnv(t, serverOptions{TicksPerStep: ticks})
	ctx := testContext(t)

	id, channel := e.createJob(t, `{"symbol":"MSFT"}`)
	status, v := e.do(t, http.MethodGet, "/jobs/"+id, "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, map[string]any{"symbol": "MSFT", "status": "pending", "percent": 0.0, "step": steps[0]}, v)

	c := e.dial(t, ctx)
	c.Subscribe(channel, "1") // subscribed before the job starts: nothing can be missed
	status, v = e.do(t, http.MethodPost, "/jobs/"+id+"/start", "")
	require.Equal(t, http.StatusAccepted, status, "%v", v)
	assert.Equal(t, map[string]any{"id": id, "channel": channel}, v)

	var msgs []wstest.Msg
	for {
		m := c.Next()
		msgs = append(msgs, m)
		if progressOf(t, m).Status != statusRunning {
			break
		}
	}
	got := readJob(t, channel, "MSFT", msgs)
	require.Len(t, got, len(steps)*ticks+1, "one update per tick, then done: %v", got)
	assert.Equal(t, progress{Symbol: "MSFT", Status: statusRunning, Percent: 0, Step: steps[0]}, got[0])
	assert.Equal(t, progress{Symbol: "MSFT", Status: statusDone, Percent: 100, Step: steps[len(steps)-1]}, got[len(got)-1])
	for i, p := range got[:len(got)-1] {
		assert.Equal(t, statusRunning, p.Status)
		assert.Equal(t, steps[i/ticks], p.Step)
		assert.Less(t, p.Percent, 100)
	}

	// The latest state stays readable, for a page catching up after a reconnect.
	status, v = e.do(t, http.MethodGet, "/jobs/"+id, "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, map[string]any{"symbol": "MSFT", "status": "done", "percent": 100.0, "step": steps[len(steps)-1]}, v)

	// The page unsubscribes when a job is done.
	c.Unsubscribe(channel, "2")

	status, v = e.do(t, http.MethodPost, "/jobs/"+id+"/start", "")
	assert.Equal(t, http.StatusConflict, status, "a job starts once")
	assert.NotEmpty(t, v["error"])
}

func TestConcurrentJobs(t *testing.T) {
	e := newTestEnv(t, serverOptions{TicksPerStep: 2})
	ctx := testContext(t)
	c := e.dial(t, ctx)

	// An empty body means the default symbol.
	symbols := map[string]string{}
	idA, chA := e.createJob(t, "")
	idB, chB := e.createJob(t, `{"symbol":"NVDA"}`)
	symbols[chA], symbols[chB] = "AAPL", "NVDA"
	c.Subscribe(chA, idA)
	c.Subscribe(chB, idB)
	for _, id := range []string{idA, idB} {
		status, v := e.do(t, http.MethodPost, "/jobs/"+id+"/start", "")
		require.Equal(t, http.StatusAccepted, status, "%v", v)
	}

	byChannel := map[string][]wstest.Msg{}
	for done := 0; done < 2; {
		m := c.Next()
		require.Contains(t, symbols, m.Channel, "%+v", m)
		byChannel[m.Channel] = append(byChannel[m.Channel], m)
		if progressOf(t, m).Status == statusDone {
			done++
		}
	}
	for ch, msgs := range byChannel {
		got := readJob(t, ch, symbols[ch], msgs)
		assert.Len(t, got, len(steps)*2+1)
		assert.Equal(t, statusDone, got[len(got)-1].Status)
		assert.Equal(t, 100, got[len(got)-1].Percent)
	}
}

func TestBadRequests(t *testing.T) {
	e := newTestEnv(t, serverOptions{})
	id, _ := e.createJob(t, `{"symbol":"A"}`)
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{http.MethodGet, "/jobs", "", http.StatusMethodNotAllowed},
		{http.MethodPut, "/jobs", `{"symbol":"AAPL"}`, http.StatusMethodNotAllowed},
		{http.MethodPost, "/jobs", `{"symbol":"aapl"}`, http.StatusBadRequest},
		{http.MethodPost, "/jobs", `{"symbol":""}`, http.StatusBadRequest},
		{http.MethodPost, "/jobs", `{"symbol":"ABCDEFGHIJK"}`, http.StatusBadRequest},
		{http.MethodPost, "/jobs", `{"symbol":"BRK.B"}`, http.StatusBadRequest},
		{http.MethodPost, "/jobs", `{"symbol":"ÄPPL"}`, http.StatusBadRequest},
		{http.MethodPost, "/jobs", `{"symbol":42}`, http.StatusBadRequest},
		{http.MethodPost, "/jobs", `{"symbol":`, http.StatusBadRequest},
		{http.MethodPost, "/jobs", `{"symbol":"AAPL"} {}`, http.StatusBadRequest},
		{http.MethodPost, "/jobs", `{"symbol":"` + strings.Repeat("A", 2000) + `"}`, http.StatusBadRequest},
		{http.MethodGet, "/jobs/" + id + "/start", "", http.StatusMethodNotAllowed},
		{http.MethodPost, "/jobs/nope/start", "", http.StatusNotFound},
		{http.MethodGet, "/jobs/nope", "", http.StatusNotFound},
		{http.MethodDelete, "/jobs/" + id, "", http.StatusMethodNotAllowed},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.body[:min(len(tc.body), 30)], func(t *testing.T) {
			status, v := e.do(t, tc.method, tc.path, tc.body)
			assert.Equal(t, tc.status, status)
			assert.NotEmpty(t, v["error"], "errors are JSON {\"error\":...}")
		})
	}
	// The longest valid symbol is fine.
	e.createJob(t, `{"symbol":"ABCDEFGHIJ"}`)
}

func TestPendingJobsExpire(t *testing.T) {
	e := newTestEnv(t, serverOptions{PendingTTL: 20 * time.Millisecond})
	stale, _ := e.createJob(t, "")
	time.Sleep(50 * time.Millisecond)
	e.createJob(t, "") // creating a job forgets the expired ones
	status, v := e.do(t, http.MethodPost, "/jobs/"+stale+"/start", "")
	assert.Equal(t, http.StatusNotFound, status)
	assert.NotEmpty(t, v["error"])
}

func TestMaxJobs(t *testing.T) {
	e := newTestEnv(t, serverOptions{MaxJobs: 2})
	e.createJob(t, "")
	e.createJob(t, "")
	status, v := e.do(t, http.MethodPost, "/jobs", "")
	assert.Equal(t, http.StatusTooManyRequests, status, "MaxJobs bounds the jobs kept")
	assert.NotEmpty(t, v["error"])
}

func TestShutdownCancelsJobs(t *testing.T) {
	e := newTestEnv(t, serverOptions{TickDelay: time.Hour}) // jobs would run for a day
	ctx := testContext(t)
	c := e.dial(t, ctx)
	var ids, channels []string
	for range 3 {
		id, ch := e.createJob(t, "")
		c.Subscribe(ch, id)
		ids, channels = append(ids, id), append(channels, ch)
	}
	for _, id := range ids {
		status, _ := e.do(t, http.MethodPost, "/jobs/"+id+"/start", "")
		require.Equal(t, http.StatusAccepted, status)
	}
	for range channels {
		assert.Equal(t, statusRunning, progressOf(t, c.Next()).Status)
	}
	pending, _ := e.createJob(t, "")

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, e.app.Shutdown(sctx), "running jobs must stop")
	assert.Less(t, time.Since(start), 2*time.Second)

	// Every running job told its subscribers it was cancelled.
	var cancelled []string
	for range channels {
		m := c.Next()
		assert.Equal(t, statusCancelled, progressOf(t, m).Status)
		cancelled = append(cancelled, m.Channel)
	}
	assert.ElementsMatch(t, channels, cancelled)
	status, v := e.do(t, http.MethodGet, "/jobs/"+ids[0], "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, statusCancelled, v["status"])

	// No new jobs once shutdown has started.
	status, _ = e.do(t, http.MethodPost, "/jobs", "")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	status, _ = e.do(t, http.MethodPost, "/jobs/"+pending+"/start", "")
	assert.Equal(t, http.StatusServiceUnavailable, status)

	// The hub closes the WebSockets, which http.Server.Shutdown would leave open. It
	// waits for the client's half of the close handshake, so read meanwhile.
	hubDone := make(chan error, 1)
	go func() { hubDone <- e.hub.Shutdown(sctx) }()
	_, err := c.NextOrErr()
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
	require.NoError(t, <-hubDone)
	// goleak, in TestMain, checks that no job, hub or connection goroutine is left.
}

// TestRun runs the program as main does, and stops it with its context.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", serverOptions{TickDelay: time.Hour}, func(url string) { urls <- url })
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	status, _ := doRequest(t, client, http.MethodGet, url, "")
	assert.Equal(t, http.StatusOK, status)
	status, v := doRequest(t, client, http.MethodPost, url+"jobs", `{"symbol":"TSLA"}`)
	require.Equal(t, http.StatusAccepted, status)
	id, channel := v["id"].(string), v["channel"].(string)

	wsctx := testContext(t)
	c := dialURL(t, wsctx, wstest.WSURL(url)+"ws", client)
	c.Subscribe(channel, id)
	status, _ = doRequest(t, client, http.MethodPost, url+"jobs/"+id+"/start", "")
	require.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, statusRunning, progressOf(t, c.Next()).Status)

	cancel() // as SIGINT does
	// The job publishes "cancelled", then the hub closes the socket with 1001; Hub.Shutdown
	// sends what is queued before the close frame, so the update arrives. Reading the close
	// frame answers it, which lets run's hub.Shutdown return.
	gotCancelled := false
	for {
		m, err := c.NextOrErr()
		if err != nil {
			assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
			break
		}
		if progressOf(t, m).Status == statusCancelled {
			gotCancelled = true
		}
	}
	assert.True(t, gotCancelled, "the last update before the close is delivered")
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}

// TestMetrics: GET /metrics serves the hub's Prometheus metrics, which follow what
// happened: a connected client, a finished job's published and delivered messages, and
// the fan-out histogram. Other methods are refused.
func TestMetrics(t *testing.T) {
	e := newTestEnv(t, serverOptions{TicksPerStep: 1})
	ctx := testContext(t)
	scrape := func() string {
		t.Helper()
		res, err := e.ts.Client().Get(e.ts.URL + "/metrics")
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		assert.Contains(t, res.Header.Get("Content-Type"), "text/plain")
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return string(b)
	}
	assert.Contains(t, scrape(), "wspub_connections 0\n")

	id, channel := e.createJob(t, `{"symbol":"AAPL"}`)
	c := e.dial(t, ctx)
	c.Subscribe(channel, "1")
	status, v := e.do(t, http.MethodPost, "/jobs/"+id+"/start", "")
	require.Equal(t, http.StatusAccepted, status, "%v", v)
	updates := 0
	for progressOf(t, c.Next()).Status == statusRunning {
		updates++
	}
	published := updates + 1 // and "done"

	m := scrape()
	assert.Contains(t, m, "wspub_connections 1\n")
	assert.Contains(t, m, "wspub_subscriptions 1\n")
	assert.Contains(t, m, fmt.Sprintf("wspub_messages_published_total %d\n", published))
	assert.Contains(t, m, fmt.Sprintf("wspub_publish_fanout_recipients_count %d\n", published))
	assert.Contains(t, m, "wspub_publish_fanout_seconds_bucket{le=")

	status, _ = e.do(t, http.MethodPost, "/metrics", "")
	assert.Equal(t, http.StatusMethodNotAllowed, status)
}
