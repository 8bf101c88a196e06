// Command assistant is a wspub example: an "assistant" streams its answer to a prompt,
// chunk by chunk, over the page's WebSocket, then recommends follow-up actions.
//
//	go run ./examples/assistant -addr localhost:8080
//
// then open http://localhost:8080/, ask something, and try a prompt containing
// "timeout". There is no model: the answer is canned, built from the prompt.
//
// # Messages
//
// The page talks to the server with custom client messages, each handled by hub.Handle:
//
//	→ {"type":"ask","data":{"prompt":"..."},"id":"3"}
//	← {"type":"status","data":{"id":"a-…","state":"thinking"},"id":"3"}   (the reply: Conn.Reply)
//	← {"type":"status","data":{"id":"a-…","state":"writing"}}
//	← {"type":"stream.delta","data":{"id":"a-…","text":"Here is how "}}   (several)
//	← {"type":"stream.done","data":{"id":"a-…","text":"<the whole answer>"}}
//	← {"type":"recommendation","data":{"id":"a-…","actions":[{"id":"run_backtest","label":"Run backtest"},…]}}
//
//	→ {"type":"action_clicked","data":{"action":"run_backtest","answer":"a-…"},"id":"4"}
//	← {"type":"notice","data":{"action":"run_backtest","answer":"a-…","text":"…"},"id":"4"}   (the reply)
//
//	→ {"type":"ui_state_changed","data":{"panel":"sources","open":true},"id":"5"}
//	  (no reply; logged at Debug, run with -debug to see it)
//
// An answer that does not finish within -answer-timeout ends with
// {"type":"stream.error","data":{"id":"a-…","code":"timeout","message":"…"}}; a prompt
// containing "timeout" makes the fake model stall after a few chunks to show it. ("error"
// is the protocol's own type, for replies to one client message; a stream that fails
// later is the application's business, so it has a type of its own.) If the server shuts
// down mid-answer, the answer ends with stream.error code "shutting_down".
//
// Invalid messages get an error reply carrying the message's id: invalid_prompt (missing,
// empty or longer than 500 characters), busy (this connection is already being answered,
// or too many answers are streaming; a connection may ask again as soon as it has its
// answer's stream.done or stream.error, and the recommendation may come after that), invalid_action, unknown_answer (not an answer given
// on this connection), invalid_ui_state, and the hub's own unknown_type for types nobody
// handles.
//
// # Why Conn.Send and not a channel
//
// An answer goes to the connection that asked, with Conn.Send, rather than to a
// per-conversation channel such as "conversation:<id>":
//
//   - Nothing can be missed. A channel would have to be subscribed before the answer
//     starts (delivery is at most once and channels keep no history), so asking would
//     take a subscribe round trip first. With Conn.Send the answer follows the ask on
//     the same connection, in order.
//   - Nothing to authorize. Whoever knows a channel's name may subscribe to it unless
//     Authorize says otherwise; a connection's own messages reach nobody else.
//   - The work stops with the reader. The generating goroutine runs under the
//     connection's context: a closed tab stops the (in a real app, costly) generation at
//     once instead of streaming into a channel nobody reads.
//
// The price: an answer is lost if the connection drops mid-stream (the page marks it
// "interrupted" and the user asks again), and a second tab does not see it. An app that
// wants answers to survive reconnects or to appear in every tab would stream to a
// conversation channel, authorize it per user, and let the page subscribe (and wait for
// sub.ready) before asking.
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
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/wspub/wspub"
)

//go:embed index.html
var indexHTML []byte

// Message types of this example.
const (
	typeAsk            = "ask"
	typeActionClicked  = "action_clicked"
	typeUIStateChanged = "ui_state_changed"

	typeStatus         = "status"
	typeDelta          = "stream.delta"
	typeDone           = "stream.done"
	typeStreamError    = "stream.error"
	typeRecommendation = "recommendation"
	typeNotice         = "notice"
)

// Error codes of this example (beside the hub's own).
const (
	codeInvalidPrompt  = "invalid_prompt"
	codeBusy           = "busy"
	codeInvalidAction  = "invalid_action"
	codeUnknownAnswer  = "unknown_answer"
	codeInvalidUIState = "invalid_ui_state"
	codeTimeout        = "timeout"
	codeShuttingDown   = "shutting_down"
)

