package peer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

// header returns a length prefix of n and the type byte t.
func header(n uint32, t Type) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), byte(t))
}

// withPayload returns a length prefix and type byte followed by payload,
// the prefix counting the type byte and the payload.
func withPayload(t Type, payload []byte) []byte {
	return append(header(uint32(1+len(payload)), t), payload...)
}

// TestGarbage feeds malformed messages, each followed by a valid one the
// reader must not get to, and checks the error wraps ErrBadMessage.
func TestGarbage(t *testing.T) {
	block := fill(BlockSize, 1)
	const hundredMiB = 100 << 20
	tests := []struct {
		name   string
		in     []byte
		limits Limits
	}{
		{"request of 0 bytes", AppendRequest(nil, Request, 0, 0, 0), testLimits},
		{"request of 0 bytes, no limits", AppendRequest(nil, Request, 0, 0, 0), Limits{}},
		{"request of 16 KiB + 1", AppendRequest(nil, Request, 0, 0, BlockSize+1), testLimits},
		{"request of 16 KiB + 1, no limits", AppendRequest(nil, Request, 0, 0, BlockSize+1), Limits{}},
		{"request of 4 GiB - 1", AppendRequest(nil, Request, 0, 0, 0xFFFFFFFF), Limits{}},
		{"cancel of 0 bytes", AppendRequest(nil, Cancel, 0, 0, 0), testLimits},
		{"reject of 16 KiB + 1", AppendRequest(nil, Reject, 0, 0, BlockSize+1), testLimits},
		{"request index = NumPieces", AppendRequest(nil, Request, 10, 0, BlockSize), testLimits},
		{"request index max", AppendRequest(nil, Request, 0xFFFFFFFF, 0, BlockSize), testLimits},
		{"cancel index = NumPieces", AppendRequest(nil, Cancel, 10, 0, BlockSize), testLimits},
		{"reject index = NumPieces", AppendRequest(nil, Reject, 10, 0, BlockSize), testLimits},
		{"have index = NumPieces", AppendHave(nil, Have, 10), testLimits},
		{"have index max", AppendHave(nil, Have, 0xFFFFFFFF), testLimits},
		{"suggest index = NumPieces", AppendHave(nil, Suggest, 10), testLimits},
		{"allowed fast index = NumPieces", AppendHave(nil, AllowedFast, 10), testLimits},
		{"request beyond a piece", AppendRequest(nil, Request, 0, 32768-BlockSize+1, BlockSize), testLimits},
		{"request after a piece", AppendRequest(nil, Request, 0, 32768, 1), testLimits},
		{"request beyond the last piece", AppendRequest(nil, Request, 9, 16384, BlockSize), testLimits},
		{"request after the last piece", AppendRequest(nil, Request, 9, lastPieceSize, 1), testLimits},
		{"request at begin max", AppendRequest(nil, Request, 0, 0xFFFFFFFF, BlockSize), testLimits},
		{"cancel beyond the last piece", AppendRequest(nil, Cancel, 9, lastPieceSize-1, 2), testLimits},
		{"reject beyond the last piece", AppendRequest(nil, Reject, 9, 16384, BlockSize), testLimits},
		{"piece index = NumPieces", AppendMessage(nil, &Message{Type: Piece, Index: 10, Payload: block}), testLimits},
		{"piece block beyond a piece", AppendMessage(nil, &Message{Type: Piece, Index: 0, Begin: 32768 - BlockSize + 1, Payload: block}), testLimits},
		{"piece block beyond the last piece", AppendMessage(nil, &Message{Type: Piece, Index: 9, Begin: 16384, Payload: block}), testLimits},
		{"piece empty block after the last piece", AppendMessage(nil, &Message{Type: Piece, Index: 9, Begin: lastPieceSize + 1}), testLimits},
		{"piece block at begin max", AppendMessage(nil, &Message{Type: Piece, Index: 0, Begin: 0xFFFFFFFF, Payload: block[:16]}), testLimits},
		{"piece of 16 KiB + 1", AppendMessage(nil, &Message{Type: Piece, Index: 0, Payload: fill(BlockSize+1, 2)}), testLimits},
		{"piece of 16 KiB + 1, no limits", AppendMessage(nil, &Message{Type: Piece, Index: 0, Payload: fill(BlockSize+1, 2)}), Limits{}},
		{"piece without begin", withPayload(Piece, []byte{0, 0, 0, 0, 0, 0, 0}), Limits{}},
		{"piece without index", withPayload(Piece, nil), Limits{}},
		{"bitfield empty", withPayload(Bitfield, nil), testLimits},
		{"bitfield too short", withPayload(Bitfield, []byte{0xFF}), testLimits},
		{"bitfield too long", withPayload(Bitfield, []byte{0xFF, 0xC0, 0}), testLimits},
		{"bitfield far too long", withPayload(Bitfield, make([]byte, 1000)), testLimits},
		{"bitfield spare bit set", withPayload(Bitfield, []byte{0xFF, 0xC1}), testLimits},
		{"bitfield first spare bit set", withPayload(Bitfield, []byte{0x00, 0x20}), testLimits},
		{"bitfield too long, no limits", withPayload(Bitfield, make([]byte, MaxBitfieldLen+1)), Limits{}},
		{"choke of length 2", withPayload(Choke, []byte{0}), testLimits},
		{"unchoke of length 2", withPayload(Unchoke, []byte{0}), testLimits},
		{"interested of length 2", withPayload(Interested, []byte{0}), testLimits},
		{"not interested of length 2", withPayload(NotInterested, []byte{0}), testLimits},
		{"have all of length 2", withPayload(HaveAll, []byte{0}), testLimits},
		{"have none of length 2", withPayload(HaveNone, []byte{0}), testLimits},
		{"have of length 4", withPayload(Have, []byte{0, 0, 0}), testLimits},
		{"have of length 6", withPayload(Have, []byte{0, 0, 0, 1, 0}), testLimits},
		{"have of length 1", withPayload(Have, nil), testLimits},
		{"suggest of length 4", withPayload(Suggest, []byte{0, 0, 0}), testLimits},
		{"allowed fast of length 6", withPayload(AllowedFast, []byte{0, 0, 0, 1, 0}), testLimits},
		{"request of length 12", withPayload(Request, make([]byte, 11)), testLimits},
		{"request of length 14", withPayload(Request, append(AppendRequest(nil, Request, 0, 0, 1)[5:], 0)), testLimits},
		{"cancel of length 12", withPayload(Cancel, make([]byte, 11)), testLimits},
		{"reject of length 14", withPayload(Reject, make([]byte, 13)), testLimits},
		{"port of length 2", withPayload(Port, []byte{0x1A}), testLimits},
		{"port of length 4", withPayload(Port, []byte{0x1A, 0xE1, 0}), testLimits},
		{"extended without id", withPayload(Extended, nil), testLimits},
		{"extended of MaxExtendedLen + 1", AppendMessage(nil, &Message{Type: Extended, ExtendedID: 1, Payload: fill(MaxExtendedLen+1, 3)}), testLimits},
		{"unknown type of MaxExtendedLen + 1", withPayload(0x42, fill(MaxExtendedLen+1, 4)), testLimits},
		{"100 MiB piece", header(hundredMiB, Piece), testLimits},
		{"100 MiB bitfield", header(hundredMiB, Bitfield), testLimits},
		{"100 MiB bitfield, no limits", header(hundredMiB, Bitfield), Limits{}},
		{"100 MiB extended", header(hundredMiB, Extended), Limits{}},
		{"100 MiB unknown type", header(hundredMiB, 0x42), Limits{}},
		{"100 MiB choke", header(hundredMiB, Choke), Limits{}},
		{"4 GiB - 1 piece", header(0xFFFFFFFF, Piece), Limits{}},
		{"4 GiB - 1 keep-alive type", header(0xFFFFFFFF, KeepAlive), Limits{}},
	}
	next := AppendHave(nil, Have, 1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("panic: %v", p)
				}
			}()
			for _, oneByte := range []bool{false, true} {
				var src io.Reader = bytes.NewReader(append(bytes.Clone(tc.in), next...))
				if oneByte {
					src = iotest.OneByteReader(src)
				}
				r := NewReader(src, tc.limits)
				r.Block = func(n int) []byte {
					if n > BlockSize {
						t.Fatalf("Block(%d)", n)
					}
					return make([]byte, n)
				}
				var m Message
				err := r.ReadMessage(&m)
				if !errors.Is(err, ErrBadMessage) {
					t.Fatalf("ReadMessage = %v (%s), want ErrBadMessage", err, describe(m))
				}
			}
		})
	}
}

