package wspub

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Hub routes messages between application code and WebSocket clients. It is an
// http.Handler: mount it on a mux (outside any timeout middleware: the hub manages the
// connection's lifetime itself, and net/http's timeouts do not apply to hijacked
// connections). Create one with New; its methods are safe for concurrent use.
//
// http.Server.Shutdown and Close do not touch hijacked connections, so a server must call
// Hub.Shutdown as well; see the example of Hub.Shutdown.
type Hub struct {
	opts     Options
	log      *slog.Logger
	origins  originPolicy
	lim      decodeLimits
	limits   []byte // the welcome message's "limits" object
	idPrefix string
	nodeID   uint64   // tells this hub's messages apart on the broker
	broker   Broker   // nil: a single node
	interest interest // broker subscriptions

	brokerFailing atomic.Bool   // the last broker operation failed; see brokerResult
	pingToken     atomic.Uint64 // the payload of this heartbeat round's pings
	inApp         atomic.Int64  // goroutines running application code (hooks, handlers)
	aborting      atomic.Bool   // Close, or Shutdown past its deadline: new connections are cut at once
	nextID        atomic.Uint64
	epoch         time.Time // of clock
	reg           *registry
	stats         counters
	refusals      *refusalLog
	frames        sync.Pool // *[]byte where a writer joins the messages of one frame
	segments      sync.Pool // *segment of send queues
	gathers       sync.Pool // *[]byte where a writer gathers its frames for one write(2)

	handlersMu sync.RWMutex
	handlers   map[string]Handler

	stateMu    sync.Mutex // guards closed and wg.Add in ServeHTTP against Shutdown
	closed     bool
	done       chan struct{} // closed when shutdown starts
	drained    chan struct{} // closed when every goroutine of the hub has exited
	shutOnce   sync.Once
	brokerOnce sync.Once      // stopBroker
	wg         sync.WaitGroup // ServeHTTP calls, readers, writers, cleanups and the heartbeat
}

// New returns a Hub configured by opts (nil means defaults) and starts its heartbeat
// goroutine. Call Shutdown or Close to stop it.
func New(opts *Options) *Hub {
	o := opts.withDefaults()
	adjustments := o.adjust()
	origins, badPatterns := newOriginPolicy(&o)
	var prefix [8]byte
	_, _ = rand.Read(prefix[:]) // crypto/rand.Read never fails on supported platforms
	h := &Hub{
		nodeID: binary.BigEndian.Uint64(prefix[:]),
		broker: o.Broker,
		opts:   o,
		log:    o.Logger,
		lim: decodeLimits{maxChannel: o.MaxChannelBytes, maxData: int(o.MaxMessageBytes),
			maxChannels: o.MaxSubscribeChannels},
		limits:   welcomeLimits(&o),
		idPrefix: hex.EncodeToString(prefix[:6]) + "-",
		origins:  origins,
		reg: newRegistry(registryLimits{
			conns: o.MaxConns, connsPerUser: o.MaxConnsPerUser, subsPerConn: o.MaxSubscriptionsPerConn,
		}),
		handlers: make(map[string]Handler),
		done:     make(chan struct{}),
		drained:  make(chan struct{}),
		epoch:    time.Now(),
	}
	for _, note := range adjustments {
		h.log.LogAttrs(context.Background(), slog.LevelWarn, "wspub_options_adjusted", slog.String("change", note))
	}
	for _, p := range badPatterns {
		h.log.LogAttrs(context.Background(), slog.LevelError, "wspub_bad_origin_pattern",
			slog.String("pattern", p), slog.String("effect", "matches no origin"))
	}
	h.refusals = newRefusalLog(h.clock)
	h.interest.seed = maphash.MakeSeed()
	h.startBroker()
	h.wg.Add(1)
	go h.heartbeat()
	return h
}

