package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wspub/wspub/internal/benchctl"
)

// soakConfig configures a soak.
type soakConfig struct {
	URL         string
	Header      http.Header
	Duration    time.Duration
	Conns       int     // the steady population
	Churn       float64 // departures per second, each followed by a join
	Ways        []way   // the ways to leave, mixed in turn
	Channels    int
	Channel     string  // channels are <Channel>:0 .. <Channel>:<Channels-1>
	Publish     float64 // messages per second over all channels
	PublishURL  string  // the bench server's POST /publish; "": someone else publishes
	Size        int
	StatsURL    string
	Interval    time.Duration
	Warmup      time.Duration
	ServerWait  time.Duration // how long the server has to end a stalled or silent client
	CloseWait   time.Duration // how long the server has to answer a close frame or a FIN
	Ramp        float64       // joins per second of the first population
	StallBuffer int           // SO_RCVBUF of clients that will stall
	CSV, SVG    string
	HeapLimit   growthLimit
	GoroLimit   growthLimit

	Progress io.Writer
}

// headerFlags collects repeated -header "Name: value" flags.
type headerFlags struct{ h http.Header }

func (f *headerFlags) String() string { return "" }

func (f *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf(`want "Name: value", not %q`, v)
	}
	f.h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

func soakMain(args []string, stdout, stderr io.Writer) (failed bool, err error) {
	cfg, err := parseSoakFlags(args, stderr)
	if err != nil {
		return false, err
	}
	cfg.Progress = stderr
	return measure(stdout, stderr, func(ctx context.Context) (*soakResult, error) { return soakBench(ctx, cfg) },
		func(res *soakResult) { printSoakSummary(stderr, res) })
}

func parseSoakFlags(args []string, stderr io.Writer) (soakConfig, error) {
	cfg := soakConfig{Header: http.Header{}}
	var ramp, ways, heapLimit, goroLimit string
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8090/ws", "the hub's WebSocket `URL` (ws:// or wss://)")
	fs.Var(&headerFlags{cfg.Header}, "header", `a header for every upgrade request, "Name: value" (repeatable), e.g. an Authorization`)
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long the soak runs")
	fs.IntVar(&cfg.Conns, "conns", 1000, "the steady population of subscribed clients")
	fs.Float64Var(&cfg.Churn, "churn", 20, "clients that leave per second, each replaced by a new one at once (so as many joins)")
	fs.StringVar(&ways, "ways", "all", "the ways to leave, mixed in turn: close,fin,rst,stall,nopong or all")
	fs.IntVar(&cfg.Channels, "channels", 10, `channels "<channel>:<i>"; each client subscribes to one at random`)
	fs.StringVar(&cfg.Channel, "channel", "soak", "the channels' prefix")
	fs.Float64Var(&cfg.Publish, "publish", 200, "messages per second published over all channels, through -publish-url")
	fs.StringVar(&cfg.PublishURL, "publish-url", "", `the bench server's POST /publish (default: /publish of the -url host; "" when you publish yourself)`)
	fs.IntVar(&cfg.Size, "size", 128, "approximate size of a message envelope, in bytes")
	fs.StringVar(&cfg.StatsURL, "stats", "", "`URL` of the server's figures, asked with ?gc=1 (default: /stats of the -url host)")
	fs.DurationVar(&cfg.Interval, "interval", 10*time.Second, "how often the server's figures are sampled")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "samples before this are not judged (default: half of -duration)")
	fs.DurationVar(&cfg.ServerWait, "server-wait", 45*time.Second, "how long the server has to end a client that stopped reading or answering pings (it needs PingInterval+PongTimeout)")
	fs.DurationVar(&cfg.CloseWait, "close-wait", 5*time.Second, "how long the server has to answer a close frame or a FIN")
	fs.StringVar(&ramp, "ramp", "1000/s", `how fast the first population connects, e.g. "1000/s"; "0": all at once`)
	fs.IntVar(&cfg.StallBuffer, "stall-rcvbuf", 8<<10, "receive buffer (SO_RCVBUF) of a client that will stop reading, so that the server's writes stall within seconds")
	fs.StringVar(&cfg.CSV, "csv", "soak.csv", `where the samples go as CSV; "" for nowhere`)
	fs.StringVar(&cfg.SVG, "svg", "soak.svg", `where the chart goes as SVG; "" for nowhere`)
	fs.StringVar(&heapLimit, "max-heap-growth", "1MiB", "the heap after GC may grow this much per 10 minutes after the warm-up: an amount (KiB, MiB, GiB) or a percentage of its level (2%)")
	fs.StringVar(&goroLimit, "max-goroutine-growth", "10", "the goroutines may grow this much per 10 minutes after the warm-up: a number or a percentage")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wspub-bench soak [flags]

For -duration, keeps -conns raw-socket clients connected, each subscribed to one of
-channels channels, while -publish messages per second are published. Every second
-churn of them, picked at random, leave, and as many join. Each client leaves in the way
it was given at its join, the ways of -ways taken in turn:

  close   close handshake: close 1000, then the server's close frame (within -close-wait)
  fin     TCP FIN without a close frame, then the server's end of the connection
  rst     TCP RST (SO_LINGER 0)
  stall   stops reading: the server must evict it (full queue, write timeout) or reap it;
          it reads again after -server-wait to learn whether it did
  nopong  keeps reading but stops answering pings: the heartbeat must reap it (within
          -server-wait)

