//go:build linux

package harness

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

// The programs a harness starts: every one is registered here and
// stopped by [StopAll], which the harness defers, so that an error or
// Ctrl-C leaves nothing running. Each also gets SIGKILL from the kernel
// if the harness dies without stopping it (Pdeathsig).

// StopTimeout is how long a program has to exit after its stop signal
// before it is killed.
const StopTimeout = 5 * time.Second

// clkTck is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100
// on every Linux architecture Go supports).
const clkTck = 100

// Proc is one program started by [StartProc].
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string // its stdout and stderr
	Started time.Time
	// StopSignal is what [Proc.Stop] sends: SIGTERM unless set before
	// Stop is called ("aiotorrent stream" stops cleanly on SIGINT only).
	StopSignal os.Signal
	Exited     chan struct{} // closed when the program has exited

	stdin    io.Closer // a pipe: closing it is how libtorrent_client.py is told to stop
	err      error     // from cmd.Wait; read only after Exited is closed
	stopOnce sync.Once
}

var (
	procsMu sync.Mutex
	procs   []*Proc // guarded by procsMu: every program started, for StopAll
)

// StartProc starts argv in folder dir, with env added to the harness's
// environment and its output in logPath. If onLine is not nil it is
// called with each line of the program's stdout (which also goes to the
// log), from a goroutine of its own.
func StartProc(name, logPath, dir string, env []string, onLine func(string), argv ...string) (*Proc, error) {
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
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, StopSignal: syscall.SIGTERM, stdin: stdin, Exited: make(chan struct{})}
	p.Started = time.Now()
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
		close(p.Exited)
	}()
	return p, nil
}

// PID returns the program's process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// HasExited reports whether the program has exited.
func (p *Proc) HasExited() bool {
	select {
	case <-p.Exited:
		return true
	default:
		return false
	}
}

// Err returns how the program exited (cmd.Wait's error); call it only
// once Exited is closed.
func (p *Proc) Err() error { return p.err }

// Stop closes the program's stdin, sends it StopSignal, and waits for it
// to exit, killing it after StopTimeout. It is idempotent.
func (p *Proc) Stop() {
	p.stopOnce.Do(func() {
		if p.HasExited() {
			return
		}
		p.stdin.Close()
		p.Cmd.Process.Signal(p.StopSignal)
		select {
		case <-p.Exited:
		case <-time.After(StopTimeout):
			p.Cmd.Process.Kill()
			<-p.Exited
		}
	})
}

// StopAll stops every program started and not yet stopped.
func StopAll() {
	procsMu.Lock()
	list := procs
	procs = nil
	procsMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Go(p.Stop)
	}
	wg.Wait()
}

// ExitError describes how the program ended, for a program that was not
// meant to end yet.
func (p *Proc) ExitError() error {
	if p.err != nil {
		return fmt.Errorf("%s exited: %w", p.Name, p.err)
	}
	return fmt.Errorf("%s exited with status 0", p.Name)
}

// Tail returns the end of the program's log, for error messages.
func (p *Proc) Tail() string {
	return fmt.Sprintf("--- %s (%s): %s\n%s", p.Name, p.LogPath, strings.Join(p.Cmd.Args, " "), swarmtest.FileTail(p.LogPath, 4<<10))
}

// Usage is what a program used: CPU time, user + system, and the peak
// resident set size.
type Usage struct {
	CPU    time.Duration
	MaxRSS int64 // bytes
}

// ExitUsage returns the usage of a program that has exited, from wait4's
// rusage.
func (p *Proc) ExitUsage() Usage {
	ps := p.Cmd.ProcessState
	u := Usage{CPU: ps.UserTime() + ps.SystemTime()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSS = ru.Maxrss << 10 // in KiB on Linux
	}
	return u
}

// CPUTime returns the CPU time, user + system, a running process has used
// so far, from /proc/PID/stat.
func CPUTime(pid int) (time.Duration, error) {
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

// StatusBytes returns a "kB" field of /proc/PID/status, such as VmHWM
// (peak resident set size), VmRSS or RssAnon, in bytes.
func StatusBytes(pid int, field string) (int64, error) {
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

// SampleEvery is how often a [PeakSampler] reads /proc.
const SampleEvery = 50 * time.Millisecond

// PeakSampler records the peak of a "kB" field of a process's
// /proc/PID/status (see [StatusBytes]), read every [SampleEvery], so that
// a figure remains if the process exits before the last reading or, for
// a field that is not itself a peak, such as RssAnon, so that there is
// one.
type PeakSampler struct {
	stopc, done chan struct{}
	peak        int64 // written by the sampler; read after done is closed
}

// SamplePeak starts sampling field of process pid.
func SamplePeak(pid int, field string) *PeakSampler {
	s := &PeakSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(SampleEvery)
		defer t.Stop()
		for {
			if n, err := StatusBytes(pid, field); err == nil {
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

// Stop ends the sampling and returns the peak seen, in bytes; it is
// idempotent.
func (s *PeakSampler) Stop() int64 {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	<-s.done
	return s.peak
}
