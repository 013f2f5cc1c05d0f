package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// ErrCacheFull is returned (wrapped) by [Cache.WritePiece] and
// [Cache.WriteAt] when storing a piece would exceed the capacity.
var ErrCacheFull = errors.New("storage: cache full")

// Cache is a [Storage] that keeps verified pieces in memory up to a
// capacity, for streaming a torrent's files without touching the disk. Its
// owner decides which pieces to drop ([Cache.Evict]); the cache only
// refuses to store more than its capacity ([ErrCacheFull]).
//
// Pieces are stored whole and appear atomically: a concurrent ReadAt sees
// either none or all of a piece. Reading bytes of a piece that is not
// cached gives an error wrapping fs.ErrNotExist; padding bytes always read
// as zeros.
//
// Buffers are allocated when first needed and those of evicted pieces are
// reused, so an empty cache takes almost nothing and a cache in steady use
// allocates nothing. The buffers it holds, of cached pieces and spare ones,
// never add up to more than the capacity.
type Cache struct {
	layout    layout
	numPieces int
	capacity  int64

	mu     sync.RWMutex
	pieces [][]byte // guarded by mu; nil if the piece is not cached
	free   [][]byte // guarded by mu; spare buffers of pieceLen bytes
	used   int64    // guarded by mu; bytes of the cached pieces
	n      int      // guarded by mu; number of cached pieces
	closed bool     // guarded by mu
}

// NewCache returns an empty [Cache] for the torrent described by info,
// holding at most capacity bytes of pieces. capacity must hold at least one
// piece.
func NewCache(info *metainfo.Info, capacity int64) (*Cache, error) {
	l, err := newLayout(info)
	if err != nil {
		return nil, err
	}
	if capacity < l.pieceLen {
		return nil, fmt.Errorf("storage: cache capacity %d is less than a piece (%d bytes)", capacity, l.pieceLen)
	}
	n := info.NumPieces()
	return &Cache{layout: l, numPieces: n, capacity: capacity, pieces: make([][]byte, n)}, nil
}

// ReadAt implements [Storage.ReadAt]. Reading bytes of a piece that is not
// cached returns the bytes read before that piece and an error wrapping
// fs.ErrNotExist.
func (c *Cache) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("storage: read at negative offset %d", off)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return 0, ErrClosed
	}
	if off >= c.layout.length {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var eof error
	if rest := c.layout.length - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	n := 0
	for n < len(p) {
		pi := off / c.layout.pieceLen
		at := off - pi*c.layout.pieceLen
		k := min(len(p)-n, int(c.layout.pieceLen-at))
		seg := p[n : n+k]
		if piece := c.pieces[pi]; piece != nil {
			copy(seg, piece[at:])
		} else if !c.layout.allPadding(off, int64(k)) {
			return n, fmt.Errorf("storage: read at %d: piece %d not cached: %w", off, pi, fs.ErrNotExist)
		} else {
			clear(seg)
		}
		n += k
		off += int64(k)
	}
	return n, eof
}

// WriteAt implements [Storage.WriteAt] for whole pieces only: off must be
// the start of a piece and p must end at the end of a piece. Either every
// piece of p is stored, as [Cache.WritePiece] stores it, or none is.
func (c *Cache) WriteAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrClosed
	}
	pl, end := c.layout.pieceLen, off+int64(len(p))
	if off < 0 || off%pl != 0 || int64(len(p)) > c.layout.length-off || (end%pl != 0 && end != c.layout.length) {
		return 0, fmt.Errorf("storage: cache write of %d bytes at %d: not whole pieces of %d bytes within the content (%d bytes)", len(p), off, pl, c.layout.length)
	}
	first, last := int(off/pl), int((end+pl-1)/pl)
	var need int64
	for i := first; i < last; i++ {
		if c.pieces[i] == nil {
			need += c.pieceSize(i)
		}
	}
	if err := c.room(need); err != nil {
		return 0, fmt.Errorf("storage: cache pieces %d to %d: %w", first, last-1, err)
	}
	for i := first; i < last; i++ {
		b := c.buffer(i)
		copy(b, p[int64(i)*pl-off:])
		c.layout.clearPadding(b, int64(i)*pl)
	}
	return len(p), nil
}