// Handle registers fn for client messages of type typ; "*" registers the fallback for
// types with no handler of their own. A later call for the same type replaces the
// handler; a nil fn removes it. The protocol's own types cannot be handled
// (ErrReservedType).
func (h *Hub) Handle(typ string, fn Handler) error {
	if typ != "*" {
		if err := validateType(typ); err != nil {
			return err
		}
	}
	h.handlersMu.Lock()
	defer h.handlersMu.Unlock()
	if fn == nil {
		delete(h.handlers, typ)
	} else {
		h.handlers[typ] = fn
	}
	return nil
}

func (h *Hub) handler(typ string) Handler {
	h.handlersMu.RLock()
	defer h.handlersMu.RUnlock()
	if fn := h.handlers[typ]; fn != nil {
		return fn
	}
	return h.handlers["*"]
}

// ServeHTTP upgrades the request to a WebSocket connection and serves it until it ends.
// Requests that cannot be upgraded get an HTTP error, in this order of checks: 503 once
// Shutdown has started, 501 when the ResponseWriter cannot be hijacked, 403 for an origin
// Options.OriginPatterns does not allow, 426 for a request that is not a WebSocket
// upgrade, 401 when Options.Authenticate fails, 503 at Options.MaxConns, 429 at
// Options.MaxConnsPerUser, and 400 for a malformed handshake. Nothing is allocated for a
// refused request.
//
// The error's text says what to change; a 403's names the pattern to add:
// wspub: origin "https://app.example" not allowed; add "https://app.example" to Options.OriginPatterns.
// Every refusal is counted in Stats.Rejected and logged as websocket_rejected, at most
// once a minute for each cause (each origin, for 403), with the number of refusals not
// logged since in "suppressed": at Warn for those that mean a misconfiguration (501, 403,
// and a 401 for a request that carried no credential at all: no bearer.<token>
// subprotocol, Authorization header, cookie or query string), at Info for the others. A
// refusal of a request that is not a WebSocket upgrade (the first four checks) carries
// Access-Control-Allow-Origin with the request's Origin, so that a browser client of
// another origin can read why its handshakes fail (see PROTOCOL.md): it depends on no
// credential and holds no secret.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.enter() {
		h.reject(w, r, http.StatusServiceUnavailable, causeShuttingDown, "server shutting down")
		return
	}
	defer h.wg.Done()
	if !canHijack(w) {
		h.reject(w, r, http.StatusNotImplemented, causeNotHijackable,
			"the ResponseWriter cannot be hijacked; mount the hub outside timeout and compression "+
				"middleware (such as http.TimeoutHandler)")
		return
	}
	if ok, origin := h.origins.allowed(r); !ok {
		h.reject(w, r, http.StatusForbidden, causeOrigin, h.origins.refusal(origin, r))
		return
	}
	if !isUpgrade(r) { // before Authenticate: a plain GET costs no token check
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		h.reject(w, r, http.StatusUpgradeRequired, causeNotUpgrade, "this endpoint speaks WebSocket only")
		return
	}
	var id Identity
	if fn := h.opts.Authenticate; fn != nil {
		var err error
		h.inApp.Add(1)
		id, err = fn(r)
		h.inApp.Add(-1)
		switch {
		case err != nil:
		case !id.Expires.IsZero() && !time.Now().Before(id.Expires):
			err = errors.New("identity expired")
		case len(id.UserID) > maxUserIDBytes:
			err = fmt.Errorf("user ID of %d bytes; the limit is %d", len(id.UserID), maxUserIDBytes)
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wspub"`)
			cause, msg := causeBadCredentials, "unauthorized"
			if !carriesCredentials(r) {
				cause, msg = causeNoCredentials, "unauthorized: the request carried no credentials (no "+
					"bearer.<token> subprotocol, Authorization header, cookie or query string); give the "+
					"client its token (wspub.js: the token option)"
			}
			h.reject(w, r, http.StatusUnauthorized, cause, msg, slog.String("error", err.Error()))
			return
		}
	}
	switch h.reg.reserve(id.UserID) {
	case hubFull:
		h.reject(w, r, http.StatusServiceUnavailable, causeHubFull, "too many connections")
		return
	case userFull:
		h.reject(w, r, http.StatusTooManyRequests, causeUserFull, "too many connections for this user")
		return
	}
	if id.UserID != "" { // reachable by SendToUser on every node once the handshake is done
		h.syncInterest(brokerUserPrefix + id.UserID)
	}
	c := h.newConn(r, id)
	hw := &hijackWriter{ResponseWriter: w, pool: &h.gathers}
	if c.frames != nil {
		hw.frames, hw.perRead = c.chargeFrames, c.framesPerRead()
	}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{Subprotocol},
		InsecureSkipVerify: true, // the origin was checked above
		OnPongReceived:     c.onPong,
	})
	if err != nil { // Accept has written the HTTP error
		c.cancel()
		h.reg.release(id.UserID)
		if id.UserID != "" {
			h.syncInterest(brokerUserPrefix + id.UserID)
		}
		h.logRefusal(r, http.StatusBadRequest, causeBadHandshake, "bad handshake", slog.String("error", err.Error()))
		return
	}
	c.ws, c.raw, c.wire = ws, hw.conn, hw.wire
	ws.SetReadLimit(h.opts.MaxMessageBytes)
	// Serve on a goroutine of the hub's own and return: net/http's goroutine, its grown
	// stack and the parsed request are released, which is a third of what an idle
	// connection would otherwise cost.
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer c.cancel()
		h.serve(c, context.WithoutCancel(c.ctx))
	}()
}

