//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
)

// The four BitTorrent programs, as seeders and as leechers. Every one
// listens and connects on 127.0.0.1 only, with DHT, local peer discovery,
// peer exchange and port mapping off: the tracker is the only source of
// peers. The settings are those of internal/swarmtest (bench.go, where
// aria2c's and qBittorrent's are shared, and libtorrent_client.py), where
// each is explained.

// Client names, as given to -seeders and -leechers.
const (
	clientOurs   = "ours"
	clientAria2  = "aria2c"
	clientQbit   = "qbittorrent"
	clientLT     = "libtorrent"
	readyTimeout = 2 * time.Minute // for a seeder to check its data, or a daemon to start
)

var allClients = []string{clientOurs, clientAria2, clientQbit, clientLT}

// seeder is a running seeder.
type seeder struct {
	name string
	proc *proc
	addr netip.AddrPort
	// uploaded returns the payload bytes the seeder has sent so far, as
	// it reports them (possibly up to half a second old).
	uploaded func(ctx context.Context) (int64, error)
}

// startSeeder starts the seeder called name on the content in b.seedDir
// and returns once it has checked the data and serves it.
func (b *bench) startSeeder(ctx context.Context, name string) (*seeder, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	dir := filepath.Join(b.work, "seeder-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var s *seeder
	var err error
	switch name {
	case clientOurs:
		s, err = b.oursSeeder(ctx, dir)
	case clientAria2:
		s, err = b.aria2Seeder(ctx, dir)
	case clientQbit:
		s, err = b.qbitSeeder(ctx, dir)
	case clientLT:
		s, err = b.ltSeeder(ctx, dir)
	default:
		return nil, fmt.Errorf("unknown seeder %q", name)
	}
	if err != nil {
		return nil, err
	}
	// Whatever the program said, it serves once it answers a handshake
	// with every piece.
	if err := swarmtest.WaitSeeding(ctx, s.addr, b.mi); err != nil {
		return nil, fmt.Errorf("%s seeder: %w\n%s", name, err, s.proc.tail())
	}
	return s, nil
}

// --- aiotorrent ---

// seedEvent is a line of "aiotorrent seed --json".
type seedEvent struct {
	Event    string `json:"event"`
	Listen   string `json:"listen"`
	Pieces   int    `json:"pieces"`
	Present  int    `json:"pieces_present"`
	Uploaded int64  `json:"uploaded_bytes"`
}

func (b *bench) oursSeeder(ctx context.Context, dir string) (*seeder, error) {
	var mu sync.Mutex
	var last seedEvent // guarded by mu
	started := make(chan seedEvent, 1)
	p, err := startProc("aiotorrent seeder", filepath.Join(dir, "seed.log"), dir, nil, func(line string) {
		var ev seedEvent
		if json.Unmarshal([]byte(line), &ev) != nil {
			return
		}
		mu.Lock()
		last = ev
		mu.Unlock()
		if ev.Event == "started" {
			started <- ev
		}
	}, b.bin, "seed", "-d", b.seedDir, "--listen", "127.0.0.1:0", "--json", "--status-every", "250ms", b.torrent)
	if err != nil {
		return nil, err
	}
	var ev seedEvent
	select {
	case ev = <-started:
	case <-p.exited:
		return nil, fmt.Errorf("%v before serving\n%s", p.exitError(), p.tail())
	case <-ctx.Done():
		return nil, fmt.Errorf("aiotorrent seeder: not serving: %w\n%s", ctx.Err(), p.tail())
	}
	if ev.Present != ev.Pieces {
		return nil, fmt.Errorf("aiotorrent seeder: %d of %d pieces present in %s\n%s", ev.Present, ev.Pieces, b.seedDir, p.tail())
	}
	addr, err := netip.ParseAddrPort(ev.Listen)
	if err != nil || !addr.Addr().IsLoopback() {
		return nil, fmt.Errorf("aiotorrent seeder: listening on %q, want 127.0.0.1:PORT", ev.Listen)
	}
	return &seeder{name: clientOurs, proc: p, addr: addr, uploaded: func(context.Context) (int64, error) {
		mu.Lock()
		defer mu.Unlock()
		return last.Uploaded, nil
	}}, nil
}

// oursLeech runs "aiotorrent download" into out until it exits; with
// -perf, under "perf record", which writes its profile in the -perf folder
// as ours-RUN.data; with -cpuprofile, it writes a Go CPU profile there.
func (b *bench) oursLeech(ctx context.Context, out string, r int) (*measure, error) {
	argv := []string{b.bin, "download", "-o", out, "--listen", "127.0.0.1:0", "--progress-every", "1s", b.torrent}
	if b.perf != "" {
		data := filepath.Join(b.cfg.perfDir, fmt.Sprintf("ours-%d.data", r+1))
		argv = append([]string{b.perf, "record", "-e", "cpu-clock", "-F", "999", "-g", "-o", data, "--"}, argv...)
	}
	var env []string
	if b.cfg.pprofDir != "" {
		env = append(env, "AIOTORRENT_CPUPROFILE="+filepath.Join(b.cfg.pprofDir, fmt.Sprintf("ours-%d.pprof", r+1)))
	}
	p, err := startProc("aiotorrent download", out+".log", b.work, env, nil, argv...)
	if err != nil {
		return nil, err
	}
	return b.waitExit(ctx, p)
}

// waitExit waits for a leecher that exits when its download is complete.
func (b *bench) waitExit(ctx context.Context, p *proc) (*measure, error) {
	anon := sampleAnon(p.pid())
	select {
	case <-p.exited:
	case <-ctx.Done():
		anon.stop()
		p.stop()
		return nil, fmt.Errorf("%s: %w\n%s", p.name, ctx.Err(), p.tail())
	}
	wall := time.Since(p.started)
	peakAnon := anon.stop()
	if p.err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", p.name, p.err, p.tail())
	}
	u := p.exitUsage()
	return &measure{wall: wall, cpu: u.cpu, maxRSS: u.maxRSS, peakAnon: peakAnon}, nil
}

