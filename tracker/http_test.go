package tracker

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// benc encodes v for a test reply.
func benc(t testing.TB, v any) []byte {
	t.Helper()
	b, err := bencode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newHTTPTestServer starts a loopback tracker serving h.
func newHTTPTestServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newHTTPTestClient(t *testing.T, rawURL string, o Options) Client {
	t.Helper()
	c, err := New(rawURL, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*httpClient); !ok {
		t.Fatalf("New(%q) = %T, want *httpClient", rawURL, c)
	}
	return c
}

// replyServer serves whatever body is stored last, and records the raw
// query of each request.
type replyServer struct {
	*httptest.Server
	mu      sync.Mutex
	status  int
	body    []byte
	queries []string
	agents  []string
	paths   []string
}

func newReplyServer(t *testing.T) *replyServer {
	rs := &replyServer{status: http.StatusOK}
	rs.Server = newHTTPTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		rs.queries = append(rs.queries, r.URL.RawQuery)
		rs.agents = append(rs.agents, r.Header.Get("User-Agent"))
		rs.paths = append(rs.paths, r.URL.EscapedPath())
		status, body := rs.status, rs.body
		rs.mu.Unlock()
		w.WriteHeader(status)
		w.Write(body)
	})
	return rs
}

func (rs *replyServer) set(status int, body []byte) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.status, rs.body = status, body
}

func (rs *replyServer) last() (query, agent, path string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	n := len(rs.queries)
	if n == 0 {
		return "", "", ""
	}
	return rs.queries[n-1], rs.agents[n-1], rs.paths[n-1]
}

const okReply = "d8:intervali60e5:peers0:e"

// awkwardHash holds the bytes that need escaping most: NUL, 0xff, space,
// '%', '&', '=', '+', and the unreserved ones that must not be escaped.
var awkwardHash = metainfo.Hash{0x00, 0xff, ' ', '%', '&', '=', '+', '~', '.', '-', '_', 'a', 'Z', '9', '/', '?', 0x80, 0x7f, '#', 0x01}

const awkwardHashEscaped = "%00%FF%20%25%26%3D%2B~.-_aZ9%2F%3F%80%7F%23%01"

func TestHTTPAnnounceQuery(t *testing.T) {
	var pid PeerID
	copy(pid[:], "-AT0001-\x00\xff %abcdefgh")
	const pidEscaped = "-AT0001-%00%FF%20%25abcdefgh"
	base := AnnounceRequest{
		InfoHash: awkwardHash, PeerID: pid, Port: 6881,
		Uploaded: 1, Downloaded: 22, Left: 333, NumWant: -1, Key: 0xbeef,
	}
	common := "info_hash=" + awkwardHashEscaped + "&peer_id=" + pidEscaped +
		"&port=6881&uploaded=1&downloaded=22&left=333&compact=1"
	tests := []struct {
		name   string
		suffix string // after the server's address
		edit   func(*AnnounceRequest)
		want   string
	}{
		{"plain", "/announce", nil, common + "&key=0000beef"},
		{"existing query kept", "/announce?passkey=abc%2Fdef&x=1", nil,
			"passkey=abc%2Fdef&x=1&" + common + "&key=0000beef"},
		{"existing query ending in &", "/announce?passkey=abc&", nil,
			"passkey=abc&" + common + "&key=0000beef"},
		{"fragment dropped", "/announce?pk=1#frag", nil, "pk=1&" + common + "&key=0000beef"},
		{"started", "/announce", func(r *AnnounceRequest) { r.Event = Started }, common + "&event=started&key=0000beef"},
		{"completed", "/announce", func(r *AnnounceRequest) { r.Event = Completed }, common + "&event=completed&key=0000beef"},
		{"stopped with numwant 0", "/announce", func(r *AnnounceRequest) { r.Event = Stopped; r.NumWant = 0 },
			common + "&event=stopped&numwant=0&key=0000beef"},
		{"numwant 50", "/announce", func(r *AnnounceRequest) { r.NumWant = 50 }, common + "&numwant=50&key=0000beef"},
		{"key full width", "/announce", func(r *AnnounceRequest) { r.Key = 0xdeadbeef }, common + "&key=deadbeef"},
		{"large counters", "/announce", func(r *AnnounceRequest) {
			r.Uploaded, r.Downloaded, r.Left, r.Port = 1<<40, 1<<50, 0, 65535
		}, strings.NewReplacer("port=6881", "port=65535", "uploaded=1&", "uploaded=1099511627776&",
			"downloaded=22", "downloaded=1125899906842624", "left=333", "left=0").Replace(common) + "&key=0000beef"},
	}
	rs := newReplyServer(t)
	rs.set(200, []byte(okReply))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newHTTPTestClient(t, rs.URL+tt.suffix, Options{UserAgent: "test-agent/1.0"})
			req := base
			if tt.edit != nil {
				tt.edit(&req)
			}
			if _, err := c.Announce(t.Context(), &req); err != nil {
				t.Fatal(err)
			}
			q, agent, path := rs.last()
			if q != tt.want {
				t.Errorf("query\n got %s\nwant %s", q, tt.want)
			}
			if agent != "test-agent/1.0" {
				t.Errorf("User-Agent %q", agent)
			}
			if path != "/announce" {
				t.Errorf("path %q", path)
			}
			// Go's own parser must read back the raw bytes.
			v, err := url.ParseQuery(q)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Get("info_hash"); got != string(req.InfoHash[:]) {
				t.Errorf("info_hash decodes to %q", got)
			}
			if got := v.Get("peer_id"); got != string(req.PeerID[:]) {
				t.Errorf("peer_id decodes to %q", got)
			}
		})
	}
}

