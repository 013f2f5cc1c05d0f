package aiotorrent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/bitfield"
	"github.com/aiotorrent/aiotorrent/internal/picker"
	"github.com/aiotorrent/aiotorrent/peer"
)

// keepAliveEvery is how often a keep-alive goes to a peer we have sent
// nothing else to.
const keepAliveEvery = time.Minute

// upload is a block a peer asked us for.
type upload struct{ index, begin, length uint32 }

// peerConn is one connected peer. Its reader and writer goroutines talk to
// the torrent's loop; the fields under "loop" belong to the loop.
type peerConn struct {
	e        *engine
	conn     net.Conn
	rd       io.Reader // what readLoop reads: conn, or a reader holding data read past a message
	adopted  bool      // taken from the metadata fetch, which said have_none already
	addr     netip.AddrPort
	id       [20]byte
	res      peer.Reserved
	outgoing bool

	ctx     context.Context // ends with the connection: rate limit waits
	cancel  context.CancelFunc
	sent    atomic.Int64 // payload bytes written, by the writer
	writing atomic.Int64 // when the writer began its current write (unix ns), 0 when idle
	// throttled: the reader holds a block until our download limit lets
	// it through.
	throttled atomic.Bool

	mu      sync.Mutex    // guards out, ups and dead
	out     []byte        // messages to write
	ups     []upload      // blocks to send
	dead    bool          // closed: queue nothing more
	wake    chan struct{} // poked when out or ups gain something
	stopped chan struct{} // closed when the connection is closed

	// loop
	has            *bitfield.Bitfield
	amChoking      bool
	amInterested   bool
	peerChoking    bool
	peerInterested bool
	reqs           []picker.Block // our requests awaiting blocks
	maxReqs        int
	reqq           int // the peer's request queue limit
	lastBlock      time.Time
	received       int64
	lastReceived   int64
	down           byteRate
	snubbed        bool
	strikes        int
	closed         bool
	banned         bool
	client         string             // from the extension handshake
	rejected       *bitfield.Bitfield // pieces it rejected since it last unchoked us
	cancelled      []picker.Block     // Fast: cancelled requests it has not answered yet
	connectedAt    time.Time
	lastSent       int64
	up             byteRate // how fast we send it data
	optimistic     bool     // it has the optimistic unchoke
	allowedOut     []uint32 // BEP 6: pieces it may fetch while we choke it
	allowedIn      []int    // BEP 6: pieces we may fetch while it chokes us
	chokedReqs     int      // requests refused while choked, since the choke
	fastServed     int64    // bytes of allowed fast pieces asked for while choked
	unchokedAt     time.Time
	chokedAt       time.Time
	roundAt        time.Time // the last choking round
	requestAt      time.Time // its last request
	roundSent      int64     // payload sent and received until then
	roundRecv      int64
	suggested      bool // suggest messages were sent
	utMetadata     int  // its extended message id for ut_metadata, 0 if none
	utPex          int  // its extended message id for ut_pex, 0 if none
	listenPort     uint16
	pexAt          time.Time               // when to send it our next PEX message
	pexSent        map[netip.AddrPort]bool // the peers it heard of from us
	pexRecvAt      time.Time               // its last PEX message taken
	metaServed     int                     // metadata pieces sent it: a bound against a peer asking forever
}

func newPeerConn(e *engine, conn net.Conn, a netip.AddrPort, id [20]byte, res peer.Reserved, outgoing bool) *peerConn {
	ctx, cancel := context.WithCancel(e.ctx)
	return &peerConn{
		e: e, conn: conn, addr: a, id: id, res: res, outgoing: outgoing,
		ctx: ctx, cancel: cancel, connectedAt: time.Now(),
		wake:        make(chan struct{}, 1),
		stopped:     make(chan struct{}),
		has:         bitfield.New(e.info.NumPieces()),
		amChoking:   true,
		peerChoking: true,
		maxReqs:     initialRequests,
		reqq:        maxRequests,
		lastBlock:   time.Now(),
	}
}

// Has and Requested make a peerConn a picker.Peer.
func (p *peerConn) Has(i int) bool { return p.has.Has(i) && (p.rejected == nil || !p.rejected.Has(i)) }

// maxOutBytes bounds the messages queued for a peer that does not read.
const maxOutBytes = 1 << 20

// backlog is the size of the messages queued for the writer, and the
// number of blocks it has yet to send.
func (p *peerConn) backlog() (bytes, blocks int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.out), len(p.ups)
}

