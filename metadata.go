package aiotorrent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/announcer"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
	"github.com/aiotorrent/aiotorrent/tracker"
)

const (
	// utMetadataID is the extended message id we receive ut_metadata
	// messages under (BEP 9), the same in every extension handshake.
	utMetadataID = 3
	// metaPeers is how many peers a metadata fetch talks to at once.
	metaPeers = 8
	// metaPipeline is how many metadata pieces are asked of one peer at
	// once.
	metaPipeline = 4
	// metaTimeout is how long a peer may take to answer a metadata
	// request, or to send its extension handshake.
	metaTimeout = 15 * time.Second
	// metaRetry is how long a peer that failed waits to be tried again,
	// doubling with each failure up to 32 times that; a peer that lied is
	// not tried again.
	metaRetry = 2 * time.Second
)

// WaitMetadata returns once the torrent's metadata (its info dictionary,
// which a magnet link does not carry) is known: at once for a torrent
// opened from a .torrent file; for a magnet link, once it has been
// fetched from peers (BEP 9) and found to hash to the link's info hash.
// Peers come from the link's trackers (tr=) and peers (x.pe), and from
// AddPeers. The pieces of the metadata are asked of several peers at once;
// a peer whose data does not hash right is not asked again. The fetch
// goes on while the torrent is open, even when ctx ends; the metadata is
// then kept in the client's state folder, for the link to open with it
// next time. Downloads and readers of a magnet link wait for it too.
func (t *Torrent) WaitMetadata(ctx context.Context) error {
	if t.meta() != nil {
		return nil
	}
	c, err := t.clientOrDefault()
	if err != nil {
		return err
	}
	f, err := t.fetchMetadata(c)
	if err != nil {
		return err
	}
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetchMetadata starts the torrent's metadata fetch, or joins the one
// running.
func (t *Torrent) fetchMetadata(c *Client) (*metaFetch, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("torrent %s: %w", t.Name(), ErrClosed)
	}
	if t.fetch == nil {
		t.fetch = newMetaFetch(t, c)
		go t.fetch.run()
	}
	return t.fetch, nil
}

// metaFetching returns the torrent's metadata fetch while it runs, or nil.
func (t *Torrent) metaFetching() *metaFetch {
	t.mu.Lock()
	f := t.fetch
	t.mu.Unlock()
	if f == nil {
		return nil
	}
	select {
	case <-f.done:
		return nil
	default:
		return f
	}
}

// metaFetch fetches a magnet link's info dictionary from peers. The
// pieces are shared out among the peers; if the whole does not hash to
// the info hash, someone lied, and from then on each peer fetches a whole
// copy of its own, so that the liar is found and the others succeed.
type metaFetch struct {
	t      *Torrent
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed once err is set or the metadata is
	exited chan struct{} // closed when run has returned, every goroutine of the fetch done
	err    error

	mu       sync.Mutex
	size     int64       // the metadata's size, as the first peer said
	pieces   [][]byte    // shared mode: the pieces received, nil if not
	askedAt  []time.Time // shared mode: when each piece was last asked for
	own      bool        // each peer fetches a whole copy
	known    []netip.AddrPort
	tried    map[netip.AddrPort]bool
	attempts map[netip.AddrPort]int
	liars    map[netip.AddrPort]bool
	fromDHT  map[netip.AddrPort]bool // peers only the DHT told of: not for a private torrent's download
	active   int
	wake     chan struct{}
	ending   bool           // run is waiting for the peers' goroutines: start no more
	wg       sync.WaitGroup // the announcer, the DHT lookups and the peers' goroutines
}

func newMetaFetch(t *Torrent, c *Client) *metaFetch {
	f := &metaFetch{t: t, c: c, done: make(chan struct{}), exited: make(chan struct{}), tried: map[netip.AddrPort]bool{},
		attempts: map[netip.AddrPort]int{}, liars: map[netip.AddrPort]bool{}, fromDHT: map[netip.AddrPort]bool{},
		wake: make(chan struct{}, 1)}
	f.ctx, f.cancel = context.WithCancel(c.ctx)
	return f
}

