package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// seedBuf is a bytes.Buffer a running command writes while the test
// reads it.
type seedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *seedBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *seedBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// seedRun is a command running in the background.
type seedRun struct {
	stdout, stderr seedBuf
	status         chan int
	cancel         context.CancelFunc // Ctrl-C
}

// startCLI runs the command line args in the background, with stderr a
// terminal or not.
func startCLI(t *testing.T, terminal bool, args ...string) *seedRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &seedRun{status: make(chan int, 1), cancel: cancel}
	go func() { r.status <- run(ctx, &env{stdout: &r.stdout, stderr: &r.stderr, isTerminal: terminal}, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.status:
		case <-time.After(20 * time.Second):
			t.Errorf("%q did not stop", args)
		}
	})
	return r
}

// wait returns the exit status once the command ends by itself.
func (r *seedRun) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case st := <-r.status:
		r.status <- st // for the cleanup
		return st
	case <-time.After(timeout):
		t.Fatalf("still running after %s\nstdout: %s\nstderr: %s", timeout, r.stdout.String(), r.stderr.String())
		return -1
	}
}

// stop interrupts the command and returns its exit status.
func (r *seedRun) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	return r.wait(t, 20*time.Second)
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var servingOn = regexp.MustCompile(`serving on (127\.0\.0\.1:\d+)`)

