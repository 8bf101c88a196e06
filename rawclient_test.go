package wspub

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wsframe"
)

// rawConn is a WebSocket client written on a bare TCP connection, for what a library
// client will not do: leave with a FIN or an RST and no close frame, never answer a
// ping, send control frames, fragments or close reasons of its own choosing.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// rawDialer configures dialRaw.
type rawDialer struct {
	header  http.Header
	rcvbuf  int // SO_RCVBUF before connect, if positive: a small window fills the server's socket quickly
	timeout time.Duration
}

// dialRaw performs the WebSocket handshake on a new TCP connection and returns the
// connection, or the handshake's error.
func (d rawDialer) dial(wsURL string) (*rawConn, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	nd := net.Dialer{Timeout: 5 * time.Second}
	if d.rcvbuf > 0 {
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, d.rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	nc, err := nd.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	timeout := d.timeout
	if timeout == 0 {
		timeout = testTimeout
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	path := u.RequestURI()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: %s\r\n", path, u.Host, Subprotocol)
	for k, vs := range d.header {
		for _, v := range vs {
			req += k + ": " + v + "\r\n"
		}
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		_ = nc.Close()
		return nil, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_ = nc.Close()
		return nil, fmt.Errorf("handshake: HTTP %d", resp.StatusCode)
	}
	return &rawConn{Conn: nc, br: br}, nil
}

// dialRaw dials with default options and fails the test if the handshake fails.
func dialRaw(t testing.TB, wsURL string) *rawConn {
	t.Helper()
	c, err := rawDialer{}.dial(wsURL)
	require.NoError(t, err)
	return c
}

// writeFrame writes one masked client frame.
func (c *rawConn) writeFrame(op byte, fin bool, payload []byte) error {
	return writeClientFrame(c.Conn, op, fin, payload)
}

// appendClientFrame appends a masked client frame, with a zero mask, which leaves the
// payload as it is, to b.
func appendClientFrame(b []byte, op byte, fin bool, payload []byte) []byte {
	return wsframe.AppendClient(b, op, fin, 0, payload)
}

func writeClientFrame(w io.Writer, op byte, fin bool, payload []byte) error {
	_, err := w.Write(appendClientFrame(nil, op, fin, payload))
	return err
}

// sendText sends one text message.
func (c *rawConn) sendText(t testing.TB, s string) {
	t.Helper()
	require.NoError(t, c.writeFrame(wsframe.OpText, true, []byte(s)))
}

// readFrame reads one server frame (servers never mask).
func (c *rawConn) readFrame() (op byte, payload []byte, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return hdr[0] & 0x0f, payload, err
}

// readUntil reads frames until one of opcode op arrives (answering nothing on the way)
// and returns its payload.
func (c *rawConn) readUntil(op byte) ([]byte, error) {
	for {
		got, payload, err := c.readFrame()
		if err != nil {
			return nil, err
		}
		if got == op {
			return payload, nil
		}
	}
}

// closeHandshake sends a close frame, reads until the server's, and closes the socket.
func (c *rawConn) closeHandshake() error {
	defer c.Close()
	if err := c.writeFrame(wsframe.OpClose, true, []byte{0x03, 0xe8}); err != nil { // 1000
		return err
	}
	_, err := c.readUntil(wsframe.OpClose)
	return err
}

// answerClose reads until the server's close frame, echoes it and closes the socket.
func (c *rawConn) answerClose() error {
	defer c.Close()
	payload, err := c.readUntil(wsframe.OpClose)
	if err != nil {
		return err
	}
	return c.writeFrame(wsframe.OpClose, true, payload)
}

// reset closes the TCP connection with an RST instead of a FIN.
func (c *rawConn) reset() error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c.Close()
}

// closeCode returns the code of a close frame's payload, or 1005 for an empty one.
func closeCode(payload []byte) int {
	if len(payload) < 2 {
		return 1005
	}
	return int(binary.BigEndian.Uint16(payload))
}

// waitClosed waits until the server has closed the connection: a read returns an error
// (EOF or a reset) after whatever the server still sent.
func (c *rawConn) waitClosed(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(d)
	}
	_, err := io.Copy(io.Discard, c.br)
	if err == nil {
		return nil // EOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return nil // reset by the server
}
