package wspub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wsframe"
	"github.com/wspub/wspub/internal/wstest"
)

// heapAfterGC returns the bytes of live heap objects once garbage has been collected:
// twice, so that objects a finalizer kept for one more cycle are gone too.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// connEnding is one way for a connection to end, as TestEndedConnectionsLeaveNoHeap
// drives it.
type connEnding struct {
	name string
	opts Options
	// ownHub: the way ends the hub too (Close, Shutdown), so each round has a hub of its own.
	ownHub bool
	// smallBuffers shrinks the clients' receive buffers and the server's send buffers, so
	// that a socket the client does not read fills after a few kilobytes.
	smallBuffers bool
	// end makes every connection of the round end; it returns once the hub has let them go.
	end func(t *testing.T, r *endingRound)
	// settle is waited after the warm-up round, before the baseline is measured: what
	// the warm-up leaves for a while must not hide what the measured round leaves.
	settle time.Duration
}

// endingRound is what the end function of a connEnding works with.
type endingRound struct {
	hub   *Hub
	conns []*rawConn
	ids   []string // the connections' IDs, in the order of conns
}

// each runs fn for every client at once and waits for them all.
func (r *endingRound) each(fn func(i int, c *rawConn)) {
	var wg sync.WaitGroup
	for i, c := range r.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, c)
		}()
	}
	wg.Wait()
}

// publishUntil publishes messages of size bytes to "room" until cond holds, at most max
// of them.
func (r *endingRound) publishUntil(t *testing.T, size, limit int, cond func() bool) {
	t.Helper()
	data := strings.Repeat("x", size)
	for i := 0; !cond(); i++ {
		require.Less(t, i, limit, "stats: %+v", r.hub.Stats())
		require.NoError(t, r.hub.Publish(context.Background(), "room", Message{Type: "fill", Data: data}))
		if i%8 == 7 {
			time.Sleep(time.Millisecond) // let the writers hit their sockets
		}
	}
}

