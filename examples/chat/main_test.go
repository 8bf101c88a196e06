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
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testEnv struct {
	app *server
	ts  *httptest.Server
}

// newTestEnv serves newServer on an httptest server and closes the hub (hijacked
// connections), then the server, at the end of the test.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	app := newServer(nil)
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

// wireMsg is any message of the wspub protocol, as a client receives it.
type wireMsg struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	ID      string          `json:"id"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// wsClient is a protocol client that splits every frame on '\n'.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	buf  []wireMsg
}

func (e *testEnv) wsURL() string { return "ws" + strings.TrimPrefix(e.ts.URL, "http") + "/ws" }

// dialAs connects as user, the demo token, the way the page does:
// subprotocols ["wspub.v1", "bearer.<user>"].
func (e *testEnv) dialAs(t *testing.T, ctx context.Context, user string) *wsClient {
	t.Helper()
	return dialURL(t, ctx, e.wsURL(), e.ts.Client(), user)
}

func dialURL(t *testing.T, ctx context.Context, url string, client *http.Client, user string) *wsClient {
	t.Helper()
	conn, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{wspub.Subprotocol, wspub.SubprotocolTokenPrefix + user},
		HTTPClient:   client,
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	require.Equal(t, "wspub.v1", conn.Subprotocol(), "the token is never echoed")
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) send(ctx context.Context, v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(c.t, err)
	require.NoError(c.t, c.conn.Write(ctx, websocket.MessageText, b))
}

func (c *wsClient) nextOrErr(ctx context.Context) (wireMsg, error) {
	for len(c.buf) == 0 {
		typ, frame, err := c.conn.Read(ctx)
		if err != nil {
			return wireMsg{}, err
		}
		require.Equal(c.t, websocket.MessageText, typ)
		for _, line := range bytes.Split(frame, []byte{'\n'}) {
			var m wireMsg
			require.NoError(c.t, json.Unmarshal(line, &m), "line %q", line)
			c.buf = append(c.buf, m)
		}
	}
	m := c.buf[0]
	c.buf = c.buf[1:]
	return m, nil
}

func (c *wsClient) next(ctx context.Context) wireMsg {
	c.t.Helper()
	m, err := c.nextOrErr(ctx)
	require.NoError(c.t, err)
	return m
}

func (c *wsClient) join(ctx context.Context, room, id string) {
	c.t.Helper()
	c.send(ctx, map[string]string{"type": "subscribe", "channel": room, "id": id})
	assert.Equal(c.t, wireMsg{Type: "subscribed", Channel: room, ID: id}, c.next(ctx))
}

func (c *wsClient) say(ctx context.Context, id string, data any) {
	c.t.Helper()
	c.send(ctx, map[string]any{"type": "say", "id": id, "data": data})
}

// expectError reads the next message and checks it is an error reply with code and id.
func (c *wsClient) expectError(ctx context.Context, code, id string) {
	c.t.Helper()
	m := c.next(ctx)
	assert.Equal(c.t, "error", m.Type, "%+v", m)
	assert.Equal(c.t, code, m.Code, "%+v", m)
	assert.Equal(c.t, id, m.ID, "the error reply echoes the message's id")
	assert.NotEmpty(c.t, m.Message)
}

// expectChat reads the next message and checks it is a chat line in room.
func (c *wsClient) expectChat(ctx context.Context, room string) chatLine {
	c.t.Helper()
	m := c.next(ctx)
	require.Equal(c.t, "chat", m.Type, "%+v", m)
	assert.Equal(c.t, room, m.Channel)
	var line chatLine
	dec := json.NewDecoder(bytes.NewReader(m.Data))
	dec.DisallowUnknownFields() // exactly id, user, text, ts
	require.NoError(c.t, dec.Decode(&line))
	return line
}

// ping checks the connection still works and that nothing else is queued before the pong.
func (c *wsClient) ping(ctx context.Context, id string) {
	c.t.Helper()
	c.send(ctx, map[string]string{"type": "ping", "id": id})
	assert.Equal(c.t, wireMsg{Type: "pong", ID: id}, c.next(ctx))
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
	e := newTestEnv(t)
	res, page := get(t, e.ts.Client(), http.MethodGet, e.ts.URL+"/")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, string(indexHTML), page)
	for _, want := range []string{
		"<!doctype html>", `<script type="module">`, `import { connect } from "/wspub.js";`,
		`connect("/ws", { token: name })`, `c.subscribe(room,`, `sub.ready`, `sub.unsubscribe()`,
		`c.send("say", { room: active, text })`, `c.publish(active, { typing: true, user: me })`,
		`c.on("error"`, `c.close()`, `id="conn-state"`, `id="errors"`, `id="login-form"`, `id="user-name"`,
		`id="logout"`, `id="rooms"`, `id="messages"`, `id="typing"`, `id="say-form"`, `id="text"`,
		`maxlength="500"`, "DOM contract",
	} {
		assert.Contains(t, page, want)
	}
	for _, room := range append(publicRooms, adminRoom) {
		assert.Contains(t, page, `class="room" data-room="`+room+`"`)
		assert.Contains(t, page, `class="messages" data-room="`+room+`"`)
	}
	assert.NotContains(t, page, "http://", "the page must load no external resources")
	assert.NotContains(t, page, "https://")

	res, _ = get(t, e.ts.Client(), http.MethodPost, e.ts.URL+"/")
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	res, _ = get(t, e.ts.Client(), http.MethodGet, e.ts.URL+"/nope")
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
}

func TestClientScript(t *testing.T) {
	e := newTestEnv(t)
	res, body := get(t, e.ts.Client(), http.MethodGet, e.ts.URL+"/wspub.js")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, res.Header.Get("Content-Type"), "javascript")
	assert.Contains(t, body, "export function connect")
}

func TestLogin(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	for _, tc := range []struct {
		name  string
		proto []string
	}{
		{"no token", []string{wspub.Subprotocol}},
		{"empty name", []string{wspub.Subprotocol, "bearer."}},
		{"upper case", []string{wspub.Subprotocol, "bearer.Alice"}},
		{"too long", []string{wspub.Subprotocol, "bearer." + strings.Repeat("a", 17)}},
		{"starts with a digit", []string{wspub.Subprotocol, "bearer.1alice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, res, err := websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{
				Subprotocols: tc.proto, HTTPClient: e.ts.Client(),
			})
			if conn != nil {
				_ = conn.CloseNow()
			}
			require.Error(t, err)
			require.NotNil(t, res)
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
		})
	}
	c := e.dialAs(t, ctx, "bob_2-x")
	c.ping(ctx, "1")
}

func TestChatLinesAreStampedByTheServer(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	alice, bob := e.dialAs(t, ctx, "alice"), e.dialAs(t, ctx, "bob")
	alice.join(ctx, "room:general", "j1")
	bob.join(ctx, "room:general", "j1")

	// Alice claims to be admin in her data: the server ignores it and says who she is.
	before := time.Now().UnixMilli()
	alice.say(ctx, "s1", map[string]string{"room": "room:general", "text": "  hello bob  ", "user": "admin"})
	for _, c := range []*wsClient{alice, bob} { // the sender gets her line like everyone
		line := c.expectChat(ctx, "room:general")
		assert.Equal(t, "alice", line.User)
		assert.Equal(t, "hello bob", line.Text)
		assert.NotEmpty(t, line.ID)
		assert.GreaterOrEqual(t, line.TS, before)
		assert.LessOrEqual(t, line.TS, time.Now().UnixMilli())
	}

	bob.say(ctx, "s1", map[string]string{"room": "room:general", "text": "hi alice\nhow are you?"})
	a, b := alice.expectChat(ctx, "room:general"), bob.expectChat(ctx, "room:general")
	assert.Equal(t, a, b, "everyone sees the same line")
	assert.Equal(t, "bob", a.User)
	assert.Equal(t, "hi alice\nhow are you?", a.Text)

	// A room one has not joined delivers nothing to one.
	bob.join(ctx, "room:go", "j2")
	bob.say(ctx, "s2", map[string]string{"room": "room:go", "text": "anyone into generics?"})
	assert.Equal(t, "bob", bob.expectChat(ctx, "room:go").User)
	alice.ping(ctx, "p1") // nothing from room:go was queued for alice
	bob.ping(ctx, "p1")
}

func TestTypingHints(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	alice, bob := e.dialAs(t, ctx, "alice"), e.dialAs(t, ctx, "bob")
	alice.join(ctx, "room:general", "j1")
	bob.join(ctx, "room:general", "j1")

	alice.send(ctx, map[string]any{"type": "publish", "channel": "room:general", "id": "t1",
		"data": map[string]any{"typing": true, "user": "alice"}})
	want := wireMsg{Type: "publish", Channel: "room:general", Data: json.RawMessage(`{"typing":true,"user":"alice"}`)}
	assert.Equal(t, want, bob.next(ctx), "a raw client publish, as it was sent")
	assert.Equal(t, want, alice.next(ctx), "the sender is in the room too")
	assert.Equal(t, wireMsg{Type: "published", Channel: "room:general", ID: "t1"}, alice.next(ctx))

	// Publishing to a room one may use but has not joined is refused.
	alice.send(ctx, map[string]any{"type": "publish", "channel": "room:random", "id": "t2", "data": map[string]bool{"typing": true}})
	alice.expectError(ctx, "not_joined", "t2")
	bob.ping(ctx, "p1")
}

func TestAdminRoom(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	admin, bob := e.dialAs(t, ctx, "admin"), e.dialAs(t, ctx, "bob")

	bob.send(ctx, map[string]string{"type": "subscribe", "channel": adminRoom, "id": "j1"})
	bob.expectError(ctx, "forbidden", "j1")
	bob.send(ctx, map[string]any{"type": "publish", "channel": adminRoom, "id": "t1", "data": map[string]bool{"typing": true}})
	bob.expectError(ctx, "forbidden", "t1")
	bob.say(ctx, "s1", map[string]string{"room": adminRoom, "text": "let me in"})
	bob.expectError(ctx, "forbidden", "s1")
	assert.Zero(t, e.app.hub.Stats().Subscriptions, "nothing was subscribed")

	admin.join(ctx, adminRoom, "j1")
	admin.say(ctx, "s1", map[string]string{"room": adminRoom, "text": "admins only"})
	line := admin.expectChat(ctx, adminRoom)
	assert.Equal(t, "admin", line.User)
	admin.send(ctx, map[string]any{"type": "publish", "channel": adminRoom, "id": "t1", "data": map[string]bool{"typing": true}})
	assert.Equal(t, "publish", admin.next(ctx).Type)
	assert.Equal(t, wireMsg{Type: "published", Channel: adminRoom, ID: "t1"}, admin.next(ctx))
	bob.ping(ctx, "p1") // bob got none of it
}

func TestOtherChannelsAreForbidden(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	c := e.dialAs(t, ctx, "admin") // not even admin
	for i, ch := range []string{"room:nope", "room:", "general", "user:alice", "room:general:sub"} {
		id := "j" + string(rune('0'+i))
		c.send(ctx, map[string]string{"type": "subscribe", "channel": ch, "id": id})
		c.expectError(ctx, "forbidden", id)
		c.send(ctx, map[string]any{"type": "publish", "channel": ch, "id": "p" + id, "data": 1})
		c.expectError(ctx, "forbidden", "p"+id)
	}
	assert.Zero(t, e.app.hub.Stats().Subscriptions)
}

func TestSayErrors(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	c := e.dialAs(t, ctx, "alice")
	c.join(ctx, "room:general", "j1")

	for _, tc := range []struct {
		name string
		data any
		code string
	}{
		{"not joined", map[string]string{"room": "room:random", "text": "hi"}, "not_joined"},
		{"no such room", map[string]string{"room": "room:nope", "text": "hi"}, "forbidden"},
		{"empty text", map[string]string{"room": "room:general", "text": ""}, "invalid_text"},
		{"blank text", map[string]string{"room": "room:general", "text": " \n\t "}, "invalid_text"},
		{"control character", map[string]string{"room": "room:general", "text": "ring \a bell"}, "invalid_text"},
		{"too long", map[string]string{"room": "room:general", "text": strings.Repeat("ü", 501)}, "text_too_long"},
		{"no data", nil, "invalid_message"},
		{"no text", map[string]string{"room": "room:general"}, "invalid_message"},
		{"no room", map[string]string{"text": "hi"}, "invalid_message"},
		{"text not a string", map[string]any{"room": "room:general", "text": 42}, "invalid_message"},
		{"data not an object", "hi", "invalid_message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			m := map[string]any{"type": "say", "id": id}
			if tc.data != nil {
				m["data"] = tc.data
			}
			c.send(ctx, m)
			c.expectError(ctx, tc.code, id)
		})
	}

	// 500 characters (not bytes) is the limit.
	c.say(ctx, "s500", map[string]string{"room": "room:general", "text": strings.Repeat("ü", 500)})
	assert.Equal(t, strings.Repeat("ü", 500), c.expectChat(ctx, "room:general").Text)

	// After leaving a room, one cannot talk in it.
	c.send(ctx, map[string]string{"type": "unsubscribe", "channel": "room:general", "id": "u1"})
	assert.Equal(t, wireMsg{Type: "unsubscribed", Channel: "room:general", ID: "u1"}, c.next(ctx))
	c.say(ctx, "s2", map[string]string{"room": "room:general", "text": "still here?"})
	c.expectError(ctx, "not_joined", "s2")
}

func TestLargeFramesAreRefused(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	c := e.dialAs(t, ctx, "alice")
	c.join(ctx, "room:general", "j1")
	// The server relays typing hints without reading them; MaxMessageBytes bounds them.
	c.send(ctx, map[string]any{"type": "publish", "channel": "room:general", "id": "t1",
		"data": map[string]string{"junk": strings.Repeat("x", 5000)}})
	_, err := c.nextOrErr(ctx)
	assert.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(err), "%v", err)
}

// TestRun runs the program as main does, and stops it with its context.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", nil, func(url string) { urls <- url }) }()
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
	c := dialURL(t, wsctx, "ws"+strings.TrimPrefix(url, "http")+"ws", client, "alice")
	c.join(wsctx, "room:general", "j1")
	c.say(wsctx, "s1", map[string]string{"room": "room:general", "text": "bye"})
	assert.Equal(t, "alice", c.expectChat(wsctx, "room:general").User)

	cancel() // as SIGINT does

	// Reading answers the hub's close handshake.
	_, err := c.nextOrErr(wsctx)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}
