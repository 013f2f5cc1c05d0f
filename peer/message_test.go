package peer

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// testLimits is a torrent of ten pieces of 32 KiB whose last piece is 100
// bytes short: 32668 bytes.
var testLimits = Limits{NumPieces: 10, PieceLength: 32768, Length: 10*32768 - 100}

const lastPieceSize = 32768 - 100

// fill returns n bytes of a pattern that changes with seed.
func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// sameMessage reports whether a and b are equal, a nil and an empty
// payload being the same.
func sameMessage(a, b *Message) bool {
	return a.Type == b.Type && a.Index == b.Index && a.Begin == b.Begin &&
		a.Length == b.Length && a.Port == b.Port && a.ExtendedID == b.ExtendedID &&
		bytes.Equal(a.Payload, b.Payload)
}

// describe formats m for failure messages, its payload cut short.
func describe(m Message) string {
	p := m.Payload
	more := ""
	if len(p) > 16 {
		p, more = p[:16], fmt.Sprintf("...(%d bytes)", len(m.Payload))
	}
	return fmt.Sprintf("{%v index=%d begin=%d length=%d port=%d ext=%d payload=%x%s}",
		m.Type, m.Index, m.Begin, m.Length, m.Port, m.ExtendedID, p, more)
}

// readAll reads messages from r until an error, copying each payload, and
// returns them with that error. It gives up, rather than loop for ever,
// once it has read more messages than data could hold.
func readAll(t *testing.T, r *Reader, size int) ([]Message, error) {
	t.Helper()
	var ms []Message
	for {
		var m Message
		if err := r.ReadMessage(&m); err != nil {
			return ms, err
		}
		m.Payload = bytes.Clone(m.Payload)
		ms = append(ms, m)
		if len(ms) > size/4 {
			t.Fatalf("read %d messages from %d bytes", len(ms), size)
		}
	}
}

// roundTripMessages holds a message of every type, valid under testLimits.
// Length is set for Piece messages as ReadMessage sets it.
var roundTripMessages = []struct {
	name string
	m    Message
}{
	{"keep-alive", Message{Type: KeepAlive}},
	{"choke", Message{Type: Choke}},
	{"unchoke", Message{Type: Unchoke}},
	{"interested", Message{Type: Interested}},
	{"not interested", Message{Type: NotInterested}},
	{"have first", Message{Type: Have, Index: 0}},
	{"have last", Message{Type: Have, Index: 9}},
	{"bitfield all", Message{Type: Bitfield, Payload: []byte{0xFF, 0xC0}}},
	{"bitfield some", Message{Type: Bitfield, Payload: []byte{0xA5, 0x40}}},
	{"bitfield none", Message{Type: Bitfield, Payload: []byte{0, 0}}},
	{"request", Message{Type: Request, Index: 3, Begin: 16384, Length: BlockSize}},
	{"request end of last piece", Message{Type: Request, Index: 9, Begin: 16384, Length: lastPieceSize - 16384}},
	{"request last byte", Message{Type: Request, Index: 9, Begin: lastPieceSize - 1, Length: 1}},
	{"piece", Message{Type: Piece, Index: 2, Begin: 16384, Length: BlockSize, Payload: fill(BlockSize, 1)}},
	{"piece end of last piece", Message{Type: Piece, Index: 9, Begin: 16384, Length: lastPieceSize - 16384, Payload: fill(lastPieceSize-16384, 2)}},
	{"piece empty block", Message{Type: Piece, Index: 4, Begin: 100}},
	{"cancel", Message{Type: Cancel, Index: 1, Begin: 0, Length: BlockSize}},
	{"port", Message{Type: Port, Port: 6881}},
	{"port max", Message{Type: Port, Port: 0xFFFF}},
	{"suggest", Message{Type: Suggest, Index: 7}},
	{"have all", Message{Type: HaveAll}},
	{"have none", Message{Type: HaveNone}},
	{"reject", Message{Type: Reject, Index: 9, Begin: 0, Length: 100}},
	{"allowed fast", Message{Type: AllowedFast, Index: 5}},
	{"extended handshake", Message{Type: Extended, ExtendedID: 0, Payload: []byte("d1:md11:ut_metadatai1eee")}},
	{"extended empty", Message{Type: Extended, ExtendedID: 3}},
	{"extended largest", Message{Type: Extended, ExtendedID: 255, Payload: fill(MaxExtendedLen, 3)}},
	{"unknown type", Message{Type: 0x42, Payload: []byte("hello")}},
	{"unknown type empty", Message{Type: 21}},
	{"unknown type largest", Message{Type: 0xFE, Payload: fill(MaxExtendedLen, 4)}},
}

