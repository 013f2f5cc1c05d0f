package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker/server"
)

// Interop tests: independent BitTorrent clients (aria2c, qbittorrent-nox,
// libtorrent), run as separate processes on 127.0.0.1 with DHT, local
// peer discovery and peer exchange off, find each other through our
// tracker alone and move a torrent between them. The tracker's listeners
// are tapped to record every announce, so the tests can tell who
// announced what over which protocol.

const (
	// interopTimeout bounds each test's wait for its clients.
	interopTimeout = 60 * time.Second
	// interopInterval is the announce interval our tracker asks for.
	interopInterval = 2 * time.Second
	// interopSize is the size of the torrent's one file.
	interopSize = 4 << 20
)

func TestRealClientsThroughOurTrackerHTTP(t *testing.T) {
	// aria2c announces only to HTTP trackers (it uses UDP trackers only
	// with its DHT on), so the seeder is known to our tracker through
	// HTTP alone. libtorrent announces to every tier, HTTP and UDP.
	swarmtest.Tool(t, "aria2c", "aria2")
	swarmtest.RequireLibtorrent(t)
	tr := startInteropTracker(t)
	tor := makeInteropTorrent(t, [][]string{{tr.httpURL}, {tr.udpURL}})
	ctx, cancel := context.WithTimeout(t.Context(), interopTimeout)
	defer cancel()
	start := time.Now()

	seeder := swarmtest.Aria2Seed(t, tor.path, tor.dataDir)
	tr.waitSeeder(ctx, t, seeder.Port(), "http")
	seeded := time.Now()

	out := t.TempDir()
	leecher := swarmtest.Libtorrent(t, tor.path, out, false)
	if err := leecher.WaitComplete(ctx); err != nil {
		t.Fatalf("libtorrent leecher: %v\n%s", err, tr.describe())
	}
	done := time.Now()
	tor.checkCopy(t, out)

	tr.waitAnnounce(ctx, t, "libtorrent leecher", leecher.Port(), "http", isLeeching)
	tr.waitAnnounce(ctx, t, "libtorrent leecher", leecher.Port(), "udp", isLeeching)
	tr.checkStats(t, 2) // both still run
	t.Logf("aria2c seeder known to the tracker after %v; libtorrent downloaded %d bytes in %v",
		seeded.Sub(start).Round(time.Millisecond), interopSize, done.Sub(seeded).Round(time.Millisecond))
}

func TestRealClientsThroughOurTrackerUDP(t *testing.T) {
	// The torrent lists our UDP tracker only. Both libtorrent and
	// qBittorrent (on libtorrent too, but configured through its own
	// settings) use UDP trackers with DHT off; aria2c would not.
	swarmtest.RequireLibtorrent(t)
	swarmtest.Tool(t, "qbittorrent-nox", "qbittorrent-nox")
	tr := startInteropTracker(t)
	tor := makeInteropTorrent(t, [][]string{{tr.udpURL}})
	ctx, cancel := context.WithTimeout(t.Context(), interopTimeout)
	defer cancel()
	start := time.Now()

	seeder := swarmtest.Libtorrent(t, tor.path, tor.dataDir, true)
	tr.waitSeeder(ctx, t, seeder.Port(), "udp")
	seeded := time.Now()

	qb := swarmtest.Qbittorrent(t)
	out := t.TempDir()
	h := qb.AddTorrent(tor.path, out, false)
	if err := qb.WaitComplete(ctx, h); err != nil {
		t.Fatalf("qbittorrent-nox leecher: %v\n%s", err, tr.describe())
	}
	done := time.Now()
	tor.checkCopy(t, out)

	tr.waitAnnounce(ctx, t, "qbittorrent-nox leecher", qb.Port(), "udp", isLeeching)
	if n := tr.count("http"); n != 0 {
		t.Errorf("%d HTTP announces for a torrent with only a UDP tracker\n%s", n, tr.describe())
	}
	tr.checkStats(t, 2) // both still run
	t.Logf("libtorrent seeder known to the tracker after %v; qbittorrent-nox started and downloaded %d bytes in %v",
		seeded.Sub(start).Round(time.Millisecond), interopSize, done.Sub(seeded).Round(time.Millisecond))
}

