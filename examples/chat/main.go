// Command chat is a wspub example: chat rooms, with per-room authorization, chat lines
// stamped by the server with the sender's identity, and client publish for typing hints.
//
//	go run ./examples/chat -addr localhost:8080
//
// then open http://localhost:8080/ in two windows, log in as "alice" in one and as
// "bob" (or "admin") in the other, join rooms and chat.
//
// # Logging in
//
// The page passes the user's name as its token, in the subprotocol "bearer.<name>"
// (connect("/ws", {token: name})), and Options.Authenticate takes the name from it with
// wspub.SubprotocolToken. That is a demo: anyone may call themselves anyone, "admin"
// included. A real app verifies a signed token there (see examples/auth: a JWT checked
// for its signature, expiry and issuer) and takes the user ID from its claims; the rest
// of this example stays the same.
//
// # Rooms
//
// Options.Authorize is asked for every subscribe and every client publish:
//
//	room:general, room:random, room:go   anyone logged in
//	room:admins                          the user "admin" only
//	anything else                        forbidden
//
// Joining a room is subscribing to its channel; leaving, unsubscribing. A room keeps no
// history: delivery is at most once, and a page sees the lines said while it is in the
// room and connected.
//
// # Who said it: chat lines go through the server, typing hints do not
//
// A client publish ({"type":"publish","channel":...,"data":...}) goes from the hub to the
// room's subscribers as it is: Authorize sees who publishes to which channel, but not the
// data, and the subscribers get the data without the sender's identity. Anything a client
// puts in it ({"user": "admin"}) is the client's claim. So there are two paths:
//
//   - Chat lines are sent as a custom message, {"type":"say","data":{"room":...,"text":...}},
//     handled by hub.Handle("say"): the handler checks that the user may use the room and
//     has joined it, checks the text, and publishes {"type":"chat","channel":room,
//     "data":{"id","user","text","ts"}} with hub.Publish, where "user" is the
//     authenticated c.UserID(). A "user" the client adds to its data is ignored.
//   - Typing hints use raw client publish (Options.AllowClientPublish), as
//     c.publish(room, {"typing": true, "user": me}): ephemeral, untrusted and harmless if
//     faked. Authorize lets a user publish only to rooms it may use and has joined, and
//     Options.MaxMessageBytes bounds the data it cannot see. The page treats the hint's
//     "user" as a claim: it shows "alice is typing…" for a few seconds, never as a line.
//
// Error codes beside the hub's own: forbidden (a room the user may not use, or no such
// room), not_joined (say or publish to a room the connection has not joined),
// invalid_text (empty, or control characters), text_too_long (over 500 characters), and
// invalid_message (say without {"room","text"} strings).
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wspub/wspub"
)

//go:embed index.html
var indexHTML []byte

const (
	adminUser    = "admin"
	adminRoom    = "room:admins"
	maxTextRunes = 500

	codeNotJoined   = "not_joined"
	codeInvalidText = "invalid_text"
	codeTextTooLong = "text_too_long"
)

// publicRooms may be used by anyone logged in.
var publicRooms = []string{"room:general", "room:random", "room:go"}

