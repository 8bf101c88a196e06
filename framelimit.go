package wspub

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"time"
)

// Frame-level input. Every limit on client messages (MessageRate, MaxInvalidMessages,
// MaxMessageBytes) sees whole messages, after coder/websocket has read them; control
// frames (ping, pong) and fragments of a message never reach it, yet a client can send
// millions of them a second, each of which costs the server a read and some a pong.
// frameReader, between the socket and coder/websocket, counts every frame the client
// sends against the connection's frame budget (Options.MaxFrameRate and MaxFrameBurst).
// A client over the budget is not closed but slowed down: its reader sleeps until the
// budget allows the frames it has read, so a flooding client only slows itself down
// (its bytes wait in its own socket buffers), and the flood costs the server next to
// nothing. The first time, the connection is counted in Stats.FrameFloods and logged
// (websocket_frame_flood, once per connection). A closing connection over its budget is
// cut off.

// errFrameFlood ends the read of a connection that floods while it is closing.
var errFrameFlood = errors.New("wspub: frame rate exceeded")

// frameReader follows the headers of the client's frames (RFC 6455 section 5.2) in the
// byte stream it reads and charges each frame to its connection.
type frameReader struct {
	src     io.Reader
	prefix  []byte            // bytes to serve before reading src: what net/http read past the handshake, or what a read held back
	charge  func(n int) error // nil: no frame budget
	perRead int               // the most frames one Read passes on (see Read)
	srcErr  error             // an error of src held back with the bytes before it

	hdr  [14]byte // the header being read: at most 2 + 8 (length) + 4 (mask) bytes
	hn   int      // bytes of it seen
	need int      // its length, once its first two bytes are known
	rem  uint64   // payload bytes of the current frame still to come
	lost bool     // a header made no sense: coder/websocket fails the connection
}

// Read reads from src and charges the frames whose headers it completes. It passes on
// the bytes of at most perRead frames and holds the rest back for the next Read, so
// that one Read never sleeps long for the budget: coder/websocket gives a control
// frame's payload 5 s to arrive, and a read of 512 bytes can hold 85 empty frames.
func (r *frameReader) Read(p []byte) (int, error) {
	var n int
	var err error
	switch {
	case len(r.prefix) > 0:
		n = copy(p, r.prefix)
		r.prefix = r.prefix[n:]
		if len(r.prefix) == 0 {
			r.prefix = nil
		}
	case r.srcErr != nil:
		err, r.srcErr = r.srcErr, nil
		return 0, err
	default:
		n, err = r.src.Read(p)
	}
	if r.charge == nil || n == 0 || r.lost {
		return n, err
	}
	frames, used := r.scan(p[:n], r.perRead)
	if used < n { // hold back what follows the frames this Read may pass on
		r.prefix = append(append([]byte(nil), p[used:n]...), r.prefix...)
		r.srcErr, err = err, nil
		n = used
	}
	if frames > 0 {
		if cerr := r.charge(frames); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

// scan follows the frame boundaries through b and returns how many frame headers it
// completed, at most limit (0: no limit), and how many bytes of b it followed: all of
// them, or up to the end of the limit-th header.
func (r *frameReader) scan(b []byte, limit int) (frames, used int) {
	total := len(b)
	for len(b) > 0 {
		if limit > 0 && frames == limit && r.rem == 0 && r.hn == 0 {
			break
		}
		if r.rem > 0 {
			k := min(r.rem, uint64(len(b)))
			r.rem -= k
			b = b[k:]
			continue
		}
		r.hdr[r.hn] = b[0]
		r.hn++
		b = b[1:]
		if r.hn == 2 {
			r.need = 2
			if r.hdr[1]&0x80 != 0 {
				r.need += 4 // masking key
			}
			switch r.hdr[1] & 0x7f {
			case 126:
				r.need += 2
			case 127:
				r.need += 8
			}
		}
		if r.hn < 2 || r.hn < r.need {
			continue
		}
		length := uint64(r.hdr[1] & 0x7f)
		switch length {
		case 126:
			length = uint64(binary.BigEndian.Uint16(r.hdr[2:4]))
		case 127:
			length = binary.BigEndian.Uint64(r.hdr[2:10])
			if length>>63 != 0 {
				r.lost = true
				return frames, total
			}
		}
		r.rem, r.hn, r.need = length, 0, 0
		frames++
	}
	return frames, total - len(b)
}

// chargeFrames charges n frames the client sent to the connection's frame budget,
// sleeping until the budget allows them. It runs on the reader, inside
// coder/websocket's Read, at the bottom of the reader's deepest call chain: it is kept
// small, so that an idle connection's stack stays at 4 KiB, and what a flood needs is
// in throttle.
func (c *Conn) chargeFrames(n int) error {
	if c.frames.AllowN(time.Now(), n) {
		return nil
	}
	return c.throttle(n)
}

// throttle counts and logs a flood (once per connection) and sleeps until the budget
// allows n frames.
//
//go:noinline
func (c *Conn) throttle(n int) error {
	lim := c.frames
	if !c.flood.Swap(true) {
		h := c.hub
		h.stats.frameFloods.Add(1)
		h.log.LogAttrs(c.ctx, slog.LevelWarn, "websocket_frame_flood",
			slog.String("conn_id", c.id), slog.String("user_id", c.userID),
			slog.Float64("max_frame_rate", float64(lim.Limit())),
			slog.String("effect", "reading is slowed to the rate (logged once per connection)"))
	}
	now := time.Now()
	for burst := lim.Burst(); n > 0; n -= burst {
		if err := c.ctx.Err(); err != nil { // closing: no reason to keep reading a flood
			return errFrameFlood
		}
		d := lim.ReserveN(now, min(n, burst)).DelayFrom(now)
		if d <= 0 {
			continue
		}
		if !sleepCtx(c.ctx, d) {
			return errFrameFlood
		}
		now = time.Now()
	}
	return nil
}

// framesPerRead is how many frames one Read of the frameReader may pass on: a quarter
// of a second's worth, so that no Read sleeps longer than that (a second at a rate
// below 4 per second).
func (c *Conn) framesPerRead() int {
	lim := c.frames
	return max(1, min(lim.Burst(), int(float64(lim.Limit())/4)))
}

// sleepCtx sleeps for d, or until ctx ends; it reports whether it slept the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