Clients are raw sockets: the upgrade is done by hand, client frames are masked, pings
are answered until a client stops. Every -interval the server's figures are read from
-stats with ?gc=1 (so the heap is the live heap after a collection) and written to -csv;
-svg draws heap, goroutines and connections over time.

The verdict: least-squares lines through the heap (after GC) and the goroutines of the
samples after -warmup. A series rises when its line climbs more than its limit per 10
minutes (-max-heap-growth, -max-goroutine-growth) and its slope is more than 3 standard
errors above zero, so that noise alone does not fail a soak. Exit status 1 when memory
or goroutines rise (or when the soak ended before 3 samples after the warm-up), 2 when
it could not run.

-stats must answer GET with a JSON object holding at least
  heap_alloc   live heap bytes (runtime.MemStats.HeapAlloc), after runtime.GC() when
               the query has gc=1; "gc": true says a collection ran
  goroutines   runtime.NumGoroutine()
  hub          the hub's Stats as encoding/json writes them, of which Connections and
               Delivered are needed; Accepted, Disconnects, SlowEvictions, Reaped and
               Dropped are reported when present
and may hold heap_inuse and stack_inuse (bytes). The bench server's /stats does. Your
deployment can expose the same with:

  mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
      gc := r.URL.Query().Get("gc") == "1"
      if gc {
          runtime.GC()
      }
      var ms runtime.MemStats
      runtime.ReadMemStats(&ms)
      json.NewEncoder(w).Encode(map[string]any{"hub": hub.Stats(), "gc": gc,
          "heap_alloc": ms.HeapAlloc, "heap_inuse": ms.HeapInuse,
          "stack_inuse": ms.StackInuse, "goroutines": runtime.NumGoroutine()})
  })

Each sample makes the server run a full collection: on a large heap keep -interval at
10s or more. -header applies to the upgrade requests only.

Messages are published through the bench server's POST /publish, one request of about a
second's messages per channel at a time, numbered on (start=), so that clients count
gaps. With -publish-url "", publish messages like {"seq":N,"ts":<unix nanos>} on the
channels yourself. A gap seen by a client that was not leaving counts as lost.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	if cfg.Ramp, err = parseRamp(ramp); err != nil {
		return cfg, err
	}
	if cfg.Ways, err = parseWays(ways); err != nil {
		return cfg, err
	}
	if cfg.HeapLimit, err = parseGrowthLimit(heapLimit, true); err != nil {
		return cfg, fmt.Errorf("-max-heap-growth: %w", err)
	}
	if cfg.GoroLimit, err = parseGrowthLimit(goroLimit, false); err != nil {
		return cfg, fmt.Errorf("-max-goroutine-growth: %w", err)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return cfg, fmt.Errorf("-url must be a ws:// or wss:// URL, not %q", cfg.URL)
	}
	if !set["stats"] {
		cfg.StatsURL = deriveURL(u, "/stats")
	}
	if !set["publish-url"] {
		cfg.PublishURL = deriveURL(u, "/publish")
	}
	if !set["warmup"] {
		cfg.Warmup = cfg.Duration / 2
	}
	return cfg, cfg.validate()
}

// minWindowSamples is how many samples after the warm-up a soak must be planned for.
const minWindowSamples = 4

func (cfg *soakConfig) validate() error {
	switch {
	case cfg.Duration <= 0 || cfg.Interval <= 0:
		return errors.New("-duration and -interval must be positive")
	case cfg.Warmup < 0 || cfg.Warmup >= cfg.Duration:
		return errors.New("-warmup must be in [0, -duration)")
	case (cfg.Duration-cfg.Warmup)/cfg.Interval < minWindowSamples:
		return fmt.Errorf("-duration %v, -warmup %v and -interval %v leave fewer than %d samples to judge the trend by",
			cfg.Duration, cfg.Warmup, cfg.Interval, minWindowSamples)
	case cfg.Conns < 1:
		return errors.New("-conns must be at least 1")
	case cfg.Churn < 0 || math.IsInf(cfg.Churn, 0) || math.IsNaN(cfg.Churn):
		return errors.New("-churn must not be negative")
	case cfg.Channels < 1 || cfg.Channels > 1000:
		return errors.New("-channels must be in 1..1000")
	case cfg.Channel == "":
		return errors.New("-channel must not be empty")
	case cfg.Publish < 0 || math.IsInf(cfg.Publish, 0) || math.IsNaN(cfg.Publish):
		return errors.New("-publish must not be negative")
	case cfg.Size < 0 || cfg.Size > benchctl.MaxSize:
		return fmt.Errorf("-size must be in 0..%d", benchctl.MaxSize)
	case cfg.StatsURL == "":
		return errors.New("-stats must not be empty: the soak judges the server's figures")
	case cfg.ServerWait <= 0 || cfg.CloseWait <= 0:
		return errors.New("-server-wait and -close-wait must be positive")
	case cfg.StallBuffer < 0:
		return errors.New("-stall-rcvbuf must not be negative")
	}
	for _, u := range []string{cfg.StatsURL, cfg.PublishURL} {
		if pu, err := url.Parse(u); u != "" && (err != nil || (pu.Scheme != "http" && pu.Scheme != "https")) {
			return fmt.Errorf("-stats and -publish-url must be http:// or https:// URLs, not %q", u)
		}
	}
	return nil
}

