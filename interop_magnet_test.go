package aiotorrent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
)

// Magnet links (BEP 9) against real, independent seeders on loopback:
// aria2c, qbittorrent-nox and libtorrent, each the only seeder, give
// aiotorrent the info dictionary over ut_metadata, found through a real
// tracker (the magnet's tr=) or the magnet's x.pe peer; and, speaking the
// wire protocol by hand, what each of them does when asked for it.

// magnetFiles is the content of the magnet torrent: a little over 16 MiB
// in 1029 pieces of 16 KiB, so that its info dictionary (20746 bytes,
// nearly all piece hashes) takes two ut_metadata pieces, the second
// short.
var magnetFiles = []interopFile{
	{"a.bin", 9<<20 + 4321},
	{"sub/b.bin", 7<<20 - 999},
	{"c.txt", 77_777},
}

const magnetPieceLength = 16 << 10

// utMetadataPiece is the size of a ut_metadata piece (BEP 9): every piece
// of the info dictionary is this long but the last.
const utMetadataPiece = 16 << 10

// makeMagnetData makes the magnet torrent's content and checks that its
// info dictionary spans more than one ut_metadata piece.
func makeMagnetData(t *testing.T) *interopData {
	t.Helper()
	d := makeData(t, "magnet", magnetPieceLength, magnetFiles)
	if n := len(d.mi.InfoBytes); n <= utMetadataPiece || n%utMetadataPiece == 0 {
		t.Fatalf("info dictionary of %d bytes: want more than one ut_metadata piece of %d, the last short", n, utMetadataPiece)
	}
	return d
}

// metadataTimeout bounds fetching the info dictionary: on loopback it
// takes a tracker round trip and a few messages (and up to a second more
// with aria2c, which accepts connections about once a second).
const metadataTimeout = 30 * time.Second

