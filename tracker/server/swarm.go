package server

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// peer is one member of a swarm.
type peer struct {
	addr      netip.AddrPort // its key in the swarm; the address is unmapped
	id        tracker.PeerID
	left      int64 // bytes it still wants; 0 is a seeder, negative unknown
	lastSeen  time.Time
	completed bool // its "completed" event has been counted
}

func (p *peer) seeder() bool { return p.left == 0 }

// swarm is the peers of one torrent. Everything in it is guarded by
// Server.mu.
type swarm struct {
	peers      []peer                 // in no order; removal swaps the last one in
	index      map[netip.AddrPort]int // peer address -> index in peers
	seeders    int                    // peers with left == 0
	downloaded int                    // "completed" events counted
	// nextExpire is when the oldest peer expires, or a time before it: no
	// peer has expired before then, so expire need not look. Zero when
	// the swarm is empty.
	nextExpire time.Time
	lastActive time.Time // last announce; an empty swarm is dropped after PeerTTL
}

func newSwarm() *swarm {
	return &swarm{index: make(map[netip.AddrPort]int)}
}

// family selects the peers a reply may carry.
type family uint8

const (
	anyFamily family = iota
	onlyV4
	onlyV6
)

func (f family) admits(a netip.Addr) bool {
	switch f {
	case onlyV4:
		return a.Is4()
	case onlyV6:
		return a.Is6()
	}
	return true
}

// announce is one announce, from HTTP or UDP, already validated.
type announce struct {
	hash    metainfo.Hash
	id      tracker.PeerID
	addr    netip.AddrPort // unmapped address, port not zero
	left    int64          // negative: unknown, counted as a leecher
	event   tracker.Event
	numWant int // negative: the server's default
	family  family
}

// announceResult is what an announce reply carries.
type announceResult struct {
	peers      []peer // copies of the chosen peers
	complete   int    // seeders
	incomplete int    // leechers
}

// failure is a refusal sent back to a client as an HTTP "failure reason"
// or a UDP error action.
type failure string

func (f failure) Error() string { return string(f) }

const errNotTracked failure = "torrent not tracked here"

// announce records a and chooses the peers to send back. maxPeers bounds
// the reply further than numwant and MaxNumWant (what fits in a datagram).
func (s *Server) announce(a *announce, maxPeers int) (announceResult, error) {
	if !s.tracked(a.hash) {
		return announceResult{}, errNotTracked
	}
	s.announces.Add(1)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := s.swarms[a.hash]
	if sw != nil {
		s.expire(sw, now)
		sw.lastActive = now
	}
	if a.event == tracker.Stopped {
		var res announceResult
		if sw != nil {
			s.remove(sw, a.addr)
			res.complete, res.incomplete = sw.seeders, len(sw.peers)-sw.seeders
		}
		return res, nil
	}
	if sw == nil {
		if len(s.swarms) >= s.cfg.MaxPeers || s.numPeers >= s.cfg.MaxPeers {
			return announceResult{}, nil // table full: answered, not recorded
		}
		sw = newSwarm()
		sw.lastActive = now
		s.swarms[a.hash] = sw
	}
	var res announceResult
	self := s.upsert(sw, a, now) // nil when the table is full
	if self != nil && a.event == tracker.Completed && !self.completed {
		self.completed = true
		sw.downloaded++
	}
	res.complete, res.incomplete = sw.seeders, len(sw.peers)-sw.seeders
	n := s.cfg.MaxNumWant
	if a.numWant >= 0 {
		n = min(n, a.numWant)
	}
	n = min(n, maxPeers)
	res.peers = sw.pick(a, n)
	return res, nil
}

// upsert adds the announcing peer to sw or refreshes it, and returns it;
// nil when the table is full and the peer is new.
func (s *Server) upsert(sw *swarm, a *announce, now time.Time) *peer {
	i, ok := sw.index[a.addr]
	if !ok {
		if s.numPeers >= s.cfg.MaxPeers {
			return nil
		}
		if len(sw.peers) == 0 {
			sw.nextExpire = now.Add(s.cfg.PeerTTL)
		}
		i = len(sw.peers)
		sw.peers = append(sw.peers, peer{addr: a.addr})
		sw.index[a.addr] = i
		s.numPeers++
	}
	p := &sw.peers[i]
	if ok && p.seeder() {
		sw.seeders--
	}
	p.id = a.id
	p.left = a.left
	p.lastSeen = now
	if p.seeder() {
		sw.seeders++
	}
	return p
}

// remove takes the peer at addr out of sw, if it is there.
func (s *Server) remove(sw *swarm, addr netip.AddrPort) {
	i, ok := sw.index[addr]
	if !ok {
		return
	}
	s.removeAt(sw, i)
}

