package wspub

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

// TestBadInputGetsErrorReplies: every recoverable bad input gets an error reply with
// a stable code, the id echoed where one could be read, and the connection stays.
func TestBadInputGetsErrorReplies(t *testing.T) {
	h, url := startHub(t, &Options{MaxMessageBytes: 4096})
	other := dial(t, url)
	other.Subscribe("news", "s")
	c := dial(t, url)
	tests := []struct {
		name, frame, code, id string
	}{
		{"malformed JSON", `{"type":`, CodeInvalidMessage, ""},
		{"not an object", `[1,2]`, CodeInvalidMessage, ""},
		{"empty frame", ``, CodeInvalidMessage, ""},
		{"unknown field", `{"type":"ping","id":"7","extra":1}`, CodeInvalidMessage, "7"},
		{"mixed-case key", `{"Type":"ping"}`, CodeInvalidMessage, ""},
		{"duplicate key", `{"type":"ping","type":"ping"}`, CodeInvalidMessage, ""},
		{"wrong field type", `{"type":"subscribe","channel":42,"id":"8"}`, CodeInvalidMessage, "8"},
		{"missing type", `{"id":"9"}`, CodeInvalidMessage, "9"},
		{"invalid UTF-8", "{\"type\":\"x\xff\"}", CodeInvalidMessage, ""},
		{"deep nesting", `{"type":"x","data":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, CodeInvalidMessage, ""},
		{"huge channel name", `{"type":"subscribe","channel":"` + strings.Repeat("c", 300) + `","id":"10"}`, CodeInvalidChannel, "10"},
		{"channel with space", `{"type":"subscribe","channel":"a b","id":"11"}`, CodeInvalidChannel, "11"},
		{"subscribe without channel", `{"type":"subscribe","id":"12"}`, CodeInvalidChannel, "12"},
		{"unknown type", `{"type":"launch_rockets","id":"13"}`, CodeUnknownType, "13"},
		{"server-only type", `{"type":"subscribed","channel":"a","id":"14"}`, CodeUnknownType, "14"},
		{"client publish", `{"type":"publish","channel":"news","data":1,"id":"15"}`, CodeForbidden, "15"},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, CodeInvalidMessage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.SendText(tt.frame)
			e := c.Expect("error")
			assert.Equal(t, tt.code, e.Code)
			assert.Equal(t, tt.id, e.ID)
			assert.NotEmpty(t, e.Message)
		})
	}
	c.RoundTrip("alive")
	assert.Equal(t, uint64(len(tests)), h.Stats().Invalid)
	require.NoError(t, h.Publish(context.Background(), "news", Message{Type: "n"}))
	other.Expect("n")
	assert.Equal(t, 2, h.Stats().Connections)
}

// TestOversizedFrameClosesWith1009: a frame over MaxMessageBytes closes the connection with 1009
// and cleans up its state.
func TestOversizedFrameClosesWith1009(t *testing.T) {
	h, url := startHub(t, &Options{MaxMessageBytes: 1024})
	c := dial(t, url)
	c.Subscribe("x", "s")
	frame := `{"type":"ping","id":"` + strings.Repeat("a", 1024) + `"}`
	c.SendText(frame[:1025])
	assert.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(c.CloseErr()))
	eventually(t, func() bool { st := h.Stats(); return st.Connections == 0 && st.Channels == 0 })

	ok := dial(t, url) // exactly the limit is fine
	ok.SendText(`{"type":"x","data":"` + strings.Repeat("d", 1024-22) + `"}`)
	assert.Equal(t, CodeUnknownType, ok.Expect("error").Code)
}

// TestBinaryFrameClosesWith1003: the protocol is text only.
func TestBinaryFrameClosesWith1003(t *testing.T) {
	h, url := startHub(t, nil)
	c := dial(t, url)
	require.NoError(t, c.WS.Write(c.Context(), websocket.MessageBinary, []byte(`{"type":"ping"}`)))
	assert.Equal(t, websocket.StatusUnsupportedData, websocket.CloseStatus(c.CloseErr()))
	eventually(t, func() bool { return h.Stats().Connections == 0 })
}

func TestHandlers(t *testing.T) {
	h, url := startHub(t, nil)
	got := make(chan ClientMessage, 1)
	require.NoError(t, h.Handle("action_clicked", func(ctx context.Context, c *Conn, m ClientMessage) error {
		got <- m
		return c.Send(ctx, Message{Type: "action_done", Data: m.Data})
	}))
	require.NoError(t, h.Handle("deny", func(context.Context, *Conn, ClientMessage) error {
		return &Error{Code: "quota_exceeded", Message: "no more today"}
	}))
	require.NoError(t, h.Handle("fail", func(context.Context, *Conn, ClientMessage) error {
		return errors.New("database password is hunter2")
	}))
	c := dial(t, url)

	c.SendText(`{"type":"action_clicked","id":"1","channel":"task:1","data":{"action":"buy"}}`)
	assert.Equal(t, ClientMessage{Type: "action_clicked", ID: "1", Channel: "task:1", Data: []byte(`{"action":"buy"}`)}, <-got)
	assert.JSONEq(t, `{"action":"buy"}`, string(c.Expect("action_done").Data))

	c.SendText(`{"type":"deny","id":"2"}`)
	assert.Equal(t, wstest.Msg{Type: "error", Code: "quota_exceeded", Message: "no more today", ID: "2"}, c.Next())
	c.SendText(`{"type":"fail","id":"3"}`)
	e := c.Expect("error")
	assert.Equal(t, CodeInternal, e.Code)
	assert.NotContains(t, e.Message, "hunter2", "internal errors are not leaked to clients")

	c.SendText(`{"type":"other","id":"4"}`)
	assert.Equal(t, CodeUnknownType, c.Expect("error").Code)
	require.NoError(t, h.Handle("*", func(ctx context.Context, c *Conn, m ClientMessage) error {
		return c.Send(ctx, Message{Type: "fallback", Data: m.Type})
	}))
	c.SendText(`{"type":"other","id":"5"}`)
	assert.Equal(t, `"other"`, string(c.Expect("fallback").Data))
	require.NoError(t, h.Handle("*", nil))
	c.SendText(`{"type":"other","id":"6"}`)
	assert.Equal(t, CodeUnknownType, c.Expect("error").Code)
}

// TestHandlerPanicCostsOneReply: a panicking handler costs the client one `internal` reply;
// the connection, the hub and the other clients carry on.
func TestHandlerPanicCostsOneReply(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url := startHub(t, &Options{Logger: logger})
	require.NoError(t, h.Handle("boom", func(context.Context, *Conn, ClientMessage) error {
		var m map[string]int
		m["x"]++ // nil map write
		return nil
	}))
	c, other := dial(t, url), dial(t, url)
	other.Subscribe("s", "s")
	c.SendText(`{"type":"boom","id":"b"}`)
	assert.Equal(t, wstest.Msg{Type: "error", Code: CodeInternal, Message: "internal error", ID: "b"}, c.Next())
	c.RoundTrip("after")
	require.NoError(t, h.Publish(context.Background(), "s", Message{Type: "ok"}))
	other.Expect("ok")
	assert.Equal(t, uint64(1), h.Stats().Panics)
	panics := logs.Events("websocket_panic")
	require.Len(t, panics, 1)
	assert.Equal(t, "boom", panics[0]["in"])
}

// TestLifetimeNotTiedToRequest: middleware that cancels the request context after the
// upgrade does not end the connection; middleware that cannot hijack gets a clear 501.
func TestLifetimeNotTiedToRequest(t *testing.T) {
	h := New(nil)
	t.Cleanup(func() { _ = h.Close() })
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		cancel() // as a careless timeout middleware would, sooner or later
		h.ServeHTTP(w, r.WithContext(ctx))
	})
	mux.Handle("/timeout", http.TimeoutHandler(h, testTimeout, "timeout"))
	srv := startServer(t, mux)

	c := dial(t, "ws"+strings.TrimPrefix(srv, "http")+"/ws")
	c.Subscribe("still", "s")
	c.RoundTrip("here")
	require.NoError(t, h.Publish(context.Background(), "still", Message{Type: "m"}))
	c.Expect("m")

	resp, err := http.Get(srv + "/timeout")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusNotImplemented, resp.StatusCode)
}
