package storage

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// newCache returns an empty Cache for info holding capacity bytes.
func newCache(t testing.TB, info *metainfo.Info, capacity int64) *Cache {
	t.Helper()
	c, err := NewCache(info, capacity)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wholeCache returns an empty Cache for info with room for every piece.
func wholeCache(t testing.TB, info *metainfo.Info) *Cache {
	t.Helper()
	return newCache(t, info, max(int64(info.NumPieces())*info.PieceLength, info.PieceLength))
}

// held returns the bytes of the buffers c holds, cached and spare: what the
// capacity bounds.
func held(c *Cache) int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var n int64
	for _, b := range c.pieces {
		n += int64(cap(b))
	}
	for _, b := range c.free {
		n += int64(cap(b))
	}
	return n
}

// checkHeld fails t if c holds more buffers than its capacity.
func checkHeld(t testing.TB, c *Cache) {
	t.Helper()
	if h := held(c); h > c.Capacity() {
		t.Fatalf("cache holds %d bytes of buffers, capacity %d", h, c.Capacity())
	}
}

// split cuts p into parts of n bytes, the last one possibly shorter, with
// an empty part at the front, as a piece's blocks may come.
func split(p []byte, n int) [][]byte {
	parts := [][]byte{{}}
	for len(p) > 0 {
		k := min(n, len(p))
		parts = append(parts, p[:k])
		p = p[k:]
	}
	return parts
}

// dirty returns a copy of data with 0xff in its padding files: what a
// peer may send, which the cache must store as zeros.
func dirty(info *metainfo.Info, data []byte) []byte {
	d := bytes.Clone(data)
	for _, f := range info.Files {
		if f.Padding {
			for j := range f.Length {
				d[f.Offset+j] = 0xff
			}
		}
	}
	return d
}

func TestCacheRoundTrip(t *testing.T) {
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			testRoundTrip(t, wholeCache(t, tc.info), tc.info, content(tc.info, 1))
		})
	}
}

func TestCacheWritePieceRoundTrip(t *testing.T) {
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			info := tc.info
			data := content(info, 4)
			src := dirty(info, data)
			c := wholeCache(t, info)
			var used int64
			for i := range info.NumPieces() {
				_, p := piece(info, src, i)
				if err := c.WritePiece(i, split(p, 1000+i)); err != nil {
					t.Fatalf("WritePiece(%d): %v", i, err)
				}
				used += int64(len(p))
				if !c.Has(i) || c.Used() != used {
					t.Fatalf("after WritePiece(%d): Has %v, Used %d; want true, %d", i, c.Has(i), c.Used(), used)
				}
			}
			got := make([]byte, info.Length)
			if n, err := c.ReadAt(got, 0); n != len(got) || err != nil {
				t.Fatalf("ReadAt all = %d, %v", n, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("content read back differs (padding not zeroed?)")
			}
			clear(src) // the cache keeps copies
			if _, err := c.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("content changed with the caller's buffers (err %v)", err)
			}
			if got := c.Pieces(nil); len(got) != info.NumPieces() {
				t.Errorf("Pieces = %v, want all %d", got, info.NumPieces())
			}
		})
	}
}

func TestCacheEdges(t *testing.T) {
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			testEdges(t, wholeCache(t, tc.info), tc.info, content(tc.info, 1))
		})
	}
}

func TestCachePaddingDropped(t *testing.T) {
	info := layouts[3].info
	testPaddingDropped(t, wholeCache(t, info), info)
}

