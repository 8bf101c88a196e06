package wspub

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

// seq is the payload of numbered test messages.
type seq struct {
	N   int    `json:"n"`
	Pad string `json:"pad,omitempty"`
}

func seqOf(t testing.TB, e wstest.Msg) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(string(e.Data), `{"n":`), "}"))
	if err != nil { // padded messages
		var s struct{ N int }
		_, err = fmt.Sscanf(string(e.Data), `{"n":%d`, &s.N)
		require.NoError(t, err, "data %s", e.Data)
		n = s.N
	}
	return n
}

// TestSlowConsumerIsEvicted: one client stops reading while 100 000 messages are published.
// Only the stalled client is evicted, with close 1013 "slow consumer"; the healthy ones
// get every message in order; Publish never blocks; the eviction is counted and logged
// once.
func TestSlowConsumerIsEvicted(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url := startHub(t, &Options{Logger: logger, MaxQueueBytes: 64 << 10, CloseTimeout: 20 * time.Second})
	stalled := dial(t, url)
	stalled.Subscribe("feed", "s")
	healthy := []*wstest.Conn{dial(t, url), dial(t, url), dial(t, url)}
	for _, c := range healthy {
		c.Subscribe("feed", "s")
	}

	var published int
	received := make([]atomic.Int64, len(healthy))
	var wg sync.WaitGroup
	for i, c := range healthy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for want := 0; ; want++ {
				e := c.Next()
				if e.Type == "end" {
					assert.Equal(t, published, want, "healthy client lost messages")
					return
				}
				if !assert.Equal(t, want, seqOf(t, e)) {
					return
				}
				received[i].Store(int64(want + 1))
			}
		}()
	}
	// keepingUp paces the publisher to the healthy readers (which run slowly under -race)
	// so that only the stalled client can overflow its queue.
	keepingUp := func() bool {
		for i := range received {
			if int64(published)-received[i].Load() > 32 {
				return false
			}
		}
		return true
	}
	pad := strings.Repeat("x", 100)
	start := time.Now()
	var slowest time.Duration
	evictedAt := 0
	for published < 100000 {
		if evictedAt == 0 && h.Stats().SlowEvictions > 0 {
			evictedAt = published
		}
		for !keepingUp() {
			time.Sleep(50 * time.Microsecond)
		}
		t0 := time.Now()
		require.NoError(t, h.Publish(context.Background(), "feed", Message{Type: "m", Data: seq{published, pad}}))
		slowest = max(slowest, time.Since(t0))
		published++
	}
	require.NoError(t, h.Publish(context.Background(), "feed", Message{Type: "end"}))
	t.Logf("published %d messages of ~150 B in %v, the stalled client evicted after %d; slowest Publish %v",
		published, time.Since(start), evictedAt, slowest)
	wg.Wait()

	st := h.Stats()
	assert.Equal(t, uint64(1), st.SlowEvictions)
	assert.NotZero(t, st.Dropped, "the evicted client's queue is counted as dropped")
	assert.Len(t, logs.Events("websocket_slow_consumer"), 1)

	// The stalled client wakes up: it gets an in-order prefix, then the close frame.
	last := -1
	var err error
	for {
		var b []byte
		if b, err = stalled.NextRaw(); err != nil {
			break
		}
		if n := seqOf(t, wstest.Decode(t, b)); assert.Equal(t, last+1, n) {
			last = n
		}
	}
	assert.Equal(t, StatusSlowConsumer, websocket.CloseStatus(err), "got %v", err)
	assert.Contains(t, err.Error(), "slow consumer")
	assert.Less(t, last, published-1)
	eventually(t, func() bool { return h.Stats().Connections == 3 })
	assert.Equal(t, 3, h.Stats().Subscriptions)
}

// TestDropOldest: with DropOldest a stalled client keeps its connection, loses its oldest
// messages and, once it reads again, gets the newest ones in order.
func TestDropOldest(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url := startHub(t, &Options{Logger: logger, Overflow: DropOldest, MaxQueueBytes: 16 << 10})
	c := dial(t, url)
	c.Subscribe("quotes", "s")
	const n = 20000
	pad := strings.Repeat("q", 200)
	for i := range n {
		require.NoError(t, h.Publish(context.Background(), "quotes", Message{Type: "quote", Data: seq{i, pad}}))
	}
	require.NoError(t, h.Publish(context.Background(), "quotes", Message{Type: "end"}))
	last, got := -1, 0
	for {
		e := c.Next()
		if e.Type == "end" {
			break
		}
		n := seqOf(t, e)
		require.Greater(t, n, last, "order kept across drops")
		last = n
		got++
	}
	st := h.Stats()
	t.Logf("received %d of %d; dropped %d", got, n, st.Dropped)
	assert.Equal(t, n-1, last, "the newest message survives")
	assert.Less(t, got, n)
	assert.Equal(t, uint64(n-got), st.Dropped)
	assert.Zero(t, st.SlowEvictions)
	assert.Len(t, logs.Events("websocket_messages_dropped"), 1, "logged once per connection")
	c.RoundTrip("still-open")
}

