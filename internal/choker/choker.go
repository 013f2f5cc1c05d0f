// Package choker decides which peers a torrent uploads to: the choking
// algorithm of BitTorrent (BEP 3, "Choking and Optimistic Unchoking"), as
// the reference clients do it.
//
// A fixed number of regular upload slots go to the interested peers that
// serve us best: while downloading, those that send us data fastest (tit
// for tat); while seeding, those we send data to fastest, so upload goes
// where it moves quickest. A peer that has stopped sending us data while
// we want it (it snubs us) gets no regular slot. One more slot, the
// optimistic unchoke, goes to a random interested peer and moves every
// few rounds, so that new peers get a first piece to trade with and
// better partners are found; peers that connected recently are three
// times as likely to get it.
//
// The package holds no connections and does no I/O: the caller describes
// its peers in a [Peer] slice and applies the decision.
package choker

import (
	"math/rand/v2"
	"slices"
)

// Peer is what the choker knows of one connected peer.
type Peer struct {
	// Interested: the peer wants data from us. Only interested peers are
	// unchoked.
	Interested bool
	// Snubbed: we want data from the peer and it has sent none for a
	// while, or it does not use the slot (it reads none of the data we
	// send it, or asks for none). It may have the optimistic slot, never
	// a regular one.
	Snubbed bool
	// New: the peer connected recently; it is favoured for the
	// optimistic slot.
	New bool
	// DownRate is how fast the peer sends us data, UpRate how fast we
	// send it data (bytes per second).
	DownRate, UpRate float64
	// Unchoked: the peer is unchoked now (it keeps its slot on ties, so
	// that peers are not choked and unchoked for nothing).
	Unchoked bool
	// Optimistic: the peer holds the optimistic slot now.
	Optimistic bool
}

// Decision is the outcome of a round for one peer.
type Decision struct {
	Unchoke    bool
	Optimistic bool // the unchoke is the optimistic one
}

// Round decides who is unchoked, writing one Decision per peer into out
// (which it returns, grown if needed). slots is the number of regular
// upload slots; seeding says whether the torrent is complete (rank by
// upload rate rather than download rate); rotate says whether the
// optimistic unchoke moves to another peer this round (if not, its
// holder keeps it while it stays interested). order is scratch space.
func Round(peers []Peer, slots int, seeding, rotate bool, rnd *rand.Rand, out []Decision, order []int) ([]Decision, []int) {
	out = slices.Grow(out[:0], len(peers))[:len(peers)]
	clear(out)
	order = order[:0]
	for i, p := range peers {
		if p.Interested && !p.Snubbed {
			order = append(order, i)
		}
	}
	// Ties (often every rate is 0 at first) are broken at random, then in
	// favour of peers already unchoked, so slots do not move for nothing.
	rnd.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	rank := func(p *Peer) float64 {
		if seeding {
			return p.UpRate
		}
		return p.DownRate
	}
	slices.SortStableFunc(order, func(a, b int) int {
		pa, pb := &peers[a], &peers[b]
		ra, rb := rank(pa), rank(pb)
		switch {
		case ra > rb:
			return -1
		case ra < rb:
			return 1
		case pa.Unchoked && !pb.Unchoked:
			return -1
		case pb.Unchoked && !pa.Unchoked:
			return 1
		}
		return 0
	})
	for _, i := range order[:min(slots, len(order))] {
		out[i].Unchoke = true
	}

	// The optimistic unchoke: kept by its holder unless it is time to
	// rotate, else drawn among the interested peers left choked.
	if !rotate {
		for i, p := range peers {
			if p.Optimistic && p.Interested && !out[i].Unchoke {
				out[i] = Decision{Unchoke: true, Optimistic: true}
				return out, order
			}
		}
	}
	total := 0
	for i, p := range peers {
		if p.Interested && !out[i].Unchoke && !(rotate && p.Optimistic && hasOther(peers, out, i)) {
			total += weight(p)
		}
	}
	if total == 0 {
		return out, order
	}
	pick := rnd.IntN(total)
	for i, p := range peers {
		if !p.Interested || out[i].Unchoke || (rotate && p.Optimistic && hasOther(peers, out, i)) {
			continue
		}
		if pick -= weight(p); pick < 0 {
			out[i] = Decision{Unchoke: true, Optimistic: true}
			break
		}
	}
	return out, order
}

// weight is a peer's chance of the optimistic slot: new peers have
// nothing to trade yet, and three times the chance.
func weight(p Peer) int {
	if p.New {
		return 3
	}
	return 1
}

// hasOther reports whether another interested peer than i is left
// choked: the optimistic slot rotates away from i only if so.
func hasOther(peers []Peer, out []Decision, i int) bool {
	for k, p := range peers {
		if k != i && p.Interested && !out[k].Unchoke {
			return true
		}
	}
	return false
}
