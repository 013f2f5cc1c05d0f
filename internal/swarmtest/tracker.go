package swarmtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Independent trackers for tests: real tracker programs run as separate
// processes on 127.0.0.1, stopped when the test ends (process.go). One
// that exits on its own once it has started fails the test.

// trackerStartTimeout bounds how long a tracker has to start listening.
const trackerStartTimeout = 10 * time.Second

// BittorrentTracker starts webtorrent's bittorrent-tracker (npm, pinned in
// internal/swarmtest/node/package.json) on 127.0.0.1, HTTP and UDP on free
// ports, and returns their announce URLs:
// "http://127.0.0.1:PORT/announce" and "udp://127.0.0.1:PORT". It tells
// clients to announce every interval, rounded up to whole seconds. It
// tracks any info hash. The tracker stops when the test ends.
//
// It needs node (Debian package nodejs) and the package installed in
// internal/swarmtest/node (scripts/test.sh runs npm ci there); without
// them the test is skipped, or fails if [RequireEnv] is set.
//
// Quirks a client must tolerate (bittorrent-tracker 11.2.3, as run here):
//   - announce replies list the asking peer itself, over HTTP and UDP;
//   - it keys peers by IP and port, not peer id: a second peer id
//     announcing from a known address replaces the peer there;
//   - its UDP connection id is always the protocol magic 0x41727101980,
//     and it does not answer packets carrying any other id;
//   - "interval" is the one configured, and there is no "min interval";
//     HTTP replies always carry "peers6", empty on loopback;
//   - without compact=1 (compact=0 or none) it answers dictionary peers;
//   - failures come as HTTP 200 with a "failure reason";
//   - it honours the "ip" field of a UDP announce;
//   - its HTTP scrape reply keys are the hash bytes UTF-8 encoded as if
//     each were a character (28 bytes for a typical hash), not the raw 20.
func BittorrentTracker(t testing.TB, interval time.Duration) (httpAnnounce, udpAnnounce string) {
	t.Helper()
	if interval <= 0 {
		t.Fatalf("BittorrentTracker: interval %v: must be positive", interval)
	}
	node := Tool(t, "node", "nodejs")
	dir := nodeDir(t)
	ms := (interval + time.Millisecond - 1) / time.Millisecond

	// tracker.js writes its ports as its first line on stdout.
	output := &outputTail{}
	firstLine := make(chan string, 1)
	stdout := io.MultiWriter(output, &lineWriter{fn: func(line string) {
		select {
		case firstLine <- line:
		default: // not the first
		}
	}})
	p := startTracker(t, "bittorrent-tracker", processCommand{
		path: node, args: []string{filepath.Join(dir, "tracker.js"), strconv.FormatInt(int64(ms), 10)},
		dir: dir, stdout: stdout, output: output,
	})
	var line string
	timer := time.NewTimer(trackerStartTimeout)
	defer timer.Stop()
	select {
	case line = <-firstLine:
	case <-p.exited:
		p.fatalf(t, "exited before listening: %v", p.err)
	case <-timer.C:
		p.fatalf(t, "not listening after %v", trackerStartTimeout)
	}
	var ports struct {
		HTTP int `json:"http"`
		UDP  int `json:"udp"`
	}
	if err := json.Unmarshal([]byte(line), &ports); err != nil || ports.HTTP <= 0 || ports.UDP <= 0 {
		p.fatalf(t, "bad ports line %q: %v", line, err)
	}
	p.setReady()
	return fmt.Sprintf("http://127.0.0.1:%d/announce", ports.HTTP), fmt.Sprintf("udp://127.0.0.1:%d", ports.UDP)
}

