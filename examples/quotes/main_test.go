package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

// fastInterval makes the generator publish a quote of every symbol every 2ms.
const fastInterval = 2 * time.Millisecond

type testEnv struct {
	app *server
	ts  *httptest.Server
}

// newTestEnv serves newServer(cfg) on an httptest server and cleans everything up at the
// end of the test: the generator, then the hub (hijacked connections), then the server.
// wrap, if not nil, wraps the server's listener.
func newTestEnv(t *testing.T, cfg config, wrap func(net.Listener) net.Listener) *testEnv {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = fastInterval
	}
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	app, err := newServer(cfg)
	require.NoError(t, err)
	ts := httptest.NewUnstartedServer(app)
	if wrap != nil {
		ts.Listener = wrap(ts.Listener)
	}
	ts.Start()
	t.Cleanup(func() {
		app.stopGenerator()
		assert.NoError(t, app.hub.Close())
		ts.Close()
	})
	return &testEnv{app: app, ts: ts}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// get sends a request and returns the response and its body.
func get(t *testing.T, client *http.Client, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body
}

// quoteOf returns m as a quote.
func quoteOf(t *testing.T, m wstest.Msg) quote {
	t.Helper()
	require.Equal(t, "quote", m.Type, "%+v", m)
	var q quote
	require.NoError(t, json.Unmarshal(m.Data, &q))
	return q
}

// wsClient is a protocol client of the example. Its replies may come after quotes, which
// until, subscribe and ping return.
type wsClient struct {
	*wstest.Conn
	t *testing.T
}

func (e *testEnv) dial(t *testing.T, ctx context.Context, client *http.Client) *wsClient {
	t.Helper()
	if client == nil {
		client = e.ts.Client()
	}
	return dialURL(t, ctx, wstest.WSURL(e.ts.URL)+"/ws", client)
}

func dialURL(t *testing.T, ctx context.Context, url string, client *http.Client) *wsClient {
	t.Helper()
	return &wsClient{t: t, Conn: wstest.Dial(t, url, &wstest.DialOptions{Context: ctx, HTTPClient: client})}
}

// until reads messages until the reply of the given type and id, and returns the
// quotes read before it (a quote published while the request was being handled may
// precede the reply).
func (c *wsClient) until(typ, id string) (reply wstest.Msg, before []quote) {
	c.t.Helper()
	for {
		m := c.Next()
		if m.Type == typ && m.ID == id {
			return m, before
		}
		before = append(before, quoteOf(c.t, m))
	}
}

// subscribe subscribes to channel and waits for the "subscribed" reply, reading past
// quotes (of the client's other channels), which it returns, unlike Conn.Subscribe.
func (c *wsClient) subscribe(channel, id string) []quote {
	c.t.Helper()
	c.Send(map[string]string{"type": "subscribe", "channel": channel, "id": id})
	reply, before := c.until("subscribed", id)
	require.Equal(c.t, wstest.Msg{Type: "subscribed", Channel: channel, ID: id}, reply)
	return before
}

// ping sends a ping and returns the quotes that arrive before its pong: everything the
// server had queued for this client when it handled the ping.
func (c *wsClient) ping(id string) []quote {
	c.t.Helper()
	c.Send(map[string]string{"type": "ping", "id": id})
	reply, before := c.until("pong", id)
	require.Equal(c.t, wstest.Msg{Type: "pong", ID: id}, reply)
	return before
}

// checkQuote asserts what the page relies on: a quote of symbol with a positive price
// and change and changePct consistent with it.
func checkQuote(t *testing.T, symbol string, q quote) {
	t.Helper()
	assert.Equal(t, symbol, q.Symbol)
	assert.Positive(t, q.Price)
	open := q.Price - q.Change
	assert.Positive(t, open)
	assert.InDelta(t, q.Change/open*100, q.ChangePct, 0.011, "%+v", q)
	assert.Equal(t, roundCents(q.Price), q.Price, "cents")
	assert.InDelta(t, time.Now().UnixMilli(), q.TS, float64(time.Minute.Milliseconds()), "ts is Unix milliseconds")
}