func TestRoundTrip(t *testing.T) {
	covered := map[Type]bool{}
	for _, tc := range roundTripMessages {
		covered[tc.m.Type] = true
		t.Run(tc.name, func(t *testing.T) {
			for _, limits := range []Limits{testLimits, {}} {
				wire := AppendMessage(nil, &tc.m)
				r := NewReader(bytes.NewReader(wire), limits)
				var got Message
				if err := r.ReadMessage(&got); err != nil {
					t.Fatalf("limits %+v: ReadMessage(%x): %v", limits, wire, err)
				}
				if !sameMessage(&got, &tc.m) {
					t.Fatalf("limits %+v: round trip of %x\n got %s\nwant %s", limits, wire, describe(got), describe(tc.m))
				}
				if err := r.ReadMessage(&got); err != io.EOF {
					t.Fatalf("limits %+v: after the message: %v, want io.EOF", limits, err)
				}
			}
		})
	}
	for typ := range typeNames {
		if !covered[typ] {
			t.Errorf("no round trip of %v", typ)
		}
	}
}

// TestRoundTripStream reads every message from one stream, through a
// reader that returns a byte at a time, and with a Message reused across
// calls, so nothing of one message leaks into the next.
func TestRoundTripStream(t *testing.T) {
	var wire []byte
	for _, tc := range roundTripMessages {
		wire = AppendMessage(wire, &tc.m)
	}
	for _, name := range []string{"bytes", "one byte"} {
		t.Run(name, func(t *testing.T) {
			var src io.Reader = bytes.NewReader(wire)
			if name == "one byte" {
				src = iotest.OneByteReader(src)
			}
			r := NewReader(src, testLimits)
			var m Message
			for i, tc := range roundTripMessages {
				if err := r.ReadMessage(&m); err != nil {
					t.Fatalf("message %d (%s): %v", i, tc.name, err)
				}
				if !sameMessage(&m, &tc.m) {
					t.Fatalf("message %d (%s):\n got %s\nwant %s", i, tc.name, describe(m), describe(tc.m))
				}
			}
			if err := r.ReadMessage(&m); err != io.EOF {
				t.Fatalf("at the end: %v, want io.EOF", err)
			}
		})
	}
}

