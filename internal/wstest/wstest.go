// Package wstest holds the WebSocket test-client helpers that the tests of wspub, its
// broker adapters, its examples and its tools share: dialing a hub with the wspub.v1
// subprotocol under a deadline, reading frames and splitting them on '\n' into JSON
// messages, expecting a message, subscribing, proving with a ping round trip that nothing
// else is pending, reading until the close, a slog.Handler that records what is logged,
// skipping a test whose service is missing (failing it on CI), GETting JSON, and the
// TestMain of tests that run their own binary as a child process.
//
// It imports only the standard library, github.com/coder/websocket,
// github.com/stretchr/testify and go.uber.org/goleak, never github.com/wspub/wspub
// itself, so that the tests of package wspub can use it without an import cycle.
package wstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// Subprotocol is the WebSocket subprotocol of the wspub protocol, wspub.Subprotocol,
// which this package cannot import.
const Subprotocol = "wspub.v1"

// DefaultTimeout bounds dialing and all reading and writing of a Conn dialed with neither
// a Context nor a Timeout.
const DefaultTimeout = 30 * time.Second

// Msg is any message of the wspub protocol as a client receives it: one line of a frame.
type Msg struct {
	Type    string          `json:"type"`              // the message type: "subscribed", "error", an application type
	Channel string          `json:"channel,omitempty"` // the channel, if it is about or from one
	ID      string          `json:"id,omitempty"`      // the id of the client message it answers
	Code    string          `json:"code,omitempty"`    // an error's code
	Message string          `json:"message,omitempty"` // an error's explanation
	Data    json.RawMessage `json:"data,omitempty"`    // the payload, as the server wrote it
}

// Data decodes the data of m as a T, failing the test if it is not one.
func Data[T any](t testing.TB, m Msg) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(m.Data, &v), "data %s", m.Data)
	return v
}

// DialOptions configures Dial and TryDial. The zero value dials with the wspub.v1
// subprotocol under DefaultTimeout.
type DialOptions struct {
	// Context bounds the dial and every read and write of the Conn (with Timeout, if
	// set). Nil means context.Background() with DefaultTimeout, unless Timeout is set.
	Context context.Context
	// Timeout, if positive, bounds the dial and all I/O of the Conn from the moment of
	// dialing, within Context.
	Timeout time.Duration
	// Subprotocols are offered in this order; nil offers Subprotocol alone.
	Subprotocols []string
	// Header is sent with the handshake request.
	Header http.Header
	// HTTPClient, if not nil, performs the handshake.
	HTTPClient *http.Client
	// ReadLimit is the largest message the Conn accepts: 0 keeps the library's default
	// (32 KiB), -1 means no limit.
	ReadLimit int64
	// Background makes a goroutine read the frames as they come and queue them, so that
	// TryNext can wait for a message with a timeout: cancelling a read of a
	// coder/websocket connection closes it. A background Conn always reads, so a test
	// cannot stall it to fill the server's queue.
	Background bool
	// KeepWelcome makes the hub's welcome, the first message of every connection, a
	// message like the others; by default the Conn sets it aside (see Conn.Welcome), so
	// that a test reads what follows it.
	KeepWelcome bool
	// MessageTimeout, with Background, bounds how long Next, Expect and the helpers built
	// on them wait for each message; 0 waits until the context ends.
	MessageTimeout time.Duration
}

// frame is one WebSocket message as read.
type frame struct {
	typ  websocket.MessageType
	data []byte
}

// Conn is a real WebSocket client of a wspub hub, dialed by Dial or TryDial. It splits
// every frame on '\n' into messages. Its methods fail the test through the testing.TB it
// was dialed with, most of them with t.FailNow, which testing wants called on the test's
// goroutine; NextRaw and CloseErr only report with t.Errorf, so they suit a goroutine of
// their own. A Conn is not safe for concurrent use.
type Conn struct {
	// WS is the underlying connection, for writing other frames and for closing.
	WS *websocket.Conn
	// Resp is the response to the handshake request.
	Resp *http.Response

	t       testing.TB
	ctx     context.Context
	msgWait time.Duration

	pending     [][]byte              // the lines of the last frame not read yet
	pendingType websocket.MessageType // the type of that frame
	frames      int

	keepWelcome bool
	first       bool   // the first message has been read
	welcome     []byte // the welcome, once set aside

	// Background mode.
	queue   chan frame
	done    chan struct{} // the reading goroutine has exited
	readErr error         // why it exited, set before done is closed
}

