// Command compare runs wspub and its peers side by side, in one run a reader can repeat
// with one command from the repository's root:
//
//	go run ./benchmarks/compare -out compare.md
//
// It builds the load tool (cmd/wspub-bench) and the peer servers (cmd/peerserve:
// centrifuge, melody, gorilla/websocket's hub pattern and a naive coder/websocket hub),
// then measures the scenarios of shared/PERFORMANCE.md against wspub-bench serve (a
// default wspub hub) and every peer with the same load tool: a and b, bursts to one
// channel; c, the memory and goroutines of idle connections; d and e, a steady rate. Every
// measurement gets a fresh server process; the servers take turns within each scenario,
// and their order rotates from run to run, so that the host's drift falls on all of
// them. The load tool reads the server process's CPU time (/proc/PID/stat) from the
// trigger to the last delivery. The harness prints a Markdown table (scenarios by
// servers) with the date, the Go version, the machine and the command, and writes it to
// -out too.
//
// -quick runs small sizes in about a minute; -scenarios, -servers and -runs (the table
// shows medians) choose what runs; -duration sets how long d and e publish.
//
// The servers and the load tool share the machine: on 2 cores the figures are ratios
// taken in one run, not absolute capacities.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	Out       string
	Scenarios []string
	Servers   []string
	Runs      int
	Quick     bool
	Duration  time.Duration // of d and e; 0: 10s, or 2s with Quick
	Verbose   bool
}

// allServers are the columns, wspub first.
func allServers() []string { return []string{"wspub", "centrifuge", "melody", "gorilla", "naive"} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		}
		os.Exit(2)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{}
	var scenariosFlag, serversFlag string
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Out, "out", "", "also write the Markdown report to this `file`")
	fs.StringVar(&scenariosFlag, "scenarios", "a,b,c,d,e", "the scenarios to run, comma-separated")
	fs.StringVar(&serversFlag, "servers", strings.Join(allServers(), ","), "the servers to compare, comma-separated")
	fs.IntVar(&cfg.Runs, "runs", 1, "runs of every scenario against every server; the table shows medians")
	fs.BoolVar(&cfg.Quick, "quick", false, "small sizes (hundreds of connections, 2 s of steady rate): a smoke run of about a minute")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long scenarios d and e publish at their steady rate (default 10s, 2s with -quick)")
	fs.BoolVar(&cfg.Verbose, "v", false, "show the servers' and the load tool's output")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg.Scenarios = strings.Split(scenariosFlag, ",")
	cfg.Servers = strings.Split(serversFlag, ",")
	for _, s := range cfg.Scenarios {
		if !slices.Contains([]string{"a", "b", "c", "d", "e"}, s) {
			return cfg, fmt.Errorf("-scenarios: unknown scenario %q (have a, b, c, d, e)", s)
		}
	}
	for _, s := range cfg.Servers {
		if !slices.Contains(allServers(), s) {
			return cfg, fmt.Errorf("-servers: unknown server %q (have %s)", s, strings.Join(allServers(), ", "))
		}
	}
	switch {
	case cfg.Runs < 1:
		return cfg, errors.New("-runs must be at least 1")
	case cfg.Duration < 0:
		return cfg, errors.New("-duration must not be negative")
	case cfg.Duration == 0 && cfg.Quick:
		cfg.Duration = 2 * time.Second
	case cfg.Duration == 0:
		cfg.Duration = 10 * time.Second
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := repoRoot(wd)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "wspub-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	loadTool, peerserve, err := build(ctx, root, dir, stderr)
	if err != nil {
		return err
	}
	m := describeMachine(start, root)
	h := &harness{cfg: cfg, loadTool: loadTool, log: stderr}
	for _, name := range cfg.Servers {
		h.servers = append(h.servers, serverFor(name, loadTool, peerserve, m.commit))
	}
	for _, sc := range scenarios(cfg.Quick, cfg.Duration) {
		if slices.Contains(cfg.Scenarios, sc.id) {
			h.scenarios = append(h.scenarios, sc)
		}
	}
	res := h.run(ctx)
	rep := &report{machine: m, command: commandLine(args), runs: cfg.Runs, scenarios: h.scenarios,
		servers: h.servers, results: res, duration: time.Since(start).Round(time.Second).String()}
	var out strings.Builder
	rep.render(&out)
	fmt.Fprint(stdout, out.String())
	if cfg.Out != "" {
		if err := os.WriteFile(cfg.Out, []byte(out.String()), 0o644); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// serverFor returns the column of the server called name.
func serverFor(name, loadTool, peerserve, commit string) serverSpec {
	if name == "wspub" {
		label := "wspub"
		if commit != "" {
			label += " (" + commit + ")"
		}
		return serverSpec{name: name, label: label, proto: "wspub",
			argv: []string{loadTool, "serve", "-addr", "127.0.0.1:0"}}
	}
	spec := serverSpec{name: name, proto: "wspub", argv: []string{peerserve, "-server", name, "-addr", "127.0.0.1:0"}}
	version := peerVersion(peerserve, name)
	switch name {
	case "centrifuge":
		spec.label, spec.proto = "centrifuge "+version, "centrifuge"
	case "melody":
		spec.label = "melody " + version
	case "gorilla":
		spec.label = "gorilla/websocket " + version + " hub pattern"
	case "naive":
		spec.label = "naive coder/websocket " + version + " hub"
	}
	return spec
}

// peerVersion asks peerserve which version of the library the server is built with.
func peerVersion(peerserve, name string) string {
	out, err := exec.Command(peerserve, "-server", name, "-version").Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		return "(version unknown)"
	}
	return strings.TrimSpace(string(out))
}

// commandLine is the command that reruns this comparison from the repository's root.
func commandLine(args []string) string {
	parts := []string{"go", "run", "./benchmarks/compare"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\`*?|&;<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
