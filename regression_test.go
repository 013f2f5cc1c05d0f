package aiotorrent

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
)

// Regression: engine.call after stop: select picks the send half the time, the
// buffered channel takes the event and nobody ever runs it. For addConn
// (handleIncoming racing Torrent.Close / stopping an idle torrent) that is a connection
// never closed and a global connection slot never released.
func TestCallAfterStopLosesConn(t *testing.T) {
	mi, src := makeTorrent(t, "stopped", 16<<10, testFile{"", 64 << 10})
	c := newTestClient(t)
	tor, err := c.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := tor.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	e := tor.running() // what handleIncoming holds after t.running()
	if err := tor.Close(); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for range 100 {
		a, b := net.Pipe()
		defer b.Close()
		if !c.acquireConn() { // as accept does
			t.Fatalf("no free connection slot: %d of %d in use", c.conns.used.Load(), c.conns.max.Load())
		}
		if e.addConn(a, netip.MustParseAddrPort("127.0.0.1:1"), [20]byte{1}, peer.Reserved{}, false) {
			lost++ // handleIncoming now believes the torrent owns conn and the slot
		} else {
			a.Close()
			c.releaseConn()
		}
	}
	if lost > 0 {
		t.Fatalf("%d of 100 connections handed to a stopped torrent were accepted and never closed; %d of %d global slots leaked",
			lost, c.conns.used.Load(), c.conns.max.Load())
	}
}

// Regression: stopping an idle torrent (a cancelled Download) races a new Download of the same
// torrent: the new one gets ErrClosed although nobody closed anything.
func TestStopIfIdleRacesNewDownload(t *testing.T) {
	mi, _ := makeTorrent(t, "race", 16<<10, testFile{"", 64 << 10})
	c := newTestClient(t)
	tor, err := c.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	bad := 0
	for range 100 {
		ctxA, cancelA := context.WithCancel(context.Background())
		errA := make(chan error, 1)
		go func() { errA <- tor.DownloadAll(ctxA, WithDir(dst)) }()
		for !tor.Stats().Running {
			time.Sleep(50 * time.Microsecond)
		}
		ctxB, cancelB := context.WithCancel(context.Background())
		errB := make(chan error, 1)
		go func() { errB <- tor.DownloadAll(ctxB, WithDir(dst)) }()
		cancelA()
		<-errA
		select {
		case err := <-errB:
			if errors.Is(err, ErrClosed) {
				bad++
			}
		case <-time.After(30 * time.Millisecond):
			cancelB()
			<-errB
		}
		cancelB()
	}
	if bad > 0 {
		t.Fatalf("%d of 100 downloads started while another was cancelled failed with ErrClosed", bad)
	}
}

// Regression: Snubbed peers keep their one request forever; the pieces they pin
// hold blocks that count against the memory budget; once those exceed it
// only PickStarted runs, which finds nothing pending: the download stops
// for good although an honest seeder with every piece is connected.
func TestPinnedBlocksStallBudget(t *testing.T) {
	const pieceLen = 128 << 10 // 8 blocks; budget = 4 pieces = 32 blocks
	mi, src := makeTorrent(t, "stall", pieceLen, testFile{"", 16 * pieceLen})
	content := contentOf(t, mi, src)
	n := mi.Info.NumPieces()
	// Six peers, each with one piece, that unchoke and never send a block
	// (overloaded or dead peers; real ones send keep-alives).
	onePiece := func(k int) func(*fakeConn) error {
		return func(c *fakeConn) error {
			bits := make([]byte, (n+7)/8)
			bits[k/8] |= 0x80 >> (k % 8)
			if err := c.write(peer.AppendMessage(nil, &peer.Message{Type: peer.Bitfield, Payload: bits})); err != nil {
				return err
			}
			var m peer.Message
			for {
				if err := c.read(&m); err != nil {
					return err
				}
				if m.Type == peer.Interested {
					if err := c.send(peer.Unchoke); err != nil {
						return err
					}
				}
			}
		}
	}
	leech, err := NewClient(Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, BufferBytes: bufBytes(), RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leech.Close() })
	tor, err := leech.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 6 {
		tor.AddPeers(startFakePeer(t, mi, content, false, onePiece(k)).addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tor.DownloadAll(ctx, WithDir(t.TempDir())) }()
	time.Sleep(4 * time.Second) // every fake peer snubbed, one block pinned each
	seed := startSeeder(t, mi, src)
	tor.AddPeers(clientAddr(seed))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		s := tor.Stats()
		e := tor.running()
		var held, budget int64
		var active, seedReqs int
		e.callWait(func() {
			held, budget, active = e.held, e.budget, e.picker.NumActive()
			for p := range e.peers {
				if p.has.Full() {
					seedReqs = len(p.reqs)
				}
			}
		})
		t.Fatalf("stalled 15 s after a full seeder joined: verified %d of %d pieces, %d peers (seeds %d), downloaded %d; held %d KiB of a %d KiB budget in %d active pieces; requests to the seeder %d",
			s.PiecesVerified, s.Pieces, s.Peers, s.Seeds, s.Downloaded, held>>10, budget>>10, active, seedReqs)
	}
}

