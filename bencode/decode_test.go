package bencode

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestUnmarshalAny(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"i0e", int64(0)},
		{"i42e", int64(42)},
		{"i-42e", int64(-42)},
		{"i9223372036854775807e", int64(math.MaxInt64)},
		{"i-9223372036854775808e", int64(math.MinInt64)},
		{"0:", ""},
		{"4:spam", "spam"},
		{"3:\x00\xff\n", "\x00\xff\n"},
		{"1:e", "e"},
		{"10:0123456789", "0123456789"},
		{"le", []any{}},
		{"li1e4:spame", []any{int64(1), "spam"}},
		{"llelee", []any{[]any{}, []any{}}},
		{"de", map[string]any{}},
		{"d3:cow3:moo4:spam4:eggse", map[string]any{"cow": "moo", "spam": "eggs"}},
		{"d4:spaml1:a1:bee", map[string]any{"spam": []any{"a", "b"}}},
		{"d0:i0e1:\xffi1ee", map[string]any{"": int64(0), "\xff": int64(1)}},
		// Unsorted keys are accepted by a lenient decoder.
		{"d1:bi1e1:ai2ee", map[string]any{"a": int64(2), "b": int64(1)}},
		{"d1:ald1:bdeeee", map[string]any{"a": []any{map[string]any{"b": map[string]any{}}}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			var got any
			if err := Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			checkDeepEqual(t, got, tt.want)
		})
	}
}

func TestUnmarshalAnyReplacesExistingValue(t *testing.T) {
	var v any = map[string]any{"old": int64(1)}
	if err := Unmarshal([]byte("i7e"), &v); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, v, int64(7))
}

func TestUnmarshalIntegers(t *testing.T) {
	tests := []struct {
		in   string
		typ  reflect.Type
		want any // nil: expect *UnmarshalTypeError at offset 0
	}{
		{"i127e", reflect.TypeFor[int8](), int8(127)},
		{"i-128e", reflect.TypeFor[int8](), int8(-128)},
		{"i128e", reflect.TypeFor[int8](), nil},
		{"i-129e", reflect.TypeFor[int8](), nil},
		{"i32767e", reflect.TypeFor[int16](), int16(32767)},
		{"i32768e", reflect.TypeFor[int16](), nil},
		{"i-32769e", reflect.TypeFor[int16](), nil},
		{"i2147483647e", reflect.TypeFor[int32](), int32(math.MaxInt32)},
		{"i-2147483648e", reflect.TypeFor[int32](), int32(math.MinInt32)},
		{"i2147483648e", reflect.TypeFor[int32](), nil},
		{"i9223372036854775807e", reflect.TypeFor[int64](), int64(math.MaxInt64)},
		{"i-9223372036854775808e", reflect.TypeFor[int64](), int64(math.MinInt64)},
		{"i-5e", reflect.TypeFor[int](), int(-5)},
		{"i255e", reflect.TypeFor[uint8](), uint8(255)},
		{"i256e", reflect.TypeFor[uint8](), nil},
		{"i-1e", reflect.TypeFor[uint8](), nil},
		{"i65535e", reflect.TypeFor[uint16](), uint16(65535)},
		{"i65536e", reflect.TypeFor[uint16](), nil},
		{"i4294967295e", reflect.TypeFor[uint32](), uint32(math.MaxUint32)},
		{"i4294967296e", reflect.TypeFor[uint32](), nil},
		{"i9223372036854775807e", reflect.TypeFor[uint64](), uint64(math.MaxInt64)},
		{"i-1e", reflect.TypeFor[uint64](), nil},
		{"i-1e", reflect.TypeFor[uint](), nil},
		{"i-9223372036854775808e", reflect.TypeFor[uint](), nil},
		{"i0e", reflect.TypeFor[uint](), uint(0)},
		{"i12e", reflect.TypeFor[uintptr](), uintptr(12)},
		{"i0e", reflect.TypeFor[bool](), false},
		{"i1e", reflect.TypeFor[bool](), true},
		{"i2e", reflect.TypeFor[bool](), nil},
		{"i-1e", reflect.TypeFor[bool](), nil},
		{"i1e", reflect.TypeFor[float64](), nil},
		{"i1e", reflect.TypeFor[string](), nil},
		{"i1e", reflect.TypeFor[[]byte](), nil},
		{"i1e", reflect.TypeFor[[]int](), nil},
		{"i1e", reflect.TypeFor[struct{}](), nil},
		{"i1e", reflect.TypeFor[map[string]int](), nil},
		{"i1e", reflect.TypeFor[fmt.Stringer](), nil},
		{"i1e", reflect.TypeFor[chan int](), nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s_into_%v", tt.in, tt.typ), func(t *testing.T) {
			p := reflect.New(tt.typ)
			err := Unmarshal([]byte(tt.in), p.Interface())
			if tt.want == nil {
				if checkErr(t, err, typeErr, 0) {
					var e *UnmarshalTypeError
					errors.As(err, &e)
					if e.Type != tt.typ {
						t.Errorf("UnmarshalTypeError.Type = %v, want %v", e.Type, tt.typ)
					}
					if e.Field != "" {
						t.Errorf("UnmarshalTypeError.Field = %q, want empty", e.Field)
					}
				}
				return
			}
			if !checkErr(t, err, noErr, 0) {
				return
			}
			checkDeepEqual(t, p.Elem().Interface(), tt.want)
		})
	}
}

