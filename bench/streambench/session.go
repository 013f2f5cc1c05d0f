//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
)

// runResult is what one run measured: a stream process and a download.
type runResult struct {
	startup         time.Duration // process start to GET / answering
	firstByte       time.Duration // request to first body byte, fresh torrent
	streamWall      time.Duration // request to last byte of the whole file
	fetched         int64         // payload the stream process received for it
	seeks           []time.Duration
	hwmStream       int64 // VmHWM after the stream
	hwmEnd          int64 // VmHWM after the seeks (and polled)
	rssEnd          int64 // VmRSS after the seeks
	leftovers       []string
	downloadWall    time.Duration
	downloadFetched int64 // payload the download received
	failures        []string
}

// traceResult is what the run under strace found.
type traceResult struct {
	writes    []string // strace lines that create, write, rename or remove a file
	leftovers []string
	failures  []string
}

// statusLine is a line of "aiotorrent stream --json".
type statusLine struct {
	Event      string `json:"event"`
	URL        string `json:"url"`
	Downloaded int64  `json:"downloaded_bytes"`
	Cached     int64  `json:"cached_bytes"`
}

// session is a running "aiotorrent stream" process.
type session struct {
	b       *bench
	p       *harness.Proc
	pid     int    // the aiotorrent process: under strace, strace's child
	sandbox string // its working folder, HOME and TMPDIR are in here
	base    string // http://127.0.0.1:PORT
	startup time.Duration
	client  *http.Client
	buf     []byte

	mu       sync.Mutex
	status   statusLine // guarded by mu: the latest status line
	statusAt time.Time  // guarded by mu
}

// sandboxDirs are the folders, inside a session's sandbox, that must
// stay empty: the working folder, HOME (and XDG_*_HOME) and TMPDIR.
var sandboxDirs = []string{"cwd", "home", "tmp"}

// startStream starts "aiotorrent stream" (under strace writing to
// traceFile, if not empty) and returns once its HTTP port answers GET /.
func (b *bench) startStream(ctx context.Context, name, traceFile string) (*session, error) {
	s := &session{b: b, sandbox: filepath.Join(b.work, name), buf: make([]byte, 256<<10)}
	for _, d := range sandboxDirs {
		if err := os.MkdirAll(filepath.Join(s.sandbox, d), 0o755); err != nil {
			return nil, err
		}
	}
	home := filepath.Join(s.sandbox, "home")
	env := []string{"HOME=" + home, "TMPDIR=" + filepath.Join(s.sandbox, "tmp"),
		"XDG_CACHE_HOME=" + home, "XDG_CONFIG_HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_STATE_HOME=" + home}
	argv := []string{b.swarm.Bin, "stream", "--addr", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--no-dht",
		"--cache", strconv.FormatInt(b.cfg.cache, 10), "--no-trackers", "--json"}
	argv = append(append(argv, b.peers...), b.swarm.Torrent)
	if traceFile != "" {
		// strace 6.1 has no --kill-on-exit: setpriv makes the kernel kill
		// the tracee if strace dies (strace itself has Pdeathsig).
		argv = append([]string{b.strace, "-f", "--seccomp-bpf", "-o", traceFile,
			"-e", "trace=" + strings.Join(tracedCalls, ","),
			"--", b.setpriv, "--pdeathsig", "KILL", "--"}, argv...)
	}
	serving := make(chan string, 1)
	p, err := harness.StartProc("aiotorrent stream", filepath.Join(b.work, name+".log"), filepath.Join(s.sandbox, "cwd"), env, func(line string) {
		var st statusLine
		if json.Unmarshal([]byte(line), &st) != nil {
			return
		}
		switch st.Event {
		case "serving":
			select {
			case serving <- st.URL:
			default:
			}
		case "status", "stopped":
			s.mu.Lock()
			s.status, s.statusAt = st, time.Now()
			s.mu.Unlock()
		}
	}, argv...)
	if err != nil {
		return nil, err
	}
	s.p, s.pid = p, p.PID()
	p.StopSignal = syscall.SIGINT
	s.client = &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}

	var u string
	select {
	case u = <-serving:
	case <-p.Exited:
		return nil, fmt.Errorf("%v before serving\n%s", p.ExitError(), p.Tail())
	case <-ctx.Done():
		p.Stop()
		return nil, fmt.Errorf("stream: no serving line: %w\n%s", ctx.Err(), p.Tail())
	}
	i := strings.Index(u, "/files/")
	if !strings.HasPrefix(u, "http://127.0.0.1:") || i < 0 {
		p.Stop()
		return nil, fmt.Errorf("stream: serving %q, want http://127.0.0.1:PORT/files/...", u)
	}
	s.base = u[:i]
	if err := s.waitListing(ctx); err != nil {
		p.Stop()
		return nil, err
	}
	s.startup = time.Since(p.Started)
	if traceFile != "" {
		if s.pid, err = onlyChild(p.PID()); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

// waitListing asks for GET / until it answers 200, which does not start
// the torrent.
func (s *session) waitListing(ctx context.Context) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/", nil)
		if err != nil {
			return err
		}
		resp, err := s.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream: GET / not answering: %w (%v)\n%s", ctx.Err(), err, s.p.Tail())
		case <-s.p.Exited:
			return fmt.Errorf("%v before GET / answered\n%s", s.p.ExitError(), s.p.Tail())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// onlyChild returns the process id of the one child of pid (strace's
// tracee).
func onlyChild(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(data))
	if len(f) != 1 {
		return 0, fmt.Errorf("strace (pid %d) has children %q, want one", pid, f)
	}
	return strconv.Atoi(f[0])
}

