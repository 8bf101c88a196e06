package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testSecret = []byte("test-secret-test-secret-test-secret!") // 36 bytes; tests only

type testEnv struct {
	app *server
	ts  *httptest.Server
}

// newTestEnv serves newServer(cfg) on an httptest server and cleans everything up at the
// end of the test: the ticker, then the hub (hijacked connections), then the server.
func newTestEnv(t *testing.T, cfg config) *testEnv {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = time.Hour // no ticks unless a test asks for them
	}
	app, err := newServer(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(app)
	t.Cleanup(func() {
		app.stopTicker()
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

func (e *testEnv) wsURL() string { return "ws" + strings.TrimPrefix(e.ts.URL, "http") + "/ws" }

// do sends a request with an optional body and bearer token and returns the status and
// the decoded JSON response (nil if the body is not a JSON object).
func (e *testEnv) do(t *testing.T, method, path, body, token string) (int, map[string]any) {
	t.Helper()
	return doRequest(t, e.ts.Client(), method, e.ts.URL+path, body, token)
}

func doRequest(t *testing.T, client *http.Client, method, url, body, token string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
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

// login logs user in through POST /login and returns the token.
func (e *testEnv) login(t *testing.T, user string) string {
	t.Helper()
	status, v := e.do(t, http.MethodPost, "/login", `{"user":"`+user+`"}`, "")
	require.Equal(t, http.StatusOK, status, "%v", v)
	tok, _ := v["token"].(string)
	require.NotEmpty(t, tok)
	return tok
}

// notify sends POST /notify?user=to as the holder of token.
func (e *testEnv) notify(t *testing.T, token, to, text string) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"text": text})
	require.NoError(t, err)
	status, v := e.do(t, http.MethodPost, "/notify?user="+to, string(body), token)
	require.Equal(t, http.StatusAccepted, status, "%v", v)
	assert.Equal(t, "user:"+to, v["channel"])
}

// sign makes a token with the given method, key and claims, bypassing /login.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return tok
}

// validClaims are claims /login would issue for user, expiring after ttl.
func validClaims(user string, ttl time.Duration) jwt.RegisteredClaims {
	now := time.Now()
	return jwt.RegisteredClaims{
		Issuer: issuer, Subject: user,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
}

// notificationOf returns m as a notification.
func notificationOf(t *testing.T, m wstest.Msg) notification {
	t.Helper()
	require.Equal(t, "notification", m.Type, "%+v", m)
	var n notification
	require.NoError(t, json.Unmarshal(m.Data, &n))
	return n
}

// dialOpts dials the hub and returns the client, or nil with the handshake's response
// and error.
func (e *testEnv) dialOpts(t *testing.T, ctx context.Context, opts *wstest.DialOptions) (*wstest.Conn, *http.Response, error) {
	t.Helper()
	opts.Context = ctx
	opts.HTTPClient = e.ts.Client()
	return wstest.TryDial(t, e.wsURL(), opts)
}

// dial connects with the token offered as a subprotocol, as the page does, and reads the
// "subscribed" the server sends for the user's own channel.
func (e *testEnv) dial(t *testing.T, ctx context.Context, token, user string) *wstest.Conn {
	t.Helper()
	c := wstest.Dial(t, e.wsURL(), &wstest.DialOptions{
		Context:      ctx,
		Subprotocols: []string{wspub.Subprotocol, wspub.SubprotocolTokenPrefix + token},
		HTTPClient:   e.ts.Client(),
	})
	require.Equal(t, wstest.Msg{Type: "subscribed", Channel: "user:" + user}, c.Next())
	return c
}

// (1) Every bad or missing token is refused with 401 before the upgrade.
func TestHandshakeRefusesBadTokens(t *testing.T) {
	e := newTestEnv(t, config{})
	ctx := testContext(t)
	good := validClaims("alice", time.Minute)

	noExp := good
	noExp.ExpiresAt = nil
	otherIssuer := good
	otherIssuer.Issuer = "someone-else"
	badSubject := validClaims("Alice Smith", time.Minute)
	noneToken := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)
	valid := sign(t, jwt.SigningMethodHS256, testSecret, good)

	for _, tc := range []struct {
		name, token string
	}{
		{"no token", ""},
		{"garbage", "not-a-jwt"},
		{"bad signature", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), good)},
		{"tampered payload", tamper(t, valid)},
		{"expired", sign(t, jwt.SigningMethodHS256, testSecret, validClaims("alice", -time.Minute))},
		{"alg none", noneToken},
		{"alg HS512 with the right key", sign(t, jwt.SigningMethodHS512, testSecret, good)},
		{"no exp", sign(t, jwt.SigningMethodHS256, testSecret, noExp)},
		{"other issuer", sign(t, jwt.SigningMethodHS256, testSecret, otherIssuer)},
		{"subject not a user name", sign(t, jwt.SigningMethodHS256, testSecret, badSubject)},
		{"too long", valid + strings.Repeat("A", maxTokenBytes)},
	} {
		for _, via := range []string{"subprotocol", "bearer"} {
			t.Run(tc.name+" via "+via, func(t *testing.T) {
				opts := &wstest.DialOptions{Subprotocols: []string{wspub.Subprotocol}}
				if tc.token != "" {
					if via == "subprotocol" {
						opts.Subprotocols = append(opts.Subprotocols, wspub.SubprotocolTokenPrefix+tc.token)
					} else {
						opts.Header = http.Header{"Authorization": {"Bearer " + tc.token}}
					}
				}
				c, res, err := e.dialOpts(t, ctx, opts)
				require.Error(t, err)
				assert.Nil(t, c)
				require.NotNil(t, res, "%v", err)
				assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
			})
		}
	}
	// The hub counted the refusals and holds no connection.
	assert.Zero(t, e.app.hub.Stats().Connections)
	assert.EqualValues(t, 22, e.app.hub.Stats().Rejected)

	// The same token, valid, is accepted: the refusals above are the token's fault.
	e.dial(t, ctx, valid, "alice")
}

