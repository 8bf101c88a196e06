package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/wspub/wspub/internal/benchctl"
)

// runner runs one run. Its counters are shared with the clients' goroutines.
type runner struct {
	cfg     runConfig
	proto   clientProto
	http    *http.Client
	clients []*client
	nSlow   int

	sem           chan struct{} // handshakes in flight
	connected     atomic.Int64
	subscribed    atomic.Int64
	finished      atomic.Int64 // healthy clients done or disconnected
	deliveries    atomic.Int64
	dialRetries   atomic.Int64
	allSubscribed chan struct{}
	allFinished   chan struct{}
	drain         chan struct{} // closed when slow clients may read
	closing       atomic.Bool   // the runner is closing every client
	closeOnce     sync.Once
	cancel        context.CancelFunc // the run's context

	failOnce sync.Once
	failed   chan struct{}
	failErr  error

	wg     sync.WaitGroup // client goroutines
	slowWG sync.WaitGroup // slow clients until they have drained
}

// runBench runs a benchmark as cfg says. It returns an error when the run could not be
// done; lost messages and timeouts are in the result.
func runBench(ctx context.Context, cfg runConfig) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	tr := &http.Transport{
		Proxy:               nil, // a load test talks to the server itself
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}
	defer tr.CloseIdleConnections()
	proto, ok := protoFor(cfg.Proto)
	if !ok {
		return nil, fmt.Errorf("unknown -proto %q", cfg.Proto)
	}
	r := &runner{
		cfg:           cfg,
		proto:         proto,
		http:          &http.Client{Transport: tr},
		sem:           make(chan struct{}, cfg.Dialers),
		allSubscribed: make(chan struct{}),
		allFinished:   make(chan struct{}),
		drain:         make(chan struct{}),
		failed:        make(chan struct{}),
		cancel:        cancel,
	}
	if !cfg.Idle {
		r.nSlow = slowCount(cfg.Conns, cfg.Slow)
	}
	r.slowWG.Add(r.nSlow)
	r.clients = make([]*client, cfg.Conns)
	for i := range r.clients {
		c := &client{r: r, idx: i, channel: cfg.Channel}
		if cfg.Idle && cfg.Channels > 1 {
			c.channel = "idle:" + strconv.Itoa(i%cfg.Channels)
		}
		// Spread the slow clients evenly: client i is slow when ⌊i·s/n⌋ steps.
		c.slow = r.nSlow > 0 && (i+1)*r.nSlow/cfg.Conns != i*r.nSlow/cfg.Conns
		r.clients[i] = c
	}
	defer r.closeAll()
	if cfg.Idle {
		return r.idle(ctx)
	}
	return r.fanout(ctx)
}

func (r *runner) progressf(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, format, args...)
	}
}

// fail records the first fatal error of a client.
func (r *runner) fail(err error) {
	r.failOnce.Do(func() {
		r.failErr = err
		close(r.failed)
	})
}

func (r *runner) clientSubscribed() {
	<-r.sem
	if r.subscribed.Add(1) == int64(len(r.clients)) {
		close(r.allSubscribed)
	}
}

func (r *runner) clientFinished() {
	if r.finished.Add(1) == int64(len(r.clients)-r.nSlow) {
		close(r.allFinished)
	}
}

// connect dials every client at the configured rate and returns once all are
// subscribed, or with the first fatal error.
func (r *runner) connect(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	r.wg.Add(len(r.clients) + 1) // the clients and this dialling loop
	go func() {
		defer r.wg.Done()
		for i, c := range r.clients {
			if r.cfg.Ramp > 0 {
				if d := time.Until(start.Add(time.Duration(float64(i) / r.cfg.Ramp * float64(time.Second)))); d > 0 {
					sleep(ctx, d)
				}
			}
			select {
			case r.sem <- struct{}{}: // released on "subscribed" or failure
			case <-ctx.Done():
			case <-r.failed:
			}
			if ctx.Err() != nil || r.closing.Load() || isClosed(r.failed) {
				for _, c := range r.clients[i:] { // never started
					if c.slow {
						r.slowWG.Done()
					}
					r.wg.Done()
				}
				return
			}
			go r.runClient(ctx, c)
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.allSubscribed:
			return time.Since(start), nil
		case <-r.failed:
			return time.Since(start), r.failErr
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("%d of %d clients subscribed when the run ended: %w",
				r.subscribed.Load(), len(r.clients), context.Cause(ctx))
		case <-tick.C:
			r.progressf("[%5.1fs] connected %d/%d, subscribed %d\n", time.Since(start).Seconds(),
				r.connected.Load(), len(r.clients), r.subscribed.Load())
		}
	}
}

