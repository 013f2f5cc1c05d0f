//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
)

// ourCLI is cmd/aiotorrent as built, and what its commands accept.
type ourCLI struct {
	bin    string
	hasDHT bool            // it imports the dht package
	noDHT  map[string]bool // by command: it accepts --no-dht
}

// errDHT is the refusal to run a CLI whose DHT cannot be turned off.
var errDHT = errors.New("refusing to run aiotorrent: its DHT node would contact the public routers")

// ourCommands are the commands of ours that are measured.
var ourCommands = []string{clientStream, clientDownload}

// probeCLI finds out whether the CLI built in w runs a DHT node and
// whether its commands accept --no-dht, and refuses a CLI that would run
// one it cannot turn off: it would contact the public DHT routers.
func probeCLI(ctx context.Context, w *harness.Work) (*ourCLI, error) {
	o := &ourCLI{bin: w.Bin, noDHT: map[string]bool{}}
	list := exec.CommandContext(ctx, w.GoCmd, "list", "-deps", "./cmd/aiotorrent")
	list.Dir = w.Root
	out, err := list.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps ./cmd/aiotorrent: %w", err)
	}
	for line := range strings.Lines(string(out)) {
		if strings.TrimSpace(line) == harness.ModulePath+"/dht" {
			o.hasDHT = true
		}
	}
	for _, cmd := range ourCommands {
		// With no torrent, the command stops at its arguments, before
		// it makes a client: only the flag is checked.
		out, _ := exec.CommandContext(ctx, o.bin, cmd, "--no-dht").CombinedOutput()
		o.noDHT[cmd] = !strings.Contains(string(out), "flag provided but not defined")
		if o.hasDHT && !o.noDHT[cmd] {
			return nil, fmt.Errorf("%w: cmd/aiotorrent imports %s/dht but \"aiotorrent %s\" has no --no-dht", errDHT, harness.ModulePath, cmd)
		}
	}
	return o, nil
}

// args returns the command line of our command cmd, before its own
// options and the magnet link: every run of ours gets these, and no
// other option that changes how it finds or talks to peers. It listens
// on 127.0.0.1:port, prints JSON lines, and has no DHT.
func (o *ourCLI) args(cmd string, port int) []string {
	a := []string{o.bin, cmd, "--listen", "127.0.0.1:" + strconv.Itoa(port), "--json"}
	if o.noDHT[cmd] {
		a = append(a, "--no-dht")
	}
	return a
}

// dhtNote says, for the report, how our DHT was kept off.
func (o *ourCLI) dhtNote() string {
	switch {
	case o.noDHT[clientStream] && o.noDHT[clientDownload]:
		return "`--no-dht`"
	case !o.hasDHT:
		return "no DHT in this build"
	default:
		return "`--no-dht` where accepted"
	}
}

// ourLine is a JSON line of ours, of the fields used.
type ourLine struct {
	Event   string  `json:"event"`
	URL     string  `json:"url"`
	Seconds float64 `json:"seconds"`
}

// events notes when each kind of JSON line of a process first came.
type events struct {
	mu      sync.Mutex
	at      map[string]time.Time // guarded by mu
	fetch   time.Duration        // guarded by mu: the metadata line's seconds
	url     string               // guarded by mu: the first serving line's
	serving chan struct{}        // closed at the first serving line
}

func newEvents() *events {
	return &events{at: map[string]time.Time{}, serving: make(chan struct{})}
}

func (e *events) onLine(line string) {
	now := time.Now()
	var l ourLine
	if json.Unmarshal([]byte(line), &l) != nil || l.Event == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.at[l.Event]; ok {
		return
	}
	e.at[l.Event] = now
	switch l.Event {
	case "metadata":
		e.fetch = time.Duration(l.Seconds * float64(time.Second))
	case "serving":
		e.url = l.URL
		close(e.serving)
	}
}

// since returns how long after start the first line of event came, 0 if
// none did.
func (e *events) since(event string, start time.Time) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	if at, ok := e.at[event]; ok {
		return at.Sub(start)
	}
	return 0
}

