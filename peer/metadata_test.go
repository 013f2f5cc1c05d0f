package peer

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aiotorrent/aiotorrent/bencode"
)

func sameMetadataMsg(a, b MetadataMsg) bool {
	return a.Type == b.Type && a.Piece == b.Piece && a.TotalSize == b.TotalSize &&
		bytes.Equal(a.Data, b.Data) && (a.Data == nil) == (b.Data == nil)
}

func describeMetadataMsg(m MetadataMsg) string {
	return fmt.Sprintf("{Type:%d Piece:%d TotalSize:%d Data:%d bytes}", m.Type, m.Piece, m.TotalSize, len(m.Data))
}

// metadataBytes returns n bytes of made-up metadata.
func metadataBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestMetadataBEP9Examples(t *testing.T) {
	x := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name    string
		payload string
		want    MetadataMsg
	}{
		{"request", "d8:msg_typei0e5:piecei0ee", MetadataMsg{Type: MetadataRequest}},
		// BEP 9's data example gives total_size 3425 in the dictionary
		// and 34256 in the bencode; both, with the data each needs.
		{"data of 3425", "d8:msg_typei1e5:piecei0e10:total_sizei3425ee" + x(3425), MetadataMsg{Type: MetadataData, TotalSize: 3425, Data: []byte(x(3425))}},
		{"data of 34256", "d8:msg_typei1e5:piecei0e10:total_sizei34256ee" + x(16384), MetadataMsg{Type: MetadataData, TotalSize: 34256, Data: []byte(x(16384))}},
		// BEP 9's reject example is {'msg_type': 2, 'piece': 0}; its
		// bencode says msg_type 1, a typo.
		{"reject", "d8:msg_typei2e5:piecei0ee", MetadataMsg{Type: MetadataReject}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMetadataMsg([]byte(tc.payload))
			if err != nil {
				t.Fatalf("ParseMetadataMsg(%.60q): %v", tc.payload, err)
			}
			if !sameMetadataMsg(got, tc.want) {
				t.Fatalf("ParseMetadataMsg(%.60q)\n got %s\nwant %s", tc.payload, describeMetadataMsg(got), describeMetadataMsg(tc.want))
			}
			if enc := AppendMetadataMsg(nil, got); string(enc) != tc.payload {
				t.Fatalf("re-encoded as %.60q", enc)
			}
		})
	}
	// The reject example's bencode as printed is a data message without
	// total_size or data.
	if _, err := ParseMetadataMsg([]byte("d8:msg_typei1e5:piecei0ee")); !errors.Is(err, ErrBadMessage) {
		t.Errorf("BEP 9's misprinted reject: %v", err)
	}
}

