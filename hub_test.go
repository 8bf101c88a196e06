package wspub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

func TestSubscribePublishUnsubscribe(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url := startHub(t, &Options{Logger: logger})
	c := dial(t, url)
	assert.Equal(t, Subprotocol, c.WS.Subprotocol())

	c.SendText(`{"type":"subscribe","channel":"task:42","id":"1"}`)
	assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: "task:42", ID: "1"}, c.Next())
	c.SendText(`{"type":"subscribe","channel":"task:42","id":"again"}`) // idempotent
	assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: "task:42", ID: "again"}, c.Next())
	st := h.Stats()
	assert.Equal(t, 1, st.Connections)
	assert.Equal(t, 1, st.Channels)
	assert.Equal(t, 1, st.Subscriptions)

	require.NoError(t, h.Publish(context.Background(), "task:42",
		Message{Type: "progress", Data: map[string]any{"percent": 40, "step": "scoring"}}))
	got := c.Expect("progress")
	assert.Equal(t, "task:42", got.Channel)
	assert.JSONEq(t, `{"percent":40,"step":"scoring"}`, string(got.Data))

	require.NoError(t, h.Publish(context.Background(), "task:42",
		Message{Type: "raw", Data: json.RawMessage("{\n  \"a\": [1, 2]\n}")}))
	assert.Equal(t, wstest.Msg{Type: "raw", Channel: "task:42", Data: json.RawMessage(`{"a":[1,2]}`)}, c.Next())

	c.SendText(`{"type":"unsubscribe","channel":"task:42","id":"2"}`)
	assert.Equal(t, wstest.Msg{Type: "unsubscribed", Channel: "task:42", ID: "2"}, c.Next())
	c.SendText(`{"type":"unsubscribe","channel":"never","id":"3"}`) // idempotent too
	assert.Equal(t, wstest.Msg{Type: "unsubscribed", Channel: "never", ID: "3"}, c.Next())
	require.NoError(t, h.Publish(context.Background(), "task:42", Message{Type: "progress"}))
	c.SendText(`{"type":"ping","id":"p"}`)
	assert.Equal(t, wstest.Msg{Type: "pong", ID: "p"}, c.Next(), "nothing arrives after unsubscribe")

	st = h.Stats()
	assert.Equal(t, 0, st.Channels)
	assert.Equal(t, 0, st.Subscriptions)
	assert.Equal(t, uint64(3), st.Published)
	assert.Len(t, logs.Events("websocket_connected"), 1)
	assert.Len(t, logs.Events("websocket_subscribed"), 2)
	assert.Len(t, logs.Events("websocket_unsubscribed"), 2)
}

func TestPublishErrors(t *testing.T) {
	h, _ := startHub(t, &Options{MaxQueueBytes: 1024})
	ctx := context.Background()
	tests := []struct {
		name    string
		channel string
		msg     Message
		want    error
	}{
		{"reserved type", "a", Message{Type: "subscribed"}, ErrReservedType},
		{"error type", "a", Message{Type: "error"}, ErrReservedType},
		{"empty type", "a", Message{}, ErrInvalidType},
		{"type with space", "a", Message{Type: "a b"}, ErrInvalidType},
		{"empty channel", "", Message{Type: "x"}, ErrInvalidChannel},
		{"channel with newline", "a\nb", Message{Type: "x"}, ErrInvalidChannel},
		{"channel too long", strings.Repeat("c", 201), Message{Type: "x"}, ErrInvalidChannel},
		{"unencodable data", "a", Message{Type: "x", Data: func() {}}, ErrInvalidData},
		{"invalid raw data", "a", Message{Type: "x", Data: json.RawMessage(`{`)}, ErrInvalidData},
		{"larger than a send queue", "a", Message{Type: "x", Data: strings.Repeat("y", 2000)}, ErrMessageTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, h.Publish(ctx, tt.channel, tt.msg), tt.want)
		})
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, h.Publish(cancelled, "a", Message{Type: "x"}), context.Canceled)
	assert.ErrorIs(t, h.SendToUser(ctx, "", Message{Type: "x"}), ErrInvalidUser)
	assert.ErrorIs(t, h.Handle("subscribe", func(context.Context, *Conn, ClientMessage) error { return nil }), ErrReservedType)
	assert.Equal(t, uint64(0), h.Stats().Published)

	require.NoError(t, h.Close())
	assert.ErrorIs(t, h.Publish(ctx, "a", Message{Type: "x"}), ErrHubClosed)
	assert.ErrorIs(t, h.Broadcast(ctx, Message{Type: "x"}), ErrHubClosed)
}