func (s *Server) removeAt(sw *swarm, i int) {
	if sw.peers[i].seeder() {
		sw.seeders--
	}
	delete(sw.index, sw.peers[i].addr)
	last := len(sw.peers) - 1
	if i != last {
		sw.peers[i] = sw.peers[last]
		sw.index[sw.peers[i].addr] = i
	}
	sw.peers[last] = peer{}
	sw.peers = sw.peers[:last]
	s.numPeers--
	if len(sw.peers) == 0 {
		sw.nextExpire = time.Time{}
	}
}

// expire removes the peers of sw not heard from for PeerTTL. It looks at
// them only once the oldest may have expired, so calling it on every use
// of a swarm costs little.
func (s *Server) expire(sw *swarm, now time.Time) {
	if sw.nextExpire.IsZero() || now.Before(sw.nextExpire) {
		return
	}
	var oldest time.Time
	for i := 0; i < len(sw.peers); {
		seen := sw.peers[i].lastSeen
		if now.Sub(seen) >= s.cfg.PeerTTL {
			s.removeAt(sw, i) // brings another peer to i
			continue
		}
		if oldest.IsZero() || seen.Before(oldest) {
			oldest = seen
		}
		i++
	}
	if len(sw.peers) > 0 {
		sw.nextExpire = oldest.Add(s.cfg.PeerTTL)
	}
}

// sweep expires the peers of every swarm and drops swarms that have been
// empty and unasked for PeerTTL.
func (s *Server) sweep() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, sw := range s.swarms {
		s.expire(sw, now)
		if len(sw.peers) == 0 && now.Sub(sw.lastActive) >= s.cfg.PeerTTL {
			delete(s.swarms, h)
		}
	}
}

// pick returns up to n peers of sw for the asker a, in random order: never
// the asker itself (by address or peer id), only addresses of a.family,
// and to a seeder no seeders, except on its "started" announce, where
// seeders fill what leechers leave: a client starting from a magnet link
// cannot say how much it lacks, and aria2c then says left=0.
//
// It walks the peers from a random start with a random stride coprime to
// their number, which visits each once without allocating a permutation.
func (sw *swarm) pick(a *announce, n int) []peer {
	m := len(sw.peers)
	if n <= 0 || m == 0 {
		return nil
	}
	seeder := a.left == 0
	start, stride := rand.IntN(m), 1
	if m > 2 {
		for {
			stride = 1 + rand.IntN(m-1)
			if gcd(stride, m) == 1 {
				break
			}
		}
	}
	out := make([]peer, 0, min(n, m))
	for i, j := 0, start; i < m && len(out) < n; i, j = i+1, (j+stride)%m {
		p := &sw.peers[j]
		if p.addr == a.addr || p.id == a.id ||
			(seeder && p.seeder()) || !a.family.admits(p.addr.Addr()) {
			continue
		}
		out = append(out, *p)
	}
	if seeder && a.event == tracker.Started {
		for i, j := 0, start; i < m && len(out) < n; i, j = i+1, (j+stride)%m {
			p := &sw.peers[j]
			if p.seeder() && p.addr != a.addr && p.id != a.id && a.family.admits(p.addr.Addr()) {
				out = append(out, *p)
			}
		}
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// scrapeResult is one torrent's counts in a scrape reply.
type scrapeResult struct {
	complete, downloaded, incomplete int
	known                            bool
}

// scrape returns the counts of each of hashes, known false for torrents not
// tracked. With no hashes it returns up to limit tracked torrents.
func (s *Server) scrape(hashes []metainfo.Hash, limit int) ([]metainfo.Hash, []scrapeResult) {
	s.scrapes.Add(1)
	hashes, res := s.scrapeLocked(hashes, limit)
	if s.cfg.Whitelist != nil {
		for i, h := range hashes {
			if res[i].known && !s.cfg.Whitelist(h) {
				res[i] = scrapeResult{}
			}
		}
	}
	return hashes, res
}

func (s *Server) scrapeLocked(hashes []metainfo.Hash, limit int) ([]metainfo.Hash, []scrapeResult) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(hashes) == 0 {
		for h := range s.swarms {
			if len(hashes) >= limit {
				break
			}
			hashes = append(hashes, h)
		}
	}
	res := make([]scrapeResult, len(hashes))
	for i, h := range hashes {
		sw := s.swarms[h]
		if sw == nil {
			continue
		}
		s.expire(sw, now)
		res[i] = scrapeResult{
			complete:   sw.seeders,
			downloaded: sw.downloaded,
			incomplete: len(sw.peers) - sw.seeders,
			known:      true,
		}
	}
	return hashes, res
}
