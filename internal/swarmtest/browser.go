package swarmtest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A headless Chromium for end-to-end tests of streaming to a browser, and
// [MakeVideo] to make a video for it to play.

// MakeVideo writes a test video of the given length in seconds to path
// with ffmpeg: WebM with VP8 video (a test pattern with a running clock,
// 320x240 at 25 fps, a keyframe every second so that seeking is quick)
// and Opus audio (a sine tone), which Chromium plays without proprietary
// codecs.
//
// It needs ffmpeg (Debian package ffmpeg): without it the test is
// skipped, or fails if [RequireEnv] is set.
func MakeVideo(t testing.TB, path string, seconds int) {
	t.Helper()
	bin := Tool(t, "ffmpeg", "ffmpeg")
	n := strconv.Itoa(seconds)
	cmd := exec.CommandContext(t.Context(), bin, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", n,
		"-c:v", "libvpx", "-b:v", "400k", "-g", "25", "-deadline", "realtime", "-cpu-used", "8",
		"-c:a", "libopus", "-b:a", "48k",
		"-f", "webm", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
}

// ArtifactDir returns the folder where tests leave files for people to
// look at, such as screenshots: $AIOTORRENT_ARTIFACTS if set, else
// aiotorrent-artifacts in [os.TempDir]. It creates the folder if needed.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("AIOTORRENT_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "aiotorrent-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The size of the browser's page, in CSS pixels, and of its screenshots.
const viewWidth, viewHeight = 800, 600

// chromiumFlags keep Chromium headless, off the network but for loopback,
// and playing media without a user's gesture. On its own Chromium talks to
// Google's services (component and safe-browsing updates, translation,
// metrics, ...): the flags turn that off, and the host resolver rules make
// any other name than localhost fail to resolve.
var chromiumFlags = []string{
	"--headless", "--remote-debugging-pipe",
	"--no-sandbox", // the sandbox refuses to run as root
	"--no-proxy-server",
	"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
	"--no-first-run", "--no-default-browser-check", "--no-pings",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--disable-default-apps", "--disable-extensions", "--disable-component-extensions-with-background-pages",
	"--disable-breakpad", "--disable-crash-reporter", "--disable-domain-reliability",
	"--metrics-recording-only", // record metrics, never upload them
	"--disable-client-side-phishing-detection", "--safebrowsing-disable-auto-update",
	"--disable-features=Translate,OptimizationHints,OptimizationHintsFetching," +
		"OptimizationGuideModelDownloading,MediaRouter,DialMediaRouteProvider," +
		"AutofillServerCommunication,CertificateTransparencyComponentUpdater," +
		"InterestFeedContentSuggestions,NetworkTimeServiceQuerying",
	"--password-store=basic", "--use-mock-keychain", "--disable-dev-shm-usage",
	// Play at once and on time, in a page that never counts as hidden.
	"--mute-audio", "--autoplay-policy=no-user-gesture-required",
	"--disable-background-timer-throttling", "--disable-renderer-backgrounding",
	"--disable-backgrounding-occluded-windows",
	"--window-size=" + strconv.Itoa(viewWidth) + "," + strconv.Itoa(viewHeight),
}

// chromiumPrefs are files of preferences written into the new profile,
// for what no flag turns off: secure DNS, which on its own may send
// queries to a public DNS-over-HTTPS server, and safe browsing, which
// may look pages up at Google.
var chromiumPrefs = map[string]string{
	"Local State":         `{"dns_over_https": {"mode": "off"}}`,
	"Default/Preferences": `{"safebrowsing": {"enabled": false}, "alternate_error_pages": {"enabled": false}}`,
}

// Browser is a headless Chromium with one page, driven over the DevTools
// protocol through --remote-debugging-pipe: commands go in on Chromium's
// fd 3 and replies and events come out on its fd 4, each a JSON message
// ended by a NUL byte. One goroutine reads the replies and hands each to
// the call waiting for its id, and events to their subscribers.
type Browser struct {
	proc     *process
	session  string        // the page's DevTools session
	commands *os.File      // our end of Chromium's fd 3
	replies  *os.File      // our end of Chromium's fd 4
	readDone chan struct{} // closed when the reader returns
	readErr  error         // why the reader returned; set before readDone is closed

	writeMu sync.Mutex // serialises messages on commands

	mu      sync.Mutex
	nextID  int64                     // guarded by mu
	pending map[int64]chan cdpMessage // guarded by mu: calls waiting, by id
	subs    map[*subscriber]bool      // guarded by mu
}

// cdpMessage is a DevTools message: a command, a reply or an event.
type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// subscriber gets the params of the events method of a session.
type subscriber struct {
	session, method string
	ch              chan json.RawMessage // buffered; events are dropped when full
}

// StartBrowser starts a headless Chromium with a fresh profile, opens a
// blank page and attaches to it. Chromium is stopped when the test ends.
//
// It needs chromium (Debian package chromium): without it the test is
// skipped, or fails if [RequireEnv] is set.
func StartBrowser(t testing.TB) *Browser {
	t.Helper()
	bin := Tool(t, "chromium", "chromium")
	// Debian's /usr/bin/chromium is a script adding flags from
	// /etc/chromium.d, among them --enable-remote-extensions, and Google
	// API keys: run the program itself, with only our flags.
	if _, err := os.Stat("/usr/lib/chromium/chromium"); err == nil && bin == "/usr/bin/chromium" {
		bin = "/usr/lib/chromium/chromium"
	}
	home := t.TempDir()
	profile := filepath.Join(home, "profile")
	for name, prefs := range chromiumPrefs {
		name = filepath.Join(profile, name)
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(prefs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"--user-data-dir=" + profile}, chromiumFlags...)
	args = append(args, "about:blank")

	p, commands, replies := startPiped(t, "chromium", bin, home, args)
	b := &Browser{proc: p, commands: commands, replies: replies, readDone: make(chan struct{}),
		pending: make(map[int64]chan cdpMessage), subs: make(map[*subscriber]bool)}
	go b.read()
	t.Cleanup(func() { b.stop(t) })

	ctx, cancelStart := context.WithTimeout(t.Context(), clientStartTimeout)
	defer cancelStart()
	var target struct{ TargetID string }
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		p.fatalf(t, "%v", err)
	}
	var attached struct{ SessionID string }
	if err := b.call(ctx, "", "Target.attachToTarget",
		map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		p.fatalf(t, "%v", err)
	}
	b.session = attached.SessionID
	if err := b.call(ctx, b.session, "Page.enable", nil, nil); err != nil {
		p.fatalf(t, "%v", err)
	}
	if err := b.call(ctx, b.session, "Page.setLifecycleEventsEnabled", map[string]any{"enabled": true}, nil); err != nil {
		p.fatalf(t, "%v", err)
	}
	// Headless Chromium takes 87 pixels of --window-size for a window
	// frame it does not draw: set the page's size itself.
	if err := b.call(ctx, b.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": viewWidth, "height": viewHeight, "deviceScaleFactor": 1, "mobile": false,
	}, nil); err != nil {
		p.fatalf(t, "%v", err)
	}
	return b
}

