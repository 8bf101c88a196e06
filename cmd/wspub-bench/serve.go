package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wspub/wspub"
)

// serveConfig configures the bench server.
type serveConfig struct {
	Addr     string
	MaxConns int  // Options.MaxConns; 0 keeps the hub's default (100 000)
	Pprof    bool // mount net/http/pprof at /debug/pprof/

	// The hub's timeouts and queue bound; 0 keeps its default. A soak sets them low so
	// that heartbeat reaping and slow-consumer evictions happen within minutes.
	PingInterval  time.Duration // Options.PingInterval (25s)
	PongTimeout   time.Duration // Options.PongTimeout (10s)
	WriteTimeout  time.Duration // Options.WriteTimeout (10s)
	CloseTimeout  time.Duration // Options.CloseTimeout (5s)
	MaxQueueBytes int           // Options.MaxQueueBytes (1 MiB)

	// SndBuf, if positive, is the kernel send buffer (SO_SNDBUF) of every accepted
	// connection. Left to autotuning, a loopback connection's grows to megabytes, which a
	// client that stops reading takes minutes to fill before the hub's writes stall.
	SndBuf int
}

// Limits of POST /publish.
const (
	maxPublishN    = 10_000_000
	maxPublishSize = 1 << 20 // the hub's default MaxQueueBytes: a larger message is refused
	benchType      = "bench"
)

func serveMain(args []string, stderr io.Writer) error {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8090", "listen `address` (port 0 picks a free port)")
	fs.IntVar(&cfg.MaxConns, "max-conns", 0, "the hub's Options.MaxConns; 0 keeps its default (100 000)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve net/http/pprof at /debug/pprof/ (e.g. /debug/pprof/profile?seconds=10)")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 0, "the hub's Options.PingInterval; 0 keeps its default (25s)")
	fs.DurationVar(&cfg.PongTimeout, "pong-timeout", 0, "the hub's Options.PongTimeout; 0 keeps its default (10s)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", 0, "the hub's Options.WriteTimeout; 0 keeps its default (10s)")
	fs.DurationVar(&cfg.CloseTimeout, "close-timeout", 0, "the hub's Options.CloseTimeout; 0 keeps its default (5s)")
	fs.IntVar(&cfg.MaxQueueBytes, "max-queue-bytes", 0, "the hub's Options.MaxQueueBytes; 0 keeps its default (1 MiB)")
	fs.IntVar(&cfg.SndBuf, "sndbuf", 0, "the kernel send buffer (SO_SNDBUF) of accepted connections, in bytes; 0 leaves it to autotuning. A soak sets it low (e.g. 32768) so that clients that stop reading stall the hub's writes within seconds")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wspub-bench serve [flags]

Serves a wspub hub with default options (a Logger at Warn level, and MaxConns, the
timeouts and MaxQueueBytes when their flags are set) and the bench endpoints:

  GET  /ws        the hub (subprotocol wspub.v1)
  POST /publish   ?channel=bench&n=1000&size=128&rate=0&start=0: publish n messages
                  {"type":"bench","channel":...,"data":{"seq":i,"ts":<unix nanos>,"pad":"x…"}}
                  (i from start to start+n-1) of about size bytes each, as fast as
                  possible (rate=0) or at rate per second, from one goroutine. Answers 202 Accepted once the last Publish has
                  returned (every message is queued for every subscriber, not necessarily
                  delivered) with {"published":n,"duration_ns":...,"first_ts":...,"envelope_bytes":...}.
  GET  /stats     hub.Stats() and runtime figures (heap_inuse, stack_inuse, heap_alloc, sys,
                  num_gc, goroutines); ?gc=1 collects garbage first (twice, which also
                  empties sync.Pools).

