package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// udpPacket is a request a fake tracker received.
type udpPacket struct {
	from   netip.AddrPort
	data   []byte
	connID uint64
	action uint32
	tx     uint32
}

// fakeUDPTracker is a scriptable UDP tracker on loopback: handle is called
// for every request of at least 16 bytes, in order, on one goroutine.
type fakeUDPTracker struct {
	t      *testing.T
	conn   *net.UDPConn
	addr   netip.AddrPort
	handle func(*fakeUDPTracker, udpPacket)

	mu  sync.Mutex
	got []udpPacket // guarded by mu
}

// newFakeUDPTracker listens on ip (127.0.0.1 or ::1); it skips the test
// when ::1 cannot be bound.
func newFakeUDPTracker(t *testing.T, ip string, handle func(*fakeUDPTracker, udpPacket)) *fakeUDPTracker {
	t.Helper()
	a := netip.MustParseAddr(ip)
	network := "udp4"
	if a.Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		if a.Is6() {
			t.Skipf("cannot bind %s: %v", ip, err)
		}
		t.Fatal(err)
	}
	ft := &fakeUDPTracker{t: t, conn: conn, addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), handle: handle}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < udpRequestHeaderLen {
				continue
			}
			b := bytes.Clone(buf[:n])
			p := udpPacket{
				from:   from,
				data:   b,
				connID: binary.BigEndian.Uint64(b),
				action: binary.BigEndian.Uint32(b[8:]),
				tx:     binary.BigEndian.Uint32(b[12:]),
			}
			ft.mu.Lock()
			ft.got = append(ft.got, p)
			ft.mu.Unlock()
			ft.handle(ft, p)
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return ft
}

// url is the tracker's announce URL with the given path.
func (ft *fakeUDPTracker) url(path string) string {
	return "udp://" + ft.addr.String() + path
}

func (ft *fakeUDPTracker) send(to netip.AddrPort, b []byte) {
	if _, err := ft.conn.WriteToUDPAddrPort(b, to); err != nil {
		ft.t.Errorf("fake tracker: send: %v", err)
	}
}

// reply answers p with the given action and body.
func (ft *fakeUDPTracker) reply(p udpPacket, action uint32, body ...[]byte) {
	ft.send(p.from, udpReplyBytes(action, p.tx, body...))
}

// packets returns the requests received so far with the given action.
func (ft *fakeUDPTracker) packets(action uint32) []udpPacket {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var out []udpPacket
	for _, p := range ft.got {
		if p.action == action {
			out = append(out, p)
		}
	}
	return out
}

// all returns the actions of the requests received so far, in order.
func (ft *fakeUDPTracker) actions() []uint32 {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var out []uint32
	for _, p := range ft.got {
		out = append(out, p.action)
	}
	return out
}

// waitPackets waits until n requests of the action have arrived.
func (ft *fakeUDPTracker) waitPackets(action uint32, n int) []udpPacket {
	ft.t.Helper()
	for range 500 {
		if got := ft.packets(action); len(got) >= n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	ft.t.Fatalf("fake tracker: fewer than %d %s requests arrived", n, udpActionName(action))
	return nil
}

func udpReplyBytes(action, tx uint32, body ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, action)
	b = binary.BigEndian.AppendUint32(b, tx)
	for _, p := range body {
		b = append(b, p...)
	}
	return b
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// announceBody is an announce reply after its header.
func announceBody(interval, leechers, seeders int32, peers []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(interval))
	b = binary.BigEndian.AppendUint32(b, uint32(leechers))
	b = binary.BigEndian.AppendUint32(b, uint32(seeders))
	return append(b, peers...)
}

// scrapeOf is what the standard fake tracker reports for a hash.
func scrapeOf(h metainfo.Hash) ScrapeResult {
	return ScrapeResult{Seeders: int(h[0]), Completed: int(h[1]) * 1000, Leechers: int(h[2])}
}

// standardTracker answers every connect with connID, every announce with
// body, and every scrape with scrapeOf each hash.
func standardTracker(connID uint64, body []byte) func(*fakeUDPTracker, udpPacket) {
	return func(ft *fakeUDPTracker, p udpPacket) {
		switch p.action {
		case udpActionConnect:
			ft.reply(p, udpActionConnect, be64(connID))
		case udpActionAnnounce:
			ft.reply(p, udpActionAnnounce, body)
		case udpActionScrape:
			ft.reply(p, udpActionScrape, scrapeBody(p.data[udpRequestHeaderLen:]))
		}
	}
}

