package aiotorrent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
)

// Our seeder against raw wire peers on 127.0.0.1, built from the peer
// package: the allowed fast set (BEP 6), peers that break the protocol or
// abuse it (out-of-range requests, request floods, requests while choked,
// never reading their socket) while an honest leecher downloads, and the
// upload slots of the choker as seen from the wire.

// seedRig is our seeder on loopback: a Client of its own with the
// torrent started on complete data.
type seedRig struct {
	c       *aiotorrent.Client
	tor     *aiotorrent.Torrent
	d       *interopData
	content []byte // the torrent's content
	log     *seedLog
}

// startSeedRig starts a seeder of d's torrent with cfg (its address,
// trackers and logger are set here); it is closed when the test ends.
func startSeedRig(t *testing.T, d *interopData, cfg aiotorrent.Config) *seedRig {
	t.Helper()
	c, log := newSeedTestClient(t, "seeder", cfg)
	tor, err := c.Add(d.mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := tor.Start(aiotorrent.WithDir(d.copyData(t))); err != nil {
		t.Fatal(err)
	}
	if s := tor.Stats(); s.PiecesVerified != s.Pieces {
		t.Fatalf("seeder has %d of %d pieces", s.PiecesVerified, s.Pieces)
	}
	return &seedRig{c: c, tor: tor, d: d, content: seedContent(t, d), log: log}
}

// newSeedTestClient starts a Client on loopback with cfg, with no
// trackers and a debug log shown if the test fails; it is closed when the
// test ends.
func newSeedTestClient(t *testing.T, name string, cfg aiotorrent.Config) (*aiotorrent.Client, *seedLog) {
	t.Helper()
	log := &seedLog{}
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.NoTrackers = true
	cfg.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := aiotorrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
		if t.Failed() || os.Getenv("AIOTORRENT_INTEROP_LOGS") != "" {
			t.Logf("--- aiotorrent %s log:\n%s", name, &log.tail)
		}
	})
	return c, log
}

// seedLog keeps the tail of a client's log, and every "peer dropped"
// line whole, to tell which rule dropped a peer.
type seedLog struct {
	tail    logTail
	mu      sync.Mutex
	dropped []string // guarded by mu
}

func (l *seedLog) Write(b []byte) (int, error) {
	// slog's text handler writes one record per call.
	if bytes.Contains(b, []byte(`msg="peer dropped"`)) {
		l.mu.Lock()
		l.dropped = append(l.dropped, strings.TrimSpace(string(b)))
		l.mu.Unlock()
	}
	return l.tail.Write(b)
}

// dropReason returns the log line of the last drop of the peer at addr,
// or "" if none was logged.
func (l *seedLog) dropReason(addr netip.AddrPort) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range slices.Backward(l.dropped) {
		if strings.Contains(line, "addr="+addr.String()+" ") {
			return line
		}
	}
	return ""
}