// runClient runs one client: dial, subscribe, read until the runner closes it.
func (r *runner) runClient(ctx context.Context, c *client) {
	defer r.wg.Done()
	if c.slow {
		defer r.slowWG.Done()
	}
	ws, err := r.dial(ctx)
	if err != nil {
		<-r.sem
		if ctx.Err() == nil {
			r.fail(fmt.Errorf("client %d: %w", c.idx, err))
		}
		return
	}
	c.mu.Lock()
	if r.closing.Load() { // the run ended while this client was dialling
		c.mu.Unlock()
		<-r.sem
		_ = ws.CloseNow()
		return
	}
	c.ws = ws
	c.mu.Unlock()
	r.connected.Add(1)
	ws.SetReadLimit(64 << 20) // a batch of MaxBatch messages may exceed the default 32 KiB
	if err := ws.Write(ctx, websocket.MessageText, r.proto.subscribe(c.channel)); err != nil {
		r.clientEnded(c, err)
		return
	}
	never := func() bool { return false }
	if !c.slow {
		r.clientEnded(c, c.read(context.Background(), ws, never))
		return
	}
	// A slow client reads its "subscribed" reply, then nothing until the drain.
	if err := c.read(context.Background(), ws, func() bool { return c.acked }); err != nil {
		r.clientEnded(c, err)
		return
	}
	select {
	case <-r.drain:
	case <-ctx.Done():
		return
	}
	dctx, cancel := context.WithTimeout(context.Background(), r.cfg.Drain)
	defer cancel()
	if err := c.read(dctx, ws, func() bool { return c.done }); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		r.clientEnded(c, err)
	}
}

// clientEnded records how a client's connection ended (err is what its read returned).
func (r *runner) clientEnded(c *client, err error) {
	if r.closing.Load() {
		return // the runner closed it
	}
	c.ended, c.endCode = true, websocket.CloseStatus(err)
	if !c.acked {
		<-r.sem
		r.fail(fmt.Errorf("client %d: connection ended before the subscription: %w", c.idx, err))
		return
	}
	if !c.slow && !c.done {
		r.clientFinished() // it will receive nothing more
	}
}

// dial opens one WebSocket connection, retrying with backoff when the server refuses for
// a reason that may pass (network errors, 429, 503).
func (r *runner) dial(ctx context.Context) (*websocket.Conn, error) {
	const attempts = 8
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ws, resp, err := websocket.Dial(dctx, r.cfg.URL, &websocket.DialOptions{
			HTTPClient:   r.http,
			Subprotocols: r.proto.subprotocols,
		})
		cancel()
		if err == nil {
			return ws, nil
		}
		if resp != nil && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
			return nil, fmt.Errorf("dial %s: HTTP %d: %w", r.cfg.URL, resp.StatusCode, err)
		}
		if attempt == attempts || ctx.Err() != nil {
			return nil, fmt.Errorf("dial %s (%d attempts): %w", r.cfg.URL, attempt, err)
		}
		r.dialRetries.Add(1)
		sleep(ctx, backoff/2+rand.N(backoff))
		backoff = min(2*backoff, 2*time.Second)
	}
}

// closeAll closes every client (normal closure), stops the dialling, and waits for every
// client goroutine.
func (r *runner) closeAll() {
	r.closeOnce.Do(r.closeClients)
	r.cancel() // dialling and waiting clients give up
	r.wg.Wait()
}

func (r *runner) closeClients() {
	r.closing.Store(true)
	var wg sync.WaitGroup
	work := make(chan *websocket.Conn)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ws := range work {
				if ws.Close(websocket.StatusNormalClosure, "") != nil {
					_ = ws.CloseNow()
				}
			}
		}()
	}
	for _, c := range r.clients {
		c.mu.Lock()
		ws := c.ws
		c.mu.Unlock()
		if ws != nil {
			work <- ws
		}
	}
	close(work)
	wg.Wait()
}