func TestCacheReadMissing(t *testing.T) {
	info := selectionInfo // 1 KiB pieces; padding [1500, 2048) and [6249, 6349); last piece [7168, 7379)
	data := content(info, 8)
	c := wholeCache(t, info)
	if _, err := c.WriteAt(data[2048:3072], 2048); err != nil {
		t.Fatal(err)
	}
	if err := c.WritePiece(7, [][]byte{data[7168:]}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		off, len int64
		want     int
		wantErr  error // fs.ErrNotExist, io.EOF or nil
	}{
		{"nothing cached", 0, 100, 0, fs.ErrNotExist},
		{"padding of an absent piece", 1500, 548, 548, nil},
		{"padding of another absent piece", 6249, 100, 100, nil},
		{"file and padding of an absent piece", 1000, 600, 0, fs.ErrNotExist},
		{"padding then a cached piece", 1500, 1572, 1572, nil},
		{"cached piece", 2048, 1024, 1024, nil},
		{"cached piece then an absent one", 2048, 1500, 1024, fs.ErrNotExist},
		{"end of a cached piece then an absent one", 3000, 100, 72, fs.ErrNotExist},
		{"absent piece then a cached one", 7000, 379, 0, fs.ErrNotExist},
		{"cached last piece", 7168, 211, 211, nil},
		{"cached last piece and past the end", 7168, 300, 211, io.EOF},
		{"at the end", 7379, 10, 0, io.EOF},
		{"empty at the end", 7379, 0, 0, nil},
		{"past the end", 8000, 10, 0, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := bytes.Repeat([]byte{0xaa}, int(tc.len))
			n, err := c.ReadAt(buf, tc.off)
			if n != tc.want || !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v", tc.len, tc.off, n, err, tc.want, tc.wantErr)
			}
			if n > 0 && !bytes.Equal(buf[:n], data[tc.off:tc.off+int64(n)]) {
				t.Error("wrong bytes")
			}
		})
	}
}

func TestCacheWriteAtErrors(t *testing.T) {
	info := selectionInfo // 8 pieces of 1 KiB, the last one 211 bytes at 7168
	data := content(info, 9)
	tests := []struct {
		name    string
		off, n  int64
		wantErr bool
	}{
		{"first piece", 0, 1024, false},
		{"two pieces", 1024, 2048, false},
		{"last piece", 7168, 211, false},
		{"last two pieces", 6144, 1235, false},
		{"everything", 0, 7379, false},
		{"nothing", 2048, 0, false},
		{"misaligned", 100, 1024, true},
		{"part of a piece", 0, 1000, true},
		{"a piece and a half", 0, 1536, true},
		{"part of the last piece", 7168, 210, true},
		{"past the end", 7168, 212, true},
		{"negative offset", -1024, 1024, true},
		{"after the end", 8192, 1024, true},
		{"huge offset", math.MaxInt64 &^ 1023, 1024, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := wholeCache(t, info)
			p := make([]byte, tc.n)
			if tc.off >= 0 && tc.n <= info.Length-tc.off {
				copy(p, data[tc.off:])
			}
			n, err := c.WriteAt(p, tc.off)
			if tc.wantErr {
				if err == nil || n != 0 || c.Used() != 0 {
					t.Fatalf("WriteAt(%d bytes at %d) = %d, %v, Used %d; want an error and nothing stored", tc.n, tc.off, n, err, c.Used())
				}
				return
			}
			if err != nil || n != int(tc.n) || c.Used() != tc.n {
				t.Fatalf("WriteAt(%d bytes at %d) = %d, %v, Used %d", tc.n, tc.off, n, err, c.Used())
			}
			got := make([]byte, tc.n)
			if _, err := c.ReadAt(got, tc.off); err != nil || !bytes.Equal(got, p) {
				t.Fatalf("read back: %v", err)
			}
		})
	}
}

func TestCacheWritePieceErrors(t *testing.T) {
	info := selectionInfo // 8 pieces of 1 KiB, the last one 211 bytes
	tests := []struct {
		name  string
		i     int
		sizes []int
	}{
		{"negative index", -1, []int{1024}},
		{"index past the end", 8, []int{1024}},
		{"no data", 0, nil},
		{"short", 0, []int{1023}},
		{"long", 0, []int{1025}},
		{"long in parts", 1, []int{512, 512, 1}},
		{"last piece full length", 7, []int{1024}},
		{"last piece short", 7, []int{210}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := wholeCache(t, info)
			var data [][]byte
			for _, n := range tc.sizes {
				data = append(data, make([]byte, n))
			}
			err := c.WritePiece(tc.i, data)
			if err == nil || errors.Is(err, ErrCacheFull) {
				t.Fatalf("WritePiece(%d, %v bytes) = %v, want an error other than ErrCacheFull", tc.i, tc.sizes, err)
			}
			if c.Has(tc.i) || c.Used() != 0 {
				t.Errorf("WritePiece failed but stored: Has %v, Used %d", c.Has(tc.i), c.Used())
			}
		})
	}
}