// Regression: A Fast peer that floods requests while choked and does not read:
// every request queues a 17-byte reject in p.out, without bound.
func TestRejectFloodUnboundedOut(t *testing.T) {
	mi, _ := makeTorrent(t, "flood", 16<<10, testFile{"", 64 << 10})
	stop := make(chan struct{})
	fp := startFakePeer(t, mi, nil, true, func(c *fakeConn) error {
		if err := c.send(peer.HaveNone); err != nil {
			return err
		}
		batch := bytes.Repeat(peer.AppendRequest(nil, peer.Request, 0, 0, 16<<10), 8192)
		for range 200 { // 1.6 M requests, 27 MB, never reading a byte
			if err := c.write(batch); err != nil {
				return err
			}
		}
		c.fp.engage()
		<-stop
		return c.hangUp()
	})
	t.Cleanup(func() { close(stop) })
	tor := leechFrom(t, mi)
	tor.AddPeers(fp.addr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tor.DownloadAll(ctx, WithDir(t.TempDir()))
	select {
	case <-fp.engaged:
	case <-fp.dropped:
		return // the leecher hung up on the flood: fine
	case <-time.After(30 * time.Second):
		t.Fatal("flood not sent")
	}
	time.Sleep(500 * time.Millisecond)
	e := tor.running()
	most := 0
	e.callWait(func() {
		for p := range e.peers {
			p.mu.Lock()
			most = max(most, len(p.out))
			p.mu.Unlock()
		}
	})
	if most > 1<<20 {
		t.Fatalf("one peer's output buffer holds %d MiB of queued rejects", most>>20)
	}
}

// Regression: A Fast peer that unchokes and rejects every request: each reject
// makes the block pending, fillAll asks the same peer again at once.
func TestRejectPingPong(t *testing.T) {
	mi, _ := makeTorrent(t, "pingpong", 16<<10, testFile{"", 256 << 10})
	fp := startFakePeer(t, mi, nil, true, serveUnchoking(func(c *fakeConn, m *peer.Message) error {
		return c.write(peer.AppendRequest(nil, peer.Reject, m.Index, m.Begin, m.Length))
	}))
	tor := leechFrom(t, mi)
	tor.AddPeers(fp.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	tor.DownloadAll(ctx, WithDir(t.TempDir()))
	if n := fp.requests.Load(); n > 1000 {
		t.Fatalf("a peer rejecting everything was sent %d requests in 2 s (the torrent has %d blocks)", n, (256<<10)/(16<<10))
	}
}

// Regression: Start says the torrent serves until Close; a Seed that ends stops it.
func TestSeedEndStopsStart(t *testing.T) {
	mi, src := makeTorrent(t, "seedstart", 16<<10, testFile{"", 64 << 10})
	c := newTestClient(t)
	tor, _ := c.Add(mi)
	if err := tor.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	tor.Seed(ctx)
	if !tor.Stats().Running {
		t.Fatal("the torrent Start()ed stopped when an unrelated Seed call returned")
	}
}

// Regression: A dialled peer that accepts TCP and never answers the handshake
// holds Torrent.Close for DialTimeout: the handshake ignores e.ctx.
func TestCloseWaitsForHandshake(t *testing.T) {
	mi, _ := makeTorrent(t, "slowhs", 16<<10, testFile{"", 64 << 10})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := NewClient(Config{ListenAddr: "-", NoTrackers: true, DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tor, _ := c.Add(mi)
	tor.AddPeers(ln.Addr().(*net.TCPAddr).AddrPort())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tor.DownloadAll(ctx, WithDir(t.TempDir()))
	conn := <-accepted
	defer conn.Close()
	start := time.Now()
	tor.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Torrent.Close took %v, waiting on a handshake", d.Round(time.Millisecond))
	}
}

func bufBytes() int64 { return 1 } // the floor: 4 pieces

// Regression: startEngine's full re-check runs under t.mu: Close (and Stats,
// AddPeers, every incoming handshake for the torrent) waits for it, and
// nothing can cancel it (e.ctx derives from the client's context only).
func TestCheckHoldsTorrentLock(t *testing.T) {
	const size = 3 << 30
	const pl = 4 << 20
	info := metainfo.Info{Name: "big.bin", PieceLength: pl, Length: size,
		Files:  []metainfo.File{{Path: []string{"big.bin"}, Length: size}},
		Pieces: make([]byte, metainfo.HashSize*(size/pl))}
	mi := &metainfo.MetaInfo{Info: info, InfoHash: metainfo.Hash{9, 9, 9}}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "big.bin"), size); err != nil { // sparse
		t.Fatal(err)
	}
	c := newTestClient(t)
	tor, _ := c.Add(mi)
	go tor.Start(WithDir(dir))
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	tor.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Torrent.Close took %v: it waited for the whole data check", d.Round(time.Millisecond))
	}
}

// Regression: An outgoing connection refused by onConn ("already connected": the
// peer had connected to us first) leaves its candidate in candConnecting
// for good: it is never dialled again, and it stays in known forever.
func TestRefusedDialLeavesCandidateConnecting(t *testing.T) {
	mi, _ := makeTorrent(t, "cand", 16<<10, testFile{"", 64 << 10})
	c := newTestClient(t)
	tor, _ := c.Add(mi)
	if err := tor.Start(WithDir(t.TempDir())); err != nil {
		t.Fatal(err)
	}
	e := tor.running()
	a := netip.MustParseAddrPort("127.0.0.1:9")
	id := [20]byte{7}
	in, inPeer := net.Pipe()
	out, outPeer := net.Pipe()
	defer inPeer.Close()
	defer outPeer.Close()
	c.acquireConn()
	c.acquireConn()
	var state candState
	e.callWait(func() {
		e.known[a] = &candidate{state: candConnecting} // as connectMore leaves it for dial
		e.onConn(in, netip.MustParseAddrPort("127.0.0.1:50000"), id, peer.Reserved{}, false, nil)
		e.onConn(out, a, id, peer.Reserved{}, true, nil) // dial's addConn: refused, already connected
		state = e.known[a].state
	})
	if state != candIdle {
		t.Fatalf("candidate %v left in state %d after its connection was refused", a, state)
	}
}
