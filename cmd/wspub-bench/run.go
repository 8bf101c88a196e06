package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wspub/wspub/internal/benchctl"
)

// runConfig configures a run.
type runConfig struct {
	URL      string  // the hub's WebSocket URL
	Conns    int     // clients
	Channel  string  // the channel every client subscribes to (not with Idle)
	Msgs     int     // messages each client expects
	Size     int     // envelope bytes asked of the bench server
	Rate     float64 // messages per second asked of the bench server; 0: as fast as possible
	Trigger  string  // POST URL that starts the publishing; "" with Wait: none
	Wait     bool    // do not trigger: someone else publishes
	StatsURL string  // GET URL of the server's figures; "": none
	Slow     float64 // fraction of clients that subscribe and never read
	Idle     bool    // scenario c: connect, stay idle, measure the server per connection
	Channels int     // Idle: clients are spread over this many channels
	Settle   time.Duration
	Ramp     float64       // connections per second; 0: as fast as Dialers allow
	Dialers  int           // handshakes in flight at most
	Timeout  time.Duration // bounds the whole run
	Quiet    time.Duration // after the trigger returned, stop once nothing arrived for this long
	Drain    time.Duration // how long slow clients may read at the end

	Flood     int    // raw clients that flood the server with frames during the burst
	FloodKind string // floodPing, floodContinuation or floodPong

	Proto     string // protoWspub or protoCentrifuge
	ServerPID int    // if positive, the server's process on this machine: its CPU time per delivery is reported

	Progress io.Writer // progress and summary; nil: none
}

func runMain(args []string, stdout, stderr io.Writer) (failed bool, err error) {
	cfg, err := parseRunFlags(args, stderr)
	if err != nil {
		return false, err
	}
	cfg.Progress = stderr
	return measure(stdout, stderr, func(ctx context.Context) (*result, error) { return runBench(ctx, cfg) },
		func(res *result) { printSummary(stderr, cfg, res) })
}