func TestUnmarshalStrings(t *testing.T) {
	var s string
	if err := Unmarshal([]byte("5:hello"), &s); err != nil || s != "hello" {
		t.Errorf("string: got %q, %v", s, err)
	}

	var b []byte
	in := []byte("3:\x00\x01\x02")
	if err := Unmarshal(in, &b); err != nil || !bytes.Equal(b, []byte{0, 1, 2}) {
		t.Errorf("[]byte: got %q, %v", b, err)
	}
	in[2] = 'X' // the result must not alias the input
	if b[0] != 0 {
		t.Errorf("[]byte result aliases the input: %q", b)
	}

	var empty []byte
	if err := Unmarshal([]byte("0:"), &empty); err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("empty []byte: got %#v, %v", empty, err)
	}

	type hash []byte
	var h hash
	if err := Unmarshal([]byte("2:ab"), &h); err != nil || string(h) != "ab" {
		t.Errorf("named []byte: got %q, %v", h, err)
	}

	type key string
	var k key
	if err := Unmarshal([]byte("2:ab"), &k); err != nil || k != "ab" {
		t.Errorf("named string: got %q, %v", k, err)
	}

	hash20 := strings.Repeat("\xaa", 20)
	var a [20]byte
	if err := Unmarshal([]byte("20:"+hash20), &a); err != nil || string(a[:]) != hash20 {
		t.Errorf("[20]byte: got %x, %v", a, err)
	}
	for _, in := range []string{"19:" + hash20[:19], "21:" + hash20 + "x", "0:"} {
		var a [20]byte
		checkErr(t, Unmarshal([]byte(in), &a), typeErr, 0)
	}

	var zero [0]byte
	if err := Unmarshal([]byte("0:"), &zero); err != nil {
		t.Errorf("[0]byte: %v", err)
	}

	for _, target := range []any{new(int), new(bool), new([]int), new([2]int), new(map[string]any), new(struct{}), new(float32)} {
		checkErr(t, Unmarshal([]byte("4:spam"), target), typeErr, 0)
	}
}

func TestUnmarshalLists(t *testing.T) {
	var ints []int
	if err := Unmarshal([]byte("li1ei-2ei3ee"), &ints); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, ints, []int{1, -2, 3})

	var nested [][]string
	if err := Unmarshal([]byte("ll1:a1:bel1:cee"), &nested); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, nested, [][]string{{"a", "b"}, {"c"}})

	var emptyList []int
	if err := Unmarshal([]byte("le"), &emptyList); err != nil || emptyList == nil || len(emptyList) != 0 {
		t.Errorf("empty list: got %#v, %v", emptyList, err)
	}

	// An existing slice is replaced, not appended to.
	reuse := make([]int, 5, 10)
	for i := range reuse {
		reuse[i] = 99
	}
	if err := Unmarshal([]byte("li1ee"), &reuse); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, reuse, []int{1})
	type pair struct {
		A int `bencode:"a"`
		B int `bencode:"b"`
	}
	structs := []pair{{A: 7, B: 7}, {A: 8, B: 8}}
	if err := Unmarshal([]byte("ld1:ai1eed1:bi2eee"), &structs); err != nil {
		t.Fatal(err)
	}
	// Elements are zeroed before decoding, even when the backing array is reused.
	checkDeepEqual(t, structs, []pair{{A: 1}, {B: 2}})

	var arr [3]int
	if err := Unmarshal([]byte("li1ei2ei3ee"), &arr); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, arr, [3]int{1, 2, 3})

	var bytesFromList []byte
	if err := Unmarshal([]byte("li1ei2ee"), &bytesFromList); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, bytesFromList, []byte{1, 2})

	var anyList []any
	if err := Unmarshal([]byte("li1e1:alee"), &anyList); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, anyList, []any{int64(1), "a", []any{}})

	errTests := []struct {
		in     string
		target any
		off    int64
	}{
		{"li1ei2ei3ee", new([2]int), 0},
		{"li1ei2ee", new([3]int), 0},
		{"le", new([1]int), 0},
		{"lli1ei2ei3eee", new([][2]int), 1},
		{"l3:abce", new([]int), 1},
		{"li1ei300ee", new([]int8), 4},
		{"li1ei-1ee", new([]uint), 4},
		{"le", new(string), 0},
		{"le", new(int), 0},
		{"le", new(map[string]int), 0},
		{"le", new(struct{}), 0},
	}
	for _, tt := range errTests {
		t.Run(fmt.Sprintf("%s_into_%T", tt.in, tt.target), func(t *testing.T) {
			checkErr(t, Unmarshal([]byte(tt.in), tt.target), typeErr, tt.off)
		})
	}
}

// Test types shaped like a torrent file.
type testFile struct {
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
	MD5    string   `bencode:"md5sum,omitempty"`
}

type testInfo struct {
	Name        string     `bencode:"name"`
	PieceLength int64      `bencode:"piece length"`
	Pieces      []byte     `bencode:"pieces"`
	Files       []testFile `bencode:"files,omitempty"`
	Private     bool       `bencode:"private,omitempty"`
}

type testTorrent struct {
	Announce     string     `bencode:"announce"`
	AnnounceList [][]string `bencode:"announce-list,omitempty"`
	Info         *testInfo  `bencode:"info"`
	CreationDate int64      `bencode:"creation date,omitempty"`
	Comment      string     `bencode:"-"`
	Dash         int        `bencode:"-,"`
	NoTag        string
	hidden       int
}