// stop ends the fetch (the torrent closes) and waits for all of it: its
// peers, its DHT lookups, and its announcer telling the trackers.
func (f *metaFetch) stop() {
	f.cancel()
	<-f.done
	<-f.exited
}

func (f *metaFetch) run() {
	defer close(f.exited)
	wg := &f.wg
	defer func() {
		f.mu.Lock()
		f.ending = true
		f.mu.Unlock()
		wg.Wait()
	}()
	defer f.cancel()
	t := f.t
	m := t.magnet
	if !f.c.cfg.NoTrackers && len(t.Trackers()) > 0 {
		an := announcer.New(announcer.Config{
			Tiers: t.Trackers(),
			Req: tracker.AnnounceRequest{InfoHash: t.infoHash, PeerID: tracker.PeerID(f.c.cfg.PeerID),
				Port: f.c.port(), NumWant: 50, Left: 1},
			// The size is not known: "left" must only say we are not a
			// seed, or trackers would send us no seeds.
			Progress:      func() announcer.Progress { return announcer.Progress{Left: 1} },
			OnPeers:       func(_ string, peers []netip.AddrPort) { f.addPeers(peers) },
			ClientOptions: f.c.cfg.TrackerOptions,
			Logger:        f.c.cfg.Logger,
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			an.Run(f.ctx) // ends, telling the trackers, once the fetch does
		}()
	}
	if f.c.dht != nil {
		// The torrent may turn out private: BEP 27 is about the peers of
		// the download, and only the metadata can say.
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.c.dhtLookups(f.ctx, t.infoHash, false, f.addDHTPeers)
		}()
	}
	var pe []netip.AddrPort
	for _, hp := range m.Peers {
		if ap, err := netip.ParseAddrPort(hp); err == nil {
			pe = append(pe, ap)
		}
	}
	f.addPeers(pe)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		t.mu.Lock()
		extra := slices.Clone(t.extraPeers)
		t.mu.Unlock()
		f.addPeers(extra)
		f.mu.Lock()
		for f.active < metaPeers {
			a, ok := f.nextPeer()
			if !ok {
				break
			}
			f.active++
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := f.talk(a)
				f.c.cfg.Logger.Debug("metadata peer done", "torrent", t.Name(), "addr", a, "err", err)
				f.mu.Lock()
				f.active--
				f.attempts[a]++
				again := err != nil && !f.liars[a]
				wait := metaRetry << min(f.attempts[a]-1, 5)
				f.mu.Unlock()
				if again {
					// It may have been busy, or slow: ask again later,
					// a little later each time.
					time.AfterFunc(wait, func() { f.requeue(a) })
				}
				f.poke()
			}()
		}
		f.mu.Unlock()
		select {
		case <-f.done:
			return
		case <-f.ctx.Done():
			f.finish(nil, fmt.Errorf("torrent %s: %w", t.Name(), ErrClosed))
			return
		case <-f.wake:
		case <-tick.C:
		}
	}
}

func (f *metaFetch) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// addPeers learns peer addresses (from trackers, x.pe and AddPeers).
func (f *metaFetch) addPeers(addrs []netip.AddrPort) { f.learn(addrs, false) }

// addDHTPeers learns peer addresses from the DHT. They fetch the
// metadata, but if it says the torrent is private their connections are
// not kept for the download (BEP 27), unless another source names them.
func (f *metaFetch) addDHTPeers(addrs []netip.AddrPort) { f.learn(addrs, true) }

func (f *metaFetch) learn(addrs []netip.AddrPort, dht bool) {
	f.mu.Lock()
	added := false
	for _, a := range addrs {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if !a.IsValid() || a.Port() == 0 {
			continue
		}
		known := f.tried[a] || slices.Contains(f.known, a)
		if !dht {
			delete(f.fromDHT, a)
		} else if !known && len(f.fromDHT) < 4096 {
			f.fromDHT[a] = true
		}
		if known || len(f.known) >= 4096 {
			continue
		}
		if f.c.port() == a.Port() && isOwnAddr(a) {
			continue
		}
		f.known = append(f.known, a)
		added = true
	}
	f.mu.Unlock()
	if added {
		f.poke()
	}
}

