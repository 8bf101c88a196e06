package natsbroker

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
)

// Bounds of the tests of an unresponsive NATS server.
const (
	// pausedTimeout is the hubs' BrokerTimeout.
	pausedTimeout = 300 * time.Millisecond
	// pausedSlack is what a broker operation may take beyond BrokerTimeout: the
	// scheduling of a busy machine under -race, not anything NATS does.
	pausedSlack = 250 * time.Millisecond
)

// readmeNode starts a node whose connection is made as the README shows:
// nats.Connect(url, nats.MaxReconnects(-1)), every other option at nats.go's default
// (PingInterval 2 minutes, FlusherTimeout 1 minute).
func readmeNode(t *testing.T, url, prefix string, hubOpts wspub.Options, brokerOpts Options) *node {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	brokerOpts.Prefix = prefix
	b, err := New(nc, &brokerOpts)
	require.NoError(t, err)
	hubOpts.Broker = b
	h := wspub.New(&hubOpts)
	return &node{hub: h, broker: b, nc: nc, url: wstest.ServeHub(t, h)}
}

// dialBackground connects a WebSocket client to a node, read by a goroutine of its
// own, so that the test can wait for a message with a timeout (TryNext).
func dialBackground(t testing.TB, url string) *wstest.Conn {
	t.Helper()
	return wstest.Dial(t, url, &wstest.DialOptions{
		Timeout: testTimeout, ReadLimit: -1, Background: true, MessageTimeout: 10 * time.Second,
	})
}

// TestPausedNATSBoundedByBrokerTimeout: with the connection the README shows and
// nats-server paused (SIGSTOP: the connection stays open and nats.go sees nothing
// wrong for minutes, but the server reads nothing, so once the socket buffers are full
// every write of nats.go blocks, holding the connection's lock, for up to its
// FlusherTimeout), every broker operation of a hub returns within BrokerTimeout:
//   - concurrent Publishes of 64 KiB messages, enough to fill the socket buffers, each
//     return within BrokerTimeout, and fail with wspub.ErrBroker once the connection is
//     stuck (with Options.Confirm, every one);
//   - then N sequential Publishes take at most N × BrokerTimeout;
//   - a client's subscribe and unsubscribe are acknowledged within BrokerTimeout, and
//     Stats (BrokerUp, for readiness probes) answers at once;
//   - 32 goroutines publishing for 2s add a bounded number of goroutines, which go
//     once the connection is unstuck;
//   - once the server is resumed (SIGCONT), publishing works again, messages reach a
//     subscriber on the other hub in order, also on a channel subscribed during the
//     outage, and the one unsubscribed during it is gone.
func TestPausedNATSBoundedByBrokerTimeout(t *testing.T) {
	t.Run("default", func(t *testing.T) { testPausedNATS(t, Options{}) })
	t.Run("Confirm", func(t *testing.T) { testPausedNATS(t, Options{Confirm: true}) })
}

func testPausedNATS(t *testing.T, opts Options) {
	srv := startNATSServer(t)
	prefix := testPrefix(t)
	hubOpts := wspub.Options{BrokerTimeout: pausedTimeout}
	a := readmeNode(t, srv.url(), prefix, hubOpts, opts)
	b := readmeNode(t, srv.url(), prefix, hubOpts, opts)
	ca, cb := dialBackground(t, a.url), dialBackground(t, b.url)
	cb.Subscribe("feed", "s")
	ca.Subscribe("gone", "s")
	ctx := context.Background() // no deadline: BrokerTimeout bounds the broker's part
	require.NoError(t, a.hub.Publish(ctx, "feed", wspub.Message{Type: "before"}))
	cb.Expect("before")

	srv.pause()
	t.Cleanup(srv.resume) // whatever fails below

	// Fill the socket buffers: 16 goroutines publish 12 messages of 64 KiB each (12 MiB,
	// more than the kernel buffers of a loopback connection take) on a channel nobody
	// subscribes to. Each Publish returns within BrokerTimeout; once the buffers are full
	// (with Confirm: from the first), they fail.
	fillStart := time.Now()
	fillSlowest, fillFailed := fillConnection(t, a.hub, 16, 12)
	t.Logf("192 concurrent Publishes of 64 KiB in %v: %d failed; slowest %v", time.Since(fillStart), fillFailed, fillSlowest)
	assert.Less(t, fillSlowest, pausedTimeout+pausedSlack, "every Publish within BrokerTimeout")
	assert.Positive(t, fillFailed, "Publishes fail once the connection is stuck")
	if opts.Confirm {
		assert.Equal(t, 192, fillFailed, "with Confirm every Publish fails")
	}

	// N sequential Publishes: about N × BrokerTimeout at the most.
	const n = 5
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		err := a.hub.Publish(ctx, "feed", wspub.Message{Type: "during"})
		took := time.Since(t0)
		t.Logf("Publish %d on the stuck connection: %v after %v", i, err, took)
		require.ErrorIs(t, err, wspub.ErrBroker, "Publish %d", i)
		assert.Less(t, took, pausedTimeout+pausedSlack, "Publish %d within BrokerTimeout", i)
	}
	t.Logf("%d sequential Publishes took %v", n, time.Since(start))
	assert.Less(t, time.Since(start), n*(pausedTimeout+pausedSlack))

	// Subscribe, unsubscribe and Stats.
	errs := a.hub.Stats().BrokerErrors
	t0 := time.Now()
	ca.Subscribe("late", "s")
	took := time.Since(t0)
	t.Logf("subscribe acknowledged after %v", took)
	assert.Less(t, took, pausedTimeout+pausedSlack, "subscribe within BrokerTimeout")
	t0 = time.Now()
	ca.Unsubscribe("gone", "u")
	took = time.Since(t0)
	t.Logf("unsubscribe acknowledged after %v", took)
	assert.Less(t, took, pausedTimeout+pausedSlack, "unsubscribe within BrokerTimeout")
	t0 = time.Now()
	st := a.hub.Stats()
	t.Logf("Stats after %v: BrokerUp %v, BrokerErrors %d", time.Since(t0), st.BrokerUp, st.BrokerErrors)
	assert.Less(t, time.Since(t0), pausedSlack, "Stats at once")
	assert.GreaterOrEqual(t, st.BrokerErrors, errs+2, "the subscribe and the unsubscribe failed at the broker")

	pausedGoroutinesBounded(t, a.hub)

	// Back.
	srv.resume()
	eventually(t, func() bool { return a.hub.Stats().BrokerUp && b.hub.Stats().BrokerUp }, "up")
	crossAfterPause(t, a.hub, "feed", cb)
	crossAfterPause(t, b.hub, "late", ca)
	for i := range 100 {
		require.NoError(t, a.hub.Publish(ctx, "feed", wspub.Message{Type: "seq", Data: i}))
	}
	for i := range 100 {
		assert.Equal(t, i, wstest.Data[int](t, cb.Until("seq")), "in publish order")
	}
	eventually(t, func() bool { return !a.broker.subscribed("gone") && a.broker.subscribed("late") })
	require.NoError(t, b.hub.Publish(ctx, "gone", wspub.Message{Type: "after-unsubscribe"}))
	ca.NothingPending("gone")
}

