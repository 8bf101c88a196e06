package wspub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/wspub/wspub"
)

// Example mounts a hub, connects a client, subscribes it and publishes a progress update.
func Example() {
	hub := wspub.New(nil)
	mux := http.NewServeMux()
	mux.Handle("/ws", hub)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer hub.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/ws",
		&websocket.DialOptions{Subprotocols: []string{wspub.Subprotocol}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()

	// Every connection starts with a welcome: the connection's ID and the hub's limits.
	_, welcome, _ := c.Read(ctx)
	fmt.Println(strings.HasPrefix(string(welcome), `{"type":"welcome","data":{"conn":`))

	_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","channel":"task:42","id":"1"}`))
	_, ack, _ := c.Read(ctx)
	fmt.Println(string(ack))

	_ = hub.Publish(ctx, "task:42", wspub.Message{
		Type: "progress",
		Data: map[string]any{"percent": 40, "step": "scoring"},
	})
	_, msg, _ := c.Read(ctx)
	fmt.Println(string(msg))
	// Output:
	// true
	// {"type":"subscribed","channel":"task:42","id":"1"}
	// {"type":"progress","channel":"task:42","data":{"percent":40,"step":"scoring"}}
}

// ExampleNew configures a hub: cross-origin pages of example.com may connect, each
// connection is put on its user's channel at connect, and quotes use the lossy policy.
func ExampleNew() {
	var hub *wspub.Hub
	hub = wspub.New(&wspub.Options{
		OriginPatterns: []string{"app.example.com"},
		Authenticate: func(r *http.Request) (wspub.Identity, error) {
			return wspub.Identity{UserID: r.URL.Query().Get("user")}, nil // use a real token check
		},
		OnConnect: func(ctx context.Context, c *wspub.Conn) error {
			return hub.Subscribe(c.ID(), "user:"+c.UserID())
		},
		Overflow:     wspub.DropOldest,
		PingInterval: 30 * time.Second,
	})
	defer hub.Close()
	fmt.Printf("%+v\n", hub.Stats().Connections)
	// Output: 0
}

// ExampleHub_Publish publishes to a channel; Publish never waits for a client's socket.
func ExampleHub_Publish() {
	hub := wspub.New(nil)
	defer hub.Close()
	ctx := context.Background()

	type progress struct {
		Symbol  string `json:"symbol"`
		Percent int    `json:"percent"`
	}
	err := hub.Publish(ctx, "task:42", wspub.Message{Type: "progress", Data: progress{"AAPL", 40}})
	fmt.Println(err, hub.Stats().Published)

	err = hub.Publish(ctx, "task:42", wspub.Message{Type: "subscribed"})
	fmt.Println(err)
	// Output:
	// <nil> 1
	// wspub: message type is reserved by the protocol: "subscribed"
}

// ExampleHub_Shutdown stops a server and its hub together: http.Server.Shutdown does not
// close hijacked connections such as WebSockets, so the hub must be shut down too.
func ExampleHub_Shutdown() {
	hub := wspub.New(nil)
	mux := http.NewServeMux()
	mux.Handle("/ws", hub)
	srv := httptest.NewServer(mux) // in production: &http.Server{Addr: ..., Handler: mux}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/ws", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()

	go func() { _ = hub.Shutdown(ctx) }() // clients get close 1001; new upgrades get 503
	srv.Config.Shutdown(ctx)              // stops listening and waits for plain HTTP requests
	srv.Close()

	for err == nil { // the welcome, then the close
		_, _, err = c.Read(ctx)
	}
	fmt.Println(websocket.CloseStatus(err))
	fmt.Println(hub.Shutdown(ctx), hub.Stats().Connections)
	// Output:
	// StatusGoingAway
	// <nil> 0
}

// ExampleHub_Handle answers a custom client message type.
func ExampleHub_Handle() {
	hub := wspub.New(nil)
	defer hub.Close()
	err := hub.Handle("action_clicked", func(ctx context.Context, c *wspub.Conn, m wspub.ClientMessage) error {
		if len(m.Data) == 0 {
			return &wspub.Error{Code: wspub.CodeInvalidMessage, Message: "action_clicked needs data"}
		}
		return c.Send(ctx, wspub.Message{Type: "action_accepted", Data: m.Data})
	})
	fmt.Println(err)
	// Output: <nil>
}