// requeue makes a peer that failed worth trying again.
func (f *metaFetch) requeue(a netip.AddrPort) {
	select {
	case <-f.done:
		return
	default:
	}
	f.mu.Lock()
	delete(f.tried, a)
	dht := f.fromDHT[a]
	f.mu.Unlock()
	f.learn([]netip.AddrPort{a}, dht)
}

// nextPeer takes a peer to talk to (f.mu held).
func (f *metaFetch) nextPeer() (netip.AddrPort, bool) {
	for len(f.known) > 0 {
		a := f.known[0]
		f.known = f.known[1:]
		if !f.tried[a] && !f.liars[a] && !f.c.isBannedPeer(a, [20]byte{}) {
			f.tried[a] = true
			return a, true
		}
	}
	return netip.AddrPort{}, false
}

// finish ends the fetch with the metadata, or with an error.
func (f *metaFetch) finish(mi *metainfo.MetaInfo, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		return
	default:
	}
	if mi != nil {
		f.t.mi.CompareAndSwap(nil, mi)
		f.c.cfg.Logger.Info("metadata received", "torrent", f.t.Name(), "bytes", len(mi.InfoBytes))
		f.c.keepMetadata(mi) // the link opens with its files next time
	}
	f.err = err
	close(f.done)
	f.cancel()
}

// talk connects to a peer and fetches metadata from it.
func (f *metaFetch) talk(a netip.AddrPort) error {
	conn, id, res, err := dialPeer(f.ctx, f.c, f.c.handshake(f.t.infoHash, false), a)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return err
	}
	return f.talkConn(conn, a, id, res, true)
}

// accept takes a peer that connected to us while the fetch runs (its
// handshake done), and reports whether it did: the connection is then the
// fetch's to close, or to keep for the download.
func (f *metaFetch) accept(conn net.Conn, a netip.AddrPort, id [20]byte, res peer.Reserved) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		return false
	default:
	}
	if f.ending || f.active >= 2*metaPeers || f.liars[a] {
		return false
	}
	f.active++
	f.tried[a] = true
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		err := f.talkConn(conn, a, id, res, false)
		f.c.cfg.Logger.Debug("metadata peer done", "torrent", f.t.Name(), "addr", a, "incoming", true, "err", err)
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
		f.poke()
	}()
	return true
}

