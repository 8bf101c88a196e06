package wspub

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/coder/websocket"
)

// queue is a connection's FIFO of encoded messages, bounded by the caller. The frames are
// shared between subscribers and never modified. An idle connection's queue holds no
// buffer.
type queue struct {
	buf   [][]byte // ring buffer; len is a power of two
	head  int
	n     int
	bytes int
}

func (q *queue) push(b []byte) {
	if q.n == len(q.buf) {
		size := max(2*len(q.buf), 8)
		buf := make([][]byte, size)
		for i := 0; i < q.n; i++ {
			buf[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = b
	q.n++
	q.bytes += len(b)
}

func (q *queue) pop() []byte {
	b := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	q.bytes -= len(b)
	return b
}

// reset empties the queue, releases its buffer, and returns how many messages it held.
func (q *queue) reset() int {
	n := q.n
	*q = queue{}
	return n
}

// batch is a writer's scratch space, pooled so that idle connections keep none.
type batch struct {
	msgs  [][]byte
	frame []byte
}

// enqueue adds an encoded message to the send queue and makes sure a writer runs. It
// never blocks on the network. When the queue is full it applies Options.Overflow.
func (c *Conn) enqueue(frame []byte) error {
	h := c.hub
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrConnClosed
	}
	if !c.fitsLocked(len(frame)) {
		if h.opts.Overflow != DropOldest {
			c.beginCloseLocked(StatusSlowConsumer, "slow consumer", true)
			c.sendClose = true
			c.startWriterLocked()
			c.mu.Unlock()
			h.stats.slowEvictions.Add(1)
			h.log.LogAttrs(context.Background(), slog.LevelWarn, "websocket_slow_consumer",
				slog.String("conn_id", c.id), slog.String("user_id", c.userID),
				slog.String("cause", "send queue full"))
			return ErrSlowConsumer
		}
		dropped := 0
		for c.q.n > 0 && !c.fitsLocked(len(frame)) {
			c.q.pop()
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
	c.q.push(frame)
	c.startWriterLocked()
	c.mu.Unlock()
	return nil
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
	var b *batch
	defer func() {
		if b != nil {
			b.frame = b.frame[:0]
			h.batches.Put(b)
		}
	}()
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
			c.writing = false
			c.q.reset()
			c.mu.Unlock()
			return
		}
		if b == nil {
			if v := h.batches.Get(); v != nil {
				b = v.(*batch)
			} else {
				b = new(batch)
			}
		}
		for c.q.n > 0 && len(b.msgs) < h.opts.MaxBatch {
			b.msgs = append(b.msgs, c.q.pop())
		}
		c.mu.Unlock()

		frame := b.msgs[0]
		if len(b.msgs) > 1 {
			b.frame = b.frame[:0]
			for i, m := range b.msgs {
				if i > 0 {
					b.frame = append(b.frame, '\n')
				}
				b.frame = append(b.frame, m...)
			}
			frame = b.frame
		}
		err := c.write(frame)
		n := len(b.msgs)
		clear(b.msgs)
		b.msgs = b.msgs[:0]
		if err != nil {
			c.writeFailed(err, n)
			continue
		}
		h.stats.delivered.Add(uint64(n))
		h.stats.frames.Add(1)
	}
}

// writeFailed handles a failed write of n messages: a timeout evicts a slow consumer,
// anything else means the connection is already gone.
func (c *Conn) writeFailed(err error, n int) {
	h := c.hub
	h.stats.dropped.Add(uint64(n))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		evicted := c.beginCloseLocked(StatusSlowConsumer, "slow consumer", true)
		c.mu.Unlock()
		if evicted {
			h.stats.slowEvictions.Add(1)
			h.log.LogAttrs(context.Background(), slog.LevelWarn, "websocket_slow_consumer",
				slog.String("conn_id", c.id), slog.String("user_id", c.userID),
				slog.String("cause", "write timeout"))
		}
	} else {
		c.mu.Lock()
		c.beginCloseLocked(websocket.StatusAbnormalClosure, "write failed", true)
		c.mu.Unlock()
	}
	// The socket cannot take a close frame; closing it wakes the reader, which cleans up.
	_ = c.raw.Close()
}

// writeWS writes one text frame with a deadline, not a per-write context: a cancelable
// context costs allocations on every write, and cancelling one closes the connection.
// Once the connection is closing, the close deadline bounds every write.
func (c *Conn) writeWS(p []byte) error {
	deadline := time.Now().Add(c.hub.opts.WriteTimeout)
	if by := c.closeBy.Load(); by != 0 {
		deadline = time.Unix(0, min(by, deadline.UnixNano()))
	}
	_ = c.raw.SetWriteDeadline(deadline)
	err := c.ws.Write(context.Background(), websocket.MessageText, p)
	_ = c.raw.SetWriteDeadline(time.Time{})
	return err
}
