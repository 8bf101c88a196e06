package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/wstest"
	"github.com/wspub/wspub/redisbroker"
)

// Bounds of the tests of an unresponsive Redis.
const (
	// unresponsiveTimeout is the hubs' BrokerTimeout.
	unresponsiveTimeout = 300 * time.Millisecond
	// unresponsiveSlack is what a broker operation may take beyond BrokerTimeout: the
	// scheduling of a busy machine under -race, not anything Redis does.
	unresponsiveSlack = 250 * time.Millisecond
)

// TestUnresponsiveRedisBoundedByBrokerTimeout: with the client the README shows
// (redis.NewClient with only Addr: no ContextTimeoutEnabled, go-redis's default 5s read
// and write timeouts) and Redis paused (SIGSTOP: connections are accepted and data is
// taken, but nothing is answered) or black-holed (a proxy drops every byte), every
// broker operation of a hub returns within BrokerTimeout:
//   - each Publish returns an error wrapping wspub.ErrBroker, and N sequential
//     Publishes take at most N × BrokerTimeout, not N × go-redis's timeouts;
//   - a client's subscribe and unsubscribe are acknowledged within BrokerTimeout, the
//     broker error counted;
//   - 32 goroutines publishing for 2s add no more goroutines than the documented bound
//     of Publishes that Redis has not answered, and once go-redis gives those up,
//     still during the outage, the count is back where it was;
//   - once Redis answers again, publishing works without any call from the test,
//     messages reach a subscriber on the other hub (one subscribed during the outage
//     too), in the order they were published.
func TestUnresponsiveRedisBoundedByBrokerTimeout(t *testing.T) {
	t.Run("paused", func(t *testing.T) {
		srv := startRedisServer(t)
		testUnresponsiveRedis(t, srv.addr, srv.pause, srv.resume)
	})
	t.Run("black-holed", func(t *testing.T) {
		srv := startRedisServer(t)
		px := startProxy(t, srv.addr)
		testUnresponsiveRedis(t, px.addr(), func() { px.frozen.Store(true) }, func() { px.frozen.Store(false) })
	})
}

func testUnresponsiveRedis(t *testing.T, addr string, stop, resume func()) {
	prefix := uniquePrefix(t)
	hubOpts := wspub.Options{BrokerTimeout: unresponsiveTimeout}
	a := startNode(t, addr, prefix, hubOpts, redisbroker.Options{}) // newClient: the README's construction
	b := startNode(t, addr, prefix, hubOpts, redisbroker.Options{})
	ca, cb := dial(t, a.url), dial(t, b.url)
	cb.Subscribe("feed", "s")
	ca.Subscribe("gone", "s")
	ctx := context.Background() // no deadline: BrokerTimeout bounds the broker's part
	require.NoError(t, a.hub.Publish(ctx, "feed", wspub.Message{Type: "before"}))
	cb.Expect("before")
	eventually(t, func() bool { return a.hub.Stats().BrokerUp && b.hub.Stats().BrokerUp })

	stop()
	t.Cleanup(resume) // whatever fails below

	// N sequential Publishes: about N × BrokerTimeout at the most.
	const n = 5
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		err := a.hub.Publish(ctx, "feed", wspub.Message{Type: "during"})
		took := time.Since(t0)
		t.Logf("Publish %d with Redis unresponsive: %v after %v", i, err, took)
		require.ErrorIs(t, err, wspub.ErrBroker, "Publish %d", i)
		assert.Less(t, took, unresponsiveTimeout+unresponsiveSlack, "Publish %d within BrokerTimeout", i)
	}
	total := time.Since(start)
	t.Logf("%d sequential Publishes took %v", n, total)
	assert.Less(t, total, n*(unresponsiveTimeout+unresponsiveSlack))

	// A client's subscribe and unsubscribe wait for the broker within BrokerTimeout.
	errs := a.hub.Stats().BrokerErrors
	t0 := time.Now()
	ca.Subscribe("late", "s")
	took := time.Since(t0)
	t.Logf("subscribe acknowledged after %v", took)
	assert.Less(t, took, unresponsiveTimeout+unresponsiveSlack, "subscribe within BrokerTimeout")
	t0 = time.Now()
	ca.Unsubscribe("gone", "u")
	took = time.Since(t0)
	t.Logf("unsubscribe acknowledged after %v", took)
	assert.Less(t, took, unresponsiveTimeout+unresponsiveSlack, "unsubscribe within BrokerTimeout")
	assert.Equal(t, errs+2, a.hub.Stats().BrokerErrors, "the subscribe and the unsubscribe failed at the broker")
	// The Broker's own error, for the record.
	opCtx, cancel := context.WithTimeout(ctx, unresponsiveTimeout)
	t0 = time.Now()
	err := a.broker.Subscribe(opCtx, "direct")
	cancel()
	t.Logf("Broker.Subscribe: %v after %v", err, time.Since(t0))
	assert.Error(t, err)
	assert.Less(t, time.Since(t0), unresponsiveTimeout+unresponsiveSlack)

	// A sustained outage: publishers keep publishing, goroutines stay bounded.
	goroutinesBounded(t, a.hub)

	// Back: publishing works again, and reaches the other hub, in order.
	resume()
	eventually(t, func() bool { return a.hub.Stats().BrokerUp && b.hub.Stats().BrokerUp }, "up again")
	crossAfterOutage(t, a.hub, "feed", cb)
	crossAfterOutage(t, b.hub, "late", ca) // subscribed during the outage
	for i := range 100 {
		require.NoError(t, a.hub.Publish(ctx, "feed", wspub.Message{Type: "seq", Data: i}))
	}
	for i := range 100 {
		assert.Equal(t, i, wstest.Data[int](t, cb.Until("seq")), "in publish order")
	}
	admin := newClient(t, addr)
	eventually(t, func() bool { return adminNumSub(t, admin, prefix+"gone") == 0 }, "unsubscribed during the outage")
	assert.Equal(t, int64(1), adminNumSub(t, admin, prefix+"late"))
}

