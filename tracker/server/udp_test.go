package server

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// Packets of BEP 15, built here by hand.

func connectPacket(tid uint32) []byte {
	b := binary.BigEndian.AppendUint64(nil, 0x41727101980)
	b = binary.BigEndian.AppendUint32(b, 0)
	return binary.BigEndian.AppendUint32(b, tid)
}

type udpAnn struct {
	connID  uint64
	tid     uint32
	hash    metainfo.Hash
	id      tracker.PeerID
	left    int64
	event   uint32
	ip      [4]byte
	numWant int32
	port    uint16
}

func (a udpAnn) packet() []byte {
	b := binary.BigEndian.AppendUint64(nil, a.connID)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, a.tid)
	b = append(b, a.hash[:]...)
	b = append(b, a.id[:]...)
	b = binary.BigEndian.AppendUint64(b, 0) // downloaded
	b = binary.BigEndian.AppendUint64(b, uint64(a.left))
	b = binary.BigEndian.AppendUint64(b, 0) // uploaded
	b = binary.BigEndian.AppendUint32(b, a.event)
	b = append(b, a.ip[:]...)
	b = binary.BigEndian.AppendUint32(b, 0x1234) // key
	b = binary.BigEndian.AppendUint32(b, uint32(a.numWant))
	return binary.BigEndian.AppendUint16(b, a.port)
}

func scrapePacket(connID uint64, tid uint32, hashes ...metainfo.Hash) []byte {
	b := binary.BigEndian.AppendUint64(nil, connID)
	b = binary.BigEndian.AppendUint32(b, 2)
	b = binary.BigEndian.AppendUint32(b, tid)
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

// udpReply is a decoded reply.
type udpReply struct {
	action, tid uint32
	body        []byte
}

func parseUDPReply(t *testing.T, b []byte) udpReply {
	t.Helper()
	if len(b) < 8 {
		t.Fatalf("reply of %d bytes", len(b))
	}
	return udpReply{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), b[8:]}
}

// udpExchange sends pkt to to and returns the reply, or nil if none came
// within a short while.
func udpExchange(t *testing.T, c net.PacketConn, to net.Addr, pkt []byte) []byte {
	t.Helper()
	if _, err := c.WriteTo(pkt, to); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 4096)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		t.Fatal(err)
	}
	return buf[:n]
}

// udpServer serves s on a UDP socket of network ("udp4" or "udp6") at
// addr, until the test ends.
func udpServer(t *testing.T, s *Server, network, addr string) (server net.Addr, client net.PacketConn) {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		if network == "udp6" {
			t.Skipf("cannot listen on %s: %v", addr, err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.ServeUDP(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeUDP: %v", err)
		}
	})
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return pc.LocalAddr(), c
}

// connect gets a connection id.
func connect(t *testing.T, c net.PacketConn, to net.Addr) uint64 {
	t.Helper()
	r := parseUDPReply(t, udpExchange(t, c, to, connectPacket(99)))
	if r.action != 0 || r.tid != 99 || len(r.body) != 8 {
		t.Fatalf("connect reply %+v", r)
	}
	return binary.BigEndian.Uint64(r.body)
}

// annReply decodes an announce reply of size-byte peer entries.
type annReply struct {
	interval, leechers, seeders uint32
	peers                       []netip.AddrPort
}

func parseAnnReply(t *testing.T, b []byte, tid uint32, size int) annReply {
	t.Helper()
	r := parseUDPReply(t, b)
	if r.action != 1 || r.tid != tid || len(r.body) < 12 {
		t.Fatalf("announce reply: action %d tid %d %q", r.action, r.tid, r.body)
	}
	return annReply{
		interval: binary.BigEndian.Uint32(r.body),
		leechers: binary.BigEndian.Uint32(r.body[4:]),
		seeders:  binary.BigEndian.Uint32(r.body[8:]),
		peers:    compactPeers(t, r.body[12:], size),
	}
}

