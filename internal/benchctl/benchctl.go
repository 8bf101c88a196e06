// Package benchctl is the control surface of a bench server, which wspub-bench serve and
// every peer server of the side-by-side harness (benchmarks/compare) share, so that the
// load tool drives them all alike:
//
//   - POST /publish?channel=bench&n=1000&size=128&rate=0&start=0 publishes n messages of
//     about size bytes, {"seq":i,"ts":<unix nanos>,"pad":"x…"} (i from start to
//     start+n-1) in the server's layout, as fast as possible (rate=0) or at rate per
//     second, from one goroutine, and answers 202 Accepted with {"published",
//     "duration_ns", "first_ts", "envelope_bytes"} once the last Publish has returned.
//   - GET /stats answers {"hub":…, "heap_inuse", "stack_inuse", "heap_alloc", "sys",
//     "num_gc", "goroutines", "gc"}; with ?gc=1 it collects garbage twice first.
//
// It imports only the standard library.
package benchctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Limits of POST /publish.
const (
	MaxN    = 10_000_000
	MaxSize = 1 << 20 // wspub's default MaxQueueBytes: its hub refuses a larger message
)

// NewMux serves ws at /ws, pub at POST /publish and stats at GET /stats.
func NewMux(ws http.Handler, pub *Publisher, stats http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	mux.Handle("POST /publish", pub)
	mux.Handle("GET /stats", stats)
	return mux
}

// Request is the query of POST /publish.
type Request struct {
	Channel string
	N       int
	Size    int
	Rate    float64 // messages per second; 0 means as fast as possible
	Start   int     // seq of the first message
}

// ParseRequest reads a Request from the query parameters get returns (url.Values.Get),
// with the defaults channel=bench, n=1000, size=128, rate=0 and start=0.
func ParseRequest(get func(string) string) (Request, error) {
	p := Request{Channel: "bench", N: 1000, Size: 128}
	if v := get("channel"); v != "" {
		p.Channel = v
	}
	var err error
	if v := get("n"); v != "" {
		if p.N, err = strconv.Atoi(v); err != nil || p.N < 1 || p.N > MaxN {
			return p, fmt.Errorf("n must be an integer in 1..%d", MaxN)
		}
	}
	if v := get("size"); v != "" {
		if p.Size, err = strconv.Atoi(v); err != nil || p.Size < 0 || p.Size > MaxSize {
			return p, fmt.Errorf("size must be an integer in 0..%d", MaxSize)
		}
	}
	if v := get("rate"); v != "" {
		if p.Rate, err = strconv.ParseFloat(v, 64); err != nil || p.Rate < 0 || p.Rate > 1e9 {
			return p, errors.New("rate must be a number of messages per second, 0 for as fast as possible")
		}
	}
	if v := get("start"); v != "" {
		if p.Start, err = strconv.Atoi(v); err != nil || p.Start < 0 || p.Start > 1<<53 {
			return p, errors.New("start must be a non-negative integer, the seq of the first message")
		}
	}
	return p, nil
}

// Response is the answer of POST /publish.
type Response struct {
	Published     int    `json:"published"`
	DurationNS    int64  `json:"duration_ns"`    // first Publish call to the return of the last
	FirstTS       int64  `json:"first_ts"`       // "ts" of message 0, unix nanoseconds
	EnvelopeBytes int    `json:"envelope_bytes"` // size of message 0 as a client receives it
	Error         string `json:"error,omitempty"`
}

// Publisher is a server's side of POST /publish. It serves POST /publish.
type Publisher struct {
	// Layout is what Publish is given around the bench data for channel.
	Layout func(channel string) Layout
	// Publish sends msg to every subscriber of channel, the way the server's users
	// publish. msg is Publish's to keep unless Reuse is set.
	Publish func(ctx context.Context, channel string, msg []byte) error
	// Reuse says that Publish is done with msg when it returns (wspub's hub copies it
	// into its envelope), so that one buffer serves every message of a burst.
	Reuse bool
	// Status, if not nil, is the HTTP status of the answer when Publish fails with err;
	// otherwise it is 500 Internal Server Error.
	Status func(err error) int
}

// ServeHTTP serves POST /publish: 400 Bad Request for a query ParseRequest refuses,
// else a Burst and its Response, 202 Accepted or, if a Publish failed, Status's.
func (p *Publisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := ParseRequest(r.URL.Query().Get)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res, err := p.Burst(r.Context(), req)
	status := http.StatusAccepted
	if err != nil {
		res.Error, status = err.Error(), http.StatusInternalServerError
		if p.Status != nil {
			status = p.Status(err)
		}
	}
	writeJSON(w, status, res)
}