// measure runs bench under a context that SIGINT and SIGTERM cancel, prints its summary
// on stderr and its result as one JSON line on stdout, and reports whether it failed:
// what run and soak share.
func measure[R interface{ failed() bool }](stdout, stderr io.Writer, bench func(context.Context) (R, error),
	summary func(R)) (failed bool, err error) {
	logNoFile(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := bench(ctx)
	if err != nil {
		return false, err
	}
	summary(res)
	line, err := json.Marshal(res)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(stdout, "%s\n", line)
	return res.failed(), nil
}

func parseRunFlags(args []string, stderr io.Writer) (runConfig, error) {
	cfg := runConfig{}
	var ramp string
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8090/ws", "the hub's WebSocket `URL`")
	fs.IntVar(&cfg.Conns, "conns", 1000, "number of clients")
	fs.StringVar(&cfg.Channel, "channel", "bench", "channel every client subscribes to")
	fs.IntVar(&cfg.Msgs, "msgs", 1000, "messages published (each client expects all of them)")
	fs.IntVar(&cfg.Size, "size", 128, "approximate size of a message envelope, in bytes")
	fs.Float64Var(&cfg.Rate, "rate", 0, "messages per second the bench server publishes; 0 is as fast as possible")
	fs.StringVar(&cfg.Trigger, "trigger", "", "`URL` to POST to start publishing (default: /publish of the -url host, with channel, n, size and rate added to its query)")
	fs.BoolVar(&cfg.Wait, "wait", false, `trigger nothing: wait for -msgs messages published by someone else (with -trigger "")`)
	fs.StringVar(&cfg.StatsURL, "stats", "", `URL of the server's figures (default: /stats of the -url host; "" for none)`)
	fs.Float64Var(&cfg.Slow, "slow", 0, "`fraction` of clients that subscribe and never read; reported apart")
	fs.BoolVar(&cfg.Idle, "idle", false, "scenario c: connect -conns idle clients and report the server's heap+stack and goroutines per connection")
	fs.IntVar(&cfg.Channels, "channels", 100, `with -idle: spread the clients over this many channels "idle:<i % channels>"`)
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Second, "with -idle: how long the clients stay idle before the server is measured")
	fs.StringVar(&ramp, "ramp", "2000/s", `connection rate, e.g. "2000/s"; "0" is as fast as -dialers allows`)
	fs.IntVar(&cfg.Dialers, "dialers", 128, "handshakes in flight at most")
	fs.DurationVar(&cfg.Timeout, "timeout", 60*time.Second, "bound on the whole run; a run that times out exits with status 1")
	fs.DurationVar(&cfg.Quiet, "quiet", 5*time.Second, "once the trigger has returned, stop waiting after this long without a delivery (lost messages)")
	fs.DurationVar(&cfg.Drain, "drain", 3*time.Second, "with -slow: how long the slow clients may read at the end (to count their messages and close codes)")
	fs.IntVar(&cfg.Flood, "flood", 0, "`N` extra raw clients that flood the server with frames from just before the burst to its end")
	fs.StringVar(&cfg.Proto, "proto", protoWspub, "the client protocol: wspub, or centrifuge (centrifuge's JSON protocol: connect and subscribe commands, publications in push replies) for the side-by-side harness in benchmarks/compare")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "`PID` of the server process, on this machine (Linux): report its CPU time from the trigger to the last delivery, per delivery")
	fs.StringVar(&cfg.FloodKind, "flood-kind", floodPing, "what the -flood clients send: ping (empty pings), continuation (a text frame with FIN=0, then empty continuation frames without end) or pong (unsolicited empty pongs)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: wspub-bench run [flags]

Opens -conns WebSocket clients (subprotocol wspub.v1) at -ramp, subscribes each to -channel
and waits for every "subscribed" reply; then POSTs the trigger (the bench server's
/publish by default) and counts the bench messages every client receives: seq gaps (lost),
out-of-order, and latency (arrival − the message's "ts") in per-client log-linear
histograms (0.8 % buckets). Progress goes to stderr once a second, a summary to stderr at
the end, and one JSON object to stdout. The top-level delivery figures are the healthy
clients' (all of them without -slow); with -slow, "slow" holds the slow clients'. Server
figures come from -stats after the burst: heap and stack after a GC, with every client
still connected; counters are this run's increase.

Messages of your own publisher are counted if their data is {"seq":N,"ts":<unix nanos>,...},
N from 0 to -msgs−1 (encoding/json's layout: no space after the colon is needed but spaces
are allowed).

-idle connects the clients (spread over -channels channels "idle:<i % channels>"; 1 puts
them all on -channel), reads GET /stats?gc=1 before and -settle after, and reports
(heap_inuse+stack_inuse increase)/conns as bytes_per_conn and the goroutine increase per
connection. Clients keep reading (and answering pings) while idle.

-flood N adds N raw-socket clients that, once every client has subscribed and until the
last delivery, write masked frames of -flood-kind as fast as the server takes them (64 KiB
of 6-byte frames per write), read and discard what it sends back, and answer its pings.
The latencies are the normal clients' as ever: compare the p99 of a run with -flood 2 to
one without. "flood" in the JSON has the frames sent, the rate, and for each flooder
whether the server closed it, when and with which code (1006: without a close frame).

-rate R with -msgs N is a steady state: the server publishes R messages a second for
N/R seconds, and every latency is measured at that rate (scenarios d and e: e.g. -msgs
3000 -rate 200 is 15 s at 200 messages/s).

-server-pid reads the server's CPU time (user + system, /proc/PID/stat, 10 ms ticks)
just before the trigger and just after the last delivery, so that neither the handshakes
nor the closes count, and reports server_cpu_s and server_cpu_us_per_delivery.

-proto centrifuge speaks centrifuge's JSON protocol instead of wspub.v1 (no -flood): a
connect and a subscribe command in one frame, the subscribe reply as "subscribed", and
{} pings answered with {}; publications arrive as push replies whose data is the bench
data.

Exit status: 1 if a healthy client lost a message or the run timed out, 2 on other errors.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if cfg.Ramp, err = parseRamp(ramp); err != nil {
		return cfg, err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return cfg, fmt.Errorf("-url must be a ws:// or wss:// URL, not %q", cfg.URL)
	}
	if !set["stats"] {
		cfg.StatsURL = deriveURL(u, "/stats")
	}
	switch {
	case cfg.Idle || cfg.Wait:
		if set["trigger"] && cfg.Trigger != "" {
			return cfg, errors.New("-trigger cannot be combined with -wait or -idle")
		}
		cfg.Trigger = ""
	case set["trigger"] && cfg.Trigger == "":
		return cfg, errors.New(`-trigger "" needs -wait (messages are published by someone else)`)
	case !set["trigger"]:
		cfg.Trigger = deriveURL(u, "/publish")
	}
	if cfg.Trigger != "" {
		if cfg.Trigger, err = triggerURL(cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, cfg.validate()
}

func (cfg *runConfig) validate() error {
	switch {
	case cfg.Conns < 1:
		return errors.New("-conns must be at least 1")
	case cfg.Idle && cfg.Slow != 0:
		return errors.New("-slow cannot be combined with -idle")
	case cfg.Idle && cfg.StatsURL == "":
		return errors.New("-idle needs the server's figures: -stats must not be empty")
	case cfg.Idle && cfg.Channels < 1:
		return errors.New("-channels must be at least 1")
	case !cfg.Idle && cfg.Msgs < 1:
		return errors.New("-msgs must be at least 1")
	case cfg.Size < 0 || cfg.Size > benchctl.MaxSize:
		return fmt.Errorf("-size must be in 0..%d", benchctl.MaxSize)
	case cfg.Rate < 0:
		return errors.New("-rate must not be negative")
	case cfg.Slow < 0 || cfg.Slow >= 1:
		return errors.New("-slow must be a fraction in [0, 1)")
	case !cfg.Idle && slowCount(cfg.Conns, cfg.Slow) == cfg.Conns:
		return errors.New("-slow leaves no healthy client")
	case cfg.Channel == "" && (!cfg.Idle || cfg.Channels == 1):
		return errors.New("-channel must not be empty")
	case cfg.Dialers < 1:
		return errors.New("-dialers must be at least 1")
	case cfg.Flood < 0:
		return errors.New("-flood must not be negative")
	case cfg.Flood > 0 && cfg.Idle:
		return errors.New("-flood cannot be combined with -idle")
	case cfg.FloodKind != floodPing && cfg.FloodKind != floodContinuation && cfg.FloodKind != floodPong:
		return fmt.Errorf("-flood-kind must be ping, continuation or pong, not %q", cfg.FloodKind)
	case !knownProto(cfg.Proto):
		return fmt.Errorf("-proto must be wspub or centrifuge, not %q", cfg.Proto)
	case cfg.Proto == protoCentrifuge && cfg.Flood > 0:
		return errors.New("-flood speaks wspub.v1 only: it cannot be combined with -proto " + cfg.Proto)
	case cfg.ServerPID < 0:
		return errors.New("-server-pid must not be negative")
	case cfg.Timeout <= 0 || cfg.Quiet <= 0 || cfg.Drain <= 0 || cfg.Settle < 0:
		return errors.New("-timeout, -quiet and -drain must be positive, -settle not negative")
	}
	return nil
}

// parseRamp parses a connection rate: "2000/s", "2000" or "0".
func parseRamp(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "/s"), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf(`-ramp must be a rate such as "2000/s", not %q`, s)
	}
	return v, nil
}

// deriveURL returns the http(s) URL of path on the host of the WebSocket URL u.
func deriveURL(u *url.URL, path string) string {
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: u.Host, Path: path}).String()
}

// triggerURL adds the publish parameters the trigger's query does not already have.
func triggerURL(cfg runConfig) (string, error) {
	u, err := url.Parse(cfg.Trigger)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("-trigger must be an http:// or https:// URL, not %q", cfg.Trigger)
	}
	q := u.Query()
	for k, v := range map[string]string{
		"channel": cfg.Channel, "n": strconv.Itoa(cfg.Msgs), "size": strconv.Itoa(cfg.Size),
		"rate": strconv.FormatFloat(cfg.Rate, 'g', -1, 64),
	} {
		if !q.Has(k) {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// slowCount is how many of n clients are slow: the fraction f, rounded.
func slowCount(n int, f float64) int { return int(f*float64(n) + 0.5) }