// newConn builds the Conn of an upgrade request. Its context carries the request's values
// but not its cancellation: the connection outlives the request.
func (h *Hub) newConn(r *http.Request, id Identity) *Conn {
	c := &Conn{
		hub:         h,
		id:          h.idPrefix + strconv.FormatUint(h.nextID.Add(1), 10),
		userID:      id.UserID,
		expires:     id.Expires,
		claims:      id.Claims,
		origin:      keptHeader(r.Header.Get("Origin")),
		userAgent:   keptHeader(r.UserAgent()),
		remoteAddr:  keptHeader(r.RemoteAddr),
		connectedAt: time.Now(),
	}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(r.Context()))
	c.write, c.flush, c.writeFn = c.writeWS, c.flushWS, c.writeLoop
	c.lastPong.Store(c.connectedAt.UnixNano())
	c.initLimits()
	return c
}

// maxKeptHeader bounds each request string a connection keeps for its whole life
// (Conn.Origin, Conn.UserAgent, Conn.RemoteAddr): a client must not set what its
// connection costs with a header of hundreds of kilobytes.
const maxKeptHeader = 256

// keptHeader returns a copy of at most maxKeptHeader bytes of s, cut at a character
// boundary, that shares no memory with the request.
func keptHeader(s string) string {
	return strings.Clone(cutUTF8(s, maxKeptHeader))
}

// clock returns monotonic nanoseconds since New.
func (h *Hub) clock() int64 { return int64(time.Since(h.epoch)) }

// enter registers a ServeHTTP call unless shutdown has started.
func (h *Hub) enter() bool {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

func (h *Hub) isClosed() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// isUpgrade reports whether r asks for a WebSocket upgrade; websocket.Accept checks the
// rest of the handshake.
func isUpgrade(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return true
			}
		}
	}
	return false
}

