package swarmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The process handling shared by the client and tracker harnesses: each
// program runs as a separate process for one test, is stopped when the
// test ends (SIGTERM, then SIGKILL after stopTimeout), and has its output
// and logs shown when the test fails.

const (
	// stopTimeout is how long a program has to exit after SIGTERM before
	// it is killed.
	stopTimeout = 5 * time.Second
	// outputTailSize is how much of a program's output, and of each log
	// file, is kept for failure messages.
	outputTailSize = 32 << 10
)

// processCommand is what startProcess runs.
type processCommand struct {
	path     string
	args     []string
	dir      string      // working directory
	env      []string    // added to the environment
	shown    string      // the command line for messages; "": path and args
	stdout   io.Writer   // nil: into the output kept for failure messages
	stdin    bool        // give it a pipe as stdin, closed to stop it
	output   *outputTail // nil: a new one
	logFiles []string    // logs it writes itself, shown in failure messages
	logNoise []string    // lines of logFiles with any of these are not shown
}

// process is a program started for a test: a client or a tracker.
type process struct {
	name     string
	shown    string // the command line, for messages
	cmd      *exec.Cmd
	cancel   context.CancelFunc
	stdin    io.Closer // nil unless processCommand.stdin
	output   *outputTail
	logFiles []string
	logNoise []string

	exited chan struct{} // closed when cmd.Wait returns
	err    error         // from cmd.Wait; read only after exited is closed

	stopOnce      sync.Once
	exitedUnasked bool        // set by stop: it had exited before stop was called
	ready         atomic.Bool // set once started, so later exits are errors
	logsShown     atomic.Bool // failureLogs was called: the cleanup need not log them
}

// startProcess starts c and registers a cleanup that stops it and, if
// the test failed, logs its output. If the process was marked ready
// ([process.setReady]) and exited before the cleanup stopped it, the
// cleanup fails the test.
func startProcess(t testing.TB, name string, c processCommand) *process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, c.path, c.args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	// Stopping: SIGTERM, then SIGKILL after stopTimeout.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	p := &process{
		name:     name,
		shown:    c.shown,
		cmd:      cmd,
		cancel:   cancel,
		output:   c.output,
		logFiles: c.logFiles,
		logNoise: c.logNoise,
		exited:   make(chan struct{}),
	}
	if p.shown == "" {
		p.shown = strings.Join(cmd.Args, " ")
	}
	if p.output == nil {
		p.output = &outputTail{}
	}
	cmd.Stderr = p.output
	cmd.Stdout = p.output
	if c.stdout != nil {
		cmd.Stdout = c.stdout
	}
	if c.stdin {
		in, err := cmd.StdinPipe()
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", name, err)
		}
		p.stdin = in
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		switch {
		case p.ready.Load() && p.exitedUnasked:
			t.Errorf("%s exited during the test: %v\n%s", p.name, p.err, p.failureLogs())
		case t.Failed() && !p.logsShown.Load():
			t.Logf("%s", p.logs())
		}
	})
	return p
}

// setParentDeathSignal asks the kernel to kill the program if the test
// process dies without stopping it (a test binary killed by its -timeout
// runs no cleanup). Only Linux has the field, so it is set by name.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
}

// setReady marks the process as started: from now on, exiting before it
// is stopped fails the test.
func (p *process) setReady() { p.ready.Store(true) }

// stop closes the program's stdin and sends it SIGTERM, and waits for it
// to exit, killing it after stopTimeout. It is idempotent.
func (p *process) stop() {
	p.stopOnce.Do(func() {
		p.exitedUnasked = p.hasExited()
		if p.stdin != nil {
			p.stdin.Close()
		}
		p.cancel()
		<-p.exited
	})
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit; see [Aria2.Wait].
func (p *process) wait(ctx context.Context) error {
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s: %w\n%s", p.name, p.err, p.failureLogs())
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: still running: %w\n%s", p.name, ctx.Err(), p.failureLogs())
	}
}

// exitError describes an exit the harness did not ask for.
func (p *process) exitError() error {
	err := p.err
	if err == nil {
		err = errors.New("exit status 0")
	}
	return fmt.Errorf("%s exited: %w", p.name, err)
}

// fatalf stops the process and fails the test with its output.
func (p *process) fatalf(t testing.TB, format string, args ...any) {
	t.Helper()
	p.stop()
	t.Fatalf("%s: %s\n%s", p.name, fmt.Sprintf(format, args...), p.failureLogs())
}

// failureLogs returns logs() for an error message, and notes that the
// test's cleanup need not log them again if the test fails.
func (p *process) failureLogs() string {
	p.logsShown.Store(true)
	return p.logs()
}

// logs returns the command line, the end of the output and of each log
// file, for failure messages.
func (p *process) logs() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s: %s\n", p.name, p.shown)
	fmt.Fprintf(&b, "--- %s output:\n%s", p.name, p.output.String())
	for _, f := range p.logFiles {
		fmt.Fprintf(&b, "\n--- %s %s:\n%s", p.name, filepath.Base(f), fileTail(f, outputTailSize, p.logNoise))
	}
	return b.String()
}

// fileTail returns the last n bytes of the file name, leaving out lines
// that contain any of noise, or why it cannot.
func fileTail(name string, n int64, noise []string) string {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "(not written yet)"
	}
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	// Read at most maxLogRead bytes from the end, and filter those.
	off := max(st.Size()-maxLogRead, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return err.Error()
	}
	if len(noise) > 0 {
		var kept []byte
		for line := range bytes.Lines(b) {
			if !containsAny(line, noise) {
				kept = append(kept, line...)
			} else {
				off += int64(len(line))
			}
		}
		b = kept
	}
	if cut := int64(len(b)) - n; cut > 0 {
		off += cut
		b = b[cut:]
	}
	if off > 0 {
		return fmt.Sprintf("[%d bytes left out]\n%s", off, b)
	}
	return string(b)
}

// maxLogRead bounds what fileTail reads of a log.
const maxLogRead = 8 << 20

func containsAny(line []byte, subs []string) bool {
	for _, s := range subs {
		if bytes.Contains(line, []byte(s)) {
			return true
		}
	}
	return false
}

// outputTail is an io.Writer that keeps the last outputTailSize bytes
// written to it.
type outputTail struct {
	mu      sync.Mutex
	buf     []byte // guarded by mu
	dropped int64  // guarded by mu: bytes discarded from the front
}

func (o *outputTail) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, b...)
	if over := len(o.buf) - outputTailSize; over > outputTailSize {
		o.dropped += int64(over)
		o.buf = append(o.buf[:0], o.buf[over:]...)
	}
	return len(b), nil
}

func (o *outputTail) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dropped > 0 {
		return fmt.Sprintf("[%d bytes left out]\n%s", o.dropped, o.buf)
	}
	return string(o.buf)
}

// lineWriter is an io.Writer that calls fn with each complete line
// written to it, without its newline. Lines longer than 64 KiB are cut.
type lineWriter struct {
	mu      sync.Mutex
	partial []byte // guarded by mu
	fn      func(line string)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.partial = append(w.partial, b...)
			if len(w.partial) > 64<<10 {
				w.fn(string(w.partial))
				w.partial = w.partial[:0]
			}
			break
		}
		w.partial = append(w.partial, b[:i]...)
		w.fn(string(w.partial))
		w.partial = w.partial[:0]
		b = b[i+1:]
	}
	return n, nil
}
