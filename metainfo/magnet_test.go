package metainfo

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const (
	testHex      = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
	testHexUpper = "C12FE1C06BBA254A9DC9F519B335AA7C1367A88A"
	testBase32   = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK" // same hash as testHex
	testHex2     = "1902d602db8c350f4f6d809ed01eff32f030da95"
	testBtmh     = "122003ee5d27d20f46c2395fb00e407a85f87c885e2e072d01f4e4bc516474203fe1"
)

func mustHash(t testing.TB, s string) Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// magnetOK lists links ParseMagnet must accept, with the expected result.
func magnetOK(t testing.TB) []struct {
	name string
	link string
	want Magnet
} {
	h := mustHash(t, testHex)
	return []struct {
		name string
		link string
		want Magnet
	}{
		{"hex lower", "magnet:?xt=urn:btih:" + testHex, Magnet{InfoHash: h}},
		{"hex upper", "magnet:?xt=urn:btih:" + testHexUpper, Magnet{InfoHash: h}},
		{"base32 upper", "magnet:?xt=urn:btih:" + testBase32, Magnet{InfoHash: h}},
		{"base32 lower", "magnet:?xt=urn:btih:" + strings.ToLower(testBase32), Magnet{InfoHash: h}},
		{"case-insensitive scheme and urn", "MAGNET:?xt=URN:BTIH:" + testHex, Magnet{InfoHash: h}},
		{"upper-case parameter names", "magnet:?XT=urn:btih:" + testHex + "&DN=x", Magnet{InfoHash: h, DisplayName: "x"}},
		{"surrounding white space", " \tmagnet:?xt=urn:btih:" + testHex + "\r\n", Magnet{InfoHash: h}},
		{"fragment dropped", "magnet:?xt=urn:btih:" + testHex + "&dn=a#dn=b", Magnet{InfoHash: h, DisplayName: "a"}},
		{"empty pairs skipped", "magnet:?&&xt=urn:btih:" + testHex + "&&", Magnet{InfoHash: h}},
		{"dn plus is space", "magnet:?xt=urn:btih:" + testHex + "&dn=Big+Buck+Bunny",
			Magnet{InfoHash: h, DisplayName: "Big Buck Bunny"}},
		{"dn %20 is space", "magnet:?xt=urn:btih:" + testHex + "&dn=Big%20Buck%20Bunny",
			Magnet{InfoHash: h, DisplayName: "Big Buck Bunny"}},
		{"dn unicode escaped", "magnet:?xt=urn:btih:" + testHex + "&dn=%E6%97%A5%E6%9C%AC+%C3%A9t%C3%A9",
			Magnet{InfoHash: h, DisplayName: "日本 été"}},
		{"dn unicode raw", "magnet:?xt=urn:btih:" + testHex + "&dn=日本語",
			Magnet{InfoHash: h, DisplayName: "日本語"}},
		{"dn with escaped & = + #", "magnet:?xt=urn:btih:" + testHex + "&dn=a%26b%3Dc%2Bd%23e",
			Magnet{InfoHash: h, DisplayName: "a&b=c+d#e"}},
		{"first non-empty dn kept", "magnet:?xt=urn:btih:" + testHex + "&dn=&dn=one&dn=two",
			Magnet{InfoHash: h, DisplayName: "one"}},
		{"dn before xt", "magnet:?dn=n&xt=urn:btih:" + testHex, Magnet{InfoHash: h, DisplayName: "n"}},
		{"trackers in order, duplicates removed",
			"magnet:?xt=urn:btih:" + testHex +
				"&tr=udp%3A%2F%2Ftracker.example.org%3A6969%2Fannounce" +
				"&tr=http://b.example/announce" +
				"&tr=udp://tracker.example.org:6969/announce" +
				"&tr=https://c.example/announce?passkey=x%26y" +
				"&tr=wss://tracker.webtorrent.dev" +
				"&tr=http://b.example/announce",
			Magnet{InfoHash: h, Trackers: []string{
				"udp://tracker.example.org:6969/announce",
				"http://b.example/announce",
				"https://c.example/announce?passkey=x&y",
				"wss://tracker.webtorrent.dev",
			}}},
		{"numbered tr.N forms", "magnet:?xt=urn:btih:" + testHex + "&tr.1=http://a/ann&tr=http://b/ann&tr.2=http://a/ann&TR.10=udp://c:80",
			Magnet{InfoHash: h, Trackers: []string{"http://a/ann", "http://b/ann", "udp://c:80"}}},
		{"peers", "magnet:?xt=urn:btih:" + testHex +
			"&x.pe=10.0.0.1:6881" +
			"&x.pe=%5B2001%3Adb8%3A%3A1%5D%3A51413" +
			"&x.pe=[::FFFF:1.2.3.4]:1" +
			"&x.pe=Peer.Example.COM:65535" +
			"&x.pe=seed_1.example:0080" +
			"&x.pe=10.0.0.1:6881" +
			"&x.pe=peer.example.com:65535",
			Magnet{InfoHash: h, Peers: []string{
				"10.0.0.1:6881",
				"[2001:db8::1]:51413",
				"[::ffff:1.2.3.4]:1",
				"peer.example.com:65535",
				"seed_1.example:80",
			}}},
		{"web seeds", "magnet:?xt=urn:btih:" + testHex + "&ws=https%3A%2F%2Fexample.com%2Ffiles%2F&ws=http://[::1]:8080/x&ws=https://example.com/files/",
			Magnet{InfoHash: h, WebSeeds: []string{"https://example.com/files/", "http://[::1]:8080/x"}}},
		{"so BEP 53 example", "magnet:?xt=urn:btih:" + testHex + "&so=0,2,4,6-8",
			Magnet{InfoHash: h, SelectOnly: []IndexRange{{0, 0}, {2, 2}, {4, 4}, {6, 8}}}},
		{"so escaped commas, several so, leading zeros", "magnet:?xt=urn:btih:" + testHex + "&so=1%2C3-3&so=007-16777216",
			Magnet{InfoHash: h, SelectOnly: []IndexRange{{1, 1}, {3, 3}, {7, 1 << 24}}}},
		{"hybrid btmh first", "magnet:?xt=urn:btmh:" + testBtmh + "&xt=urn:btih:" + testHex + "&dn=hy",
			Magnet{InfoHash: h, DisplayName: "hy"}},
		{"hybrid btih first", "magnet:?xt=urn:btih:" + testHex + "&xt=urn:btmh:" + strings.ToUpper(testBtmh),
			Magnet{InfoHash: h}},
		{"same btih twice in hex and base32", "magnet:?xt=urn:btih:" + testHex + "&xt.1=urn:btih:" + testBase32,
			Magnet{InfoHash: h}},
		{"other URNs ignored", "magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C&xt=urn:ed2k:354b15e68fb8f36d7cd88ff94116cdc1&xt=urn:btih:" + testHex,
			Magnet{InfoHash: h}},
		{"unknown parameters ignored, even malformed ones",
			"magnet:?xt=urn:btih:" + testHex + "&xl=10826029&kt=a+b&as=http://x&xs=%zz&mt=&x.foo=1&tr.x=notaurl&dn.1=ignored&ws.=x&x.pe.1=bad",
			Magnet{InfoHash: h}},
		{"everything", "magnet:?xt=urn:btih:" + testHex + "&dn=All+Fields&tr=udp://t.example:1337/announce&ws=https://w.example/f&x.pe=1.2.3.4:5&so=3,5-9",
			Magnet{InfoHash: h, DisplayName: "All Fields",
				Trackers:   []string{"udp://t.example:1337/announce"},
				WebSeeds:   []string{"https://w.example/f"},
				Peers:      []string{"1.2.3.4:5"},
				SelectOnly: []IndexRange{{3, 3}, {5, 9}}}},
	}
}

