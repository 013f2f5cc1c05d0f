package dht

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// TestIPv6Network: nodes on ::1 find each other (nodes6 in replies) and
// the peers announced among them, with IPv6 addresses (BEP 32).
func TestIPv6Network(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback on this machine: %v", err)
	} else {
		c.Close()
	}
	checkNoLeaks(t)
	var srvs []*Server
	for i := range 8 {
		cfg := Config{Addr: "[::1]:0", RateLimit: rate.Inf}
		if i > 0 {
			cfg.Bootstrap = []string{addrOf(srvs[0]).String()}
		}
		s, err := NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		srvs = append(srvs, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 2 {
		for _, s := range srvs[1:] {
			if err := s.Bootstrap(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range srvs {
		for _, n := range s.Nodes() {
			if !n.Addr.Addr().Is6() || n.Addr.Addr().Is4In6() {
				t.Fatalf("node %v in an IPv6 network", n)
			}
		}
		if s.NumNodes() < 4 {
			t.Fatalf("node %v knows %d nodes", s.ID(), s.NumNodes())
		}
	}
	var hash metainfo.Hash
	hash[0] = 0x66
	if _, err := srvs[3].Announce(ctx, hash, 7000); err != nil {
		t.Fatal(err)
	}
	peers, err := srvs[6].GetPeers(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("[::1]:7000"); !slices.Contains(peers, want) {
		t.Fatalf("GetPeers = %v, want %v", peers, want)
	}
}
