package dht

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestStateRoundTrip(t *testing.T) {
	var st State
	st.ID[0] = 7
	for i := range 30 {
		var id ID
		id[1] = byte(i)
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(1000+i))
		if i%3 == 0 {
			addr = netip.AddrPortFrom(netip.IPv6Loopback(), uint16(2000+i))
		}
		st.Nodes = append(st.Nodes, Node{ID: id, Addr: addr})
	}
	got, err := ParseState(st.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != st.ID || len(got.Nodes) != len(st.Nodes) {
		t.Fatalf("round trip: id %v, %d nodes; want %v, %d", got.ID, len(got.Nodes), st.ID, len(st.Nodes))
	}
	want := map[Node]bool{}
	for _, n := range st.Nodes {
		want[n] = true
	}
	for _, n := range got.Nodes {
		if !want[n] {
			t.Errorf("node %v was not saved", n)
		}
	}
}

func TestParseStateGarbage(t *testing.T) {
	id := strings.Repeat("i", IDLen)
	node := strings.Repeat("n", IDLen) + "\x7f\x00\x00\x01\x1a\xe1"
	tests := []struct {
		name, in string
		nodes    int // when it parses
	}{
		{"empty", "", -1},
		{"not a dict", "li1ee", -1},
		{"no id", "d5:nodes0:e", -1},
		{"short id", "d2:id3:abce", -1},
		{"ragged nodes", "d2:id20:" + id + "5:nodes3:abce", -1},
		{"deep", "d2:id20:" + id + "1:xllleeee", -1},
		{"port 0 skipped", "d2:id20:" + id + "5:nodes26:" + strings.Repeat("n", IDLen) + "\x7f\x00\x00\x01\x00\x00e", 0},
		{"one node", "d2:id20:" + id + "5:nodes26:" + node + "e", 1},
		{"too many", "d2:id20:" + id + "5:nodes" + strconv.Itoa(26*(MaxStateNodes+1)) + ":" + strings.Repeat(node, MaxStateNodes+1) + "e", -1},
		{"huge", "d2:id20:" + id + "5:nodes" + strconv.Itoa(1<<20) + ":" + strings.Repeat("x", 1<<20) + "e", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseState([]byte(tc.in))
			if tc.nodes < 0 {
				if !errors.Is(err, ErrBadState) {
					t.Fatalf("ParseState = %v, %v; want ErrBadState", st, err)
				}
				return
			}
			if err != nil || len(st.Nodes) != tc.nodes {
				t.Fatalf("ParseState = %d nodes, %v; want %d", len(st.Nodes), err, tc.nodes)
			}
		})
	}
}

func FuzzParseState(f *testing.F) {
	var st State
	st.Nodes = []Node{{Addr: netip.MustParseAddrPort("127.0.0.1:6881")}, {Addr: netip.MustParseAddrPort("[::1]:6881")}}
	f.Add(st.Marshal())
	f.Add([]byte("d2:id20:aaaaaaaaaaaaaaaaaaaae"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseState(b)
		if err != nil {
			return
		}
		again, err := ParseState(st.Marshal())
		if err != nil || again.ID != st.ID || len(again.Nodes) != len(st.Nodes) {
			t.Fatalf("re-parse: %v, %d nodes; want %d", err, len(again.Nodes), len(st.Nodes))
		}
		if !bytes.Equal(again.Marshal(), st.Marshal()) {
			t.Fatal("Marshal is not stable")
		}
	})
}

// TestStateRejoin: a node restarted with its saved state finds the network
// again without any bootstrap address.
func TestStateRejoin(t *testing.T) {
	checkNoLeaks(t)
	srvs := startNetwork(t, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := NewServer(Config{Addr: "127.0.0.1:0", Bootstrap: []string{addrOf(srvs[0]).String()}, RateLimit: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	saved := a.State().Marshal()
	a.Close()
	st, err := ParseState(saved)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) == 0 {
		t.Fatal("no nodes saved after bootstrap")
	}
	b, err := NewServer(Config{Addr: "127.0.0.1:0", ID: st.ID, Nodes: st.Nodes, RateLimit: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.ID() != a.ID() {
		t.Fatalf("restarted id %v, want %v", b.ID(), a.ID())
	}
	if err := b.Bootstrap(ctx); err != nil {
		t.Fatalf("rejoin from saved nodes: %v", err)
	}
	if n := b.NumNodes(); n < 4 {
		t.Fatalf("rejoined with %d nodes", n)
	}
}

// TestFilter: a server never sends to an address its Filter refuses, even
// when other nodes point it there.
func TestFilter(t *testing.T) {
	checkNoLeaks(t)
	srvs := startNetwork(t, 6)
	refused := addrOf(srvs[1])
	before := srvs[1].Stats().Answered
	s, err := NewServer(Config{Addr: "127.0.0.1:0", RateLimit: rate.Inf,
		Bootstrap: []string{addrOf(srvs[0]).String()},
		Filter:    func(a netip.AddrPort) bool { return a != refused }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Ping(ctx, refused); !errors.Is(err, ErrFiltered) {
		t.Fatalf("Ping of a refused address = %v, want ErrFiltered", err)
	}
	if err := s.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Nodes() {
		if n.Addr == refused {
			t.Fatalf("refused node %v in the routing table", n)
		}
	}
	if got := srvs[1].Stats().Answered; got != before {
		t.Fatalf("the refused node answered %d queries", got-before)
	}
	if s.NumNodes() < 3 {
		t.Fatalf("bootstrap found %d nodes", s.NumNodes())
	}
}