const testTorrentBytes = "d" +
	"1:-i5e" +
	"7:Comment6:ignore" +
	"5:NoTag3:yes" +
	"8:announce17:http://t/announce" +
	"13:announce-listll1:a1:bel1:cee" +
	"13:creation datei1700000000e" +
	"4:infod" +
	"5:filesld6:lengthi10e4:pathl1:x5:y.txteed6:lengthi0e6:md5sum2:ff4:pathl1:zeee" +
	"4:name4:test" +
	"12:piece lengthi16384e" +
	"6:pieces20:AAAAAAAAAAAAAAAAAAAA" +
	"7:privatei1e" +
	"e" +
	"7:unknownd1:xli1ed1:yleeee" +
	"e"

func TestUnmarshalStruct(t *testing.T) {
	got := testTorrent{Comment: "keep", hidden: 3}
	if err := (&Decoder{Strict: true}).Unmarshal([]byte(testTorrentBytes), &got); err != nil {
		t.Fatal(err)
	}
	want := testTorrent{
		Announce:     "http://t/announce",
		AnnounceList: [][]string{{"a", "b"}, {"c"}},
		Info: &testInfo{
			Name:        "test",
			PieceLength: 16384,
			Pieces:      []byte(strings.Repeat("A", 20)),
			Files: []testFile{
				{Length: 10, Path: []string{"x", "y.txt"}},
				{Length: 0, Path: []string{"z"}, MD5: "ff"},
			},
			Private: true,
		},
		CreationDate: 1700000000,
		Comment:      "keep", // `bencode:"-"`: not touched
		Dash:         5,      // `bencode:"-,"`: key "-"
		NoTag:        "yes",  // untagged: the field name is the key
		hidden:       3,      // unexported: not touched
	}
	checkDeepEqual(t, got, want)
}

func TestUnmarshalStructDetails(t *testing.T) {
	// A pointer to a pointer to a struct is allocated along the way.
	var pp **testFile
	if err := Unmarshal([]byte("d6:lengthi3e4:pathl1:aee"), &pp); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, **pp, testFile{Length: 3, Path: []string{"a"}})

	// Keys absent from the input leave fields as they were.
	f := testFile{Length: 1, Path: []string{"old"}, MD5: "m"}
	if err := Unmarshal([]byte("d6:lengthi2ee"), &f); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, f, testFile{Length: 2, Path: []string{"old"}, MD5: "m"})

	// Keys are matched exactly: case matters.
	var cased struct {
		Name string
	}
	if err := Unmarshal([]byte("d4:name1:x4:Name1:Ye"), &cased); err != nil {
		t.Fatal(err)
	}
	if cased.Name != "Y" {
		t.Errorf("Name = %q, want %q", cased.Name, "Y")
	}

	// Two fields claiming one key are both ignored.
	var clash struct {
		A int `bencode:"k"`
		B int `bencode:"k"`
		C int `bencode:"c"`
	}
	if err := Unmarshal([]byte("d1:ci3e1:ki1ee"), &clash); err != nil {
		t.Fatal(err)
	}
	if clash.A != 0 || clash.B != 0 || clash.C != 3 {
		t.Errorf("got %+v, want A=0 B=0 C=3", clash)
	}

	// omitempty has no effect on decoding.
	var oe struct {
		N int `bencode:"n,omitempty"`
	}
	if err := Unmarshal([]byte("d1:ni9ee"), &oe); err != nil || oe.N != 9 {
		t.Errorf("omitempty field: got %d, %v", oe.N, err)
	}

	// An `any` field takes the generic form.
	var gen struct {
		X any `bencode:"x"`
	}
	if err := Unmarshal([]byte("d1:xd1:ali1eeee"), &gen); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, gen.X, map[string]any{"a": []any{int64(1)}})

	// Unknown keys with arbitrary values are skipped, but still checked.
	var s struct{}
	if err := Unmarshal([]byte("d1:ad1:bld1:ci-1eeee1:zi0ee"), &s); err != nil {
		t.Errorf("skipping unknown keys: %v", err)
	}
	checkErr(t, Unmarshal([]byte("d1:ai01ee"), &s), syntaxErr, 4)
	checkErr(t, Unmarshal([]byte("d1:ad1:bi1e1:bi1eee"), &s), syntaxErr, 11)
}

func TestUnmarshalTypeErrorField(t *testing.T) {
	type inner struct {
		Length uint `bencode:"length"`
	}
	var v struct {
		Info  inner   `bencode:"info"`
		Files []inner `bencode:"files"`
		Top   int8    `bencode:"top"`
	}
	tests := []struct {
		in    string
		off   int64
		field string
	}{
		{"d4:infod6:lengthi-1eee", 16, "info.length"},
		{"d5:filesld6:length3:abceee", 18, "files.length"},
		{"d3:topi300ee", 6, "top"},
		{"d4:info3:abce", 7, "info"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := Unmarshal([]byte(tt.in), &v)
			if !checkErr(t, err, typeErr, tt.off) {
				return
			}
			var e *UnmarshalTypeError
			errors.As(err, &e)
			if e.Field != tt.field {
				t.Errorf("Field = %q, want %q", e.Field, tt.field)
			}
			if !strings.Contains(e.Error(), tt.field) {
				t.Errorf("Error() = %q does not name the field", e.Error())
			}
		})
	}
}

