package dht

// KRPC (BEP 5): every message is one bencoded dictionary in one UDP
// datagram. "t" is the transaction id chosen by the querier and echoed in
// the reply, "y" the kind ("q" query, "r" response, "e" error), "v" an
// optional client version. A query names its method in "q" and carries its
// arguments in "a"; a response carries its values in "r"; an error carries
// [code, message] in "e".
//
// Contacts are compact: a peer is its address and big-endian port (6 bytes
// for IPv4, 18 for IPv6), a node is its 20-byte id followed by a peer
// (26 bytes in "nodes", 38 bytes in "nodes6" of BEP 32).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/aiotorrent/aiotorrent/bencode"
)

// MaxPacketSize is the largest datagram the package decodes. Server keeps
// what it sends to maxSendSize, below a 1500-byte MTU.
//
// An Ethernet MTU of 1500 leaves 1472 bytes of UDP payload over IPv4 and
// 1452 over IPv6; mainline implementations keep their messages below that,
// and a full reply (8 nodes6 and a token, or a few dozen values) stays well
// under it. 2048 leaves room for the occasional larger reply, which
// reassembles from fragments, while bounding what one datagram can cost:
// the decoder is capped at this size and a datagram that fills the read
// buffer is dropped as oversized.
const MaxPacketSize = 2048

// maxSendSize bounds the messages Server sends: the UDP payload of a
// 1500-byte IPv6 packet (1452) rounded down, so nothing we send fragments.
const maxSendSize = 1400

// Sizes of compact contacts.
const (
	CompactPeerV4Len = 6
	CompactPeerV6Len = 18
	CompactNodeV4Len = IDLen + CompactPeerV4Len // 26
	CompactNodeV6Len = IDLen + CompactPeerV6Len // 38
)

// Bounds on the opaque strings of a message. Real transaction ids are 2–4
// bytes and tokens 4–20; anything much longer is refused rather than stored
// and echoed.
const (
	MaxTxIDLen   = 32
	MaxTokenLen  = 64
	maxMethodLen = 32
)

// Message kinds, the value of "y".
const (
	KindQuery    = "q"
	KindResponse = "r"
	KindError    = "e"
)

// Query methods of BEP 5, the value of "q".
const (
	MethodPing         = "ping"
	MethodFindNode     = "find_node"
	MethodGetPeers     = "get_peers"
	MethodAnnouncePeer = "announce_peer"
)

// Error codes of BEP 5.
const (
	CodeGeneric       = 201
	CodeServer        = 202
	CodeProtocol      = 203
	CodeMethodUnknown = 204
)

// ErrMalformed is wrapped by every error ParseMsg returns.
var ErrMalformed = errors.New("dht: malformed KRPC message")

// Node is a DHT node's contact: its id and UDP address.
type Node struct {
	ID   ID
	Addr netip.AddrPort
}

// String returns the node as "id@addr".
func (n Node) String() string { return n.ID.String() + "@" + n.Addr.String() }

// Msg is one decoded KRPC message. Only the part matching Kind is set:
// Method and Args for a query, Reply for a response, Err for an error.
// ParseMsg keeps only the arguments the method defines, so a Msg encodes
// back to a message that parses to the same Msg.
type Msg struct {
	TxID    string // "t": transaction id, 1 to MaxTxIDLen bytes
	Kind    string // "y": KindQuery, KindResponse or KindError
	Version string // "v": client version, optional
	Method  string // "q": the query method
	Args    Args   // "a": the query arguments
	Reply   Reply  // "r": the response values
	Err     *Error // "e": the error
	// ReadOnly is "ro" of BEP 43: the querier does not answer queries and
	// must not be added to routing tables.
	ReadOnly bool
}

// Args are the arguments of a query. ID is always present; the others
// according to the method.
type Args struct {
	ID          ID     // querier's node id
	Target      ID     // find_node
	InfoHash    ID     // get_peers, announce_peer
	Port        uint16 // announce_peer; 0 only when ImpliedPort
	ImpliedPort bool   // announce_peer: use the datagram's source port
	Token       string // announce_peer: from an earlier get_peers reply
}

// Reply holds the values of a response. Which are present depends on the
// query it answers, which the message itself does not say.
type Reply struct {
	ID ID // responder's node id
	// Nodes from "nodes" (IPv4) and then "nodes6" (IPv6); entries with port
	// 0, an unspecified address, or an IPv4-mapped address in nodes6 are
	// skipped.
	Nodes  []Node
	Token  string           // get_peers
	Values []netip.AddrPort // get_peers: peers, invalid entries skipped
}

// Error is a KRPC error message, and the error returned by a query the
// remote node refused.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("dht: remote error %d: %s", e.Code, e.Msg) }

// wire forms, for the bencode codec.
type wireMsg struct {
	T  string             `bencode:"t"`
	Y  string             `bencode:"y"`
	V  string             `bencode:"v,omitempty"`
	Q  string             `bencode:"q,omitempty"`
	A  *wireArgs          `bencode:"a"`
	R  *wireReply         `bencode:"r"`
	E  bencode.RawMessage `bencode:"e"`
	RO int64              `bencode:"ro,omitempty"`
}

