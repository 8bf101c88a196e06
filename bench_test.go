package wspub

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// benchHub returns a hub with n registered connections subscribed to channel, whose
// frames are discarded instead of written to a socket: the benchmarks measure the hub
// (encode, fan-out, queueing, batching, writer scheduling), not the kernel.
func benchHub(b *testing.B, n int, channel string, opts *Options) *Hub {
	b.Helper()
	o := Options{}
	if opts != nil {
		o = *opts
	}
	o.PingInterval = time.Hour // benchmark connections cannot answer pings
	h := New(&o)
	b.Cleanup(func() { _ = h.Close() })
	for range n {
		c := newTestConn(h, func([]byte) error { return nil })
		if channel != "" {
			h.reg.subscribe(c, channel)
		}
	}
	return h
}

// waitDelivered waits until the hub has written want messages.
func waitDelivered(b *testing.B, h *Hub, want uint64) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for h.Stats().Delivered < want {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d; stats %+v", h.Stats().Delivered, want, h.Stats())
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// pace keeps a benchmark's publisher at most 2048 messages ahead of the writers after
// the i-th publish to n subscribers. A loop that does nothing but publish can outrun a
// writer goroutine the scheduler has not run yet by more than a send queue holds (1 MiB,
// about 6000 such messages), which is a publisher no application has; the benchmarks
// measure throughput, not that race.
func pace(b *testing.B, h *Hub, i, n int) {
	const window = 2048
	if i%256 == 255 {
		waitDelivered(b, h, uint64(max(i+1-window, 0))*uint64(n))
	}
}

// BenchmarkPublishFanout publishes a ~128-byte progress message to a channel with 1 to
// 10 000 subscribers and waits until every copy has been written. ns/delivery is the
// cost per subscriber; allocs/op must not grow with the subscriber count.
func BenchmarkPublishFanout(b *testing.B) {
	type progress struct {
		Symbol  string `json:"symbol"`
		Status  string `json:"status"`
		Percent int    `json:"percent"`
		Step    string `json:"step"`
	}
	msg := Message{Type: "progress", Data: progress{"AAPL", "running", 42, "computing indicators over the last 90 days"}}
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprint("subscribers=", n), func(b *testing.B) {
			h := benchHub(b, n, "task:42", nil)
			ctx := context.Background()
			frame, _ := encodeMessage("task:42", msg)
			b.SetBytes(int64(len(frame)))
			// Warm up: the first messages give every connection its first queue segment
			// and the runtime its first n writer goroutines, once per connection.
			const warmup = 64
			for range warmup {
				if err := h.Publish(ctx, "task:42", msg); err != nil {
					b.Fatal(err)
				}
			}
			waitDelivered(b, h, warmup*uint64(n))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := h.Publish(ctx, "task:42", msg); err != nil {
					b.Fatal(err)
				}
				pace(b, h, i, n)
			}
			waitDelivered(b, h, uint64(warmup+b.N)*uint64(n))
			b.StopTimer()
			st := h.Stats()
			if st.SlowEvictions != 0 || st.Dropped != 0 {
				b.Fatalf("lost messages: %+v", st)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
			b.ReportMetric(float64(st.Delivered)/float64(st.Frames), "msgs/frame")
		})
	}
}

// BenchmarkBatching compares MaxBatch 1 (one frame, one write(2), per message) with the
// default 16 on a fan-out to 100 subscribers whose frames go through real loopback TCP
// sockets, drained by the other end. Publishing is not paced: the writers fall behind,
// and batching is what lets them catch up.
func BenchmarkBatching(b *testing.B) {
	msg := Message{Type: "tick", Data: strings.Repeat("x", 100)}
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprint("MaxBatch=", batch), func(b *testing.B) {
			h := benchHub(b, 0, "", &Options{MaxBatch: batch, MaxQueueBytes: 64 << 20})
			for range 100 {
				h.reg.subscribe(newSocketConn(b, h), "ticks")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				_ = h.Publish(context.Background(), "ticks", msg)
			}
			waitDelivered(b, h, uint64(b.N)*100)
			b.StopTimer()
			st := h.Stats()
			b.ReportMetric(float64(st.Delivered)/float64(st.Frames), "msgs/frame")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(st.Delivered), "ns/delivery")
		})
	}
}

// newSocketConn registers a connection whose frames are written to a loopback TCP socket
// that a goroutine drains.
func newSocketConn(b *testing.B, h *Hub) *Conn {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(io.Discard, client)
	}()
	b.Cleanup(func() {
		_ = server.Close()
		_ = client.Close()
		<-drained
	})
	return newTestConn(h, func(p []byte) error {
		_, err := server.Write(p)
		return err
	})
}

// BenchmarkSubscribeChurn subscribes and unsubscribes connections on shared channels.
func BenchmarkSubscribeChurn(b *testing.B) {
	h := benchHub(b, 1000, "", nil)
	conns := h.reg.allConns()
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprint("room:", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c, name := conns[i%len(conns)], names[i%len(names)]
		h.reg.subscribe(c, name)
		h.reg.unsubscribe(c, name)
	}
}

// BenchmarkDispatch measures reading side work for one client frame: decode, validate
// and route a subscribe that is already in place (idempotent) and a ping.
func BenchmarkDispatch(b *testing.B) {
	h := benchHub(b, 1, "task:42", nil)
	c := h.reg.allConns()[0]
	frames := [][]byte{
		[]byte(`{"type":"subscribe","channel":"task:42","id":"17"}`),
		[]byte(`{"type":"ping","id":"18"}`),
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c.dispatch(frames[i&1])
		pace(b, h, i, 1) // a real reader is paced by the network; this loop is not
	}
	waitDelivered(b, h, uint64(b.N))
}
