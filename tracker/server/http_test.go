package server

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// announceQuery is the query of a plain announce; extra are more
// key=value pairs, already escaped.
func announceQuery(h metainfo.Hash, id tracker.PeerID, port int, extra ...string) string {
	q := "info_hash=" + url.QueryEscape(string(h[:])) +
		"&peer_id=" + url.QueryEscape(string(id[:])) +
		fmt.Sprintf("&port=%d&uploaded=0&downloaded=0", port)
	for _, e := range extra {
		q += "&" + e
	}
	return q
}

// testAnnounceReply is an announce reply as a client reads it.
type testAnnounceReply struct {
	Failure     string             `bencode:"failure reason"`
	Complete    int                `bencode:"complete"`
	Incomplete  int                `bencode:"incomplete"`
	Interval    int64              `bencode:"interval"`
	MinInterval int64              `bencode:"min interval"`
	Peers       bencode.RawMessage `bencode:"peers"`
	Peers6      string             `bencode:"peers6"`
}

// compactPeers decodes compact peers of size-byte entries (written here
// rather than taken from package tracker, to check it).
func compactPeers(t *testing.T, b []byte, size int) []netip.AddrPort {
	t.Helper()
	if len(b)%size != 0 {
		t.Fatalf("compact peers: %d bytes, not a multiple of %d", len(b), size)
	}
	var out []netip.AddrPort
	for ; len(b) > 0; b = b[size:] {
		ip, ok := netip.AddrFromSlice(b[:size-2])
		if !ok {
			t.Fatal("bad address")
		}
		out = append(out, netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[size-2:])))
	}
	return out
}

// v4Peers decodes the compact "peers" string of r.
func (r *testAnnounceReply) v4Peers(t *testing.T) []netip.AddrPort {
	t.Helper()
	var s string
	if err := bencode.Unmarshal(r.Peers, &s); err != nil {
		t.Fatalf("peers %q: %v", r.Peers, err)
	}
	return compactPeers(t, []byte(s), 6)
}

func readAnnounceReply(t *testing.T, resp *http.Response) *testAnnounceReply {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s: %s", resp.Status, body)
	}
	var r testAnnounceReply
	if err := bencode.Unmarshal(body, &r); err != nil {
		t.Fatalf("reply %q: %v", body, err)
	}
	return &r
}

