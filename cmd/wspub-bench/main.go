// Command wspub-bench load-tests a wspub hub with real WebSocket clients: it measures
// fan-out throughput, delivery latency, loss, slow-consumer isolation and the memory an
// idle connection costs the server.
//
// It has two subcommands. serve runs a bench server: a hub with default options at /ws,
// plus POST /publish to publish a burst of numbered, timestamped messages and GET /stats
// for the hub's Stats and the runtime's memory figures. run opens N clients against a
// server, subscribes them, triggers a burst and reports what arrived.
//
//	go build -o /tmp/wspub-bench ./cmd/wspub-bench
//	/tmp/wspub-bench serve -addr 127.0.0.1:8090 &
//
//	# scenario a: 1 000 clients on one channel, 1 000 messages of 128 bytes
//	/tmp/wspub-bench run -url ws://127.0.0.1:8090/ws -conns 1000 -msgs 1000 -size 128
//
//	# scenario b: 5 000 clients, 200 messages
//	/tmp/wspub-bench run -url ws://127.0.0.1:8090/ws -conns 5000 -msgs 200
//
//	# scenario c: server heap+stack and goroutines per idle connection
//	/tmp/wspub-bench run -url ws://127.0.0.1:8090/ws -conns 10000 -idle
//
//	# slow-consumer isolation: 1 % of the clients subscribe and never read
//	/tmp/wspub-bench run -url ws://127.0.0.1:8090/ws -conns 1000 -msgs 1000 -slow 0.01
//
//	# frame floods: the p99 latency of 1 000 clients during a paced burst, without and
//	# with two raw clients flooding the server with empty pings (or continuation frames,
//	# or pongs) from just before the burst to its end
//	/tmp/wspub-bench run -url ws://127.0.0.1:8090/ws -conns 1000 -msgs 5000 -rate 1000
//	/tmp/wspub-bench run -url ws://127.0.0.1:8090/ws -conns 1000 -msgs 5000 -rate 1000 -flood 2 -flood-kind ping
//
//	# your own deployment: publish messages like {"seq":N,"ts":<unix nanos>} yourself
//	wspub-bench run -url wss://example.com/ws -channel bench -msgs 500 -trigger "" -wait
//
// run prints its progress once a second and a summary on stderr, and one JSON object on
// stdout (see result for its fields). It exits with status 1 when a healthy client lost a
// message or the run timed out, and 2 on any other failure (bad flags, clients that could
// not connect, a trigger that failed).
//
// Latency is the receiving client's clock minus the "ts" the server put in the message
// when it called Publish: on one machine both read the same clock; across machines the
// clocks must be synchronised far better than the latencies measured.
//
// Both subcommands raise the open-file limit (RLIMIT_NOFILE) to its hard limit, so that
// 10 000 connections fit; beyond that, raise the hard limit (ulimit -Hn) and, for more
// than ~28 000 clients of one server address, the local port range
// (net.ipv4.ip_local_port_range).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // the run completed but lost messages or timed out
	exitError  = 2 // bad usage or the run could not be done
)

const usage = `wspub-bench load-tests a wspub hub with real WebSocket clients.

Usage:

	wspub-bench serve [flags]   run a bench server (a default hub at /ws, POST /publish, GET /stats)
	wspub-bench run [flags]     open N clients, trigger a burst, report throughput, latency, loss

Run "wspub-bench serve -h" or "wspub-bench run -h" for their flags.
`

// realMain runs the command line args (without the program name) and returns the exit
// status.
func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveMain(args[1:], stderr)
	case "run":
		var failed bool
		failed, err = runMain(args[1:], stdout, stderr)
		if err == nil && failed {
			return exitFailed
		}
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "wspub-bench: unknown subcommand %q\n\n%s", args[0], usage)
		return exitError
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "wspub-bench %s: %v\n", args[0], err)
		return exitError
	}
	return exitOK
}