// seedContent returns the torrent's content, as generated.
func seedContent(t *testing.T, d *interopData) []byte {
	t.Helper()
	b := make([]byte, d.mi.Info.Length)
	for _, f := range aiotorrent.FromMetaInfo(d.mi).Files() {
		data, err := os.ReadFile(filepath.Join(d.src, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		copy(b[f.Offset:], data)
	}
	return b
}

// dialWirePeer connects a wire peer to the seeder and does the handshake
// with a peer id of its own (the seeder refuses a second connection from
// one peer id), announcing the Fast extension if fast.
func dialWirePeer(t *testing.T, ctx context.Context, s *seedRig, name string, fast bool) *wirePeer {
	t.Helper()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp4", s.c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	w := newWirePeer(t, ctx, conn, s.d.mi)
	h := &peer.Handshake{InfoHash: s.d.mi.InfoHash}
	copy(h.PeerID[:], fmt.Sprintf("-WP0001-%-12.12s", name))
	if fast {
		h.Reserved.SetFast()
	}
	if err := peer.WriteHandshake(conn, h); err != nil {
		t.Fatalf("write handshake: %v", err)
	}
	got, err := peer.ReadHandshake(conn)
	if err != nil {
		t.Fatalf("read handshake: %v", err)
	}
	if got.InfoHash != s.d.mi.InfoHash {
		t.Fatalf("handshake for %x, want %s", got.InfoHash, s.d.mi.InfoHash)
	}
	return w
}

// wireAddr is the wire peer's address, as the seeder sees it.
func wireAddr(w *wirePeer) netip.AddrPort {
	return w.conn.LocalAddr().(*net.TCPAddr).AddrPort()
}

// peerState returns the seeder's view of the peer at addr, and whether
// it is connected.
func (s *seedRig) peerState(addr netip.AddrPort) (aiotorrent.PeerStats, bool) {
	for _, p := range s.tor.Stats().PeerList {
		if p.Addr == addr {
			return p, true
		}
	}
	return aiotorrent.PeerStats{}, false
}

// waitPeer waits up to within for the seeder's view of the peer at addr
// to satisfy ok, and reports whether it did.
func (s *seedRig) waitPeer(addr netip.AddrPort, within time.Duration, ok func(p aiotorrent.PeerStats, connected bool) bool) bool {
	deadline := time.Now().Add(within)
	for {
		if p, c := s.peerState(addr); ok(p, c) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkDropReason fails the test unless the seeder logged dropping the
// peer at addr for a reason containing want. The seeder logs once it has
// closed the connection: the line may come a moment after the peer sees
// the close.
func (s *seedRig) checkDropReason(t *testing.T, addr netip.AddrPort, want string) {
	t.Helper()
	line := s.log.dropReason(addr)
	for deadline := time.Now().Add(2 * time.Second); line == "" && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		line = s.log.dropReason(addr)
	}
	if !strings.Contains(line, want) {
		t.Errorf("seeder dropped %v: %q, want a reason containing %q", addr, line, want)
		return
	}
	t.Logf("seeder: %s", line)
}

// seedReq is the place of a request: a block, or any range of a piece.
type seedReq struct{ index, begin, length uint32 }

func appendReqs(b []byte, typ peer.Type, reqs ...seedReq) []byte {
	for _, r := range reqs {
		b = peer.AppendRequest(b, typ, r.index, r.begin, r.length)
	}
	return b
}

// pieceBlocks returns the blocks of the given pieces, in order.
func pieceBlocks(info *metainfo.Info, pieces ...uint32) []seedReq {
	var out []seedReq
	for _, i := range pieces {
		size := uint32(info.PieceSize(int(i)))
		for b := uint32(0); b < size; b += peer.BlockSize {
			out = append(out, seedReq{i, b, min(peer.BlockSize, size-b)})
		}
	}
	return out
}

// allPieces returns 0 to n-1.
func allPieces(n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i)
	}
	return out
}

// checkBlock fails the test unless a Piece message carries the content
// at its place, of the length asked.
func (s *seedRig) checkBlock(t *testing.T, m *peer.Message, want seedReq) {
	t.Helper()
	if m.Index != want.index || m.Begin != want.begin || len(m.Payload) != int(want.length) {
		t.Fatalf("block %d/%d of %d bytes, want %d/%d of %d", m.Index, m.Begin, len(m.Payload), want.index, want.begin, want.length)
	}
	off := int64(m.Index)*s.d.mi.Info.PieceLength + int64(m.Begin)
	if !bytes.Equal(m.Payload, s.content[off:off+int64(len(m.Payload))]) {
		t.Fatalf("block %d/%d: wrong data", m.Index, m.Begin)
	}
}

// answers counts the seeder's answers to requests.
type answers struct {
	pieces, rejects int
	other           map[peer.Type]int // other messages
}

// readAnswers reads messages until every request in want (a multiset:
// how many times each was asked) has had one answer, a block with the
// right data or a reject, and fails the test on an answer to nothing
// asked. pause, if not zero, is slept after each block: a slow reader.
func (s *seedRig) readAnswers(t *testing.T, w *wirePeer, want map[seedReq]int, pause time.Duration) answers {
	t.Helper()
	left := 0
	for _, n := range want {
		left += n
	}
	a := answers{other: map[peer.Type]int{}}
	var m peer.Message
	for left > 0 {
		if err := w.r.ReadMessage(&m); err != nil {
			t.Fatalf("%d answers missing (%d blocks, %d rejects and %v so far): %v", left, a.pieces, a.rejects, a.other, err)
		}
		switch m.Type {
		case peer.Piece, peer.Reject:
		default:
			a.other[m.Type]++
			continue
		}
		r := seedReq{m.Index, m.Begin, m.Length}
		if want[r] == 0 {
			t.Fatalf("%s for %d/%d of %d bytes: not asked (or already answered)", m.Type, m.Index, m.Begin, m.Length)
		}
		want[r]--
		left--
		if m.Type == peer.Reject {
			a.rejects++
			continue
		}
		s.checkBlock(t, &m, r)
		a.pieces++
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	return a
}

// nothingMore fails the test if a block or a reject comes within d.
func nothingMore(t *testing.T, w *wirePeer, d time.Duration) {
	t.Helper()
	w.conn.SetReadDeadline(time.Now().Add(d))
	defer w.conn.SetReadDeadline(time.Time{})
	var m peer.Message
	for {
		err := w.r.ReadMessage(&m)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		if err != nil {
			t.Fatalf("waiting for nothing more: %v", err)
		}
		if m.Type == peer.Piece || m.Type == peer.Reject {
			t.Fatalf("%s for %d/%d after every request was answered", m.Type, m.Index, m.Begin)
		}
	}
}

// waitDropped reads until the seeder closes the connection, failing the
// test if it has not within d; it returns the types of the messages read
// meanwhile.
func waitDropped(t *testing.T, w *wirePeer, d time.Duration) map[peer.Type]int {
	t.Helper()
	w.conn.SetReadDeadline(time.Now().Add(d))
	got := map[peer.Type]int{}
	var m peer.Message
	for {
		err := w.r.ReadMessage(&m)
		switch {
		case err == nil:
			got[m.Type]++
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("not dropped within %v; received %v", d, got)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
			return got
		default:
			t.Fatalf("waiting for the seeder to close the connection: %v; received %v", err, got)
		}
	}
}

// startHonestLeecher starts our own Client downloading the torrent from
// the seeder at a limited rate, so that it lasts while the hostile peers
// do their work, and waits until the first blocks arrive. The function
// returned waits for the download and checks the data byte for byte.
func startHonestLeecher(t *testing.T, ctx context.Context, s *seedRig) func() {
	t.Helper()
	c, _ := newSeedTestClient(t, "honest leecher", aiotorrent.Config{})
	c.SetDownloadLimit(honestRate)
	tor, err := c.Add(s.d.mi)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	done := make(chan error, 1)
	go func() { done <- tor.DownloadAll(ctx, aiotorrent.WithDir(dst)) }()
	tor.AddPeers(s.c.Addr().(*net.TCPAddr).AddrPort())
	for tor.Stats().Downloaded == 0 {
		select {
		case err := <-done:
			t.Fatalf("honest leecher ended before it started: %v", err)
		case <-ctx.Done():
			t.Fatalf("honest leecher: no block yet: %v", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return func() {
		t.Helper()
		if err := <-done; err != nil {
			t.Fatalf("honest leecher: %v; its stats %+v", err, tor.Stats())
		}
		s.d.checkSame(t, dst)
	}
}

// honestRate is the honest leecher's download limit: the 8 MiB torrent
// takes it about 2 s.
const honestRate = 4 << 20

// heapWatch samples the heap in use while a hostile peer works.
type heapWatch struct {
	base     uint64
	most     atomic.Uint64
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// watchHeap takes a baseline (after a GC) and samples HeapInuse every
// 50 ms until end (or the test's end).
func watchHeap(t *testing.T) *heapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapWatch{base: ms.HeapInuse, stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { h.end() })
	h.most.Store(ms.HeapInuse)
	go func() {
		defer close(h.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.most.Load() {
				h.most.Store(ms.HeapInuse)
			}
		}
	}()
	return h
}

// end stops sampling and returns the most the heap grew above the
// baseline.
func (h *heapWatch) end() uint64 {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
	return h.most.Load() - h.base
}

// maxHeapGrowth bounds the heap's growth while a peer that never reads
// floods the seeder with requests: the seeder's read cache and the honest
// leecher's buffers (16 MiB each at most) take some; answers queued
// without bound for the flood would take far more.
const maxHeapGrowth = 64 << 20

// TestSeederAllowedFast: a Fast peer that is never unchoked (it does not
// say it is interested) gets the canonical allowed fast set (BEP 6) for
// its address, is served every block of those pieces, and gets a reject
// for any other piece; a torrent of no more pieces than the set's size
// has no set.
func TestSeederAllowedFast(t *testing.T) {
	const pieceLen = 32 << 10
	cases := []struct {
		pieces int
		set    bool // an allowed fast set is given
	}{
		{pieces: 64, set: true},
		{pieces: 11, set: true}, // every piece but one
		{pieces: 10, set: false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d pieces", tc.pieces), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			d := makeData(t, fmt.Sprintf("allowed-fast-%d", tc.pieces), pieceLen,
				[]interopFile{{"a.bin", tc.pieces*pieceLen - 1000}})
			info := &d.mi.Info
			if info.NumPieces() != tc.pieces {
				t.Fatalf("torrent of %d pieces, want %d", info.NumPieces(), tc.pieces)
			}
			s := startSeedRig(t, d, aiotorrent.Config{})
			want := peer.AllowedFastSet(netip.MustParseAddr("127.0.0.1"), d.mi.InfoHash, tc.pieces, 10)
			if tc.set != (len(want) == 10) {
				t.Fatalf("AllowedFastSet gives %v", want)
			}
			other := uint32(0) // a piece not in the set
			for slices.Contains(want, other) {
				other++
			}

			w := dialWirePeer(t, ctx, s, "allowed-fast", true)
			// The seeder queues the set when the peer connects: all of it
			// comes before the answer to a first request.
			probe := seedReq{other, 0, peer.BlockSize}
			w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}), appendReqs(nil, peer.Request, probe))
			var got []uint32
			var m peer.Message
		probing:
			for {
				if err := w.r.ReadMessage(&m); err != nil {
					t.Fatalf("waiting for the answer to the first request: %v; allowed fast so far %v", err, got)
				}
				switch m.Type {
				case peer.AllowedFast:
					got = append(got, m.Index)
				case peer.Reject:
					if (seedReq{m.Index, m.Begin, m.Length}) != probe {
						t.Fatalf("reject of %d/%d/%d, want %v", m.Index, m.Begin, m.Length, probe)
					}
					break probing
				case peer.Piece:
					t.Fatalf("piece %d (not allowed fast) sent to a choked peer", m.Index)
				case peer.Unchoke:
					t.Fatal("unchoked a peer that is not interested")
				}
			}
			slices.Sort(got)
			sorted := slices.Sorted(slices.Values(want))
			if !slices.Equal(got, sorted) {
				t.Fatalf("allowed fast %v, want the canonical set %v", got, sorted)
			}
			t.Logf("allowed fast set %v", want)

			// Every block of the set while choked, then the other piece
			// again.
			reqs := pieceBlocks(info, want...)
			asked := map[seedReq]int{}
			for _, r := range reqs {
				asked[r]++
			}
			w.send(appendReqs(nil, peer.Request, reqs...))
			a := s.readAnswers(t, w, asked, 0)
			if a.rejects != 0 || a.pieces != len(reqs) || a.other[peer.Unchoke] != 0 {
				t.Fatalf("choked, asking %d blocks of allowed fast pieces: %d blocks, %d rejects, other %v",
					len(reqs), a.pieces, a.rejects, a.other)
			}
			w.send(appendReqs(nil, peer.Request, pieceBlocks(info, other)...))
			asked = map[seedReq]int{}
			for _, r := range pieceBlocks(info, other) {
				asked[r]++
			}
			a = s.readAnswers(t, w, asked, 0)
			if a.pieces != 0 {
				t.Fatalf("piece %d, not allowed fast, sent to a choked peer", other)
			}
			nothingMore(t, w, 200*time.Millisecond)
			if p, ok := s.peerState(wireAddr(w)); !ok || p.Unchoked || p.Interested {
				t.Errorf("seeder's view of the peer: connected %v, %+v; want connected, choked, not interested", ok, p)
			}
		})
	}
}

