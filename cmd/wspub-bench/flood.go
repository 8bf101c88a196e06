package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/wspub/wspub/internal/wsframe"
)

// Kinds of frame flood (run -flood-kind).
const (
	floodPing         = "ping"         // ping frames with an empty payload: the server owes a pong for each
	floodContinuation = "continuation" // a text frame with FIN=0, then empty continuation frames without end
	floodPong         = "pong"         // unsolicited pongs with an empty payload
)

// floodUserAgent is the User-Agent of the flooders' upgrade requests, so that the
// server's logs (websocket_connected) tell them from the normal clients.
const floodUserAgent = "wspub-bench-flood"

// floodChunk is how many bytes of frames a flooder hands the kernel per write.
const floodChunk = 64 << 10

// flooder is one hostile raw client of run -flood: it writes frames as fast as the server
// takes them, reads and discards what the server sends (the pongs it owes, pings), and
// answers the heartbeat's pings, so that it is ended by a limit of the server, if any,
// and not by its heartbeat.
type flooder struct {
	rc     *rawConn
	kind   string
	start  time.Time
	frames atomic.Int64 // frames written whole
	bytes  atomic.Int64

	stopping atomic.Bool   // the run is over: what ends the connection now is ours
	wdone    chan struct{} // the writer has exited
	rdone    chan struct{} // the reader has exited

	// Set by the reader before rdone is closed.
	closedBy bool // the server ended the connection while the flood was on
	code     websocket.StatusCode
	reason   string
	closedAt time.Duration
	err      error // how the connection ended when it was not a close frame
}

// startFlood connects n flooders to url and starts them.
func startFlood(ctx context.Context, url, kind string, n int) ([]*flooder, error) {
	fs := make([]*flooder, 0, n)
	for i := range n {
		rc, err := dialRaw(ctx, url, rawDialOptions{ReaderBytes: 64 << 10, Header: http.Header{"User-Agent": {floodUserAgent}}})
		if err != nil {
			for _, f := range fs { // not started yet
				_ = f.rc.Close()
			}
			return nil, fmt.Errorf("flooder %d: %w", i, err)
		}
		f := &flooder{rc: rc, kind: kind, wdone: make(chan struct{}), rdone: make(chan struct{})}
		rc.onClose = f.closed
		fs = append(fs, f)
	}
	for _, f := range fs {
		f.start = time.Now()
		go f.write(ctx)
		go f.read()
	}
	return fs, nil
}

// floodLead is how long the flood runs before the burst is triggered, so that the burst
// meets it at full rate.
const floodLead = 250 * time.Millisecond

// floodFrames is the number of frames the flooders have written so far.
func floodFrames(fs []*flooder) int64 {
	var n int64
	for _, f := range fs {
		n += f.frames.Load()
	}
	return n
}

// frameSize is the size of one empty masked client frame: 2 header bytes, 4 of mask.
const frameSize = 6

// write floods until ctx ends, the run stops it, or the connection fails.
func (f *flooder) write(ctx context.Context) {
	defer close(f.wdone)
	op := byte(wsframe.OpPing)
	switch f.kind {
	case floodPong:
		op = wsframe.OpPong
	case floodContinuation:
		op = wsframe.OpContinuation
		// The message that never ends: a text frame without FIN, empty.
		if _, err := f.rc.writeRaw(f.rc.appendFrame(nil, wsframe.OpText, false, nil)); err != nil {
			return
		}
		f.frames.Add(1)
		f.bytes.Add(frameSize)
	}
	buf := make([]byte, 0, floodChunk)
	for len(buf)+frameSize <= floodChunk {
		buf = f.rc.appendFrame(buf, op, op != wsframe.OpContinuation, nil)
	}
	for ctx.Err() == nil && !f.stopping.Load() {
		n, err := f.rc.writeRaw(buf)
		f.bytes.Add(int64(n))
		f.frames.Add(int64(n / frameSize))
		if err != nil {
			return
		}
	}
}

// read discards what the server sends until the connection ends, and records how.
func (f *flooder) read() {
	defer close(f.rdone)
	yes := func() bool { return true }
	var err error
	for err == nil {
		_, _, err = f.rc.next(yes)
	}
	if f.stopping.Load() || f.closedBy {
		return // the run stopped it, or the server's close frame was recorded
	}
	f.closedBy, f.closedAt = true, time.Since(f.start)
	f.code, f.err = websocket.StatusAbnormalClosure, err // no close frame: EOF or reset
	f.stopWriter()
}

// closed records the server's close frame. The flooder does not answer it: the answer
// would follow whatever part of a frame the interrupted write left.
func (f *flooder) closed(ce *closeError) {
	if f.stopping.Load() {
		return
	}
	f.closedBy, f.closedAt = true, time.Since(f.start)
	f.code, f.reason = ce.Code, ce.Reason
	f.stopWriter()
}

// stopWriter makes a write blocked on a socket the server no longer reads return, and
// every later write fail.
func (f *flooder) stopWriter() {
	_ = f.rc.conn.SetWriteDeadline(time.Unix(1, 0))
}

// stop ends the flood and closes the connection.
func (f *flooder) stop() {
	f.stopping.Store(true)
	f.stopWriter()
	if f.wdone != nil {
		<-f.wdone
	}
	_ = f.rc.Close()
	if f.rdone != nil {
		<-f.rdone
	}
}

// floodResult is what run -flood reports about its flooders.
type floodResult struct {
	Kind           string        `json:"kind"`
	Clients        int           `json:"clients"`
	Frames         int64         `json:"frames"`           // frames the flooders wrote, all together
	FramesPerS     float64       `json:"frames_per_s"`     // the flooders' rates while they flooded, summed
	ClosedByServer int           `json:"closed_by_server"` // flooders the server ended during the run
	PerClient      []floodClient `json:"per_client"`
}

type floodClient struct {
	Frames     int64   `json:"frames"`
	Bytes      int64   `json:"bytes"`
	DurationS  float64 `json:"duration_s"`            // how long it flooded
	Closed     bool    `json:"closed"`                // the server ended the connection
	CloseCode  int     `json:"close_code,omitempty"`  // its close frame's code; 1006 when it sent none (EOF, reset)
	Reason     string  `json:"reason,omitempty"`      // its close frame's reason
	ClosedS    float64 `json:"closed_s,omitempty"`    // when, after the flood began
	CloseError string  `json:"close_error,omitempty"` // the read error, when there was no close frame
}

// stopFlood stops every flooder and reports what they did.
func stopFlood(fs []*flooder) *floodResult {
	end := time.Now()
	for _, f := range fs {
		f.stop()
	}
	res := &floodResult{Clients: len(fs)}
	for _, f := range fs {
		res.Kind = f.kind
		d := end.Sub(f.start)
		if f.closedBy {
			d = f.closedAt
		}
		fc := floodClient{Frames: f.frames.Load(), Bytes: f.bytes.Load(), DurationS: d.Seconds(), Closed: f.closedBy}
		if f.closedBy {
			res.ClosedByServer++
			fc.CloseCode, fc.Reason, fc.ClosedS = int(f.code), f.reason, f.closedAt.Seconds()
			if f.err != nil {
				fc.CloseError = f.err.Error()
			}
		}
		res.Frames += fc.Frames
		if fc.DurationS > 0 {
			res.FramesPerS += float64(fc.Frames) / fc.DurationS
		}
		res.PerClient = append(res.PerClient, fc)
	}
	return res
}
