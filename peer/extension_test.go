package peer

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/aiotorrent/aiotorrent/bencode"
)

func sameExtHandshake(a, b *ExtHandshake) bool {
	return maps.Equal(a.M, b.M) && a.V == b.V && a.P == b.P && a.Reqq == b.Reqq &&
		a.MetadataSize == b.MetadataSize && a.BadMetadataSize == b.BadMetadataSize &&
		a.UploadOnly == b.UploadOnly && a.YourIP == b.YourIP && a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6
}

func describeExt(h *ExtHandshake) string {
	if h == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%+v", *h)
}

var (
	v6Example     = "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" // 2001:db8::1
	v4MappedBytes = "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xcb\x00\x71\x07" // ::ffff:203.0.113.7
)

// realHandshakes are extension handshakes as clients send them, written
// by hand after what each sends (keys, ids, value shapes); addresses are
// from the documentation ranges.
var realHandshakes = []struct {
	name    string
	payload string
	want    ExtHandshake
}{
	{
		"BEP 9 example",
		"d1:md11:ut_metadatai3ee13:metadata_sizei31235ee",
		ExtHandshake{M: map[string]int{"ut_metadata": 3}, MetadataSize: 31235},
	},
	{
		// libtorrent 2.0: sorted keys, its fixed ids, complete_ago,
		// upload_only both as an extension and as a flag.
		"qBittorrent 4.6 seeding",
		"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee" +
			"13:metadata_sizei48211e1:pi6881e4:reqqi500e11:upload_onlyi1e1:v17:qBittorrent/4.6.26:yourip4:\xcb\x00\x71\x07e",
		ExtHandshake{
			M:            map[string]int{"lt_donthave": 7, "share_mode": 8, "upload_only": 3, "ut_holepunch": 4, "ut_metadata": 2, "ut_pex": 1},
			MetadataSize: 48211, P: 6881, Reqq: 500, UploadOnly: true, V: "qBittorrent/4.6.2",
			YourIP: netip.MustParseAddr("203.0.113.7"),
		},
	},
	{
		// A libtorrent client fetching metadata from a magnet link: no
		// metadata_size yet.
		"Deluge from a magnet link",
		"d1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee" +
			"1:pi58264e4:reqqi500e1:v29:Deluge/2.1.1 libtorrent/2.0.96:yourip16:" + v6Example + "e",
		ExtHandshake{
			M: map[string]int{"lt_donthave": 7, "share_mode": 8, "upload_only": 3, "ut_holepunch": 4, "ut_metadata": 2, "ut_pex": 1},
			P: 58264, Reqq: 500, V: "Deluge/2.1.1 libtorrent/2.0.9",
			YourIP: netip.MustParseAddr("2001:db8::1"),
		},
	},
	{
		// Transmission 2.9x: the encryption flag "e", its own IPv6
		// address, and "m" not in key order.
		"Transmission 2.94",
		"d1:ei1e4:ipv616:" + v6Example + "1:md6:ut_pexi1e11:ut_metadatai3ee13:metadata_sizei5678e" +
			"1:pi51413e4:reqqi512e1:v17:Transmission 2.946:yourip4:\xc6\x33\x64\x2ae",
		ExtHandshake{
			M: map[string]int{"ut_pex": 1, "ut_metadata": 3}, MetadataSize: 5678, P: 51413, Reqq: 512,
			V: "Transmission 2.94", YourIP: netip.MustParseAddr("198.51.100.42"), IPv6: netip.MustParseAddr("2001:db8::1"),
		},
	},
	{
		"Transmission 4.0 seeding",
		"d1:ei0e4:ipv44:\xc0\x00\x02\x011:md12:ut_holepunchi4e11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei1048576e" +
			"1:pi51413e4:reqqi2000e11:upload_onlyi1e1:v18:Transmission 4.0.56:yourip4:\xcb\x00\x71\x07e",
		ExtHandshake{
			M: map[string]int{"ut_holepunch": 4, "ut_metadata": 3, "ut_pex": 1}, MetadataSize: 1 << 20, P: 51413,
			Reqq: 2000, UploadOnly: true, V: "Transmission 4.0.5", YourIP: netip.MustParseAddr("203.0.113.7"),
			IPv4: netip.MustParseAddr("192.0.2.1"),
		},
	},
	{
		"aria2 1.37",
		"d1:md11:ut_metadatai9e6:ut_pexi8ee13:metadata_sizei23456e1:pi6881e1:v12:aria2/1.37.0e",
		ExtHandshake{M: map[string]int{"ut_metadata": 9, "ut_pex": 8}, MetadataSize: 23456, P: 6881, V: "aria2/1.37.0"},
	},
	{
		// µTorrent: a non-ASCII client name, ut_comment, and an IPv4
		// "yourip" sent as a v4-mapped IPv6 address.
		"uTorrent 3.5.5",
		"d1:ei0e4:ipv616:" + v6Example + "1:md11:upload_onlyi3e10:ut_commenti6e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee" +
			"13:metadata_sizei15004e1:pi29870e4:reqqi255e1:v15:\xc2\xb5Torrent 3.5.56:yourip16:" + v4MappedBytes + "e",
		ExtHandshake{
			M:            map[string]int{"upload_only": 3, "ut_comment": 6, "ut_holepunch": 4, "ut_metadata": 2, "ut_pex": 1},
			MetadataSize: 15004, P: 29870, Reqq: 255, V: "µTorrent 3.5.5",
			YourIP: netip.MustParseAddr("203.0.113.7"), IPv6: netip.MustParseAddr("2001:db8::1"),
		},
	},
	{
		"anacrolix/torrent",
		"d1:md11:ut_metadatai2e6:ut_pexi1ee1:pi42069e4:reqqi250e1:v23:go.torrent dev 201811216:yourip4:\xc6\x33\x64\x2ae",
		ExtHandshake{
			M: map[string]int{"ut_metadata": 2, "ut_pex": 1}, P: 42069, Reqq: 250, V: "go.torrent dev 20181121",
			YourIP: netip.MustParseAddr("198.51.100.42"),
		},
	},
	{
		// What the root package sends today (bencode.Marshal of its
		// extHandshake struct).
		"aiotorrent 0.1",
		"d1:mde1:pi6881e4:reqqi250e1:v14:aiotorrent 0.1e",
		ExtHandshake{M: map[string]int{}, P: 6881, Reqq: 250, V: "aiotorrent 0.1"},
	},
	{
		// A handshake sent again to turn peer exchange off.
		"disable ut_pex",
		"d1:md6:ut_pexi0eee",
		ExtHandshake{M: map[string]int{"ut_pex": 0}},
	},
}