// fanout runs scenarios a and b: subscribe every client, trigger the burst, wait for it.
func (r *runner) fanout(ctx context.Context) (*result, error) {
	cfg := r.cfg
	connectTime, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	res := &result{Mode: "fanout", Conns: cfg.Conns, Msgs: cfg.Msgs, Size: cfg.Size,
		ConnectS: connectTime.Seconds()}
	before, statsErr := r.stats(ctx, false)
	if statsErr != nil {
		r.progressf("wspub-bench: no server figures: %v\n", statsErr)
	}
	var flood []*flooder // running until the burst is over
	defer func() {
		if flood != nil {
			stopFlood(flood)
		}
	}()
	if cfg.Flood > 0 {
		if flood, err = startFlood(ctx, cfg.URL, cfg.FloodKind, cfg.Flood); err != nil {
			return nil, err
		}
		sleep(ctx, floodLead)
		r.progressf("wspub-bench: %d clients flooding with %s frames: %.0f frames/s\n",
			cfg.Flood, cfg.FloodKind, float64(floodFrames(flood))/floodLead.Seconds())
	}

	type triggered struct {
		resp benchctl.Response
		err  error
	}
	trig := make(chan triggered, 1)
	var cpuBefore time.Duration
	if cfg.ServerPID > 0 {
		if cpuBefore, err = processCPU(cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	if cfg.Trigger != "" {
		go func() {
			resp, err := r.trigger(ctx)
			trig <- triggered{resp, err}
		}()
		r.progressf("wspub-bench: %d clients subscribed in %.1fs; publishing %d messages\n",
			cfg.Conns, connectTime.Seconds(), cfg.Msgs)
	} else {
		r.progressf("wspub-bench: %d clients subscribed in %.1fs; waiting for %d messages on %q\n",
			cfg.Conns, connectTime.Seconds(), cfg.Msgs, cfg.Channel)
	}

	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var published bool // the trigger has returned
	lastCount, lastChange := int64(0), time.Now()
	prevCount, prevTime := int64(0), start
	prevFlood := int64(0)
	if flood != nil {
		prevFlood = floodFrames(flood)
	}
wait:
	for {
		select {
		case <-r.allFinished:
			break wait
		case <-ctx.Done():
			res.TimedOut = true
			break wait
		case t := <-trig:
			if t.err != nil {
				return nil, t.err
			}
			published, res.PublishS = true, time.Duration(t.resp.DurationNS).Seconds()
			lastChange = time.Now()
		case now := <-tick.C:
			n := r.deliveries.Load()
			var floodRate string
			if flood != nil {
				f := floodFrames(flood)
				floodRate = fmt.Sprintf("; flood %.0f frames/s", float64(f-prevFlood)/now.Sub(prevTime).Seconds())
				prevFlood = f
			}
			r.progressf("[%5.1fs] deliveries %d/%d (%.0f/s)%s\n", now.Sub(start).Seconds(), n,
				int64(cfg.Msgs)*int64(cfg.Conns-r.nSlow), float64(n-prevCount)/now.Sub(prevTime).Seconds(), floodRate)
			prevCount, prevTime = n, now
			if n != lastCount {
				lastCount, lastChange = n, now
			} else if published && now.Sub(lastChange) >= cfg.Quiet {
				r.progressf("wspub-bench: nothing arrived for %v: messages were lost\n", cfg.Quiet)
				break wait
			}
		}
	}
	if cfg.ServerPID > 0 {
		cpuAfter, err := processCPU(cfg.ServerPID)
		if err != nil {
			return nil, err
		}
		res.ServerCPUS = (cpuAfter - cpuBefore).Seconds()
	}
	if flood != nil {
		res.Flood = stopFlood(flood)
		flood = nil
	}
	if cfg.Trigger != "" && !published {
		// The last deliveries can overtake the trigger's answer; after a timeout the
		// request has been cancelled with the run's context.
		t := <-trig
		switch {
		case t.err == nil:
			res.PublishS = time.Duration(t.resp.DurationNS).Seconds()
		case !res.TimedOut:
			return nil, t.err
		}
	}
	if statsErr == nil {
		// After a collection: the live heap with every client connected, not the garbage
		// of the burst (or of an earlier run) that the next cycle would free.
		after, err := r.stats(context.WithoutCancel(ctx), true)
		if err == nil {
			res.serverFigures(before, after)
		}
	}
	if r.nSlow > 0 {
		close(r.drain)
		r.slowWG.Wait() // each slow client reads for -drain at most
	}
	r.closeAll()
	r.collect(res)
	return res, nil
}

// idle runs scenario c: the server's memory and goroutines per idle connection.
func (r *runner) idle(ctx context.Context) (*result, error) {
	cfg := r.cfg
	base, err := r.stats(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("baseline figures: %w", err)
	}
	connectTime, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	r.progressf("wspub-bench: %d clients subscribed in %.1fs; idle for %v\n", cfg.Conns, connectTime.Seconds(), cfg.Settle)
	sleep(ctx, cfg.Settle)
	if _, err = r.stats(ctx, true); err == nil { // twice: finalizers of the first GC run before the second
		var after serverStats
		if after, err = r.stats(ctx, true); err == nil {
			return r.idleResult(base, after, connectTime), nil
		}
	}
	return nil, fmt.Errorf("figures after connecting: %w", err)
}

// stats reads the server's figures; gc asks it to collect garbage first.
func (r *runner) stats(ctx context.Context, gc bool) (serverStats, error) {
	var st serverStats
	if r.cfg.StatsURL == "" {
		return st, errors.New("no -stats URL")
	}
	u := r.cfg.StatsURL
	if gc {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "gc=1"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, err
	}
	err = doJSON(r.http, req, http.StatusOK, &st)
	return st, err
}

// trigger POSTs the trigger URL and returns the bench server's answer.
func (r *runner) trigger(ctx context.Context) (benchctl.Response, error) {
	var resp benchctl.Response
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.Trigger, nil)
	if err != nil {
		return resp, err
	}
	if err := doJSON(r.http, req, http.StatusAccepted, &resp); err != nil {
		return resp, fmt.Errorf("trigger: %w", err)
	}
	if resp.Published != r.cfg.Msgs {
		return resp, fmt.Errorf("trigger: the server published %d messages, not %d", resp.Published, r.cfg.Msgs)
	}
	return resp, nil
}

// sleep sleeps for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