func TestHTTPAnnounceDefaultUserAgent(t *testing.T) {
	rs := newReplyServer(t)
	rs.set(200, []byte(okReply))
	c := newHTTPTestClient(t, rs.URL+"/announce", Options{})
	if _, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1}); err != nil {
		t.Fatal(err)
	}
	if _, agent, _ := rs.last(); agent != "aiotorrent" {
		t.Errorf("User-Agent %q, want the default", agent)
	}
}

func TestHTTPTrackerIDSentBack(t *testing.T) {
	rs := newReplyServer(t)
	c := newHTTPTestClient(t, rs.URL+"/announce", Options{})
	steps := []struct {
		reply   string
		wantTID string // trackerid parameter of this request ("" for none)
	}{
		{"d8:intervali60e10:tracker id4:t\x00=1e", ""},
		{okReply, "t%00%3D1"},                // remembered
		{okReply, "t%00%3D1"},                // a reply without one keeps it
		{"d10:tracker id3:newe", "t%00%3D1"}, // replaced by the next one
		{okReply, "new"},
	}
	for i, s := range steps {
		rs.set(200, []byte(s.reply))
		resp, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		q, _, _ := rs.last()
		_, tid, found := strings.Cut(q, "&trackerid=")
		if s.wantTID == "" && found || s.wantTID != "" && tid != s.wantTID {
			t.Errorf("step %d: query %q, want trackerid %q", i, q, s.wantTID)
		}
		if i == 0 && resp.TrackerID != "t\x00=1" {
			t.Errorf("step 0: TrackerID %q", resp.TrackerID)
		}
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// compact4 and compact6 write peers in compact form.
func compact4(peers ...string) string {
	var ps []netip.AddrPort
	for _, p := range peers {
		ps = append(ps, ap(p))
	}
	return string(AppendCompact(nil, ps, false))
}

func compact6(peers ...string) string {
	var ps []netip.AddrPort
	for _, p := range peers {
		ps = append(ps, ap(p))
	}
	return string(AppendCompact(nil, ps, true))
}

func TestHTTPAnnounceReplies(t *testing.T) {
	type m = map[string]any
	type l = []any
	tests := []struct {
		name     string
		body     any // bencoded unless a string
		maxPeers int
		want     *AnnounceResponse
		wantErr  error  // errors.Is target; nil: success
		errText  string // must appear in the error
		failure  string // a *FailureError with this reason
	}{
		{
			name: "compact v4 and peers6",
			body: m{"interval": 1800, "min interval": 60, "complete": 5, "incomplete": 7,
				"peers":  compact4("10.0.0.1:6881", "192.168.1.2:51413"),
				"peers6": compact6("[2001:db8::1]:6882", "[fe80::2]:1")},
			want: &AnnounceResponse{Interval: 30 * time.Minute, MinInterval: time.Minute, Seeders: 5, Leechers: 7,
				Peers: []netip.AddrPort{ap("10.0.0.1:6881"), ap("192.168.1.2:51413"), ap("[2001:db8::1]:6882"), ap("[fe80::2]:1")}},
		},
		{
			name: "compact entries with port 0 or unspecified address skipped",
			body: m{"peers": compact4("10.0.0.1:1") + "\x0a\x00\x00\x02\x00\x00" + "\x00\x00\x00\x00\x1a\xe1"},
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: -1, Leechers: -1,
				Peers: []netip.AddrPort{ap("10.0.0.1:1")}},
		},
		{
			name: "dictionary peers",
			body: m{"interval": 900, "peers": l{
				m{"ip": "10.0.0.1", "port": 6881, "peer id": "-XX0001-abcdefghijkl"},
				m{"ip": "2001:db8::7", "port": 1},
				m{"ip": "::ffff:10.0.0.9", "port": 65535},
				m{"ip": "tracker.example.org", "port": 6881}, // hostname: skipped
				m{"ip": "10.0.0.2", "port": 0},               // skipped
				m{"ip": "10.0.0.3", "port": 65536},           // skipped
				m{"ip": "10.0.0.4", "port": -1},              // skipped
				m{"ip": "10.0.0.5"},                          // no port: skipped
				m{"port": 5},                                 // no ip: skipped
				m{"ip": "0.0.0.0", "port": 5},                // skipped
				m{"ip": "fe80::1%eth0", "port": 5},           // zone: skipped
				m{"ip": "10.0.0.6", "port": 6},
			}},
			want: &AnnounceResponse{Interval: 15 * time.Minute, Seeders: -1, Leechers: -1,
				Peers: []netip.AddrPort{ap("10.0.0.1:6881"), ap("[2001:db8::7]:1"), ap("10.0.0.9:65535"), ap("10.0.0.6:6")}},
		},
		{
			name: "mixed dictionary peers and compact peers6",
			body: m{"peers": l{m{"ip": "10.0.0.1", "port": 1}}, "peers6": compact6("[::1]:2")},
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: -1, Leechers: -1,
				Peers: []netip.AddrPort{ap("10.0.0.1:1"), ap("[::1]:2")}},
		},
		{
			name: "missing fields take defaults",
			body: "de",
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: -1, Leechers: -1},
		},
		{
			name: "empty peer lists",
			body: m{"peers": l{}, "peers6": "", "complete": 0, "incomplete": 0},
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: 0, Leechers: 0},
		},
		{
			name: "negative counts mean unknown",
			body: m{"complete": -3, "incomplete": -1},
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: -1, Leechers: -1},
		},
		{name: "interval 1s kept", body: m{"interval": 1},
			want: &AnnounceResponse{Interval: time.Second, Seeders: -1, Leechers: -1}},
		{name: "interval 24h kept", body: m{"interval": 86400, "min interval": 86400},
			want: &AnnounceResponse{Interval: 24 * time.Hour, MinInterval: 24 * time.Hour, Seeders: -1, Leechers: -1}},
		{name: "interval 0 clamped", body: m{"interval": 0, "min interval": 0},
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: -1, Leechers: -1}},
		{name: "negative interval clamped", body: m{"interval": -60, "min interval": -1},
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: -1, Leechers: -1}},
		{name: "absurd interval clamped", body: m{"interval": 86401, "min interval": int64(1) << 40},
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: -1, Leechers: -1}},
		{name: "interval of max int64 clamped", body: "d8:intervali9223372036854775807e12:min intervali-9223372036854775808ee",
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: -1, Leechers: -1}},
		{
			name: "warning",
			body: m{"warning message": "slow down", "interval": 60, "peers": compact4("10.0.0.1:1")},
			want: &AnnounceResponse{Interval: time.Minute, Seeders: -1, Leechers: -1, Warning: "slow down",
				Peers: []netip.AddrPort{ap("10.0.0.1:1")}},
		},
		{
			name:     "peers and peers6 capped together",
			body:     m{"peers": compact4("10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3"), "peers6": compact6("[::1]:1", "[::2]:2")},
			maxPeers: 4,
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: -1, Leechers: -1,
				Peers: []netip.AddrPort{ap("10.0.0.1:1"), ap("10.0.0.2:2"), ap("10.0.0.3:3"), ap("[::1]:1")}},
		},
		{
			name:     "dictionary peers capped",
			body:     m{"peers": l{m{"ip": "10.0.0.1", "port": 1}, m{"ip": "10.0.0.2", "port": 2}, m{"ip": "10.0.0.3", "port": 3}}},
			maxPeers: 2,
			want: &AnnounceResponse{Interval: 30 * time.Minute, Seeders: -1, Leechers: -1,
				Peers: []netip.AddrPort{ap("10.0.0.1:1"), ap("10.0.0.2:2")}},
		},
		{name: "failure reason", body: m{"failure reason": "unregistered torrent"}, failure: "unregistered torrent"},
		{name: "failure reason beats malformed fields", body: m{"failure reason": "go away", "interval": "soon", "peers": 3},
			failure: "go away"},
		{name: "long failure reason cut", body: m{"failure reason": strings.Repeat("x", 10000)},
			failure: strings.Repeat("x", maxTrackerStringLen)},

		{name: "interval is a string", body: m{"interval": "1800"}, wantErr: ErrBadReply, errText: `"interval"`},
		{name: "min interval is a list", body: m{"min interval": l{}}, wantErr: ErrBadReply, errText: `"min interval"`},
		{name: "complete is a string", body: m{"complete": "5"}, wantErr: ErrBadReply, errText: `"complete"`},
		{name: "incomplete is a dict", body: m{"incomplete": m{}}, wantErr: ErrBadReply, errText: `"incomplete"`},
		{name: "warning is an integer", body: m{"warning message": 5}, wantErr: ErrBadReply, errText: `"warning message"`},
		{name: "tracker id is an integer", body: m{"tracker id": 5}, wantErr: ErrBadReply, errText: `"tracker id"`},
		{name: "failure reason is an integer", body: m{"failure reason": 5}, wantErr: ErrBadReply, errText: `"failure reason"`},
		{name: "peers is an integer", body: m{"peers": 5}, wantErr: ErrBadReply, errText: `"peers"`},
		{name: "peers is a dict", body: m{"peers": m{}}, wantErr: ErrBadReply, errText: `"peers"`},
		{name: "peers6 is an integer", body: m{"peers6": 5}, wantErr: ErrBadReply, errText: `"peers6"`},
		{name: "compact peers of a bad length", body: m{"peers": "12345"}, wantErr: ErrBadReply, errText: `"peers"`},
		{name: "compact peers6 of a bad length", body: m{"peers6": strings.Repeat("x", 17)}, wantErr: ErrBadReply, errText: `"peers6"`},
		{name: "peer list of integers", body: m{"peers": l{1, 2}}, wantErr: ErrBadReply, errText: `"peers"`},
		{name: "peer ip is an integer", body: m{"peers": l{m{"ip": 1, "port": 1}}}, wantErr: ErrBadReply, errText: "ip"},
		{name: "peer port is a string", body: m{"peers": l{m{"ip": "10.0.0.1", "port": "1"}}}, wantErr: ErrBadReply, errText: "port"},
		{name: "reply is a list", body: l{}, wantErr: ErrBadReply},
		{name: "reply is not bencode", body: "<html>hello</html>", wantErr: ErrBadReply},
		{name: "reply is empty", body: "", wantErr: ErrBadReply},
		{name: "reply has trailing data", body: okReply + "x", wantErr: ErrBadReply},
		{name: "reply has duplicate keys", body: "d8:intervali1e8:intervali2ee", wantErr: ErrBadReply},
	}
	rs := newReplyServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := replyBody(t, tt.body)
			rs.set(200, body)
			c := newHTTPTestClient(t, rs.URL+"/announce", Options{MaxPeers: tt.maxPeers})
			got, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1})
			switch {
			case tt.failure != "":
				fe, ok := errors.AsType[*FailureError](err)
				if !ok {
					t.Fatalf("err = %v, want a *FailureError", err)
				}
				if fe.Reason != tt.failure {
					t.Errorf("reason %q, want %q", fe.Reason, tt.failure)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("err = %v, want it to mention %s", err, tt.errText)
				}
				if !strings.HasPrefix(err.Error(), "announce http://127.0.0.1:") {
					t.Errorf("err = %v, want the announce URL as context", err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			// The parser alone agrees with the client.
			direct, err := ParseHTTPAnnounce(body, tt.maxPeers)
			if err != nil || !reflect.DeepEqual(direct, tt.want) {
				t.Errorf("ParseHTTPAnnounce = %+v, %v", direct, err)
			}
		})
	}
}

