package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
)

func testHash(n byte) metainfo.Hash {
	var h metainfo.Hash
	for i := range h {
		h[i] = 'h' + n
	}
	h[0] = n
	return h
}

func testID(n int) tracker.PeerID {
	var id tracker.PeerID
	copy(id[:], fmt.Sprintf("-TS0001-%012d", n))
	return id
}

// testAddr is the address of test peer n.
func testAddr(n int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(n)}), uint16(6000+n))
}

// peerNums maps the peers of a result back to test peer numbers.
func peerNums(t *testing.T, ps []peer) []int {
	t.Helper()
	var nums []int
	for _, p := range ps {
		n := int(p.addr.Addr().As4()[3])
		if p.addr != testAddr(n) || p.id != testID(n) {
			t.Fatalf("unexpected peer %v %q", p.addr, p.id)
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	return nums
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{"zero", Config{}, Config{
			Interval: 30 * time.Minute, MinInterval: time.Minute, PeerTTL: time.Hour,
			MaxNumWant: 50, MaxPeers: DefaultMaxPeers}},
		{"short interval", Config{Interval: 10 * time.Second}, Config{
			Interval: 10 * time.Second, MinInterval: 10 * time.Second, PeerTTL: 20 * time.Second,
			MaxNumWant: 50, MaxPeers: DefaultMaxPeers}},
		{"numwant capped", Config{MaxNumWant: 1000, PeerTTL: time.Second, MaxPeers: 7}, Config{
			Interval: 30 * time.Minute, MinInterval: time.Minute, PeerTTL: time.Second,
			MaxNumWant: MaxNumWantCap, MaxPeers: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.withDefaults()
			if got.Logger == nil {
				t.Error("nil logger")
			}
			got.Logger = nil
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestAnnounceState runs sequences of announces against the shared state
// logic (what HTTP and UDP both call).
func TestAnnounceState(t *testing.T) {
	type step struct {
		peer       int
		addr       netip.AddrPort // overrides testAddr(peer)
		event      tracker.Event
		left       int64
		numWant    int   // 0: the default; wantNone: zero
		want       []int // peers handed out; nil: none
		wantN      int   // when > 0, check only the number of peers
		complete   int
		incomplete int
		downloaded int // checked by a scrape after the step
	}
	const (
		L        = 1000 // a leecher's "left"
		wantNone = -100
	)
	tests := []struct {
		name  string
		steps []step
	}{
		{"two peers see each other", []step{
			{peer: 1, event: tracker.Started, left: L, incomplete: 1},
			{peer: 2, event: tracker.Started, left: L, want: []int{1}, incomplete: 2},
			{peer: 1, left: L, want: []int{2}, incomplete: 2},
		}},
		{"a peer never gets itself", []step{
			{peer: 1, event: tracker.Started, left: L, incomplete: 1},
			{peer: 1, left: L, incomplete: 1},
			{peer: 1, left: L, numWant: 50, incomplete: 1},
			// The same peer id from another address (its IPv6 side)
			// is still itself.
			{peer: 1, addr: netip.MustParseAddrPort("[2001:db8::1]:6001"), left: L, incomplete: 2},
		}},
		{"stopped removes", []step{
			{peer: 1, event: tracker.Started, left: L, incomplete: 1},
			{peer: 2, event: tracker.Started, left: 0, want: []int{1}, complete: 1, incomplete: 1},
			{peer: 1, event: tracker.Stopped, left: L, complete: 1},
			{peer: 3, left: L, want: []int{2}, complete: 1, incomplete: 1},
			{peer: 2, event: tracker.Stopped, incomplete: 1},
			{peer: 9, event: tracker.Stopped, incomplete: 1}, // unknown: nothing
			{peer: 3, left: L, incomplete: 1},
		}},
		{"completed counted once per peer", []step{
			{peer: 1, event: tracker.Started, left: L, incomplete: 1},
			{peer: 1, event: tracker.Completed, left: 0, complete: 1, downloaded: 1},
			{peer: 1, event: tracker.Completed, left: 0, complete: 1, downloaded: 1},
			{peer: 1, left: 0, complete: 1, downloaded: 1},
			{peer: 2, event: tracker.Completed, left: 0, complete: 2, downloaded: 2},
			{peer: 2, event: tracker.Stopped, complete: 1, downloaded: 2},
		}},
		{"seeders not sent to seeders", []step{
			{peer: 1, left: 0, complete: 1},
			{peer: 2, left: 0, complete: 2},
			{peer: 3, left: L, want: []int{1, 2}, complete: 2, incomplete: 1},
			{peer: 1, left: 0, want: []int{3}, complete: 2, incomplete: 1},
			{peer: 4, left: -1, want: []int{1, 2, 3}, complete: 2, incomplete: 2}, // unknown left: leecher
			{peer: 3, left: 0, want: []int{4}, complete: 3, incomplete: 1},        // became a seeder
		}},
		{"numwant", []step{
			{peer: 1, left: L, incomplete: 1},
			{peer: 2, left: L, want: []int{1}, incomplete: 2},
			{peer: 3, left: L, want: []int{1, 2}, incomplete: 3},
			{peer: 4, left: L, want: []int{1, 2, 3}, incomplete: 4},
			{peer: 5, left: L, wantN: 3, incomplete: 5},                // MaxNumWant is 3
			{peer: 5, left: L, numWant: 1000, wantN: 3, incomplete: 5}, // capped
			{peer: 5, left: L, numWant: 2, wantN: 2, incomplete: 5},
			{peer: 5, left: L, numWant: 1, wantN: 1, incomplete: 5},
			{peer: 5, left: L, numWant: wantNone, incomplete: 5},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{MaxNumWant: 3})
			h := testHash(1)
			for i, st := range tt.steps {
				a := announce{hash: h, id: testID(st.peer), addr: testAddr(st.peer),
					left: st.left, event: st.event, numWant: st.numWant}
				switch st.numWant {
				case 0:
					a.numWant = -1 // the server's default
				case wantNone:
					a.numWant = 0
				}
				if st.addr.IsValid() {
					a.addr = st.addr
				}
				res, err := s.announce(&a, 1000)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if st.wantN > 0 {
					if len(res.peers) != st.wantN {
						t.Errorf("step %d: %d peers, want %d", i, len(res.peers), st.wantN)
					}
				} else if got := peerNums(t, res.peers); !slices.Equal(got, st.want) {
					t.Errorf("step %d: peers %v, want %v", i, got, st.want)
				}
				if res.complete != st.complete || res.incomplete != st.incomplete {
					t.Errorf("step %d: complete %d incomplete %d, want %d %d",
						i, res.complete, res.incomplete, st.complete, st.incomplete)
				}
				_, sc := s.scrape([]metainfo.Hash{h}, 0)
				if sc[0].downloaded != st.downloaded || sc[0].complete != st.complete || sc[0].incomplete != st.incomplete {
					t.Errorf("step %d: scrape %+v, want complete %d downloaded %d incomplete %d",
						i, sc[0], st.complete, st.downloaded, st.incomplete)
				}
			}
		})
	}
}

func TestWhitelist(t *testing.T) {
	allowed := testHash(1)
	s := New(Config{Whitelist: func(h metainfo.Hash) bool { return h == allowed }})
	tests := []struct {
		hash    metainfo.Hash
		wantErr bool
	}{
		{allowed, false},
		{testHash(2), true},
	}
	for _, tt := range tests {
		a := announce{hash: tt.hash, id: testID(1), addr: testAddr(1), left: 1, numWant: -1}
		_, err := s.announce(&a, 10)
		if (err != nil) != tt.wantErr {
			t.Errorf("%v: err %v, want error %v", tt.hash, err, tt.wantErr)
		}
	}
	if st := s.Stats(); st.Torrents != 1 || st.Leechers != 1 {
		t.Errorf("stats %+v, want one torrent, one leecher", st)
	}
	hashes, res := s.scrape(nil, 10)
	if len(hashes) != 1 || hashes[0] != allowed || !res[0].known {
		t.Errorf("scrape all: %v %+v", hashes, res)
	}
}

func TestMaxPeers(t *testing.T) {
	s := New(Config{MaxPeers: 3})
	for n := 1; n <= 5; n++ {
		a := announce{hash: testHash(byte(n % 2)), id: testID(n), addr: testAddr(n), left: 1, numWant: -1}
		if _, err := s.announce(&a, 10); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Leechers != 3 {
		t.Errorf("stats %+v, want 3 peers", st)
	}
	// A full table still answers, with the peers it has.
	a := announce{hash: testHash(1), id: testID(9), addr: testAddr(9), left: 1, numWant: -1}
	res, err := s.announce(&a, 10)
	if err != nil || len(res.peers) == 0 {
		t.Errorf("full table: %v %+v", err, res)
	}
	// A new torrent is not created when full.
	a.hash = testHash(7)
	if res, err := s.announce(&a, 10); err != nil || len(res.peers) != 0 || s.Stats().Torrents != 2 {
		t.Errorf("new torrent on full table: %v %+v %+v", err, res, s.Stats())
	}
}

// TestPickRandom checks that replies are spread over the swarm.
func TestPickRandom(t *testing.T) {
	s := New(Config{MaxNumWant: 3})
	h := testHash(1)
	const n = 12
	for i := 1; i <= n; i++ {
		a := announce{hash: h, id: testID(i), addr: testAddr(i), left: 1, numWant: 0}
		s.announce(&a, 10)
	}
	seen := make(map[int]int)
	firsts := make(map[int]bool)
	for range 500 {
		a := announce{hash: h, id: testID(1), addr: testAddr(1), left: 1, numWant: -1}
		res, _ := s.announce(&a, 10)
		nums := peerNums(t, res.peers)
		if len(nums) != 3 || slices.Contains(nums, 1) {
			t.Fatalf("got %v", nums)
		}
		for _, k := range nums {
			seen[k]++
		}
		firsts[int(res.peers[0].addr.Addr().As4()[3])] = true
	}
	for i := 2; i <= n; i++ {
		if seen[i] < 50 { // expect ~136
			t.Errorf("peer %d handed out %d times in 500", i, seen[i])
		}
	}
	if len(firsts) != n-1 {
		t.Errorf("only %d different first peers", len(firsts))
	}
}

// TestExpiry runs the clock of a synctest bubble: peers expire PeerTTL
// after they last announced, exactly, and the sweep drops idle swarms.
func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{Interval: 10 * time.Second}) // PeerTTL 20 s
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go s.RunExpiry(ctx)
		h := testHash(1)
		ann := func(n int) announceResult {
			a := announce{hash: h, id: testID(n), addr: testAddr(n), left: 1, numWant: -1}
			res, err := s.announce(&a, 10)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		ann(1)
		time.Sleep(15 * time.Second)
		if got := peerNums(t, ann(2).peers); !slices.Equal(got, []int{1}) {
			t.Errorf("at 15 s: %v, want [1]", got)
		}
		time.Sleep(5*time.Second - time.Nanosecond)
		if got := peerNums(t, ann(3).peers); !slices.Equal(got, []int{1, 2}) {
			t.Errorf("just before TTL: %v, want [1 2]", got)
		}
		time.Sleep(time.Nanosecond) // peer 1 is 20 s old
		res := ann(3)
		if got := peerNums(t, res.peers); !slices.Equal(got, []int{2}) || res.incomplete != 2 {
			t.Errorf("at TTL: %v incomplete %d, want [2] and 2", got, res.incomplete)
		}
		if _, sc := s.scrape([]metainfo.Hash{h}, 0); sc[0].incomplete != 2 {
			t.Errorf("scrape: %+v", sc[0])
		}
		// Nobody announces again: the sweep removes the peers (the last
		// expires at 40 s) and the swarm, idle since 20 s.
		time.Sleep(25 * time.Second)
		if st := s.Stats(); st.Torrents != 0 || st.Leechers != 0 {
			t.Errorf("stats %+v, want empty", st)
		}
		s.mu.Lock()
		if s.numPeers != 0 {
			t.Errorf("numPeers %d", s.numPeers)
		}
		s.mu.Unlock()

		// A swarm emptied by "stopped" keeps its completed count for
		// PeerTTL, then goes.
		a := announce{hash: h, id: testID(1), addr: testAddr(1), event: tracker.Completed, numWant: -1}
		s.announce(&a, 10)
		a.event = tracker.Stopped
		s.announce(&a, 10)
		time.Sleep(15 * time.Second)
		if _, sc := s.scrape([]metainfo.Hash{h}, 0); !sc[0].known || sc[0].downloaded != 1 {
			t.Errorf("emptied swarm: %+v", sc[0])
		}
		time.Sleep(20 * time.Second)
		if _, sc := s.scrape([]metainfo.Hash{h}, 0); sc[0].known {
			t.Errorf("idle swarm kept: %+v", sc[0])
		}
		cancel()
		synctest.Wait()
	})
}

// TestExpiryKeepsRefreshedPeers: a peer that keeps announcing stays,
// however long it lives.
func TestExpiryKeepsRefreshedPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{Interval: 10 * time.Second})
		h := testHash(1)
		for i := range 100 {
			for n := 1; n <= 3; n++ {
				a := announce{hash: h, id: testID(n), addr: testAddr(n), left: int64(n - 1), numWant: -1}
				res, err := s.announce(&a, 10)
				if err != nil {
					t.Fatal(err)
				}
				if i > 0 && (res.complete != 1 || res.incomplete != 2) {
					t.Fatalf("round %d peer %d: %+v", i, n, res)
				}
				time.Sleep(3 * time.Second)
			}
		}
	})
}