func TestQbittorrentAnnouncesToOurTracker(t *testing.T) {
	// qBittorrent seeds, announcing to both tiers; aria2c leeches through
	// the HTTP tier, the one it uses.
	swarmtest.Tool(t, "qbittorrent-nox", "qbittorrent-nox")
	swarmtest.Tool(t, "aria2c", "aria2")
	tr := startInteropTracker(t)
	tor := makeInteropTorrent(t, [][]string{{tr.httpURL}, {tr.udpURL}})
	ctx, cancel := context.WithTimeout(t.Context(), interopTimeout)
	defer cancel()
	start := time.Now()

	qb := swarmtest.Qbittorrent(t)
	qb.AddTorrent(tor.path, tor.dataDir, true)
	tr.waitSeeder(ctx, t, qb.Port(), "http")
	tr.waitSeeder(ctx, t, qb.Port(), "udp")
	seeded := time.Now()

	out := t.TempDir()
	leecher := swarmtest.Aria2Leech(t, tor.path, out)
	if err := leecher.Wait(ctx); err != nil {
		t.Fatalf("aria2c leecher: %v\n%s", err, tr.describe())
	}
	done := time.Now()
	tor.checkCopy(t, out)

	tr.waitAnnounce(ctx, t, "aria2c leecher", leecher.Port(), "http", isLeeching)
	tr.checkStats(t, 1) // the leecher has exited, and may have left
	t.Logf("qbittorrent-nox seeder known to the tracker after %v; aria2c downloaded %d bytes in %v",
		seeded.Sub(start).Round(time.Millisecond), interopSize, done.Sub(seeded).Round(time.Millisecond))
}

// interopTorrent is a torrent of one file of random data.
type interopTorrent struct {
	path    string // the .torrent file
	dataDir string // holds the file
	name    string // the file's name
	data    []byte
}

// makeInteropTorrent writes interopSize random bytes to a file and makes
// a torrent of it with metainfo.Create, with the given tracker tiers.
func makeInteropTorrent(t *testing.T, trackers [][]string) *interopTorrent {
	t.Helper()
	tor := &interopTorrent{dataDir: t.TempDir(), name: "interop.bin", data: make([]byte, interopSize)}
	rand.Read(tor.data)
	file := filepath.Join(tor.dataDir, tor.name)
	if err := os.WriteFile(file, tor.data, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Create(t.Context(), file, metainfo.CreateOptions{Trackers: trackers})
	if err != nil {
		t.Fatal(err)
	}
	b, err := mi.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tor.path = filepath.Join(t.TempDir(), "interop.torrent")
	if err := os.WriteFile(tor.path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return tor
}

// checkCopy checks that dir holds a byte-identical copy of the file.
func (tor *interopTorrent) checkCopy(t *testing.T, dir string) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, tor.name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, tor.data) {
		t.Fatalf("downloaded %s differs from the original (%d bytes, want %d)", tor.name, len(got), len(tor.data))
	}
}

// interopTracker is our tracker on 127.0.0.1, HTTP and UDP, with its
// listeners tapped.
type interopTracker struct {
	srv     *server.Server
	start   time.Time
	httpURL string // http://127.0.0.1:PORT/announce
	udpURL  string // udp://127.0.0.1:PORT

	mu        sync.Mutex
	announces []announceRecord // guarded by mu
	changed   chan struct{}    // guarded by mu: closed and replaced on each announce
}

// announceRecord is one announce request as the tap saw it.
type announceRecord struct {
	proto  string // "http" or "udp"
	peerID string
	port   int
	left   int64
	event  string        // "started", "completed", "stopped" or ""
	at     time.Duration // when, since the tracker started
}

func (r announceRecord) String() string {
	return fmt.Sprintf("%v %s port=%d left=%d event=%q peer_id=%q", r.at.Round(time.Millisecond), r.proto, r.port, r.left, r.event, r.peerID)
}

func isSeeding(r announceRecord) bool  { return r.left == 0 && r.event != "stopped" }
func isLeeching(r announceRecord) bool { return r.left > 0 && r.event != "stopped" }

// startInteropTracker serves our tracker, with interopInterval, on free
// ports of 127.0.0.1 until the test ends.
func startInteropTracker(t *testing.T) *interopTracker {
	t.Helper()
	tr := &interopTracker{
		srv:     server.New(server.Config{Interval: interopInterval}),
		start:   time.Now(),
		changed: make(chan struct{}),
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	tr.httpURL = fmt.Sprintf("http://%s/announce", ln.Addr())
	tr.udpURL = fmt.Sprintf("udp://%s", pc.LocalAddr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tr.srv.Serve(ctx, &tapListener{Listener: ln, tr: tr}, &tapPacketConn{PacketConn: pc, tr: tr})
	}()
	// Registered first, so it runs after the clients' cleanups: their
	// "stopped" announces get an answer.
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tracker: %v", err)
		}
	})
	return tr
}

func (tr *interopTracker) record(r announceRecord) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	r.at = time.Since(tr.start)
	tr.announces = append(tr.announces, r)
	close(tr.changed)
	tr.changed = make(chan struct{})
}