// talkConn fetches metadata from one connected peer: its pieces of the
// shared copy, or a whole copy of its own. When the metadata is complete
// and the connection is between two messages, it is parked for the
// download (Torrent.park) with what the peer said that the download needs;
// otherwise it is closed.
func (f *metaFetch) talkConn(conn net.Conn, a netip.AddrPort, id [20]byte, res peer.Reserved, outgoing bool) error {
	var kept *parkedConn
	defer func() {
		if kept == nil {
			conn.Close()
		}
	}()
	fired := make(chan struct{})
	stop := context.AfterFunc(f.ctx, func() {
		conn.SetDeadline(time.Now())
		close(fired)
	})
	defer stop()
	br := bufio.NewReaderSize(conn, 64<<10)
	f.mu.Lock()
	said := &parkedConn{conn: conn, br: br, addr: a, id: id, res: res, outgoing: outgoing, fromDHT: outgoing && f.fromDHT[a]}
	f.mu.Unlock()
	// keep parks the connection, now between two messages.
	keep := func() {
		if !stop() {
			<-fired // the deadline was set: clear it after
		}
		conn.SetDeadline(time.Time{})
		if f.t.park(said) {
			kept = said
		}
	}
	if !res.Extended() {
		return errors.New("no extension protocol: cannot send metadata")
	}
	hs := peer.ExtHandshake{M: map[string]int{peer.ExtMetadata: utMetadataID}, V: clientVersion, Reqq: maxPeerRequests}
	if port := f.c.port(); port != 0 {
		hs.P = int(port) // where the peer can reach us for the download
	}
	out := peer.AppendMessage(nil, &peer.Message{Type: peer.Extended, ExtendedID: peer.ExtHandshakeID, Payload: hs.Append(nil)})
	if res.Fast() {
		out = peer.AppendMessage(out, &peer.Message{Type: peer.HaveNone})
	}
	if port := f.c.dhtPort(); port != 0 && res.DHT() {
		// Our DHT node, for the peer's routing table (BEP 5).
		out = peer.AppendMessage(out, &peer.Message{Type: peer.Port, Port: port})
	}
	if _, err := conn.Write(out); err != nil {
		return err
	}
	r := peer.NewReader(br, peer.Limits{})
	var m peer.Message
	var theirs int // their id for ut_metadata
	var size int64
	var mine [][]byte // own mode: this peer's copy
	asked := map[int]bool{}
	defer func() {
		if mine == nil {
			f.release(asked) // what it was asked and did not send, for others to ask
		}
	}()
	for {
		conn.SetReadDeadline(time.Now().Add(metaTimeout))
		if err := r.ReadMessage(&m); err != nil {
			return err
		}
		said.record(&m)
		if m.Type != peer.Extended {
			continue // bitfields, haves, chokes: for the download
		}
		switch m.ExtendedID {
		case peer.ExtHandshakeID:
			h, err := peer.ParseExtHandshake(m.Payload)
			if err != nil {
				return err
			}
			theirs, size = h.M[peer.ExtMetadata], h.MetadataSize
			if theirs == 0 || size == 0 {
				return fmt.Errorf("does not offer the metadata (ut_metadata id %d, size %d, bad size %d)", theirs, size, h.BadMetadataSize)
			}
			if !f.agree(size) {
				return fmt.Errorf("says the metadata is %d bytes, others %d", size, f.size)
			}
		case utMetadataID:
			if theirs == 0 {
				return errors.New("ut_metadata message before the extension handshake")
			}
			mm, err := peer.ParseMetadataMsg(m.Payload)
			if errors.Is(err, peer.ErrUnknownMetadataMsg) {
				continue
			}
			if err != nil {
				return err
			}
			switch mm.Type {
			case peer.MetadataReject:
				return fmt.Errorf("rejected metadata piece %d", mm.Piece)
			case peer.MetadataRequest:
				continue // we have nothing to send
			}
			if mm.TotalSize != size || mm.Piece >= peer.MetadataPieces(size) || len(mm.Data) != peer.MetadataPieceLen(size, mm.Piece) || !asked[mm.Piece] {
				return fmt.Errorf("metadata piece %d of %d bytes (total %d) not as asked", mm.Piece, len(mm.Data), mm.TotalSize)
			}
			delete(asked, mm.Piece)
			data := slices.Clone(mm.Data)
			if mine != nil {
				mine[mm.Piece] = data
			} else if mi := f.store(mm.Piece, data, a); mi != nil {
				// Parked before the fetch ends, so that the download,
				// which starts as it ends, finds the connection.
				keep()
				f.finish(mi, nil)
				return nil
			}
		default:
			continue // an extension we did not offer
		}
		if theirs == 0 {
			continue
		}
		// Ask for more: pieces of the shared copy no one has, or, once
		// someone lied, the pieces of this peer's own copy. With nothing
		// to ask and nothing asked, wait for others (or for the switch
		// to own copies) rather than for a message that may never come.
		var want []int
		for {
			if mine == nil && f.isOwn() {
				// Pieces asked already come into this copy: they are
				// this peer's as much as any.
				mine = make([][]byte, peer.MetadataPieces(size))
			}
			want = want[:0]
			if mine != nil {
				if mi, done, err := f.ownCopy(mine, a, size); done {
					if err != nil {
						return err
					}
					keep()
					f.finish(mi, nil)
					return nil
				}
				for k := range mine {
					if mine[k] == nil && !asked[k] && len(asked)+len(want) < metaPipeline {
						want = append(want, k)
					}
				}
			} else {
				want = f.claim(metaPipeline - len(asked))
			}
			if len(want) > 0 || len(asked) > 0 {
				break
			}
			select {
			case <-f.done:
				if f.err == nil {
					keep()
				}
				return nil
			case <-f.ctx.Done():
				return f.ctx.Err()
			case <-time.After(time.Second):
			}
		}
		out = out[:0]
		for _, k := range want {
			asked[k] = true
			out = peer.AppendMessage(out, &peer.Message{Type: peer.Extended, ExtendedID: uint8(theirs),
				Payload: peer.AppendMetadataMsg(nil, peer.MetadataMsg{Type: peer.MetadataRequest, Piece: k})})
		}
		if _, err := conn.Write(out); err != nil {
			return err
		}
	}
}