func TestUDPAnnounceAndScrape(t *testing.T) {
	s := New(Config{Interval: 90 * time.Second})
	srv, c := udpServer(t, s, "udp4", "127.0.0.1:0")
	cid := connect(t, c, srv)
	h := testHash(1)
	lo := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port) }
	ann := func(a udpAnn) annReply {
		t.Helper()
		a.connID, a.hash = cid, h
		return parseAnnReply(t, udpExchange(t, c, srv, a.packet()), a.tid, 6)
	}

	r := ann(udpAnn{tid: 1, id: testID(1), left: 10, event: 2, numWant: -1, port: 1001})
	if r.interval != 90 || r.leechers != 1 || r.seeders != 0 || len(r.peers) != 0 {
		t.Errorf("first: %+v", r)
	}
	r = ann(udpAnn{tid: 2, id: testID(2), left: 0, event: 2, numWant: -1, port: 1002})
	if !slices.Equal(r.peers, []netip.AddrPort{lo(1001)}) || r.leechers != 1 || r.seeders != 1 {
		t.Errorf("second: %+v", r)
	}
	r = ann(udpAnn{tid: 3, id: testID(1), left: 10, numWant: 10, port: 1001})
	if !slices.Equal(r.peers, []netip.AddrPort{lo(1002)}) {
		t.Errorf("first again: %+v", r)
	}
	// A seeder is not given the other seeder.
	r = ann(udpAnn{tid: 4, id: testID(3), left: 0, event: 1, numWant: -1, port: 1003})
	if !slices.Equal(r.peers, []netip.AddrPort{lo(1001)}) || r.seeders != 2 {
		t.Errorf("seeder: %+v", r)
	}
	// The IP field is believed from loopback.
	r = ann(udpAnn{tid: 5, id: testID(4), left: 5, ip: [4]byte{10, 9, 8, 7}, numWant: 0, port: 1004})
	if len(r.peers) != 0 || r.leechers != 2 {
		t.Errorf("numwant 0: %+v", r)
	}
	r = ann(udpAnn{tid: 6, id: testID(1), left: 10, event: 3, numWant: -1, port: 1001}) // stopped
	if r.leechers != 1 || r.seeders != 2 {
		t.Errorf("stopped: %+v", r)
	}
	r = ann(udpAnn{tid: 7, id: testID(3), left: 0, numWant: -1, port: 1003})
	want := netip.MustParseAddrPort("10.9.8.7:1004")
	if !slices.Equal(r.peers, []netip.AddrPort{want}) {
		t.Errorf("after stop: %+v, want only %v", r, want)
	}

	// Scrape: counts in order, zeros for the unknown.
	sr := parseUDPReply(t, udpExchange(t, c, srv, scrapePacket(cid, 8, h, testHash(2), h)))
	if sr.action != 2 || sr.tid != 8 || len(sr.body) != 36 {
		t.Fatalf("scrape reply %+v", sr)
	}
	var got []uint32
	for i := 0; i < len(sr.body); i += 4 {
		got = append(got, binary.BigEndian.Uint32(sr.body[i:]))
	}
	if w := []uint32{2, 1, 1, 0, 0, 0, 2, 1, 1}; !slices.Equal(got, w) {
		t.Errorf("scrape counts %v, want %v", got, w)
	}
	if st := s.Stats(); st.Announces != 7 || st.Scrapes != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestUDPMalformed sends bad packets to a running server: each gets an
// error reply naming its transaction, or nothing when too short to carry
// one, and the server keeps serving.
func TestUDPMalformed(t *testing.T) {
	s := New(Config{Whitelist: func(h metainfo.Hash) bool { return h != testHash(9) }})
	srv, c := udpServer(t, s, "udp4", "127.0.0.1:0")
	cid := connect(t, c, srv)
	good := udpAnn{connID: cid, tid: 5, hash: testHash(1), id: testID(1), left: 1, numWant: -1, port: 1}
	with := func(f func(*udpAnn)) []byte { a := good; f(&a); return a.packet() }
	header := func(connID uint64, action, tid uint32) []byte {
		b := binary.BigEndian.AppendUint64(nil, connID)
		b = binary.BigEndian.AppendUint32(b, action)
		return binary.BigEndian.AppendUint32(b, tid)
	}
	hashes := func(n int) []metainfo.Hash { return make([]metainfo.Hash, n) }
	tests := []struct {
		name string
		pkt  []byte
		want string // error message; "" expects no reply
	}{
		{"empty", []byte{}, ""},
		{"one byte", []byte{0}, ""},
		{"15 bytes", connectPacket(5)[:15], ""},
		{"connect bad magic", header(0x41727101981, 0, 5), "bad protocol id"},
		{"wrong action", header(cid, 7, 5), "unknown action"},
		{"error action from client", header(cid, 3, 5), "unknown action"},
		{"wrong action bad id", header(cid+1, 7, 5), "bad connection id"},
		{"announce bad connection id", with(func(a *udpAnn) { a.connID++ }), "bad connection id"},
		{"announce with the magic as id", with(func(a *udpAnn) { a.connID = 0x41727101980 }), "bad connection id"},
		{"announce header only", header(cid, 1, 5), "short announce"},
		{"announce 97 bytes", good.packet()[:97], "short announce"},
		{"announce port 0", with(func(a *udpAnn) { a.port = 0 }), "bad port"},
		{"announce bad event", with(func(a *udpAnn) { a.event = 4 }), "bad event"},
		{"announce not whitelisted", with(func(a *udpAnn) { a.hash = testHash(9) }), "torrent not tracked here"},
		{"scrape no hash", scrapePacket(cid, 5), "malformed scrape"},
		{"scrape truncated", scrapePacket(cid, 5, testHash(1))[:16+19], "malformed scrape"},
		{"scrape one and a half", scrapePacket(cid, 5, testHash(1), testHash(2))[:16+30], "malformed scrape"},
		{"scrape 75 hashes", scrapePacket(cid, 5, hashes(75)...), "too many info hashes"},
		{"scrape bad connection id", scrapePacket(cid^1, 5, testHash(1)), "bad connection id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := udpExchange(t, c, srv, tt.pkt)
			if tt.want == "" {
				if reply != nil {
					t.Errorf("got reply %x, want none", reply)
				}
			} else {
				r := parseUDPReply(t, reply)
				if r.action != 3 || r.tid != 5 || string(r.body) != tt.want {
					t.Errorf("got action %d tid %d %q, want error %q", r.action, r.tid, r.body, tt.want)
				}
				if len(reply) > maxUDPReply {
					t.Errorf("reply of %d bytes", len(reply))
				}
			}
			// Still serving.
			if r := parseAnnReply(t, udpExchange(t, c, srv, good.packet()), 5, 6); r.leechers != 1 {
				t.Errorf("good announce after: %+v", r)
			}
		})
	}
	// Longer packets than needed are fine (BEP 41 options follow an
	// announce); a scrape of 74 torrents is answered.
	if r := parseAnnReply(t, udpExchange(t, c, srv, append(good.packet(), 2, 0, 1)), 5, 6); r.leechers != 1 {
		t.Errorf("announce with options: %+v", r)
	}
	r := parseUDPReply(t, udpExchange(t, c, srv, scrapePacket(cid, 6, hashes(74)...)))
	if r.action != 2 || len(r.body) != 74*12 {
		t.Errorf("scrape of 74: action %d, %d bytes", r.action, len(r.body))
	}
}

