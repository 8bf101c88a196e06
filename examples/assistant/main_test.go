package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wspub/wspub/internal/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fast are options for tests: answers stream in milliseconds.
var fast = serverOptions{ThinkDelay: time.Millisecond, ChunkDelay: time.Millisecond, RecommendDelay: time.Millisecond, AnswerTimeout: 10 * time.Second}

type testEnv struct {
	app *server
	ts  *httptest.Server
}

// newTestEnv serves newServer(opts) on an httptest server and stops everything at the end
// of the test: the answers and the hub (hijacked connections), then the server.
func newTestEnv(t *testing.T, opts serverOptions) *testEnv {
	t.Helper()
	app, err := newServer(opts)
	require.NoError(t, err)
	ts := httptest.NewServer(app)
	t.Cleanup(func() {
		assert.NoError(t, app.Close())
		ts.Close()
	})
	return &testEnv{app: app, ts: ts}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dataOf decodes the message's data as an object of strings (and other values).
func dataOf(t *testing.T, m wstest.Msg) map[string]any {
	t.Helper()
	return wstest.Data[map[string]any](t, m)
}

// wsClient is a protocol client of the example, with the assistant's own messages.
type wsClient struct {
	*wstest.Conn
	t *testing.T
}

func (e *testEnv) dial(t *testing.T, ctx context.Context) *wsClient {
	t.Helper()
	return dialURL(t, ctx, wstest.WSURL(e.ts.URL)+"/ws", e.ts.Client())
}

func dialURL(t *testing.T, ctx context.Context, url string, client *http.Client) *wsClient {
	t.Helper()
	return &wsClient{t: t, Conn: wstest.Dial(t, url, &wstest.DialOptions{Context: ctx, HTTPClient: client})}
}

// send sends {"type":typ,"id":id,"data":data}; a nil data is left out.
func (c *wsClient) send(typ, id string, data any) {
	c.t.Helper()
	m := map[string]any{"type": typ, "id": id}
	if data != nil {
		m["data"] = data
	}
	c.Send(m)
}

// readStatus reads a status message and returns its answer id. "thinking" is the reply
// to the ask, so it carries the ask's id; the later ones carry none.
func (c *wsClient) readStatus(request, state string) string {
	c.t.Helper()
	m := c.Expect("status")
	d := dataOf(c.t, m)
	if state == "thinking" {
		assert.Equal(c.t, request, m.ID, "the reply to the ask")
	} else {
		assert.Empty(c.t, m.ID)
	}
	assert.Equal(c.t, state, d["state"])
	id, _ := d["id"].(string)
	require.True(c.t, strings.HasPrefix(id, "a-"), "answer id %q", id)
	return id
}

func get(t *testing.T, client *http.Client, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(b)
}

func TestPage(t *testing.T) {
	e := newTestEnv(t, fast)
	res, page := get(t, e.ts.Client(), http.MethodGet, e.ts.URL+"/")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, string(indexHTML), page)
	for _, want := range []string{
		"<!doctype html>", `<script type="module">`, `import { connect } from "/wspub.js";`, `connect("/ws")`,
		`id="conn-state"`, `id="errors"`, `id="ask-form"`, `id="prompt"`, `maxlength="500"`, `id="ask"`,
		`id="turns"`, `id="panel-toggle"`, `id="panel"`, `c.request("ask", { prompt })`,
		`c.request("action_clicked", { action: a.id, answer: data.id })`, `c.send("ui_state_changed"`,
		`c.on("status"`, `c.on("stream.delta"`, `c.on("stream.done"`, `c.on("stream.error"`,
		`c.on("recommendation"`, `c.on("error"`, "DOM contract",
	} {
		assert.Contains(t, page, want)
	}
	assert.NotContains(t, page, "http://", "the page must load no external resources")
	assert.NotContains(t, page, "https://")

	res, _ = get(t, e.ts.Client(), http.MethodPost, e.ts.URL+"/")
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	res, _ = get(t, e.ts.Client(), http.MethodGet, e.ts.URL+"/nope")
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
	res, _ = get(t, e.ts.Client(), http.MethodGet, e.ts.URL+"/ws") // not an upgrade
	assert.Equal(t, http.StatusUpgradeRequired, res.StatusCode)
}