// runDir makes the folder of one run, with an empty HOME, XDG folders and
// TMPDIR in it, and returns it and the environment that points there.
func (b *bench) runDir(m *measure) (string, []string, error) {
	dir := filepath.Join(b.swarm.Work, "runs", fmt.Sprintf("%d-%s-%s", m.Run, m.Via, m.Client))
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(dir, "tmp"), filepath.Join(dir, "cwd")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", nil, err
		}
	}
	env := []string{"HOME=" + home, "TMPDIR=" + filepath.Join(dir, "tmp"),
		"XDG_CACHE_HOME=" + home, "XDG_CONFIG_HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_STATE_HOME=" + home,
		// Should a build run its DHT after all, it joins no one: no
		// public router (the default of --dht-bootstrap).
		"AIOTORRENT_DHT_BOOTSTRAP=none"}
	if b.cfg.log {
		env = append(env, "AIOTORRENT_LOG=debug")
	}
	return dir, env, nil
}

// finishRun removes the run's folder, but for its logs with -keep.
func (b *bench) finishRun(dir string) {
	if !b.cfg.Keep {
		os.RemoveAll(dir)
		return
	}
	for _, d := range []string{"out", "home", "tmp", "cwd", "state"} {
		os.RemoveAll(filepath.Join(dir, d))
	}
}

// startOurs starts our command cmd on the magnet link of m's peer source,
// with extra options, in dir with env, watching its first announce.
func (b *bench) startOurs(m *measure, cmd, dir string, env, extra []string) (*harness.Proc, *events, func() time.Time, error) {
	port, err := swarmtest.FreePort()
	if err != nil {
		return nil, nil, nil, err
	}
	announced := b.tr.watch(port)
	argv := append(append(b.ours.args(cmd, port), extra...), b.magnets[m.Via])
	ev := newEvents()
	p, err := harness.StartProc("aiotorrent "+cmd, filepath.Join(dir, cmd+".log"), filepath.Join(dir, "cwd"), env, ev.onLine, argv...)
	if err != nil {
		announced()
		return nil, nil, nil, err
	}
	return p, ev, announced, nil
}

// oursDone fills in what every run of ours measures once the process has
// exited.
func (b *bench) oursDone(m *measure, p *harness.Proc, ev *events, announced func() time.Time) {
	m.Ready = ev.since("fetching_metadata", p.Started)
	m.Metadata = ev.since("metadata", p.Started)
	ev.mu.Lock()
	m.Fetch = ev.fetch
	ev.mu.Unlock()
	if at := announced(); !at.IsZero() {
		m.Announce = at.Sub(p.Started)
	}
	if p.HasExited() {
		m.CPU = p.ExitUsage().CPU
	}
	if b.cfg.log {
		m.LogMetadata, m.LogConnect, m.LogUnchoked = logTimes(p.LogPath, p.Started)
	}
}

// streamRun runs "aiotorrent stream" on the magnet link and reads the
// whole file from its HTTP server as soon as it serves.
func (b *bench) streamRun(ctx context.Context, m *measure) error {
	dir, env, err := b.runDir(m)
	if err != nil {
		return err
	}
	defer b.finishRun(dir)
	p, ev, announced, err := b.startOurs(m, clientStream, dir, env, []string{"--addr", "127.0.0.1:0"})
	if err != nil {
		return err
	}
	p.StopSignal = syscall.SIGINT // it stops cleanly on SIGINT
	defer b.oursDone(m, p, ev, announced)
	defer p.Stop()

	select {
	case <-ev.serving:
	case <-p.Exited:
		return fmt.Errorf("%v before serving\n%s", p.ExitError(), p.Tail())
	case <-ctx.Done():
		return fmt.Errorf("stream: not serving: %w\n%s", ctx.Err(), p.Tail())
	}
	m.Serving = ev.since("serving", p.Started)
	ev.mu.Lock()
	u := ev.url
	ev.mu.Unlock()
	if !strings.HasPrefix(u, "http://127.0.0.1:") {
		return fmt.Errorf("stream: serving %q, want http://127.0.0.1:PORT/...", u)
	}
	first, last, err := b.getAll(ctx, u)
	if err != nil {
		return fmt.Errorf("stream: %w\n%s", err, p.Tail())
	}
	m.FirstByte, m.Complete = first.Sub(p.Started), last.Sub(p.Started)

	p.Cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.Exited:
	case <-time.After(harness.StopTimeout):
		return fmt.Errorf("stream: still running %v after SIGINT\n%s", harness.StopTimeout, p.Tail())
	}
	m.Exit = time.Since(p.Started)
	if p.Err() != nil {
		return fmt.Errorf("stream: after SIGINT: %w\n%s", p.Err(), p.Tail())
	}
	return nil
}