// soaker runs one soak. Its counters are shared with the clients' goroutines.
type soaker struct {
	cfg     soakConfig
	http    *http.Client
	start   time.Time
	stopped chan struct{} // closed when the soak is over: no more joins, departures end
	cancel  context.CancelFunc

	mu       sync.Mutex
	live     []*soakClient            // subscribed, not picked: the churn's choice
	conns    map[*soakClient]struct{} // every client whose reader runs
	unexCode map[int]int64            // close codes of unexpected ends
	lastErr  map[string]string        // the last error of each kind, for the summary
	wg       sync.WaitGroup           // client readers
	ways     [numWays]wayStats
	joinSeq  atomic.Int64

	joins, dialErrors, received, lost, outOfOrder atomic.Int64
	unexpectedEnds, published, publishErrors      atomic.Int64
	churnMissed                                   atomic.Int64

	failOnce sync.Once
	failErr  error
	failed   chan struct{}
}

func (s *soaker) fatal(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		close(s.failed)
		s.cancel()
	})
}

func (s *soaker) progressf(format string, args ...any) {
	if s.cfg.Progress != nil {
		fmt.Fprintf(s.cfg.Progress, format, args...)
	}
}

func (s *soaker) noteErr(kind string, err error) {
	s.mu.Lock()
	s.lastErr[kind] = err.Error()
	s.mu.Unlock()
}

func (s *soaker) track(c *soakClient) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *soaker) untrack(c *soakClient) {
	s.mu.Lock()
	delete(s.conns, c)
	s.removeLiveLocked(c)
	s.mu.Unlock()
}

func (s *soaker) addLive(c *soakClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.mu.Lock()
	live := c.state == stateLive
	c.mu.Unlock()
	if !live { // it has ended already (finish runs before untrack)
		return
	}
	c.slot = len(s.live)
	s.live = append(s.live, c)
}

func (s *soaker) removeLiveLocked(c *soakClient) {
	i := c.slot
	if i < 0 || i >= len(s.live) || s.live[i] != c {
		return
	}
	last := s.live[len(s.live)-1]
	s.live[i], last.slot = last, i
	s.live = s.live[:len(s.live)-1]
	c.slot = -1
}

// pick chooses a live client at random to leave.
func (s *soaker) pick() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.live) == 0 {
		return false
	}
	c := s.live[rand.IntN(len(s.live))]
	s.removeLiveLocked(c)
	close(c.picked)
	return true
}

func (s *soaker) unexpected(code int) {
	s.unexpectedEnds.Add(1)
	s.mu.Lock()
	s.unexCode[code]++
	s.mu.Unlock()
}

// leaving is the number of departures under way.
func (s *soaker) leaving() int64 {
	var n int64
	for i := range s.ways {
		w := &s.ways[i]
		n += w.started.Load() - w.ok.Load() - w.late.Load() - w.cut.Load() - w.other.Load()
	}
	return n
}

func (s *soaker) departures() int64 {
	var n int64
	for i := range s.ways {
		n += s.ways[i].started.Load()
	}
	return n
}

// soakBench runs a soak as cfg says. It returns an error when the soak could not be run;
// a rising trend is in the result.
func soakBench(parent context.Context, cfg soakConfig) (*soakResult, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: cfg.Channels + 2,
		IdleConnTimeout:     time.Minute,
	}
	defer tr.CloseIdleConnections()
	s := &soaker{
		cfg: cfg, http: &http.Client{Transport: tr}, stopped: make(chan struct{}), cancel: cancel,
		conns: map[*soakClient]struct{}{}, unexCode: map[int]int64{}, lastErr: map[string]string{},
		failed: make(chan struct{}),
	}
	s.start = time.Now()
	base, err := s.sample(ctx, phaseBase)
	if err != nil {
		return nil, fmt.Errorf("the server's figures: %w", err)
	}
	samples := []sample{base}
	s.progressf("wspub-bench: soak of %v: %d clients, churn %g/s, %d channels, %g messages/s; server: heap %s, %d goroutines, %d connections\n",
		cfg.Duration, cfg.Conns, cfg.Churn, cfg.Channels, cfg.Publish, fmtBytes(float64(base.HeapAlloc)), base.Goroutines, base.Connections)

	var pubs, slots sync.WaitGroup
	if cfg.PublishURL != "" && cfg.Publish > 0 {
		for i := range cfg.Channels {
			pubs.Add(1)
			go func() {
				defer pubs.Done()
				s.publisher(ctx, s.channel(i))
			}()
		}
	}
	rampEnd := s.start
	for i := range cfg.Conns {
		at := s.start
		if cfg.Ramp > 0 {
			at = s.start.Add(time.Duration(float64(i) / cfg.Ramp * float64(time.Second)))
		}
		rampEnd = at
		slots.Add(1)
		go func() {
			defer slots.Done()
			s.slot(ctx, at)
		}()
	}
	slots.Add(1)
	go func() {
		defer slots.Done()
		s.churn(ctx, rampEnd)
	}()

	end := s.start.Add(cfg.Duration)
	tick := time.NewTicker(cfg.Interval)