func TestUnmarshalMaps(t *testing.T) {
	var m map[string]int
	if err := Unmarshal([]byte("d1:ai1e1:bi2ee"), &m); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, m, map[string]int{"a": 1, "b": 2})

	var empty map[string]int
	if err := Unmarshal([]byte("de"), &empty); err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("empty dict: got %#v, %v", empty, err)
	}

	// Existing entries are kept; new ones are added.
	existing := map[string]int{"old": 1, "a": 0}
	if err := Unmarshal([]byte("d1:ai5ee"), &existing); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, existing, map[string]int{"old": 1, "a": 5})

	type key string
	var named map[key][]string
	if err := Unmarshal([]byte("d1:kl1:vee"), &named); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, named, map[key][]string{"k": {"v"}})

	var nested map[string]map[string]*testFile
	if err := Unmarshal([]byte("d1:ad1:bd6:lengthi1eeee"), &nested); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, nested, map[string]map[string]*testFile{"a": {"b": {Length: 1}}})

	checkErr(t, Unmarshal([]byte("d1:ai1ee"), new(map[int]int)), typeErr, 0)
	checkErr(t, Unmarshal([]byte("de"), new(map[int]string)), typeErr, 0)
	checkErr(t, Unmarshal([]byte("d1:ai1ee"), new(map[string]string)), typeErr, 4)
	checkErr(t, Unmarshal([]byte("de"), new([]any)), typeErr, 0)
	checkErr(t, Unmarshal([]byte("de"), new(string)), typeErr, 0)
}

func TestRawMessage(t *testing.T) {
	const info = "d5:filesld6:lengthi1e4:pathl1:aeee4:name1:x5:otherd1:zd1:yleeee"
	in := "d8:announce1:u4:info" + info + "4:zzzzi1ee"
	var v struct {
		Announce string     `bencode:"announce"`
		Info     RawMessage `bencode:"info"`
		Ptr      *RawMessage
		Z        int `bencode:"zzzz"`
	}
	data := []byte(in)
	if err := Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if string(v.Info) != info {
		t.Errorf("Info = %q, want %q", v.Info, info)
	}
	if v.Announce != "u" || v.Z != 1 || v.Ptr != nil {
		t.Errorf("other fields: %+v", v)
	}
	// The info hash is the SHA-1 of exactly the bytes in the input.
	if sha1.Sum(v.Info) != sha1.Sum([]byte(info)) {
		t.Errorf("info hash differs")
	}
	// The RawMessage is a copy, not a window into the input.
	for i := range data {
		data[i] = 0
	}
	if string(v.Info) != info {
		t.Errorf("RawMessage aliases the input: %q", v.Info)
	}

	tests := []struct {
		in, want string
	}{
		{"i-12e", "i-12e"},
		{"4:spam", "4:spam"},
		{"le", "le"},
		{"ld1:ai1eeli1eee", "ld1:ai1eeli1eee"},
		// Lenient: key order in the input is preserved byte for byte.
		{"d1:bi1e1:ai2ee", "d1:bi1e1:ai2ee"},
	}
	for _, tt := range tests {
		var r RawMessage
		if err := Unmarshal([]byte(tt.in), &r); err != nil || string(r) != tt.want {
			t.Errorf("RawMessage from %q: got %q, %v", tt.in, r, err)
		}
		var p *RawMessage
		if err := Unmarshal([]byte(tt.in), &p); err != nil || p == nil || string(*p) != tt.want {
			t.Errorf("*RawMessage from %q: %v", tt.in, err)
		}
	}

	var list []RawMessage
	if err := Unmarshal([]byte("li1e1:ad1:ai1eee"), &list); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, list, []RawMessage{RawMessage("i1e"), RawMessage("1:a"), RawMessage("d1:ai1ee")})

	var m map[string]RawMessage
	if err := Unmarshal([]byte("d1:ali1ee1:bde1:c0:e"), &m); err != nil {
		t.Fatal(err)
	}
	checkDeepEqual(t, m, map[string]RawMessage{"a": RawMessage("li1ee"), "b": RawMessage("de"), "c": RawMessage("0:")})

	// A RawMessage is still checked: errors inside it are reported at their offset.
	var r RawMessage
	checkErr(t, Unmarshal([]byte("d1:ad1:bi1e1:bi2eee"), &v), syntaxErr, 11)
	checkErr(t, Unmarshal([]byte("ld1:bi1e1:bi2eee"), &r), syntaxErr, 8)
	checkErr(t, (&Decoder{Strict: true}).Unmarshal([]byte("d4:infod1:bi1e1:ai2eee"), &v), syntaxErr, 14)
	checkErr(t, (&Decoder{MaxDepth: 2}).Unmarshal([]byte("d4:infold1:ai1eeeee"), &v), limitErr, 8)
}

// upper decodes a string and upper-cases it.
type upper string

func (u *upper) UnmarshalBencode(b []byte) error {
	var s string
	if err := Unmarshal(b, &s); err != nil {
		return err
	}
	*u = upper(strings.ToUpper(s))
	return nil
}

// recorder keeps the raw bytes it is given.
type recorder struct {
	raw   []byte
	calls int
}

func (r *recorder) UnmarshalBencode(b []byte) error {
	r.raw = append([]byte(nil), b...)
	r.calls++
	return nil
}

