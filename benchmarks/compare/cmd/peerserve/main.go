// Command peerserve serves one of the side-by-side harness's peer servers (centrifuge,
// melody, gorilla, naive) at /ws with wspub-bench serve's control surface: POST /publish
// and GET /stats. The harness (go run ./benchmarks/compare) builds and starts it; to run
// one by hand:
//
//	go run ./benchmarks/compare/cmd/peerserve -server melody -addr 127.0.0.1:8091
//	go run ./cmd/wspub-bench run -url ws://127.0.0.1:8091/ws -conns 1000 -msgs 1000
//
// centrifuge speaks its own protocol: add -proto centrifuge to the run. -version prints
// the server's library and version. SIGINT or SIGTERM shuts it down.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/wspub/wspub/benchmarks/compare/internal/peers"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintf(os.Stderr, "peerserve: %v\n", err)
		}
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("peerserve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("server", "melody", "the server: centrifuge, melody, gorilla or naive")
	addr := fs.String("addr", "127.0.0.1:8091", "listen `address` (port 0 picks a free port)")
	version := fs.Bool("version", false, "print the server's library version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *version {
		fmt.Fprintln(stdout, peers.Version(*name))
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return peers.Serve(ctx, *name, *addr, stderr)
}