func TestParseExtHandshakeReal(t *testing.T) {
	for _, tc := range realHandshakes {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseExtHandshake([]byte(tc.payload))
			if err != nil {
				t.Fatalf("ParseExtHandshake(%q): %v", tc.payload, err)
			}
			if !sameExtHandshake(got, &tc.want) {
				t.Fatalf("ParseExtHandshake(%q)\n got %s\nwant %s", tc.payload, describeExt(got), describeExt(&tc.want))
			}
			checkExtRoundTrip(t, got)
		})
	}
}

// checkExtRoundTrip checks that h encodes to canonical bencode, the same
// as bencode.Marshal writes, that parses back to h.
func checkExtRoundTrip(t *testing.T, h *ExtHandshake) {
	t.Helper()
	enc := h.Append(nil)
	if err := (&bencode.Decoder{Strict: true}).Valid(enc); err != nil {
		t.Fatalf("%s encodes to %q, not canonical: %v", describeExt(h), enc, err)
	}
	ref, err := bencode.Marshal(extHandshakeMap(h))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, ref) {
		t.Fatalf("%s encodes to\n%q, bencode.Marshal gives\n%q", describeExt(h), enc, ref)
	}
	back, err := ParseExtHandshake(enc)
	if err != nil {
		t.Fatalf("%s encoded as %q: %v", describeExt(h), enc, err)
	}
	want := *h
	want.BadMetadataSize = 0
	if !sameExtHandshake(back, &want) {
		t.Fatalf("round trip through %q\n got %s\nwant %s", enc, describeExt(back), describeExt(&want))
	}
	if again := back.Append(nil); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoded as %q, first as %q", again, enc)
	}
}

// extHandshakeMap is h as the map bencode.Marshal should encode the same
// as h.Append.
func extHandshakeMap(h *ExtHandshake) map[string]any {
	m := map[string]any{"m": map[string]int{}}
	if h.M != nil {
		m["m"] = h.M
	}
	if h.V != "" {
		m["v"] = h.V
	}
	if h.P != 0 {
		m["p"] = h.P
	}
	if h.Reqq != 0 {
		m["reqq"] = h.Reqq
	}
	if h.MetadataSize != 0 {
		m["metadata_size"] = h.MetadataSize
	}
	if h.UploadOnly {
		m["upload_only"] = 1
	}
	if h.YourIP.IsValid() {
		m["yourip"] = h.YourIP.Unmap().AsSlice()
	}
	if h.IPv4.Is4() {
		m["ipv4"] = h.IPv4.AsSlice()
	}
	if h.IPv6.IsValid() {
		a := h.IPv6.As16()
		m["ipv6"] = a[:]
	}
	return m
}