// pausedGoroutinesBounded runs 32 goroutines that publish for 2s on h, whose broker is
// stuck, and checks that every Publish fails with wspub.ErrBroker within BrokerTimeout
// and that the goroutines grow by at most the publishers and the Broker's bound.
func pausedGoroutinesBounded(t *testing.T, h *wspub.Hub) {
	t.Helper()
	const (
		publishers = 32
		duration   = 2 * time.Second
	)
	base := runtime.NumGoroutine()
	var (
		wg        sync.WaitGroup
		published atomic.Int64
		slowest   atomic.Int64
		bad       atomic.Value
	)
	until := time.Now().Add(duration)
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(until) {
				t0 := time.Now()
				err := h.Publish(context.Background(), "feed", wspub.Message{Type: "burst"})
				took := int64(time.Since(t0))
				for {
					s := slowest.Load()
					if took <= s || slowest.CompareAndSwap(s, took) {
						break
					}
				}
				if !errors.Is(err, wspub.ErrBroker) {
					bad.CompareAndSwap(nil, errors.New("not a broker error: "+errString(err)))
				}
				published.Add(1)
				time.Sleep(time.Millisecond) // a busy application, not a spinning one
			}
		}()
	}
	peak := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
sample:
	for {
		peak = max(peak, runtime.NumGoroutine())
		select {
		case <-done:
			break sample
		case <-tick.C:
		}
	}
	t.Logf("%d Publishes by %d goroutines in %v; slowest %v; goroutines: %d before, at most %d during",
		published.Load(), publishers, duration, time.Duration(slowest.Load()), base, peak)
	assert.Nil(t, bad.Load(), "every Publish fails with wspub.ErrBroker")
	assert.Less(t, time.Duration(slowest.Load()), pausedTimeout+pausedSlack, "every Publish within BrokerTimeout")
	const (
		testGoroutines = 2 // the sampler's waiter and the closer of done
		exiting        = 8 // calls that have given back their token and not yet exited
	)
	assert.LessOrEqual(t, peak-base, publishers+testGoroutines+defaultMaxPendingPublishes+exiting,
		"no more goroutines than the publishers and the Broker's bound")
}

// fillConnection has publishers goroutines publish each messages of 64 KiB on h, and
// returns the slowest Publish and how many failed; a failure that does not wrap
// wspub.ErrBroker fails the test.
func fillConnection(t *testing.T, h *wspub.Hub, publishers, each int) (time.Duration, int) {
	t.Helper()
	big := strings.Repeat("x", 64<<10)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		slowest time.Duration
		failed  int
		bad     error
	)
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				t0 := time.Now()
				err := h.Publish(context.Background(), "fill", wspub.Message{Type: "fill", Data: big})
				took := time.Since(t0)
				mu.Lock()
				slowest = max(slowest, took)
				if err != nil {
					failed++
					if !errors.Is(err, wspub.ErrBroker) && bad == nil {
						bad = err
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.NoError(t, bad, "a failure that is not a broker error")
	return slowest, failed
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// crossAfterPause publishes numbered probes on pub until c receives one, skipping the
// messages published during the pause that the server still delivers once resumed.
func crossAfterPause(t *testing.T, pub *wspub.Hub, channel string, c *wstest.Conn) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = pub.Publish(ctx, channel, wspub.Message{Type: "probe", Data: i})
		cancel()
		for {
			e, ok := c.TryNext(200 * time.Millisecond)
			if !ok {
				break
			}
			if e.Type == "probe" {
				require.Equal(t, channel, e.Channel)
				return
			}
			require.Contains(t, []string{"during", "burst"}, e.Type, "message type")
		}
	}
	require.FailNow(t, "no message crossed the nodes after the pause", "channel %q", channel)
}