func scrapeBody(hashes []byte) []byte {
	var b []byte
	for i := 0; i+20 <= len(hashes); i += 20 {
		r := scrapeOf(metainfo.Hash(hashes[i : i+20]))
		b = binary.BigEndian.AppendUint32(b, uint32(r.Seeders))
		b = binary.BigEndian.AppendUint32(b, uint32(r.Completed))
		b = binary.BigEndian.AppendUint32(b, uint32(r.Leechers))
	}
	return b
}

// newTestUDPClient makes a UDP client through New.
func newTestUDPClient(t *testing.T, url string, o Options) *udpClient {
	t.Helper()
	c, err := New(url, o)
	if err != nil {
		t.Fatal(err)
	}
	uc, ok := c.(*udpClient)
	if !ok {
		t.Fatalf("New(%q) = %T, want *udpClient", url, c)
	}
	return uc
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeClock is a clock tests move forward.
type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func testHash(seed byte) metainfo.Hash {
	var h metainfo.Hash
	for i := range h {
		h[i] = seed + byte(i)*7
	}
	return h
}

func testRequest() *AnnounceRequest {
	return &AnnounceRequest{
		InfoHash:   testHash(1),
		PeerID:     PeerID([]byte("-AO0001-abcdefghijkl")),
		Port:       6881,
		Uploaded:   1 << 40,
		Downloaded: 123456789,
		Left:       987654321,
		Event:      Started,
		NumWant:    50,
		Key:        0xdeadbeef,
	}
}

// checkAnnouncePacket checks every field of an announce request.
func checkAnnouncePacket(t *testing.T, p udpPacket, connID uint64, req *AnnounceRequest, wantNumWant int32, wantOpts []byte) {
	t.Helper()
	b := p.data
	if len(b) != udpAnnounceLen+len(wantOpts) {
		t.Fatalf("announce packet is %d bytes, want %d", len(b), udpAnnounceLen+len(wantOpts))
	}
	be := binary.BigEndian
	checks := []struct {
		name      string
		got, want any
	}{
		{"connection id", be.Uint64(b[0:]), connID},
		{"action", be.Uint32(b[8:]), udpActionAnnounce},
		{"info hash", metainfo.Hash(b[16:36]), req.InfoHash},
		{"peer id", PeerID(b[36:56]), req.PeerID},
		{"downloaded", be.Uint64(b[56:]), uint64(max(req.Downloaded, 0))},
		{"left", be.Uint64(b[64:]), uint64(max(req.Left, 0))},
		{"uploaded", be.Uint64(b[72:]), uint64(max(req.Uploaded, 0))},
		{"event", be.Uint32(b[80:]), uint32(req.Event)},
		{"ip", be.Uint32(b[84:]), uint32(0)},
		{"key", be.Uint32(b[88:]), req.Key},
		{"num_want", int32(be.Uint32(b[92:])), wantNumWant},
		{"port", be.Uint16(b[96:]), req.Port},
		{"options", string(b[98:]), string(wantOpts)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("announce %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestUDPAnnounce(t *testing.T) {
	v4peers := []netip.AddrPort{
		netip.MustParseAddrPort("10.0.0.1:6881"),
		netip.MustParseAddrPort("192.168.1.2:51413"),
	}
	v6peers := []netip.AddrPort{
		netip.MustParseAddrPort("[2001:db8::1]:6881"),
		netip.MustParseAddrPort("[fe80::2]:1"),
		netip.MustParseAddrPort("10.1.2.3:4000"), // sent IPv4-mapped
	}
	v6compact := AppendCompact(nil, v6peers[:2], true)
	mapped := netip.AddrFrom16(v6peers[2].Addr().As16())
	v6compact = append(v6compact, mapped.AsSlice()...)
	v6compact = binary.BigEndian.AppendUint16(v6compact, v6peers[2].Port())

	self := netip.MustParseAddrPort("127.0.0.1:6881") // the asker, as npm bittorrent-tracker includes it
	// withZeroPort has an entry with port 0, which is skipped.
	withZeroPort := append(AppendCompact(nil, v4peers, false), 10, 0, 0, 9, 0, 0)
	longPath := "/" + strings.Repeat("p", 300)

	tests := []struct {
		name     string
		ip       string
		path     string
		connID   uint64
		modify   func(*AnnounceRequest)
		body     []byte
		numWant  int32
		opts     []byte
		want     AnnounceResponse
		wantPeer []netip.AddrPort
	}{
		{
			name: "ipv4", ip: "127.0.0.1", path: "/announce", connID: 0x1122334455667788,
			body:    announceBody(1800, 7, 3, AppendCompact(nil, v4peers, false)),
			numWant: 50, opts: append([]byte{2, 9}, "/announce"...),
			want:     AnnounceResponse{Interval: 30 * time.Minute, Leechers: 7, Seeders: 3},
			wantPeer: v4peers,
		},
		{
			name: "ipv6 tracker gives 18-byte peers", ip: "::1", path: "", connID: 42,
			body:    announceBody(120, 1, 2, v6compact),
			numWant: 50,
			want:    AnnounceResponse{Interval: 2 * time.Minute, Leechers: 1, Seeders: 2},
			// The IPv4-mapped entry comes back as IPv4.
			wantPeer: v6peers,
		},
		{
			name: "npm bittorrent-tracker: magic connection id, asker among the peers", ip: "127.0.0.1", path: "/", connID: udpProtocolID,
			body:    announceBody(600, 0, 1, AppendCompact(nil, []netip.AddrPort{self}, false)),
			numWant: 50,
			want:    AnnounceResponse{Interval: 10 * time.Minute, Leechers: 0, Seeders: 1},
			// Returned as given: leaving ourselves out is the caller's job.
			wantPeer: []netip.AddrPort{self},
		},
		{
			name: "negative num_want, negative counts, absurd interval", ip: "127.0.0.1", path: "/a?passkey=s3cr%20t&x=1", connID: 7,
			modify: func(r *AnnounceRequest) {
				r.NumWant, r.Left, r.Event = -5, -1, Stopped
			},
			body:    announceBody(-30, -1, -2, nil),
			numWant: -1, opts: append([]byte{2, 23}, "/a?passkey=s3cr%20t&x=1"...),
			want:     AnnounceResponse{Interval: 30 * time.Minute, Leechers: -1, Seeders: -1},
			wantPeer: []netip.AddrPort{},
		},
		{
			name: "num_want 0, interval 0, long path split into BEP 41 options", ip: "127.0.0.1", path: longPath, connID: 8,
			modify: func(r *AnnounceRequest) { r.NumWant, r.Event = 0, Completed },
			body:   announceBody(0, 5, 5, withZeroPort),
			opts: func() []byte {
				b := append([]byte{2, 255}, longPath[:255]...)
				return append(append(b, 2, byte(len(longPath)-255)), longPath[255:]...)
			}(),
			want:     AnnounceResponse{Interval: 30 * time.Minute, Leechers: 5, Seeders: 5},
			wantPeer: v4peers,
		},
		{
			name: "10 million peers claimed, few sent", ip: "127.0.0.1", path: "/announce", connID: 9,
			body:    announceBody(60, 10_000_000, 10_000_000, AppendCompact(nil, v4peers[:1], false)),
			numWant: 50, opts: append([]byte{2, 9}, "/announce"...),
			want:     AnnounceResponse{Interval: time.Minute, Leechers: 10_000_000, Seeders: 10_000_000},
			wantPeer: v4peers[:1],
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := newFakeUDPTracker(t, tc.ip, standardTracker(tc.connID, tc.body))
			c := newTestUDPClient(t, ft.url(tc.path), Options{UDPBase: 2 * time.Second, UDPRetries: 3})
			req := testRequest()
			if tc.modify != nil {
				tc.modify(req)
			}
			resp, err := c.Announce(testCtx(t), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Interval != tc.want.Interval || resp.MinInterval != 0 || resp.Leechers != tc.want.Leechers || resp.Seeders != tc.want.Seeders {
				t.Errorf("response = %+v, want %+v", resp, tc.want)
			}
			if fmt.Sprint(resp.Peers) != fmt.Sprint(tc.wantPeer) {
				t.Errorf("peers = %v, want %v", resp.Peers, tc.wantPeer)
			}
			if got := ft.actions(); fmt.Sprint(got) != fmt.Sprint([]uint32{udpActionConnect, udpActionAnnounce}) {
				t.Fatalf("tracker saw actions %v, want connect then announce", got)
			}
			conn := ft.packets(udpActionConnect)[0]
			if len(conn.data) != udpRequestHeaderLen || conn.connID != udpProtocolID {
				t.Errorf("connect request = %x", conn.data)
			}
			checkAnnouncePacket(t, ft.packets(udpActionAnnounce)[0], tc.connID, req, tc.numWant, tc.opts)
		})
	}
}

func TestUDPAnnounceBoundedPeers(t *testing.T) {
	// The largest IPv4 UDP payload: 20 header bytes and 10914 peers.
	var peers []byte
	for i := range 10914 {
		peers = append(peers, 10, byte(i>>16), byte(i>>8), byte(i), 0x1a, 0xe1)
	}
	body := announceBody(60, 10_000_000, 10_000_000, peers)
	for _, tc := range []struct {
		maxPeers, want int
	}{{0, DefaultMaxPeers}, {50, 50}, {20000, 10914}} {
		t.Run(fmt.Sprint(tc.maxPeers), func(t *testing.T) {
			ft := newFakeUDPTracker(t, "127.0.0.1", standardTracker(1, body))
			c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 2 * time.Second, UDPRetries: 3, MaxPeers: tc.maxPeers})
			resp, err := c.Announce(testCtx(t), testRequest())
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Peers) != tc.want || resp.Seeders != 10_000_000 || resp.Leechers != 10_000_000 {
				t.Errorf("got %d peers, %d seeders, %d leechers; want %d peers", len(resp.Peers), resp.Seeders, resp.Leechers, tc.want)
			}
		})
	}
}

func TestUDPConnectionIDReuse(t *testing.T) {
	// connIDTracker gives connection ids 1, 2, ... and records which
	// id each announce and scrape used.
	connIDTracker := func(onAnnounce func(ft *fakeUDPTracker, p udpPacket, n int) bool) func(*fakeUDPTracker, udpPacket) {
		var connects, announces int
		return func(ft *fakeUDPTracker, p udpPacket) {
			switch p.action {
			case udpActionConnect:
				connects++
				ft.reply(p, udpActionConnect, be64(uint64(connects)))
			case udpActionAnnounce:
				announces++
				if onAnnounce != nil && !onAnnounce(ft, p, announces) {
					return
				}
				ft.reply(p, udpActionAnnounce, announceBody(60, 1, 1, nil))
			case udpActionScrape:
				ft.reply(p, udpActionScrape, scrapeBody(p.data[16:]))
			}
		}
	}
	usedIDs := func(ft *fakeUDPTracker) []uint64 {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		var ids []uint64
		for _, p := range ft.got {
			if p.action != udpActionConnect {
				ids = append(ids, p.connID)
			}
		}
		return ids
	}

	t.Run("reused within a minute, renewed after", func(t *testing.T) {
		ft := newFakeUDPTracker(t, "127.0.0.1", connIDTracker(nil))
		c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 2 * time.Second, UDPRetries: 3})
		clock := new(fakeClock)
		c.now = clock.now
		ctx := testCtx(t)
		if _, err := c.Announce(ctx, testRequest()); err != nil {
			t.Fatal(err)
		}
		clock.advance(30 * time.Second)
		if _, err := c.Scrape(ctx, []metainfo.Hash{testHash(1)}); err != nil {
			t.Fatal(err)
		}
		clock.advance(29 * time.Second) // 59 s after the id came
		if _, err := c.Announce(ctx, testRequest()); err != nil {
			t.Fatal(err)
		}
		if n := len(ft.packets(udpActionConnect)); n != 1 {
			t.Fatalf("%d connects within a minute, want 1", n)
		}
		clock.advance(2 * time.Second) // expired
		if _, err := c.Announce(ctx, testRequest()); err != nil {
			t.Fatal(err)
		}
		if n := len(ft.packets(udpActionConnect)); n != 2 {
			t.Fatalf("%d connects after expiry, want 2", n)
		}
		if got, want := fmt.Sprint(usedIDs(ft)), "[1 1 1 2]"; got != want {
			t.Errorf("connection ids used = %s, want %s", got, want)
		}
	})

	t.Run("expired between retries", func(t *testing.T) {
		clock := new(fakeClock)
		// The first announce is lost, and meanwhile the id expires.
		ft := newFakeUDPTracker(t, "127.0.0.1", connIDTracker(func(ft *fakeUDPTracker, p udpPacket, n int) bool {
			if n == 1 {
				clock.advance(2 * time.Minute)
				return false
			}
			return true
		}))
		c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 300 * time.Millisecond, UDPRetries: 4})
		c.now = clock.now
		if _, err := c.Announce(testCtx(t), testRequest()); err != nil {
			t.Fatal(err)
		}
		want := []uint32{udpActionConnect, udpActionAnnounce, udpActionConnect, udpActionAnnounce}
		if got := ft.actions(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("actions = %v, want %v", got, want)
		}
		if got := fmt.Sprint(usedIDs(ft)); got != "[1 2]" {
			t.Errorf("connection ids used = %s, want [1 2]", got)
		}
		a := ft.packets(udpActionAnnounce)
		if a[0].tx != a[1].tx {
			t.Errorf("retransmission changed the transaction id")
		}
	})

	t.Run("dropped after an error reply", func(t *testing.T) {
		ft := newFakeUDPTracker(t, "127.0.0.1", connIDTracker(func(ft *fakeUDPTracker, p udpPacket, n int) bool {
			if n == 2 {
				ft.reply(p, udpActionError, []byte("connection id expired"))
				return false
			}
			return true
		}))
		c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 2 * time.Second, UDPRetries: 3})
		ctx := testCtx(t)
		for i := range 3 {
			_, err := c.Announce(ctx, testRequest())
			var fe *FailureError
			if (i == 1) != errors.As(err, &fe) {
				t.Fatalf("announce %d: %v", i, err)
			}
		}
		if got := fmt.Sprint(usedIDs(ft)); got != "[1 1 2]" {
			t.Errorf("connection ids used = %s, want [1 1 2]", got)
		}
	})

	t.Run("concurrent announces", func(t *testing.T) {
		ft := newFakeUDPTracker(t, "127.0.0.1", connIDTracker(nil))
		c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 2 * time.Second, UDPRetries: 3})
		ctx := testCtx(t)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := c.Announce(ctx, testRequest()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := len(ft.packets(udpActionAnnounce)); n != 8 {
			t.Errorf("%d announces, want 8", n)
		}
	})
}

