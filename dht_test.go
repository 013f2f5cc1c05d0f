package aiotorrent

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/aiotorrent/aiotorrent/dht"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// dhtNetwork starts n standalone DHT nodes on 127.0.0.1 that know each
// other, and returns their addresses.
func dhtNetwork(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var srvs []*dht.Server
	for i := range n {
		cfg := dht.Config{Addr: "127.0.0.1:0", RateLimit: rate.Inf}
		if i > 0 {
			cfg.Bootstrap = addrs[:1]
		}
		s, err := dht.NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		srvs = append(srvs, s)
		addrs = append(addrs, s.Addr().String())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, s := range srvs[1:] {
		if err := s.Bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return addrs
}

// dhtClient is a test client on 127.0.0.1 with no trackers, whose DHT
// node joins through bootstrap (none if empty).
func dhtClient(t *testing.T, stateDir string, bootstrap ...string) *Client {
	t.Helper()
	if bootstrap == nil {
		bootstrap = []string{}
	}
	if stateDir == "" {
		stateDir = "-"
	}
	c, err := NewClient(Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, StateDir: stateDir, DHTBootstrap: bootstrap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c.DHT() == nil {
		t.Fatal("no DHT node")
	}
	return c
}

// TestDHTMagnetNoTracker: a magnet link with neither tracker nor peer
// address is fetched and downloaded from a seeder found through a few DHT
// nodes on loopback; the seeder announced itself there.
func TestDHTMagnetNoTracker(t *testing.T) {
	nodes := dhtNetwork(t, 6)
	mi, src := makeTorrent(t, "dhtmag", 32<<10, testFile{"a", 1 << 20}, testFile{"b", 300 << 10})
	seeder := dhtClient(t, "", nodes[0])
	ts, _ := seeder.Add(mi)
	if err := ts.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	waitDHTPeer(t, ctx, nodes, mi.InfoHash, clientAddr(seeder))
	leecher := dhtClient(t, "", nodes[4])
	magnet := "magnet:?xt=urn:btih:" + mi.InfoHash.String()
	tl, err := leecher.Open(t.Context(), magnet)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := tl.WaitMetadata(ctx); err != nil {
		t.Fatalf("metadata through the DHT: %v", err)
	}
	t.Logf("metadata after %v", time.Since(start))
	dir := t.TempDir()
	if err := tl.DownloadAll(ctx, WithDir(dir)); err != nil {
		t.Fatalf("download through the DHT: %v", err)
	}
	t.Logf("complete after %v", time.Since(start))
	for _, f := range []string{"a", "b"} {
		want, _ := os.ReadFile(filepath.Join(src, "dhtmag", f))
		got, err := os.ReadFile(filepath.Join(dir, "dhtmag", f))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("file %s differs (%v)", f, err)
		}
	}
	if !slices.ContainsFunc(tl.Stats().PeerList, func(p PeerStats) bool { return p.Addr == clientAddr(seeder) }) {
		// The seeder may have been dropped as the download completed;
		// what matters is that the data came, from no one else.
		t.Logf("peers at the end: %v", tl.Stats().PeerList)
	}
}

// TestDHTPrivate: a private torrent is neither announced on the DHT nor
// looked up there, and its peers send no PORT message.
func TestDHTPrivate(t *testing.T) {
	nodes := dhtNetwork(t, 4)
	mi, src := makeTorrent(t, "dhtpriv", 32<<10, testFile{"a", 256 << 10})
	mi = privateCopy(t, mi)
	seeder := dhtClient(t, "", nodes[0])
	ts, _ := seeder.Add(mi)
	if err := ts.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	leecher := dhtClient(t, "", nodes[2])
	tl, _ := leecher.Add(mi)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := tl.DownloadAll(ctx, WithDir(t.TempDir())); err == nil {
		t.Fatal("a private torrent found its seeder through the DHT")
	}
	// Nobody announced it.
	probe, err := dht.NewServer(dht.Config{Addr: "127.0.0.1:0", Bootstrap: nodes[:1], RateLimit: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	lctx, lcancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer lcancel()
	if peers, _ := probe.GetPeers(lctx, mi.InfoHash); len(peers) > 0 {
		t.Fatalf("the private torrent was announced on the DHT: %v", peers)
	}
	// Connected directly, two peers whose nodes know no one exchange no
	// DHT ports.
	s2, l2 := dhtClient(t, ""), dhtClient(t, "")
	ts2, _ := s2.Add(mi)
	if err := ts2.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	tl2, _ := l2.Add(mi)
	tl2.AddPeers(clientAddr(s2))
	ctx2, cancel2 := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel2()
	if err := tl2.DownloadAll(ctx2, WithDir(t.TempDir())); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // as long as a PORT's ping takes, many times over
	if n1, n2 := s2.DHT().NumNodes(), l2.DHT().NumNodes(); n1+n2 > 0 {
		t.Fatalf("DHT ports exchanged over a private torrent's connection: %d and %d nodes", n1, n2)
	}
}

func hasNode(s *dht.Server, a net.Addr) bool {
	want := a.(*net.UDPAddr).AddrPort()
	return slices.ContainsFunc(s.Nodes(), func(n dht.Node) bool { return n.Addr == want })
}

// TestDHTPortMessage: two peers of a public torrent, with DHT nodes that
// know no one, add each other's node from the PORT messages (BEP 5) they
// exchange on connecting.
func TestDHTPortMessage(t *testing.T) {
	mi, src := makeTorrent(t, "dhtport", 32<<10, testFile{"a", 256 << 10})
	seeder := dhtClient(t, "")
	ts, _ := seeder.Add(mi)
	if err := ts.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	leecher := dhtClient(t, "")
	tl, _ := leecher.Add(mi)
	tl.AddPeers(clientAddr(seeder))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := tl.DownloadAll(ctx, WithDir(t.TempDir())); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !hasNode(leecher.DHT(), seeder.DHT().Addr()) || !hasNode(seeder.DHT(), leecher.DHT().Addr()) {
		if time.Now().After(deadline) {
			t.Fatalf("nodes after connecting: leecher %v, seeder %v", leecher.DHT().Nodes(), seeder.DHT().Nodes())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDHTStateKept: the DHT node's id and contacts are saved in the state
// folder at Close, and a client started again with them and no bootstrap
// nodes rejoins the DHT; a second client on the same state folder meanwhile
// takes a new id.
func TestDHTStateKept(t *testing.T) {
	nodes := dhtNetwork(t, 6)
	state := t.TempDir()
	a := dhtClient(t, state, nodes[0])
	deadline := time.Now().Add(10 * time.Second)
	for a.DHT().NumNodes() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("joined with %d nodes", a.DHT().NumNodes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	id := a.DHT().ID()
	other := dhtClient(t, state)
	if other.DHT().ID() == id {
		t.Fatal("two clients on one state folder share a DHT node id")
	}
	other.Close()
	a.Close()
	data, err := os.ReadFile(filepath.Join(state, dhtStateFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := dht.ParseState(data)
	if err != nil || st.ID != id || len(st.Nodes) < 5 {
		t.Fatalf("saved state: id %v (want %v), %d nodes, %v", st.ID, id, len(st.Nodes), err)
	}
	b := dhtClient(t, state) // no bootstrap nodes
	if b.DHT().ID() != id {
		t.Fatalf("restarted with id %v, want %v", b.DHT().ID(), id)
	}
	deadline = time.Now().Add(10 * time.Second)
	for b.DHT().NumNodes() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("rejoined with %d nodes", b.DHT().NumNodes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A damaged file is set aside: a new id, and the client still starts.
	b.Close()
	os.WriteFile(filepath.Join(state, dhtStateFile), []byte("garbage"), 0o600)
	c := dhtClient(t, state)
	if c.DHT().ID() == id {
		t.Fatal("id kept from a damaged state file")
	}
}

// TestNoDHT: with Config.NoDHT there is no node, no DHT bit and no
// lookup.
func TestNoDHT(t *testing.T) {
	c, err := NewClient(Config{ListenAddr: "127.0.0.1:0", NoDHT: true, StateDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.DHT() != nil || c.dhtPort() != 0 {
		t.Fatal("a DHT node runs with NoDHT")
	}
	if c.handshake(metainfo.Hash{}, false).Reserved.DHT() {
		t.Fatal("DHT bit set with NoDHT")
	}
}

// TestDHTPrivateMagnet: a magnet link's metadata may come from a peer the
// DHT named, but if it says the torrent is private, that peer is not used
// for the download (BEP 27): here the only peer there is.
func TestDHTPrivateMagnet(t *testing.T) {
	nodes := dhtNetwork(t, 4)
	mi, src := makeTorrent(t, "dhtprivmag", 32<<10, testFile{"a", 256 << 10})
	mi = privateCopy(t, mi)
	seeder := dhtClient(t, "", nodes[0])
	ts, _ := seeder.Add(mi)
	if err := ts.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	// Someone else lists the seeder on the DHT (a private torrent's peers
	// never announce there themselves).
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	other, err := dht.NewServer(dht.Config{Addr: "127.0.0.1:0", Bootstrap: nodes[:1], RateLimit: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Announce(ctx, mi.InfoHash, clientAddr(seeder).Port()); err != nil {
		t.Fatal(err)
	}
	leecher := dhtClient(t, "", nodes[2])
	tor, err := leecher.Open(ctx, "magnet:?xt=urn:btih:"+mi.InfoHash.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := tor.WaitMetadata(ctx); err != nil {
		t.Fatal(err)
	}
	if !tor.Private() {
		t.Fatal("not private")
	}
	dctx, dcancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer dcancel()
	if err := tor.DownloadAll(dctx, WithDir(t.TempDir())); err == nil {
		t.Fatal("the private torrent downloaded from a peer found on the DHT")
	}
	if peers := tor.Stats().PeerList; len(peers) > 0 {
		t.Fatalf("peers of the private download: %v", peers)
	}
}

// TestMagnetCloseWaits: closing a client stops a magnet link's metadata
// fetch and waits for all of it: its DHT lookups, and its announcer, which
// tells a slow tracker it stopped.
func TestMagnetCloseWaits(t *testing.T) {
	nodes := dhtNetwork(t, 3)
	tracker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "d8:intervali60e5:peers0:e")
	}))
	defer tracker.Close()
	for range 3 {
		c, err := NewClient(Config{ListenAddr: "127.0.0.1:0", StateDir: "-", DHTBootstrap: nodes[:1]})
		if err != nil {
			t.Fatal(err)
		}
		tor, err := c.Open(t.Context(), "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&tr="+url.QueryEscape(tracker.URL+"/announce"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		tor.WaitMetadata(ctx) // no peer: it times out, the fetch goes on
		cancel()
		tor.mu.Lock()
		f := tor.fetch
		tor.mu.Unlock()
		if f == nil {
			t.Fatal("no fetch")
		}
		c.Close()
		select {
		case <-f.exited:
		default:
			t.Fatal("Close returned before the metadata fetch's goroutines ended")
		}
	}
}

// TestDHTPortFromMetadataFetch: the connections of a magnet link's
// metadata fetch send our PORT message too, so a peer asked only for the
// metadata learns our DHT node.
func TestDHTPortFromMetadataFetch(t *testing.T) {
	mi, src := makeTorrent(t, "dhtportmeta", 32<<10, testFile{"a", 64 << 10})
	seeder := dhtClient(t, "")
	ts, _ := seeder.Add(mi)
	if err := ts.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	leecher := dhtClient(t, "")
	tor, err := leecher.Open(t.Context(), "magnet:?xt=urn:btih:"+mi.InfoHash.String())
	if err != nil {
		t.Fatal(err)
	}
	tor.AddPeers(clientAddr(seeder))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tor.WaitMetadata(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !hasNode(seeder.DHT(), leecher.DHT().Addr()) {
		if time.Now().After(deadline) {
			t.Fatalf("the seeder's DHT nodes after the metadata fetch: %v", seeder.DHT().Nodes())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
