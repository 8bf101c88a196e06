package wspub

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wsframe"
	"github.com/wspub/wspub/internal/wstest"
)

// blockingHandler registers a "work" handler that reports when it starts and returns
// only when release is closed, whatever its context says (ignoresCtx), or as soon as its
// context is cancelled.
func blockingHandler(t *testing.T, h *Hub, ignoresCtx bool) (started <-chan struct{}, ctxDone <-chan time.Time, release chan struct{}) {
	t.Helper()
	s := make(chan struct{}, 1)
	d := make(chan time.Time, 1)
	release = make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release) // a stuck handler must not outlive the test (goleak)
		}
	})
	require.NoError(t, h.Handle("work", func(ctx context.Context, _ *Conn, _ ClientMessage) error {
		s <- struct{}{}
		if ignoresCtx {
			<-release
			return nil
		}
		select {
		case <-ctx.Done():
			d <- time.Now()
		case <-release:
		}
		return nil
	}))
	return s, d, release
}

// TestContextIsCancelledWhenClosingStarts: a handler waiting on its connection's
// context is released the moment the connection starts closing, not after the close
// handshake, whoever closes it.
func TestContextIsCancelledWhenClosingStarts(t *testing.T) {
	for _, tt := range []struct {
		name  string
		close func(h *Hub, id string)
	}{
		{"CloseConn", func(h *Hub, id string) { _ = h.CloseConn(id, websocket.StatusNormalClosure, "bye") }},
		{"Shutdown", func(h *Hub, _ string) {
			go func() { _ = h.Shutdown(context.Background()) }()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ids := make(chan string, 1)
			h, url := startHub(t, &Options{
				CloseTimeout: time.Minute, // the client never answers the close: only ctx can end the handler
				OnConnect:    func(_ context.Context, c *Conn) error { ids <- c.ID(); return nil },
			})
			started, ctxDone, _ := blockingHandler(t, h, false)
			c := dialRaw(t, url)
			defer c.Close()
			c.sendText(t, `{"type":"work"}`)
			<-started
			begin := time.Now()
			tt.close(h, <-ids)
			select {
			case at := <-ctxDone:
				assert.Less(t, at.Sub(begin), time.Second)
			case <-time.After(5 * time.Second):
				t.Fatal("the handler's context was not cancelled when the connection started closing")
			}
		})
	}
}

// TestShutdownReturnsWhileAHandlerIgnoresItsContext: a handler that never returns does
// not hold Shutdown past its deadline and ShutdownGrace; it is logged, and the
// connection is gone from Stats.
func TestShutdownReturnsWhileAHandlerIgnoresItsContext(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url := startHub(t, &Options{Logger: logger})
	started, _, release := blockingHandler(t, h, true)
	c := dial(t, url)
	c.SendText(`{"type":"work"}`)
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := h.Shutdown(ctx)
	took := time.Since(begin)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, took, 300*time.Millisecond+ShutdownGrace+time.Second, "Shutdown took %v", took)
	assert.Equal(t, 0, h.Stats().Connections, "the connection was cleaned up although its handler runs")
	assert.Equal(t, uint64(1), h.Stats().Disconnects)
	incomplete := logs.Events("websocket_shutdown_incomplete")
	require.Len(t, incomplete, 1)
	assert.Equal(t, int64(1), incomplete[0]["handlers_running"])
	close(release)
}

// TestCloseIsPromptWithAHandlerWaitingOnItsContext: Close cancels the handler's context
// and returns once the handler has returned, at once.
func TestCloseIsPromptWithAHandlerWaitingOnItsContext(t *testing.T) {
	h, url := startHub(t, nil)
	started, ctxDone, _ := blockingHandler(t, h, false)
	c := dial(t, url)
	c.SendText(`{"type":"work"}`)
	<-started
	begin := time.Now()
	require.NoError(t, h.Close())
	assert.Less(t, time.Since(begin), time.Second)
	select {
	case <-ctxDone:
	default:
		t.Fatal("Close returned before the handler's context was cancelled")
	}
}

// TestDeadPeerIsCleanedUpWhileItsHandlerRuns: a peer that leaves while its handler
// hangs (so nothing reads its socket) is found out by the heartbeat and leaves Stats and
// its channels, and OnDisconnect runs, at once, not when the handler returns.
func TestDeadPeerIsCleanedUpWhileItsHandlerRuns(t *testing.T) {
	disconnected := make(chan string, 1)
	h, url := startHub(t, &Options{
		PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond,
		OnDisconnect: func(_ *Conn, _ websocket.StatusCode, reason string) { disconnected <- reason },
	})
	started, _, release := blockingHandler(t, h, true)
	c := dialRaw(t, url)
	c.sendText(t, `{"type":"subscribe","channel":"room"}`)
	eventually(t, func() bool { return h.Stats().Subscriptions == 1 })
	c.sendText(t, `{"type":"work"}`)
	<-started
	require.NoError(t, c.Close())
	select {
	case reason := <-disconnected: // the heartbeat's ping finds the socket gone, or no pong
		assert.Contains(t, []string{"write failed", "pong timeout"}, reason)
	case <-time.After(5 * time.Second):
		t.Fatalf("not cleaned up while its handler runs: %+v", h.Stats())
	}
	st := h.Stats()
	assert.Equal(t, 0, st.Connections)
	assert.Equal(t, 0, st.Subscriptions)
	close(release)
}

