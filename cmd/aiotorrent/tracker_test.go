package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/aiotorrent/aiotorrent/dht"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
	"github.com/aiotorrent/aiotorrent/tracker/server"
)

// startTracker runs our tracker server on loopback for one test.
func startTracker(t *testing.T) (httpURL, udpURL string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { server.New(server.Config{Interval: time.Minute}).Serve(ctx, ln, pc); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String() + "/announce", "udp://" + pc.LocalAddr().String()
}

func writeTorrent(t *testing.T, trackers ...string) (path string, hash metainfo.Hash) {
	t.Helper()
	var tiers [][]string
	for _, u := range trackers {
		tiers = append(tiers, []string{u})
	}
	mi, err := metainfo.Create(context.Background(), filepath.Join(makeContent(t), "a.txt"), metainfo.CreateOptions{Trackers: tiers})
	if err != nil {
		t.Fatal(err)
	}
	b, err := mi.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "t.torrent")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, mi.InfoHash
}

func TestPeersAgainstOurTracker(t *testing.T) {
	// Two trackers, so one's announce is not counted by the other's scrape.
	httpURL, _ := startTracker(t)
	_, udpURL := startTracker(t)
	path, hash := writeTorrent(t, httpURL, udpURL)
	// Two seeders registered with each tracker.
	for i, u := range []string{httpURL, udpURL, httpURL, udpURL} {
		c, err := tracker.New(u, tracker.Options{})
		if err != nil {
			t.Fatal(err)
		}
		req := tracker.AnnounceRequest{InfoHash: hash, Port: uint16(7000 + i/2), Event: tracker.Started, NumWant: -1}
		req.PeerID[0] = byte(i + 1)
		if _, err := c.Announce(context.Background(), &req); err != nil {
			t.Fatalf("register peer with %s: %v", u, err)
		}
	}

	r := runCLI(t, "peers", "--no-dht", "--json", "--port", "7100", path)
	if r.status != 0 {
		t.Fatalf("peers: status %d: %s", r.status, r.stderr)
	}
	var out struct {
		InfoHash string          `json:"info_hash"`
		Trackers []trackerAnswer `json:"trackers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if out.InfoHash != hash.String() || len(out.Trackers) != 2 {
		t.Fatalf("output %+v", out)
	}
	for _, a := range out.Trackers {
		if a.Error != "" || len(a.Peers) != 2 || a.Seeders != 2 || a.Leechers != 0 {
			t.Errorf("%s answered %+v; want both seeders, and counts without us", a.URL, a)
		}
		for _, p := range a.Peers {
			if ap, err := netip.ParseAddrPort(p); err != nil || ap.Port() == 7100 {
				t.Errorf("%s: peer %q", a.URL, p)
			}
		}
	}
	// We said stopped: a second query still sees only the two seeders.
	r = runCLI(t, "peers", "--no-dht", "--tracker", httpURL, "--port", "7101", path)
	if r.status != 0 || !strings.Contains(r.stdout, "2 peers, seeders 2, leechers 0") {
		t.Errorf("second query: status %d\n%s%s", r.status, r.stdout, r.stderr)
	}
}

func TestPeersNoTrackerAnswers(t *testing.T) {
	// A UDP port nobody listens on, and an HTTP port that refuses.
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	deadUDP := "udp://" + pc.LocalAddr().String()
	pc.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadHTTP := "http://" + ln.Addr().String() + "/announce"
	ln.Close()
	path, _ := writeTorrent(t, deadUDP, deadHTTP)
	r := runCLI(t, "peers", "--no-dht", "--timeout", "2s", path)
	if r.status != 1 || !strings.Contains(r.stderr, "no tracker answered (2 tried)") {
		t.Errorf("status %d, stderr %q", r.status, r.stderr)
	}
	if !strings.Contains(r.stdout, "error:") {
		t.Errorf("per-tracker errors not shown:\n%s", r.stdout)
	}
	checkClean(t, r)

	noTrackers, _ := writeTorrent(t)
	if r := runCLI(t, "peers", "--no-dht", noTrackers); r.status != 1 || !strings.Contains(r.stderr, "names no tracker") {
		t.Errorf("torrent without trackers: status %d, %q", r.status, r.stderr)
	}
	if r := runCLI(t, "peers", "--tracker", "ftp://x/announce", noTrackers); r.status != 2 {
		t.Errorf("bad --tracker: status %d, %q", r.status, r.stderr)
	}
}

// TestPeersFromDHT: peers looks the torrent up on the DHT too (here a few
// nodes on loopback, holding two announced peers); a DHT that cannot be
// reached, with no tracker, is an error.
func TestPeersFromDHT(t *testing.T) {
	nodes := dhtNodes(t, 4)
	path, hash := writeTorrent(t) // no trackers
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, s := range nodes[1:3] {
		if _, err := s.Announce(ctx, hash, uint16(7200+i)); err != nil {
			t.Fatal(err)
		}
	}
	r := runCLI(t, "peers", "--json", "--state-dir", "-", "--dht-bootstrap", nodes[3].Addr().String(), path)
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	var out struct {
		DHT *dhtAnswer `json:"dht"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.DHT == nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	slices.Sort(out.DHT.Peers)
	if !slices.Equal(out.DHT.Peers, []string{"127.0.0.1:7200", "127.0.0.1:7201"}) || out.DHT.Nodes < 3 {
		t.Errorf("DHT answer %+v", out.DHT)
	}
	r = runCLI(t, "peers", "--state-dir", "-", "--dht-bootstrap", nodes[3].Addr().String(), path)
	if r.status != 0 || !strings.Contains(r.stdout, "DHT\n  2 peers") {
		t.Errorf("status %d:\n%s%s", r.status, r.stdout, r.stderr)
	}
	// No node to ask, no tracker.
	r = runCLI(t, "peers", "--state-dir", "-", "--dht-bootstrap", "none", path)
	if r.status != 1 || !strings.Contains(r.stderr, "neither the DHT nor any tracker answered") {
		t.Errorf("no DHT node: status %d:\n%s%s", r.status, r.stdout, r.stderr)
	}
}

// dhtNodes starts n DHT nodes on 127.0.0.1 that know each other, closed
// when the test ends.
func dhtNodes(t *testing.T, n int) []*dht.Server {
	t.Helper()
	var nodes []*dht.Server
	for i := range n {
		cfg := dht.Config{Addr: "127.0.0.1:0", RateLimit: rate.Inf}
		if i > 0 {
			cfg.Bootstrap = []string{nodes[0].Addr().String()}
		}
		s, err := dht.NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range nodes[1:] {
		if err := s.Bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func TestTrackerCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	status := make(chan int, 1)
	go func() {
		status <- run(ctx, &env{stdout: outW, stderr: io.Discard}, []string{"tracker", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--interval", "1m"})
		outW.Close()
	}()
	sc := bufio.NewScanner(outR)
	var urls []string
	for len(urls) < 2 && sc.Scan() {
		f := strings.Fields(sc.Text())
		urls = append(urls, f[len(f)-1])
	}
	go io.Copy(io.Discard, outR)
	if len(urls) != 2 || !strings.HasPrefix(urls[0], "http://127.0.0.1:") || !strings.HasPrefix(urls[1], "udp://127.0.0.1:") {
		t.Fatalf("tracker printed %v", urls)
	}
	hash := metainfo.Hash{1, 2, 3}
	for i, u := range urls {
		c, err := tracker.New(u, tracker.Options{})
		if err != nil {
			t.Fatal(err)
		}
		req := tracker.AnnounceRequest{InfoHash: hash, Port: uint16(8000 + i), Event: tracker.Started, NumWant: -1, Left: 1}
		req.PeerID[0] = byte(i + 1)
		resp, err := c.Announce(ctx, &req)
		if err != nil {
			t.Fatalf("announce to %s: %v", u, err)
		}
		if i == 1 && (len(resp.Peers) != 1 || resp.Peers[0].Port() != 8000) {
			t.Errorf("second peer got %v, want the first", resp.Peers)
		}
	}
	cancel()
	if st := <-status; st != 0 {
		t.Errorf("tracker exited %d after interrupt", st)
	}
}

func TestTrackerCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "wl")
	os.WriteFile(bad, []byte("# comment\nnot-a-hash\n"), 0o644)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	tests := []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"tracker", "--http", "off", "--udp", "off"}, 2, "both --http and --udp are off"},
		{[]string{"tracker", "extra"}, 2, "takes no arguments"},
		{[]string{"tracker", "--interval", "1ms"}, 2, "--interval"},
		{[]string{"tracker", "--whitelist", bad}, 1, "wl:2"},
		{[]string{"tracker", "--whitelist", filepath.Join(dir, "none")}, 1, "no such file"},
		{[]string{"tracker", "--http", ln.Addr().String(), "--udp", "off"}, 1, "address already in use"},
	}
	for _, tt := range tests {
		r := runCLI(t, tt.args...)
		if r.status != tt.status || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: status %d, stderr %q; want %d and %q", tt.args, r.status, r.stderr, tt.status, tt.want)
		}
		checkClean(t, r)
	}
}
