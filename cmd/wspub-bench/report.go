package main

import (
	"fmt"
	"io"
	"time"

	"github.com/wspub/wspub"
)

// result is what a run reports, as one JSON object.
type result struct {
	Mode string `json:"mode"` // "fanout" or "idle"

	// The healthy clients (every client without -slow).
	Conns          int       `json:"conns"`
	Msgs           int       `json:"msgs"`
	Size           int       `json:"size"`
	Deliveries     int64     `json:"deliveries"`
	Expected       int64     `json:"expected"`
	Lost           int64     `json:"lost"`
	OutOfOrder     int64     `json:"out_of_order"`
	DurationS      float64   `json:"duration_s"` // first publish to last delivery
	DeliveriesPerS float64   `json:"deliveries_per_s"`
	LatencyUS      latencyUS `json:"latency_us"`
	Frames         int64     `json:"frames"` // frames that carried bench messages
	MsgsPerFrame   float64   `json:"msgs_per_frame"`
	Disconnected   int       `json:"disconnected"`  // connections the server ended during the run
	ErrorReplies   int64     `json:"error_replies"` // "error" messages received after subscribing

	Evicted int          `json:"evicted"` // clients, healthy or slow, that got close 1013
	Slow    *slowResult  `json:"slow,omitempty"`
	Flood   *floodResult `json:"flood,omitempty"` // -flood only

	// -server-pid only: the server's CPU time, user and system, from just before the
	// trigger to the last delivery (10 ms ticks), and per healthy delivery.
	ServerCPUS             float64 `json:"server_cpu_s,omitempty"`
	ServerCPUUSPerDelivery float64 `json:"server_cpu_us_per_delivery,omitempty"`

	PublishS    float64 `json:"publish_s"` // the trigger's publishing time
	ConnectS    float64 `json:"connect_s"` // first dial to last "subscribed"
	DialRetries int64   `json:"dial_retries"`
	TimedOut    bool    `json:"timed_out"`

	// From -stats after the burst (heap and stack after a GC, every client still
	// connected); counters are this run's increase.
	Stats              bool    `json:"stats"` // the figures below could be read
	HeapInuse          uint64  `json:"heap_inuse"`
	StackInuse         uint64  `json:"stack_inuse"`
	Goroutines         int     `json:"goroutines"`
	SlowEvictions      uint64  `json:"slow_evictions"`
	Dropped            uint64  `json:"dropped"`
	Reaped             uint64  `json:"reaped"`
	ServerMsgsPerFrame float64 `json:"server_msgs_per_frame"`

	// -idle only.
	Channels          int      `json:"channels,omitempty"`
	BytesPerConn      *float64 `json:"bytes_per_conn,omitempty"` // (heap_inuse+stack_inuse increase)/conns
	HeapPerConn       *float64 `json:"heap_per_conn,omitempty"`
	StackPerConn      *float64 `json:"stack_per_conn,omitempty"`
	GoroutinesPerConn *float64 `json:"goroutines_per_conn,omitempty"`
	BaseHeapInuse     uint64   `json:"base_heap_inuse,omitempty"`
	BaseStackInuse    uint64   `json:"base_stack_inuse,omitempty"`
	BaseGoroutines    int      `json:"base_goroutines,omitempty"`
}

type latencyUS struct {
	P50 uint64 `json:"p50"`
	P90 uint64 `json:"p90"`
	P99 uint64 `json:"p99"`
	Max uint64 `json:"max"`
}

type slowResult struct {
	Conns        int   `json:"conns"`
	Deliveries   int64 `json:"deliveries"` // read at the end, within -drain
	Expected     int64 `json:"expected"`
	Lost         int64 `json:"lost"`
	Evicted      int   `json:"evicted"`      // got close 1013 (slow consumer)
	Disconnected int   `json:"disconnected"` // the server ended the connection, any code
}

// failed reports whether the run must exit non-zero.
func (r *result) failed() bool { return r.TimedOut || r.Lost > 0 }

