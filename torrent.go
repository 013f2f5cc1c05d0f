// Package aiotorrent is a BitTorrent library: open a .torrent file or a
// magnet link, list its files, download them to disk ([Torrent.Download]),
// or read any file while it downloads ([Torrent.NewReader]) and serve it
// over HTTP ([Torrent.Stream], [Torrent.Handler]), in memory only if you
// like ([InMemory]).
//
// The protocol pieces live in their own packages, usable on their own:
// [github.com/aiotorrent/aiotorrent/bencode] for the encoding and
// [github.com/aiotorrent/aiotorrent/metainfo] for .torrent files, magnet
// links and creating torrents.
package aiotorrent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// ErrNoMetadata is returned by methods that need a torrent's info
// dictionary when the torrent was opened from a magnet link and the
// metadata has not been fetched from peers yet.
var ErrNoMetadata = errors.New("torrent metadata not available yet (opened from a magnet link)")

// Torrent is one torrent: its identity and, once known, its metadata.
// A Torrent is safe for concurrent use.
type Torrent struct {
	infoHash metainfo.Hash
	mi       atomic.Pointer[metainfo.MetaInfo] // nil until the metadata is known: see meta
	magnet   *metainfo.Magnet                  // set when opened from a magnet link
	up, down *limiter                          // the torrent's rate limits

	mu          sync.Mutex
	client      *Client          // guarded by mu; nil until added to a client
	eng         *engine          // guarded by mu; nil unless running
	dir         string           // guarded by mu; the download folder once running
	closed      bool             // guarded by mu
	starting    chan struct{}    // guarded by mu; closed when a start's data check ends
	cancelStart func()           // guarded by mu; cancels that check
	stopping    []*engine        // guarded by mu; engines being stopped
	extraPeers  []netip.AddrPort // guarded by mu; from AddPeers
	prio        []Priority       // guarded by mu; per file, nil: all Normal
	prioSet     bool             // guarded by mu; SetFilePriority was called
	fetch       *metaFetch       // guarded by mu; the metadata fetch of a magnet link
	parked      []*parkedConn    // guarded by mu; the fetch's connections, kept for the download
	adopter     *engine          // guarded by mu; the engine that took the parked ones: later ones go to it
}

// File is one file of a torrent, as offered to the user. BEP 47 padding
// files are never listed.
type File struct {
	// Index is the file's position in the torrent's file list. Padding
	// files take indexes too, so the indexes of listed files may skip
	// numbers; they match the file indexes of magnet links' so= parameter
	// and of other clients.
	Index int
	// Path is the file's path relative to the download folder, with "/"
	// between components; for a multi-file torrent it starts with the
	// torrent's name.
	Path string
	// Length is the file's size in bytes.
	Length int64
	// Offset is where the file starts within the torrent's content.
	Offset int64
}

// Open opens a torrent from a .torrent file path or a magnet link.
//
// A .torrent file is read and validated at once. A magnet link gives the
// info hash, name and trackers it carries; its file list needs the
// metadata from peers, and until then [Torrent.HasMetadata] is false.
func Open(ctx context.Context, pathOrMagnet string) (*Torrent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if isMagnet(pathOrMagnet) {
		m, err := metainfo.ParseMagnet(pathOrMagnet)
		if err != nil {
			return nil, err
		}
		return newTorrent(m.InfoHash, nil, m), nil
	}
	mi, err := metainfo.LoadFile(pathOrMagnet)
	if err != nil {
		return nil, fmt.Errorf("open torrent: %w", err)
	}
	return FromMetaInfo(mi), nil
}

// FromMetaInfo returns a Torrent for metadata already parsed or created.
func FromMetaInfo(mi *metainfo.MetaInfo) *Torrent {
	return newTorrent(mi.InfoHash, mi, nil)
}

func newTorrent(h metainfo.Hash, mi *metainfo.MetaInfo, m *metainfo.Magnet) *Torrent {
	t := &Torrent{infoHash: h, magnet: m, up: newLimiter(0), down: newLimiter(0)}
	t.mi.Store(mi)
	return t
}

