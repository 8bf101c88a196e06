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

// wsClient is a protocol client of the example, with the chat's own messages.
type wsClient struct {
	*wstest.Conn
	t *testing.T
}

func (e *testEnv) wsURL() string { return wstest.WSURL(e.ts.URL) + "/ws" }

// dialAs connects as user, the demo token, the way the page does:
// subprotocols ["wspub.v1", "bearer.<user>"]. The hub selects wspub.v1 alone: the token
// is never echoed.
func (e *testEnv) dialAs(t *testing.T, ctx context.Context, user string) *wsClient {
	t.Helper()
	return dialURL(t, ctx, e.wsURL(), e.ts.Client(), user)
}

func dialURL(t *testing.T, ctx context.Context, url string, client *http.Client, user string) *wsClient {
	t.Helper()
	return &wsClient{t: t, Conn: wstest.Dial(t, url, &wstest.DialOptions{
		Context:      ctx,
		Subprotocols: []string{wspub.Subprotocol, wspub.SubprotocolTokenPrefix + user},
		HTTPClient:   client,
	})}
}

func (c *wsClient) say(id string, data any) {
	c.t.Helper()
	c.Send(map[string]any{"type": "say", "id": id, "data": data})
}

// expectChat reads the next message and checks it is a chat line in room.
func (c *wsClient) expectChat(room string) chatLine {
	c.t.Helper()
	m := c.Next()
	require.Equal(c.t, "chat", m.Type, "%+v", m)
	assert.Equal(c.t, room, m.Channel)
	var line chatLine
	dec := json.NewDecoder(bytes.NewReader(m.Data))
	dec.DisallowUnknownFields() // exactly id, user, text, ts
	require.NoError(c.t, dec.Decode(&line))
	return line
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
	c.NothingPending("1")
}

func TestChatLinesAreStampedByTheServer(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	alice, bob := e.dialAs(t, ctx, "alice"), e.dialAs(t, ctx, "bob")
	alice.Subscribe("room:general", "j1")
	bob.Subscribe("room:general", "j1")

	// Alice claims to be admin in her data: the server ignores it and says who she is.
	before := time.Now().UnixMilli()
	alice.say("s1", map[string]string{"room": "room:general", "text": "  hello bob  ", "user": "admin"})
	for _, c := range []*wsClient{alice, bob} { // the sender gets her line like everyone
		line := c.expectChat("room:general")
		assert.Equal(t, "alice", line.User)
		assert.Equal(t, "hello bob", line.Text)
		assert.NotEmpty(t, line.ID)
		assert.GreaterOrEqual(t, line.TS, before)
		assert.LessOrEqual(t, line.TS, time.Now().UnixMilli())
	}

	bob.say("s1", map[string]string{"room": "room:general", "text": "hi alice\nhow are you?"})
	a, b := alice.expectChat("room:general"), bob.expectChat("room:general")
	assert.Equal(t, a, b, "everyone sees the same line")
	assert.Equal(t, "bob", a.User)
	assert.Equal(t, "hi alice\nhow are you?", a.Text)

	// A room one has not joined delivers nothing to one.
	bob.Subscribe("room:go", "j2")
	bob.say("s2", map[string]string{"room": "room:go", "text": "anyone into generics?"})
	assert.Equal(t, "bob", bob.expectChat("room:go").User)
	alice.NothingPending("p1") // nothing from room:go was queued for alice
	bob.NothingPending("p1")
}

func TestTypingHints(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	alice, bob := e.dialAs(t, ctx, "alice"), e.dialAs(t, ctx, "bob")
	alice.Subscribe("room:general", "j1")
	bob.Subscribe("room:general", "j1")

	alice.Send(map[string]any{"type": "publish", "channel": "room:general", "id": "t1",
		"data": map[string]any{"typing": true, "user": "alice"}})
	want := wstest.Msg{Type: "publish", Channel: "room:general", Data: json.RawMessage(`{"typing":true,"user":"alice"}`)}
	assert.Equal(t, want, bob.Next(), "a raw client publish, as it was sent")
	assert.Equal(t, want, alice.Next(), "the sender is in the room too")
	assert.Equal(t, wstest.Msg{Type: "published", Channel: "room:general", ID: "t1"}, alice.Next())

	// Publishing to a room one may use but has not joined is refused.
	alice.Send(map[string]any{"type": "publish", "channel": "room:random", "id": "t2", "data": map[string]bool{"typing": true}})
	alice.ExpectError("not_joined", "t2")
	bob.NothingPending("p1")
}