// userName is what the demo login accepts as a name (and so as a token).
var userName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,15}$`)

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // after the first signal, a second one kills the process at once

	if err := run(ctx, *addr, logger, nil); err != nil {
		logger.Error("exiting", "error", err)
		os.Exit(1)
	}
	logger.Info("stopped")
}

// run serves the example on addr until ctx is cancelled, then shuts down gracefully.
// ready, if not nil, is called with the page's URL once the listener is open.
func run(ctx context.Context, addr string, logger *slog.Logger, ready func(url string)) error {
	app := newServer(logger)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(err, app.hub.Close())
	}
	logger = app.log
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
	// hub.Shutdown they would keep the process (and the hub's goroutines) alive. The hub
	// sends every client what is still queued and then close 1001 ("going away").
	errs := []error{srv.Shutdown(sctx), app.hub.Shutdown(sctx)}
	if errServe == nil {
		errServe = <-serveErr // Serve always returns an error; after Shutdown, ErrServerClosed
	}
	if !errors.Is(errServe, http.ErrServerClosed) {
		errs = append(errs, errServe)
	}
	return errors.Join(errs...)
}

// server is the example's HTTP handler: the page, the browser client and the hub.
type server struct {
	hub    *wspub.Hub
	log    *slog.Logger
	mux    *http.ServeMux
	lastID atomic.Uint64 // of chat lines
}

// newServer returns the example's handler and the hub it owns (s.hub; the caller shuts
// it down): GET / serves the page, GET /wspub.js the browser client and /ws the hub.
// There is no background work.
func newServer(logger *slog.Logger) *server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{log: logger, mux: http.NewServeMux()}
	s.hub = wspub.New(&wspub.Options{
		Logger:             logger,
		Authenticate:       authenticate,
		Authorize:          authorize,
		AllowClientPublish: true, // for typing hints; chat lines go through "say"
		// A chat frame is small. The limit also bounds the typing hints, whose data the
		// server relays without looking at it.
		MaxMessageBytes: 4 << 10,
	})
	if err := s.hub.Handle("say", s.say); err != nil {
		panic(err) // "say" is a valid type that is not reserved: cannot happen
	}
	s.mux.HandleFunc("/{$}", s.page)
	s.mux.Handle("/wspub.js", wspub.ClientHandler())
	s.mux.Handle("/ws", s.hub)
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *server) page(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(indexHTML)
}

// authenticate is the demo login: the token is the user's name.
//
// DEMO ONLY. Anyone can claim any name, "admin" included. A real app verifies a signed
// token here (signature, expiry, issuer: see examples/auth) and returns the user ID of
// its claims, with Identity.Expires set to the token's expiry.
func authenticate(r *http.Request) (wspub.Identity, error) {
	name := wspub.SubprotocolToken(r)
	if !userName.MatchString(name) {
		return wspub.Identity{}, fmt.Errorf("token %q is not a user name (%s)", name, userName)
	}
	return wspub.Identity{UserID: name}, nil
}

// mayUse reports, as an error reply, whether user may join and talk in room.
func mayUse(user, room string) error {
	switch {
	case slices.Contains(publicRooms, room):
		return nil
	case room == adminRoom && user == adminUser:
		return nil
	case room == adminRoom:
		return &wspub.Error{Code: wspub.CodeForbidden, Message: adminRoom + " is for " + adminUser + " only"}
	default:
		return &wspub.Error{Code: wspub.CodeForbidden, Message: "no such room"}
	}
}

// joined reports whether c is subscribed to room.
func joined(c *wspub.Conn, room string) bool {
	return slices.Contains(c.Subscriptions(), room)
}

// authorize is Options.Authorize: a user subscribes to the rooms it may use, and
// publishes (typing hints) only to those it has joined.
func authorize(_ context.Context, c *wspub.Conn, action wspub.Action, channel string) error {
	if err := mayUse(c.UserID(), channel); err != nil {
		return err
	}
	if action == wspub.ActionPublish && !joined(c, channel) {
		return &wspub.Error{Code: codeNotJoined, Message: "join the room first"}
	}
	return nil
}

// chatLine is the data of a "chat" message.
type chatLine struct {
	ID   string `json:"id"`
	User string `json:"user"` // the authenticated sender, never what the client says
	Text string `json:"text"`
	TS   int64  `json:"ts"` // Unix milliseconds, server time
}

// say handles {"type":"say","data":{"room":"room:general","text":"..."}}: it publishes
// the text to the room as a "chat" line stamped with the sender's authenticated user ID.
// The sender gets the line like everyone in the room; there is no other reply.
func (s *server) say(ctx context.Context, c *wspub.Conn, m wspub.ClientMessage) error {
	// Keys other than room and text are ignored, a "user" the client made up included.
	var req struct {
		Room *string `json:"room"`
		Text *string `json:"text"`
	}
	if m.Data == nil || json.Unmarshal(m.Data, &req) != nil || req.Room == nil || req.Text == nil {
		return &wspub.Error{Code: wspub.CodeInvalidMessage, Message: `say needs data {"room": "...", "text": "..."}`}
	}
	room := *req.Room
	if err := mayUse(c.UserID(), room); err != nil { // asked again: permissions may change
		return err
	}
	if !joined(c, room) {
		return &wspub.Error{Code: codeNotJoined, Message: "join " + room + " before talking in it"}
	}
	text := strings.TrimSpace(*req.Text)
	switch n := utf8.RuneCountInString(text); {
	case n == 0:
		return &wspub.Error{Code: codeInvalidText, Message: "the text is empty"}
	case n > maxTextRunes:
		return &wspub.Error{Code: codeTextTooLong,
			Message: fmt.Sprintf("the text has %d characters; the limit is %d", n, maxTextRunes)}
	case strings.IndexFunc(text, isForbiddenControl) >= 0:
		return &wspub.Error{Code: codeInvalidText, Message: "the text contains control characters"}
	}
	line := chatLine{
		ID:   "m" + strconv.FormatUint(s.lastID.Add(1), 10),
		User: c.UserID(),
		Text: text,
		TS:   time.Now().UnixMilli(),
	}
	s.log.Info("chat_line", "conn_id", c.ID(), "user_id", line.User, "room", room, "line_id", line.ID)
	return s.hub.Publish(ctx, room, wspub.Message{Type: "chat", Data: line})
}

// isForbiddenControl reports control characters other than newline and tab.
func isForbiddenControl(r rune) bool {
	return unicode.IsControl(r) && r != '\n' && r != '\t'
}