// --- aria2c ---

func (b *bench) aria2Seeder(ctx context.Context, dir string) (*seeder, error) {
	port, err := swarmtest.FreePort()
	if err != nil {
		return nil, err
	}
	rpcPort, err := swarmtest.FreePort()
	if err != nil {
		return nil, err
	}
	// The options of swarmtest's aria2c but for the log level: its info
	// log writes a line per block.
	args := append([]string{b.aria2}, swarmtest.Aria2Args(port, b.seedDir, filepath.Join(dir, "aria2.log"), "notice")...)
	args = append(args,
		"--check-integrity=true", // hash the data before seeding
		"--seed-ratio=0.0",       // with no --seed-time: seed for ever
		// JSON-RPC, on the loopback interface only, to read how much it
		// uploaded.
		"--enable-rpc=true",
		"--rpc-listen-all=false",
		"--rpc-listen-port="+strconv.Itoa(rpcPort),
		b.torrent)
	p, err := startProc("aria2c seeder", filepath.Join(dir, "output.log"), dir, []string{"HOME=" + dir}, nil, args...)
	if err != nil {
		return nil, err
	}
	rpc := "http://127.0.0.1:" + strconv.Itoa(rpcPort) + "/jsonrpc"
	client := &http.Client{Timeout: 5 * time.Second}
	return &seeder{name: clientAria2, proc: p, addr: loopback(port), uploaded: func(ctx context.Context) (int64, error) {
		return aria2Uploaded(ctx, client, rpc)
	}}, nil
}

// aria2Uploaded asks aria2c's JSON-RPC for the bytes uploaded by its
// active downloads (the one torrent it seeds).
func aria2Uploaded(ctx context.Context, client *http.Client, rpc string) (int64, error) {
	body := `{"jsonrpc":"2.0","id":"dlbench","method":"aria2.tellActive","params":[["uploadLength"]]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rpc, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Result []struct {
			UploadLength string `json:"uploadLength"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r); err != nil {
		return 0, fmt.Errorf("aria2c RPC: %w", err)
	}
	if r.Error != nil {
		return 0, fmt.Errorf("aria2c RPC: %s", r.Error.Message)
	}
	var n int64
	for _, d := range r.Result {
		v, err := strconv.ParseInt(d.UploadLength, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("aria2c RPC: uploadLength %q", d.UploadLength)
		}
		n += v
	}
	return n, nil
}