func TestExtHandshakeRoundTrip(t *testing.T) {
	tests := []ExtHandshake{
		{},
		{M: map[string]int{}},
		{M: map[string]int{ExtMetadata: 1, ExtPEX: 2}, V: "aiotorrent 0.2", P: 6881, Reqq: 250},
		{M: map[string]int{ExtMetadata: 255, "": 0, "x y": 17}, MetadataSize: MaxMetadataSize},
		{M: map[string]int{ExtMetadata: 1}, MetadataSize: 1, UploadOnly: true},
		{P: 65535, Reqq: math.MaxInt32, V: "\x00\xff not UTF-8"},
		{YourIP: netip.MustParseAddr("203.0.113.7"), IPv4: netip.MustParseAddr("192.0.2.1"), IPv6: netip.MustParseAddr("2001:db8::1")},
		{YourIP: netip.MustParseAddr("2001:db8::2")},
		{YourIP: netip.MustParseAddr("::ffff:192.0.2.9")}, // written as 4 bytes, read back as IPv4
		{IPv6: netip.MustParseAddr("::ffff:192.0.2.9")},   // written as 16 bytes, read back the same
		{M: map[string]int{"ut_pex": 0}},
		{MetadataSize: 31235, BadMetadataSize: -1}, // BadMetadataSize is not written
	}
	for _, h := range tests {
		t.Run(describeExt(&h), func(t *testing.T) {
			enc := h.Append(nil)
			got, err := ParseExtHandshake(enc)
			if err != nil {
				t.Fatalf("%q: %v", enc, err)
			}
			want := h
			want.BadMetadataSize = 0
			if want.YourIP.IsValid() {
				want.YourIP = want.YourIP.Unmap()
			}
			if !sameExtHandshake(got, &want) {
				t.Fatalf("round trip through %q\n got %s\nwant %s", enc, describeExt(got), describeExt(&want))
			}
			if got.M == nil { // "m" is always written
				t.Fatalf("M of %q is nil", enc)
			}
			checkExtRoundTrip(t, got)
		})
	}
}

func TestExtHandshakeAppend(t *testing.T) {
	tests := []struct {
		h    ExtHandshake
		want string
	}{
		{ExtHandshake{}, "d1:mdee"},
		{ExtHandshake{M: map[string]int{ExtMetadata: 3}, MetadataSize: 31235}, "d1:md11:ut_metadatai3ee13:metadata_sizei31235ee"},
		{
			ExtHandshake{
				M: map[string]int{ExtPEX: 2, ExtMetadata: 1}, V: "aiotorrent", P: 6881, Reqq: 250, UploadOnly: true,
				YourIP: netip.MustParseAddr("192.0.2.1"), BadMetadataSize: 1 << 40,
			},
			"d1:md11:ut_metadatai1e6:ut_pexi2ee1:pi6881e4:reqqi250e11:upload_onlyi1e1:v10:aiotorrent6:yourip4:\xc0\x00\x02\x01e",
		},
	}
	for _, tc := range tests {
		if got := tc.h.Append([]byte("prefix")); string(got) != "prefix"+tc.want {
			t.Errorf("%s.Append\n got %q\nwant %q", describeExt(&tc.h), got, "prefix"+tc.want)
		}
	}
}