// hostilePieceLength is the piece size of the hostile leecher tests'
// torrent: 8 MiB less some, in pieces of four blocks, the last one short.
const hostilePieceLength = 64 << 10

// TestSeederHostileLeechers: peers that break or abuse the protocol are
// dropped (or refused what they ask beyond bounds) while an honest
// leecher downloads from the same seeder; the honest download completes
// byte for byte, the seeder keeps running, and its memory stays bounded
// when a peer never reads.
func TestSeederHostileLeechers(t *testing.T) {
	d := makeData(t, "seed-hostile", hostilePieceLength, []interopFile{{"a.bin", 8<<20 - 12345}})
	cases := []struct {
		name   string
		cfg    aiotorrent.Config
		memory bool // watch the heap
		run    func(t *testing.T, ctx context.Context, s *seedRig)
	}{
		{name: "bad messages", run: hostileBadMessages},
		{name: "request flood", run: hostileRequestFlood},
		{name: "requests while choked", run: hostileChokedRequests},
		// The default idle timeout (3 min): only the backlog rule can
		// drop it in time.
		{name: "never reads/fast", memory: true, run: hostileNeverReadsFast},
		{name: "never reads/not fast", cfg: aiotorrent.Config{IdleTimeout: 2 * time.Second}, memory: true, run: hostileNeverReadsNotFast},
		{name: "never reads/toggles interest", memory: true, run: hostileInterestToggles},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			s := startSeedRig(t, d, tc.cfg)
			honest := startHonestLeecher(t, ctx, s)
			var heap *heapWatch
			if tc.memory {
				heap = watchHeap(t)
			}
			tc.run(t, ctx, s)
			if heap != nil {
				grew := heap.end()
				t.Logf("heap in use grew by at most %.1f MiB", float64(grew)/(1<<20))
				if grew > maxHeapGrowth {
					t.Errorf("heap in use grew by %d MiB, more than %d MiB", grew>>20, maxHeapGrowth>>20)
				}
			}
			honest()
			st := s.tor.Stats()
			if !st.Running || st.Err != nil {
				t.Errorf("seeder: running %v, error %v", st.Running, st.Err)
			}
			t.Logf("seeder uploaded %d bytes", st.Uploaded)
		})
	}
}

