package wspub

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wsframe"
	"github.com/wspub/wspub/internal/wstest"
)

// TestDeadPeerIsReaped: a client that stops reading (so never answers a ping)
// while its TCP connection stays open is reaped within PingInterval + PongTimeout, and
// leaves its channels; a client that reads stays.
func TestDeadPeerIsReaped(t *testing.T) {
	logger, logs := wstest.NewLogger()
	h, url := startHub(t, &Options{Logger: logger, PingInterval: 200 * time.Millisecond, PongTimeout: 100 * time.Millisecond})
	alive, dead := dial(t, url), dial(t, url)
	alive.Subscribe("a", "s")
	dead.Subscribe("a", "s")
	dead.Subscribe("b", "s")

	readErr := make(chan error, 1)
	go func() { // a reading client answers pings
		_, err := alive.NextRaw()
		readErr <- err
	}()
	start := time.Now()
	eventually(t, func() bool { return h.Stats().Reaped == 1 })
	t.Logf("reaped after %v", time.Since(start))
	eventually(t, func() bool { return h.Stats().Connections == 1 })
	st := h.Stats()
	assert.Equal(t, 1, st.Subscriptions)
	assert.Equal(t, 1, st.Channels)

	time.Sleep(3 * 200 * time.Millisecond) // three more heartbeats: the live one stays
	assert.Equal(t, uint64(1), h.Stats().Reaped)
	assert.Equal(t, 1, h.Stats().Connections)
	reaped := logs.Events("websocket_reaped")
	require.Len(t, reaped, 1)
	disc := logs.Events("websocket_disconnected")
	require.Len(t, disc, 1)
	assert.Equal(t, "pong timeout", disc[0]["reason"])
	assert.Equal(t, reaped[0]["conn_id"], disc[0]["conn_id"])

	_, err := dead.NextRaw()
	assert.Error(t, err, "the reaped client's TCP connection is closed")
	select {
	case err := <-readErr:
		t.Fatalf("live client lost its connection: %v", err)
	default:
	}
}

// TestExpiredIdentityIsClosed: an identity whose expiry passes is closed with 4001 ("get a
// new token and reconnect", not 1008's "stop") within one heartbeat.
func TestExpiredIdentityIsClosed(t *testing.T) {
	expires := time.Now().Add(300 * time.Millisecond)
	h, url := startHub(t, &Options{
		PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond,
		Authenticate: func(r *http.Request) (Identity, error) {
			if r.URL.Query().Get("user") == "temp" {
				return Identity{UserID: "temp", Expires: expires}, nil
			}
			return Identity{UserID: "forever"}, nil
		},
	})
	temp, forever := dial(t, url+"?user=temp"), dial(t, url+"?user=forever")
	go func() { _ = forever.CloseErr() }() // reading, so answering pings
	err := temp.CloseErr()
	assert.Equal(t, StatusIdentityExpired, websocket.CloseStatus(err))
	assert.Equal(t, websocket.StatusCode(4001), websocket.CloseStatus(err))
	assert.Contains(t, err.Error(), "identity expired")
	assert.WithinDuration(t, expires, time.Now(), 2*100*time.Millisecond+time.Second)
	eventually(t, func() bool { return h.Stats().Connections == 1 })
	assert.Zero(t, h.Stats().Reaped)
}

func TestOptionDefaults(t *testing.T) {
	o := (*Options)(nil).withDefaults()
	assert.Equal(t, int64(32<<10), o.MaxMessageBytes)
	assert.Equal(t, 200, o.MaxChannelBytes)
	assert.Equal(t, 1<<20, o.MaxQueueBytes)
	assert.Equal(t, 16, o.MaxBatch)
	assert.Equal(t, 25*time.Second, o.PingInterval)
	assert.Equal(t, 10*time.Second, o.PongTimeout)
	assert.Equal(t, 10*time.Second, o.WriteTimeout)
	assert.Equal(t, 5*time.Second, o.CloseTimeout)
	assert.Equal(t, EvictSlowConsumer, o.Overflow)
	assert.NotNil(t, o.Logger)

	in := &Options{PingInterval: time.Second, PongTimeout: time.Minute, MaxQueueMessages: -3}
	o = in.withDefaults()
	assert.Len(t, o.adjust(), 1)
	assert.Equal(t, time.Second, o.PongTimeout, "PongTimeout is clamped to PingInterval")
	assert.Zero(t, o.MaxQueueMessages)
	assert.Equal(t, time.Minute, in.PongTimeout, "the caller's Options are not changed")
	assert.Nil(t, in.Logger)
}

// TestUnsolicitedPongsDoNotKeepAPeerAlive: a client that never reads, and so never sees
// a ping, but sends pongs of its own accord is reaped all the same: only a pong that
// carries the ping's payload counts.
func TestUnsolicitedPongsDoNotKeepAPeerAlive(t *testing.T) {
	h, url := startHub(t, &Options{PingInterval: 200 * time.Millisecond, PongTimeout: 100 * time.Millisecond})
	c := dialRaw(t, url)
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if c.writeFrame(wsframe.OpPong, true, []byte("12345678")) != nil {
					return
				}
			}
		}
	}()
	eventually(t, func() bool { return h.Stats().Reaped == 1 })
	assert.Equal(t, 0, h.Stats().Connections)
}

// TestAnsweredPingsKeepAPeerAlive: a raw client that answers each ping with its payload,
// as RFC 6455 asks, is never reaped.
func TestAnsweredPingsKeepAPeerAlive(t *testing.T) {
	h, url := startHub(t, &Options{PingInterval: 100 * time.Millisecond, PongTimeout: 50 * time.Millisecond})
	c := dialRaw(t, url)
	defer c.Close()
	for range 5 {
		payload, err := c.readUntil(wsframe.OpPing)
		require.NoError(t, err)
		require.Len(t, payload, pingTokenBytes)
		require.NoError(t, c.writeFrame(wsframe.OpPong, true, payload))
	}
	assert.Zero(t, h.Stats().Reaped)
	assert.Equal(t, 1, h.Stats().Connections)
}

// TestPingRoundHoldsNoGoroutinePerPeer: pinging 300 peers that never answer leaves no
// goroutine waiting PongTimeout for each: once the pings are out, the goroutine count is
// back near its baseline while the pongs are due; then the peers are reaped.
func TestPingRoundHoldsNoGoroutinePerPeer(t *testing.T) {
	const n = 300
	h, url := startHub(t, &Options{PingInterval: 2 * time.Second, PongTimeout: time.Second})
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = dialRaw(t, url) // never answers
		defer conns[i].Close()
	}
	eventually(t, func() bool { return h.Stats().Connections == n })
	base := runtime.NumGoroutine()
	_, err := conns[n-1].readUntil(wsframe.OpPing) // the round has started
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond) // the writers that sent the pings are done
	during := runtime.NumGoroutine()
	t.Logf("goroutines: %d before the round, %d while %d pongs are due", base, during, n)
	assert.Less(t, during-base, n/10)
	eventually(t, func() bool { return h.Stats().Reaped == n })
}
