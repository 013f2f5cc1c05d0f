package dht

import (
	"net/netip"
	"reflect"
	"runtime/debug"
	"testing"
)

func FuzzKRPC(f *testing.F) {
	for _, tc := range bep5Examples {
		f.Add([]byte(tc.in))
	}
	a := id20("aaaaaaaaaaaaaaaaaaaa")
	f.Add([]byte("d1:rd2:id20:mnopqrstuvwxyz1234565:nodes26:" + compactNode(a, "1.2.3.4:6881") +
		"6:nodes638:" + compactNode(a, "[2001:db8::1]:6881") + "e1:t4:abcd1:y1:re"))
	f.Add([]byte("d1:rd2:id20:mnopqrstuvwxyz1234566:valuesl18:" + string(appendPeer(nil, netip.MustParseAddrPort("[2001:db8::2]:1"))) + "6:\x00\x00\x00\x00\x00\x01ee1:t1:x1:y1:re"))
	f.Add([]byte("d1:ad2:id20:abcdefghij01234567894:porti80e5:token1:ke1:q13:announce_peer1:t1:x1:y1:q2:roi1ee"))
	f.Add([]byte("d1:eli-5e0:e1:t1:x1:y1:ee"))
	f.Fuzz(checkRoundTrip)
}

// checkRoundTrip checks that parsing b never panics, and that a message
// that parses encodes to one that parses to the same value.
func checkRoundTrip(t *testing.T, b []byte) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic parsing %q: %v\n%s", b, r, debug.Stack())
		}
	}()
	m, err := ParseMsg(b)
	if err != nil {
		return
	}
	enc, err := m.Marshal()
	if err != nil {
		t.Fatalf("parsed %q to %+v, which does not encode: %v", b, m, err)
	}
	m2, err := ParseMsg(enc)
	if err != nil {
		t.Fatalf("re-encoding %q as %q does not parse: %v", b, enc, err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("round trip of %q changed it:\n%+v\n%+v", b, m, m2)
	}
}