// TestCloseReasonFitsACloseFrame: a reason too long for a close frame is cut at a
// character boundary, and one that is not UTF-8 is mended, instead of the close going
// out as 1011 without a reason.
func TestCloseReasonFitsACloseFrame(t *testing.T) {
	ids := make(chan string, 2)
	h, url := startHub(t, &Options{OnConnect: func(_ context.Context, c *Conn) error { ids <- c.ID(); return nil }})
	for _, tt := range []struct{ name, reason, want string }{
		{"long", strings.Repeat("é", 100), strings.Repeat("é", 61)},
		{"not UTF-8", "bad \xff byte", "bad \uFFFD byte"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, url)
			require.NoError(t, h.CloseConn(<-ids, websocket.StatusPolicyViolation, tt.reason))
			var ce websocket.CloseError
			require.ErrorAs(t, c.CloseErr(), &ce)
			assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)
			assert.Equal(t, tt.want, ce.Reason)
			assert.True(t, utf8.ValidString(ce.Reason))
		})
	}
}

// TestInvalidUTF8CloseReasonIsAnswered1007: a client whose close frame carries a
// reason that is not UTF-8 gets 1007 back, not its own bytes echoed, and OnDisconnect
// sees 1007.
func TestInvalidUTF8CloseReasonIsAnswered1007(t *testing.T) {
	type ending struct {
		code   websocket.StatusCode
		reason string
	}
	ended := make(chan ending, 1)
	_, url := startHub(t, &Options{OnDisconnect: func(_ *Conn, code websocket.StatusCode, reason string) {
		ended <- ending{code, reason}
	}})
	c := dialRaw(t, url)
	defer c.Close()
	require.NoError(t, c.writeFrame(wsframe.OpClose, true, []byte("\x03\xe8bye \xff\xfe")))
	payload, err := c.readUntil(wsframe.OpClose)
	require.NoError(t, err)
	assert.Equal(t, 1007, closeCode(payload))
	assert.Equal(t, invalidCloseReason, string(payload[2:]))
	assert.Equal(t, ending{websocket.StatusInvalidFramePayloadData, invalidCloseReason}, <-ended)
}

// TestCloseDoesNotWaitForOnDisconnect: the cleanup of a connection whose handler
// ignores its context runs apart from Close, so a slow OnDisconnect does not hold Close
// past ShutdownGrace.
func TestCloseDoesNotWaitForOnDisconnect(t *testing.T) {
	unblock := make(chan struct{})
	t.Cleanup(func() { close(unblock) })
	h, url := startHub(t, &Options{
		OnDisconnect: func(*Conn, websocket.StatusCode, string) {
			select {
			case <-unblock:
			case <-time.After(5 * time.Second):
			}
		},
	})
	started, _, _ := blockingHandler(t, h, true)
	c := dialRaw(t, url)
	defer c.Close()
	c.sendText(t, `{"type":"work"}`)
	<-started
	begin := time.Now()
	require.NoError(t, h.Close())
	assert.Less(t, time.Since(begin), ShutdownGrace+time.Second)
}

// TestCloseCutsAnUpgradeInProgress: a connection whose handshake was under way when
// Close ran is cut as soon as it registers, not closed gracefully, so Close does not
// wait for a peer that never answers a close frame.
func TestCloseCutsAnUpgradeInProgress(t *testing.T) {
	inAuth, release := make(chan struct{}), make(chan struct{})
	h, url := startHub(t, &Options{
		CloseTimeout: time.Minute,
		Authenticate: func(*http.Request) (Identity, error) {
			close(inAuth)
			<-release
			return Identity{}, nil
		},
	})
	dialed := make(chan *rawConn, 1)
	go func() {
		c, err := rawDialer{}.dial(url) // never answers a close frame
		assert.NoError(t, err)
		dialed <- c
	}()
	<-inAuth
	took := make(chan time.Duration, 1)
	go func() {
		begin := time.Now()
		_ = h.Close()
		took <- time.Since(begin)
	}()
	eventually(t, h.aborting.Load)
	close(release)
	if c := <-dialed; c != nil {
		defer c.Close()
		require.NoError(t, c.waitClosed(context.Background()))
	}
	assert.Less(t, <-took, ShutdownGrace+time.Second)
}
