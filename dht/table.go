package dht

import (
	"crypto/rand"
	"encoding/hex"
	"math/bits"
	"net/netip"
	"slices"
	"time"
)

// IDLen is the length of a node id and of an info hash: 160 bits.
const IDLen = 20

// ID is a node id, or an info hash viewed as a point in the same space
// (convert with ID(hash)).
type ID [IDLen]byte

// RandomID returns a uniformly random id.
func RandomID() ID {
	var id ID
	rand.Read(id[:])
	return id
}

// String returns id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Xor returns the XOR distance between id and o, compared as a big-endian
// unsigned integer: smaller is closer.
func (id ID) Xor(o ID) ID {
	var d ID
	for i := range d {
		d[i] = id[i] ^ o[i]
	}
	return d
}

// Closer reports whether a is closer to id than b is.
func (id ID) Closer(a, b ID) bool {
	return id.cmpDist(a, b) < 0
}

// cmpDist compares the distances of a and b from id: -1 if a is closer, 1
// if b is, 0 if equal.
func (id ID) cmpDist(a, b ID) int {
	for i := range id {
		da, db := a[i]^id[i], b[i]^id[i]
		if da != db {
			if da < db {
				return -1
			}
			return 1
		}
	}
	return 0
}

// commonPrefixLen returns how many leading bits a and b share (160 when
// equal).
func commonPrefixLen(a, b ID) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return IDLen * 8
}

// K is the bucket size of BEP 5, and the number of closest nodes a lookup
// converges on.
const K = 8

// Node liveness (BEP 5): a node is good if it answered us within
// GoodInterval, or queried us within it having answered at least once;
// it is bad after badFailures unanswered queries in a row; otherwise it is
// questionable.
const (
	GoodInterval = 15 * time.Minute
	badFailures  = 3
)

// NodeState is a node's liveness in the routing table.
type NodeState int

// Node states.
const (
	Good NodeState = iota
	Questionable
	Bad
)

func (s NodeState) String() string {
	switch s {
	case Good:
		return "good"
	case Questionable:
		return "questionable"
	case Bad:
		return "bad"
	}
	return "unknown"
}

// entry is a node in the table with its liveness record.
type entry struct {
	Node
	lastReply time.Time // last response from it; zero if never
	lastQuery time.Time // last query from it
	failures  int       // unanswered queries in a row
}

func (e *entry) state(now time.Time) NodeState {
	switch {
	case e.failures >= badFailures:
		return Bad
	case !e.lastReply.IsZero() && now.Sub(e.lastReply) < GoodInterval:
		return Good
	case !e.lastReply.IsZero() && now.Sub(e.lastQuery) < GoodInterval:
		return Good
	}
	return Questionable
}

func (e *entry) lastSeen() time.Time {
	if e.lastReply.After(e.lastQuery) {
		return e.lastReply
	}
	return e.lastQuery
}

// bucket holds up to K nodes and up to K replacements heard from while it
// was full.
type bucket struct {
	nodes        []*entry
	replacements []*entry // newest last
	changed      time.Time
}

// Table is a Kademlia routing table of K-buckets (BEP 5). Bucket i, for i
// below the last, holds the nodes whose ids share exactly i leading bits
// with ours; the last bucket holds all the nodes closer than that, and is
// the only one that splits when full. It holds at most 160 buckets of K
// nodes and K replacements each.
//
// A Table is not safe for concurrent use; Server guards its own.
type Table struct {
	self    ID
	buckets []*bucket
}

// NewTable returns an empty table for the node with id self.
func NewTable(self ID) *Table {
	return &Table{self: self, buckets: []*bucket{{}}}
}

// Self returns the id the table is built around.
func (t *Table) Self() ID { return t.self }

func (t *Table) bucketIndex(id ID) int {
	return min(commonPrefixLen(t.self, id), len(t.buckets)-1)
}

func (t *Table) find(n Node) (*bucket, int) {
	b := t.buckets[t.bucketIndex(n.ID)]
	for i, e := range b.nodes {
		if e.ID == n.ID {
			return b, i
		}
	}
	return b, -1
}

// Len returns the number of nodes in the table, replacements excluded.
func (t *Table) Len() int {
	n := 0
	for _, b := range t.buckets {
		n += len(b.nodes)
	}
	return n
}

// Seen records that n answered one of our queries (replied is true) or
// sent us a query, at now, and inserts it if there is room: in a bucket
// with space, in place of a bad node, or by splitting the bucket holding
// our own id. Failing that, a node that replied replaces a questionable
// node that never did; otherwise it waits in the bucket's replacement
// list. A node whose id is in the table with a different address is left
// alone, so a forged packet cannot redirect an entry. It reports whether
// n is now in the table.
func (t *Table) Seen(n Node, replied bool, now time.Time) bool {
	if n.ID == t.self || !n.Addr.IsValid() || n.Addr.Port() == 0 {
		return false
	}
	touch := func(e *entry) {
		if replied {
			e.lastReply = now
			e.failures = 0
		} else {
			e.lastQuery = now
		}
	}
	for {
		b, i := t.find(n)
		if i >= 0 {
			e := b.nodes[i]
			if e.Addr != n.Addr {
				return false
			}
			touch(e)
			b.changed = now
			return true
		}
		e := &entry{Node: n}
		touch(e)
		if len(b.nodes) < K {
			b.nodes = append(b.nodes, e)
			b.changed = now
			t.dropReplacement(b, n.ID)
			return true
		}
		for j, old := range b.nodes {
			if old.state(now) == Bad {
				b.nodes[j] = e
				b.changed = now
				t.dropReplacement(b, n.ID)
				return true
			}
		}
		if b == t.buckets[len(t.buckets)-1] && len(t.buckets) < IDLen*8 {
			t.split()
			continue
		}
		if replied {
			for j, old := range b.nodes {
				if old.lastReply.IsZero() && old.state(now) == Questionable {
					b.nodes[j] = e
					b.changed = now
					t.dropReplacement(b, n.ID)
					return true
				}
			}
		}
		t.addReplacement(b, e)
		return false
	}
}

