package dht

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestPeerStore(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	ttl := time.Minute
	p := func(i int) netip.AddrPort { return addr(i) }
	v6 := netip.MustParseAddrPort("[2001:db8::1]:80")
	h1, h2, h3 := ID{1}, ID{2}, ID{3}
	tests := []struct {
		name  string
		ps    *peerStore
		steps func(ps *peerStore) bool
	}{
		{"per-hash bound evicts the oldest", newPeerStore(3, 10, 100, ttl), func(ps *peerStore) bool {
			for i := range 4 {
				ps.add(h1, p(i), t0.Add(time.Duration(i)*time.Second))
			}
			got := ps.get(h1, p(0).Addr(), 10, t0.Add(5*time.Second))
			return len(got) == 3 && !contains(got, p(0)) && ps.total == 3
		}},
		{"hash bound refuses new hashes", newPeerStore(3, 2, 100, ttl), func(ps *peerStore) bool {
			return ps.add(h1, p(1), t0) && ps.add(h2, p(1), t0) && !ps.add(h3, p(1), t0) && ps.add(h1, p(2), t0)
		}},
		{"total bound refuses new peers", newPeerStore(10, 10, 3, ttl), func(ps *peerStore) bool {
			return ps.add(h1, p(1), t0) && ps.add(h1, p(2), t0) && ps.add(h2, p(3), t0) && !ps.add(h2, p(4), t0) &&
				ps.add(h1, p(1), t0) // refresh is fine
		}},
		{"expiry", newPeerStore(10, 10, 10, ttl), func(ps *peerStore) bool {
			ps.add(h1, p(1), t0)
			ps.add(h1, p(2), t0.Add(30*time.Second))
			got := ps.get(h1, p(1).Addr(), 10, t0.Add(ttl))
			ps.sweep(t0.Add(2 * ttl))
			return len(got) == 1 && got[0] == p(2) && ps.total == 0 && len(ps.byHash) == 0
		}},
		{"get filters by family and count", newPeerStore(100, 10, 100, ttl), func(ps *peerStore) bool {
			for i := range 20 {
				ps.add(h1, p(i), t0)
			}
			ps.add(h1, v6, t0)
			g4 := ps.get(h1, p(0).Addr(), 5, t0)
			g6 := ps.get(h1, v6.Addr(), 5, t0)
			return len(g4) == 5 && len(g6) == 1 && g6[0] == v6
		}},
	}
	for _, tc := range tests {
		if !tc.steps(tc.ps) {
			t.Errorf("%s: failed", tc.name)
		}
	}
}

func contains(s []netip.AddrPort, p netip.AddrPort) bool {
	for _, q := range s {
		if q == p {
			return true
		}
	}
	return false
}

func TestTokens(t *testing.T) {
	s := &Server{}
	t0 := time.Unix(1e9, 0)
	s.rotated = t0
	ip := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	tok := s.tokenLocked(ip, 0, t0)
	tests := []struct {
		at   time.Duration
		ip   netip.Addr
		want bool
	}{
		{0, ip, true},
		{0, other, false},
		{4 * time.Minute, ip, true},
		{6 * time.Minute, ip, true},   // rotated once: the previous secret still works
		{11 * time.Minute, ip, false}, // rotated twice
	}
	for _, tc := range tests {
		if got := s.validTokenLocked(tok, tc.ip, t0.Add(tc.at)); got != tc.want {
			t.Errorf("token at +%v for %v: valid=%v, want %v", tc.at, tc.ip, got, tc.want)
		}
	}
	// A long silence retires both secrets at once.
	s2 := &Server{rotated: t0}
	tok = s2.tokenLocked(ip, 0, t0)
	if s2.validTokenLocked(tok, ip, t0.Add(20*time.Minute)) {
		t.Error("token valid after 20 minutes")
	}
}

func TestGivenConnNotClosed(t *testing.T) {
	checkNoLeaks(t)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := NewServer(Config{Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != conn.LocalAddr() {
		t.Fatal("Addr is not the given conn's")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteTo([]byte("x"), conn.LocalAddr()); err != nil {
		t.Fatalf("given conn closed by Server.Close: %v", err)
	}
}
