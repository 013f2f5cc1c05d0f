package dht_test

// Our DHT against independent implementations: aria2c's DHT,
// webtorrent's bittorrent-dht and libtorrent's, each joined to a DHT made
// of a few of our Servers on 127.0.0.1 and of nothing else
// (internal/swarmtest starts them). Each side announces and the other
// finds it, and our Servers must parse everything the other
// implementation sends them (a datagram they reject fails the test and
// is shown), as well as its replies to queries sent straight to it.
//
// Nothing here can reach beyond loopback: our Servers listen on
// 127.0.0.1 with no bootstrap but each other; the real nodes are given one
// of ours as their only bootstrap node and a fresh state (no saved routing
// table), their sockets are bound to 127.0.0.1 (from which the kernel
// sends to loopback only), the torrents have no trackers, and every node
// of the DHT they can learn about is one of these loopback nodes.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/aiotorrent/aiotorrent/dht"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// interopNodes is how many of our Servers make the DHT the real node joins.
const interopNodes = 6

var loopback = netip.MustParseAddr("127.0.0.1")

// ourNetwork starts n of our Servers on 127.0.0.1, bootstrapped to each
// other only, and fails the test at its end if any of them received a
// datagram it could not parse, showing the datagram.
func ourNetwork(t *testing.T, n int) []*dht.Server {
	t.Helper()
	var srvs []*dht.Server
	var taps []*tapConn
	for i := range n {
		var boot []string
		for _, s := range srvs[:min(3, i)] {
			boot = append(boot, s.Addr().String())
		}
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() }) // after the Server's Close
		tap := &tapConn{PacketConn: conn}
		s, err := dht.NewServer(dht.Config{
			Conn:      tap,
			Bootstrap: boot,     // loopback addresses only: never DefaultBootstrap
			RateLimit: rate.Inf, // every node, the real one too, is 127.0.0.1
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		srvs = append(srvs, s)
		taps = append(taps, tap)
	}
	// Registered after the Close cleanups, so it runs before them.
	t.Cleanup(func() {
		for i, s := range srvs {
			st := s.Stats()
			t.Logf("our node %d (%v): %d nodes, %+v", i, s.Addr(), s.NumNodes(), st)
			if st.Malformed != 0 || st.Oversized != 0 {
				t.Errorf("our node %d (%v) dropped %d malformed and %d oversized datagrams:\n%s",
					i, s.Addr(), st.Malformed, st.Oversized, strings.Join(taps[i].rejected(), "\n"))
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Twice, so that the first nodes learn of the later ones too.
	for range 2 {
		var wg sync.WaitGroup
		for _, s := range srvs[1:] {
			wg.Go(func() {
				if err := s.Bootstrap(ctx); err != nil {
					t.Errorf("bootstrap %s: %v", s.Addr(), err)
				}
			})
		}
		wg.Wait()
	}
	if t.Failed() {
		t.FailNow()
	}
	return srvs
}

// tapConn is a Server's socket that keeps the datagrams dht.ParseMsg
// rejects, with their source, to show them when a test fails.
type tapConn struct {
	net.PacketConn
	mu  sync.Mutex
	bad []string // guarded by mu
}

func (c *tapConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		var perr error
		if n > dht.MaxPacketSize {
			perr = fmt.Errorf("%d bytes, more than %d", n, dht.MaxPacketSize)
		} else {
			_, perr = dht.ParseMsg(b[:n])
		}
		if perr != nil {
			c.mu.Lock()
			if len(c.bad) < 20 {
				c.bad = append(c.bad, fmt.Sprintf("from %v: %v: %q", addr, perr, b[:n]))
			}
			c.mu.Unlock()
		}
	}
	return n, addr, err
}

func (c *tapConn) rejected() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.bad)
}

// probe sends ping, find_node and get_peers straight to the real node at
// addr from a socket of its own and fails the test unless each reply
// parses (dht.ParseMsg) as a response of a 20-byte id, with nodes or
// values and a token for get_peers. It returns the node's id.
func probe(t *testing.T, addr netip.AddrPort, infoHash metainfo.Hash) dht.ID {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	me := dht.RandomID()
	var id dht.ID
	buf := make([]byte, 64<<10)
	for i, q := range []dht.Msg{
		{Method: dht.MethodPing},
		{Method: dht.MethodFindNode, Args: dht.Args{Target: dht.RandomID()}},
		{Method: dht.MethodGetPeers, Args: dht.Args{InfoHash: dht.ID(infoHash)}},
	} {
		q.TxID, q.Kind, q.ReadOnly, q.Args.ID = fmt.Sprintf("p%d", i), dht.KindQuery, true, me
		b, err := q.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteToUDPAddrPort(b, addr); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("%s to %v: %v", q.Method, addr, err)
		}
		m, err := dht.ParseMsg(buf[:n])
		if err != nil {
			t.Fatalf("%s to %v: reply from %v does not parse: %v: %q", q.Method, addr, from, err, buf[:n])
		}
		if m.Kind != dht.KindResponse || m.TxID != q.TxID {
			t.Fatalf("%s to %v: reply %+v (%q)", q.Method, addr, m, buf[:n])
		}
		if q.Method == dht.MethodGetPeers && (m.Reply.Token == "" || len(m.Reply.Nodes)+len(m.Reply.Values) == 0) {
			t.Errorf("%s to %v: reply without a token, or without nodes and values: %+v (%q)", q.Method, addr, m, buf[:n])
		}
		if i > 0 && m.Reply.ID != id {
			t.Errorf("%s to %v: id %v, %v before", q.Method, addr, m.Reply.ID, id)
		}
		id = m.Reply.ID
	}
	return id
}