func isMagnet(s string) bool {
	return len(s) >= 7 && strings.EqualFold(s[:7], "magnet:")
}

// InfoHash returns the torrent's v1 info hash.
func (t *Torrent) InfoHash() metainfo.Hash { return t.infoHash }

// HasMetadata reports whether the torrent's info dictionary (its files and
// pieces) is known.
func (t *Torrent) HasMetadata() bool { return t.meta() != nil }

// meta returns the torrent's metainfo, nil until it is known. It is set
// once (a magnet link's, when the metadata arrives) and never changes
// afterwards.
func (t *Torrent) meta() *metainfo.MetaInfo { return t.mi.Load() }

// MetaInfo returns the parsed .torrent content, or nil if the metadata is
// not known yet. It must not be modified.
func (t *Torrent) MetaInfo() *metainfo.MetaInfo { return t.meta() }

// Name returns the torrent's name: the file or top folder name from its
// metadata, else the magnet link's display name, else the info hash.
func (t *Torrent) Name() string {
	switch {
	case t.meta() != nil:
		return t.meta().Info.Name
	case t.magnet != nil && t.magnet.DisplayName != "":
		return t.magnet.DisplayName
	}
	return t.infoHash.String()
}

// Length returns the total size of the torrent's content in bytes, padding
// files included, or 0 if the metadata is not known yet.
func (t *Torrent) Length() int64 {
	if t.meta() == nil {
		return 0
	}
	return t.meta().Info.Length
}

// PieceLength returns the length of a piece, or 0 without metadata.
func (t *Torrent) PieceLength() int64 {
	if t.meta() == nil {
		return 0
	}
	return t.meta().Info.PieceLength
}

// NumPieces returns the number of pieces, or 0 without metadata.
func (t *Torrent) NumPieces() int {
	if t.meta() == nil {
		return 0
	}
	return t.meta().Info.NumPieces()
}

// Private reports the BEP 27 private flag.
func (t *Torrent) Private() bool { return t.meta() != nil && t.meta().Info.Private }

// Trackers returns the torrent's tracker URLs in tiers (BEP 12). A magnet
// link's trackers form one tier each, in the link's order, after the
// metadata's when both are known.
func (t *Torrent) Trackers() [][]string {
	var tiers [][]string
	seen := map[string]bool{}
	if t.meta() != nil {
		tiers = t.meta().Trackers()
		for _, tier := range tiers {
			for _, tr := range tier {
				seen[tr] = true
			}
		}
	}
	if t.magnet != nil {
		for _, tr := range t.magnet.Trackers {
			if !seen[tr] {
				seen[tr] = true
				tiers = append(tiers, []string{tr})
			}
		}
	}
	out := make([][]string, len(tiers))
	for i, tier := range tiers {
		out[i] = append([]string(nil), tier...)
	}
	return out
}

// WebSeeds returns the torrent's web seed URLs (BEP 19).
func (t *Torrent) WebSeeds() []string {
	if t.meta() != nil {
		return append([]string(nil), t.meta().URLList...)
	}
	if t.magnet != nil {
		return append([]string(nil), t.magnet.WebSeeds...)
	}
	return nil
}

// Files returns the torrent's files in torrent order, without padding
// files, or nil if the metadata is not known yet.
func (t *Torrent) Files() []File {
	if t.meta() == nil {
		return nil
	}
	var files []File
	for i, f := range t.meta().Info.Files {
		if f.Padding {
			continue
		}
		files = append(files, File{Index: i, Path: strings.Join(f.Path, "/"), Length: f.Length, Offset: f.Offset})
	}
	return files
}

// Magnet returns a magnet link for the torrent.
func (t *Torrent) Magnet() string {
	if t.meta() != nil {
		return t.meta().Magnet().String()
	}
	return t.magnet.String()
}