SIGINT or SIGTERM shuts the server and the hub down gracefully.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.MaxConns < 0 {
		return errors.New("-max-conns must not be negative")
	}
	if cfg.PingInterval < 0 || cfg.PongTimeout < 0 || cfg.WriteTimeout < 0 || cfg.CloseTimeout < 0 || cfg.MaxQueueBytes < 0 || cfg.SndBuf < 0 {
		return errors.New("-ping-interval, -pong-timeout, -write-timeout, -close-timeout, -max-queue-bytes and -sndbuf must not be negative")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	logNoFile(stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log, stderr)
}

// logNoFile raises the open-file limit and says what it got.
func logNoFile(w io.Writer) {
	soft, hard, err := raiseNoFile()
	if err != nil {
		fmt.Fprintf(w, "wspub-bench: open-file limit %d (hard %d): %v\n", soft, hard, err)
		return
	}
	fmt.Fprintf(w, "wspub-bench: open-file limit %d (hard %d)\n", soft, hard)
}

// serve listens on cfg.Addr and serves the bench server until ctx ends, then shuts down
// the HTTP server and the hub.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger, stderr io.Writer) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	if cfg.SndBuf > 0 {
		ln = sndBufListener{ln, cfg.SndBuf}
	}
	handler, shutdownHub := newServer(cfg, log)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	// The line tests and scripts wait for; it names the port when -addr asked for port 0.
	fmt.Fprintf(stderr, "wspub-bench: listening on http://%s (WebSocket at ws://%s/ws)\n", ln.Addr(), ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err = <-served: // the listener failed
		_ = shutdownHub(context.Background())
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stderr, "wspub-bench: shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The HTTP server first: it stops accepting and waits for plain requests (a /publish
	// in progress). It does not touch WebSocket connections; the hub closes those.
	errSrv := srv.Shutdown(shutCtx)
	errHub := shutdownHub(shutCtx)
	<-served // http.ErrServerClosed
	return errors.Join(errSrv, errHub)
}

// sndBufListener sets the send buffer of the TCP connections it accepts.
type sndBufListener struct {
	net.Listener
	size int
}

func (l sndBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// newServer returns the bench server's handler and the function that shuts its hub down
// gracefully (Hub.Shutdown). The hub has default options but for a Logger and the
// options cfg sets (MaxConns, the timeouts, MaxQueueBytes).
func newServer(cfg serveConfig, log *slog.Logger) (http.Handler, func(context.Context) error) {
	hub := wspub.New(&wspub.Options{
		Logger:        log,
		MaxConns:      cfg.MaxConns,
		PingInterval:  cfg.PingInterval,
		PongTimeout:   cfg.PongTimeout,
		WriteTimeout:  cfg.WriteTimeout,
		CloseTimeout:  cfg.CloseTimeout,
		MaxQueueBytes: cfg.MaxQueueBytes,
	})
	mux := http.NewServeMux()
	mux.Handle("/ws", hub)
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) { handlePublish(w, r, hub) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { handleStats(w, r, hub) })
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux, hub.Shutdown
}

// publishRequest is the query of POST /publish.
type publishRequest struct {
	Channel string
	N       int
	Size    int
	Rate    float64 // messages per second; 0 means as fast as possible
	Start   int     // seq of the first message
}

// publishResponse is the answer of POST /publish.
type publishResponse struct {
	Published     int    `json:"published"`
	DurationNS    int64  `json:"duration_ns"`    // first Publish call to the return of the last
	FirstTS       int64  `json:"first_ts"`       // "ts" of message 0, unix nanoseconds
	EnvelopeBytes int    `json:"envelope_bytes"` // size of message 0 on the wire
	Error         string `json:"error,omitempty"`
}

