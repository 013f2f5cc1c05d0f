package aiotorrent

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Peer exchange (ut_pex, BEP 11) with a real client: libtorrent, through
// internal/swarmtest. In each case a peer told of one other peer alone
// must learn the swarm's seeders from it. The seeders are libtorrent
// seeders with peer exchange off: they never hear of the learner, so any
// connection between them is one the learner made to an address it can
// only have had from the one peer it was told of. That peer is slow (it
// downloads at pexSlowRate), so the torrent cannot come through it in
// the time the learner has.

const (
	// pexLTSize is the torrent's size: through the slow peer alone it
	// takes pexLTSize/pexSlowRate (256 s).
	pexLTSize     = 4 << 20
	pexLTPieceLen = 64 << 10
	pexSlowRate   = 16 << 10
	pexSeedRate   = 1 << 20
	// pexLearnTimeout bounds learning the seeders and downloading from
	// them. libtorrent sends its first ut_pex message at its first tick
	// (every 500 ms) after the extension handshake, and we send ours
	// pexFirst (2 s) after it: the learner connects to the seeders about
	// 0.5 s (from libtorrent) or 2.4 s (from us) after connecting to the
	// peer it was told of, and completes 2 s to 5 s later (the seeders
	// send pexSeedRate each). 30 s is honest: the slow peer could have
	// given at most about 30 × pexSlowRate = 480 KiB of the 4 MiB in that
	// time.
	pexLearnTimeout = 30 * time.Second
	// pexPrivateWait is how long the private torrent's peers are watched
	// for a connection that must not come: over three times the 2.4 s
	// the slower side (ours) takes in the public cases.
	pexPrivateWait = 8 * time.Second
)

// pexSwarm is the torrent of a peer exchange test and its two libtorrent
// seeders, which exchange no peers.
type pexSwarm struct {
	mi      *metainfo.MetaInfo
	src     string // the folder holding the torrent's folder
	path    string // the .torrent file
	seeders []*swarmtest.LT
}

// startPEXSwarm makes the torrent (private if asked) and starts its
// seeders, each with a copy of the data; they have no peers until one
// connects to them.
func startPEXSwarm(t *testing.T, private bool) *pexSwarm {
	t.Helper()
	swarmtest.RequireLibtorrent(t)
	mi, src := makeTorrent(t, "pexlt", pexLTPieceLen, testFile{"a.bin", pexLTSize})
	if private {
		mi = privateCopy(t, mi)
	}
	s := &pexSwarm{mi: mi, src: src, path: swarmtest.WriteTorrent(t, mi)}
	for range 2 {
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		// At 1 MiB/s each, so that a learner's download takes about 2 s:
		// long enough for libtorrent's status (every 0.5 s) to show the
		// seeders connected before it completes and drops them.
		s.seeders = append(s.seeders, swarmtest.LibtorrentWith(t, s.path, dir, swarmtest.LTOptions{Seed: true, UploadLimit: pexSeedRate}))
	}
	return s
}

// seederAddrs returns the seeders' listening addresses.
func (s *pexSwarm) seederAddrs() []netip.AddrPort {
	var addrs []netip.AddrPort
	for _, l := range s.seeders {
		addrs = append(addrs, l.Addr())
	}
	return addrs
}

// slowLibtorrent starts a libtorrent leecher with peer exchange on, that
// downloads at most pexSlowRate, connected to the given peers, and waits
// until it is connected to all of them.
func slowLibtorrent(t *testing.T, ctx context.Context, s *pexSwarm, peers []netip.AddrPort) *swarmtest.LT {
	t.Helper()
	l := swarmtest.LibtorrentWith(t, s.path, t.TempDir(), swarmtest.LTOptions{
		PEX: true, Peers: peers, DownloadLimit: pexSlowRate,
	})
	if err := l.WaitFor(ctx, func(st swarmtest.LTStatus) bool { return ltConnected(st, peers) }); err != nil {
		t.Fatal(err)
	}
	return l
}

// ltConnected reports whether st shows a connection to every peer in
// addrs.
func ltConnected(st swarmtest.LTStatus, addrs []netip.AddrPort) bool {
	for _, a := range addrs {
		if _, ok := st.Peer(a); !ok {
			return false
		}
	}
	return true
}

// peerWatch records when a torrent of ours first had each peer, polling
// its Stats: the connections of a download that drops its seeders once
// complete, and the times they came.
type peerWatch struct {
	tor  *Torrent
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	first map[netip.AddrPort]PeerStats // guarded by mu: each peer as first seen
	last  map[netip.AddrPort]PeerStats // guarded by mu: each peer as last seen
	at    map[netip.AddrPort]time.Time // guarded by mu: when first seen
}