// listenAddr waits for the command to say where it serves peers.
func (r *seedRun) listenAddr(t *testing.T, asJSON bool) string {
	t.Helper()
	var addr string
	waitFor(t, "the serving address", 15*time.Second, func() bool {
		if asJSON {
			for _, ev := range seedEvents(t, r.stdout.String()) {
				if ev.Event == "started" {
					addr = ev.Listen
				}
			}
		} else if m := servingOn.FindStringSubmatch(r.stdout.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	return addr
}

// seedEvents parses the JSON lines of seed --json; every line must be one.
func seedEvents(t *testing.T, out string) []seedEvent {
	t.Helper()
	var evs []seedEvent
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		if !strings.Contains(l, `"event":"`) {
			t.Fatalf("not a JSON event: %q", l)
		}
		var ev seedEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("JSON line %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func lastEvent(evs []seedEvent, name string) (seedEvent, bool) {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Event == name {
			return evs[i], true
		}
	}
	return seedEvent{}, false
}

// seedFixture makes makeContent's folder and a torrent of it (4 pieces of
// 16 KiB: a.txt is pieces 0-2, sub/b.bin pieces 2-3); dir is the folder
// to give seed -d.
func seedFixture(t *testing.T) (torrentPath, dir string, mi *metainfo.MetaInfo) {
	t.Helper()
	root := makeContent(t)
	mi, err := metainfo.Create(context.Background(), root, metainfo.CreateOptions{PieceLength: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	torrentPath = filepath.Join(t.TempDir(), "content.torrent")
	if err := writeTorrentFile(mi, torrentPath); err != nil {
		t.Fatal(err)
	}
	return torrentPath, filepath.Dir(root), mi
}

// addSingle adds a one-file torrent, single.bin, to the folder dir.
func addSingle(t *testing.T, dir string) (torrentPath string, mi *metainfo.MetaInfo) {
	t.Helper()
	p := filepath.Join(dir, "single.bin")
	if err := os.WriteFile(p, bytes.Repeat([]byte("single\n"), 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Create(context.Background(), p, metainfo.CreateOptions{PieceLength: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	torrentPath = filepath.Join(t.TempDir(), "single.torrent")
	if err := writeTorrentFile(mi, torrentPath); err != nil {
		t.Fatal(err)
	}
	return torrentPath, mi
}

// leecher starts an in-process client fetching mi from the peer at addr
// into a new folder, and returns the torrent and that folder.
func leecher(t *testing.T, mi *metainfo.MetaInfo, addr string) (*aiotorrent.Torrent, string) {
	t.Helper()
	_, tor := loopbackTorrent(t, mi)
	tor.AddPeers(mustAddrPort(t, addr))
	return tor, t.TempDir()
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ps, err := parsePeers([]string{s})
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

// download fetches the whole torrent with the leecher and compares it
// with the content in src.
func download(t *testing.T, tor *aiotorrent.Torrent, dir, src string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tor.DownloadAll(ctx, aiotorrent.WithDir(dir)); err != nil {
		t.Fatalf("leecher: %v", err)
	}
	for _, f := range tor.Files() {
		a, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		b, _ := os.ReadFile(filepath.Join(src, filepath.FromSlash(f.Path)))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from the seeder's", f.Path)
		}
	}
}

// A seed of complete data serves a leecher, shows the check and the
// status, and stops cleanly on Ctrl-C.
func TestSeedCommand(t *testing.T) {
	tests := []struct {
		name     string
		terminal bool
		json     bool
		args     []string
		stderr   []string // all expected on stderr
	}{
		{"plain", false, false, nil, []string{"checked content: 4 of 4 pieces present (100.0%)", "content: up "}},
		// Slowly, so that the terminal shows the peer while it downloads.
		{"terminal", true, false, []string{"--upload-limit", "20K"},
			[]string{"checking content 100% (4/4 pieces)", "\033[J", "seeding content  up ", "127.0.0.1:", "aiotorrent"}},
		{"json", false, true, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			torrentPath, dir, mi := seedFixture(t)
			args := []string{"seed", "-d", dir, "--listen", "127.0.0.1:0", "--no-trackers", "--status-every", "100ms"}
			if tt.json {
				args = append(args, "--json")
			}
			args = append(args, tt.args...)
			r := startCLI(t, tt.terminal, append(args, torrentPath)...)
			addr := r.listenAddr(t, tt.json)
			tor, out := leecher(t, mi, addr)
			download(t, tor, out, dir)
			total := mi.Info.Length
			if tt.json {
				waitFor(t, "a status event with the upload", 10*time.Second, func() bool {
					ev, ok := lastEvent(seedEvents(t, r.stdout.String()), "status")
					return ok && ev.Uploaded >= total && ev.Ratio >= 1
				})
			} else if tt.terminal {
				waitFor(t, "a status", 10*time.Second, func() bool {
					return strings.Contains(r.stderr.String(), "seeding content")
				})
			} else {
				waitFor(t, "a status line", 10*time.Second, func() bool {
					return strings.Contains(r.stderr.String(), "content: up ")
				})
			}
			if st := r.stop(t); st != 0 {
				t.Fatalf("status %d\nstdout: %s\nstderr: %s", st, r.stdout.String(), r.stderr.String())
			}
			stdout, stderr := r.stdout.String(), r.stderr.String()
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not contain %q:\n%q", want, stderr)
				}
			}
			if !tt.json {
				if !strings.Contains(stdout, "content: 4 of 4 pieces present (100.0%); serving on") ||
					!strings.Contains(stdout, "content: stopped; uploaded 56.6 KiB (ratio 1.00)") {
					t.Errorf("stdout %q", stdout)
				}
				return
			}
			evs := seedEvents(t, stdout)
			checked, _ := lastEvent(evs, "checked") // same fields: pieces, pieces_present
			started, _ := lastEvent(evs, "started")
			stopped, ok := lastEvent(evs, "stopped")
			if checked.Pieces != 4 || checked.Present != 4 {
				t.Errorf("checked event %+v", checked)
			}
			if started.Present != 4 || started.Pieces != 4 || started.Name != "content" || started.InfoHash != mi.InfoHash.String() {
				t.Errorf("started event %+v", started)
			}
			if !ok || stopped.Reason != "interrupted" || stopped.Uploaded < total {
				t.Errorf("stopped event %+v", stopped)
			}
			if evs[len(evs)-1].Event != "stopped" {
				t.Errorf("last event %+v", evs[len(evs)-1])
			}
		})
	}
}

// Incomplete data is refused, naming each incomplete torrent, unless
// --partial.
func TestSeedIncomplete(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		single bool // also seed single.bin
		json   bool
		want   []string // on stderr
		not    []string // not on stderr
	}{
		{
			name:   "missing file",
			damage: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "content/sub/b.bin")) },
			want:   []string{"content: the data in DIR is incomplete: 2 of 4 pieces present, 24.6 KiB of 56.6 KiB missing (use --partial to seed what is there)"},
		},
		{
			name:   "truncated file",
			damage: func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, "content/a.txt"), 20000) },
			want:   []string{"content: the data in", "is incomplete: 2 of 4 pieces present", "use --partial"},
		},
		{
			name:   "one of two",
			damage: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "content/sub/b.bin")) },
			single: true,
			want:   []string{"checked single.bin: 5 of 5 pieces present", "content: the data in", "use --partial"},
			not:    []string{"single.bin: the data", "torrents cannot be seeded"},
		},
		{
			name: "both of two",
			damage: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, "content/sub/b.bin"))
				os.Truncate(filepath.Join(dir, "single.bin"), 100)
			},
			single: true,
			want:   []string{"content: the data in", "single.bin: the data in", "2 of 2 torrents cannot be seeded; nothing seeded (use --partial"},
		},
		{
			name:   "json",
			damage: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "content/sub/b.bin")) },
			json:   true,
			want:   []string{"is incomplete"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			torrentPath, dir, _ := seedFixture(t)
			args := []string{"seed", "-d", dir, "--listen", "127.0.0.1:0", "--no-trackers", torrentPath}
			if tt.single {
				p, _ := addSingle(t, dir)
				args = append(args, p)
			}
			if tt.json {
				args = append(args, "--json")
			}
			tt.damage(t, dir)
			r := runCLI(t, args...)
			if !tt.single {
				checkClean(t, r)
			}
			if r.status != 1 {
				t.Fatalf("status %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
			}
			for _, want := range tt.want {
				want = strings.ReplaceAll(want, "DIR", filepath.Clean(dir))
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
				}
			}
			for _, not := range tt.not {
				if strings.Contains(r.stderr, not) {
					t.Errorf("stderr contains %q:\n%s", not, r.stderr)
				}
			}
			if strings.Contains(r.stdout, "serving on") {
				t.Errorf("stdout says it serves: %s", r.stdout)
			}
			if tt.json {
				var ev incompleteEvent
				lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ev); err != nil {
					t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
				}
				if ev.Event != "incomplete" || ev.Name != "content" || ev.Present != 2 || ev.Pieces != 4 || ev.Missing != 16384+58004-49152 || ev.Total != 58004 {
					t.Errorf("incomplete event %+v", ev)
				}
			}
		})
	}
}