sampling:
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			break sampling
		}
		phase := phaseWarmup
		if time.Since(s.start) >= cfg.Warmup {
			phase = phaseMeasure
		}
		sm, err := s.sample(ctx, phase)
		switch {
		case err != nil && ctx.Err() == nil:
			s.noteErr("stats", err)
			s.progressf("wspub-bench: no sample: %v\n", err)
		case err == nil:
			samples = append(samples, sm)
			s.progressf("[%5.0fs] server: heap %s, %d goroutines, %d connections, %d delivered; clients: %d live, %d leaving, %d joins, %d received\n",
				sm.T, fmtBytes(float64(sm.HeapAlloc)), sm.Goroutines, sm.Connections, sm.Delivered, sm.Live, sm.Leaving, sm.Joins, sm.Received)
		}
		if time.Until(end) < cfg.Interval/2 {
			break sampling
		}
	}
	tick.Stop()
	interrupted := parent.Err() != nil

	// The end: no more joins and departures; live clients close cleanly, departures
	// under way are cut short; then the publishers stop.
	close(s.stopped)
	s.endClients()
	cancel()
	slots.Wait()
	s.endClients() // those that joined meanwhile
	s.waitClients(cfg.CloseWait + stallDrain + 5*time.Second)
	pubs.Wait()
	if isClosed(s.failed) {
		return nil, s.failErr
	}

	// The server once every client has left, as near its state before as it gets: the
	// publishers' idle keep-alive connections go too (each holds a server goroutine).
	tr.CloseIdleConnections()
	after, err := s.settle(context.WithoutCancel(parent), base, !interrupted)
	if err != nil {
		s.noteErr("stats", err)
	}
	haveAfter := err == nil
	res := s.result(samples, after, haveAfter, interrupted)
	if cfg.CSV != "" {
		if err := writeFileWith(cfg.CSV, func(w io.Writer) error { return writeSamplesCSV(w, samples, after, haveAfter) }); err != nil {
			return nil, err
		}
		res.CSV = cfg.CSV
	}
	if cfg.SVG != "" {
		if err := writeFileWith(cfg.SVG, func(w io.Writer) error { return writeSVG(w, soakChart(cfg, res, samples)) }); err != nil {
			return nil, err
		}
		res.SVG = cfg.SVG
	}
	return res, nil
}

// endClients closes the live clients with a close handshake and cuts the departures
// under way short.
func (s *soaker) endClients() {
	s.mu.Lock()
	cs := make([]*soakClient, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.closeQuietly()
		c.cutShort()
	}
}

// waitClients waits for every client's reader to exit. Their reads are bounded by
// deadlines; should one still be running after d, every socket left is reset.
func (s *soaker) waitClients(d time.Duration) {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		_ = c.rc.reset()
	}
	s.mu.Unlock()
	s.progressf("wspub-bench: %d clients had not ended %v after the soak; reset\n", n, d)
	<-done
}

// channel is the name of channel i.
func (s *soaker) channel(i int) string { return s.cfg.Channel + ":" + strconv.Itoa(i) }

// slot keeps one client of the population: it joins, waits until the churn picks the
// client (or the server ends it), starts its departure and joins again, until the soak
// ends.
func (s *soaker) slot(ctx context.Context, at time.Time) {
	sleep(ctx, time.Until(at))
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		w := s.cfg.Ways[int((s.joinSeq.Add(1)-1)%int64(len(s.cfg.Ways)))]
		c, err := s.join(ctx, w, s.channel(rand.IntN(s.cfg.Channels)))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.dialErrors.Add(1)
			s.noteErr("dial", err)
			var he *handshakeError
			if errors.As(err, &he) && he.Status != http.StatusTooManyRequests && he.Status != http.StatusServiceUnavailable {
				s.fatal(fmt.Errorf("dial %s: %w", s.cfg.URL, err))
				return
			}
			sleep(ctx, backoff/2+rand.N(backoff))
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		s.joins.Add(1)
		s.addLive(c)
		select {
		case <-c.picked:
			if isClosed(s.stopped) {
				return
			}
			c.leave()
		case <-c.done: // the server ended it while it was live
		case <-ctx.Done():
			return
		}
	}
}

// churn picks a live client to leave -churn times a second, once the first population
// has connected.
func (s *soaker) churn(ctx context.Context, from time.Time) {
	if s.cfg.Churn <= 0 {
		return
	}
	sleep(ctx, time.Until(from))
	interval := time.Duration(float64(time.Second) / s.cfg.Churn)
	t0 := time.Now()
	for i := int64(1); ctx.Err() == nil; i++ {
		sleep(ctx, time.Until(t0.Add(time.Duration(i)*interval)))
		if ctx.Err() != nil || isClosed(s.stopped) {
			return
		}
		if !s.pick() {
			s.churnMissed.Add(1)
		}
	}
}

