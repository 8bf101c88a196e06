// Command quotes is a wspub example: a simulated stock ticker. Prices of a few symbols
// follow random walks, a generator publishes every new price to the symbol's channel,
// and a page subscribes to the symbols the user ticks.
//
//	go run ./examples/quotes
//	go run ./examples/quotes -addr localhost:8080 -interval 100ms -symbols AAPL,MSFT,IBM
//
// then open http://localhost:8080/ and tick a few symbols.
//
// # Routes
//
//   - GET / serves the page (index.html, embedded in the binary).
//   - GET /wspub.js serves the browser client (wspub.ClientHandler).
//   - GET /quotes answers {"quotes":[...]}: the latest quote of every symbol, in the order
//     of -symbols. The page builds its list of symbols from it.
//   - /ws is the hub. A client subscribes to quote:<SYMBOL> and receives
//     {"type":"quote","channel":"quote:AAPL","data":{"symbol":"AAPL","price":191.23,
//     "change":1.23,"changePct":0.65,"ts":1732530000123}} about every -interval.
//     Subscribing to anything else is refused with an invalid_channel error.
//
// # The data
//
// price is in dollars, rounded to cents and always positive. change and changePct are
// the difference to the symbol's opening price (its price when the process started), in
// dollars and in percent, both rounded to 2 decimals. ts is the quote's time in Unix
// milliseconds; it is strictly increasing per symbol (when two quotes of a symbol fall
// in the same millisecond, the second is stamped 1 ms later), so a client can tell
// which of two quotes is newer.
//
// # Why DropOldest
//
// Only the latest price of a symbol matters: a quote superseded by a newer one is worth
// nothing. So the hub uses the DropOldest overflow policy: when a client reads slower
// than quotes arrive (a phone on a bad network, a background tab), its send queue drops
// its oldest quotes and the client keeps its connection, and with it the newest prices.
// The default policy, EvictSlowConsumer, would close it with 1013 instead, which suits
// feeds where a gap is worse than a reconnect (progress, chat, notifications), not this
// one. Drops are counted in Hub.Stats().Dropped and logged once per connection.
//
// With DropOldest the queue's size is how stale a slow client's prices can get, so this
// example bounds it to 64 KiB (about 500 quotes) instead of wspub's default 1 MiB.
// DropOldest does not keep a client that accepts no bytes at all: a write that stalls
// for Options.WriteTimeout (10 s) still evicts it as a slow consumer.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wspub/wspub"
)

//go:embed index.html
var indexHTML []byte

const (
	channelPrefix        = "quote:"
	defaultInterval      = 250 * time.Millisecond // 4 quotes per second per symbol
	defaultMaxQueueBytes = 64 << 10
)

// defaultSymbols and their opening prices.
var (
	defaultSymbols = []string{"AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA"}
	openingPrices  = map[string]float64{
		"AAPL": 190, "MSFT": 420, "GOOG": 170, "AMZN": 180, "NVDA": 120, "TSLA": 250,
	}
)

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	interval := flag.Duration("interval", defaultInterval, "time between two quotes of a symbol")
	symbols := flag.String("symbols", strings.Join(defaultSymbols, ","), "comma-separated symbols (1 to 10 letters A-Z each)")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := config{Logger: logger, Interval: *interval, Symbols: strings.Split(*symbols, ",")}
	if err := cfg.validate(); err != nil {
		logger.Error("bad flags", "error", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // after the first signal, a second one kills the process at once

	if err := run(ctx, *addr, cfg, nil); err != nil {
		logger.Error("exiting", "error", err)
		os.Exit(1)
	}
	logger.Info("stopped")
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
		app.stopGenerator()
		return errors.Join(err, app.hub.Close())
	}
	logger := app.log
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	url := "http://" + ln.Addr().String() + "/"
	logger.Info("listening", "url", url, "symbols", app.cfg.Symbols, "interval", app.cfg.Interval)
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
	// HTTP first, then the generator, then the hub, which sends every client what is still
	// queued and then close 1001 ("going away").
	errs := []error{srv.Shutdown(sctx)}
	app.stopGenerator()
	errs = append(errs, app.hub.Shutdown(sctx))
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
	Logger   *slog.Logger  // default: no logs
	Symbols  []string      // default: AAPL, MSFT, GOOG, AMZN, NVDA, TSLA
	Interval time.Duration // time between two quotes of a symbol; default 250ms
	Seed     uint64        // seed of the random walks; default: a random seed

	// MaxQueueBytes is the hub's Options.MaxQueueBytes: how much a slow client may have
	// queued before its oldest quotes are dropped. Default 64 KiB.
	MaxQueueBytes int
	// WriteTimeout is the hub's Options.WriteTimeout. Default: wspub's (10s).
	WriteTimeout time.Duration
}