// TestHugeLengthAllocs checks that a message claiming 100 MiB is refused
// without allocating anything near its size.
func TestHugeLengthAllocs(t *testing.T) {
	for _, typ := range []Type{Piece, Bitfield, Extended, 0x42, Choke} {
		for _, limits := range []Limits{testLimits, {}} {
			data := header(100<<20, typ)
			src := bytes.NewReader(data)
			br := bufio.NewReaderSize(src, 64<<10)
			r := NewReader(br, limits) // uses br: nothing allocated per run for buffering
			var m Message
			run := func() {
				src.Reset(data)
				br.Reset(src)
				if err := r.ReadMessage(&m); !errors.Is(err, ErrBadMessage) {
					t.Fatalf("%v, limits %+v: %v, want ErrBadMessage", typ, limits, err)
				}
			}
			const runs = 100
			allocs := testing.AllocsPerRun(runs, run)

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				run()
			}
			runtime.ReadMemStats(&after)
			perRun := (after.TotalAlloc - before.TotalAlloc) / runs
			t.Logf("%v, limits %+v: %.0f allocs, %d bytes per message", typ, limits, allocs, perRun)
			if allocs > 10 || perRun > 4<<10 || after.TotalAlloc-before.TotalAlloc > 1<<20 {
				t.Errorf("%v, limits %+v: %.0f allocs, %d bytes per refused message", typ, limits, allocs, perRun)
			}
		}
	}
}