func TestNewCacheErrors(t *testing.T) {
	info := layouts[0].info
	bad := *info
	bad.Length++
	for _, tc := range []struct {
		name     string
		info     *metainfo.Info
		capacity int64
	}{
		{"nil info", nil, 1 << 20},
		{"inconsistent info", &bad, 1 << 20},
		{"less than a piece", info, info.PieceLength - 1},
		{"zero", info, 0},
	} {
		if _, err := NewCache(tc.info, tc.capacity); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestCacheCapacity(t *testing.T) {
	info := layouts[0].info // 4 pieces of 16 KiB, the last one 5000 bytes
	data := content(info, 5)
	pl := info.PieceLength
	c := newCache(t, info, 2*pl)
	write := func(i int) error {
		t.Helper()
		_, p := piece(info, data, i)
		err := c.WritePiece(i, [][]byte{p})
		checkHeld(t, c)
		return err
	}
	full := func(i int) {
		t.Helper()
		used := c.Used()
		if err := write(i); !errors.Is(err, ErrCacheFull) {
			t.Fatalf("WritePiece(%d) with %d of %d used = %v, want ErrCacheFull", i, used, c.Capacity(), err)
		}
		if c.Has(i) || c.Used() != used {
			t.Fatalf("WritePiece(%d) full but stored: Has %v, Used %d, want %d", i, c.Has(i), c.Used(), used)
		}
	}
	state := func(used int64, pieces ...int) {
		t.Helper()
		if c.Used() != used {
			t.Errorf("Used = %d, want %d", c.Used(), used)
		}
		got := c.Pieces(nil)
		slices.Sort(got)
		if !slices.Equal(got, pieces) {
			t.Errorf("Pieces = %v, want %v", got, pieces)
		}
	}
	if c.Capacity() != 2*pl {
		t.Fatalf("Capacity = %d", c.Capacity())
	}
	state(0)
	for _, i := range []int{0, 1} {
		if err := write(i); err != nil {
			t.Fatal(err)
		}
	}
	state(2*pl, 0, 1)
	full(2)
	full(3)
	if err := write(1); err != nil {
		t.Fatalf("rewriting a cached piece in a full cache: %v", err)
	}
	state(2*pl, 0, 1)
	if !c.Evict(0) || c.Evict(0) || c.Evict(-1) || c.Evict(4) {
		t.Fatal("Evict(0) twice, Evict out of range: want true, false, false, false")
	}
	state(pl, 1)
	if _, err := c.ReadAt(make([]byte, 10), 0); !isMissing(err) {
		t.Fatalf("ReadAt of an evicted piece: %v", err)
	}
	if err := write(3); err != nil {
		t.Fatal(err)
	}
	state(pl+5000, 1, 3)
	full(2)
	c.Evict(3)
	state(pl, 1)
	// Pieces 2 and 3 need pl+5000 bytes; pl are left: neither is stored.
	if _, err := c.WriteAt(data[2*pl:], 2*pl); !errors.Is(err, ErrCacheFull) || c.Has(2) || c.Has(3) {
		t.Fatalf("WriteAt of pieces 2 and 3 = %v, Has %v %v; want ErrCacheFull, nothing stored", err, c.Has(2), c.Has(3))
	}
	// Pieces 1 and 2 need pl: 1 is cached.
	if _, err := c.WriteAt(data[pl:3*pl], pl); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, c)
	state(2*pl, 1, 2)
	got := make([]byte, 2*pl)
	if _, err := c.ReadAt(got, pl); err != nil || !bytes.Equal(got, data[pl:3*pl]) {
		t.Fatalf("ReadAt pieces 1 and 2: %v", err)
	}
}

// TestCacheCapacityShortLast checks that the spare buffers give way to a
// short last piece rather than exceed the capacity.
func TestCacheCapacityShortLast(t *testing.T) {
	info := layouts[0].info // 4 pieces of 16 KiB, the last one 5000 bytes
	data := content(info, 6)
	pl := info.PieceLength
	c := newCache(t, info, pl)
	_, p0 := piece(info, data, 0)
	_, p3 := piece(info, data, 3)
	steps := []struct {
		name string
		do   func() error
		want error
		used int64
	}{
		{"write 0", func() error { return c.WritePiece(0, [][]byte{p0}) }, nil, pl},
		{"write 3, full", func() error { return c.WritePiece(3, [][]byte{p3}) }, ErrCacheFull, pl},
		{"evict 0", func() error { c.Evict(0); return nil }, nil, 0},
		{"write 3", func() error { return c.WritePiece(3, [][]byte{p3}) }, nil, 5000},
		{"write 0, full", func() error { return c.WritePiece(0, [][]byte{p0}) }, ErrCacheFull, 5000},
		{"evict 3", func() error { c.Evict(3); return nil }, nil, 0},
		{"write 0 again", func() error { return c.WritePiece(0, [][]byte{p0}) }, nil, pl},
	}
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
		if c.Used() != s.used {
			t.Fatalf("%s: Used %d, want %d", s.name, c.Used(), s.used)
		}
		checkHeld(t, c)
	}
}