// nodeDir returns the directory holding tracker.js, failing or skipping
// (by the [RequireEnv] rule) when its npm packages are not installed or
// are not the pinned versions.
func nodeDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("swarmtest: cannot find its own source directory")
	}
	dir := filepath.Join(filepath.Dir(file), "node")
	if _, err := os.Stat(filepath.Join(dir, "tracker.js")); err != nil {
		t.Fatalf("swarmtest: %v (built with -trimpath?)", err)
	}
	problem := ""
	var want, have struct {
		Version      string            `json:"version"`
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := readJSON(filepath.Join(dir, "package.json"), &want); err != nil {
		t.Fatalf("swarmtest: %v", err)
	}
	if err := readJSON(filepath.Join(dir, "node_modules", "bittorrent-tracker", "package.json"), &have); err != nil {
		problem = "bittorrent-tracker is not installed"
	} else if v := want.Dependencies["bittorrent-tracker"]; have.Version != v {
		problem = fmt.Sprintf("bittorrent-tracker %s is installed, package.json pins %s", have.Version, v)
	}
	if problem == "" {
		return dir
	}
	fix := fmt.Sprintf("run scripts/test.sh, or npm ci --ignore-scripts in %s", dir)
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s and %s is set: %s", problem, RequireEnv, fix)
	}
	t.Skipf("%s: %s to run this interop test", problem, fix)
	return ""
}

func readJSON(name string, v any) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Opentracker starts opentracker (Debian package opentracker) on
// 127.0.0.1, HTTP and UDP on one free port, tracking only the given info
// hashes, and returns its announce URLs: "http://127.0.0.1:PORT/announce"
// and "udp://127.0.0.1:PORT". It returns once an announce for hashes[0] is
// accepted (any HTTP answer when no hashes are given). The tracker stops
// when the test ends.
//
// Debian builds opentracker as a closed tracker: it refuses any info hash
// not in its whitelist file. Run as root, it chroots to the folder given
// with -d and switches to the -u user (nobody here) for good; that user
// must be able to read the whitelist. It is run as
//
//	opentracker -i 127.0.0.1 -p PORT -P PORT -d DIR -w whitelist.txt [-u nobody]
//
// under a shell that kills it when this process exits, as opentracker does
// not watch its stdin. "-u nobody" is given only when running as root.
//
// Quirks a client must tolerate (Debian 0.0~git20210823.110868e-3):
//   - the interval cannot be set: it answers a random interval of
//     1800 s give or take 180 (seen: 1622 to 1979) and a "min interval" of
//     half that, over HTTP and UDP;
//   - announce replies list the asking peer itself;
//   - it answers only compact peer lists: an explicit compact=0 gets HTTP
//     400 and an HTML page, not bencode (no compact parameter is fine);
//   - a hash not whitelisted gets HTTP 200 with the failure reason
//     "Requested download is not authorized for use with this tracker.";
//   - its UDP connection id is not the magic; /stats answers 403 except to
//     addresses blessed with -A;
//   - it dies on SIGTERM without a clean shutdown (it holds no state).
func Opentracker(t testing.TB, hashes ...metainfo.Hash) (httpAnnounce, udpAnnounce string) {
	t.Helper()
	bin := Tool(t, "opentracker", "opentracker")
	sh := Tool(t, "sh", "dash")

	// As root, opentracker chroots here and reads the whitelist as nobody:
	// the folder must be searchable and the file readable by others.
	dir := t.TempDir()
	var list strings.Builder
	for _, h := range hashes {
		list.WriteString(h.String() + "\n")
	}
	whitelist := filepath.Join(dir, "whitelist.txt")
	if err := os.WriteFile(whitelist, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(whitelist, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	// The free port is found by binding and closing it, so another
	// program may take it before opentracker binds it; then opentracker
	// exits at once, and it is tried again on another port.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		port := strconv.Itoa(freePort(t))
		args := []string{"-c", watchdogScript, "opentracker", bin,
			"-i", "127.0.0.1", "-p", port, "-P", port, "-d", dir, "-w", "whitelist.txt"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "nobody")
		}
		p := startTracker(t, "opentracker", processCommand{
			path: sh, args: args, dir: dir,
			shown: strings.Join(args[3:], " "), // without the watchdog
		})
		base := "http://127.0.0.1:" + port
		err := waitOpentracker(p, base, hashes)
		if err == nil {
			p.setReady()
			return base + "/announce", "udp://127.0.0.1:" + port
		}
		if p.hasExited() && attempt < attempts {
			p.stop()
			t.Logf("opentracker on port %s exited at start (%v), trying another port:\n%s", port, p.err, p.failureLogs())
			continue
		}
		p.fatalf(t, "%v", err)
	}
}

