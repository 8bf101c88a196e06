// Command wspub-bench load-tests a wspub hub with real WebSocket clients: it measures
// fan-out throughput, delivery latency, loss, slow-consumer isolation, the memory an
// idle connection costs the server, the latency other clients see during a frame flood,
// and whether the server's memory stays flat under churn.
//
// It has three subcommands. serve runs a bench server: a hub with default options (or
// the timeouts and queue bound its flags set) at /ws, plus POST /publish to publish a
// burst of numbered, timestamped messages and GET /stats for the hub's Stats and the
// runtime's memory figures (after a GC with ?gc=1), the control surface of
// internal/benchctl, which the peer servers of benchmarks/compare serve too. run opens N
// clients against a server, subscribes them, triggers a burst and reports what arrived;
// with -flood, raw clients flood the server with frames meanwhile. soak keeps N clients
// joining, receiving and leaving in every way a client leaves (close handshake, TCP FIN,
// TCP RST, stops reading, stops answering pings) for a duration while it publishes,
// samples the server's heap after GC, goroutines, connections and deliveries, writes
// them as CSV and an SVG chart, and fails when the heap or the goroutines trend upward.
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
//	# scenario d: a steady 200 messages/s for 15 s; with the server's CPU per delivery
//	# (its PID on this machine, from the trigger to the last delivery)
//	/tmp/wspub-bench run -url ws://127.0.0.1:8090/ws -conns 1000 -msgs 3000 -rate 200 -server-pid $SERVER_PID
//
//	# a peer of benchmarks/compare that speaks centrifuge's protocol
//	/tmp/wspub-bench run -url ws://127.0.0.1:8091/ws -conns 1000 -msgs 1000 -proto centrifuge
//
//	# your own deployment: publish messages like {"seq":N,"ts":<unix nanos>} yourself
//	wspub-bench run -url wss://example.com/ws -channel bench -msgs 500 -trigger "" -wait
//
//	# a 10-minute soak: a server whose heartbeat, write timeout and buffers let stalled
//	# and silent clients be evicted and reaped within seconds; 1 000 clients, 20 of which
//	# leave (and as many join) every second, 500 messages/s over 10 channels
//	/tmp/wspub-bench serve -addr 127.0.0.1:8090 -ping-interval 10s -pong-timeout 5s \
//		-write-timeout 2s -close-timeout 2s -max-queue-bytes 65536 -sndbuf 32768 &
//	/tmp/wspub-bench soak -url ws://127.0.0.1:8090/ws -duration 10m -conns 1000 -churn 20 \
//		-channels 10 -publish 500 -size 512 -interval 10s -server-wait 30s -csv soak.csv -svg soak.svg
//
//	# a soak of your own deployment: it must serve the stats JSON of "soak -h"; publish
//	# on the channels soak:0..soak:9 yourself
//	wspub-bench soak -url wss://example.com/ws -header "Authorization: Bearer $TOKEN" \
//		-stats https://example.com/internal/stats -publish-url "" -duration 1h
//
// run prints its progress once a second and a summary on stderr, and one JSON object on
// stdout (see result for its fields). It exits with status 1 when a healthy client lost a
// message or the run timed out, and 2 on any other failure (bad flags, clients that could
// not connect, a trigger that failed).
//
// soak prints a line per sample and a summary on stderr, and one JSON object on stdout
// (see soakResult); the CSV has a row per sample (see csvHeader). It exits with status 1
// when the heap after GC or the goroutines rise after the warm-up by more than their
// limits per 10 minutes (-max-heap-growth, default 1 MiB; -max-goroutine-growth, default
// 10), beyond 3 standard errors of the fitted slope, or when it ended too early to judge;
// 2 when it could not run.
//
// Latency is the receiving client's clock minus the "ts" the server put in the message
// when it called Publish: on one machine both read the same clock; across machines the
// clocks must be synchronised far better than the latencies measured.
//
// Every subcommand raises the open-file limit (RLIMIT_NOFILE) to its hard limit, so that
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
	exitFailed = 1 // the run completed but lost messages or timed out; the soak's memory or goroutines rose
	exitError  = 2 // bad usage or the run could not be done
)

const usage = `wspub-bench load-tests a wspub hub with real WebSocket clients.

Usage:

	wspub-bench serve [flags]   run a bench server (a default hub at /ws, POST /publish, GET /stats)
	wspub-bench run [flags]     open N clients, trigger a burst, report throughput, latency, loss
	wspub-bench soak [flags]    keep N clients joining and leaving in every way while publishing;
	                            sample the server's heap and goroutines; fail if they trend upward

Run "wspub-bench serve -h", "wspub-bench run -h" or "wspub-bench soak -h" for their flags.
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
	case "soak":
		var failed bool
		failed, err = soakMain(args[1:], stdout, stderr)
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
