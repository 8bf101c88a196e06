package main

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testEnv struct {
	app *server
	ts  *httptest.Server
}

// newTestEnv serves newServer on an httptest server and cleans up at the end of the test:
// the hub (hijacked connections), then the server.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	app := newServer(config{})
	ts := httptest.NewServer(app)
	t.Cleanup(func() {
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

// request sends a request with the given headers and body and returns the status and
// the decoded JSON response (nil if the body is not a JSON object).
func request(t *testing.T, client *http.Client, method, url string, header map[string]string, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
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

var jsonHeader = map[string]string{"Content-Type": "application/json"}

// post sends a JSON body, as the page does, as the user of token ("" for no token).
func (e *testEnv) post(t *testing.T, path, token, body string) (int, map[string]any) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return request(t, e.ts.Client(), http.MethodPost, e.ts.URL+path, h, body)
}

// notificationOf returns m as a notification, sent to the user (not to a channel) and
// with exactly the notification's fields.
func notificationOf(t *testing.T, m wstest.Msg) notification {
	t.Helper()
	require.Equal(t, "notification", m.Type, "%+v", m)
	require.Empty(t, m.Channel, "sent to the user, not to a channel")
	var n notification
	dec := json.NewDecoder(bytes.NewReader(m.Data))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&n))
	return n
}

// announcementOf returns m as an announcement, sent to everyone (not to a channel) and
// with exactly the announcement's fields.
func announcementOf(t *testing.T, m wstest.Msg) announcement {
	t.Helper()
	require.Equal(t, "announcement", m.Type, "%+v", m)
	require.Empty(t, m.Channel, "sent to everyone, not to a channel")
	var a announcement
	dec := json.NewDecoder(bytes.NewReader(m.Data))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&a))
	return a
}

// wsClient is a protocol client of the example, with its notifications.
type wsClient struct {
	*wstest.Conn
	t *testing.T
}

func (e *testEnv) wsURL() string { return wstest.WSURL(e.ts.URL) + "/ws" }

// dialAs connects as the browser client does: the token as the subprotocol "bearer.<token>",
// which the hub does not echo.
func (e *testEnv) dialAs(t *testing.T, ctx context.Context, token string) *wsClient {
	t.Helper()
	return dialURL(t, ctx, e.wsURL(), e.ts.Client(), token)
}

func dialURL(t *testing.T, ctx context.Context, url string, client *http.Client, token string) *wsClient {
	t.Helper()
	return &wsClient{t: t, Conn: wstest.Dial(t, url, &wstest.DialOptions{
		Context:      ctx,
		Subprotocols: []string{wspub.Subprotocol, wspub.SubprotocolTokenPrefix + token},
		HTTPClient:   client,
	})}
}

// waitConns waits until the hub has n connections (a handshake returns before the hub
// has registered the connection for SendToUser, and a close takes a round trip).
func (e *testEnv) waitConns(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return e.app.hub.Stats().Connections == n },
		5*time.Second, time.Millisecond, "want %d connections", n)
}

func recent(t *testing.T, ts int64) {
	t.Helper()
	assert.InDelta(t, time.Now().UnixMilli(), ts, 5000, "ts is Unix milliseconds")
}

