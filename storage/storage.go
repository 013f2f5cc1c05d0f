// Package storage keeps a torrent's pieces: the [Storage] interface the
// download engine reads and writes through, a [File] back-end that lays the
// content out in files as the torrent describes them, a [Memory] back-end
// for tests and small torrents, and a [Cache] back-end that keeps a bounded
// number of pieces in memory for streaming.
//
// A Storage is addressed by offsets in the torrent's content: the
// concatenation of all its files, padding files included, exactly as the
// pieces are hashed. Padding files (BEP 47) are never stored: they read as
// zeros and writes to them are dropped.
package storage

import (
	"errors"
	"fmt"
	"sort"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Storage holds a torrent's content, addressed by offsets in the torrent's
// content (the concatenation of all files, padding included). It is safe
// for concurrent use by several goroutines: the engine reads blocks for
// uploading while a hashing goroutine writes verified pieces.
type Storage interface {
	// ReadAt reads len(p) bytes at content offset off, following
	// io.ReaderAt: fewer bytes come with an error, and io.EOF when the
	// read runs past the end of the content. Bytes of padding files read as
	// zeros. Bytes of a file that does not exist (yet) give an error
	// wrapping fs.ErrNotExist, quickly, and reading never creates a file.
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes p at content offset off: a whole verified piece,
	// possibly spanning many files. Padding ranges are dropped; ranges of
	// files that are not selected are kept aside, never written into those
	// files (see [FileOptions.PartsFile]).
	WriteAt(p []byte, off int64) (int, error)
	// FileComplete is called once every piece that spans file i (an index
	// into metainfo.Info.Files) has been verified and written: the back-end
	// makes the file durable (fsync) and may close its handle.
	FileComplete(i int) error
	// Select adds file i to the files a running download writes, moving
	// into it what verified pieces (have) already kept aside for it.
	// Back-ends that keep every file, like [Memory], do nothing.
	Select(i int, have func(piece int) bool) error
	// Close flushes and closes everything. Further calls of any method
	// return an error wrapping [ErrClosed].
	Close() error
}

// ErrClosed is returned (possibly wrapped) by the methods of a Storage
// that has been closed.
var ErrClosed = errors.New("storage: closed")

var (
	_ Storage = (*File)(nil)
	_ Storage = (*Memory)(nil)
	_ Storage = (*Cache)(nil)
)

// span is one file of the content, as the back-ends see it.
type span struct {
	offset  int64
	length  int64
	padding bool
}

// layout maps content offsets to files.
type layout struct {
	files    []span
	length   int64 // total content length, padding included
	pieceLen int64
}

// newLayout checks that info describes a consistent content (the files
// contiguous from 0, the lengths adding up, a hash for every piece) and
// returns its layout.
func newLayout(info *metainfo.Info) (layout, error) {
	if info == nil {
		return layout{}, errors.New("storage: nil info")
	}
	if info.PieceLength <= 0 {
		return layout{}, fmt.Errorf("storage: piece length %d", info.PieceLength)
	}
	if len(info.Files) == 0 {
		return layout{}, errors.New("storage: torrent has no files")
	}
	l := layout{files: make([]span, len(info.Files)), pieceLen: info.PieceLength}
	var total int64
	for i, f := range info.Files {
		if f.Length < 0 || f.Length > metainfo.MaxTotalLength-total {
			return layout{}, fmt.Errorf("storage: file %d: bad length %d", i, f.Length)
		}
		if f.Offset != total {
			return layout{}, fmt.Errorf("storage: file %d: offset %d, want %d", i, f.Offset, total)
		}
		l.files[i] = span{offset: f.Offset, length: f.Length, padding: f.Padding}
		total += f.Length
	}
	if total != info.Length {
		return layout{}, fmt.Errorf("storage: files add up to %d bytes, info says %d", total, info.Length)
	}
	if want := (total + info.PieceLength - 1) / info.PieceLength; int64(info.NumPieces()) != want || len(info.Pieces)%metainfo.HashSize != 0 {
		return layout{}, fmt.Errorf("storage: %d bytes of piece hashes for %d bytes in pieces of %d", len(info.Pieces), total, info.PieceLength)
	}
	l.length = total
	return l, nil
}

// fileAt returns the index of the file holding content offset off, which
// must be in [0, l.length). Zero-length files hold no offset, so they are
// never returned.
func (l *layout) fileAt(off int64) int {
	return sort.Search(len(l.files), func(i int) bool {
		return l.files[i].offset+l.files[i].length > off
	})
}

// segment returns how many of the n bytes at content offset off lie in
// file f (which must hold off).
func (f *span) segment(off, n int64) int64 {
	return min(n, f.offset+f.length-off)
}