// split divides the last bucket: the nodes sharing one more bit with our id
// move to a new last bucket.
func (t *Table) split() {
	last := t.buckets[len(t.buckets)-1]
	nb := &bucket{changed: last.changed}
	depth := len(t.buckets)
	t.buckets = append(t.buckets, nb)
	keep := last.nodes[:0]
	for _, e := range last.nodes {
		if commonPrefixLen(t.self, e.ID) >= depth {
			nb.nodes = append(nb.nodes, e)
		} else {
			keep = append(keep, e)
		}
	}
	clear(last.nodes[len(keep):])
	last.nodes = keep
	var rk []*entry
	for _, e := range last.replacements {
		if commonPrefixLen(t.self, e.ID) >= depth {
			nb.replacements = append(nb.replacements, e)
		} else {
			rk = append(rk, e)
		}
	}
	last.replacements = rk
}

func (t *Table) addReplacement(b *bucket, e *entry) {
	for i, r := range b.replacements {
		if r.ID == e.ID {
			if r.Addr == e.Addr {
				b.replacements = append(slices.Delete(b.replacements, i, i+1), e)
			}
			return
		}
	}
	if len(b.replacements) >= K {
		b.replacements = slices.Delete(b.replacements, 0, 1)
	}
	b.replacements = append(b.replacements, e)
}

func (t *Table) dropReplacement(b *bucket, id ID) {
	b.replacements = slices.DeleteFunc(b.replacements, func(e *entry) bool { return e.ID == id })
}

// Failed records that n did not answer a query. A node that becomes bad is
// replaced by the newest replacement of its bucket, if there is one.
func (t *Table) Failed(n Node, now time.Time) {
	b, i := t.find(n)
	if i < 0 {
		t.dropReplacement(b, n.ID)
		return
	}
	e := b.nodes[i]
	if e.Addr != n.Addr {
		return
	}
	e.failures++
	if e.state(now) == Bad && len(b.replacements) > 0 {
		r := b.replacements[len(b.replacements)-1]
		b.replacements = b.replacements[:len(b.replacements)-1]
		b.nodes[i] = r
		b.changed = now
	}
}

// Remove deletes the node with n's id and address, if present.
func (t *Table) Remove(n Node) {
	b, i := t.find(n)
	if i >= 0 && b.nodes[i].Addr == n.Addr {
		b.nodes = slices.Delete(b.nodes, i, i+1)
	}
}

// State returns the state of the node with id, and false if it is not in
// the table.
func (t *Table) State(id ID, now time.Time) (NodeState, bool) {
	b, i := t.find(Node{ID: id})
	if i < 0 {
		return 0, false
	}
	return b.nodes[i].state(now), true
}

// Closest returns up to n nodes of the table closest to target, closest
// first, leaving out bad nodes. When family is valid, only nodes of its
// address family (IPv4 or IPv6) are returned.
func (t *Table) Closest(target ID, n int, family netip.Addr, now time.Time) []Node {
	var all []Node
	for _, b := range t.buckets {
		for _, e := range b.nodes {
			if e.state(now) == Bad {
				continue
			}
			if family.IsValid() && e.Addr.Addr().Unmap().Is4() != family.Unmap().Is4() {
				continue
			}
			all = append(all, e.Node)
		}
	}
	slices.SortFunc(all, func(a, b Node) int {
		return target.cmpDist(a.ID, b.ID)
	})
	return all[:min(n, len(all))]
}

// Nodes returns every node in the table that is not bad, for saving and
// restoring with Config.Nodes.
func (t *Table) Nodes(now time.Time) []Node {
	var all []Node
	for _, b := range t.buckets {
		for _, e := range b.nodes {
			if e.state(now) != Bad {
				all = append(all, e.Node)
			}
		}
	}
	return all
}

// Questionable returns up to n questionable nodes, least recently seen
// first: the nodes to ping.
func (t *Table) Questionable(n int, now time.Time) []Node {
	var qs []*entry
	for _, b := range t.buckets {
		for _, e := range b.nodes {
			if e.state(now) == Questionable {
				qs = append(qs, e)
			}
		}
	}
	slices.SortFunc(qs, func(a, b *entry) int { return a.lastSeen().Compare(b.lastSeen()) })
	out := make([]Node, 0, min(n, len(qs)))
	for _, e := range qs[:min(n, len(qs))] {
		out = append(out, e.Node)
	}
	return out
}

// StaleBuckets returns a random id in the range of each bucket that has not
// changed within interval: the targets of refreshing lookups.
func (t *Table) StaleBuckets(interval time.Duration, now time.Time) []ID {
	var ids []ID
	for i, b := range t.buckets {
		if now.Sub(b.changed) < interval {
			continue
		}
		ids = append(ids, t.randomIDInBucket(i))
	}
	return ids
}

// randomIDInBucket returns a random id sharing exactly i leading bits with
// ours (at least i for the last bucket).
func (t *Table) randomIDInBucket(i int) ID {
	id := RandomID()
	for bit := 0; bit < i; bit++ {
		mask := byte(0x80) >> (bit % 8)
		id[bit/8] = id[bit/8]&^mask | t.self[bit/8]&mask
	}
	if i < len(t.buckets)-1 {
		mask := byte(0x80) >> (i % 8)
		id[i/8] = id[i/8]&^mask | ^t.self[i/8]&mask
	}
	return id
}