func TestPage(t *testing.T) {
	e := newTestEnv(t)
	client := e.ts.Client()

	res, err := client.Get(e.ts.URL + "/?user=bob")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, indexHTML, body)
	page := string(body)
	for _, want := range []string{
		"<!doctype html>", `<script type="module">`, `import { connect } from "/wspub.js";`,
		`connect("/ws", { token: name })`, "client.close()", `c.on("notification"`, `c.on("announcement"`,
		`c.on("error"`, "c.onState(", `post("/notify", { user:`, `post("/broadcast", { text })`,
		`"Content-Type": "application/json"`,
		`id="conn-state"`, `id="errors"`, `id="user"`, `id="current-user"`, `id="notify-form"`,
		`id="notify-user"`, `id="notify-text"`, `id="notify-send"`, `id="broadcast-form"`,
		`id="broadcast-text"`, `id="broadcast-send"`, `id="badge"`, `id="mark-read"`,
		`id="notifications"`, `id="notifications-empty"`, "dataset.type", "dataset.count",
	} {
		assert.Contains(t, page, want)
	}
	for _, u := range users { // the page's selectors list exactly the server's users
		assert.Equal(t, 2, strings.Count(page, `<option value="`+u+`">`+u+`</option>`), u)
	}
	assert.Equal(t, 2*len(users), strings.Count(page, "<option "))
	assert.NotContains(t, page, "http://", "no external resources")
	assert.NotContains(t, page, "https://", "no external resources")

	res, err = client.Get(e.ts.URL + "/wspub.js")
	require.NoError(t, err)
	body, err = io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, res.Header.Get("Content-Type"), "javascript")
	assert.Contains(t, string(body), "export function connect")

	status, _ := request(t, client, http.MethodPost, e.ts.URL+"/", nil, "")
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	status, _ = request(t, client, http.MethodGet, e.ts.URL+"/nope", nil, "")
	assert.Equal(t, http.StatusNotFound, status)
}

func TestHandshakeAuthentication(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)

	for _, tc := range []struct {
		name      string
		protocols []string
		header    http.Header
	}{
		{"no token", []string{wspub.Subprotocol}, nil},
		{"unknown user", []string{wspub.Subprotocol, "bearer.dave"}, nil},
		{"wrong case", []string{wspub.Subprotocol, "bearer.Alice"}, nil},
		{"empty token", []string{wspub.Subprotocol, "bearer."}, nil},
		{"unknown bearer header", []string{wspub.Subprotocol}, http.Header{"Authorization": {"Bearer dave"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, res, err := websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{
				Subprotocols: tc.protocols, HTTPHeader: tc.header, HTTPClient: e.ts.Client(),
			})
			if conn != nil {
				_ = conn.CloseNow()
			}
			require.Error(t, err)
			require.NotNil(t, res)
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
		})
	}

	// Every known user may connect; a client that can set headers may use one instead
	// of the subprotocol.
	for _, u := range users {
		e.dialAs(t, ctx, u)
	}
	wstest.Dial(t, e.wsURL(), &wstest.DialOptions{
		Context:    ctx,
		Header:     http.Header{"Authorization": {"Bearer carol"}},
		HTTPClient: e.ts.Client(),
	})
	e.waitConns(t, 4)
	st := e.app.hub.Stats()
	assert.Equal(t, 3, st.Users)
	assert.Equal(t, uint64(5), st.Rejected)
}

func TestNotifyAndBroadcast(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	alice1 := e.dialAs(t, ctx, "alice")
	alice2 := e.dialAs(t, ctx, "alice") // a second tab of alice
	bob := e.dialAs(t, ctx, "bob")
	e.waitConns(t, 3)

	// bob notifies alice: both of her connections get it, bob does not.
	status, v := e.post(t, "/notify", "bob", `{"user":"alice","text":"  lunch at noon?  "}`)
	require.Equal(t, http.StatusAccepted, status, "%v", v)
	sent := v["sent"].(map[string]any)
	assert.Equal(t, "alice", sent["to"])
	for _, c := range []*wsClient{alice1, alice2} {
		n := c.notification()
		assert.Equal(t, "bob", n.From)
		assert.Equal(t, "lunch at noon?", n.Text, "trimmed")
		recent(t, n.TS)
		assert.Equal(t, float64(n.TS), sent["notification"].(map[string]any)["ts"])
	}

	// Without a token the sender is "system".
	status, _ = e.post(t, "/notify", "", `{"user":"bob","text":"maintenance at 6"}`)
	require.Equal(t, http.StatusAccepted, status)

	// A broadcast reaches everyone.
	status, v = e.post(t, "/broadcast", "alice", `{"text":"release 2.0 is out"}`)
	require.Equal(t, http.StatusAccepted, status, "%v", v)
	for _, c := range []*wsClient{alice1, alice2} {
		a := announcementOf(t, c.Next())
		assert.Equal(t, "release 2.0 is out", a.Text)
		recent(t, a.TS)
		c.NothingPending("x") // in particular not bob's notification
	}
	// bob got his own notification, then the broadcast, and never alice's.
	n := bob.notification()
	assert.Equal(t, notification{From: "system", Text: "maintenance at 6", TS: n.TS}, n)
	assert.Equal(t, "release 2.0 is out", announcementOf(t, bob.Next()).Text)
	bob.NothingPending("x")

	st := e.app.hub.Stats()
	assert.Zero(t, st.Dropped)
	assert.Zero(t, st.SlowEvictions)
}

