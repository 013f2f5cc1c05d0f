package dht

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// newTestServer starts a Server on loopback with test-friendly limits.
func newTestServer(t *testing.T, bootstrap ...string) *Server {
	t.Helper()
	s, err := NewServer(Config{
		Addr:         "127.0.0.1:0",
		Bootstrap:    bootstrap,
		QueryTimeout: 300 * time.Millisecond,
		RateLimit:    rate.Inf, // every node of the test shares 127.0.0.1
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addrOf(s *Server) netip.AddrPort {
	return s.Addr().(*net.UDPAddr).AddrPort()
}

// checkNoLeaks fails if goroutines started during the test outlive it.
func checkNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		// Runs after the servers' Close cleanups (registered later).
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	})
}

// startNetwork starts n servers bootstrapped to each other through the
// first three.
func startNetwork(t *testing.T, n int) []*Server {
	t.Helper()
	first := newTestServer(t)
	srvs := []*Server{first}
	for range n - 1 {
		var boot []string
		for _, s := range srvs[:min(3, len(srvs))] {
			boot = append(boot, addrOf(s).String())
		}
		srvs = append(srvs, newTestServer(t, boot...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Bootstrap twice so the early nodes learn of the later ones too.
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
	return srvs
}

func TestPing(t *testing.T) {
	checkNoLeaks(t)
	a, b := newTestServer(t), newTestServer(t)
	ctx := context.Background()
	id, err := a.Ping(ctx, addrOf(b))
	if err != nil {
		t.Fatal(err)
	}
	if id != b.ID() {
		t.Fatalf("ping returned id %s, want %s", id, b.ID())
	}
	if got := a.Nodes(); len(got) != 1 || got[0].ID != b.ID() {
		t.Fatalf("a's table: %v", got)
	}
	// b heard a's query; a has never answered b, but is in b's table.
	if b.NumNodes() != 1 {
		t.Fatalf("b's table has %d nodes", b.NumNodes())
	}
}

func TestPingTimeout(t *testing.T) {
	checkNoLeaks(t)
	a := newTestServer(t)
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	_, err = a.Ping(context.Background(), hole.LocalAddr().(*net.UDPAddr).AddrPort())
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("ping of a silent address: %v, want ErrTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Ping(ctx, hole.LocalAddr().(*net.UDPAddr).AddrPort()); !errors.Is(err, context.Canceled) {
		t.Fatalf("ping with a cancelled context: %v", err)
	}
}

func TestAnnounceAndGetPeers(t *testing.T) {
	checkNoLeaks(t)
	srvs := startNetwork(t, 20)
	for _, s := range srvs {
		if s.NumNodes() < K {
			t.Errorf("%s knows only %d nodes", s.Addr(), s.NumNodes())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ih := metainfo.Hash(RandomID())
	if _, err := srvs[5].Announce(ctx, ih, 6881); err != nil {
		t.Fatal(err)
	}
	// Port 0: implied_port, the announcing node's UDP port is used.
	if _, err := srvs[9].Announce(ctx, ih, 0); err != nil {
		t.Fatal(err)
	}
	peers, err := srvs[17].GetPeers(ctx, ih)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:6881"), addrOf(srvs[9])} {
		if !slices.Contains(peers, want) {
			t.Errorf("GetPeers = %v, missing %v", peers, want)
		}
	}

	// An unknown info hash yields no peers, and no error.
	peers, err = srvs[3].GetPeers(ctx, metainfo.Hash(RandomID()))
	if err != nil || len(peers) != 0 {
		t.Errorf("GetPeers(unknown) = %v, %v", peers, err)
	}

	// FindNode converges on the K closest nodes of the network.
	target := RandomID()
	got, err := srvs[11].FindNode(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	var ids []ID
	for _, s := range srvs {
		if s != srvs[11] {
			ids = append(ids, s.ID())
		}
	}
	slices.SortFunc(ids, target.cmpDist)
	var gotIDs []ID
	for _, n := range got {
		gotIDs = append(gotIDs, n.ID)
	}
	if !slices.Equal(gotIDs, ids[:K]) {
		t.Errorf("FindNode found %v\nwant %v", gotIDs, ids[:K])
	}
}

func TestSavedNodes(t *testing.T) {
	checkNoLeaks(t)
	srvs := startNetwork(t, 10)
	saved := srvs[4].Nodes()
	if len(saved) == 0 {
		t.Fatal("no nodes to save")
	}
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Nodes: saved, QueryTimeout: 300 * time.Millisecond, RateLimit: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.NumNodes() < K {
		t.Fatalf("restarted node knows %d nodes", s.NumNodes())
	}
}

func TestNoBootstrap(t *testing.T) {
	checkNoLeaks(t)
	s := newTestServer(t)
	if err := s.Bootstrap(context.Background()); !errors.Is(err, ErrNoNodes) {
		t.Fatalf("Bootstrap with nothing: %v", err)
	}
	if _, err := s.GetPeers(context.Background(), metainfo.Hash{}); !errors.Is(err, ErrNoNodes) {
		t.Fatalf("GetPeers with nothing: %v", err)
	}
}

// rawClient is a UDP socket speaking KRPC by hand.
type rawClient struct {
	t    *testing.T
	conn net.PacketConn
}

func newRawClient(t *testing.T) *rawClient {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t, c}
}

func (c *rawClient) send(to netip.AddrPort, b []byte) {
	if _, err := c.conn.WriteTo(b, net.UDPAddrFromAddrPort(to)); err != nil {
		c.t.Fatal(err)
	}
}

// roundTrip sends m and returns the reply, or false after a timeout.
func (c *rawClient) roundTrip(to netip.AddrPort, m Msg) (Msg, bool) {
	b, err := m.Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(to, b)
	buf := make([]byte, 65536)
	c.conn.SetReadDeadline(time.Now().Add(time.Second))
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return Msg{}, false
		}
		r, err := ParseMsg(buf[:n])
		if err == nil && r.TxID == m.TxID {
			return r, true
		}
	}
}

func TestServerQueries(t *testing.T) {
	checkNoLeaks(t)
	s := newTestServer(t)
	to := addrOf(s)
	c := newRawClient(t)
	me := RandomID()
	ih := RandomID()

	gp, ok := c.roundTrip(to, Msg{TxID: "g1", Kind: KindQuery, Method: MethodGetPeers, Args: Args{ID: me, InfoHash: ih}})
	if !ok || gp.Kind != KindResponse || gp.Reply.Token == "" || gp.Reply.ID != s.ID() {
		t.Fatalf("get_peers reply %+v", gp)
	}
	tests := []struct {
		name     string
		q        Msg
		wantKind string
		wantCode int
	}{
		{"ping", Msg{TxID: "p", Kind: KindQuery, Method: MethodPing, Args: Args{ID: me}}, KindResponse, 0},
		{"find_node", Msg{TxID: "f", Kind: KindQuery, Method: MethodFindNode, Args: Args{ID: me, Target: ih}}, KindResponse, 0},
		{"announce with a forged token", Msg{TxID: "a1", Kind: KindQuery, Method: MethodAnnouncePeer,
			Args: Args{ID: me, InfoHash: ih, Port: 1234, Token: "forged"}}, KindError, CodeProtocol},
		{"announce", Msg{TxID: "a2", Kind: KindQuery, Method: MethodAnnouncePeer,
			Args: Args{ID: me, InfoHash: ih, Port: 1234, Token: gp.Reply.Token}}, KindResponse, 0},
		{"unknown method", Msg{TxID: "u", Kind: KindQuery, Method: "sample_infohashes", Args: Args{ID: me}}, KindError, CodeMethodUnknown},
	}
	for _, tc := range tests {
		r, ok := c.roundTrip(to, tc.q)
		if !ok {
			t.Errorf("%s: no reply", tc.name)
			continue
		}
		if r.Kind != tc.wantKind || (tc.wantCode != 0 && (r.Err == nil || r.Err.Code != tc.wantCode)) {
			t.Errorf("%s: reply %+v (err %+v)", tc.name, r, r.Err)
		}
	}
	gp, _ = c.roundTrip(to, Msg{TxID: "g2", Kind: KindQuery, Method: MethodGetPeers, Args: Args{ID: me, InfoHash: ih}})
	want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 1234)
	if !slices.Equal(gp.Reply.Values, []netip.AddrPort{want}) {
		t.Fatalf("values after announce: %v, want %v", gp.Reply.Values, want)
	}
}

func TestMalformedIgnored(t *testing.T) {
	checkNoLeaks(t)
	s := newTestServer(t)
	to := addrOf(s)
	c := newRawClient(t)
	junk := [][]byte{
		nil,
		[]byte("hello"),
		[]byte("d1:t2:aa1:y1:qe"),
		[]byte("d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe"),
		[]byte("d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:zz1:y1:re"), // unsolicited response
		make([]byte, 30000), // oversized
		[]byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:q" + string(make([]byte, 100))),
	}
	for _, b := range junk {
		c.send(to, b)
	}
	if _, ok := c.roundTrip(to, Msg{TxID: "ok", Kind: KindQuery, Method: MethodPing, Args: Args{ID: RandomID()}}); !ok {
		t.Fatal("server stopped answering after junk")
	}
	st := s.Stats()
	if st.Malformed < 4 || st.Oversized != 1 || st.Unsolicited != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestRateLimit(t *testing.T) {
	checkNoLeaks(t)
	s, err := NewServer(Config{Addr: "127.0.0.1:0", RateLimit: 1, RateBurst: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newRawClient(t)
	b, _ := (&Msg{TxID: "p", Kind: KindQuery, Method: MethodPing, Args: Args{ID: RandomID()}}).Marshal()
	for range 50 {
		c.send(addrOf(s), b)
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.Stats().Answered+s.Stats().RateLimited < 50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.Stats(); st.Answered > 10 || st.RateLimited < 40 {
		t.Errorf("stats after a burst of 50: %+v", st)
	}
}

// hostileNode answers every query with the closest-looking bogus nodes it
// can fit, pointing at a socket that never answers, and also sends an
// oversized datagram of thousands of nodes and a burst of unsolicited
// replies.
func hostileNode(t *testing.T, holes []netip.AddrPort) netip.AddrPort {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { conn.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			q, err := ParseMsg(buf[:n])
			if err != nil || q.Kind != KindQuery {
				continue
			}
			target := q.Args.Target
			if q.Method == MethodGetPeers {
				target = q.Args.InfoHash
			}
			bogus := func(n int) []Node {
				var ns []Node
				for i := range n {
					id := target
					id[IDLen-1] ^= byte(i + 1)
					id[IDLen-2] ^= byte(i >> 8)
					ns = append(ns, Node{ID: id, Addr: holes[i%len(holes)]})
				}
				return ns
			}
			// Thousands of nodes in one 52 KB datagram.
			big, _ := (&Msg{TxID: q.TxID, Kind: KindResponse, Reply: Reply{ID: target, Nodes: bogus(2000)}}).Marshal()
			conn.WriteTo(big, from)
			// Unsolicited replies.
			for i := range 50 {
				m, _ := (&Msg{TxID: string(rune('A' + i)), Kind: KindResponse, Reply: Reply{ID: target, Nodes: bogus(50)}}).Marshal()
				conn.WriteTo(m, from)
			}
			// A reply that fits, full of bogus nodes closer than anyone.
			m, _ := (&Msg{TxID: q.TxID, Kind: KindResponse, Reply: Reply{ID: target, Token: "x", Nodes: bogus(70)}}).Marshal()
			conn.WriteTo(m, from)
		}
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestHostileNode(t *testing.T) {
	checkNoLeaks(t)
	srvs := startNetwork(t, 12)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ih := metainfo.Hash(RandomID())
	if _, err := srvs[2].Announce(ctx, ih, 7000); err != nil {
		t.Fatal(err)
	}

	var holes []netip.AddrPort
	for range 16 {
		h, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		holes = append(holes, h.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	evil := hostileNode(t, holes)

	victim := newTestServer(t, evil.String(), addrOf(srvs[0]).String())
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	peers, err := victim.GetPeers(ctx, ih)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(peers, netip.MustParseAddrPort("127.0.0.1:7000")) {
		t.Fatalf("GetPeers through a hostile node = %v", peers)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("lookup took %v; heap %d → %d KiB; stats %+v", elapsed, before.HeapAlloc>>10, after.HeapAlloc>>10, victim.Stats())
	if elapsed > 10*time.Second {
		t.Errorf("lookup stalled: %v", elapsed)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Errorf("heap grew by %d bytes", grew)
	}
	for _, n := range victim.Nodes() {
		if slices.Contains(holes, n.Addr) {
			t.Errorf("bogus node %v entered the routing table", n)
		}
	}
	if st := victim.Stats(); st.Oversized == 0 || st.Unsolicited == 0 {
		t.Errorf("hostile traffic not seen: %+v", st)
	}
}

// TestGetPeersFuncStreams: the peers of each reply reach found as they
// come, before the lookup ends waiting on a dead node (here the node
// closest to the info hash, so that the lookup must ask it).
func TestGetPeersFuncStreams(t *testing.T) {
	checkNoLeaks(t)
	srvs := startNetwork(t, 8)
	dead := srvs[5]
	hash := metainfo.Hash(dead.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := srvs[2].Announce(ctx, hash, 7000); err != nil {
		t.Fatal(err)
	}
	dead.Close()
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Bootstrap: []string{addrOf(srvs[0]).String()},
		QueryTimeout: 2 * time.Second, RateLimit: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	var first time.Duration
	var got []netip.AddrPort
	peers, err := s.GetPeersFunc(ctx, hash, func(ps []netip.AddrPort) {
		if first == 0 {
			first = time.Since(start)
		}
		got = append(got, ps...)
	})
	took := time.Since(start)
	want := netip.MustParseAddrPort("127.0.0.1:7000")
	if err != nil || !slices.Contains(peers, want) || !slices.Contains(got, want) {
		t.Fatalf("GetPeersFunc = %v, %v; found %v", peers, err, got)
	}
	if took < 2*time.Second {
		t.Fatalf("the lookup took %v: it did not wait for the dead node, so this shows nothing", took)
	}
	if first > time.Second {
		t.Fatalf("first peers after %v, the lookup after %v: not streamed", first, took)
	}
	t.Logf("first peers after %v, lookup done after %v", first, took)
}