// TestParseExtHandshakeLenient checks that optional keys of the wrong type
// or out of range are ignored, not errors.
func TestParseExtHandshakeLenient(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    ExtHandshake
	}{
		{"empty dictionary", "de", ExtHandshake{}},
		{"v integer", "d1:md11:ut_metadatai2ee1:vi123ee", ExtHandshake{M: map[string]int{"ut_metadata": 2}}},
		{"v list", "d1:vl3:abcee", ExtHandshake{}},
		{"v empty", "d1:v0:e", ExtHandshake{}},
		{"p string", "d1:p4:6881e", ExtHandshake{}},
		{"p 0", "d1:pi0ee", ExtHandshake{}},
		{"p negative", "d1:pi-6881ee", ExtHandshake{}},
		{"p 65536", "d1:pi65536ee", ExtHandshake{}},
		{"p 65535", "d1:pi65535ee", ExtHandshake{P: 65535}},
		{"reqq string", "d4:reqq3:500e", ExtHandshake{}},
		{"reqq 0", "d4:reqqi0ee", ExtHandshake{}},
		{"reqq negative", "d4:reqqi-1ee", ExtHandshake{}},
		{"reqq 2^31", "d4:reqqi2147483648ee", ExtHandshake{}},
		{"reqq huge", "d4:reqqi9223372036854775807ee", ExtHandshake{}},
		{"m list", "d1:mli1ee1:v1:xe", ExtHandshake{V: "x"}},
		{"m string", "d1:m11:ut_metadatae", ExtHandshake{}},
		{"m integer", "d1:mi2ee", ExtHandshake{}},
		{"m empty", "d1:mdee", ExtHandshake{M: map[string]int{}}},
		{
			"m entries not integers",
			"d1:md1:al1:be1:bd1:ci1ee1:c1:711:ut_metadatai2e6:ut_pex3:oneee",
			ExtHandshake{M: map[string]int{"ut_metadata": 2}},
		},
		{"m unsorted", "d1:md6:ut_pexi1e11:ut_metadatai2e1:ai3eee", ExtHandshake{M: map[string]int{"ut_pex": 1, "ut_metadata": 2, "a": 3}}},
		{"m ids 0 and 255", "d1:md1:ai0e1:bi255eee", ExtHandshake{M: map[string]int{"a": 0, "b": 255}}},
		{"metadata_size string", "d13:metadata_size5:31235e", ExtHandshake{}},
		{"metadata_size list", "d13:metadata_sizeli1eee", ExtHandshake{}},
		{"upload_only string", "d11:upload_only1:1e", ExtHandshake{}},
		{"upload_only 0", "d11:upload_onlyi0ee", ExtHandshake{}},
		{"upload_only 2", "d11:upload_onlyi2ee", ExtHandshake{UploadOnly: true}},
		{"yourip 5 bytes", "d6:yourip5:\x01\x02\x03\x04\x05e", ExtHandshake{}},
		{"yourip empty", "d6:yourip0:e", ExtHandshake{}},
		{"yourip integer", "d6:youripi1ee", ExtHandshake{}},
		{"yourip text", "d6:yourip11:192.0.2.100e", ExtHandshake{}},
		{"yourip 0.0.0.0", "d6:yourip4:\x00\x00\x00\x00e", ExtHandshake{YourIP: netip.IPv4Unspecified()}},
		{"ipv4 of 16 bytes", "d4:ipv416:" + v6Example + "e", ExtHandshake{}},
		{"ipv6 of 4 bytes", "d4:ipv64:\xc0\x00\x02\x01e", ExtHandshake{}},
		{"ipv4 string of text", "d4:ipv47:1.2.3.4e", ExtHandshake{}},
		{
			"unknown keys of every kind",
			"d1:ai1e1:bd1:cl1:dee1:md6:ut_pexi1ee5:z_bin3:\x00\x01\x02e",
			ExtHandshake{M: map[string]int{"ut_pex": 1}},
		},
		{"keys out of order", "d1:v1:x1:pi1e1:md1:ai1eee", ExtHandshake{M: map[string]int{"a": 1}, P: 1, V: "x"}},
		{
			"nested 8 deep",
			"d1:x" + strings.Repeat("l", 7) + strings.Repeat("e", 7) + "1:pi1ee",
			ExtHandshake{P: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseExtHandshake([]byte(tc.payload))
			if err != nil {
				t.Fatalf("ParseExtHandshake(%q): %v", tc.payload, err)
			}
			if !sameExtHandshake(got, &tc.want) {
				t.Fatalf("ParseExtHandshake(%q)\n got %s\nwant %s", tc.payload, describeExt(got), describeExt(&tc.want))
			}
			checkExtRoundTrip(t, got)
		})
	}
}

func TestExtHandshakeMetadataSize(t *testing.T) {
	tests := []struct {
		sent      string
		size, bad int64
	}{
		{"1", 1, 0},
		{"31235", 31235, 0},
		{"16384", 16384, 0},
		{fmt.Sprint(MaxMetadataSize), MaxMetadataSize, 0},
		{fmt.Sprint(MaxMetadataSize + 1), 0, MaxMetadataSize + 1},
		{"1073741824", 0, 1 << 30}, // 1 GiB
		{"9223372036854775807", 0, math.MaxInt64},
		{"0", 0, 0}, // no metadata: as if absent
		{"-1", 0, -1},
		{"-9223372036854775808", 0, math.MinInt64},
	}
	for _, tc := range tests {
		payload := "d1:md11:ut_metadatai2ee13:metadata_sizei" + tc.sent + "e1:v3:abce"
		h, err := ParseExtHandshake([]byte(payload))
		if err != nil {
			t.Errorf("metadata_size %s: %v", tc.sent, err)
			continue
		}
		if h.MetadataSize != tc.size || h.BadMetadataSize != tc.bad {
			t.Errorf("metadata_size %s: MetadataSize %d, BadMetadataSize %d, want %d, %d", tc.sent, h.MetadataSize, h.BadMetadataSize, tc.size, tc.bad)
		}
		// The rest of the handshake is still there.
		if h.M[ExtMetadata] != 2 || h.V != "abc" {
			t.Errorf("metadata_size %s: %s", tc.sent, describeExt(h))
		}
	}
}

