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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Real BitTorrent clients as peers for tests: aria2c (this file),
// qbittorrent-nox (qbittorrent.go) and libtorrent through its Python
// binding (libtorrent.go). Each runs as a separate process for one test,
// listening and connecting on 127.0.0.1 only, with DHT, local peer
// discovery, peer exchange and port mapping off: the trackers in the
// torrent are its only source of peers. Each is stopped when the test
// ends (SIGTERM, then SIGKILL after clientStopTimeout), and its output and
// logs are shown when the test fails.

// Aria2 is an aria2c process seeding or downloading one torrent, made by
// [Aria2Seed] or [Aria2Leech].
//
// aria2c (1.36) announces to HTTP trackers only: it uses UDP trackers only
// when its DHT is on, and here it is off. Give it torrents with an HTTP
// tracker.
type Aria2 struct {
	proc *clientProc
	port int
}

// Aria2Seed starts aria2c seeding the torrent at torrentPath from the data
// in dataDir (the folder that holds the torrent's file or folder). It
// checks the data first (-V) and then seeds until the test ends. It
// returns at once; a leecher learns of it once it has checked the data and
// announced, so wait for the tracker to report a seeder.
//
// It needs aria2c (Debian package aria2): without it the test is skipped,
// or fails if [RequireEnv] is set.
func Aria2Seed(t testing.TB, torrentPath, dataDir string) *Aria2 {
	t.Helper()
	return startAria2(t, "aria2c seeder", torrentPath, dataDir,
		"--check-integrity=true", // -V: hash the data before seeding
		"--seed-ratio=0.0",       // with no --seed-time: seed for ever
	)
}

// Aria2Leech starts aria2c downloading the torrent at torrentPath into
// outDir. It exits once the download is complete and checked
// (--seed-time=0): [Aria2.Wait] returns then.
//
// It needs aria2c (Debian package aria2): without it the test is skipped,
// or fails if [RequireEnv] is set.
func Aria2Leech(t testing.TB, torrentPath, outDir string) *Aria2 {
	t.Helper()
	return startAria2(t, "aria2c leecher", torrentPath, outDir,
		"--seed-time=0",
	)
}

