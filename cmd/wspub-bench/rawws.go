package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/wspub/wspub"

	"github.com/wspub/wspub/internal/wsframe"
)

// rawConn is a WebSocket client on a socket of its own, for what a WebSocket library will
// not do: leave with a TCP FIN or RST instead of a close frame, stop answering pings,
// flood the server with control or continuation frames. It does the HTTP upgrade by hand
// and speaks RFC 6455 framing: its frames are masked, the server's must not be. It
// negotiates no extension. Reads belong to one goroutine; writes may come from any.
type rawConn struct {
	tcp  *net.TCPConn // the socket, for SO_LINGER and half-closing
	conn net.Conn     // what frames go through: tcp, or TLS over it for wss
	br   *bufio.Reader

	wmu  sync.Mutex // one frame at a time
	wbuf []byte
	rng  *mrand.PCG // mask keys; they need not be unpredictable to a bench server

	msg []byte // the data message being read, reused

	closeSent bool // a close frame or a FIN was written: no more frames; guarded by wmu

	// onClose, if set, is called by next with the server's close frame before the close
	// is answered: the answer waits for any write in progress, which may never end if
	// the server has stopped reading.
	onClose func(*closeError)
}

// rawDialOptions configures dialRaw.
type rawDialOptions struct {
	Header      http.Header   // sent with the upgrade request
	ReadBuffer  int           // if positive, the socket's receive buffer (SO_RCVBUF), set before the upgrade
	Timeout     time.Duration // bounds the TCP connect, TLS and the upgrade; 0: 10s
	ReaderBytes int           // size of the read buffer; 0: 4 KiB
}

// handshakeError is an upgrade the server refused.
type handshakeError struct {
	Status int
	Body   string
}

func (e *handshakeError) Error() string {
	return fmt.Sprintf("upgrade refused: HTTP %d %s", e.Status, strings.TrimSpace(e.Body))
}

// wsGUID is the key suffix of RFC 6455, section 1.3.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxRawMessage bounds a data message a rawConn reads: far above the frames of a batch of
// bench messages.
const maxRawMessage = 64 << 20

// dialRaw connects to the WebSocket URL (ws:// or wss://), upgrades with the wspub.v1
// subprotocol and returns the connection.
func dialRaw(ctx context.Context, wsURL string, opts rawDialOptions) (*rawConn, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("not a ws:// or wss:// URL: %q", wsURL)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "wss" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	tcp := nc.(*net.TCPConn)
	if opts.ReadBuffer > 0 {
		_ = tcp.SetReadBuffer(opts.ReadBuffer)
	}
	var conn net.Conn = tcp
	if u.Scheme == "wss" {
		tc := tls.Client(tcp, &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = tcp.Close()
			return nil, err
		}
		conn = tc
	}
	size := opts.ReaderBytes
	if size <= 0 {
		size = 4 << 10
	}
	c := &rawConn{tcp: tcp, conn: conn, br: bufio.NewReaderSize(conn, size),
		rng: mrand.NewPCG(mrand.Uint64(), mrand.Uint64())}
	// The deadline bounds the upgrade; the context's end interrupts it too.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	err = c.upgrade(u, opts.Header)
	if !stop() || err != nil {
		_ = tcp.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// upgrade sends the upgrade request and checks the answer.
func (c *rawConn) upgrade(u *url.URL, header http.Header) error {
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	path := u.RequestURI()
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, u.Host)
	fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n", k, wspub.Subprotocol)
	if header.Get("User-Agent") == "" {
		b.WriteString("User-Agent: wspub-bench\r\n")
	}
	_ = header.Write(&b)
	b.WriteString("\r\n")
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return fmt.Errorf("reading the upgrade response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return &handshakeError{Status: resp.StatusCode, Body: string(body)}
	}
	sum := sha1.Sum([]byte(k + wsGUID))
	switch {
	case !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"):
		return errors.New("upgrade response without Upgrade: websocket")
	case resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]):
		return errors.New("upgrade response with a wrong Sec-WebSocket-Accept")
	case resp.Header.Get("Sec-WebSocket-Protocol") != wspub.Subprotocol:
		return fmt.Errorf("the server chose subprotocol %q, not %s", resp.Header.Get("Sec-WebSocket-Protocol"), wspub.Subprotocol)
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		return fmt.Errorf("the server chose extensions %q, none were offered", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	return nil
}

// appendFrame appends one client frame, masked with a random key, to b.
func (c *rawConn) appendFrame(b []byte, op byte, fin bool, payload []byte) []byte {
	return wsframe.AppendClient(b, op, fin, uint32(c.rng.Uint64()), payload)
}

// writeFrame writes one masked frame. After a close frame nothing more is written.
func (c *rawConn) writeFrame(op byte, fin bool, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	c.wbuf = c.appendFrame(c.wbuf[:0], op, fin, payload)
	if op == wsframe.OpClose {
		c.closeSent = true
	}
	_, err := c.conn.Write(c.wbuf)
	return err
}

// writeRaw writes frames encoded already (by appendFrame) as they are, and returns how
// many bytes went out.
func (c *rawConn) writeRaw(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return 0, net.ErrClosed
	}
	return c.conn.Write(b)
}