func parsePublishRequest(q map[string][]string) (publishRequest, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
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

func handlePublish(w http.ResponseWriter, r *http.Request, hub *wspub.Hub) {
	p, err := parsePublishRequest(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res, err := publishBurst(r.Context(), hub, p)
	status := http.StatusAccepted
	if err != nil {
		res.Error = err.Error()
		status = http.StatusInternalServerError
		if errors.Is(err, wspub.ErrInvalidChannel) {
			status = http.StatusBadRequest
		}
	}
	writeJSON(w, status, res)
}

// publishBurst publishes p.N bench messages to p.Channel from the calling goroutine, each
// stamped with the time just before its Publish call.
func publishBurst(ctx context.Context, hub *wspub.Hub, p publishRequest) (publishResponse, error) {
	var res publishResponse
	var interval time.Duration
	if p.Rate > 0 {
		interval = time.Duration(float64(time.Second) / p.Rate)
	}
	b := newBenchData(p.Channel, p.Size)
	start := time.Now()
	for i := 0; i < p.N; i++ {
		if interval > 0 {
			// Pace against the schedule, not the previous message, so sleeping late does
			// not lower the rate.
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		ts := time.Now().UnixNano()
		data := b.build(p.Start+i, ts)
		if i == 0 {
			res.FirstTS, res.EnvelopeBytes = ts, b.envelopeLen(data)
		}
		if err := hub.Publish(ctx, p.Channel, wspub.Message{Type: benchType, Data: json.RawMessage(data)}); err != nil {
			res.DurationNS = time.Since(start).Nanoseconds()
			return res, fmt.Errorf("publish %d of %d: %w", i+1, p.N, err)
		}
		res.Published++
	}
	res.DurationNS = time.Since(start).Nanoseconds()
	return res, nil
}

// benchData builds the data of bench messages, {"seq":i,"ts":nanos,"pad":"xxx"}, padded
// so that the whole envelope is size bytes when it can be. It reuses one buffer: the hub
// copies the data into the envelope.
type benchData struct {
	buf      []byte
	pad      string
	size     int
	overhead int // envelope bytes around the data
}

func newBenchData(channel string, size int) *benchData {
	quoted := len(channel) + 2 + strings.Count(channel, `"`) + strings.Count(channel, `\`)
	overhead := len(`{"type":"`+benchType+`","channel":`) + quoted + len(`,"data":`) + len(`}`)
	return &benchData{buf: make([]byte, 0, size+64), pad: strings.Repeat("x", size), size: size, overhead: overhead}
}

func (b *benchData) build(seq int, ts int64) []byte {
	d := append(b.buf[:0], `{"seq":`...)
	d = strconv.AppendInt(d, int64(seq), 10)
	d = append(d, `,"ts":`...)
	d = strconv.AppendInt(d, ts, 10)
	d = append(d, `,"pad":"`...)
	pad := b.size - b.overhead - len(d) - len(`"}`)
	if pad > 0 {
		d = append(d, b.pad[:pad]...)
	}
	d = append(d, `"}`...)
	b.buf = d
	return d
}

func (b *benchData) envelopeLen(data []byte) int { return b.overhead + len(data) }

// serverStats is the answer of GET /stats.
type serverStats struct {
	Hub        wspub.Stats `json:"hub"`
	HeapInuse  uint64      `json:"heap_inuse"`
	StackInuse uint64      `json:"stack_inuse"`
	HeapAlloc  uint64      `json:"heap_alloc"`
	Sys        uint64      `json:"sys"`
	NumGC      uint32      `json:"num_gc"`
	Goroutines int         `json:"goroutines"`
	GC         bool        `json:"gc"` // garbage was collected (twice) before the figures were read
}

func handleStats(w http.ResponseWriter, r *http.Request, hub *wspub.Hub) {
	var st serverStats
	if v := r.URL.Query().Get("gc"); v != "" && v != "0" && v != "false" {
		// Twice: the first moves sync.Pool contents (the hub's gather and frame buffers)
		// to the pools' victim caches, the second frees them, so that what is left is
		// what something still references.
		runtime.GC()
		runtime.GC()
		st.GC = true
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.Hub = hub.Stats()
	st.HeapInuse, st.StackInuse, st.HeapAlloc, st.Sys, st.NumGC = ms.HeapInuse, ms.StackInuse, ms.HeapAlloc, ms.Sys, ms.NumGC
	st.Goroutines = runtime.NumGoroutine()
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
