// Command auth is a wspub example: JSON Web Tokens checked on the WebSocket handshake,
// per-channel authorization, a private channel per user, an admin-only channel, and
// connections that end when their token expires.
//
// It is a module of its own (its JWT library is not a dependency of wspub). Run it from
// the repository root, whose go.work knows it, or from its directory:
//
//	go run ./examples/auth
//	go run ./examples/auth -addr localhost:8080 -secret "$SECRET"
//	cd examples/auth && go run .
//
// then open http://localhost:8080/ in two windows, log in as "alice" in one and as
// "admin" in the other, notify each other and try "Subscribe to private:admin".
//
// # Routes
//
//   - GET / serves the page (index.html, embedded in the binary).
//   - POST /login with {"user":"alice"} answers {"token":"<JWT>","expires_at":"<RFC 3339>"}:
//     an HS256 token with sub=alice that expires after 15 minutes. This is a demo login:
//     there is no password, and anyone may call themselves "admin". Replace it with your
//     real sign-in (session, OIDC, ...) and keep the rest.
//   - /ws is the hub.
//   - POST /notify?user=bob, with the caller's token in "Authorization: Bearer <token>" and
//     an optional body {"text":"..."}, publishes a "notification" to bob's channel user:bob.
//     Any logged-in user may notify any user; delivery is at most once (bob gets it only if
//     he is connected).
//   - Every few seconds (-tick) a "tick" with the hub's gauges goes to private:admin.
//
// # Passing the token
//
// A browser cannot set headers on a WebSocket handshake, so the page offers its token as
// a subprotocol next to the real one:
//
//	new WebSocket(url, ["wspub.v1", "bearer." + token])
//
// The hub reads it with wspub.SubprotocolToken and echoes only "wspub.v1", so the token
// does not come back in the response. Clients that can set headers (Go, curl, mobile
// apps) may send "Authorization: Bearer <token>" instead (wspub.BearerToken). The token
// is never taken from the URL: URLs end up in access logs, proxy logs and browser history.
//
// A token that is missing, malformed, not HS256, badly signed, without "exp", expired, or
// from another issuer refuses the handshake with HTTP 401. (A browser does not show the
// status to the page: the socket just closes with 1006.)
//
// # Who may subscribe to what
//
// Authorize runs for every subscribe a client sends:
//
//	user:<own name>   allowed (the server also subscribes it on connect, in OnConnect)
//	public:*          allowed to everyone
//	private:admin     allowed to the user "admin" only
//	anything else     refused: {"type":"error","code":"forbidden","message":...,"id":...}
//
// Client publishes stay disabled (Options.AllowClientPublish is false): clients receive,
// the server publishes.
//
// # Expiry
//
// The token's "exp" becomes the connection's Identity.Expires: the hub closes the
// connection with 4001 (wspub.StatusIdentityExpired, reason "identity expired") at its
// first heartbeat after that time, so up to one ping interval (25s by default) late.
// 4001 means "get a new token and reconnect": the page gets one from /login for the same
// user and reconnects (a real page would use its refresh token); 1008 still means "stop",
// and the page asks the user to log in again. A connection cannot be given a fresh token: the
// client reconnects with a new one.
//
// # The signing key
//
// By default the process signs with a random 256-bit key made at startup (and logs that
// it does, not the key): tokens stop working when the process restarts, and two replicas
// would not accept each other's tokens. -secret sets a fixed key (at least 32 bytes).
// That flag is for trying things out: a command line is visible to every user of the
// machine (ps). In a real deployment load the key from your secret store or environment,
// rotate it, and never hard-code it or commit it.
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
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
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wspub/wspub"
)

//go:embed index.html
var indexHTML []byte

const (
	issuer         = "wspub-example-auth" // the "iss" of the tokens this server issues and accepts
	adminUser      = "admin"
	adminChannel   = "private:admin"
	userPrefix     = "user:"
	publicPrefix   = "public:"
	minSecretBytes = 32   // an HS256 key shorter than the hash output weakens it
	maxTokenBytes  = 4096 // longer tokens are refused unparsed
	maxTextRunes   = 200  // of a notification
)