// tamper changes the subject of a signed token without re-signing it.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	forged := sign(t, jwt.SigningMethodHS256, []byte("x"), validClaims("admin", time.Minute))
	return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
}

// (2) The token offered as a subprotocol is accepted and never echoed; a bearer header
// works too.
func TestTokenTransports(t *testing.T) {
	e := newTestEnv(t, config{})
	ctx := testContext(t)
	tok := e.login(t, "alice")

	t.Run("subprotocol", func(t *testing.T) {
		c := e.dial(t, ctx, tok, "alice")
		assert.Equal(t, "wspub.v1", c.WS.Subprotocol())
		echoed := strings.Join(c.Resp.Header.Values("Sec-WebSocket-Protocol"), ",")
		assert.Equal(t, "wspub.v1", echoed)
		assert.NotContains(t, echoed, tok)
		assert.NotContains(t, echoed, "bearer")
	})

	t.Run("subprotocol first", func(t *testing.T) {
		// The token may come before wspub.v1 in the offer; still only wspub.v1 is chosen.
		c, res, err := e.dialOpts(t, ctx, &wstest.DialOptions{
			Subprotocols: []string{wspub.SubprotocolTokenPrefix + tok, wspub.Subprotocol},
		})
		require.NoError(t, err)
		assert.Equal(t, "wspub.v1", c.WS.Subprotocol())
		assert.Equal(t, []string{"wspub.v1"}, res.Header.Values("Sec-WebSocket-Protocol"))
		assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: "user:alice"}, c.Next())
	})

	t.Run("authorization header", func(t *testing.T) {
		c, res, err := e.dialOpts(t, ctx, &wstest.DialOptions{
			Subprotocols: []string{wspub.Subprotocol},
			Header:       http.Header{"Authorization": {"Bearer " + tok}},
		})
		require.NoError(t, err)
		assert.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
		assert.Equal(t, "wspub.v1", c.WS.Subprotocol())
		assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: "user:alice"}, c.Next())
	})

	t.Run("subprotocol wins over the header", func(t *testing.T) {
		bobTok := e.login(t, "bob")
		c, _, err := e.dialOpts(t, ctx, &wstest.DialOptions{
			Subprotocols: []string{wspub.Subprotocol, wspub.SubprotocolTokenPrefix + tok},
			Header:       http.Header{"Authorization": {"Bearer " + bobTok}},
		})
		require.NoError(t, err)
		assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: "user:alice"}, c.Next())
	})
}