// publisher publishes on channel at its share of -publish, a second's messages per
// POST /publish, numbered on from one request to the next.
func (s *soaker) publisher(ctx context.Context, channel string) {
	rate := s.cfg.Publish / float64(s.cfg.Channels)
	n := max(1, int(math.Round(rate)))
	chunk := time.Duration(float64(n) / rate * float64(time.Second))
	seq := 0
	t0 := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		sleep(ctx, time.Until(t0.Add(time.Duration(i)*chunk)))
		if ctx.Err() != nil {
			return
		}
		u, err := url.Parse(s.cfg.PublishURL)
		if err != nil {
			s.fatal(err)
			return
		}
		q := u.Query()
		q.Set("channel", channel)
		q.Set("n", strconv.Itoa(n))
		q.Set("rate", strconv.FormatFloat(rate, 'g', -1, 64))
		q.Set("size", strconv.Itoa(s.cfg.Size))
		q.Set("start", strconv.Itoa(seq))
		u.RawQuery = q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
		if err != nil {
			s.fatal(err)
			return
		}
		var resp benchctl.Response
		err = doJSON(s.http, req, http.StatusAccepted, &resp)
		seq += resp.Published
		s.published.Add(int64(resp.Published))
		if err != nil && ctx.Err() == nil {
			s.publishErrors.Add(1)
			s.noteErr("publish", err)
			var se *statusError
			if errors.As(err, &se) && se.status >= 400 && se.status < 500 {
				s.fatal(fmt.Errorf(`publish (-publish-url "" if you publish yourself): %w`, err))
				return
			}
		}
	}
}

// statusError is an HTTP answer of an unexpected status.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// doJSON sends req and decodes its JSON answer into v, which must come with status want.
// An answer of another status is a *statusError, with v decoded if it can be.
func doJSON(hc *http.Client, req *http.Request, want int, v any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		_ = json.Unmarshal(body, v)
		return &statusError{resp.StatusCode, fmt.Sprintf("%s %s: %s: %s", req.Method, req.URL, resp.Status, strings.TrimSpace(string(body)))}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	return nil
}

// Phases of a sample.
const (
	phaseBase    = "base"    // before the first client
	phaseWarmup  = "warmup"  // not judged
	phaseMeasure = "measure" // judged
	phaseAfter   = "after"   // once every client has left
)

// sample is one reading of the server's figures, with the soak's own at that moment.
type sample struct {
	T     float64 // seconds since the soak began
	Phase string

	HeapAlloc, HeapInuse, StackInuse                                 uint64
	Goroutines, Connections                                          int
	Delivered, Accepted, Disconnects, SlowEvictions, Reaped, Dropped uint64
	GC                                                               bool

	Live, Leaving                          int
	Joins, Departures, Received, Published int64
}

// soakStats is what the soak reads of -stats; the pointers are the required fields.
type soakStats struct {
	HeapAlloc  *uint64 `json:"heap_alloc"`
	HeapInuse  uint64  `json:"heap_inuse"`
	StackInuse uint64  `json:"stack_inuse"`
	Goroutines *int    `json:"goroutines"`
	GC         bool    `json:"gc"`
	Hub        *struct {
		Connections                                           *int
		Delivered                                             *uint64
		Accepted, Disconnects, SlowEvictions, Reaped, Dropped uint64
	} `json:"hub"`
}

// sample reads the server's figures after a GC.
func (s *soaker) sample(ctx context.Context, phase string) (sample, error) {
	sm := sample{Phase: phase}
	u := s.cfg.StatsURL
	if strings.Contains(u, "?") {
		u += "&gc=1"
	} else {
		u += "?gc=1"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return sm, err
	}
	var st soakStats
	if err := doJSON(s.http, req, http.StatusOK, &st); err != nil {
		return sm, err
	}
	switch {
	case st.HeapAlloc == nil || st.Goroutines == nil || st.Hub == nil || st.Hub.Connections == nil || st.Hub.Delivered == nil:
		return sm, fmt.Errorf("GET %s: the answer lacks heap_alloc, goroutines, hub.Connections or hub.Delivered (see wspub-bench soak -h)", u)
	}
	sm.T = time.Since(s.start).Seconds()
	sm.HeapAlloc, sm.HeapInuse, sm.StackInuse = *st.HeapAlloc, st.HeapInuse, st.StackInuse
	sm.Goroutines, sm.Connections, sm.GC = *st.Goroutines, *st.Hub.Connections, st.GC
	h := st.Hub
	sm.Delivered, sm.Accepted, sm.Disconnects, sm.SlowEvictions, sm.Reaped, sm.Dropped =
		*h.Delivered, h.Accepted, h.Disconnects, h.SlowEvictions, h.Reaped, h.Dropped
	s.mu.Lock()
	sm.Live = len(s.live)
	s.mu.Unlock()
	sm.Leaving = int(s.leaving())
	sm.Joins, sm.Departures, sm.Received, sm.Published = s.joins.Load(), s.departures(), s.received.Load(), s.published.Load()
	return sm, nil
}