// userFromQuery is a test Authenticate hook: ?user=NAME, refused without one.
func userFromQuery(r *http.Request) (Identity, error) {
	u := r.URL.Query().Get("user")
	if u == "" {
		return Identity{}, errors.New("no user")
	}
	return Identity{UserID: u, Claims: map[string]any{"role": "tester"}}, nil
}

func TestBroadcastAndSendToUser(t *testing.T) {
	h, url := startHub(t, &Options{Authenticate: userFromQuery})
	ctx := context.Background()
	a1, a2, b := dial(t, url+"?user=alice"), dial(t, url+"?user=alice"), dial(t, url+"?user=bob")
	eventually(t, func() bool { return h.Stats().Connections == 3 })
	assert.Equal(t, 2, h.Stats().Users)

	require.NoError(t, h.SendToUser(ctx, "alice", Message{Type: "note", Data: "hi alice"}))
	require.NoError(t, h.SendToUser(ctx, "nobody", Message{Type: "note"}))
	require.NoError(t, h.Broadcast(ctx, Message{Type: "notice", Data: "all"}))
	for _, c := range []*wstest.Conn{a1, a2} {
		assert.Equal(t, wstest.Msg{Type: "note", Data: json.RawMessage(`"hi alice"`)}, c.Next())
	}
	for _, c := range []*wstest.Conn{a1, a2, b} {
		assert.Equal(t, wstest.Msg{Type: "notice", Data: json.RawMessage(`"all"`)}, c.Next())
	}

	_, resp, err := websocket.Dial(ctx, url, nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, 3, h.Stats().Connections, "a refused request allocates no connection")
	assert.Equal(t, uint64(1), h.Stats().Rejected)
}

func TestServerSideSubscriptionAndHooks(t *testing.T) {
	type ended struct {
		code   websocket.StatusCode
		reason string
	}
	var (
		mu        sync.Mutex
		connected *Conn
		disc      = make(chan ended, 1)
	)
	var h *Hub
	h, url := startHub(t, &Options{
		Authenticate: userFromQuery,
		OnConnect: func(ctx context.Context, c *Conn) error {
			mu.Lock()
			connected = c
			mu.Unlock()
			return h.Subscribe(c.ID(), "user:"+c.UserID())
		},
		OnDisconnect: func(c *Conn, code websocket.StatusCode, reason string) {
			assert.Empty(t, c.Subscriptions(), "OnDisconnect runs after the connection left its channels")
			disc <- ended{code, reason}
		},
	})
	c := dialHeader(t, url+"?user=42", http.Header{"Origin": {"http://" + strings.TrimPrefix(url, "ws://")}})
	assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: "user:42"}, c.Next(), "server-side subscribe has no id")

	mu.Lock()
	conn := connected
	mu.Unlock()
	assert.Equal(t, "42", conn.UserID())
	assert.Equal(t, map[string]any{"role": "tester"}, conn.Claims())
	assert.Equal(t, []string{"user:42"}, conn.Subscriptions())
	assert.Contains(t, conn.Origin(), "127.0.0.1")
	assert.Contains(t, conn.RemoteAddr(), "127.0.0.1:")
	assert.Equal(t, "Go-http-client/1.1", conn.UserAgent())
	assert.WithinDuration(t, time.Now(), conn.ConnectedAt(), 10*time.Second)
	assert.NotEmpty(t, conn.ID())

	require.NoError(t, h.Publish(context.Background(), "user:42", Message{Type: "note"}))
	c.Expect("note")
	require.NoError(t, h.Subscribe(conn.ID(), "extra"))
	assert.Equal(t, wstest.Msg{Type: "subscribed", Channel: "extra"}, c.Next())
	require.NoError(t, h.Unsubscribe(conn.ID(), "extra"))
	assert.Equal(t, wstest.Msg{Type: "unsubscribed", Channel: "extra"}, c.Next())
	assert.ErrorIs(t, h.Subscribe("nope", "x"), ErrConnNotFound)
	assert.ErrorIs(t, h.Unsubscribe("nope", "x"), ErrConnNotFound)
	assert.ErrorIs(t, h.Subscribe(conn.ID(), "bad channel"), ErrInvalidChannel)

	require.NoError(t, conn.Send(context.Background(), Message{Type: "direct", Data: 1}))
	assert.Equal(t, wstest.Msg{Type: "direct", Data: json.RawMessage(`1`)}, c.Next())

	require.NoError(t, c.WS.Close(websocket.StatusNormalClosure, "bye"))
	select {
	case e := <-disc:
		assert.Equal(t, ended{websocket.StatusNormalClosure, "bye"}, e)
	case <-time.After(testTimeout):
		t.Fatal("OnDisconnect not called")
	}
	eventually(t, func() bool { st := h.Stats(); return st.Connections == 0 && st.Channels == 0 })
	assert.ErrorIs(t, conn.Send(context.Background(), Message{Type: "late"}), ErrConnClosed)
	assert.ErrorIs(t, h.Subscribe(conn.ID(), "x"), ErrConnNotFound)
}