// TestMetadataRealWorld has messages as clients send them.
func TestMetadataRealWorld(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    MetadataMsg
	}{
		{
			// libtorrent adds total_size to its rejects when it has the
			// metadata (a request past the end, or flood protection).
			"libtorrent reject with total_size",
			[]byte("d8:msg_typei2e5:piecei3e10:total_sizei31235ee"),
			MetadataMsg{Type: MetadataReject, Piece: 3, TotalSize: 31235},
		},
		{
			"libtorrent reject past the end",
			[]byte("d8:msg_typei2e5:piecei99e10:total_sizei31235ee"),
			MetadataMsg{Type: MetadataReject, Piece: 99, TotalSize: 31235},
		},
		{
			"last piece",
			append([]byte("d8:msg_typei1e5:piecei1e10:total_sizei31235ee"), metadataBytes(31235-16384)...),
			MetadataMsg{Type: MetadataData, Piece: 1, TotalSize: 31235, Data: metadataBytes(31235 - 16384)},
		},
		{
			// The metadata is itself bencode, starting with 'd': it must
			// not be taken for part of the dictionary.
			"data that is bencode",
			[]byte("d8:msg_typei1e5:piecei0e10:total_sizei40ee" + "d6:lengthi1024e4:name5:a.txt12:piece lengthi16384ee"[:40]),
			MetadataMsg{Type: MetadataData, TotalSize: 40, Data: []byte("d6:lengthi1024e4:name5:a.txt12:piece lengthi16384ee"[:40])},
		},
		{
			"data that starts with e",
			[]byte("d8:msg_typei1e5:piecei0e10:total_sizei3ee" + "eee"),
			MetadataMsg{Type: MetadataData, TotalSize: 3, Data: []byte("eee")},
		},
		{
			"keys out of order",
			[]byte("d5:piecei4e8:msg_typei0ee"),
			MetadataMsg{Type: MetadataRequest, Piece: 4},
		},
		{
			"unknown keys",
			[]byte("d1:ali1ee8:msg_typei0e5:piecei1e1:zd1:ai1eee"),
			MetadataMsg{Type: MetadataRequest, Piece: 1},
		},
		{
			"request with an invalid total_size",
			[]byte("d8:msg_typei0e5:piecei1e10:total_sizei-5ee"),
			MetadataMsg{Type: MetadataRequest, Piece: 1},
		},
		{
			"reject with a total_size string",
			[]byte("d8:msg_typei2e5:piecei1e10:total_size3:abce"),
			MetadataMsg{Type: MetadataReject, Piece: 1},
		},
		{
			"reject with total_size beyond MaxMetadataSize",
			[]byte("d8:msg_typei2e5:piecei1e10:total_sizei1073741824ee"),
			MetadataMsg{Type: MetadataReject, Piece: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMetadataMsg(tc.payload)
			if err != nil {
				t.Fatalf("ParseMetadataMsg(%.60q): %v", tc.payload, err)
			}
			if !sameMetadataMsg(got, tc.want) {
				t.Fatalf("ParseMetadataMsg(%.60q)\n got %s\nwant %s", tc.payload, describeMetadataMsg(got), describeMetadataMsg(tc.want))
			}
			checkMetadataRoundTrip(t, got)
		})
	}
}

// checkMetadataRoundTrip checks that m encodes to a canonical dictionary,
// the same as bencode.Marshal writes, followed by its data, and parses
// back to m.
func checkMetadataRoundTrip(t *testing.T, m MetadataMsg) {
	t.Helper()
	enc := AppendMetadataMsg(nil, m)
	dict := map[string]int64{"msg_type": int64(m.Type), "piece": int64(m.Piece)}
	if m.TotalSize != 0 {
		dict["total_size"] = m.TotalSize
	}
	ref, err := bencode.Marshal(dict)
	if err != nil {
		t.Fatal(err)
	}
	if ref = append(ref, m.Data...); !bytes.Equal(enc, ref) {
		t.Fatalf("%s encodes to %.80q, want %.80q", describeMetadataMsg(m), enc, ref)
	}
	back, err := ParseMetadataMsg(enc)
	if err != nil {
		t.Fatalf("%s encoded as %.80q: %v", describeMetadataMsg(m), enc, err)
	}
	if !sameMetadataMsg(back, m) {
		t.Fatalf("round trip through %.80q\n got %s\nwant %s", enc, describeMetadataMsg(back), describeMetadataMsg(m))
	}
	if again := AppendMetadataMsg(nil, back); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoded as %.80q, first as %.80q", again, enc)
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	tests := []MetadataMsg{
		{Type: MetadataRequest},
		{Type: MetadataRequest, Piece: 1},
		{Type: MetadataRequest, Piece: maxMetadataPieces - 1},
		{Type: MetadataReject, Piece: 7},
		{Type: MetadataReject, Piece: 7, TotalSize: 1},
		{Type: MetadataRequest, Piece: 2, TotalSize: MaxMetadataSize},
		{Type: MetadataData, TotalSize: 1, Data: []byte{'e'}},
		{Type: MetadataData, TotalSize: 3425, Data: metadataBytes(3425)},
		{Type: MetadataData, TotalSize: MetadataPieceSize, Data: metadataBytes(MetadataPieceSize)},
		{Type: MetadataData, Piece: 1, TotalSize: MetadataPieceSize + 1, Data: []byte{0}},
		{Type: MetadataData, Piece: maxMetadataPieces - 1, TotalSize: MaxMetadataSize, Data: metadataBytes(MetadataPieceSize)},
		{Type: MetadataData, Piece: maxMetadataPieces - 1, TotalSize: MaxMetadataSize - 1, Data: metadataBytes(MetadataPieceSize - 1)},
	}
	for _, m := range tests {
		t.Run(describeMetadataMsg(m), func(t *testing.T) {
			checkMetadataRoundTrip(t, m)
		})
	}
}

