package bencode

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

type myInt int16
type myString string
type myBytes []byte

func TestMarshal(t *testing.T) {
	x := 5
	px := &x
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"int", 42, "i42e"},
		{"int zero", 0, "i0e"},
		{"int negative", -42, "i-42e"},
		{"int8", int8(math.MinInt8), "i-128e"},
		{"int16", int16(math.MaxInt16), "i32767e"},
		{"int32", int32(math.MinInt32), "i-2147483648e"},
		{"int64 max", int64(math.MaxInt64), "i9223372036854775807e"},
		{"int64 min", int64(math.MinInt64), "i-9223372036854775808e"},
		{"uint", uint(7), "i7e"},
		{"uint8", uint8(255), "i255e"},
		{"uint16", uint16(65535), "i65535e"},
		{"uint32", uint32(math.MaxUint32), "i4294967295e"},
		{"uint64", uint64(math.MaxInt64), "i9223372036854775807e"},
		{"uintptr", uintptr(9), "i9e"},
		{"named int", myInt(-3), "i-3e"},
		{"bool false", false, "i0e"},
		{"bool true", true, "i1e"},
		{"string", "spam", "4:spam"},
		{"empty string", "", "0:"},
		{"binary string", "\x00\xff", "2:\x00\xff"},
		{"named string", myString("ab"), "2:ab"},
		{"bytes", []byte("spam"), "4:spam"},
		{"nil bytes", []byte(nil), "0:"},
		{"named bytes", myBytes("xy"), "2:xy"},
		{"byte array", [3]byte{'a', 'b', 'c'}, "3:abc"},
		{"empty byte array", [0]byte{}, "0:"},
		{"int slice", []int{1, 2}, "li1ei2ee"},
		{"nil slice", []int(nil), "le"},
		{"empty slice", []string{}, "le"},
		{"string array", [2]string{"a", "b"}, "l1:a1:be"},
		{"nested lists", [][]int{{1}, {}, {2, 3}}, "lli1eeleli2ei3eee"},
		{"any list", []any{int64(1), "a", []any{}, map[string]any{}}, "li1e1:aledee"},
		{"map", map[string]int{"b": 2, "a": 1}, "d1:ai1e1:bi2ee"},
		{"nil map", map[string]int(nil), "de"},
		{"empty map", map[string]any{}, "de"},
		{"named key map", map[myString]string{"k": "v"}, "d1:k1:ve"},
		{"map of lists", map[string][]string{"x": {"y"}}, "d1:xl1:yee"},
		{"map drops nil values", map[string]any{"a": nil, "b": int64(1)}, "d1:bi1ee"},
		// A nil slice inside a non-nil interface is an empty list.
		{"typed nil slice in map", map[string]any{"c": []int(nil)}, "d1:clee"},
		{"map drops nil pointers", map[string]*int{"a": nil, "b": px}, "d1:bi5ee"},
		{"map drops nil slices", map[string][]int{"a": nil, "b": {}}, "d1:blee"},
		{"map drops nil maps", map[string]map[string]int{"a": nil, "b": {}}, "d1:bdee"},
		{"pointer", px, "i5e"},
		{"pointer to pointer", &px, "i5e"},
		{"pointer to struct", &struct{ A int }{1}, "d1:Ai1ee"},
		{"empty struct", struct{}{}, "de"},
		{"interface in struct", struct{ V any }{V: "s"}, "d1:V1:se"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.in)
			if err != nil {
				t.Fatalf("Marshal(%#v): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("Marshal(%#v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMarshalMapKeyOrder(t *testing.T) {
	m := map[string]int{
		"b":        1,
		"a":        2,
		"ab":       3,
		"a\x00":    4,
		"":         5,
		"é":        6, // 0xc3 0xa9
		"\xff":     7,
		"z":        8,
		"Z":        9,
		"abc":      10,
		"aardvark": 11,
		"日本":       12, // 0xe6 ...
	}
	want := "d" +
		"0:i5e" +
		"1:Zi9e" +
		"1:ai2e" +
		"2:a\x00i4e" +
		"8:aardvarki11e" +
		"2:abi3e" +
		"3:abci10e" +
		"1:bi1e" +
		"1:zi8e" +
		"2:éi6e" +
		"6:日本i12e" +
		"1:\xffi7e" +
		"e"
	for range 20 { // map iteration order varies between runs
		got, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
	}
	if err := (&Decoder{Strict: true}).Valid([]byte(want)); err != nil {
		t.Errorf("strict decoder rejects Marshal's order: %v", err)
	}
}

func TestMarshalStruct(t *testing.T) {
	// Declared out of order; encoded sorted by key.
	type s struct {
		Z      int    `bencode:"zebra"`
		A      string `bencode:"apple"`
		M      []int
		Skip   int `bencode:"-"`
		Dash   int `bencode:"-,"`
		B      bool
		hidden int
		Piece  int `bencode:"piece length"`
		Pieces int `bencode:"pieces"`
	}
	got, err := Marshal(s{Z: 1, A: "x", M: []int{2}, Skip: 9, Dash: 3, B: true, hidden: 4, Piece: 5, Pieces: 6})
	if err != nil {
		t.Fatal(err)
	}
	want := "d1:-i3e1:Bi1e1:Mli2ee5:apple1:x12:piece lengthi5e6:piecesi6e5:zebrai1ee"
	if string(got) != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if err := (&Decoder{Strict: true}).Valid(got); err != nil {
		t.Errorf("not canonical: %v", err)
	}

	// Two fields claiming one key are both left out.
	type clash struct {
		A int `bencode:"k"`
		B int `bencode:"k"`
		C int
	}
	got, err = Marshal(clash{1, 2, 3})
	if err != nil || string(got) != "d1:Ci3ee" {
		t.Errorf("clash: got %q, %v", got, err)
	}
}

func TestMarshalOmitEmpty(t *testing.T) {
	type inner struct{ X int }
	type s struct {
		I   int            `bencode:"i,omitempty"`
		U   uint8          `bencode:"u,omitempty"`
		S   string         `bencode:"s,omitempty"`
		B   bool           `bencode:"b,omitempty"`
		L   []int          `bencode:"l,omitempty"`
		M   map[string]int `bencode:"m,omitempty"`
		A   [0]byte        `bencode:"a,omitempty"`
		St  inner          `bencode:"st,omitempty"`
		Bs  []byte         `bencode:"bs,omitempty"`
		H   [2]byte        `bencode:"h,omitempty"` // non-empty length: kept
		Any any            `bencode:"any,omitempty"`
	}
	got, err := Marshal(s{L: []int{}, M: map[string]int{}, Bs: []byte{}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "d1:h2:\x00\x00e"; string(got) != want {
		t.Errorf("all empty: got %q, want %q", got, want)
	}

	got, err = Marshal(s{I: -1, U: 1, S: "s", B: true, L: []int{0}, M: map[string]int{"k": 0}, St: inner{1}, Bs: []byte{0}, H: [2]byte{1, 2}, Any: 0})
	if err != nil {
		t.Fatal(err)
	}
	// Keys sort by bytes: "any" < "b" < "bs" < ...
	want := "d3:anyi0e1:bi1e2:bs1:\x001:h2:\x01\x021:ii-1e1:lli0ee1:md1:ki0ee1:s1:s2:std1:Xi1ee1:ui1ee"
	if string(got) != want {
		t.Errorf("all set: got  %q\nwant %q", got, want)
	}

	// Without omitempty zero values are written, but nil pointers,
	// interfaces, slices and maps are always left out.
	type plain struct {
		I int
		S string
		L []int
		E []int
		M map[string]int
		P *int
		F any
		R RawMessage
	}
	got, err = Marshal(plain{E: []int{}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "d1:Ele1:Ii0e1:S0:e"; string(got) != want {
		t.Errorf("zero plain: got %q, want %q", got, want)
	}
}

// stamp marshals itself with a value receiver.
type stamp int

func (s stamp) MarshalBencode() ([]byte, error) {
	return []byte(fmt.Sprintf("1:%d", int(s)%10)), nil
}

// ptrStamp marshals itself with a pointer receiver.
type ptrStamp struct{ v string }

func (p *ptrStamp) MarshalBencode() ([]byte, error) {
	return Marshal("p-" + p.v)
}

var errNoMarshal = errors.New("no marshal")

type badMarshaler struct{}

func (badMarshaler) MarshalBencode() ([]byte, error) { return nil, errNoMarshal }

func TestMarshaler(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{stamp(7), "1:7"},
		{&ptrStamp{"x"}, "3:p-x"},
		{[]stamp{1, 2}, "l1:11:2e"},
		{map[string]*ptrStamp{"k": {"v"}}, "d1:k3:p-ve"},
		{struct {
			S stamp     `bencode:"s"`
			P *ptrStamp `bencode:"p"`
			N *ptrStamp `bencode:"n"` // nil: left out
		}{S: 3, P: &ptrStamp{"y"}}, "d1:p3:p-y1:s1:3e"},
	}
	for _, tt := range tests {
		got, err := Marshal(tt.in)
		if err != nil || string(got) != tt.want {
			t.Errorf("Marshal(%#v) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}

	_, err := Marshal(struct{ B badMarshaler }{})
	if !errors.Is(err, errNoMarshal) {
		t.Errorf("error %v does not wrap the Marshaler's error", err)
	}

	// A nil pointer to a value-receiver Marshaler is an error, not a panic.
	_, err = Marshal((*stamp)(nil))
	var me *MarshalError
	if !errors.As(err, &me) {
		t.Errorf("nil *stamp: error %v (%T), want *MarshalError", err, err)
	}
	_, err = Marshal([]*stamp{nil})
	if !errors.As(err, &me) {
		t.Errorf("[]*stamp{nil}: error %v (%T), want *MarshalError", err, err)
	}
}

func TestMarshalRawMessage(t *testing.T) {
	type s struct {
		Info RawMessage  `bencode:"info"`
		Ptr  *RawMessage `bencode:"ptr"`
		Nil  RawMessage  `bencode:"nil"`
	}
	raw := RawMessage("d1:bi1e1:ai2ee") // unsorted, but well formed: kept as is
	got, err := Marshal(s{Info: raw, Ptr: &raw})
	if err != nil {
		t.Fatal(err)
	}
	if want := "d4:info" + string(raw) + "3:ptr" + string(raw) + "e"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got, err = Marshal(RawMessage("li1ee"))
	if err != nil || string(got) != "li1ee" {
		t.Errorf("top-level RawMessage: %q, %v", got, err)
	}
	got, err = Marshal(map[string]RawMessage{"a": RawMessage("0:")})
	if err != nil || string(got) != "d1:a0:e" {
		t.Errorf("map of RawMessage: %q, %v", got, err)
	}

	invalid := []struct {
		raw string
		off int64
	}{
		{"", 0},
		{"i03e", 0},
		{"i1ei2e", 3},
		{"l", 1},
		{"d1:ai1e1:ai1ee", 7},
		{"5:abc", 0},
		{"x", 0},
	}
	for _, tt := range invalid {
		_, err := Marshal(RawMessage(tt.raw))
		checkErr(t, err, syntaxErr, tt.off)
		// Non-nil, so not left out even when empty.
		_, err = Marshal(s{Info: append(RawMessage{}, tt.raw...)})
		checkErr(t, err, syntaxErr, tt.off)
	}
	// A nil RawMessage in a list has no bencode form.
	if _, err := Marshal([]RawMessage{nil}); err == nil {
		t.Errorf("[]RawMessage{nil}: no error")
	}
}

func TestMarshalUnsupported(t *testing.T) {
	ch := make(chan int)
	tests := []struct {
		name string
		in   any
		typ  reflect.Type
	}{
		{"nil", nil, nil},
		{"nil pointer", (*int)(nil), reflect.TypeFor[*int]()},
		{"float64", 1.5, reflect.TypeFor[float64]()},
		{"float32", float32(1), reflect.TypeFor[float32]()},
		{"complex128", complex(1, 2), reflect.TypeFor[complex128]()},
		{"chan", ch, reflect.TypeFor[chan int]()},
		{"func", func() {}, reflect.TypeFor[func()]()},
		{"unsafe pointer", unsafe.Pointer(nil), reflect.TypeFor[unsafe.Pointer]()},
		{"int map", map[int]string{1: "a"}, reflect.TypeFor[map[int]string]()},
		{"empty int map", map[int]string{}, reflect.TypeFor[map[int]string]()},
		{"float in list", []any{int64(1), 2.5}, reflect.TypeFor[float64]()},
		{"nil in list", []any{nil}, reflect.TypeFor[any]()},
		{"float field", struct{ F float64 }{}, reflect.TypeFor[float64]()},
		{"nil chan field", struct{ C chan int }{}, reflect.TypeFor[chan int]()},
		// A nil pointer inside a non-nil interface is not left out.
		{"typed nil in map", map[string]any{"p": (*int)(nil)}, reflect.TypeFor[*int]()},
		{"func in map", map[string]any{"f": func() {}}, reflect.TypeFor[func()]()},
		{"nested int map", map[string]any{"m": map[int]int{}}, reflect.TypeFor[map[int]int]()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.in)
			var me *MarshalError
			if !errors.As(err, &me) {
				t.Fatalf("Marshal = %q, %v (%T); want *MarshalError", got, err, err)
			}
			if me.Type != tt.typ {
				t.Errorf("MarshalError.Type = %v, want %v", me.Type, tt.typ)
			}
			if got != nil {
				t.Errorf("Marshal returned %q along with the error", got)
			}
			if !strings.HasPrefix(me.Error(), "bencode: ") {
				t.Errorf("Error() = %q", me.Error())
			}
		})
	}
}

func TestMarshalTorrentRoundTrip(t *testing.T) {
	var orig testTorrent
	if err := Unmarshal([]byte(testTorrentBytes), &orig); err != nil {
		t.Fatal(err)
	}
	orig.Comment = "" // not encoded
	b, err := Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Decoder{Strict: true}).Valid(b); err != nil {
		t.Fatalf("Marshal output not canonical: %v\n%q", err, b)
	}
	var back testTorrent
	if err := (&Decoder{Strict: true}).Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, back, orig)
}