// get sends a GET with the query exactly as given (even malformed).
func get(t *testing.T, c *http.Client, base, path, rawQuery string) *http.Response {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = path
	u.RawQuery = rawQuery
	resp, err := c.Do(&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func announceHTTP(t *testing.T, ts *httptest.Server, q string) *testAnnounceReply {
	t.Helper()
	return readAnnounceReply(t, get(t, ts.Client(), ts.URL, "/announce", q))
}

func TestHTTPAnnounce(t *testing.T) {
	s := New(Config{Interval: 90e9, MinInterval: 30e9})
	ts := httptest.NewServer(s)
	defer ts.Close()
	h := testHash(1)
	lo := func(port int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	}

	r := announceHTTP(t, ts, announceQuery(h, testID(1), 1001, "left=10", "event=started"))
	if r.Failure != "" || r.Interval != 90 || r.MinInterval != 30 || r.Incomplete != 1 || r.Complete != 0 {
		t.Fatalf("first announce: %+v", r)
	}
	if got := r.v4Peers(t); len(got) != 0 {
		t.Errorf("first peer got %v", got)
	}
	r = announceHTTP(t, ts, announceQuery(h, testID(2), 1002, "left=0", "event=started", "compact=1"))
	if got := r.v4Peers(t); !slices.Equal(got, []netip.AddrPort{lo(1001)}) || r.Complete != 1 || r.Incomplete != 1 {
		t.Errorf("second peer: %v %+v", got, r)
	}
	if r.Peers6 != "" {
		t.Errorf("peers6 %q to an IPv4 swarm", r.Peers6)
	}
	r = announceHTTP(t, ts, announceQuery(h, testID(1), 1001, "left=10"))
	if got := r.v4Peers(t); !slices.Equal(got, []netip.AddrPort{lo(1002)}) {
		t.Errorf("first peer again: %v", got)
	}
	// The seeder gets no seeder.
	r = announceHTTP(t, ts, announceQuery(h, testID(3), 1003, "left=0"))
	if got := r.v4Peers(t); !slices.Equal(got, []netip.AddrPort{lo(1001)}) {
		t.Errorf("second seeder: %v", got)
	}
	// Except on its started announce, after the leechers: aria2c starting
	// from a magnet link says left=0.
	r = announceHTTP(t, ts, announceQuery(h, testID(6), 1006, "left=0", "event=started"))
	if got := r.v4Peers(t); len(got) != 3 || got[0] != lo(1001) || !slices.Contains(got, lo(1002)) || !slices.Contains(got, lo(1003)) {
		t.Errorf("seeder's started announce: %v, want 1001 first, then the seeders 1002 and 1003", got)
	}
	r = announceHTTP(t, ts, announceQuery(h, testID(6), 1006, "left=0"))
	if got := r.v4Peers(t); !slices.Equal(got, []netip.AddrPort{lo(1001)}) {
		t.Errorf("seeder's next announce: %v", got)
	}
	announceHTTP(t, ts, announceQuery(h, testID(6), 1006, "event=stopped"))
	// Stopped leaves.
	r = announceHTTP(t, ts, announceQuery(h, testID(1), 1001, "event=stopped"))
	if r.Failure != "" || r.Incomplete != 0 || r.Complete != 2 {
		t.Errorf("stopped: %+v", r)
	}
	r = announceHTTP(t, ts, announceQuery(h, testID(4), 1004, "left=5", "numwant=1"))
	if got := r.v4Peers(t); len(got) != 1 || got[0] == lo(1001) {
		t.Errorf("after stop: %v", got)
	}

	// Non-compact: a list of dictionaries.
	type dictPeer struct {
		IP     string `bencode:"ip"`
		Port   int    `bencode:"port"`
		PeerID string `bencode:"peer id"`
	}
	for _, noPeerID := range []bool{false, true} {
		q := announceQuery(h, testID(5), 1005, "left=5", "compact=0")
		if noPeerID {
			q += "&no_peer_id=1"
		}
		r = announceHTTP(t, ts, q)
		var list []dictPeer
		if err := bencode.Unmarshal(r.Peers, &list); err != nil {
			t.Fatalf("compact=0 peers %q: %v", r.Peers, err)
		}
		id2, id3, id4 := testID(2), testID(3), testID(4)
		want := map[int]string{1002: string(id2[:]), 1003: string(id3[:]), 1004: string(id4[:])}
		if len(list) != len(want) {
			t.Errorf("compact=0: %d peers, want %d", len(list), len(want))
		}
		for _, p := range list {
			id, ok := want[p.Port]
			if noPeerID {
				id = ""
			}
			if !ok || p.IP != "127.0.0.1" || p.PeerID != id {
				t.Errorf("compact=0 no_peer_id=%v: peer %+v", noPeerID, p)
			}
		}
	}
	// An empty non-compact list is still there.
	r = announceHTTP(t, ts, announceQuery(testHash(9), testID(5), 1005, "compact=0"))
	if string(r.Peers) != "le" {
		t.Errorf("empty compact=0 peers %q", r.Peers)
	}
}

// TestHTTPNumWant: numwant is capped by MaxNumWant, zero gives none.
func TestHTTPNumWant(t *testing.T) {
	s := New(Config{MaxNumWant: 4})
	ts := httptest.NewServer(s)
	defer ts.Close()
	h := testHash(1)
	for n := 1; n <= 8; n++ {
		announceHTTP(t, ts, announceQuery(h, testID(n), 1000+n, "left=1"))
	}
	tests := []struct {
		numwant string
		want    int
	}{
		{"", 4}, {"numwant=-1", 4}, {"numwant=0", 0}, {"numwant=2", 2},
		{"numwant=4", 4}, {"numwant=1000", 4}, {"numwant=2147483647", 4}, {"num_want=3", 3},
	}
	for _, tt := range tests {
		var extra []string
		if tt.numwant != "" {
			extra = append(extra, tt.numwant)
		}
		r := announceHTTP(t, ts, announceQuery(h, testID(1), 1001, extra...))
		if got := r.v4Peers(t); len(got) != tt.want || r.Failure != "" {
			t.Errorf("%q: %d peers (%q), want %d", tt.numwant, len(got), r.Failure, tt.want)
		}
	}
}

func TestHTTPMalformed(t *testing.T) {
	s := New(Config{})
	ts := httptest.NewServer(s)
	defer ts.Close()
	h, id := testHash(1), testID(1)
	eh, eid := escapeAll(h[:]), escapeAll(id[:]) // 3 characters a byte
	tests := []struct {
		name, query, want string
	}{
		{"empty", "", "missing info_hash"},
		{"missing info_hash", "peer_id=" + eid + "&port=1", "missing info_hash"},
		{"19-byte hash", "info_hash=" + eh[:len(eh)-3] + "&peer_id=" + eid + "&port=1", "bad info_hash: 19 bytes"},
		{"21-byte hash", "info_hash=" + eh + "A&peer_id=" + eid + "&port=1", "bad info_hash: 21 bytes"},
		{"hash as hex", "info_hash=" + h.String() + "&peer_id=" + eid + "&port=1", "bad info_hash: 40 bytes"},
		{"repeated hash", "info_hash=" + eh + "&info_hash=" + eh + "&peer_id=" + eid + "&port=1", "repeated parameter info_hash"},
		{"missing peer_id", "info_hash=" + eh + "&port=1", "missing peer_id"},
		{"short peer_id", "info_hash=" + eh + "&peer_id=abc&port=1", "bad peer_id"},
		{"missing port", "info_hash=" + eh + "&peer_id=" + eid, "missing port"},
		{"port 0", announceQuery(h, id, 0), "bad port"},
		{"port too big", "info_hash=" + eh + "&peer_id=" + eid + "&port=65536", "bad port"},
		{"port negative", "info_hash=" + eh + "&peer_id=" + eid + "&port=-1", "bad port"},
		{"port not a number", "info_hash=" + eh + "&peer_id=" + eid + "&port=http", "bad port"},
		{"empty port", "info_hash=" + eh + "&peer_id=" + eid + "&port=", "bad port"},
		{"huge numwant", announceQuery(h, id, 1, "numwant=99999999999999999999999"), "bad numwant"},
		{"numwant past int32", announceQuery(h, id, 1, "numwant=2147483648"), "bad numwant"},
		{"numwant not a number", announceQuery(h, id, 1, "numwant=lots"), "bad numwant"},
		{"bad left", announceQuery(h, id, 1, "left=1.5"), "bad left"},
		{"bad uploaded", announceQuery(h, id, 1, "uploaded=x"), "bad uploaded"},
		{"bad event", announceQuery(h, id, 1, "event=finished"), "bad event"},
		{"bad escape", "info_hash=%zz" + eh[3:] + "&peer_id=" + eid + "&port=1", "malformed escape"},
		{"truncated escape", announceQuery(h, id, 1, "key=%4"), "malformed escape"},
		{"trailing percent", announceQuery(h, id, 1) + "&x=%", "malformed escape"},
		{"escape in key", announceQuery(h, id, 1) + "&%g1=1", "malformed escape"},
		{"too many parameters", announceQuery(h, id, 1) + strings.Repeat("&a=1", maxParams), "too many parameters"},
		{"too long", announceQuery(h, id, 1) + "&pad=" + strings.Repeat("x", maxQueryLen), "query too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := announceHTTP(t, ts, tt.query)
			if !strings.Contains(r.Failure, tt.want) {
				t.Errorf("failure reason %q, want it to contain %q", r.Failure, tt.want)
			}
			if r.Peers != nil || r.Interval != 0 {
				t.Errorf("failure reply has more: %+v", r)
			}
		})
	}
	if st := s.Stats(); st.Torrents != 0 || st.Announces != 0 {
		t.Errorf("malformed announces changed the state: %+v", st)
	}
	// The server still serves.
	if r := announceHTTP(t, ts, announceQuery(h, id, 1)); r.Failure != "" {
		t.Errorf("after malformed: %q", r.Failure)
	}
}

// TestHTTPLenient: parameters the parser accepts.
func TestHTTPLenient(t *testing.T) {
	s := New(Config{})
	ts := httptest.NewServer(s)
	defer ts.Close()
	h, id := testHash(1), testID(1)
	var hashPlus metainfo.Hash
	copy(hashPlus[:], "with space and +plus")
	tests := []struct {
		name, query string
	}{
		{"all escaped", "info_hash=" + escapeAll(h[:]) + "&peer_id=" + escapeAll(id[:]) + "&port=1"},
		{"lower-case escapes", strings.ToLower("info_hash="+escapeAll(h[:])) + "&peer_id=" + escapeAll(id[:]) + "&port=1"},
		{"plus is a space", "info_hash=with+space+and+%2Bplus&peer_id=" + escapeAll(id[:]) + "&port=1"},
		{"empty segments", "&&" + announceQuery(h, id, 1) + "&&"},
		{"unknown and bare keys", announceQuery(h, id, 1, "key=abc", "supportcrypto=1", "corrupt", "trackerid=x", "ipv6=%3A%3A1")},
		{"events", announceQuery(h, id, 1, "event=empty")},
		{"paused", announceQuery(h, id, 1, "event=paused")},
		{"negative left", announceQuery(h, id, 1, "left=-1")},
		{"compact junk", announceQuery(h, id, 1, "compact=yes")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := announceHTTP(t, ts, tt.query); r.Failure != "" {
				t.Errorf("failure %q", r.Failure)
			}
		})
	}
	if _, sc := s.scrape([]metainfo.Hash{hashPlus}, 0); !sc[0].known {
		t.Error("'+' not decoded as a space")
	}
}