// goroutinesBounded runs 32 goroutines that publish for 2s on h, whose broker does not
// answer, and checks that every Publish returns within BrokerTimeout and that the
// goroutines of the process (but a test proxy's) grow by at most the publishers, the
// Broker's bound (redisbroker.Options.MaxPendingPublishes at its default) and go-redis's
// dialling goroutines, then shrink back.
func goroutinesBounded(t *testing.T, h *wspub.Hub) {
	t.Helper()
	const (
		publishers = 32
		duration   = 2 * time.Second
	)
	base := goroutines()
	var (
		wg        sync.WaitGroup
		published atomic.Int64
		slowest   atomic.Int64 // nanoseconds
		bad       atomic.Value // the first error that does not wrap wspub.ErrBroker
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
				if err == nil {
					err = fmt.Errorf("Publish succeeded")
				}
				if !assertErrBroker(err) {
					bad.CompareAndSwap(nil, err)
				}
				published.Add(1)
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
		peak = max(peak, goroutines())
		select {
		case <-done:
			break sample
		case <-tick.C:
		}
	}
	t.Logf("%d Publishes by %d goroutines in %v; slowest %v; goroutines: %d before, at most %d during",
		published.Load(), publishers, duration, time.Duration(slowest.Load()), base, peak)
	assert.Nil(t, bad.Load(), "every Publish fails with wspub.ErrBroker")
	assert.Less(t, time.Duration(slowest.Load()), unresponsiveTimeout+unresponsiveSlack, "every Publish within BrokerTimeout")
	const testGoroutines = 2                   // the sampler's waiter and the closer of done
	goRedisDials := 10 * runtime.GOMAXPROCS(0) // go-redis's own: MaxConcurrentDials, PoolSize by default
	assert.LessOrEqual(t, peak-base, publishers+testGoroutines+redisbroker.DefaultMaxPendingPublishes+goRedisDials,
		"no more goroutines than the publishers, the Broker's bound and go-redis's dials")
	// go-redis gives up the commands nobody waits for (its read and write timeouts):
	// during a long outage nothing accumulates.
	require.Eventually(t, func() bool { return goroutines() <= base+2 }, 20*time.Second, 50*time.Millisecond,
		"goroutines back to %d once go-redis has given up the pending Publishes", base)
}

// goroutines counts the goroutines of the process but the test proxy's, which has two
// per connection that go-redis opens through it.
func goroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "(*proxy).") {
			count++
		}
	}
	return count
}

func assertErrBroker(err error) bool {
	return errors.Is(err, wspub.ErrBroker)
}

// crossAfterOutage publishes numbered probes on pub until c receives one, skipping the
// messages of the Publishes that failed during the outage: Redis may still carry out
// those it had received when it answers again (a failed Publish is not confirmed, not
// undone).
func crossAfterOutage(t *testing.T, pub *wspub.Hub, channel string, c *wstest.Conn) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = pub.Publish(ctx, channel, wspub.Message{Type: "probe", Data: i}) // may fail while reconnecting
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
			require.Contains(t, []string{"during", "burst"}, e.Type, "message %+v", e)
		}
	}
	require.FailNow(t, "no message crossed the nodes after the outage", "channel %q", channel)
}

// TestPublishFailsAtOnceWhenPendingPublishesAreStalled: with Redis paused, Publishes
// whose context ends keep their command under way until go-redis gives it up; once
// MaxPendingPublishes of them are, a Publish fails at once with ErrStalled instead of
// waiting for its context, and once Redis answers again, Publish works again.
func TestPublishFailsAtOnceWhenPendingPublishesAreStalled(t *testing.T) {
	srv := startRedisServer(t)
	b := redisbroker.New(newClient(t, srv.addr), &redisbroker.Options{Prefix: uniquePrefix(t), MaxPendingPublishes: 2})
	require.NoError(t, b.Start(func(string, []byte) {}))
	t.Cleanup(func() { _ = b.Close() })
	publish := func() (error, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), unresponsiveTimeout)
		defer cancel()
		start := time.Now()
		err := b.Publish(ctx, "x", []byte("p"))
		return err, time.Since(start)
	}
	err, _ := publish()
	require.NoError(t, err)

	srv.pause()
	for i := range 2 {
		err, took := publish()
		require.ErrorIs(t, err, context.DeadlineExceeded, "Publish %d", i)
		assert.Less(t, took, unresponsiveTimeout+unresponsiveSlack)
	}
	err, took := publish()
	t.Logf("third Publish: %v after %v", err, took)
	require.ErrorIs(t, err, redisbroker.ErrStalled)
	assert.Less(t, took, unresponsiveTimeout/2, "at once")

	srv.resume()
	require.Eventually(t, func() bool { err, _ := publish(); return err == nil }, 15*time.Second, 10*time.Millisecond,
		"Publish works again once Redis answers")
}