func TestAppendMetadataMsg(t *testing.T) {
	tests := []struct {
		m    MetadataMsg
		want string
	}{
		{MetadataMsg{Type: MetadataRequest, Piece: 5}, "d8:msg_typei0e5:piecei5ee"},
		{MetadataMsg{Type: MetadataReject, Piece: 5, TotalSize: 100}, "d8:msg_typei2e5:piecei5e10:total_sizei100ee"},
		{MetadataMsg{Type: MetadataData, Piece: 0, TotalSize: 3, Data: []byte("abc")}, "d8:msg_typei1e5:piecei0e10:total_sizei3eeabc"},
		// Data is written only in data messages.
		{MetadataMsg{Type: MetadataRequest, Data: []byte("abc")}, "d8:msg_typei0e5:piecei0ee"},
	}
	for _, tc := range tests {
		if got := AppendMetadataMsg([]byte("prefix"), tc.m); string(got) != "prefix"+tc.want {
			t.Errorf("AppendMetadataMsg(%s)\n got %q\nwant %q", describeMetadataMsg(tc.m), got, "prefix"+tc.want)
		}
	}
}

func TestParseMetadataMsgErrors(t *testing.T) {
	data := func(piece int, total int64, n int) string {
		return fmt.Sprintf("d8:msg_typei1e5:piecei%de10:total_sizei%dee", piece, total) + strings.Repeat("x", n)
	}
	tests := []struct {
		name    string
		payload string
	}{
		{"empty", ""},
		{"list", "l8:msg_typei0e5:piecei0ee"},
		{"integer", "i0e"},
		{"string", "8:msg_type"},
		{"space first", " d8:msg_typei0e5:piecei0ee"},
		{"truncated", "d8:msg_typei0e5:piecei0e"},
		{"truncated integer", "d8:msg_typei0e5:piecei0"},
		{"truncated string", "d8:msg_typei0e5:pie"},
		{"string length past the end", "d8:msg_typei0e99999:piecei0ee"},
		{"string length overflowing", "d8:msg_typei0e99999999999999999999999:piecei0ee"},
		{"string length without colon", "d8:msg_typei0e5"},
		{"nested too deep", "d1:x" + strings.Repeat("l", 8) + strings.Repeat("e", 8) + "8:msg_typei0e5:piecei0ee"},
		{"nested 10000 deep", "d1:x" + strings.Repeat("l", 10000) + strings.Repeat("e", 10000) + "8:msg_typei0e5:piecei0ee"},
		{"duplicate key", "d8:msg_typei0e8:msg_typei0e5:piecei0ee"},
		{"key not a string", "d8:msg_typei0e5:piecei0ei1ei2ee"},
		{"no msg_type", "d5:piecei0ee"},
		{"msg_type string", "d8:msg_type1:05:piecei0ee"},
		{"msg_type list", "d8:msg_typeli0ee5:piecei0ee"},
		{"msg_type with a leading zero", "d8:msg_typei00e5:piecei0ee"},
		{"msg_type -0", "d8:msg_typei-0e5:piecei0ee"},
		{"msg_type overflowing", "d8:msg_typei99999999999999999999e5:piecei0ee"},
		{"request without piece", "d8:msg_typei0ee"},
		{"reject without piece", "d8:msg_typei2ee"},
		{"data without piece", "d8:msg_typei1e10:total_sizei3eeabc"},
		{"piece string", "d8:msg_typei0e5:piece1:0e"},
		{"piece negative", "d8:msg_typei0e5:piecei-1ee"},
		{"piece at the bound", fmt.Sprintf("d8:msg_typei0e5:piecei%dee", maxMetadataPieces)},
		{"piece huge", "d8:msg_typei2e5:piecei9223372036854775807ee"},
		{"request with data", "d8:msg_typei0e5:piecei0eex"},
		{"reject with data", "d8:msg_typei2e5:piecei0e10:total_sizei3eeabc"},
		{"request followed by a request", "d8:msg_typei0e5:piecei0eed8:msg_typei0e5:piecei0ee"},
		{"data without total_size", "d8:msg_typei1e5:piecei0eeabc"},
		{"data with total_size string", "d8:msg_typei1e5:piecei0e10:total_size1:3eabc"},
		{"data with total_size 0", data(0, 0, 0)},
		{"data with total_size -1", data(0, -1, 1)},
		{"data with total_size beyond MaxMetadataSize", data(0, MaxMetadataSize+1, MetadataPieceSize)},
		{"data with total_size 1 GiB", data(0, 1<<30, MetadataPieceSize)},
		{"data without data", data(0, 3, 0)},
		{"data short", data(0, 3, 2)},
		{"data long", data(0, 3, 4)},
		{"data short of a whole piece", data(0, 20000, MetadataPieceSize-1)},
		{"data longer than a piece", data(0, 40000, MetadataPieceSize+1)},
		{"data of the last piece too long", data(1, 20000, MetadataPieceSize)},
		{"data past the last piece", data(2, 20000, 100)},
		{"data of a piece after a small total", data(1, 3, 3)},
		{"longer than MaxExtendedLen", data(0, 1<<20, MaxExtendedLen)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMetadataMsg([]byte(tc.payload))
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("ParseMetadataMsg(%.60q) = %s, %v; want an error wrapping ErrBadMessage", tc.payload, describeMetadataMsg(m), err)
			}
			if errors.Is(err, ErrUnknownMetadataMsg) {
				t.Fatalf("ParseMetadataMsg(%.60q): %v wraps ErrUnknownMetadataMsg", tc.payload, err)
			}
			if !sameMetadataMsg(m, MetadataMsg{}) {
				t.Fatalf("ParseMetadataMsg(%.60q) returned %s with its error", tc.payload, describeMetadataMsg(m))
			}
		})
	}
}

