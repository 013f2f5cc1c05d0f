package aiotorrent

import (
	"errors"
	"slices"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/choker"
	"github.com/aiotorrent/aiotorrent/internal/picker"
	"github.com/aiotorrent/aiotorrent/peer"
)

// Choking (internal/choker decides; this applies it).
const (
	chokeEvery      = 10 * time.Second // a choking round
	optimisticEvery = 30 * time.Second // the optimistic unchoke moves
	snubTime        = time.Minute      // no block for this long while we want some: snubbed
	newPeerTime     = time.Minute      // favoured for the optimistic unchoke
	allowedFastK    = 10               // pieces in the allowed fast set we give
	maxAllowedIn    = 32               // allowed fast pieces remembered of a peer
	readUnit        = 1 << 20          // the read cache's unit, at most
	rechokeHold     = time.Second      // a choked peer is not unchoked again between rounds before this
	stallTime       = 5 * time.Second  // a write to a peer stuck this long: it does not read
)

// rechoke runs a choking round: the regular upload slots go to the
// peers that serve us (or take from us) fastest, one more to a peer
// drawn at random every optimisticEvery.
func (e *engine) rechoke(now time.Time) {
	rotate := !now.Before(e.optAt)
	if rotate {
		e.optAt = now.Add(optimisticEvery)
	}
	e.chokeAt = now.Add(chokeEvery)
	seeding := e.picker.Missing() == 0 && len(e.prio) == 0
	e.chokeConns = e.chokeConns[:0]
	e.chokePeers = e.chokePeers[:0]
	for p := range e.peers {
		// A peer whose socket has been full for a while does not read:
		// it gets no regular slot, like a peer that snubs us (its rate
		// decays but never quite reaches 0, and would keep it the slot).
		stalled := p.stalled(now, stallTime)
		_, queued := p.backlog()
		// So does a peer unchoked for a while that asks for nothing (and
		// has nothing it asked for waiting): the slot is better used by
		// another.
		unused := !p.amChoking && now.Sub(p.unchokedAt) >= stallTime && now.Sub(p.requestAt) >= stallTime && queued == 0
		// Rates over the round just ended (mainline ranks by 20 s
		// averages): a peer that sent or took nothing in it ranks last,
		// whatever it did before.
		sent, recv := p.sent.Load(), p.received
		since := p.roundAt
		if since.IsZero() {
			since = p.connectedAt
		}
		dt := max(now.Sub(since).Seconds(), 0.1)
		up, down := float64(sent-p.roundSent)/dt, float64(recv-p.roundRecv)/dt
		p.roundSent, p.roundRecv, p.roundAt = sent, recv, now
		e.chokeConns = append(e.chokeConns, p)
		e.chokePeers = append(e.chokePeers, choker.Peer{
			Interested: p.peerInterested,
			Snubbed:    (p.amInterested && now.Sub(p.lastBlock) > snubTime) || stalled || unused,
			New:        now.Sub(p.connectedAt) < newPeerTime,
			DownRate:   down,
			UpRate:     up,
			Unchoked:   !p.amChoking,
			Optimistic: p.optimistic,
		})
	}
	e.decisions, e.chokeOrder = choker.Round(e.chokePeers, int(e.c.slots.Load()), seeding, rotate, e.rnd, e.decisions, e.chokeOrder)
	for k, p := range e.chokeConns {
		d := e.decisions[k]
		p.optimistic = d.Optimistic
		if d.Unchoke {
			e.unchoke(p)
		} else {
			e.choke(p)
		}
	}
	clear(e.chokeConns)
}

// unchokeMore unchokes interested peers while slots are free (the regular
// ones and the optimistic one), so that a peer need not wait for the next
// round when nobody else wants the slot.
func (e *engine) unchokeMore() {
	free := int(e.c.slots.Load()) + 1 - e.unchoked
	if free <= 0 {
		return
	}
	now := time.Now()
	for p := range e.peers {
		if free <= 0 {
			return
		}
		// A peer choked a moment ago (it lost interest) waits a little:
		// one that toggles its interest gets a choke and an unchoke a
		// second at most, not one for every message it sends.
		if p.amChoking && p.peerInterested && now.Sub(p.chokedAt) >= rechokeHold {
			e.unchoke(p)
			free--
		}
	}
}

