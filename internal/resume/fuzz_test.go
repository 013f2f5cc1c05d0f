package resume

import (
	"bytes"
	"path/filepath"
	"testing"
)

// FuzzDecode checks that Decode never panics and that whatever it accepts
// is a fixed point: encoding it and decoding again gives the same State,
// and that encoding is the same bytes again.
func FuzzDecode(f *testing.F) {
	for _, tc := range roundTripStates() {
		data, err := Encode(tc.s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(marshal(f, valid()))
	f.Add([]byte("de"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			if s != nil {
				t.Fatalf("Decode returned a state with error %v", err)
			}
			return
		}
		if s.Pieces == nil || len(s.Pieces.Bytes()) != (s.Pieces.Len()+7)/8 || s.Pieces.Count() > s.Pieces.Len() {
			t.Fatalf("Decode: malformed pieces %+v", s.Pieces)
		}
		if !filepath.IsAbs(s.Dir) {
			t.Fatalf("Decode: folder %q is not absolute", s.Dir)
		}
		for i, f := range s.Files {
			if !f.Stamp.Exists && (f.Stamp.Size != 0 || !f.Stamp.ModTime.IsZero()) {
				t.Fatalf("Decode: file %d: missing with stamp %+v", i, f.Stamp)
			}
			if f.Stamp.Size < 0 {
				t.Fatalf("Decode: file %d: size %d", i, f.Stamp.Size)
			}
		}
		enc, err := Encode(s)
		if err != nil {
			t.Fatalf("Encode(Decode(%q)): %v", data, err)
		}
		s2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%q))) = %v\nencoded: %q", data, err, enc)
		}
		if d := diffState(s, s2); d != "" {
			t.Fatalf("Decode(Encode(s)) != s for input %q: %s\nencoded: %q", data, d, enc)
		}
		enc2, err := Encode(s2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode not stable:\n%q\n%q", enc, enc2)
		}
	})
}