func TestParseMetadataMsgUnknownType(t *testing.T) {
	tests := []struct {
		payload string
		typ     int
	}{
		{"d8:msg_typei3e5:piecei0ee", 3},
		{"d8:msg_typei-1e5:piecei0ee", -1},
		{"d8:msg_typei255ee", 255},                           // no piece
		{"d8:msg_typei4e5:piece3:abce", 4},                   // piece of another type
		{"d8:msg_typei5e5:piecei0e4:morei1eeextra bytes", 5}, // data after it
	}
	for _, tc := range tests {
		m, err := ParseMetadataMsg([]byte(tc.payload))
		if !errors.Is(err, ErrUnknownMetadataMsg) || errors.Is(err, ErrBadMessage) {
			t.Errorf("ParseMetadataMsg(%q): %v, want an error wrapping ErrUnknownMetadataMsg only", tc.payload, err)
		}
		if !sameMetadataMsg(m, MetadataMsg{Type: tc.typ}) {
			t.Errorf("ParseMetadataMsg(%q) = %s, want Type %d only", tc.payload, describeMetadataMsg(m), tc.typ)
		}
	}
	// An unknown type must still come in a well-formed dictionary.
	for _, p := range []string{"d8:msg_typei3e5:piecei0e", "d8:msg_typei3e8:msg_typei3ee", "d8:msg_typei03ee"} {
		if _, err := ParseMetadataMsg([]byte(p)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("ParseMetadataMsg(%q): %v, want ErrBadMessage", p, err)
		}
	}
}

