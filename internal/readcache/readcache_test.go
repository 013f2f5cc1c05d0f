package readcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// timeout bounds every wait in these tests, so that a deadlock fails
// clearly instead of hanging.
const timeout = 10 * time.Second

var errBoom = errors.New("boom")

// content returns n bytes that differ from one offset to the next.
func content(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i>>8) ^ seed
	}
	return b
}

// testReader is an io.ReaderAt over data that counts its reads. Each read
// copies its bytes, then reports its offset on started and waits until
// release is closed, if these channels are set. A read at failOff fails.
type testReader struct {
	data    []byte
	started chan int64
	release chan struct{}
	failOff atomic.Int64
	calls   atomic.Int64
}

func newTestReader(data []byte, blocking bool) *testReader {
	r := &testReader{data: data}
	r.failOff.Store(-1)
	if blocking {
		r.started = make(chan int64, 1024)
		r.release = make(chan struct{})
	}
	return r
}

func (r *testReader) ReadAt(p []byte, off int64) (int, error) {
	r.calls.Add(1)
	n := copy(p, r.data[off:])
	if r.started != nil {
		r.started <- off
	}
	if r.release != nil {
		<-r.release
	}
	if off == r.failOff.Load() {
		return 0, errBoom
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// checkRead compares c.ReadAt with ref.ReadAt for n bytes at off.
func checkRead(t *testing.T, c *Cache, ref io.ReaderAt, off int64, n int) {
	t.Helper()
	got, want := make([]byte, n), make([]byte, n)
	gn, gerr := c.ReadAt(got, off)
	wn, werr := ref.ReadAt(want, off)
	if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || (gerr == nil) != (werr == nil) || (werr == io.EOF) != (gerr == io.EOF) {
		t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v (bytes equal: %t)",
			n, off, gn, gerr, wn, werr, bytes.Equal(got[:gn], want[:wn]))
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitDone waits for wg, failing the test after timeout.
func waitDone(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s: deadlock?", timeout, what)
	}
}

// receive takes n offsets from ch, failing the test after timeout.
func receive(t *testing.T, ch chan int64, n int, what string) []int64 {
	t.Helper()
	var offs []int64
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for len(offs) < n {
		select {
		case off := <-ch:
			offs = append(offs, off)
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s: got %d of %d reads", timeout, what, len(offs), n)
		}
	}
	return offs
}

func TestNewPanics(t *testing.T) {
	tests := []struct {
		name   string
		r      io.ReaderAt
		length int64
		unit   int
	}{
		{"nil reader", nil, 10, 1},
		{"negative length", strings.NewReader(""), -1, 1},
		{"zero unit", strings.NewReader(""), 10, 0},
		{"negative unit", strings.NewReader(""), 10, -5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("New did not panic")
				}
			}()
			New(tc.r, tc.length, tc.unit, 100)
		})
	}
}

func TestNewClampsCapacity(t *testing.T) {
	tests := []struct {
		capacity, want int64
	}{
		{-1, 200},
		{0, 200},
		{199, 200},
		{200, 200},
		{1000, 1000},
	}
	for _, tc := range tests {
		if got := New(strings.NewReader(""), 0, 100, tc.capacity).Stats().Capacity; got != tc.want {
			t.Errorf("New(capacity %d): Capacity = %d, want %d", tc.capacity, got, tc.want)
		}
	}
}

func TestReadAtEdges(t *testing.T) {
	data := content(1000, 0)
	tests := []struct {
		name string
		off  int64
		n    int
	}{
		{"empty at start", 0, 0},
		{"empty in the middle", 500, 0},
		{"empty at end", 1000, 0},
		{"last byte", 999, 1},
		{"across the end", 990, 20},
		{"at the end", 1000, 10},
		{"past the end", 5000, 10},
		{"negative offset", -1, 10},
		{"one unit", 100, 100},
		{"across two units", 150, 100},
		{"across three units", 50, 250},
		{"everything", 0, 1000},
		{"more than everything", 0, 2000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New(bytes.NewReader(data), int64(len(data)), 100, 300)
			checkRead(t, c, bytes.NewReader(data), tc.off, tc.n)
			checkRead(t, c, bytes.NewReader(data), tc.off, tc.n) // now from the cache, as far as it holds
		})
	}
}