// get asks for file 0 from offset off, reads limit bytes of it (to its
// end if limit < 0) checking each against the source, and returns how
// long the first byte and the last took to come, from the request.
func (s *session) get(ctx context.Context, off, limit int64) (first, total time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/files/0", nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("GET from %d: %w", off, err)
	}
	defer resp.Body.Close() // before the end: the connection is closed, and the server's reader with it
	if resp.StatusCode != http.StatusPartialContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, 0, fmt.Errorf("GET from %d: %s: %q", off, resp.Status, msg)
	}
	if limit < 0 {
		limit = int64(len(s.b.src)) - off
	}
	var n int64
	for n < limit {
		k, err := resp.Body.Read(s.buf[:min(int64(len(s.buf)), limit-n)])
		if k > 0 {
			if n == 0 {
				first = time.Since(start)
			}
			at := off + n
			if !bytes.Equal(s.buf[:k], s.b.src[at:at+int64(k)]) {
				return 0, 0, fmt.Errorf("GET from %d: wrong bytes at offset %d of the file", off, at+firstDiff(s.buf[:k], s.b.src[at:at+int64(k)]))
			}
			n += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("GET from %d: after %d bytes: %w", off, n, err)
		}
	}
	if n < limit {
		return 0, 0, fmt.Errorf("GET from %d: %d bytes, want %d", off, n, limit)
	}
	return first, time.Since(start), nil
}

// seekAll makes n requests from random offsets (the same ones in every
// run r) and returns the time each took to its first byte.
func (s *session) seekAll(ctx context.Context, r, n int) ([]time.Duration, error) {
	rng := rand.New(rand.NewPCG(uint64(r), 0x5eed))
	var out []time.Duration
	for range n {
		off := rng.Int64N(int64(len(s.b.src)) - seekRead + 1)
		first, _, err := s.get(ctx, off, seekRead)
		if err != nil {
			return out, fmt.Errorf("seek: %w", err)
		}
		out = append(out, first)
	}
	return out, nil
}

