package wspub

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
)

// hijackWriter wraps the ResponseWriter handed to websocket.Accept so the hub keeps the
// hijacked net.Conn: it sets write deadlines on it (cheaper than a context per write) and
// closes it to bound a close handshake the peer never answers.
type hijackWriter struct {
	http.ResponseWriter
	conn net.Conn
}

// hijackReadBuffer is the read buffer of a hijacked connection. net/http's is 4 KiB and
// stays with the connection for its whole life; client messages are small, and larger
// reads bypass the buffer, so a small one costs idle connections less.
const hijackReadBuffer = 512

// hijackWriteBuffer is the size of the bufio.Writer coder/websocket frames into. It holds
// any control frame (at most 127 bytes) whole; larger frames pass through a frameWriter,
// which still hands each one to the kernel in one call.
const hijackWriteBuffer = 128

// Hijack hijacks the wrapped ResponseWriter and remembers the connection. net/http's
// 4 KiB write buffer is replaced by a small one over a frameWriter, and, unless the client
// has already sent bytes after its handshake, its 4 KiB read buffer by a smaller one.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	w.conn = c
	r := brw.Reader
	if r.Buffered() == 0 {
		r = bufio.NewReaderSize(c, hijackReadBuffer)
	}
	bw := bufio.NewWriterSize(&frameWriter{conn: c}, hijackWriteBuffer)
	return c, bufio.NewReadWriter(r, bw), nil
}

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// frameWriter sits between coder/websocket's bufio.Writer and the socket. With a small
// bufio.Writer, a frame larger than its buffer arrives in two writes: the full buffer
// (header and the payload's start), then the rest of the payload straight from the
// caller. frameWriter follows the frame boundaries in the byte stream and holds such a
// start until the rest arrives, then writes both with one writev(2): one system call per
// frame, as with net/http's 4 KiB buffer, without keeping 4 KiB per idle connection.
//
// It only delays bytes of a frame whose remainder is being written by the same
// bufio.Writer.Write call, never reorders them, and stops following (passing every write
// straight through) if the stream ever stops looking like server frames. Its writes are
// serialized by coder/websocket, which writes every frame under one mutex.
type frameWriter struct {
	conn   net.Conn
	rem    int64 // bytes of the current frame not yet seen; 0 at a frame boundary
	lost   bool  // the stream could not be parsed: pass everything through
	held   int   // bytes in hold
	hold   [hijackWriteBuffer]byte
	chunks [2][]byte   // backing array of bufs: no allocation per writev
	bufs   net.Buffers // what writev is given
}

func (w *frameWriter) Write(p []byte) (int, error) {
	if w.lost {
		return w.conn.Write(p)
	}
	w.advance(p)
	if w.held == 0 {
		if w.rem > 0 && len(p) <= len(w.hold) { // a frame's start: its rest follows
			w.held = copy(w.hold[:], p)
			return len(p), nil
		}
		return w.conn.Write(p)
	}
	w.chunks = [2][]byte{w.hold[:w.held], p}
	w.bufs = w.chunks[:]
	n, err := w.bufs.WriteTo(w.conn)
	n -= int64(w.held)
	w.held, w.chunks, w.bufs = 0, [2][]byte{}, nil
	if err != nil {
		return int(max(n, 0)), err
	}
	return len(p), nil
}

// advance follows the frame boundaries through p.
func (w *frameWriter) advance(p []byte) {
	for len(p) > 0 {
		if w.rem == 0 {
			size, ok := frameSize(p)
			if !ok {
				w.lost = true
				return
			}
			w.rem = size
		}
		k := min(w.rem, int64(len(p)))
		w.rem -= k
		p = p[k:]
	}
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
