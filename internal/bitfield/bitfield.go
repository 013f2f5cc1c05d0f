// Package bitfield holds sets of piece indexes in the wire format of the
// peer protocol: one bit per piece, the first piece in the high bit of the
// first byte.
package bitfield

import "math/bits"

// Bitfield is a set of piece indexes in [0, Len()).
type Bitfield struct {
	b     []byte
	n     int
	count int
}

// New returns an empty Bitfield of n pieces.
func New(n int) *Bitfield {
	return &Bitfield{b: make([]byte, (n+7)/8), n: n}
}

// FromBytes returns a Bitfield of n pieces holding a copy of the wire
// bytes b, which must be (n+7)/8 long; spare bits are ignored.
func FromBytes(b []byte, n int) *Bitfield {
	f := New(n)
	copy(f.b, b)
	if spare := n % 8; spare != 0 && len(f.b) > 0 {
		f.b[len(f.b)-1] &^= 0xFF >> spare
	}
	for _, c := range f.b {
		f.count += bits.OnesCount8(c)
	}
	return f
}

// Len is the number of pieces.
func (f *Bitfield) Len() int { return f.n }

// Count is the number of pieces in the set.
func (f *Bitfield) Count() int { return f.count }

// Full reports whether every piece is in the set.
func (f *Bitfield) Full() bool { return f.count == f.n }

// Has reports whether piece i is in the set; out-of-range indexes are not.
func (f *Bitfield) Has(i int) bool {
	return uint(i) < uint(f.n) && f.b[i>>3]&(0x80>>(i&7)) != 0
}

// Set adds piece i and reports whether it was missing.
func (f *Bitfield) Set(i int) bool {
	if f.Has(i) || uint(i) >= uint(f.n) {
		return false
	}
	f.b[i>>3] |= 0x80 >> (i & 7)
	f.count++
	return true
}

// Clear removes piece i and reports whether it was present.
func (f *Bitfield) Clear(i int) bool {
	if !f.Has(i) {
		return false
	}
	f.b[i>>3] &^= 0x80 >> (i & 7)
	f.count--
	return true
}

// SetAll adds every piece.
func (f *Bitfield) SetAll() {
	for i := range f.b {
		f.b[i] = 0xFF
	}
	if spare := f.n % 8; spare != 0 {
		f.b[len(f.b)-1] = ^byte(0xFF >> spare)
	}
	f.count = f.n
}

// Bytes returns the wire form; the caller must not modify it.
func (f *Bitfield) Bytes() []byte { return f.b }

// Clone returns a copy.
func (f *Bitfield) Clone() *Bitfield {
	c := *f
	c.b = append([]byte(nil), f.b...)
	return &c
}
