package aiotorrent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
	"github.com/aiotorrent/aiotorrent/tracker"
	"github.com/aiotorrent/aiotorrent/tracker/server"
)

// Interop with real, independent BitTorrent software on loopback: aria2c,
// qbittorrent-nox and libtorrent (internal/swarmtest starts them with DHT,
// local peer discovery, peer exchange and port mapping off, so the peers
// given here and the torrent's tracker are their only peers).

// interopTimeout bounds each case: seeders checking their data, and the
// whole download. downloadTimeout bounds the download itself: on loopback
// these torrents take a second or two, so a download still going after
// downloadTimeout is stalled (a peer dropped and not retried soon), not
// slow.
const (
	interopTimeout  = 90 * time.Second
	downloadTimeout = 30 * time.Second
)

// interopFile is a file of generated content.
type interopFile struct {
	path string
	size int
}

// interopFiles is the content of the interop torrent: about 12 MiB in
// pieces of 256 KiB, with files of odd sizes that start and end inside
// pieces, an empty file and a one-byte one.
var interopFiles = []interopFile{
	{"a.bin", 5_000_003},
	{"empty", 0},
	{"one", 1},
	{"sub/b.bin", 4<<20 + 1},
	{"sub/deeper/c.bin", 3_333_333},
	{"z.txt", 262_143},
}

// mixedFiles is interopFiles and a big file, about 76 MiB in all: a
// download that lasts long enough on loopback for every seeder of a mixed
// swarm to connect and serve (aria2c takes a few hundred milliseconds to
// accept a connection; 12 MiB come in about 100 ms).
var mixedFiles = append([]interopFile{{"big.bin", 64<<20 - 12345}}, interopFiles...)

const interopPieceLength = 256 << 10

// interopData is generated content and its torrent.
type interopData struct {
	mi  *metainfo.MetaInfo // with no tracker
	src string             // the folder holding the torrent's folder
}

// makeInteropData writes files with random content under a new folder and
// makes their torrent, with no tracker.
func makeInteropData(t *testing.T, files []interopFile) *interopData {
	return makeData(t, "interop", interopPieceLength, files)
}

// makeData writes files of pseudo-random bytes (the same for a given
// name) under a folder called name, and makes their torrent.
func makeData(t *testing.T, name string, pieceLen int64, files []interopFile) *interopData {
	t.Helper()
	src := t.TempDir()
	root := filepath.Join(src, name)
	var seed [32]byte
	copy(seed[:], name)
	rng := rand.NewChaCha8(seed)
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, f.size)
		rng.Read(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mi, err := metainfo.Create(t.Context(), root, metainfo.CreateOptions{PieceLength: pieceLen})
	if err != nil {
		t.Fatal(err)
	}
	return &interopData{mi: mi, src: src}
}

// withTrackers returns a copy of the torrent announcing to the given
// URLs, one tier each; the info hash is the same.
func (d *interopData) withTrackers(urls ...string) *metainfo.MetaInfo {
	mi := *d.mi
	mi.Announce, mi.AnnounceList = "", nil
	if len(urls) > 0 {
		mi.Announce = urls[0]
		for _, u := range urls {
			mi.AnnounceList = append(mi.AnnounceList, []string{u})
		}
	}
	return &mi
}

