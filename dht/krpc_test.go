package dht

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func id20(s string) ID {
	if len(s) != IDLen {
		panic("id20: " + s)
	}
	return ID([]byte(s))
}

// The example messages of BEP 5.
var bep5Examples = []struct {
	name string
	in   string
	want Msg
}{
	{"ping query", "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
		Msg{TxID: "aa", Kind: KindQuery, Method: MethodPing, Args: Args{ID: id20("abcdefghij0123456789")}}},
	{"ping response", "d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
		Msg{TxID: "aa", Kind: KindResponse, Reply: Reply{ID: id20("mnopqrstuvwxyz123456")}}},
	{"error", "d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
		Msg{TxID: "aa", Kind: KindError, Err: &Error{Code: CodeGeneric, Msg: "A Generic Error Ocurred"}}},
	{"find_node query", "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
		Msg{TxID: "aa", Kind: KindQuery, Method: MethodFindNode, Args: Args{ID: id20("abcdefghij0123456789"), Target: id20("mnopqrstuvwxyz123456")}}},
	{"get_peers query", "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
		Msg{TxID: "aa", Kind: KindQuery, Method: MethodGetPeers, Args: Args{ID: id20("abcdefghij0123456789"), InfoHash: id20("mnopqrstuvwxyz123456")}}},
	{"get_peers response with values", "d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
		Msg{TxID: "aa", Kind: KindResponse, Reply: Reply{ID: id20("abcdefghij0123456789"), Token: "aoeusnth", Values: []netip.AddrPort{
			netip.MustParseAddrPort("97.120.106.101:11893"), netip.MustParseAddrPort("105.100.104.116:28269")}}}},
	{"announce_peer query", "d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
		Msg{TxID: "aa", Kind: KindQuery, Method: MethodAnnouncePeer, Args: Args{ID: id20("abcdefghij0123456789"), InfoHash: id20("mnopqrstuvwxyz123456"), Port: 6881, ImpliedPort: true, Token: "aoeusnth"}}},
	{"announce_peer response", "d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
		Msg{TxID: "aa", Kind: KindResponse, Reply: Reply{ID: id20("mnopqrstuvwxyz123456")}}},
}

// compactNode builds one compact node entry.
func compactNode(id ID, ap string) string {
	return string(appendPeer(id[:], netip.MustParseAddrPort(ap)))
}

func TestParseMsg(t *testing.T) {
	for _, tc := range bep5Examples {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMsg([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			checkRoundTrip(t, []byte(tc.in))
		})
	}
}