// validStream is one of every kind of message, valid under testLimits.
func validStream() ([]byte, []Message, []int) {
	ms := []Message{
		{Type: Bitfield, Payload: []byte{0xFF, 0x40}},
		{Type: KeepAlive},
		{Type: Unchoke},
		{Type: Have, Index: 9},
		{Type: Request, Index: 2, Begin: 0, Length: BlockSize},
		{Type: Piece, Index: 9, Begin: 16384, Length: 300, Payload: fill(300, 7)},
		{Type: Extended, ExtendedID: 1, Payload: []byte("d1:pi6881ee")},
		{Type: Port, Port: 6881},
		{Type: 0x42, Payload: []byte("?")},
		{Type: Reject, Index: 9, Begin: 0, Length: 1},
		{Type: AllowedFast, Index: 3},
		{Type: HaveNone},
		{Type: KeepAlive},
	}
	var wire []byte
	var ends []int
	for i := range ms {
		wire = AppendMessage(wire, &ms[i])
		ends = append(ends, len(wire))
	}
	return wire, ms, ends
}

// TestTruncated cuts a valid stream at every byte: the messages before the
// cut are read, then io.EOF if the cut falls between messages and
// io.ErrUnexpectedEOF if it falls inside one.
func TestTruncated(t *testing.T) {
	wire, ms, ends := validStream()
	for cut := 0; cut <= len(wire); cut++ {
		complete := 0
		for complete < len(ends) && ends[complete] <= cut {
			complete++
		}
		want := io.ErrUnexpectedEOF
		if cut == 0 || cut == ends[max(complete-1, 0)] {
			want = io.EOF
		}
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = bytes.NewReader(wire[:cut])
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			r := NewReader(src, testLimits)
			r.Block = func(n int) []byte { return make([]byte, n) }
			got, err := readAll(t, r, cut)
			if err != want {
				t.Fatalf("cut at %d of %d (one byte %v): %v after %d messages, want %v", cut, len(wire), oneByte, err, len(got), want)
			}
			if len(got) != complete {
				t.Fatalf("cut at %d: %d messages, want %d", cut, len(got), complete)
			}
			for i := range got {
				if !sameMessage(&got[i], &ms[i]) {
					t.Fatalf("cut at %d: message %d\n got %s\nwant %s", cut, i, describe(got[i]), describe(ms[i]))
				}
			}
			// Reading again after the end still gives an error, at once.
			var m Message
			if err := r.ReadMessage(&m); err == nil {
				t.Fatalf("cut at %d: read %s after %v", cut, describe(m), want)
			}
		}
	}
}