// Requested reports an outstanding request for b to this peer.
func (p *peerConn) Requested(b picker.Block) bool { return slices.Contains(p.reqs, b) }

// maxCancelled bounds the cancelled requests remembered for a peer that
// does not answer them.
const maxCancelled = 2 * maxRequests

// sendCancels cancels requests for blocks, which the caller has taken out
// of p.reqs. A peer with the Fast extension answers each cancel with the
// block or a reject (BEP 6); they are remembered so that such a reject
// is not taken for a refusal of the piece.
func (p *peerConn) sendCancels(blocks []picker.Block) {
	if len(blocks) == 0 {
		return
	}
	if p.res.Fast() {
		if over := len(p.cancelled) + len(blocks) - maxCancelled; over > 0 {
			p.cancelled = slices.Delete(p.cancelled, 0, min(over, len(p.cancelled)))
		}
		p.cancelled = append(p.cancelled, blocks...)
	}
	p.send(func(out []byte) []byte {
		for _, b := range blocks {
			out = peer.AppendRequest(out, peer.Cancel, uint32(b.Piece), uint32(b.Begin), uint32(b.Length))
		}
		return out
	})
}

// send appends messages for the writer; fn appends them to the buffer.
func (p *peerConn) send(fn func([]byte) []byte) {
	p.mu.Lock()
	if !p.dead {
		p.out = fn(p.out)
	}
	p.mu.Unlock()
	p.poke()
}

func (p *peerConn) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// queueUpload queues a requested block; false if the queue is full.
func (p *peerConn) queueUpload(u upload) bool {
	p.mu.Lock()
	ok := !p.dead && len(p.ups) < maxPeerRequests
	if ok {
		p.ups = append(p.ups, u)
	}
	p.mu.Unlock()
	p.poke()
	return ok
}

// cancelUpload drops a queued upload the peer cancelled; under the Fast
// extension the request is answered with a reject (BEP 6: every request
// gets one answer). A block already sent was the answer.
func (p *peerConn) cancelUpload(index, begin, length uint32) {
	p.mu.Lock()
	if k := slices.Index(p.ups, upload{index, begin, length}); k >= 0 {
		p.ups = slices.Delete(p.ups, k, k+1)
		if p.res.Fast() && !p.dead {
			p.out = peer.AppendRequest(p.out, peer.Reject, index, begin, length)
		}
	}
	p.mu.Unlock()
	p.poke()
}

// clearUploads drops queued uploads (we choked the peer), rejecting each
// under the Fast extension so the peer need not wait for them.
func (p *peerConn) clearUploads() {
	p.mu.Lock()
	if p.res.Fast() && !p.dead {
		for _, u := range p.ups {
			p.out = peer.AppendRequest(p.out, peer.Reject, u.index, u.begin, u.length)
		}
	}
	p.ups = p.ups[:0]
	p.mu.Unlock()
	p.poke()
}

// close closes the connection; the reader and writer then end.
func (p *peerConn) close() {
	p.mu.Lock()
	p.dead = true
	p.mu.Unlock()
	p.cancel()
	close(p.stopped)
	p.conn.Close()
}

// sendInitial queues what we have, then the extension handshake.
func (p *peerConn) sendInitial() {
	e := p.e
	have := e.picker.HaveBitfield()
	switch {
	case p.adopted:
		// The metadata fetch said have_none (or nothing) on this
		// connection: what we have since goes in have messages.
		for i := range have.Len() {
			if have.Has(i) {
				p.send(func(out []byte) []byte {
					return peer.AppendMessage(out, &peer.Message{Type: peer.Have, Index: uint32(i)})
				})
			}
		}
	case p.res.Fast() && have.Full():
		p.send(func(out []byte) []byte { return peer.AppendMessage(out, &peer.Message{Type: peer.HaveAll}) })
	case p.res.Fast() && have.Count() == 0:
		p.send(func(out []byte) []byte { return peer.AppendMessage(out, &peer.Message{Type: peer.HaveNone}) })
	case have.Count() > 0:
		bits := slices.Clone(have.Bytes())
		p.send(func(out []byte) []byte {
			return peer.AppendMessage(out, &peer.Message{Type: peer.Bitfield, Payload: bits})
		})
	}
	if port := e.c.dhtPort(); port != 0 && p.res.DHT() && e.dhtOn() && !p.adopted { // the fetch sent it on adopted ones
		p.send(func(out []byte) []byte { return peer.AppendMessage(out, &peer.Message{Type: peer.Port, Port: port}) })
	}
	// The extension handshake after what we have: BEP 3 and BEP 6 want
	// that first.
	if p.res.Extended() {
		hs := peer.ExtHandshake{V: clientVersion, Reqq: maxPeerRequests, M: map[string]int{}}
		if port := e.c.port(); port != 0 {
			hs.P = int(port)
		}
		if e.pexOn() {
			hs.M[peer.ExtPEX] = utPexID // BEP 11
		}
		if size := len(e.t.meta().InfoBytes); size > 0 && size <= peer.MaxMetadataSize {
			hs.M[peer.ExtMetadata] = utMetadataID // BEP 9: we serve the metadata
			hs.MetadataSize = int64(size)
		}
		if a := p.addr.Addr(); a.IsValid() {
			hs.YourIP = a
		}
		payload := hs.Append(nil)
		p.send(func(out []byte) []byte {
			return peer.AppendMessage(out, &peer.Message{Type: peer.Extended, ExtendedID: peer.ExtHandshakeID, Payload: payload})
		})
	}
}