// fetchedAfter returns the payload received so far, from the first status
// line (printed every second) after t.
func (s *session) fetchedAfter(ctx context.Context, t time.Time) (int64, error) {
	for {
		s.mu.Lock()
		st, at := s.status, s.statusAt
		s.mu.Unlock()
		if at.After(t) {
			return st.Downloaded, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.p.Exited:
			return 0, s.p.ExitError()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop stops the process with SIGINT, as Ctrl-C would, and fails unless
// it exits with status 0; then it lists what appeared in the sandbox.
func (s *session) stop() (leftovers []string, err error) {
	syscall.Kill(s.pid, syscall.SIGINT)
	select {
	case <-s.p.Exited:
	case <-time.After(harness.StopTimeout):
		s.p.Stop()
		return nil, fmt.Errorf("stream: still running %v after SIGINT\n%s", harness.StopTimeout, s.p.Tail())
	}
	if s.p.Err() != nil {
		return nil, fmt.Errorf("stream: after SIGINT: %w\n%s", s.p.Err(), s.p.Tail())
	}
	for _, d := range sandboxDirs {
		root := filepath.Join(s.sandbox, d)
		filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
			if path != root {
				leftovers = append(leftovers, path)
			}
			return err
		})
	}
	return leftovers, nil
}

// close stops the process if it still runs: its tracee first, under
// strace, which would leave it running if stopped first.
func (s *session) close() {
	if s.pid != s.p.PID() && !s.p.HasExited() {
		syscall.Kill(s.pid, syscall.SIGKILL)
	}
	s.p.Stop()
}

// streamRun is one timed run of a fresh stream process: first byte,
// whole file, seeks, memory, and the sandbox check.
func (b *bench) streamRun(ctx context.Context, r int, res *runResult) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	s, err := b.startStream(ctx, fmt.Sprintf("stream-%d", r+1), "")
	if err != nil {
		return err
	}
	defer s.close()
	res.startup = s.startup
	// Polled, so that a figure remains if the process dies before the
	// last reading.
	hwm := harness.SamplePeak(s.pid, "VmHWM")
	defer hwm.Stop()

	if res.firstByte, res.streamWall, err = s.get(ctx, 0, -1); err != nil {
		return fmt.Errorf("stream: %w\n%s", err, s.p.Tail())
	}
	end := time.Now()
	res.hwmStream, _ = harness.StatusBytes(s.pid, "VmHWM")
	if res.fetched, err = s.fetchedAfter(ctx, end); err != nil {
		return fmt.Errorf("stream: status: %w", err)
	}
	if res.seeks, err = s.seekAll(ctx, r, b.cfg.seeks); err != nil {
		return fmt.Errorf("stream: %w\n%s", err, s.p.Tail())
	}
	last, err1 := harness.StatusBytes(s.pid, "VmHWM")
	rss, err2 := harness.StatusBytes(s.pid, "VmRSS")
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	res.hwmEnd, res.rssEnd = max(last, hwm.Stop()), rss
	if res.leftovers, err = s.stop(); err != nil {
		return err
	}
	if len(res.leftovers) > 0 {
		return fmt.Errorf("stream wrote into its sandbox: %s", strings.Join(res.leftovers, ", "))
	}
	if !b.cfg.Keep {
		os.RemoveAll(s.sandbox)
		os.Remove(s.p.LogPath)
	}
	return nil
}

// traceRun streams the whole file and seeks under strace, untimed, and
// lists the system calls that create, write, rename or remove a file
// outside /dev, /proc and /sys.
func (b *bench) traceRun(ctx context.Context, res *traceResult) error {
	harness.Progress("strace run: streaming %.0f MiB and seeking under strace -f", harness.MiB(b.cfg.Size))
	ctx, cancel := context.WithTimeout(ctx, 2*b.cfg.Timeout)
	defer cancel()
	traceFile := filepath.Join(b.work, "stream-strace.trace")
	s, err := b.startStream(ctx, "stream-strace", traceFile)
	if err != nil {
		return err
	}
	defer s.close()
	if _, _, err := s.get(ctx, 0, -1); err != nil {
		return fmt.Errorf("stream under strace: %w\n%s", err, s.p.Tail())
	}
	if _, err := s.seekAll(ctx, -1, min(b.cfg.seeks, 10)); err != nil {
		return fmt.Errorf("stream under strace: %w\n%s", err, s.p.Tail())
	}
	if res.leftovers, err = s.stop(); err != nil {
		return err
	}
	data, err := os.ReadFile(traceFile)
	if err != nil {
		return err
	}
	res.writes = fileWrites(string(data))
	harness.Progress("strace run: %d calls that write files, %d files left in the sandbox", len(res.writes), len(res.leftovers))
	return nil
}

// tracedCalls are the system calls the strace run watches.
var tracedCalls = []string{"open", "openat", "openat2", "creat", "truncate", "mkdir", "mkdirat",
	"rename", "renameat", "renameat2", "unlink", "unlinkat", "link", "linkat", "symlink", "symlinkat"}

// fileWrites returns the lines of strace output for calls that create,
// write, rename or remove a file outside /dev, /proc and /sys: opens for
// writing or creating, and every creat, truncate, mkdir, rename, unlink,
// link and symlink, whether they succeeded or not.
func fileWrites(trace string) []string {
	var out []string
	for line := range strings.Lines(trace) {
		line = strings.TrimSpace(line)
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		call, _, ok := strings.Cut(f[1], "(")
		if !ok || !slices.Contains(tracedCalls, call) {
			// "<... resumed>", "+++ exited", "--- SIGINT", and "???(" for
			// a call strace could not name as the process exits.
			continue
		}
		if strings.HasPrefix(call, "open") &&
			!strings.Contains(line, "O_WRONLY") && !strings.Contains(line, "O_RDWR") &&
			!strings.Contains(line, "O_CREAT") && !strings.Contains(line, "O_TRUNC") {
			continue
		}
		_, rest, _ := strings.Cut(line, `"`)
		path, _, _ := strings.Cut(rest, `"`)
		if strings.HasPrefix(path, "/dev/") || strings.HasPrefix(path, "/proc/") || strings.HasPrefix(path, "/sys/") {
			continue
		}
		out = append(out, line)
	}
	return out
}
