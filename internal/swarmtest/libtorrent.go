package swarmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// systemPython is the interpreter Debian's python3-libtorrent is built
// for; another python3 on PATH (pyenv, a venv) usually lacks the module.
const systemPython = "/usr/bin/python3"

// LT is a libtorrent (rasterbar, through its Python binding) peer seeding
// or downloading one torrent, made by [Libtorrent]. It runs
// libtorrent_client.py, which reports the torrent's status every half
// second.
type LT struct {
	proc   *process
	name   string
	output *outputTail // the process's stderr, and stdout lines that are not status

	mu      sync.Mutex
	status  LTStatus      // guarded by mu: the latest status line
	seen    bool          // guarded by mu: a status line has come
	changed chan struct{} // guarded by mu: closed and replaced on each line
}

// LTStatus is one status report of an [LT] peer.
type LTStatus struct {
	// State is libtorrent's torrent state: "checking_resume_data",
	// "checking_files", "downloading", "finished", "seeding", ...
	State       string  `json:"state"`
	Progress    float64 `json:"progress"`  // 0 to 1
	NumPeers    int     `json:"num_peers"` // peers connected
	NumSeeds    int     `json:"num_seeds"` // of which seeds
	TotalDone   int64   `json:"total_done"`
	TotalWanted int64   `json:"total_wanted"`
	Downloaded  int64   `json:"download"` // payload bytes received
	Uploaded    int64   `json:"upload"`   // payload bytes sent
	Port        int     `json:"port"`     // the TCP port it listens on
	Error       string  `json:"error"`    // the torrent's error, if any
	// Peers are the connected peers, past the handshake.
	Peers []LTPeer `json:"peers"`
	// DHTNodes is the number of nodes in its DHT routing table; always 0
	// with the DHT off (see [LTOptions.DHT]).
	DHTNodes int `json:"dht_nodes"`
}

// LTPeer is a peer an [LT] peer is connected to.
type LTPeer struct {
	// Addr is the address it connected to, or for a connection the peer
	// made, the address that came from (its port is not the one the
	// peer listens on).
	Addr netip.AddrPort `json:"addr"`
	// Source says where libtorrent heard of the peer: any of "tracker",
	// "dht", "pex", "lsd", "resume_data" and "incoming" (it connected
	// to us); a peer given with [LTOptions.Peers] has none.
	Source   []string `json:"source"`
	Outgoing bool     `json:"outgoing"` // libtorrent made the connection
	Seed     bool     `json:"seed"`     // it has every piece
	Client   string   `json:"client"`
	// Downloaded and Uploaded count the payload bytes received from and
	// sent to it.
	Downloaded int64 `json:"download"`
	Uploaded   int64 `json:"upload"`
}

// FromPEX reports whether libtorrent heard of the peer through peer
// exchange.
func (p LTPeer) FromPEX() bool { return slices.Contains(p.Source, "pex") }

// Peer returns the connected peer with address a, if any.
func (s LTStatus) Peer(a netip.AddrPort) (LTPeer, bool) {
	for _, p := range s.Peers {
		if p.Addr == a {
			return p, true
		}
	}
	return LTPeer{}, false
}

// Complete reports whether all wanted data is present and verified.
func (s LTStatus) Complete() bool { return s.TotalWanted > 0 && s.TotalDone >= s.TotalWanted }

// Libtorrent starts a libtorrent peer for the torrent at torrentPath with
// its data in saveDir (the folder that holds, or will hold, the torrent's
// file or folder). It listens on a port of 127.0.0.1 chosen by the
// system, with DHT, local peer discovery, UPnP, NAT-PMP and peer exchange
// off and multiple connections per IP allowed (every peer here is
// 127.0.0.1); it announces to all the torrent's trackers, HTTP and UDP.
// It connects out over TCP only (libtorrent would try uTP first, and wait
// 2.5 s for it to time out with a peer that has none) but accepts uTP.
//
// With seed, it checks the data and Libtorrent returns once it seeds; the
// test fails if the data is not complete. Otherwise it returns once the
// peer runs, and it downloads, then seeds, until the test ends or [LT.Stop].
//
// It needs /usr/bin/python3 with the libtorrent module (Debian package
// python3-libtorrent): without it the test is skipped, or fails if
// [RequireEnv] is set.
func Libtorrent(t testing.TB, torrentPath, saveDir string, seed bool) *LT {
	t.Helper()
	return startLibtorrentWith(t, torrentPath, saveDir, LTOptions{Seed: seed}, nil, "")
}