type wireArgs struct {
	ID          string `bencode:"id"`
	Target      string `bencode:"target,omitempty"`
	InfoHash    string `bencode:"info_hash,omitempty"`
	Port        int64  `bencode:"port,omitempty"`
	ImpliedPort int64  `bencode:"implied_port,omitempty"`
	Token       string `bencode:"token,omitempty"`
}

type wireReply struct {
	ID     string   `bencode:"id"`
	Nodes  string   `bencode:"nodes,omitempty"`
	Nodes6 string   `bencode:"nodes6,omitempty"`
	Token  string   `bencode:"token,omitempty"`
	Values []string `bencode:"values,omitempty"`
}

// decoder bounds a message: one datagram, and nesting no deeper than a
// list inside a dictionary inside the top-level dictionary (plus one for
// extension keys we skip).
var decoder = bencode.Decoder{MaxDepth: 4, MaxSize: MaxPacketSize}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// ParseMsg decodes one KRPC message. Any error wraps ErrMalformed. It never
// panics and allocates in proportion to len(b), which must not exceed
// MaxPacketSize.
func ParseMsg(b []byte) (Msg, error) {
	var w wireMsg
	if err := decoder.Unmarshal(b, &w); err != nil {
		return Msg{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(w.T) == 0 || len(w.T) > MaxTxIDLen {
		return Msg{}, malformed("transaction id of %d bytes, want 1 to %d", len(w.T), MaxTxIDLen)
	}
	m := Msg{TxID: w.T, Kind: w.Y, Version: w.V}
	switch w.Y {
	case KindQuery:
		if w.A == nil {
			return Msg{}, malformed("query without arguments")
		}
		if w.Q == "" || len(w.Q) > maxMethodLen {
			return Msg{}, malformed("query method of %d bytes", len(w.Q))
		}
		m.Method = w.Q
		m.ReadOnly = w.RO != 0
		a, err := parseArgs(w.Q, w.A)
		if err != nil {
			return Msg{}, err
		}
		m.Args = a
	case KindResponse:
		if w.R == nil {
			return Msg{}, malformed("response without values")
		}
		r, err := parseReply(w.R)
		if err != nil {
			return Msg{}, err
		}
		m.Reply = r
	case KindError:
		e, err := parseError(w.E)
		if err != nil {
			return Msg{}, err
		}
		m.Err = e
	default:
		return Msg{}, malformed("message kind %q", w.Y)
	}
	return m, nil
}

func parseID(what, s string) (ID, error) {
	if len(s) != IDLen {
		return ID{}, malformed("%s of %d bytes, want %d", what, len(s), IDLen)
	}
	return ID([]byte(s)), nil
}

func parseArgs(method string, w *wireArgs) (Args, error) {
	var a Args
	var err error
	if a.ID, err = parseID("a.id", w.ID); err != nil {
		return Args{}, err
	}
	switch method {
	case MethodFindNode:
		if a.Target, err = parseID("a.target", w.Target); err != nil {
			return Args{}, err
		}
	case MethodGetPeers:
		if a.InfoHash, err = parseID("a.info_hash", w.InfoHash); err != nil {
			return Args{}, err
		}
	case MethodAnnouncePeer:
		if a.InfoHash, err = parseID("a.info_hash", w.InfoHash); err != nil {
			return Args{}, err
		}
		a.ImpliedPort = w.ImpliedPort != 0
		if w.Port < 0 || w.Port > 65535 || (w.Port == 0 && !a.ImpliedPort) {
			return Args{}, malformed("a.port %d", w.Port)
		}
		a.Port = uint16(w.Port)
		if w.Token == "" || len(w.Token) > MaxTokenLen {
			return Args{}, malformed("a.token of %d bytes, want 1 to %d", len(w.Token), MaxTokenLen)
		}
		a.Token = w.Token
	}
	return a, nil
}

func parseReply(w *wireReply) (Reply, error) {
	var r Reply
	var err error
	if r.ID, err = parseID("r.id", w.ID); err != nil {
		return Reply{}, err
	}
	if len(w.Token) > MaxTokenLen {
		return Reply{}, malformed("r.token of %d bytes, want at most %d", len(w.Token), MaxTokenLen)
	}
	r.Token = w.Token
	if r.Nodes, err = parseNodes(nil, w.Nodes, CompactNodeV4Len); err != nil {
		return Reply{}, err
	}
	if r.Nodes, err = parseNodes(r.Nodes, w.Nodes6, CompactNodeV6Len); err != nil {
		return Reply{}, err
	}
	for _, v := range w.Values {
		p, ok := parsePeer(v)
		if !ok {
			if len(v) != CompactPeerV4Len && len(v) != CompactPeerV6Len {
				return Reply{}, malformed("r.values entry of %d bytes", len(v))
			}
			continue
		}
		r.Values = append(r.Values, p)
	}
	return r, nil
}

// parsePeer decodes one compact peer; ok is false for a wrong length or an
// entry that cannot be contacted.
func parsePeer(s string) (netip.AddrPort, bool) {
	var ip netip.Addr
	switch len(s) {
	case CompactPeerV4Len:
		ip = netip.AddrFrom4([4]byte([]byte(s[:4])))
	case CompactPeerV6Len:
		ip = netip.AddrFrom16([16]byte([]byte(s[:16])))
		if ip.Is4In6() {
			return netip.AddrPort{}, false
		}
	default:
		return netip.AddrPort{}, false
	}
	port := binary.BigEndian.Uint16([]byte(s[len(s)-2:]))
	if port == 0 || ip.IsUnspecified() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, port), true
}

func parseNodes(dst []Node, s string, size int) ([]Node, error) {
	if len(s)%size != 0 {
		return nil, malformed("compact node list of %d bytes is not a multiple of %d", len(s), size)
	}
	for i := 0; i < len(s); i += size {
		p, ok := parsePeer(s[i+IDLen : i+size])
		if !ok {
			continue
		}
		dst = append(dst, Node{ID: ID([]byte(s[i : i+IDLen])), Addr: p})
	}
	return dst, nil
}

func parseError(raw bencode.RawMessage) (*Error, error) {
	if raw == nil {
		return nil, malformed("error message without \"e\"")
	}
	var l []any
	if err := decoder.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("%w: e: %w", ErrMalformed, err)
	}
	if len(l) != 2 {
		return nil, malformed("e has %d elements, want 2", len(l))
	}
	code, ok1 := l[0].(int64)
	msg, ok2 := l[1].(string)
	if !ok1 || !ok2 {
		return nil, malformed("e is not [code, message]")
	}
	if code < -1<<31 || code > 1<<31-1 {
		return nil, malformed("error code %d out of range", code)
	}
	return &Error{Code: int(code), Msg: msg}, nil
}

