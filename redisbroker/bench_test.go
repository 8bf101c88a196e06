package redisbroker_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/wspub/wspub"
	"github.com/wspub/wspub/redisbroker"
)

// BenchmarkCrossNodeLatency measures the time from Publish on one hub to the message's
// arrival at a real WebSocket client of another hub, one message at a time (each is
// awaited before the next is published, so it measures latency, not queueing), and
// reports its median and 99th percentile:
//
//   - local: one hub without broker, publisher and client on it, for comparison;
//   - memorybus: two hubs on a wspub.MemoryBus;
//   - redis: two hubs, each with its own client of the Redis at WSPUB_REDIS_ADDR.
func BenchmarkCrossNodeLatency(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		h, url := startHub(b, &wspub.Options{})
		measureLatency(b, h, url)
	})
	b.Run("memorybus", func(b *testing.B) {
		bus := wspub.NewMemoryBus()
		pub, _ := startHub(b, &wspub.Options{Broker: bus.Broker()})
		_, url := startHub(b, &wspub.Options{Broker: bus.Broker()})
		measureLatency(b, pub, url)
	})
	b.Run("redis", func(b *testing.B) {
		addr := needRedis(b)
		prefix := uniquePrefix(b)
		pub := startNode(b, addr, prefix, wspub.Options{}, redisbroker.Options{})
		sub := startNode(b, addr, prefix, wspub.Options{}, redisbroker.Options{})
		measureLatency(b, pub.hub, sub.url)
	})
}

// measureLatency publishes b.N timestamped messages on pub, each once the previous one
// has reached the client of url, and reports the latency percentiles.
func measureLatency(b *testing.B, pub *wspub.Hub, url string) {
	c := dial(b, url)
	c.Subscribe("latency", "s")
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		if err := pub.Publish(ctx, "latency", wspub.Message{Type: "t", Data: time.Now().UnixNano()}); err != nil {
			b.Fatal(err)
		}
		e := c.Next()
		now := time.Now().UnixNano()
		var sent int64
		if err := json.Unmarshal(e.Data, &sent); err != nil || e.Type != "t" {
			b.Fatalf("unexpected message %+v (%v)", e, err)
		}
		lat = append(lat, time.Duration(now-sent))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
