package aiotorrent

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
)

// fakePeer is a misbehaving peer on 127.0.0.1 built from the peer
// package: it accepts connections for one torrent, answers the handshake
// and then runs serve on each.
type fakePeer struct {
	ln      net.Listener
	mi      *metainfo.MetaInfo
	content []byte // the torrent's content, for peers that send some good blocks
	fast    bool   // announce the Fast extension (BEP 6)
	serve   func(c *fakeConn) error

	accepted atomic.Int32 // connections accepted
	requests atomic.Int32 // requests received
	blocks   atomic.Int32 // blocks sent

	engagedOnce sync.Once
	engaged     chan struct{} // closed once serve has done its mischief
	droppedOnce sync.Once
	dropped     chan struct{} // closed when the leecher closes a connection

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool // guarded by mu
}

// fakeConn is one connection of a fakePeer.
type fakeConn struct {
	fp   *fakePeer
	conn net.Conn
	r    *peer.Reader
	wmu  sync.Mutex // serialises writes (keep-alives come from another goroutine)
	self atomic.Bool
}

func startFakePeer(t *testing.T, mi *metainfo.MetaInfo, content []byte, fast bool, serve func(*fakeConn) error) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakePeer{
		ln: ln, mi: mi, content: content, fast: fast, serve: serve,
		engaged: make(chan struct{}),
		dropped: make(chan struct{}),
		conns:   make(map[net.Conn]bool),
	}
	fp.wg.Add(1)
	go fp.accept(t)
	t.Cleanup(func() {
		ln.Close()
		fp.mu.Lock()
		for c := range fp.conns {
			c.Close()
		}
		fp.mu.Unlock()
		fp.wg.Wait()
	})
	return fp
}

func (fp *fakePeer) addr() netip.AddrPort { return fp.ln.Addr().(*net.TCPAddr).AddrPort() }

func (fp *fakePeer) engage() { fp.engagedOnce.Do(func() { close(fp.engaged) }) }

func (fp *fakePeer) accept(t *testing.T) {
	defer fp.wg.Done()
	for {
		conn, err := fp.ln.Accept()
		if err != nil {
			return
		}
		fp.accepted.Add(1)
		fp.mu.Lock()
		fp.conns[conn] = true
		fp.mu.Unlock()
		fp.wg.Add(1)
		go func() {
			defer fp.wg.Done()
			defer conn.Close()
			c := &fakeConn{fp: fp, conn: conn}
			err := c.run()
			if err != nil && !c.self.Load() {
				// The leecher closed the connection (or broke the protocol,
				// which it must not).
				if errors.Is(err, peer.ErrBadMessage) {
					t.Errorf("fake peer: our leecher sent a bad message: %v", err)
				}
				fp.droppedOnce.Do(func() { close(fp.dropped) })
			}
		}()
	}
}

// run does the handshake (the leecher speaks first) and serves.
func (c *fakeConn) run() error {
	fp := c.fp
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	h, err := peer.ReadHandshake(c.conn)
	if err != nil {
		return err
	}
	if h.InfoHash != fp.mi.InfoHash {
		return fmt.Errorf("fake peer: handshake for %x", h.InfoHash)
	}
	var mine peer.Handshake
	mine.InfoHash = fp.mi.InfoHash
	copy(mine.PeerID[:], "-FK0001-")
	rand.Read(mine.PeerID[8:])
	if fp.fast {
		mine.Reserved.SetFast()
	}
	if err := peer.WriteHandshake(c.conn, &mine); err != nil {
		return err
	}
	c.conn.SetDeadline(time.Time{})
	info := &fp.mi.Info
	c.r = peer.NewReader(c.conn, peer.Limits{NumPieces: info.NumPieces(), PieceLength: info.PieceLength, Length: info.Length})
	return fp.serve(c)
}

// read reads the next message, counting requests.
func (c *fakeConn) read(m *peer.Message) error {
	if err := c.r.ReadMessage(m); err != nil {
		return err
	}
	if m.Type == peer.Request {
		c.fp.requests.Add(1)
	}
	return nil
}

