package aiotorrent

import (
	"net/netip"
	"time"

	"github.com/aiotorrent/aiotorrent/peer"
)

const (
	// utPexID is the extended message id we receive ut_pex messages under
	// (BEP 11).
	utPexID = 1
	// pexFirst is how long after a peer's extension handshake we first
	// tell it of our other peers; pexEvery how often after that (BEP 11:
	// at most once a minute).
	pexFirst = 2 * time.Second
	pexEvery = time.Minute
	// pexMax bounds the peers added, and those dropped, in one message.
	pexMax = 50
	// pexMinGap is the least time between two PEX messages of a peer we
	// take; the ones in between are ignored.
	pexMinGap = 20 * time.Second
)

// pexOn reports whether the torrent exchanges peers: never for a private
// one (BEP 27), whose peers come from its trackers alone.
func (e *engine) pexOn() bool { return !e.info.Private }

// listenAddr is where peer p accepts connections, if known: the address
// we dialled, or for a peer that dialled us, its address with the port
// its extension handshake gave.
func (p *peerConn) listenAddr() (netip.AddrPort, bool) {
	if p.outgoing {
		return p.addr, true
	}
	if p.listenPort != 0 {
		return netip.AddrPortFrom(p.addr.Addr(), p.listenPort), true
	}
	return netip.AddrPort{}, false
}

// sendPEX tells p of the peers we are connected to that it has not heard
// of from us, and of those gone since (on the loop).
func (e *engine) sendPEX(p *peerConn, now time.Time) {
	p.pexAt = now.Add(pexEvery)
	cur := make(map[netip.AddrPort]peer.PEXFlags, len(e.peers))
	for q := range e.peers {
		a, ok := q.listenAddr()
		if q == p || q.closed || !ok {
			continue
		}
		var f peer.PEXFlags
		if q.has.Full() {
			f |= peer.PEXSeed
		}
		if q.outgoing {
			f |= peer.PEXReachable
		}
		cur[a] = f
	}
	var m peer.PEXMsg
	for a, f := range cur {
		if !p.pexSent[a] && len(m.Added) < pexMax {
			m.Added = append(m.Added, peer.PEXPeer{Addr: a, Flags: f})
		}
	}
	for a := range p.pexSent {
		if _, ok := cur[a]; !ok && len(m.Dropped) < pexMax {
			m.Dropped = append(m.Dropped, a)
		}
	}
	if len(m.Added) == 0 && len(m.Dropped) == 0 {
		return // nothing new: some clients take an empty message badly
	}
	if p.pexSent == nil {
		p.pexSent = make(map[netip.AddrPort]bool)
	}
	for _, a := range m.Added {
		p.pexSent[a.Addr] = true
	}
	for _, a := range m.Dropped {
		delete(p.pexSent, a)
	}
	id := uint8(p.utPex)
	payload := peer.AppendPEX(nil, m)
	p.send(func(out []byte) []byte {
		return peer.AppendMessage(out, &peer.Message{Type: peer.Extended, ExtendedID: id, Payload: payload})
	})
}

// onPEX takes the peers a ut_pex message adds (on the loop).
func (e *engine) onPEX(p *peerConn, payload []byte) {
	now := time.Now()
	if !e.pexOn() || now.Sub(p.pexRecvAt) < pexMinGap {
		return
	}
	p.pexRecvAt = now
	m, err := peer.ParsePEX(payload)
	if err != nil {
		e.log.Debug("bad ut_pex message", "addr", p.addr, "err", err)
		return
	}
	addrs := make([]netip.AddrPort, 0, len(m.Added))
	for _, a := range m.Added {
		addrs = append(addrs, a.Addr)
	}
	e.learn(addrs)
}
