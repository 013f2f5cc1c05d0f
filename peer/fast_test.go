package peer

import (
	"net/netip"
	"slices"
	"testing"
)

// The example of BEP 6: 80.4.4.200, an info hash of 0xaa bytes and 1313
// pieces.
func TestAllowedFastSet(t *testing.T) {
	var h [20]byte
	for i := range h {
		h[i] = 0xaa
	}
	cases := []struct {
		ip        string
		numPieces int
		k         int
		want      []uint32
	}{
		{"80.4.4.200", 1313, 7, []uint32{1059, 431, 808, 1217, 287, 376, 1188}},
		{"80.4.4.200", 1313, 9, []uint32{1059, 431, 808, 1217, 287, 376, 1188, 353, 508}},
		{"80.4.4.7", 1313, 7, []uint32{1059, 431, 808, 1217, 287, 376, 1188}}, // same /24
		{"::ffff:80.4.4.200", 1313, 7, []uint32{1059, 431, 808, 1217, 287, 376, 1188}},
		{"2001:db8::1", 1313, 7, nil},
		{"80.4.4.200", 7, 7, nil},
		{"80.4.4.200", 1313, 0, nil},
	}
	for _, tc := range cases {
		got := AllowedFastSet(netip.MustParseAddr(tc.ip), h, tc.numPieces, tc.k)
		if !slices.Equal(got, tc.want) {
			t.Errorf("AllowedFastSet(%s, %d, %d) = %v, want %v", tc.ip, tc.numPieces, tc.k, got, tc.want)
		}
	}
	// Few pieces: the set still fills, with distinct pieces in range.
	got := AllowedFastSet(netip.MustParseAddr("10.0.0.1"), h, 11, 10)
	if len(got) != 10 {
		t.Fatalf("got %d pieces, want 10: %v", len(got), got)
	}
	for i, p := range got {
		if p >= 11 || slices.Contains(got[:i], p) {
			t.Fatalf("bad set %v", got)
		}
	}
}