// TestEndedConnectionsLeaveNoHeap opens 1 000 connections, ends them one way, and checks
// that the live heap after GC returns to what it was after a warm-up round of the same:
// for every way a connection can end, nothing it used stays reachable.
func TestEndedConnectionsLeaveNoHeap(t *testing.T) {
	const n = 1000
	const perConnLimit = 1024 // bytes of heap an ended connection may leave, on average
	waitGone := func(t *testing.T, h *Hub) {
		eventually(t, func() bool { return h.Stats().Connections == 0 }, "stats: %+v", h.Stats())
	}
	closeClients := func(r *endingRound) { r.each(func(_ int, c *rawConn) { _ = c.Close() }) }
	endings := []connEnding{
		{name: "close handshake from the client", end: func(t *testing.T, r *endingRound) {
			r.each(func(_ int, c *rawConn) { assert.NoError(t, c.closeHandshake()) })
			waitGone(t, r.hub)
		}},
		{name: "TCP FIN without a close frame", end: func(t *testing.T, r *endingRound) {
			closeClients(r)
			waitGone(t, r.hub)
		}},
		{name: "TCP RST", end: func(t *testing.T, r *endingRound) {
			r.each(func(_ int, c *rawConn) { _ = c.reset() })
			waitGone(t, r.hub)
		}},
		{name: "TCP FIN while the heartbeat waits for pongs",
			// Long enough to dial the round before the first ping; the connections leave
			// and are measured while the round still waits for their pongs.
			opts:   Options{PingInterval: 2 * time.Second, PongTimeout: 1900 * time.Millisecond},
			settle: 2 * time.Second, // the warm-up's round is over
			end: func(t *testing.T, r *endingRound) {
				_, err := r.conns[0].readUntil(wsframe.OpPing)
				require.NoError(t, err)
				closeClients(r)
				waitGone(t, r.hub)
			}},
		{name: "reaped by the heartbeat", opts: Options{PingInterval: time.Second, PongTimeout: 500 * time.Millisecond},
			end: func(t *testing.T, r *endingRound) {
				waitGone(t, r.hub) // the clients never read, so never answer a ping
				closeClients(r)
			}},
		{name: "evicted for a full send queue", smallBuffers: true,
			opts: Options{MaxQueueBytes: 64 << 10, CloseTimeout: 200 * time.Millisecond},
			end: func(t *testing.T, r *endingRound) {
				evicted := r.hub.Stats().SlowEvictions
				r.publishUntil(t, 8<<10, 10_000, func() bool { return r.hub.Stats().SlowEvictions-evicted == n })
				waitGone(t, r.hub)
				closeClients(r)
			}},
		{name: "evicted for a stalled write", smallBuffers: true,
			// The queue holds more than is ever published, so only the write deadline evicts.
			opts: Options{MaxQueueBytes: 8 << 20, WriteTimeout: 200 * time.Millisecond, CloseTimeout: 200 * time.Millisecond},
			end: func(t *testing.T, r *endingRound) {
				evicted := r.hub.Stats().SlowEvictions
				r.publishUntil(t, 8<<10, 900, func() bool { return r.hub.Stats().SlowEvictions-evicted == n })
				waitGone(t, r.hub)
				closeClients(r)
			}},
		{name: "closed by CloseConn", end: func(t *testing.T, r *endingRound) {
			r.each(func(i int, c *rawConn) {
				assert.NoError(t, r.hub.CloseConn(r.ids[i], websocket.StatusNormalClosure, "bye"))
				assert.NoError(t, c.answerClose())
			})
			waitGone(t, r.hub)
		}},
		{name: "closed by CloseUser", end: func(t *testing.T, r *endingRound) {
			r.each(func(i int, c *rawConn) {
				assert.Equal(t, 1, r.hub.CloseUser(fmt.Sprintf("u%d", i), websocket.StatusPolicyViolation, "logged out"))
				assert.NoError(t, c.answerClose())
			})
			waitGone(t, r.hub)
		}},
		{name: "aborted by Close", ownHub: true, end: func(t *testing.T, r *endingRound) {
			require.NoError(t, r.hub.Close())
			waitGone(t, r.hub)
			closeClients(r)
		}},
		{name: "aborted by a Shutdown past its deadline", ownHub: true, opts: Options{CloseTimeout: time.Minute},
			end: func(t *testing.T, r *endingRound) {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				assert.ErrorIs(t, r.hub.Shutdown(ctx), context.DeadlineExceeded) // the clients never answer
				waitGone(t, r.hub)
				closeClients(r)
			}},
	}
	for _, e := range endings {
		t.Run(e.name, func(t *testing.T) {
			var shared *Hub
			var sharedURL string
			var idsMu sync.Mutex
			var ids map[string]string // user -> connection ID
			newHub := func() (*Hub, string, func()) {
				o := e.opts
				o.MessageRate = -1
				o.Authenticate = userFromQuery
				o.OnConnect = func(_ context.Context, c *Conn) error {
					idsMu.Lock()
					defer idsMu.Unlock()
					ids[c.UserID()] = c.ID()
					return nil
				}
				h := New(&o)
				srv := httptest.NewUnstartedServer(h)
				if e.smallBuffers { // accepted sockets inherit the listener's send buffer
					require.NoError(t, srv.Listener.Close())
					srv.Listener = listenWithSendBuffer(t, 8<<10)
				}
				srv.Start()
				stop := func() {
					_ = h.Close()
					srv.Close()
				}
				if !e.ownHub {
					t.Cleanup(stop)
					return h, wstest.WSURL(srv.URL), func() {}
				}
				// Nothing may keep a hub of its own alive once its round is over, not
				// even a cleanup function: its maps keep the buckets they grew.
				return h, wstest.WSURL(srv.URL), stop
			}
			rcvbuf := 0
			if e.smallBuffers {
				rcvbuf = 4 << 10
			}
			round := func() {
				h, url := shared, sharedURL
				if e.ownHub || h == nil {
					var stop func()
					h, url, stop = newHub()
					defer stop()
					if !e.ownHub {
						shared, sharedURL = h, url
					}
				}
				ids = make(map[string]string, n)
				r := &endingRound{hub: h, conns: make([]*rawConn, n), ids: make([]string, n)}
				var dials sync.WaitGroup
				for w := range 16 { // dial in parallel: a round must not take seconds
					dials.Add(1)
					go func() {
						defer dials.Done()
						for i := w; i < n; i += 16 {
							c, err := rawDialer{rcvbuf: rcvbuf}.dial(fmt.Sprintf("%s?user=u%d", url, i))
							if !assert.NoError(t, err) {
								return
							}
							assert.NoError(t, c.writeFrame(wsframe.OpText, true, []byte(`{"type":"subscribe","channel":"room"}`)))
							r.conns[i] = c
						}
					}()
				}
				dials.Wait()
				require.False(t, t.Failed())
				eventually(t, func() bool { return h.Stats().Subscriptions == n }, "stats: %+v", h.Stats())
				idsMu.Lock()
				for i := range r.ids {
					r.ids[i] = ids[fmt.Sprintf("u%d", i)]
				}
				ids = nil
				idsMu.Unlock()
				e.end(t, r)
			}
			start := time.Now()
			round() // warm-up: pools, maps and buffers reach their steady size
			time.Sleep(e.settle)
			goroutines := runtime.NumGoroutine()
			before := heapAfterGC()
			round()
			after := heapAfterGC()
			t.Logf("two rounds in %v", time.Since(start))
			perConn := (int64(after) - int64(before)) / n
			t.Logf("heap after GC: %d B before, %d B after %d connections ended: %d B per connection",
				before, after, n, perConn)
			assert.LessOrEqual(t, perConn, int64(perConnLimit), "heap left per ended connection")
			// require.Eventually runs its condition on a goroutine of its own: poll here.
			for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > goroutines; {
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<20)
					t.Fatalf("goroutines: %d, were %d:\n%s", runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// listenWithSendBuffer listens on a loopback port whose accepted connections have a
// send buffer of size bytes, which also turns off its autotuning.
func listenWithSendBuffer(t *testing.T, size int) net.Listener {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, size)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}
