package dht

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// peerStore holds the peers announced to us, per info hash, each until its
// expiry. It is bounded per info hash, in info hashes and in total.
type peerStore struct {
	maxPerHash, maxHashes, maxTotal int
	ttl                             time.Duration

	byHash map[ID]map[netip.AddrPort]time.Time // peer → expiry
	total  int
}

func newPeerStore(perHash, hashes, total int, ttl time.Duration) *peerStore {
	return &peerStore{maxPerHash: perHash, maxHashes: hashes, maxTotal: total, ttl: ttl, byHash: map[ID]map[netip.AddrPort]time.Time{}}
}

// expire drops the expired peers of ih.
func (ps *peerStore) expire(ih ID, now time.Time) {
	set := ps.byHash[ih]
	for p, exp := range set {
		if !now.Before(exp) {
			delete(set, p)
			ps.total--
		}
	}
	if set != nil && len(set) == 0 {
		delete(ps.byHash, ih)
	}
}

// sweep drops every expired peer.
func (ps *peerStore) sweep(now time.Time) {
	for ih := range ps.byHash {
		ps.expire(ih, now)
	}
}

// add stores p for ih, or refreshes it, and reports whether it is stored.
// A full info hash loses the peer closest to expiry; when the store is full
// of info hashes or of peers, new ones are refused.
func (ps *peerStore) add(ih ID, p netip.AddrPort, now time.Time) bool {
	ps.expire(ih, now)
	set := ps.byHash[ih]
	if _, ok := set[p]; ok {
		set[p] = now.Add(ps.ttl)
		return true
	}
	if set == nil {
		if len(ps.byHash) >= ps.maxHashes {
			return false
		}
	}
	if len(set) >= ps.maxPerHash {
		var oldest netip.AddrPort
		var oldestExp time.Time
		for q, exp := range set {
			if oldestExp.IsZero() || exp.Before(oldestExp) {
				oldest, oldestExp = q, exp
			}
		}
		delete(set, oldest)
		ps.total--
	} else if ps.total >= ps.maxTotal {
		return false
	}
	if set == nil {
		set = map[netip.AddrPort]time.Time{}
		ps.byHash[ih] = set
	}
	set[p] = now.Add(ps.ttl)
	ps.total++
	return true
}

// get returns up to n random live peers of ih in the address family of
// family.
func (ps *peerStore) get(ih ID, family netip.Addr, n int, now time.Time) []netip.AddrPort {
	ps.expire(ih, now)
	var out []netip.AddrPort
	for p := range ps.byHash[ih] {
		if p.Addr().Is4() == family.Unmap().Is4() {
			out = append(out, p)
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(n, len(out))]
}
