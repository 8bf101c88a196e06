package wspub

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// Local fan-out: the one way a message reaches this node's connections, whoever sends
// it (Publish, Broadcast, SendToUser, a client publish, a message from another node).
// It refuses a frame that no send queue can hold before it touches any queue, queues
// the same bytes for every target and never waits for a socket.
//
// Pacing. A goroutine that publishes a burst can queue messages far faster than the
// writers put them on sockets: that only adds latency and queued memory. So fan-out
// counts the targets whose writer is behind (at least behindQueued messages wait for
// it and it has taken none for behindAfter) and, when most are, yields the processor
// once (runtime.Gosched) before it returns. It never waits: with nothing else to run,
// it returns at once. BenchmarkPublishFanout and the load tool's burst scenarios
// (BENCHMARKS.md) guard these figures: 5 ms was the best of 2, 3, 5, 10 and 20 ms for
// the p99 of a burst to 1 000 and 5 000 clients.
//
// A busy writer takes messages every write(2), tens of microseconds apart; 5 ms means
// it has not been scheduled, or its socket is full. The count keeps a publisher from
// yielding to writers that are merely waiting their turn with a message or two: they
// would drain their queues, exit, and be started again by the next Publish.
const (
	behindAfter  = 5 * time.Millisecond
	behindQueued = 16
)

// fanoutLocal queues frame for every target connection. It returns ErrMessageTooLarge,
// and queues nothing, if the frame is larger than a send queue (Options.MaxQueueBytes):
// such a message would evict every subscriber as a slow consumer.
func (h *Hub) fanoutLocal(frame []byte, targets []*Conn) error {
	if err := h.fitsQueue(frame); err != nil {
		return err
	}
	var start time.Time
	if h.opts.Observer != nil {
		start = time.Now()
	}
	behind := 0
	now := h.clock()
	for _, c := range targets {
		// A closed or evicted target is counted by its connection, not an error here.
		if late, err := c.push(frame, now); err == nil && late {
			behind++
		}
	}
	if h.opts.Observer != nil {
		h.opts.Observer.Fanout(len(targets), time.Since(start))
	}
	if behind > len(targets)/2 {
		runtime.Gosched()
	}
	return nil
}

// fanout delivers an encoded message to the local targets of route (a channel, or the
// broker name of a broadcast or a user), then hands it to the broker for the other
// nodes.
func (h *Hub) fanout(ctx context.Context, route string, frame []byte, targets func() []*Conn) error {
	if h.isClosed() {
		return ErrHubClosed
	}
	if err := h.fanoutLocal(frame, targets()); err != nil {
		return err
	}
	h.stats.published.Add(1)
	if h.broker == nil {
		return nil
	}
	return h.brokerPublish(ctx, route, frame)
}

// fitsQueue returns ErrMessageTooLarge for a frame no send queue can hold.
func (h *Hub) fitsQueue(frame []byte) error {
	if len(frame) > h.opts.MaxQueueBytes {
		return fmt.Errorf("%w: %d bytes, MaxQueueBytes is %d", ErrMessageTooLarge, len(frame), h.opts.MaxQueueBytes)
	}
	return nil
}