var errRefused = errors.New("refused")

type refuser struct{}

func (refuser) UnmarshalBencode([]byte) error { return errRefused }

func TestUnmarshaler(t *testing.T) {
	var u upper
	if err := Unmarshal([]byte("5:hello"), &u); err != nil || u != "HELLO" {
		t.Errorf("top-level Unmarshaler: got %q, %v", u, err)
	}

	var v struct {
		U  upper             `bencode:"u"`
		P  *upper            `bencode:"p"`
		L  []upper           `bencode:"l"`
		M  map[string]upper  `bencode:"m"`
		R  recorder          `bencode:"r"`
		PR map[string]*upper `bencode:"y"`
	}
	// The recorder's value has deliberately unsorted keys.
	in := "d1:l" + "l1:a1:be" + "1:md1:k1:ve" + "1:p2:pp" + "1:r" + "d1:bi1e1:ai2ee" + "1:u1:u" + "1:yd1:k1:qee"
	if err := Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	if v.U != "U" || v.P == nil || *v.P != "PP" || v.PR["k"] == nil || *v.PR["k"] != "Q" {
		t.Errorf("got %+v", v)
	}
	checkDeepEqual(t, v.L, []upper{"A", "B"})
	checkDeepEqual(t, v.M, map[string]upper{"k": "V"})
	if string(v.R.raw) != "d1:bi1e1:ai2ee" || v.R.calls != 1 {
		t.Errorf("recorder got %q in %d calls", v.R.raw, v.R.calls)
	}

	// The Unmarshaler's error is returned, wrapped.
	var rf struct {
		R refuser `bencode:"r"`
	}
	err := Unmarshal([]byte("d1:ri1ee"), &rf)
	if !errors.Is(err, errRefused) {
		t.Errorf("error %v does not wrap errRefused", err)
	}
	if err == nil || !strings.Contains(err.Error(), `"r"`) {
		t.Errorf("error %v does not name the field", err)
	}

	// A malformed value is rejected before the Unmarshaler sees it.
	var rec struct {
		R recorder `bencode:"r"`
	}
	checkErr(t, Unmarshal([]byte("d1:rli01eee"), &rec), syntaxErr, 5)
	if rec.R.calls != 0 {
		t.Errorf("UnmarshalBencode called %d times on malformed input", rec.R.calls)
	}
}

func TestUnmarshalNonPointer(t *testing.T) {
	data := []byte("i1e")
	var x int
	var s struct{}
	for _, v := range []any{nil, x, s, (*int)(nil), (*struct{})(nil), map[string]int{}, []int{}} {
		if err := Unmarshal(data, v); err == nil {
			t.Errorf("Unmarshal(%T) succeeded, want error", v)
		}
		if err := (&Decoder{}).Decode(bytes.NewReader(data), v); err == nil {
			t.Errorf("Decode(%T) succeeded, want error", v)
		}
	}
}

// Each input is malformed in a way that does not depend on the target type,
// so every decoding path (into any, a RawMessage, a struct, Valid) must
// report the same error at the same offset.
var syntaxErrorTests = []struct {
	in  string
	off int64
}{
	{"", 0},
	// Integers.
	{"i", 1},
	{"i1", 2},
	{"i-", 2},
	{"i-1", 3},
	{"ie", 0},
	{"i-e", 0},
	{"i03e", 0},
	{"i00e", 0},
	{"i-0e", 0},
	{"i-03e", 0},
	{"i-00e", 0},
	{"i0000000000000000000000000000001e", 0},
	{"i1.5e", 2},
	{"i+1e", 1},
	{"i 1e", 1},
	{"i--1e", 2},
	{"i1-e", 2},
	{"i1x", 2},
	{"i9223372036854775808e", 0},
	{"i-9223372036854775809e", 0},
	{"i18446744073709551615e", 0},
	{"i18446744073709551616e", 0},
	{"i-18446744073709551616e", 0},
	{"i99999999999999999999999999e", 0},
	// Strings.
	{"0", 1},
	{"3", 1},
	{"12", 2},
	{"3:ab", 0},
	{"03:abc", 0},
	{"00:", 0},
	{"01:a", 0},
	{"1a:x", 1},
	{"1-:x", 1},
	{"999999999999:", 0},
	{"12345678901234567890:", 0}, // 20 digits
	{"1073741824:" + strings.Repeat("x", 89), 0},
	// Lists.
	{"l", 1},
	{"li1e", 4},
	{"li1", 3},
	{"l4:spa", 1},
	{"l1:", 1},
	{"lx", 1},
	{"li1e:e", 4},
	{"l-1e", 1},
	{"lllee", 5},
	// Dictionaries.
	{"d", 1},
	{"d1:a", 4},
	{"d1:ai1e", 7},
	{"d1:", 1},
	{"d1", 2},
	{"di1ei2ee", 1},
	{"dlei1ee", 1},
	{"dde", 1},
	{"dddd", 1},
	{"d1:ae", 4},
	{"d1:ai1ei2ei3ee", 7},
	// Duplicate keys are rejected in lenient mode too, adjacent or not.
	{"d1:ai1e1:ai2ee", 7},
	{"d0:i1e0:i2ee", 6},
	{"d1:ai1e1:bi1e1:ai1ee", 13},
	{"d1:bi1e1:ai1e1:bi1ee", 13},
	{"d1:ci1e1:ai1e1:bi1e1:ci1ee", 19},
	{"d1:ci1e1:ai1e1:bi1e1:ai1ee", 19},
	{"ld1:ai1e1:ai1eee", 8},
	{"d1:ad1:bi1e1:bi1eee", 11},
	// Trailing data.
	{"i1ei2e", 3},
	{"lee", 2},
	{"dee", 2},
	{"0:0:", 2},
	{"4:spamx", 6},
	{"i1e ", 3},
	// Not a value.
	{"x", 0},
	{"e", 0},
	{":", 0},
	{"-1", 0},
	{" i1e", 0},
	{"I1E", 0},
}