// Burst publishes r.N messages to r.Channel from the calling goroutine, each stamped with
// the time just before its Publish call; with a rate, paced against the schedule (not the
// previous message, so that sleeping late does not lower the rate). It stops at the first
// Publish that fails.
func (p *Publisher) Burst(ctx context.Context, r Request) (Response, error) {
	var res Response
	var interval time.Duration
	if r.Rate > 0 {
		interval = time.Duration(float64(time.Second) / r.Rate)
	}
	m := newMessage(p.Layout(r.Channel), r.Size)
	var buf []byte
	start := time.Now()
	for i := 0; i < r.N; i++ {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		ts := time.Now().UnixNano()
		if buf == nil || !p.Reuse {
			buf = m.newBuf()
		}
		buf = m.append(buf[:0], r.Start+i, ts)
		if i == 0 {
			res.FirstTS, res.EnvelopeBytes = ts, m.wireLen(buf)
		}
		if err := p.Publish(ctx, r.Channel, buf); err != nil {
			res.DurationNS = time.Since(start).Nanoseconds()
			return res, fmt.Errorf("publish %d of %d: %w", i+1, r.N, err)
		}
		res.Published++
	}
	res.DurationNS = time.Since(start).Nanoseconds()
	return res, nil
}

// Layout says where the bench data sits in what a client receives: Publish is given
// Prefix, the data and Suffix, and the server adds Extra bytes of its own around them on
// the wire (wspub's envelope, centrifuge's push reply; 0 for the servers that send what
// they are given).
type Layout struct {
	Prefix, Suffix string
	Extra          int
}

// message builds bench messages: Prefix, {"seq":i,"ts":nanos,"pad":"xxx"}, Suffix, the
// data padded so that what a client receives is size bytes when it can be.
type message struct {
	layout Layout
	pad    string
	size   int
}

func newMessage(l Layout, size int) *message {
	return &message{layout: l, pad: strings.Repeat("x", size), size: size}
}

// newBuf returns a buffer that a message fits in.
func (m *message) newBuf() []byte {
	return make([]byte, 0, max(m.size, 64)+len(m.layout.Prefix)+len(m.layout.Suffix))
}

// append appends message seq, stamped ts, to b.
func (m *message) append(b []byte, seq int, ts int64) []byte {
	start := len(b)
	b = append(b, m.layout.Prefix...)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"pad":"`...)
	if pad := m.size - m.layout.Extra - (len(b) - start) - len(`"}`) - len(m.layout.Suffix); pad > 0 {
		b = append(b, m.pad[:pad]...)
	}
	b = append(b, `"}`...)
	return append(b, m.layout.Suffix...)
}

// wireLen is the size of msg as a client receives it.
func (m *message) wireLen(msg []byte) int { return m.layout.Extra + len(msg) }

// Stats is the answer of GET /stats: the server's own figures in Hub (wspub's Stats, or
// a peer's connection count), then the runtime's.
type Stats[H any] struct {
	Hub        H      `json:"hub"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	Sys        uint64 `json:"sys"`
	NumGC      uint32 `json:"num_gc"`
	Goroutines int    `json:"goroutines"`
	GC         bool   `json:"gc"` // garbage was collected (twice) before the figures were read
}

// StatsHandler serves GET /stats, with hub's figures in Hub. With ?gc=1 (any value but
// "", "0" and "false") it collects garbage twice before it reads the figures.
func StatsHandler[H any](hub func() H) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var st Stats[H]
		if v := r.URL.Query().Get("gc"); v != "" && v != "0" && v != "false" {
			// Twice: the first moves sync.Pool contents (wspub's gather and frame
			// buffers) to the pools' victim caches, the second frees them, so that what
			// is left is what something still references.
			runtime.GC()
			runtime.GC()
			st.GC = true
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st.Hub = hub()
		st.HeapInuse, st.StackInuse, st.HeapAlloc, st.Sys, st.NumGC = ms.HeapInuse, ms.StackInuse, ms.HeapAlloc, ms.Sys, ms.NumGC
		st.Goroutines = runtime.NumGoroutine()
		writeJSON(w, http.StatusOK, st)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