// userName is what the demo login accepts, and what a token's subject must be.
var userName = regexp.MustCompile(`^[a-z]{1,16}$`)

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	secretFlag := flag.String("secret", "", "HS256 signing key, at least 32 bytes (default: a random key per process; see the package doc)")
	tick := flag.Duration("tick", 3*time.Second, "interval of the ticks published to "+adminChannel)
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	secret, random, err := signingKey(*secretFlag)
	if err != nil {
		logger.Error("bad -secret", "error", err)
		os.Exit(2)
	}
	if random {
		logger.Warn("signing tokens with a random per-process key: tokens stop working when the process restarts; use -secret (from a secret store, never hard-coded) for a fixed key")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // after the first signal, a second one kills the process at once

	if err := run(ctx, *addr, config{Logger: logger, Secret: secret, TickInterval: *tick}, nil); err != nil {
		logger.Error("exiting", "error", err)
		os.Exit(1)
	}
	logger.Info("stopped")
}

// signingKey returns the key given with -secret, or a new random one (random is then true).
func signingKey(flagValue string) (key []byte, random bool, err error) {
	if flagValue == "" {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand.Read never fails on supported platforms
		return key, true, nil
	}
	if len(flagValue) < minSecretBytes {
		return nil, false, fmt.Errorf("the key must be at least %d bytes, got %d", minSecretBytes, len(flagValue))
	}
	return []byte(flagValue), false, nil
}

// run serves the example on addr until ctx is cancelled, then shuts down gracefully.
// ready, if not nil, is called with the page's URL once the listener is open.
func run(ctx context.Context, addr string, cfg config, ready func(url string)) error {
	app, err := newServer(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		app.stopTicker()
		return errors.Join(err, app.hub.Close())
	}
	logger := app.log
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
	// http.Server.Shutdown stops accepting requests and waits for the plain HTTP ones
	// (/login, /notify), but it does not close hijacked connections, and every WebSocket
	// is one: without hub.Shutdown they would keep the process (and the hub's goroutines)
	// alive. So stop HTTP first, then the ticker, then the hub, which sends every client
	// what is still queued and then close 1001 ("going away").
	errs := []error{srv.Shutdown(sctx)}
	app.stopTicker()
	errs = append(errs, app.hub.Shutdown(sctx))
	if errServe == nil {
		errServe = <-serveErr // Serve always returns an error; after Shutdown, ErrServerClosed
	}
	if !errors.Is(errServe, http.ErrServerClosed) {
		errs = append(errs, errServe)
	}
	return errors.Join(errs...)
}

// config configures newServer. Zero fields mean defaults, except Secret.
type config struct {
	Logger       *slog.Logger  // default: no logs
	Secret       []byte        // HS256 key, at least 32 bytes; required
	TokenTTL     time.Duration // lifetime of the tokens /login issues; default 15m
	TickInterval time.Duration // interval of the ticks to private:admin; default 3s
	PingInterval time.Duration // the hub's heartbeat, which also enforces expiry; default wspub's (25s)
}

// server is the example's HTTP handler: the page, the login, the hub and /notify. It
// owns the hub; stop the ticker (stopTicker) before shutting the hub down.
type server struct {
	hub    *wspub.Hub
	cfg    config
	log    *slog.Logger
	mux    *http.ServeMux
	parser *jwt.Parser

	stopTicker func() // stops the admin ticker and waits for it; idempotent
}