// Dial connects to the hub at url (ws://...) and fails the test unless the handshake
// succeeds with status 101 and the server selects Subprotocol. Cleanup closes the
// connection.
func Dial(t testing.TB, url string, opts *DialOptions) *Conn {
	t.Helper()
	c, resp, err := TryDial(t, url, opts)
	require.NoError(t, err, "dial %s", url)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Equal(t, Subprotocol, c.WS.Subprotocol(), "the server selects %s, and only it", Subprotocol)
	return c
}

// TryDial connects to the hub at url and returns the client, or nil with the handshake's
// response (nil if there was none) and the error. It asserts nothing. Cleanup closes the
// connection.
func TryDial(t testing.TB, url string, opts *DialOptions) (*Conn, *http.Response, error) {
	t.Helper()
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	parent := o.Context
	if parent == nil {
		parent = context.Background()
		if o.Timeout <= 0 {
			o.Timeout = DefaultTimeout
		}
	}
	ctx, cancel := parent, context.CancelFunc(func() {})
	if o.Timeout > 0 {
		ctx, cancel = context.WithTimeout(parent, o.Timeout)
	}
	protocols := o.Subprotocols
	if protocols == nil {
		protocols = []string{Subprotocol}
	}
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: protocols,
		HTTPHeader:   o.Header,
		HTTPClient:   o.HTTPClient,
	})
	if err != nil {
		cancel()
		return nil, resp, err
	}
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	if o.ReadLimit != 0 {
		ws.SetReadLimit(o.ReadLimit)
	}
	c := &Conn{WS: ws, Resp: resp, t: t, ctx: ctx, msgWait: o.MessageTimeout, keepWelcome: o.KeepWelcome}
	if o.Background {
		c.queue = make(chan frame, 1<<14)
		c.done = make(chan struct{})
		go c.readLoop()
		t.Cleanup(func() {
			_ = ws.CloseNow()
			<-c.done
			cancel()
		})
	} else {
		t.Cleanup(func() {
			_ = ws.CloseNow()
			cancel()
		})
	}
	return c, resp, nil
}

// readLoop queues the frames of a background Conn until the connection ends.
func (c *Conn) readLoop() {
	defer close(c.done)
	for {
		typ, b, err := c.WS.Read(c.ctx)
		if err != nil {
			c.readErr = err
			return
		}
		select {
		case c.queue <- frame{typ, b}:
		case <-c.ctx.Done():
			c.readErr = c.ctx.Err()
			return
		}
	}
}

// errTimeout is returned by readFrame when no frame came in time.
var errTimeout = errors.New("no message in time")

// readFrame returns the next frame. A background Conn waits at most wait (if positive).
func (c *Conn) readFrame(wait time.Duration) (frame, error) {
	if c.queue == nil {
		typ, b, err := c.WS.Read(c.ctx)
		return frame{typ, b}, err
	}
	var timeout <-chan time.Time
	if wait > 0 {
		tm := time.NewTimer(wait)
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case f := <-c.queue:
		return f, nil
	case <-c.done:
		select {
		case f := <-c.queue:
			return f, nil
		default:
			return frame{}, c.readErr
		}
	case <-timeout:
		return frame{}, fmt.Errorf("%w: none within %v", errTimeout, wait)
	}
}

// line returns the next message, reading a frame when none is left of the last one, and
// the type of its frame. It sets the welcome aside, unless told to keep it.
func (c *Conn) line(wait time.Duration) (websocket.MessageType, []byte, error) {
	for {
		typ, m, err := c.nextLine(wait)
		if err != nil || c.first {
			return typ, m, err
		}
		c.first = true
		if c.keepWelcome || !bytes.HasPrefix(m, []byte(`{"type":"welcome"`)) {
			return typ, m, err
		}
		c.welcome = m
	}
}