func escapeAll(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

// TestHTTPIPParam: "ip" is believed from loopback only, and only when it
// parses.
func TestHTTPIPParam(t *testing.T) {
	tests := []struct {
		name, remote, ip, want string
	}{
		{"loopback v4", "127.0.0.1:5000", "10.1.2.3", "10.1.2.3:7001"},
		{"loopback v6", "[::1]:5000", "2001:db8::7", "[2001:db8::7]:7001"},
		{"loopback mapped", "127.0.0.1:5000", "::ffff:10.1.2.3", "10.1.2.3:7001"},
		{"loopback hostname", "127.0.0.1:5000", "example.com", "127.0.0.1:7001"},
		{"loopback unspecified", "127.0.0.1:5000", "0.0.0.0", "127.0.0.1:7001"},
		{"remote", "192.0.2.9:5000", "10.1.2.3", "192.0.2.9:7001"},
		{"remote mapped", "[::ffff:192.0.2.9]:5000", "", "192.0.2.9:7001"},
		{"remote v6 zone", "[fe80::1%eth0]:5000", "", "[fe80::1]:7001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{})
			h := testHash(1)
			do := func(remote string, id tracker.PeerID, port int, extra ...string) *testAnnounceReply {
				req := httptest.NewRequest("GET", "/announce?"+announceQuery(h, id, port, extra...), nil)
				req.RemoteAddr = remote
				w := httptest.NewRecorder()
				s.ServeHTTP(w, req)
				return readAnnounceReply(t, w.Result())
			}
			var extra []string
			if tt.ip != "" {
				extra = append(extra, "ip="+url.QueryEscape(tt.ip))
			}
			if r := do(tt.remote, testID(1), 7001, extra...); r.Failure != "" {
				t.Fatal(r.Failure)
			}
			r := do("198.51.100.1:1", testID(2), 7002)
			got := append(r.v4Peers(t), compactPeers(t, []byte(r.Peers6), 18)...)
			if len(got) != 1 || got[0].String() != tt.want {
				t.Errorf("peer recorded as %v, want %s", got, tt.want)
			}
		})
	}
	// A request without a usable address is refused.
	req := httptest.NewRequest("GET", "/announce?"+announceQuery(testHash(1), testID(1), 1), nil)
	req.RemoteAddr = "pipe"
	w := httptest.NewRecorder()
	New(Config{}).ServeHTTP(w, req)
	if r := readAnnounceReply(t, w.Result()); r.Failure == "" {
		t.Error("no failure without a client address")
	}
}