func TestHTTPStatusErrors(t *testing.T) {
	rs := newReplyServer(t)
	c := newHTTPTestClient(t, rs.URL+"/announce", Options{})
	tests := []struct {
		name     string
		status   int
		body     string
		failure  string   // want a *FailureError with this reason
		contains []string // else: the error mentions these
		excludes string
	}{
		{name: "500 with text", status: 500, body: "database\x00 on \xfffire\n",
			contains: []string{"500 Internal Server Error", "database. on .fire"}},
		{name: "500 empty", status: 500, contains: []string{"HTTP status 500"}},
		{name: "404 with a long body", status: 404, body: strings.Repeat("a", 199) + "BCDEF",
			contains: []string{"404 Not Found", strings.Repeat("a", 199) + "B"}, excludes: "BC"},
		{name: "500 with a bencoded failure", status: 500, body: "d14:failure reason8:overloade", failure: "overload"},
		{name: "403 with a bencoded failure", status: 403, body: "d14:failure reason13:bad passkey!!e", failure: "bad passkey!!"},
		{name: "503 with bencode but no failure", status: 503, body: okReply, contains: []string{"503"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs.set(tt.status, []byte(tt.body))
			_, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1})
			if err == nil {
				t.Fatal("no error")
			}
			fe, isFailure := errors.AsType[*FailureError](err)
			if tt.failure != "" {
				if !isFailure || fe.Reason != tt.failure {
					t.Fatalf("err = %v, want failure %q", err, tt.failure)
				}
				return
			}
			if isFailure {
				t.Fatalf("err = %v, want a status error", err)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q, want it to contain %q", err, s)
				}
			}
			if tt.excludes != "" && strings.Contains(err.Error(), tt.excludes) {
				t.Errorf("err = %q, quotes more than 200 bytes", err)
			}
		})
	}
}