// unchokedWirePeer connects a wire peer that says it has nothing and is
// interested, waits for the unchoke and has a first block served.
func unchokedWirePeer(t *testing.T, ctx context.Context, s *seedRig, name string, fast bool) *wirePeer {
	t.Helper()
	w := dialWirePeer(t, ctx, s, name, fast)
	if fast {
		w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}))
	}
	w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.Interested}))
	w.waitFor("unchoke", func(m *peer.Message) bool { return m.Type == peer.Unchoke })
	first := seedReq{0, 0, peer.BlockSize}
	w.send(appendReqs(nil, peer.Request, first))
	if a := s.readAnswers(t, w, map[seedReq]int{first: 1}, 0); a.pieces != 1 {
		t.Fatalf("first request of an unchoked peer: %+v", a)
	}
	return w
}

// hostileBadMessages: an unchoked peer sends one malformed message, a
// request or cancel outside the torrent or of a bad length (the peer
// package's reader refuses any block but 1 to 16 KiB within its piece),
// or a Fast extension message without the extension: it is dropped. A
// request of an odd place or size within a piece is served.
func hostileBadMessages(t *testing.T, ctx context.Context, s *seedRig) {
	info := &s.d.mi.Info
	n := uint32(info.NumPieces())
	last := n - 1
	lastSize := uint32(info.PieceSize(int(last)))
	plen := uint32(info.PieceLength)
	req := func(i, b, l uint32) []byte { return peer.AppendRequest(nil, peer.Request, i, b, l) }
	cases := []struct {
		name    string
		notFast bool
		msg     []byte
		served  *seedReq // nil: dropped
	}{
		{name: "index = pieces", msg: req(n, 0, peer.BlockSize)},
		{name: "index 2^32-1", msg: req(1<<32-1, 0, peer.BlockSize)},
		{name: "past the piece end", msg: req(0, plen-peer.BlockSize/2, peer.BlockSize)},
		{name: "begin = piece length", msg: req(1, plen, 1)},
		{name: "past the last piece end", msg: req(last, lastSize-100, 101)},
		{name: "begin+length overflows", msg: req(0, 1<<32-peer.BlockSize/2, peer.BlockSize)},
		{name: "length 0", msg: req(0, 0, 0)},
		{name: "length 16 KiB + 1", msg: req(0, 0, peer.BlockSize+1)},
		{name: "length 32 KiB", msg: req(0, 0, 32<<10)},
		{name: "length 128 KiB", msg: req(0, 0, 128<<10)},
		{name: "whole piece", msg: req(2, 0, plen)},
		{name: "cancel past the piece end", msg: peer.AppendRequest(nil, peer.Cancel, 0, plen, peer.BlockSize)},
		{name: "cancel of piece = pieces", msg: peer.AppendRequest(nil, peer.Cancel, n, 0, peer.BlockSize)},
		{name: "have of piece = pieces", msg: peer.AppendHave(nil, peer.Have, n)},
		{name: "have none without fast", notFast: true, msg: peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone})},
		{name: "reject without fast", notFast: true, msg: peer.AppendRequest(nil, peer.Reject, 0, 0, peer.BlockSize)},
		{name: "allowed fast without fast", notFast: true, msg: peer.AppendHave(nil, peer.AllowedFast, 0)},
		// Within bounds: served.
		{name: "unaligned block", msg: req(1, 1, peer.BlockSize), served: &seedReq{1, 1, peer.BlockSize}},
		{name: "last byte", msg: req(last, lastSize-1, 1), served: &seedReq{last, lastSize - 1, 1}},
		{name: "short last block", msg: req(last, lastSize/peer.BlockSize*peer.BlockSize, lastSize%peer.BlockSize),
			served: &seedReq{last, lastSize / peer.BlockSize * peer.BlockSize, lastSize % peer.BlockSize}},
	}
	for k, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := unchokedWirePeer(t, ctx, s, fmt.Sprintf("bad-%d", k), !tc.notFast)
			addr := wireAddr(w)
			w.send(tc.msg)
			if tc.served != nil {
				if a := s.readAnswers(t, w, map[seedReq]int{*tc.served: 1}, 0); a.pieces != 1 {
					t.Fatalf("answers %+v, want the block", a)
				}
				if _, ok := s.peerState(addr); !ok {
					t.Fatal("dropped")
				}
				return
			}
			got := waitDropped(t, w, 5*time.Second)
			if got[peer.Piece] != 0 {
				t.Errorf("received %v before being dropped", got)
			}
			if _, ok := s.peerState(addr); ok {
				t.Error("the connection closed, but the seeder still lists the peer")
			}
			s.checkDropReason(t, addr, "bad peer message")
		})
	}
}

