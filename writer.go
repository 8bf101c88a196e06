package wspub

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/coder/websocket"
)

// The write side of a connection: its send queue (queue.go) is filled by enqueue and
// push from any goroutine and drained by one writer goroutine, which runs only while
// there is something to write (messages, the heartbeat's ping, the close handshake).

// enqueue adds an encoded message to the send queue and makes sure a writer runs. It
// never blocks on the network. When the queue is full it applies Options.Overflow.
func (c *Conn) enqueue(frame []byte) error {
	_, err := c.push(frame, c.hub.clock())
	return err
}

// push is enqueue that also reports whether the writer is behind (see behindAfter in
// fanout.go); now is the hub's clock.
func (c *Conn) push(frame []byte, now int64) (behind bool, err error) {
	h := c.hub
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return false, ErrConnClosed
	}
	if !c.fitsLocked(len(frame)) {
		if h.opts.Overflow != DropOldest {
			queuedBytes, queued := c.q.bytes, c.q.n
			c.evictLocked()
			c.mu.Unlock()
			c.evicted("send queue full", queuedBytes, queued)
			return false, ErrSlowConsumer
		}
		dropped := 0
		for c.q.n > 0 && !c.fitsLocked(len(frame)) {
			c.q.pop(&h.segments)
			dropped++
		}
		first := !c.dropLogged
		c.dropLogged = true
		h.stats.dropped.Add(uint64(dropped))
		if first {
			h.log.LogAttrs(context.Background(), slog.LevelWarn, "websocket_messages_dropped",
				slog.String("conn_id", c.id), slog.String("user_id", c.userID),
				slog.String("cause", "send queue full; dropping oldest (logged once per connection)"))
		}
	}
	if c.q.n == 0 {
		c.progress = now
	} else {
		behind = c.q.n >= behindQueued && now-c.progress > int64(behindAfter)
	}
	c.q.push(frame, &h.segments)
	c.startWriterLocked()
	c.mu.Unlock()
	return behind, nil
}

func (c *Conn) fitsLocked(size int) bool {
	o := &c.hub.opts
	return c.q.bytes+size <= o.MaxQueueBytes && (o.MaxQueueMessages == 0 || c.q.n < o.MaxQueueMessages)
}

// startWriterLocked starts the writer goroutine unless one is running. c.mu must be held.
func (c *Conn) startWriterLocked() {
	if c.writing || c.state == stateClosed {
		return
	}
	c.writing = true
	c.hub.wg.Add(1)
	go c.writeFn()
}

// writeLoop drains the send queue, packing up to MaxBatch queued messages into one frame,
// sends the heartbeat's ping when one is due, and runs the close handshake once the
// queue of a closing connection is empty. It exits when there is nothing left to do: a
// connection with nothing to send has no writer.
func (c *Conn) writeLoop() {
	h := c.hub
	defer h.wg.Done()
	lingered := false
	for {
		c.mu.Lock()
		switch {
		case c.state == stateClosed:
			c.writing = false
			c.mu.Unlock()
			return
		case c.pingDue:
			c.pingDue = false
			c.mu.Unlock()
			if err := c.writePing(); err != nil {
				c.writeFailed(err, 0)
			}
		case c.q.n > 0:
			lingered = false
			c.progress = h.clock()
			n, frames, err := c.writeFrames() // releases c.mu
			if err != nil {
				c.writeFailed(err, n)
				continue
			}
			h.stats.delivered.Add(uint64(n))
			h.stats.frames.Add(uint64(frames))
		case c.handshake: // a closing connection whose queue is flushed
			c.handshake = false
			code, reason := c.closeCode, c.closeReason
			c.mu.Unlock()
			c.closeHandshake(code, reason)
			c.finishHandshake()
			return
		case c.state == stateOpen && !lingered:
			// Let a publisher that is still fanning out queue the next message before
			// this writer exits: one yield is cheaper than a new goroutine.
			lingered = true
			c.mu.Unlock()
			runtime.Gosched()
		default:
			c.writing = false
			c.mu.Unlock()
			return
		}
	}
}

// maxWriteBytes is about how much a writer hands the kernel in one call. One write(2)
// to a socket costs about as much for 16 KiB as for 100 bytes, so a writer that is
// behind catches up by writing several frames at once.
const maxWriteBytes = 16 << 10