// TestHTTPEndlessBody: a tracker that never stops sending is cut off at
// MaxReply, and the connection is closed under it.
func TestHTTPEndlessBody(t *testing.T) {
	for _, status := range []int{200, 500} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			stopped := make(chan int64, 1)
			srv := newHTTPTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				chunk := bytes.Repeat([]byte("d5:peers"), 1024)
				var n int64
				for r.Context().Err() == nil {
					k, err := w.Write(chunk)
					n += int64(k)
					if err != nil {
						break
					}
				}
				stopped <- n
			})
			const limit = 64 << 10
			c := newHTTPTestClient(t, srv.URL+"/announce", Options{MaxReply: limit})
			_, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1})
			if err == nil {
				t.Fatal("no error")
			}
			if status == 200 && !strings.Contains(err.Error(), fmt.Sprint(limit)) {
				t.Errorf("err = %v, want it to mention the limit", err)
			}
			if status == 500 && (!strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), ": d5:peersd5:peers")) {
				t.Errorf("err = %v, want it to mention the status", err)
			}
			select {
			case n := <-stopped:
				t.Logf("handler wrote %d bytes before the connection closed", n)
			case <-time.After(20 * time.Second):
				t.Fatal("the handler is still writing: the client did not close the connection")
			}
		})
	}
}