func TestParseExtHandshakeErrors(t *testing.T) {
	long := "d1:v" + fmt.Sprint(MaxExtendedLen) + ":" + strings.Repeat("x", MaxExtendedLen) + "e"
	tests := []struct {
		name    string
		payload string
	}{
		{"empty", ""},
		{"list", "le"},
		{"integer", "i1e"},
		{"string", "1:d"},
		{"space", " de"},
		{"truncated", "d"},
		{"truncated in m", "d1:md11:ut_metadatai2e"},
		{"truncated key", "d1:md11:ut_meta"},
		{"trailing byte", "d1:mdeex"},
		{"trailing dictionary", "d1:mdeede"},
		{"duplicate key", "d1:pi1e1:pi2ee"},
		{"duplicate key in m", "d1:md6:ut_pexi1e6:ut_pexi2eee"},
		{"duplicate key out of order", "d1:pi1e1:ai1e1:pi2ee"},
		{"id 256", "d1:md6:ut_pexi256eee"},
		{"id -1", "d1:md11:ut_metadatai-1eee"},
		{"id 2^63-1", "d1:md11:ut_metadatai9223372036854775807eee"},
		{"id overflows int64", "d1:md11:ut_metadatai9223372036854775808eee"},
		{"integer with leading zero", "d1:pi06881ee"},
		{"negative zero", "d1:pi-0ee"},
		{"empty integer", "d1:piee"},
		{"string length with leading zero", "d1:v03:abce"},
		{"key not a string", "di1ei2ee"},
		{"dictionary as key", "dde1:ae"},
		{"nested 9 deep", "d1:x" + strings.Repeat("l", 8) + strings.Repeat("e", 8) + "e"},
		{"nested 1000 deep", "d1:x" + strings.Repeat("l", 1000) + strings.Repeat("e", 1000) + "e"},
		{"string past the end", "d1:v99:abce"},
		{"longer than MaxExtendedLen", long},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseExtHandshake([]byte(tc.payload))
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("ParseExtHandshake(%.60q) = %s, %v; want an error wrapping ErrBadMessage", tc.payload, describeExt(h), err)
			}
			if h != nil {
				t.Fatalf("ParseExtHandshake(%.60q) returned %s with its error", tc.payload, describeExt(h))
			}
		})
	}
}

// TestExtHandshakeRootCompat checks that what the root package's
// extHandshake encodes to (through bencode.Marshal) parses.
func TestExtHandshakeRootCompat(t *testing.T) {
	type rootExtHandshake struct {
		M    map[string]int `bencode:"m"`
		V    string         `bencode:"v,omitempty"`
		P    int            `bencode:"p,omitempty"`
		Reqq int            `bencode:"reqq,omitempty"`
	}
	payload, err := bencode.Marshal(rootExtHandshake{V: "aiotorrent 0.1", Reqq: 250, P: 6881, M: map[string]int{}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseExtHandshake(payload)
	if err != nil {
		t.Fatalf("%q: %v", payload, err)
	}
	want := ExtHandshake{M: map[string]int{}, V: "aiotorrent 0.1", Reqq: 250, P: 6881}
	if !sameExtHandshake(h, &want) {
		t.Fatalf("%q: got %s", payload, describeExt(h))
	}
	if enc := h.Append(nil); !bytes.Equal(enc, payload) {
		t.Fatalf("Append gives %q, bencode.Marshal %q", enc, payload)
	}
}

func TestParseExtHandshakeAllocs(t *testing.T) {
	payload := []byte(realHandshakes[1].payload)
	n := testing.AllocsPerRun(100, func() {
		if _, err := ParseExtHandshake(payload); err != nil {
			t.Fatal(err)
		}
	})
	// Once per connection: only check it stays modest.
	if n > 100 {
		t.Errorf("%.0f allocations to parse a handshake of %d bytes", n, len(payload))
	}
	t.Logf("%.0f allocations", n)
}