const (
	maxPromptRunes = 500
	stallTrigger   = "timeout" // a prompt containing it makes the fake model stall
	stallAfter     = 3         // chunks sent before the stall
	wordsPerChunk  = 3
	maxAnswers     = 32 // answers a connection remembers for action_clicked
)

// action is a recommended follow-up, shown as a button under an answer.
type action struct {
	ID    string `json:"id"`
	Label string `json:"label"`
}

var actions = []action{
	{ID: "run_backtest", Label: "Run backtest"},
	{ID: "show_chart", Label: "Show chart"},
	{ID: "explain_more", Label: "Explain more"},
}

// panelName is what ui_state_changed accepts as a panel.
var panelName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	think := flag.Duration("think", 700*time.Millisecond, "pause before the answer starts")
	chunk := flag.Duration("chunk", 90*time.Millisecond, "pause between two chunks of an answer")
	recommend := flag.Duration("recommend-delay", 250*time.Millisecond, "pause between the end of an answer and its recommended actions")
	timeout := flag.Duration("answer-timeout", 5*time.Second, "deadline of one whole answer, thinking and every chunk included")
	debug := flag.Bool("debug", false, "log at Debug level (per-message events, ui_state_changed)")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // after the first signal, a second one kills the process at once

	opts := serverOptions{Logger: logger, ThinkDelay: *think, ChunkDelay: *chunk, RecommendDelay: *recommend, AnswerTimeout: *timeout}
	if err := run(ctx, *addr, opts, nil); err != nil {
		logger.Error("exiting", "error", err)
		os.Exit(1)
	}
	logger.Info("stopped")
}

