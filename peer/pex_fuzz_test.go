package peer

import (
	"bytes"
	"errors"
	"net/netip"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/aiotorrent/aiotorrent/bencode"
)

func FuzzPEX(f *testing.F) {
	for _, tc := range realPEX {
		f.Add([]byte(tc.payload))
	}
	p1 := compact("192.0.2.1:6881")
	f.Add([]byte("de"))
	f.Add([]byte(benc("added", p1[:5])))
	f.Add([]byte(benc("added6", p1+p1+p1, "added6.f", "\x01")))
	f.Add([]byte(benc("added", p1+p1, "added.f", "\x01")))
	f.Add([]byte("d5:added6:" + p1 + "7:added.fli1eee"))
	f.Add([]byte(benc("added", compact("0.0.0.0:1", "192.0.2.1:0", "224.0.0.1:1", "255.255.255.255:1"), "added6", compact("[::ffff:192.0.2.1]:6881", "[ff02::1]:1"))))
	f.Add([]byte(benc("dropped", p1, "added", p1)))
	f.Add([]byte("d5:added6:" + p1 + "ex"))
	f.Add([]byte("d1:x" + strings.Repeat("l", 8) + strings.Repeat("e", 8) + "e"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic parsing %q: %v\n%s", data, p, debug.Stack())
			}
		}()
		m, err := ParsePEX(data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("ParsePEX(%q): %v (%T) does not wrap ErrBadMessage", data, err, err)
			}
			if m.Added != nil || m.Dropped != nil {
				t.Fatalf("ParsePEX(%q) returned %s with its error", data, describePEX(m))
			}
			return
		}
		// What parses is a bencoded dictionary within the bounds.
		if err := (&bencode.Decoder{MaxDepth: maxExtDepth, MaxSize: MaxExtendedLen}).Valid(data); err != nil || data[0] != 'd' {
			t.Fatalf("ParsePEX accepted %q: %v", data, err)
		}
		added := make([]netip.AddrPort, len(m.Added))
		for i, p := range m.Added {
			added[i] = p.Addr
		}
		checkPEXList(t, data, "Added", added)
		checkPEXList(t, data, "Dropped", m.Dropped)
		checkPEXRoundTrip(t, m)
	})
}

// checkPEXList checks a list ParsePEX returned: peers' addresses only,
// unmapped, each once, IPv4 first, at most MaxPEXPeers of each family.
func checkPEXList(t *testing.T, data []byte, name string, list []netip.AddrPort) {
	t.Helper()
	seen := make(map[netip.AddrPort]bool)
	var n4, n6 int
	for i, a := range list {
		ip := a.Addr()
		switch {
		case a.Port() == 0, !ip.IsValid(), ip.IsUnspecified(), ip.IsMulticast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}),
			ip.Is4In6(), ip.Zone() != "", seen[a]:
			t.Fatalf("ParsePEX(%q): %s[%d] = %s", data, name, i, a)
		case ip.Is4():
			if n6 > 0 {
				t.Fatalf("ParsePEX(%q): %s has IPv4 %s after IPv6", data, name, a)
			}
			n4++
		default:
			n6++
		}
		seen[a] = true
	}
	if n4 > MaxPEXPeers || n6 > MaxPEXPeers {
		t.Fatalf("ParsePEX(%.80q): %s of %d IPv4 and %d IPv6", data, name, n4, n6)
	}
	// Every address kept is in the payload: IPv4 as 4 bytes or mapped
	// in 16, IPv6 as 16.
	for _, a := range list {
		port := []byte{byte(a.Port() >> 8), byte(a.Port())}
		ip16 := a.Addr().As16()
		found := bytes.Contains(data, append(ip16[:], port...))
		if a.Addr().Is4() {
			ip4 := a.Addr().As4()
			found = found || bytes.Contains(data, append(ip4[:], port...))
		}
		if !found {
			t.Fatalf("ParsePEX(%q): %s has %s, not in the payload", data, name, a)
		}
	}
}