// startPiped starts the program bin as [startProcess] does, in the
// folder dir with HOME set to it, and with two pipes as its fds 3 and 4
// (which processCommand cannot pass): it returns the process, the write
// end of its fd 3 and the read end of its fd 4. The caller stops it.
func startPiped(t testing.TB, name, bin, dir string, args []string) (p *process, fd3, fd4 *os.File) {
	t.Helper()
	r3, w3, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r4, w4, err := os.Pipe()
	if err != nil {
		r3.Close()
		w3.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.ExtraFiles = []*os.File{r3, w4}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	p = &process{name: name, shown: strings.Join(cmd.Args, " "), cmd: cmd, cancel: cancel,
		output: &outputTail{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	err = cmd.Start()
	r3.Close() // the child's ends
	w4.Close()
	if err != nil {
		cancel()
		w3.Close()
		r4.Close()
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, w3, r4
}

// stop closes the command pipe, which makes Chromium exit, and stops it
// as any other [process] if it has not within stopTimeout.
func (b *Browser) stop(t testing.TB) {
	b.commands.Close()
	select {
	case <-b.proc.exited:
	case <-time.After(stopTimeout):
	}
	b.proc.stop()
	b.replies.Close() // in case a child of Chromium still holds fd 4
	<-b.readDone
	if t.Failed() && !b.proc.logsShown.Load() {
		t.Logf("%s", b.proc.logs())
	}
}

// read reads Chromium's messages until its fd 4 closes.
func (b *Browser) read() {
	defer close(b.readDone)
	r := bufio.NewReader(b.replies)
	for {
		line, err := r.ReadBytes(0)
		if err != nil {
			b.readErr = fmt.Errorf("chromium: reading DevTools pipe: %w", err)
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(line[:len(line)-1], &m); err != nil {
			b.readErr = fmt.Errorf("chromium: bad DevTools message: %w", err)
			return
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch := b.pending[m.ID]; ch != nil {
				ch <- m
				delete(b.pending, m.ID)
			}
		} else {
			for s := range b.subs {
				if s.method == m.Method && s.session == m.SessionID {
					select {
					case s.ch <- m.Params:
					default:
					}
				}
			}
		}
		b.mu.Unlock()
	}
}

// call sends the command method with params to session ("": the browser)
// and decodes its result into result, if not nil.
func (b *Browser) call(ctx context.Context, session, method string, params, result any) error {
	raw, err := json.Marshal(params)
	if err != nil {
		return err
	}
	if params == nil {
		raw = nil
	}
	ch := make(chan cdpMessage, 1)
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}()

	msg, err := json.Marshal(cdpMessage{ID: id, SessionID: session, Method: method, Params: raw})
	if err != nil {
		return err
	}
	b.writeMu.Lock()
	_, err = b.commands.Write(append(msg, 0))
	b.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if result == nil {
			return nil
		}
		if err := json.Unmarshal(m.Result, result); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	case <-b.readDone:
		return fmt.Errorf("%s: %w", method, b.readErr)
	}
}

// subscribe returns a channel that gets the params of the page's events
// method, and a function to unsubscribe. Up to 64 events wait in the
// channel; more are dropped.
func (b *Browser) subscribe(method string) (<-chan json.RawMessage, func()) {
	s := &subscriber{session: b.session, method: method, ch: make(chan json.RawMessage, 64)}
	b.mu.Lock()
	b.subs[s] = true
	b.mu.Unlock()
	return s.ch, func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
	}
}

// Navigate loads url in the page and waits for its load event. It
// returns an error if the page cannot load, as when its host name does
// not resolve: the error names Chromium's net::ERR_ code.
func (b *Browser) Navigate(ctx context.Context, url string) error {
	// Wait for the load of this navigation's document, told by its loader
	// id: Page.loadEventFired may come from a page loading before, such as
	// the error page of a navigation that failed.
	events, stop := b.subscribe("Page.lifecycleEvent")
	defer stop()
	var nav struct{ LoaderID, ErrorText string }
	if err := b.call(ctx, b.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", url, nav.ErrorText)
	}
	if nav.LoaderID == "" {
		return nil // within the same document: no load event
	}
	for {
		select {
		case params := <-events:
			var e struct{ LoaderID, Name string }
			if json.Unmarshal(params, &e) == nil && e.LoaderID == nav.LoaderID && e.Name == "load" {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("navigate to %s: waiting for load: %w", url, ctx.Err())
		case <-b.readDone:
			return fmt.Errorf("navigate to %s: %w", url, b.readErr)
		}
	}
}

// Eval evaluates the JavaScript expression js in the page, waits for the
// promise it returns, if any, and decodes its value, as JSON, into out
// unless out is nil. An exception thrown is returned as an error.
func (b *Browser) Eval(ctx context.Context, js string, out any) error {
	var r struct {
		Result struct {
			Type  string
			Value json.RawMessage
		}
		ExceptionDetails *struct {
			Text      string
			Exception struct{ Description string }
		}
	}
	err := b.call(ctx, b.session, "Runtime.evaluate",
		map[string]any{"expression": js, "awaitPromise": true, "returnByValue": true}, &r)
	switch {
	case err != nil:
		return err
	case r.ExceptionDetails != nil:
		if d := r.ExceptionDetails.Exception.Description; d != "" {
			return fmt.Errorf("eval: %s", d)
		}
		return fmt.Errorf("eval: %s", r.ExceptionDetails.Text)
	case out == nil:
		return nil
	case r.Result.Value == nil:
		return fmt.Errorf("eval: result is %s, not a JSON value", r.Result.Type)
	}
	return json.Unmarshal(r.Result.Value, out)
}

// Screenshot saves a PNG image of the page to path.
func (b *Browser) Screenshot(ctx context.Context, path string) error {
	var shot struct{ Data string }
	if err := b.call(ctx, b.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	if len(png) == 0 {
		return errors.New("screenshot: empty image")
	}
	return os.WriteFile(path, png, 0o644)
}

// PID returns the process id of Chromium's browser process.
func (b *Browser) PID() int { return b.proc.cmd.Process.Pid }

// Logs returns the end of Chromium's output, for failure messages.
func (b *Browser) Logs() string { return b.proc.logs() }

// VideoState is what VideoState reports of a page's first video element.
type VideoState struct {
	ReadyState  int     `json:"readyState"`
	CurrentTime float64 `json:"currentTime"`
	Duration    float64 `json:"duration"`
	Paused      bool    `json:"paused"`
	Seeking     bool    `json:"seeking"`
	Seeked      bool    `json:"seeked"` // a 'seeked' event came since SeekVideo
	Error       string  `json:"error"`
	Src         string  `json:"src"`
}

const videoStateJS = `(() => {
	const v = document.querySelector('video');
	if (!v) return {error: 'no video element on the page'};
	return {readyState: v.readyState, currentTime: v.currentTime, duration: v.duration || 0,
		paused: v.paused, seeking: v.seeking, seeked: !!window.aiotorrentSeeked, src: v.currentSrc,
		error: v.error ? v.error.code + ' ' + v.error.message : ''};
})()`

// SeekVideo sets the page's first video to position seconds; the
// 'seeked' event that follows shows in VideoState.Seeked.
func (b *Browser) SeekVideo(ctx context.Context, position float64) error {
	return b.Eval(ctx, fmt.Sprintf(`window.aiotorrentSeeked = false;
		document.querySelector('video').addEventListener('seeked', () => { window.aiotorrentSeeked = true }, {once: true});
		document.querySelector('video').currentTime = %g`, position), nil)
}

// WaitVideo polls the page's first video until cond holds, and fails the
// test if it has not within a generous 60 s, or if the video reports an
// error.
func (b *Browser) WaitVideo(t testing.TB, ctx context.Context, what string, cond func(VideoState) bool) VideoState {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var s VideoState
	for {
		if err := b.Eval(ctx, videoStateJS, &s); err != nil {
			t.Fatalf("waiting for the video %s: %v; last state %+v\n%s", what, err, s, b.Logs())
		}
		if s.Error != "" {
			t.Fatalf("video error: %s\n%s", s.Error, b.Logs())
		}
		if cond(s) {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for the video %s: %v; last state %+v\n%s", what, ctx.Err(), s, b.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