// TestInteropMagnetFromRealSeeders opens a magnet link (xt and dn, and
// either a tr= tracker or an x.pe= peer) of a torrent that one real client
// seeds, in a Client with an empty state folder, fetches the metadata from
// that seeder with WaitMetadata, checks it is the torrent's, then
// downloads everything and checks every file byte for byte. Trackers: ours
// and the npm bittorrent-tracker, over HTTP and over UDP (aria2c announces
// over HTTP only). The "implicit" cases call DownloadAll at once, which
// must fetch the metadata itself.
func TestInteropMagnetFromRealSeeders(t *testing.T) {
	d := makeMagnetData(t)
	cases := []struct {
		name     string
		seeder   startSeeder
		tracker  startTracker // nil: the seeder is the magnet's x.pe peer
		implicit bool         // no WaitMetadata before DownloadAll
	}{
		{"aria2c/our-tracker-http", aria2Seeder, ourTrackerHTTP, false},
		{"aria2c/bittorrent-tracker-http", aria2Seeder, bittorrentTrackerHTTP, false},
		{"aria2c/x.pe", aria2Seeder, nil, false},
		{"aria2c/our-tracker-http/implicit", aria2Seeder, ourTrackerHTTP, true},
		{"qbittorrent/our-tracker-http", qbitSeeder, ourTrackerHTTP, false},
		{"qbittorrent/our-tracker-udp", qbitSeeder, ourTrackerUDP, false},
		{"qbittorrent/bittorrent-tracker-http", qbitSeeder, bittorrentTrackerHTTP, false},
		{"qbittorrent/bittorrent-tracker-udp", qbitSeeder, bittorrentTrackerUDP, false},
		{"qbittorrent/x.pe", qbitSeeder, nil, false},
		{"qbittorrent/x.pe/implicit", qbitSeeder, nil, true},
		{"libtorrent/our-tracker-http", libtorrentSeeder, ourTrackerHTTP, false},
		{"libtorrent/our-tracker-udp", libtorrentSeeder, ourTrackerUDP, false},
		{"libtorrent/bittorrent-tracker-http", libtorrentSeeder, bittorrentTrackerHTTP, false},
		{"libtorrent/bittorrent-tracker-udp", libtorrentSeeder, bittorrentTrackerUDP, false},
		{"libtorrent/x.pe", libtorrentSeeder, nil, false},
		{"libtorrent/bittorrent-tracker-udp/implicit", libtorrentSeeder, bittorrentTrackerUDP, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), interopTimeout)
			defer cancel()
			begin := time.Now()
			mi := d.mi
			announce := ""
			if tc.tracker != nil {
				announce = tc.tracker(t, d.mi.InfoHash)
				mi = d.withTrackers(announce)
			}
			s := tc.seeder(t, ctx, d, mi)
			if announce != "" {
				if err := swarmtest.WaitTrackerSeeders(ctx, announce, mi.InfoHash, 1); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%s seeding on %v after %v", s.name, s.addr, time.Since(begin).Round(time.Millisecond))

			// xt, dn and tr= (the torrent's one tracker), or xt, dn and
			// x.pe= (the seeder) when it has none.
			m := mi.Magnet()
			if announce == "" {
				m.Peers = []string{s.addr.String()}
			}
			link := m.String()
			checkMagnetLink(t, link, mi, announce, s.addr)
			t.Logf("magnet link: %s", link)

			// A fresh state folder: no metainfo kept from a run before.
			c := newSeedClient(t, "magnet leecher", aiotorrent.Config{StateDir: t.TempDir()})
			opened := time.Now()
			tor, err := c.Open(ctx, link)
			if err != nil {
				t.Fatalf("Open(%q): %v", link, err)
			}
			if tor.HasMetadata() {
				t.Fatal("HasMetadata() is true at once, with an empty state folder")
			}
			if tor.InfoHash() != mi.InfoHash {
				t.Fatalf("InfoHash() = %s, want %s", tor.InfoHash(), mi.InfoHash)
			}
			if got := tor.Name(); got != mi.Info.Name {
				t.Errorf("Name() before the metadata = %q, want the magnet's dn %q", got, mi.Info.Name)
			}
			w := watchMagnet(t, ctx, tor)

			toMetadata := time.Duration(0)
			dlTimeout := downloadTimeout
			if tc.implicit {
				dlTimeout += metadataTimeout
			} else {
				mdCtx, mdCancel := context.WithTimeout(ctx, metadataTimeout)
				err = tor.WaitMetadata(mdCtx)
				mdCancel()
				toMetadata = time.Since(opened)
				if err != nil {
					st := tor.Stats()
					t.Fatalf("WaitMetadata after %v: %v; stats %+v; peers %s", toMetadata.Round(time.Millisecond), err, st, describePeers(st.PeerList))
				}
				checkFetchedMetadata(t, tor, mi)
			}

			dst := t.TempDir()
			dlCtx, dlCancel := context.WithTimeout(ctx, dlTimeout)
			err = tor.DownloadAll(dlCtx, aiotorrent.WithDir(dst))
			dlCancel()
			toDone := time.Since(opened)
			st := tor.Stats()
			if err != nil {
				t.Fatalf("DownloadAll, %v after Open (metadata: %v): %v; stats %+v; peers %s",
					toDone.Round(time.Millisecond), tor.HasMetadata(), err, st, describePeers(st.PeerList))
			}
			how := "WaitMetadata"
			if tc.implicit {
				checkFetchedMetadata(t, tor, mi)
				toMetadata = w.metadataAt().Sub(opened)
				how = "DownloadAll at once; time sampled"
			}
			t.Logf("%s: metadata (%d bytes, %d ut_metadata pieces) %v after Open (%s); all %d bytes %v after Open; received %d, wasted %d",
				s.name, len(mi.InfoBytes), (len(mi.InfoBytes)+utMetadataPiece-1)/utMetadataPiece,
				toMetadata.Round(time.Millisecond), how, mi.Info.Length, toDone.Round(time.Millisecond), st.Downloaded, st.Wasted)
			d.checkSame(t, dst)
			if !st.Done() {
				t.Errorf("stats after the download: not done: %+v", st)
			}
			if st.Downloaded < mi.Info.Length {
				t.Errorf("stats: downloaded %d bytes, less than the torrent's %d", st.Downloaded, mi.Info.Length)
			}
			if s.uploaded != nil {
				if up := waitUploaded(s, mi.Info.Length); up < mi.Info.Length {
					t.Errorf("%s reports %d bytes uploaded, want the whole torrent, %d", s.name, up, mi.Info.Length)
				}
			}
			for _, a := range w.peers() {
				if a.Addr() != netip.MustParseAddr("127.0.0.1") {
					t.Errorf("connected to %v, not on 127.0.0.1", a)
				}
			}
			if announce != "" {
				// The magnet's tracker, kept once the metadata (which has
				// no trackers) arrived.
				checkTrackerWorking(t, tor, announce)
			}
		})
	}
}

