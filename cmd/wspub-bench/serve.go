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
	"strings"
	"syscall"
	"time"

	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/benchctl"
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

// benchType is the type of the bench messages.
const benchType = "bench"

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
	mux := benchctl.NewMux(hub, &benchctl.Publisher{
		Layout: hubLayout,
		Publish: func(ctx context.Context, channel string, data []byte) error {
			return hub.Publish(ctx, channel, wspub.Message{Type: benchType, Data: json.RawMessage(data)})
		},
		Reuse:  true, // the hub copies the data into the envelope
		Status: publishStatus,
	}, benchctl.StatsHandler(hub.Stats))
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux, hub.Shutdown
}

// serverStats is the answer of GET /stats: the hub's Stats, under their Go names, and
// the runtime's figures.
type serverStats = benchctl.Stats[wspub.Stats]

// hubLayout is the layout of the bench messages of wspub-bench serve: Publish is given
// the data alone and the hub wraps it in {"type":"bench","channel":C,"data":…}.
func hubLayout(channel string) benchctl.Layout {
	quoted := len(channel) + 2 + strings.Count(channel, `"`) + strings.Count(channel, `\`)
	return benchctl.Layout{Extra: len(`{"type":"`+benchType+`","channel":`) + quoted + len(`,"data":`) + len(`}`)}
}

// publishStatus is the status of a POST /publish whose Publish failed with err: 400 Bad
// Request for a channel name the hub refuses, else 500.
func publishStatus(err error) int {
	if errors.Is(err, wspub.ErrInvalidChannel) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