// (3) A user gets their own channel on connect, their notifications, and nobody else's.
func TestUserChannel(t *testing.T) {
	e := newTestEnv(t, config{})
	ctx := testContext(t)
	aliceTok, bobTok, carolTok := e.login(t, "alice"), e.login(t, "bob"), e.login(t, "carol")
	alice := e.dial(t, ctx, aliceTok, "alice")
	bob := e.dial(t, ctx, bobTok, "bob")

	e.notify(t, bobTok, "alice", "hi alice")
	n := alice.Next()
	assert.Equal(t, "user:alice", n.Channel)
	assert.Equal(t, "bob", notificationOf(t, n).From)
	assert.Equal(t, "hi alice", notificationOf(t, n).Text)

	// A notification for bob reaches bob, not alice. Publish queues the message for every
	// subscriber before /notify answers, and a connection's queue is FIFO: had alice been
	// on user:bob, bob's notification would come before the next one for her.
	e.notify(t, carolTok, "bob", "secret for bob")
	m := bob.Next()
	assert.Equal(t, "user:bob", m.Channel)
	assert.Equal(t, notification{From: "carol", Text: "secret for bob", Time: notificationOf(t, m).Time}, notificationOf(t, m))

	e.notify(t, carolTok, "alice", "second")
	m = alice.Next()
	assert.Equal(t, "user:alice", m.Channel, "alice got %+v", m)
	assert.Equal(t, "second", notificationOf(t, m).Text)

	// An empty text gets a default.
	e.notify(t, carolTok, "alice", "")
	assert.Equal(t, "hello from carol", notificationOf(t, alice.Next()).Text)

	// A second connection of alice gets her notifications too.
	alice2 := e.dial(t, ctx, aliceTok, "alice")
	e.notify(t, bobTok, "alice", "both tabs")
	assert.Equal(t, "both tabs", notificationOf(t, alice.Next()).Text)
	assert.Equal(t, "both tabs", notificationOf(t, alice2.Next()).Text)
}

// (4) Authorize: forbidden channels get "forbidden" with the request's id, admin gets
// private:admin and its ticks.
func TestAuthorize(t *testing.T) {
	e := newTestEnv(t, config{TickInterval: 10 * time.Millisecond})
	ctx := testContext(t)
	alice := e.dial(t, ctx, e.login(t, "alice"), "alice")

	for i, ch := range []string{"private:admin", "user:bob", "user:", "user:alice2", "private:alice", "admin", "Public:x"} {
		id := "a" + string(rune('0'+i))
		alice.Send(map[string]string{"type": "subscribe", "channel": ch, "id": id})
		m := alice.Next()
		assert.Equal(t, "error", m.Type, "%s: %+v", ch, m)
		assert.Equal(t, wspub.CodeForbidden, m.Code, "%s: %+v", ch, m)
		assert.Equal(t, id, m.ID, "the id of the refused subscribe is echoed")
		assert.NotEmpty(t, m.Message)
	}
	alice.Send(map[string]string{"type": "subscribe", "channel": "private:admin", "id": "x"})
	assert.Equal(t, wstest.Msg{Type: "error", Code: "forbidden", Message: "private:admin is for the admin user only", Channel: "private:admin", ID: "x"},
		alice.Next())

	// Allowed: her own channel (again: idempotent) and public ones.
	for i, ch := range []string{"user:alice", "public:news", "public:"} {
		id := "b" + string(rune('0'+i))
		alice.Send(map[string]string{"type": "subscribe", "channel": ch, "id": id})
		assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: ch, ID: id}, alice.Next())
	}

	// Clients may not publish, not even to their own channel.
	alice.Send(map[string]any{"type": "publish", "channel": "user:alice", "data": "x", "id": "p"})
	m := alice.Next()
	assert.Equal(t, "error", m.Type)
	assert.Equal(t, wspub.CodeForbidden, m.Code)
	assert.Equal(t, "p", m.ID)

	admin := e.dial(t, ctx, e.login(t, "admin"), "admin")
	admin.Send(map[string]string{"type": "subscribe", "channel": "private:admin", "id": "1"})
	assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: "private:admin", ID: "1"}, admin.Next())
	last := 0
	for range 3 {
		m := admin.Next()
		require.Equal(t, "tick", m.Type, "%+v", m)
		assert.Equal(t, "private:admin", m.Channel)
		var d tickData
		require.NoError(t, json.Unmarshal(m.Data, &d))
		assert.Greater(t, d.N, last)
		assert.Equal(t, 2, d.Connections)
		assert.Equal(t, 2, d.Users)
		last = d.N
	}

	// Ticks were published after alice's refusals; had she been subscribed, one would be
	// queued before this notification.
	e.notify(t, e.login(t, "carol"), "alice", "no ticks for you")
	m = alice.Next()
	assert.Equal(t, "no ticks for you", notificationOf(t, m).Text, "alice got %+v", m)
}

