package peers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wspub/wspub/benchmarks/compare/internal/bench"
	"github.com/wspub/wspub/internal/benchctl"
)

// The gorilla chat example's constants.
const (
	gorillaWriteWait      = 10 * time.Second // time allowed to write a message
	gorillaPongWait       = 60 * time.Second // time allowed to read the next pong
	gorillaPingPeriod     = gorillaPongWait * 9 / 10
	gorillaMaxMessageSize = 512 // of a client message
	gorillaSendBuffer     = 256 // messages queued per client
)

// Gorilla is the hub pattern of gorilla/websocket's chat example, with rooms: one hub
// goroutine owns the rooms and serves register, unregister and broadcast channels; each
// client has a buffered send channel, a read pump and a write pump (which pings and joins
// what is queued into one frame, '\n'-separated); a client whose send channel is full is
// dropped. The example's one room becomes a room per channel, joined by the subscribe
// request.
type Gorilla struct {
	upgrader websocket.Upgrader
	hub      *gorillaHub
	conns    atomic.Int64
	wg       sync.WaitGroup // the hub and the pumps
	stop     sync.Once
}

type gorillaHub struct {
	rooms      map[string]map[*gorillaClient]bool // owned by run
	broadcast  chan gorillaMessage
	register   chan *gorillaClient
	unregister chan *gorillaClient
	done       chan struct{} // closed by Close: run drops every client and returns
}

type gorillaMessage struct {
	channel string
	data    []byte
}

type gorillaClient struct {
	hub     *gorillaHub
	conn    *websocket.Conn
	send    chan []byte // closed by the hub once registered, by the read pump before
	channel string      // set by the read pump before it registers
	newline [1]byte     // '\n', what the write pump puts between the messages of a frame
}

// NewGorilla returns a gorilla hub-pattern server.
func NewGorilla() *Gorilla {
	g := &Gorilla{
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}, // the example's
		hub: &gorillaHub{
			rooms:      map[string]map[*gorillaClient]bool{},
			broadcast:  make(chan gorillaMessage),
			register:   make(chan *gorillaClient),
			unregister: make(chan *gorillaClient),
			done:       make(chan struct{}),
		},
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.hub.run()
	}()
	return g
}

func (h *gorillaHub) run() {
	for {
		select {
		case c := <-h.register:
			room := h.rooms[c.channel]
			if room == nil {
				room = map[*gorillaClient]bool{}
				h.rooms[c.channel] = room
			}
			room[c] = true
		case c := <-h.unregister:
			h.drop(c)
		case m := <-h.broadcast:
			for c := range h.rooms[m.channel] {
				select {
				case c.send <- m.data:
				default:
					h.drop(c)
				}
			}
		case <-h.done:
			for _, room := range h.rooms {
				for c := range room {
					h.drop(c)
				}
			}
			return
		}
	}
}

// drop removes c and closes its send channel, which ends its write pump.
func (h *gorillaHub) drop(c *gorillaClient) {
	room := h.rooms[c.channel]
	if _, ok := room[c]; !ok {
		return
	}
	delete(room, c)
	if len(room) == 0 {
		delete(h.rooms, c.channel)
	}
	close(c.send)
}

func (g *Gorilla) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &gorillaClient{hub: g.hub, conn: conn, send: make(chan []byte, gorillaSendBuffer), newline: [1]byte{'\n'}}
	g.conns.Add(1)
	g.wg.Add(2)
	go func() {
		defer g.wg.Done()
		c.writePump()
	}()
	go func() {
		defer g.wg.Done()
		defer g.conns.Add(-1)
		c.readPump()
	}()
}

// readPump reads the subscribe request, registers the client in its room and reads on
// (discarding) until the connection fails.
func (c *gorillaClient) readPump() {
	registered := false
	defer func() {
		if registered {
			select {
			case c.hub.unregister <- c:
			case <-c.hub.done: // the hub dropped it
			}
		} else {
			close(c.send)
		}
		_ = c.conn.Close()
	}()
	c.conn.SetReadLimit(gorillaMaxMessageSize)
	_ = c.conn.SetReadDeadline(time.Now().Add(gorillaPongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(gorillaPongWait)) })
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if registered {
			continue
		}
		channel, id, ok := bench.ParseSubscribe(bytes.TrimSpace(msg))
		if !ok {
			c.send <- bench.ErrorReply("bad_request", "only subscribe is served")
			continue
		}
		c.channel = channel
		c.send <- bench.Subscribed(channel, id) // before any broadcast: it is not registered yet
		select {
		case c.hub.register <- c:
			registered = true
		case <-c.hub.done:
			return
		}
	}
}

// writePump writes what the hub queues, joining what is waiting into one frame, and
// pings; it closes the connection when the hub closes the send channel.
func (c *gorillaClient) writePump() {
	ticker := time.NewTicker(gorillaPingPeriod)
	defer func() {
		ticker.Stop()
		_ = c.conn.Close()
	}()
	for {
		select {
		case message, ok := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(gorillaWriteWait))
			if !ok {
				_ = c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			w, err := c.conn.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			_, _ = w.Write(message)
			n := len(c.send)
			for range n {
				_, _ = w.Write(c.newline[:])
				_, _ = w.Write(<-c.send)
			}
			if err := w.Close(); err != nil {
				return
			}
		case <-ticker.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(gorillaWriteWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		case <-c.hub.done: // Close: a client that never subscribed is not the hub's to drop
			return
		}
	}
}

// errClosed is Publish's error after Close.
var errClosed = errors.New("peers: server closed")

// Publish hands msg to the hub goroutine, which offers it to every client of the room.
func (g *Gorilla) Publish(ctx context.Context, channel string, msg []byte) error {
	select {
	case g.hub.broadcast <- gorillaMessage{channel, msg}:
		return nil
	case <-g.hub.done:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Layout is wspub's envelope: the hub sends what it is given.
func (g *Gorilla) Layout(channel string) benchctl.Layout { return bench.EnvelopeLayout(channel) }

// Conns is the number of connections whose read pump runs.
func (g *Gorilla) Conns() int { return int(g.conns.Load()) }

// Close drops every client (their write pumps send a close frame and close the
// connection) and waits for the hub and the pumps.
func (g *Gorilla) Close() error {
	g.stop.Do(func() { close(g.hub.done) })
	g.wg.Wait()
	return nil
}