// TestWireForm checks the encoding against hand-written bytes (BEP 3,
// BEP 5, BEP 6, BEP 10), and decodes the bytes back.
func TestWireForm(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		hex  string // spaces for reading only
	}{
		{"keep-alive", Message{Type: KeepAlive}, "00000000"},
		{"choke", Message{Type: Choke}, "00000001 00"},
		{"unchoke", Message{Type: Unchoke}, "00000001 01"},
		{"interested", Message{Type: Interested}, "00000001 02"},
		{"not interested", Message{Type: NotInterested}, "00000001 03"},
		{"have 5", Message{Type: Have, Index: 5}, "00000005 04 00000005"},
		{"bitfield", Message{Type: Bitfield, Payload: []byte{0xFF, 0xC0}}, "00000003 05 ffc0"},
		{"request", Message{Type: Request, Index: 1, Begin: 0x4000, Length: 0x4000}, "0000000d 06 00000001 00004000 00004000"},
		{"piece", Message{Type: Piece, Index: 1, Begin: 0x4000, Length: 3, Payload: []byte("abc")}, "0000000c 07 00000001 00004000 616263"},
		{"cancel", Message{Type: Cancel, Index: 8, Begin: 0, Length: 0x10}, "0000000d 08 00000008 00000000 00000010"},
		{"port 6881", Message{Type: Port, Port: 6881}, "00000003 09 1ae1"},
		{"suggest", Message{Type: Suggest, Index: 2}, "00000005 0d 00000002"},
		{"have all", Message{Type: HaveAll}, "00000001 0e"},
		{"have none", Message{Type: HaveNone}, "00000001 0f"},
		{"reject", Message{Type: Reject, Index: 9, Begin: 0x100, Length: 0x200}, "0000000d 10 00000009 00000100 00000200"},
		{"allowed fast", Message{Type: AllowedFast, Index: 6}, "00000005 11 00000006"},
		{"extended", Message{Type: Extended, ExtendedID: 0, Payload: []byte("de")}, "00000004 14 00 6465"},
		{"extended id 2", Message{Type: Extended, ExtendedID: 2, Payload: []byte("x")}, "00000003 14 02 78"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := hex.DecodeString(strings.ReplaceAll(tc.hex, " ", ""))
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendMessage(nil, &tc.m); !bytes.Equal(got, want) {
				t.Fatalf("AppendMessage = %x, want %x", got, want)
			}
			// Appending keeps what b holds.
			if got := AppendMessage([]byte("xy"), &tc.m); !bytes.Equal(got, append([]byte("xy"), want...)) {
				t.Fatalf("AppendMessage after 2 bytes = %x", got)
			}
			var got Message
			if err := NewReader(bytes.NewReader(want), testLimits).ReadMessage(&got); err != nil {
				t.Fatalf("ReadMessage(%x): %v", want, err)
			}
			if !sameMessage(&got, &tc.m) {
				t.Fatalf("ReadMessage(%x)\n got %s\nwant %s", want, describe(got), describe(tc.m))
			}
		})
	}
}

func TestAppendHelpers(t *testing.T) {
	if got, want := AppendHave(nil, Have, 5), AppendMessage(nil, &Message{Type: Have, Index: 5}); !bytes.Equal(got, want) {
		t.Errorf("AppendHave = %x, want %x", got, want)
	}
	if got, want := AppendRequest(nil, Reject, 1, 2, 3), AppendMessage(nil, &Message{Type: Reject, Index: 1, Begin: 2, Length: 3}); !bytes.Equal(got, want) {
		t.Errorf("AppendRequest = %x, want %x", got, want)
	}
	// A piece header followed by its block is the whole message.
	block := fill(100, 9)
	got := append(AppendPieceHeader(nil, 4, 200, len(block)), block...)
	if want := AppendMessage(nil, &Message{Type: Piece, Index: 4, Begin: 200, Payload: block}); !bytes.Equal(got, want) {
		t.Errorf("AppendPieceHeader + block = %x, want %x", got, want)
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{Choke: "choke", AllowedFast: "allowed fast", KeepAlive: "keep-alive", 0x42: "type 66"} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

// TestBlock checks that piece blocks are read into the buffer Block
// returns, and that Block is asked for nothing else.
func TestBlock(t *testing.T) {
	block := fill(BlockSize, 5)
	short := fill(lastPieceSize-16384, 6)
	var wire []byte
	wire = AppendMessage(wire, &Message{Type: Extended, ExtendedID: 1, Payload: []byte("d1:ai1ee")})
	wire = AppendMessage(wire, &Message{Type: Piece, Index: 0, Begin: 0, Payload: block})
	wire = AppendMessage(wire, &Message{Type: Bitfield, Payload: []byte{0x80, 0x00}})
	wire = AppendMessage(wire, &Message{Type: Piece, Index: 9, Begin: 16384, Payload: short})
	wire = AppendMessage(wire, &Message{Type: Have, Index: 1})

	r := NewReader(bytes.NewReader(wire), testLimits)
	pool := make([]byte, 2*BlockSize) // each call gets the next BlockSize bytes
	var asked []int
	r.Block = func(n int) []byte {
		asked = append(asked, n)
		i := (len(asked) - 1) % 2
		return pool[i*BlockSize : (i+1)*BlockSize] // longer than n
	}
	var m Message
	check := func(want Type) {
		t.Helper()
		if err := r.ReadMessage(&m); err != nil {
			t.Fatal(err)
		}
		if m.Type != want {
			t.Fatalf("got %v, want %v", m.Type, want)
		}
	}
	check(Extended)
	check(Piece)
	if !bytes.Equal(m.Payload, block) || &m.Payload[0] != &pool[0] || len(m.Payload) != BlockSize {
		t.Fatalf("first block not read into the first buffer")
	}
	check(Bitfield)
	check(Piece)
	if !bytes.Equal(m.Payload, short) || &m.Payload[0] != &pool[BlockSize] || len(m.Payload) != len(short) {
		t.Fatalf("second block not read into the second buffer (len %d)", len(m.Payload))
	}
	// The first block is the caller's: the later reads did not touch it.
	if !bytes.Equal(pool[:BlockSize], block) {
		t.Fatalf("first block overwritten")
	}
	check(Have)
	if want := []int{BlockSize, len(short)}; fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Fatalf("Block asked for %v, want %v", asked, want)
	}

	// A block outside its piece is refused before Block is asked.
	asked = nil
	bad := AppendMessage(nil, &Message{Type: Piece, Index: 9, Begin: 32768 - BlockSize, Payload: block})
	r = NewReader(bytes.NewReader(bad), testLimits)
	r.Block = func(n int) []byte { asked = append(asked, n); return make([]byte, n) }
	if err := r.ReadMessage(&m); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("block beyond the last piece: %v, want ErrBadMessage", err)
	}
	if asked != nil {
		t.Fatalf("Block asked for %v for a refused block", asked)
	}
}