// notification reads the next message and returns it as a notification.
func (c *wsClient) notification() notification {
	c.t.Helper()
	return notificationOf(c.t, c.Next())
}

func TestNotifyOfflineUser(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	alice := e.dialAs(t, ctx, "alice")
	e.waitConns(t, 1)

	// carol exists but is not connected: accepted, delivered to no one, not stored.
	status, v := e.post(t, "/notify", "alice", `{"user":"carol","text":"are you there?"}`)
	assert.Equal(t, http.StatusAccepted, status, "%v", v)
	carol := e.dialAs(t, ctx, "carol")
	e.waitConns(t, 2)
	carol.NothingPending("x")
	alice.NothingPending("x")
}

// TestSwitchUser does what the page's "log in as" selector does: close the client and
// connect again as another user. Notifications follow the new user.
func TestSwitchUser(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	tab := e.dialAs(t, ctx, "alice")
	e.waitConns(t, 1)
	require.NoError(t, tab.WS.Close(websocket.StatusNormalClosure, ""))
	e.waitConns(t, 0)

	tab = e.dialAs(t, ctx, "bob")
	e.waitConns(t, 1)
	status, _ := e.post(t, "/notify", "carol", `{"user":"alice","text":"for alice"}`)
	require.Equal(t, http.StatusAccepted, status)
	status, _ = e.post(t, "/notify", "carol", `{"user":"bob","text":"for bob"}`)
	require.Equal(t, http.StatusAccepted, status)
	n := tab.notification()
	assert.Equal(t, "for bob", n.Text)
	assert.Equal(t, "carol", n.From)
	tab.NothingPending("x")
}

func TestNoChannels(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	c := e.dialAs(t, ctx, "alice")
	c.Send(map[string]string{"type": "subscribe", "channel": "user:bob", "id": "1"})
	m := c.Next()
	assert.Equal(t, "error", m.Type)
	assert.Equal(t, wspub.CodeForbidden, m.Code)
	assert.Equal(t, "1", m.ID)
	assert.Zero(t, e.app.hub.Stats().Subscriptions)
	c.NothingPending("x")
}