// aria2Leech runs aria2c into out; it exits once the download is complete
// (--seed-time=0). aria2c checks each piece as it arrives.
func (b *bench) aria2Leech(ctx context.Context, out string) (*measure, error) {
	port, err := swarmtest.FreePort()
	if err != nil {
		return nil, err
	}
	home := out + "-home"
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	args := append([]string{b.aria2}, swarmtest.Aria2Args(port, out, filepath.Join(home, "aria2.log"), "notice")...)
	args = append(args, "--seed-time=0", b.torrent)
	p, err := startProc("aria2c leecher", filepath.Join(home, "output.log"), home, []string{"HOME=" + home}, nil, args...)
	if err != nil {
		return nil, err
	}
	return b.waitExit(ctx, p)
}

// --- qBittorrent ---

// qbit is a qbittorrent-nox process driven through its Web API.
type qbit struct {
	proc   *proc
	port   int
	api    string // "http://127.0.0.1:PORT/api/v2/"
	client *http.Client
}

// qbitTorrent is a torrent as /api/v2/torrents/info reports it.
type qbitTorrent struct {
	Hash       string  `json:"hash"`
	State      string  `json:"state"`
	Progress   float64 `json:"progress"`
	AmountLeft int64   `json:"amount_left"`
	Uploaded   int64   `json:"uploaded"`
}

func (q qbitTorrent) checking() bool {
	return strings.HasPrefix(q.State, "checking") || q.State == "allocating" || q.State == "metaDL"
}
func (q qbitTorrent) complete() bool {
	return !q.checking() && q.Progress >= 1 && q.AmountLeft == 0
}
func (q qbitTorrent) failed() bool { return q.State == "error" || q.State == "missingFiles" }