// waitAnnounce waits until the client listening on port has announced
// over proto with a request that satisfies ok, and fails the test if ctx
// is done first.
func (tr *interopTracker) waitAnnounce(ctx context.Context, t *testing.T, who string, port int, proto string, ok func(announceRecord) bool) {
	t.Helper()
	for {
		tr.mu.Lock()
		changed := tr.changed
		for _, r := range tr.announces {
			if r.port == port && r.proto == proto && ok(r) {
				tr.mu.Unlock()
				return
			}
		}
		tr.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("%s (port %d): no such %s announce: %v\n%s", who, port, proto, ctx.Err(), tr.describe())
		}
	}
}

// waitSeeder waits until a seeder listening on port has announced over
// proto that it has the whole torrent.
func (tr *interopTracker) waitSeeder(ctx context.Context, t *testing.T, port int, proto string) {
	t.Helper()
	tr.waitAnnounce(ctx, t, "seeder", port, proto, isSeeding)
}

// count returns the number of announces seen over proto.
func (tr *interopTracker) count(proto string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, r := range tr.announces {
		if r.proto == proto {
			n++
		}
	}
	return n
}

// checkStats checks the server's own account: one torrent, at least one
// seeder and minPeers peers, and no more announces answered than the tap
// has seen (which peers announced is the tap's to tell).
func (tr *interopTracker) checkStats(t *testing.T, minPeers int) {
	t.Helper()
	st := tr.srv.Stats()
	tr.mu.Lock()
	seen := len(tr.announces)
	tr.mu.Unlock()
	if st.Torrents != 1 || st.Seeders < 1 || st.Seeders+st.Leechers < minPeers || st.Announces < 2 || st.Announces > uint64(seen) {
		t.Errorf("tracker stats %+v after %d announces seen: want 1 torrent, a seeder, %d or more peers, 2 or more announces\n%s",
			st, seen, minPeers, tr.describe())
	}
}

// describe lists the announces seen and the server's stats, for failure
// messages.
func (tr *interopTracker) describe() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "tracker %s %s stats %+v, announces:", tr.httpURL, tr.udpURL, tr.srv.Stats())
	for _, r := range tr.announces {
		fmt.Fprintf(&b, "\n  %v", r)
	}
	return b.String()
}

// tapListener records the HTTP announces read from its connections.
type tapListener struct {
	net.Listener
	tr *interopTracker
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: c, tr: l.tr}, nil
}

// tapConn watches the request lines of the HTTP requests read from it.
type tapConn struct {
	net.Conn
	tr *interopTracker

	mu   sync.Mutex
	line []byte // guarded by mu: the start of a line not yet ended
}

// maxTapLine bounds a request line the tap looks at.
const maxTapLine = 16 << 10

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	for data := b[:n]; len(data) > 0; {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(c.line)+len(data) <= maxTapLine {
				c.line = append(c.line, data...)
			}
			break
		}
		if len(c.line)+i <= maxTapLine {
			c.line = append(c.line, data[:i]...)
			if r, ok := parseHTTPAnnounce(string(bytes.TrimSuffix(c.line, []byte("\r")))); ok {
				c.tr.record(r)
			}
		}
		c.line = c.line[:0]
		data = data[i+1:]
	}
	return n, err
}

// parseHTTPAnnounce parses a request line "GET /announce?... HTTP/1.1".
func parseHTTPAnnounce(line string) (announceRecord, bool) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "GET" {
		return announceRecord{}, false
	}
	u, err := url.ParseRequestURI(f[1])
	if err != nil || u.Path != "/announce" {
		return announceRecord{}, false
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return announceRecord{}, false
	}
	port, _ := strconv.Atoi(q.Get("port"))
	left, _ := strconv.ParseInt(q.Get("left"), 10, 64)
	return announceRecord{proto: "http", peerID: q.Get("peer_id"), port: port, left: left, event: q.Get("event")}, true
}

// tapPacketConn records the UDP announces (BEP 15) read from it.
type tapPacketConn struct {
	net.PacketConn
	tr *interopTracker
}

func (c *tapPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if r, ok := parseUDPAnnounce(b[:n]); ok {
		c.tr.record(r)
	}
	return n, addr, err
}

// parseUDPAnnounce parses a BEP 15 announce request: connection id (8),
// action 1 (4), transaction id (4), info hash (20), peer id (20),
// downloaded (8), left (8), uploaded (8), event (4), IP (4), key (4),
// num_want (4), port (2).
func parseUDPAnnounce(p []byte) (announceRecord, bool) {
	if len(p) < 98 || binary.BigEndian.Uint32(p[8:]) != 1 {
		return announceRecord{}, false
	}
	events := []string{"", "completed", "started", "stopped"}
	event := "?"
	if e := binary.BigEndian.Uint32(p[80:]); e < uint32(len(events)) {
		event = events[e]
	}
	return announceRecord{
		proto:  "udp",
		peerID: string(p[36:56]),
		left:   int64(binary.BigEndian.Uint64(p[64:])),
		event:  event,
		port:   int(binary.BigEndian.Uint16(p[96:])),
	}, true
}