// LTOptions configure a libtorrent peer started by [LibtorrentWith]. The
// zero value is the leecher [Libtorrent] starts.
type LTOptions struct {
	// Seed: check the data and seed it, as with [Libtorrent].
	Seed bool
	// PEX turns peer exchange (ut_pex, BEP 11) on for the torrent.
	// libtorrent 2.0.8 sends a peer that speaks ut_pex its full list of
	// connected peers at its first tick (every 500 ms) after that peer's
	// extension handshake, provided it has at least two peers (peers
	// whose handshakes came together got theirs in the same tick: no
	// spacing between peers was seen, with up to five). After that
	// it sends what changed, if anything, every 60 s. It lists only the
	// peers it connected to, or that gave their listening port in their
	// extension handshake, and it leaves out none: the peer it sends the
	// list to finds itself in it. It drops a peer that sends it more than
	// 6 ut_pex messages within 60 s. A private torrent never exchanges
	// peers whatever PEX says: libtorrent leaves ut_pex out of its
	// extension handshake.
	PEX bool
	// DHT turns the DHT (BEP 5) on for the session and the torrent,
	// bootstrapping from the DHTBootstrap nodes alone
	// ("127.0.0.1:port,..."); a non-empty DHTBootstrap turns it on too.
	// With no bootstrap nodes it knows only the nodes that contact it: a
	// bootstrap node for others. The DHT runs on the listening port, UDP,
	// on 127.0.0.1; the settings that would have libtorrent keep only one
	// node per IP, or ignore an IP that sends many queries, are turned off
	// (libtorrent_client.py, dht_settings, says which and why). libtorrent
	// takes bootstrap nodes as routers: it queries them but keeps them out
	// of its routing table ([LTStatus.DHTNodes]). It announces the torrent
	// once bootstrapped, then every DHTAnnounceInterval (0: libtorrent's
	// default, 15 minutes).
	DHT                 bool
	DHTBootstrap        string
	DHTAnnounceInterval time.Duration
	// Port is the TCP (and UDP) port to listen on, on 127.0.0.1; 0 lets
	// the system choose.
	Port int
	// Peers are connected to once the torrent is added (libtorrent
	// retries them as it retries any peer).
	Peers []netip.AddrPort
	// DownloadLimit and UploadLimit bound the session's payload rates in
	// bytes per second, to all peers together, loopback ones included
	// (0: no limit).
	DownloadLimit, UploadLimit int64
}

// LibtorrentWith starts a libtorrent peer for the torrent at torrentPath
// with its data in saveDir, as [Libtorrent] does, configured by o.
func LibtorrentWith(t testing.TB, torrentPath, saveDir string, o LTOptions) *LT {
	t.Helper()
	return startLibtorrentWith(t, torrentPath, saveDir, o, nil, "")
}

// startLibtorrent runs the libtorrent script as Libtorrent says; with
// wrap, python runs wrap (a command line before the script's, which runs
// the script itself) and shown describes it in logs.
func startLibtorrent(t testing.TB, torrentPath, saveDir string, seed bool, wrap []string, shown string) *LT {
	t.Helper()
	return startLibtorrentWith(t, torrentPath, saveDir, LTOptions{Seed: seed}, wrap, shown)
}