func TestClientScript(t *testing.T) {
	e := newTestEnv(t, fast)
	res, body := get(t, e.ts.Client(), http.MethodGet, e.ts.URL+"/wspub.js")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, res.Header.Get("Content-Type"), "javascript")
	assert.Contains(t, body, "export")
	assert.Contains(t, body, "connect")
}

func TestAskStreamsAnswer(t *testing.T) {
	e := newTestEnv(t, fast)
	ctx := testContext(t)
	c := e.dial(t, ctx)

	const prompt = "Should I buy AAPL?"
	c.send("ask", "q1", map[string]string{"prompt": "  " + prompt + "\n"})
	id := c.readStatus("q1", "thinking")
	assert.Equal(t, id, c.readStatus("q1", "writing"))

	var deltas []string
	var done map[string]any
	for done == nil {
		m := c.Next()
		d := dataOf(t, m)
		assert.Equal(t, id, d["id"])
		switch m.Type {
		case "stream.delta":
			text, _ := d["text"].(string)
			require.NotEmpty(t, text)
			deltas = append(deltas, text)
		case "stream.done":
			done = d
		default:
			t.Fatalf("unexpected %+v", m)
		}
	}
	assert.GreaterOrEqual(t, len(deltas), 3, "the answer streams in several chunks")
	assert.Equal(t, done["text"], strings.Join(deltas, ""), "the chunks, in order, make the full text")
	assert.Contains(t, done["text"], "“"+prompt+"”", "the answer is built from the (trimmed) prompt")

	rec := c.Expect("recommendation")
	var r struct {
		ID      string   `json:"id"`
		Actions []action `json:"actions"`
	}
	require.NoError(t, json.Unmarshal(rec.Data, &r))
	assert.Equal(t, id, r.ID)
	assert.Contains(t, r.Actions, action{ID: "run_backtest", Label: "Run backtest"})
	assert.Contains(t, r.Actions, action{ID: "show_chart", Label: "Show chart"})

	// A recommended action is confirmed with a notice.
	c.send("action_clicked", "c1", map[string]string{"action": "run_backtest", "answer": id})
	nm := c.Expect("notice")
	assert.Equal(t, "c1", nm.ID, "the reply to the click")
	n := dataOf(t, nm)
	assert.Equal(t, "run_backtest", n["action"])
	assert.Equal(t, id, n["answer"])
	assert.Contains(t, n["text"], "Run backtest")

	// ui_state_changed is accepted silently: the next thing the client gets is the pong
	// to the ping it sent after it, not an error.
	c.send("ui_state_changed", "u1", map[string]any{"panel": "sources", "open": true})
	c.send("ui_state_changed", "u2", map[string]any{"panel": "sources", "open": false})
	c.NothingPending("p1")

	// The connection may ask again once the answer is done.
	c.send("ask", "q2", map[string]string{"prompt": "And MSFT?"})
	assert.NotEqual(t, id, c.readStatus("q2", "thinking"), "every answer has an id of its own")
	require.Eventually(t, func() bool { return e.app.activeStreams() == 0 }, 5*time.Second, time.Millisecond)
}

// TestAskRightAfterDone: the page enables Ask when stream.done arrives, so a question
// sent at once is answered, never refused as busy, though the answer's recommendation
// comes later.
func TestAskRightAfterDone(t *testing.T) {
	opts := fast
	opts.RecommendDelay = 20 * time.Millisecond
	e := newTestEnv(t, opts)
	c := e.dial(t, testContext(t))
	for round := range 5 {
		q := fmt.Sprint("q", round)
		c.send("ask", q, map[string]string{"prompt": "AAPL?"})
		id := c.readStatus(q, "thinking")
		for {
			m := c.Next()
			require.NotEqual(t, "error", m.Type, "%+v", m)
			if m.Type == "stream.done" {
				break
			}
		}
		next := fmt.Sprint("q", round, "-again")
		c.send("ask", next, map[string]string{"prompt": "And MSFT?"})
		// Until the second answer's recommendation: the first's recommendation, and
		// the whole second answer, with no error.
		var second string
		firstRec := false
		for {
			m := c.Next()
			require.NotEqual(t, "error", m.Type, "%+v", m)
			d := dataOf(t, m)
			switch {
			case m.Type == "status" && d["state"] == "thinking":
				require.Equal(t, next, m.ID)
				second, _ = d["id"].(string)
			case m.Type == "recommendation" && d["id"] == id:
				firstRec = true
			}
			if m.Type == "recommendation" && second != "" && d["id"] == second {
				break
			}
		}
		assert.True(t, firstRec, "the first answer's recommendation arrived")
	}
	require.Eventually(t, func() bool { return e.app.activeStreams() == 0 }, 5*time.Second, time.Millisecond)
}