// (5) A connection ends with 4001 ("get a new token and reconnect") once its token has expired.
func TestExpiredTokenCloses(t *testing.T) {
	// /login issues whole-second expiries, so a 2s TTL expires between 1s and 2s from now.
	e := newTestEnv(t, config{TokenTTL: 2 * time.Second, PingInterval: 200 * time.Millisecond})
	ctx := testContext(t)
	tok := e.login(t, "alice")
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return testSecret, nil })
	require.NoError(t, err)
	exp := claims.ExpiresAt.Time

	c := e.dial(t, ctx, tok, "alice")
	_, err = c.NextOrErr() // reading answers the hub's pings
	var ce websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, wspub.StatusIdentityExpired, websocket.CloseStatus(err), "%v", err)
	assert.Equal(t, "identity expired", ce.Reason)
	assert.False(t, time.Now().Before(exp), "closed before the token expired (exp %v)", exp)
	assert.Less(t, time.Since(exp), 2*time.Second, "closed within about a ping interval of the expiry")

	// Reconnecting with the expired token is refused.
	_, res, err := e.dialOpts(t, ctx, &wstest.DialOptions{
		Subprotocols: []string{wspub.Subprotocol, wspub.SubprotocolTokenPrefix + tok},
	})
	require.Error(t, err)
	require.NotNil(t, res)
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
}

// (6) /login accepts user names of 1 to 16 letters a-z, and issues HS256 tokens.
func TestLogin(t *testing.T) {
	e := newTestEnv(t, config{})
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"empty user", `{"user":""}`, http.StatusBadRequest},
		{"no user", `{}`, http.StatusBadRequest},
		{"no body", ``, http.StatusBadRequest},
		{"capital", `{"user":"Alice"}`, http.StatusBadRequest},
		{"space", `{"user":"al ice"}`, http.StatusBadRequest},
		{"digit", `{"user":"alice1"}`, http.StatusBadRequest},
		{"non-ASCII", `{"user":"zoë"}`, http.StatusBadRequest},
		{"17 letters", `{"user":"abcdefghijklmnopq"}`, http.StatusBadRequest},
		{"not a string", `{"user":42}`, http.StatusBadRequest},
		{"malformed", `{"user":`, http.StatusBadRequest},
		{"trailing data", `{"user":"alice"} {}`, http.StatusBadRequest},
		{"huge", `{"user":"` + strings.Repeat("a", 10000) + `"}`, http.StatusBadRequest},
		{"16 letters", `{"user":"abcdefghijklmnop"}`, http.StatusOK},
		{"1 letter", `{"user":"a"}`, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, v := e.do(t, http.MethodPost, "/login", tc.body, "")
			assert.Equal(t, tc.status, status, "%v", v)
			if status != http.StatusOK {
				assert.NotEmpty(t, v["error"], "errors are JSON {\"error\":...}")
				assert.Nil(t, v["token"])
			}
		})
	}
	status, _ := e.do(t, http.MethodGet, "/login", "", "")
	assert.Equal(t, http.StatusMethodNotAllowed, status)

	// A token is HS256, for the user, from this issuer, and expires after 15 minutes.
	before := time.Now()
	status, v := e.do(t, http.MethodPost, "/login", `{"user":"alice"}`, "")
	require.Equal(t, http.StatusOK, status)
	tok := v["token"].(string)
	var claims jwt.RegisteredClaims
	parsed, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return testSecret, nil })
	require.NoError(t, err)
	assert.Equal(t, "HS256", parsed.Header["alg"])
	assert.Equal(t, "alice", claims.Subject)
	assert.Equal(t, issuer, claims.Issuer)
	assert.WithinDuration(t, before.Add(15*time.Minute), claims.ExpiresAt.Time, 2*time.Second)
	expiresAt, err := time.Parse(time.RFC3339, v["expires_at"].(string))
	require.NoError(t, err)
	assert.True(t, expiresAt.Equal(claims.ExpiresAt.Time), "expires_at %v, exp %v", expiresAt, claims.ExpiresAt.Time)
}