// checkMagnetLink checks that link carries only what the test means it
// to: the info hash, the name, and the tracker announce or else the peer
// addr.
func checkMagnetLink(t *testing.T, link string, mi *metainfo.MetaInfo, announce string, addr netip.AddrPort) {
	t.Helper()
	m, err := metainfo.ParseMagnet(link)
	if err != nil {
		t.Fatalf("ParseMagnet(%q): %v", link, err)
	}
	want := &metainfo.Magnet{InfoHash: mi.InfoHash, DisplayName: mi.Info.Name}
	if announce != "" {
		want.Trackers = []string{announce}
	} else {
		want.Peers = []string{addr.String()}
	}
	if m.InfoHash != want.InfoHash || m.DisplayName != want.DisplayName ||
		!slices.Equal(m.Trackers, want.Trackers) || !slices.Equal(m.Peers, want.Peers) ||
		len(m.WebSeeds) > 0 || len(m.SelectOnly) > 0 {
		t.Fatalf("magnet link %s parses to %+v, want %+v", link, m, want)
	}
}

// checkFetchedMetadata checks that tor, opened from a magnet link, now
// has exactly the metadata of mi.
func checkFetchedMetadata(t *testing.T, tor *aiotorrent.Torrent, mi *metainfo.MetaInfo) {
	t.Helper()
	if !tor.HasMetadata() {
		t.Fatal("metadata fetched without error, but HasMetadata() is false")
	}
	got := tor.MetaInfo()
	if got == nil {
		t.Fatal("metadata fetched without error, but MetaInfo() is nil")
	}
	if !bytes.Equal(got.InfoBytes, mi.InfoBytes) {
		t.Fatalf("fetched info dictionary of %d bytes differs from the torrent's %d (first difference at %d)",
			len(got.InfoBytes), len(mi.InfoBytes), firstDiff(got.InfoBytes, mi.InfoBytes))
	}
	if tor.InfoHash() != mi.InfoHash || got.InfoHash != mi.InfoHash {
		t.Errorf("InfoHash() = %s, MetaInfo().InfoHash = %s, want %s", tor.InfoHash(), got.InfoHash, mi.InfoHash)
	}
	if tor.Name() != mi.Info.Name {
		t.Errorf("Name() = %q, want %q", tor.Name(), mi.Info.Name)
	}
	want := aiotorrent.FromMetaInfo(mi)
	if !slices.Equal(tor.Files(), want.Files()) {
		t.Errorf("Files() = %+v, want %+v", tor.Files(), want.Files())
	}
	if tor.Length() != mi.Info.Length || tor.PieceLength() != mi.Info.PieceLength || tor.NumPieces() != mi.Info.NumPieces() {
		t.Errorf("Length %d, PieceLength %d, NumPieces %d; want %d, %d, %d",
			tor.Length(), tor.PieceLength(), tor.NumPieces(), mi.Info.Length, mi.Info.PieceLength, mi.Info.NumPieces())
	}
}

// magnetWatch samples a torrent every 20 ms, from a goroutine that stops
// when the test ends: the peers it connected to, and when it first had
// its metadata.
type magnetWatch struct {
	tor  *aiotorrent.Torrent
	mu   sync.Mutex
	seen map[netip.AddrPort]bool // guarded by mu
	meta time.Time               // guarded by mu; zero until HasMetadata
}