// writeFrames takes queued messages in frames of up to MaxBatch messages separated by
// '\n', until about maxWriteBytes are written or the queue is empty, then flushes them
// to the socket with one write. It returns how many messages and frames it wrote. c.mu
// must be held, and is released on return.
//
// A frame of several messages is joined in a pooled buffer held only until c.write
// returns, which does not touch the socket: a few buffers serve every writer.
func (c *Conn) writeFrames() (n, frames int, err error) {
	h := c.hub
	for size := 0; err == nil && c.q.n > 0 && size < maxWriteBytes; {
		k := min(c.q.n, h.opts.MaxBatch)
		var frame []byte
		var buf *[]byte
		if k == 1 {
			frame = c.q.pop(&h.segments)
		} else {
			buf, _ = h.frames.Get().(*[]byte)
			if buf == nil {
				buf = new([]byte)
			}
			frame = (*buf)[:0]
			for i := range k {
				if i > 0 {
					frame = append(frame, '\n')
				}
				frame = append(frame, c.q.pop(&h.segments)...)
			}
		}
		c.mu.Unlock()
		err = c.write(frame)
		if buf != nil {
			*buf = frame[:0]
			h.frames.Put(buf)
		}
		size += len(frame)
		n += k
		frames++
		c.mu.Lock()
	}
	c.mu.Unlock()
	if c.flush != nil {
		if ferr := c.flush(); err == nil {
			err = ferr
		}
	}
	return n, frames, err
}

// writeFailed handles a failed write of n messages: a timeout evicts a slow consumer,
// anything else means the connection is already gone. Either way the socket cannot
// take a close frame, so the connection is aborted.
func (c *Conn) writeFailed(err error, n int) {
	c.hub.stats.dropped.Add(uint64(n))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.abort(websocket.StatusAbnormalClosure, "write failed")
		return
	}
	c.mu.Lock()
	queuedBytes, queued := c.q.bytes, c.q.n
	c.mu.Unlock()
	if c.abort(StatusSlowConsumer, "slow consumer") {
		c.evicted("write timeout", queuedBytes, queued)
	}
}

// writeWS writes one text frame into the frameWriter, which gathers it until flushWS.
// Writes have a deadline, not a per-write context: a cancelable context costs
// allocations on every write, and cancelling one closes the connection. Once the
// connection is closing, the close deadline bounds every write.
func (c *Conn) writeWS(p []byte) error {
	if !c.wire.cork() { // not gathering: the frame goes to the socket now
		c.setWriteDeadline()
		defer c.clearWriteDeadline()
	}
	return c.ws.Write(context.Background(), websocket.MessageText, p)
}

// flushWS writes the frames gathered since the first writeWS to the socket.
func (c *Conn) flushWS() error {
	c.setWriteDeadline()
	err := c.wire.uncork()
	c.clearWriteDeadline()
	return err
}

// writePing writes the heartbeat's ping frame, whose payload is the round's token (see
// Hub.heartbeat). It goes between two frames of the stream through the frameWriter, so
// no goroutine waits for the pong: the reader stamps it (onPong).
func (c *Conn) writePing() error {
	if c.ws == nil { // a benchmark's connection without a socket
		return nil
	}
	var frame [2 + pingTokenBytes]byte
	frame[0], frame[1] = 0x80|0x9, pingTokenBytes // FIN, ping
	binary.BigEndian.PutUint64(frame[2:], c.hub.pingToken.Load())
	c.setWriteDeadline()
	defer c.clearWriteDeadline()
	if err := c.wire.writeControl(frame[:]); !errors.Is(err, errMidFrame) {
		return err
	}
	// The frameWriter lost track of frame boundaries (it never does with
	// coder/websocket's framing): ping through the library and stamp its answer.
	h := c.hub
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.PongTimeout)
		defer cancel()
		if c.ws.Ping(ctx) == nil {
			c.lastPong.Store(time.Now().UnixNano())
		}
	}()
	return nil
}

func (c *Conn) setWriteDeadline() {
	deadline := time.Now().Add(c.hub.opts.WriteTimeout)
	if by := c.closeBy.Load(); by != 0 {
		deadline = time.Unix(0, min(by, deadline.UnixNano()))
	}
	_ = c.raw.SetWriteDeadline(deadline)
}

// clearWriteDeadline lifts the deadline of the last write, unless the connection is
// closing: then every write, coder/websocket's own (pongs, the close frame) included,
// keeps the close deadline.
func (c *Conn) clearWriteDeadline() {
	var deadline time.Time
	if by := c.closeBy.Load(); by != 0 {
		deadline = time.Unix(0, by)
	}
	_ = c.raw.SetWriteDeadline(deadline)
}

// evicted counts, logs and reports the eviction of a slow consumer whose queue held
// queuedBytes in queued messages.
func (c *Conn) evicted(cause string, queuedBytes, queued int) {
	h := c.hub
	h.stats.slowEvictions.Add(1)
	h.log.LogAttrs(context.Background(), slog.LevelWarn, "websocket_slow_consumer",
		slog.String("conn_id", c.id), slog.String("user_id", c.userID), slog.String("cause", cause),
		slog.Int("queued_bytes", queuedBytes), slog.Int("queued_messages", queued))
	if h.opts.Observer != nil {
		h.opts.Observer.Eviction(queuedBytes, queued)
	}
}
