// Command docserver serves the documentation's browser snippets for the e2e tests
// (e2e/docs.test.mjs), next to a hub that gives each snippet what it expects.
//
//	go run ./docserver -addr 127.0.0.1:8099 -root ../..
//
// Routes:
//
//	GET /                 200 "docserver" (ready check)
//	GET /snippets         every code block of the repository's docs (docs.Find), as JSON
//	                      [{"n", "file", "line", "lang", "code"}]
//	GET /snippet/{n}      block n as a page: an html block as it is, a js block as the
//	                      module script of an empty page
//	GET /wspub.js         the browser client (wspub.ClientHandler)
//	GET /stats            {"connections", "subscriptions", "clicks"}
//	GET /favicon.ico      204, so that pages log no 404
//	/ws                   a hub with default options that publishes {"percent": 0..100}
//	                      as "progress" to task:42 every -tick, and answers every
//	                      action_clicked with three stream.delta messages and a
//	                      stream.done, sent to the clicking connection
//
// It runs until SIGINT or SIGTERM, then shuts the hub down.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wspub/wspub"
	"github.com/wspub/wspub/internal/docs"
)

// Answer is what the hub streams, chunk by chunk, in answer to action_clicked.
var answer = []string{"Buying ", "at the ", "market price."}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "docserver:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	root := flag.String("root", "../..", "the repository's root")
	tick := flag.Duration("tick", 100*time.Millisecond, "how often task:42 gets a progress message")
	flag.Parse()

	snippets, err := docs.Find(*root)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	hub := wspub.New(&wspub.Options{Logger: log})
	var clicks atomic.Int64
	if err := hub.Handle("action_clicked", func(ctx context.Context, c *wspub.Conn, _ wspub.ClientMessage) error {
		clicks.Add(1)
		for _, text := range answer {
			if err := c.Send(ctx, wspub.Message{Type: "stream.delta", Data: map[string]string{"text": text}}); err != nil {
				return err
			}
		}
		return c.Send(ctx, wspub.Message{Type: "stream.done"})
	}); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/ws", hub)
	mux.Handle("/wspub.js", wspub.ClientHandler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("docserver")) })
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /snippets", func(w http.ResponseWriter, _ *http.Request) {
		type indexed struct {
			N int `json:"n"`
			docs.Snippet
		}
		list := make([]indexed, len(snippets))
		for i, s := range snippets {
			list[i] = indexed{i, s}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("GET /snippet/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n >= len(snippets) {
			http.NotFound(w, r)
			return
		}
		s := snippets[n]
		page := s.Code
		switch s.Lang {
		case "html":
		case "js":
			page = "<!doctype html>\n<title>" + s.Where() + "</title>\n<script type=\"module\">\n" + s.Code + "</script>\n"
		default:
			http.Error(w, s.Where()+" is "+s.Lang+", not a browser snippet", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		st := hub.Stats()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{
			"connections": int64(st.Connections), "subscriptions": int64(st.Subscriptions), "clicks": clicks.Load(),
		})
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	go publish(ctx, hub, *tick, log)
	log.Info("serving", "addr", ln.Addr().String(), "snippets", len(snippets))

	select {
	case err = <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = errors.Join(srv.Shutdown(shutdownCtx), hub.Shutdown(shutdownCtx))
	<-served // http.ErrServerClosed
	return err
}

// publish sends task:42 its progress, 0 to 100 % in steps of 5, over and over.
func publish(ctx context.Context, hub *wspub.Hub, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for pct := 0; ; pct = (pct + 5) % 105 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := hub.Publish(ctx, "task:42", wspub.Message{Type: "progress", Data: map[string]any{"percent": pct, "step": "scoring"}})
		if err != nil && ctx.Err() == nil {
			log.Warn("publish", "err", err)
		}
	}
}