// serve runs an accepted connection until it ends.
func (h *Hub) serve(c *Conn, readCtx context.Context) {
	// The welcome is the first message of every connection: it is queued before the
	// connection can be found by ID (Hub.Subscribe, CloseConn) and before OnConnect.
	_ = c.enqueue(encodeWelcome(c.id, h.limits))
	h.reg.add(c)
	h.stats.accepted.Add(1)
	h.log.LogAttrs(c.ctx, slog.LevelInfo, "websocket_connected",
		slog.String("conn_id", c.id), slog.String("user_id", c.userID),
		slog.String("remote_addr", c.remoteAddr), slog.String("origin", c.origin),
		slog.String("user_agent", c.userAgent), slog.String("subprotocol", c.ws.Subprotocol()))
	switch {
	case h.aborting.Load(): // Close or a late Shutdown started after enter; it may not have seen c
		c.abort(websocket.StatusGoingAway, "going away")
	case h.isClosed(): // Shutdown started after enter; it may not have seen c
		c.closeWith(websocket.StatusGoingAway, "going away")
	case h.opts.OnConnect != nil && c.beginDispatch():
		err := h.safely(c, "OnConnect", func() error { return h.opts.OnConnect(c.ctx, c) })
		c.endDispatch()
		var e *Error
		switch {
		case errors.As(err, &e): // the application refuses the connection
			c.closeWith(websocket.StatusPolicyViolation, e.Message)
		case err != nil:
			h.log.LogAttrs(c.ctx, slog.LevelWarn, "websocket_handler_error",
				slog.String("conn_id", c.id), slog.String("in", "OnConnect"), slog.String("error", err.Error()))
			c.closeWith(websocket.StatusInternalError, "internal error")
		}
	}
	c.finish(c.readLoop(readCtx))
}

// safely runs user code, turning a panic into an error that is counted and logged.
// It counts the goroutines in application code, for Shutdown.
func (h *Hub) safely(c *Conn, what string, fn func() error) (err error) {
	h.inApp.Add(1)
	defer func() {
		h.inApp.Add(-1)
		if p := recover(); p != nil {
			h.stats.panics.Add(1)
			err = fmt.Errorf("wspub: panic in %s: %v", what, p)
			h.log.LogAttrs(context.Background(), slog.LevelError, "websocket_panic",
				slog.String("conn_id", c.id), slog.String("in", what), slog.Any("panic", p))
		}
	}()
	return fn()
}

// Publish sends m to every subscriber of channel. It encodes the message once, queues the
// same bytes for each subscriber, and returns without waiting for any socket: a slow
// subscriber never slows the publisher (see Options.Overflow). Messages one goroutine
// publishes to a channel reach each subscriber in that order. Publishing to a channel
// with no subscribers is not an error.
//
// A message larger than Options.MaxQueueBytes could never be queued: Publish returns
// ErrMessageTooLarge and delivers it to no one. When most of the subscribers' writers
// are behind (16 or more messages wait for each and it has taken none for 5 ms),
// Publish yields the processor once (runtime.Gosched) before it returns, so that a
// burst from one goroutine does not run far ahead of the sockets: this bounds latency
// and queued memory, and never waits for a client.
//
// With Options.Broker, the message also goes to the other nodes. This node's subscribers
// get it first; if the broker then fails, Publish returns an error wrapping ErrBroker,
// within Options.BrokerTimeout at the latest.
func (h *Hub) Publish(ctx context.Context, channel string, m Message) error {
	if !validName(channel, h.opts.MaxChannelBytes) {
		return fmt.Errorf("%w: %q", ErrInvalidChannel, channel)
	}
	return h.send(ctx, channel, m, func() []*Conn { return h.reg.subscribers(channel) })
}

// Broadcast sends m, without a channel, to every connection of the hub (of every node,
// with a Broker).
func (h *Hub) Broadcast(ctx context.Context, m Message) error {
	return h.send(ctx, brokerBroadcast, m, h.reg.allConns)
}

// SendToUser sends m, without a channel, to every connection of one user (see
// Options.Authenticate), on every node with a Broker. A user with no connection is not
// an error.
func (h *Hub) SendToUser(ctx context.Context, userID string, m Message) error {
	if userID == "" {
		return ErrInvalidUser
	}
	return h.send(ctx, brokerUserPrefix+userID, m, func() []*Conn { return h.reg.userConns(userID) })
}