// validate checks the symbols: 1 to 10 letters A-Z each, no duplicates.
func (cfg *config) validate() error {
	seen := make(map[string]bool, len(cfg.Symbols))
	for _, s := range cfg.Symbols {
		if !validSymbol(s) {
			return fmt.Errorf("symbol %q: must be 1 to 10 letters A-Z", s)
		}
		if seen[s] {
			return fmt.Errorf("symbol %q given twice", s)
		}
		seen[s] = true
	}
	return nil
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

// server is the example's HTTP handler: the page, the client script, the snapshot and the
// hub. It owns the hub and the generator; stop the generator (stopGenerator) before
// shutting the hub down.
type server struct {
	hub    *wspub.Hub
	cfg    config
	log    *slog.Logger
	mux    *http.ServeMux
	market *market

	tickMu sync.Mutex // one tick at a time: quotes reach the hub in ts order

	stopGenerator func() // stops the generator and waits for it; idempotent
}

// newServer returns the example's handler, with its hub and its running generator.
func newServer(cfg config) (*server, error) {
	if len(cfg.Symbols) == 0 {
		cfg.Symbols = defaultSymbols
	}
	cfg.Symbols = slices.Clone(cfg.Symbols)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = defaultInterval
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = defaultMaxQueueBytes
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	s := &server{
		cfg:    cfg,
		log:    cfg.Logger,
		mux:    http.NewServeMux(),
		market: newMarket(cfg.Symbols, cfg.Seed, time.Now()),
	}
	s.hub = wspub.New(&wspub.Options{
		Logger:    cfg.Logger,
		Authorize: s.authorize,
		// Only the latest quote matters: a client that falls behind loses its oldest
		// queued quotes and keeps its connection, rather than being evicted as a slow
		// consumer (close 1013) as the default policy would. See the package doc.
		Overflow:      wspub.DropOldest,
		MaxQueueBytes: cfg.MaxQueueBytes,
		WriteTimeout:  cfg.WriteTimeout,
	})
	s.mux.HandleFunc("/{$}", s.page)
	s.mux.Handle("/wspub.js", wspub.ClientHandler())
	s.mux.HandleFunc("/quotes", s.quotes)
	s.mux.Handle("/ws", s.hub)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go s.generate(ctx, done)
	var once sync.Once
	s.stopGenerator = func() { once.Do(cancel); <-done }
	return s, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// authorize is the hub's Options.Authorize, asked for every subscribe a client sends:
// only quote:<SYMBOL> of a known symbol exists. (Client publishes are refused by the hub
// itself: Options.AllowClientPublish is false.)
func (s *server) authorize(_ context.Context, _ *wspub.Conn, action wspub.Action, channel string) error {
	if action != wspub.ActionSubscribe {
		return &wspub.Error{Code: wspub.CodeForbidden, Message: "clients may not " + action.String()}
	}
	if sym, ok := strings.CutPrefix(channel, channelPrefix); ok && s.market.has(sym) {
		return nil
	}
	return &wspub.Error{Code: wspub.CodeInvalidChannel, Message: fmt.Sprintf(
		"no such channel %q: subscribe to %s<SYMBOL>, SYMBOL one of %s",
		channel, channelPrefix, strings.Join(s.cfg.Symbols, ", "))}
}

// generate publishes a quote of every symbol each Interval until ctx ends.
func (s *server) generate(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := s.tick(ctx, now); err != nil && ctx.Err() == nil && !errors.Is(err, wspub.ErrHubClosed) {
				s.log.Warn("quote_publish_failed", "error", err)
			}
		}
	}
}

