package metainfo

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseMagnet checks that ParseMagnet never panics, that its errors
// follow the conventions, and that a link it accepts survives a trip
// through String.
//
// Seeds live in testdata/fuzz/FuzzParseMagnet; more come from f.Add.
func FuzzParseMagnet(f *testing.F) {
	for _, tc := range magnetOK(f) {
		f.Add(tc.link)
	}
	f.Add("magnet:?xt=urn:btmh:" + testBtmh)
	f.Add("magnet:?xt=urn:btih:" + testHex + "&so=0-1,x")
	f.Add("magnet:?xt=urn:btih:" + testHex + "&x.pe=[fe80::1%25eth0]:80")

	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMagnet(s)
		if err != nil {
			if m != nil {
				t.Fatalf("ParseMagnet(%q) returned both %+v and %v", s, m, err)
			}
			if !strings.HasPrefix(err.Error(), "magnet:") {
				t.Fatalf("ParseMagnet(%q): error %q does not start with \"magnet:\"", s, err)
			}
			return
		}
		if m == nil {
			t.Fatalf("ParseMagnet(%q) returned nil, nil", s)
		}
		for i := range 1 << 5 { // Selects must not panic either
			m.Selects(i - 1)
		}

		link := m.String()
		if len(link) > magnetMaxLen {
			// Escaping can make the canonical link longer than an input
			// that was just under the limit; ParseMagnet then rightly
			// refuses it.
			return
		}
		m2, err := ParseMagnet(link)
		if err != nil {
			t.Fatalf("ParseMagnet(%q) succeeded but its String %q fails: %v", s, link, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip of %q through %q\n got %#v\nwant %#v", s, link, m2, m)
		}
		if link2 := m2.String(); link2 != link {
			t.Fatalf("String not stable: %q then %q", link, link2)
		}
	})
}