func TestCacheEmptyIsSmall(t *testing.T) {
	// 1M pieces of 16 KiB, a 1 GiB capacity: only the index is allocated.
	info := makeInfo("big", 16<<10, false, tf{"", 1 << 34, false, ""})
	c := newCache(t, info, 1<<30)
	if h := held(c); h != 0 {
		t.Errorf("empty cache holds %d bytes of buffers", h)
	}
	if got := c.Pieces(nil); len(got) != 0 {
		t.Errorf("Pieces = %v", got)
	}
	p := make([]byte, info.PieceLength)
	if err := c.WritePiece(1<<20-1, [][]byte{p}); err != nil {
		t.Fatal(err)
	}
	if got := c.Pieces(nil); !slices.Equal(got, []int{1<<20 - 1}) {
		t.Errorf("Pieces = %v", got)
	}
}

func TestCacheAllocs(t *testing.T) {
	for _, tc := range layouts {
		info := tc.info
		if info.NumPieces() < 2 {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			data := content(info, 7)
			c := newCache(t, info, 2*info.PieceLength)
			off, p0 := piece(info, data, 0)
			_, p1 := piece(info, data, 1)
			parts := split(p0, 300)
			if err := c.WritePiece(0, parts); err != nil {
				t.Fatal(err)
			}
			if err := c.WritePiece(1, [][]byte{p1}); err != nil {
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(100, func() {
				c.Evict(0)
				if err := c.WritePiece(0, parts); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Evict+WritePiece: %v allocations, want 0", n)
			}
			if n := testing.AllocsPerRun(100, func() {
				c.Evict(0)
				if _, err := c.WriteAt(p0, off); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Evict+WriteAt: %v allocations, want 0", n)
			}
			buf := make([]byte, len(p0)+len(p1))
			if n := testing.AllocsPerRun(100, func() {
				if _, err := c.ReadAt(buf, 0); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("ReadAt: %v allocations, want 0", n)
			}
			if !bytes.Equal(buf, data[:len(buf)]) {
				t.Error("wrong bytes")
			}
		})
	}
}

// TestCacheConcurrent has a writer store pieces, an owner evict them and
// readers read all over: a read returns the right bytes or a missing piece,
// never part of a piece or the bytes of another.
func TestCacheConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name string
		info *metainfo.Info
	}{layouts[0], layouts[3], layouts[4]} {
		t.Run(tc.name, func(t *testing.T) {
			info := tc.info
			data := content(info, 10)
			src := dirty(info, data)
			c := newCache(t, info, 3*info.PieceLength)
			np := info.NumPieces()
			var done atomic.Bool
			var writing atomic.Int64 // offset of the piece being written
			var wg sync.WaitGroup
			wg.Go(func() { // the writer
				defer done.Store(true)
				r := rand.New(rand.NewPCG(1, 1))
				var cached []int
				for k := range 600 {
					i := r.IntN(np)
					off, p := piece(info, src, i)
					writing.Store(off)
					for {
						var err error
						if k%2 == 0 {
							err = c.WritePiece(i, split(p, 1000+r.IntN(len(p))))
						} else {
							_, err = c.WriteAt(p, off)
						}
						if err == nil {
							break
						}
						if !errors.Is(err, ErrCacheFull) {
							t.Error(err)
							return
						}
						// Make room, as the owner does.
						if cached = c.Pieces(cached[:0]); len(cached) > 0 {
							c.Evict(cached[r.IntN(len(cached))])
						}
					}
					if used := c.Used(); used > c.Capacity() {
						t.Errorf("Used %d > capacity %d", used, c.Capacity())
						return
					}
				}
			})
			wg.Go(func() { // the owner
				r := rand.New(rand.NewPCG(2, 2))
				var cached []int
				for !done.Load() {
					if cached = c.Pieces(cached[:0]); len(cached) > 1 {
						c.Evict(cached[r.IntN(len(cached))])
					}
					runtime.Gosched()
				}
			})
			var reads, whole atomic.Int64
			for g := range 4 {
				wg.Go(func() { // the readers
					r := rand.New(rand.NewPCG(3, uint64(g)))
					buf := make([]byte, 3*info.PieceLength)
					for !done.Load() {
						off := r.Int64N(info.Length)
						if r.IntN(2) == 0 { // catch the writer in the act
							off = writing.Load() + r.Int64N(100)
						}
						b := buf[:r.Int64N(min(int64(len(buf)), info.Length-off))+1]
						clear(b)
						n, err := c.ReadAt(b, off)
						if err != nil && !isMissing(err) {
							t.Errorf("ReadAt(%d bytes at %d): %v", len(b), off, err)
							return
						}
						if err == nil && n != len(b) {
							t.Errorf("ReadAt(%d bytes at %d) = %d, nil", len(b), off, n)
							return
						}
						if !bytes.Equal(b[:n], data[off:off+int64(n)]) {
							t.Errorf("ReadAt(%d bytes at %d) = %d, %v: wrong bytes", len(b), off, n, err)
							return
						}
						reads.Add(1)
						if err == nil {
							whole.Add(1)
						}
					}
				})
			}
			wg.Wait()
			t.Logf("%d reads, %d whole", reads.Load(), whole.Load())
			checkHeld(t, c)
		})
	}
}

func TestCacheClosed(t *testing.T) {
	info := layouts[3].info
	c := wholeCache(t, info)
	data := content(info, 11)
	_, p := piece(info, data, 0)
	if err := c.WritePiece(0, [][]byte{p}); err != nil {
		t.Fatal(err)
	}
	testClosed(t, c)
	if err := c.WritePiece(0, [][]byte{p}); !errors.Is(err, ErrClosed) {
		t.Errorf("WritePiece after Close: %v", err)
	}
	if c.Has(0) || c.Evict(0) || c.Used() != 0 || len(c.Pieces(nil)) != 0 || held(c) != 0 {
		t.Errorf("after Close: Has %v, Used %d, Pieces %v, held %d; want nothing", c.Has(0), c.Used(), c.Pieces(nil), held(c))
	}
}

// FuzzCache runs a sequence of writes, evictions and reads taken from the
// input against a model of what is cached.
func FuzzCache(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 2, 0, 0})
	f.Add([]byte{0, 0, 7, 1, 0, 0, 7, 3, 0, 2, 7, 0, 4, 8})
	f.Add([]byte{5, 3, 6, 3, 2, 0, 0, 1, 0, 0, 7, 0, 3, 2, 2, 9, 9})
	r := rand.New(rand.NewPCG(12, 12))
	long := make([]byte, 2000)
	for i := range long {
		long[i] = byte(r.Uint32())
	}
	f.Add(long)
	info := selectionInfo // padding, a short last piece
	data := content(info, 12)
	src := dirty(info, data)
	pl, np := info.PieceLength, info.NumPieces()
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) == 0 {
			return
		}
		c := newCache(t, info, pl*int64(1+ops[0]%4)+int64(ops[0]/4)*100)
		cached := make([]bool, np)
		var used int64
		for k := 1; k+1 < len(ops); k += 2 {
			op, arg := ops[k]%4, int(ops[k+1])
			i := arg % np
			switch op {
			case 0, 1: // write piece i, or pieces i and i+1
				j := min(i+1+int(op), np)
				var need int64
				for x := i; x < j; x++ {
					if !cached[x] {
						need += info.PieceSize(x)
					}
				}
				var err error
				if op == 0 {
					_, p := piece(info, src, i)
					err = c.WritePiece(i, split(p, 1+arg))
				} else {
					off := int64(i) * pl
					_, err = c.WriteAt(src[off:min(int64(j)*pl, info.Length)], off)
				}
				if fits := used+need <= c.Capacity(); fits != (err == nil) || (!fits && !errors.Is(err, ErrCacheFull)) {
					t.Fatalf("op %d: writing pieces [%d, %d) with %d of %d used, %d needed: %v", k, i, j, used, c.Capacity(), need, err)
				}
				if err == nil {
					for x := i; x < j; x++ {
						cached[x] = true
					}
					used += need
				}
			case 2: // evict
				if got := c.Evict(i); got != cached[i] {
					t.Fatalf("op %d: Evict(%d) = %v, want %v", k, i, got, cached[i])
				}
				if cached[i] {
					cached[i] = false
					used -= info.PieceSize(i)
				}
			case 3: // read
				off := int64(arg) * info.Length / 256
				n := int64(ops[k]/4)*40 + 1
				buf := make([]byte, n)
				got, err := c.ReadAt(buf, off)
				want, wantErr := modelRead(info, cached, off, n)
				if got != want || !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
					t.Fatalf("op %d: ReadAt(%d bytes at %d) = %d, %v; want %d, %v", k, n, off, got, err, want, wantErr)
				}
				if !bytes.Equal(buf[:got], data[off:off+int64(got)]) {
					t.Fatalf("op %d: ReadAt(%d bytes at %d): wrong bytes", k, n, off)
				}
			}
			if c.Used() != used {
				t.Fatalf("op %d: Used %d, want %d", k, c.Used(), used)
			}
			var want []int
			for x, ok := range cached {
				if ok {
					want = append(want, x)
				}
				if c.Has(x) != ok {
					t.Fatalf("op %d: Has(%d) = %v, want %v", k, x, !ok, ok)
				}
			}
			if got := c.Pieces(nil); !slices.Equal(got, want) {
				t.Fatalf("op %d: Pieces = %v, want %v", k, got, want)
			}
			checkHeld(t, c)
		}
	})
}

