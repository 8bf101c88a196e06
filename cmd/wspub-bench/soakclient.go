package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/wspub/wspub/internal/wsframe"
)

// way is a way for a soak client to leave.
type way int

const (
	wayClose  way = iota // close handshake: close 1000, wait for the server's close frame
	wayFIN               // TCP FIN without a close frame (shutdown(SHUT_WR)), then wait for the server to close
	wayRST               // TCP RST: SO_LINGER 0 and close
	wayStall             // stop reading; the server must evict it (full queue, stalled write) or reap it
	wayNoPong            // keep reading but stop answering pings; the heartbeat must reap it
	numWays
)

func (w way) String() string {
	switch w {
	case wayClose:
		return "close"
	case wayFIN:
		return "fin"
	case wayRST:
		return "rst"
	case wayStall:
		return "stall"
	case wayNoPong:
		return "nopong"
	}
	return "way" + strconv.Itoa(int(w))
}

// parseWays parses a comma-separated list of ways, "all" for every way.
func parseWays(s string) ([]way, error) {
	if strings.TrimSpace(s) == "all" {
		return []way{wayClose, wayFIN, wayRST, wayStall, wayNoPong}, nil
	}
	var ws []way
	seen := map[way]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		w := numWays
		for c := way(0); c < numWays; c++ {
			if c.String() == name {
				w = c
			}
		}
		if w == numWays {
			return nil, fmt.Errorf("unknown way to leave %q (want close, fin, rst, stall, nopong or all)", name)
		}
		if !seen[w] {
			seen[w] = true
			ws = append(ws, w)
		}
	}
	return ws, nil
}

// Outcomes of a departure.
const (
	outcomeOK    = iota // as the way means: the server answered the close or the FIN, or ended the client
	outcomeLate         // the server did not, within -close-wait or -server-wait; the client reset the connection
	outcomeCut          // the soak ended first
	outcomeOther        // the connection failed otherwise (a reset where a close frame was due, ...)
)

// wayStats counts the departures of one way. Every field is atomic.
type wayStats struct {
	started, ok, late, cut, other atomic.Int64
	timed, okNanos, maxNanos      atomic.Int64 // time from the leave to the end, of ok departures that know it

	mu    sync.Mutex
	codes map[int]int64 // close codes of ok departures the server ended; 1006: it sent none
}

func (ws *wayStats) record(outcome int, d time.Duration, code int) {
	switch outcome {
	case outcomeOK:
		ws.ok.Add(1)
		if d < 0 { // not known
			break
		}
		ws.timed.Add(1)
		ws.okNanos.Add(int64(d))
		for {
			m := ws.maxNanos.Load()
			if int64(d) <= m || ws.maxNanos.CompareAndSwap(m, int64(d)) {
				break
			}
		}
	case outcomeLate:
		ws.late.Add(1)
	case outcomeCut:
		ws.cut.Add(1)
	default:
		ws.other.Add(1)
	}
	if code != 0 {
		ws.mu.Lock()
		if ws.codes == nil {
			ws.codes = map[int]int64{}
		}
		ws.codes[code]++
		ws.mu.Unlock()
	}
}

// Client states.
const (
	stateJoining = iota // dialled, waiting for "subscribed"
	stateLive           // subscribed and receiving; the churn may pick it
	stateLeaving        // leaving by its way
	stateQuiet          // closed by the end of the soak (close handshake), not a departure
	stateEnded          // the connection has ended
)

// soakClient is one connection of a soak, from its join to its end. Its reader
// goroutine reads, answers pings, counts what it receives and finishes its departure.
type soakClient struct {
	s       *soaker
	way     way
	channel string
	rc      *rawConn

	acked  chan struct{} // closed at "subscribed"
	picked chan struct{} // closed when the churn picks it to leave (guarded by soaker.mu)
	done   chan struct{} // closed when the reader goroutine has exited
	noPong atomic.Bool   // pings go unanswered from now on
	slot   int           // its index in soaker.live while it is there, guarded by soaker.mu

	mu       sync.Mutex
	state    int
	leftAt   time.Time
	ackErr   error // why it never got subscribed
	stalling bool  // stall has begun: it sets the read deadlines

	// Written by the reader goroutine only.
	seen bool
	next int64 // the seq expected next on its channel
}