// TestHTTPSlowTracker: a tracker that never answers is abandoned when the
// context ends.
func TestHTTPSlowTracker(t *testing.T) {
	release := make(chan struct{})
	srv := newHTTPTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // runs before srv.Close, which waits for handlers
	c := newHTTPTestClient(t, srv.URL+"/announce?passkey=SECRET", Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Announce(ctx, &AnnounceRequest{NumWant: -1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("err = %v leaks the passkey", err)
	}

	ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Scrape(ctx, []metainfo.Hash{{1}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("scrape err = %v, want the context's deadline", err)
	}
}

// TestHTTPOptionsTimeout: Options.Timeout bounds a request even when the
// caller's context does not.
func TestHTTPOptionsTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := newHTTPTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := newHTTPTestClient(t, srv.URL+"/announce", Options{Timeout: 200 * time.Millisecond})
	if _, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1}); err == nil {
		t.Fatal("no error from a tracker that never answers")
	}
}

// compactServer claims n compact peers in one string of 6n bytes, with an
// honest Content-Length, streaming the string rather than holding it.
func compactServer(t *testing.T, n int) *httptest.Server {
	return newHTTPTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		head := fmt.Sprintf("d8:intervali1800e5:peers%d:", 6*n)
		w.Header().Set("Content-Length", strconv.Itoa(len(head)+6*n+1))
		io.WriteString(w, head)
		const per = 10000
		chunk := make([]byte, 0, 6*per)
		for i := range per {
			chunk = append(chunk, 10, byte(i>>16), byte(i>>8), byte(i), 0x1a, 0xe1)
		}
		for left := n; left > 0; left -= per {
			if _, err := w.Write(chunk[:6*min(left, per)]); err != nil {
				return
			}
		}
		io.WriteString(w, "e")
	})
}

func TestHTTPTenMillionPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 60 MB")
	}
	const n = 10_000_000
	srv := compactServer(t, n)

	// Over the default limit: refused from the Content-Length alone.
	c := newHTTPTestClient(t, srv.URL+"/announce", Options{})
	_, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(DefaultMaxReply)) {
		t.Fatalf("err = %v, want the reply size limit", err)
	}

	// With room for it: read, and the peers capped.
	c = newHTTPTestClient(t, srv.URL+"/announce", Options{MaxReply: 64 << 20, MaxPeers: 500})
	resp, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 500 {
		t.Fatalf("%d peers, want 500", len(resp.Peers))
	}
	if resp.Peers[0] != ap("10.0.0.0:6881") || resp.Peers[499] != ap("10.0.1.243:6881") {
		t.Errorf("peers %v … %v", resp.Peers[0], resp.Peers[499])
	}
}