// TestUDPConnectionIDWindows: an id is good in its window and the next,
// not after, and only for the address it was given to.
func TestUDPConnectionIDWindows(t *testing.T) {
	s := New(Config{})
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // a window boundary
	now := start
	s.now = func() time.Time { return now }
	from := netip.MustParseAddrPort("192.0.2.1:5000")
	buf := make([]byte, 0, maxUDPReply)
	r := parseUDPReply(t, s.handleUDP(connectPacket(1), from, buf))
	cid := binary.BigEndian.Uint64(r.body)

	tests := []struct {
		after time.Duration
		from  string
		ok    bool
	}{
		{0, "192.0.2.1:5000", true},
		{0, "192.0.2.1:6000", true}, // another source port: same client
		{0, "[::ffff:192.0.2.1]:5000", true},
		{0, "192.0.2.2:5000", false},
		{0, "[2001:db8::1]:5000", false},
		{time.Minute, "192.0.2.1:5000", true},
		{2 * time.Minute, "192.0.2.1:5000", true},
		{4*time.Minute - time.Second, "192.0.2.1:5000", true},
		{4 * time.Minute, "192.0.2.1:5000", false},
		{time.Hour, "192.0.2.1:5000", false},
		{-2 * time.Minute, "192.0.2.1:5000", false}, // from the future
	}
	for _, tt := range tests {
		now = start.Add(tt.after)
		a := udpAnn{connID: cid, tid: 2, hash: testHash(1), id: testID(1), numWant: -1, port: 1}
		ap := netip.MustParseAddrPort(tt.from)
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		r := parseUDPReply(t, s.handleUDP(a.packet(), ap, buf))
		if ok := r.action == 1; ok != tt.ok {
			t.Errorf("after %v from %s: action %d %q, want accepted %v", tt.after, tt.from, r.action, r.body, tt.ok)
		}
	}
	// Another server (another secret) does not accept it.
	other := New(Config{})
	other.now = s.now
	now = start
	a := udpAnn{connID: cid, tid: 2, hash: testHash(1), id: testID(1), numWant: -1, port: 1}
	if r := parseUDPReply(t, other.handleUDP(a.packet(), from, buf)); r.action != 3 {
		t.Errorf("other server accepted the id")
	}
}