func TestNotifyRequests(t *testing.T) {
	e := newTestEnv(t, config{})
	tok := e.login(t, "alice")
	expired := sign(t, jwt.SigningMethodHS256, testSecret, validClaims("alice", -time.Minute))
	for _, tc := range []struct {
		name, method, path, body, token string
		status                          int
	}{
		{"no token", http.MethodPost, "/notify?user=bob", "", "", http.StatusUnauthorized},
		{"expired token", http.MethodPost, "/notify?user=bob", "", expired, http.StatusUnauthorized},
		{"bad token", http.MethodPost, "/notify?user=bob", "", "x.y.z", http.StatusUnauthorized},
		{"no user", http.MethodPost, "/notify", "", tok, http.StatusBadRequest},
		{"bad user", http.MethodPost, "/notify?user=Bob", "", tok, http.StatusBadRequest},
		{"channel injection", http.MethodPost, "/notify?user=" + "bob%20private:admin", "", tok, http.StatusBadRequest},
		{"bad body", http.MethodPost, "/notify?user=bob", `{"text":`, tok, http.StatusBadRequest},
		{"text too long", http.MethodPost, "/notify?user=bob", `{"text":"` + strings.Repeat("é", 201) + `"}`, tok, http.StatusBadRequest},
		{"GET", http.MethodGet, "/notify?user=bob", "", tok, http.StatusMethodNotAllowed},
		{"no body", http.MethodPost, "/notify?user=bob", "", tok, http.StatusAccepted},
		{"200 characters", http.MethodPost, "/notify?user=bob", `{"text":"` + strings.Repeat("é", 200) + `"}`, tok, http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, v := e.do(t, tc.method, tc.path, tc.body, tc.token)
			assert.Equal(t, tc.status, status, "%v", v)
			if status >= 400 {
				assert.NotEmpty(t, v["error"])
			}
		})
	}
}

func TestPage(t *testing.T) {
	e := newTestEnv(t, config{})
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
		"<!doctype html>", `id="login-form"`, `id="user"`, `id="conn-state"`, `id="messages"`,
		`id="sub-admin"`, `id="admin-log"`, `id="notify-form"`, `id="notify-user"`,
		`new WebSocket(wsURL, ["wspub.v1", "bearer." + session.token])`, `.split("\n")`,
		`"/login"`, "/notify?user=", `"Bearer " + session.token`, "ev.code === 1008", "ev.code === 4001",
	} {
		assert.Contains(t, page, want)
	}
	// No external resources: no build step, no CDN.
	for _, bad := range []string{"http://", "https://", "src=", "<link"} {
		assert.NotContains(t, page, bad)
	}
	status, _ := e.do(t, http.MethodGet, "/nope", "", "")
	assert.Equal(t, http.StatusNotFound, status)
}

func TestConfig(t *testing.T) {
	_, err := newServer(config{Secret: []byte("short")})
	assert.Error(t, err, "a short key is refused")
	_, err = newServer(config{})
	assert.Error(t, err, "a key is required")

	key, random, err := signingKey("")
	require.NoError(t, err)
	assert.True(t, random)
	assert.Len(t, key, 32)
	key2, _, _ := signingKey("")
	assert.NotEqual(t, key, key2, "a new random key per process")

	_, _, err = signingKey("too short")
	assert.Error(t, err)
	key, random, err = signingKey(strings.Repeat("k", 32))
	require.NoError(t, err)
	assert.False(t, random)
	assert.Equal(t, []byte(strings.Repeat("k", 32)), key)
}

// TestRun runs the program as main does, and stops it with its context.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", config{Secret: testSecret, TickInterval: time.Hour}, func(url string) { urls <- url })
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	status, _ := doRequest(t, client, http.MethodGet, url, "", "")
	assert.Equal(t, http.StatusOK, status)
	status, v := doRequest(t, client, http.MethodPost, url+"login", `{"user":"alice"}`, "")
	require.Equal(t, http.StatusOK, status)
	tok := v["token"].(string)

	wsctx := testContext(t)
	c := wstest.Dial(t, wstest.WSURL(url)+"ws", &wstest.DialOptions{
		Context:      wsctx,
		Subprotocols: []string{wspub.Subprotocol, wspub.SubprotocolTokenPrefix + tok},
		HTTPClient:   client,
	})
	assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: "user:alice"}, c.Next())
	status, _ = doRequest(t, client, http.MethodPost, url+"notify?user=alice", `{"text":"hi"}`, tok)
	require.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "hi", notificationOf(t, c.Next()).Text)

	cancel() // as SIGINT does
	// The hub closes the socket with 1001; reading the close frame answers it, which lets
	// run's hub.Shutdown return.
	_, err := c.NextOrErr()
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}

// TestRunListenError: a listener that cannot be opened stops run without leaking the
// hub or the ticker (goleak checks).
func TestRunListenError(t *testing.T) {
	err := run(t.Context(), "256.0.0.1:bad", config{Secret: testSecret}, nil)
	require.Error(t, err)
	var opErr *net.OpError
	assert.True(t, errors.As(err, &opErr), "%v", err)
}