func TestReadAtMatchesReference(t *testing.T) {
	tests := []struct {
		name     string
		length   int
		unit     int
		capacity int64
	}{
		{"unit divides length", 4096, 256, 1024},
		{"short last unit", 4000, 256, 1024},
		{"capacity clamped to two units", 1000, 100, 1},
		{"capacity not a multiple of unit", 1000, 100, 350},
		{"one unit holds everything", 1000, 4096, 8192},
		{"one-byte units", 300, 1, 16},
		{"everything fits", 5000, 512, 1 << 20},
		{"empty content", 0, 16, 64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := content(tc.length, 1)
			ref := bytes.NewReader(data)
			c := New(bytes.NewReader(data), int64(tc.length), tc.unit, tc.capacity)
			rng := rand.New(rand.NewPCG(1, uint64(tc.length)))
			for range 3000 {
				off := rng.Int64N(int64(tc.length)+20) - 2
				n := rng.IntN(3*tc.unit + 5)
				checkRead(t, c, ref, off, n)
				if s := c.Stats(); s.Used > s.Capacity {
					t.Fatalf("Used %d > Capacity %d", s.Used, s.Capacity)
				}
			}
			s := c.Stats()
			if tc.length > 0 && s.Hits == 0 {
				t.Errorf("no hits: %+v", s)
			}
			if s.Loads > s.Misses {
				t.Errorf("more loads than misses: %+v", s)
			}
		})
	}
}

func TestLRU(t *testing.T) {
	data := content(400, 2)
	c := New(bytes.NewReader(data), 400, 100, 200)
	buf := make([]byte, 10)
	for _, off := range []int64{0, 100, 0, 200} { // unit 1 is the least recently used when unit 2 comes
		if _, err := c.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		off  int64
		want bool
	}{{0, true}, {100, false}, {200, true}} {
		if got := c.Cached(tc.off, 100); got != tc.want {
			t.Errorf("Cached(%d, 100) = %t, want %t", tc.off, got, tc.want)
		}
	}
	if s := c.Stats(); s.Evictions != 1 || s.Loads != 3 || s.Hits != 1 || s.Misses != 3 {
		t.Errorf("Stats = %+v, want 1 eviction, 3 loads, 1 hit, 3 misses", s)
	}
}

func TestCached(t *testing.T) {
	data := content(250, 3)
	c := New(bytes.NewReader(data), 250, 100, 1000)
	if _, err := c.ReadAt(make([]byte, 150), 20); err != nil { // loads units 0 and 1
		t.Fatal(err)
	}
	tests := []struct {
		off, n int64
		want   bool
	}{
		{0, 200, true},
		{150, 50, true},
		{0, 0, true},
		{300, 0, true},
		{0, 201, false},
		{200, 10, false},
		{-1, 10, false},
		{240, 20, false},
		{0, math.MaxInt64, false},
		{math.MaxInt64, 1, false},
	}
	for _, tc := range tests {
		if got := c.Cached(tc.off, tc.n); got != tc.want {
			t.Errorf("Cached(%d, %d) = %t, want %t", tc.off, tc.n, got, tc.want)
		}
	}
	if _, err := c.ReadAt(make([]byte, 1), 249); err != nil {
		t.Fatal(err)
	}
	if !c.Cached(0, 250) {
		t.Errorf("Cached(0, 250) = false after reading every unit")
	}
	if c.Cached(0, 251) {
		t.Errorf("Cached(0, 251) = true: bytes past the end are never cached")
	}
}

func TestInvalidate(t *testing.T) {
	tests := []struct {
		name       string
		off, n     int64
		wantCached []bool // units 0..3 after Invalidate
	}{
		{"one unit", 100, 100, []bool{true, false, true, true}},
		{"one byte", 150, 1, []bool{true, false, true, true}},
		{"across two units", 199, 2, []bool{true, false, false, true}},
		{"empty", 100, 0, []bool{true, true, true, true}},
		{"negative range", -50, 30, []bool{true, true, true, true}},
		{"from before the start", -50, 51, []bool{false, true, true, true}},
		{"past the end", 1000, 10, []bool{true, true, true, true}},
		{"everything", math.MinInt64 / 2, math.MaxInt64, []bool{false, false, false, false}},
		{"to infinity", 250, math.MaxInt64, []bool{true, true, false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := content(400, 4)
			c := New(bytes.NewReader(data), 400, 100, 400)
			checkRead(t, c, bytes.NewReader(data), 0, 400)
			copy(data, content(400, 5))
			c.Invalidate(tc.off, tc.n)
			for i, want := range tc.wantCached {
				if got := c.Cached(int64(i)*100, 100); got != want {
					t.Errorf("unit %d cached = %t, want %t", i, got, want)
				}
			}
			// Dropped units read the new data; their buffers are reused.
			for i, cached := range tc.wantCached {
				if !cached {
					checkRead(t, c, bytes.NewReader(data), int64(i)*100, 100)
				}
			}
			if s := c.Stats(); s.Used != 400 {
				t.Errorf("Used = %d, want 400: buffers of dropped units not reused", s.Used)
			}
		})
	}
}