func TestAdminRoom(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	admin, bob := e.dialAs(t, ctx, "admin"), e.dialAs(t, ctx, "bob")

	bob.Send(map[string]string{"type": "subscribe", "channel": adminRoom, "id": "j1"})
	bob.ExpectError("forbidden", "j1")
	bob.Send(map[string]any{"type": "publish", "channel": adminRoom, "id": "t1", "data": map[string]bool{"typing": true}})
	bob.ExpectError("forbidden", "t1")
	bob.say("s1", map[string]string{"room": adminRoom, "text": "let me in"})
	bob.ExpectError("forbidden", "s1")
	assert.Zero(t, e.app.hub.Stats().Subscriptions, "nothing was subscribed")

	admin.Subscribe(adminRoom, "j1")
	admin.say("s1", map[string]string{"room": adminRoom, "text": "admins only"})
	line := admin.expectChat(adminRoom)
	assert.Equal(t, "admin", line.User)
	admin.Send(map[string]any{"type": "publish", "channel": adminRoom, "id": "t1", "data": map[string]bool{"typing": true}})
	assert.Equal(t, "publish", admin.Next().Type)
	assert.Equal(t, wstest.Msg{Type: "published", Channel: adminRoom, ID: "t1"}, admin.Next())
	bob.NothingPending("p1") // bob got none of it
}

func TestOtherChannelsAreForbidden(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	c := e.dialAs(t, ctx, "admin") // not even admin
	for i, ch := range []string{"room:nope", "room:", "general", "user:alice", "room:general:sub"} {
		id := "j" + string(rune('0'+i))
		c.Send(map[string]string{"type": "subscribe", "channel": ch, "id": id})
		c.ExpectError("forbidden", id)
		c.Send(map[string]any{"type": "publish", "channel": ch, "id": "p" + id, "data": 1})
		c.ExpectError("forbidden", "p"+id)
	}
	assert.Zero(t, e.app.hub.Stats().Subscriptions)
}

func TestSayErrors(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	c := e.dialAs(t, ctx, "alice")
	c.Subscribe("room:general", "j1")

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
			c.Send(m)
			c.ExpectError(tc.code, id)
		})
	}

	// 500 characters (not bytes) is the limit.
	c.say("s500", map[string]string{"room": "room:general", "text": strings.Repeat("ü", 500)})
	assert.Equal(t, strings.Repeat("ü", 500), c.expectChat("room:general").Text)

	// After leaving a room, one cannot talk in it.
	c.Unsubscribe("room:general", "u1")
	c.say("s2", map[string]string{"room": "room:general", "text": "still here?"})
	c.ExpectError("not_joined", "s2")
}

func TestLargeFramesAreRefused(t *testing.T) {
	e := newTestEnv(t)
	ctx := testContext(t)
	c := e.dialAs(t, ctx, "alice")
	c.Subscribe("room:general", "j1")
	// The server relays typing hints without reading them; MaxMessageBytes bounds them.
	c.Send(map[string]any{"type": "publish", "channel": "room:general", "id": "t1",
		"data": map[string]string{"junk": strings.Repeat("x", 5000)}})
	_, err := c.NextOrErr()
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
	c := dialURL(t, wsctx, wstest.WSURL(url)+"ws", client, "alice")
	c.Subscribe("room:general", "j1")
	c.say("s1", map[string]string{"room": "room:general", "text": "bye"})
	assert.Equal(t, "alice", c.expectChat("room:general").User)

	cancel() // as SIGINT does

	// Reading answers the hub's close handshake.
	_, err := c.NextOrErr()
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}
