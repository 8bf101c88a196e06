// Package peers holds the servers the side-by-side harness compares with wspub, each
// written as that library's users write it, behind the bench control surface.
package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/wspub/wspub/benchmarks/compare/internal/bench"
)

// Names are the servers New knows, in the harness's order.
func Names() []string { return []string{"centrifuge", "melody", "gorilla", "naive"} }

// New returns the server called name.
func New(name string) (bench.Server, error) {
	switch name {
	case "centrifuge":
		return NewCentrifuge()
	case "melody":
		return NewMelody(), nil
	case "gorilla":
		return NewGorilla(), nil
	case "naive":
		return NewNaive(), nil
	}
	return nil, fmt.Errorf("unknown server %q (have %s)", name, strings.Join(Names(), ", "))
}

// Protocol is the client protocol the server called name speaks: "centrifuge" or "wspub".
func Protocol(name string) string {
	if name == "centrifuge" {
		return "centrifuge"
	}
	return "wspub"
}

// modules are the library each server is written with.
func module(name string) string {
	switch name {
	case "centrifuge":
		return "github.com/centrifugal/centrifuge"
	case "melody":
		return "github.com/olahol/melody"
	case "gorilla":
		return "github.com/gorilla/websocket"
	case "naive":
		return "github.com/coder/websocket"
	}
	return ""
}

// Version is the version of the library the server called name is built with, from the
// running binary's build information ("" if unknown).
func Version(name string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, m := range info.Deps {
		if m.Path == module(name) {
			if m.Replace != nil {
				m = m.Replace
			}
			return m.Version
		}
	}
	return ""
}

// Serve serves the server called name at addr until ctx ends, printing
// "peerserve NAME: listening on http://ADDR (WebSocket at ws://ADDR/ws)" on stderr once
// it listens (port 0 picks a free port); then it shuts the HTTP server down and closes
// the peer, which closes the WebSocket connections net/http does not touch.
func Serve(ctx context.Context, name, addr string, stderr io.Writer) error {
	s, err := New(name)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = s.Close()
		return err
	}
	srv := &http.Server{Handler: bench.NewHandler(s), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "peerserve %s: listening on http://%s (WebSocket at ws://%s/ws)\n", name, ln.Addr(), ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
		_ = s.Close()
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errSrv := srv.Shutdown(shutCtx)
	errPeer := s.Close()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		errSrv = errors.Join(errSrv, err)
	}
	return errors.Join(errSrv, errPeer)
}