// copyData copies the content into a new folder, so that every seeder
// has data of its own and the original stays as it was generated.
func (d *interopData) copyData(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(d.src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(d.src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if de.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// checkSame fails the test unless every file of the torrent under dir is
// byte-identical to the generated one.
func (d *interopData) checkSame(t *testing.T, dir string) {
	t.Helper()
	for _, f := range aiotorrent.FromMetaInfo(d.mi).Files() {
		rel := filepath.FromSlash(f.Path)
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("downloaded file: %v", err)
			continue
		}
		want, err := os.ReadFile(filepath.Join(d.src, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: downloaded %d bytes differ from the %d generated (first difference at %d)",
				f.Path, len(got), len(want), firstDiff(got, want))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// seeder is a running seeder of the interop torrent.
type seeder struct {
	name string
	addr netip.AddrPort
	// uploaded returns the payload bytes it sent, as it reports them; nil
	// when it cannot tell (aria2c has no such interface here).
	uploaded func() int64
}

// startSeeder starts a seeder, returning once it serves the whole torrent
// (it has checked its data). mi is the torrent it is given, with the
// tracker it announces to, if any.
type startSeeder func(t *testing.T, ctx context.Context, d *interopData, mi *metainfo.MetaInfo) seeder

func aria2Seeder(t *testing.T, ctx context.Context, d *interopData, mi *metainfo.MetaInfo) seeder {
	a := swarmtest.Aria2Seed(t, swarmtest.WriteTorrent(t, mi), d.copyData(t))
	if err := a.WaitSeeding(ctx, mi); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("AIOTORRENT_INTEROP_LOGS") != "" {
			t.Logf("%s", a.Logs())
		}
	})
	return seeder{name: "aria2c", addr: swarmtest.PeerAddr(a.Port())}
}

func qbitSeeder(t *testing.T, ctx context.Context, d *interopData, mi *metainfo.MetaInfo) seeder {
	q := swarmtest.Qbittorrent(t)
	h := q.AddTorrent(swarmtest.WriteTorrent(t, mi), d.copyData(t), true)
	// The Web API reports the data checked a moment before qBittorrent
	// accepts peers for the torrent: until then it resets connections.
	if err := swarmtest.WaitSeeding(ctx, swarmtest.PeerAddr(q.Port()), mi); err != nil {
		t.Fatalf("qbittorrent: %v\n%s", err, q.Logs())
	}
	return seeder{name: "qbittorrent", addr: swarmtest.PeerAddr(q.Port()), uploaded: func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		tor, _, err := q.Torrent(ctx, h)
		if err != nil {
			return -1
		}
		return tor.Uploaded
	}}
}

func libtorrentSeeder(t *testing.T, ctx context.Context, d *interopData, mi *metainfo.MetaInfo) seeder {
	l := swarmtest.Libtorrent(t, swarmtest.WriteTorrent(t, mi), d.copyData(t), true)
	if err := swarmtest.WaitSeeding(ctx, swarmtest.PeerAddr(l.Port()), mi); err != nil {
		t.Fatalf("libtorrent: %v\n%s", err, l.Logs())
	}
	return seeder{name: "libtorrent", addr: swarmtest.PeerAddr(l.Port()), uploaded: func() int64 { return l.Status().Uploaded }}
}

// ownSeeder is aiotorrent itself seeding, in a Client of its own.
func ownSeeder(t *testing.T, ctx context.Context, d *interopData, mi *metainfo.MetaInfo) seeder {
	c := newInteropClient(t, "seeder", len(mi.Trackers()) == 0)
	tor, err := c.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := tor.Start(aiotorrent.WithDir(d.copyData(t))); err != nil {
		t.Fatal(err)
	}
	if s := tor.Stats(); s.PiecesVerified != s.Pieces {
		t.Fatalf("own seeder has %d of %d pieces", s.PiecesVerified, s.Pieces)
	}
	return seeder{name: "aiotorrent", addr: c.Addr().(*net.TCPAddr).AddrPort(), uploaded: func() int64 { return tor.Stats().Uploaded }}
}

// newInteropClient starts a Client on loopback, closed when the test ends.
// Its debug log is shown if the test fails.
func newInteropClient(t *testing.T, name string, noTrackers bool) *aiotorrent.Client {
	t.Helper()
	logs := &logTail{}
	c, err := aiotorrent.NewClient(aiotorrent.Config{
		ListenAddr:     "127.0.0.1:0",
		NoTrackers:     noTrackers,
		TrackerOptions: tracker.Options{UDPBase: 500 * time.Millisecond, UDPRetries: 4, Timeout: 5 * time.Second},
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
		if t.Failed() || os.Getenv("AIOTORRENT_INTEROP_LOGS") != "" {
			t.Logf("--- aiotorrent %s log:\n%s", name, logs)
		}
	})
	return c
}

// logTail keeps the last logTailSize bytes written to it.
type logTail struct {
	mu      sync.Mutex
	buf     []byte // guarded by mu
	dropped int    // guarded by mu
}

const logTailSize = 16 << 10

func (l *logTail) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	if over := len(l.buf) - logTailSize; over > logTailSize {
		l.dropped += over
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	return len(b), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf
	if over := len(b) - logTailSize; over > 0 {
		return fmt.Sprintf("[%d bytes left out]\n%s", l.dropped+over, b[over:])
	}
	return string(b)
}

// startTracker starts a tracker for hash and returns its announce URL.
type startTracker func(t *testing.T, hash metainfo.Hash) string

func bittorrentTrackerHTTP(t *testing.T, _ metainfo.Hash) string {
	u, _ := swarmtest.BittorrentTracker(t, 2*time.Second)
	return u
}

func bittorrentTrackerUDP(t *testing.T, _ metainfo.Hash) string {
	_, u := swarmtest.BittorrentTracker(t, 2*time.Second)
	return u
}

func opentrackerHTTP(t *testing.T, h metainfo.Hash) string {
	u, _ := swarmtest.Opentracker(t, h)
	return u
}

func opentrackerUDP(t *testing.T, h metainfo.Hash) string {
	_, u := swarmtest.Opentracker(t, h)
	return u
}

// ourTrackerHTTP and ourTrackerUDP serve tracker/server on loopback.
func ourTrackerHTTP(t *testing.T, _ metainfo.Hash) string {
	u, _ := serveOurTracker(t)
	return u
}

func ourTrackerUDP(t *testing.T, _ metainfo.Hash) string {
	_, u := serveOurTracker(t)
	return u
}

func serveOurTracker(t *testing.T) (httpURL, udpURL string) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := server.New(server.Config{Interval: 2 * time.Second, MinInterval: time.Second})
	go func() { done <- srv.Serve(ctx, ln, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("tracker: %v", err)
		}
	})
	return fmt.Sprintf("http://%s/announce", ln.Addr()), fmt.Sprintf("udp://%s", pc.LocalAddr())
}

