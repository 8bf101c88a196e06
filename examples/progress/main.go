// Command progress is a wspub example: a page starts fake "analysis" jobs and watches
// their progress live over one WebSocket.
//
//	go run ./examples/progress -addr localhost:8080
//
// then open http://localhost:8080/ and press "Start analysis" a few times; the hub's
// Prometheus metrics are at http://localhost:8080/metrics.
//
// # Why starting a job takes two requests
//
// Delivery in wspub is at-most-once and a channel keeps no history: a message published
// before the page has subscribed is lost. If POST /jobs started the job at once, its first
// updates would race the page's subscribe. A fixed start delay only makes the race rarer
// (a slow network loses it anyway), so a job starts in two steps instead:
//
//  1. POST /jobs creates a pending job and answers 202 with its id and channel;
//  2. the page subscribes to the channel and, once the server has answered "subscribed",
//     sends POST /jobs/{id}/start, which starts the job.
//
// Nothing can be missed that way. A pending job nobody starts expires after
// serverOptions.PendingTTL. After a reconnect the page's browser client (wspub.js, served
// at /wspub.js by wspub.ClientHandler) resubscribes by itself; once the server confirms,
// the page reads GET /jobs/{id}, the job's latest state, to catch up on what it missed
// while offline.
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/wspub/wspub"
)

//go:embed index.html
var indexHTML []byte

// steps are the named phases of a fake analysis job, in order.
var steps = []string{"fetching prices", "computing indicators", "running backtest", "scoring", "writing report"}

// Job statuses. Published progress messages carry running, done or cancelled; pending is
// only seen through GET /jobs/{id}.
const (
	statusPending   = "pending"
	statusRunning   = "running"
	statusDone      = "done"
	statusCancelled = "cancelled" // the server shut down before the job finished
)

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	tick := flag.Duration("tick", 400*time.Millisecond, "pause between two progress updates of a job")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // after the first signal, a second one kills the process at once

	if err := run(ctx, *addr, serverOptions{Logger: logger, TickDelay: *tick}, nil); err != nil {
		logger.Error("exiting", "error", err)
		os.Exit(1)
	}
	logger.Info("stopped")
}

// run serves the example on addr until ctx is cancelled, then shuts down gracefully.
// ready, if not nil, is called with the page's URL once the listener is open.
func run(ctx context.Context, addr string, opts serverOptions, ready func(url string)) error {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hub, metrics, err := newHub(logger)
	if err != nil {
		_ = ln.Close()
		return err
	}
	opts.Metrics = metrics
	app := newServer(hub, opts)
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	url := "http://" + ln.Addr().String() + "/"
	logger.Info("listening", "url", url)
	if ready != nil {
		ready(url)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	var errServe error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case errServe = <-serveErr: // the listener failed; shut the rest down all the same
	}

	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// http.Server.Shutdown stops accepting requests and waits for the plain HTTP ones, but
	// it does not close hijacked connections, and every WebSocket is one: without
	// hub.Shutdown they would keep the process (and the hub's goroutines) alive. So stop
	// HTTP first (no new jobs), then the jobs (each publishes "cancelled"), then the hub,
	// which sends every client what is still queued and then close 1001 ("going away").
	errs := []error{srv.Shutdown(sctx), app.Shutdown(sctx), hub.Shutdown(sctx)}
	if errServe == nil {
		errServe = <-serveErr // Serve always returns an error; after Shutdown, ErrServerClosed
	}
	if !errors.Is(errServe, http.ErrServerClosed) {
		errs = append(errs, errServe)
	}
	return errors.Join(errs...)
}

// serverOptions configures newServer. Zero fields mean defaults.
type serverOptions struct {
	Logger       *slog.Logger  // default: no logs
	TickDelay    time.Duration // pause between two progress updates; default 400ms
	TicksPerStep int           // progress updates per step; default 4
	PendingTTL   time.Duration // how long a created job may wait to be started; default 1m
	Retain       time.Duration // how long a finished job stays readable; default 5m
	MaxJobs      int           // jobs kept at once (pending, running, finished); default 100
	Metrics      http.Handler  // served at GET /metrics; nil: none
}

// progress is the data of a "progress" message, and the body of GET /jobs/{id}.
type progress struct {
	Symbol  string `json:"symbol"`
	Status  string `json:"status"`
	Percent int    `json:"percent"`
	Step    string `json:"step"`
}

type job struct {
	id       string
	channel  string
	created  time.Time
	started  bool
	finished time.Time // zero until the job is done or cancelled
	last     progress  // the latest state, as last published
}

// server is the example's HTTP handler: the page, the hub and the job API.
type server struct {
	hub  *wspub.Hub
	opts serverOptions
	log  *slog.Logger
	mux  *http.ServeMux

	ctx    context.Context // cancelled by Shutdown; every job runs under it
	cancel context.CancelFunc
	wg     sync.WaitGroup // running jobs

	mu     sync.Mutex
	closed bool
	jobs   map[string]*job
}

