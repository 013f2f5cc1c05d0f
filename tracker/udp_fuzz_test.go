package tracker

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// checkUDPFailure checks the bounds of an error reply's reason.
func checkUDPFailure(t *testing.T, err error) {
	t.Helper()
	var fe *FailureError
	if !errors.As(err, &fe) {
		if !errors.Is(err, ErrBadReply) {
			t.Fatalf("error %v is neither a *FailureError nor ErrBadReply", err)
		}
		return
	}
	r := fe.Reason
	if r == "" || len(r) > maxTrackerStringLen || !utf8.ValidString(r) {
		t.Fatalf("reason %q: empty, too long or not UTF-8", r)
	}
	if strings.IndexFunc(r, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
		t.Fatalf("reason %q has unprintable characters", r)
	}
}

func FuzzParseUDPConnectReply(f *testing.F) {
	f.Add(udpReplyBytes(0, 1, be64(0x41727101980)))
	f.Add(udpReplyBytes(3, 1, []byte("go away\x00")))
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ParseUDPConnectReply(b)
		if err != nil {
			checkUDPFailure(t, err)
			return
		}
		if len(b) < udpConnectReplyLen {
			t.Fatalf("accepted a %d-byte connect reply", len(b))
		}
	})
}

func FuzzParseUDPAnnounceReply(f *testing.F) {
	v4 := AppendCompact(nil, []netip.AddrPort{netip.MustParseAddrPort("1.2.3.4:5"), netip.MustParseAddrPort("5.6.7.8:9")}, false)
	v6 := AppendCompact(nil, []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::5]:5")}, true)
	f.Add(udpReplyBytes(1, 7, announceBody(1800, 3, 4, v4)), false, 1)
	f.Add(udpReplyBytes(1, 7, announceBody(-1, -1, 10_000_000, v6)), true, 0)
	f.Add(udpReplyBytes(1, 7, announceBody(60, 0, 0, v4[:7])), false, 50)
	f.Add(udpReplyBytes(3, 7, []byte("bad\xff\x00")), false, 50)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool, maxPeers int) {
		resp, err := ParseUDPAnnounceReply(b, v6, maxPeers)
		if err != nil {
			checkUDPFailure(t, err)
			return
		}
		size := CompactV4Len
		if v6 {
			size = CompactV6Len
		}
		if len(b) < udpAnnounceHeaderLen || (len(b)-udpAnnounceHeaderLen)%size != 0 {
			t.Fatalf("accepted a %d-byte reply with %d-byte peers", len(b), size)
		}
		limit := maxPeers
		if limit <= 0 {
			limit = DefaultMaxPeers
		}
		if n := len(resp.Peers); n > limit || n > (len(b)-udpAnnounceHeaderLen)/size {
			t.Fatalf("%d peers from %d bytes, max %d", n, len(b), maxPeers)
		}
		if resp.Interval <= 0 || resp.Interval > maxTrackerInterval {
			t.Fatalf("interval %v", resp.Interval)
		}
		if resp.Seeders < -1 || resp.Leechers < -1 {
			t.Fatalf("counts %d %d", resp.Seeders, resp.Leechers)
		}
		for _, p := range resp.Peers {
			if !p.IsValid() || p.Port() == 0 || p.Addr().IsUnspecified() || p.Addr().Is4In6() || !v6 && !p.Addr().Is4() {
				t.Fatalf("bad peer %v", p)
			}
		}
	})
}

func FuzzParseUDPScrapeReply(f *testing.F) {
	f.Add(udpReplyBytes(2, 7, make([]byte, 24)), 2)
	f.Add(udpReplyBytes(2, 7, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 2}), 1)
	f.Add(udpReplyBytes(2, 7, make([]byte, 11)), 1)
	f.Add(udpReplyBytes(3, 7, []byte("no scrape")), 74)
	f.Add(udpReplyBytes(2, 7), -1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		res, err := ParseUDPScrapeReply(b, n)
		if err != nil {
			checkUDPFailure(t, err)
			return
		}
		if n < 0 || len(res) != n || len(b) < udpReplyHeaderLen+n*udpScrapeEntryLen {
			t.Fatalf("%d results for n=%d from %d bytes", len(res), n, len(b))
		}
		for _, r := range res {
			if r.Seeders < 0 || r.Completed < 0 || r.Leechers < 0 {
				t.Fatalf("negative count %+v", r)
			}
		}
	})
}