// drain reads until the connection ends.
func (c *fakeConn) drain() error {
	var m peer.Message
	for {
		if err := c.read(&m); err != nil {
			return err
		}
	}
}

func (c *fakeConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(b)
	return err
}

func (c *fakeConn) send(t peer.Type) error {
	return c.write(peer.AppendMessage(nil, &peer.Message{Type: t}))
}

// hangUp closes the connection on the fake peer's initiative.
func (c *fakeConn) hangUp() error {
	c.self.Store(true)
	return c.conn.Close()
}

// fullBitfield is the wire bitfield of every piece.
func fullBitfield(n int) []byte {
	b := make([]byte, (n+7)/8)
	for i := range n {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return b
}

func (c *fakeConn) sendHaveAll() error {
	if c.fp.fast {
		return c.send(peer.HaveAll)
	}
	return c.write(peer.AppendMessage(nil, &peer.Message{Type: peer.Bitfield, Payload: fullBitfield(c.fp.mi.Info.NumPieces())}))
}

// serveUnchoking has every piece, unchokes whoever is interested and
// hands each request to onRequest.
func serveUnchoking(onRequest func(c *fakeConn, m *peer.Message) error) func(c *fakeConn) error {
	return func(c *fakeConn) error {
		if err := c.sendHaveAll(); err != nil {
			return err
		}
		var m peer.Message
		for {
			if err := c.read(&m); err != nil {
				return err
			}
			switch m.Type {
			case peer.Interested:
				if err := c.send(peer.Unchoke); err != nil {
					return err
				}
			case peer.Request:
				if err := onRequest(c, &m); err != nil {
					return err
				}
			}
		}
	}
}

// serveCorrupt answers every request with random bytes.
var serveCorrupt = serveUnchoking(func(c *fakeConn, m *peer.Message) error {
	out := peer.AppendPieceHeader(nil, m.Index, m.Begin, int(m.Length))
	junk := make([]byte, m.Length)
	rand.Read(junk)
	if err := c.write(append(out, junk...)); err != nil {
		return err
	}
	c.fp.blocks.Add(1)
	return nil
})

// serveThenHangUp answers the first n requests with good blocks and then
// closes the connection, in the middle of a piece.
func serveThenHangUp(n int) func(c *fakeConn) error {
	return serveUnchoking(func(c *fakeConn, m *peer.Message) error {
		if int(c.fp.blocks.Load()) >= n {
			c.fp.engage()
			return c.hangUp()
		}
		off := int64(m.Index)*c.fp.mi.Info.PieceLength + int64(m.Begin)
		out := peer.AppendPieceHeader(nil, m.Index, m.Begin, int(m.Length))
		if err := c.write(append(out, c.fp.content[off:off+int64(m.Length)]...)); err != nil {
			return err
		}
		c.fp.blocks.Add(1)
		return nil
	})
}

// serveChoking has every piece and never unchokes, sending keep-alives.
func serveChoking(c *fakeConn) error {
	if err := c.sendHaveAll(); err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if c.write(make([]byte, 4)) != nil {
					return
				}
			}
		}
	}()
	var m peer.Message
	for {
		if err := c.read(&m); err != nil {
			return err
		}
		if m.Type == peer.Interested {
			c.fp.engage()
		}
	}
}

// serveSilent unchokes whoever is interested but never sends a block.
// With choke, it chokes once asked for blocks and never rejects them
// (which a Fast extension peer must do).
func serveSilent(choke bool) func(c *fakeConn) error {
	return serveUnchoking(func(c *fakeConn, m *peer.Message) error {
		if choke && c.fp.requests.Load() == 1 {
			if err := c.send(peer.Choke); err != nil {
				return err
			}
		}
		c.fp.engage()
		return nil
	})
}

// serveRaw sends b after the handshake and then reads until the leecher
// hangs up.
func serveRaw(b []byte) func(c *fakeConn) error {
	return func(c *fakeConn) error {
		if err := c.write(b); err != nil {
			return err
		}
		c.fp.engage()
		return c.drain()
	}
}