// send encodes m for route (a channel, or the broker name of a broadcast or user) and
// fans it out.
func (h *Hub) send(ctx context.Context, route string, m Message, targets func() []*Conn) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	channel := route
	if route == brokerBroadcast || strings.HasPrefix(route, brokerUserPrefix) {
		channel = "" // the envelope of a direct message has no channel
	}
	frame, err := encodeMessage(channel, m) // fanout refuses it if no queue can hold it
	if err != nil {
		return err
	}
	return h.fanout(ctx, route, frame, targets)
}

// Subscribe puts the connection with the given ID on channel, as if the client had
// subscribed, and tells the client with a "subscribed" message without an id. Use it
// from OnConnect for server-chosen channels such as "user:42". Options.Authorize is not
// asked; Options.MaxSubscriptionsPerConn applies (ErrTooManySubscriptions). It is
// idempotent.
func (h *Hub) Subscribe(connID, channel string) error {
	c := h.reg.conn(connID)
	if c == nil {
		return ErrConnNotFound
	}
	if !validName(channel, h.opts.MaxChannelBytes) {
		return fmt.Errorf("%w: %q", ErrInvalidChannel, channel)
	}
	return h.subscribe(c, channel, "")
}

// CloseConn closes the connection with the given ID with code and reason, as Conn.Close
// does: for logout, revoked tokens or changed permissions.
func (h *Hub) CloseConn(connID string, code websocket.StatusCode, reason string) error {
	c := h.reg.conn(connID)
	if c == nil {
		return ErrConnNotFound
	}
	c.closeWith(code, reason)
	return nil
}

// CloseUser closes every connection of a user on this hub with code and reason, and
// returns how many it closed. With a Broker, call it on every node (or have each node
// react to a message of yours).
func (h *Hub) CloseUser(userID string, code websocket.StatusCode, reason string) int {
	conns := h.reg.userConns(userID)
	for _, c := range conns {
		c.closeWith(code, reason)
	}
	return len(conns)
}

// Unsubscribe takes the connection with the given ID off channel and tells the client
// with an "unsubscribed" message. It is idempotent.
func (h *Hub) Unsubscribe(connID, channel string) error {
	c := h.reg.conn(connID)
	if c == nil {
		return ErrConnNotFound
	}
	h.unsubscribe(c, channel, "")
	return nil
}

func (h *Hub) subscribe(c *Conn, channel, id string) error {
	if err := h.reg.subscribe(c, channel); err != nil {
		return err
	}
	h.syncInterest(channel) // before the ack: "subscribed" means on every node
	h.log.LogAttrs(c.ctx, slog.LevelInfo, "websocket_subscribed",
		slog.String("conn_id", c.id), slog.String("channel", channel))
	_ = c.enqueue(encodeReply(typeSubscribed, channel, id))
	return nil
}

func (h *Hub) unsubscribe(c *Conn, channel, id string) {
	h.reg.unsubscribe(c, channel)
	h.syncInterest(channel)
	h.log.LogAttrs(c.ctx, slog.LevelInfo, "websocket_unsubscribed",
		slog.String("conn_id", c.id), slog.String("channel", channel))
	_ = c.enqueue(encodeReply(typeUnsubscribed, channel, id))
}

// Stats returns the hub's gauges and counters.
func (h *Hub) Stats() Stats {
	conns, channels, subs, users := h.reg.counts()
	s := &h.stats
	st := Stats{
		Connections: conns, Channels: channels, Subscriptions: subs, Users: users,
		Accepted:      s.accepted.Load(),
		Rejected:      s.rejected.Load(),
		Published:     s.published.Load(),
		Delivered:     s.delivered.Load(),
		Frames:        s.frames.Load(),
		Dropped:       s.dropped.Load(),
		SlowEvictions: s.slowEvictions.Load(),
		Reaped:        s.reaped.Load(),
		Invalid:       s.invalid.Load(),
		RateLimited:   s.rateLimited.Load(),
		PolicyCloses:  s.policyCloses.Load(),
		FrameFloods:   s.frameFloods.Load(),
		Panics:        s.panics.Load(),
		Disconnects:   s.disconnects.Load(),

		BrokerUp:       h.broker == nil,
		BrokerErrors:   s.brokerErrors.Load(),
		BrokerReceived: s.brokerReceived.Load(),
		BrokerInvalid:  s.brokerInvalid.Load(),
	}
	if bh, ok := h.broker.(BrokerHealth); ok {
		st.BrokerUp, st.BrokerOutages = bh.Up(), bh.Outages()
	} else if h.broker != nil {
		st.BrokerUp = true // no health to report: assume up
	}
	if bd, ok := h.broker.(BrokerDrops); ok {
		st.BrokerDropped = bd.Dropped()
	}
	return st
}