func TestParseMagnet(t *testing.T) {
	for _, tc := range magnetOK(t) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMagnet(tc.link)
			if err != nil {
				t.Fatalf("ParseMagnet(%q): %v", tc.link, err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("ParseMagnet(%q)\n got %#v\nwant %#v", tc.link, *got, tc.want)
			}
		})
	}
}

func TestParseMagnetErrors(t *testing.T) {
	base := "magnet:?xt=urn:btih:" + testHex
	many := func(key string, n int, val func(i int) string) string {
		var b strings.Builder
		b.WriteString(base)
		for i := range n {
			fmt.Fprintf(&b, "&%s=%s", key, val(i))
		}
		return b.String()
	}
	tests := []struct {
		name, link string
		want       string // substring of the error message
		v2         bool   // errors.Is(err, ErrV2Only)
	}{
		{"empty", "", "no URI scheme", false},
		{"garbage", "hello world", "no URI scheme", false},
		{"garbage binary", "\x00\xff\xfe:?", "scheme", false},
		{"bare hash", testHex, "no URI scheme", false},
		{"http scheme", "http://example.com/?xt=urn:btih:" + testHex, `scheme is "http"`, false},
		{"magnets scheme", "magnets:?xt=urn:btih:" + testHex, "not a magnet link", false},
		{"no question mark", "magnet:xt=urn:btih:" + testHex, `no "?"`, false},
		{"slashes", "magnet://?xt=urn:btih:" + testHex, `no "?"`, false},
		{"only scheme", "magnet:", `no "?"`, false},
		{"no parameters", "magnet:?", "no xt=urn:btih:", false},
		{"missing xt", "magnet:?dn=foo&tr=http://a/ann", "no xt=urn:btih:", false},
		{"xt without btih", "magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C", "no xt=urn:btih:", false},
		{"empty btih", "magnet:?xt=urn:btih:", "0 characters", false},
		{"hash 39 hex", "magnet:?xt=urn:btih:" + testHex[:39], "39 characters", false},
		{"hash 41 hex", "magnet:?xt=urn:btih:" + testHex + "0", "41 characters", false},
		{"hash 64 hex (v2 digest in btih)", "magnet:?xt=urn:btih:" + testBtmh[4:], "64 characters", false},
		{"hash not hex", "magnet:?xt=urn:btih:" + strings.Repeat("g", 40), "not hex", false},
		{"hash not base32", "magnet:?xt=urn:btih:" + strings.Repeat("1", 32), "not base32", false},
		{"hash 31 base32", "magnet:?xt=urn:btih:" + testBase32[:31], "31 characters", false},
		{"two different btih", base + "&xt=urn:btih:" + testHex2, "two different urn:btih:", false},
		{"btmh only", "magnet:?xt=urn:btmh:" + testBtmh + "&dn=v2", "only a v2 (urn:btmh) info hash", true},
		{"btmh only numbered", "magnet:?xt.1=urn:btmh:" + testBtmh, "only a v2 (urn:btmh) info hash", true},
		{"btmh malformed", "magnet:?xt=urn:btmh:1220abcd", "urn:btmh:", false},
		{"btmh not sha256", "magnet:?xt=urn:btmh:1320" + testBtmh[4:], "urn:btmh:", false},
		{"bad escape in known value", base + "&dn=%zz", "dn: invalid URL escape", false},
		{"bad escape in key", base + "&%zz=1", "parameter name", false},
		{"tracker without scheme", base + "&tr=tracker.example.org:6969", "tr: tracker", false},
		{"tracker empty", base + "&tr=", "no URL scheme", false},
		{"tracker bad scheme", base + "&tr=ftp://a/ann", `scheme "ftp" not supported`, false},
		{"tracker ws scheme", base + "&tr=ws://a/ann", "not supported", false},
		{"tracker no host", base + "&tr=http:///announce", "no host", false},
		{"tracker unparsable", base + "&tr=http://a b/", "not a URL", false},
		{"numbered tracker bad", base + "&tr.3=nope", "tr.3: tracker", false},
		{"web seed udp", base + "&ws=udp://a:1/", "ws: web seed", false},
		{"web seed relative", base + "&ws=/files/x", "no URL scheme", false},
		{"peer no port", base + "&x.pe=1.2.3.4", "x.pe: peer", false},
		{"peer port 0", base + "&x.pe=1.2.3.4:0", "not from 1 to 65535", false},
		{"peer port 65536", base + "&x.pe=1.2.3.4:65536", "not from 1 to 65535", false},
		{"peer port sign", base + "&x.pe=1.2.3.4:+80", "port", false},
		{"peer port text", base + "&x.pe=host:http", "port", false},
		{"peer port empty", base + "&x.pe=host:", "port", false},
		{"peer ipv6 unbracketed", base + "&x.pe=2001:db8::1:80", "x.pe", false},
		{"peer ipv4 in brackets", base + "&x.pe=[1.2.3.4]:80", "not an IPv6", false},
		{"peer name in brackets", base + "&x.pe=[host]:80", "not an IPv6", false},
		{"peer ipv6 zone", base + "&x.pe=[fe80::1%25eth0]:80", "has a zone", false},
		{"peer bad ipv4", base + "&x.pe=1.2.3.256:80", "not a valid IPv4", false},
		{"peer ipv4 leading zero", base + "&x.pe=01.2.3.4:80", "not a valid IPv4", false},
		{"peer bad host char", base + "&x.pe=a%2Fb:80", "bad character", false},
		{"peer empty host", base + "&x.pe=:80", "empty host", false},
		{"peer label dash", base + "&x.pe=-a.example:80", "'-'", false},
		{"peer empty label", base + "&x.pe=a..b:80", "label length", false},
		{"peer long label", base + "&x.pe=" + strings.Repeat("a", 64) + ".b:80", "label length", false},
		{"so empty", base + "&so=", "so: entry", false},
		{"so trailing comma", base + "&so=1,", "so: entry", false},
		{"so negative", base + "&so=-1", "not a non-negative integer", false},
		{"so backwards", base + "&so=5-3", "runs backwards", false},
		{"so open range", base + "&so=5-", "not a non-negative integer", false},
		{"so double range", base + "&so=1-2-3", "not a non-negative integer", false},
		{"so text", base + "&so=abc", "not a non-negative integer", false},
		{"so space", base + "&so=1,+2", "not a non-negative integer", false},
		{"so index too big", base + "&so=16777217", "over the limit", false},
		{"so index huge", base + "&so=0-99999999999999999999999", "over the limit", false},
		{"so too many entries", base + "&so=" + strings.Repeat("1,", 10000) + "1", "more than 10000", false},
		{"so too many over several", many("so", 10001, func(i int) string { return "1" }), "more than 10000", false},
		{"too long", base + "&dn=" + strings.Repeat("a", 64<<10), "over the 65536-byte limit", false},
		{"too many trackers", many("tr", 201, func(i int) string { return fmt.Sprintf("http://t%d/a", i) }), "more than 200 trackers", false},
		{"too many peers", many("x.pe", 201, func(i int) string { return fmt.Sprintf("10.0.%d.%d:1", i/256, i%256) }), "more than 200 peers", false},
		{"too many web seeds", many("ws", 201, func(i int) string { return fmt.Sprintf("http://w%d/", i) }), "more than 200 web seeds", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMagnet(tc.link)
			if err == nil {
				t.Fatalf("ParseMagnet(%.100q) = %+v, want error containing %q", tc.link, m, tc.want)
			}
			if m != nil {
				t.Errorf("ParseMagnet returned a Magnet with the error %v", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "magnet:") {
				t.Errorf("error %q does not start with \"magnet:\"", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if len(msg) > 600 {
				t.Errorf("error message is %d bytes long", len(msg))
			}
			if got := errors.Is(err, ErrV2Only); got != tc.v2 {
				t.Errorf("errors.Is(%v, ErrV2Only) = %v, want %v", err, got, tc.v2)
			}
		})
	}
}

// TestParseMagnetBounds checks the limits are inclusive: exactly at the
// bound is fine.
func TestParseMagnetBounds(t *testing.T) {
	base := "magnet:?xt=urn:btih:" + testHex
	var b strings.Builder
	b.WriteString(base)
	for i := range 200 {
		fmt.Fprintf(&b, "&tr=http://t%d/a&ws=http://w%d/&x.pe=10.0.%d.%d:1", i, i, i/256, i%256)
	}
	// Duplicates do not count towards the limits.
	b.WriteString("&tr=http://t0/a&ws=http://w0/&x.pe=10.0.0.0:1")
	b.WriteString("&so=" + strings.Repeat("9,", 9998) + "0-16777216,16777216")
	m, err := ParseMagnet(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trackers) != 200 || len(m.WebSeeds) != 200 || len(m.Peers) != 200 || len(m.SelectOnly) != 10000 {
		t.Errorf("got %d trackers, %d web seeds, %d peers, %d so entries; want 200, 200, 200, 10000",
			len(m.Trackers), len(m.WebSeeds), len(m.Peers), len(m.SelectOnly))
	}

	exact := base + "&dn=" + strings.Repeat("a", 64<<10-len(base)-len("&dn="))
	if len(exact) != 64<<10 {
		t.Fatalf("test link is %d bytes", len(exact))
	}
	if _, err := ParseMagnet(exact); err != nil {
		t.Errorf("64 KiB link: %v", err)
	}
	if _, err := ParseMagnet(exact + "a"); err == nil {
		t.Error("64 KiB + 1 link accepted")
	}
}

func TestMagnetStringRoundTrip(t *testing.T) {
	for _, tc := range magnetOK(t) {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMagnet(tc.link)
			if err != nil {
				t.Fatal(err)
			}
			s := m.String()
			m2, err := ParseMagnet(s)
			if err != nil {
				t.Fatalf("ParseMagnet(%q): %v", s, err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Errorf("round trip through %q\n got %#v\nwant %#v", s, m2, m)
			}
			if s2 := m2.String(); s2 != s {
				t.Errorf("String not stable: %q then %q", s, s2)
			}
		})
	}
}

func TestMagnetStringExact(t *testing.T) {
	m := &Magnet{
		InfoHash:    mustHash(t, testHexUpper),
		DisplayName: "Big Buck Bunny & friends/日本",
		Trackers:    []string{"udp://tracker.example.org:6969/announce", "wss://tracker.example.net"},
		WebSeeds:    []string{"https://example.com/files/"},
		Peers:       []string{"10.0.0.1:6881", "[2001:db8::1]:51413"},
		SelectOnly:  []IndexRange{{0, 0}, {2, 2}, {4, 6}},
	}
	want := "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a" +
		"&dn=Big+Buck+Bunny+%26+friends%2F%E6%97%A5%E6%9C%AC" +
		"&tr=udp%3A%2F%2Ftracker.example.org%3A6969%2Fannounce" +
		"&tr=wss%3A%2F%2Ftracker.example.net" +
		"&ws=https%3A%2F%2Fexample.com%2Ffiles%2F" +
		"&x.pe=10.0.0.1%3A6881" +
		"&x.pe=%5B2001%3Adb8%3A%3A1%5D%3A51413" +
		"&so=0,2,4-6"
	if got := m.String(); got != want {
		t.Errorf("String()\n got %s\nwant %s", got, want)
	}
	m2, err := ParseMagnet(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Errorf("ParseMagnet(String())\n got %#v\nwant %#v", m2, m)
	}

	if got, want := (&Magnet{InfoHash: m.InfoHash}).String(), "magnet:?xt=urn:btih:"+testHex; got != want {
		t.Errorf("minimal String() = %q, want %q", got, want)
	}
	if got := (*Magnet)(nil).String(); got != "" {
		t.Errorf("nil String() = %q", got)
	}
}

func TestMagnetSelects(t *testing.T) {
	all := &Magnet{}
	for _, i := range []int{0, 1, 1000, 1 << 30} {
		if !all.Selects(i) {
			t.Errorf("empty SelectOnly: Selects(%d) = false", i)
		}
	}
	if !(*Magnet)(nil).Selects(3) {
		t.Error("nil Magnet: Selects(3) = false")
	}
	if all.Selects(-1) {
		t.Error("Selects(-1) = true")
	}
	m, err := ParseMagnet("magnet:?xt=urn:btih:" + testHex + "&so=0,2,4-6,10-10")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]bool{0: true, 2: true, 4: true, 5: true, 6: true, 10: true}
	for i := -2; i <= 12; i++ {
		if got := m.Selects(i); got != want[i] {
			t.Errorf("Selects(%d) = %v, want %v", i, got, want[i])
		}
	}
}

// MetaInfo.Magnet must build a link ParseMagnet reads back, even from a
// torrent with more trackers than a link may carry and web seeds of other
// schemes.
func TestMetaInfoMagnetParses(t *testing.T) {
	mi := &MetaInfo{Info: Info{Name: "x y"}, URLList: []string{"ftp://127.0.0.1/x", "http://127.0.0.1/ws"}}
	mi.InfoHash[0] = 1
	for i := range 300 {
		mi.AnnounceList = append(mi.AnnounceList, []string{fmt.Sprintf("http://127.0.0.1:%d/announce", 1000+i), "ws://127.0.0.1/x"})
	}
	m := mi.Magnet()
	got, err := ParseMagnet(m.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Trackers) != magnetMaxTrackers || len(got.WebSeeds) != 1 || got.DisplayName != "x y" || got.InfoHash != mi.InfoHash {
		t.Errorf("round trip: %d trackers, web seeds %v, name %q", len(got.Trackers), got.WebSeeds, got.DisplayName)
	}
}
