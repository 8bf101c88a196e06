package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of the CPU times in /proc/PID/stat: 100 on
// every architecture Go supports (the kernel converts to it whatever its own HZ).
const clockTick = 10 * time.Millisecond

// processCPU returns the CPU time, user and system, that process pid has used so far,
// from /proc/PID/stat (Linux only), to a tick of 10 ms.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("server CPU time: %w", err)
	}
	return parseProcStat(b)
}

// parseProcStat reads utime and stime, fields 14 and 15 of /proc/PID/stat. The command
// name, field 2, is in parentheses and may hold spaces and parentheses itself: the fields
// are counted from the last ')'.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("server CPU time: no command name in %q", b)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("server CPU time: %d fields after the command name, want 13 or more", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("server CPU time: field %q is not a tick count", s)
		}
		ticks += v
	}
	return time.Duration(ticks) * clockTick, nil
}