func TestSingleflight(t *testing.T) {
	const readers = 16
	data := content(400, 6)
	r := newTestReader(data, true)
	c := New(r, 400, 100, 400)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			off := 100 + int64(i)*5
			got := make([]byte, 10)
			if n, err := c.ReadAt(got, off); n != 10 || err != nil || !bytes.Equal(got, data[off:off+10]) {
				t.Errorf("ReadAt(10 bytes at %d) = %d, %v (bytes equal: %t)", off, n, err, bytes.Equal(got, data[off:off+10]))
			}
		})
	}
	receive(t, r.started, 1, "the first load")
	waitFor(t, "every reader to look the unit up", func() bool { return c.Stats().Misses == readers })
	close(r.release)
	waitDone(t, &wg, "the readers")
	if got := r.calls.Load(); got != 1 {
		t.Errorf("%d reads of the underlying reader, want 1", got)
	}
	if s := c.Stats(); s.Loads != 1 || s.LoadedBytes != 100 || s.Misses != readers || s.Hits != 0 {
		t.Errorf("Stats = %+v, want 1 load of 100 bytes, %d misses, no hits", s, readers)
	}
	checkRead(t, c, bytes.NewReader(data), 100, 100)
	if s := c.Stats(); s.Hits != 1 || s.Loads != 1 {
		t.Errorf("after the load: Stats = %+v, want 1 hit, 1 load", s)
	}
}

func TestLoadError(t *testing.T) {
	const readers = 8
	data := content(400, 7)
	r := newTestReader(data, true)
	r.failOff.Store(100)
	c := New(r, 400, 100, 400)
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			n, err := c.ReadAt(make([]byte, 10), 120)
			if n != 0 || !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "at 100") {
				t.Errorf("ReadAt(10 bytes at 120) = %d, %v; want 0 and an error wrapping %v at offset 100", n, err, errBoom)
			}
		})
	}
	receive(t, r.started, 1, "the failing load")
	waitFor(t, "every reader to look the unit up", func() bool { return c.Stats().Misses == readers })
	close(r.release)
	waitDone(t, &wg, "the readers")
	if s := c.Stats(); s.Loads != 1 {
		t.Errorf("Stats = %+v, want 1 load", s)
	}
	if c.Cached(100, 100) {
		t.Errorf("the failed unit is cached")
	}

	// A read spanning the failed unit returns the bytes before it.
	got := make([]byte, 100)
	if n, err := c.ReadAt(got, 50); n != 50 || !errors.Is(err, errBoom) || !bytes.Equal(got[:50], data[50:100]) {
		t.Errorf("ReadAt(100 bytes at 50) = %d, %v; want 50 and %v", n, err, errBoom)
	}

	r.failOff.Store(-1)
	checkRead(t, c, bytes.NewReader(data), 50, 100)
	if !c.Cached(0, 200) {
		t.Errorf("units 0 and 1 not cached after a successful read")
	}
	if s := c.Stats(); s.Used > s.Capacity || s.Used != 200 {
		t.Errorf("Stats = %+v, want 200 bytes used: buffers of failed loads not reused", s)
	}
}

func TestShortReader(t *testing.T) {
	// The content is said to be 300 bytes long but the reader holds 250.
	c := New(bytes.NewReader(content(250, 8)), 300, 100, 300)
	n, err := c.ReadAt(make([]byte, 100), 150)
	if n != 50 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadAt(100 bytes at 150) = %d, %v; want 50, %v", n, err, io.ErrUnexpectedEOF)
	}
}

