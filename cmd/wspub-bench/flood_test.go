package main

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub"
)

// TestRunFloodReportsFrames floods the bench server with each kind of frame during a
// short paced burst: the run completes, the normal clients get every message, and the
// JSON reports what the flooder sent. The latency is not asserted: this machine's is not
// the point of a test.
func TestRunFloodReportsFrames(t *testing.T) {
	base := startServer(t)
	for _, kind := range []string{floodPing, floodContinuation, floodPong} {
		t.Run(kind, func(t *testing.T) {
			res, err := runArgs(t, "-url", wsURL(base), "-conns", "5", "-msgs", "50", "-rate", "200", "-ramp", "0",
				"-flood", "1", "-flood-kind", kind)
			require.NoError(t, err)
			assert.False(t, res.failed())
			assert.EqualValues(t, 250, res.Deliveries)
			require.NotNil(t, res.Flood)
			f := res.Flood
			assert.Equal(t, kind, f.Kind)
			assert.Equal(t, 1, f.Clients)
			require.Len(t, f.PerClient, 1)
			assert.Greater(t, f.Frames, int64(1000), "it flooded for the whole burst, 64 KiB of frames at a time")
			assert.Equal(t, f.Frames, f.PerClient[0].Frames)
			// Empty masked frames of 6 bytes; the write the run interrupted may have ended
			// inside one.
			assert.InDelta(t, 6*f.Frames, f.PerClient[0].Bytes, 5)
			assert.GreaterOrEqual(t, f.PerClient[0].DurationS, (250 * time.Millisecond).Seconds())
			assert.Positive(t, f.FramesPerS)
			// Today's hub lets the flooder be; once it throttles frame input, a close is
			// reported with its code (TestRunFloodReportsServerClose).
			assert.Equal(t, f.ClosedByServer, count(f.PerClient, func(c floodClient) bool { return c.Closed }))
		})
	}
}

func count[T any](s []T, pred func(T) bool) int {
	n := 0
	for _, v := range s {
		if pred(v) {
			n++
		}
	}
	return n
}

// TestRunFloodReportsServerClose serves the bench hub to the normal clients and, to the
// flooders (told apart by their User-Agent), a server of its own that upgrades by hand,
// sends close 1008 after 100 ms and discards whatever comes: the report names the code,
// the reason and when.
func TestRunFloodReportsServerClose(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bench, shutdown := newServer(serveConfig{}, log)
	var (
		mu      sync.Mutex
		floods  []net.Conn
		readers sync.WaitGroup
	)
	mux := http.NewServeMux()
	mux.Handle("/", bench)
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() != floodUserAgent {
			bench.ServeHTTP(w, r)
			return
		}
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + wsGUID))
		conn, brw, err := http.NewResponseController(w).Hijack()
		if !assert.NoError(t, err) {
			return
		}
		mu.Lock()
		floods = append(floods, conn)
		mu.Unlock()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]), wspub.Subprotocol)
		assert.NoError(t, brw.Flush())
		readers.Add(1)
		go func() { // discards the flood until the connection ends
			defer readers.Done()
			_, _ = io.Copy(io.Discard, brw)
		}()
		time.Sleep(100 * time.Millisecond)
		// An unmasked close frame: 1008, "frame flood".
		_, err = conn.Write(append([]byte{0x88, 2 + 11, 0x03, 0xF0}, "frame flood"...))
		assert.NoError(t, err)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		assert.NoError(t, shutdown(ctx))
		mu.Lock()
		for _, c := range floods { // hijacked: the httptest server does not know them
			_ = c.Close()
		}
		mu.Unlock()
		readers.Wait()
		srv.Close()
	})

	res, err := runArgs(t, "-url", wsURL(srv.URL), "-conns", "3", "-msgs", "100", "-rate", "200", "-ramp", "0",
		"-flood", "2", "-flood-kind", floodPing)
	require.NoError(t, err)
	require.NotNil(t, res.Flood)
	assert.Equal(t, 2, res.Flood.ClosedByServer)
	for _, c := range res.Flood.PerClient {
		assert.True(t, c.Closed)
		assert.Equal(t, int(websocket.StatusPolicyViolation), c.CloseCode)
		assert.Equal(t, "frame flood", c.Reason)
		assert.InDelta(t, 0.1, c.ClosedS, 0.4)
		assert.Positive(t, c.Frames)
		assert.Empty(t, c.CloseError)
	}
	assert.EqualValues(t, 300, res.Deliveries, "the normal clients were served by the hub")
}