func TestUDPRetransmit(t *testing.T) {
	tests := []struct {
		name       string
		dropAction uint32
	}{
		{"lost connects", udpActionConnect},
		{"lost announces", udpActionAnnounce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dropped := 0
			std := standardTracker(5, announceBody(60, 0, 0, nil))
			ft := newFakeUDPTracker(t, "127.0.0.1", func(ft *fakeUDPTracker, p udpPacket) {
				if p.action == tc.dropAction && dropped < 2 {
					dropped++
					return
				}
				std(ft, p)
			})
			c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 10 * time.Millisecond})
			if _, err := c.Announce(testCtx(t), testRequest()); err != nil {
				t.Fatal(err)
			}
			sent := ft.packets(tc.dropAction)
			if len(sent) != 3 {
				t.Fatalf("%s sent %d times, want 3", udpActionName(tc.dropAction), len(sent))
			}
			for _, p := range sent[1:] {
				if !bytes.Equal(p.data, sent[0].data) {
					t.Errorf("retransmission %x differs from %x", p.data, sent[0].data)
				}
			}
		})
	}
}

func TestUDPNoReply(t *testing.T) {
	tests := []struct {
		name    string
		connect bool // the tracker answers connects
		action  uint32
		msg     string
	}{
		{"silent tracker", false, udpActionConnect, "connect: no reply after 3 tries"},
		{"announce unanswered", true, udpActionAnnounce, "announce: no reply after 3 tries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := newFakeUDPTracker(t, "127.0.0.1", func(ft *fakeUDPTracker, p udpPacket) {
				if tc.connect && p.action == udpActionConnect {
					ft.reply(p, udpActionConnect, be64(3))
				}
			})
			c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 5 * time.Millisecond, UDPRetries: 3})
			_, err := c.Announce(testCtx(t), testRequest())
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("err %v is not a timeout net.Error", err)
			}
			if !strings.HasPrefix(err.Error(), "announce "+ft.url("/announce")+": ") {
				t.Errorf("err %q does not name the URL", err)
			}
			if n := len(ft.waitPackets(tc.action, 3)); n != 3 {
				t.Errorf("tracker received %d %s requests, want 3", n, udpActionName(tc.action))
			}
		})
	}
}

