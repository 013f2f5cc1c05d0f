package bencode

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// genValue returns a random value of the generic form the decoder produces
// for `any`: int64, string, []any or map[string]any, nested at most depth
// levels deep.
func genValue(r *rand.Rand, depth int) any {
	n := 2
	if depth > 0 {
		n = 4
	}
	switch r.IntN(n) {
	case 0:
		return genInt(r)
	case 1:
		return genString(r)
	case 2:
		l := make([]any, r.IntN(5))
		for i := range l {
			l[i] = genValue(r, depth-1)
		}
		return l
	default:
		m := make(map[string]any)
		for range r.IntN(5) {
			m[genString(r)] = genValue(r, depth-1)
		}
		return m
	}
}

func genInt(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0:
		return []int64{0, 1, -1, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1, math.MaxInt32, math.MinInt32}[r.IntN(9)]
	case 1:
		return int64(r.Uint64())
	case 2:
		return -r.Int64N(1000)
	default:
		return r.Int64N(1000)
	}
}

func genString(r *rand.Rand) string {
	var b []byte
	switch r.IntN(4) {
	case 0: // arbitrary binary, including bencode syntax bytes
		b = make([]byte, r.IntN(24))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
	case 1: // short keys from a small alphabet, so that prefixes and near-duplicates are common
		b = make([]byte, r.IntN(4))
		for i := range b {
			b[i] = "ab\x00\xff"[r.IntN(4)]
		}
	case 2: // a 20-byte hash
		b = make([]byte, 20)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
	default:
		b = make([]byte, r.IntN(10))
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
	}
	return string(b)
}

func TestRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(0x62656e63, 0x6f6465))
	strict := &Decoder{Strict: true}
	n := 3000
	if testing.Short() {
		n = 300
	}
	var maxDepth, totalBytes int
	for i := range n {
		v := genValue(r, 6)
		enc, err := Marshal(v)
		if err != nil {
			t.Fatalf("case %d: Marshal(%#v): %v", i, v, err)
		}
		maxDepth = max(maxDepth, nesting(enc))
		totalBytes += len(enc)
		var got any
		if err := strict.Unmarshal(enc, &got); err != nil {
			t.Fatalf("case %d: strict Unmarshal(%q): %v", i, enc, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("case %d: round trip changed the value\n got %#v\nwant %#v", i, got, v)
		}
		again, err := Marshal(got)
		if err != nil {
			t.Fatalf("case %d: second Marshal: %v", i, err)
		}
		if !bytes.Equal(again, enc) {
			t.Fatalf("case %d: Marshal not stable:\n%q\n%q", i, enc, again)
		}
		// The same bytes are one valid value to every decoding path.
		var raw RawMessage
		if err := strict.Unmarshal(enc, &raw); err != nil || !bytes.Equal(raw, enc) {
			t.Fatalf("case %d: RawMessage: %q, %v", i, raw, err)
		}
		if err := strict.Valid(enc); err != nil {
			t.Fatalf("case %d: Valid: %v", i, err)
		}
		// Any proper prefix is incomplete.
		if len(enc) > 1 {
			cut := 1 + r.IntN(len(enc)-1)
			if err := strict.Valid(enc[:cut]); err == nil {
				t.Fatalf("case %d: prefix %q of %q is valid", i, enc[:cut], enc)
			}
		}
	}
	// Guard against a generator that has degenerated to trivial values.
	if maxDepth < 6 || totalBytes < 50*n {
		t.Errorf("generator too weak: max depth %d, %d bytes in %d values", maxDepth, totalBytes, n)
	}
	t.Logf("%d values, %d bytes, max depth %d", n, totalBytes, maxDepth)
}

// nesting returns the maximum list/dictionary depth of a valid encoding.
func nesting(b []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == 'l' || c == 'd':
			depth++
			deepest = max(deepest, depth)
			i++
		case c == 'e':
			depth--
			i++
		case c == 'i':
			i += bytes.IndexByte(b[i:], 'e') + 1
		default:
			colon := i + bytes.IndexByte(b[i:], ':')
			n := 0
			for _, d := range b[i:colon] {
				n = n*10 + int(d-'0')
			}
			i = colon + 1 + n
		}
	}
	return deepest
}

// Typed values survive Marshal and strict Unmarshal too.
func TestRoundTripTyped(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		var orig testTorrent
		orig.Announce = genString(r)
		for range r.IntN(3) {
			tier := []string{}
			for range r.IntN(3) {
				tier = append(tier, genString(r))
			}
			orig.AnnounceList = append(orig.AnnounceList, tier)
		}
		orig.CreationDate = genInt(r)
		orig.Dash = int(genInt(r))
		orig.NoTag = genString(r)
		if r.IntN(4) > 0 {
			info := &testInfo{
				Name:        genString(r),
				PieceLength: genInt(r),
				Pieces:      []byte(genString(r)),
				Private:     r.IntN(2) == 0,
			}
			for range r.IntN(4) {
				f := testFile{Length: genInt(r), Path: []string{}, MD5: genString(r)}
				for range r.IntN(3) {
					f.Path = append(f.Path, genString(r))
				}
				info.Files = append(info.Files, f)
			}
			orig.Info = info
		}
		enc, err := Marshal(orig)
		if err != nil {
			t.Fatalf("case %d: Marshal: %v", i, err)
		}
		var got testTorrent
		if err := (&Decoder{Strict: true}).Unmarshal(enc, &got); err != nil {
			t.Fatalf("case %d: Unmarshal(%q): %v", i, enc, err)
		}
		// Empty values under omitempty come back nil rather than empty.
		want := orig
		if want.Info != nil {
			info := *want.Info
			if len(info.Files) == 0 {
				info.Files = nil
			}
			if info.Pieces == nil {
				info.Pieces = []byte{}
			}
			want.Info = &info
		}
		if len(want.AnnounceList) == 0 {
			want.AnnounceList = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d:\n got %#v\nwant %#v", i, got, want)
		}
	}
}