// TestBurstAbsorbed: the default queue absorbs a burst of 1000 messages of ~150 B to a
// client reading at full speed while both cores are busy.
func TestBurstAbsorbed(t *testing.T) {
	h, url := startHub(t, nil)
	clients := make([]*wstest.Conn, 10)
	for i := range clients {
		clients[i] = dial(t, url)
		clients[i].Subscribe("burst", "s")
	}
	stop := make(chan struct{})
	var busy sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		busy.Add(1)
		go func() { // keep every core busy
			defer busy.Done()
			for x := 0; ; x++ {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	defer func() { close(stop); busy.Wait() }()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				if !assert.Equal(t, i, seqOf(t, c.Next())) {
					return
				}
			}
		}()
	}
	pad := strings.Repeat("p", 130)
	for i := range 3000 { // three bursts of 1000
		require.NoError(t, h.Publish(context.Background(), "burst", Message{Type: "m", Data: seq{i, pad}}))
	}
	wg.Wait()
	assert.Zero(t, h.Stats().SlowEvictions)
	assert.Zero(t, h.Stats().Dropped)
}

// TestWriterBatches drives the writer with a transport that blocks on its first write, so
// that the queue fills behind it: the next frames pack MaxBatch messages joined by '\n'.
func TestWriterBatches(t *testing.T) {
	for _, maxBatch := range []int{1, 4, 16} {
		t.Run(fmt.Sprint("MaxBatch=", maxBatch), func(t *testing.T) {
			h := New(&Options{MaxBatch: maxBatch})
			t.Cleanup(func() { _ = h.Close() })
			release := make(chan struct{})
			var frames []string
			var mu sync.Mutex
			c := newTestConn(h, func(p []byte) error {
				mu.Lock()
				first := len(frames) == 0
				frames = append(frames, string(p))
				mu.Unlock()
				if first {
					<-release
				}
				return nil
			})
			require.NoError(t, c.enqueue([]byte("0")))
			eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(frames) == 1 })
			for i := 1; i < 21; i++ { // queued behind the blocked write
				require.NoError(t, c.enqueue([]byte(strconv.Itoa(i))))
			}
			close(release)
			eventually(t, func() bool { return h.Stats().Delivered == 21 })
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, "0", frames[0], "a lone message is written at once")
			var all []string
			for _, f := range frames {
				parts := strings.Split(f, "\n")
				assert.LessOrEqual(t, len(parts), maxBatch)
				all = append(all, parts...)
			}
			for i, s := range all {
				assert.Equal(t, strconv.Itoa(i), s)
			}
			want := 1 + (20+maxBatch-1)/maxBatch
			assert.Len(t, frames, want)
			assert.Equal(t, uint64(want), h.Stats().Frames)
			c.abort(websocket.StatusNormalClosure, "")
		})
	}
}

// newTestConn registers a connection whose frames go to write instead of a socket.
func newTestConn(h *Hub, write func([]byte) error) *Conn {
	a, b := net.Pipe()
	_ = b.Close()
	c := &Conn{hub: h, id: h.idPrefix + strconv.FormatUint(h.nextID.Add(1), 10), raw: a, write: write}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.writeFn = c.writeLoop
	h.reg.reserve("")
	h.reg.add(c)
	return c
}

// TestPushReportsBehind: a message counts as behind once behindQueued messages wait and
// the writer has taken none for longer than behindAfter; a message to an empty queue, or
// behind only a few, never does.
func TestPushReportsBehind(t *testing.T) {
	h := New(&Options{PingInterval: time.Hour})
	t.Cleanup(func() { _ = h.Close() })
	release := make(chan struct{})
	c := newTestConn(h, func([]byte) error { <-release; return nil })
	queued := func() int { c.mu.Lock(); defer c.mu.Unlock(); return c.q.n }
	push := func(now int64) bool {
		t.Helper()
		behind, err := c.push([]byte("m"), now)
		require.NoError(t, err)
		return behind
	}

	now := h.clock()
	assert.False(t, push(now), "an empty queue")
	eventually(t, func() bool { return queued() == 0 }) // the writer took it and is blocked
	stale := now + int64(behindAfter) + 1
	assert.False(t, push(now), "an empty queue again")
	for queued() < behindQueued {
		assert.False(t, push(stale), "fewer than behindQueued waiting (%d)", queued())
	}
	assert.False(t, push(now+int64(behindAfter)), "not longer than behindAfter")
	assert.True(t, push(stale), "behindQueued waiting, nothing taken for longer than behindAfter")
	close(release)
	eventually(t, func() bool { return h.Stats().Delivered == uint64(behindQueued)+3 })
}