func watchMagnet(t *testing.T, ctx context.Context, tor *aiotorrent.Torrent) *magnetWatch {
	w := &magnetWatch{tor: tor, seen: map[netip.AddrPort]bool{}}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			w.sample()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *magnetWatch) sample() {
	ps := w.tor.Stats().PeerList
	has := w.tor.HasMetadata()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		w.seen[p.Addr] = true
	}
	if has && w.meta.IsZero() {
		w.meta = time.Now()
	}
}

// peers returns every peer address seen so far.
func (w *magnetWatch) peers() []netip.AddrPort {
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	var addrs []netip.AddrPort
	for a := range w.seen {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.AddrPort.Compare)
	return addrs
}

// metadataAt returns when the torrent was first seen with its metadata.
func (w *magnetWatch) metadataAt() time.Time {
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.meta
}

// TestInteropMagnetSeedersServeMetadata asks each real seeder for the
// info dictionary by hand, as a peer that is choked and never says it is
// interested, and checks what a magnet download depends on: the seeder
// advertises ut_metadata and the dictionary's size in its extension
// handshake, and answers every piece request with the right bytes, so that
// they hash to the info hash. It also asks for a piece past the end, which
// must get a reject or the connection closed, never data. What else each
// seeder does (the order of its first messages, its version, its request
// queue, how it refuses) is logged.
func TestInteropMagnetSeedersServeMetadata(t *testing.T) {
	d := makeMagnetData(t)
	for _, tc := range []struct {
		name   string
		seeder startSeeder
	}{
		{"aria2c", aria2Seeder},
		{"qbittorrent", qbitSeeder},
		{"libtorrent", libtorrentSeeder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), interopTimeout)
			defer cancel()
			s := tc.seeder(t, ctx, d, d.mi)
			probeCtx, probeCancel := context.WithTimeout(ctx, 20*time.Second)
			defer probeCancel()
			p, err := dialMetadataPeer(probeCtx, s.addr, d.mi)
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			defer p.conn.Close()
			h, before, err := p.extHandshake()
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			t.Logf("%s: messages before its extension handshake: %v", s.name, before)
			t.Logf("%s: extension handshake %q", s.name, h.raw)
			if h.utMetadata == 0 {
				t.Fatalf("%s does not offer ut_metadata: extension handshake %q", s.name, h.raw)
			}
			if h.metadataSize != int64(len(d.mi.InfoBytes)) {
				t.Errorf("%s advertises metadata_size %d, want %d", s.name, h.metadataSize, len(d.mi.InfoBytes))
			}

			n := (len(d.mi.InfoBytes) + utMetadataPiece - 1) / utMetadataPiece
			for i := range n {
				if err := p.requestMetadata(h.utMetadata, i); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
			}
			got := make([][]byte, n)
			for left := n; left > 0; {
				r, err := p.readMetadataReply()
				if err != nil {
					t.Fatalf("%s: waiting for %d of %d metadata pieces: %v (unchoked: %v)", s.name, left, n, err, p.unchoked)
				}
				if r.MsgType != utMetadataData {
					t.Fatalf("%s: answered a request for metadata piece %d with msg_type %d, want data (1)", s.name, r.Piece, r.MsgType)
				}
				if r.Piece < 0 || r.Piece >= int64(n) || got[r.Piece] != nil {
					t.Fatalf("%s: data for metadata piece %d, not asked for or twice", s.name, r.Piece)
				}
				if r.TotalSize != int64(len(d.mi.InfoBytes)) {
					t.Errorf("%s: metadata piece %d says total_size %d, want %d", s.name, r.Piece, r.TotalSize, len(d.mi.InfoBytes))
				}
				got[r.Piece] = r.data
				left--
			}
			if all := bytes.Join(got, nil); !bytes.Equal(all, d.mi.InfoBytes) {
				t.Fatalf("%s: the %d metadata pieces make %d bytes that differ from the info dictionary's %d (first difference at %d)",
					s.name, n, len(all), len(d.mi.InfoBytes), firstDiff(all, d.mi.InfoBytes))
			}
			t.Logf("%s: served all %d metadata pieces to a peer it had %s, never interested; messages: %v",
				s.name, n, map[bool]string{true: "unchoked", false: "choked"}[p.unchoked], p.seen)

			// A piece past the end: never data. (aria2c drops the
			// connection; libtorrent rejects it and goes on.)
			if err := p.requestMetadata(h.utMetadata, n); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			p.conn.SetDeadline(time.Now().Add(5 * time.Second))
			r, err := p.readMetadataReply()
			var nerr net.Error
			switch {
			case errors.As(err, &nerr) && nerr.Timeout():
				t.Errorf("%s: metadata piece %d (past the end): no answer in 5 s, want a reject or the connection closed", s.name, n)
			case err != nil:
				t.Logf("%s: metadata piece %d (past the end): connection ended: %v", s.name, n, err)
			case r.MsgType == utMetadataReject:
				t.Logf("%s: metadata piece %d (past the end): rejected", s.name, n)
			default:
				t.Errorf("%s: metadata piece %d (past the end): msg_type %d, piece %d, want a reject or the connection closed", s.name, n, r.MsgType, r.Piece)
			}
		})
	}
}