// startLibtorrentWith runs the libtorrent script as LibtorrentWith says,
// with wrap and shown as startLibtorrent takes them.
func startLibtorrentWith(t testing.TB, torrentPath, saveDir string, o LTOptions, wrap []string, shown string) *LT {
	t.Helper()
	python := RequireLibtorrent(t)
	script := libtorrentScript(t)
	torrentPath, err := filepath.Abs(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	saveDir, err = filepath.Abs(saveDir)
	if err != nil {
		t.Fatal(err)
	}
	name := "libtorrent leecher"
	args := append(append(slices.Clone(wrap), script), "--torrent", torrentPath, "--save-path", saveDir)
	if o.Seed {
		name = "libtorrent seeder"
		args = append(args, "--seed")
	}
	if o.PEX {
		args = append(args, "--pex")
	}
	if o.DHT {
		args = append(args, "--dht")
	}
	if o.DHTBootstrap != "" {
		args = append(args, "--dht-bootstrap", o.DHTBootstrap)
	}
	if o.DHTAnnounceInterval > 0 {
		args = append(args, "--dht-announce-interval", strconv.Itoa(max(1, int(o.DHTAnnounceInterval.Seconds()))))
	}
	if o.Port != 0 {
		args = append(args, "--port", strconv.Itoa(o.Port))
	}
	for _, p := range o.Peers {
		args = append(args, "--peer", p.String())
	}
	if o.DownloadLimit > 0 {
		args = append(args, "--download-limit", strconv.FormatInt(o.DownloadLimit, 10))
	}
	if o.UploadLimit > 0 {
		args = append(args, "--upload-limit", strconv.FormatInt(o.UploadLimit, 10))
	}
	if shown != "" {
		shown = fmt.Sprintf("%s %s (%s) %s", python, script, shown, strings.Join(args[len(wrap)+1:], " "))
	}
	l := &LT{name: name, output: &outputTail{}, changed: make(chan struct{})}
	l.proc = startProcess(t, name, processCommand{
		path: python, args: args, dir: t.TempDir(), shown: shown,
		stdin: true, stdout: &lineWriter{fn: l.line}, output: l.output,
		// Unbuffered, so a crash loses no output.
		env: []string{"PYTHONUNBUFFERED=1"},
	})

	ctx, cancel := context.WithTimeout(context.Background(), clientStartTimeout)
	defer cancel()
	ready := func(s LTStatus) bool { return s.Port > 0 }
	if o.Seed {
		ready = func(s LTStatus) bool { return s.Port > 0 && s.State == "seeding" && s.Complete() }
	}
	if err := l.WaitFor(ctx, ready); err != nil {
		t.Fatalf("%v", err)
	}
	return l
}

// RequireLibtorrent returns the path of the python3 that [Libtorrent]
// runs, after checking that it can import libtorrent (Debian package
// python3-libtorrent). When it cannot, the test is skipped, or fails if
// [RequireEnv] is set, as with [Tool]. Call it first in a test to skip
// before starting anything.
func RequireLibtorrent(t testing.TB) string {
	t.Helper()
	python := Tool(t, systemPython, "python3")
	out, err := exec.Command(python, "-c", "import libtorrent").CombinedOutput()
	if err == nil {
		return python
	}
	msg := fmt.Sprintf("%s cannot import libtorrent (%v: %s)", python, err, strings.TrimSpace(string(out)))
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s and %s is set: install Debian package python3-libtorrent (scripts/test.sh does)", msg, RequireEnv)
	}
	t.Skipf("%s: install Debian package python3-libtorrent (scripts/test.sh does) to run this interop test", msg)
	return ""
}

// libtorrentScript returns the path of libtorrent_client.py, next to this
// source file.
func libtorrentScript(t testing.TB) string {
	t.Helper()
	script, err := LibtorrentScript()
	if err != nil {
		t.Fatal(err)
	}
	return script
}

// line takes one line of the script's stdout: a status, or anything else,
// which is kept with the output.
func (l *LT) line(s string) {
	var st LTStatus
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		l.output.Write([]byte(s + "\n"))
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status, l.seen = st, true
	close(l.changed)
	l.changed = make(chan struct{})
}

// Port returns the TCP port the peer listens on, on 127.0.0.1.
func (l *LT) Port() int { return l.Status().Port }

// Addr returns the address the peer listens on: 127.0.0.1 and [LT.Port].
func (l *LT) Addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(l.Port()))
}

func (l *LT) seenStatus() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen
}

// Status returns the latest status the peer reported.
func (l *LT) Status() LTStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

// WaitFor waits until a status the peer reports satisfies cond. It returns
// an error, with the peer's last status and output, if the peer exits or
// ctx is done first.
func (l *LT) WaitFor(ctx context.Context, cond func(LTStatus) bool) error {
	for {
		l.mu.Lock()
		st, seen, changed := l.status, l.seen, l.changed
		l.mu.Unlock()
		if seen && cond(st) {
			return nil
		}
		select {
		case <-changed:
		case <-l.proc.exited:
			// Every line has been read by then: the status is the last.
			if st := l.Status(); l.seenStatus() && cond(st) {
				return nil
			}
			return fmt.Errorf("%v; last status %+v\n%s", l.proc.exitError(), l.Status(), l.proc.failureLogs())
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting: %w; last status %+v\n%s", l.name, ctx.Err(), l.Status(), l.proc.failureLogs())
		}
	}
}

// WaitComplete waits until the peer has all the data, verified.
func (l *LT) WaitComplete(ctx context.Context) error {
	return l.WaitFor(ctx, LTStatus.Complete)
}

// Stop stops the peer (it sends its "stopped" announces) and waits for it
// to exit, killing it if it takes more than a few seconds. The test's
// cleanup does the same; Stop is for tests that need the peer gone sooner.
func (l *LT) Stop() { l.proc.stop() }

// Logs returns the end of the peer's output: libtorrent's alerts.
func (l *LT) Logs() string { return l.proc.logs() }