func TestPage(t *testing.T) {
	e := newTestEnv(t, config{}, nil)
	client := e.ts.Client()

	res, body := get(t, client, http.MethodGet, e.ts.URL+"/")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, indexHTML, body)
	page := string(body)
	for _, want := range []string{
		"<!doctype html>", `<script type="module">`, `import { connect } from "/wspub.js";`,
		`connect("/ws")`, `c.subscribe("quote:" + symbol`, "sub.unsubscribe()", "sub.ready",
		`c.onState(`, `c.on("error"`, `fetch("/quotes")`,
		`id="conn-state"`, `id="errors"`, `id="symbols"`, `id="quotes"`, `id="quotes-empty"`,
		"dataset.symbol", "dataset.ready", "dataset.ts", "dataset.direction", `class="price"`,
		`class="change"`, `class="change-pct"`, `class="time"`, `class="toggle"`,
	} {
		assert.Contains(t, page, want)
	}
	assert.NotContains(t, page, "http://", "no external resources")
	assert.NotContains(t, page, "https://", "no external resources")

	res, body = get(t, client, http.MethodGet, e.ts.URL+"/wspub.js")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, res.Header.Get("Content-Type"), "javascript")
	assert.Contains(t, string(body), "export function connect")

	res, _ = get(t, client, http.MethodPost, e.ts.URL+"/")
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	assert.Equal(t, "GET, HEAD", res.Header.Get("Allow"))
	res, _ = get(t, client, http.MethodGet, e.ts.URL+"/nope")
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
	res, _ = get(t, client, http.MethodGet, e.ts.URL+"/ws")
	assert.Equal(t, http.StatusUpgradeRequired, res.StatusCode, "/ws speaks WebSocket only")
}

func TestQuotesSnapshot(t *testing.T) {
	e := newTestEnv(t, config{}, nil)
	client := e.ts.Client()

	res, body := get(t, client, http.MethodGet, e.ts.URL+"/quotes")
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
	var v struct{ Quotes []quote }
	require.NoError(t, json.Unmarshal(body, &v))
	var symbols []string
	for _, q := range v.Quotes {
		symbols = append(symbols, q.Symbol)
		checkQuote(t, q.Symbol, q)
	}
	assert.Equal(t, []string{"AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA"}, symbols, "in the configured order")

	res, body = get(t, client, http.MethodPost, e.ts.URL+"/quotes")
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	assert.Contains(t, string(body), `"error"`)
}

func TestConfig(t *testing.T) {
	for _, bad := range [][]string{{"aapl"}, {""}, {"AAPL", "AAPL"}, {"BRK.B"}, {"ABCDEFGHIJK"}} {
		_, err := newServer(config{Symbols: bad})
		assert.Error(t, err, "%q", bad)
	}
	// A symbol without a known opening price gets a random one.
	e := newTestEnv(t, config{Symbols: []string{"IBM", "AAPL"}}, nil)
	assert.Equal(t, []string{"IBM", "AAPL"}, e.app.cfg.Symbols)
	snap := e.app.market.snapshot()
	require.Len(t, snap, 2)
	checkQuote(t, "IBM", snap[0])
}

// TestRandomWalk checks the generator itself over many steps: prices stay positive and
// plausible, and ts strictly increases even when the clock does not move.
func TestRandomWalk(t *testing.T) {
	now := time.Now()
	m := newMarket(defaultSymbols, 7, now)
	last := map[string]int64{}
	const steps = 5000 // 20 minutes of the default interval
	for i := range steps {
		for _, q := range m.step(now) { // the same instant every time
			require.Positive(t, q.Price)
			require.Greater(t, q.TS, last[q.Symbol])
			last[q.Symbol] = q.TS
			if i == steps-1 {
				assert.InDelta(t, 0, q.ChangePct, 20, "mean reversion keeps %s near its open", q.Symbol)
				assert.Equal(t, now.UnixMilli()+steps, q.TS)
			}
		}
	}
}

func TestSubscribeAndUnsubscribe(t *testing.T) {
	e := newTestEnv(t, config{}, nil)
	ctx := testContext(t)
	c := e.dial(t, ctx, nil)
	other := e.dial(t, ctx, nil)

	got := c.subscribe("quote:AAPL", "1")
	other.subscribe("quote:MSFT", "1")
	other.subscribe("quote:TSLA", "2")

	// Quotes of AAPL only, in order, several per generator round.
	for len(got) < 30 {
		m := c.Next()
		require.Equal(t, "quote:AAPL", m.Channel, "%+v", m)
		got = append(got, quoteOf(t, m))
	}
	for i, q := range got {
		checkQuote(t, "AAPL", q)
		if i > 0 {
			assert.Greater(t, q.TS, got[i-1].TS, "ts increases")
		}
	}

	// The other client gets both of its symbols, and nothing else.
	seen := map[string]int{}
	for seen["MSFT"] < 5 || seen["TSLA"] < 5 {
		q := quoteOf(t, other.Next())
		require.Contains(t, []string{"MSFT", "TSLA"}, q.Symbol)
		seen[q.Symbol]++
	}

	// Unsubscribe: quotes queued before the reply may still arrive, none after it.
	c.Send(map[string]string{"type": "unsubscribe", "channel": "quote:AAPL", "id": "2"})
	reply, _ := c.until("unsubscribed", "2")
	assert.Equal(t, wstest.Msg{Type: "unsubscribed", Channel: "quote:AAPL", ID: "2"}, reply)
	time.Sleep(20 * fastInterval) // the generator goes on publishing meanwhile
	assert.Empty(t, c.ping("x"), "nothing arrives after the unsubscribe: the pong comes first")
	assert.Equal(t, 2, e.app.hub.Stats().Subscriptions, "only the other client's two are left")

	// Subscribing again resumes the feed, with newer quotes.
	before := c.subscribe("quote:AAPL", "3")
	q := quoteOf(t, c.Next())
	checkQuote(t, "AAPL", q)
	for _, b := range before {
		assert.Less(t, b.TS, q.TS)
	}
	assert.Greater(t, q.TS, got[len(got)-1].TS)
}