// hostileRequestFlood: an unchoked Fast peer asks thousands of blocks at
// once and reads slowly: the seeder queues up to its limit (1024), rejects
// the rest, answers each request once, and keeps the peer.
func hostileRequestFlood(t *testing.T, ctx context.Context, s *seedRig) {
	const flood = 5000
	const queue = 1024 // maxPeerRequests
	w := unchokedWirePeer(t, ctx, s, "flood", true)
	all := pieceBlocks(&s.d.mi.Info, allPieces(s.d.mi.Info.NumPieces())...)
	asked := map[seedReq]int{}
	var b []byte
	for k := range flood {
		r := all[k%len(all)]
		asked[r]++
		b = appendReqs(b, peer.Request, r)
	}
	start := time.Now()
	w.send(b)
	a := s.readAnswers(t, w, asked, time.Millisecond)
	nothingMore(t, w, 300*time.Millisecond)
	t.Logf("%d requests at once, read slowly: %d blocks and %d rejects in %v",
		flood, a.pieces, a.rejects, time.Since(start).Round(time.Millisecond))
	if a.pieces < queue {
		t.Errorf("%d blocks served, want at least the queue's %d", a.pieces, queue)
	}
	if a.rejects == 0 {
		t.Errorf("no request rejected of %d: the queue is not bounded", flood)
	}
	// Still served.
	r := seedReq{3, peer.BlockSize, peer.BlockSize}
	w.send(appendReqs(nil, peer.Request, r))
	if a := s.readAnswers(t, w, map[seedReq]int{r: 1}, 0); a.pieces != 1 {
		t.Errorf("after the flood: %+v, want the block", a)
	}
}

// hostileChokedRequests: peers that are never unchoked (they do not say
// they are interested) and request anyway.
func hostileChokedRequests(t *testing.T, ctx context.Context, s *seedRig) {
	const limit = 1024 // maxChokedRequests
	info := &s.d.mi.Info
	allowed := peer.AllowedFastSet(netip.MustParseAddr("127.0.0.1"), s.d.mi.InfoHash, info.NumPieces(), 10)
	var others []uint32 // pieces not allowed fast
	for i := range uint32(info.NumPieces()) {
		if !slices.Contains(allowed, i) {
			others = append(others, i)
		}
	}
	otherBlocks := pieceBlocks(info, others...)
	nth := func(blocks []seedReq, n int) ([]seedReq, map[seedReq]int) {
		reqs := make([]seedReq, n)
		asked := map[seedReq]int{}
		for k := range reqs {
			reqs[k] = blocks[k%len(blocks)]
			asked[reqs[k]]++
		}
		return reqs, asked
	}

	// Without the Fast extension it hears nothing back, and is dropped
	// once past the limit.
	t.Run("not fast", func(t *testing.T) {
		w := dialWirePeer(t, ctx, s, "choked-plain", false)
		addr := wireAddr(w)
		reqs, _ := nth(otherBlocks, limit+100)
		w.send(appendReqs(nil, peer.Request, reqs...))
		got := waitDropped(t, w, 10*time.Second)
		if got[peer.Piece] != 0 || got[peer.Reject] != 0 || got[peer.Unchoke] != 0 {
			t.Errorf("received %v, want no block, no reject (not a Fast peer), no unchoke", got)
		}
		s.checkDropReason(t, addr, "keeps requesting while choked")
	})

	// With it, each is rejected; the limit-th is the last one allowed.
	t.Run("fast", func(t *testing.T) {
		w := dialWirePeer(t, ctx, s, "choked-fast", true)
		addr := wireAddr(w)
		w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}))
		reqs, asked := nth(otherBlocks, limit)
		w.send(appendReqs(nil, peer.Request, reqs...))
		a := s.readAnswers(t, w, asked, 0)
		if a.pieces != 0 || a.rejects != limit || a.other[peer.Unchoke] != 0 {
			t.Fatalf("%d requests while choked: %d blocks, %d rejects, other %v; want %d rejects", limit, a.pieces, a.rejects, a.other, limit)
		}
		if _, ok := s.peerState(addr); !ok {
			t.Fatalf("dropped after %d requests while choked, want after %d", limit, limit+1)
		}
		w.send(appendReqs(nil, peer.Request, otherBlocks[0]))
		got := waitDropped(t, w, 5*time.Second)
		if got[peer.Piece] != 0 || got[peer.Reject] > 1 {
			t.Errorf("received %v after the request past the limit", got)
		}
		s.checkDropReason(t, addr, "keeps requesting while choked")
	})

	// Requests for allowed fast pieces are served while choked, up to
	// twice the set's worth (a peer may lose a piece and ask again);
	// past that they are rejected like any other.
	t.Run("fast, allowed fast pieces", func(t *testing.T) {
		w := dialWirePeer(t, ctx, s, "choked-allowed", true)
		addr := wireAddr(w)
		w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}))
		set := pieceBlocks(info, allowed...)
		reqs, asked := nth(set, 3*len(set))
		w.send(appendReqs(nil, peer.Request, reqs...))
		a := s.readAnswers(t, w, asked, 0)
		t.Logf("%d requests for allowed fast pieces while choked: %d blocks, %d rejects", len(reqs), a.pieces, a.rejects)
		// Twice the set's worth is twice 10 whole pieces: a little more
		// than twice the set when its pieces include the short last one.
		if a.pieces < 2*len(set) || a.pieces >= 3*len(set) || a.pieces+a.rejects != 3*len(set) || a.other[peer.Unchoke] != 0 {
			t.Fatalf("%d blocks, %d rejects, other messages %v; want %d blocks or a few more, the rest rejected, and no unchoke",
				a.pieces, a.rejects, a.other, 2*len(set))
		}
		r := otherBlocks[0]
		w.send(appendReqs(nil, peer.Request, r))
		if a := s.readAnswers(t, w, map[seedReq]int{r: 1}, 0); a.rejects != 1 {
			t.Fatalf("a piece not allowed fast: %+v, want a reject", a)
		}
		if _, ok := s.peerState(addr); !ok {
			t.Fatal("dropped")
		}
	})
}

// floodUnread has an unchoked peer that never reads its socket send
// requests for every block in turn until the write fails (the seeder
// closed the connection), most requests were sent, or stop is closed;
// every batch after the first, after pause. It returns the requests
// written and the error that ended it.
func floodUnread(w *wirePeer, info *metainfo.Info, batch, most int, pause time.Duration, stop <-chan struct{}) (int, error) {
	all := pieceBlocks(info, allPieces(info.NumPieces())...)
	var buf []byte
	sent := 0
	for sent < most {
		if sent > 0 && pause > 0 {
			select {
			case <-stop:
				return sent, nil
			case <-time.After(pause):
			}
		}
		select {
		case <-stop:
			return sent, nil
		default:
		}
		buf = buf[:0]
		for k := range batch {
			buf = appendReqs(buf, peer.Request, all[(sent+k)%len(all)])
		}
		if _, err := w.conn.Write(buf); err != nil {
			return sent, err
		}
		sent += batch
	}
	return sent, nil
}