// newServer returns the example's handler, with its hub and its running ticker.
func newServer(cfg config) (*server, error) {
	if len(cfg.Secret) < minSecretBytes {
		return nil, fmt.Errorf("the signing key must be at least %d bytes", minSecretBytes)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 15 * time.Minute
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 3 * time.Second
	}
	s := &server{
		cfg: cfg,
		log: cfg.Logger,
		mux: http.NewServeMux(),
		// Only HS256 is accepted: naming the method stops "alg":"none" tokens and
		// algorithm-confusion tricks. A token without "exp" is refused.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(issuer),
			jwt.WithIssuedAt(),
		),
	}
	s.hub = wspub.New(&wspub.Options{
		Logger:       cfg.Logger,
		Authenticate: s.authenticate,
		Authorize:    s.authorize,
		OnConnect:    s.onConnect,
		PingInterval: cfg.PingInterval,
	})
	s.mux.HandleFunc("/{$}", s.page)
	s.mux.HandleFunc("/login", s.login)
	s.mux.HandleFunc("/notify", s.notify)
	s.mux.Handle("/ws", s.hub)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go s.tick(ctx, done)
	s.stopTicker = func() { cancel(); <-done }
	return s, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// issue returns a signed token for user and its expiry.
func (s *server) issue(user string) (string, time.Time, error) {
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.TokenTTL)), // whole seconds: up to 1s sooner
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.cfg.Secret)
	return tok, claims.ExpiresAt.Time, err
}

var errNoToken = errors.New("no token")

// verify checks a token and returns its claims. The errors say why a token was refused,
// for the server's log; they never contain the token.
func (s *server) verify(tok string) (*jwt.RegisteredClaims, error) {
	switch {
	case tok == "":
		return nil, errNoToken
	case len(tok) > maxTokenBytes:
		return nil, errors.New("token too long")
	}
	claims := &jwt.RegisteredClaims{}
	_, err := s.parser.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) {
		return s.cfg.Secret, nil // the parser has already checked that the method is HS256
	})
	if err != nil {
		return nil, err
	}
	if !userName.MatchString(claims.Subject) {
		return nil, errors.New("token subject is not a valid user name")
	}
	return claims, nil
}

// authenticate is the hub's Options.Authenticate: it runs before the upgrade, and an
// error refuses the handshake with 401.
func (s *server) authenticate(r *http.Request) (wspub.Identity, error) {
	tok := wspub.SubprotocolToken(r) // browsers: new WebSocket(url, ["wspub.v1", "bearer." + token])
	if tok == "" {
		tok = wspub.BearerToken(r) // other clients: Authorization: Bearer <token>
	}
	claims, err := s.verify(tok)
	if err != nil {
		// The hub logs the 401 without a reason; say why here.
		s.log.Info("auth_failed", "remote_addr", r.RemoteAddr, "error", err.Error())
		return wspub.Identity{}, err
	}
	// Expires makes the hub close the connection with 4001 once the token has expired.
	return wspub.Identity{UserID: claims.Subject, Expires: claims.ExpiresAt.Time}, nil
}

// onConnect is the hub's Options.OnConnect: every connection is put on its user's
// channel. Hub.Subscribe does not ask Authorize; the client is told with a
// {"type":"subscribed","channel":"user:<name>"} without an id.
func (s *server) onConnect(_ context.Context, c *wspub.Conn) error {
	return s.hub.Subscribe(c.ID(), userPrefix+c.UserID())
}

// authorize is the hub's Options.Authorize, asked for every subscribe a client sends.
func (s *server) authorize(_ context.Context, c *wspub.Conn, action wspub.Action, channel string) error {
	if action != wspub.ActionSubscribe {
		// Not reached while Options.AllowClientPublish is false (the hub refuses client
		// publishes itself), but an authorizer must refuse what it does not know.
		return &wspub.Error{Code: wspub.CodeForbidden, Message: "clients may not " + action.String()}
	}
	switch {
	case channel == userPrefix+c.UserID():
		return nil
	case strings.HasPrefix(channel, publicPrefix):
		return nil
	case channel == adminChannel && c.UserID() == adminUser:
		return nil
	case channel == adminChannel:
		return &wspub.Error{Code: wspub.CodeForbidden, Message: adminChannel + " is for the admin user only"}
	}
	return &wspub.Error{Code: wspub.CodeForbidden,
		Message: "you may subscribe to " + userPrefix + c.UserID() + " and public:* channels only"}
}