// agree sets the metadata's size from the first peer to say, and reports
// whether a peer's size agrees with it.
func (f *metaFetch) agree(size int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.size == 0 {
		f.size = size
		n := peer.MetadataPieces(size)
		f.pieces = make([][]byte, n)
		f.askedAt = make([]time.Time, n)
	}
	return f.size == size || f.own
}

func (f *metaFetch) isOwn() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.own
}

// claim returns up to n pieces of the shared copy to ask for: those never
// asked, then those asked longest ago, more than metaTimeout ago.
func (f *metaFetch) claim(n int) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.own || n <= 0 {
		return nil
	}
	var out []int
	now := time.Now()
	for k := range f.pieces {
		if len(out) == n {
			break
		}
		if f.pieces[k] == nil && now.Sub(f.askedAt[k]) > metaTimeout {
			f.askedAt[k] = now
			out = append(out, k)
		}
	}
	return out
}

// release makes pieces of the shared copy asked of a peer that will not
// send them free for others to ask at once.
func (f *metaFetch) release(pieces map[int]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range pieces {
		if !f.own && k < len(f.askedAt) {
			f.askedAt[k] = time.Time{}
		}
	}
}

// store keeps a piece of the shared copy; once the copy is whole it is
// checked, and if right returned, for the caller to end the fetch with. A
// copy that does not hash right switches the fetch to own copies.
func (f *metaFetch) store(k int, data []byte, from netip.AddrPort) *metainfo.MetaInfo {
	f.mu.Lock()
	if f.own || k >= len(f.pieces) {
		f.mu.Unlock()
		return nil
	}
	if f.pieces[k] == nil {
		f.pieces[k] = data
	}
	for _, p := range f.pieces {
		if p == nil {
			f.mu.Unlock()
			return nil
		}
	}
	whole := slices.Concat(f.pieces...)
	f.mu.Unlock()
	mi, err := metainfo.FromInfo(whole, f.t.magnet)
	if err == nil {
		return mi
	}
	f.c.cfg.Logger.Info("metadata from several peers does not check out: fetching whole copies", "torrent", f.t.Name(), "err", err)
	f.mu.Lock()
	f.own = true
	f.pieces, f.askedAt = nil, nil
	f.mu.Unlock()
	return nil
}

// ownCopy checks a peer's own copy once whole: done, with the metadata if
// it was right (the caller ends the fetch with it), or an error if the
// peer lied.
func (f *metaFetch) ownCopy(mine [][]byte, from netip.AddrPort, size int64) (*metainfo.MetaInfo, bool, error) {
	for _, p := range mine {
		if p == nil {
			return nil, false, nil
		}
	}
	mi, err := metainfo.FromInfo(slices.Concat(mine...), f.t.magnet)
	if err != nil {
		f.mu.Lock()
		f.liars[from] = true
		f.mu.Unlock()
		return nil, true, fmt.Errorf("sent metadata that does not check out: %w", err)
	}
	return mi, true, nil
}