// hugeMessage is a length prefix of 100 MiB, a type byte and the first
// kilobyte of a payload that never comes in full.
func hugeMessage(t peer.Type) []byte {
	b := binary.BigEndian.AppendUint32(nil, 100<<20)
	b = append(b, byte(t))
	return append(b, make([]byte, 1<<10)...)
}

// TestHostile downloads from one honest seeder of ours alongside a
// misbehaving peer, which the leecher meets first. Every download must
// complete, byte-identical, and the misbehaving peer must not cost
// unbounded memory.
func TestHostile(t *testing.T) {
	const pieceLen = 128 << 10 // 8 blocks: hanging up mid-piece is possible
	mi, src := makeTorrent(t, "hostile", pieceLen, testFile{"a.bin", 1<<20 + 12345}, testFile{"b.bin", 700000})
	content := contentOf(t, mi, src)
	numPieces := mi.Info.NumPieces()

	badBitfield := func(n int, last byte) []byte {
		bits := fullBitfield(numPieces)
		bits = append(bits, make([]byte, max(0, n-len(bits)))...)[:n]
		bits[len(bits)-1] |= last
		return peer.AppendMessage(nil, &peer.Message{Type: peer.Bitfield, Payload: bits})
	}
	type hostileCase struct {
		name  string
		fast  bool
		serve func(*fakeConn) error
		// waitFor is what the fake peer must have done before the honest
		// seeder is added; nil adds both at once.
		waitFor    func(*fakePeer) <-chan struct{}
		dropped    bool // the leecher must close the fake peer's connection
		banned     bool // and ban it
		noRequests bool // the fake peer must never be asked for a block
	}
	tests := []hostileCase{
		{name: "corrupt blocks", fast: true, serve: serveCorrupt,
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.dropped }, dropped: true, banned: true},
		{name: "corrupt blocks, bitfield", serve: serveCorrupt,
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.dropped }, dropped: true, banned: true},
		{name: "corrupt blocks, honest seeder at once", fast: true, serve: serveCorrupt},
		{name: "hangs up mid-piece", serve: serveThenHangUp(3),
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.engaged }},
		{name: "never unchokes", fast: true, serve: serveChoking,
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.engaged }, noRequests: true},
		{name: "never unchokes, bitfield", serve: serveChoking,
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.engaged }, noRequests: true},
		{name: "unchokes, never sends a block", serve: serveSilent(false),
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.engaged }},
		{name: "chokes, never rejects", fast: true, serve: serveSilent(true),
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.engaged }},
		{name: "bitfield one byte too long", serve: serveRaw(badBitfield((numPieces+7)/8+1, 0)),
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.dropped }, dropped: true, noRequests: true},
		{name: "bitfield one byte too short", serve: serveRaw(badBitfield((numPieces+7)/8-1, 0)),
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.dropped }, dropped: true, noRequests: true},
		{name: "bitfield of a million bytes", serve: serveRaw(badBitfield(1<<20, 0)),
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.dropped }, dropped: true, noRequests: true},
		{name: "bitfield with spare bits set", serve: serveRaw(badBitfield((numPieces+7)/8, 0xFF)),
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.dropped }, dropped: true, noRequests: true},
	}
	for _, typ := range []peer.Type{peer.Piece, peer.Bitfield, peer.Extended, peer.Have, peer.Type(0x42), peer.KeepAlive} {
		tests = append(tests, hostileCase{name: fmt.Sprintf("100 MiB %s message", typ), serve: serveRaw(hugeMessage(typ)),
			waitFor: func(fp *fakePeer) <-chan struct{} { return fp.dropped }, dropped: true, noRequests: true})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			seed := startSeeder(t, mi, src)
			fp := startFakePeer(t, mi, content, tt.fast, tt.serve)
			leech, err := NewClient(Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, RequestTimeout: 2 * time.Second, DialTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { leech.Close() })
			tor, err := leech.Add(mi)
			if err != nil {
				t.Fatal(err)
			}
			dst := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)

			tor.AddPeers(fp.addr())
			done := make(chan error, 1)
			go func() { done <- tor.DownloadAll(ctx, WithDir(dst)) }()

			if tt.waitFor != nil {
				select {
				case <-tt.waitFor(fp):
				case <-time.After(10 * time.Second):
					t.Errorf("the fake peer was not reached in 10 s (accepted %d, requests %d, blocks %d)",
						fp.accepted.Load(), fp.requests.Load(), fp.blocks.Load())
				case err := <-done:
					t.Fatalf("download ended before the honest seeder was added: %v", err)
				}
			}
			hostileAt := time.Since(start)
			tor.AddPeers(clientAddr(seed))

			// Fail early, with a diagnosis, if the download stalls with no
			// peer to download from.
			stall := make(chan string, 1)
			go func() {
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				var since time.Time
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					s := tor.Stats()
					if !s.Running || s.Peers > 0 || s.Connecting > 0 {
						since = time.Time{}
						continue
					}
					if since.IsZero() {
						since = time.Now()
					} else if time.Since(since) > 5*time.Second {
						stall <- fmt.Sprintf("no peer connected nor connecting for 5 s: stats %+v; honest seeder %s banned: %v",
							s, clientAddr(seed), leech.isBannedPeer(clientAddr(seed), seed.PeerID()))
						cancel()
						return
					}
				}
			}()

			err = <-done
			select {
			case why := <-stall:
				t.Fatalf("download stalled: %s (download: %v)", why, err)
			default:
			}
			if err != nil {
				t.Fatalf("download: %v (stats %+v)", err, tor.Stats())
			}
			elapsed := time.Since(start)

			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			heapGrowth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			allocated := after.TotalAlloc - before.TotalAlloc

			for _, f := range tor.Files() {
				sameFile(t, filepath.Join(dst, filepath.FromSlash(f.Path)), filepath.Join(src, filepath.FromSlash(f.Path)))
			}
			s := tor.Stats()
			if !s.Done() || s.Verified != mi.Info.Length {
				t.Errorf("stats after the download: %+v", s)
			}
			// Every byte received was either verified or counted wasted.
			if s.Downloaded-s.Wasted != s.Verified {
				t.Errorf("stats: Downloaded %d - Wasted %d = %d bytes, but %d verified", s.Downloaded, s.Wasted, s.Downloaded-s.Wasted, s.Verified)
			}
			t.Logf("hostile peer done after %v, download after %v; fake peer: %d connections, %d requests, %d blocks; heap %+d KiB, allocated %d KiB; stats: downloaded %d, wasted %d",
				hostileAt.Round(time.Millisecond), elapsed.Round(time.Millisecond), fp.accepted.Load(), fp.requests.Load(), fp.blocks.Load(),
				heapGrowth>>10, allocated>>10, s.Downloaded, s.Wasted)

			if tt.dropped {
				select {
				case <-fp.dropped:
				case <-time.After(5 * time.Second):
					t.Errorf("the leecher did not close the fake peer's connection")
				}
			}
			if tt.banned {
				if !leech.isBannedPeer(fp.addr(), [20]byte{}) {
					t.Errorf("the corrupt peer %s is not banned", fp.addr())
				}
				if n := fp.accepted.Load(); n != 1 {
					t.Errorf("the corrupt peer was connected to %d times, want 1", n)
				}
				if s.Wasted == 0 {
					t.Errorf("stats: no bytes wasted on the corrupt peer's blocks: %+v", s)
				}
			}
			if leech.isBannedPeer(clientAddr(seed), seed.PeerID()) {
				t.Errorf("the honest seeder %s is banned", clientAddr(seed))
			}
			if tt.noRequests {
				if n := fp.requests.Load(); n != 0 {
					t.Errorf("the fake peer was sent %d requests, want none", n)
				}
			}
			// Memory is a function of the configuration, not of what a peer
			// claims: nothing near the 100 MiB (or 1 MiB) a peer announced
			// may have been allocated, even for a moment.
			if heapGrowth > 16<<20 || allocated > 64<<20 {
				t.Errorf("memory: heap grew by %d KiB, %d KiB allocated during the download", heapGrowth>>10, allocated>>10)
			}
		})
	}
}