func TestInvalidMessages(t *testing.T) {
	e := newTestEnv(t, fast)
	ctx := testContext(t)
	c := e.dial(t, ctx)

	for _, tc := range []struct {
		name, typ string
		data      any
		code      string
	}{
		{"empty prompt", "ask", map[string]string{"prompt": ""}, "invalid_prompt"},
		{"blank prompt", "ask", map[string]string{"prompt": " \n\t "}, "invalid_prompt"},
		{"long prompt", "ask", map[string]string{"prompt": strings.Repeat("é", 501)}, "invalid_prompt"},
		{"no data", "ask", nil, "invalid_prompt"},
		{"no prompt", "ask", map[string]string{}, "invalid_prompt"},
		{"prompt not a string", "ask", map[string]any{"prompt": 42}, "invalid_prompt"},
		{"data not an object", "ask", "hello", "invalid_prompt"},
		{"unknown key", "ask", map[string]string{"prompt": "hi", "model": "gpt"}, "invalid_prompt"},
		{"unknown action", "action_clicked", map[string]string{"action": "sell_everything", "answer": "a-1"}, "invalid_action"},
		{"action without answer", "action_clicked", map[string]string{"action": "show_chart"}, "invalid_action"},
		{"action of no answer", "action_clicked", map[string]string{"action": "show_chart", "answer": "a-000000000000"}, "unknown_answer"},
		{"panel without open", "ui_state_changed", map[string]string{"panel": "sources"}, "invalid_ui_state"},
		{"open not a bool", "ui_state_changed", map[string]any{"panel": "sources", "open": "yes"}, "invalid_ui_state"},
		{"bad panel name", "ui_state_changed", map[string]any{"panel": "<script>", "open": true}, "invalid_ui_state"},
		{"unknown type", "buy_now", map[string]string{"symbol": "AAPL"}, "unknown_type"},
		{"server-only type", "stream.delta", map[string]string{"text": "x"}, "unknown_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			c.send(tc.typ, id, tc.data)
			c.ExpectError(tc.code, id)
		})
	}
	c.NothingPending("still-open") // error replies never cost the connection
	assert.Zero(t, e.app.activeStreams())

	// 500 characters (not bytes) is the limit.
	c.send("ask", "q500", map[string]string{"prompt": strings.Repeat("é", 500)})
	c.readStatus("q500", "thinking")
}

func TestAnswerOfAnotherConnection(t *testing.T) {
	e := newTestEnv(t, fast)
	ctx := testContext(t)
	alice, bob := e.dial(t, ctx), e.dial(t, ctx)
	alice.send("ask", "q1", map[string]string{"prompt": "hello"})
	id := alice.readStatus("q1", "thinking")

	bob.send("action_clicked", "c1", map[string]string{"action": "show_chart", "answer": id})
	bob.ExpectError("unknown_answer", "c1")
}

func TestBusy(t *testing.T) {
	e := newTestEnv(t, serverOptions{ThinkDelay: time.Hour, AnswerTimeout: time.Hour, MaxStreams: 2})
	ctx := testContext(t)
	a, b, c := e.dial(t, ctx), e.dial(t, ctx), e.dial(t, ctx)

	a.send("ask", "q1", map[string]string{"prompt": "one"})
	a.readStatus("q1", "thinking")
	a.send("ask", "q2", map[string]string{"prompt": "two"})
	a.ExpectError("busy", "q2") // one answer at a time per connection

	b.send("ask", "q1", map[string]string{"prompt": "one"})
	b.readStatus("q1", "thinking")
	c.send("ask", "q1", map[string]string{"prompt": "one"})
	c.ExpectError("busy", "q1") // MaxStreams over all connections
	assert.Equal(t, 2, e.app.activeStreams())
}

func TestTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newTestEnv(t, serverOptions{ThinkDelay: time.Millisecond, ChunkDelay: time.Millisecond, AnswerTimeout: timeout})
	ctx := testContext(t)
	c := e.dial(t, ctx)

	start := time.Now()
	c.send("ask", "q1", map[string]string{"prompt": "Please TIMEOUT on this one"})
	id := c.readStatus("q1", "thinking")
	c.readStatus("q1", "writing")
	for range stallAfter { // a few chunks, then the fake model stalls
		d := dataOf(t, c.Expect("stream.delta"))
		assert.Equal(t, id, d["id"])
	}
	m := c.Expect("stream.error")
	assert.GreaterOrEqual(t, time.Since(start), timeout, "the deadline ends the answer")
	d := dataOf(t, m)
	assert.Equal(t, id, d["id"])
	assert.Equal(t, "timeout", d["code"])
	assert.Contains(t, d["message"], timeout.String())

	// Nothing follows (no stream.done, no recommendation), and the connection may ask again.
	c.NothingPending("p1")
	require.Eventually(t, func() bool { return e.app.activeStreams() == 0 }, 5*time.Second, time.Millisecond)
	c.send("ask", "q2", map[string]string{"prompt": "hello"})
	c.readStatus("q2", "thinking")
}

func TestDisconnectStopsAnswer(t *testing.T) {
	// After its first chunk an answer would wait an hour: only the end of the connection
	// can stop it within the test.
	e := newTestEnv(t, serverOptions{ThinkDelay: time.Millisecond, ChunkDelay: time.Hour, AnswerTimeout: time.Hour})
	ctx := testContext(t)
	c := e.dial(t, ctx)
	c.send("ask", "q1", map[string]string{"prompt": "a long answer, please"})
	c.readStatus("q1", "thinking")
	c.readStatus("q1", "writing")
	c.Expect("stream.delta")
	require.Equal(t, 1, e.app.activeStreams())

	require.NoError(t, c.WS.CloseNow()) // the tab is closed mid-answer
	require.Eventually(t, func() bool { return e.app.activeStreams() == 0 }, 5*time.Second, time.Millisecond,
		"the answer's goroutine stops with the connection")
	require.Eventually(t, func() bool {
		e.app.mu.Lock()
		defer e.app.mu.Unlock()
		return len(e.app.convs) == 0
	}, 5*time.Second, time.Millisecond, "the connection's state is forgotten")
	// goleak, in TestMain, checks that no goroutine is left.
}

func TestShutdownEndsAnswers(t *testing.T) {
	e := newTestEnv(t, serverOptions{ThinkDelay: time.Millisecond, ChunkDelay: time.Hour, AnswerTimeout: time.Hour})
	ctx := testContext(t)
	c := e.dial(t, ctx)
	c.send("ask", "q1", map[string]string{"prompt": "a long answer, please"})
	id := c.readStatus("q1", "thinking")
	c.readStatus("q1", "writing")
	c.Expect("stream.delta")

	done := make(chan error, 1)
	go func() { done <- e.app.Shutdown(ctx) }()
	d := dataOf(t, c.Expect("stream.error"))
	assert.Equal(t, id, d["id"])
	assert.Equal(t, "shutting_down", d["code"])
	_, err := c.NextOrErr() // reading answers the hub's close handshake
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
	require.NoError(t, <-done)
	assert.Zero(t, e.app.activeStreams())
}

func TestChunks(t *testing.T) {
	for _, text := range []string{"", "one", "one two", "a b c d e f g", "  spaced   out  ", cannedAnswer("x")} {
		got := chunks(text, 3)
		assert.Equal(t, text, strings.Join(got, ""), "%q", text)
	}
	assert.GreaterOrEqual(t, len(chunks(cannedAnswer("hi"), wordsPerChunk)), stallAfter+2)
	long := cannedAnswer(strings.Repeat("word ", 100))
	assert.Contains(t, long, "…", "a long prompt is shortened in the answer")
}

// TestRun runs the program as main does, and stops it with its context.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", fast, func(url string) { urls <- url })
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	res, _ := get(t, client, http.MethodGet, url)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	res, _ = get(t, client, http.MethodGet, url+"wspub.js")
	assert.Equal(t, http.StatusOK, res.StatusCode)

	wsctx := testContext(t)
	c := dialURL(t, wsctx, wstest.WSURL(url)+"ws", client)
	c.send("ask", "q1", map[string]string{"prompt": "hi"})
	c.readStatus("q1", "thinking")

	cancel() // as SIGINT does
	for {
		_, err := c.NextOrErr()
		if err != nil {
			assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
			break
		}
	}
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}
