package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverSpec is one column of the table: a server the harness starts as a child process.
type serverSpec struct {
	name  string   // as -servers names it
	label string   // the column's heading
	proto string   // the load tool's -proto
	argv  []string // the command; its -addr is 127.0.0.1:0
}

// child is a running server process.
type child struct {
	cmd  *exec.Cmd
	addr string // host:port it listens on
	log  *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // what Wait returned; read after done
}

// startServer starts spec's process and waits for the line that names its address.
// Its output goes to verbose, if not nil, and to the child's log.
func startServer(ctx context.Context, spec serverSpec, verbose io.Writer) (*child, error) {
	cmd := exec.Command(spec.argv[0], spec.argv[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, log: &tailBuffer{max: 32 << 10}, done: make(chan struct{})}
	cmd.Stdout = c.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(c.log, line)
			if verbose != nil {
				fmt.Fprintf(verbose, "  [%s] %s\n", spec.name, line)
			}
			if a, ok := listeningAddr(line); ok {
				select {
				case addr <- a:
				default:
				}
			}
		}
		c.err = cmd.Wait() // after the pipe is drained, as Wait requires
		close(c.done)
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case c.addr = <-addr:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("%s exited before listening: %v: %s", spec.name, c.err, c.log.String())
	case <-t.C:
	case <-ctx.Done():
	}
	c.stop()
	return nil, fmt.Errorf("%s did not listen within 30s: %s", spec.name, c.log.String())
}

// listeningAddr returns the address in the line both wspub-bench serve and peerserve
// print once they listen: "… listening on http://HOST:PORT …".
func listeningAddr(line string) (string, bool) {
	const marker = "listening on http://"
	i := strings.Index(line, marker)
	if i < 0 {
		return "", false
	}
	f := strings.Fields(line[i+len(marker):])
	if len(f) == 0 {
		return "", false
	}
	return f[0], true
}

// stop asks the process to shut down (SIGTERM) and kills it if it has not exited within
// 20 seconds. It returns the process's error, if its exit was not clean.
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
		return c.err
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.done
		return errors.New("did not exit within 20s of SIGTERM: killed")
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
