package wstest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
)

// childEnv makes the test binary run TestMain's child instead of the tests.
const childEnv = "WSTEST_CHILD_EXIT"

// TestMain is wstest.Main's: the tests must not leave a goroutine behind, and with
// childEnv set the binary prints and exits with its value.
func TestMain(m *testing.M) {
	wstest.Main(m, childEnv, func(v string) int {
		fmt.Println("child", v)
		code, _ := strconv.Atoi(v)
		return code
	})
}

// TestMainChild: with its variable set, the test binary runs the child, not the tests.
func TestMainChild(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=7")
	out, err := cmd.Output()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 7, exit.ExitCode())
	assert.Equal(t, "child 7\n", string(out), "the child's output alone")
}

func TestGetJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"a":1}`))
	}))
	defer srv.Close()
	var v struct{ A int }
	wstest.GetJSON(t, srv.URL+"/ok", &v)
	assert.Equal(t, 1, v.A)
	assert.True(t, run(t, func(tb testing.TB) { wstest.GetJSON(tb, srv.URL+"/missing", &v) }), "a 404 fails the test")
	http.DefaultClient.CloseIdleConnections()
}

func TestSubprotocolIsWspubs(t *testing.T) {
	assert.Equal(t, wspub.Subprotocol, wstest.Subprotocol)
}

func TestWSURL(t *testing.T) {
	assert.Equal(t, "ws://127.0.0.1:80/ws", wstest.WSURL("http://127.0.0.1:80/ws"))
	assert.Equal(t, "wss://h/ws", wstest.WSURL("https://h/ws"))
}

// TestConversation talks to a real hub through every helper of the protocol.
func TestConversation(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h := wspub.New(&wspub.Options{Logger: logger})
	url := wstest.ServeHub(t, h)
	c := wstest.Dial(t, url, nil)
	assert.Equal(t, http.StatusSwitchingProtocols, c.Resp.StatusCode)
	assert.Equal(t, []string{"wspub.v1"}, c.Resp.Header.Values("Sec-WebSocket-Protocol"))
	deadline, ok := c.Context().Deadline()
	require.True(t, ok, "a Conn dialed without options has a deadline")
	assert.WithinDuration(t, time.Now().Add(wstest.DefaultTimeout), deadline, 5*time.Second)

	c.Subscribe("news", "s1")
	ctx := context.Background()
	require.NoError(t, h.Publish(ctx, "news", wspub.Message{Type: "note", Data: "hello"}))
	m := c.Expect("note")
	assert.Equal(t, "news", m.Channel)
	assert.Equal(t, "hello", wstest.Data[string](t, m))

	// RoundTrip reads past what comes before the pong; NothingPending requires the pong
	// to come first.
	require.NoError(t, h.Publish(ctx, "news", wspub.Message{Type: "skipped"}))
	c.RoundTrip("r1")
	c.NothingPending("p1")

	// Until reads past other messages.
	require.NoError(t, h.Publish(ctx, "news", wspub.Message{Type: "first"}))
	require.NoError(t, h.Publish(ctx, "news", wspub.Message{Type: "second", Data: map[string]int{"n": 2}}))
	m = c.Until("second")
	assert.Equal(t, map[string]int{"n": 2}, wstest.Data[map[string]int](t, m))

	// SendText sends a frame as it is; the error reply echoes the id.
	c.SendText(`{"type":"subscribe","channel":"a b","id":"bad"}`)
	e := c.ExpectError(wspub.CodeInvalidChannel, "bad")
	assert.NotEmpty(t, e.Message)
	c.Send(map[string]string{"type": "no_such_type", "id": "u1"})
	c.ExpectError(wspub.CodeUnknownType, "u1")

	c.Unsubscribe("news", "u2")
	require.NoError(t, h.Publish(ctx, "news", wspub.Message{Type: "after"}))
	c.NothingPending("p2")
	assert.Positive(t, c.Frames())
	assert.LessOrEqual(t, c.Frames(), 11, "at most one frame a message")

	// NextRaw and NextOrErr return the message, or the close.
	c.SendText(`{"type":"ping","id":"raw"}`)
	b, err := c.NextRaw()
	require.NoError(t, err)
	assert.Equal(t, wstest.Msg{Type: "pong", ID: "raw"}, wstest.Decode(t, b))

	shut := make(chan error, 1)
	go func() { shut <- h.Shutdown(ctx) }()
	err = c.CloseErr()
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
	require.NoError(t, <-shut)
	_, err = c.NextOrErr()
	assert.Error(t, err, "the connection has ended")

	assert.Len(t, logs.Events("websocket_connected"), 1)
	assert.Len(t, logs.Events("websocket_subscribed"), 1)
}

// rawServer accepts a WebSocket connection with the wspub.v1 subprotocol and runs serve
// on it.
func rawServer(t *testing.T, serve func(ctx context.Context, ws *websocket.Conn)) string {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wstest.Subprotocol}})
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.CloseNow()
		serve(r.Context(), ws)
	}))
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return wstest.WSURL(srv.URL)
}

// TestFrames checks the splitting of frames into messages, the frame count, a frame that
// is not text, and the close code.
func TestFrames(t *testing.T) {
	url := rawServer(t, func(ctx context.Context, ws *websocket.Conn) {
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"a"}`+"\n"+`{"type":"b","data":[1]}`+"\n"+`{"type":"c"}`))
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"d","channel":"x","id":"1","code":"k","message":"m"}`))
		_ = ws.Write(ctx, websocket.MessageBinary, []byte(`{"type":"e"}`))
		_ = ws.Close(websocket.StatusCode(4000), "done")
	})
	var rec *recorder
	failed := run(t, func(tb testing.TB) {
		rec = tb.(*recorder)
		c := wstest.Dial(tb, url, &wstest.DialOptions{Timeout: 10 * time.Second, ReadLimit: -1})
		assert.Equal(t, wstest.Msg{Type: "a"}, c.Next())
		assert.Equal(t, wstest.Msg{Type: "b", Data: json.RawMessage(`[1]`)}, c.Next())
		assert.Equal(t, 1, c.Frames())
		assert.Equal(t, wstest.Msg{Type: "c"}, c.Next())
		assert.Equal(t, wstest.Msg{Type: "d", Channel: "x", ID: "1", Code: "k", Message: "m"}, c.Next())
		assert.Equal(t, 2, c.Frames())
		b, err := c.NextRaw() // reported, not fatal
		assert.NoError(t, err)
		assert.Equal(t, `{"type":"e"}`, string(b))
		err = c.CloseErr()
		assert.Equal(t, websocket.StatusCode(4000), websocket.CloseStatus(err), "%v", err)
	})
	assert.True(t, failed, "NextRaw fails the test at a frame that is not text, but goes on")
	assert.Equal(t, []string{"server sent a MessageBinary frame"}, rec.errors())

	// Next, unlike NextRaw, stops the test at a frame that is not text.
	url = rawServer(t, func(ctx context.Context, ws *websocket.Conn) {
		_ = ws.Write(ctx, websocket.MessageBinary, []byte(`{"type":"e"}`))
		_, _, _ = ws.Read(ctx)
	})
	failed = run(t, func(tb testing.TB) {
		wstest.Dial(tb, url, nil).Next()
	})
	assert.True(t, failed)

	// And at a message that is not JSON.
	url = rawServer(t, func(ctx context.Context, ws *websocket.Conn) {
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"a"}`+"\nnot json"))
		_, _, _ = ws.Read(ctx)
	})
	failed = run(t, func(tb testing.TB) {
		rec = tb.(*recorder)
		c := wstest.Dial(tb, url, nil)
		assert.Equal(t, wstest.Msg{Type: "a"}, c.Next())
		c.Next()
		t.Error("not reached")
	})
	assert.True(t, failed)
	assert.Contains(t, strings.Join(rec.msgs, "\n"), `server sent "not json"`)
}