func TestHTTPDictPeers100k(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("d8:intervali1800e5:peersl")
	for i := range 100_000 {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16, byte(i>>8), byte(i))
		fmt.Fprintf(&b, "d2:ip%d:%s7:peer id20:-XX0001-abcdefghijkl4:porti%dee", len(ip), ip, 1+i%65535)
	}
	b.WriteString("ee")
	rs := newReplyServer(t)
	rs.set(200, b.Bytes())

	c := newHTTPTestClient(t, rs.URL+"/announce", Options{})
	if _, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1}); err == nil ||
		!strings.Contains(err.Error(), "limit") {
		t.Fatalf("a %d-byte reply: err = %v, want the size limit", b.Len(), err)
	}

	c = newHTTPTestClient(t, rs.URL+"/announce", Options{MaxReply: 16 << 20})
	resp, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != DefaultMaxPeers {
		t.Fatalf("%d peers, want %d", len(resp.Peers), DefaultMaxPeers)
	}
	if resp.Peers[999] != ap("10.0.3.231:1000") {
		t.Errorf("last peer %v", resp.Peers[999])
	}
}

// bittorrentTrackerScrape is the scrape reply of the npm bittorrent-tracker
// server (11.2.3) for the info hash 00ff2025 80c31234 56789abc def12345
// 6789abcd, captured on loopback: the files key is the hash's bytes read
// as Latin-1 and written as UTF-8 (30 bytes here).
const bittorrentTrackerScrape = "64353a66696c65736433303a00c3bf2025c280c38312345678c29ac2bcc39ec3b1234567c289c2abc38d" +
	"64383a636f6d706c65746569316531303a646f776e6c6f6164656469316531303a696e636f6d706c6574656930656565" +
	"353a666c6167736432303a6d696e5f726571756573745f696e74657276616c69363030656565"

