package peer

import (
	"testing"
)

// replay is an io.Reader that returns data over and over.
type replay struct {
	data []byte
	off  int
}

func (r *replay) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

func BenchmarkReadPiece(b *testing.B) {
	var wire []byte
	for i := range 4 { // a stream of blocks of piece 3
		wire = AppendMessage(wire, &Message{Type: Piece, Index: 3, Begin: uint32(i%2) * BlockSize, Payload: fill(BlockSize, byte(i))})
	}
	r := NewReader(&replay{data: wire}, testLimits)
	buf := make([]byte, BlockSize)
	r.Block = func(n int) []byte { return buf }
	var m Message
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := r.ReadMessage(&m); err != nil {
			b.Fatal(err)
		}
		if m.Type != Piece || len(m.Payload) != BlockSize {
			b.Fatalf("read %s", describe(m))
		}
	}
}

func BenchmarkAppendRequest(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = AppendRequest(buf[:0], Request, uint32(i), uint32(i%2)*BlockSize, BlockSize)
	}
	if len(buf) != 17 {
		b.Fatalf("request of %d bytes", len(buf))
	}
}

// TestZeroAllocs checks what the benchmarks measure, in every test run:
// reading a block into the buffer from Block, and appending a request,
// allocate nothing.
func TestZeroAllocs(t *testing.T) {
	wire := AppendMessage(nil, &Message{Type: Piece, Index: 3, Payload: fill(BlockSize, 1)})
	wire = AppendRequest(wire, Cancel, 3, 0, BlockSize)
	wire = AppendHave(wire, Have, 9)
	r := NewReader(&replay{data: wire}, testLimits)
	buf := make([]byte, BlockSize)
	r.Block = func(n int) []byte { return buf }
	var m Message
	if allocs := testing.AllocsPerRun(300, func() {
		if err := r.ReadMessage(&m); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("ReadMessage: %v allocs per message", allocs)
	}
	out := make([]byte, 0, 64)
	if allocs := testing.AllocsPerRun(100, func() {
		out = AppendRequest(out[:0], Request, 1, 2, 3)
	}); allocs != 0 {
		t.Errorf("AppendRequest: %v allocs", allocs)
	}
}
