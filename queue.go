package wspub

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// queue is a connection's FIFO of encoded messages, bounded by the caller. The frames are
// shared between subscribers and never modified. It is a list of fixed-size segments
// taken from and returned to a pool shared by the hub's connections: an idle connection
// holds no segment, and a busy one allocates nothing in the steady state.
type queue struct {
	head, tail *segment
	hi, ti     int // next slot to pop in head, next slot to fill in tail
	n          int
	bytes      int
}

// segmentSlots is the number of messages one segment holds (768 bytes of slice headers).
const segmentSlots = 32

type segment struct {
	msgs [segmentSlots][]byte
	next *segment
}

func (q *queue) push(b []byte, pool *sync.Pool) {
	if q.tail == nil || q.ti == segmentSlots {
		s, _ := pool.Get().(*segment)
		if s == nil {
			s = new(segment)
		}
		if q.tail == nil {
			q.head, q.hi = s, 0
		} else {
			q.tail.next = s
		}
		q.tail, q.ti = s, 0
	}
	q.tail.msgs[q.ti] = b
	q.ti++
	q.n++
	q.bytes += len(b)
}

// pop removes the oldest message; the queue must not be empty.
func (q *queue) pop(pool *sync.Pool) []byte {
	b := q.head.msgs[q.hi]
	q.head.msgs[q.hi] = nil
	q.hi++
	q.n--
	q.bytes -= len(b)
	switch {
	case q.n == 0: // head == tail: give the last segment back
		pool.Put(q.head)
		*q = queue{}
	case q.hi == segmentSlots:
		s := q.head
		q.head, q.hi = s.next, 0
		s.next = nil
		pool.Put(s)
	}
	return b
}

// reset empties the queue and returns how many messages it held.
func (q *queue) reset(pool *sync.Pool) int {
	n := q.n
	for q.n > 0 {
		q.pop(pool)
	}
	return n
}

// enqueue adds an encoded message to the send queue and makes sure a writer runs. It
// never blocks on the network. When the queue is full it applies Options.Overflow.
func (c *Conn) enqueue(frame []byte) error {
	_, err := c.push(frame, c.hub.clock())
	return err
}

// A writer is behind when at least behindQueued messages wait for it and it has taken
// none for behindAfter. A busy writer takes messages every write(2), tens of
// microseconds apart; 5 ms means it has not been scheduled, or its socket is full. The
// count keeps a publisher from yielding to writers that are merely waiting their turn
// with a message or two: they would drain their queues, exit, and be started again by
// the next Publish.
const (
	behindAfter  = 5 * time.Millisecond
	behindQueued = 16
)

// push is enqueue that also reports whether the writer is behind (see behindAfter); now
// is the hub's clock.
func (c *Conn) push(frame []byte, now int64) (behind bool, err error) {
	h := c.hub
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false, ErrConnClosed
	}
	if !c.fitsLocked(len(frame)) {
		if h.opts.Overflow != DropOldest {
			queuedBytes, queued := c.q.bytes, c.q.n
			c.beginCloseLocked(StatusSlowConsumer, "slow consumer", true)
			c.sendClose = true
			c.startWriterLocked()
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
	if c.writing {
		return
	}
	c.writing = true
	c.hub.wg.Add(1)
	go c.writeFn()
}

// writeLoop drains the send queue, packing up to MaxBatch queued messages into one frame,
// and exits when the queue is empty: a connection with nothing to send has no writer.
func (c *Conn) writeLoop() {
	h := c.hub
	defer h.wg.Done()
	lingered := false
	for {
		c.mu.Lock()
		if c.closing && c.q.n == 0 { // flushed (or discarded): finish the close
			send, code, reason := c.sendClose, c.closeCode, c.closeReason
			c.sendClose = false
			if !send {
				c.writing = false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			c.closeHandshake(code, reason)
			continue
		}
		if c.q.n == 0 {
			if !lingered {
				// Let a publisher that is still fanning out queue the next message
				// before this writer exits: one yield is cheaper than a new goroutine.
				lingered = true
				c.mu.Unlock()
				runtime.Gosched()
				continue
			}
			c.writing = false
			c.mu.Unlock()
			return
		}
		lingered = false
		c.progress = h.clock()
		n, frames, err := c.writeFrames()
		if err != nil {
			c.writeFailed(err, n)
			continue
		}
		h.stats.delivered.Add(uint64(n))
		h.stats.frames.Add(uint64(frames))
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
// anything else means the connection is already gone.
func (c *Conn) writeFailed(err error, n int) {
	h := c.hub
	h.stats.dropped.Add(uint64(n))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		queuedBytes, queued := c.q.bytes, c.q.n
		evicted := c.beginCloseLocked(StatusSlowConsumer, "slow consumer", true)
		c.mu.Unlock()
		if evicted {
			c.evicted("write timeout", queuedBytes, queued)
		}
	} else {
		c.mu.Lock()
		c.beginCloseLocked(websocket.StatusAbnormalClosure, "write failed", true)
		c.mu.Unlock()
	}
	// The socket cannot take a close frame; closing it wakes the reader, which cleans up.
	_ = c.raw.Close()
}

// writeWS writes one text frame into the frameWriter, which gathers it until flushWS.
// Writes have a deadline, not a per-write context: a cancelable context costs
// allocations on every write, and cancelling one closes the connection. Once the
// connection is closing, the close deadline bounds every write.
func (c *Conn) writeWS(p []byte) error {
	if !c.wire.cork() { // not gathering: the frame goes to the socket now
		c.setWriteDeadline()
		defer c.raw.SetWriteDeadline(time.Time{})
	}
	return c.ws.Write(context.Background(), websocket.MessageText, p)
}

// flushWS writes the frames gathered since the first writeWS to the socket.
func (c *Conn) flushWS() error {
	c.setWriteDeadline()
	err := c.wire.uncork()
	_ = c.raw.SetWriteDeadline(time.Time{})
	return err
}

func (c *Conn) setWriteDeadline() {
	deadline := time.Now().Add(c.hub.opts.WriteTimeout)
	if by := c.closeBy.Load(); by != 0 {
		deadline = time.Unix(0, min(by, deadline.UnixNano()))
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