// --partial seeds the pieces that are there: a leecher gets exactly those.
func TestSeedPartial(t *testing.T) {
	torrentPath, dir, mi := seedFixture(t)
	os.Remove(filepath.Join(dir, "content/sub/b.bin")) // pieces 2 and 3
	r := startCLI(t, false, "seed", "--partial", "--json", "-d", dir, "--listen", "127.0.0.1:0", "--no-trackers", "--status-every", "100ms", torrentPath)
	addr := r.listenAddr(t, true)
	started, _ := lastEvent(seedEvents(t, r.stdout.String()), "started")
	if started.Present != 2 || started.Pieces != 4 {
		t.Fatalf("started event %+v", started)
	}
	tor, out := leecher(t, mi, addr)
	if err := tor.Start(aiotorrent.WithDir(out)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the leecher to have the seeder's pieces", 15*time.Second, func() bool {
		return tor.Stats().PiecesVerified == started.Present
	})
	time.Sleep(300 * time.Millisecond)
	if got := tor.Stats().PiecesVerified; got != started.Present {
		t.Fatalf("leecher has %d pieces; the seeder %d", got, started.Present)
	}
	if st := r.stop(t); st != 0 {
		t.Fatalf("status %d; stderr %s", st, r.stderr.String())
	}
	stopped, _ := lastEvent(seedEvents(t, r.stdout.String()), "stopped")
	if stopped.Uploaded < 2*16<<10 {
		t.Errorf("stopped event %+v; want 2 pieces uploaded", stopped)
	}
}

// --ratio and --seed-time end seeding by themselves, with status 0.
func TestSeedLimits(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		leech  bool   // a leecher takes the whole torrent
		single bool   // also seed single.bin
		want   string // on stdout
	}{
		{"ratio", []string{"--ratio", "1"}, true, false, "content: reached ratio 1.00 after"},
		{"seed time", []string{"--seed-time", "1s"}, false, false, "content: seeded for 1s; uploaded 0 B (ratio 0.00)"},
		{"seed time, two torrents", []string{"--seed-time", "1s"}, false, true, "single.bin: seeded for 1s"},
		{"ratio or seed time", []string{"--ratio", "5", "--seed-time", "1s"}, false, false, "content: seeded for 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			torrentPath, dir, mi := seedFixture(t)
			args := append([]string{"seed", "-d", dir, "--listen", "127.0.0.1:0", "--no-trackers", "--status-every", "100ms"}, tt.args...)
			args = append(args, torrentPath)
			if tt.single {
				p, _ := addSingle(t, dir)
				args = append(args, p)
			}
			start := time.Now()
			r := startCLI(t, false, args...)
			if tt.leech {
				tor, out := leecher(t, mi, r.listenAddr(t, false))
				download(t, tor, out, dir)
			}
			if st := r.wait(t, 15*time.Second); st != 0 {
				t.Fatalf("status %d\nstdout: %s\nstderr: %s", st, r.stdout.String(), r.stderr.String())
			}
			if !strings.Contains(r.stdout.String(), tt.want) {
				t.Errorf("stdout does not contain %q:\n%s", tt.want, r.stdout.String())
			}
			if strings.Contains(tt.name, "time") && time.Since(start) < time.Second {
				t.Errorf("stopped after %s", time.Since(start))
			}
		})
	}
}

