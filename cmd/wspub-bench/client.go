package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// client is one WebSocket client of a run. Its counters are written by its own goroutine
// only and read by the runner after that goroutine has exited.
type client struct {
	r       *runner
	idx     int
	channel string
	slow    bool // subscribes, then reads nothing until the run drains it

	mu sync.Mutex      // guards ws against the runner closing every client
	ws *websocket.Conn // nil until dialled

	buf     []byte // frame buffer, reused
	acked   bool   // the "subscribed" reply has arrived
	done    bool   // the last expected seq has arrived
	ended   bool   // the connection ended before the runner closed it
	endCode websocket.StatusCode

	next       int64 // seq expected next
	missing    int64 // seqs skipped and not (yet) seen out of order
	delivered  int64 // bench messages received
	outOfOrder int64
	frames     int64 // frames that carried at least one bench message
	errors     int64 // "error" replies
	firstTS    int64 // smallest "ts" seen, unix nanoseconds
	lastRecv   int64 // when the last bench message arrived, unix nanoseconds
	hist       clientHist
}

// The markers of a bench message, found without decoding JSON.
var (
	seqKey = []byte(`"seq":`)
	tsKey  = []byte(`"ts":`)
)

// lost is the number of expected messages that never arrived.
func (c *client) lost(msgs int64) int64 {
	return c.missing + max(msgs-c.next, 0)
}

// read reads frames with ctx until stop reports true or the connection fails. Use
// context.Background() while the connection must stay open: cancelling a read's context
// closes a coder/websocket connection.
func (c *client) read(ctx context.Context, ws *websocket.Conn, stop func() bool) error {
	for !stop() {
		typ, rd, err := ws.Reader(ctx)
		if err != nil {
			return err
		}
		if c.buf, err = readFrame(rd, c.buf[:0]); err != nil {
			return err
		}
		if typ == websocket.MessageText {
			c.frame(ws, c.buf, time.Now().UnixNano())
		}
	}
	return nil
}

// readFrame reads rd to its end into buf, growing it if needed.
func readFrame(rd io.Reader, buf []byte) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 512)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// frame handles one text frame of ws: messages separated by '\n', all received at now.
func (c *client) frame(ws *websocket.Conn, b []byte, now int64) {
	var n int64
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		seq, ts, ok := scanBench(line)
		if !ok {
			c.control(ws, line)
			continue
		}
		c.record(seq, ts, now)
		n++
	}
	if n > 0 {
		c.frames++
		c.r.deliveries.Add(n)
	}
}

// record accounts for bench message seq, published at ts and received at now.
func (c *client) record(seq, ts, now int64) {
	c.delivered++
	c.hist.record(uint64(max(now-ts, 0) / 1000))
	if c.firstTS == 0 || ts < c.firstTS {
		c.firstTS = ts
	}
	c.lastRecv = now
	switch {
	case seq == c.next:
		c.next++
	case seq > c.next:
		c.missing += seq - c.next
		c.next = seq + 1
	default: // late: fills a gap counted as missing (or repeats a message)
		c.outOfOrder++
		if c.missing > 0 {
			c.missing--
		}
	}
	if !c.done && c.next >= int64(c.r.cfg.Msgs) {
		c.done = true
		if !c.slow {
			c.r.clientFinished()
		}
	}
}

// control handles a message that is not a bench message: the subscribe reply, errors,
// the protocol's pings (answered on ws; nil in tests), and anything else (ignored).
func (c *client) control(ws *websocket.Conn, line []byte) {
	p := &c.r.proto
	switch {
	case !c.acked && bytes.Contains(line, p.ack):
		c.acked = true
		c.r.clientSubscribed()
	case p.isPing(line):
		if ws != nil {
			_ = ws.Write(context.Background(), websocket.MessageText, p.pong) // a failure ends the read too
		}
	case bytes.Contains(line, p.errorKey):
		c.errors++
		if !c.acked {
			c.r.fail(fmt.Errorf("client %d: subscribe to %q refused: %s", c.idx, c.channel, line))
		}
	}
}

// scanBench extracts seq and ts from a bench message, {..."data":{"seq":N,"ts":N,...}},
// without decoding it.
func scanBench(line []byte) (seq, ts int64, ok bool) {
	i := bytes.Index(line, seqKey)
	if i < 0 {
		return 0, 0, false
	}
	rest := line[i+len(seqKey):]
	if seq, ok = parseInt(rest); !ok {
		return 0, 0, false
	}
	j := bytes.Index(rest, tsKey)
	if j < 0 {
		return 0, 0, false
	}
	ts, ok = parseInt(rest[j+len(tsKey):])
	return seq, ts, ok
}

// parseInt parses the non-negative decimal integer at the start of b, after optional
// spaces.
func parseInt(b []byte) (int64, bool) {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	var v int64
	n := 0
	for ; n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9'; n++ {
		v = v*10 + int64(b[n]-'0')
	}
	return v, n > 0
}