// TestMetadataDataAliases checks the documented aliasing: Data is the end
// of the payload, not a copy.
func TestMetadataDataAliases(t *testing.T) {
	payload := AppendMetadataMsg(nil, MetadataMsg{Type: MetadataData, TotalSize: 100, Data: metadataBytes(100)})
	m, err := ParseMetadataMsg(payload)
	if err != nil {
		t.Fatal(err)
	}
	if &m.Data[0] != &payload[len(payload)-100] {
		t.Fatal("Data does not alias the payload")
	}
	n := testing.AllocsPerRun(100, func() {
		if _, err := ParseMetadataMsg(payload); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations to parse a data message", n)
	if n > 20 {
		t.Errorf("%.0f allocations to parse a data message", n)
	}
}

func TestMetadataPieces(t *testing.T) {
	tests := []struct {
		size   int64
		pieces int
		lens   map[int]int // piece → MetadataPieceLen
	}{
		{-1, 0, map[int]int{0: 0, -1: 0}},
		{0, 0, map[int]int{0: 0}},
		{1, 1, map[int]int{0: 1, 1: 0, -1: 0}},
		{3425, 1, map[int]int{0: 3425, 1: 0}},
		{16383, 1, map[int]int{0: 16383}},
		{16384, 1, map[int]int{0: 16384, 1: 0}},
		{16385, 2, map[int]int{0: 16384, 1: 1, 2: 0}},
		{31235, 2, map[int]int{0: 16384, 1: 31235 - 16384}},
		{MaxMetadataSize, maxMetadataPieces, map[int]int{maxMetadataPieces - 1: 16384, maxMetadataPieces: 0}},
		{1 << 40, 1 << 26, map[int]int{1<<26 - 1: 16384, 1 << 26: 0, -1 << 40: 0}},
	}
	for _, tc := range tests {
		if got := MetadataPieces(tc.size); got != tc.pieces {
			t.Errorf("MetadataPieces(%d) = %d, want %d", tc.size, got, tc.pieces)
		}
		for piece, want := range tc.lens {
			if got := MetadataPieceLen(tc.size, piece); got != want {
				t.Errorf("MetadataPieceLen(%d, %d) = %d, want %d", tc.size, piece, got, want)
			}
		}
		// The pieces add up to the size.
		if tc.size > 0 && tc.size <= MaxMetadataSize {
			var sum int64
			for i := range tc.pieces {
				sum += int64(MetadataPieceLen(tc.size, i))
			}
			if sum != tc.size {
				t.Errorf("pieces of %d bytes add up to %d", tc.size, sum)
			}
		}
	}
	if maxMetadataPieces != MetadataPieces(MaxMetadataSize) {
		t.Errorf("maxMetadataPieces = %d, MetadataPieces(MaxMetadataSize) = %d", maxMetadataPieces, MetadataPieces(MaxMetadataSize))
	}
	// A data message of a whole piece, with its dictionary, fits in an
	// Extended message.
	longest := AppendMetadataMsg(nil, MetadataMsg{Type: MetadataData, Piece: maxMetadataPieces - 1, TotalSize: MaxMetadataSize, Data: make([]byte, MetadataPieceSize)})
	if len(longest) > MaxExtendedLen {
		t.Errorf("largest data message is %d bytes", len(longest))
	}
}

func TestValueLen(t *testing.T) {
	tests := []struct {
		in   string
		want int // -1: an error
	}{
		{"i0e", 3},
		{"i-12eXX", 5},
		{"0:", 2},
		{"3:abcdef", 5},
		{"le", 2},
		{"dee", 2},
		{"d1:ai1ee", 8},
		{"d1:ali1ei2eeee", 13},
		{"d1:ad1:bd1:cdeeee", 17},
		{"d1:a1:eexxx", 8},
		{"ie", 2},       // ends here; the decoder rejects it
		{"i1:e", 4},     // likewise
		{"di1ei2ee", 8}, // likewise: keys are not checked
		{"ddeee", 4},    // likewise
		{"", -1},
		{"e", -1},
		{"x", -1},
		{"i12", -1},
		{"3:ab", -1},
		{"3", -1},
		{"3x", -1},
		{"99999999999999999999999:a", -1},
		{"d", -1},
		{"d1:a", -1},
		{"dl", -1},
		{"d1:ali1e", -1},
		{strings.Repeat("l", 8) + strings.Repeat("e", 8), 16},
		{strings.Repeat("l", 9) + strings.Repeat("e", 9), -1},
	}
	for _, tc := range tests {
		got, err := valueLen([]byte(tc.in), 8)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("valueLen(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("valueLen(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