func TestBadRequests(t *testing.T) {
	e := newTestEnv(t)
	long := strings.Repeat("é", maxTextRunes+1)
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		body               string
		status             int
	}{
		{"GET notify", http.MethodGet, "/notify", nil, "", http.StatusMethodNotAllowed},
		{"PUT notify", http.MethodPut, "/notify", jsonHeader, `{"user":"bob","text":"x"}`, http.StatusMethodNotAllowed},
		{"GET broadcast", http.MethodGet, "/broadcast", nil, "", http.StatusMethodNotAllowed},
		{"no content type", http.MethodPost, "/notify", nil, `{"user":"bob","text":"x"}`, http.StatusUnsupportedMediaType},
		{"form content type", http.MethodPost, "/broadcast", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, `text=x`, http.StatusUnsupportedMediaType},
		{"text/plain", http.MethodPost, "/notify", map[string]string{"Content-Type": "text/plain"}, `{"user":"bob","text":"x"}`, http.StatusUnsupportedMediaType},
		{"empty body", http.MethodPost, "/notify", jsonHeader, "", http.StatusBadRequest},
		{"malformed", http.MethodPost, "/notify", jsonHeader, `{"user":"bob",`, http.StatusBadRequest},
		{"not an object", http.MethodPost, "/notify", jsonHeader, `["bob","x"]`, http.StatusBadRequest},
		{"null", http.MethodPost, "/notify", jsonHeader, `null`, http.StatusBadRequest},
		{"trailing data", http.MethodPost, "/notify", jsonHeader, `{"user":"bob","text":"x"} {}`, http.StatusBadRequest},
		{"trailing brace", http.MethodPost, "/broadcast", jsonHeader, `{"text":"x"}}`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, "/notify", jsonHeader, `{"user":"bob","text":"x","from":"alice"}`, http.StatusBadRequest},
		{"no user", http.MethodPost, "/notify", jsonHeader, `{"text":"x"}`, http.StatusBadRequest},
		{"user not a string", http.MethodPost, "/notify", jsonHeader, `{"user":42,"text":"x"}`, http.StatusBadRequest},
		{"no text", http.MethodPost, "/notify", jsonHeader, `{"user":"bob"}`, http.StatusBadRequest},
		{"text not a string", http.MethodPost, "/broadcast", jsonHeader, `{"text":{"a":1}}`, http.StatusBadRequest},
		{"empty text", http.MethodPost, "/broadcast", jsonHeader, `{"text":""}`, http.StatusBadRequest},
		{"blank text", http.MethodPost, "/notify", jsonHeader, `{"user":"bob","text":" \n\t "}`, http.StatusBadRequest},
		{"text too long", http.MethodPost, "/broadcast", jsonHeader, `{"text":"` + long + `"}`, http.StatusBadRequest},
		{"body too large", http.MethodPost, "/broadcast", jsonHeader, `{"text":"` + strings.Repeat("a", maxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
		{"unknown user", http.MethodPost, "/notify", jsonHeader, `{"user":"dave","text":"x"}`, http.StatusNotFound},
		{"empty user", http.MethodPost, "/notify", jsonHeader, `{"user":"","text":"x"}`, http.StatusNotFound},
		{"unknown sender", http.MethodPost, "/notify", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer dave"}, `{"user":"bob","text":"x"}`, http.StatusUnauthorized},
		{"malformed authorization", http.MethodPost, "/notify", map[string]string{"Content-Type": "application/json", "Authorization": "Basic Ym9iOng="}, `{"user":"bob","text":"x"}`, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, v := request(t, e.ts.Client(), tc.method, e.ts.URL+tc.path, tc.header, tc.body)
			assert.Equal(t, tc.status, status)
			assert.NotEmpty(t, v["error"], "errors are JSON {\"error\":...}")
		})
	}
	assert.Zero(t, e.app.hub.Stats().Published, "no bad request sent anything")

	// The limits themselves are fine; so is a charset parameter.
	status, v := request(t, e.ts.Client(), http.MethodPost, e.ts.URL+"/broadcast",
		map[string]string{"Content-Type": "application/json; charset=utf-8"},
		`{"text":"`+strings.Repeat("é", maxTextRunes)+`"}`)
	assert.Equal(t, http.StatusAccepted, status, "%v", v)
}

// TestRun runs the program as main does, and stops it with its context.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", config{}, func(url string) { urls <- url })
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	status, _ := request(t, client, http.MethodGet, url, nil, "")
	assert.Equal(t, http.StatusOK, status)

	wsctx := testContext(t)
	c := dialURL(t, wsctx, wstest.WSURL(url)+"ws", client, "alice")
	c.NothingPending("ready") // registered: SendToUser can reach it
	status, _ = request(t, client, http.MethodPost, url+"notify", jsonHeader, `{"user":"alice","text":"hi"}`)
	require.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "hi", c.notification().Text)

	cancel() // as SIGINT does
	// The hub closes the socket with 1001 ("going away"); reading the close frame answers
	// it, which lets run's hub.Shutdown return.
	_, err := c.NextOrErr()
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}
