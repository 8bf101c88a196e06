package wspub

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

// TestGracefulShutdown: with 1000 clients, Shutdown sends each close 1001, answers new
// upgrades with 503, and returns once every goroutine has exited.
func TestGracefulShutdown(t *testing.T) {
	const n = 1000
	h, url := startHub(t, nil)
	clients := make([]*wstest.Conn, n)
	for i := range clients {
		clients[i] = dial(t, url)
	}
	clients[0].Subscribe("a", "s")
	codes := make(chan websocket.StatusCode, n)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- websocket.CloseStatus(c.CloseErr())
		}()
	}
	eventually(t, func() bool { return h.Stats().Connections == n })

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	start := time.Now()
	require.NoError(t, h.Shutdown(ctx))
	t.Logf("Shutdown of %d connections took %v", n, time.Since(start))
	wg.Wait()
	close(codes)
	for code := range codes {
		require.Equal(t, websocket.StatusGoingAway, code)
	}
	st := h.Stats()
	assert.Equal(t, 0, st.Connections)
	assert.Equal(t, 0, st.Channels)
	assert.Equal(t, uint64(n), st.Disconnects)

	_, resp, err := websocket.Dial(ctx, url, nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NoError(t, h.Shutdown(ctx), "Shutdown is idempotent")
	assert.NoError(t, h.Close())
	assert.ErrorIs(t, h.Publish(ctx, "a", Message{Type: "x"}), ErrHubClosed)
}

// TestShutdownDeadline: a client that never answers the close handshake holds Shutdown
// until its ctx ends; then the connection is cut and Shutdown returns ctx.Err().
func TestShutdownDeadline(t *testing.T) {
	h, url := startHub(t, &Options{CloseTimeout: time.Minute})
	mute := dial(t, url) // never reads, so never answers the close
	polite := dial(t, url)
	politeErr := make(chan error, 1)
	go func() { politeErr <- polite.CloseErr() }()
	eventually(t, func() bool { return h.Stats().Connections == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.Shutdown(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(<-politeErr))
	assert.Equal(t, 0, h.Stats().Connections)
	_ = mute
}

// TestUnansweredCloseIsCutAfterCloseTimeout: a peer that never answers a close frame is cut off after
// CloseTimeout.
func TestUnansweredCloseIsCutAfterCloseTimeout(t *testing.T) {
	h, url := startHub(t, &Options{CloseTimeout: 200 * time.Millisecond})
	require.NoError(t, h.Handle("leave", func(_ context.Context, c *Conn, _ ClientMessage) error {
		return c.Close(websocket.StatusNormalClosure, "bye")
	}))
	c := dial(t, url)
	c.SendText(`{"type":"leave"}`) // and never read again, so never answer the close
	eventually(t, func() bool { return h.Stats().Connections == 1 })
	start := time.Now()
	eventually(t, func() bool { return h.Stats().Connections == 0 })
	assert.Less(t, time.Since(start), 3*time.Second)
}

// TestCloseIsImmediate: Close cuts every connection without a handshake.
func TestCloseIsImmediate(t *testing.T) {
	h, url := startHub(t, &Options{CloseTimeout: time.Minute})
	c := dial(t, url)
	c.Subscribe("a", "s")
	require.NoError(t, h.Close())
	assert.Equal(t, 0, h.Stats().Connections)
	err := c.CloseErr()
	assert.Equal(t, websocket.StatusCode(-1), websocket.CloseStatus(err), "no close frame: %v", err)
	assert.NoError(t, h.Close())
	assert.NoError(t, h.Shutdown(context.Background()))
	resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}