func addrOf(s *dht.Server) netip.AddrPort {
	ap := s.Addr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// storedAt asks each of srvs directly (one get_peers query each, not a
// lookup) for the peers of infoHash, and returns the indexes of those that
// list want: the nodes that stored an announce of it.
func storedAt(t *testing.T, srvs []*dht.Server, infoHash metainfo.Hash, want netip.AddrPort) []int {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var at []int
	buf := make([]byte, dht.MaxPacketSize)
	for i, s := range srvs {
		// Read-only (BEP 43): this socket does not join their tables.
		q := dht.Msg{TxID: "st", Kind: dht.KindQuery, Method: dht.MethodGetPeers, ReadOnly: true,
			Args: dht.Args{ID: dht.RandomID(), InfoHash: dht.ID(infoHash)}}
		b, err := q.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteToUDPAddrPort(b, addrOf(s)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("get_peers to our node %d: %v", i, err)
		}
		m, err := dht.ParseMsg(buf[:n])
		if err != nil || m.Kind != dht.KindResponse {
			t.Fatalf("get_peers to our node %d: %+v, %v", i, m, err)
		}
		if slices.Contains(m.Reply.Values, want) {
			at = append(at, i)
		}
	}
	return at
}

// makeTorrent writes a torrent of one random file of size bytes, with no
// tracker, and returns its path, the folder holding the file, and the
// file's content.
func makeTorrent(t *testing.T, size int) (torrentPath, dataDir string, mi *metainfo.MetaInfo, content []byte) {
	t.Helper()
	dir := t.TempDir()
	dataDir = filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	content = make([]byte, size)
	rand.Read(content)
	file := filepath.Join(dataDir, "dht-interop.bin")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Create(context.Background(), file, metainfo.CreateOptions{PieceLength: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(mi.Trackers()) != 0 {
		t.Fatalf("torrent has trackers: %v", mi.Trackers())
	}
	enc, err := mi.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	torrentPath = filepath.Join(dir, "dht-interop.torrent")
	if err := os.WriteFile(torrentPath, enc, 0o644); err != nil {
		t.Fatal(err)
	}
	return torrentPath, dataDir, mi, content
}

// waitPeer runs GetPeers on s until it returns want, or fails the test
// after timeout.
func waitPeer(t *testing.T, s *dht.Server, infoHash metainfo.Hash, want netip.AddrPort, timeout time.Duration, logs func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var peers []netip.AddrPort
	var err error
	for {
		peers, err = s.GetPeers(ctx, infoHash)
		if slices.Contains(peers, want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("our node %v did not find %v in %v: last GetPeers = %v, %v\n%s", s.Addr(), want, timeout, peers, err, logs())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// TestInteropOurNodesFindAria2: aria2c seeds a torrent with its DHT on,
// joined through one of our nodes; it announces its TCP port into our
// nodes, and another of ours finds it.
func TestInteropOurNodesFindAria2(t *testing.T) {
	srvs := ourNetwork(t, interopNodes)
	torrentPath, dataDir, mi, _ := makeTorrent(t, 64<<10)
	start := time.Now()
	a := swarmtest.Aria2DHTSeed(t, torrentPath, dataDir, addrOf(srvs[0]))
	want := netip.AddrPortFrom(loopback, uint16(a.Port()))
	waitPeer(t, srvs[len(srvs)-1], mi.InfoHash, want, 60*time.Second, a.Logs)
	t.Logf("our node found aria2c's announce after %v", time.Since(start).Round(time.Millisecond))
	// aria2c does not list itself in its get_peers replies: what was
	// found, our nodes stored.
	if at := storedAt(t, srvs, mi.InfoHash, want); len(at) == 0 {
		t.Errorf("none of our nodes stored aria2c's announce of %v", want)
	} else {
		t.Logf("stored by our nodes %v", at)
	}
	// And its replies to our queries parse.
	probe(t, netip.AddrPortFrom(loopback, uint16(a.DHTPort())), mi.InfoHash)
}

// TestInteropAria2FindsOurPeers: a seeder (aria2c with its DHT off) is
// announced into our DHT by one of our nodes, and aria2c, given only a
// magnet link with no tracker and one of our nodes as its DHT entry
// point, finds it there and downloads the torrent from it.
func TestInteropAria2FindsOurPeers(t *testing.T) {
	srvs := ourNetwork(t, interopNodes)
	torrentPath, dataDir, mi, content := makeTorrent(t, 64<<10)
	seed := swarmtest.Aria2Seed(t, torrentPath, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	seederAddr := netip.AddrPortFrom(loopback, uint16(seed.Port()))
	if _, err := srvs[3].Announce(ctx, mi.InfoHash, seederAddr.Port()); err != nil {
		t.Fatal(err)
	}
	magnet := mi.Magnet()
	if len(magnet.Trackers) != 0 || len(magnet.Peers) != 0 {
		t.Fatalf("magnet link has trackers or peers: %s", magnet)
	}
	start := time.Now()
	out := t.TempDir()
	l := swarmtest.Aria2DHTLeech(t, magnet.String(), out, addrOf(srvs[0]))
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("aria2c downloaded %s through our DHT in %v", magnet, time.Since(start).Round(time.Millisecond))
	got, err := os.ReadFile(filepath.Join(out, mi.Info.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("aria2c downloaded %d bytes that differ from the %d seeded", len(got), len(content))
	}
}

// TestInteropBittorrentDHT: a bittorrent-dht node joins our DHT; what it
// announces our nodes find, and what ours announce it finds, with an
// explicit port and with implied_port.
func TestInteropBittorrentDHT(t *testing.T) {
	srvs := ourNetwork(t, interopNodes)
	start := time.Now()
	js := swarmtest.BittorrentDHT(t, addrOf(srvs[0]))
	t.Logf("bittorrent-dht %v ready after %v", js.Addr(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if w := js.Warnings(); len(w) > 0 {
			t.Errorf("bittorrent-dht warnings:\n%q\n%s", w, js.Logs())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	nodes, err := js.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ours := map[netip.AddrPort]bool{}
	for _, s := range srvs {
		ours[addrOf(s)] = true
	}
	known := 0
	for _, n := range nodes {
		_, addr, _ := strings.Cut(n, "@")
		if ap, err := netip.ParseAddrPort(addr); err == nil && ours[ap] {
			known++
		}
	}
	t.Logf("bittorrent-dht's table: %d nodes, %d of ours", len(nodes), known)
	if known < 2 {
		t.Errorf("bittorrent-dht knows %d of our %d nodes after bootstrapping: %v", known, len(srvs), nodes)
	}

	t.Run("OursFindTheirs", func(t *testing.T) {
		ih := metainfo.Hash(dht.RandomID())
		want := netip.AddrPortFrom(loopback, 6881)
		if _, _, err := js.Announce(ctx, ih, int(want.Port())); err != nil {
			t.Fatal(err)
		}
		waitPeer(t, srvs[len(srvs)-1], ih, want, 10*time.Second, js.Logs)
		if at := storedAt(t, srvs, ih, want); len(at) == 0 {
			t.Errorf("none of our nodes stored bittorrent-dht's announce of %v", want)
		}
	})
	t.Run("OursFindTheirsImpliedPort", func(t *testing.T) {
		ih := metainfo.Hash(dht.RandomID())
		if _, _, err := js.Announce(ctx, ih, 0); err != nil {
			t.Fatal(err)
		}
		waitPeer(t, srvs[1], ih, js.Addr(), 10*time.Second, js.Logs)
	})
	// theirsFind looks infoHash up from the bittorrent-dht node and fails
	// unless one of our nodes gave it want.
	theirsFind := func(t *testing.T, ih metainfo.Hash, want netip.AddrPort) {
		t.Helper()
		peers, visited, err := js.Lookup(ctx, ih)
		if err != nil {
			t.Fatal(err)
		}
		var from []netip.AddrPort
		for _, p := range peers {
			if p.Addr == want && ours[p.From] {
				from = append(from, p.From)
			}
		}
		if len(from) == 0 {
			t.Fatalf("bittorrent-dht's lookup (%d nodes answered) found %v, want %v from one of our nodes", visited, peers, want)
		}
		t.Logf("bittorrent-dht got %v from %d of our nodes (%d answered)", want, len(from), visited)
	}
	t.Run("TheirsFindOurs", func(t *testing.T) {
		ih := metainfo.Hash(dht.RandomID())
		want := netip.AddrPortFrom(loopback, 7001)
		if _, err := srvs[4].Announce(ctx, ih, want.Port()); err != nil {
			t.Fatal(err)
		}
		theirsFind(t, ih, want)
		// Our announce_peer reached it, and it took it.
		if got := js.Announced(ih); !slices.Contains(got, want.String()) {
			t.Errorf("bittorrent-dht received announces %v, want %v among them", got, want)
		}
	})
	t.Run("TheirsFindOursImpliedPort", func(t *testing.T) {
		ih := metainfo.Hash(dht.RandomID())
		if _, err := srvs[2].Announce(ctx, ih, 0); err != nil {
			t.Fatal(err)
		}
		theirsFind(t, ih, addrOf(srvs[2]))
	})
	// Last: bittorrent-dht ignores "ro" and keeps the probing socket in its
	// table, so lookups after this one would wait for it to time out.
	if id := probe(t, js.Addr(), metainfo.Hash(dht.RandomID())); id.String() != js.ID() {
		t.Errorf("bittorrent-dht answered with id %v, it says its id is %s", id, js.ID())
	}
}

// TestInteropOurNodesFindLibtorrent: libtorrent seeds a torrent with its
// DHT on, bootstrapped from one of our nodes only; it announces its port
// into our nodes, and another of ours finds it.
func TestInteropOurNodesFindLibtorrent(t *testing.T) {
	swarmtest.RequireLibtorrent(t)
	srvs := ourNetwork(t, interopNodes)
	torrentPath, dataDir, mi, _ := makeTorrent(t, 64<<10)
	start := time.Now()
	lt := swarmtest.LibtorrentWith(t, torrentPath, dataDir, swarmtest.LTOptions{
		Seed:         true,
		DHTBootstrap: addrOf(srvs[0]).String(),
	})
	waitPeer(t, srvs[len(srvs)-1], mi.InfoHash, lt.Addr(), 60*time.Second, lt.Logs)
	t.Logf("our node found libtorrent's announce after %v", time.Since(start).Round(time.Millisecond))
	// libtorrent lists itself in its own get_peers replies, so the lookup
	// would find it even if our nodes had refused its announce: ask them.
	if at := storedAt(t, srvs, mi.InfoHash, lt.Addr()); len(at) == 0 {
		t.Errorf("none of our nodes stored libtorrent's announce of %v", lt.Addr())
	} else {
		t.Logf("stored by our nodes %v", at)
	}
	// libtorrent's DHT shares its listening port, over UDP.
	probe(t, lt.Addr(), mi.InfoHash)
}

// TestInteropLibtorrentFindsOurPeers: a seeder (libtorrent with its DHT
// off) is announced into our DHT by one of our nodes, and a libtorrent
// leecher, with no tracker and its DHT bootstrapped from one of our nodes
// only, finds it there and downloads the torrent from it.
func TestInteropLibtorrentFindsOurPeers(t *testing.T) {
	swarmtest.RequireLibtorrent(t)
	srvs := ourNetwork(t, interopNodes)
	torrentPath, dataDir, mi, content := makeTorrent(t, 64<<10)
	seed := swarmtest.Libtorrent(t, torrentPath, dataDir, true)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := srvs[3].Announce(ctx, mi.InfoHash, seed.Addr().Port()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := t.TempDir()
	l := swarmtest.LibtorrentWith(t, torrentPath, out, swarmtest.LTOptions{DHTBootstrap: addrOf(srvs[0]).String()})
	fromDHT := func(s swarmtest.LTStatus) bool {
		p, ok := s.Peer(seed.Addr())
		return ok && slices.Contains(p.Source, "dht")
	}
	if err := l.WaitFor(ctx, fromDHT); err != nil {
		t.Fatalf("libtorrent did not connect to the seeder through the DHT: %v", err)
	}
	t.Logf("libtorrent connected to the seeder it found in our DHT after %v", time.Since(start).Round(time.Millisecond))
	if err := l.WaitComplete(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, mi.Info.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("libtorrent downloaded %d bytes that differ from the %d seeded", len(got), len(content))
	}
	t.Logf("libtorrent downloaded through our DHT in %v", time.Since(start).Round(time.Millisecond))
}