// writeClose starts the close handshake with code.
func (c *rawConn) writeClose(code websocket.StatusCode, reason string) error {
	p := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	return c.writeFrame(wsframe.OpClose, true, append(p, reason...))
}

// closeError is a close frame the server sent.
type closeError struct {
	Code   websocket.StatusCode // 1005 (no status) if the frame had none
	Reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("close %d %q", int(e.Code), e.Reason)
}

// next returns the next data message (text or binary, its frames joined; valid until
// the next call) with its opcode. It answers pings with a pong when answer() reports
// true and ignores pongs. A close frame from the server is answered with one (unless
// ours went first; after onClose) and returned as a *closeError.
func (c *rawConn) next(answer func() bool) (byte, []byte, error) {
	var hdr [14]byte
	c.msg = c.msg[:0]
	var msgOp byte
	inMessage := false
	for {
		if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
			return 0, nil, err
		}
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0F
		if hdr[0]&0x70 != 0 {
			return 0, nil, fmt.Errorf("server frame with reserved bits 0x%02x", hdr[0]&0x70)
		}
		if hdr[1]&0x80 != 0 {
			return 0, nil, errors.New("masked server frame")
		}
		n := uint64(hdr[1] & 0x7F)
		switch n {
		case 126:
			if _, err := io.ReadFull(c.br, hdr[2:4]); err != nil {
				return 0, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			if _, err := io.ReadFull(c.br, hdr[2:10]); err != nil {
				return 0, nil, err
			}
			n = binary.BigEndian.Uint64(hdr[2:10])
		}
		if op >= wsframe.OpClose { // control frame
			if n > 125 || !fin {
				return 0, nil, fmt.Errorf("invalid control frame (opcode %d, %d bytes, fin %v)", op, n, fin)
			}
			var p [125]byte
			if _, err := io.ReadFull(c.br, p[:n]); err != nil {
				return 0, nil, err
			}
			switch op {
			case wsframe.OpPing:
				if answer() {
					if err := c.writeFrame(wsframe.OpPong, true, p[:n]); err != nil && !errors.Is(err, net.ErrClosed) {
						return 0, nil, err
					}
				}
			case wsframe.OpPong:
			case wsframe.OpClose:
				ce := &closeError{Code: websocket.StatusNoStatusRcvd}
				if n >= 2 {
					ce.Code = websocket.StatusCode(binary.BigEndian.Uint16(p[:2]))
					ce.Reason = string(p[2:n])
				}
				code := ce.Code
				if code == websocket.StatusNoStatusRcvd {
					code = websocket.StatusNormalClosure
				}
				if c.onClose != nil {
					c.onClose(ce)
				}
				_ = c.writeClose(code, "") // does nothing if ours went first
				return 0, nil, ce
			default:
				return 0, nil, fmt.Errorf("unknown opcode %d", op)
			}
			continue
		}
		switch {
		case op == wsframe.OpContinuation && !inMessage:
			return 0, nil, errors.New("continuation frame outside a message")
		case op != wsframe.OpContinuation && inMessage:
			return 0, nil, errors.New("new message inside a fragmented one")
		case op != wsframe.OpContinuation && op != wsframe.OpText && op != wsframe.OpBinary:
			return 0, nil, fmt.Errorf("unknown opcode %d", op)
		case uint64(len(c.msg))+n > maxRawMessage:
			return 0, nil, fmt.Errorf("message of more than %d bytes", maxRawMessage)
		}
		if op != wsframe.OpContinuation {
			msgOp, inMessage = op, true
		}
		start := len(c.msg)
		c.msg = slices.Grow(c.msg, int(n))[:start+int(n)]
		if _, err := io.ReadFull(c.br, c.msg[start:]); err != nil {
			return 0, nil, err
		}
		if fin {
			return msgOp, c.msg, nil
		}
	}
}

// closeWrite sends a TCP FIN (after TLS close_notify on wss) without a close frame: the
// server reads end of file. Nothing is written after it (pings go unanswered).
func (c *rawConn) closeWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.closeSent = true
	if tc, ok := c.conn.(*tls.Conn); ok {
		return tc.CloseWrite()
	}
	return c.tcp.CloseWrite()
}

// reset closes the socket with a TCP RST: SO_LINGER 0 discards what is unsent.
func (c *rawConn) reset() error {
	_ = c.tcp.SetLinger(0)
	return c.tcp.Close()
}

// Close closes the socket.
func (c *rawConn) Close() error { return c.tcp.Close() }