// TestNewReaderBufio checks that a large enough bufio.Reader is used as is,
// so bytes it has buffered are not lost.
func TestNewReaderBufio(t *testing.T) {
	wire := AppendHave(AppendHave(nil, Have, 1), Have, 2)
	br := bufio.NewReaderSize(bytes.NewReader(wire), 64<<10)
	if _, err := br.Peek(1); err != nil { // buffer the whole stream
		t.Fatal(err)
	}
	ms, err := readAll(t, NewReader(br, testLimits), len(wire))
	if err != io.EOF || len(ms) != 2 || ms[0].Index != 1 || ms[1].Index != 2 {
		t.Fatalf("got %v, %v", ms, err)
	}
}

func testHandshake() Handshake {
	h := Handshake{}
	copy(h.InfoHash[:], "0123456789abcdefghij")
	copy(h.PeerID[:], "-AI0001-abcdefghijkl")
	h.Reserved.SetExtended()
	h.Reserved.SetFast()
	h.Reserved.SetDHT()
	return h
}

func TestHandshakeRoundTrip(t *testing.T) {
	h := testHandshake()
	wire := AppendHandshake(nil, &h)
	want := "\x13BitTorrent protocol" + "\x00\x00\x00\x00\x00\x10\x00\x05" +
		"0123456789abcdefghij" + "-AI0001-abcdefghijkl"
	if string(wire) != want {
		t.Fatalf("AppendHandshake = %q, want %q", wire, want)
	}
	if len(wire) != HandshakeLen || HandshakeLen != 68 {
		t.Fatalf("handshake of %d bytes, HandshakeLen %d, want 68", len(wire), HandshakeLen)
	}

	var buf bytes.Buffer
	if err := WriteHandshake(&buf, &h); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want {
		t.Fatalf("WriteHandshake wrote %q", buf.Bytes())
	}
	got, err := ReadHandshake(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Fatalf("ReadHandshake = %+v, want %+v", got, h)
	}

	// In two steps, with a message after it that stays unread.
	src := bytes.NewReader(append([]byte(want), AppendHave(nil, Have, 3)...))
	res, hash, err := ReadHandshakeStart(src)
	if err != nil || res != h.Reserved || hash != h.InfoHash {
		t.Fatalf("ReadHandshakeStart = %x, %q, %v", res, hash, err)
	}
	if src.Len() != 20+9 {
		t.Fatalf("ReadHandshakeStart left %d bytes, want %d", src.Len(), 20+9)
	}
	id, err := ReadPeerID(src)
	if err != nil || id != h.PeerID {
		t.Fatalf("ReadPeerID = %q, %v", id, err)
	}
	if src.Len() != 9 {
		t.Fatalf("ReadPeerID left %d bytes, want 9", src.Len())
	}
}