// tick moves every symbol one step and publishes the new quotes, one "quote" message
// to each quote:<SYMBOL>. It returns the quotes, in symbol order.
func (s *server) tick(ctx context.Context, now time.Time) ([]quote, error) {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	quotes := s.market.step(now)
	var errs []error
	for _, q := range quotes {
		// Publish queues the quote for each subscriber and returns: a slow client never
		// delays the generator.
		err := s.hub.Publish(ctx, channelPrefix+q.Symbol, wspub.Message{Type: "quote", Data: q})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", q.Symbol, err))
		}
	}
	return quotes, errors.Join(errs...)
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

// quotes handles GET /quotes: the latest quote of every symbol.
func (s *server) quotes(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string][]quote{"quotes": s.market.snapshot()})
}

// quote is the data of a "quote" message, and an element of GET /quotes.
type quote struct {
	Symbol    string  `json:"symbol"`
	Price     float64 `json:"price"`     // dollars, rounded to cents, > 0
	Change    float64 `json:"change"`    // price - opening price, dollars
	ChangePct float64 `json:"changePct"` // change / opening price, percent
	TS        int64   `json:"ts"`        // Unix milliseconds, strictly increasing per symbol
}

// market holds the simulated prices. Its methods are safe for concurrent use.
type market struct {
	mu     sync.Mutex
	rng    *rand.Rand
	stocks []*stock // in the configured order
	bySym  map[string]*stock
}

type stock struct {
	symbol string
	open   float64 // opening price: change and changePct are relative to it
	price  float64 // unrounded
	ts     int64   // of the last quote
}

// Random-walk parameters, per step: the log-price moves by a normal variate of
// volatility stepVolatility, pulled back towards the opening price by meanReversion so
// that a demo left running for hours keeps plausible prices.
const (
	stepVolatility = 0.0015
	meanReversion  = 0.002
	minPrice       = 0.01
)

func newMarket(symbols []string, seed uint64, now time.Time) *market {
	m := &market{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), bySym: make(map[string]*stock)}
	for _, sym := range symbols {
		open, ok := openingPrices[sym]
		if !ok {
			open = 20 + m.rng.Float64()*480 // a symbol given with -symbols
		}
		open = roundCents(open)
		st := &stock{symbol: sym, open: open, price: open, ts: now.UnixMilli()}
		m.stocks = append(m.stocks, st)
		m.bySym[sym] = st
	}
	return m
}

func (m *market) has(sym string) bool {
	_, ok := m.bySym[sym] // never written after newMarket
	return ok
}

// step moves every price one step and returns the new quotes, in symbol order.
func (m *market) step(now time.Time) []quote {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := now.UnixMilli()
	quotes := make([]quote, 0, len(m.stocks))
	for _, st := range m.stocks {
		drift := -meanReversion * math.Log(st.price/st.open)
		st.price = max(minPrice, st.price*math.Exp(drift+stepVolatility*m.rng.NormFloat64()))
		st.ts = max(ms, st.ts+1)
		quotes = append(quotes, st.quote())
	}
	return quotes
}

// snapshot returns the latest quote of every symbol.
func (m *market) snapshot() []quote {
	m.mu.Lock()
	defer m.mu.Unlock()
	quotes := make([]quote, 0, len(m.stocks))
	for _, st := range m.stocks {
		quotes = append(quotes, st.quote())
	}
	return quotes
}

func (st *stock) quote() quote {
	price := max(minPrice, roundCents(st.price))
	change := roundCents(price - st.open)
	return quote{
		Symbol:    st.symbol,
		Price:     price,
		Change:    change,
		ChangePct: roundCents(change / st.open * 100),
		TS:        st.ts,
	}
}

// roundCents rounds x to 2 decimals.
func roundCents(x float64) float64 { return math.Round(x*100) / 100 }

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