// ut_metadata message types (BEP 9).
const (
	utMetadataRequest = 0
	utMetadataData    = 1
	utMetadataReject  = 2
)

// ourUTMetadata is the extended message id this side gives ut_metadata:
// one no real client uses for it, so a reply sent under the seeder's own
// id instead of ours shows.
const ourUTMetadata = 42

// metadataPeer is a hand-made connection to a seeder that speaks the
// extension protocol (BEP 10) and ut_metadata (BEP 9) only.
type metadataPeer struct {
	conn     net.Conn
	r        *peer.Reader
	unchoked bool     // the seeder unchoked us
	seen     []string // the messages received, in short
}

// extHandshake is what the test reads of a BEP 10 extension handshake.
type extHandshake struct {
	raw          []byte
	utMetadata   uint8 // the seeder's id for ut_metadata; 0 if none
	metadataSize int64
}

// utMetadataMsg is a ut_metadata message; data follows a data message's
// dictionary.
type utMetadataMsg struct {
	MsgType   int64 `bencode:"msg_type"`
	Piece     int64 `bencode:"piece"`
	TotalSize int64 `bencode:"total_size"`
	data      []byte
}

// dialMetadataPeer connects to addr and exchanges handshakes for mi,
// announcing the extension protocol and the Fast extension; then it sends
// its extension handshake, offering ut_metadata as ourUTMetadata, and
// nothing else (no bitfield, no interested).
func dialMetadataPeer(ctx context.Context, addr netip.AddrPort, mi *metainfo.MetaInfo) (*metadataPeer, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	h := &peer.Handshake{InfoHash: mi.InfoHash}
	copy(h.PeerID[:], "-AT0001-")
	rand.Read(h.PeerID[8:])
	h.Reserved.SetExtended()
	h.Reserved.SetFast()
	if err := peer.WriteHandshake(conn, h); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write handshake: %w", err)
	}
	got, err := peer.ReadHandshake(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read handshake: %w", err)
	}
	if got.InfoHash != mi.InfoHash {
		conn.Close()
		return nil, fmt.Errorf("handshake for %x, want %s", got.InfoHash, mi.InfoHash)
	}
	if !got.Reserved.Extended() {
		conn.Close()
		return nil, fmt.Errorf("handshake without the extension protocol bit: reserved %x", got.Reserved)
	}
	ours, err := bencode.Marshal(map[string]any{
		"m": map[string]int{"ut_metadata": ourUTMetadata},
		"v": "aiotorrent interop probe",
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := conn.Write(peer.AppendMessage(nil, &peer.Message{Type: peer.Extended, ExtendedID: 0, Payload: ours})); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write extension handshake: %w", err)
	}
	info := &mi.Info
	return &metadataPeer{conn: conn,
		r: peer.NewReader(conn, peer.Limits{NumPieces: info.NumPieces(), PieceLength: info.PieceLength, Length: info.Length})}, nil
}