// TestReadError checks that an error of the connection other than io.EOF
// comes back as it is, wherever it happens.
func TestReadError(t *testing.T) {
	wire, _, _ := validStream()
	errConn := errors.New("connection reset")
	for cut := 0; cut <= len(wire); cut++ {
		r := NewReader(io.MultiReader(bytes.NewReader(wire[:cut]), iotest.ErrReader(errConn)), testLimits)
		if _, err := readAll(t, r, cut); err != errConn {
			t.Fatalf("cut at %d: %v, want %v", cut, err, errConn)
		}
	}
}

// TestUnknownType checks that messages of types this package does not know
// are returned, and that the stream stays in step after them.
func TestUnknownType(t *testing.T) {
	var wire []byte
	wire = append(wire, withPayload(0x42, []byte("hello"))...)
	wire = AppendHave(wire, Have, 3)
	wire = append(wire, withPayload(21, nil)...)
	wire = append(wire, withPayload(0x12, fill(MaxExtendedLen, 9))...)
	wire = append(wire, withPayload(0xFE, []byte{1})...)
	wire = AppendRequest(wire, Cancel, 1, 2, 3)
	want := []Message{
		{Type: 0x42, Payload: []byte("hello")},
		{Type: Have, Index: 3},
		{Type: 21},
		{Type: 0x12, Payload: fill(MaxExtendedLen, 9)},
		{Type: 0xFE, Payload: []byte{1}},
		{Type: Cancel, Index: 1, Begin: 2, Length: 3},
	}
	got, err := readAll(t, NewReader(bytes.NewReader(wire), testLimits), len(wire))
	if err != io.EOF {
		t.Fatalf("after %d messages: %v", len(got), err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameMessage(&got[i], &want[i]) {
			t.Errorf("message %d\n got %s\nwant %s", i, describe(got[i]), describe(want[i]))
		}
	}
}

// TestTypeFFOnTheWire checks a message of type 0xFF, the value KeepAlive
// stands for: no BEP defines it, so it is skipped like an unknown type and
// comes back as a keep-alive, with nothing of its payload, and the stream
// stays in step.
func TestTypeFFOnTheWire(t *testing.T) {
	var wire []byte
	wire = append(wire, withPayload(KeepAlive, []byte("payload"))...)
	wire = AppendHave(wire, Have, 4)
	wire = append(wire, withPayload(KeepAlive, nil)...)
	got, err := readAll(t, NewReader(bytes.NewReader(wire), testLimits), len(wire))
	want := []Message{{Type: KeepAlive}, {Type: Have, Index: 4}, {Type: KeepAlive}}
	if err != io.EOF || len(got) != len(want) {
		t.Fatalf("%d messages, %v", len(got), err)
	}
	for i := range want {
		if !sameMessage(&got[i], &want[i]) {
			t.Errorf("message %d\n got %s\nwant %s", i, describe(got[i]), describe(want[i]))
		}
	}
	// Re-encoded, each is read back the same.
	for i := range got {
		var m Message
		if err := NewReader(bytes.NewReader(AppendMessage(nil, &got[i])), testLimits).ReadMessage(&m); err != nil || !sameMessage(&m, &got[i]) {
			t.Errorf("message %d re-read as %s, %v", i, describe(m), err)
		}
	}
}

// TestZeroLimits checks what is accepted before the metadata is known: any
// piece index and offset, and a bitfield of any length up to MaxBitfieldLen
// with any bits set.
func TestZeroLimits(t *testing.T) {
	bits := fill(MaxBitfieldLen, 0xFF)
	bits[len(bits)-1] = 0xFF
	ms := []Message{
		{Type: Have, Index: 0xFFFFFFFF},
		{Type: Suggest, Index: 1 << 30},
		{Type: AllowedFast, Index: 12345678},
		{Type: Request, Index: 0xFFFFFFFF, Begin: 0xFFFFFFFF, Length: BlockSize},
		{Type: Cancel, Index: 1000, Begin: 1 << 30, Length: 1},
		{Type: Reject, Index: 1000, Begin: 1 << 30, Length: 1},
		{Type: Piece, Index: 0xFFFFFFFF, Begin: 0xFFFFFFFF, Length: BlockSize, Payload: fill(BlockSize, 8)},
		{Type: Bitfield},
		{Type: Bitfield, Payload: []byte{0x01}},
		{Type: Bitfield, Payload: bits},
	}
	var wire []byte
	for i := range ms {
		wire = AppendMessage(wire, &ms[i])
	}
	r := NewReader(bytes.NewReader(wire), Limits{})
	got, err := readAll(t, r, len(wire))
	if err != io.EOF || len(got) != len(ms) {
		t.Fatalf("%d messages, %v", len(got), err)
	}
	for i := range ms {
		if !sameMessage(&got[i], &ms[i]) {
			t.Errorf("message %d\n got %s\nwant %s", i, describe(got[i]), describe(ms[i]))
		}
	}

	// Once the limits are set, the same reader checks against them.
	wire = AppendHave(AppendHave(nil, Have, 9), Have, 10)
	r = NewReader(bytes.NewReader(wire), Limits{})
	var m Message
	if err := r.ReadMessage(&m); err != nil {
		t.Fatal(err)
	}
	r.SetLimits(testLimits)
	if err := r.ReadMessage(&m); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("have 10 of 10 pieces after SetLimits: %v", err)
	}
}