// startQbit starts qbittorrent-nox with a fresh profile in dir (settings:
// swarmtest.QbittorrentProfile) and returns once its Web API answers.
func (b *bench) startQbit(ctx context.Context, name, dir string) (*qbit, error) {
	port, err := swarmtest.FreePort()
	if err != nil {
		return nil, err
	}
	webPort, err := swarmtest.FreePort()
	for err == nil && webPort == port {
		webPort, err = swarmtest.FreePort()
	}
	if err != nil {
		return nil, err
	}
	args, env, err := swarmtest.QbittorrentProfile(dir, port, webPort)
	if err != nil {
		return nil, err
	}
	p, err := startProc(name, filepath.Join(dir, "output.log"), dir, env, nil, append([]string{b.qbit}, args...)...)
	if err != nil {
		return nil, err
	}
	q := &qbit{proc: p, port: port, api: fmt.Sprintf("http://127.0.0.1:%d/api/v2/", webPort), client: &http.Client{Timeout: 5 * time.Second}}
	for {
		var version string
		err := q.get(ctx, "app/version", nil, &version)
		if err == nil {
			return q, nil
		}
		if p.hasExited() {
			return nil, fmt.Errorf("%v before its Web API answered (%v)\n%s", p.exitError(), err, p.tail())
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: Web API not answering: %w (%v)\n%s", name, ctx.Err(), err, p.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// add adds the torrent, to be saved in (or seeded from) saveDir; the
// data there is checked.
func (q *qbit) add(ctx context.Context, torrentPath, saveDir string) error {
	torrent, err := os.ReadFile(torrentPath)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("torrents", filepath.Base(torrentPath))
	if err != nil {
		return err
	}
	fw.Write(torrent)
	for _, kv := range [][2]string{
		{"savepath", saveDir}, {"paused", "false"}, {"skip_checking", "false"},
		{"autoTMM", "false"}, {"contentLayout", "Original"},
	} {
		mw.WriteField(kv[0], kv[1])
	}
	mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.api+"torrents/add", &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := q.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: add %s: %w", q.proc.name, torrentPath, err)
	}
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(reply)) != "Ok." {
		return fmt.Errorf("%s: add %s: %s: %q", q.proc.name, torrentPath, resp.Status, reply)
	}
	return nil
}

// torrent returns what qBittorrent reports of the torrent with hex info
// hash h; ok is false if it does not list it (yet).
func (q *qbit) torrent(ctx context.Context, h string) (tor qbitTorrent, ok bool, err error) {
	var list []qbitTorrent
	if err := q.get(ctx, "torrents/info", url.Values{"hashes": {h}}, &list); err != nil {
		return qbitTorrent{}, false, err
	}
	for _, tor := range list {
		if strings.EqualFold(tor.Hash, h) {
			return tor, true, nil
		}
	}
	return qbitTorrent{}, false, nil
}

// waitComplete polls the torrent h every qbitPollEvery until qBittorrent
// has all of it, checked.
func (q *qbit) waitComplete(ctx context.Context, h string) error {
	var last qbitTorrent
	for {
		tor, ok, err := q.torrent(ctx, h)
		if err == nil && ok {
			last = tor
			if tor.complete() {
				return nil
			}
			if tor.failed() {
				return fmt.Errorf("%s: torrent state %q\n%s", q.proc.name, tor.State, q.proc.tail())
			}
		}
		if q.proc.hasExited() {
			return fmt.Errorf("%v\n%s", q.proc.exitError(), q.proc.tail())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w; last state %+v\n%s", q.proc.name, ctx.Err(), last, q.proc.tail())
		case <-time.After(qbitPollEvery):
		}
	}
}

// qbitPollEvery is how often the Web API is asked; qBittorrent refreshes
// what it reports every 100 ms (RefreshInterval in its configuration).
const qbitPollEvery = 50 * time.Millisecond

func (q *qbit) get(ctx context.Context, method string, query url.Values, v any) error {
	return swarmtest.QbittorrentGet(ctx, q.client, q.api, method, query, v)
}

func (b *bench) qbitSeeder(ctx context.Context, dir string) (*seeder, error) {
	q, err := b.startQbit(ctx, "qbittorrent-nox seeder", dir)
	if err != nil {
		return nil, err
	}
	h := b.mi.InfoHash.String()
	if err := q.add(ctx, b.torrent, b.seedDir); err != nil {
		return nil, err
	}
	if err := q.waitComplete(ctx, h); err != nil {
		return nil, fmt.Errorf("qbittorrent-nox seeder: checking %s: %w", b.seedDir, err)
	}
	return &seeder{name: clientQbit, proc: q.proc, addr: loopback(q.port), uploaded: func(ctx context.Context) (int64, error) {
		tor, ok, err := q.torrent(ctx, h)
		if err == nil && !ok {
			err = errors.New("qbittorrent-nox seeder: torrent gone")
		}
		return tor.Uploaded, err
	}}, nil
}

// qbitLeech starts a fresh qbittorrent-nox, waits for its Web API, and
// times from adding the torrent to qBittorrent reporting it complete: the
// daemon's start-up is not counted. CPU time is counted over the same
// span; the peak RSS is the process's since it started (VmHWM).
func (b *bench) qbitLeech(ctx context.Context, out string) (*measure, error) {
	dir := out + "-profile"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	q, err := b.startQbit(startCtx, "qbittorrent-nox leecher", dir)
	cancel()
	if err != nil {
		return nil, err
	}
	defer q.proc.stop()
	pid := q.proc.pid()
	cpu0, err := cpuTime(pid)
	if err != nil {
		return nil, err
	}
	anon := sampleAnon(pid)
	defer anon.stop()
	start := time.Now()
	if err := q.add(ctx, b.torrent, out); err != nil {
		return nil, err
	}
	if err := q.waitComplete(ctx, b.mi.InfoHash.String()); err != nil {
		return nil, err
	}
	wall := time.Since(start)
	cpu1, err1 := cpuTime(pid)
	hwm, err2 := statusBytes(pid, "VmHWM")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &measure{wall: wall, cpu: cpu1 - cpu0, maxRSS: hwm, peakAnon: anon.stop()}, nil
}

// --- libtorrent ---

// ltStatus is a status line of libtorrent_client.py.
type ltStatus struct {
	State       string `json:"state"`
	TotalDone   int64  `json:"total_done"`
	TotalWanted int64  `json:"total_wanted"`
	Uploaded    int64  `json:"upload"`
	Port        int    `json:"port"`
	Error       string `json:"error"`
}

func (s ltStatus) complete() bool { return s.TotalWanted > 0 && s.TotalDone >= s.TotalWanted }

// ltPeer is a libtorrent_client.py process and its latest status.
type ltPeer struct {
	proc *proc

	mu      sync.Mutex
	status  ltStatus      // guarded by mu
	at      time.Time     // guarded by mu: when status came
	changed chan struct{} // guarded by mu: closed and replaced on each status
}

func (b *bench) startLT(name, dir, saveDir string, seed bool) (*ltPeer, error) {
	l := &ltPeer{changed: make(chan struct{})}
	args := []string{b.python, b.script, "--torrent", b.torrent, "--save-path", saveDir}
	if seed {
		args = append(args, "--seed")
	}
	p, err := startProc(name, filepath.Join(dir, "output.log"), dir, []string{"PYTHONUNBUFFERED=1"}, func(line string) {
		var st ltStatus
		if json.Unmarshal([]byte(line), &st) != nil {
			return
		}
		now := time.Now()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.status, l.at = st, now
		close(l.changed)
		l.changed = make(chan struct{})
	}, args...)
	if err != nil {
		return nil, err
	}
	l.proc = p
	return l, nil
}

// waitFor waits for a status that satisfies cond and returns when it came.
func (l *ltPeer) waitFor(ctx context.Context, cond func(ltStatus) bool) (time.Time, error) {
	for {
		l.mu.Lock()
		st, at, changed := l.status, l.at, l.changed
		l.mu.Unlock()
		if !at.IsZero() && cond(st) {
			return at, nil
		}
		if st.Error != "" {
			return time.Time{}, fmt.Errorf("%s: torrent error %q\n%s", l.proc.name, st.Error, l.proc.tail())
		}
		select {
		case <-changed:
		case <-l.proc.exited:
			return time.Time{}, fmt.Errorf("%v; last status %+v\n%s", l.proc.exitError(), st, l.proc.tail())
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s: %w; last status %+v\n%s", l.proc.name, ctx.Err(), st, l.proc.tail())
		}
	}
}

func (b *bench) ltSeeder(ctx context.Context, dir string) (*seeder, error) {
	l, err := b.startLT("libtorrent seeder", dir, b.seedDir, true)
	if err != nil {
		return nil, err
	}
	if _, err := l.waitFor(ctx, func(s ltStatus) bool { return s.Port > 0 && s.State == "seeding" && s.complete() }); err != nil {
		return nil, err
	}
	l.mu.Lock()
	port := l.status.Port
	l.mu.Unlock()
	return &seeder{name: clientLT, proc: l.proc, addr: loopback(port), uploaded: func(context.Context) (int64, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.status.Uploaded, nil
	}}, nil
}

// ltLeech times libtorrent_client.py from its start to the status line
// that reports the download complete (libtorrent checks each piece as it
// arrives); CPU time and peak RSS are read from /proc at that moment.
func (b *bench) ltLeech(ctx context.Context, out string) (*measure, error) {
	dir := out + "-lt"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := b.startLT("libtorrent leecher", dir, out, false)
	if err != nil {
		return nil, err
	}
	defer l.proc.stop()
	anon := sampleAnon(l.proc.pid())
	defer anon.stop()
	at, err := l.waitFor(ctx, ltStatus.complete)
	if err != nil {
		return nil, err
	}
	cpu, err1 := cpuTime(l.proc.pid())
	hwm, err2 := statusBytes(l.proc.pid(), "VmHWM")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &measure{wall: at.Sub(l.proc.started), cpu: cpu, maxRSS: hwm, peakAnon: anon.stop()}, nil
}

func loopback(port int) netip.AddrPort { return swarmtest.PeerAddr(port) }