// run serves the example on addr until ctx is cancelled, then shuts down gracefully.
// ready, if not nil, is called with the page's URL once the listener is open.
func run(ctx context.Context, addr string, opts serverOptions, ready func(url string)) error {
	app, err := newServer(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(err, app.Close())
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
	// http.Server.Shutdown stops accepting requests and waits for the plain HTTP ones, but
	// it does not close hijacked connections, and every WebSocket is one: without
	// hub.Shutdown they would keep the process (and the hub's goroutines) alive. So stop
	// HTTP first, then app.Shutdown: it stops the streaming answers (each ends with a
	// stream.error "shutting_down") and then shuts the hub down, which sends every client
	// what is still queued and then close 1001 ("going away").
	errs := []error{srv.Shutdown(sctx), app.Shutdown(sctx)}
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
	Logger         *slog.Logger  // default: no logs
	ThinkDelay     time.Duration // pause between "thinking" and the first chunk; default 700ms
	ChunkDelay     time.Duration // pause between two chunks; default 90ms
	RecommendDelay time.Duration // pause between stream.done and the recommendation; default 250ms
	AnswerTimeout  time.Duration // deadline of one answer, from the ask; default 5s
	MaxStreams     int           // answers streaming at once, over all connections; default 100
}

// conversation is what the server remembers of one connection.
type conversation struct {
	streaming bool     // an answer is being streamed to it
	answers   []string // the IDs of its latest answers, oldest first
}

func (cv *conversation) remember(id string) {
	if len(cv.answers) == maxAnswers {
		cv.answers = append(cv.answers[:0], cv.answers[1:]...)
	}
	cv.answers = append(cv.answers, id)
}

func (cv *conversation) has(id string) bool {
	for _, a := range cv.answers {
		if a == id {
			return true
		}
	}
	return false
}

// server is the example's HTTP handler: the page, the browser client and the hub.
type server struct {
	hub  *wspub.Hub
	opts serverOptions
	log  *slog.Logger
	mux  *http.ServeMux

	ctx    context.Context // cancelled by Shutdown and Close; every answer runs under it
	cancel context.CancelFunc
	wg     sync.WaitGroup // streaming answers

	mu      sync.Mutex
	closed  bool
	streams int                      // answers streaming
	convs   map[string]*conversation // by connection ID; forgotten on disconnect
}

// newServer returns the example's handler and the hub it owns: GET / serves the page,
// GET /wspub.js the browser client and /ws the hub, whose handlers stream the answers.
// Stop it with Shutdown (or Close).
func newServer(opts serverOptions) (*server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ThinkDelay <= 0 {
		opts.ThinkDelay = 700 * time.Millisecond
	}
	if opts.ChunkDelay <= 0 {
		opts.ChunkDelay = 90 * time.Millisecond
	}
	if opts.RecommendDelay <= 0 {
		opts.RecommendDelay = 250 * time.Millisecond
	}
	if opts.AnswerTimeout <= 0 {
		opts.AnswerTimeout = 5 * time.Second
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 100
	}
	s := &server{opts: opts, log: opts.Logger, mux: http.NewServeMux(), convs: make(map[string]*conversation)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hub = wspub.New(&wspub.Options{
		Logger: opts.Logger,
		// The hub runs OnDisconnect after the connection's reader has stopped, so no
		// handler of this connection can run after it and bring the entry back.
		OnDisconnect: func(c *wspub.Conn, _ websocket.StatusCode, _ string) { s.forget(c.ID()) },
	})
	for typ, fn := range map[string]wspub.Handler{
		typeAsk:            s.ask,
		typeActionClicked:  s.actionClicked,
		typeUIStateChanged: s.uiStateChanged,
	} {
		if err := s.hub.Handle(typ, fn); err != nil {
			return nil, errors.Join(err, s.hub.Close())
		}
	}
	s.mux.HandleFunc("/{$}", s.page)
	s.mux.Handle("/wspub.js", wspub.ClientHandler())
	s.mux.Handle("/ws", s.hub)
	return s, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Shutdown refuses new questions, stops the streaming answers (each tells its client
// with a stream.error), waits for them, then shuts the hub down gracefully.
func (s *server) Shutdown(ctx context.Context) error {
	s.stopStreams()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done(): // an answer never blocks, so this is the hub's deadline too
	}
	return s.hub.Shutdown(ctx)
}

// Close stops the answers and the hub at once, and waits for both.
func (s *server) Close() error {
	s.stopStreams()
	err := s.hub.Close()
	s.wg.Wait()
	return err
}

func (s *server) stopStreams() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
}

// activeStreams returns how many answers are streaming.
func (s *server) activeStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

func (s *server) forget(connID string) {
	s.mu.Lock()
	delete(s.convs, connID)
	s.mu.Unlock()
}

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

// answer is one answer being streamed.
type answer struct {
	id     string
	prompt string
}

// ask handles {"type":"ask","data":{"prompt":"..."}}: it validates the prompt, tells the
// client the assistant is thinking and starts streaming the answer in a goroutine (a
// handler runs on the connection's reader and must not block it).
func (s *server) ask(ctx context.Context, c *wspub.Conn, m wspub.ClientMessage) error {
	var req struct {
		Prompt *string `json:"prompt"`
	}
	if err := decodeData(m.Data, &req); err != nil || req.Prompt == nil {
		return &wspub.Error{Code: codeInvalidPrompt, Message: `ask needs data {"prompt": "..."}`}
	}
	prompt := strings.TrimSpace(*req.Prompt)
	switch n := utf8.RuneCountInString(prompt); {
	case n == 0:
		return &wspub.Error{Code: codeInvalidPrompt, Message: "the prompt is empty"}
	case n > maxPromptRunes:
		return &wspub.Error{Code: codeInvalidPrompt,
			Message: fmt.Sprintf("the prompt has %d characters; the limit is %d", n, maxPromptRunes)}
	}

	a := answer{id: newAnswerID(), prompt: prompt}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return &wspub.Error{Code: codeShuttingDown, Message: "the server is shutting down"}
	}
	cv := s.convs[c.ID()]
	if cv == nil {
		cv = &conversation{}
		s.convs[c.ID()] = cv
	}
	switch {
	case cv.streaming:
		s.mu.Unlock()
		return &wspub.Error{Code: codeBusy, Message: "an answer is still streaming on this connection; wait for it to finish"}
	case s.streams >= s.opts.MaxStreams:
		s.mu.Unlock()
		return &wspub.Error{Code: codeBusy, Message: "too many answers are streaming; try again shortly"}
	}
	cv.streaming = true
	cv.remember(a.id)
	s.streams++
	s.wg.Add(1) // under mu, so stopStreams (which sets closed under mu) cannot miss it
	s.mu.Unlock()

	s.log.Info("answer_started", "conn_id", c.ID(), "answer_id", a.id, "prompt_chars", utf8.RuneCountInString(prompt))
	// "thinking" is the reply to the ask (the page's c.request resolves with it): it goes
	// out from the handler, before the reply to anything the client sends next.
	if err := c.Reply(ctx, m, wspub.Message{Type: typeStatus, Data: a.status("thinking")}); err != nil {
		s.endStream(cv)
		return nil // the connection is closing; nobody to tell
	}
	go s.stream(c, cv, a)
	return nil
}

func (a answer) status(state string) map[string]string {
	return map[string]string{"id": a.id, "state": state}
}

// stream generates answer a for connection c. It stops when the answer is complete, when
// the connection ends (c.Context()), when the server shuts down (s.ctx), or at the
// answer's deadline; the last two are reported to the client as a stream.error.
func (s *server) stream(c *wspub.Conn, cv *conversation, a answer) {
	defer s.endStream(cv)
	log := s.log.With("conn_id", c.ID(), "answer_id", a.id)
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.AnswerTimeout)
	defer cancel()
	stop := context.AfterFunc(c.Context(), cancel) // the client is gone: stop generating
	defer stop()

	err := s.generate(ctx, c, a, func() { s.release(cv) })
	var code, msg string
	switch {
	case err == nil:
		log.Info("answer_done")
		return
	case c.Context().Err() != nil:
		log.Info("answer_abandoned", "reason", "connection closed")
		return
	case s.ctx.Err() != nil:
		code, msg = codeShuttingDown, "the server is shutting down; ask again later"
	case errors.Is(err, context.DeadlineExceeded):
		code, msg = codeTimeout, fmt.Sprintf("the assistant did not finish within %s", s.opts.AnswerTimeout)
	default: // Send failed: the connection is closing or was evicted as a slow consumer
		log.Info("answer_abandoned", "reason", err.Error())
		return
	}
	log.Warn("answer_failed", "code", code)
	s.release(cv) // the client may ask again as soon as it has the stream.error
	// ctx is done: send the last word with a context of its own.
	_ = c.Send(context.Background(), wspub.Message{Type: typeStreamError,
		Data: map[string]string{"id": a.id, "code": code, "message": msg}})
}