// join connects one client that leaves by w, subscribed to channel, and returns it once
// subscribed.
func (s *soaker) join(ctx context.Context, w way, channel string) (*soakClient, error) {
	opts := rawDialOptions{Header: s.cfg.Header, Timeout: 10 * time.Second}
	if w == wayStall {
		opts.ReadBuffer = s.cfg.StallBuffer
	}
	rc, err := dialRaw(ctx, s.cfg.URL, opts)
	if err != nil {
		return nil, err
	}
	c := &soakClient{s: s, way: w, channel: channel, rc: rc,
		acked: make(chan struct{}), picked: make(chan struct{}), done: make(chan struct{}), slot: -1}
	sub := append(append([]byte(`{"type":"subscribe","channel":`), strconv.Quote(channel)...), `,"id":"1"}`...)
	if err := rc.writeFrame(wsframe.OpText, true, sub); err != nil {
		_ = rc.Close()
		return nil, err
	}
	s.track(c)
	s.wg.Add(1)
	go c.read()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-c.acked:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("connection ended before the subscription: %w", c.ackErr)
	case <-t.C:
		c.quit()
		return nil, errors.New(`no "subscribed" reply within 10s`)
	case <-ctx.Done():
		c.quit()
		return nil, ctx.Err()
	}
}

// quit abandons a client that never got live.
func (c *soakClient) quit() {
	c.mu.Lock()
	c.state = stateQuiet
	c.mu.Unlock()
	_ = c.rc.reset()
	<-c.done
}

// answer reports whether pings are answered.
func (c *soakClient) answer() bool { return !c.noPong.Load() }

// read is the client's goroutine.
func (c *soakClient) read() {
	defer c.s.wg.Done()
	defer close(c.done)
	defer c.s.untrack(c)
	for {
		op, msg, err := c.rc.next(c.answer)
		if err != nil {
			c.finish(err)
			return
		}
		c.mu.Lock()
		state := c.state
		stall := state == stateLeaving && c.way == wayStall
		c.stalling = stall
		c.mu.Unlock()
		if stall {
			c.stall()
			return
		}
		if op == wsframe.OpText {
			c.frame(msg, state)
		}
	}
}

// frame handles a text frame: the subscription reply, errors, bench messages.
func (c *soakClient) frame(b []byte, state int) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		seq, _, ok := scanBench(line)
		switch {
		case ok:
			if state != stateLive && state != stateJoining {
				continue // what a departing client receives is not counted
			}
			c.s.received.Add(1)
			switch {
			case !c.seen:
				c.seen, c.next = true, seq+1
			case seq == c.next:
				c.next++
			case seq > c.next:
				c.s.lost.Add(seq - c.next)
				c.next = seq + 1
			default:
				c.s.outOfOrder.Add(1)
			}
		case state == stateJoining && bytes.Contains(line, []byte(`"type":"subscribed"`)):
			c.mu.Lock()
			if c.state == stateJoining {
				c.state = stateLive
			}
			c.mu.Unlock()
			close(c.acked)
			state = stateLive
		case state == stateJoining && bytes.Contains(line, []byte(`"type":"error"`)):
			c.s.fatal(fmt.Errorf("subscribe to %q refused: %s", c.channel, line))
		}
	}
}

// leave starts the client's departure by its way; the reader goroutine finishes it. It
// reports false if the client is not live any more.
func (c *soakClient) leave() bool {
	c.mu.Lock()
	if c.state != stateLive {
		c.mu.Unlock()
		return false
	}
	c.state, c.leftAt = stateLeaving, time.Now()
	c.mu.Unlock()
	c.s.ways[c.way].started.Add(1)
	cfg := c.s.cfg
	switch c.way {
	case wayClose:
		_ = c.rc.conn.SetReadDeadline(time.Now().Add(cfg.CloseWait))
		_ = c.rc.writeClose(websocket.StatusNormalClosure, "")
	case wayFIN:
		_ = c.rc.conn.SetReadDeadline(time.Now().Add(cfg.CloseWait))
		_ = c.rc.closeWrite()
	case wayRST:
		_ = c.rc.reset()
	case wayStall:
		// The reader stops at its next message. Until then it reads, but a client that
		// stops reading answers no pings either.
		c.noPong.Store(true)
	case wayNoPong:
		c.noPong.Store(true)
		_ = c.rc.conn.SetReadDeadline(time.Now().Add(cfg.ServerWait))
	}
	return true
}

