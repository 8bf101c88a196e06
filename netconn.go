package wspub

import (
	"bufio"
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

// Hijack hijacks the wrapped ResponseWriter and remembers the connection. Unless the
// client has already sent bytes after its handshake, the 4 KiB read buffer of net/http is
// replaced by a smaller one.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	w.conn = c
	if brw.Reader.Buffered() == 0 {
		brw = bufio.NewReadWriter(bufio.NewReaderSize(c, hijackReadBuffer), brw.Writer)
	}
	return c, brw, nil
}

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