// neverReads runs a peer that says it is interested, waits (from the
// seeder's stats: it reads nothing) to be unchoked, and then floods
// requests without reading; it checks the seeder drops it within d, for
// a reason containing why.
func neverReads(t *testing.T, ctx context.Context, s *seedRig, fast bool, batch, most int, pause, d time.Duration, why string) {
	name := "unread-plain"
	if fast {
		name = "unread-fast"
	}
	w := dialWirePeer(t, ctx, s, name, fast)
	addr := wireAddr(w)
	if fast {
		w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}))
	}
	w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.Interested}))
	if !s.waitPeer(addr, 5*time.Second, func(p aiotorrent.PeerStats, ok bool) bool { return ok && p.Unchoked }) {
		t.Fatal("not unchoked")
	}
	stop := make(chan struct{})
	type result struct {
		sent int
		err  error
	}
	res := make(chan result, 1)
	start := time.Now()
	go func() {
		n, err := floodUnread(w, &s.d.mi.Info, batch, most, pause, stop)
		res <- result{n, err}
	}()
	dropped := s.waitPeer(addr, d, func(_ aiotorrent.PeerStats, ok bool) bool { return !ok })
	took := time.Since(start)
	if !dropped {
		close(stop)
		r := <-res
		t.Fatalf("not dropped within %v: %d requests sent (%v)", d, r.sent, r.err)
	}
	// The flood's next writes fail: the connection is closed.
	var r result
	select {
	case r = <-res:
	case <-time.After(10 * time.Second):
		close(stop)
		r = <-res
		t.Errorf("writes still succeed 10 s after the drop")
	}
	t.Logf("dropped after %v and %d requests (the flood ended with %v)", took.Round(time.Millisecond), r.sent, r.err)
	s.checkDropReason(t, addr, why)
}

// hostileNeverReadsFast: a Fast peer that never reads gets a reject for
// each request past the queue; the rejects pile up unsent, and past
// 1 MiB of them the peer is dropped at its next request.
func hostileNeverReadsFast(t *testing.T, ctx context.Context, s *seedRig) {
	// 1024 queued, then about 62,000 rejects make a MiB; the most is a
	// bound for when the rule fails: its rejects would take 64 MiB.
	neverReads(t, ctx, s, true, 1000, 4_000_000, 0, 30*time.Second, "faster than it reads our answers")
}

// hostileNeverReadsNotFast: a peer without the Fast extension hears
// nothing of the requests past the queue; the seeder's writer blocks on
// the full socket and the peer is dropped once a write has waited for
// the idle timeout (2 s here). The peer goes on sending requests, so that
// it is not dropped for sending nothing.
func hostileNeverReadsNotFast(t *testing.T, ctx context.Context, s *seedRig) {
	neverReads(t, ctx, s, false, 2000, 1_000_000, 100*time.Millisecond, 20*time.Second, "i/o timeout")
}

// hostileInterestToggles: a Fast peer that does not read says interested
// and not interested again and again. Each time the seeder unchokes it
// (with suggestions of the pieces in its read cache) and chokes it:
// about 46 bytes queued for every 10 bytes received. It must be dropped,
// or what is queued for it stay bounded like answers to requests.
func hostileInterestToggles(t *testing.T, ctx context.Context, s *seedRig) {
	const (
		pairs     = 500_000  // interested, not interested: 5 MB
		maxQueued = 10 << 20 // the backlog rule's MiB, and socket buffers
	)
	info := &s.d.mi.Info
	w := dialWirePeer(t, ctx, s, "toggler", true)
	addr := wireAddr(w)
	// Its allowed fast pieces first: in the seeder's read cache, and
	// still lacked by the peer, they are suggested at each unchoke.
	blocks := pieceBlocks(info, peer.AllowedFastSet(netip.MustParseAddr("127.0.0.1"), s.d.mi.InfoHash, info.NumPieces(), 10)...)
	asked := map[seedReq]int{}
	for _, r := range blocks {
		asked[r]++
	}
	w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}), appendReqs(nil, peer.Request, blocks...))
	s.readAnswers(t, w, asked, 0)

	var batch []byte
	for range 1000 {
		batch = peer.AppendMessage(batch, &peer.Message{Type: peer.Interested})
		batch = peer.AppendMessage(batch, &peer.Message{Type: peer.NotInterested})
	}
	start := time.Now()
	for sent := 0; sent < pairs; sent += 1000 {
		if _, err := w.conn.Write(batch); err != nil {
			t.Logf("dropped after %d toggles in %v (%v): %s", sent, time.Since(start).Round(time.Millisecond), err, s.log.dropReason(addr))
			return
		}
	}
	// Then it reads: what the seeder queued comes before the answer to
	// a last request.
	probe := blocks[0]
	w.send(appendReqs(nil, peer.Request, probe))
	queued := 0
	got := map[peer.Type]int{}
	var m peer.Message
	var buf []byte
	for {
		err := w.r.ReadMessage(&m)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			t.Logf("dropped after %d toggles: %s", pairs, s.log.dropReason(addr))
			return
		}
		if err != nil {
			t.Fatalf("reading what was queued: %v", err)
		}
		if m.Type == peer.Piece && (seedReq{m.Index, m.Begin, m.Length}) == probe {
			break
		}
		buf = peer.AppendMessage(buf[:0], &m)
		queued += len(buf)
		got[m.Type]++
	}
	t.Logf("%d toggles in %v; then %d bytes were waiting for the peer: %v", pairs, time.Since(start).Round(time.Millisecond), queued, got)
	if queued > maxQueued {
		t.Errorf("the seeder queued %.1f MiB for a peer that did not read (bound %d MiB)", float64(queued)/(1<<20), maxQueued>>20)
	}
}