func (e *engine) unchoke(p *peerConn) {
	if !p.amChoking {
		return
	}
	p.amChoking = false
	p.chokedReqs = 0
	p.unchokedAt = time.Now()
	e.unchoked++
	e.log.Debug("unchoke", "addr", p.addr, "optimistic", p.optimistic)
	p.send(func(out []byte) []byte { return peer.AppendMessage(out, &peer.Message{Type: peer.Unchoke}) })
	e.suggest(p)
}

// choke chokes a peer and drops its queued requests (rejecting them under
// the Fast extension; it may ask again for its allowed fast pieces).
func (e *engine) choke(p *peerConn) {
	if p.amChoking {
		return
	}
	p.amChoking = true
	p.optimistic = false
	p.chokedAt = time.Now()
	e.unchoked--
	e.log.Debug("choke", "addr", p.addr)
	p.clearUploads()
	p.send(func(out []byte) []byte { return peer.AppendMessage(out, &peer.Message{Type: peer.Choke}) })
}

// sendAllowedFast gives a Fast peer its allowed fast set (BEP 6): pieces
// it may fetch from us while we choke it, so a new peer has something to
// trade before its first unchoke.
func (e *engine) sendAllowedFast(p *peerConn) {
	if !p.res.Fast() || e.cache != nil {
		return
	}
	set := peer.AllowedFastSet(p.addr.Addr(), e.hash, e.info.NumPieces(), allowedFastK)
	if len(set) == 0 {
		return
	}
	p.allowedOut = set
	p.send(func(out []byte) []byte {
		for _, i := range set {
			out = peer.AppendHave(out, peer.AllowedFast, i)
		}
		return out
	})
}

// maxSuggest bounds the suggest messages sent at an unchoke.
const maxSuggest = 4

// suggest tells a Fast peer we unchoke for the first time, when we seed,
// which pieces it lacks are in our read cache: fetching those costs us
// no disk read.
func (e *engine) suggest(p *peerConn) {
	if !p.res.Fast() || e.rcache == nil || e.picker.Missing() > 0 || p.suggested {
		return
	}
	p.suggested = true
	n := 0
	for i := range e.info.NumPieces() {
		if n == maxSuggest {
			break
		}
		if !p.has.Has(i) && e.picker.Have(i) && e.rcache.Cached(int64(i)*e.info.PieceLength, e.info.PieceSize(i)) {
			i := uint32(i)
			p.send(func(out []byte) []byte { return peer.AppendHave(out, peer.Suggest, i) })
			n++
		}
	}
}

// onAllowedFast records a piece a choking peer lets us fetch.
func (e *engine) onAllowedFast(p *peerConn, i int) {
	if i >= e.info.NumPieces() || slices.Contains(p.allowedIn, i) || len(p.allowedIn) >= maxAllowedIn {
		return
	}
	p.allowedIn = append(p.allowedIn, i)
	if p.peerChoking && p.has.Has(i) && e.picker.Needs(i) {
		e.setInterested(p, true)
		e.fillRequests(p)
	}
}

// allowedView is a choking peer as the picker sees it: only its allowed
// fast pieces may be asked of it.
type allowedView struct{ p *peerConn }

func (v allowedView) Has(i int) bool                { return v.p.Has(i) && slices.Contains(v.p.allowedIn, i) }
func (v allowedView) Requested(b picker.Block) bool { return v.p.Requested(b) }

// maxChokedRequests is how many requests a peer may send while we choke
// it (besides its allowed fast pieces) before it is dropped: a few come
// in flight with a choke, a flood is hostile.
const maxChokedRequests = maxPeerRequests

// bothSeeds reports whether p has every piece and we want none: neither
// has anything to give the other (a seed wants nothing from us).
func (e *engine) bothSeeds(p *peerConn) bool {
	return p.has.Full() && e.wantNothing()
}

// wantNothing reports whether we want no piece: we have them all, or
// those of the files selected, and no reader wants more.
func (e *engine) wantNothing() bool {
	return e.picker.HaveBitfield().Full() || (e.picker.Missing() == 0 && !e.streaming)
}

var errBothSeeds = errors.New("a seed, and we want nothing")

// dropSeed drops a seed when we want nothing, and does not dial it
// again while we want nothing.
func (e *engine) dropSeed(p *peerConn) {
	e.dropPeer(p, errBothSeeds)
	if cand := e.known[p.addr]; cand != nil && p.outgoing {
		// Not dialled while we want nothing; at once when we want more
		// (a reader comes, a file is selected).
		cand.seed = true
		cand.retryAt = time.Time{}
	}
}
