package tracker

import (
	"encoding/hex"
	"errors"
	"runtime/debug"
	"testing"
	"time"
)

var httpReplySeeds = []string{
	"",
	"de",
	"le",
	"i5e",
	"d8:intervali1800e5:peers0:e",
	"d8:intervali1800e12:min intervali60e8:completei5e10:incompletei7e5:peers12:\x0a\x00\x00\x01\x1a\xe1\xc0\xa8\x01\x02\xc8\xd56:peers618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe2e",
	"d5:peersld2:ip8:10.0.0.17:peer id20:-XX0001-abcdefghijkl4:porti6881eed2:ip11:2001:db8::74:porti1eed2:ip7:example4:porti1eeee",
	"d5:peersld2:ip8:10.0.0.14:porti0eed2:ip8:10.0.0.24:porti65536eed2:ip12:fe80::1%eth04:porti5eeee",
	"d14:failure reason20:unregistered torrente",
	"d14:failure reasoni5ee",
	"d15:warning message9:slow down8:intervali-1ee",
	"d10:tracker id3:abc8:intervali9223372036854775807ee",
	"d5:peers5:12345e",
	"d5:peersi5ee",
	"d6:peers6li1eee",
	// The announce reply of the npm bittorrent-tracker server 11.2.3.
	"d8:completei1e10:incompletei0e8:intervali600e5:peers6:\x7f\x00\x00\x01\x1a\xe16:peers60:e",
}

// FuzzParseHTTPReply: any announce reply parses without panicking, within
// bounds, and fails only with a *FailureError or ErrBadReply.
func FuzzParseHTTPReply(f *testing.F) {
	for _, s := range httpReplySeeds {
		f.Add([]byte(s), 0)
		f.Add([]byte(s), 1)
	}
	f.Fuzz(func(t *testing.T, body []byte, maxPeers int) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic parsing %q: %v\n%s", body, r, debug.Stack())
			}
		}()
		resp, err := ParseHTTPAnnounce(body, maxPeers)
		if err != nil {
			if _, ok := errors.AsType[*FailureError](err); !ok && !errors.Is(err, ErrBadReply) {
				t.Fatalf("error %v is neither a failure nor ErrBadReply", err)
			}
			if resp != nil {
				t.Fatal("a response with an error")
			}
			return
		}
		limit := maxPeers
		if limit <= 0 {
			limit = DefaultMaxPeers
		}
		if len(resp.Peers) > limit {
			t.Fatalf("%d peers, limit %d", len(resp.Peers), limit)
		}
		for _, p := range resp.Peers {
			if p.Port() == 0 || !p.Addr().IsValid() || p.Addr().IsUnspecified() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("bad peer %v", p)
			}
		}
		if resp.Interval <= 0 || resp.Interval > maxTrackerInterval {
			t.Fatalf("interval %v", resp.Interval)
		}
		if resp.MinInterval < 0 || resp.MinInterval > maxTrackerInterval || resp.MinInterval%time.Second != 0 {
			t.Fatalf("min interval %v", resp.MinInterval)
		}
		if resp.Seeders < -1 || resp.Leechers < -1 {
			t.Fatalf("counts %d, %d", resp.Seeders, resp.Leechers)
		}
		if len(resp.Warning) > 3*maxTrackerStringLen || len(resp.TrackerID) > maxTrackerStringLen {
			t.Fatalf("strings of %d and %d bytes", len(resp.Warning), len(resp.TrackerID))
		}
	})
}

// FuzzParseHTTPScrape: any scrape reply parses without panicking, with
// counts that are never negative, and fails only with a *FailureError or
// ErrBadReply.
func FuzzParseHTTPScrape(f *testing.F) {
	btt, err := hex.DecodeString(bittorrentTrackerScrape)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"",
		"de",
		"d5:filesdee",
		"d5:filesd20:\x01\xff\x00 %\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00d8:completei1e10:downloadedi2e10:incompletei3eeee",
		"d5:filesd40:abcdef0123456789abcdef0123456789abcdef01d8:completei-1eeee",
		"d5:filesd3:???d8:completei1eeee",
		"d5:filesd20:aaaaaaaaaaaaaaaaaaaa3:xyzee",
		"d5:filesle",
		"d14:failure reason11:no scrapinge",
		string(btt),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic parsing %q: %v\n%s", body, r, debug.Stack())
			}
		}()
		files, err := ParseHTTPScrape(body)
		if err != nil {
			if _, ok := errors.AsType[*FailureError](err); !ok && !errors.Is(err, ErrBadReply) {
				t.Fatalf("error %v is neither a failure nor ErrBadReply", err)
			}
			return
		}
		if files == nil {
			t.Fatal("nil map without an error")
		}
		for h, r := range files {
			if r.Seeders < 0 || r.Completed < 0 || r.Leechers < 0 {
				t.Fatalf("%v: negative counts %+v", h, r)
			}
		}
	})
}
