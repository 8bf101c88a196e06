package wspub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
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

// writesConn is a net.Conn that records each write it is given.
type writesConn struct {
	net.Conn
	writes [][]byte
	fail   error // returned by every write once set
}

func (c *writesConn) Write(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *writesConn) stream() []byte { return bytes.Join(c.writes, nil) }

// frame returns an unmasked final frame of the given opcode with n bytes of payload.
func frame(opcode byte, n int, fill byte) []byte {
	h := header(n)
	h[0] = 0x80 | opcode
	return append(h, bytes.Repeat([]byte{fill}, n)...)
}

// writeFrame writes f through bw the way coder/websocket does: header, payload, flush.
func writeFrame(t *testing.T, bw *bufio.Writer, f []byte) {
	t.Helper()
	size, ok := frameSize(f)
	require.True(t, ok)
	require.Equal(t, int64(len(f)), size)
	hdr := 2
	switch f[1] & 0x7f {
	case 126:
		hdr = 4
	case 127:
		hdr = 10
	}
	_, err := bw.Write(f[:hdr])
	require.NoError(t, err)
	_, err = bw.Write(f[hdr:])
	require.NoError(t, err)
	require.NoError(t, bw.Flush())
}

// newFrameWriter returns a frameWriter over a recording conn, and the bufio.Writer of the
// hub's size over it.
func newFrameWriter() (*frameWriter, *writesConn, *bufio.Writer) {
	conn := &writesConn{}
	fw := &frameWriter{conn: conn, pool: &sync.Pool{}}
	return fw, conn, bufio.NewWriterSize(fw, hijackWriteBuffer)
}

// TestFrameWriterGathers: while corked, data frames of every size reach the socket in
// one write at uncork, unchanged and in order; uncorked, each frame goes out when it is
// flushed.
func TestFrameWriterGathers(t *testing.T) {
	fw, conn, bw := newFrameWriter()
	var want []byte
	require.True(t, fw.cork())
	for i, n := range []int{0, 5, 125, 126, hijackWriteBuffer - 4, hijackWriteBuffer, 2500, 70000} {
		f := frame(0x1, n, byte('a'+i))
		writeFrame(t, bw, f)
		want = append(want, f...)
	}
	assert.Empty(t, conn.writes, "nothing is written while corked")
	require.NoError(t, fw.uncork())
	require.Len(t, conn.writes, 1)
	assert.Equal(t, want, conn.writes[0])

	small := frame(0x1, 10, 'z')
	writeFrame(t, bw, small)
	require.Len(t, conn.writes, 2, "uncorked, a frame is written when it is flushed")
	assert.Equal(t, small, conn.writes[1])
	assert.NoError(t, fw.uncork(), "uncork without cork does nothing")
	assert.Len(t, conn.writes, 2)
	assert.False(t, fw.lost)
}

// TestFrameWriterControlFramesAreNotHeld: a close, ping or pong written while corked goes
// out at once, after the data frames gathered before it.
func TestFrameWriterControlFramesAreNotHeld(t *testing.T) {
	for _, opcode := range []byte{0x8, 0x9, 0xa} {
		t.Run(fmt.Sprintf("opcode=%#x", opcode), func(t *testing.T) {
			fw, conn, bw := newFrameWriter()
			require.True(t, fw.cork())
			data := frame(0x1, 300, 'd')
			control := frame(opcode, 20, 'c')
			writeFrame(t, bw, data)
			writeFrame(t, bw, control)
			require.Len(t, conn.writes, 1)
			assert.Equal(t, append(bytes.Clone(data), control...), conn.writes[0])
			after := frame(0x1, 3, 'e')
			writeFrame(t, bw, after)
			assert.Len(t, conn.writes, 1, "still corked after the control frame")
			require.NoError(t, fw.uncork())
			assert.Equal(t, append(append(bytes.Clone(data), control...), after...), conn.stream())
		})
	}
}

// TestFrameWriterWriteError: a failed write while corked fails the frames written after
// it and is reported by uncork; the next cork starts afresh.
func TestFrameWriterWriteError(t *testing.T) {
	fw, conn, bw := newFrameWriter()
	require.True(t, fw.cork())
	conn.fail = errors.New("broken pipe")
	_, err := fw.Write(frame(0x9, 1, 'p'))
	require.ErrorIs(t, err, conn.fail)
	_, err = fw.Write(frame(0x1, 1, 'd'))
	require.ErrorIs(t, err, conn.fail)
	require.ErrorIs(t, fw.uncork(), conn.fail)
	conn.fail = nil
	require.True(t, fw.cork())
	writeFrame(t, bw, frame(0x1, 1, 'x'))
	require.NoError(t, fw.uncork())
	assert.Equal(t, frame(0x1, 1, 'x'), conn.stream())
}

// TestFrameWriterLostPassesThrough: bytes that are not server frames are passed on at
// once, and gathering stops for good.
func TestFrameWriterLostPassesThrough(t *testing.T) {
	fw, conn, _ := newFrameWriter()
	require.True(t, fw.cork())
	masked := []byte{0x81, 0x82, 1, 2, 3, 4, 5, 6}
	n, err := fw.Write(masked)
	require.NoError(t, err)
	assert.Equal(t, len(masked), n)
	assert.True(t, fw.lost)
	assert.Equal(t, [][]byte{masked}, conn.writes)
	require.NoError(t, fw.uncork())
	assert.False(t, fw.cork(), "a lost stream is not gathered")
	_, err = fw.Write(header(300)[:3])
	require.NoError(t, err)
	assert.Equal(t, append(bytes.Clone(masked), header(300)[:3]...), conn.stream())
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