// Shutdown stops the hub gracefully: new upgrade requests get 503, every connection is
// sent close 1001 ("going away") after what is queued for it and has its context
// cancelled, the heartbeat stops, and Shutdown waits until every connection has ended
// and every goroutine of the hub has exited. If ctx ends first, the remaining
// connections are closed at once (no handshake) and Shutdown returns ctx.Err() as soon
// as they are gone: within ShutdownGrace of ctx's end whatever handlers do, because
// application code that ignores its context (a Handler, OnConnect, OnDisconnect or
// Authorize still running then) is logged (websocket_shutdown_incomplete) and not
// waited for. It is safe to call more than once and concurrently with Close.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.beginShutdown()
	for _, c := range h.reg.allConns() {
		c.closeWith(websocket.StatusGoingAway, "going away")
	}
	select {
	case <-h.drained:
		return nil
	case <-ctx.Done():
		h.abortAll()
		h.awaitDrained()
		return ctx.Err()
	}
}

// Close stops the hub at once: new upgrade requests get 503 and every connection's TCP
// connection is closed without a close handshake. It returns when every connection is
// gone and every goroutine of the hub has exited, except for application code that
// ignores its context, which it waits for ShutdownGrace at most (see Shutdown). It is
// safe to call more than once.
func (h *Hub) Close() error {
	h.beginShutdown()
	h.abortAll()
	h.awaitDrained()
	return nil
}

// ShutdownGrace is how long Shutdown (past its deadline) and Close wait for
// application code that is still running once every connection has been closed: a
// Handler or hook that ignores its cancelled context is not waited for longer.
const ShutdownGrace = time.Second

func (h *Hub) beginShutdown() {
	h.shutOnce.Do(func() {
		h.stateMu.Lock()
		h.closed = true
		close(h.done)
		h.stateMu.Unlock()
		h.log.LogAttrs(context.Background(), slog.LevelInfo, "websocket_shutdown",
			slog.Int("connections", len(h.reg.allConns())))
		go func() {
			h.wg.Wait()
			h.stopBroker()
			close(h.drained)
		}()
	})
}

// awaitDrained waits for every goroutine of the hub to exit. Once ShutdownGrace has
// passed, it stops waiting as soon as what is left is application code.
func (h *Hub) awaitDrained() {
	t := time.NewTimer(ShutdownGrace)
	defer t.Stop()
	for {
		select {
		case <-h.drained:
			return
		case <-t.C:
		}
		if n := h.inApp.Load(); n > 0 {
			h.log.LogAttrs(context.Background(), slog.LevelWarn, "websocket_shutdown_incomplete",
				slog.Int64("handlers_running", n), slog.Int("connections", len(h.reg.allConns())),
				slog.String("cause", "application code ignores its cancelled context; not waiting for it"))
			h.stopBroker()
			return
		}
		t.Reset(ShutdownGrace / 10) // our own goroutines are finishing: they always do
	}
}

// abortAll cuts every connection. A connection that registers after its snapshot sees
// aborting set (registering and the snapshot both hold the registry's lock) and cuts
// itself.
func (h *Hub) abortAll() {
	h.aborting.Store(true)
	for _, c := range h.reg.allConns() {
		c.abort(websocket.StatusGoingAway, "going away")
	}
}
