package bencode

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"",
	"i0e",
	"i-1e",
	"i9223372036854775807e",
	"i-9223372036854775808e",
	"i9223372036854775808e",
	"i03e",
	"i-0e",
	"0:",
	"4:spam",
	"03:abc",
	"le",
	"de",
	"li1e4:spame",
	"d3:cow3:moo4:spam4:eggse",
	"d1:bi1e1:ai2ee",
	"d1:ai1e1:ai2ee",
	"d1:ai1e1:bi1e1:ai1ee",
	"di1ei2ee",
	"i1ei2e",
	"999999999999:",
	"9223372036854775807:",
	"9223372036854775808:", // regression: length overflowed to a negative int64
	"1073741824:" + strings.Repeat("x", 89),
	strings.Repeat("l", 70) + strings.Repeat("e", 70),
	strings.Repeat("d1:a", 70) + "i1e" + strings.Repeat("e", 70),
	testTorrentBytes,
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkDecode)
}

// checkDecode checks the properties every input must have when decoded
// into `any`.
func checkDecode(t *testing.T, data []byte) {
	// Report a panic as a failure with the input, so a crashing seed
	// does not abort the rest of the test binary.
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic decoding %q: %v\n%s", data, r, debug.Stack())
		}
	}()
	lenient := &Decoder{}
	strict := &Decoder{Strict: true}

	var lv, sv any
	lerr := lenient.Unmarshal(data, &lv)
	serr := strict.Unmarshal(data, &sv)
	for _, err := range []error{lerr, serr} {
		checkFuzzError(t, data, err)
	}

	// Every path through the decoder agrees on validity, and on the error.
	for _, d := range []*Decoder{lenient, strict} {
		var v any
		errAny := d.Unmarshal(data, &v)
		errValid := d.Valid(data)
		errReader := d.Decode(bytes.NewReader(data), &v)
		if errString(errAny) != errString(errValid) || errString(errAny) != errString(errReader) {
			t.Fatalf("strict=%v: paths disagree on %q:\nany:    %v\nValid:  %v\nreader: %v", d.Strict, data, errAny, errValid, errReader)
		}
	}

	if serr == nil {
		if lerr != nil {
			t.Fatalf("strict accepts %q but lenient rejects it: %v", data, lerr)
		}
		if !reflect.DeepEqual(sv, lv) {
			t.Fatalf("strict and lenient results differ for %q", data)
		}
		// Canonical input round-trips byte for byte.
		enc, err := Marshal(sv)
		if err != nil {
			t.Fatalf("Marshal of strict result: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("strict input not reproduced:\n in %q\nout %q", data, enc)
		}
	}

	if lerr == nil {
		enc, err := Marshal(lv)
		if err != nil {
			t.Fatalf("Marshal of lenient result: %v", err)
		}
		var back any
		if err := strict.Unmarshal(enc, &back); err != nil {
			t.Fatalf("Marshal output %q (from %q) rejected in strict mode: %v", enc, data, err)
		}
		if !reflect.DeepEqual(back, lv) {
			t.Fatalf("lenient round trip changed the value of %q", data)
		}
		var raw RawMessage
		if err := lenient.Unmarshal(data, &raw); err != nil || !bytes.Equal(raw, data) {
			t.Fatalf("RawMessage of %q: %q, %v", data, raw, err)
		}
	}
}

// checkFuzzError fails unless err is nil or a *SyntaxError or *LimitError
// whose offset lies within the input.
func checkFuzzError(t *testing.T, data []byte, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var off int64
	var se *SyntaxError
	var le *LimitError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &le):
		off = le.Offset
	default:
		t.Fatalf("decoding %q into any: error %v is %T", data, err, err)
	}
	if off < 0 || off > int64(len(data)) {
		t.Fatalf("decoding %q: offset %d outside the input: %v", data, off, err)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

type fuzzFile struct {
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
}

type fuzzInfo struct {
	Name        string     `bencode:"name"`
	PieceLength int64      `bencode:"piece length"`
	Pieces      []byte     `bencode:"pieces"`
	Length      int64      `bencode:"length,omitempty"`
	Files       []fuzzFile `bencode:"files,omitempty"`
	Private     bool       `bencode:"private,omitempty"`
	Root        [32]byte   `bencode:"root,omitempty"`
}

type fuzzTorrent struct {
	Announce     string     `bencode:"announce"`
	AnnounceList [][]string `bencode:"announce-list"`
	Info         RawMessage `bencode:"info"`
	CreationDate int64      `bencode:"creation date"`
	Comment      string     `bencode:"comment,omitempty"`
	URLList      []string   `bencode:"url-list,omitempty"`
	Nodes        [][2]any   `bencode:"nodes,omitempty"`
}

func FuzzDecodeStruct(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("d8:announce3:url13:announce-listll1:aee13:creation datei1e4:infod6:lengthi1e4:name1:n12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"))
	f.Add([]byte("d4:infod5:filesld6:lengthi1e4:pathl1:aeed6:lengthi2e4:pathl1:bee4:name1:deee"))
	f.Add([]byte("d5:nodesll1:hi6881eeee"))
	f.Fuzz(checkDecodeStruct)
}

