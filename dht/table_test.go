package dht

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// idWithPrefix returns an id sharing exactly n leading bits with base
// (flipping bit n), the rest random.
func idWithPrefix(base ID, n int, r *rand.Rand) ID {
	var id ID
	for i := range id {
		id[i] = byte(r.UintN(256))
	}
	for bit := 0; bit < n; bit++ {
		m := byte(0x80) >> (bit % 8)
		id[bit/8] = id[bit/8]&^m | base[bit/8]&m
	}
	if n < IDLen*8 {
		m := byte(0x80) >> (n % 8)
		id[n/8] = id[n/8]&^m | ^base[n/8]&m
	}
	return id
}

func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1000+i%50000))
}

func TestDistance(t *testing.T) {
	var zero, one, top ID
	one[IDLen-1] = 1
	top[0] = 0x80
	tests := []struct {
		a, b   ID
		prefix int
	}{
		{zero, zero, 160},
		{zero, one, 159},
		{zero, top, 0},
		{one, top, 0},
		{ID{0x0f}, ID{0x08}, 5},
	}
	for _, tc := range tests {
		if got := commonPrefixLen(tc.a, tc.b); got != tc.prefix {
			t.Errorf("commonPrefixLen(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.prefix)
		}
		if tc.a.Xor(tc.b) != tc.b.Xor(tc.a) {
			t.Errorf("xor not symmetric")
		}
	}
	if !zero.Closer(one, top) || zero.Closer(top, one) || zero.Closer(one, one) {
		t.Error("Closer wrong")
	}
}

func TestTableInsertAndSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1e9, 0)
	self := RandomID()
	tests := []struct {
		name     string
		prefixes []int // common prefix length of each inserted node
		wantLen  int
		wantBkts int
	}{
		{"fits one bucket", []int{0, 1, 2, 3, 4, 5, 6, 7}, 8, 1},
		{"far half full: one split, then no more", []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 8, 2},
		{"splits toward self", []int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}, 16, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable(self)
			for i, p := range tc.prefixes {
				tb.Seen(Node{ID: idWithPrefix(self, p, r), Addr: addr(i)}, true, now)
			}
			if tb.Len() != tc.wantLen {
				t.Errorf("Len = %d, want %d", tb.Len(), tc.wantLen)
			}
			if len(tb.buckets) != tc.wantBkts {
				t.Errorf("%d buckets, want %d", len(tb.buckets), tc.wantBkts)
			}
			for i, b := range tb.buckets {
				for _, e := range b.nodes {
					if got := tb.bucketIndex(e.ID); got != i {
						t.Errorf("node %s in bucket %d, belongs in %d", e.ID, i, got)
					}
				}
				if len(b.nodes) > K || len(b.replacements) > K {
					t.Errorf("bucket %d over size: %d nodes %d replacements", i, len(b.nodes), len(b.replacements))
				}
			}
		})
	}
}

func TestTableStates(t *testing.T) {
	now := time.Unix(1e9, 0)
	self := ID{}
	r := rand.New(rand.NewPCG(3, 4))
	tb := NewTable(self)
	var far []Node
	for i := range K {
		n := Node{ID: idWithPrefix(self, 0, r), Addr: addr(i)}
		far = append(far, n)
		tb.Seen(n, true, now)
	}
	newcomer := Node{ID: idWithPrefix(self, 0, r), Addr: addr(100)}
	tests := []struct {
		name  string
		do    func()
		id    ID
		want  NodeState
		inTbl bool
	}{
		{"fresh reply is good", func() {}, far[0].ID, Good, true},
		{"silent 15 min is questionable", func() { now = now.Add(GoodInterval) }, far[0].ID, Questionable, true},
		{"query after a reply is good", func() { tb.Seen(far[0], false, now) }, far[0].ID, Good, true},
		{"full bucket of live nodes: newcomer waits", func() { tb.Seen(newcomer, true, now) }, newcomer.ID, 0, false},
		{"two failures: still questionable", func() { tb.Failed(far[1], now); tb.Failed(far[1], now) }, far[1].ID, Questionable, true},
		{"third failure: bad, replaced by the waiting node", func() { tb.Failed(far[1], now) }, newcomer.ID, Good, true},
		{"forged address does not move an entry", func() { tb.Seen(Node{ID: far[2].ID, Addr: addr(999)}, true, now) }, far[2].ID, Questionable, true},
	}
	for _, tc := range tests {
		tc.do()
		st, ok := tb.State(tc.id, now)
		if ok != tc.inTbl || (ok && st != tc.want) {
			t.Errorf("%s: state %v in=%v, want %v in=%v", tc.name, st, ok, tc.want, tc.inTbl)
		}
	}
	if _, ok := tb.State(far[1].ID, now); ok {
		t.Error("bad node still in table")
	}
	for _, n := range tb.Nodes(now) {
		if n.ID == far[2].ID && n.Addr != far[2].Addr {
			t.Error("entry moved to forged address")
		}
	}
}

