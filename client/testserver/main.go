// Command testserver serves a wspub hub set up for the browser client's node tests
// (client/test). It listens on 127.0.0.1:0 (or -addr), prints its address as the first
// line of stdout, and runs until SIGINT or SIGTERM, or until its standard input closes
// with -exit-on-eof (so that it never outlives the test process that started it).
//
// The hub at /ws:
//   - pings every 500 ms and reaps a peer after 400 ms without a pong;
//   - authenticates the subprotocol token (wspub.SubprotocolToken): none is anonymous,
//     "good" is the user "good", "expiring" the user "expiring" whose identity expires
//     1 s after the handshake (close 4001 "identity expired"), "any:<text>" the user
//     <text> (any characters: the client sends it as bearer64.), anything else is
//     refused with HTTP 401;
//   - allows subscribing to any channel but "secret:*", and client publish to "chat:*";
//     a subscribe to "flaky:*" fails with "internal" the first two times for each channel
//     (a temporary error), one to "once:*" succeeds the first time and is forbidden after;
//   - handles "note" messages by recording their data (see /stats), answers "echo" with
//     an "echoed" reply of the same data (Conn.Reply) and "refuse" with an error reply
//     (code "refused").
//
// /ws-strict is a second hub with the defaults: only pages of its own origin may connect
// (a client with another Origin gets 403, and so does its preflight). /ws-timeout is the
// hub of /ws behind http.TimeoutHandler, which hides http.Hijacker: every request gets
// 501.
//
// /ws-mute accepts WebSocket connections (subprotocol wspub.v1) and reads and drops
// everything: it never answers an application ping.
//
// Control endpoints for the tests:
//
//	POST /publish?channel=&type=&data=&n=  publish n (default 1) messages of type (default
//	                                       "update") in a tight loop, data the JSON given
//	                                       or {"i":<index>}; without channel, broadcast
//	POST /close?code=&reason=              close every connection of the hub with code
//	POST /subscribe?channel=               subscribe every connection server-side
//	POST /unsubscribe?channel=             unsubscribe every connection server-side
//	GET  /stats                            {"connections", "tokens", "muteCloses",
//	                                       "subscriptions", "rateLimited", "policyCloses",
//	                                       "notes" (the data of every note, in order)}:
//	                                       subscriptions is the hub's Stats().Subscriptions
//	                                       (connection-channel pairs)
//
// With -static DIR, the files of DIR are served at / (the Vite apps of
// e2e/bindings.test.mjs), so that their pages are of the hub's own origin.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/wspub/wspub"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	exitOnEOF := flag.Bool("exit-on-eof", false, "exit when standard input closes")
	static := flag.String("static", "", "a directory whose files are served at /")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	s := newServer()
	fmt.Println(ln.Addr().String())

	srv := &http.Server{Handler: s.routes(*static), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *exitOnEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	<-ctx.Done()
	_ = srv.Close()
	_ = s.hub.Close()
	_ = s.strict.Close()
}

type server struct {
	hub    *wspub.Hub
	strict *wspub.Hub // default options: same origin only

	mu         sync.Mutex
	conns      map[string]bool // IDs of the hub's connections
	tokens     map[string]int  // Authenticate calls by token ("" for none)
	muteCloses []int           // close codes /ws-mute received
	attempts   map[string]int  // subscribes by channel, for flaky:* and once:*
	notes      []json.RawMessage
}

func newServer() *server {
	s := &server{conns: make(map[string]bool), tokens: make(map[string]int), attempts: make(map[string]int),
		strict: wspub.New(nil)}
	s.hub = wspub.New(&wspub.Options{
		PingInterval:       500 * time.Millisecond,
		PongTimeout:        400 * time.Millisecond,
		MaxConnsPerUser:    -1,
		AllowClientPublish: true,
		Authenticate:       s.authenticate,
		Authorize: func(_ context.Context, _ *wspub.Conn, action wspub.Action, channel string) error {
			switch {
			case strings.HasPrefix(channel, "secret:"):
				return errors.New("secret channel")
			case action == wspub.ActionPublish && !strings.HasPrefix(channel, "chat:"):
				return errors.New("clients publish to chat:* only")
			case action == wspub.ActionSubscribe:
				return s.subscribeOutcome(channel)
			}
			return nil
		},
		OnConnect: func(_ context.Context, c *wspub.Conn) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.conns[c.ID()] = true
			return nil
		},
		OnDisconnect: func(c *wspub.Conn, _ websocket.StatusCode, _ string) {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.conns, c.ID())
		},
	})
	if err := s.hub.Handle("note", func(_ context.Context, _ *wspub.Conn, m wspub.ClientMessage) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.notes = append(s.notes, m.Data)
		return nil
	}); err != nil {
		panic(err)
	}
	if err := s.hub.Handle("echo", func(ctx context.Context, c *wspub.Conn, m wspub.ClientMessage) error {
		return c.Reply(ctx, m, wspub.Message{Type: "echoed", Data: m.Data})
	}); err != nil {
		panic(err)
	}
	if err := s.hub.Handle("refuse", func(context.Context, *wspub.Conn, wspub.ClientMessage) error {
		return &wspub.Error{Code: "refused", Message: "no, thanks"}
	}); err != nil {
		panic(err)
	}
	return s
}