// appendPeer appends the compact form of p: 6 bytes for IPv4, 18 for IPv6.
func appendPeer(b []byte, p netip.AddrPort) []byte {
	ip := p.Addr().Unmap()
	if ip.Is4() {
		a := ip.As4()
		b = append(b, a[:]...)
	} else {
		a := ip.As16()
		b = append(b, a[:]...)
	}
	return binary.BigEndian.AppendUint16(b, p.Port())
}

// Marshal encodes m as a KRPC message. Nodes of the reply go to "nodes" or
// "nodes6" by address family.
func (m *Msg) Marshal() ([]byte, error) {
	if len(m.TxID) == 0 || len(m.TxID) > MaxTxIDLen {
		return nil, fmt.Errorf("dht: transaction id of %d bytes", len(m.TxID))
	}
	w := wireMsg{T: m.TxID, Y: m.Kind, V: m.Version}
	switch m.Kind {
	case KindQuery:
		if m.Method == "" || len(m.Method) > maxMethodLen {
			return nil, fmt.Errorf("dht: query method %q", m.Method)
		}
		w.Q = m.Method
		if m.ReadOnly {
			w.RO = 1
		}
		a := &wireArgs{ID: string(m.Args.ID[:])}
		switch m.Method {
		case MethodFindNode:
			a.Target = string(m.Args.Target[:])
		case MethodGetPeers:
			a.InfoHash = string(m.Args.InfoHash[:])
		case MethodAnnouncePeer:
			if m.Args.Token == "" || len(m.Args.Token) > MaxTokenLen || (m.Args.Port == 0 && !m.Args.ImpliedPort) {
				return nil, fmt.Errorf("dht: announce_peer needs a token and a port")
			}
			a.InfoHash = string(m.Args.InfoHash[:])
			a.Port = int64(m.Args.Port)
			a.Token = m.Args.Token
			if m.Args.ImpliedPort {
				a.ImpliedPort = 1
			}
		}
		w.A = a
	case KindResponse:
		r := &wireReply{ID: string(m.Reply.ID[:]), Token: m.Reply.Token}
		if len(r.Token) > MaxTokenLen {
			return nil, fmt.Errorf("dht: token of %d bytes", len(r.Token))
		}
		var n4, n6 []byte
		for _, n := range m.Reply.Nodes {
			if n.Addr.Addr().Unmap().Is4() {
				n4 = appendPeer(append(n4, n.ID[:]...), n.Addr)
			} else {
				n6 = appendPeer(append(n6, n.ID[:]...), n.Addr)
			}
		}
		r.Nodes, r.Nodes6 = string(n4), string(n6)
		for _, p := range m.Reply.Values {
			r.Values = append(r.Values, string(appendPeer(nil, p)))
		}
		w.R = r
	case KindError:
		if m.Err == nil {
			return nil, errors.New("dht: error message without Err")
		}
		e, err := bencode.Marshal([]any{int64(m.Err.Code), m.Err.Msg})
		if err != nil {
			return nil, err
		}
		w.E = e
	default:
		return nil, fmt.Errorf("dht: message kind %q", m.Kind)
	}
	return bencode.Marshal(w)
}
