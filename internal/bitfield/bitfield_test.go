package bitfield

import (
	"bytes"
	"testing"
)

func TestBitfield(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 20, 64, 1001} {
		f := New(n)
		if f.Count() != 0 || f.Full() != (n == 0) || len(f.Bytes()) != (n+7)/8 {
			t.Fatalf("New(%d): count %d full %v bytes %d", n, f.Count(), f.Full(), len(f.Bytes()))
		}
		for i := 0; i < n; i += 3 {
			if !f.Set(i) || f.Set(i) {
				t.Fatalf("n=%d: Set(%d) twice", n, i)
			}
		}
		want := (n + 2) / 3
		if f.Count() != want {
			t.Fatalf("n=%d: count %d, want %d", n, f.Count(), want)
		}
		g := FromBytes(f.Bytes(), n)
		if g.Count() != want || !bytes.Equal(g.Bytes(), f.Bytes()) {
			t.Fatalf("n=%d: FromBytes differs", n)
		}
		for i := range n {
			if f.Has(i) != (i%3 == 0) {
				t.Fatalf("n=%d: Has(%d) = %v", n, i, f.Has(i))
			}
		}
		if f.Has(-1) || f.Has(n) || f.Set(n) || f.Set(-1) {
			t.Fatalf("n=%d: out-of-range index accepted", n)
		}
		c := f.Clone()
		if n > 0 && (!c.Clear(0) || c.Clear(0) || !f.Has(0)) {
			t.Fatalf("n=%d: Clear/Clone", n)
		}
		f.SetAll()
		if !f.Full() || f.Count() != n {
			t.Fatalf("n=%d: SetAll count %d", n, f.Count())
		}
		if n%8 != 0 && f.Bytes()[len(f.Bytes())-1]&(0xFF>>(n%8)) != 0 {
			t.Fatalf("n=%d: SetAll set spare bits", n)
		}
		h := FromBytes(bytes.Repeat([]byte{0xFF}, (n+7)/8), n)
		if h.Count() != n {
			t.Fatalf("n=%d: FromBytes with spare bits counted %d", n, h.Count())
		}
	}
}