func mustHash(t testing.TB, s string) metainfo.Hash {
	t.Helper()
	h, err := metainfo.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// latin1UTF8 writes a hash the way bittorrent-tracker keys its scrape reply.
func latin1UTF8(h metainfo.Hash) string {
	var b strings.Builder
	for _, c := range h {
		b.WriteRune(rune(c))
	}
	return b.String()
}

func TestHTTPScrape(t *testing.T) {
	type m = map[string]any
	h1 := metainfo.Hash{1, 0xff, 0, ' ', '%'}
	h2 := mustHash(t, "abcdef0123456789abcdef0123456789abcdef01")
	h3 := metainfo.Hash{0x80, 0xc3, 0xff, 'a', 0x7f, 0xa0}
	h4 := metainfo.Hash{0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff, 0x80, 0x81, 0x82, 0x83}
	notAsked := metainfo.Hash{9}
	stats := func(s, c, l int) m { return m{"complete": s, "downloaded": c, "incomplete": l} }
	btt, _ := hex.DecodeString(bittorrentTrackerScrape)
	bttHash := mustHash(t, "00ff202580c3123456789abcdef123456789abcd")

	tests := []struct {
		name    string
		hashes  []metainfo.Hash
		body    any
		want    map[metainfo.Hash]ScrapeResult
		wantErr error
		failure string
	}{
		{
			name:   "raw, hex, upper-case hex and Latin-1 keys",
			hashes: []metainfo.Hash{h1, h2, h3, h4, {7}},
			body: m{"files": m{
				string(h1[:]):                   stats(1, 2, 3),
				strings.ToUpper(h2.String()):    stats(4, 5, 6),
				latin1UTF8(h3):                  stats(7, 8, 9),
				latin1UTF8(h4):                  stats(10, 11, 12), // 40 bytes, not hex
				string(notAsked[:]):             stats(1, 1, 1),    // not asked: dropped
				"short":                         stats(1, 1, 1),    // skipped
				strings.Repeat("z", 40):         stats(1, 1, 1),    // skipped
				"\xff\xfe" + string(h1[:18]):    stats(1, 1, 1),    // 20 bytes: read raw, not asked
				strings.Repeat("\u0100", 20)[:]: stats(1, 1, 1),    // runes over 0xff: skipped
			}, "flags": m{"min_request_interval": 60}},
			want: map[metainfo.Hash]ScrapeResult{
				h1: {1, 2, 3}, h2: {4, 5, 6}, h3: {7, 8, 9}, h4: {10, 11, 12},
			},
		},
		{
			name:   "bittorrent-tracker 11.2.3 reply",
			hashes: []metainfo.Hash{bttHash},
			body:   string(btt),
			want:   map[metainfo.Hash]ScrapeResult{bttHash: {Seeders: 1, Completed: 1, Leechers: 0}},
		},
		{
			name:   "one hash, one unreadable key: attributed",
			hashes: []metainfo.Hash{h1},
			body:   m{"files": m{"???": stats(3, 2, 1)}},
			want:   map[metainfo.Hash]ScrapeResult{h1: {3, 2, 1}},
		},
		{
			name:   "two hashes, one unreadable key: dropped",
			hashes: []metainfo.Hash{h1, h2},
			body:   m{"files": m{"???": stats(3, 2, 1)}},
			want:   map[metainfo.Hash]ScrapeResult{},
		},
		{
			name:   "missing counts are 0, negative counts are 0",
			hashes: []metainfo.Hash{h1},
			body:   m{"files": m{string(h1[:]): m{"incomplete": -4, "name": "x"}}},
			want:   map[metainfo.Hash]ScrapeResult{h1: {}},
		},
		{name: "no files", hashes: []metainfo.Hash{h1}, body: "de", want: map[metainfo.Hash]ScrapeResult{}},
		{name: "failure", hashes: []metainfo.Hash{h1}, body: m{"failure reason": "no scraping"}, failure: "no scraping"},
		{name: "failure beats malformed files", hashes: []metainfo.Hash{h1}, body: m{"failure reason": "no", "files": 1},
			failure: "no"},
		{name: "files is a list", hashes: []metainfo.Hash{h1}, body: m{"files": []any{}}, wantErr: ErrBadReply},
		{name: "entry is a string", hashes: []metainfo.Hash{h1}, body: m{"files": m{string(h1[:]): "x"}}, wantErr: ErrBadReply},
		{name: "count is a string", hashes: []metainfo.Hash{h1}, body: m{"files": m{string(h1[:]): m{"complete": "1"}}},
			wantErr: ErrBadReply},
		{name: "not bencode", hashes: []metainfo.Hash{h1}, body: "<html>", wantErr: ErrBadReply},
	}
	rs := newReplyServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := replyBody(t, tt.body)
			rs.set(200, body)
			c := newHTTPTestClient(t, rs.URL+"/x/announce.php?passkey=1", Options{})
			got, err := c.Scrape(t.Context(), tt.hashes)
			q, _, path := rs.last()
			if path != "/x/scrape.php" {
				t.Errorf("path %q", path)
			}
			var wantQ strings.Builder
			wantQ.WriteString("passkey=1")
			for _, h := range tt.hashes {
				wantQ.WriteString("&info_hash=" + string(httpEscape(nil, h[:])))
			}
			if q != wantQ.String() {
				t.Errorf("query\n got %s\nwant %s", q, wantQ.String())
			}
			switch {
			case tt.failure != "":
				if fe, ok := errors.AsType[*FailureError](err); !ok || fe.Reason != tt.failure {
					t.Fatalf("err = %v, want failure %q", err, tt.failure)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestHTTPScrapeNoHashes(t *testing.T) {
	rs := newReplyServer(t)
	c := newHTTPTestClient(t, rs.URL+"/announce", Options{})
	got, err := c.Scrape(t.Context(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Scrape(nil) = %v, %v", got, err)
	}
	if q, _, _ := rs.last(); q != "" {
		t.Errorf("a request was made: %q", q)
	}
}

func TestHTTPScrapeDuplicates(t *testing.T) {
	rs := newReplyServer(t)
	rs.set(200, []byte("d5:filesd3:???d8:completei4eeee"))
	c := newHTTPTestClient(t, rs.URL+"/announce", Options{})
	h := metainfo.Hash{'h'}
	got, err := c.Scrape(t.Context(), []metainfo.Hash{h, h, h})
	if err != nil {
		t.Fatal(err)
	}
	if q, _, _ := rs.last(); q != "info_hash=h"+strings.Repeat("%00", 19) {
		t.Errorf("query %q, want the hash once", q)
	}
	if want := map[metainfo.Hash]ScrapeResult{h: {Seeders: 4}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestHTTPAnnounceNilRequest(t *testing.T) {
	c := newHTTPTestClient(t, "http://127.0.0.1:1/announce", Options{})
	if _, err := c.Announce(t.Context(), nil); err == nil {
		t.Fatal("no error")
	}
}

func TestHTTPScrapeURL(t *testing.T) {
	tests := []struct {
		announce string
		scrape   string // "" for unsupported
	}{
		{"http://h/announce", "http://h/scrape"},
		{"http://h:6969/announce", "http://h:6969/scrape"},
		{"https://h/x/announce", "https://h/x/scrape"},
		{"http://h/announce.php", "http://h/scrape.php"},
		{"http://h/x/announce.php?passkey=1", "http://h/x/scrape.php?passkey=1"},
		{"http://h/announce?x=2%0644", "http://h/scrape?x=2%0644"},
		{"http://h/0123456789abcdef/announce", "http://h/0123456789abcdef/scrape"},
		{"http://h/announce%20x", "http://h/scrape%20x"},
		{"http://h/x%2Fannounce", ""}, // the segment is "x%2Fannounce"
		{"http://h/x%064announce", ""},
		{"http://h/announce/", ""},
		{"http://h/a", ""},
		{"http://h/", ""},
		{"http://h", ""},
		{"http://h/scrape", ""},
		{"http://h/Announce", ""},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.announce)
		if err != nil {
			t.Fatal(err)
		}
		got, err := httpScrapeURL(u)
		switch {
		case tt.scrape == "":
			if !errors.Is(err, ErrScrapeUnsupported) {
				t.Errorf("%s: got %v, %v; want unsupported", tt.announce, got, err)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.announce, err)
		case got.String() != tt.scrape:
			t.Errorf("%s: got %s, want %s", tt.announce, got, tt.scrape)
		}
	}

	c := newHTTPTestClient(t, "http://127.0.0.1:1/a?passkey=SECRET", Options{})
	_, err := c.Scrape(t.Context(), []metainfo.Hash{{1}})
	if !errors.Is(err, ErrScrapeUnsupported) {
		t.Fatalf("err = %v, want ErrScrapeUnsupported", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("err = %v leaks the passkey", err)
	}
}

func TestHTTPRedaction(t *testing.T) {
	const passkey = "0123456789abcdef0123456789abcdef"
	rs := newReplyServer(t)
	rs.set(500, []byte("nope"))
	host := strings.TrimPrefix(rs.URL, "http://")

	// A closed port: the error comes from net/http, whose own message
	// quotes the whole URL.
	closed := httptest.NewServer(http.NotFoundHandler())
	closedHost := strings.TrimPrefix(closed.URL, "http://")
	closed.Close()

	tests := []struct {
		name, url, want string
	}{
		{"query", "http://" + host + "/announce?passkey=SECRET&uid=7",
			"http://" + host + "/announce?REDACTED"},
		{"path and user", "http://user:PASSWORD@" + host + "/" + passkey + "/announce",
			"http://" + host + "/REDACTED/announce"},
		{"connection refused", "http://" + closedHost + "/announce.php?passkey=SECRET",
			"http://" + closedHost + "/announce.php?REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newHTTPTestClient(t, tt.url, Options{})
			if c.URL() != tt.url {
				t.Errorf("URL() = %q, want %q", c.URL(), tt.url)
			}
			_, aerr := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1})
			_, serr := c.Scrape(t.Context(), []metainfo.Hash{{1}})
			for _, err := range []error{aerr, serr} {
				if err == nil {
					t.Fatal("no error")
				}
				msg := err.Error()
				for _, secret := range []string{"SECRET", "PASSWORD", passkey, "uid"} {
					if strings.Contains(msg, secret) {
						t.Errorf("error %q leaks %q", msg, secret)
					}
				}
				if !strings.Contains(msg, tt.want+": ") {
					t.Errorf("error %q, want it to name %s", msg, tt.want)
				}
			}
		})
	}
}

func TestHTTPRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://h/announce", "http://h/announce"},
		{"http://h/announce?", "http://h/announce?REDACTED"},
		{"https://u:p@h:443/x/announce.php?pk=1#f", "https://h:443/x/announce.php?REDACTED"},
		{"http://[::1]:80/ABCDEFGH12345678/announce", "http://[::1]:80/REDACTED/announce"},
		{"http://h/tracker-announce-service/announce", "http://h/tracker-announce-service/announce"},
		{"http://h/abcdefghijklmnopqrstuvwxyz/announce", "http://h/abcdefghijklmnopqrstuvwxyz/announce"},
		{"http://h/announce/0123456789abcdef0", "http://h/announce/REDACTED"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := httpRedactURL(u); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestHTTPConcurrent announces from many goroutines at once (run with
// -race): the tracker id is the only shared state.
func TestHTTPConcurrent(t *testing.T) {
	var n sync.WaitGroup
	rs := newReplyServer(t)
	rs.set(200, []byte("d10:tracker id2:ide"))
	c := newHTTPTestClient(t, rs.URL+"/announce", Options{})
	for range 8 {
		n.Go(func() {
			if _, err := c.Announce(t.Context(), &AnnounceRequest{NumWant: -1}); err != nil {
				t.Error(err)
			}
		})
	}
	n.Wait()
}

// replyBody returns a test reply: a string as it is, anything else bencoded.
func replyBody(t *testing.T, v any) []byte {
	t.Helper()
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	return benc(t, v)
}