// TestInteropDownloadFromRealSeeders downloads a multi-file torrent from
// real seeders, given directly or found through a real tracker, and
// checks every file byte for byte.
func TestInteropDownloadFromRealSeeders(t *testing.T) {
	var small, big *interopData // made once, by the first case that needs it
	mixed := []startSeeder{aria2Seeder, qbitSeeder, libtorrentSeeder, ownSeeder}
	cases := []struct {
		name     string
		seeders  []startSeeder
		tracker  startTracker // nil: the seeders are given with AddPeers
		strategy aiotorrent.Strategy
		big      bool // mixedFiles, not interopFiles
	}{
		{name: "aria2c", seeders: []startSeeder{aria2Seeder}},
		{name: "qbittorrent", seeders: []startSeeder{qbitSeeder}, strategy: aiotorrent.Sequential},
		{name: "libtorrent", seeders: []startSeeder{libtorrentSeeder}},
		{name: "mixed", seeders: mixed, big: true},
		{name: "mixed-sequential", seeders: mixed, big: true, strategy: aiotorrent.Sequential},
		// aria2c announces over HTTP only (its UDP tracker client needs
		// its DHT, off here).
		{name: "bittorrent-tracker-http/aria2c", seeders: []startSeeder{aria2Seeder}, tracker: bittorrentTrackerHTTP},
		{name: "bittorrent-tracker-udp/libtorrent", seeders: []startSeeder{libtorrentSeeder}, tracker: bittorrentTrackerUDP},
		{name: "opentracker-http/libtorrent", seeders: []startSeeder{libtorrentSeeder}, tracker: opentrackerHTTP},
		{name: "opentracker-udp/qbittorrent", seeders: []startSeeder{qbitSeeder}, tracker: opentrackerUDP},
	}
	parent := t // the data outlives each case
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pd, files := &small, interopFiles
			if tc.big {
				pd, files = &big, mixedFiles
			}
			if *pd == nil {
				*pd = makeInteropData(parent, files)
			}
			d := *pd
			ctx, cancel := context.WithTimeout(t.Context(), interopTimeout)
			defer cancel()
			begin := time.Now()
			mi := d.mi
			announce := ""
			if tc.tracker != nil {
				announce = tc.tracker(t, d.mi.InfoHash)
				mi = d.withTrackers(announce)
			}
			var seeders []seeder
			for _, start := range tc.seeders {
				s := start(t, ctx, d, mi)
				t.Logf("%s seeding on %v after %v", s.name, s.addr, time.Since(begin).Round(time.Millisecond))
				seeders = append(seeders, s)
			}
			if announce != "" {
				if err := swarmtest.WaitTrackerSeeders(ctx, announce, mi.InfoHash, len(seeders)); err != nil {
					t.Fatal(err)
				}
				t.Logf("tracker counts the seeders after %v", time.Since(begin).Round(time.Millisecond))
			}

			c := newInteropClient(t, "leecher", announce == "")
			tor, err := c.Add(mi)
			if err != nil {
				t.Fatal(err)
			}
			dst := t.TempDir()
			maxPeers := make(chan int, 1)
			watchCtx, stopWatch := context.WithCancel(ctx)
			go func() { maxPeers <- watchPeers(watchCtx, tor) }()
			start := time.Now()
			dlCtx, dlCancel := context.WithTimeout(ctx, downloadTimeout)
			done := make(chan error, 1)
			go func() {
				done <- tor.DownloadAll(dlCtx, aiotorrent.WithDir(dst), aiotorrent.WithStrategy(tc.strategy))
			}()
			if announce == "" {
				joinSeeders(t, dlCtx, tor, seeders, done)
			}
			err = <-done
			dlCancel()
			took := time.Since(start)
			stopWatch()
			most := <-maxPeers
			st := tor.Stats()
			if err != nil {
				t.Fatalf("download (%s) after %v: %v; stats %+v", tc.strategy, took.Round(time.Millisecond), err, st)
			}
			t.Logf("downloaded %d bytes (%s) in %v (%.1f MiB/s), at most %d peers at once; received %d, wasted %d",
				mi.Info.Length, tc.strategy, took.Round(time.Millisecond), float64(mi.Info.Length)/(1<<20)/took.Seconds(),
				most, st.Downloaded, st.Wasted)
			d.checkSame(t, dst)
			if !st.Done() {
				t.Errorf("stats after the download: not done: %+v", st)
			}
			if st.Downloaded < mi.Info.Length {
				t.Errorf("stats: downloaded %d bytes, less than the torrent's %d", st.Downloaded, mi.Info.Length)
			}
			if most < len(seeders) {
				t.Errorf("at most %d peers were connected at once, want all %d seeders", most, len(seeders))
			}
			unreported := st.Downloaded
			for _, s := range seeders {
				if s.uploaded == nil {
					continue
				}
				// A single seeder sent everything; in a mixed swarm each
				// sent some. Real clients report with a delay.
				want := int64(1)
				if len(seeders) == 1 {
					want = mi.Info.Length
				}
				up := waitUploaded(s, want)
				unreported -= up
				t.Logf("%s uploaded %d bytes", s.name, up)
				if up < want {
					t.Errorf("%s reports %d bytes uploaded, want at least %d", s.name, up, want)
				}
			}
			if len(seeders) > 1 {
				t.Logf("the seeders that do not report (aria2c) sent about %d bytes", unreported)
			}
			if announce != "" {
				checkTrackerWorking(t, tor, announce)
			}
		})
	}
}