// closeQuietly closes a live client at the end of the soak with a close handshake; it
// is not a departure.
func (c *soakClient) closeQuietly() {
	c.mu.Lock()
	if c.state != stateLive {
		c.mu.Unlock()
		return
	}
	c.state = stateQuiet
	c.mu.Unlock()
	_ = c.rc.conn.SetReadDeadline(time.Now().Add(c.s.cfg.CloseWait))
	_ = c.rc.writeClose(websocket.StatusNormalClosure, "")
}

// stall stops reading until -server-wait has passed (or the soak ends), then reads what
// is left to learn whether the server ended the connection meanwhile.
func (c *soakClient) stall() {
	cfg := c.s.cfg
	t := time.NewTimer(cfg.ServerWait - time.Since(c.leftAt))
	defer t.Stop()
	cut := false
	select {
	case <-t.C:
	case <-c.s.stopped:
		cut = true
	}
	// A ping first: a server that has closed its socket answers it with a TCP RST at
	// once, whereas the FIN it queued behind the data this client did not read may take
	// many seconds to come (its zero-window probes have backed off). Then the reading:
	// what is buffered, then the end, or the messages of a connection still served.
	err := c.rc.writeFrame(wsframe.OpPing, true, []byte("stalled"))
	if err == nil {
		_ = c.rc.conn.SetReadDeadline(time.Now().Add(stallDrain))
		no := func() bool { return false }
		for err == nil {
			_, _, err = c.rc.next(no)
		}
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout() && cut:
		c.s.ways[wayStall].record(outcomeCut, 0, 0)
	case errors.As(err, &ne) && ne.Timeout():
		c.s.ways[wayStall].record(outcomeLate, 0, 0)
	default:
		// Ended by the server at some moment of the stall: when, it cannot tell.
		c.s.ways[wayStall].record(outcomeOK, -1, closeCode(err))
	}
	_ = c.rc.reset()
	c.setEnded()
}

// stallDrain bounds the read with which a stalled client learns its fate.
const stallDrain = 2 * time.Second

// finish accounts for the end of the connection; err is what the read returned.
func (c *soakClient) finish(err error) {
	_ = c.rc.Close()
	c.mu.Lock()
	state, leftAt := c.state, c.leftAt
	c.state = stateEnded
	if state == stateJoining {
		c.ackErr = err
	}
	c.mu.Unlock()
	s := c.s
	switch state {
	case stateLive:
		s.unexpected(closeCode(err))
		return
	case stateJoining, stateQuiet, stateEnded:
		return
	}
	// A departure.
	ws := &s.ways[c.way]
	d := time.Since(leftAt)
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	var ce *closeError
	isClose := errors.As(err, &ce)
	eof := isEOF(err)
	cut := isClosed(s.stopped)
	switch c.way {
	case wayClose, wayFIN:
		switch {
		case isClose || (eof && c.way == wayFIN): // after a FIN the server may just close too
			ws.record(outcomeOK, d, 0)
		case timeout && cut:
			ws.record(outcomeCut, 0, 0)
		case timeout:
			ws.record(outcomeLate, 0, 0)
			_ = c.rc.reset()
		default:
			ws.record(outcomeOther, 0, closeCode(err))
		}
	case wayRST:
		ws.record(outcomeOK, d, 0)
	case wayStall, wayNoPong: // a stalled client that failed before it stopped reading
		switch {
		case timeout && cut:
			ws.record(outcomeCut, 0, 0)
		case timeout:
			ws.record(outcomeLate, 0, 0)
			_ = c.rc.reset()
		default:
			ws.record(outcomeOK, d, closeCode(err))
		}
	}
}

func (c *soakClient) setEnded() {
	c.mu.Lock()
	c.state = stateEnded
	c.mu.Unlock()
}

// cutShort ends a departure under way when the soak is over: its read returns at once.
// A stalled client wakes up by itself (soaker.stopped) to learn its fate.
func (c *soakClient) cutShort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateLeaving && !c.stalling {
		_ = c.rc.conn.SetReadDeadline(time.Now())
	}
}

// closeCode is the close code the server sent, 1006 when it ended the connection
// without a close frame (EOF, reset).
func closeCode(err error) int {
	var ce *closeError
	if errors.As(err, &ce) {
		return int(ce.Code)
	}
	return int(websocket.StatusAbnormalClosure)
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }
