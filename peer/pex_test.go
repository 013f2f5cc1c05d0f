package peer

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aiotorrent/aiotorrent/bencode"
)

func samePEX(a, b PEXMsg) bool {
	return slices.Equal(a.Added, b.Added) && slices.Equal(a.Dropped, b.Dropped)
}

func describePEX(m PEXMsg) string {
	var s strings.Builder
	s.WriteString("{Added:[")
	for i, p := range m.Added {
		if i > 0 {
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%s(%s)", p.Addr, p.Flags)
	}
	s.WriteString("] Dropped:")
	fmt.Fprint(&s, m.Dropped)
	s.WriteString("}")
	return s.String()
}

// compact returns the compact entries (BEP 23) of addrs, each "ip:port":
// 6 bytes for an IPv4 address, 18 for any other, IPv4-mapped ones
// included.
func compact(addrs ...string) string {
	var b []byte
	for _, s := range addrs {
		ap := netip.MustParseAddrPort(s)
		if ap.Addr().Is4() {
			a := ap.Addr().As4()
			b = append(b, a[:]...)
		} else {
			a := ap.Addr().As16()
			b = append(b, a[:]...)
		}
		b = append(b, byte(ap.Port()>>8), byte(ap.Port()))
	}
	return string(b)
}

// benc returns a bencoded dictionary of kv, key then string value, in
// the order given (not sorted unless they are).
func benc(kv ...string) string {
	var b []byte
	b = append(b, 'd')
	for _, s := range kv {
		b = appendBString(b, s)
	}
	return string(append(b, 'e'))
}

// peers returns the peers of kv: "ip:port", then flags (an int or
// PEXFlags), and so on.
func peers(kv ...any) []PEXPeer {
	var ps []PEXPeer
	for i := 0; i < len(kv); i += 2 {
		var f PEXFlags
		switch v := kv[i+1].(type) {
		case int:
			f = PEXFlags(v)
		case PEXFlags:
			f = v
		}
		ps = append(ps, PEXPeer{Addr: netip.MustParseAddrPort(kv[i].(string)), Flags: f})
	}
	return ps
}

// addrs returns the addresses s, each "ip:port".
func addrs(s ...string) []netip.AddrPort {
	var as []netip.AddrPort
	for _, a := range s {
		as = append(as, netip.MustParseAddrPort(a))
	}
	return as
}

// realPEX are ut_pex messages as clients send them, written by hand after
// what each sends (keys, key order, flags); addresses are from the
// documentation ranges.
var realPEX = []struct {
	name    string
	payload string
	want    PEXMsg
}{
	{
		// libtorrent 1.2/2.0 writes all six keys, sorted. Its first
		// message to a peer lists all its peers and no dropped; its
		// flags are seed, encryption, uTP and holepunch, never 0x10.
		"qBittorrent 4.6 first message",
		benc("added", compact("203.0.113.5:51413", "198.51.100.20:6881"), "added.f", "\x0d\x02",
			"added6", compact("[2001:db8::5]:6881"), "added6.f", "\x01",
			"dropped", "", "dropped6", ""),
		PEXMsg{Added: peers("203.0.113.5:51413", 0x0d, "198.51.100.20:6881", 0x02, "[2001:db8::5]:6881", 0x01)},
	},
	{
		// Later messages: what changed since the last, every key still
		// there.
		"qBittorrent 4.6 diff",
		benc("added", compact("192.0.2.33:40001"), "added.f", "\x04", "added6", "", "added6.f", "",
			"dropped", compact("203.0.113.5:51413", "198.51.100.20:6881"), "dropped6", compact("[2001:db8::5]:6881")),
		PEXMsg{
			Added:   peers("192.0.2.33:40001", 0x04),
			Dropped: addrs("203.0.113.5:51413", "198.51.100.20:6881", "[2001:db8::5]:6881"),
		},
	},
	{
		// Transmission 3/4 writes only the keys it has something for,
		// sets 0x10 for peers it connected to, and clears holepunch.
		"Transmission 4.0 added",
		benc("added", compact("198.51.100.42:51413", "203.0.113.9:6881"), "added.f", "\x12\x05",
			"added6", compact("[2001:db8:1::9]:51413"), "added6.f", "\x10"),
		PEXMsg{Added: peers("198.51.100.42:51413", 0x12, "203.0.113.9:6881", 0x05, "[2001:db8:1::9]:51413", 0x10)},
	},
	{
		"Transmission 4.0 dropped only",
		benc("dropped", compact("198.51.100.42:51413", "203.0.113.9:6881")),
		PEXMsg{Dropped: addrs("198.51.100.42:51413", "203.0.113.9:6881")},
	},
	{
		// aria2 writes "added", "added.f" and "dropped", always, and
		// IPv4 peers only.
		"aria2 1.37",
		benc("added", compact("192.0.2.7:6881"), "added.f", "\x00", "dropped", ""),
		PEXMsg{Added: peers("192.0.2.7:6881", 0)},
	},
	{
		// anacrolix/torrent marshals a struct of all six keys; libtorrent
		// the same when nothing changed but it still sends.
		"all six keys empty",
		benc("added", "", "added.f", "", "added6", "", "added6.f", "", "dropped", "", "dropped6", ""),
		PEXMsg{},
	},
	{
		"what AppendPEX writes for nothing",
		benc("added", "", "added.f", "", "dropped", ""),
		PEXMsg{},
	},
}

func TestParsePEXReal(t *testing.T) {
	for _, tc := range realPEX {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePEX([]byte(tc.payload))
			if err != nil {
				t.Fatalf("ParsePEX(%q): %v", tc.payload, err)
			}
			if !samePEX(got, tc.want) {
				t.Fatalf("ParsePEX(%q)\n got %s\nwant %s", tc.payload, describePEX(got), describePEX(tc.want))
			}
			checkPEXRoundTrip(t, got)
		})
	}
}

// pexMap is m as the map bencode.Marshal should encode the same as
// AppendPEX.
func pexMap(m PEXMsg) map[string]string {
	out := map[string]string{"added": "", "added.f": "", "dropped": ""}
	for _, p := range m.Added {
		key := "added"
		if !p.Addr.Addr().Unmap().Is4() {
			key = "added6"
		}
		out[key] += compact(netip.AddrPortFrom(p.Addr.Addr().Unmap(), p.Addr.Port()).String())
		out[key+".f"] += string([]byte{byte(p.Flags)})
	}
	for _, a := range m.Dropped {
		key := "dropped"
		if !a.Addr().Unmap().Is4() {
			key = "dropped6"
		}
		out[key] += compact(netip.AddrPortFrom(a.Addr().Unmap(), a.Port()).String())
	}
	return out
}

// checkPEXRoundTrip checks that m encodes to canonical bencode, the same
// as bencode.Marshal writes, that parses back to m and encodes again the
// same.
func checkPEXRoundTrip(t *testing.T, m PEXMsg) {
	t.Helper()
	enc := AppendPEX(nil, m)
	if err := (&bencode.Decoder{Strict: true, MaxDepth: maxExtDepth}).Valid(enc); err != nil {
		t.Fatalf("%s encodes to %q, not canonical: %v", describePEX(m), enc, err)
	}
	ref, err := bencode.Marshal(pexMap(m))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, ref) {
		t.Fatalf("%s encodes to\n%q, bencode.Marshal gives\n%q", describePEX(m), enc, ref)
	}
	back, err := ParsePEX(enc)
	if err != nil {
		t.Fatalf("%s encoded as %q: %v", describePEX(m), enc, err)
	}
	if !samePEX(back, m) {
		t.Fatalf("round trip through %q\n got %s\nwant %s", enc, describePEX(back), describePEX(m))
	}
	if again := AppendPEX(nil, back); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoded as %q, first as %q", again, enc)
	}
}

func TestPEXRoundTrip(t *testing.T) {
	many := func(n int, v6 bool) (ps []PEXPeer, as []netip.AddrPort) {
		for i := range n {
			ip := netip.AddrFrom4([4]byte{198, 51, byte(100 + i/250), byte(1 + i%250)})
			if v6 {
				ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
			}
			ap := netip.AddrPortFrom(ip, uint16(1+i))
			ps = append(ps, PEXPeer{Addr: ap, Flags: PEXFlags(i)})
			as = append(as, ap)
		}
		return ps, as
	}
	max4, maxD4 := many(MaxPEXPeers, false)
	max6, maxD6 := many(MaxPEXPeers, true)
	tests := []PEXMsg{
		{},
		{Added: peers("192.0.2.1:1", 0)},
		{Added: peers("192.0.2.1:65535", 0xff)},
		{Dropped: addrs("192.0.2.1:6881")},
		{Added: peers("[2001:db8::1]:6881", PEXSeed|PEXUTP)},
		{Dropped: addrs("[2001:db8::1]:6881")},
		{
			Added:   peers("192.0.2.1:6881", 0x01, "192.0.2.1:6882", 0x02, "[2001:db8::1]:6881", 0x10, "[2001:db8::2]:6881", 0x1f),
			Dropped: addrs("203.0.113.1:1", "203.0.113.2:2", "[2001:db8::3]:3"),
		},
		// A peer both added and dropped is left as it is.
		{Added: peers("192.0.2.1:6881", 0), Dropped: addrs("192.0.2.1:6881")},
		// Same address, other ports: other peers.
		{Added: peers("192.0.2.1:6881", 0, "192.0.2.1:6882", 0)},
		// Loopback, private and link-local addresses are the caller's to judge.
		{Added: peers("127.0.0.1:6881", 0, "10.0.0.1:6881", 0, "169.254.1.1:6881", 0, "[::1]:6881", 0, "[fe80::1]:6881", 0)},
		// The bound, in every list.
		{Added: append(slices.Clone(max4), max6...), Dropped: append(slices.Clone(maxD4), maxD6...)},
	}
	for _, m := range tests {
		name := describePEX(m)
		if len(name) > 100 {
			name = name[:100]
		}
		t.Run(name, func(t *testing.T) {
			checkPEXRoundTrip(t, m)
		})
	}
}

// TestAppendPEXNormalizes checks what AppendPEX does with input ParsePEX
// would not return.
func TestAppendPEXNormalizes(t *testing.T) {
	tests := []struct {
		name string
		in   PEXMsg
		want PEXMsg // after a round trip
	}{
		{
			// Written as IPv4, in "added", where it comes back from.
			"IPv4-mapped",
			PEXMsg{Added: peers("[::ffff:192.0.2.1]:6881", 3), Dropped: addrs("[::ffff:192.0.2.2]:6881")},
			PEXMsg{Added: peers("192.0.2.1:6881", 3), Dropped: addrs("192.0.2.2:6881")},
		},
		{
			"IPv6 before IPv4",
			PEXMsg{Added: peers("[2001:db8::1]:1", 1, "192.0.2.1:2", 2), Dropped: addrs("[2001:db8::1]:1", "192.0.2.1:2")},
			PEXMsg{Added: peers("192.0.2.1:2", 2, "[2001:db8::1]:1", 1), Dropped: addrs("192.0.2.1:2", "[2001:db8::1]:1")},
		},
		{
			"zone",
			PEXMsg{Added: peers("[fe80::1%eth0]:6881", 0)},
			PEXMsg{Added: peers("[fe80::1]:6881", 0)},
		},
		{
			"invalid addresses left out",
			PEXMsg{Added: []PEXPeer{{Flags: 1}, {Addr: netip.MustParseAddrPort("192.0.2.1:1")}}, Dropped: []netip.AddrPort{{}}},
			PEXMsg{Added: peers("192.0.2.1:1", 0)},
		},
		{
			// Written as given; ParsePEX leaves them out.
			"not peers",
			PEXMsg{Added: peers("192.0.2.1:0", 0, "0.0.0.0:1", 0, "224.0.0.1:1", 0), Dropped: addrs("255.255.255.255:1", "[::]:1", "[ff02::1]:1")},
			PEXMsg{},
		},
		{
			"duplicates",
			PEXMsg{Added: peers("192.0.2.1:1", 1, "192.0.2.1:1", 2, "[::ffff:192.0.2.1]:1", 3), Dropped: addrs("192.0.2.9:1", "192.0.2.9:1")},
			PEXMsg{Added: peers("192.0.2.1:1", 1), Dropped: addrs("192.0.2.9:1")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := AppendPEX(nil, tc.in)
			got, err := ParsePEX(enc)
			if err != nil {
				t.Fatalf("%s encoded as %q: %v", describePEX(tc.in), enc, err)
			}
			if !samePEX(got, tc.want) {
				t.Fatalf("%s through %q\n got %s\nwant %s", describePEX(tc.in), enc, describePEX(got), describePEX(tc.want))
			}
		})
	}
}

func TestAppendPEX(t *testing.T) {
	tests := []struct {
		m    PEXMsg
		want string
	}{
		{PEXMsg{}, "d5:added0:7:added.f0:7:dropped0:e"},
		{
			PEXMsg{Added: peers("192.0.2.1:6881", 0x12)},
			"d5:added6:\xc0\x00\x02\x01\x1a\xe17:added.f1:\x127:dropped0:e",
		},
		{
			PEXMsg{Dropped: addrs("[2001:db8::1]:443")},
			"d5:added0:7:added.f0:7:dropped0:8:dropped618:\x20\x01\x0d\xb8" + strings.Repeat("\x00", 11) + "\x01\x01\xbbe",
		},
		{
			PEXMsg{Added: peers("[2001:db8::1]:443", 0x01)},
			"d5:added0:7:added.f0:6:added618:\x20\x01\x0d\xb8" + strings.Repeat("\x00", 11) + "\x01\x01\xbb8:added6.f1:\x017:dropped0:e",
		},
	}
	for _, tc := range tests {
		if got := AppendPEX([]byte("prefix"), tc.m); string(got) != "prefix"+tc.want {
			t.Errorf("AppendPEX(%s)\n got %q\nwant %q", describePEX(tc.m), got, "prefix"+tc.want)
		}
	}
}

// TestParsePEXLenient checks what is filtered, unmapped, deduplicated or
// ignored rather than an error.
func TestParsePEXLenient(t *testing.T) {
	p1, p2, p3 := compact("192.0.2.1:6881"), compact("192.0.2.2:6882"), compact("192.0.2.3:6883")
	q1, q2 := compact("[2001:db8::1]:6881"), compact("[2001:db8::2]:6882")
	tests := []struct {
		name    string
		payload string
		want    PEXMsg
	}{
		{"empty dictionary", "de", PEXMsg{}},
		{"unknown keys", "d1:ai1e5:added6:" + p1 + "7:added.f1:\x013:fooli1ed1:xdeee1:zi-1ee", PEXMsg{Added: peers("192.0.2.1:6881", 1)}},
		{"keys out of order", benc("dropped", p2, "added.f", "\x02", "added", p1), PEXMsg{Added: peers("192.0.2.1:6881", 2), Dropped: addrs("192.0.2.2:6882")}},
		{"nested 8 deep", "d1:x" + strings.Repeat("l", 7) + strings.Repeat("e", 7) + "7:dropped6:" + p1 + "e", PEXMsg{Dropped: addrs("192.0.2.1:6881")}},

		// Flags that do not fit are ignored, the peers kept.
		{"no added.f", benc("added", p1+p2), PEXMsg{Added: peers("192.0.2.1:6881", 0, "192.0.2.2:6882", 0)}},
		{"added.f short", benc("added", p1+p2, "added.f", "\x01"), PEXMsg{Added: peers("192.0.2.1:6881", 0, "192.0.2.2:6882", 0)}},
		{"added.f long", benc("added", p1, "added.f", "\x01\x02"), PEXMsg{Added: peers("192.0.2.1:6881", 0)}},
		{"added.f empty", benc("added", p1, "added.f", ""), PEXMsg{Added: peers("192.0.2.1:6881", 0)}},
		{"added.f integer", "d5:added6:" + p1 + "7:added.fi2ee", PEXMsg{Added: peers("192.0.2.1:6881", 0)}},
		{"added.f list", "d5:added6:" + p1 + "7:added.fli2eee", PEXMsg{Added: peers("192.0.2.1:6881", 0)}},
		{"added.f without added", benc("added.f", "\x01"), PEXMsg{}},
		{"added6.f short", benc("added6", q1+q2, "added6.f", "\x01"), PEXMsg{Added: peers("[2001:db8::1]:6881", 0, "[2001:db8::2]:6882", 0)}},
		{"added.f for added6", benc("added.f", "\x01", "added6", q1), PEXMsg{Added: peers("[2001:db8::1]:6881", 0)}},
		{"reserved flag bits kept", benc("added", p1, "added.f", "\xe0"), PEXMsg{Added: peers("192.0.2.1:6881", 0xe0)}},

		// Entries that are not peers are left out; the flags of the
		// others stay theirs.
		{
			"port 0",
			benc("added", p1+compact("192.0.2.9:0")+p2, "added.f", "\x01\x09\x02", "dropped", compact("192.0.2.9:0")),
			PEXMsg{Added: peers("192.0.2.1:6881", 1, "192.0.2.2:6882", 2)},
		},
		{
			"unspecified, multicast, broadcast",
			benc("added", compact("0.0.0.0:1", "224.0.0.1:6881", "239.255.255.250:1900", "255.255.255.255:6881")+p3, "added.f", "\x01\x02\x03\x04\x05",
				"added6", compact("[::]:6881", "[ff02::1]:6881", "[ff0e::1]:1")+q1, "added6.f", "\x01\x02\x03\x04",
				"dropped", compact("0.0.0.0:1", "224.0.0.1:1", "255.255.255.255:1"), "dropped6", compact("[::]:1", "[ff02::2]:1")),
			PEXMsg{Added: peers("192.0.2.3:6883", 5, "[2001:db8::1]:6881", 4)},
		},
		{
			"IPv4-mapped unmapped",
			benc("added6", compact("[::ffff:192.0.2.1]:6881"), "added6.f", "\x02", "dropped6", compact("[::ffff:192.0.2.2]:6882")),
			PEXMsg{Added: peers("192.0.2.1:6881", 2), Dropped: addrs("192.0.2.2:6882")},
		},
		{
			"IPv4-mapped unspecified and broadcast",
			benc("added6", compact("[::ffff:0.0.0.0]:1", "[::ffff:255.255.255.255]:1", "[::ffff:224.0.0.1]:1")),
			PEXMsg{},
		},
		{
			"IPv4 peers first",
			benc("added", p1, "added.f", "\x01", "added6", q1+compact("[::ffff:192.0.2.5]:5"), "added6.f", "\x06\x05",
				"dropped", p2, "dropped6", q2+compact("[::ffff:192.0.2.6]:6")),
			PEXMsg{
				Added:   peers("192.0.2.1:6881", 1, "192.0.2.5:5", 5, "[2001:db8::1]:6881", 6),
				Dropped: addrs("192.0.2.2:6882", "192.0.2.6:6", "[2001:db8::2]:6882"),
			},
		},

		// Duplicates are kept once, the first, with its flags.
		{"duplicate added", benc("added", p1+p2+p1, "added.f", "\x01\x02\x03"), PEXMsg{Added: peers("192.0.2.1:6881", 1, "192.0.2.2:6882", 2)}},
		{"duplicate added6", benc("added6", q1+q1, "added6.f", "\x01\x02"), PEXMsg{Added: peers("[2001:db8::1]:6881", 1)}},
		{
			"duplicate across families",
			benc("added", p1, "added.f", "\x01", "added6", compact("[::ffff:192.0.2.1]:6881"), "added6.f", "\x02"),
			PEXMsg{Added: peers("192.0.2.1:6881", 1)},
		},
		{"duplicate dropped", benc("dropped", p1+p1, "dropped6", compact("[::ffff:192.0.2.1]:6881")+q1+q1), PEXMsg{Dropped: addrs("192.0.2.1:6881", "[2001:db8::1]:6881")}},
		{"same address, other port", benc("added", p1+compact("192.0.2.1:6882")), PEXMsg{Added: peers("192.0.2.1:6881", 0, "192.0.2.1:6882", 0)}},
		{"added and dropped", benc("added", p1, "added.f", "\x01", "dropped", p1), PEXMsg{Added: peers("192.0.2.1:6881", 1), Dropped: addrs("192.0.2.1:6881")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePEX([]byte(tc.payload))
			if err != nil {
				t.Fatalf("ParsePEX(%q): %v", tc.payload, err)
			}
			if !samePEX(got, tc.want) {
				t.Fatalf("ParsePEX(%q)\n got %s\nwant %s", tc.payload, describePEX(got), describePEX(tc.want))
			}
			checkPEXRoundTrip(t, got)
		})
	}
}

func TestParsePEXErrors(t *testing.T) {
	p1 := compact("192.0.2.1:6881")
	pad := MaxExtendedLen - len("d1:x:e") - len(strconv.Itoa(MaxExtendedLen))
	long := "d1:x" + strconv.Itoa(pad+1) + ":" + strings.Repeat("x", pad+1) + "e"
	tests := []struct {
		name    string
		payload string
	}{
		{"empty", ""},
		{"list", "l5:added0:e"},
		{"integer", "i0e"},
		{"string", "5:added"},
		{"space first", " de"},
		{"truncated", "d5:added6:" + p1},
		{"truncated string", "d5:added6:\xc0\x00"},
		{"string past the end", "d5:added99:" + p1 + "e"},
		{"trailing byte", "dex"},
		{"trailing dictionary", "d5:added0:ede"},
		{"duplicate key", "d5:added0:5:added0:e"},
		{"duplicate key out of order", "d7:dropped0:5:added0:7:dropped0:e"},
		{"key not a string", "di1e0:e"},
		{"integer with a leading zero", "d1:xi01ee"},
		{"nested 9 deep", "d1:x" + strings.Repeat("l", 8) + strings.Repeat("e", 8) + "e"},
		{"nested 10000 deep", "d1:x" + strings.Repeat("l", 10000) + strings.Repeat("e", 10000) + "e"},
		{"longer than MaxExtendedLen", long},

		// Address lists that are not whole entries.
		{"added of 5 bytes", benc("added", p1[:5])},
		{"added of 7 bytes", benc("added", p1+"\x00")},
		{"added of 18 bytes in 17", benc("added", compact("[2001:db8::1]:1")[:17])},
		{"added6 of 6 bytes", benc("added6", p1)},
		{"added6 of 19 bytes", benc("added6", compact("[2001:db8::1]:1")+"\x00")},
		{"dropped of 1 byte", benc("dropped", "\x00")},
		{"dropped6 of 36 + 6 bytes", benc("dropped6", compact("[2001:db8::1]:1", "[2001:db8::2]:1")+p1)},
		{"bad list after good ones", benc("added", p1, "added.f", "\x01", "dropped", p1+"x")},

		// Address lists that are not strings.
		{"added integer", "d5:addedi1ee"},
		{"added list", "d5:addedl6:" + p1 + "ee"},
		{"added6 dictionary", "d6:added6dee"},
		{"dropped integer", "d7:droppedi0ee"},
		{"dropped6 list", "d8:dropped6lee"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParsePEX([]byte(tc.payload))
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("ParsePEX(%.60q) = %s, %v; want an error wrapping ErrBadMessage", tc.payload, describePEX(m), err)
			}
			if m.Added != nil || m.Dropped != nil {
				t.Fatalf("ParsePEX(%.60q) returned %s with its error", tc.payload, describePEX(m))
			}
		})
	}
}

// TestParsePEXBounds checks MaxExtendedLen and MaxPEXPeers.
func TestParsePEXBounds(t *testing.T) {
	// A payload of exactly MaxExtendedLen bytes parses.
	body := benc("added", compact("192.0.2.1:1"), "added.f", "\x01")
	pad := MaxExtendedLen - len(body) - len("1:x:") - len(strconv.Itoa(MaxExtendedLen))
	payload := body[:len(body)-1] + "1:x" + strconv.Itoa(pad) + ":" + strings.Repeat("x", pad) + "e"
	if len(payload) != MaxExtendedLen {
		t.Fatalf("test payload of %d bytes", len(payload))
	}
	if m, err := ParsePEX([]byte(payload)); err != nil || len(m.Added) != 1 {
		t.Fatalf("ParsePEX of MaxExtendedLen bytes: %s, %v", describePEX(m), err)
	}

	// Lists of n distinct peers of each family, v4-mapped ones in
	// added6 and dropped6 after the IPv6 ones.
	list := func(n int, v6, mapped bool) string {
		var b []byte
		for i := range n {
			var ip netip.Addr
			switch {
			case mapped:
				ip = netip.AddrFrom16(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}).As16())
			case v6:
				ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
			default:
				ip = netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
			}
			if ip.Is4() {
				a := ip.As4()
				b = append(b, a[:]...)
			} else {
				a := ip.As16()
				b = append(b, a[:]...)
			}
			b = append(b, 0x1a, 0xe1)
		}
		return string(b)
	}
	flags := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return string(b)
	}
	tests := []struct {
		name           string
		n4, n6, mapped int // entries in added (dropped), added6 (dropped6), then mapped ones in added6 (dropped6)
		want4, want6   int // IPv4 and IPv6 addresses kept
	}{
		{"at the bound", MaxPEXPeers, MaxPEXPeers, 0, MaxPEXPeers, MaxPEXPeers},
		{"over the bound", MaxPEXPeers + 50, MaxPEXPeers + 1, 0, MaxPEXPeers, MaxPEXPeers},
		{"filling the payload", 5000, 1000, 0, MaxPEXPeers, MaxPEXPeers},
		{"mapped count as IPv4", MaxPEXPeers - 10, 5, 30, MaxPEXPeers, 5},
		{"mapped only", 0, 0, MaxPEXPeers + 1, MaxPEXPeers, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a4, a6 := list(tc.n4, false, false), list(tc.n6, true, false)+list(tc.mapped, false, true)
			for _, dropped := range []bool{false, true} {
				var payload string
				if dropped {
					payload = benc("dropped", a4, "dropped6", a6)
				} else {
					payload = benc("added", a4, "added.f", flags(tc.n4), "added6", a6, "added6.f", flags(tc.n6+tc.mapped))
				}
				m, err := ParsePEX([]byte(payload))
				if err != nil {
					t.Fatalf("dropped %v: %v", dropped, err)
				}
				var got []netip.AddrPort
				if dropped {
					got = m.Dropped
				} else {
					for _, p := range m.Added {
						got = append(got, p.Addr)
					}
				}
				var n4, n6 int
				for _, a := range got {
					if a.Addr().Is4() {
						n4++
					} else {
						n6++
					}
				}
				if n4 != tc.want4 || n6 != tc.want6 {
					t.Fatalf("dropped %v: %d IPv4 and %d IPv6 kept, want %d and %d", dropped, n4, n6, tc.want4, tc.want6)
				}
				// The first ones are kept, in order, IPv4 first, each
				// with its own flags.
				if tc.n4 > 0 && got[0] != netip.MustParseAddrPort("198.51.0.0:6881") {
					t.Fatalf("dropped %v: first IPv4 %s", dropped, got[0])
				}
				if tc.n4 == 0 && tc.mapped > 0 && got[0] != netip.MustParseAddrPort("203.0.0.0:6881") {
					t.Fatalf("dropped %v: first IPv4 %s", dropped, got[0])
				}
				if n6 > 0 && got[n4] != netip.MustParseAddrPort("[2001:db8::]:6881") {
					t.Fatalf("dropped %v: first IPv6 %s", dropped, got[n4])
				}
				if !dropped {
					for i, p := range m.Added {
						want := PEXFlags(i) // added, then IPv4-mapped from added6
						switch {
						case i >= n4: // IPv6, from the start of added6
							want = PEXFlags(i - n4)
						case i >= min(tc.n4, MaxPEXPeers): // mapped, after the IPv6 in added6
							want = PEXFlags(tc.n6 + i - tc.n4)
						}
						if p.Flags != want {
							t.Fatalf("Added[%d] = %s(%s), want flags %s", i, p.Addr, p.Flags, want)
						}
					}
				}
				checkPEXRoundTrip(t, m)
			}
		})
	}
}

func TestPEXFlagsString(t *testing.T) {
	tests := []struct {
		f    PEXFlags
		want string
	}{
		{0, "0"},
		{PEXEncryption, "encryption"},
		{PEXSeed | PEXUTP, "seed|utp"},
		{PEXEncryption | PEXSeed | PEXUTP | PEXHolepunch | PEXReachable, "encryption|seed|utp|holepunch|reachable"},
		{0x20, "0x20"},
		{0xff, "encryption|seed|utp|holepunch|reachable|0xe0"},
	}
	for _, tc := range tests {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("PEXFlags(%#x).String() = %q, want %q", uint8(tc.f), got, tc.want)
		}
	}
}

func TestParsePEXAllocs(t *testing.T) {
	payload := []byte(realPEX[0].payload)
	n := testing.AllocsPerRun(100, func() {
		if _, err := ParsePEX(payload); err != nil {
			t.Fatal(err)
		}
	})
	// Once a minute per peer: only check it stays modest.
	if n > 40 {
		t.Errorf("%.0f allocations to parse a message of %d bytes", n, len(payload))
	}
	t.Logf("%.0f allocations", n)
}