// joinSeeders gives the download the seeders' addresses one at a time,
// each once the one before is connected, so that a seeder slow to accept
// (aria2c takes a few hundred milliseconds) still joins a swarm whose
// others would otherwise finish the download first. It stops early if the
// download ends (done receives, and is refilled for the caller).
func joinSeeders(t *testing.T, ctx context.Context, tor *aiotorrent.Torrent, seeders []seeder, done chan error) {
	t.Helper()
	for i, s := range seeders {
		tor.AddPeers(s.addr)
		if i == len(seeders)-1 {
			return
		}
		for tor.Stats().Peers < i+1 {
			select {
			case err := <-done:
				done <- err
				return
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// waitUploaded waits up to a few seconds for the seeder to report at least
// want bytes uploaded, and returns what it last reported.
func waitUploaded(s seeder, want int64) int64 {
	deadline := time.Now().Add(3 * time.Second)
	for {
		up := s.uploaded()
		if up >= want || time.Now().After(deadline) {
			return up
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// watchPeers returns the most peers tor had connected at once, sampled
// every 20 ms until ctx is done.
func watchPeers(ctx context.Context, tor *aiotorrent.Torrent) int {
	most := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		most = max(most, tor.Stats().Peers)
		select {
		case <-ctx.Done():
			return most
		case <-tick.C:
		}
	}
}

// checkTrackerWorking fails the test unless tor's stats show the tracker at
// announce "working" with no error. A download that just completed is
// announcing "completed", so an "announcing" state is waited out.
func checkTrackerWorking(t *testing.T, tor *aiotorrent.Torrent, announce string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := tor.Stats()
		i := slices.IndexFunc(st.Trackers, func(tr aiotorrent.TrackerStats) bool { return tr.URL == announce })
		if i < 0 {
			t.Errorf("stats list no tracker %s: %+v", announce, st.Trackers)
			return
		}
		tr := st.Trackers[i]
		if tr.State == "announcing" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if tr.State != "working" || tr.LastError != "" || tr.Failures != 0 {
			t.Errorf("tracker %s: state %q, last error %q, %d failures; want working", tr.URL, tr.State, tr.LastError, tr.Failures)
		}
		t.Logf("tracker %s: %s, %d peers, %d seeders, %d leechers, interval %v", tr.URL, tr.State, tr.Peers, tr.Seeders, tr.Leechers, tr.Interval)
		return
	}
}

// TestInteropLateBitfield plays what aria2c does on the wire, without
// aria2c: at each turn of a connection's loop, when announcing the pieces
// it completed since the last turn as have messages would take as many
// bytes as its whole bitfield (5 + bitfield length <= 9 × pieces: two
// pieces for this torrent), it sends its bitfield again instead, or
// have-all once it has everything (aria2 1.36,
// DefaultBtInteractive::checkHave). libtorrent takes a later bitfield as
// replacing the first (bt_peer_connection::on_bitfield). A client that
// drops such a peer cuts every aria2c leecher off after a few pieces, and
// aria2c reconnects only after its next announce.
func TestInteropLateBitfield(t *testing.T) {
	d := makeInteropData(t, interopFiles)
	n := d.mi.Info.NumPieces()
	some := make([]byte, (n+7)/8) // pieces 0 to 19
	for i := range 20 {
		some[i/8] |= 0x80 >> (i % 8)
	}
	late := map[string][]byte{
		"bitfield": peer.AppendMessage(nil, &peer.Message{Type: peer.Bitfield, Payload: some}),
		"have all": peer.AppendMessage(nil, &peer.Message{Type: peer.HaveAll}),
	}

	// Our seeder, and an aria2c-like leecher that has told it "have none"
	// and, some pieces later, sends its bitfield: the seeder goes on
	// serving it.
	t.Run("seeder gets bitfield", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		c := newInteropClient(t, "seeder", true)
		tor, err := c.Add(d.mi)
		if err != nil {
			t.Fatal(err)
		}
		if err := tor.Start(aiotorrent.WithDir(d.copyData(t))); err != nil {
			t.Fatal(err)
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		w := newWirePeer(t, ctx, conn, d.mi)
		w.handshake()
		w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}),
			peer.AppendMessage(nil, &peer.Message{Type: peer.Interested}))
		w.waitFor("unchoke", func(m *peer.Message) bool { return m.Type == peer.Unchoke })
		w.send(peer.AppendRequest(nil, peer.Request, 0, 0, peer.BlockSize))
		w.waitFor("block 0 of piece 0", func(m *peer.Message) bool { return m.Type == peer.Piece && m.Index == 0 && m.Begin == 0 })
		w.send(late["bitfield"], peer.AppendRequest(nil, peer.Request, 30, 0, peer.BlockSize))
		w.waitFor("block 0 of piece 30, asked after the late bitfield", func(m *peer.Message) bool {
			return m.Type == peer.Piece && m.Index == 30 && m.Begin == 0
		})
	})

	// Our leecher, and an aria2c-like peer that started with nothing and,
	// some pieces later, sends its bitfield or have-all: the leecher asks
	// it for what it now has.
	for _, name := range []string{"bitfield", "have all"} {
		t.Run("leecher gets "+name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c := newInteropClient(t, "leecher", true)
			tor, err := c.Add(d.mi)
			if err != nil {
				t.Fatal(err)
			}
			dlCtx, dlCancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- tor.DownloadAll(dlCtx, aiotorrent.WithDir(t.TempDir())) }()
			defer func() { dlCancel(); <-done }()
			tor.AddPeers(ln.Addr().(*net.TCPAddr).AddrPort())
			conn, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			w := newWirePeer(t, ctx, conn, d.mi)
			w.handshake()
			w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}),
				peer.AppendMessage(nil, &peer.Message{Type: peer.Unchoke}))
			w.send(late[name])
			w.waitFor("a request for a piece it has", func(m *peer.Message) bool {
				return m.Type == peer.Request && (name == "have all" || m.Index < 20)
			})
		})
	}
}