// dialPeer connects to the peer at a and exchanges handshakes for the
// torrent with info hash hash.
func dialPeer(ctx context.Context, c *Client, h *peer.Handshake, a netip.AddrPort) (net.Conn, [20]byte, peer.Reserved, error) {
	hash := h.InfoHash
	var id [20]byte
	var res peer.Reserved
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", a.String())
	if err != nil {
		return nil, id, res, err
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stopAbort := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stopAbort()
	if err := peer.WriteHandshake(conn, h); err != nil {
		return conn, id, res, err
	}
	theirs, err := peer.ReadHandshake(conn)
	if err != nil {
		return conn, id, res, err
	}
	if theirs.InfoHash != hash {
		return conn, id, res, errors.New("peer answered for another torrent")
	}
	if theirs.PeerID == c.cfg.PeerID {
		return conn, id, res, errors.New("connected to ourselves")
	}
	conn.SetDeadline(time.Time{})
	return conn, theirs.PeerID, theirs.Reserved, nil
}

// A connection of the metadata fetch is kept for the download, so that
// it need not dial the peer again (aria2c, for one, accepts a connection
// about once a second).
const (
	// parkTimeout is how long a parked connection waits for the download
	// to start before it is closed.
	parkTimeout = 30 * time.Second
	// maxParked bounds the connections parked per torrent.
	maxParked = 2 * metaPeers
	// maxSaid bounds what is kept of what a peer said while parked:
	// messages, and their payload bytes (a bitfield of 1 M pieces is 128 KiB).
	maxSaidMsgs  = 4096
	maxSaidBytes = 256 << 10
)

// parkedConn is a connection the metadata fetch used, with what the peer
// said that the download needs: its extension handshake, what it has,
// whether it chokes us, its allowed fast pieces. What we said was our
// handshake, an extension handshake offering ut_metadata, and have_none
// with the Fast extension.
type parkedConn struct {
	conn     net.Conn
	br       *bufio.Reader // holds what was read past the last message
	addr     netip.AddrPort
	id       [20]byte
	res      peer.Reserved
	outgoing bool
	msgs     []peer.Message // in order, payloads copied
	bytes    int
	overflow bool // it said more than kept: the download dials afresh
	fromDHT  bool // we dialled it, told of it by the DHT alone
	timer    *time.Timer
}

// record keeps a message the download needs.
func (pc *parkedConn) record(m *peer.Message) {
	switch m.Type {
	case peer.Piece, peer.Request, peer.Cancel, peer.KeepAlive, peer.Port:
		return // no request was made; the DHT node was not told yet
	case peer.Extended:
		if m.ExtendedID != peer.ExtHandshakeID {
			return
		}
	}
	if len(pc.msgs) >= maxSaidMsgs || pc.bytes+len(m.Payload) > maxSaidBytes {
		pc.overflow = true
		return
	}
	c := *m
	c.Payload = slices.Clone(m.Payload)
	pc.msgs = append(pc.msgs, c)
	pc.bytes += len(m.Payload)
}

// park keeps a connection of the metadata fetch for the download, for
// parkTimeout at most, or hands it to the download if it has started, and
// reports whether it did either.
func (t *Torrent) park(pc *parkedConn) bool {
	if pc.overflow {
		return false
	}
	t.mu.Lock()
	if t.closed || len(t.parked) >= maxParked {
		t.mu.Unlock()
		return false
	}
	if e := t.adopter; e != nil {
		// The download started before this connection came free (the
		// metadata was complete before its peers' goroutines ended).
		t.mu.Unlock()
		e.adopt(pc)
		return true
	}
	t.parked = append(t.parked, pc)
	pc.timer = time.AfterFunc(parkTimeout, func() {
		t.mu.Lock()
		i := slices.Index(t.parked, pc)
		if i >= 0 {
			t.parked = slices.Delete(t.parked, i, i+1)
		}
		t.mu.Unlock()
		if i >= 0 {
			pc.conn.Close()
		}
	})
	t.mu.Unlock()
	return true
}

// takeParked returns the parked connections, which are the caller's from
// then on; with e, the engine starting, connections parked later go to e.
func (t *Torrent) takeParked(e *engine) []*parkedConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.adopter = e
	var out []*parkedConn
	for _, pc := range t.parked {
		if pc.timer.Stop() {
			out = append(out, pc)
		} else {
			pc.conn.Close() // its timer is waiting for mu, and will find it gone
		}
	}
	t.parked = nil
	return out
}

// closeParked closes the parked connections (the torrent closes).
func (t *Torrent) closeParked() {
	for _, pc := range t.takeParked(nil) {
		pc.conn.Close()
	}
}
