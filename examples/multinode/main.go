// Command multinode runs the progress example on several instances that share a broker:
// a page served by one instance watches a job that runs on another.
//
// Start two instances sharing Redis (or NATS with -broker nats), then open either page:
//
//	go run . -addr localhost:8081 -peer http://localhost:8082
//	go run . -addr localhost:8082 -peer http://localhost:8081
//
// Press "Start on the other instance": the page's own instance forwards the request to
// its peer, which runs the job and publishes its progress to its own hub. The broker
// carries each update to the instance the page is connected to. The page subscribes
// before it starts the job, and wspub acknowledges a subscribe only once the broker
// subscription is in place, so no update is lost on the way.
package main

import (
	"bytes"
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
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/wspub/wspub"
	"github.com/wspub/wspub/natsbroker"
	"github.com/wspub/wspub/redisbroker"
)

//go:embed index.html
var indexHTML []byte

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "localhost:8081", "address to listen on")
	flag.StringVar(&cfg.name, "name", "", "instance name shown on the page (default: the address)")
	flag.StringVar(&cfg.peer, "peer", "http://localhost:8082", "base URL of the other instance")
	flag.StringVar(&cfg.broker, "broker", "redis", "broker shared by the instances: redis or nats")
	flag.StringVar(&cfg.redisAddr, "redis", "127.0.0.1:6379", "Redis address (-broker redis)")
	flag.StringVar(&cfg.natsURL, "nats", nats.DefaultURL, "NATS URL (-broker nats)")
	flag.StringVar(&cfg.prefix, "prefix", "wspub-multinode", "broker channel prefix shared by the instances")
	flag.DurationVar(&cfg.tick, "tick", 300*time.Millisecond, "pause between two progress updates")
	flag.Parse()
	if cfg.name == "" {
		cfg.name = cfg.addr
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("multinode", "error", err)
		os.Exit(1)
	}
}

type config struct {
	addr, name, peer, broker, redisAddr, natsURL, prefix string
	tick                                                 time.Duration
}

// newBroker connects to the configured broker; close releases the client connection
// after the hub has closed the adapter.
func newBroker(cfg config, log *slog.Logger) (b wspub.Broker, closeFn func(), err error) {
	switch cfg.broker {
	case "redis":
		client := redis.NewClient(&redis.Options{Addr: cfg.redisAddr})
		return redisbroker.New(client, &redisbroker.Options{Prefix: cfg.prefix + ":", Logger: log}),
			func() { _ = client.Close() }, nil
	case "nats":
		nc, err := nats.Connect(cfg.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
		if err != nil {
			return nil, nil, fmt.Errorf("connect to NATS: %w", err)
		}
		nb, err := natsbroker.New(nc, &natsbroker.Options{Prefix: cfg.prefix, Logger: log})
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return nb, nc.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown -broker %q: use redis or nats", cfg.broker)
}

func run(ctx context.Context, cfg config, log *slog.Logger) error {
	b, closeBroker, err := newBroker(cfg, log)
	if err != nil {
		return err
	}
	defer closeBroker()
	hub := wspub.New(&wspub.Options{Broker: b, Logger: log})
	app := newServer(hub, cfg)
	srv := &http.Server{Addr: cfg.addr, Handler: app, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("listening", "url", "http://"+cfg.addr, "broker", cfg.broker, "peer", cfg.peer)

	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// http.Server.Shutdown does not close hijacked WebSocket connections: the hub does.
	_ = srv.Shutdown(sctx)
	app.shutdown()
	_ = hub.Shutdown(sctx) // also closes the broker adapter
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// server is one instance: the page, the hub, and the jobs it runs.
type server struct {
	hub    *wspub.Hub
	cfg    config
	mux    *http.ServeMux
	client *http.Client // forwards requests to the peer

	ctx    context.Context // cancelled at shutdown; jobs run under it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs map[string]*job
}

type job struct {
	id      string
	created time.Time
	started bool
}

func newServer(hub *wspub.Hub, cfg config) *server {
	s := &server{hub: hub, cfg: cfg, mux: http.NewServeMux(), client: &http.Client{Timeout: 5 * time.Second},
		jobs: make(map[string]*job)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mux.Handle("/ws", hub)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(bytes.Replace(indexHTML, []byte("{{NAME}}"), []byte(htmlEscape(cfg.name)), 1))
	})
	s.mux.HandleFunc("POST /jobs", s.createJob)
	s.mux.HandleFunc("POST /jobs/{id}/start", s.startJob)
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// shutdown stops the running jobs and waits for them.
func (s *server) shutdown() {
	s.cancel()
	s.wg.Wait()
}

// createJob creates a pending job here, or with ?on=peer on the other instance.
func (s *server) createJob(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("on") == "peer" {
		s.forward(w, r, "/jobs")
		return
	}
	var idb [6]byte
	_, _ = rand.Read(idb[:])
	j := &job{id: hex.EncodeToString(idb[:]), created: time.Now()}
	s.mu.Lock()
	for id, old := range s.jobs { // forget jobs nobody started
		if !old.started && time.Since(old.created) > time.Minute {
			delete(s.jobs, id)
		}
	}
	s.jobs[j.id] = j
	s.mu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]string{"id": j.id, "channel": "task:" + j.id, "node": s.cfg.name})
}

// startJob starts a pending job; with ?on=peer the request goes to the other instance.
func (s *server) startJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if r.URL.Query().Get("on") == "peer" {
		s.forward(w, r, "/jobs/"+id+"/start")
		return
	}
	s.mu.Lock()
	j := s.jobs[id]
	ok := j != nil && !j.started
	if ok {
		j.started = true
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no pending job " + id})
		return
	}
	s.wg.Add(1)
	go s.runJob(j)
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "node": s.cfg.name})
}

// forward sends the request on to the peer instance and relays its answer.
func (s *server) forward(w http.ResponseWriter, r *http.Request, path string) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, strings.TrimSuffix(s.cfg.peer, "/")+path, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = s.client.Do(req); err == nil {
			defer resp.Body.Close()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<16))
			return
		}
	}
	writeJSON(w, http.StatusBadGateway, map[string]string{"error": "peer unreachable: " + err.Error()})
}

// steps are the phases of the fake job.
var steps = []string{"fetching prices", "computing indicators", "running backtest", "scoring", "writing report"}

// runJob publishes the job's progress to task:<id> on this instance's hub; the broker
// takes it to whichever instance the watching page is connected to.
func (s *server) runJob(j *job) {
	defer s.wg.Done()
	channel := "task:" + j.id
	publish := func(status string, percent int, step string) {
		_ = s.hub.Publish(context.Background(), channel, wspub.Message{Type: "progress", Data: map[string]any{
			"status": status, "percent": percent, "step": step, "node": s.cfg.name,
		}})
	}
	t := time.NewTicker(s.cfg.tick)
	defer t.Stop()
	for i, step := range steps {
		for k := range 4 {
			publish("running", (i*4+k)*100/(len(steps)*4), step)
			select {
			case <-s.ctx.Done():
				publish("cancelled", (i*4+k)*100/(len(steps)*4), step)
				return
			case <-t.C:
			}
		}
	}
	publish("done", 100, "finished")
	s.mu.Lock()
	delete(s.jobs, j.id)
	s.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