// collect merges the clients' counters into res. Every client goroutine has exited.
func (r *runner) collect(res *result) {
	var h hist
	var firstTS, lastRecv int64
	msgs := int64(r.cfg.Msgs)
	slow := &slowResult{Conns: r.nSlow}
	for _, c := range r.clients {
		if c.endCode == wspub.StatusSlowConsumer {
			res.Evicted++
		}
		if c.slow {
			slow.Deliveries += c.delivered
			slow.Expected += msgs
			slow.Lost += c.lost(msgs)
			if c.endCode == wspub.StatusSlowConsumer {
				slow.Evicted++
			}
			if c.ended {
				slow.Disconnected++
			}
			continue
		}
		res.Deliveries += c.delivered
		res.Expected += msgs
		res.Lost += c.lost(msgs)
		res.OutOfOrder += c.outOfOrder
		res.Frames += c.frames
		res.ErrorReplies += c.errors
		if c.ended {
			res.Disconnected++
		}
		h.merge(&c.hist)
		if c.firstTS != 0 && (firstTS == 0 || c.firstTS < firstTS) {
			firstTS = c.firstTS
		}
		lastRecv = max(lastRecv, c.lastRecv)
	}
	if r.nSlow > 0 {
		res.Slow = slow
	}
	res.Conns = len(r.clients) - r.nSlow
	res.LatencyUS = latencyUS{P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99), Max: h.max}
	if firstTS != 0 && lastRecv > firstTS {
		res.DurationS = time.Duration(lastRecv - firstTS).Seconds()
		res.DeliveriesPerS = float64(res.Deliveries) / res.DurationS
	}
	if res.Frames > 0 {
		res.MsgsPerFrame = float64(res.Deliveries) / float64(res.Frames)
	}
	res.DialRetries = r.dialRetries.Load()
	if res.ServerCPUS > 0 && res.Deliveries > 0 {
		res.ServerCPUUSPerDelivery = res.ServerCPUS * 1e6 / float64(res.Deliveries)
	}
}

func (res *result) serverFigures(before, after serverStats) {
	res.Stats = true
	res.HeapInuse, res.StackInuse, res.Goroutines = after.HeapInuse, after.StackInuse, after.Goroutines
	res.SlowEvictions = after.Hub.SlowEvictions - before.Hub.SlowEvictions
	res.Dropped = after.Hub.Dropped - before.Hub.Dropped
	res.Reaped = after.Hub.Reaped - before.Hub.Reaped
	if frames := after.Hub.Frames - before.Hub.Frames; frames > 0 {
		res.ServerMsgsPerFrame = float64(after.Hub.Delivered-before.Hub.Delivered) / float64(frames)
	}
}

func (r *runner) idleResult(base, after serverStats, connectTime time.Duration) *result {
	n := float64(r.cfg.Conns)
	perConn := func(a, b int64) *float64 { v := float64(a-b) / n; return &v }
	channels := r.cfg.Channels
	if channels > r.cfg.Conns {
		channels = r.cfg.Conns
	}
	res := &result{Mode: "idle", Conns: r.cfg.Conns, ConnectS: connectTime.Seconds(), Channels: channels,
		Stats: true, HeapInuse: after.HeapInuse, StackInuse: after.StackInuse, Goroutines: after.Goroutines,
		SlowEvictions:     after.Hub.SlowEvictions - base.Hub.SlowEvictions,
		Dropped:           after.Hub.Dropped - base.Hub.Dropped,
		Reaped:            after.Hub.Reaped - base.Hub.Reaped,
		BytesPerConn:      perConn(int64(after.HeapInuse+after.StackInuse), int64(base.HeapInuse+base.StackInuse)),
		HeapPerConn:       perConn(int64(after.HeapInuse), int64(base.HeapInuse)),
		StackPerConn:      perConn(int64(after.StackInuse), int64(base.StackInuse)),
		GoroutinesPerConn: perConn(int64(after.Goroutines), int64(base.Goroutines)),
		BaseHeapInuse:     base.HeapInuse, BaseStackInuse: base.StackInuse, BaseGoroutines: base.Goroutines,
		DialRetries: r.dialRetries.Load(),
	}
	if got := after.Hub.Connections - base.Hub.Connections; got != r.cfg.Conns {
		r.progressf("wspub-bench: warning: the server gained %d connections, not %d: the figures per connection are off\n",
			got, r.cfg.Conns)
	}
	return res
}