// wirePeer is a scripted peer on one connection, built from the peer
// package; every wait fails the test on error or when ctx is done.
type wirePeer struct {
	t    *testing.T
	conn net.Conn
	mi   *metainfo.MetaInfo
	r    *peer.Reader
	seen []string // types of the messages received, for failure messages
}

func newWirePeer(t *testing.T, ctx context.Context, conn net.Conn, mi *metainfo.MetaInfo) *wirePeer {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	info := &mi.Info
	return &wirePeer{t: t, conn: conn, mi: mi,
		r: peer.NewReader(conn, peer.Limits{NumPieces: info.NumPieces(), PieceLength: info.PieceLength, Length: info.Length})}
}

// handshake sends ours (with the Fast extension, as aria2c) and reads
// theirs.
func (w *wirePeer) handshake() {
	w.t.Helper()
	h := &peer.Handshake{InfoHash: w.mi.InfoHash}
	copy(h.PeerID[:], "A2-1-36-0-wirepeer..")
	h.Reserved.SetFast()
	if err := peer.WriteHandshake(w.conn, h); err != nil {
		w.t.Fatalf("write handshake: %v", err)
	}
	got, err := peer.ReadHandshake(w.conn)
	if err != nil {
		w.t.Fatalf("read handshake: %v", err)
	}
	if got.InfoHash != w.mi.InfoHash {
		w.t.Fatalf("handshake for %x, want %s", got.InfoHash, w.mi.InfoHash)
	}
}

func (w *wirePeer) send(msgs ...[]byte) {
	w.t.Helper()
	if _, err := w.conn.Write(bytes.Join(msgs, nil)); err != nil {
		w.t.Fatalf("write: %v (after receiving %v)", err, w.seen)
	}
}

// waitFor reads messages until one satisfies match.
func (w *wirePeer) waitFor(what string, match func(*peer.Message) bool) {
	w.t.Helper()
	var m peer.Message
	for {
		if err := w.r.ReadMessage(&m); err != nil {
			w.t.Fatalf("waiting for %s: %v; received before: %v", what, err, w.seen)
		}
		w.seen = append(w.seen, m.Type.String())
		if len(w.seen) > 64 {
			w.seen = append(w.seen[:0], "...")
		}
		if match(&m) {
			return
		}
	}
}
