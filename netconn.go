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

// Hijack hijacks the wrapped ResponseWriter and remembers the connection.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.conn = c
	}
	return c, brw, err
}

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
