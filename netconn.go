package wspub

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// hijackWriter wraps the ResponseWriter handed to websocket.Accept so the hub keeps the
// hijacked net.Conn: it sets write deadlines on it (cheaper than a context per write) and
// closes it to bound a close handshake the peer never answers.
type hijackWriter struct {
	http.ResponseWriter
	pool    *sync.Pool        // gather buffers for the frameWriter
	frames  func(n int) error // charges the frames the client sends (see frameReader)
	perRead int               // frames one read may pass on (frameReader.perRead)

	conn net.Conn     // set by Hijack
	wire *frameWriter // set by Hijack: what coder/websocket writes its frames to
}

// hijackReadBuffer is the read buffer of a hijacked connection. net/http's is 4 KiB and
// stays with the connection for its whole life; client messages are small, and larger
// reads bypass the buffer, so a small one costs idle connections less.
const hijackReadBuffer = 512

// hijackWriteBuffer is the size of the bufio.Writer coder/websocket frames into. It holds
// any control frame (at most 127 bytes) whole; the writer loop's data frames are gathered
// by the frameWriter beneath it.
const hijackWriteBuffer = 128

// maxGatherBuffer is the largest gather buffer kept for reuse.
const maxGatherBuffer = 64 << 10

// Hijack hijacks the wrapped ResponseWriter and remembers the connection. net/http's
// 4 KiB write buffer is replaced by a small one over a frameWriter, and its 4 KiB read
// buffer by a small one. Reads go through a frameReader, which serves first what the
// client sent after its handshake (copied out of net/http's buffer): it is the net.Conn
// returned, because coder/websocket reads through the connection it is given, not
// through the source of the bufio.Reader.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	w.conn = c
	w.wire = &frameWriter{conn: c, pool: w.pool}
	rc := c
	if n := brw.Reader.Buffered(); n > 0 || w.frames != nil {
		fr := &frameConn{Conn: c, r: frameReader{src: c, charge: w.frames, perRead: w.perRead}}
		if n > 0 {
			b, _ := brw.Reader.Peek(n)
			fr.r.prefix = bytes.Clone(b)
		}
		rc = fr
	}
	r := bufio.NewReaderSize(rc, hijackReadBuffer)
	bw := bufio.NewWriterSize(w.wire, hijackWriteBuffer)
	return rc, bufio.NewReadWriter(r, bw), nil
}

// frameConn is the hijacked connection as coder/websocket reads it: through a
// frameReader.
type frameConn struct {
	net.Conn
	r frameReader
}

