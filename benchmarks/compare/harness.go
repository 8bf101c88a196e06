package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// loadResult is what the harness reads of the load tool's JSON line.
type loadResult struct {
	Deliveries     int64   `json:"deliveries"`
	Expected       int64   `json:"expected"`
	Lost           int64   `json:"lost"`
	Disconnected   int     `json:"disconnected"`
	TimedOut       bool    `json:"timed_out"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	LatencyUS      struct {
		P50 uint64 `json:"p50"`
		P99 uint64 `json:"p99"`
	} `json:"latency_us"`
	ServerCPUUSPerDelivery float64  `json:"server_cpu_us_per_delivery"`
	BytesPerConn           *float64 `json:"bytes_per_conn"`
	GoroutinesPerConn      *float64 `json:"goroutines_per_conn"`
}

// measurement is one run of one scenario against one server.
type measurement struct {
	res *loadResult // nil when err is set
	err error
}

// results holds every measurement by scenario id and server name.
type results map[string]map[string][]measurement

func (r results) add(scenario, server string, m measurement) {
	if r[scenario] == nil {
		r[scenario] = map[string][]measurement{}
	}
	r[scenario][server] = append(r[scenario][server], m)
}

// harness runs the comparison.
type harness struct {
	cfg       config
	loadTool  string // the wspub-bench binary
	servers   []serverSpec
	scenarios []scenario
	log       io.Writer // progress
}

// repoRoot returns the repository's root: the directory, from dir upwards, whose go.mod
// is module github.com/wspub/wspub.
func repoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/wspub/wspub\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no wspub repository at or above %s: run from the repository", dir)
		}
	}
}

// build builds the load tool and peerserve into dir with the go command that runs the
// harness, and returns their paths.
func build(ctx context.Context, root, dir string, log io.Writer) (loadTool, peerserve string, err error) {
	loadTool, peerserve = filepath.Join(dir, "wspub-bench"), filepath.Join(dir, "peerserve")
	for _, b := range []struct{ dir, out, pkg string }{
		{root, loadTool, "./cmd/wspub-bench"},
		{filepath.Join(root, "benchmarks", "compare"), peerserve, "./cmd/peerserve"},
	} {
		fmt.Fprintf(log, "compare: go build -o %s %s (in %s)\n", b.out, b.pkg, b.dir)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	return loadTool, peerserve, nil
}

// run measures every scenario against every server, cfg.Runs times: run by run,
// scenario by scenario, server by server (the servers' order rotates from run to run),
// each measurement against a fresh server process.
func (h *harness) run(ctx context.Context) results {
	res := results{}
	total, n := h.cfg.Runs*len(h.scenarios)*len(h.servers), 0
	for run := range h.cfg.Runs {
		for _, sc := range h.scenarios {
			for i := range h.servers {
				spec := h.servers[(i+run)%len(h.servers)]
				n++
				start := time.Now()
				m := h.measure(ctx, sc, spec)
				res.add(sc.id, spec.name, m)
				fmt.Fprintf(h.log, "compare: [%d/%d] run %d, %s, %s: %s (%.1fs)\n", n, total, run+1, sc.id, spec.name,
					cellText(sc, []measurement{m}), time.Since(start).Seconds())
				if ctx.Err() != nil {
					return res
				}
			}
		}
	}
	return res
}

// measure runs scenario sc once against a fresh process of spec.
func (h *harness) measure(ctx context.Context, sc scenario, spec serverSpec) measurement {
	var verbose io.Writer
	if h.cfg.Verbose {
		verbose = h.log
	}
	srv, err := startServer(ctx, spec, verbose)
	if err != nil {
		return measurement{err: err}
	}
	res, err := h.load(ctx, sc, spec, srv)
	if errStop := srv.stop(); errStop != nil && err == nil {
		fmt.Fprintf(h.log, "compare: %s did not shut down cleanly: %v\n%s\n", spec.name, errStop, srv.log.String())
	}
	return measurement{res: res, err: err}
}

// load runs the load tool against srv. Its exit status 1 (lost messages, a timeout)
// still gives a result; the table shows the losses.
func (h *harness) load(ctx context.Context, sc scenario, spec serverSpec, srv *child) (*loadResult, error) {
	args := append(sc.args(), "-url", "ws://"+srv.addr+"/ws", "-proto", spec.proto,
		"-server-pid", strconv.Itoa(srv.cmd.Process.Pid))
	ctx, cancel := context.WithTimeout(ctx, sc.timeout()+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.loadTool, args...)
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	if h.cfg.Verbose {
		cmd.Stderr = io.MultiWriter(stderr, h.log)
	}
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return nil, fmt.Errorf("wspub-bench %s: %w: %s", strings.Join(args, " "), err, lastLine(stderr.String()))
	}
	var res loadResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		return nil, fmt.Errorf("wspub-bench printed no result: %w: %s", err, lastLine(stderr.String()))
	}
	return &res, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
