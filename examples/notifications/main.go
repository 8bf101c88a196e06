// Command notifications is a wspub example: notifications to one user (every open tab
// of that user gets them) with Hub.SendToUser, and announcements to everyone with
// Hub.Broadcast. No channels are involved: the hub addresses connections by the user
// Options.Authenticate established at the handshake.
//
//	go run ./examples/notifications
//	go run ./examples/notifications -addr localhost:8080
//
// then open http://localhost:8080/?user=alice and http://localhost:8080/?user=bob (or two
// tabs of alice), and notify each other.
//
// # Routes
//
//   - GET / serves the page (index.html, embedded in the binary). ?user=<name> chooses
//     who the page logs in as first (default alice); a selector on the page changes it.
//   - GET /wspub.js serves the browser client (wspub.ClientHandler).
//   - /ws is the hub. The handshake must carry a token: the page offers it as the
//     subprotocol "bearer.<token>" (connect("/ws", {token: user})); other clients may
//     send "Authorization: Bearer <token>". A missing or unknown token is refused with
//     HTTP 401. Once connected, a client receives
//     {"type":"notification","data":{"from":"bob","text":"hi","ts":1732530000123}} for
//     its user and {"type":"announcement","data":{"text":"...","ts":...}} for everyone.
//     Clients cannot subscribe to channels here (forbidden): everything comes to them.
//   - POST /notify with {"user":"alice","text":"hi"} sends a notification to every
//     connection of alice, and answers 202 with {"sent":{...}}. Its "from" is the
//     user of the request's "Authorization: Bearer <token>" header (the page sends its
//     own), or "system" without one (an operator with curl).
//   - POST /broadcast with {"text":"..."} sends an announcement to every connection and
//     answers 202 with {"sent":{...}}. Anyone may broadcast in this demo; a real app
//     allows it to administrators only.
//
// Both POSTs need "Content-Type: application/json" (415 otherwise: a cross-site HTML
// form cannot send that, so another site cannot make a visitor's browser post
// notifications). A body that is not one JSON object with exactly the documented string
// fields, or whose text is empty or longer than 500 characters, gets 400; a body over
// 4 KiB gets 413; an unknown bearer token gets 401.
//
// A notification to a user who does not exist gets 404: the request is well-formed but
// names no one, and 400 is kept for malformed bodies. A notification to a known user
// with no open connection is accepted (202) and reaches no one: delivery is at most once
// and nothing is stored. A real app would store notifications (and show the stored ones
// when a page connects) and use the hub for the live part only.
//
// # The token
//
// In this demo the token is the user's name, so anybody can be anybody: Authenticate only
// checks that the name is one of alice, bob and carol. A real app verifies a signed token
// instead (its signature, expiry and issuer) and takes the user from it: see
// examples/auth for a complete JWT setup.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/wspub/wspub"
)

//go:embed index.html
var indexHTML []byte

// users are the demo's accounts. index.html lists them too.
var users = []string{"alice", "bob", "carol"}

const (
	systemSender = "system" // "from" of a notification posted without a token
	maxTextRunes = 500      // of a notification or announcement
	maxBodyBytes = 4 << 10
)

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // after the first signal, a second one kills the process at once

	if err := run(ctx, *addr, config{Logger: logger}, nil); err != nil {
		logger.Error("exiting", "error", err)
		os.Exit(1)
	}
	logger.Info("stopped")
}

// run serves the example on addr until ctx is cancelled, then shuts down gracefully.
// ready, if not nil, is called with the page's URL once the listener is open.
func run(ctx context.Context, addr string, cfg config, ready func(url string)) error {
	app := newServer(cfg)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(err, app.hub.Close())
	}
	logger := app.log
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	url := "http://" + ln.Addr().String() + "/"
	logger.Info("listening", "url", url, "users", users)
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
	// http.Server.Shutdown stops accepting requests and waits for the plain HTTP ones
	// (/notify, /broadcast), but it does not close hijacked connections, and every
	// WebSocket is one: without hub.Shutdown they would keep the process (and the hub's
	// goroutines) alive. So stop HTTP first, then the hub, which sends every client what
	// is still queued and then close 1001 ("going away").
	errs := []error{srv.Shutdown(sctx), app.hub.Shutdown(sctx)}
	if errServe == nil {
		errServe = <-serveErr // Serve always returns an error; after Shutdown, ErrServerClosed
	}
	if !errors.Is(errServe, http.ErrServerClosed) {
		errs = append(errs, errServe)
	}
	return errors.Join(errs...)
}

// config configures newServer. Zero fields mean defaults.
type config struct {
	Logger *slog.Logger // default: no logs
}

// server is the example's HTTP handler: the page, the client script, the hub and the two
// POST endpoints. It owns the hub.
type server struct {
	hub *wspub.Hub
	log *slog.Logger
	mux *http.ServeMux
}

// newServer returns the example's handler and its hub. Shut the hub down (app.hub) when
// done.
func newServer(cfg config) *server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{log: cfg.Logger, mux: http.NewServeMux()}
	s.hub = wspub.New(&wspub.Options{
		Logger:       cfg.Logger,
		Authenticate: s.authenticate,
		Authorize:    s.authorize,
		// Overflow stays EvictSlowConsumer, the default: a notification must not vanish
		// silently. A client that cannot keep up is closed with 1013 and reconnects (the
		// browser client does so by itself).
	})
	s.mux.HandleFunc("/{$}", s.page)
	s.mux.Handle("/wspub.js", wspub.ClientHandler())
	s.mux.Handle("/ws", s.hub)
	s.mux.HandleFunc("/notify", s.notify)
	s.mux.HandleFunc("/broadcast", s.broadcast)
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