func TestOnConnectErrorClosesWith1011(t *testing.T) {
	_, url := startHub(t, &Options{OnConnect: func(context.Context, *Conn) error { return errors.New("db down") }})
	c := dial(t, url)
	assert.Equal(t, websocket.StatusInternalError, websocket.CloseStatus(c.CloseErr()))
}

func TestConnCloseFromServer(t *testing.T) {
	h, url := startHub(t, nil)
	require.NoError(t, h.Handle("quit", func(ctx context.Context, c *Conn, _ ClientMessage) error {
		for i := range 100 {
			if err := c.Send(ctx, Message{Type: "farewell", Data: i}); err != nil {
				return err
			}
		}
		return c.Close(4001, "asked to quit")
	}))
	c := dial(t, url)
	c.SendText(`{"type":"quit"}`)
	for i := range 100 { // what was queued before Close is still delivered
		assert.Equal(t, wstest.Msg{Type: "farewell", Data: json.RawMessage(strconv.Itoa(i))}, c.Next())
	}
	err := c.CloseErr()
	assert.Equal(t, websocket.StatusCode(4001), websocket.CloseStatus(err))
	assert.Contains(t, err.Error(), "asked to quit")
	eventually(t, func() bool { return h.Stats().Connections == 0 })
}

func TestNotAWebSocketRequest(t *testing.T) {
	h, url := startHub(t, nil)
	resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.GreaterOrEqual(t, resp.StatusCode, 400)
	assert.Equal(t, 0, h.Stats().Connections)
	assert.Equal(t, uint64(1), h.Stats().Rejected)
}

func TestLogEvents(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url := startHub(t, &Options{Logger: logger})
	c := dial(t, url)
	c.Subscribe("a", "s")
	require.NoError(t, c.WS.Close(websocket.StatusNormalClosure, ""))
	eventually(t, func() bool { return len(logs.Events("websocket_disconnected")) == 1 })
	connected := logs.Events("websocket_connected")[0]
	assert.Equal(t, Subprotocol, connected["subprotocol"])
	assert.NotEmpty(t, connected["conn_id"])
	disc := logs.Events("websocket_disconnected")[0]
	assert.Equal(t, connected["conn_id"], disc["conn_id"])
	assert.Equal(t, int64(websocket.StatusNormalClosure), disc["code"])
	require.NoError(t, h.Shutdown(context.Background()))
	assert.Len(t, logs.Events("websocket_shutdown"), 1)
}