func TestHTTPRoutes(t *testing.T) {
	ts := httptest.NewServer(New(Config{}))
	defer ts.Close()
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/announce", 200},
		{"HEAD", "/announce", 200},
		{"GET", "/scrape", 200},
		{"POST", "/announce", 405},
		{"PUT", "/scrape", 405},
		{"GET", "/", 404},
		{"GET", "/announce/x", 404},
		{"GET", "/announce.php", 404},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, ts.URL+tt.path, nil)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}
}

type testScrapeReply struct {
	Failure string `bencode:"failure reason"`
	Files   map[string]struct {
		Complete   int `bencode:"complete"`
		Downloaded int `bencode:"downloaded"`
		Incomplete int `bencode:"incomplete"`
	} `bencode:"files"`
}

func TestHTTPScrape(t *testing.T) {
	h1, h2, h3, secret := testHash(1), testHash(2), testHash(3), testHash(4)
	s := New(Config{Whitelist: func(h metainfo.Hash) bool { return h != secret }})
	ts := httptest.NewServer(s)
	defer ts.Close()
	announceHTTP(t, ts, announceQuery(h1, testID(1), 1001, "left=0", "event=completed"))
	announceHTTP(t, ts, announceQuery(h1, testID(2), 1002, "left=5"))
	announceHTTP(t, ts, announceQuery(h2, testID(3), 1003, "left=5"))
	if r := announceHTTP(t, ts, announceQuery(secret, testID(3), 1003, "left=5")); r.Failure != errNotTracked.Error() {
		t.Errorf("whitelist: %q", r.Failure)
	}

	scrape := func(q string) *testScrapeReply {
		t.Helper()
		resp := get(t, ts.Client(), ts.URL, "/scrape", q)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var r testScrapeReply
		if err := bencode.Unmarshal(body, &r); err != nil {
			t.Fatalf("scrape reply %q: %v", body, err)
		}
		return &r
	}
	ih := func(h metainfo.Hash) string { return "info_hash=" + url.QueryEscape(string(h[:])) }
	type counts struct{ c, d, i int }
	tests := []struct {
		name    string
		query   string
		want    map[metainfo.Hash]counts
		failure string
	}{
		{"one", ih(h1), map[metainfo.Hash]counts{h1: {1, 1, 1}}, ""},
		{"two", ih(h1) + "&" + ih(h2), map[metainfo.Hash]counts{h1: {1, 1, 1}, h2: {0, 0, 1}}, ""},
		{"unknown left out", ih(h3) + "&" + ih(h2), map[metainfo.Hash]counts{h2: {0, 0, 1}}, ""},
		{"repeated", ih(h2) + "&" + ih(h2), map[metainfo.Hash]counts{h2: {0, 0, 1}}, ""},
		{"all", "", map[metainfo.Hash]counts{h1: {1, 1, 1}, h2: {0, 0, 1}}, ""},
		{"other keys ignored", "x=1&peer_id=2", map[metainfo.Hash]counts{h1: {1, 1, 1}, h2: {0, 0, 1}}, ""},
		{"not whitelisted", ih(secret), map[metainfo.Hash]counts{}, ""},
		{"short hash", "info_hash=abc", nil, "bad info_hash: 3 bytes"},
		{"bad escape", "info_hash=%%%", nil, "malformed escape"},
		{"too many", strings.Repeat(ih(h1)+"&", maxScrapeHashes+1), nil, "too many info_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := scrape(tt.query)
			if !strings.Contains(r.Failure, tt.failure) || (tt.failure == "") != (r.Failure == "") {
				t.Fatalf("failure %q, want %q", r.Failure, tt.failure)
			}
			if tt.failure != "" {
				return
			}
			if len(r.Files) != len(tt.want) {
				t.Errorf("%d files, want %d", len(r.Files), len(tt.want))
			}
			for h, w := range tt.want {
				f, ok := r.Files[string(h[:])]
				if !ok || f.Complete != w.c || f.Downloaded != w.d || f.Incomplete != w.i {
					t.Errorf("%v: %+v (present %v), want %+v", h, f, ok, w)
				}
			}
		})
	}
	// 1000 hashes is the most one scrape names.
	if r := scrape(strings.Repeat(ih(h1)+"&", maxScrapeHashes)); r.Failure != "" || len(r.Files) != 1 {
		t.Errorf("1000 hashes: %+v", r)
	}
}