func TestInvalidateDuringLoad(t *testing.T) {
	old := content(400, 9)
	data := bytes.Clone(old)
	r := newTestReader(data, true)
	c := New(r, 400, 100, 400)

	var wg sync.WaitGroup
	gotA, gotB := make([]byte, 100), make([]byte, 100)
	wg.Go(func() {
		if _, err := c.ReadAt(gotA, 100); err != nil {
			t.Errorf("reader A: %v", err)
		}
	})
	receive(t, r.started, 1, "reader A's load") // it has copied the old data
	copy(data, content(400, 10))
	c.Invalidate(150, 1)
	wg.Go(func() {
		if _, err := c.ReadAt(gotB, 100); err != nil {
			t.Errorf("reader B: %v", err)
		}
	})
	// Reader B must not wait for A's stale load but start its own.
	receive(t, r.started, 1, "reader B's load")
	close(r.release)
	waitDone(t, &wg, "the readers")

	if !bytes.Equal(gotA, old[100:200]) {
		t.Errorf("reader A, which began before the change, did not get the old data")
	}
	if !bytes.Equal(gotB, data[100:200]) {
		t.Errorf("reader B, which began after the change, did not get the new data")
	}
	checkRead(t, c, bytes.NewReader(data), 100, 100)
	if s := c.Stats(); s.Loads != 2 || s.Hits != 1 {
		t.Errorf("Stats = %+v, want 2 loads and 1 hit", s)
	}
}

func TestAllPinned(t *testing.T) {
	const readers = 32
	data := content(readers*100, 11)
	r := newTestReader(data, true)
	c := New(r, int64(len(data)), 100, 0) // two units
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			got := make([]byte, 100)
			off := int64(i) * 100
			if n, err := c.ReadAt(got, off); n != 100 || err != nil || !bytes.Equal(got, data[off:off+100]) {
				t.Errorf("ReadAt(100 bytes at %d) = %d, %v (bytes equal: %t)", off, n, err, bytes.Equal(got, data[off:off+100]))
			}
		})
	}
	// Every reader reaches the underlying reader while two hold the
	// buffers: none waits for room.
	receive(t, r.started, readers, "every reader to read")
	close(r.release)
	waitDone(t, &wg, "the readers")
	if s := c.Stats(); s.Loads != readers || s.Used > s.Capacity || s.Capacity != 200 {
		t.Errorf("Stats = %+v, want %d loads and at most 200 bytes used", s, readers)
	}
}

func TestUsedBounded(t *testing.T) {
	const (
		readers = 8
		unit    = 100
	)
	data := content(64*unit+37, 12)
	c := New(bytes.NewReader(data), int64(len(data)), unit, 8*unit)
	check := func() {
		if s := c.Stats(); s.Used > s.Capacity {
			t.Errorf("Used %d > Capacity %d", s.Used, s.Capacity)
		}
	}
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				check()
			}
		}
	})
	var wg sync.WaitGroup
	for g := range readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			got := make([]byte, 3*unit)
			for k := range 2000 {
				if k%100 == 99 {
					c.Invalidate(rng.Int64N(int64(len(data))), unit)
					continue
				}
				// Half of the reads go to a few hot units.
				off := rng.Int64N(int64(len(data)))
				if rng.IntN(2) == 0 {
					off = rng.Int64N(4 * unit)
				}
				b := got[:rng.IntN(len(got))+1]
				n, err := c.ReadAt(b, off)
				if end := min(off+int64(len(b)), int64(len(data))); n != int(end-off) || !bytes.Equal(b[:n], data[off:end]) {
					t.Errorf("ReadAt(%d bytes at %d) = %d, %v: wrong bytes", len(b), off, n, err)
					return
				}
				check()
			}
		})
	}
	waitDone(t, &wg, "the readers")
	close(stop)
	sampler.Wait()
	if s := c.Stats(); s.Evictions == 0 || s.Hits == 0 {
		t.Errorf("Stats = %+v, want evictions and hits", s)
	}
}

func TestAllocs(t *testing.T) {
	const unit = 16 << 10
	data := content(3*unit, 13)
	tests := []struct {
		name     string
		capacity int64
		offs     []int64 // read in turn, 16 KiB each
		wantHits bool
	}{
		{"hit", 2 * unit, []int64{0, unit}, true},
		{"hit across units", 2 * unit, []int64{unit / 2}, true},
		{"miss with eviction", 2 * unit, []int64{0, unit, 2 * unit}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New(bytes.NewReader(data), int64(len(data)), unit, tc.capacity)
			buf := make([]byte, unit)
			k := 0
			read := func() {
				off := tc.offs[k%len(tc.offs)]
				k++
				if _, err := c.ReadAt(buf, off); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 * len(tc.offs) {
				read() // warm up: fill the cache
			}
			before := c.Stats()
			if n := testing.AllocsPerRun(100, read); n != 0 {
				t.Errorf("ReadAt: %v allocations, want 0", n)
			}
			after := c.Stats()
			if gotHits := after.Misses == before.Misses; gotHits != tc.wantHits {
				t.Errorf("Stats before %+v, after %+v: want only hits = %t", before, after, tc.wantHits)
			}
		})
	}
}

