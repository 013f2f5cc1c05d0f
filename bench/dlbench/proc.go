//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
)

// The programs the harness starts: every one is registered in procs and
// stopped by stopAll, which run defers, so that an error or Ctrl-C leaves
// nothing running. Each also gets SIGKILL from the kernel if the harness
// dies without stopping it (Pdeathsig).

// stopTimeout is how long a program has to exit after SIGTERM before it
// is killed.
const stopTimeout = 5 * time.Second

// clkTck is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100
// on every Linux architecture Go supports).
const clkTck = 100

// proc is one program started by the harness.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string    // its stdout and stderr
	stdin   io.Closer // a pipe: closing it is how libtorrent_client.py is told to stop
	started time.Time

	exited chan struct{} // closed when cmd.Wait returns
	err    error         // from cmd.Wait; read only after exited is closed

	stopOnce sync.Once
}

var (
	procsMu sync.Mutex
	procs   []*proc // guarded by procsMu: every program started, for stopAll
)

// startProc starts argv with its output in logPath. If onLine is not nil
// it is called with each line of the program's stdout (which also goes to
// the log), from a goroutine of its own.
func startProc(name, logPath, dir string, env []string, onLine func(string), argv ...string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout io.ReadCloser
	if onLine == nil {
		cmd.Stdout = logFile
	} else if stdout, err = cmd.StdoutPipe(); err != nil {
		logFile.Close()
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, stdin: stdin, exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	var lines sync.WaitGroup
	if onLine != nil {
		lines.Go(func() {
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				logFile.Write(append(sc.Bytes(), '\n'))
				onLine(sc.Text())
			}
		})
	}
	go func() {
		lines.Wait() // cmd.Wait closes stdout: read it all first
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop closes the program's stdin, sends it SIGTERM, and waits for it to
// exit, killing it after stopTimeout. It is idempotent.
func (p *proc) stop() {
	p.stopOnce.Do(func() {
		if p.hasExited() {
			return
		}
		p.stdin.Close()
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// stopAll stops every program started, the most recent first.
func stopAll() {
	procsMu.Lock()
	list := procs
	procs = nil
	procsMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Go(p.stop)
	}
	wg.Wait()
}

// exitError describes how the program ended, for a program that was not
// meant to end yet.
func (p *proc) exitError() error {
	if p.err != nil {
		return fmt.Errorf("%s exited: %w", p.name, p.err)
	}
	return fmt.Errorf("%s exited with status 0", p.name)
}

// tail returns the end of the program's log, for error messages.
func (p *proc) tail() string {
	return fmt.Sprintf("--- %s (%s): %s\n%s", p.name, p.logPath, strings.Join(p.cmd.Args, " "), swarmtest.FileTail(p.logPath, 4<<10))
}

// usage is what a program used: CPU time, user + system, and the peak
// resident set size.
type usage struct {
	cpu    time.Duration
	maxRSS int64 // bytes
}

// exitUsage returns the usage of a program that has exited, from wait4's
// rusage.
func (p *proc) exitUsage() usage {
	ps := p.cmd.ProcessState
	u := usage{cpu: ps.UserTime() + ps.SystemTime()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.maxRSS = ru.Maxrss << 10 // in KiB on Linux
	}
	return u
}

// cpuTime returns the CPU time, user + system, a running process has used
// so far, from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count the fields after its closing parenthesis. utime and stime are
	// fields 14 and 15, so the 12th and 13th after it.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// statusBytes returns a "kB" field of /proc/PID/status, such as VmHWM
// (peak resident set size) or RssAnon (resident anonymous memory), in
// bytes.
func statusBytes(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, field, err)
			}
			return n << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// anonSampler records the peak of a process's resident anonymous memory
// (RssAnon), read every sampleEvery. Unlike the peak RSS it leaves out
// mapped file pages: libtorrent 2.0 (and qBittorrent on it) reads and
// writes the data through memory-mapped files, so its RSS counts the data
// it has touched.
type anonSampler struct {
	stopc chan struct{}
	done  chan struct{}
	peak  int64 // written by the sampler; read after done is closed
}

const sampleEvery = 50 * time.Millisecond

func sampleAnon(pid int) *anonSampler {
	s := &anonSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			if n, err := statusBytes(pid, "RssAnon"); err == nil {
				s.peak = max(s.peak, n)
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak seen.
func (s *anonSampler) stop() int64 {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	<-s.done
	return s.peak
}
