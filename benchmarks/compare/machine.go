package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// machine describes where and when the comparison ran.
type machine struct {
	date      string // UTC
	goVersion string // the toolchain that built the harness (go run builds it, and the servers, with the same)
	nproc     int
	cpu       string // the model name of /proc/cpuinfo
	kernel    string
	loadAvg   string // /proc/loadavg's 1, 5 and 15-minute figures
	commit    string // wspub's, with "-dirty" if the work tree has changes; "" outside git
}

// describeMachine reads the machine's figures; what it cannot read is "unknown".
func describeMachine(now time.Time, root string) machine {
	m := machine{
		date:      now.UTC().Format("2006-01-02 15:04 UTC"),
		goVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		nproc:     runtime.NumCPU(),
		cpu:       "unknown CPU",
		kernel:    "unknown",
		loadAvg:   "unknown",
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if model := cpuModel(b); model != "" {
			m.cpu = model
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.loadAvg = strings.Join(f[:3], " ")
		}
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			m.commit += "-dirty"
		}
	}
	return m
}

// cpuModel returns the first "model name" of a /proc/cpuinfo.
func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
