package dht

import (
	"errors"
	"fmt"

	"github.com/aiotorrent/aiotorrent/bencode"
)

// State is what a node keeps between runs: its id, so that the nodes that
// knew it still place it where they did, and the contacts of its routing
// table, so that it rejoins the DHT without bootstrap routers. Pass them
// back as Config.ID and Config.Nodes.
type State struct {
	ID    ID
	Nodes []Node
}

// MaxStateNodes bounds the nodes a State holds (and ParseState reads): a
// full routing table has at most K nodes in each of 160 buckets, far more
// than a rejoin needs.
const MaxStateNodes = 1000

// MaxStateSize bounds what ParseState reads: MaxStateNodes IPv6 nodes and
// the keys around them.
const MaxStateSize = MaxStateNodes*CompactNodeV6Len + 256

// State returns the server's id and its routing table's good and
// questionable nodes, at most MaxStateNodes of them.
func (s *Server) State() State {
	nodes := s.Nodes()
	return State{ID: s.id, Nodes: nodes[:min(len(nodes), MaxStateNodes)]}
}

type wireState struct {
	ID     string `bencode:"id"`
	Nodes  string `bencode:"nodes,omitempty"`
	Nodes6 string `bencode:"nodes6,omitempty"`
}

// Marshal encodes the state as a bencoded dictionary: "id" and the nodes
// in the compact forms of KRPC replies, "nodes" (IPv4) and "nodes6".
func (st State) Marshal() []byte {
	var n4, n6 []byte
	for _, n := range st.Nodes[:min(len(st.Nodes), MaxStateNodes)] {
		if !n.Addr.IsValid() || n.Addr.Port() == 0 {
			continue
		}
		if n.Addr.Addr().Unmap().Is4() {
			n4 = appendPeer(append(n4, n.ID[:]...), n.Addr)
		} else {
			n6 = appendPeer(append(n6, n.ID[:]...), n.Addr)
		}
	}
	b, err := bencode.Marshal(wireState{ID: string(st.ID[:]), Nodes: string(n4), Nodes6: string(n6)})
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	return b
}

// ErrBadState is wrapped by ParseState's errors.
var ErrBadState = errors.New("dht: malformed node state")

// ParseState decodes what State.Marshal wrote. Entries that cannot be
// contacted (port 0, unspecified address) are skipped.
func ParseState(b []byte) (State, error) {
	if len(b) > MaxStateSize {
		return State{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadState, len(b), MaxStateSize)
	}
	var w wireState
	dec := bencode.Decoder{MaxDepth: 2, MaxSize: MaxStateSize}
	if err := dec.Unmarshal(b, &w); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	if len(w.ID) != IDLen {
		return State{}, fmt.Errorf("%w: id of %d bytes", ErrBadState, len(w.ID))
	}
	st := State{ID: ID([]byte(w.ID))}
	var err error
	if st.Nodes, err = parseNodes(nil, w.Nodes, CompactNodeV4Len); err != nil {
		return State{}, fmt.Errorf("%w: nodes: %w", ErrBadState, err)
	}
	if st.Nodes, err = parseNodes(st.Nodes, w.Nodes6, CompactNodeV6Len); err != nil {
		return State{}, fmt.Errorf("%w: nodes6: %w", ErrBadState, err)
	}
	if len(st.Nodes) > MaxStateNodes {
		return State{}, fmt.Errorf("%w: %d nodes, more than %d", ErrBadState, len(st.Nodes), MaxStateNodes)
	}
	return st, nil
}