// TestStrictHelpersFail checks that the helpers that require something fail the test
// when it is not so.
func TestStrictHelpersFail(t *testing.T) {
	h := wspub.New(nil)
	url := wstest.ServeHub(t, h)
	for name, fn := range map[string]func(c *wstest.Conn){
		"Expect": func(c *wstest.Conn) {
			c.SendText(`{"type":"ping","id":"1"}`)
			c.Expect("pang")
		},
		"ExpectError with another code": func(c *wstest.Conn) {
			c.SendText(`{"type":"nope","id":"1"}`)
			c.ExpectError(wspub.CodeForbidden, "1")
		},
		"ExpectError with another id": func(c *wstest.Conn) {
			c.SendText(`{"type":"nope","id":"1"}`)
			c.ExpectError(wspub.CodeUnknownType, "2")
		},
		"NothingPending": func(c *wstest.Conn) {
			c.Subscribe("a", "s")
			assert.NoError(t, h.Publish(context.Background(), "a", wspub.Message{Type: "pending"}))
			c.NothingPending("1")
		},
		"Subscribe refused": func(c *wstest.Conn) { c.Subscribe("a b", "s") },
	} {
		t.Run(name, func(t *testing.T) {
			assert.True(t, run(t, func(tb testing.TB) { fn(wstest.Dial(tb, url, nil)) }))
		})
	}
	t.Run("passing", func(t *testing.T) {
		assert.False(t, run(t, func(tb testing.TB) {
			c := wstest.Dial(tb, url, nil)
			c.SendText(`{"type":"nope","id":"1"}`)
			c.ExpectError(wspub.CodeUnknownType, "1")
			c.NothingPending("2")
		}))
	})
}

