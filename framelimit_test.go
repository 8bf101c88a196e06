package wspub

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wspub/wspub/internal/wsframe"
	"github.com/wspub/wspub/internal/wstest"
)

// flood writes the frames of one batch over and over for d, or until the server stops
// taking them, and returns how many batches it wrote.
func flood(c *rawConn, batch []byte, d time.Duration) int {
	deadline := time.Now().Add(d)
	_ = c.SetWriteDeadline(deadline)
	n := 0
	for time.Now().Before(deadline) {
		if _, err := c.Write(batch); err != nil {
			break
		}
		n++
	}
	return n
}

// TestFrameFloodsAreThrottled: a client that floods control frames or empty fragments
// is read no faster than MaxFrameRate (its pongs come back at that rate), is counted
// and logged once, and another client's round trips go on meanwhile.
func TestFrameFloodsAreThrottled(t *testing.T) {
	const rate = 200
	kinds := []struct {
		name  string
		start []byte // sent once before the flood
		frame []byte // flooded
	}{
		{"pings", nil, appendClientFrame(nil, wsframe.OpPing, true, nil)},
		{"unsolicited pongs", nil, appendClientFrame(nil, wsframe.OpPong, true, nil)},
		{"empty continuation frames", appendClientFrame(nil, wsframe.OpText, false, []byte(`{"type":`)),
			appendClientFrame(nil, wsframe.OpContinuation, false, nil)},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			logger, logs := wstest.NewLogger()
			h, url := startHub(t, &Options{Logger: logger, MaxFrameRate: rate, MaxFrameBurst: rate})
			polite := dial(t, url)
			c := dialRaw(t, url)
			defer c.Close()
			var pongs atomic.Int64
			var reading sync.WaitGroup
			reading.Add(1)
			go func() { // count the pongs the server answers pings with
				defer reading.Done()
				for {
					op, _, err := c.readFrame()
					if err != nil {
						return
					}
					if op == wsframe.OpPong {
						pongs.Add(1)
					}
				}
			}()
			if k.start != nil {
				_, err := c.Write(k.start)
				require.NoError(t, err)
			}
			batch := bytes.Repeat(k.frame, 64)
			const d = time.Second
			done := make(chan int)
			go func() { done <- flood(c, batch, d) }()
			for i := range 5 { // the other clients are served meanwhile
				polite.RoundTrip(string(rune('a' + i)))
			}
			batches := <-done
			sent := batches * 64
			t.Logf("%s: sent %d frames in %v; server answered %d pongs; %+v", k.name, sent, d, pongs.Load(), h.Stats())
			require.Greater(t, sent, 4*rate, "the flood did not flood")
			assert.Equal(t, uint64(1), h.Stats().FrameFloods)
			assert.Len(t, logs.Events("websocket_frame_flood"), 1)
			assert.Equal(t, 2, h.Stats().Connections, "a flooding client is slowed down, not closed")
			if k.frame[0]&0x0f == wsframe.OpPing {
				// burst + rate × time, with room for the time it took to start.
				assert.LessOrEqual(t, pongs.Load(), int64(rate+rate*2*d/time.Second))
			}
			_ = c.Close()
			reading.Wait()
		})
	}
}

// TestFrameReaderFollowsHeaders: frame headers split across reads, with 16- and 64-bit
// lengths, are all counted, and the payload bytes are passed on untouched.
func TestFrameReaderFollowsHeaders(t *testing.T) {
	var stream []byte
	stream = appendClientFrame(stream, wsframe.OpPing, true, nil)
	stream = appendClientFrame(stream, wsframe.OpText, true, bytes.Repeat([]byte("x"), 300))    // 16-bit length
	stream = appendClientFrame(stream, wsframe.OpText, true, bytes.Repeat([]byte("y"), 70_000)) // 64-bit length
	stream = appendClientFrame(stream, wsframe.OpContinuation, false, nil)
	stream = appendClientFrame(stream, wsframe.OpPong, true, []byte("abc"))
	for _, chunk := range []int{1, 2, 3, 7, 512, len(stream)} {
		charged := 0
		r := &frameReader{src: bytes.NewReader(stream[5:]), prefix: stream[:5],
			charge: func(n int) error { charged += n; return nil }, perRead: 2}
		var out bytes.Buffer
		buf := make([]byte, chunk)
		for {
			n, err := r.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		assert.Equal(t, 5, charged, "reads of %d bytes", chunk)
		assert.Equal(t, stream, out.Bytes(), "reads of %d bytes", chunk)
	}
}

// TestThrottledReadsStayShort: with a low MaxFrameRate, a read full of frames is passed
// on a few frames at a time, so no read sleeps near coder/websocket's 5 s limit for a
// control frame's payload, which would cut the flooding client off instead of slowing
// it down.
func TestThrottledReadsStayShort(t *testing.T) {
	h, url := startHub(t, &Options{MessageRate: -1, MaxFrameRate: 4, MaxFrameBurst: 4})
	c := dialRaw(t, url)
	defer c.Close()
	var pongs atomic.Int64
	go func() {
		for {
			op, _, err := c.readFrame()
			if err != nil {
				return
			}
			if op == wsframe.OpPong {
				pongs.Add(1)
			}
		}
	}()
	ping := appendClientFrame(nil, wsframe.OpPing, true, []byte("abc"))
	// Half a ping first: the server reads the rest of its payload, and all that follows
	// it, inside coder/websocket's handling of a control frame.
	_, err := c.Write(ping[:len(ping)-1])
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	_, err = c.Write(append(ping[len(ping)-1:], bytes.Repeat(ping, 55)...))
	require.NoError(t, err)
	time.Sleep(6 * time.Second)
	assert.Equal(t, 1, h.Stats().Connections, "a flooding client is slowed down, not closed")
	assert.Equal(t, uint64(1), h.Stats().FrameFloods)
	got := pongs.Load()
	assert.Greater(t, got, int64(10))
	assert.LessOrEqual(t, got, int64(4+4*7))
}