// In strict mode an out-of-order key is reported before the duplicate that
// follows it.
var strictOffsets = map[string]int64{
	"d1:bi1e1:ai1e1:bi1ee":       7,
	"d1:ci1e1:ai1e1:bi1e1:ci1ee": 7,
	"d1:ci1e1:ai1e1:bi1e1:ai1ee": 7,
}

func TestSyntaxErrors(t *testing.T) {
	for _, tt := range syntaxErrorTests {
		name := fmt.Sprintf("%.40q", tt.in)
		t.Run(name, func(t *testing.T) {
			data := []byte(tt.in)
			for _, strict := range []bool{false, true} {
				d := &Decoder{Strict: strict}
				off := tt.off
				if so, ok := strictOffsets[tt.in]; ok && strict {
					off = so
				}
				var a any
				errAny := d.Unmarshal(data, &a)
				checkErr(t, errAny, syntaxErr, off)
				var r RawMessage
				errRaw := d.Unmarshal(data, &r)
				checkErr(t, errRaw, syntaxErr, off)
				checkErr(t, d.Valid(data), syntaxErr, off)
				checkErr(t, d.Decode(bytes.NewReader(data), &a), syntaxErr, off)
				if errAny != nil && errRaw != nil && errAny.Error() != errRaw.Error() {
					t.Errorf("any and RawMessage paths disagree:\n%v\n%v", errAny, errRaw)
				}
			}
		})
	}
}

func TestSyntaxErrorsIntoStruct(t *testing.T) {
	tests := []struct {
		in  string
		off int64
	}{
		{"d6:lengthi03ee", 9},
		{"d6:lengthi1e6:lengthi2ee", 12},
		{"d6:lengthi1e4:pathl1:a", 22},
		{"d4:pathl1:ai01eee", 11},
		{"d4:pathl1:a5:bcee", 11},
		{"d4:pathl1:a2:bcccee", 15},
		{"d3:zzzi-0ee", 6},
		{"d3:zzzd1:xi1e1:xi1eee", 13},
		{"d6:length", 9},
		{"d6:lengthi9223372036854775808ee", 9},
		{"di1ei1ee", 1},
		{"d6:lengthi1eei1e", 13},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var f testFile
			checkErr(t, Unmarshal([]byte(tt.in), &f), syntaxErr, tt.off)
		})
	}
}