// tick publishes the hub's gauges to private:admin every TickInterval until ctx ends.
func (s *server) tick(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st := s.hub.Stats()
			err := s.hub.Publish(ctx, adminChannel, wspub.Message{Type: "tick", Data: tickData{
				N: n, Time: now.UTC().Format(time.RFC3339), Connections: st.Connections, Users: st.Users,
			}})
			if err != nil && ctx.Err() == nil && !errors.Is(err, wspub.ErrHubClosed) {
				s.log.Warn("tick_publish_failed", "error", err)
			}
		}
	}
}

// tickData is the data of a "tick" message on private:admin.
type tickData struct {
	N           int    `json:"n"`
	Time        string `json:"time"`
	Connections int    `json:"connections"`
	Users       int    `json:"users"`
}

// notification is the data of a "notification" message on user:<name>.
type notification struct {
	From string `json:"from"`
	Text string `json:"text"`
	Time string `json:"time"`
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

// login handles POST /login with {"user":"<name>"}: the demo sign-in.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	var req struct {
		User string `json:"user"`
	}
	if err := decodeBody(w, r, &req, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !userName.MatchString(req.User) {
		writeError(w, http.StatusBadRequest, `"user" must be 1 to 16 letters a-z`)
		return
	}
	tok, exp, err := s.issue(req.User)
	if err != nil {
		s.log.Error("sign_failed", "error", err)
		writeError(w, http.StatusInternalServerError, "could not issue a token")
		return
	}
	s.log.Info("login", "user", req.User, "expires_at", exp)
	w.Header().Set("Cache-Control", "no-store") // the response carries a credential
	writeJSON(w, http.StatusOK, map[string]string{"token": tok, "expires_at": exp.UTC().Format(time.RFC3339)})
}

// notify handles POST /notify?user=<name> with an optional {"text":"..."}: it publishes
// a notification from the caller (Authorization: Bearer <token>) to user:<name>.
func (s *server) notify(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	from, err := s.verify(wspub.BearerToken(r))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wspub-example"`)
		writeError(w, http.StatusUnauthorized, "a valid token is required: Authorization: Bearer <token>")
		return
	}
	to := r.URL.Query().Get("user")
	if !userName.MatchString(to) {
		writeError(w, http.StatusBadRequest, `query parameter "user" must be 1 to 16 letters a-z`)
		return
	}
	var req struct {
		Text string `json:"text"`
	}
	if err := decodeBody(w, r, &req, true); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	text := strings.TrimSpace(req.Text)
	if text == "" {
		text = "hello from " + from.Subject
	}
	if utf8.RuneCountInString(text) > maxTextRunes {
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`"text" must be at most %d characters`, maxTextRunes))
		return
	}
	channel := userPrefix + to
	err = s.hub.Publish(r.Context(), channel, wspub.Message{Type: "notification", Data: notification{
		From: from.Subject, Text: text, Time: time.Now().UTC().Format(time.RFC3339),
	}})
	switch {
	case errors.Is(err, wspub.ErrHubClosed):
		writeError(w, http.StatusServiceUnavailable, "server shutting down")
		return
	case err != nil:
		s.log.Error("notify_failed", "channel", channel, "error", err)
		writeError(w, http.StatusInternalServerError, "could not publish")
		return
	}
	s.log.Info("notified", "from", from.Subject, "channel", channel)
	// 202: queued for whoever is subscribed now; nothing is stored for offline users.
	writeJSON(w, http.StatusAccepted, map[string]string{"channel": channel})
}

// decodeBody decodes a small JSON object body into v. An empty body is an error unless
// optional.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && optional {
			return nil
		}
		return errors.New("invalid JSON body")
	}
	if dec.More() {
		return errors.New("invalid JSON body: trailing data")
	}
	return nil
}

// allowMethod answers 405 with a JSON error unless r uses one of methods.
func allowMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
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