// watchdogScript runs its arguments ("$@") as a background program and
// kills it when the shell's stdin reaches end of file, which happens when
// the test process exits however it ends (cleanup closes the pipe, and so
// does the kernel when the process dies), or when the shell gets SIGTERM.
// The shell exits with the program's status once it ends.
const watchdogScript = `
exec 3<&0 </dev/null
"$@" 3<&- &
prog=$!
(cat <&3; kill "$prog") >/dev/null 2>&1 &
watcher=$!
exec 3<&-
trap 'kill "$prog" 2>/dev/null' TERM INT
while :; do
	wait "$prog"
	status=$?
	kill -0 "$prog" 2>/dev/null || break
done
kill "$watcher" 2>/dev/null
exit "$status"
`

// waitOpentracker polls opentracker at base until it serves, or it exits,
// or trackerStartTimeout passes. With hashes, serving means accepting a
// "stopped" announce for hashes[0] (opentracker loads its whitelist in a
// thread of its own, so it may answer before the list is loaded); a
// stopped announce from a peer it does not know adds nothing to the swarm.
func waitOpentracker(p *process, base string, hashes []metainfo.Hash) error {
	// opentracker loads its whitelist in a thread of its own, after it
	// starts serving, and it answers a "stopped" announce without looking
	// at the whitelist: so the probe is a "started" announce, whose peer
	// is removed again once the hash is accepted.
	probe := base + "/scrape"
	if len(hashes) > 0 {
		// Every byte percent-encoded: opentracker takes "+" literally.
		var hash strings.Builder
		for _, c := range hashes[0] {
			fmt.Fprintf(&hash, "%%%02X", c)
		}
		probe = base + "/announce?info_hash=" + hash.String() +
			"&peer_id=-SW0000-startprobe00&port=1&uploaded=0&downloaded=0&left=0&compact=1&numwant=0&event="
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	if len(hashes) > 0 {
		stopped := probe + "stopped"
		defer func() {
			if resp, err := client.Get(stopped); err == nil {
				resp.Body.Close()
			}
		}()
		probe += "started"
	}
	deadline := time.Now().Add(trackerStartTimeout)
	last := errors.New("no answer yet")
	for {
		if p.hasExited() {
			return fmt.Errorf("exited before serving: %v (last probe: %v)", p.err, last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving after %v: %v", trackerStartTimeout, last)
		}
		last = probeOpentracker(client, probe, len(hashes) > 0)
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func probeOpentracker(client *http.Client, probe string, announce bool) error {
	resp, err := client.Get(probe)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if !announce {
		return nil // any answer: it serves
	}
	var r struct {
		FailureReason string `bencode:"failure reason"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %q", probe, resp.Status, body)
	}
	if err := bencode.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("GET %s: %w: %q", probe, err, body)
	}
	if r.FailureReason != "" {
		return fmt.Errorf("GET %s: failure reason %q", probe, r.FailureReason)
	}
	return nil
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1 a moment
// ago.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startTracker starts the tracker program c with its stdin an open pipe
// (closing it stops the tracker: tracker.js and the opentracker watchdog
// exit when it does), as a [process] stopped when the test ends. Once the
// caller marks it ready, an exit before then fails the test.
func startTracker(t testing.TB, name string, c processCommand) *process {
	t.Helper()
	c.stdin = true
	return startProcess(t, name, c)
}