// WritePiece stores a copy of piece i, whose bytes are the concatenation of
// data. If the piece is cached already, its bytes are replaced and no more
// room is needed; otherwise, if it does not fit in the capacity left, it
// returns an error wrapping [ErrCacheFull] and stores nothing. Padding
// bytes are stored as zeros whatever data holds.
func (c *Cache) WritePiece(i int, data [][]byte) error {
	if i < 0 || i >= c.numPieces {
		return fmt.Errorf("storage: cache piece %d: index out of range [0, %d)", i, c.numPieces)
	}
	var size int64
	for _, d := range data {
		size += int64(len(d))
	}
	if want := c.pieceSize(i); size != want {
		return fmt.Errorf("storage: cache piece %d: %d bytes, want %d", i, size, want)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.pieces[i] == nil {
		if err := c.room(size); err != nil {
			return fmt.Errorf("storage: cache piece %d: %w", i, err)
		}
	}
	b := c.buffer(i)
	at := 0
	for _, d := range data {
		at += copy(b[at:], d)
	}
	c.layout.clearPadding(b, int64(i)*c.layout.pieceLen)
	return nil
}

// pieceSize returns the length of piece i: pieceLen for all but the last.
func (c *Cache) pieceSize(i int) int64 {
	return min(c.layout.pieceLen, c.layout.length-int64(i)*c.layout.pieceLen)
}

// room checks that n more bytes of pieces fit in the capacity. c.mu must
// be held.
func (c *Cache) room(n int64) error {
	if c.used+n > c.capacity {
		return fmt.Errorf("%d bytes with %d of %d used: %w", n, c.used, c.capacity, ErrCacheFull)
	}
	return nil
}

// buffer returns the buffer of piece i, making the piece cached if it is
// not, with a spare buffer or a new one. The caller has checked that there
// is room (c.room) and fills the buffer. c.mu must be held for writing.
//
// Spare buffers are all pieceLen bytes; a short last piece gets a buffer
// of its size, dropping spare ones if that is needed to keep the buffers
// within the capacity.
func (c *Cache) buffer(i int) []byte {
	if b := c.pieces[i]; b != nil {
		return b
	}
	size := c.pieceSize(i)
	var b []byte
	if size == c.layout.pieceLen && len(c.free) > 0 {
		b = c.popFree()
	} else {
		for len(c.free) > 0 && c.used+int64(len(c.free))*c.layout.pieceLen+size > c.capacity {
			c.popFree()
		}
		b = make([]byte, size)
	}
	c.pieces[i] = b
	c.used += size
	c.n++
	return b
}

// popFree takes the last spare buffer off the free list. c.mu must be
// held for writing.
func (c *Cache) popFree() []byte {
	last := len(c.free) - 1
	b := c.free[last]
	c.free[last] = nil
	c.free = c.free[:last]
	return b
}

// Has reports whether piece i is cached.
func (c *Cache) Has(i int) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return !c.closed && i >= 0 && i < len(c.pieces) && c.pieces[i] != nil
}

// Evict drops piece i from the cache, keeping its buffer for another
// piece, and reports whether it was cached.
func (c *Cache) Evict(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || i < 0 || i >= len(c.pieces) || c.pieces[i] == nil {
		return false
	}
	b := c.pieces[i]
	c.pieces[i] = nil
	c.used -= int64(len(b))
	c.n--
	if int64(len(b)) == c.layout.pieceLen {
		c.free = append(c.free, b)
	}
	return true
}

// Used returns the number of bytes of the cached pieces, each counted by
// its real size.
func (c *Cache) Used() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.used
}

// Capacity returns the most bytes of pieces the cache holds.
func (c *Cache) Capacity() int64 { return c.capacity }

// Pieces appends the indexes of the cached pieces to dst, in increasing
// order, and returns the extended slice.
func (c *Cache) Pieces(dst []int) []int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, n := 0, c.n; n > 0; i++ {
		if c.pieces[i] != nil {
			dst = append(dst, i)
			n--
		}
	}
	return dst
}

// FileComplete implements [Storage.FileComplete]; there is nothing to
// make durable.
func (c *Cache) FileComplete(i int) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	if i < 0 || i >= len(c.layout.files) {
		return fmt.Errorf("storage: file index %d out of range [0, %d)", i, len(c.layout.files))
	}
	return nil
}

// Select implements [Storage.Select]: Cache has no files to select.
func (c *Cache) Select(int, func(int) bool) error { return nil }

// Close implements [Storage.Close]; it lets go of every buffer.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.closed, c.pieces, c.free, c.used, c.n = true, nil, nil, 0, 0
	return nil
}

// clearPadding zeroes the bytes of b, which holds the content at offset
// off, that belong to padding files.
func (l *layout) clearPadding(b []byte, off int64) {
	end := off + int64(len(b))
	for i := l.fileAt(off); i < len(l.files) && l.files[i].offset < end; i++ {
		if f := &l.files[i]; f.padding {
			clear(b[max(f.offset, off)-off : min(f.offset+f.length, end)-off])
		}
	}
}