// TestBitfieldSizes checks the bitfield length and spare bits for piece
// counts around byte boundaries.
func TestBitfieldSizes(t *testing.T) {
	for np := 1; np <= 17; np++ {
		limits := Limits{NumPieces: np, PieceLength: 1 << 14, Length: int64(np) << 14}
		n := (np + 7) / 8
		read := func(payload []byte) error {
			var m Message
			return NewReader(bytes.NewReader(withPayload(Bitfield, payload)), limits).ReadMessage(&m)
		}
		full := make([]byte, n)
		for i := range np {
			full[i/8] |= 0x80 >> (i % 8)
		}
		if err := read(full); err != nil {
			t.Errorf("%d pieces, all set (%x): %v", np, full, err)
		}
		if err := read(make([]byte, n)); err != nil {
			t.Errorf("%d pieces, none set: %v", np, err)
		}
		for _, size := range []int{n - 1, n + 1} {
			if err := read(make([]byte, size)); !errors.Is(err, ErrBadMessage) {
				t.Errorf("%d pieces, %d bytes: %v", np, size, err)
			}
		}
		for spare := np; spare < n*8; spare++ {
			b := bytes.Clone(full)
			b[spare/8] |= 0x80 >> (spare % 8)
			if err := read(b); !errors.Is(err, ErrBadMessage) {
				t.Errorf("%d pieces, spare bit %d set (%x): %v", np, spare, b, err)
			}
		}
	}
}
