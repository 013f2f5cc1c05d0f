package swarmtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/bitfield"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// Waiting for a real seeder to serve, from outside it: as a peer that
// asks it for the torrent, or through the tracker it announces to. A
// seeder checks its data before it serves; these wait for that instead of
// sleeping.

// probeEvery is how often the waits below ask again.
const probeEvery = 100 * time.Millisecond

// PeerAddr returns the address of a peer listening on port of 127.0.0.1,
// as [Aria2.Port], [Qbit.Port] and [LT.Port] report it, for
// aiotorrent's Torrent.AddPeers.
func PeerAddr(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
}

// WaitSeeding connects to the peer at addr, again every probeEvery, until
// it answers a plain (unencrypted) handshake for the torrent mi and says,
// with a bitfield or BEP 6 have-all, that it has every piece. It returns
// ctx's error, with what the last attempt found, if ctx is done first.
// Each attempt is a short connection that asks for nothing.
func WaitSeeding(ctx context.Context, addr netip.AddrPort, mi *metainfo.MetaInfo) error {
	var last error
	for {
		if last = probeSeeder(ctx, addr, mi); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("peer %v not seeding %s: %w (last attempt: %v)", addr, mi.InfoHash, ctx.Err(), last)
		case <-time.After(probeEvery):
		}
	}
}

// errNotSeeding is what probeSeeder finds of a peer that answers but does
// not have every piece (yet).
var errNotSeeding = errors.New("not every piece")

// probeSeeder makes one attempt of WaitSeeding.
func probeSeeder(ctx context.Context, addr netip.AddrPort, mi *metainfo.MetaInfo) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	h := &peer.Handshake{InfoHash: mi.InfoHash}
	copy(h.PeerID[:], "-SW0000-")
	rand.Read(h.PeerID[8:])
	h.Reserved.SetExtended()
	h.Reserved.SetFast()
	if err := peer.WriteHandshake(conn, h); err != nil {
		return err
	}
	got, err := peer.ReadHandshake(conn)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if got.InfoHash != mi.InfoHash {
		return fmt.Errorf("handshake for another torrent %x", got.InfoHash)
	}
	n := mi.Info.NumPieces()
	r := peer.NewReader(conn, peer.Limits{NumPieces: n, PieceLength: mi.Info.PieceLength, Length: mi.Info.Length})
	var m peer.Message
	// Extension handshakes, keep-alives, unchokes... may come first; the
	// bitfield must come before any have.
	for range 16 {
		if err := r.ReadMessage(&m); err != nil {
			return fmt.Errorf("waiting for its bitfield: %w", err)
		}
		switch m.Type {
		case peer.HaveAll:
			return nil
		case peer.HaveNone:
			return fmt.Errorf("%w: have none", errNotSeeding)
		case peer.Bitfield:
			bf := bitfield.FromBytes(m.Payload, n)
			if bf.Full() {
				return nil
			}
			return fmt.Errorf("%w: bitfield with %d of %d", errNotSeeding, bf.Count(), n)
		case peer.Have:
			return fmt.Errorf("%w: have before any bitfield", errNotSeeding)
		}
	}
	return fmt.Errorf("%w: no bitfield among its first messages", errNotSeeding)
}

// WaitSeeding waits until aria2c serves the torrent mi, which it does once
// it has checked its data (see [WaitSeeding]). It fails early, with
// aria2c's output, if aria2c exits.
func (a *Aria2) WaitSeeding(ctx context.Context, mi *metainfo.MetaInfo) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-a.proc.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := WaitSeeding(ctx, PeerAddr(a.port), mi)
	if err == nil {
		return nil
	}
	if a.proc.hasExited() {
		return fmt.Errorf("%v before seeding (%v)\n%s", a.proc.exitError(), err, a.proc.failureLogs())
	}
	return fmt.Errorf("aria2c seeder: %w\n%s", err, a.proc.failureLogs())
}

// WaitTrackerSeeders scrapes the tracker at announceURL (HTTP or UDP),
// again every probeEvery, until it counts at least n seeders of the
// torrent h: a seeder announces once it has checked its data. It returns
// ctx's error, with the last count or error, if ctx is done first.
func WaitTrackerSeeders(ctx context.Context, announceURL string, h metainfo.Hash, n int) error {
	c, err := tracker.New(announceURL, tracker.Options{UDPBase: 500 * time.Millisecond, UDPRetries: 3})
	if err != nil {
		return err
	}
	var last string
	for {
		res, err := c.Scrape(ctx, []metainfo.Hash{h})
		switch {
		case err != nil:
			last = err.Error()
		default:
			r := res[h]
			if r.Seeders >= n {
				return nil
			}
			last = fmt.Sprintf("%d seeders, %d leechers", r.Seeders, r.Leechers)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tracker %s: waiting for %d seeders of %s: %w (last scrape: %s)", announceURL, n, h, ctx.Err(), last)
		case <-time.After(probeEvery):
		}
	}
}
