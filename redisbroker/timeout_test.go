package redisbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