// TestHTTPScrapeAllCapped: a scrape naming nothing reports at most 1000.
func TestHTTPScrapeAllCapped(t *testing.T) {
	s := New(Config{})
	for n := range maxScrapeHashes + 20 {
		var h metainfo.Hash
		binary.BigEndian.PutUint32(h[:], uint32(n))
		a := announce{hash: h, id: testID(1), addr: testAddr(1), left: 1, numWant: -1}
		s.announce(&a, 0)
	}
	req := httptest.NewRequest("GET", "/scrape", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	var r testScrapeReply
	if err := bencode.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Files) != maxScrapeHashes {
		t.Errorf("%d files, want %d", len(r.Files), maxScrapeHashes)
	}
}

// TestHTTPIPv6: a client over [::1] is recorded with its IPv6 address and
// gets IPv6 peers in "peers6", IPv4 ones in "peers".
func TestHTTPIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("cannot listen on [::1]: %v", err)
	}
	s := New(Config{})
	ts := httptest.NewUnstartedServer(s)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	defer ts.Close()
	h := testHash(1)
	r := announceHTTP(t, ts, announceQuery(h, testID(1), 1001, "left=5"))
	if r.Failure != "" {
		t.Fatal(r.Failure)
	}
	// An IPv4 peer joins (from loopback, through "ip").
	announceHTTP(t, ts, announceQuery(h, testID(2), 1002, "left=5", "ip=127.0.0.2"))
	r = announceHTTP(t, ts, announceQuery(h, testID(3), 1003, "left=5"))
	v6 := compactPeers(t, []byte(r.Peers6), 18)
	if want := []netip.AddrPort{netip.MustParseAddrPort("[::1]:1001")}; !slices.Equal(v6, want) {
		t.Errorf("peers6 %v, want %v", v6, want)
	}
	if v4, want := r.v4Peers(t), []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:1002")}; !slices.Equal(v4, want) {
		t.Errorf("peers %v, want %v", v4, want)
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		raw  string
		want []param
		err  bool
	}{
		{"", nil, false},
		{"a=1&b=2", []param{{"a", "1"}, {"b", "2"}}, false},
		{"a=1&a=2", []param{{"a", "1"}, {"a", "2"}}, false},
		{"a&b=", []param{{"a", ""}, {"b", ""}}, false},
		{"a=x=y", []param{{"a", "x=y"}}, false},
		{"%00%ff=%41+b", []param{{"\x00\xff", "A b"}}, false},
		{"a;b=1", []param{{"a;b", "1"}}, false},
		{"a=%", nil, true},
		{"a=%1", nil, true},
		{"a=%1g", nil, true},
		{"%=1", nil, true},
	}
	for _, tt := range tests {
		got, err := parseQuery(tt.raw)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("parseQuery(%q) = %q, %v; want %q, error %v", tt.raw, got, err, tt.want, tt.err)
		}
	}
}

