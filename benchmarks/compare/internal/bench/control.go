package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"time"
)

// Server is one peer behind the control surface.
type Server interface {
	// ServeHTTP serves the WebSocket endpoint, /ws.
	http.Handler
	// Publish sends msg to every subscriber of channel, the way the library's users
	// publish. msg is the server's to keep.
	Publish(ctx context.Context, channel string, msg []byte) error
	// Layout is what Publish is given around the bench data for channel.
	Layout(channel string) Layout
	// Conns is the number of open WebSocket connections.
	Conns() int
	// Close closes every connection and waits for the server's goroutines.
	Close() error
}

// Limits of POST /publish, wspub-bench serve's.
const (
	maxPublishN    = 10_000_000
	maxPublishSize = 1 << 20
)

// NewHandler serves s at /ws with the control surface of wspub-bench serve beside it:
//
//	POST /publish  ?channel=bench&n=1000&size=128&rate=0&start=0: publish n messages of
//	               about size bytes, {"seq":i,"ts":<unix nanos>,"pad":"x…"} in the
//	               server's layout, as fast as possible (rate=0) or at rate per second,
//	               from one goroutine; answers 202 with {"published","duration_ns",
//	               "first_ts","envelope_bytes"} once the last Publish has returned.
//	GET  /stats    {"hub":{"Connections":n},"heap_inuse","stack_inuse","heap_alloc","sys",
//	               "num_gc","goroutines","gc"}; ?gc=1 collects garbage twice first.
func NewHandler(s Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ws", s)
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) { handlePublish(w, r, s) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { handleStats(w, r, s) })
	return mux
}

// publishRequest is the query of POST /publish.
type publishRequest struct {
	Channel string
	N       int
	Size    int
	Rate    float64 // messages per second; 0: as fast as possible
	Start   int     // seq of the first message
}

// PublishResponse is the answer of POST /publish.
type PublishResponse struct {
	Published     int    `json:"published"`
	DurationNS    int64  `json:"duration_ns"`    // first Publish call to the return of the last
	FirstTS       int64  `json:"first_ts"`       // "ts" of message 0, unix nanoseconds
	EnvelopeBytes int    `json:"envelope_bytes"` // size of message 0 as a client receives it
	Error         string `json:"error,omitempty"`
}

func parsePublishRequest(get func(string) string) (publishRequest, error) {
	p := publishRequest{Channel: "bench", N: 1000, Size: 128}
	if v := get("channel"); v != "" {
		p.Channel = v
	}
	var err error
	if v := get("n"); v != "" {
		if p.N, err = strconv.Atoi(v); err != nil || p.N < 1 || p.N > maxPublishN {
			return p, fmt.Errorf("n must be an integer in 1..%d", maxPublishN)
		}
	}
	if v := get("size"); v != "" {
		if p.Size, err = strconv.Atoi(v); err != nil || p.Size < 0 || p.Size > maxPublishSize {
			return p, fmt.Errorf("size must be an integer in 0..%d", maxPublishSize)
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

func handlePublish(w http.ResponseWriter, r *http.Request, s Server) {
	p, err := parsePublishRequest(r.URL.Query().Get)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res, err := publish(r.Context(), s, p)
	status := http.StatusAccepted
	if err != nil {
		res.Error, status = err.Error(), http.StatusInternalServerError
	}
	writeJSON(w, status, res)
}

// publish publishes p.N messages from the calling goroutine, each stamped with the time
// just before its Publish call; with a rate, paced against the schedule (not the previous
// message, so that sleeping late does not lower the rate), as wspub-bench serve does.
func publish(ctx context.Context, s Server, p publishRequest) (PublishResponse, error) {
	var res PublishResponse
	var interval time.Duration
	if p.Rate > 0 {
		interval = time.Duration(float64(time.Second) / p.Rate)
	}
	m := newMessage(s.Layout(p.Channel), p.Size)
	start := time.Now()
	for i := 0; i < p.N; i++ {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		ts := time.Now().UnixNano()
		msg := m.build(p.Start+i, ts)
		if i == 0 {
			res.FirstTS, res.EnvelopeBytes = ts, m.wireLen(msg)
		}
		if err := s.Publish(ctx, p.Channel, msg); err != nil {
			res.DurationNS = time.Since(start).Nanoseconds()
			return res, fmt.Errorf("publish %d of %d: %w", i+1, p.N, err)
		}
		res.Published++
	}
	res.DurationNS = time.Since(start).Nanoseconds()
	return res, nil
}

// Stats is the answer of GET /stats: the fields of wspub-bench serve's that the load tool
// reads, with the connection count in Hub.
type Stats struct {
	Hub struct {
		Connections int
	} `json:"hub"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	Sys        uint64 `json:"sys"`
	NumGC      uint32 `json:"num_gc"`
	Goroutines int    `json:"goroutines"`
	GC         bool   `json:"gc"` // garbage was collected (twice) before the figures were read
}

func handleStats(w http.ResponseWriter, r *http.Request, s Server) {
	var st Stats
	if v := r.URL.Query().Get("gc"); v != "" && v != "0" && v != "false" {
		// Twice, as wspub-bench serve does: the first moves sync.Pool contents to the
		// victim caches, the second frees them.
		runtime.GC()
		runtime.GC()
		st.GC = true
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.Hub.Connections = s.Conns()
	st.HeapInuse, st.StackInuse, st.HeapAlloc, st.Sys, st.NumGC = ms.HeapInuse, ms.StackInuse, ms.HeapAlloc, ms.Sys, ms.NumGC
	st.Goroutines = runtime.NumGoroutine()
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