// clientVersion is the "v" of our extension handshakes.
const clientVersion = "aiotorrent 0.1"

func (p *peerConn) onExtendedHandshake(payload []byte) {
	hs, err := peer.ParseExtHandshake(payload)
	if err != nil {
		// A malformed handshake is not worth dropping a peer for: its
		// extensions are just not used.
		p.e.log.Debug("extension handshake", "addr", p.addr, "err", err)
		return
	}
	p.client = sanitizeClient(hs.V)
	p.utMetadata = hs.M[peer.ExtMetadata]
	p.listenPort = uint16(hs.P)
	if p.utPex = hs.M[peer.ExtPEX]; p.utPex != 0 && p.pexAt.IsZero() {
		p.pexAt = time.Now().Add(pexFirst)
	}
	if hs.Reqq > 0 {
		p.reqq = min(hs.Reqq, maxRequests)
		p.maxReqs = min(p.maxReqs, p.reqq)
	}
}

// onMetadata answers a ut_metadata request (BEP 9) with a piece of our
// info dictionary, or a reject; other ut_metadata messages are ignored.
func (p *peerConn) onMetadata(payload []byte) {
	m, err := peer.ParseMetadataMsg(payload)
	if err != nil || m.Type != peer.MetadataRequest || p.utMetadata == 0 {
		return
	}
	info := p.e.t.meta().InfoBytes
	size := int64(len(info))
	reply := peer.MetadataMsg{Type: peer.MetadataReject, Piece: m.Piece}
	if size <= peer.MaxMetadataSize && m.Piece < peer.MetadataPieces(size) && p.metaServed < 4*peer.MetadataPieces(size) {
		p.metaServed++
		off := m.Piece * peer.MetadataPieceSize
		reply = peer.MetadataMsg{Type: peer.MetadataData, Piece: m.Piece, TotalSize: size,
			Data: info[off : off+peer.MetadataPieceLen(size, m.Piece)]}
	}
	id := uint8(p.utMetadata)
	p.send(func(out []byte) []byte {
		return peer.AppendMessage(out, &peer.Message{Type: peer.Extended, ExtendedID: id, Payload: peer.AppendMetadataMsg(nil, reply)})
	})
}

func sanitizeClient(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	b := []rune{}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			r = '?'
		}
		b = append(b, r)
	}
	return string(b)
}

// readLoop reads messages and hands them to the loop.
func (p *peerConn) readLoop() {
	e := p.e
	defer e.wg.Done()
	var src io.Reader = p.conn
	if p.rd != nil {
		src = p.rd
	}
	r := peer.NewReader(src, e.limits)
	var cur *block
	r.Block = func(int) []byte {
		cur = getBlock()
		return cur[:]
	}
	var m peer.Message
	for {
		p.conn.SetReadDeadline(time.Now().Add(e.c.cfg.IdleTimeout))
		err := r.ReadMessage(&m)
		if err != nil {
			if cur != nil {
				putBlock(cur)
			}
			select {
			case e.events <- event{kind: evClosed, p: p, err: err}:
			case <-e.ctx.Done():
			}
			return
		}
		ev := event{kind: evMsg, p: p, msg: m}
		switch m.Type {
		case peer.KeepAlive:
			continue
		case peer.Piece:
			n := len(m.Payload)
			ev.kind, ev.block, ev.msg.Payload = evBlock, cur, nil
			cur = nil
			if limited(e.t.down, e.c.down) {
				// The peer's next blocks wait for our download limit,
				// not for the peer: the request timeout does not run.
				p.throttled.Store(true)
				err := waitAll(p.ctx, n, e.t.down, e.c.down)
				p.throttled.Store(false)
				if err != nil {
					putBlock(ev.block)
					return
				}
			}
		default:
			if m.Payload != nil {
				ev.msg.Payload = slices.Clone(m.Payload)
			}
		}
		select {
		case e.events <- ev:
		case <-e.ctx.Done():
			if ev.block != nil {
				putBlock(ev.block)
			}
			return
		case <-p.stopped:
			if ev.block != nil {
				putBlock(ev.block)
			}
			return
		}
	}
}