// FuzzParseQuery: any query parses or fails without panicking, and what
// parses is well formed.
func FuzzParseQuery(f *testing.F) {
	h, id := testHash(1), testID(1)
	f.Add(announceQuery(h, id, 6881, "left=0", "event=started", "numwant=50", "compact=1"))
	f.Add(announceQuery(h, id, 6881, "ip=10.0.0.1", "no_peer_id=1", "compact=0"))
	f.Add("info_hash=%zz&port=0")
	f.Add("info_hash=" + escapeAll(h[:]) + "&info_hash=" + escapeAll(h[:]))
	f.Add("a=%&&+=+")
	f.Fuzz(func(t *testing.T, raw string) {
		params, err := parseQuery(raw)
		if err != nil {
			return
		}
		if len(params) > maxParams {
			t.Fatalf("%d params", len(params))
		}
		for _, remote := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.1")} {
			ha, err := parseAnnounce(params, remote)
			if err != nil {
				if _, ok := err.(failure); !ok {
					t.Fatalf("error %T %v", err, err)
				}
				continue
			}
			if ha.addr.Port() == 0 || !ha.addr.Addr().IsValid() || ha.addr.Addr().Is4In6() || ha.addr.Addr().Zone() != "" {
				t.Fatalf("address %v", ha.addr)
			}
			if !remote.IsLoopback() && ha.addr.Addr() != remote {
				t.Fatalf("non-loopback client recorded as %v", ha.addr)
			}
			if ha.event > tracker.Stopped {
				t.Fatalf("event %d", ha.event)
			}
		}
		hashes, err := parseScrape(params)
		if err == nil && len(hashes) > maxScrapeHashes {
			t.Fatalf("%d hashes", len(hashes))
		}
	})
}