// TestSeederStalledPeerLosesSlot: peers that say they are interested,
// request a lot and never read take a few MiB (the socket buffers) in the
// second after their unchoke, then nothing. A choking round later, none of
// them may still hold a regular upload slot while another interested peer
// waits choked. (Ranked by a decaying average of their upload rate, and
// winning ties as peers already unchoked, they used to keep it until the
// write timeout dropped them; five such peers starved an honest leecher
// of every slot but the optimistic one for 10 to 52 s.)
func TestSeederStalledPeerLosesSlot(t *testing.T) {
	const stalled = 3
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	d := makeData(t, "seed-hostile", hostilePieceLength, []interopFile{{"a.bin", 8<<20 - 12345}})
	s := startSeedRig(t, d, aiotorrent.Config{UploadSlots: 1})
	start := time.Now() // the torrent's first choking round comes a second later, the second 10 s after that
	all := pieceBlocks(&d.mi.Info, allPieces(d.mi.Info.NumPieces())...)
	var reqs []seedReq // within the queue's bound: never rejected, never dropped
	for k := range 1000 {
		reqs = append(reqs, all[k%len(all)])
	}
	for k := range stalled {
		w := dialWirePeer(t, ctx, s, fmt.Sprintf("stalled-%d", k), true)
		w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}),
			peer.AppendMessage(nil, &peer.Message{Type: peer.Interested}),
			appendReqs(nil, peer.Request, reqs...))
	}
	// After the first round, with every slot taken by them, comes a peer
	// that reads what it is given.
	deadline := time.Now().Add(5 * time.Second)
	for !slices.ContainsFunc(s.tor.Stats().PeerList, func(p aiotorrent.PeerStats) bool { return p.Optimistic }) {
		if time.Now().After(deadline) {
			t.Fatal("no optimistic unchoke 5 s after the start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // the last stalled peer unchoked fills its socket
	before := map[netip.AddrPort]int64{}
	held := map[netip.AddrPort]bool{} // unchoked then
	for _, p := range s.tor.Stats().PeerList {
		before[p.Addr] = p.Uploaded
		held[p.Addr] = p.Unchoked
	}
	w := dialWirePeer(t, ctx, s, "patient", true)
	w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}),
		peer.AppendMessage(nil, &peer.Message{Type: peer.Interested}))
	patient := wireAddr(w)
	go func() { // it reads (and asks for nothing)
		var m peer.Message
		for w.r.ReadMessage(&m) == nil {
		}
	}()
	time.Sleep(time.Until(start.Add(12500 * time.Millisecond)))
	st := s.tor.Stats()
	var waiting []netip.AddrPort
	for _, p := range st.PeerList {
		if p.Interested && !p.Unchoked {
			waiting = append(waiting, p.Addr)
		}
	}
	for _, p := range st.PeerList {
		// A peer that had taken nothing either (choked, it asked for
		// nothing more) may win the slot in a draw with the waiting
		// peer; one that held it and took nothing must lose it.
		if p.Unchoked && !p.Optimistic && held[p.Addr] && p.Addr != patient && p.Uploaded == before[p.Addr] && len(waiting) > 0 {
			t.Errorf("after a round in which it took nothing (%d bytes in all, upload rate %.0f B/s), %v keeps the regular upload slot; waiting: %v (%v is the reading peer)",
				p.Uploaded, p.UploadRate, p.Addr, waiting, patient)
		}
	}
}