func TestStrictKeyOrder(t *testing.T) {
	tests := []struct {
		in  string
		off int64 // -1: valid in strict mode too
	}{
		{"d1:ai1e1:bi1ee", -1},
		{"d1:ai1e2:aai1ee", -1}, // a prefix sorts first
		{"d0:i1e1:ai1ee", -1},
		{"d1:ai1e1:\xffi1ee", -1}, // raw byte order, not UTF-8 or signed
		{"d1:Zi1e1:ai1ee", -1},    // upper case sorts before lower
		{"d1:bi1e1:ai1ee", 7},
		{"d2:aai1e1:ai1ee", 8},
		{"d1:\xffi1e1:ai1ee", 7},
		{"d1:ai1e1:ci1e1:bi1ee", 13},
		{"ld1:bi1e1:ai1eee", 8},
		{"d1:ad1:bi1e1:ai1eee", 11},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			data := []byte(tt.in)
			// Lenient accepts all of these.
			if err := (&Decoder{}).Valid(data); err != nil {
				t.Errorf("lenient: %v", err)
			}
			var a any
			if err := Unmarshal(data, &a); err != nil {
				t.Errorf("lenient Unmarshal: %v", err)
			}
			strict := &Decoder{Strict: true}
			if tt.off < 0 {
				checkErr(t, strict.Valid(data), noErr, 0)
				checkErr(t, strict.Unmarshal(data, &a), noErr, 0)
				return
			}
			checkErr(t, strict.Valid(data), syntaxErr, tt.off)
			checkErr(t, strict.Unmarshal(data, &a), syntaxErr, tt.off)
			var r RawMessage
			checkErr(t, strict.Unmarshal(data, &r), syntaxErr, tt.off)
		})
	}

	// Strict mode also applies to struct targets, including skipped keys.
	var f testFile
	strict := &Decoder{Strict: true}
	checkErr(t, strict.Unmarshal([]byte("d4:pathle6:lengthi1ee"), &f), syntaxErr, 9)
	checkErr(t, strict.Unmarshal([]byte("d3:zzzd1:bi1e1:ai1eee"), &f), syntaxErr, 13)
	checkErr(t, strict.Unmarshal([]byte("d6:lengthi1e4:pathlee"), &f), noErr, 0)
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name  string
		d     Decoder
		in    string
		kind  errKind
		off   int64
		limit string
		max   int64
	}{
		{"size ok", Decoder{MaxSize: 6}, "4:spam", noErr, 0, "", 0},
		{"size exceeded", Decoder{MaxSize: 5}, "4:spam", limitErr, 0, "size", 5},
		{"size beats syntax", Decoder{MaxSize: 2}, "xxx", limitErr, 0, "size", 2},
		{"string ok", Decoder{MaxStringLen: 4}, "4:spam", noErr, 0, "", 0},
		{"string exceeded", Decoder{MaxStringLen: 3}, "4:spam", limitErr, 0, "string length", 3},
		{"string in list", Decoder{MaxStringLen: 3}, "l3:abc4:spame", limitErr, 6, "string length", 3},
		{"dict key", Decoder{MaxStringLen: 3}, "d4:spami1ee", limitErr, 1, "string length", 3},
		{"string defaults to size", Decoder{MaxSize: 10}, "8:12345678", noErr, 0, "", 0},
		{"string claim past end", Decoder{MaxStringLen: 3}, "10:abc", syntaxErr, 0, "", 0},
		{"depth 1 ok", Decoder{MaxDepth: 1}, "li1ee", noErr, 0, "", 0},
		{"depth 1 list", Decoder{MaxDepth: 1}, "llee", limitErr, 1, "depth", 1},
		{"depth 1 dict", Decoder{MaxDepth: 1}, "ld1:ai1eee", limitErr, 1, "depth", 1},
		{"depth 2 dicts", Decoder{MaxDepth: 2}, "d1:ad1:ad1:ai1eeee", limitErr, 8, "depth", 2},
		{"depth siblings", Decoder{MaxDepth: 2}, "llelelelelelelee", noErr, 0, "", 0},
		{"depth siblings dict", Decoder{MaxDepth: 3}, "d1:aldee1:bldeee", noErr, 0, "", 0},
		{"depth siblings dict exceeded", Decoder{MaxDepth: 2}, "d1:aldee1:bldeee", limitErr, 5, "depth", 2},
		{"depth default ok", Decoder{}, strings.Repeat("l", 64) + strings.Repeat("e", 64), noErr, 0, "", 0},
		{"depth default exceeded", Decoder{}, strings.Repeat("l", 65) + strings.Repeat("e", 65), limitErr, 64, "depth", 64},
		{"depth negative is default", Decoder{MaxDepth: -1}, strings.Repeat("l", 65) + strings.Repeat("e", 65), limitErr, 64, "depth", 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.in)
			var a any
			errs := map[string]error{
				"any":    tt.d.Unmarshal(data, &a),
				"raw":    tt.d.Valid(data),
				"reader": tt.d.Decode(strings.NewReader(tt.in), &a),
			}
			for path, err := range errs {
				off := tt.off
				if path == "reader" && tt.limit == "size" {
					off = tt.max // Decode stops reading at MaxSize+1 bytes
				}
				if !checkErr(t, err, tt.kind, off) {
					t.Logf("path %s", path)
					continue
				}
				if tt.kind != limitErr {
					continue
				}
				var e *LimitError
				errors.As(err, &e)
				if e.Limit != tt.limit || e.Max != tt.max {
					t.Errorf("%s: LimitError{Limit: %q, Max: %d}, want {%q, %d}", path, e.Limit, e.Max, tt.limit, tt.max)
				}
			}
		})
	}
}

func TestDeepNesting(t *testing.T) {
	const n = 100000
	tests := []struct {
		name string
		in   string
		kind errKind
		off  int64
	}{
		{"lists", strings.Repeat("l", n) + strings.Repeat("e", n), limitErr, 64},
		{"unterminated lists", strings.Repeat("l", n), limitErr, 64},
		{"dicts", strings.Repeat("d1:a", n) + "i1e" + strings.Repeat("e", n), limitErr, 64 * 4},
		{"lists of dicts", strings.Repeat("ld1:a", n), limitErr, 64 * 5 / 2},
		// "dddd" is not nested dictionaries: a key must be a string.
		{"bare d", strings.Repeat("d", n), syntaxErr, 1},
	}
	type deep struct {
		A *deep `bencode:"a"`
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.in)
			var a any
			checkErr(t, Unmarshal(data, &a), tt.kind, tt.off)
			checkErr(t, (&Decoder{}).Valid(data), tt.kind, tt.off)
			var l [][][]any
			err := Unmarshal(data, &l)
			if err == nil {
				t.Errorf("typed list: no error")
			}
			var s deep
			err = Unmarshal(data, &s)
			if err == nil {
				t.Errorf("typed struct: no error")
			}
		})
	}

	// A generous MaxDepth allows deep (but bounded) input.
	const m = 5000
	d := &Decoder{MaxDepth: m}
	in := []byte(strings.Repeat("l", m) + strings.Repeat("e", m))
	if err := d.Valid(in); err != nil {
		t.Errorf("depth %d with MaxDepth %d: %v", m, m, err)
	}
	var a any
	if err := d.Unmarshal(in, &a); err != nil {
		t.Errorf("depth %d with MaxDepth %d: %v", m, m, err)
	}
	in = []byte(strings.Repeat("l", m+1) + strings.Repeat("e", m+1))
	checkErr(t, d.Valid(in), limitErr, m)
}