// subscribeOutcome fails the first two subscribes to each flaky:* channel with a
// temporary error, and forbids every subscribe to a once:* channel but the first.
func (s *server) subscribeOutcome(channel string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[channel]++
	switch n := s.attempts[channel]; {
	case strings.HasPrefix(channel, "flaky:") && n <= 2:
		return &wspub.Error{Code: wspub.CodeInternal, Message: "try again"}
	case strings.HasPrefix(channel, "once:") && n > 1:
		return errors.New("no longer allowed")
	}
	return nil
}

func (s *server) authenticate(r *http.Request) (wspub.Identity, error) {
	token := wspub.SubprotocolToken(r)
	s.mu.Lock()
	s.tokens[token]++
	s.mu.Unlock()
	switch token {
	case "":
		return wspub.Identity{}, nil
	case "good":
		return wspub.Identity{UserID: "good"}, nil
	case "expiring":
		return wspub.Identity{UserID: "expiring", Expires: time.Now().Add(time.Second)}, nil
	}
	if user, ok := strings.CutPrefix(token, "any:"); ok {
		return wspub.Identity{UserID: user}, nil
	}
	return wspub.Identity{}, errors.New("unknown token")
}

func (s *server) routes(static string) http.Handler {
	mux := http.NewServeMux()
	if static != "" {
		mux.Handle("/", http.FileServer(http.Dir(static)))
	}
	mux.Handle("/ws", s.hub)
	mux.Handle("/ws-strict", s.strict)
	mux.Handle("/ws-timeout", http.TimeoutHandler(s.hub, time.Minute, ""))
	mux.HandleFunc("/ws-mute", s.mute)
	mux.HandleFunc("POST /publish", s.publish)
	mux.HandleFunc("POST /close", s.close)
	mux.HandleFunc("POST /subscribe", s.subscribe)
	mux.HandleFunc("POST /unsubscribe", s.unsubscribe)
	mux.HandleFunc("GET /stats", s.stats)
	return mux
}

// connIDs returns the IDs of the hub's connections.
func (s *server) connIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	return ids
}

func (s *server) publish(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, typ := 1, q.Get("type")
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			http.Error(w, "bad n", http.StatusBadRequest)
			return
		}
	}
	if typ == "" {
		typ = "update"
	}
	for i := range n {
		var data any = map[string]int{"i": i}
		if v := q.Get("data"); v != "" {
			data = json.RawMessage(v)
		}
		m := wspub.Message{Type: typ, Data: data}
		var err error
		if channel := q.Get("channel"); channel != "" {
			err = s.hub.Publish(r.Context(), channel, m)
		} else {
			err = s.hub.Broadcast(r.Context(), m)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	fmt.Fprintln(w, n)
}

func (s *server) close(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.URL.Query().Get("code"))
	if err != nil {
		http.Error(w, "bad code", http.StatusBadRequest)
		return
	}
	ids := s.connIDs()
	for _, id := range ids {
		_ = s.hub.CloseConn(id, websocket.StatusCode(code), r.URL.Query().Get("reason"))
	}
	fmt.Fprintln(w, len(ids))
}

func (s *server) subscribe(w http.ResponseWriter, r *http.Request) {
	s.eachConn(w, r, s.hub.Subscribe)
}

func (s *server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	s.eachConn(w, r, s.hub.Unsubscribe)
}

// eachConn calls fn (Hub.Subscribe or Hub.Unsubscribe) for every connection with the
// request's channel and answers how many there were.
func (s *server) eachConn(w http.ResponseWriter, r *http.Request, fn func(connID, channel string) error) {
	ids := s.connIDs()
	for _, id := range ids {
		if err := fn(id, r.URL.Query().Get("channel")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	fmt.Fprintln(w, len(ids))
}

func (s *server) stats(w http.ResponseWriter, _ *http.Request) {
	st := s.hub.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"connections":   st.Connections,
		"subscriptions": st.Subscriptions,
		"rateLimited":   st.RateLimited,
		"policyCloses":  st.PolicyCloses,
		"tokens":        s.tokens,
		"muteCloses":    slices.Clone(s.muteCloses),
		"notes":         slices.Clone(s.notes),
	})
}

// mute serves a WebSocket peer that reads everything and answers nothing, like a server
// (or a proxy) that hangs.
func (s *server) mute(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wspub.Subprotocol}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		if _, _, err := c.Read(context.Background()); err != nil {
			s.mu.Lock()
			s.muteCloses = append(s.muteCloses, int(websocket.CloseStatus(err)))
			s.mu.Unlock()
			return
		}
	}
}