// read reads the next message, keeping track of choking.
func (p *metadataPeer) read(m *peer.Message) error {
	if err := p.r.ReadMessage(m); err != nil {
		return err
	}
	switch m.Type {
	case peer.Unchoke:
		p.unchoked = true
	case peer.Choke:
		p.unchoked = false
	}
	s := m.Type.String()
	if m.Type == peer.Extended {
		s = fmt.Sprintf("extended %d", m.ExtendedID)
	}
	if len(p.seen) < 64 {
		p.seen = append(p.seen, s)
	}
	return nil
}

// extHandshake reads messages until the seeder's extension handshake and
// returns it, with the messages that came before it.
func (p *metadataPeer) extHandshake() (*extHandshake, []string, error) {
	var m peer.Message
	for {
		if err := p.read(&m); err != nil {
			return nil, p.seen, fmt.Errorf("waiting for its extension handshake: %w; received %v", err, p.seen)
		}
		if m.Type != peer.Extended || m.ExtendedID != 0 {
			continue
		}
		before := slices.Clone(p.seen[:len(p.seen)-1])
		h := &extHandshake{raw: bytes.Clone(m.Payload)}
		var d struct {
			M            map[string]int64 `bencode:"m"`
			MetadataSize int64            `bencode:"metadata_size"`
		}
		if err := bencode.Unmarshal(h.raw, &d); err != nil {
			return nil, before, fmt.Errorf("extension handshake %q: %w", h.raw, err)
		}
		if id := d.M["ut_metadata"]; id > 0 && id < 256 {
			h.utMetadata = uint8(id)
		}
		h.metadataSize = d.MetadataSize
		return h, before, nil
	}
}

// requestMetadata asks for metadata piece i, the seeder's id for
// ut_metadata being id.
func (p *metadataPeer) requestMetadata(id uint8, i int) error {
	b, err := bencode.Marshal(map[string]int{"msg_type": utMetadataRequest, "piece": i})
	if err != nil {
		return err
	}
	_, err = p.conn.Write(peer.AppendMessage(nil, &peer.Message{Type: peer.Extended, ExtendedID: id, Payload: b}))
	return err
}

// readMetadataReply reads messages until a ut_metadata one, sent under
// our id, and decodes it.
func (p *metadataPeer) readMetadataReply() (*utMetadataMsg, error) {
	var m peer.Message
	for {
		if err := p.read(&m); err != nil {
			return nil, err
		}
		switch {
		case m.Type != peer.Extended || m.ExtendedID == 0:
			// Not an extension message, or the extension handshake
			// again.
			continue
		case m.ExtendedID != ourUTMetadata:
			return nil, fmt.Errorf("extension message under id %d, not ours for ut_metadata (%d): %q",
				m.ExtendedID, ourUTMetadata, truncate(m.Payload, 80))
		}
		return parseUTMetadata(m.Payload)
	}
}

// parseUTMetadata decodes a ut_metadata message: a dictionary and, in a
// data message, the piece's bytes after it.
func parseUTMetadata(payload []byte) (*utMetadataMsg, error) {
	var r utMetadataMsg
	err := bencode.Unmarshal(payload, &r)
	var syntax *bencode.SyntaxError
	if errors.As(err, &syntax) && syntax.Offset > 0 && syntax.Offset < int64(len(payload)) {
		// Trailing bytes: the piece's data, after the dictionary.
		n := syntax.Offset
		if err = bencode.Unmarshal(payload[:n], &r); err == nil {
			r.data = bytes.Clone(payload[n:])
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ut_metadata message %q: %w", truncate(payload, 80), err)
	}
	if r.MsgType == utMetadataData && len(r.data) == 0 {
		return nil, fmt.Errorf("ut_metadata data message for piece %d without data", r.Piece)
	}
	return &r, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
