//go:build linux

package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// TreeCPUTime returns the CPU time, user + system, that the process pid
// and its descendants have used so far: for pid and each living
// descendant, its own time (utime + stime of /proc/PID/stat) plus that of
// its children that have exited and been waited for (cutime + cstime). A
// descendant that exits between two calls moves from the living to its
// parent's waited-for children, so the difference between two calls
// stays right as long as its parent waits for it.
//
// Descendants are found through /proc/PID/task/TID/children; one that
// exits while the tree is walked is left out.
func TreeCPUTime(pid int) (time.Duration, error) {
	self, children, err := statCPU(pid)
	if err != nil {
		return 0, err
	}
	total := self + children
	for _, c := range childPIDs(pid) {
		d, err := TreeCPUTime(c)
		if err != nil {
			continue // exited since it was listed
		}
		total += d
	}
	return total, nil
}

// statCPU returns utime + stime and cutime + cstime of /proc/PID/stat.
func statCPU(pid int) (self, children time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields 14 to 17 (utime, stime, cutime, cstime) are the 12th to
	// 15th after the command name's closing parenthesis.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var t [4]int64
	var errs []error
	for k := range t {
		t[k], err = strconv.ParseInt(f[11+k], 10, 64)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	tick := func(n int64) time.Duration { return time.Duration(n) * time.Second / clkTck }
	return tick(t[0] + t[1]), tick(t[2] + t[3]), nil
}

// childPIDs lists the living children of every thread of pid.
func childPIDs(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(s); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