func watchPeers(t *testing.T, tor *Torrent) *peerWatch {
	w := &peerWatch{
		tor: tor, stop: make(chan struct{}), done: make(chan struct{}),
		first: make(map[netip.AddrPort]PeerStats), last: make(map[netip.AddrPort]PeerStats),
		at: make(map[netip.AddrPort]time.Time),
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			w.poll()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(w.end)
	return w
}

func (w *peerWatch) poll() {
	ps := w.tor.Stats().PeerList
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		if _, ok := w.first[p.Addr]; !ok {
			w.first[p.Addr], w.at[p.Addr] = p, now
		}
		w.last[p.Addr] = p
	}
}

// end stops polling, after a last poll; it is idempotent.
func (w *peerWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// received returns the payload bytes received from the peer with address
// a, as last seen.
func (w *peerWatch) received(a netip.AddrPort) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[a].Downloaded
}

// seen returns the peer with address a as first seen, and when.
func (w *peerWatch) seen(a netip.AddrPort) (PeerStats, time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.first[a]
	return p, w.at[a], ok
}

// TestInteropPEXLearnFromLibtorrent: our leecher, told of a libtorrent
// peer alone (no tracker), learns the two seeders that peer is connected
// to from its ut_pex message, connects to them and completes; the peer
// downloads at 16 KiB/s, so the 4 MiB cannot have come through it.
func TestInteropPEXLearnFromLibtorrent(t *testing.T) {
	s := startPEXSwarm(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	seeders := s.seederAddrs()
	l := slowLibtorrent(t, ctx, s, seeders)

	tor, w := pexLearner(t, s, l.Addr())
	begin := time.Now()
	dctx, dcancel := context.WithTimeout(ctx, pexLearnTimeout)
	defer dcancel()
	dir := t.TempDir()
	err := tor.DownloadAll(dctx, WithDir(dir))
	took := time.Since(begin)
	w.end()
	if err != nil {
		t.Fatalf("download told of the libtorrent peer alone: %v after %v (the seeders were not learnt from its ut_pex); peers seen: %+v",
			err, took.Round(time.Millisecond), w.first)
	}
	sameFile(t, filepath.Join(dir, "pexlt", "a.bin"), filepath.Join(s.src, "pexlt", "a.bin"))

	lp, lat, ok := w.seen(l.Addr())
	if !ok {
		t.Fatalf("never connected to the libtorrent peer %v, the only peer it was told of", l.Addr())
	}
	for _, a := range seeders {
		p, at, ok := w.seen(a)
		if !ok {
			t.Errorf("never connected to seeder %v: it was not learnt from the libtorrent peer's ut_pex", a)
			continue
		}
		if !p.Outgoing {
			t.Errorf("seeder %v connected to us: want our connection to it, to the address learnt", a)
		}
		t.Logf("connected to seeder %v %v after the libtorrent peer; received at least %d bytes from it (last polled)", a, at.Sub(lat).Round(time.Millisecond), w.received(a))
	}
	t.Logf("complete in %v; received at least %d bytes from the libtorrent peer (%s)", took.Round(time.Millisecond), w.received(l.Addr()), lp.Client)
}

// TestInteropPEXTeachLibtorrent: a libtorrent leecher told of our peer
// alone learns the two seeders our peer is connected to from our ut_pex
// message, connects to them (libtorrent says it heard of them through
// peer exchange) and completes; our peer downloads at 16 KiB/s, so the
// 4 MiB cannot have come through it.
func TestInteropPEXTeachLibtorrent(t *testing.T) {
	s := startPEXSwarm(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	seeders := s.seederAddrs()
	p := slowPeer(t, ctx, s, seeders)

	l := swarmtest.LibtorrentWith(t, s.path, t.TempDir(), swarmtest.LTOptions{
		PEX: true, Peers: []netip.AddrPort{clientAddr(p)},
	})
	begin := time.Now()
	var connectedP time.Time
	learnt := make(map[netip.AddrPort]time.Duration) // seeders connected to, heard of through PEX
	var other []swarmtest.LTPeer                     // seeders connected to, heard of otherwise
	dctx, dcancel := context.WithTimeout(ctx, pexLearnTimeout)
	defer dcancel()
	err := l.WaitFor(dctx, func(st swarmtest.LTStatus) bool {
		if _, ok := st.Peer(clientAddr(p)); ok && connectedP.IsZero() {
			connectedP = time.Now()
		}
		for _, a := range seeders {
			lp, ok := st.Peer(a)
			_, seen := learnt[a]
			switch {
			case !ok || seen:
			case lp.FromPEX():
				learnt[a] = time.Since(connectedP)
			case !slices.ContainsFunc(other, func(o swarmtest.LTPeer) bool { return o.Addr == a }):
				other = append(other, lp)
			}
		}
		return st.Complete()
	})
	took := time.Since(begin)
	if err != nil {
		t.Fatalf("libtorrent told of our peer alone did not complete in %v (the seeders were not learnt from our ut_pex): %v", pexLearnTimeout, err)
	}
	if len(other) > 0 {
		t.Errorf("libtorrent connected to seeders it did not hear of through peer exchange: %+v", other)
	}
	if len(learnt) == 0 {
		t.Fatalf("libtorrent completed without connecting to a seeder it heard of through peer exchange; last status %+v", l.Status())
	}
	for a, d := range learnt {
		t.Logf("libtorrent connected to seeder %v, heard of through PEX, %v after our peer", a, d.Round(time.Millisecond))
	}
	t.Logf("libtorrent complete in %v", took.Round(time.Millisecond))
}

// pexLearner adds the torrent to a new client of ours, tells it of the
// one peer at a (no tracker), and watches its peers.
func pexLearner(t *testing.T, s *pexSwarm, a netip.AddrPort) (*Torrent, *peerWatch) {
	t.Helper()
	c := seedClient(t, Config{})
	tor, err := c.Add(s.mi)
	if err != nil {
		t.Fatal(err)
	}
	tor.AddPeers(a)
	return tor, watchPeers(t, tor)
}

// slowPeer starts our peer, downloading at most pexSlowRate, told of the
// given peers, and waits until it is connected to all of them.
func slowPeer(t *testing.T, ctx context.Context, s *pexSwarm, peers []netip.AddrPort) *Client {
	t.Helper()
	c := seedClient(t, Config{DownloadLimit: pexSlowRate})
	tor, err := c.Add(s.mi)
	if err != nil {
		t.Fatal(err)
	}
	tor.AddPeers(peers...)
	if err := tor.Start(WithDir(t.TempDir())); err != nil {
		t.Fatal(err)
	}
	for {
		var have []netip.AddrPort
		for _, p := range tor.Stats().PeerList {
			have = append(have, p.Addr)
		}
		if !slices.ContainsFunc(peers, func(a netip.AddrPort) bool { return !slices.Contains(have, a) }) {
			return c
		}
		select {
		case <-ctx.Done():
			t.Fatalf("our peer is connected to %v, not to all of %v: %v", have, peers, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestInteropPEXPrivate: with a private torrent (BEP 27) no peers are
// exchanged either way. Our leecher told of a libtorrent peer alone never
// connects to the seeders that peer is connected to, and a libtorrent
// leecher told of our peer alone never connects to the seeders ours is
// connected to, over a wait longer than either takes to learn them when
// the torrent is public.
func TestInteropPEXPrivate(t *testing.T) {
	s := startPEXSwarm(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	seeders := s.seederAddrs()

	// From libtorrent: our leecher told of l alone.
	l := slowLibtorrent(t, ctx, s, seeders)
	tor, w := pexLearner(t, s, l.Addr())
	if err := tor.Start(WithDir(t.TempDir())); err != nil {
		t.Fatal(err)
	}

	// To libtorrent: l2 told of our peer p alone.
	p := slowPeer(t, ctx, s, seeders)
	l2 := swarmtest.LibtorrentWith(t, s.path, t.TempDir(), swarmtest.LTOptions{
		PEX: true, Peers: []netip.AddrPort{clientAddr(p)},
	})

	if err := l2.WaitFor(ctx, func(st swarmtest.LTStatus) bool { return ltConnected(st, []netip.AddrPort{clientAddr(p)}) }); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, ok := w.seen(l.Addr()); ok {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("our leecher never connected to the libtorrent peer %v: %v", l.Addr(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}

	// Both learners are connected to the one peer they were told of:
	// watch for a connection to a seeder.
	var learnt []swarmtest.LTPeer
	wctx, wcancel := context.WithTimeout(ctx, pexPrivateWait)
	defer wcancel()
	err := l2.WaitFor(wctx, func(st swarmtest.LTStatus) bool {
		for _, a := range seeders {
			if lp, ok := st.Peer(a); ok {
				learnt = append(learnt, lp)
			}
		}
		return len(learnt) > 0
	})
	if err != nil && wctx.Err() == nil {
		t.Fatal(err) // l2 exited
	}
	<-wctx.Done()
	w.end()
	if len(learnt) > 0 {
		t.Errorf("libtorrent told of our peer alone connected to a seeder of the private torrent: %+v", learnt)
	}
	for _, a := range seeders {
		if p, _, ok := w.seen(a); ok {
			t.Errorf("our leecher told of the libtorrent peer alone connected to seeder %v of the private torrent: %+v", a, p)
		}
	}
	if st := tor.Stats(); st.PiecesVerified == st.Pieces {
		t.Error("our leecher completed the private torrent through the slow libtorrent peer alone")
	}
	if l2.Status().Complete() {
		t.Error("libtorrent completed the private torrent through our slow peer alone")
	}
}