// printSummary writes the human summary of a run.
func printSummary(w io.Writer, cfg runConfig, res *result) {
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	if res.Mode == "idle" {
		fmt.Fprintf(w, "wspub-bench: %d idle connections over %d channels (connected in %.1fs)\n",
			res.Conns, res.Channels, res.ConnectS)
		fmt.Fprintf(w, "  server per connection: %.0f B heap+stack (heap %.0f, stack %.0f), %.2f goroutines\n",
			*res.BytesPerConn, *res.HeapPerConn, *res.StackPerConn, *res.GoroutinesPerConn)
		fmt.Fprintf(w, "  server: heap_inuse %.1f MiB, stack_inuse %.1f MiB, %d goroutines (before: %.1f MiB, %.1f MiB, %d)\n",
			mib(res.HeapInuse), mib(res.StackInuse), res.Goroutines, mib(res.BaseHeapInuse), mib(res.BaseStackInuse), res.BaseGoroutines)
		return
	}
	status := "ok"
	switch {
	case res.TimedOut:
		status = "TIMED OUT"
	case res.Lost > 0:
		status = "LOST MESSAGES"
	}
	fmt.Fprintf(w, "wspub-bench: %s: %d clients x %d messages of ~%d B\n", status, res.Conns, res.Msgs, res.Size)
	fmt.Fprintf(w, "  delivered %d/%d in %.3fs: %.0f deliveries/s; lost %d, out of order %d, disconnected %d\n",
		res.Deliveries, res.Expected, res.DurationS, res.DeliveriesPerS, res.Lost, res.OutOfOrder, res.Disconnected)
	fmt.Fprintf(w, "  latency p50 %s, p90 %s, p99 %s, max %s; %.1f messages/frame (server %.1f)\n",
		usString(res.LatencyUS.P50), usString(res.LatencyUS.P90), usString(res.LatencyUS.P99), usString(res.LatencyUS.Max),
		res.MsgsPerFrame, res.ServerMsgsPerFrame)
	if s := res.Slow; s != nil {
		fmt.Fprintf(w, "  slow clients: %d, read %d/%d at the end (lost %d); evicted (close 1013 seen) %d, disconnected %d\n",
			s.Conns, s.Deliveries, s.Expected, s.Lost, s.Evicted, s.Disconnected)
	}
	if f := res.Flood; f != nil {
		fmt.Fprintf(w, "  flood: %d %s clients sent %d frames (%.0f/s); closed by the server: %d",
			f.Clients, f.Kind, f.Frames, f.FramesPerS, f.ClosedByServer)
		for _, c := range f.PerClient {
			if c.Closed {
				fmt.Fprintf(w, "; close %d %q after %.2fs", c.CloseCode, c.Reason, c.ClosedS)
			}
		}
		fmt.Fprintln(w)
	}
	if res.Stats {
		fmt.Fprintf(w, "  server: heap_inuse %.1f MiB, stack_inuse %.1f MiB, %d goroutines; this run: slow evictions %d, dropped %d, reaped %d\n",
			mib(res.HeapInuse), mib(res.StackInuse), res.Goroutines, res.SlowEvictions, res.Dropped, res.Reaped)
	}
	if res.ServerCPUS > 0 {
		fmt.Fprintf(w, "  server CPU %.2fs from the trigger to the last delivery: %.2f µs per delivery\n",
			res.ServerCPUS, res.ServerCPUUSPerDelivery)
	}
	fmt.Fprintf(w, "  publishing took %.3fs; connecting %.1fs (%d dial retries)\n", res.PublishS, res.ConnectS, res.DialRetries)
}

func usString(us uint64) string {
	switch {
	case us >= 10_000_000:
		return fmt.Sprintf("%.1fs", float64(us)/1e6)
	case us >= 10_000:
		return fmt.Sprintf("%.1fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%dµs", us)
	}
}