func startAria2(t testing.TB, name, torrentPath, dir string, extra ...string) *Aria2 {
	t.Helper()
	bin := Tool(t, "aria2c", "aria2")
	torrentPath, err := filepath.Abs(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	logFile := filepath.Join(home, "aria2.log")
	port := freePort(t)
	args := []string{
		"--no-conf=true", // ignore ~/.aria2/aria2.conf
		// Loopback only, and no peer source but the trackers.
		"--interface=127.0.0.1",
		"--disable-ipv6=true",
		"--enable-dht=false",
		"--enable-dht6=false",
		"--bt-enable-lpd=false",
		"--enable-peer-exchange=false",
		"--listen-port=" + strconv.Itoa(port),
		// Announce every few seconds whatever the tracker says.
		"--bt-tracker-interval=2",
		// Exit if the test process dies without stopping us.
		"--stop-with-process=" + strconv.Itoa(os.Getpid()),
		"--dir=" + dir,
		"--allow-overwrite=true",
		"--auto-file-renaming=false",
		"--file-allocation=none",
		"--bt-save-metadata=false",
		"--summary-interval=0",
		"--console-log-level=notice",
		"--log=" + logFile,
		"--log-level=info",
	}
	args = append(args, extra...)
	args = append(args, torrentPath)
	p := startClientProc(t, name, clientCommand{
		path: bin, args: args, dir: home, env: []string{"HOME=" + home},
		logFiles: []string{logFile},
		logNoise: aria2LogNoise,
	})
	return &Aria2{proc: p, port: port}
}

// aria2LogNoise marks the lines of aria2c's info log left out of failure
// messages: one or more per 16 KiB block, they would push out the rest.
var aria2LogNoise = []string{
	" piece index=", " request index=", " cancel index=", " have index=",
	" allowed fast index=", "we got new piece.", " bitfield ",
}

// Port returns the TCP port aria2c listens on for peers, on 127.0.0.1.
func (a *Aria2) Port() int { return a.port }

// Wait waits until aria2c exits and returns nil if it exited with status
// 0, or an error that includes its output and log. It returns ctx's error,
// with the output so far, if ctx is done first. A leecher exits when its
// download is complete; a seeder only when stopped.
func (a *Aria2) Wait(ctx context.Context) error { return a.proc.wait(ctx) }

// Logs returns the end of aria2c's output and log file.
func (a *Aria2) Logs() string { return a.proc.logs() }

// The process handling shared by the client harnesses.

const (
	// clientStopTimeout is how long a client has to exit after SIGTERM
	// before it is killed.
	clientStopTimeout = 5 * time.Second
	// clientStartTimeout bounds how long a harness waits for a client to
	// be ready: listening, or done checking a seeder's data.
	clientStartTimeout = 30 * time.Second
	// clientOutputTail is how much of a client's output, and of each log
	// file, is kept for failure messages.
	clientOutputTail = 32 << 10
)

// clientCommand is what startClientProc runs.
type clientCommand struct {
	path     string
	args     []string
	dir      string      // working directory
	env      []string    // added to the environment
	stdout   io.Writer   // nil: into the output kept for failure messages
	stdin    bool        // give it a pipe as stdin, closed to stop it
	output   *outputTail // nil: a new one
	logFiles []string    // logs it writes itself, shown in failure messages
	logNoise []string    // lines of logFiles with any of these are not shown
}

// clientProc is a client process started for a test.
type clientProc struct {
	name     string
	shown    string // the command line, for messages
	cmd      *exec.Cmd
	cancel   context.CancelFunc
	stdin    io.Closer // nil unless clientCommand.stdin
	output   *outputTail
	logFiles []string
	logNoise []string

	exited chan struct{} // closed when cmd.Wait returns
	err    error         // from cmd.Wait; read only after exited is closed

	stopOnce  sync.Once
	logsShown atomic.Bool // failureLogs was called: the cleanup need not log them
}

// startClientProc starts c and registers a cleanup that stops it and, if
// the test failed, logs its output.
func startClientProc(t testing.TB, name string, c clientCommand) *clientProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, c.path, c.args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	// Stopping: SIGTERM, then SIGKILL after clientStopTimeout.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = clientStopTimeout
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	p := &clientProc{
		name:     name,
		shown:    strings.Join(cmd.Args, " "),
		cmd:      cmd,
		cancel:   cancel,
		output:   c.output,
		logFiles: c.logFiles,
		logNoise: c.logNoise,
		exited:   make(chan struct{}),
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
		if t.Failed() && !p.logsShown.Load() {
			t.Logf("%s", p.logs())
		}
	})
	return p
}

// setParentDeathSignal asks the kernel to kill the client if the test
// process dies without stopping it (a test binary killed by its -timeout
// runs no cleanup). Only Linux has the field, so it is set by name.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
}

// stop closes the client's stdin and sends it SIGTERM, and waits for it
// to exit, killing it after clientStopTimeout. It is idempotent.
func (p *clientProc) stop() {
	p.stopOnce.Do(func() {
		if p.stdin != nil {
			p.stdin.Close()
		}
		p.cancel()
		<-p.exited
	})
}

func (p *clientProc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit; see [Aria2.Wait].
func (p *clientProc) wait(ctx context.Context) error {
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
func (p *clientProc) exitError() error {
	err := p.err
	if err == nil {
		err = errors.New("exit status 0")
	}
	return fmt.Errorf("%s exited: %w", p.name, err)
}

// failureLogs returns logs() for an error message, and notes that the
// test's cleanup need not log them again if the test fails.
func (p *clientProc) failureLogs() string {
	p.logsShown.Store(true)
	return p.logs()
}

// logs returns the command line, the end of the output and of each log
// file, for failure messages.
func (p *clientProc) logs() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s: %s\n", p.name, p.shown)
	fmt.Fprintf(&b, "--- %s output:\n%s", p.name, p.output.String())
	for _, f := range p.logFiles {
		fmt.Fprintf(&b, "\n--- %s %s:\n%s", p.name, filepath.Base(f), fileTail(f, clientOutputTail, p.logNoise))
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

// outputTail is an io.Writer that keeps the last clientOutputTail bytes
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
	if over := len(o.buf) - clientOutputTail; over > clientOutputTail {
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