// TestUDPFamilies: IPv4 askers get IPv4 peers in 6-byte entries, IPv6
// askers IPv6 peers in 18-byte entries, as many as fit a datagram.
func TestUDPFamilies(t *testing.T) {
	s := New(Config{MaxNumWant: MaxNumWantCap})
	buf := make([]byte, 0, maxUDPReply)
	h := testHash(1)
	ann := func(from netip.AddrPort, id int, numWant int32) []byte {
		t.Helper()
		r := parseUDPReply(t, s.handleUDP(connectPacket(1), from, buf))
		a := udpAnn{connID: binary.BigEndian.Uint64(r.body), tid: 2, hash: h, id: testID(id), left: 1, numWant: numWant, port: from.Port()}
		out := s.handleUDP(a.packet(), from, buf)
		if len(out) > maxUDPReply {
			t.Fatalf("reply of %d bytes", len(out))
		}
		return slices.Clone(out)
	}
	for i := 1; i <= 300; i++ {
		ann(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1000), i, 0)
		ann(netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}), 1000), 1000+i, 0)
	}
	tests := []struct {
		name    string
		from    string
		numWant int32
		size    int
		want    int
	}{
		{"v4 default", "10.1.0.1:7", -1, 6, MaxNumWantCap},
		{"v4 small", "10.1.0.1:7", 5, 6, 5},
		{"v6 default", "[2001:db8:1::1]:7", -1, 18, (maxUDPReply - 20) / 18},
		{"v6 small", "[2001:db8:1::1]:7", 5, 18, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := netip.MustParseAddrPort(tt.from)
			r := parseAnnReply(t, ann(from, 5000, tt.numWant), 2, tt.size)
			if len(r.peers) != tt.want {
				t.Errorf("%d peers, want %d", len(r.peers), tt.want)
			}
			for _, p := range r.peers {
				if p.Addr().Is4() != (tt.size == 6) || p == from {
					t.Errorf("peer %v to %v", p, from)
				}
			}
		})
	}
}

// TestUDPIPv6 runs a server on [::1]: the asker gets 18-byte entries.
func TestUDPIPv6(t *testing.T) {
	s := New(Config{})
	srv, c := udpServer(t, s, "udp6", "[::1]:0")
	cid := connect(t, c, srv)
	h := testHash(1)
	for port := uint16(1001); port <= 1002; port++ {
		a := udpAnn{connID: cid, tid: uint32(port), hash: h, id: testID(int(port)), left: 1, numWant: -1, port: port}
		r := parseAnnReply(t, udpExchange(t, c, srv, a.packet()), a.tid, 18)
		if port == 1002 && !slices.Equal(r.peers, []netip.AddrPort{netip.MustParseAddrPort("[::1]:1001")}) {
			t.Errorf("peers %v", r.peers)
		}
	}
}

// FuzzHandleUDP: any datagram is answered with at most maxUDPReply bytes,
// or not at all, without panicking. validID swaps in a good connection id
// so the fuzzer reaches announce and scrape.
func FuzzHandleUDP(f *testing.F) {
	s := New(Config{MaxPeers: 10_000}) // the fuzzer announces a lot
	fixed := time.Now()
	s.now = func() time.Time { return fixed }
	h := testHash(1)
	f.Add(connectPacket(1), false, false)
	f.Add(udpAnn{tid: 2, hash: h, id: testID(1), numWant: -1, port: 1}.packet(), true, false)
	f.Add(udpAnn{tid: 2, hash: h, id: testID(2), left: 0, event: 1, numWant: 500, port: 2}.packet(), true, true)
	f.Add(scrapePacket(0, 3, h, h), true, false)
	f.Add([]byte(strings.Repeat("\x00", 16)), false, false)
	// A populated swarm, in both families.
	for i := range 300 {
		for _, ip := range []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), netip.AddrFrom16([16]byte{0x20, 15: byte(i)})} {
			a := announce{hash: h, id: testID(i), addr: netip.AddrPortFrom(ip, 1000), left: int64(i % 2), numWant: -1}
			s.announce(&a, 0)
		}
	}
	from4 := netip.MustParseAddrPort("192.0.2.1:4000")
	from6 := netip.MustParseAddrPort("[2001:db8::1]:4000")
	cid4 := s.connectionID(from4.Addr(), s.window())
	cid6 := s.connectionID(from6.Addr(), s.window())
	buf := make([]byte, 0, maxUDPReply)
	f.Fuzz(func(t *testing.T, pkt []byte, validID, v6 bool) {
		from, cid := from4, cid4
		if v6 {
			from, cid = from6, cid6
		}
		if validID && len(pkt) >= 8 {
			pkt = append(binary.BigEndian.AppendUint64(nil, cid), pkt[8:]...)
		}
		out := s.handleUDP(pkt, from, buf)
		if len(out) > maxUDPReply {
			t.Fatalf("reply of %d bytes", len(out))
		}
		if out != nil && len(out) < 8 {
			t.Fatalf("reply of %d bytes", len(out))
		}
		if len(pkt) < 16 && out != nil {
			t.Fatalf("reply %x to a %d-byte packet", out, len(pkt))
		}
	})
}