func (s *server) endStream(cv *conversation) {
	s.mu.Lock()
	cv.streaming = false
	s.streams--
	s.mu.Unlock()
	s.wg.Done()
}

// release lets the connection ask again. It runs before the message that ends an
// answer (stream.done or stream.error) is queued: the page enables Ask when it gets
// that message, and a question sent then must not find the connection busy.
func (s *server) release(cv *conversation) {
	s.mu.Lock()
	cv.streaming = false
	s.mu.Unlock()
}

// generate is the fake model: a pause, then the canned answer in chunks, then the
// recommended actions. Conn.Send fails once ctx is done, so every step checks it. A
// prompt containing "timeout" stalls after a few chunks until ctx ends. release runs just
// before stream.done is queued.
func (s *server) generate(ctx context.Context, c *wspub.Conn, a answer, release func()) error {
	send := func(typ string, data any) error { return c.Send(ctx, wspub.Message{Type: typ, Data: data}) }
	if err := sleep(ctx, s.opts.ThinkDelay); err != nil {
		return err
	}
	if err := send(typeStatus, a.status("writing")); err != nil {
		return err
	}
	text := cannedAnswer(a.prompt)
	stall := strings.Contains(strings.ToLower(a.prompt), stallTrigger)
	for i, chunk := range chunks(text, wordsPerChunk) {
		if stall && i == stallAfter {
			<-ctx.Done() // a model that hangs; the deadline ends it
			return ctx.Err()
		}
		if i > 0 {
			if err := sleep(ctx, s.opts.ChunkDelay); err != nil {
				return err
			}
		}
		if err := send(typeDelta, map[string]string{"id": a.id, "text": chunk}); err != nil {
			return err
		}
	}
	release()
	if err := send(typeDone, map[string]string{"id": a.id, "text": text}); err != nil {
		return err
	}
	if err := sleep(ctx, s.opts.RecommendDelay); err != nil { // the model picks actions after answering
		return err
	}
	return send(typeRecommendation, map[string]any{"id": a.id, "actions": actions})
}

