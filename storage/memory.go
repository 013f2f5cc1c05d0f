package storage

import (
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Memory is a [Storage] that keeps the content in memory, one buffer per
// piece allocated when the piece is first written, so it takes as much
// memory as what has been written. It is meant for tests and small
// torrents. It keeps every file: there is no selection.
//
// Reading bytes of a piece that was never written gives an error wrapping
// fs.ErrNotExist, as reading a file not yet created does with [File]; the
// granularity is the piece: once any byte of a piece has been written, the
// bytes of it not written yet read as zeros. Padding bytes always read as
// zeros.
type Memory struct {
	layout layout

	mu     sync.RWMutex
	pieces [][]byte // guarded by mu; nil until written
	closed bool     // guarded by mu
}

// NewMemory returns an empty [Memory] for the torrent described by info.
// info must be consistent, as metainfo produces it (files contiguous from
// offset 0, lengths adding up to Length, a hash for every piece): NewMemory
// panics if it is not.
func NewMemory(info *metainfo.Info) *Memory {
	l, err := newLayout(info)
	if err != nil {
		panic(err)
	}
	return &Memory{layout: l, pieces: make([][]byte, info.NumPieces())}
}

// ReadAt implements [Storage.ReadAt].
func (m *Memory) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("storage: read at negative offset %d", off)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	if off >= m.layout.length {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var eof error
	if rest := m.layout.length - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	n := 0
	for n < len(p) {
		pi := off / m.layout.pieceLen
		at := off - pi*m.layout.pieceLen
		k := min(len(p)-n, int(m.layout.pieceLen-at))
		seg := p[n : n+k]
		if piece := m.pieces[pi]; piece != nil {
			copy(seg, piece[at:])
		} else if !m.layout.allPadding(off, int64(k)) {
			return n, fmt.Errorf("storage: read at %d: piece %d not written: %w", off, pi, fs.ErrNotExist)
		} else {
			clear(seg)
		}
		n += k
		off += int64(k)
	}
	return n, eof
}

// WriteAt implements [Storage.WriteAt]. The whole of p must lie within the
// content.
func (m *Memory) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	if off < 0 || int64(len(p)) > m.layout.length-off {
		return 0, fmt.Errorf("storage: write of %d bytes at %d: outside the content (%d bytes)", len(p), off, m.layout.length)
	}
	n := 0
	for i := m.layout.fileAt(off); n < len(p); i++ {
		f := &m.layout.files[i]
		if f.length == 0 {
			continue
		}
		k := int(f.segment(off, int64(len(p)-n)))
		if !f.padding {
			m.write(p[n:n+k], off)
		}
		n += k
		off += int64(k)
	}
	return n, nil
}

// write copies p, which holds no padding, at content offset off.
func (m *Memory) write(p []byte, off int64) {
	pl := m.layout.pieceLen
	for len(p) > 0 {
		pi := off / pl
		at := off - pi*pl
		piece := m.pieces[pi]
		if piece == nil {
			piece = make([]byte, min(pl, m.layout.length-pi*pl))
			m.pieces[pi] = piece
		}
		k := copy(piece[at:], p)
		p = p[k:]
		off += int64(k)
	}
}

// FileComplete implements [Storage.FileComplete]; there is nothing to
// make durable.
func (m *Memory) FileComplete(i int) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	if i < 0 || i >= len(m.layout.files) {
		return fmt.Errorf("storage: file index %d out of range [0, %d)", i, len(m.layout.files))
	}
	return nil
}

// Close implements [Storage.Close]; it lets go of the content.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed, m.pieces = true, nil
	return nil
}

// allPadding reports whether the n bytes at content offset off all belong
// to padding files.
func (l *layout) allPadding(off, n int64) bool {
	for i := l.fileAt(off); n > 0; i++ {
		f := &l.files[i]
		if f.length == 0 {
			continue
		}
		if !f.padding {
			return false
		}
		k := f.segment(off, n)
		n -= k
		off += k
	}
	return true
}

// Select implements [Storage.Select]: Memory keeps every file already.
func (m *Memory) Select(int, func(int) bool) error { return nil }