func TestUDPContext(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		ft := newFakeUDPTracker(t, "127.0.0.1", func(*fakeUDPTracker, udpPacket) {})
		c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: time.Hour, UDPRetries: 8})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Announce(ctx, testRequest())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		if n := len(ft.packets(udpActionConnect)); n > 1 {
			t.Errorf("%d connects sent, want 1", n)
		}
	})
	t.Run("cancel while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		ft := newFakeUDPTracker(t, "127.0.0.1", func(_ *fakeUDPTracker, p udpPacket) { cancel() })
		c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: time.Hour})
		_, err := c.Scrape(ctx, []metainfo.Hash{testHash(1)})
		if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "scrape ") {
			t.Fatalf("err = %v, want a wrapped context.Canceled", err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ft := newFakeUDPTracker(t, "127.0.0.1", standardTracker(1, announceBody(60, 0, 0, nil)))
		c := newTestUDPClient(t, ft.url("/announce"), Options{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.Announce(ctx, testRequest()); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestUDPIgnoresStrayDatagrams(t *testing.T) {
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	bad := netip.MustParseAddrPort("6.6.6.6:666")
	good := netip.MustParseAddrPort("1.2.3.4:5678")
	peersOf := func(p netip.AddrPort) []byte { return AppendCompact(nil, []netip.AddrPort{p}, false) }

	ft := newFakeUDPTracker(t, "127.0.0.1", func(ft *fakeUDPTracker, p udpPacket) {
		switch p.action {
		case udpActionConnect:
			ft.send(p.from, udpReplyBytes(udpActionConnect, p.tx+1, be64(666))) // wrong transaction id
			ft.reply(p, udpActionConnect, be64(77))
		case udpActionAnnounce:
			// From another port, right transaction id.
			if _, err := other.WriteToUDPAddrPort(udpReplyBytes(udpActionAnnounce, p.tx, announceBody(60, 9, 9, peersOf(bad))), p.from); err != nil {
				t.Error(err)
			}
			ft.send(p.from, udpReplyBytes(udpActionAnnounce, p.tx^0xffff, announceBody(60, 9, 9, peersOf(bad))))
			ft.send(p.from, []byte{1, 2, 3})                                              // too short to match
			ft.send(p.from, udpReplyBytes(udpActionScrape, p.tx, make([]byte, 12)))       // another action
			ft.send(p.from, udpReplyBytes(udpActionError, p.tx+1, []byte("not for you"))) // error, other transaction
			ft.reply(p, udpActionAnnounce, announceBody(60, 1, 2, peersOf(good)))
		}
	})
	c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 2 * time.Second, UDPRetries: 3})
	resp, err := c.Announce(testCtx(t), testRequest())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 1 || resp.Peers[0] != good || resp.Seeders != 2 {
		t.Errorf("response %+v, want the one from the tracker with the right transaction id", resp)
	}
	if id := ft.packets(udpActionAnnounce)[0].connID; id != 77 {
		t.Errorf("announce used connection id %d, want 77", id)
	}
	if n := len(ft.packets(udpActionAnnounce)); n != 1 {
		t.Errorf("%d announces, want 1", n)
	}
}

func TestUDPErrorAction(t *testing.T) {
	tests := []struct {
		name   string
		action uint32 // the request answered with an error
		msg    []byte
		reason string
	}{
		{"connect", udpActionConnect, []byte("no thanks"), "no thanks"},
		{"announce", udpActionAnnounce, []byte("unregistered torrent\x00"), "unregistered torrent"},
		{"scrape", udpActionScrape, []byte("scrape disabled"), "scrape disabled"},
		{"sanitised", udpActionAnnounce, []byte("  bad\x00torrent\xff\n\x1b[31mred\x00\x00"), "bad?torrent? ?[31mred"},
		{"empty", udpActionAnnounce, nil, "no reason given"},
		{"bounded", udpActionAnnounce, bytes.Repeat([]byte("x"), 10000), strings.Repeat("x", maxTrackerStringLen)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			std := standardTracker(5, announceBody(60, 0, 0, nil))
			ft := newFakeUDPTracker(t, "127.0.0.1", func(ft *fakeUDPTracker, p udpPacket) {
				if p.action == tc.action {
					ft.reply(p, udpActionError, tc.msg)
					return
				}
				std(ft, p)
			})
			c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 2 * time.Second, UDPRetries: 3})
			var err error
			if tc.action == udpActionScrape {
				_, err = c.Scrape(testCtx(t), []metainfo.Hash{testHash(1)})
			} else {
				_, err = c.Announce(testCtx(t), testRequest())
			}
			var fe *FailureError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FailureError", err)
			}
			if fe.Reason != tc.reason {
				t.Errorf("reason = %q, want %q", fe.Reason, tc.reason)
			}
			if _, ok := c.cachedConnID(ft.addr); ok {
				t.Errorf("connection id still cached after an error")
			}
		})
	}
}

