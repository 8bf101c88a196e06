package peers

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/wspub/wspub/benchmarks/compare/internal/bench"
	"github.com/wspub/wspub/internal/benchctl"
)

// The naive hub's constants: the chat example's write timeout; its 16-message buffer
// raised to gorilla's and melody's 256, so that queue depth is not what differs.
const (
	naiveSendBuffer   = 256
	naiveWriteTimeout = 5 * time.Second
)

// Naive is the hub of coder/websocket's chat example, with channels: a mutex-guarded map
// of subscribers per channel, a buffered channel of messages per subscriber, and the
// handler's goroutine writing them one message per frame, each write under a context
// with a timeout; Publish never blocks: a subscriber whose channel is full is closed with
// a policy-violation code. CloseRead's goroutine reads (and ends the connection on a data
// message) once the subscription is made.
type Naive struct {
	mu          sync.Mutex
	subscribers map[string]map[*naiveSubscriber]struct{}

	ctx    context.Context // ends every connection at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // handlers
}

type naiveSubscriber struct {
	msgs      chan []byte
	closeSlow func()
}

// NewNaive returns a naive coder/websocket hub.
func NewNaive() *Naive {
	ctx, cancel := context.WithCancel(context.Background())
	return &Naive{subscribers: map[string]map[*naiveSubscriber]struct{}{}, ctx: ctx, cancel: cancel}
}

func (n *Naive) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.wg.Add(1)
	defer n.wg.Done()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	defer c.CloseNow()
	// The connection lives until the client leaves or Close: not r.Context(), which
	// net/http does not end for a hijacked connection.
	_ = n.subscribe(n.ctx, c) // how it ended: the chat example logs it
}

// subscribe reads the subscribe request, answers it and writes the channel's messages
// until the connection ends.
func (n *Naive) subscribe(ctx context.Context, c *websocket.Conn) error {
	var channel string
	for channel == "" {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return err
		}
		ch, id, ok := bench.ParseSubscribe(msg)
		reply := bench.Subscribed(ch, id)
		if !ok {
			reply = bench.ErrorReply("bad_request", "only subscribe is served")
		} else {
			channel = ch
		}
		if err := writeTimeout(ctx, naiveWriteTimeout, c, reply); err != nil {
			return err
		}
	}
	s := &naiveSubscriber{
		msgs: make(chan []byte, naiveSendBuffer),
		closeSlow: func() {
			_ = c.Close(websocket.StatusPolicyViolation, "connection too slow to keep up with messages")
		},
	}
	n.add(channel, s)
	defer n.remove(channel, s)
	ctx = c.CloseRead(ctx)
	for {
		select {
		case msg := <-s.msgs:
			if err := writeTimeout(ctx, naiveWriteTimeout, c, msg); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func writeTimeout(ctx context.Context, timeout time.Duration, c *websocket.Conn, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, msg)
}

func (n *Naive) add(channel string, s *naiveSubscriber) {
	n.mu.Lock()
	defer n.mu.Unlock()
	subs := n.subscribers[channel]
	if subs == nil {
		subs = map[*naiveSubscriber]struct{}{}
		n.subscribers[channel] = subs
	}
	subs[s] = struct{}{}
}

func (n *Naive) remove(channel string, s *naiveSubscriber) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.subscribers[channel], s)
	if len(n.subscribers[channel]) == 0 {
		delete(n.subscribers, channel)
	}
}

// Publish offers msg to every subscriber of channel under the lock, closing those whose
// buffer is full.
func (n *Naive) Publish(_ context.Context, channel string, msg []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s := range n.subscribers[channel] {
		select {
		case s.msgs <- msg:
		default:
			go s.closeSlow()
		}
	}
	return nil
}

// Layout is wspub's envelope: the hub sends what it is given.
func (n *Naive) Layout(channel string) benchctl.Layout { return bench.EnvelopeLayout(channel) }

// Conns is the number of subscribers.
func (n *Naive) Conns() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	total := 0
	for _, subs := range n.subscribers {
		total += len(subs)
	}
	return total
}

// Close ends every connection and waits for the handlers.
func (n *Naive) Close() error {
	n.cancel()
	n.wg.Wait()
	return nil
}