// settle waits (if wait) up to settleWait for the server to have no more connections
// and goroutines than before the soak, and returns its figures then.
func (s *soaker) settle(ctx context.Context, base sample, wait bool) (sample, error) {
	deadline := time.Now().Add(settleWait)
	for {
		sm, err := s.sample(ctx, phaseAfter)
		settled := sm.Connections <= base.Connections && sm.Goroutines <= base.Goroutines
		if err != nil || !wait || settled || time.Now().After(deadline) {
			return sm, err
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

// settleWait bounds how long the soak waits for the server to close what its clients
// left; the hub's CloseTimeout is 5s by default.
const settleWait = 15 * time.Second

// writeFileWith creates path and writes it with fn.
func writeFileWith(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// csvHeader names the CSV's columns; see writeSamplesCSV.
const csvHeader = "t_s,phase,heap_alloc,heap_inuse,stack_inuse,goroutines,connections,delivered,accepted,disconnects,slow_evictions,reaped,dropped,gc,clients_live,clients_leaving,joins,departures,received,published"

// writeSamplesCSV writes one row per sample, the one after every client left last.
func writeSamplesCSV(w io.Writer, samples []sample, after sample, haveAfter bool) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(strings.Split(csvHeader, ","))
	rows := samples
	if haveAfter {
		rows = append(rows[:len(rows):len(rows)], after)
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, sm := range rows {
		_ = cw.Write([]string{
			strconv.FormatFloat(sm.T, 'f', 3, 64), sm.Phase,
			u(sm.HeapAlloc), u(sm.HeapInuse), u(sm.StackInuse), i(int64(sm.Goroutines)), i(int64(sm.Connections)),
			u(sm.Delivered), u(sm.Accepted), u(sm.Disconnects), u(sm.SlowEvictions), u(sm.Reaped), u(sm.Dropped),
			strconv.FormatBool(sm.GC), i(int64(sm.Live)), i(int64(sm.Leaving)), i(sm.Joins), i(sm.Departures),
			i(sm.Received), i(sm.Published),
		})
	}
	cw.Flush()
	return cw.Error()
}

// soakResult is what a soak reports, as one JSON object.
type soakResult struct {
	Mode    string `json:"mode"`    // "soak"
	Verdict string `json:"verdict"` // "flat", "rising" or "inconclusive"

	DurationS   float64    `json:"duration_s"`
	Conns       int        `json:"conns"`
	Churn       float64    `json:"churn"` // departures per second asked
	Ways        []string   `json:"ways"`  // mixed in turn
	Channels    int        `json:"channels"`
	Publish     float64    `json:"publish"` // messages per second asked
	IntervalS   float64    `json:"interval_s"`
	WindowS     [2]float64 `json:"window_s"` // the judged samples lie in [from, to]
	Samples     int        `json:"samples"`  // all of them, the base one included
	NoGC        int        `json:"no_gc"`    // samples whose "gc" was not true: the heap was not measured after a collection
	Interrupted bool       `json:"interrupted,omitempty"`

	// Fitted to the samples after the warm-up.
	Heap        trend `json:"heap"` // heap_alloc after GC, bytes
	Goroutines  trend `json:"goroutines"`
	Connections trend `json:"connections"` // not judged

	Joins           int64                `json:"joins"`
	DialErrors      int64                `json:"dial_errors"`
	Leaves          map[string]wayResult `json:"leaves"`       // by way
	ChurnMissed     int64                `json:"churn_missed"` // churn ticks that found no live client
	Unexpected      int64                `json:"unexpected"`   // live clients the server ended
	UnexpectedCodes map[string]int64     `json:"unexpected_codes,omitempty"`
	Received        int64                `json:"received"` // bench messages live clients received
	Lost            int64                `json:"lost"`     // seq gaps live clients saw
	OutOfOrder      int64                `json:"out_of_order"`
	Published       int64                `json:"published"`
	PublishErrors   int64                `json:"publish_errors"`

	Server serverDelta `json:"server"`          // the hub's counters over the soak (after - base)
	Base   figures     `json:"base"`            // before the first client
	After  *figures    `json:"after,omitempty"` // once every client had left (up to 15 s later)

	Errors map[string]string `json:"errors,omitempty"` // the last error of each kind (dial, publish, stats)
	CSV    string            `json:"csv,omitempty"`
	SVG    string            `json:"svg,omitempty"`
}

type wayResult struct {
	Started int64            `json:"started"`
	OK      int64            `json:"ok"`               // the server answered, or ended the client, as the way wants
	Late    int64            `json:"late"`             // it did not within -close-wait or -server-wait
	Cut     int64            `json:"cut"`              // the soak ended first
	Other   int64            `json:"other"`            // the connection failed otherwise
	MeanS   float64          `json:"mean_s,omitempty"` // leave to end, of the ok ones (not stall: it learns its end only after -server-wait)
	MaxS    float64          `json:"max_s,omitempty"`
	Codes   map[string]int64 `json:"codes,omitempty"` // stall, nopong: close codes of the ends (1006: no close frame)
}

type serverDelta struct {
	Delivered     uint64 `json:"delivered"`
	Accepted      uint64 `json:"accepted"`
	Disconnects   uint64 `json:"disconnects"`
	SlowEvictions uint64 `json:"slow_evictions"`
	Reaped        uint64 `json:"reaped"`
	Dropped       uint64 `json:"dropped"`
}

type figures struct {
	HeapAlloc   uint64 `json:"heap_alloc"`
	Goroutines  int    `json:"goroutines"`
	Connections int    `json:"connections"`
}

// failed reports whether the soak must exit non-zero.
func (r *soakResult) failed() bool { return r.Verdict != verdictFlat }

const (
	verdictFlat         = "flat"
	verdictRising       = "rising"
	verdictInconclusive = "inconclusive"
)

func (s *soaker) result(samples []sample, after sample, haveAfter, interrupted bool) *soakResult {
	cfg := s.cfg
	base := samples[0]
	last := samples[len(samples)-1]
	res := &soakResult{Mode: "soak", DurationS: last.T, Conns: cfg.Conns, Churn: cfg.Churn, Channels: cfg.Channels,
		Publish: cfg.Publish, IntervalS: cfg.Interval.Seconds(), Samples: len(samples), Interrupted: interrupted,
		Joins: s.joins.Load(), DialErrors: s.dialErrors.Load(), ChurnMissed: s.churnMissed.Load(),
		Unexpected: s.unexpectedEnds.Load(), Received: s.received.Load(), Lost: s.lost.Load(),
		OutOfOrder: s.outOfOrder.Load(), Published: s.published.Load(), PublishErrors: s.publishErrors.Load(),
		Leaves: map[string]wayResult{},
		Base:   figures{base.HeapAlloc, base.Goroutines, base.Connections},
	}
	for _, w := range cfg.Ways {
		res.Ways = append(res.Ways, w.String())
	}
	var x, heap, goro, conns []float64
	for _, sm := range samples {
		if !sm.GC {
			res.NoGC++
		}
		if sm.Phase == phaseMeasure {
			x = append(x, sm.T)
			heap = append(heap, float64(sm.HeapAlloc))
			goro = append(goro, float64(sm.Goroutines))
			conns = append(conns, float64(sm.Connections))
		}
	}
	res.Heap = judgeTrend(x, heap, &cfg.HeapLimit)
	res.Goroutines = judgeTrend(x, goro, &cfg.GoroLimit)
	res.Connections = judgeTrend(x, conns, nil)
	res.WindowS = [2]float64{cfg.Warmup.Seconds(), last.T}
	if len(x) > 0 {
		res.WindowS[0] = x[0]
	}
	switch {
	case len(x) < 3:
		res.Verdict = verdictInconclusive
	case res.Heap.Rising || res.Goroutines.Rising:
		res.Verdict = verdictRising
	default:
		res.Verdict = verdictFlat
	}
	end := last
	if haveAfter {
		end = after
		res.After = &figures{after.HeapAlloc, after.Goroutines, after.Connections}
	}
	res.Server = serverDelta{
		Delivered: end.Delivered - base.Delivered, Accepted: end.Accepted - base.Accepted,
		Disconnects: end.Disconnects - base.Disconnects, SlowEvictions: end.SlowEvictions - base.SlowEvictions,
		Reaped: end.Reaped - base.Reaped, Dropped: end.Dropped - base.Dropped,
	}
	for _, w := range cfg.Ways {
		ws := &s.ways[w]
		wr := wayResult{Started: ws.started.Load(), OK: ws.ok.Load(), Late: ws.late.Load(), Cut: ws.cut.Load(),
			Other: ws.other.Load(), MaxS: time.Duration(ws.maxNanos.Load()).Seconds()}
		if n := ws.timed.Load(); n > 0 {
			wr.MeanS = time.Duration(ws.okNanos.Load() / n).Seconds()
		}
		ws.mu.Lock()
		if len(ws.codes) > 0 && (w == wayStall || w == wayNoPong) {
			wr.Codes = map[string]int64{}
			for code, n := range ws.codes {
				wr.Codes[strconv.Itoa(code)] = n
			}
		}
		ws.mu.Unlock()
		res.Leaves[w.String()] = wr
	}
	s.mu.Lock()
	if len(s.unexCode) > 0 {
		res.UnexpectedCodes = map[string]int64{}
		for code, n := range s.unexCode {
			res.UnexpectedCodes[strconv.Itoa(code)] = n
		}
	}
	if len(s.lastErr) > 0 {
		res.Errors = map[string]string{}
		for k, v := range s.lastErr {
			res.Errors[k] = v
		}
	}
	s.mu.Unlock()
	return res
}

// soakChart is the chart of a soak: heap after GC in one panel, goroutines and
// connections in the other, the fitted trends dashed.
func soakChart(cfg soakConfig, res *soakResult, samples []sample) chart {
	verdict := func(t trend) string {
		if t.Rising {
			return "RISING"
		}
		return "flat"
	}
	c := chart{
		Title: fmt.Sprintf("wspub soak: %s after %s", strings.ToUpper(res.Verdict), time.Duration(res.DurationS*float64(time.Second)).Round(time.Second)),
		Lines: []string{
			fmt.Sprintf("heap after GC %+.2f ± %.2f MiB/10 min (limit %s): %s;   goroutines %+.1f ± %.1f/10 min (limit %s): %s",
				res.Heap.SlopePer10m/(1<<20), math.Max(res.Heap.ErrPer10m, 0)/(1<<20), cfg.HeapLimit, verdict(res.Heap),
				res.Goroutines.SlopePer10m, math.Max(res.Goroutines.ErrPer10m, 0), cfg.GoroLimit, verdict(res.Goroutines)),
			fmt.Sprintf("%d clients; %g leave and as many join per second (%s); %d channels, %g messages/s of ~%d B",
				cfg.Conns, cfg.Churn, strings.Join(res.Ways, ", "), cfg.Channels, cfg.Publish, cfg.Size),
			fmt.Sprintf("a sample every %v (the heap after runtime.GC); the trend is fitted to the samples after the %v warm-up",
				cfg.Interval, cfg.Warmup),
		},
		Bad:    res.Verdict != verdictFlat,
		Window: res.WindowS,
	}
	heapFit, goroFit := res.Heap, res.Goroutines
	heapFit.Start, heapFit.End = heapFit.Start/(1<<20), heapFit.End/(1<<20)
	heap := chartSeries{Name: "heap after GC (heap_alloc)", Color: "#0969da", Fit: &heapFit}
	goro := chartSeries{Name: "goroutines", Color: "#bc4c00", Fit: &goroFit}
	conns := chartSeries{Name: "connections (hub)", Color: "#1a7f37"}
	for _, sm := range samples {
		c.X = append(c.X, sm.T)
		heap.Y = append(heap.Y, float64(sm.HeapAlloc)/(1<<20))
		goro.Y = append(goro.Y, float64(sm.Goroutines))
		conns.Y = append(conns.Y, float64(sm.Connections))
	}
	c.Panels = []chartPanel{
		{Title: "heap after GC (MiB)", Series: []chartSeries{heap}},
		{Title: "goroutines, connections", Series: []chartSeries{goro, conns}},
	}
	return c
}

// printSoakSummary writes the human summary of a soak.
func printSoakSummary(w io.Writer, r *soakResult) {
	mib := func(b float64) string { return fmt.Sprintf("%.2f MiB", b/(1<<20)) }
	fmt.Fprintf(w, "wspub-bench soak: %s after %.0fs (%d samples; judged: %d from %.0fs to %.0fs)\n",
		strings.ToUpper(r.Verdict), r.DurationS, r.Samples, r.Heap.Samples, r.WindowS[0], r.WindowS[1])
	rising := func(t trend) string {
		if t.Rising {
			return "  RISING"
		}
		return ""
	}
	fmt.Fprintf(w, "  heap after GC: %s -> %s; trend %+.3f MiB/10 min ± %.3f (limit %.3f MiB)%s\n",
		mib(r.Heap.First), mib(r.Heap.Last), r.Heap.SlopePer10m/(1<<20), r.Heap.ErrPer10m/(1<<20), r.Heap.LimitPer10m/(1<<20), rising(r.Heap))
	fmt.Fprintf(w, "  goroutines: %.0f -> %.0f; trend %+.1f/10 min ± %.1f (limit %.1f)%s\n",
		r.Goroutines.First, r.Goroutines.Last, r.Goroutines.SlopePer10m, r.Goroutines.ErrPer10m, r.Goroutines.LimitPer10m, rising(r.Goroutines))
	fmt.Fprintf(w, "  connections: %.0f -> %.0f; trend %+.1f/10 min\n", r.Connections.First, r.Connections.Last, r.Connections.SlopePer10m)
	if r.NoGC > 0 {
		fmt.Fprintf(w, "  warning: %d samples were not taken after a GC (the stats endpoint ignored ?gc=1)\n", r.NoGC)
	}
	fmt.Fprintf(w, "  clients: %d joins (%d dial errors), %d unexpected ends", r.Joins, r.DialErrors, r.Unexpected)
	if len(r.UnexpectedCodes) > 0 {
		fmt.Fprintf(w, " (codes %s)", codesString(r.UnexpectedCodes))
	}
	fmt.Fprintf(w, "; leaves by way:\n")
	for _, name := range r.Ways {
		l := r.Leaves[name]
		timing := ""
		if l.MaxS > 0 {
			timing = fmt.Sprintf(" (leave to end: mean %.3fs, max %.3fs)", l.MeanS, l.MaxS)
		}
		fmt.Fprintf(w, "    %-6s %6d: ok %d%s, late %d, cut %d, other %d",
			name, l.Started, l.OK, timing, l.Late, l.Cut, l.Other)
		if len(l.Codes) > 0 {
			fmt.Fprintf(w, "; codes %s", codesString(l.Codes))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  messages: published %d (%d errors), received by live clients %d, lost %d, out of order %d\n",
		r.Published, r.PublishErrors, r.Received, r.Lost, r.OutOfOrder)
	sv := r.Server
	fmt.Fprintf(w, "  server over the soak: delivered %d, accepted %d, disconnects %d, slow evictions %d, reaped %d, dropped %d\n",
		sv.Delivered, sv.Accepted, sv.Disconnects, sv.SlowEvictions, sv.Reaped, sv.Dropped)
	if a := r.After; a != nil {
		fmt.Fprintf(w, "  after every client left: %d connections, %d goroutines, heap %s (before the soak: %d, %d, %s)\n",
			a.Connections, a.Goroutines, mib(float64(a.HeapAlloc)), r.Base.Connections, r.Base.Goroutines, mib(float64(r.Base.HeapAlloc)))
	}
	for k, v := range r.Errors {
		fmt.Fprintf(w, "  last %s error: %s\n", k, v)
	}
	if r.CSV != "" || r.SVG != "" {
		fmt.Fprintf(w, "  wrote %s\n", strings.Trim(r.CSV+" "+r.SVG, " "))
	}
}

func codesString(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s×%d", k, m[k])
	}
	return b.String()
}