func TestUDPBadReplies(t *testing.T) {
	tests := []struct {
		name   string
		ip     string
		action uint32
		body   []byte
	}{
		{"truncated connect reply", "127.0.0.1", udpActionConnect, []byte{1, 2, 3, 4}},
		{"truncated announce reply", "127.0.0.1", udpActionAnnounce, make([]byte, 11)},
		{"peers not a multiple of 6", "127.0.0.1", udpActionAnnounce, announceBody(60, 1, 1, make([]byte, 7))},
		{"6-byte peers from an IPv6 tracker", "::1", udpActionAnnounce, announceBody(60, 1, 1, []byte{1, 2, 3, 4, 5, 6})},
		{"scrape reply with fewer entries", "127.0.0.1", udpActionScrape, make([]byte, 11)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			std := standardTracker(5, announceBody(60, 0, 0, nil))
			ft := newFakeUDPTracker(t, tc.ip, func(ft *fakeUDPTracker, p udpPacket) {
				if p.action == tc.action {
					ft.reply(p, p.action, tc.body)
					return
				}
				std(ft, p)
			})
			c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 2 * time.Second, UDPRetries: 3})
			var err error
			if tc.action == udpActionScrape {
				_, err = c.Scrape(testCtx(t), []metainfo.Hash{testHash(1)})
			} else {
				_, err = c.Announce(testCtx(t), testRequest())
			}
			if !errors.Is(err, ErrBadReply) {
				t.Fatalf("err = %v, want ErrBadReply", err)
			}
			if n := len(ft.packets(tc.action)); n != 1 {
				t.Errorf("%d %s requests, want 1: a malformed reply is not retried", n, udpActionName(tc.action))
			}
		})
	}
}