func TestDialFailures(t *testing.T) {
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	c, res, err := wstest.TryDial(t, wstest.WSURL(notFound.URL), nil)
	require.Error(t, err)
	assert.Nil(t, c)
	require.NotNil(t, res)
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
	assert.True(t, run(t, func(tb testing.TB) { wstest.Dial(tb, wstest.WSURL(notFound.URL), nil) }))

	// A server that selects no subprotocol is not a wspub hub.
	url := func() string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := websocket.Accept(w, r, nil)
			if err == nil {
				_ = ws.CloseNow()
			}
		}))
		t.Cleanup(srv.Close)
		return wstest.WSURL(srv.URL)
	}()
	assert.True(t, run(t, func(tb testing.TB) { wstest.Dial(tb, url, nil) }))
}

// TestDialOptions checks the header, the offered subprotocols and the contexts.
func TestDialOptions(t *testing.T) {
	got := make(chan *http.Request, 1)
	h := wspub.New(nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		_ = h.Close()
		srv.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := wstest.Dial(t, wstest.WSURL(srv.URL), &wstest.DialOptions{
		Context:      ctx,
		Subprotocols: []string{wspub.SubprotocolTokenPrefix + "x", wspub.Subprotocol},
		Header:       http.Header{"X-Test": {"1"}},
		HTTPClient:   srv.Client(),
	})
	r := <-got
	assert.Equal(t, "1", r.Header.Get("X-Test"))
	assert.Equal(t, "bearer.x,wspub.v1", strings.ReplaceAll(r.Header.Get("Sec-WebSocket-Protocol"), " ", ""), "in the order given")
	assert.True(t, ctx == c.Context(), "the context as given")
	c.NothingPending("1")

	c = wstest.Dial(t, wstest.WSURL(srv.URL), &wstest.DialOptions{Context: ctx, Timeout: 5 * time.Second})
	<-got
	deadline, _ := c.Context().Deadline()
	assert.WithinDuration(t, time.Now().Add(5*time.Second), deadline, 20*time.Second, "the earlier deadline, not the parent's minute")
}

func TestBackground(t *testing.T) {
	h := wspub.New(nil)
	url := wstest.ServeHub(t, h)
	c := wstest.Dial(t, url, &wstest.DialOptions{Background: true, MessageTimeout: 200 * time.Millisecond})
	c.Subscribe("a", "s")

	start := time.Now()
	_, ok := c.TryNext(50 * time.Millisecond)
	assert.False(t, ok)
	assert.Less(t, time.Since(start), 5*time.Second)
	require.NoError(t, h.Publish(context.Background(), "a", wspub.Message{Type: "x"}))
	m, ok := c.TryNext(10 * time.Second)
	assert.True(t, ok)
	assert.Equal(t, wstest.Msg{Type: "x", Channel: "a"}, m)
	c.NothingPending("p")

	// Next waits MessageTimeout at the most.
	assert.True(t, run(t, func(tb testing.TB) {
		wstest.Dial(tb, url, &wstest.DialOptions{Background: true, MessageTimeout: 50 * time.Millisecond}).Next()
	}))

	// The end of the connection ends the wait at once.
	require.NoError(t, h.Close())
	start = time.Now()
	_, ok = c.TryNext(10 * time.Second)
	assert.False(t, ok)
	assert.Less(t, time.Since(start), 5*time.Second)

	// TryNext needs the background reader.
	assert.True(t, run(t, func(tb testing.TB) {
		url := wstest.ServeHub(tb, wspub.New(nil))
		wstest.Dial(tb, url, nil).TryNext(time.Millisecond)
	}))
}

func TestLogRecorder(t *testing.T) {
	logger, logs := wstest.NewLogger()
	logger.Info("a", "n", 1)
	logger.With("ignored", true).WithGroup("g").Warn("b")
	logger.Error("a", slog.String("s", "x"))
	assert.Equal(t, []string{"a", "b", "a"}, logs.Messages())
	assert.Equal(t, []map[string]any{
		{"level": slog.LevelInfo, "n": int64(1)},
		{"level": slog.LevelError, "s": "x"},
	}, logs.Events("a"))
	assert.Equal(t, []map[string]any{{"level": slog.LevelWarn}}, logs.Events("b"))
	assert.Empty(t, logs.Events("c"))
	assert.True(t, logger.Enabled(context.Background(), slog.LevelDebug))
}

func TestUnavailable(t *testing.T) {
	t.Setenv("CI", "")
	var sub *testing.T
	t.Run("skips", func(t *testing.T) {
		sub = t
		wstest.Unavailable(t, "no %s", "service")
		t.Error("not reached")
	})
	assert.True(t, sub.Skipped())

	t.Setenv("CI", "true")
	var rec *recorder
	assert.True(t, run(t, func(tb testing.TB) {
		rec = tb.(*recorder)
		wstest.Unavailable(tb, "no %s", "service")
	}))
	assert.Equal(t, []string{"no service"}, rec.errors())
}

func TestFreePort(t *testing.T) {
	p := wstest.FreePort(t)
	assert.Positive(t, p)
	assert.Less(t, p, 1<<16)
}

// recorder is a testing.TB whose failures are recorded, not reported: run gives it to
// a function under test, so that a helper's failing can be tested. Everything else goes
// to the real test.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	msgs   []string
	failed bool
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
	r.failed = true
}

func (r *recorder) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *recorder) Fail() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
}

func (r *recorder) FailNow() {
	r.Fail()
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.Error(args...)
	runtime.Goexit()
}

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// errors returns the first line of every failure message recorded.
func (r *recorder) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.msgs))
	for i, m := range r.msgs {
		first, _, _ := strings.Cut(strings.TrimSpace(m), "\n")
		out[i] = first
	}
	return out
}

// run runs fn in a goroutine of its own with a recorder, and reports whether fn failed.
func run(t *testing.T, fn func(tb testing.TB)) bool {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.Failed()
}