var errUnknownUser = errors.New("unknown user")

// userOf returns the user a token stands for. In this demo the token is the user's name;
// a real app verifies a signed token here (examples/auth) and returns its subject.
func userOf(token string) (string, error) {
	if !slices.Contains(users, token) {
		return "", errUnknownUser
	}
	return token, nil
}

// authenticate is the hub's Options.Authenticate: it runs before the upgrade, and an
// error refuses the handshake with 401. The Identity's UserID is what SendToUser
// addresses.
func (s *server) authenticate(r *http.Request) (wspub.Identity, error) {
	tok := wspub.SubprotocolToken(r) // browsers: connect("/ws", {token}) offers "bearer.<token>"
	if tok == "" {
		tok = wspub.BearerToken(r) // other clients: Authorization: Bearer <token>
	}
	user, err := userOf(tok)
	if err != nil {
		// The hub logs the 401 with this error; never log the token itself.
		return wspub.Identity{}, err
	}
	return wspub.Identity{UserID: user}, nil
}

// authorize is the hub's Options.Authorize: this example has no channels, everything is
// sent to users or to everyone.
func (s *server) authorize(context.Context, *wspub.Conn, wspub.Action, string) error {
	return &wspub.Error{Code: wspub.CodeForbidden,
		Message: "this server has no channels: notifications and announcements come without subscribing"}
}

// notification is the data of a "notification" message.
type notification struct {
	From string `json:"from"`
	Text string `json:"text"`
	TS   int64  `json:"ts"` // Unix milliseconds
}

// announcement is the data of an "announcement" message.
type announcement struct {
	Text string `json:"text"`
	TS   int64  `json:"ts"` // Unix milliseconds
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

// notify handles POST /notify with {"user":"<name>","text":"..."}.
func (s *server) notify(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	from := systemSender
	if tok := wspub.BearerToken(r); tok != "" || r.Header.Get("Authorization") != "" {
		user, err := userOf(tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wspub-example"`)
			writeError(w, http.StatusUnauthorized, "unknown token: use Authorization: Bearer <user>, or no Authorization header")
			return
		}
		from = user
	}
	var req struct {
		User *string `json:"user"`
		Text *string `json:"text"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if req.User == nil {
		writeError(w, http.StatusBadRequest, `"user" is required`)
		return
	}
	text, ok := checkText(w, req.Text)
	if !ok {
		return
	}
	to := *req.User
	if _, err := userOf(to); err != nil {
		// 404, not 400: the body is well-formed, but it names no one.
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such user %q; the users are %s", to, strings.Join(users, ", ")))
		return
	}
	n := notification{From: from, Text: text, TS: time.Now().UnixMilli()}
	// Every connection of the user gets it: all their tabs and devices. A user with no
	// connection is not an error, and nothing is kept for them.
	err := s.hub.SendToUser(r.Context(), to, wspub.Message{Type: "notification", Data: n})
	if !s.sent(w, err) {
		return
	}
	s.log.Info("notified", "from", from, "to", to)
	writeJSON(w, http.StatusAccepted, map[string]any{"sent": map[string]any{"to": to, "notification": n}})
}

// broadcast handles POST /broadcast with {"text":"..."}.
func (s *server) broadcast(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	var req struct {
		Text *string `json:"text"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	text, ok := checkText(w, req.Text)
	if !ok {
		return
	}
	a := announcement{Text: text, TS: time.Now().UnixMilli()}
	err := s.hub.Broadcast(r.Context(), wspub.Message{Type: "announcement", Data: a})
	if !s.sent(w, err) {
		return
	}
	s.log.Info("announced")
	writeJSON(w, http.StatusAccepted, map[string]any{"sent": a})
}

// sent answers a failed SendToUser or Broadcast and reports whether err was nil.
func (s *server) sent(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, wspub.ErrHubClosed):
		writeError(w, http.StatusServiceUnavailable, "server shutting down")
	default:
		s.log.Error("send_failed", "error", err)
		writeError(w, http.StatusInternalServerError, "could not send")
	}
	return false
}

// checkText validates the "text" of a request, answering 400 if it is bad, and returns
// it trimmed.
func checkText(w http.ResponseWriter, text *string) (string, bool) {
	if text == nil {
		writeError(w, http.StatusBadRequest, `"text" is required`)
		return "", false
	}
	t := strings.TrimSpace(*text)
	switch {
	case t == "":
		writeError(w, http.StatusBadRequest, `"text" must not be empty`)
		return "", false
	case utf8.RuneCountInString(t) > maxTextRunes:
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`"text" must be at most %d characters`, maxTextRunes))
		return "", false
	}
	return t, true
}

// decodeBody decodes a JSON object body into v, which must hold every field: unknown
// fields, trailing data, the wrong content type and oversized bodies are refused. It
// answers the error itself and reports whether v was decoded.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, errNext := dec.Token(); !errors.Is(errNext, io.EOF) {
			err = errors.New("trailing data after the JSON object")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return true
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBodyBytes))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "a JSON body is required")
	default:
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
	}
	return false
}

// allowMethod answers 405 with a JSON error unless r uses one of methods.
func allowMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
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