// writeLoop writes queued messages and requested blocks.
func (p *peerConn) writeLoop() {
	e := p.e
	defer e.wg.Done()
	bw := bufio.NewWriterSize(p.conn, 64<<10)
	var spare []byte
	buf := new(block)
	var hdr [13]byte
	keepAlive := time.NewTicker(keepAliveEvery)
	defer keepAlive.Stop()
	wrote := false
	fail := func(err error) {
		select {
		case e.events <- event{kind: evClosed, p: p, err: err}:
		case <-e.ctx.Done():
		case <-p.stopped:
		}
	}
	for {
		select {
		case <-p.wake:
		case <-keepAlive.C:
			if !wrote {
				p.send(func(out []byte) []byte { return peer.AppendMessage(out, &peer.Message{Type: peer.KeepAlive}) })
			}
			wrote = false
			continue
		case <-p.stopped:
			return
		case <-e.ctx.Done():
			return
		}
		for {
			p.mu.Lock()
			if len(p.out) == 0 && len(p.ups) == 0 {
				p.mu.Unlock()
				break
			}
			// The buffers swap: the loop appends to the one written last
			// time while this one is written.
			out := p.out
			p.out = spare[:0]
			var u upload
			have := len(p.ups) > 0
			if have {
				u = p.ups[0]
				p.ups = p.ups[1:]
			}
			p.mu.Unlock()
			wrote = true
			now := time.Now()
			p.writing.Store(now.UnixNano())
			p.conn.SetWriteDeadline(now.Add(e.c.cfg.IdleTimeout))
			if _, err := bw.Write(out); err != nil {
				fail(err)
				return
			}
			spare = out
			if have {
				n := int(u.length)
				if limited(e.t.up, e.c.up) {
					// Our own messages (requests, cancels) do not wait for
					// upload tokens, and waiting for them is not the
					// peer's doing: it does not count as a stuck write.
					if err := bw.Flush(); err != nil {
						fail(err)
						return
					}
					p.writing.Store(0)
					if err := waitAll(p.ctx, n, e.t.up, e.c.up); err != nil {
						return
					}
					p.writing.Store(time.Now().UnixNano())
				}
				off := int64(u.index)*e.info.PieceLength + int64(u.begin)
				if _, err := e.readForUpload(buf[:n], off); err != nil {
					e.log.Warn("read block to upload", "piece", u.index, "err", err)
					if p.res.Fast() {
						p.send(func(out []byte) []byte {
							return peer.AppendRequest(out, peer.Reject, u.index, u.begin, u.length)
						})
					}
					continue
				}
				if _, err := bw.Write(peer.AppendPieceHeader(hdr[:0], u.index, u.begin, n)); err != nil {
					fail(err)
					return
				}
				if _, err := bw.Write(buf[:n]); err != nil {
					fail(err)
					return
				}
				e.uploaded.Add(int64(n))
				p.sent.Add(int64(n))
			}
		}
		if err := bw.Flush(); err != nil {
			fail(err)
			return
		}
		p.writing.Store(0)
	}
}

// stalled reports whether the writer has been stuck for d writing to a
// peer that does not read.
func (p *peerConn) stalled(now time.Time, d time.Duration) bool {
	w := p.writing.Load()
	return w != 0 && now.Sub(time.Unix(0, w)) >= d
}

var errBanned = errors.New("banned")

// readForUpload reads a block we send, through the read cache so that
// peers fetching the same piece cost one disk read.
func (e *engine) readForUpload(b []byte, off int64) (int, error) {
	if e.rcache != nil {
		if n, err := e.rcache.ReadAt(b, off); err == nil {
			return n, nil
		}
		// A unit may reach past the piece into bytes not on disk yet:
		// the block alone may still be read.
	}
	return e.store.ReadAt(b, off)
}