func TestStats(t *testing.T) {
	s := New(Config{})
	for n := 1; n <= 5; n++ {
		a := announce{hash: testHash(byte(n % 2)), id: testID(n), addr: testAddr(n), left: int64(n % 3), numWant: -1}
		s.announce(&a, 10)
	}
	s.scrape(nil, 10)
	want := Stats{Torrents: 2, Seeders: 1, Leechers: 4, Announces: 5, Scrapes: 1}
	if got := s.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// addrLog is a slog handler that reports the addresses ListenAndServe logs.
type addrLog struct{ ch chan string }

func (h addrLog) Enabled(context.Context, slog.Level) bool { return true }
func (h addrLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h addrLog) WithGroup(string) slog.Handler            { return h }
func (h addrLog) Handle(_ context.Context, r slog.Record) error {
	var proto, addr string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "proto":
			proto = a.Value.String()
		case "addr":
			addr = a.Value.String()
		}
		return true
	})
	if addr != "" {
		h.ch <- proto + " " + addr
	}
	return nil
}

// settleGoroutines waits for the number of goroutines to fall back to n.
func settleGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestListenAndServe(t *testing.T) {
	before := runtime.NumGoroutine()
	logs := addrLog{make(chan string, 2)}
	s := New(Config{Logger: slog.New(logs)})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, "127.0.0.1:0", "127.0.0.1:0") }()
	addrs := map[string]string{}
	for range 2 {
		var proto, addr string
		fmt.Sscan(<-logs.ch, &proto, &addr)
		addrs[proto] = addr
	}
	if addrs["http"] == "" || addrs["udp"] == "" {
		t.Fatalf("logged %v", addrs)
	}

	// HTTP serves; keep the connection alive so Shutdown has one to close.
	client := &http.Client{Transport: &http.Transport{}}
	q := announceQuery(testHash(1), testID(1), 6881)
	resp, err := client.Get("http://" + addrs["http"] + "/announce?" + q)
	if err != nil {
		t.Fatal(err)
	}
	rep := readAnnounceReply(t, resp)
	if rep.Failure != "" || rep.Incomplete != 1 {
		t.Errorf("http announce: %+v", rep)
	}
	// UDP serves.
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addrs["udp"]))
	if reply := udpExchange(t, c, to, connectPacket(7)); len(reply) != 16 {
		t.Errorf("udp connect reply %x", reply)
	}
	if st := s.Stats(); st.Announces != 1 {
		t.Errorf("stats %+v", st)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ListenAndServe after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe did not return")
	}
	client.CloseIdleConnections()
	c.Close()
	settleGoroutines(t, before)

	// Both addresses are closed.
	if _, err := net.Dial("tcp", addrs["http"]); err == nil {
		t.Error("http listener still open")
	}
}