// Welcome returns the hub's welcome message, reading it if the test has read nothing
// yet, and fails the test if the connection did not start with one.
func (c *Conn) Welcome() Msg {
	c.t.Helper()
	if !c.first {
		typ, m, err := c.nextLine(c.msgWait)
		require.NoError(c.t, err)
		c.first = true
		if bytes.HasPrefix(m, []byte(`{"type":"welcome"`)) {
			c.welcome = m
		} else {
			c.pending = append([][]byte{m}, c.pending...)
			c.pendingType = typ
		}
	}
	require.NotNil(c.t, c.welcome, "the connection did not start with a welcome")
	return Decode(c.t, c.welcome)
}

func (c *Conn) nextLine(wait time.Duration) (websocket.MessageType, []byte, error) {
	for len(c.pending) == 0 {
		f, err := c.readFrame(wait)
		if err != nil {
			return 0, nil, err
		}
		c.frames++
		c.pendingType = f.typ
		c.pending = bytes.Split(f.data, []byte{'\n'})
	}
	m := c.pending[0]
	c.pending = c.pending[1:]
	return c.pendingType, m, nil
}

// Context returns the context that bounds the connection's reads and writes.
func (c *Conn) Context() context.Context { return c.ctx }

// Frames returns how many frames the test has read so far.
func (c *Conn) Frames() int { return c.frames }

// SendText sends frame as a text message, as it is.
func (c *Conn) SendText(frame string) {
	c.t.Helper()
	require.NoError(c.t, c.WS.Write(c.ctx, websocket.MessageText, []byte(frame)))
}

// Send sends v, encoded as JSON, as a text message.
func (c *Conn) Send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(c.t, err)
	require.NoError(c.t, c.WS.Write(c.ctx, websocket.MessageText, b))
}

// NextRaw returns the next message, undecoded, or the read error (the close, in
// particular). A message of a frame that is not text is reported with t.Errorf, so
// NextRaw may run in a goroutine of its own.
func (c *Conn) NextRaw() ([]byte, error) {
	typ, m, err := c.line(c.msgWait)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		c.t.Errorf("server sent a %v frame", typ)
	}
	return m, nil
}

// NextOrErr returns the next message, or the read error (the close, in particular). It
// fails the test if the message is not JSON of a text frame.
func (c *Conn) NextOrErr() (Msg, error) {
	c.t.Helper()
	typ, b, err := c.line(c.msgWait)
	if err != nil {
		return Msg{}, err
	}
	require.Equal(c.t, websocket.MessageText, typ, "frame type")
	return Decode(c.t, b), nil
}

// Next returns the next message and fails the test on a read error.
func (c *Conn) Next() Msg {
	c.t.Helper()
	m, err := c.NextOrErr()
	require.NoError(c.t, err)
	return m
}

// TryNext returns the next message, or false if none comes within d or the connection
// has ended. Only a Conn dialed with DialOptions.Background can wait with a timeout.
func (c *Conn) TryNext(d time.Duration) (Msg, bool) {
	c.t.Helper()
	require.NotNil(c.t, c.queue, "TryNext needs a Conn dialed with DialOptions.Background")
	typ, b, err := c.line(d)
	if err != nil {
		return Msg{}, false
	}
	require.Equal(c.t, websocket.MessageText, typ, "frame type")
	return Decode(c.t, b), true
}

// Decode decodes one message, failing the test if it is not a JSON object.
func Decode(t testing.TB, b []byte) Msg {
	t.Helper()
	var m Msg
	require.NoError(t, json.Unmarshal(b, &m), "server sent %q", b)
	return m
}

// Expect reads the next message and requires its type to be typ.
func (c *Conn) Expect(typ string) Msg {
	c.t.Helper()
	m := c.Next()
	require.Equal(c.t, typ, m.Type, "message %+v", m)
	return m
}