// FuzzReadAt runs a sequence of operations decoded from the input against
// a cache and compares its reads with the content. The input's first four
// bytes choose the content's length, the unit and the capacity; then each
// five bytes are an operation: a read, a change of the content followed by
// Invalidate, or a call of Cached, at an offset that may fall outside the
// content.
func FuzzReadAt(f *testing.F) {
	f.Add([]byte{0x10, 0x01, 15, 3, 0, 0, 0, 40, 0, 1, 50, 0, 10, 0, 0, 0, 0, 200, 0})
	f.Add([]byte{0xff, 0x00, 0, 0, 0, 0xf0, 0xff, 0xff, 0x01, 0, 0, 0, 0x10, 0})
	f.Add([]byte{0x00, 0x02, 63, 1, 2, 0, 0, 0xff, 0xff, 0, 100, 1, 0, 1, 0, 100, 1, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 4 {
			return
		}
		length := int(binary.LittleEndian.Uint16(in)) % 2048
		unit := int(in[2])%64 + 1
		capacity := int64(in[3]) % 16 * int64(unit)
		data := content(length, in[0])
		c := New(bytes.NewReader(data), int64(length), unit, capacity)
		ref := bytes.NewReader(data)
		for ops := in[4:]; len(ops) >= 5; ops = ops[5:] {
			off := int64(int16(binary.LittleEndian.Uint16(ops[1:]))) // may be negative
			n := int64(binary.LittleEndian.Uint16(ops[3:])) % 4096
			switch ops[0] % 3 {
			case 0:
				checkRead(t, c, ref, off, int(n))
			case 1:
				if lo, hi := max(off, 0), min(off+n, int64(length)); lo < hi {
					for i := lo; i < hi; i++ {
						data[i] ^= ops[0] | 1
					}
				}
				c.Invalidate(off, n)
			case 2:
				if c.Cached(off, n) && n > 0 && off+n > int64(length) {
					t.Fatalf("Cached(%d, %d) = true past the end %d", off, n, length)
				}
			}
			if s := c.Stats(); s.Used > s.Capacity || s.Used%int64(unit) != 0 {
				t.Fatalf("Stats = %+v: Used beyond Capacity or not whole units", s)
			}
		}
	})
}

func BenchmarkHit(b *testing.B) {
	const (
		block = 16 << 10
		unit  = 256 << 10
	)
	data := content(16*unit, 14)
	c := New(bytes.NewReader(data), int64(len(data)), unit, 4*unit)
	buf := make([]byte, block)
	if _, err := c.ReadAt(buf, 0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(block)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.ReadAt(buf, int64(i%(unit/block))*block); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkMissLoad(b *testing.B) {
	const (
		block = 16 << 10
		unit  = 256 << 10
	)
	// Three units take turns in a cache of two: every read loads one.
	data := content(3*unit, 15)
	c := New(bytes.NewReader(data), int64(len(data)), unit, 2*unit)
	buf := make([]byte, block)
	b.SetBytes(unit)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.ReadAt(buf, int64(i%3)*unit); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if s := c.Stats(); s.Hits > 3 {
		b.Fatalf("Stats = %+v: reads hit", s)
	}
}

func BenchmarkParallelSamePiece(b *testing.B) {
	const (
		block = 16 << 10
		unit  = 256 << 10
	)
	tests := []struct {
		name  string
		units int // the pieces read, cycling; the cache holds four
	}{
		{"fits", 4},
		{"churn", 6},
	}
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			data := content(16*unit, 16)
			c := New(bytes.NewReader(data), int64(len(data)), unit, 4*unit)
			span := int64(tc.units * unit)
			var seed atomic.Int64
			b.SetBytes(block)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, block)
				off := seed.Add(7*block) % span
				for pb.Next() {
					if _, err := c.ReadAt(buf, off); err != nil {
						b.Error(err)
						return
					}
					off = (off + block) % span
				}
			})
			s := c.Stats()
			b.ReportMetric(float64(s.Loads)/float64(s.Hits+s.Misses), "loads/lookup")
		})
	}
}

func ExampleCache() {
	content := strings.Repeat("0123456789", 10)
	c := New(strings.NewReader(content), int64(len(content)), 16, 64)
	buf := make([]byte, 8)
	for range 3 {
		if _, err := c.ReadAt(buf, 20); err != nil {
			panic(err)
		}
	}
	s := c.Stats()
	fmt.Printf("%s: %d load, %d hits, cached %t\n", buf, s.Loads, s.Hits, c.Cached(16, 16))
	// Output: 01234567: 1 load, 2 hits, cached true
}