// cannedAnswer stands in for a model's answer to prompt.
func cannedAnswer(prompt string) string {
	topic := []rune(strings.Join(strings.Fields(prompt), " "))
	if len(topic) > 80 {
		topic = append(topic[:79], '…')
	}
	return fmt.Sprintf("Here is how I would look into “%s”. First, gather the price history "+
		"and the fundamentals it depends on. Then compute a few indicators and compare them "+
		"with the sector. Finally, backtest a simple strategy on it and chart the results, "+
		"so that you can judge the risk before acting. (This answer is canned: the example "+
		"has no model.)", string(topic))
}

// chunks splits text into pieces of n words, each with the spaces that follow it, so that
// the pieces put together are text exactly.
func chunks(text string, n int) []string {
	words := strings.SplitAfter(text, " ")
	var out []string
	for i := 0; i < len(words); i += n {
		out = append(out, strings.Join(words[i:min(i+n, len(words))], ""))
	}
	return out
}

// actionClicked handles {"type":"action_clicked","data":{"action":"...","answer":"..."}}
// and confirms it with a notice. The example runs nothing; a real app would start the
// backtest or render the chart here.
func (s *server) actionClicked(ctx context.Context, c *wspub.Conn, m wspub.ClientMessage) error {
	var req struct {
		Action *string `json:"action"`
		Answer *string `json:"answer"`
	}
	if err := decodeData(m.Data, &req); err != nil || req.Action == nil || req.Answer == nil {
		return &wspub.Error{Code: codeInvalidAction, Message: `action_clicked needs data {"action": "...", "answer": "..."}`}
	}
	var act *action
	for i := range actions {
		if actions[i].ID == *req.Action {
			act = &actions[i]
		}
	}
	if act == nil {
		return &wspub.Error{Code: codeInvalidAction, Message: "unknown action"}
	}
	s.mu.Lock()
	cv := s.convs[c.ID()]
	known := cv != nil && cv.has(*req.Answer)
	s.mu.Unlock()
	if !known {
		return &wspub.Error{Code: codeUnknownAnswer, Message: "no such answer on this connection (was it given before a reconnect?)"}
	}
	s.log.Info("action_clicked", "conn_id", c.ID(), "answer_id", *req.Answer, "action", act.ID)
	return c.Reply(ctx, m, wspub.Message{Type: typeNotice, Data: map[string]string{
		"action": act.ID, "answer": *req.Answer,
		"text": act.Label + ": queued (this example runs nothing).",
	}})
}

// uiStateChanged handles {"type":"ui_state_changed","data":{"panel":"...","open":bool}}.
// It is fire-and-forget UI telemetry: valid messages are logged at Debug and get no
// reply (one per click would be traffic the page has no use for); invalid ones get an
// invalid_ui_state error, so a broken page shows up in its own console.
func (s *server) uiStateChanged(ctx context.Context, c *wspub.Conn, m wspub.ClientMessage) error {
	var req struct {
		Panel *string `json:"panel"`
		Open  *bool   `json:"open"`
	}
	if err := decodeData(m.Data, &req); err != nil || req.Panel == nil || req.Open == nil || !panelName.MatchString(*req.Panel) {
		return &wspub.Error{Code: codeInvalidUIState, Message: `ui_state_changed needs data {"panel": "<name>", "open": true|false}`}
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "ui_state_changed",
		slog.String("conn_id", c.ID()), slog.String("panel", *req.Panel), slog.Bool("open", *req.Open))
	return nil
}

// decodeData decodes a client message's data into v, refusing unknown keys.
func decodeData(data json.RawMessage, v any) error {
	if data == nil {
		return errors.New("no data")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func newAnswerID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return "a-" + hex.EncodeToString(b[:])
}

// sleep waits for d, or returns ctx's error as soon as it ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