// The rate and connection flags reach the Client.
func TestSeedLimitFlags(t *testing.T) {
	tests := []struct {
		args       []string
		up, down   int64
		slots      int
		conns, per int
	}{
		{nil, 0, 0, 0, 0, 0},
		{[]string{"--upload-limit", "2M"}, 2 << 20, 0, 0, 0, 0},
		{[]string{"--upload-limit", "512K", "--download-limit", "2MiB"}, 512 << 10, 2 << 20, 0, 0, 0},
		{[]string{"--upload-limit", "1m/s", "--download-limit", "100000"}, 1 << 20, 100000, 0, 0, 0},
		{[]string{"--upload-limit", "0", "--slots", "3", "--max-conns", "10", "--max-conns-per-torrent", "5"}, 0, 0, 3, 10, 5},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			for _, cmd := range []string{"seed", "download"} {
				var n *netOpts
				var fs interface{ Parse([]string) error }
				if cmd == "seed" {
					f, o := seedFlags()
					fs, n = f, &o.netOpts
				} else {
					f, o := downloadFlags()
					fs, n = f, &o.netOpts
				}
				if err := fs.Parse(append(tt.args, "--listen", "127.0.0.1:0")); err != nil {
					t.Fatal(err)
				}
				if err := n.limits.check(); err != nil {
					t.Fatal(err)
				}
				cfg := n.config(&env{})
				if cfg.UploadSlots != tt.slots || cfg.MaxConns != tt.conns || cfg.MaxConnsPerTorrent != tt.per {
					t.Errorf("%s: config %+v", cmd, cfg)
				}
				c, err := n.client(&env{})
				if err != nil {
					t.Fatal(err)
				}
				if c.UploadLimit() != tt.up || c.DownloadLimit() != tt.down {
					t.Errorf("%s: client limits up %d, down %d; want %d, %d", cmd, c.UploadLimit(), c.DownloadLimit(), tt.up, tt.down)
				}
				c.Close()
			}
		})
	}
}

// An upload limit slows the seed down: 56.6 KiB at 32 KiB/s takes over
// a second (the first tenth of a second's worth goes at once).
func TestSeedUploadLimit(t *testing.T) {
	torrentPath, dir, mi := seedFixture(t)
	r := startCLI(t, false, "seed", "--upload-limit", "32K", "-d", dir, "--listen", "127.0.0.1:0", "--no-trackers", torrentPath)
	tor, out := leecher(t, mi, r.listenAddr(t, false))
	start := time.Now()
	download(t, tor, out, dir)
	if d := time.Since(start); d < time.Second {
		t.Errorf("downloaded in %s at an upload limit of 32 KiB/s", d)
	}
}