// getAll asks for the whole file at u from its first byte and reads it,
// checking it against the source, and returns when its first and last
// bytes came.
func (b *bench) getAll(ctx context.Context, u string) (first, last time.Time, err error) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return first, last, err
	}
	req.Header.Set("Range", "bytes=0-")
	resp, err := client.Do(req)
	if err != nil {
		return first, last, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return first, last, fmt.Errorf("GET %s: %s: %q", u, resp.Status, msg)
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 {
			if n == 0 {
				first = time.Now()
			}
			h.Write(buf[:k])
			n += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return first, last, fmt.Errorf("GET %s: after %d bytes: %w", u, n, err)
		}
	}
	last = time.Now()
	if n != b.cfg.Size {
		return first, last, fmt.Errorf("GET %s: %d bytes, want %d", u, n, b.cfg.Size)
	}
	if [sha256.Size]byte(h.Sum(nil)) != b.sum {
		return first, last, fmt.Errorf("GET %s: the bytes differ from the source", u)
	}
	return first, last, nil
}

// downloadRun runs "aiotorrent download" on the magnet link, with a fresh
// state folder, until it exits, and checks the file.
func (b *bench) downloadRun(ctx context.Context, m *measure) error {
	dir, env, err := b.runDir(m)
	if err != nil {
		return err
	}
	defer b.finishRun(dir)
	out, state := filepath.Join(dir, "out"), filepath.Join(dir, "state")
	p, ev, announced, err := b.startOurs(m, clientDownload, dir, env, []string{"-o", out, "--state-dir", state})
	if err != nil {
		return err
	}
	defer b.oursDone(m, p, ev, announced)
	defer p.Stop()
	select {
	case <-p.Exited:
	case <-ctx.Done():
		return fmt.Errorf("download: %w\n%s", ctx.Err(), p.Tail())
	}
	m.Exit = time.Since(p.Started)
	m.Complete = ev.since("done", p.Started)
	if p.Err() != nil {
		return fmt.Errorf("download: %w\n%s", p.Err(), p.Tail())
	}
	if m.Complete == 0 {
		return fmt.Errorf("download: exited without a done line\n%s", p.Tail())
	}
	if err := harness.VerifyFile(filepath.Join(out, b.swarm.MI.Info.Name), b.cfg.Size, b.sum); err != nil {
		return fmt.Errorf("download not identical to the source: %w", err)
	}
	return nil
}

// logTimes reads, from the debug log of ours at path, when the metadata
// arrived, and when the first peer connection after it opened and first
// unchoked us, from start; 0 for what is not there. The log's times are
// to the millisecond.
func logTimes(path string, start time.Time) (meta, connect, unchoked time.Duration) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		at, msg, ok := parseLogLine(sc.Text())
		if !ok {
			continue
		}
		d := at.Sub(start)
		switch {
		case msg == "metadata received" && meta == 0:
			meta = d
		case msg == "peer connected" && meta != 0 && connect == 0:
			connect = d
		case msg == "peer unchoked us" && meta != 0 && unchoked == 0:
			unchoked = d
		}
	}
	return meta, connect, unchoked
}

// parseLogLine reads the time and message of a line of log/slog's text
// handler: time=2026-11-25T17:41:26.628Z level=DEBUG msg="peer connected" ...
func parseLogLine(line string) (time.Time, string, bool) {
	rest, ok := strings.CutPrefix(line, "time=")
	if !ok {
		return time.Time{}, "", false
	}
	ts, rest, _ := strings.Cut(rest, " ")
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", false
	}
	_, rest, ok = strings.Cut(rest, "msg=")
	if !ok {
		return time.Time{}, "", false
	}
	var msg string
	if strings.HasPrefix(rest, `"`) {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return time.Time{}, "", false
		}
		msg, _ = strconv.Unquote(q)
	} else {
		msg, _, _ = strings.Cut(rest, " ")
	}
	return at, msg, true
}