func TestUDPScrape(t *testing.T) {
	hashes := func(n int) []metainfo.Hash {
		out := make([]metainfo.Hash, n)
		for i := range out {
			out[i] = testHash(byte(i))
			out[i][19] = byte(i >> 8)
		}
		return out
	}
	tests := []struct {
		name    string
		hashes  []metainfo.Hash
		packets []int // hashes per scrape packet
	}{
		{"none", nil, nil},
		{"one", hashes(1), []int{1}},
		{"74 in one packet", hashes(74), []int{74}},
		{"150 in three packets", hashes(150), []int{74, 74, 2}},
		{"duplicates asked once", append(hashes(3), hashes(3)...), []int{3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := newFakeUDPTracker(t, "127.0.0.1", standardTracker(11, nil))
			c := newTestUDPClient(t, ft.url("/announce"), Options{UDPBase: 2 * time.Second, UDPRetries: 3})
			got, err := c.Scrape(testCtx(t), tc.hashes)
			if err != nil {
				t.Fatal(err)
			}
			uniq := map[metainfo.Hash]bool{}
			for _, h := range tc.hashes {
				uniq[h] = true
				if r, ok := got[h]; !ok || r != scrapeOf(h) {
					t.Errorf("result for %s = %+v, %v; want %+v", h, r, ok, scrapeOf(h))
				}
			}
			if len(got) != len(uniq) {
				t.Errorf("%d results, want %d", len(got), len(uniq))
			}
			var sizes []int
			var asked []metainfo.Hash
			for _, p := range ft.packets(udpActionScrape) {
				if p.connID != 11 || (len(p.data)-udpRequestHeaderLen)%20 != 0 {
					t.Errorf("scrape packet %x", p.data)
				}
				sizes = append(sizes, (len(p.data)-udpRequestHeaderLen)/20)
				for i := udpRequestHeaderLen; i < len(p.data); i += 20 {
					asked = append(asked, metainfo.Hash(p.data[i:i+20]))
				}
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tc.packets) {
				t.Errorf("scrape packets of %v hashes, want %v", sizes, tc.packets)
			}
			if len(asked) != len(uniq) {
				t.Errorf("asked %d hashes, want %d", len(asked), len(uniq))
			}
			wantConnects := 1
			if len(tc.hashes) == 0 {
				wantConnects = 0
			}
			if n := len(ft.packets(udpActionConnect)); n != wantConnects {
				t.Errorf("%d connects, want %d", n, wantConnects)
			}
		})
	}
}