func TestListenAndServeErrors(t *testing.T) {
	s := New(Config{})
	if err := s.ListenAndServe(t.Context(), "", ""); err == nil {
		t.Error("no addresses: no error")
	}
	if err := s.ListenAndServe(t.Context(), "127.0.0.1:bad", ""); err == nil {
		t.Error("bad address: no error")
	}
	if err := s.ListenAndServe(t.Context(), "127.0.0.1:0", "127.0.0.1:bad"); err == nil {
		t.Error("bad udp address: no error")
	}
	if err := s.Serve(t.Context(), nil, nil); err == nil {
		t.Error("Serve of nothing: no error")
	}
}

// TestServeStopsOnFailure: when one side fails, Serve stops the other and
// returns the error.
func TestServeStopsOnFailure(t *testing.T) {
	before := runtime.NumGoroutine()
	s := New(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(t.Context(), ln, pc) }()
	time.Sleep(50 * time.Millisecond)
	pc.Close() // the UDP side fails
	select {
	case err := <-done:
		if err == nil {
			t.Error("Serve returned nil after its conn was closed under it")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	settleGoroutines(t, before)
}

func TestServeUDPStops(t *testing.T) {
	before := runtime.NumGoroutine()
	s := New(Config{})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var serveErr error
	wg.Go(func() { serveErr = s.ServeUDP(ctx, pc) })
	time.Sleep(20 * time.Millisecond)
	cancel()
	wg.Wait()
	if serveErr != nil {
		t.Errorf("ServeUDP after cancel: %v", serveErr)
	}
	settleGoroutines(t, before)
}