// A string claiming 1 GiB in a 100-byte input must fail before anything
// of that size is allocated.
func TestHugeLengthClaimDoesNotAllocate(t *testing.T) {
	in := []byte("1073741824:" + strings.Repeat("x", 89))
	if len(in) != 100 {
		t.Fatalf("input is %d bytes", len(in))
	}
	d := &Decoder{MaxSize: 1 << 31, MaxStringLen: 1 << 31}
	targets := []func() any{
		func() any { return new(any) },
		func() any { return new(string) },
		func() any { return new([]byte) },
		func() any { return new(RawMessage) },
		func() any { return new([]string) },
	}
	for _, target := range targets {
		checkErr(t, d.Unmarshal(in, target()), syntaxErr, 0)
	}
	checkErr(t, d.Unmarshal([]byte("l1073741824:xe"), new([]string)), syntaxErr, 1)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const runs = 20
	for range runs {
		for _, target := range targets {
			_ = d.Unmarshal(in, target())
		}
	}
	runtime.ReadMemStats(&after)
	if delta := after.TotalAlloc - before.TotalAlloc; delta > 1<<20 {
		t.Errorf("%d failed decodes allocated %d bytes", runs*len(targets), delta)
	}

	allocs := testing.AllocsPerRun(100, func() {
		var v any
		_ = d.Unmarshal(in, &v)
	})
	if allocs > 10 {
		t.Errorf("%v allocations per failed decode", allocs)
	}
}

// countingReader yields an endless stream of byte c and counts what it gives.
type countingReader struct {
	c byte
	n int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.c
	}
	r.n += int64(len(p))
	return len(p), nil
}

func TestDecodeReader(t *testing.T) {
	// An endless reader: at most MaxSize+1 bytes are read.
	for _, max := range []int64{1, 100, 1000, 4096, 100000} {
		r := &countingReader{c: 'l'}
		d := &Decoder{MaxSize: max}
		var v any
		err := d.Decode(r, &v)
		if checkErr(t, err, limitErr, max) {
			var e *LimitError
			errors.As(err, &e)
			if e.Limit != "size" || e.Max != max {
				t.Errorf("LimitError = %+v", e)
			}
		}
		if r.n > max+1 {
			t.Errorf("MaxSize %d: read %d bytes", max, r.n)
		}
	}

	// Exactly MaxSize bytes is fine; one more is not.
	in := "d3:keyl" + strings.Repeat("i1e", 100) + "ee"
	d := &Decoder{MaxSize: int64(len(in))}
	var v map[string][]int
	if err := d.Decode(strings.NewReader(in), &v); err != nil || len(v["key"]) != 100 {
		t.Errorf("Decode at exactly MaxSize: %v", err)
	}
	d.MaxSize--
	checkErr(t, d.Decode(strings.NewReader(in), &v), limitErr, d.MaxSize)

	// Awkward readers deliver the same result.
	readers := map[string]io.Reader{
		"one byte":   iotest.OneByteReader(strings.NewReader(testTorrentBytes)),
		"half":       iotest.HalfReader(strings.NewReader(testTorrentBytes)),
		"data error": iotest.DataErrReader(strings.NewReader(testTorrentBytes)),
	}
	for name, r := range readers {
		var got testTorrent
		if err := (&Decoder{Strict: true}).Decode(r, &got); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if got.Info == nil || got.Info.Name != "test" {
			t.Errorf("%s: got %+v", name, got)
		}
	}

	// A read error is returned, wrapped.
	errBroken := errors.New("broken pipe")
	var a any
	err := (&Decoder{}).Decode(io.MultiReader(strings.NewReader("li1e"), iotest.ErrReader(errBroken)), &a)
	if !errors.Is(err, errBroken) {
		t.Errorf("Decode error %v does not wrap the read error", err)
	}

	// Errors carry input offsets just as Unmarshal's do.
	checkErr(t, (&Decoder{}).Decode(strings.NewReader("i1ei2e"), &a), syntaxErr, 3)
	checkErr(t, (&Decoder{}).Decode(strings.NewReader(""), &a), syntaxErr, 0)
}

func TestValid(t *testing.T) {
	for _, in := range []string{"i0e", "0:", "le", "de", testTorrentBytes, "d1:bi1e1:ai1ee"} {
		if err := (&Decoder{}).Valid([]byte(in)); err != nil {
			t.Errorf("Valid(%q) = %v", in, err)
		}
	}
	checkErr(t, (&Decoder{Strict: true}).Valid([]byte("d1:bi1e1:ai1ee")), syntaxErr, 7)
	checkErr(t, (&Decoder{}).Valid(nil), syntaxErr, 0)
	checkErr(t, (&Decoder{MaxSize: 3}).Valid([]byte("4:spam")), limitErr, 0)
}

func TestErrorMessages(t *testing.T) {
	var a any
	err := Unmarshal([]byte("i1ei2e"), &a)
	if err == nil || !strings.Contains(err.Error(), "offset 3") {
		t.Errorf("SyntaxError message %q does not give the offset", err)
	}
	err = (&Decoder{MaxDepth: 1}).Unmarshal([]byte("llee"), &a)
	if err == nil || !strings.Contains(err.Error(), "depth") || !strings.Contains(err.Error(), "offset 1") {
		t.Errorf("LimitError message %q", err)
	}
	var i8 int8
	err = Unmarshal([]byte("i300e"), &i8)
	if err == nil || !strings.Contains(err.Error(), "int8") {
		t.Errorf("UnmarshalTypeError message %q", err)
	}
}
