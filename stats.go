package aiotorrent

import (
	"net/netip"
	"slices"
	"time"
)

// Stats is a snapshot of a running torrent.
type Stats struct {
	// Running reports whether the torrent is started (downloading or
	// serving).
	Running bool
	// Pieces is the number of pieces; PiecesVerified how many we have.
	Pieces, PiecesVerified int
	// Wanted is the size of the pieces of the selected files;
	// WantedVerified how much of it is verified. Their ratio is the
	// download's progress.
	Wanted, WantedVerified int64
	// Verified is the size of every verified piece.
	Verified int64
	// Downloaded and Uploaded count payload bytes (blocks) received and
	// sent since the torrent started; Wasted the received bytes thrown
	// away (duplicates, or pieces that failed their hash check).
	Downloaded, Uploaded, Wasted int64
	// DownloadRate and UploadRate are in bytes per second, averaged over
	// a few seconds.
	DownloadRate, UploadRate float64
	// Peers is the number of connected peers, Seeds how many of them have
	// every piece, Connecting the connections being made, Known the peer
	// addresses learnt.
	Peers, Seeds, Connecting, Known int
	// Trackers says how each tracker answered.
	Trackers []TrackerStats
	// Readers are the open readers (NewReader, HTTP streams), by file
	// and position.
	Readers []ReaderStats
	// PeerList describes each connected peer.
	PeerList []PeerStats
	// Unchoked is how many peers we upload to now.
	Unchoked int
	// ReadCache is the cache of data read from disk for uploading.
	ReadCache ReadCacheStats
	// Cached and CacheSize are the bytes of pieces held in memory and
	// the most it holds, for a torrent running in memory.
	Cached, CacheSize int64
	// Err is the error that stopped the torrent, if any (a disk error).
	Err error
}

// Done reports whether every selected piece is verified.
func (s *Stats) Done() bool { return s.Running && s.WantedVerified == s.Wanted }

// PeerStats is one connected peer.
type PeerStats struct {
	Addr     netip.AddrPort
	Client   string // its name from the extension handshake, if it said
	Outgoing bool   // we dialled it
	Pieces   int    // it has
	Seed     bool   // it has every piece
	// Downloaded and Uploaded are payload bytes from and to it;
	// DownloadRate and UploadRate their rates in bytes per second.
	Downloaded, Uploaded     int64
	DownloadRate, UploadRate float64
	// Interested: it wants data from us. Unchoked: we let it have some
	// (Optimistic: as the optimistic unchoke). Choking: it refuses us
	// data. Snubbed: it stopped sending what we asked for.
	Interested, Unchoked, Optimistic, Choking, Snubbed bool
}

// ReadCacheStats describes the read cache for uploads.
type ReadCacheStats struct {
	Hits, Misses int64 // lookups
	Reads        int64 // reads of the disk
	Used, Size   int64 // bytes
}

// TrackerStats is how one tracker answered.
type TrackerStats struct {
	URL          string
	Tier         int
	State        string // "not contacted", "announcing", "working" or "failing"
	LastError    string
	LastAnnounce time.Time
	NextAnnounce time.Time
	Interval     time.Duration
	Peers        int // in its last reply
	Seeders      int // -1 when it did not say
	Leechers     int
	Failures     int // in a row
}

// Stats returns a snapshot of the torrent's state. A torrent that is not
// running reports only its piece count.
func (t *Torrent) Stats() Stats {
	e := t.running()
	if e == nil {
		return Stats{Pieces: t.NumPieces()}
	}
	var s Stats
	if !e.callWait(func() { s = e.stats() }) {
		return Stats{Pieces: t.NumPieces()}
	}
	return s
}

// stats builds a snapshot, on the loop.
func (e *engine) stats() Stats {
	s := Stats{
		Running:      true,
		Pieces:       e.info.NumPieces(),
		Downloaded:   e.downloaded.Load(),
		Uploaded:     e.uploaded.Load(),
		Wasted:       e.wasted.Load(),
		DownloadRate: e.downRate.v,
		UploadRate:   e.upRate.v,
		Peers:        len(e.peers),
		Connecting:   e.dialing,
		Known:        len(e.known),
		Err:          e.err,
	}
	for i := range s.Pieces {
		size := e.info.PieceSize(i)
		have := e.picker.Have(i)
		if have {
			s.PiecesVerified++
			s.Verified += size
		}
		if e.picker.Wanted(i) {
			s.Wanted += size
			if have {
				s.WantedVerified += size
			}
		}
	}
	s.Readers = e.readerStats()
	if e.cache != nil {
		s.Cached, s.CacheSize = e.cache.Used(), e.cache.Capacity()
	}
	for p := range e.peers {
		if p.has.Full() {
			s.Seeds++
		}
		if !p.amChoking {
			s.Unchoked++
		}
		s.PeerList = append(s.PeerList, PeerStats{
			Addr: p.addr, Client: p.client, Outgoing: p.outgoing, Pieces: p.has.Count(), Seed: p.has.Full(),
			Downloaded: p.received, Uploaded: p.sent.Load(), DownloadRate: p.down.v, UploadRate: p.up.v,
			Interested: p.peerInterested, Unchoked: !p.amChoking, Optimistic: p.optimistic,
			Choking: p.peerChoking, Snubbed: p.snubbed,
		})
	}
	slices.SortFunc(s.PeerList, func(a, b PeerStats) int { return a.Addr.Compare(b.Addr) })
	if e.rcache != nil {
		rs := e.rcache.Stats()
		s.ReadCache = ReadCacheStats{Hits: rs.Hits, Misses: rs.Misses, Reads: rs.Loads, Used: rs.Used, Size: rs.Capacity}
	}
	if e.announcer != nil {
		for _, ts := range e.announcer.Stats() {
			s.Trackers = append(s.Trackers, TrackerStats{
				URL: ts.URL, Tier: ts.Tier, State: string(ts.State), LastError: ts.LastError,
				LastAnnounce: ts.LastTry, NextAnnounce: ts.NextTry, Interval: ts.Interval,
				Peers: ts.Peers, Seeders: ts.Seeders, Leechers: ts.Leechers, Failures: ts.Failures,
			})
		}
	}
	return s
}

// ClientStats sums up a client's torrents.
type ClientStats struct {
	Torrents, Running        int
	Peers                    int
	Downloaded, Uploaded     int64
	DownloadRate, UploadRate float64
}

// Stats returns the totals over the client's torrents.
func (c *Client) Stats() ClientStats {
	var cs ClientStats
	for _, t := range c.Torrents() {
		cs.Torrents++
		s := t.Stats()
		if !s.Running {
			continue
		}
		cs.Running++
		cs.Peers += s.Peers
		cs.Downloaded += s.Downloaded
		cs.Uploaded += s.Uploaded
		cs.DownloadRate += s.DownloadRate
		cs.UploadRate += s.UploadRate
	}
	return cs
}