func TestReservedBits(t *testing.T) {
	tests := []struct {
		name                string
		set                 func(*Reserved)
		wire                Reserved
		extended, fast, dht bool
	}{
		{"none", func(*Reserved) {}, Reserved{}, false, false, false},
		{"extended", (*Reserved).SetExtended, Reserved{5: 0x10}, true, false, false},
		{"fast", (*Reserved).SetFast, Reserved{7: 0x04}, false, true, false},
		{"dht", (*Reserved).SetDHT, Reserved{7: 0x01}, false, false, true},
		{"all", func(r *Reserved) { r.SetDHT(); r.SetFast(); r.SetExtended(); r.SetFast() }, Reserved{5: 0x10, 7: 0x05}, true, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Reserved
			tc.set(&r)
			if r != tc.wire {
				t.Fatalf("set bits give %x, want %x", r, tc.wire)
			}
			if r.Extended() != tc.extended || r.Fast() != tc.fast || r.DHT() != tc.dht {
				t.Fatalf("%x: Extended %v Fast %v DHT %v", r, r.Extended(), r.Fast(), r.DHT())
			}
			h := Handshake{Reserved: r}
			got, err := ReadHandshake(bytes.NewReader(AppendHandshake(nil, &h)))
			if err != nil || got.Reserved != r {
				t.Fatalf("read back %x, %v", got.Reserved, err)
			}
		})
	}
	// Only the named bits count: every other bit set reports nothing.
	var others Reserved
	for i := range others {
		others[i] = 0xFF
	}
	others[5] &^= 0x10
	others[7] &^= 0x05
	if others.Extended() || others.Fast() || others.DHT() {
		t.Fatalf("%x reports an extension", others)
	}
	// What libtorrent sends: extension protocol, Fast and DHT, and the
	// BEP 52 upgrade bit (byte 7, 0x10), which is none of ours.
	lt := Reserved{5: 0x10, 7: 0x15}
	if !lt.Extended() || !lt.Fast() || !lt.DHT() {
		t.Fatalf("libtorrent's %x not understood", lt)
	}
}

func TestReadHandshakeErrors(t *testing.T) {
	h := testHandshake()
	valid := AppendHandshake(nil, &h)
	with := func(i int, c byte) []byte {
		b := bytes.Clone(valid)
		b[i] = c
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"one byte", valid[:1], io.ErrUnexpectedEOF},
		{"no info hash", valid[:28], io.ErrUnexpectedEOF},
		{"short info hash", valid[:47], io.ErrUnexpectedEOF},
		{"no peer id", valid[:48], io.EOF},
		{"short peer id", valid[:67], io.ErrUnexpectedEOF},
		{"protocol length", with(0, 20), ErrNotBitTorrent},
		{"protocol length zero", with(0, 0), ErrNotBitTorrent},
		{"protocol case", with(19, 'L'), ErrNotBitTorrent},
		{"protocol first letter", with(1, 'b'), ErrNotBitTorrent},
		{"other protocol", append([]byte("\x13BitTorrent protocoX"), valid[20:]...), ErrNotBitTorrent},
		{"encrypted", fill(HandshakeLen, 0x37), ErrNotBitTorrent},
		{"http", []byte("GET /announce?info_hash=0123456789abcdefghij&peer_id=x HTTP/1.1\r\n\r\n"), ErrNotBitTorrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadHandshake(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadHandshake(%q) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
	// A wrong protocol string is known from the first 48 bytes.
	if _, _, err := ReadHandshakeStart(bytes.NewReader(with(5, 'x')[:48])); err != ErrNotBitTorrent {
		t.Fatalf("ReadHandshakeStart: %v, want ErrNotBitTorrent", err)
	}
}