func TestTableReplacesBad(t *testing.T) {
	now := time.Unix(1e9, 0)
	r := rand.New(rand.NewPCG(5, 6))
	self := ID{}
	tb := NewTable(self)
	var far []Node
	for i := range K {
		n := Node{ID: idWithPrefix(self, 0, r), Addr: addr(i)}
		far = append(far, n)
		tb.Seen(n, true, now)
		for range badFailures {
			tb.Failed(n, now)
		}
	}
	n := Node{ID: idWithPrefix(self, 0, r), Addr: addr(50)}
	if !tb.Seen(n, false, now) {
		t.Fatal("new node did not replace a bad one")
	}
	// A node that answered replaces one that never did.
	tb2 := NewTable(self)
	for i := range K {
		tb2.Seen(Node{ID: idWithPrefix(self, 0, r), Addr: addr(i)}, false, now)
	}
	if !tb2.Seen(Node{ID: idWithPrefix(self, 0, r), Addr: addr(60)}, true, now) {
		t.Fatal("responsive node did not replace one that never answered")
	}
	if tb2.Seen(Node{ID: idWithPrefix(self, 0, r), Addr: addr(61)}, false, now) {
		t.Fatal("unverified node replaced another")
	}
}

func TestTableClosest(t *testing.T) {
	now := time.Unix(1e9, 0)
	self := RandomID()
	tb := NewTable(self)
	var all []Node
	for i := range 2000 {
		n := Node{ID: RandomID(), Addr: addr(i)}
		if tb.Seen(n, true, now) {
			all = append(all, n)
		}
	}
	for _, tc := range []struct {
		target ID
		n      int
	}{{RandomID(), K}, {self, K}, {RandomID(), 1}, {RandomID(), 10000}} {
		got := tb.Closest(tc.target, tc.n, netip.Addr{}, now)
		want := slices.Clone(all)
		slices.SortFunc(want, func(a, b Node) int { return tc.target.cmpDist(a.ID, b.ID) })
		want = want[:min(tc.n, len(want))]
		if !slices.Equal(got, want) {
			t.Errorf("Closest(%s, %d) = %v\nwant %v", tc.target, tc.n, got, want)
		}
	}
	if got := tb.Closest(self, K, netip.MustParseAddr("::1"), now); len(got) != 0 {
		t.Errorf("IPv6 filter returned %d IPv4 nodes", len(got))
	}
}

func TestTableBounded(t *testing.T) {
	now := time.Unix(1e9, 0)
	self := RandomID()
	tb := NewTable(self)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 200000 {
		// Many nodes near us, to drive splitting as deep as it goes.
		tb.Seen(Node{ID: idWithPrefix(self, int(r.UintN(161)), r), Addr: addr(i)}, true, now)
	}
	if n, max := tb.Len(), IDLen*8*K; n > max {
		t.Fatalf("table holds %d nodes, bound is %d", n, max)
	}
	if len(tb.buckets) > IDLen*8 {
		t.Fatalf("%d buckets", len(tb.buckets))
	}
	t.Logf("%d nodes in %d buckets", tb.Len(), len(tb.buckets))
}

func TestRandomIDInBucket(t *testing.T) {
	self := RandomID()
	tb := NewTable(self)
	r := rand.New(rand.NewPCG(9, 10))
	for i := range 3000 {
		tb.Seen(Node{ID: idWithPrefix(self, int(r.UintN(20)), r), Addr: addr(i)}, true, time.Unix(1e9, 0))
	}
	for i := range tb.buckets {
		for range 20 {
			id := tb.randomIDInBucket(i)
			if got := tb.bucketIndex(id); got != i {
				t.Fatalf("random id for bucket %d lands in %d", i, got)
			}
		}
	}
	if got := len(tb.StaleBuckets(GoodInterval, time.Unix(1e9, 0).Add(GoodInterval))); got != len(tb.buckets) {
		t.Errorf("%d stale buckets, want %d", got, len(tb.buckets))
	}
}