func TestSeedUsageErrors(t *testing.T) {
	torrentPath, dir, _ := seedFixture(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"seed"}, "wants one or more torrent files"},
		{[]string{"seed", "--ratio", "-1", torrentPath}, "--ratio must be 0 or more"},
		{[]string{"seed", "--ratio", "NaN", torrentPath}, "--ratio must be 0 or more"},
		{[]string{"seed", "--ratio", "lots", torrentPath}, "invalid value"},
		{[]string{"seed", "--seed-time", "-1s", torrentPath}, "--seed-time must be 0 or more"},
		{[]string{"seed", "--seed-time", "1", torrentPath}, "invalid value"},
		{[]string{"seed", "--upload-limit", "lots", torrentPath}, "invalid rate"},
		{[]string{"seed", "--upload-limit", "-5", torrentPath}, "invalid rate"},
		{[]string{"seed", "--download-limit", "2X", torrentPath}, "invalid rate"},
		{[]string{"seed", "--slots", "-1", torrentPath}, "--slots must be 0 or more"},
		{[]string{"seed", "--max-conns", "-1", torrentPath}, "--max-conns must be 0 or more"},
		{[]string{"seed", "--max-conns-per-torrent", "x", torrentPath}, "invalid value"},
		{[]string{"seed", "--status-every", "0s", torrentPath}, "--status-every must be positive"},
		{[]string{"seed", "--peer", "localhost", torrentPath}, "IP:PORT"},
		{[]string{"seed", "-d", dir, "--listen", "127.0.0.1:0", "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"}, "not magnet links"},
		{[]string{"download", "--ratio", "1", torrentPath}, "--ratio and --seed-time need --seed"},
		{[]string{"download", "--seed-time", "1m", torrentPath}, "need --seed"},
		{[]string{"download", "--seed", "--seed-time", "-1s", torrentPath}, "--seed-time must be 0 or more"},
		{[]string{"download", "--upload-limit", "fast", torrentPath}, "invalid rate"},
		{[]string{"download", "--slots", "-2", torrentPath}, "--slots must be 0 or more"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, tt.args...)
			checkClean(t, r)
			if r.status != 2 || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "usage: aiotorrent "+tt.args[0]) {
				t.Errorf("status %d, stderr %q; want 2 and %q", r.status, r.stderr, tt.want)
			}
		})
	}
}

// The same torrent given twice is seeded once.
func TestSeedSameTorrentTwice(t *testing.T) {
	torrentPath, dir, _ := seedFixture(t)
	r := runCLI(t, "seed", "--seed-time", "100ms", "-d", dir, "--listen", "127.0.0.1:0", "--no-trackers", torrentPath, torrentPath)
	if r.status != 0 || !strings.Contains(r.stderr, "is the same torrent as") || strings.Count(r.stdout, "serving on") != 1 {
		t.Fatalf("status %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
}

// download --seed downloads, then serves what it downloaded until
// --seed-time, and exits 0.
func TestDownloadSeed(t *testing.T) {
	tests := []struct {
		name string
		json bool
	}{
		{"plain", false},
		{"json", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			torrentPath, src, addr := seedContent(t)
			mi, err := metainfo.LoadFile(torrentPath)
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			args := []string{"download", "--seed", "--seed-time", "3s", "-o", out, "--listen", "127.0.0.1:0", "--no-trackers",
				"--peer", addr, "--progress-every", "100ms"}
			if tt.json {
				args = append(args, "--json")
			}
			start := time.Now()
			r := startCLI(t, false, append(args, torrentPath)...)
			// Another leecher, told only of the downloader, gets the
			// whole torrent from it while it seeds.
			tor, out2 := leecher(t, mi, r.listenAddr(t, tt.json))
			download(t, tor, out2, src)
			if st := r.wait(t, 20*time.Second); st != 0 {
				t.Fatalf("status %d\nstdout: %s\nstderr: %s", st, r.stdout.String(), r.stderr.String())
			}
			if d := time.Since(start); d < 3*time.Second {
				t.Errorf("exited after %s", d)
			}
			stdout := r.stdout.String()
			if !tt.json {
				for _, want := range []string{"content: complete", "serving on", "content: seeded for 3s; uploaded 56.6 KiB (ratio 1.00)"} {
					if !strings.Contains(stdout, want) {
						t.Errorf("stdout does not contain %q:\n%s", want, stdout)
					}
				}
				return
			}
			var events []string
			for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
				var ev struct{ Event string }
				if err := json.Unmarshal([]byte(l), &ev); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				if len(events) == 0 || events[len(events)-1] != ev.Event {
					events = append(events, ev.Event)
				}
			}
			got := strings.Join(events, ",")
			if !strings.HasSuffix(got, "done,started,status,stopped") && !strings.HasSuffix(got, "done,started,stopped") {
				t.Errorf("events %s", got)
			}
			stopped, _ := lastEvent(seedEvents(t, stdout), "stopped")
			if stopped.Reason != "time" || stopped.Uploaded < mi.Info.Length {
				t.Errorf("stopped event %+v", stopped)
			}
		})
	}
}

// loopbackTorrent adds mi to a new in-process client on 127.0.0.1,
// without trackers, closed when the test ends.
func loopbackTorrent(t *testing.T, mi *metainfo.MetaInfo) (*aiotorrent.Client, *aiotorrent.Torrent) {
	t.Helper()
	c, err := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, NoDHT: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tor, err := c.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	return c, tor
}