// checkDecodeStruct checks the properties every input must have when
// decoded into a torrent-like struct.
func checkDecodeStruct(t *testing.T, data []byte) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic decoding %q: %v\n%s", data, r, debug.Stack())
		}
	}()
	for _, d := range []*Decoder{{}, {Strict: true}} {
		var tor fuzzTorrent
		if err := d.Unmarshal(data, &tor); err != nil {
			continue
		}
		if tor.Info != nil {
			if !bytes.Contains(data, tor.Info) {
				t.Fatalf("info %q is not a substring of the input %q", tor.Info, data)
			}
			var info fuzzInfo
			_ = d.Unmarshal(tor.Info, &info)
			var pinfo *fuzzInfo
			_ = d.Unmarshal(tor.Info, &pinfo)
		}
		enc, err := Marshal(tor)
		if err != nil {
			t.Fatalf("Marshal of a decoded torrent (from %q): %v", data, err)
		}
		var back fuzzTorrent
		if err := (&Decoder{}).Unmarshal(enc, &back); err != nil {
			t.Fatalf("re-decoding %q (from %q): %v", enc, data, err)
		}
		// Empty omitempty fields are left out, so come back nil.
		if len(tor.URLList) == 0 {
			tor.URLList = nil
		}
		if len(tor.Nodes) == 0 {
			tor.Nodes = nil
		}
		if !reflect.DeepEqual(back, tor) {
			t.Fatalf("struct round trip of %q:\n got %#v\nwant %#v", data, back, tor)
		}
	}
}

// mutate returns a random variation of b, in the spirit of the fuzzer's
// mutators, biased towards bencode's syntax bytes and digits.
func mutate(r *rand.Rand, b []byte) []byte {
	b = bytes.Clone(b)
	const alphabet = "0123456789ilde:-"
	for range 1 + r.IntN(3) {
		switch op := r.IntN(6); {
		case op == 0 && len(b) > 0: // replace a byte
			i := r.IntN(len(b))
			if r.IntN(2) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = byte(r.UintN(256))
			}
		case op == 1 && len(b) > 0: // delete a range
			i := r.IntN(len(b))
			j := i + r.IntN(min(4, len(b)-i)+1)
			b = append(b[:i], b[j:]...)
		case op == 2: // insert syntax bytes or digits
			i := r.IntN(len(b) + 1)
			ins := make([]byte, 1+r.IntN(4))
			for k := range ins {
				ins[k] = alphabet[r.IntN(len(alphabet))]
			}
			b = append(b[:i], append(ins, b[i:]...)...)
		case op == 3 && len(b) > 0: // duplicate a range in place
			i := r.IntN(len(b))
			j := i + 1 + r.IntN(min(16, len(b)-i))
			b = append(b[:j], append(bytes.Clone(b[i:j]), b[j:]...)...)
		case op == 4 && len(b) > 0: // truncate
			b = b[:r.IntN(len(b))]
		default: // splice in another seed
			other := fuzzSeeds[r.IntN(len(fuzzSeeds))]
			i := r.IntN(len(b) + 1)
			b = append(b[:i], append([]byte(other), b[i:]...)...)
		}
	}
	return b
}

// TestMutatedInputs runs deterministic mutations of the seed corpus through
// the fuzz properties, so that plain `go test` explores beyond the seeds.
func TestMutatedInputs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		data := mutate(r, []byte(fuzzSeeds[r.IntN(len(fuzzSeeds))]))
		checkDecode(t, data) // stops the test at the first failure
		checkDecodeStruct(t, data)
	}
}