func TestNewUDPClientURL(t *testing.T) {
	tests := []struct {
		url  string
		ok   bool
		host string
		port uint16
	}{
		{"udp://tracker.example:6969/announce", true, "tracker.example", 6969},
		{"UDP://[::1]:1337", true, "::1", 1337},
		{"udp://127.0.0.1:80/announce?passkey=x", true, "127.0.0.1", 80},
		{"udp://tracker.example/announce", false, "", 0},
		{"udp://tracker.example:0/announce", false, "", 0},
		{"udp://tracker.example:70000/announce", false, "", 0},
		{"udp://:6969/announce", false, "", 0},
		{"udp://[::1]/announce", false, "", 0},
		{"udp://t.example:1/" + strings.Repeat("a", udpMaxURLData), false, "", 0},
	}
	for _, tc := range tests {
		c, err := New(tc.url, Options{})
		if (err == nil) != tc.ok {
			t.Errorf("New(%q): err = %v, want ok %v", tc.url, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		uc := c.(*udpClient)
		if uc.host != tc.host || uc.port != tc.port || c.URL() == "" {
			t.Errorf("New(%q) = host %q port %d URL %q", tc.url, uc.host, uc.port, c.URL())
		}
	}
}

func TestParseUDPConnectReply(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		want    uint64
		wantErr error
	}{
		{"ok", udpReplyBytes(0, 1, be64(0x1234)), 0x1234, nil},
		{"trailing bytes", udpReplyBytes(0, 1, be64(9), []byte{1, 2}), 9, nil},
		{"short", udpReplyBytes(0, 1, []byte{1, 2, 3}), 0, ErrBadReply},
		{"no header", []byte{0, 0, 0}, 0, ErrBadReply},
		{"wrong action", udpReplyBytes(1, 1, be64(9)), 0, ErrBadReply},
		{"error", udpReplyBytes(3, 1, []byte("nope")), 0, &FailureError{}},
	}
	for _, tc := range tests {
		got, err := ParseUDPConnectReply(tc.b)
		checkParseErr(t, tc.name, err, tc.wantErr)
		if got != tc.want {
			t.Errorf("%s: id = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func checkParseErr(t *testing.T, name string, err, want error) {
	t.Helper()
	var fe *FailureError
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: unexpected error %v", name, err)
	case want == nil:
	case errors.As(want, &fe):
		if !errors.As(err, &fe) {
			t.Errorf("%s: err = %v, want a *FailureError", name, err)
		}
	case !errors.Is(err, want):
		t.Errorf("%s: err = %v, want %v", name, err, want)
	}
}

func TestParseUDPAnnounceReply(t *testing.T) {
	v4 := AppendCompact(nil, []netip.AddrPort{netip.MustParseAddrPort("1.2.3.4:5"), netip.MustParseAddrPort("5.6.7.8:9")}, false)
	v6 := AppendCompact(nil, []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::5]:5")}, true)
	tests := []struct {
		name     string
		b        []byte
		v6       bool
		maxPeers int
		peers    int
		wantErr  error
	}{
		{"v4", udpReplyBytes(1, 0, announceBody(60, 1, 2, v4)), false, 0, 2, nil},
		{"v4 capped", udpReplyBytes(1, 0, announceBody(60, 1, 2, v4)), false, 1, 1, nil},
		{"v6", udpReplyBytes(1, 0, announceBody(60, 1, 2, v6)), true, 0, 1, nil},
		{"no peers", udpReplyBytes(1, 0, announceBody(60, 1, 2, nil)), true, 0, 0, nil},
		{"v4 peers read as v6", udpReplyBytes(1, 0, announceBody(60, 1, 2, v4)), true, 0, 0, ErrBadReply},
		// Three 6-byte entries, two of them with port 0.
		{"v6 peers read as v4", udpReplyBytes(1, 0, announceBody(60, 1, 2, v6)), false, 0, 1, nil},
		{"ragged", udpReplyBytes(1, 0, announceBody(60, 1, 2, v4[:7])), false, 0, 0, ErrBadReply},
		{"short", udpReplyBytes(1, 0, make([]byte, 11)), false, 0, 0, ErrBadReply},
		{"header only", udpReplyBytes(1, 0), false, 0, 0, ErrBadReply},
		{"empty", nil, false, 0, 0, ErrBadReply},
		{"scrape action", udpReplyBytes(2, 0, announceBody(60, 1, 2, nil)), false, 0, 0, ErrBadReply},
		{"error", udpReplyBytes(3, 0, []byte("bye")), false, 0, 0, &FailureError{}},
	}
	for _, tc := range tests {
		resp, err := ParseUDPAnnounceReply(tc.b, tc.v6, tc.maxPeers)
		checkParseErr(t, tc.name, err, tc.wantErr)
		if err == nil && len(resp.Peers) != tc.peers {
			t.Errorf("%s: %d peers, want %d", tc.name, len(resp.Peers), tc.peers)
		}
	}
}

func TestParseUDPScrapeReply(t *testing.T) {
	entry := func(s, c, l int32) []byte {
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(s)), uint32(c)), uint32(l))
	}
	tests := []struct {
		name    string
		b       []byte
		n       int
		want    []ScrapeResult
		wantErr error
	}{
		{"two", udpReplyBytes(2, 0, entry(1, 2, 3), entry(4, 5, 6)), 2, []ScrapeResult{{1, 2, 3}, {4, 5, 6}}, nil},
		{"negative counts", udpReplyBytes(2, 0, entry(-1, 2, -3)), 1, []ScrapeResult{{0, 2, 0}}, nil},
		{"trailing bytes", udpReplyBytes(2, 0, entry(1, 2, 3), []byte{9}), 1, []ScrapeResult{{1, 2, 3}}, nil},
		{"zero", udpReplyBytes(2, 0), 0, []ScrapeResult{}, nil},
		{"fewer entries", udpReplyBytes(2, 0, entry(1, 2, 3)), 2, nil, ErrBadReply},
		{"partial entry", udpReplyBytes(2, 0, entry(1, 2, 3)[:11]), 1, nil, ErrBadReply},
		{"negative n", udpReplyBytes(2, 0), -1, nil, ErrBadReply},
		{"huge n", udpReplyBytes(2, 0, entry(1, 2, 3)), 1 << 60, nil, ErrBadReply},
		{"announce action", udpReplyBytes(1, 0, entry(1, 2, 3)), 1, nil, ErrBadReply},
		{"error", udpReplyBytes(3, 0, []byte("no scrape")), 1, nil, &FailureError{}},
	}
	for _, tc := range tests {
		got, err := ParseUDPScrapeReply(tc.b, tc.n)
		checkParseErr(t, tc.name, err, tc.wantErr)
		if err == nil && fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