// newServer returns the example's handler: GET / serves the page, GET /wspub.js the
// browser client, /ws the hub, GET /metrics opts.Metrics,
// POST /jobs creates a job, POST /jobs/{id}/start starts it and GET /jobs/{id} reads its
// latest state. Call Shutdown to stop the running jobs; the hub is the caller's to shut down.
func newServer(hub *wspub.Hub, opts serverOptions) *server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TickDelay <= 0 {
		opts.TickDelay = 400 * time.Millisecond
	}
	if opts.TicksPerStep <= 0 {
		opts.TicksPerStep = 4
	}
	if opts.PendingTTL <= 0 {
		opts.PendingTTL = time.Minute
	}
	if opts.Retain <= 0 {
		opts.Retain = 5 * time.Minute
	}
	if opts.MaxJobs <= 0 {
		opts.MaxJobs = 100
	}
	s := &server{hub: hub, opts: opts, log: opts.Logger, mux: http.NewServeMux(), jobs: make(map[string]*job)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mux.HandleFunc("/{$}", s.page)
	s.mux.Handle("/wspub.js", wspub.ClientHandler())
	s.mux.Handle("/ws", hub)
	s.mux.HandleFunc("/jobs", s.createJob)
	s.mux.HandleFunc("/jobs/{id}", s.jobState)
	s.mux.HandleFunc("/jobs/{id}/start", s.startJob)
	if opts.Metrics != nil {
		s.mux.Handle("GET /metrics", opts.Metrics)
	}
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Shutdown refuses new jobs, cancels the running ones and waits for them to return, or
// for ctx to end.
func (s *server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *server) page(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(indexHTML)
}

// createJob handles POST /jobs with an optional body {"symbol":"AAPL"}.
func (s *server) createJob(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	var req struct {
		Symbol *string `json:"symbol"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10))
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) { // an empty body is fine
		writeError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "invalid JSON body: trailing data")
		return
	}
	symbol := "AAPL"
	if req.Symbol != nil {
		symbol = *req.Symbol
		if !validSymbol(symbol) {
			writeError(w, http.StatusBadRequest, "symbol must be 1 to 10 letters A-Z")
			return
		}
	}

	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	id := hex.EncodeToString(b[:])
	now := time.Now()
	j := &job{id: id, channel: "task:" + id, created: now,
		last: progress{Symbol: symbol, Status: statusPending, Step: steps[0]}}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	s.sweepLocked(now)
	if len(s.jobs) >= s.opts.MaxJobs {
		s.mu.Unlock()
		writeError(w, http.StatusTooManyRequests, "too many jobs, try again later")
		return
	}
	s.jobs[id] = j
	s.mu.Unlock()

	s.log.Info("job_created", "job_id", id, "symbol", symbol)
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "channel": j.channel})
}

// sweepLocked forgets pending jobs nobody started and finished jobs past Retain.
func (s *server) sweepLocked(now time.Time) {
	for id, j := range s.jobs {
		if (!j.started && now.Sub(j.created) > s.opts.PendingTTL) ||
			(!j.finished.IsZero() && now.Sub(j.finished) > s.opts.Retain) {
			delete(s.jobs, id)
		}
	}
}

// startJob handles POST /jobs/{id}/start: the page calls it once it is subscribed.
func (s *server) startJob(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	j := s.jobs[id]
	switch {
	case s.closed:
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "server shutting down")
		return
	case j == nil:
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "no such job (pending jobs expire after "+s.opts.PendingTTL.String()+")")
		return
	case j.started:
		s.mu.Unlock()
		writeError(w, http.StatusConflict, "job already started")
		return
	}
	j.started = true
	j.last.Status = statusRunning
	s.wg.Add(1) // under mu, so Shutdown (which sets closed under mu) cannot miss it
	s.mu.Unlock()

	go s.run(j)
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "channel": j.channel})
}

// jobState handles GET /jobs/{id}: the job's latest state, for a page catching up after
// a reconnect.
func (s *server) jobState(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	s.mu.Lock()
	j := s.jobs[r.PathValue("id")]
	var p progress
	if j != nil {
		p = j.last
	}
	s.mu.Unlock()
	if j == nil {
		writeError(w, http.StatusNotFound, "no such job")
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// run performs the fake analysis: len(steps)*TicksPerStep "running" updates TickDelay
// apart, then "done" at 100%. Shutdown cancels it, and it reports "cancelled".
func (s *server) run(j *job) {
	defer s.wg.Done()
	log := s.log.With("job_id", j.id, "channel", j.channel)
	log.Info("job_started", "symbol", j.last.Symbol)

	// Publish only checks its ctx before queueing, and s.ctx is cancelled on shutdown,
	// when the final "cancelled" update must still go out: publish with Background.
	ctx := context.Background()
	total := len(steps) * s.opts.TicksPerStep
	for i := 0; i < total; i++ {
		step := steps[i/s.opts.TicksPerStep]
		if err := s.publish(ctx, j, statusRunning, i*100/total, step); err != nil {
			log.Warn("job_publish_failed", "error", err)
			return
		}
		if !sleep(s.ctx, s.opts.TickDelay) {
			_ = s.publish(ctx, j, statusCancelled, i*100/total, step)
			log.Info("job_cancelled")
			return
		}
	}
	if err := s.publish(ctx, j, statusDone, 100, steps[len(steps)-1]); err != nil {
		log.Warn("job_publish_failed", "error", err)
		return
	}
	log.Info("job_done")
}

// sleep waits for d and reports true, or returns false as soon as ctx ends.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// publish records the job's new state and sends it to the job's channel.
func (s *server) publish(ctx context.Context, j *job, status string, percent int, step string) error {
	s.mu.Lock()
	j.last.Status, j.last.Percent, j.last.Step = status, percent, step
	if status != statusRunning {
		j.finished = time.Now()
	}
	p := j.last
	s.mu.Unlock()
	return s.hub.Publish(ctx, j.channel, wspub.Message{Type: "progress", Data: p})
}

// validSymbol reports whether sym is 1 to 10 letters A-Z.
func validSymbol(sym string) bool {
	if len(sym) < 1 || len(sym) > 10 {
		return false
	}
	for i := 0; i < len(sym); i++ {
		if sym[i] < 'A' || sym[i] > 'Z' {
			return false
		}
	}
	return true
}

// allowMethod answers 405 with a JSON error unless r uses one of methods.
func allowMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	allow := methods[0]
	for _, m := range methods[1:] {
		allow += ", " + m
	}
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed", r.Method))
	return false
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
