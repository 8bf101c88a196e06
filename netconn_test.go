package wspub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wstest"
)

// header returns the header of an unmasked final text frame with a payload of n bytes.
func header(n int) []byte {
	switch {
	case n < 126:
		return []byte{0x81, byte(n)}
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16([]byte{0x81, 126}, uint16(n))
	default:
		return binary.BigEndian.AppendUint64([]byte{0x81, 127}, uint64(n))
	}
}

func TestFrameSize(t *testing.T) {
	tests := []struct {
		name string
		p    []byte
		size int64
		ok   bool
	}{
		{"empty payload", header(0), 2, true},
		{"7-bit length", header(125), 127, true},
		{"16-bit length", header(126), 4 + 126, true},
		{"16-bit length max", header(0xffff), 4 + 0xffff, true},
		{"64-bit length", header(0x10000), 10 + 0x10000, true},
		{"one byte", []byte{0x81}, 0, false},
		{"16-bit length cut", []byte{0x81, 126, 1}, 0, false},
		{"64-bit length cut", []byte{0x81, 127, 0, 0, 0}, 0, false},
		{"masked", []byte{0x81, 0x85, 1, 2, 3, 4}, 0, false},
		{"64-bit length with the top bit", []byte{0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size, ok := frameSize(tt.p)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.size, size)
		})
	}
}

// callConn is a net.Conn that records which frameWriter.Write call each byte it is
// given arrived in.
type callConn struct {
	net.Conn
	call  *int
	bytes []byte
	calls []int // calls[i] is the call that wrote bytes[i]
}

func (c *callConn) Write(p []byte) (int, error) {
	c.bytes = append(c.bytes, p...)
	for range p {
		c.calls = append(c.calls, *c.call)
	}
	return len(p), nil
}

// countingWriter counts the calls made to the frameWriter under it.
type countingWriter struct {
	fw   *frameWriter
	call *int
}

func (w countingWriter) Write(p []byte) (int, error) {
	*w.call++
	return w.fw.Write(p)
}

// TestFrameWriterOneCallPerFrame writes frames the way coder/websocket does (header,
// payload, flush) through a bufio.Writer of the hub's size, and checks that every frame
// reaches the socket whole within one call (one writev(2) on a TCP connection), and the
// stream unchanged.
func TestFrameWriterOneCallPerFrame(t *testing.T) {
	call := 0
	conn := &callConn{call: &call}
	fw := &frameWriter{conn: conn}
	bw := bufio.NewWriterSize(countingWriter{fw, &call}, hijackWriteBuffer)

	sizes := []int{0, 5, 125, 126, hijackWriteBuffer - 4, hijackWriteBuffer - 3, hijackWriteBuffer, 2500, 70000, 1}
	var want []byte
	var starts []int
	for i, n := range sizes {
		payload := bytes.Repeat([]byte{byte('a' + i)}, n)
		starts = append(starts, len(want))
		want = append(append(want, header(n)...), payload...)
		_, err := bw.Write(header(n))
		require.NoError(t, err)
		_, err = bw.Write(payload)
		require.NoError(t, err)
		require.NoError(t, bw.Flush())
		assert.Equal(t, len(want), len(conn.bytes), "frame %d (%d bytes) not fully written after its flush", i, n)
	}
	require.Equal(t, want, conn.bytes)
	assert.False(t, fw.lost)
	starts = append(starts, len(want))
	for i := range sizes {
		frame := conn.calls[starts[i]:starts[i+1]]
		assert.Equal(t, frame[0], frame[len(frame)-1], "frame %d (%d bytes) written over several calls", i, sizes[i])
	}
}

// TestFrameWriterLostPassesThrough: bytes that are not server frames are passed on
// unchanged, at once.
func TestFrameWriterLostPassesThrough(t *testing.T) {
	call := 0
	conn := &callConn{call: &call}
	fw := &frameWriter{conn: conn}
	masked := []byte{0x81, 0x82, 1, 2, 3, 4, 5, 6}
	n, err := fw.Write(masked)
	require.NoError(t, err)
	assert.Equal(t, len(masked), n)
	assert.True(t, fw.lost)
	_, err = fw.Write(header(300)[:3])
	require.NoError(t, err)
	assert.Equal(t, append(masked, header(300)[:3]...), conn.bytes)
}

// TestLargeMessagesThroughSmallWriteBuffer: messages and batches far larger than the
// write buffer, with pings written between them by another goroutine, reach a real client
// intact and in order, and every ping is answered.
func TestLargeMessagesThroughSmallWriteBuffer(t *testing.T) {
	h, url := startHub(t, &Options{PingInterval: time.Hour})
	c := dial(t, url)
	c.Subscribe("big", "1")
	sc := h.reg.allConns()[0]
	const n = 100 // up to 9.6 KB each, 480 KB in all: within the send queue
	blob := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 1+i*97) }
	start := time.Now()
	for i := range n {
		require.NoError(t, h.Publish(context.Background(), "big", Message{Type: "blob", Data: blob(i)}))
		sc.ping() // answered while the client reads
	}
	for i := range n {
		m := c.Next()
		require.Equal(t, "blob", m.Type)
		require.Equal(t, blob(i), wstest.Data[string](t, m), "message %d", i)
	}
	c.RoundTrip("2") // the pings ahead of this pong have been answered too
	eventually(t, func() bool { return sc.lastPong.Load() > start.UnixNano() }, "no pong arrived")
	require.NoError(t, c.WS.Close(websocket.StatusNormalClosure, ""))
	eventually(t, func() bool { return h.Stats().Connections == 0 })
	assert.Zero(t, h.Stats().Dropped)
}