// TestSeederUploadSlots: with 2 upload slots and five interested Fast
// peers that take what they are given, at most 3 peers (2 and the
// optimistic unchoke) are unchoked at once, on the wire and in the
// seeder's stats, through a choking round, a peer losing interest and
// finding it again, and an unchoked peer leaving (its slot goes to
// another at once).
func TestSeederUploadSlots(t *testing.T) {
	const (
		slots  = 2
		npeers = 5
		watch  = 12500 * time.Millisecond // the rounds at about 1 s and 11 s
	)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	d := makeData(t, "seed-slots", hostilePieceLength, []interopFile{{"a.bin", 4<<20 - 4321}})
	s := startSeedRig(t, d, aiotorrent.Config{UploadSlots: slots})
	s.c.SetUploadLimit(4 << 20) // enough to rank the peers, not to busy the machine
	all := pieceBlocks(&d.mi.Info, allPieces(d.mi.Info.NumPieces())...)

	type change struct {
		at       time.Time
		peer     int
		unchoked bool
	}
	var (
		mu       sync.Mutex
		changes  []change          // guarded by mu: every unchoke and choke seen on the wire, and leaving
		unchoked [npeers]bool      // guarded by mu
		msgs     [npeers][2]int    // guarded by mu: unchokes, chokes
		chokedAt [npeers]time.Time // guarded by mu: the last choke
		wanting  [npeers]atomic.Bool
		left     [npeers]atomic.Bool // closed its connection
		stopping atomic.Bool
		wg       sync.WaitGroup
	)
	peers := make([]*wirePeer, npeers)
	for k := range peers {
		w := dialWirePeer(t, ctx, s, fmt.Sprintf("slots-%d", k), true)
		peers[k] = w
		wanting[k].Store(true)
		w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.HaveNone}),
			peer.AppendMessage(nil, &peer.Message{Type: peer.Interested}))
	}
	start := time.Now()
	for k, w := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Only this goroutine reads; it writes requests, each message
			// in one Write so the main goroutine may write too.
			next := k * len(all) / npeers
			request := func(n int) error {
				var b []byte
				for range n {
					b = appendReqs(b, peer.Request, all[next%len(all)])
					next++
				}
				_, err := w.conn.Write(b)
				return err
			}
			var m peer.Message
			for {
				err := w.r.ReadMessage(&m)
				if err == nil {
					switch m.Type {
					case peer.Unchoke, peer.Choke:
						on := m.Type == peer.Unchoke
						mu.Lock()
						changes = append(changes, change{time.Now(), k, on})
						unchoked[k] = on
						if on {
							msgs[k][0]++
						} else {
							msgs[k][1]++
							chokedAt[k] = time.Now()
						}
						mu.Unlock()
						if on && wanting[k].Load() {
							err = request(4)
						}
					case peer.Piece:
						mu.Lock()
						on := unchoked[k]
						mu.Unlock()
						if on && wanting[k].Load() {
							err = request(1)
						}
					}
				}
				if err != nil {
					if !stopping.Load() && !left[k].Load() {
						t.Errorf("peer %d: %v", k, err)
					}
					return
				}
			}
		}()
	}
	defer func() {
		stopping.Store(true)
		for _, w := range peers {
			w.conn.Close()
		}
		wg.Wait()
	}()

	// Sample the seeder's view.
	var mostUnchoked, mostOptimistic, samples int
	var sampleErr string
	sample := func() aiotorrent.Stats {
		st := s.tor.Stats()
		samples++
		n, opt := 0, 0
		for _, p := range st.PeerList {
			if p.Unchoked {
				n++
			}
			if p.Optimistic {
				opt++
				if !p.Unchoked {
					sampleErr = fmt.Sprintf("optimistic peer choked: %+v", p)
				}
			}
		}
		if n != st.Unchoked {
			sampleErr = fmt.Sprintf("stats count %d unchoked, the peer list %d", st.Unchoked, n)
		}
		mostUnchoked = max(mostUnchoked, st.Unchoked)
		mostOptimistic = max(mostOptimistic, opt)
		return st
	}
	sampleUntil := func(at time.Duration) {
		for time.Since(start) < at {
			sample()
			time.Sleep(20 * time.Millisecond)
		}
	}
	// pickUnchoked returns a peer unchoked on the wire that is still
	// there.
	pickUnchoked := func(gone int) int {
		mu.Lock()
		defer mu.Unlock()
		for k, on := range unchoked {
			if on && k != gone {
				return k
			}
		}
		t.Fatalf("no peer unchoked on the wire: %v", unchoked)
		return -1
	}

	// An unchoked peer loses interest: it is choked, and its slot goes to
	// another.
	sampleUntil(3 * time.Second)
	loser := pickUnchoked(-1)
	wanting[loser].Store(false)
	sent := time.Now()
	if _, err := peers[loser].conn.Write(peer.AppendMessage(nil, &peer.Message{Type: peer.NotInterested})); err != nil {
		t.Fatal(err)
	}
	sampleUntil(5 * time.Second)
	mu.Lock()
	choked := !unchoked[loser] && chokedAt[loser].After(sent)
	mu.Unlock()
	if !choked {
		t.Errorf("peer %d said not interested and was not choked", loser)
	}
	if st := sample(); st.Unchoked != slots+1 {
		t.Errorf("after a peer lost interest: %d unchoked, want %d", st.Unchoked, slots+1)
	}
	// It is interested again; then another unchoked peer leaves.
	wanting[loser].Store(true)
	if _, err := peers[loser].conn.Write(peer.AppendMessage(nil, &peer.Message{Type: peer.Interested})); err != nil {
		t.Fatal(err)
	}
	sampleUntil(6 * time.Second)
	leaver := pickUnchoked(-1)
	mu.Lock()
	changes = append(changes, change{time.Now(), leaver, false})
	unchoked[leaver] = false
	mu.Unlock()
	left[leaver].Store(true)
	peers[leaver].conn.Close() // its goroutine ends with an error
	if !s.waitPeer(wireAddr(peers[leaver]), 2*time.Second, func(_ aiotorrent.PeerStats, ok bool) bool { return !ok }) {
		t.Fatalf("peer %d closed its connection, the seeder still lists it", leaver)
	}
	sampleUntil(6*time.Second + 500*time.Millisecond)
	if st := sample(); st.Unchoked != slots+1 || st.Peers != npeers-1 {
		t.Errorf("after an unchoked peer left: %d peers, %d unchoked; want %d and %d", st.Peers, st.Unchoked, npeers-1, slots+1)
	}
	sampleUntil(watch)
	final := sample()

	if sampleErr != "" {
		t.Error(sampleErr)
	}
	t.Logf("%d samples of the seeder's stats: at most %d unchoked, %d optimistic", samples, mostUnchoked, mostOptimistic)
	if mostUnchoked != slots+1 {
		t.Errorf("at most %d peers unchoked at once in the seeder's stats, want %d", mostUnchoked, slots+1)
	}
	if mostOptimistic != 1 {
		t.Errorf("at most %d optimistic unchokes at once, want 1 (a round has passed)", mostOptimistic)
	}
	if final.Unchoked != slots+1 {
		t.Errorf("at the end %d unchoked, want %d: %+v", final.Unchoked, slots+1, final.PeerList)
	}

	// On the wire: replay the changes. Unchokes and chokes of one round
	// go to different connections and are read in any order, so a count
	// holding for less than settle is not taken.
	const settle = 200 * time.Millisecond
	mu.Lock()
	defer mu.Unlock()
	end := time.Now()
	var on [npeers]bool
	mostWire := 0
	for k, c := range changes {
		on[c.peer] = c.unchoked
		until := end
		if k+1 < len(changes) {
			until = changes[k+1].at
		}
		n := 0
		for _, u := range on {
			if u {
				n++
			}
		}
		if until.Sub(c.at) >= settle {
			mostWire = max(mostWire, n)
		}
	}
	t.Logf("on the wire, [unchokes chokes] per peer: %v; peer %d lost interest, peer %d left", msgs, loser, leaver)
	if mostWire > slots+1 {
		t.Errorf("on the wire %d peers unchoked at once, want at most %d", mostWire, slots+1)
	}
	if n := countTrue(unchoked[:]); n != slots+1 {
		t.Errorf("on the wire at the end %d peers unchoked (%v), want %d", n, unchoked, slots+1)
	}
	for k, m := range msgs {
		if m[0]-m[1] != 0 && m[0]-m[1] != 1 {
			t.Errorf("peer %d: %d unchokes and %d chokes: not alternating", k, m[0], m[1])
		}
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