func TestUnknownChannelsRefused(t *testing.T) {
	e := newTestEnv(t, config{}, nil)
	ctx := testContext(t)
	c := e.dial(t, ctx, nil)
	for i, ch := range []string{"quote:IBM", "quote:aapl", "quote:", "AAPL", "task:42"} {
		id := string(rune('a' + i))
		c.Send(map[string]string{"type": "subscribe", "channel": ch, "id": id})
		m := c.Next()
		assert.Equal(t, "error", m.Type, "%s: %+v", ch, m)
		assert.Equal(t, wspub.CodeInvalidChannel, m.Code, ch)
		assert.Equal(t, id, m.ID)
		assert.Contains(t, m.Message, "AAPL, MSFT", "the message lists the symbols")
	}
	c.Send(map[string]any{"type": "publish", "channel": "quote:AAPL", "data": map[string]int{"price": 1}, "id": "p"})
	m := c.Next()
	assert.Equal(t, wstest.Msg{Type: "error", Code: wspub.CodeForbidden, Channel: "quote:AAPL", ID: "p", Message: m.Message}, m, "clients cannot publish quotes")
	assert.Zero(t, e.app.hub.Stats().Subscriptions)
	assert.Empty(t, c.ping("x"), "the connection stays usable")
}

// smallBuffers wraps a listener so that every accepted connection has a small kernel send
// buffer: a client that stops reading fills it within a few quotes, and what the hub
// writes next has to wait in its send queue.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestSlowClientKeepsNewestQuote is why the hub uses DropOldest: a client that stops
// reading during a burst of quotes loses old quotes, never its connection, and once it
// reads again it gets the newest quote.
func TestSlowClientKeepsNewestQuote(t *testing.T) {
	const queueBytes = 2048 // about 16 quotes
	e := newTestEnv(t, config{
		Interval:      time.Hour, // the test drives the generator itself, as fast as it can
		MaxQueueBytes: queueBytes,
		WriteTimeout:  5 * time.Second, // a write may stall this long before eviction
	}, func(l net.Listener) net.Listener { return smallBuffers{l} })
	ctx := testContext(t)

	// The slow client's side of the socket buffers little too.
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}
	t.Cleanup(transport.CloseIdleConnections)
	slow := e.dial(t, ctx, &http.Client{Transport: transport})
	slow.subscribe("quote:AAPL", "1")

	// A burst of 3000 rounds (3000 AAPL quotes, about 375 KB) while the client reads nothing.
	const rounds = 3000
	var last quote
	now := time.Now()
	for i := range rounds {
		quotes, err := e.app.tick(ctx, now.Add(time.Duration(i)*time.Millisecond))
		require.NoError(t, err)
		last = quotes[0]
	}
	require.Equal(t, "AAPL", last.Symbol)

	st := e.app.hub.Stats()
	assert.Zero(t, st.SlowEvictions, "DropOldest never evicts for a full queue")
	assert.Positive(t, st.Dropped, "the slow client lost its oldest quotes")
	assert.Equal(t, 1, st.Connections)
	t.Logf("after the burst: dropped %d, delivered %d", st.Dropped, st.Delivered)

	// The slow client reads again: what survived, in order, ending with the newest quote.
	var got []quote
	for {
		q := quoteOf(t, slow.Next())
		if len(got) > 0 {
			require.Greater(t, q.TS, got[len(got)-1].TS, "order is kept across drops")
		}
		got = append(got, q)
		if q.TS == last.TS {
			break
		}
	}
	assert.Equal(t, last, got[len(got)-1], "the newest quote arrives")
	assert.Less(t, len(got), rounds, "old quotes were dropped")
	assert.Empty(t, slow.ping("x"), "nothing is left after the newest quote")

	st = e.app.hub.Stats()
	assert.Zero(t, st.SlowEvictions)
	assert.Equal(t, 1, st.Connections, "the slow client is still connected")
	assert.Equal(t, uint64(rounds), uint64(len(got))+st.Dropped,
		"every quote was either delivered or counted as dropped")
}

// TestRun runs the program as main does, and stops it with its context.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", config{Interval: 5 * time.Millisecond}, func(url string) { urls <- url })
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
	c.subscribe("quote:NVDA", "1")
	checkQuote(t, "NVDA", quoteOf(t, c.Next()))

	cancel() // as SIGINT does
	// The hub closes the socket with 1001 ("going away"); reading the close frame answers
	// it, which lets run's hub.Shutdown return.
	for {
		m, err := c.NextOrErr()
		if err != nil {
			assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
			break
		}
		assert.Equal(t, "quote", m.Type)
	}
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}