func (c *frameConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// frameWriter sits between coder/websocket's bufio.Writer and the socket. Outside the
// writer loop it passes every write straight through. The writer loop corks it while it
// writes several frames in a row and uncorks it after the last: the frames are gathered
// in a pooled buffer and reach the kernel with one write(2), which costs about as much
// for 16 KiB as for 100 bytes on this path. A control frame (ping, pong, close) is
// never held: coder/websocket may wait for the peer's answer to one, or close the socket
// right after one, so it flushes what is gathered and itself at once. Bytes are never
// reordered.
//
// frameWriter follows the frame boundaries in the byte stream to find control frames. If
// the stream ever stops looking like server frames, it stops gathering for good.
type frameWriter struct {
	conn net.Conn
	pool *sync.Pool // of *[]byte gather buffers, shared by the hub's connections

	mu     sync.Mutex // coder/websocket serializes its writes; cork and uncork come from the writer loop
	rem    int64      // bytes of the current frame not yet seen; 0 at a frame boundary
	lost   bool       // the stream could not be parsed: pass everything through
	gather *[]byte    // non-nil while corked
	err    error      // the first failed write while corked
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if w.rem == 0 && !w.lost {
		p = validCloseFrame(p)
	}
	control := w.advance(p)
	if w.gather == nil {
		if _, err := w.conn.Write(p); err != nil {
			return 0, err
		}
		return n, nil
	}
	if w.err != nil {
		return 0, w.err
	}
	*w.gather = append(*w.gather, p...)
	if control || w.lost {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// errMidFrame is writeControl's answer when the stream is not at a frame boundary.
var errMidFrame = errors.New("wspub: not at a frame boundary")

// writeControl writes a whole control frame (the heartbeat's ping) between two frames
// of the stream, at once. It returns errMidFrame, and writes nothing, if a frame is
// under way or the stream was lost; the writer loop, the only writer of data frames,
// calls it between them, and coder/websocket writes its own control frames whole.
func (w *frameWriter) writeControl(frame []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lost || w.rem != 0 {
		return errMidFrame
	}
	if w.gather != nil {
		if w.err != nil {
			return w.err
		}
		*w.gather = append(*w.gather, frame...)
		return w.flushLocked()
	}
	_, err := w.conn.Write(frame)
	return err
}

// validCloseFrame returns p, unless p is exactly one close frame whose reason is not
// UTF-8: coder/websocket echoes a peer's close reason as it came, and RFC 6455 wants a
// connection whose peer sent one failed with 1007. Then it returns a close frame with
// 1007 and a reason that says so.
func validCloseFrame(p []byte) []byte {
	if len(p) < 4 || p[0] != 0x80|0x8 || p[1]&0x80 != 0 || int(p[1]) != len(p)-2 {
		return p
	}
	if utf8.Valid(p[4:]) {
		return p
	}
	f := make([]byte, 0, 4+len(invalidCloseReason))
	f = append(f, 0x80|0x8, byte(2+len(invalidCloseReason)))
	f = binary.BigEndian.AppendUint16(f, uint16(websocket.StatusInvalidFramePayloadData))
	return append(f, invalidCloseReason...)
}

// cork starts gathering writes, unless they are gathered already. It reports false if
// they cannot be: the stream is lost, and writes go to the socket.
func (w *frameWriter) cork() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lost {
		return false
	}
	if w.gather != nil {
		return true
	}
	w.gather, _ = w.pool.Get().(*[]byte)
	if w.gather == nil {
		w.gather = new([]byte)
	}
	return true
}

// uncork writes what was gathered with one write and stops gathering. It returns the
// first error of a write since cork.
func (w *frameWriter) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gather == nil {
		return nil
	}
	err := w.flushLocked() // which empties the buffer
	if cap(*w.gather) <= maxGatherBuffer {
		w.pool.Put(w.gather)
	}
	w.gather, w.err = nil, nil
	return err
}

func (w *frameWriter) flushLocked() error {
	if w.err == nil && len(*w.gather) > 0 {
		_, w.err = w.conn.Write(*w.gather)
	}
	*w.gather = (*w.gather)[:0]
	return w.err
}

// advance follows the frame boundaries through p and reports whether a control frame
// starts in it.
func (w *frameWriter) advance(p []byte) (control bool) {
	for len(p) > 0 && !w.lost {
		if w.rem == 0 {
			size, ok := frameSize(p)
			if !ok {
				w.lost = true
				return false
			}
			control = control || p[0]&0x08 != 0
			w.rem = size
		}
		k := min(w.rem, int64(len(p)))
		w.rem -= k
		p = p[k:]
	}
	return control
}

// frameSize returns the length, header included, of the unmasked frame (RFC 6455
// section 5.2) whose header starts p; ok is false when p does not hold the whole header
// or it describes a masked frame, which a server never sends.
func frameSize(p []byte) (size int64, ok bool) {
	if len(p) < 2 || p[1]&0x80 != 0 {
		return 0, false
	}
	switch n := int64(p[1] & 0x7f); n {
	case 126:
		if len(p) < 4 {
			return 0, false
		}
		return 4 + int64(binary.BigEndian.Uint16(p[2:4])), true
	case 127:
		if len(p) < 10 || p[2]&0x80 != 0 {
			return 0, false
		}
		return 10 + int64(binary.BigEndian.Uint64(p[2:10])), true
	default:
		return 2 + n, true
	}
}