func TestParseNodes(t *testing.T) {
	a, b, c := id20("aaaaaaaaaaaaaaaaaaaa"), id20("bbbbbbbbbbbbbbbbbbbb"), id20("cccccccccccccccccccc")
	nodes := compactNode(a, "1.2.3.4:6881") + compactNode(b, "0.0.0.0:1") + compactNode(c, "5.6.7.8:0")
	nodes6 := compactNode(b, "[2001:db8::1]:6881") + string(c[:]) + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x01\x02\x03\x04\x00\x50"
	in := "d1:rd2:id20:mnopqrstuvwxyz1234565:nodes78:" + nodes + "6:nodes676:" + nodes6 + "e1:t4:abcd1:y1:re"
	got, err := ParseMsg([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{
		{a, netip.MustParseAddrPort("1.2.3.4:6881")},
		{b, netip.MustParseAddrPort("[2001:db8::1]:6881")},
	}
	if !reflect.DeepEqual(got.Reply.Nodes, want) {
		t.Fatalf("nodes %v, want %v", got.Reply.Nodes, want)
	}
	checkRoundTrip(t, []byte(in))
}

func TestParseMsgErrors(t *testing.T) {
	id := "2:id20:abcdefghij0123456789"
	ih := "9:info_hash20:mnopqrstuvwxyz123456"
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "bencode"},
		{"not a dict", "li1ee", "bencode"},
		{"no transaction id", "d1:ad" + id + "e1:q4:ping1:y1:qe", "transaction id"},
		{"long transaction id", "d1:ad" + id + "e1:q4:ping1:t33:" + strings.Repeat("x", 33) + "1:y1:qe", "transaction id"},
		{"bad kind", "d1:t2:aa1:y1:xe", "kind"},
		{"query without args", "d1:q4:ping1:t2:aa1:y1:qe", "without arguments"},
		{"query without method", "d1:ad" + id + "e1:t2:aa1:y1:qe", "method"},
		{"short id", "d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", "a.id"},
		{"find_node without target", "d1:ad" + id + "e1:q9:find_node1:t2:aa1:y1:qe", "a.target"},
		{"get_peers short info_hash", "d1:ad" + id + "9:info_hash3:abce1:q9:get_peers1:t2:aa1:y1:qe", "a.info_hash"},
		{"announce port 0", "d1:ad" + id + ih + "4:porti0e5:token2:tte1:q13:announce_peer1:t2:aa1:y1:qe", "a.port"},
		{"announce port too big", "d1:ad" + id + ih + "4:porti65536e5:token2:tte1:q13:announce_peer1:t2:aa1:y1:qe", "a.port"},
		{"announce without token", "d1:ad" + id + ih + "4:porti1ee1:q13:announce_peer1:t2:aa1:y1:qe", "a.token"},
		{"response without r", "d1:t2:aa1:y1:re", "without values"},
		{"response short id", "d1:rd2:id1:xe1:t2:aa1:y1:re", "r.id"},
		{"nodes not multiple of 26", "d1:rd" + id + "5:nodes3:abce1:t2:aa1:y1:re", "multiple of 26"},
		{"nodes6 not multiple of 38", "d1:rd" + id + "6:nodes626:" + strings.Repeat("n", 26) + "e1:t2:aa1:y1:re", "multiple of 38"},
		{"bad value length", "d1:rd" + id + "6:valuesl5:abcdeee1:t2:aa1:y1:re", "values entry"},
		{"long token", "d1:rd" + id + "5:token65:" + strings.Repeat("k", 65) + "e1:t2:aa1:y1:re", "r.token"},
		{"error without e", "d1:t2:aa1:y1:ee", "without"},
		{"error wrong shape", "d1:eli201ee1:t2:aa1:y1:ee", "2"},
		{"error swapped", "d1:el3:msgi201ee1:t2:aa1:y1:ee", "[code, message]"},
		{"error code range", "d1:eli99999999999e1:xe1:t2:aa1:y1:ee", "range"},
		{"too deep", "d1:ad" + id + "1:xllllleeeeee1:q4:ping1:t2:aa1:y1:qe", "depth"},
		{"too large", "d1:t2:aa1:y1:r1:r" + "d" + id + "1:x2100:" + strings.Repeat("x", 2100) + "ee", "size"},
		{"duplicate key", "d1:t2:aa1:t2:bb1:y1:re", "bencode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMsg([]byte(tc.in))
			if err == nil {
				t.Fatalf("parsed %q", tc.in)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestParseUnknownMethod(t *testing.T) {
	// Unknown methods parse (so the server can answer 204); their unknown
	// arguments are dropped.
	m, err := ParseMsg([]byte("d1:ad2:id20:abcdefghij01234567893:fooi1ee1:q6:vote_x1:t2:aa1:v4:LT011:y1:qe"))
	if err != nil {
		t.Fatal(err)
	}
	want := Msg{TxID: "aa", Kind: KindQuery, Version: "LT01", Method: "vote_x", Args: Args{ID: id20("abcdefghij0123456789")}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v", m)
	}
}

func TestMarshalErrors(t *testing.T) {
	for _, m := range []Msg{
		{Kind: KindQuery, Method: MethodPing},
		{TxID: "aa", Kind: "x"},
		{TxID: "aa", Kind: KindQuery},
		{TxID: "aa", Kind: KindError},
		{TxID: "aa", Kind: KindQuery, Method: MethodAnnouncePeer, Args: Args{Port: 1}},
		{TxID: "aa", Kind: KindQuery, Method: MethodAnnouncePeer, Args: Args{Token: "t"}},
	} {
		if b, err := m.Marshal(); err == nil {
			t.Errorf("Marshal(%+v) = %q, want error", m, b)
		}
	}
}