// modelRead returns what reading n bytes at off should return given which
// pieces are cached.
func modelRead(info *metainfo.Info, cached []bool, off, n int64) (int, error) {
	l, err := newLayout(info)
	if err != nil {
		panic(err)
	}
	var eof error
	if off >= l.length {
		return 0, io.EOF
	}
	if off+n > l.length {
		n, eof = l.length-off, io.EOF
	}
	for done := int64(0); done < n; {
		pi := (off + done) / l.pieceLen
		k := min(n-done, (pi+1)*l.pieceLen-off-done)
		if !cached[pi] && !l.allPadding(off+done, k) {
			return int(done), fs.ErrNotExist
		}
		done += k
	}
	return int(n), eof
}

func BenchmarkCacheWritePiece(b *testing.B) {
	info := makeInfo("bench", 256<<10, false, tf{"", 64 * 256 << 10, false, ""})
	data := content(info, 13)
	c := newCache(b, info, 4*info.PieceLength)
	_, p := piece(info, data, 0)
	parts := split(p, 16<<10)
	b.SetBytes(info.PieceLength)
	b.ReportAllocs()
	for b.Loop() {
		c.Evict(0)
		if err := c.WritePiece(0, parts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheReadAt(b *testing.B) {
	info := makeInfo("bench", 256<<10, false, tf{"", 64 * 256 << 10, false, ""})
	data := content(info, 14)
	c := newCache(b, info, 4*info.PieceLength)
	if _, err := c.WriteAt(data[:4*info.PieceLength], 0); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 16<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	off := int64(0)
	for b.Loop() {
		if _, err := c.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off = (off + int64(len(buf)) + 1000) % (4*info.PieceLength - int64(len(buf)))
	}
}