// ExpectError reads the next message, requires an error reply, and checks that it has
// code, echoes the id of the refused message and explains itself. The checks after the
// type do not stop the test, so that a table of cases reports every wrong reply.
func (c *Conn) ExpectError(code, id string) Msg {
	c.t.Helper()
	m := c.Expect("error")
	assert.Equal(c.t, code, m.Code, "%+v", m)
	assert.Equal(c.t, id, m.ID, "the error reply echoes the message's id")
	assert.NotEmpty(c.t, m.Message, "%+v", m)
	return m
}

// Until reads messages until one of type typ, and returns it.
func (c *Conn) Until(typ string) Msg {
	c.t.Helper()
	for {
		if m := c.Next(); m.Type == typ {
			return m
		}
	}
}

// Subscribe subscribes to channel with a message of the given id, and requires the next
// message to be its acknowledgement, {"type":"subscribed","channel":channel,"id":id}.
func (c *Conn) Subscribe(channel, id string) {
	c.t.Helper()
	c.Send(map[string]string{"type": "subscribe", "channel": channel, "id": id})
	require.Equal(c.t, Msg{Type: "subscribed", Channel: channel, ID: id}, c.Next())
}

// Unsubscribe unsubscribes from channel with a message of the given id, and requires the
// next message to be its acknowledgement.
func (c *Conn) Unsubscribe(channel, id string) {
	c.t.Helper()
	c.Send(map[string]string{"type": "unsubscribe", "channel": channel, "id": id})
	require.Equal(c.t, Msg{Type: "unsubscribed", Channel: channel, ID: id}, c.Next())
}

// RoundTrip sends a ping with the given id and waits for its pong, reading past
// whatever comes before it.
func (c *Conn) RoundTrip(id string) {
	c.t.Helper()
	c.Send(map[string]string{"type": "ping", "id": id})
	for {
		if m := c.Next(); m.Type == "pong" && m.ID == id {
			return
		}
	}
}

// NothingPending sends a ping with the given id and requires its pong as the very next
// message: the server had queued nothing else for this client.
func (c *Conn) NothingPending(id string) {
	c.t.Helper()
	c.Send(map[string]string{"type": "ping", "id": id})
	require.Equal(c.t, Msg{Type: "pong", ID: id}, c.Next(), "expected the pong and nothing before it")
}

// CloseErr reads until the connection ends and returns the read error, whose
// websocket.CloseStatus is the server's close code. Like NextRaw, it may run in a
// goroutine of its own.
func (c *Conn) CloseErr() error {
	for {
		if _, err := c.NextRaw(); err != nil {
			return err
		}
	}
}

// WSURL turns an http:// or https:// URL into the ws:// or wss:// one of the same place.
func WSURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

// Hub is what ServeHub serves: a wspub.Hub, or anything that handles WebSocket requests
// and closes its connections.
type Hub interface {
	http.Handler
	Close() error
}

// ServeHub serves h on an httptest server and returns its ws:// URL. Cleanup closes h,
// which closes the hijacked connections the server does not know of, then the server.
func ServeHub(t testing.TB, h Hub) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		_ = h.Close()
		srv.Close()
	})
	return WSURL(srv.URL)
}

// Unavailable skips a test whose service (Redis, NATS, a binary) is missing, except on
// CI (CI=true), where it fails it: a CI run must not pass by skipping.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// FreePort returns a loopback TCP port nothing listens on at the moment.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// GetJSON GETs url, requires 200 OK and decodes the JSON body into v.
func GetJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

// Main is the TestMain of a package whose tests run their own test binary as a child
// process, with the environment variable env set: then the binary exits with what child
// returns, given env's value, instead of running the tests. Otherwise it runs the tests
// and fails the run if one leaves a goroutine behind (goleak, with opts).
func Main(m *testing.M, env string, child func(value string) int, opts ...goleak.Option) {
	if v := os.Getenv(env); v != "" {
		os.Exit(child(v))
	}
	goleak.VerifyTestMain(m, opts...)
}
