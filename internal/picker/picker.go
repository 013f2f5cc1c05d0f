// Package picker chooses which blocks to request from which peer: the
// piece strategies (rarest-first and sequential), finishing started
// pieces first, and endgame.
//
// A Picker is owned by one goroutine (the torrent's event loop) and is not
// safe for concurrent use.
package picker

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/aiotorrent/aiotorrent/internal/bitfield"
)

// BlockSize is the size of a requested block; the last block of a piece
// may be shorter.
const BlockSize = 16 << 10

// Strategy says in which order pieces are fetched.
type Strategy int

const (
	// RarestFirst fetches the pieces fewest peers have first, at random
	// among equals: the swarm's health first, completion in any order.
	RarestFirst Strategy = iota
	// Sequential fetches pieces in index order.
	Sequential
)

// Block is one block request.
type Block struct {
	Piece  int
	Begin  int // byte offset within the piece
	Length int
}

// Peer is what the picker needs to know of a peer.
type Peer interface {
	// Has reports whether the peer has piece i.
	Has(i int) bool
	// Requested reports whether a request for the block is outstanding
	// to this peer (used in endgame not to ask a peer twice).
	Requested(b Block) bool
}

// piece is a piece being fetched.
type piece struct {
	index     int
	requested []uint8 // per block: outstanding requests
	received  []bool
	nreceived int
	pending   int // blocks not yet requested once
}

// Picker tracks what we have, what peers have, and which blocks are asked
// for.
type Picker struct {
	n         int
	pieceLen  int64
	length    int64
	have      *bitfield.Bitfield
	wanted    *bitfield.Bitfield
	nwanted   int // wanted pieces we lack
	avail     []int32
	seeds     int32 // peers with every piece, not counted in avail
	active    []*piece
	actives   []int    // indexes of active pieces, oldest first
	free      []*piece // deactivated pieces, for reuse
	strategy  Strategy
	rng       *rand.Rand
	order     []int // rarest-first candidates, sorted by availability
	sorted    []int // rebuild's scratch: the next order
	counts    []int // rebuild's scratch: pieces per availability
	head      int   // order[:head] is spent
	dirty     bool  // order must be rebuilt
	seqCursor int   // no wanted missing piece before it
	prio      []int // pieces fetched before any other, most urgent first
	urgent    int   // prio[:urgent] start even when new pieces are not allowed
	noEndgame bool
	levels    []int8 // per piece (SetLevel); nil while every piece is at 0
}

// Levels a piece may be at (SetLevel).
const (
	MinLevel = -1
	MaxLevel = 1
)

// New returns a Picker for n pieces of pieceLen bytes (the last one
// shorter, up to length), wanting nothing and having nothing yet.
func New(n int, pieceLen, length int64) *Picker {
	return &Picker{
		n: n, pieceLen: pieceLen, length: length,
		have:   bitfield.New(n),
		wanted: bitfield.New(n),
		avail:  make([]int32, n),
		active: make([]*piece, n),
		rng:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		dirty:  true,
	}
}

// SetStrategy changes the strategy for the pieces picked from now on.
func (p *Picker) SetStrategy(s Strategy) {
	if s == Sequential && p.strategy != Sequential {
		// Sequential keeps the active pieces in index order (activate
		// inserts by binary search); rarest-first started them in any.
		slices.Sort(p.actives)
	}
	p.strategy = s
	p.seqCursor = 0
}

// SetPriority makes the wanted pieces in pieces (most urgent first) be
// fetched before any other, whatever the strategy: a peer is asked for
// the blocks of the first of them it has, and so on. The first urgent of
// them start even when PickStarted allows no new piece (they are what a
// reader waits on). The list is copied; an empty one ends priorities.
func (p *Picker) SetPriority(pieces []int, urgent int) {
	p.prio = append(p.prio[:0], pieces...)
	p.urgent = min(urgent, len(p.prio))
}

// SetLevel puts piece i at level l, from MinLevel to MaxLevel (0 unless
// set): of the pieces the strategy would start next, those at a higher
// level start first, rarest first or in index order within a level. It is
// how file priorities reach the picker. Pieces already started, and the
// priority pieces of SetPriority, come first all the same.
func (p *Picker) SetLevel(i int, l int8) {
	l = max(MinLevel, min(MaxLevel, l))
	if p.levels == nil {
		if l == 0 {
			return
		}
		p.levels = make([]int8, p.n)
	}
	if p.levels[i] != l {
		p.levels[i] = l
		p.dirty = true
		p.seqCursor = 0
	}
}

// Level returns piece i's level.
func (p *Picker) Level(i int) int8 {
	if p.levels == nil {
		return 0
	}
	return p.levels[i]
}

// SetEndgame allows endgame or not (it is allowed unless told). Readers
// that want only a window of pieces ahead of them have every wanted block
// requested most of the time: that is no reason to ask twice.
func (p *Picker) SetEndgame(on bool) { p.noEndgame = !on }

// Strategy returns the current strategy.
func (p *Picker) Strategy() Strategy { return p.strategy }

// PieceSize is the size of piece i.
func (p *Picker) PieceSize(i int) int {
	if i == p.n-1 {
		return int(p.length - int64(i)*p.pieceLen)
	}
	return int(p.pieceLen)
}

// NumBlocks is the number of blocks of piece i.
func (p *Picker) NumBlocks(i int) int { return (p.PieceSize(i) + BlockSize - 1) / BlockSize }

// Want marks piece i wanted or not. Pieces being fetched stay active.
func (p *Picker) Want(i int, want bool) {
	if want {
		if p.wanted.Set(i) && !p.have.Has(i) {
			p.nwanted++
			p.dirty = true
			p.seqCursor = min(p.seqCursor, i)
		}
	} else if p.wanted.Clear(i) && !p.have.Has(i) {
		p.nwanted--
	}
}

// Wanted reports whether piece i is wanted.
func (p *Picker) Wanted(i int) bool { return p.wanted.Has(i) }

// Have reports whether piece i is verified.
func (p *Picker) Have(i int) bool { return p.have.Has(i) }

// HaveBitfield returns the set of verified pieces; it must not be changed.
func (p *Picker) HaveBitfield() *bitfield.Bitfield { return p.have }

// Missing is the number of wanted pieces not verified yet.
func (p *Picker) Missing() int { return p.nwanted }

// Availability is the number of connected peers with piece i.
func (p *Picker) Availability(i int) int { return int(p.avail[i] + p.seeds) }

// PeerHas counts a peer's piece i.
func (p *Picker) PeerHas(i int) { p.avail[i]++; p.moved(i) }

// PeerLost uncounts a peer's piece i (the peer left).
func (p *Picker) PeerLost(i int) { p.avail[i]--; p.moved(i) }

// moved notes that piece i's availability changed: the order is stale if
// i is in it. Pieces not in it (verified, unwanted, active) join it only
// through a rebuild, which sees their availability then.
func (p *Picker) moved(i int) {
	if p.active[i] == nil && p.Needs(i) {
		p.dirty = true
	}
}

// SeedJoined and SeedLeft count peers that have every piece.
func (p *Picker) SeedJoined() { p.seeds++ }

// SeedLeft uncounts a peer that had every piece.
func (p *Picker) SeedLeft() { p.seeds-- }

// Interesting reports whether a peer has a wanted piece we lack. It scans
// the pieces; callers check a single piece on each have message instead.
func (p *Picker) Interesting(peer Peer) bool {
	if p.nwanted == 0 {
		return false
	}
	for i := range p.n {
		if p.wanted.Has(i) && !p.have.Has(i) && peer.Has(i) {
			return true
		}
	}
	return false
}

// Needs reports whether piece i is wanted and not verified.
func (p *Picker) Needs(i int) bool { return p.wanted.Has(i) && !p.have.Has(i) }

// Pick appends to dst up to max blocks to request from peer, marks them
// requested, and returns dst. It finishes active pieces first, then
// starts new ones by the strategy, and in endgame (every missing block
// already requested) asks for blocks other peers were asked for.
func (p *Picker) Pick(peer Peer, max int, dst []Block) []Block {
	return p.pick(peer, max, dst, true)
}

// PickStarted is Pick without starting new pieces: only blocks of pieces
// already being fetched (and endgame duplicates). Callers use it when
// their memory budget is spent, so started pieces still complete.
func (p *Picker) PickStarted(peer Peer, max int, dst []Block) []Block {
	return p.pick(peer, max, dst, false)
}

func (p *Picker) pick(peer Peer, max int, dst []Block, allowNew bool) []Block {
	if max <= 0 || p.nwanted == 0 {
		return dst
	}
	start := len(dst)
	// Priority pieces, most urgent first.
	for k, i := range p.prio {
		if len(dst)-start >= max {
			return dst
		}
		if !p.Needs(i) || !peer.Has(i) {
			continue
		}
		pc := p.active[i]
		if pc == nil {
			if !allowNew && k >= p.urgent {
				continue
			}
			pc = p.activate(i)
		}
		if pc.pending > 0 {
			dst = p.takePending(pc, max-(len(dst)-start), dst)
		}
	}
	// Active pieces, in the order they were started (sequential: by index).
	for _, i := range p.actives {
		if len(dst)-start >= max {
			return dst
		}
		pc := p.active[i]
		if pc.pending > 0 && peer.Has(i) {
			dst = p.takePending(pc, max-(len(dst)-start), dst)
		}
	}
	for allowNew && len(dst)-start < max {
		i := p.next(peer)
		if i < 0 {
			break
		}
		pc := p.activate(i)
		dst = p.takePending(pc, max-(len(dst)-start), dst)
	}
	if len(dst)-start < max && p.endgame() {
		// Blocks taken above in this call are not yet Requested from
		// peer: skip them too, not to ask the peer twice.
		fresh := dst[start:]
		for _, i := range p.actives {
			pc := p.active[i]
			if !peer.Has(i) {
				continue
			}
			for b := range pc.requested {
				if len(dst)-start >= max {
					return dst
				}
				blk := p.block(i, b)
				if pc.received[b] || pc.requested[b] >= 3 || peer.Requested(blk) || slices.Contains(fresh, blk) {
					continue
				}
				pc.requested[b]++
				dst = append(dst, blk)
			}
		}
	}
	return dst
}

// PickUrgent appends to dst up to max requests for blocks of the urgent
// priority pieces (those readers wait on) that are asked of other peers
// and not received yet, at most twice each: the first of the two peers
// to answer wins, so a slow peer does not hold a reader up. Blocks never
// requested come from Pick, not from here.
func (p *Picker) PickUrgent(peer Peer, max int, dst []Block) []Block {
	start := len(dst)
	for _, i := range p.prio[:p.urgent] {
		pc := p.active[i]
		if pc == nil || pc.pending > 0 || !peer.Has(i) {
			continue
		}
		for b := range pc.requested {
			if len(dst)-start >= max {
				return dst
			}
			if pc.received[b] || pc.requested[b] != 1 {
				continue
			}
			blk := p.block(i, b)
			if peer.Requested(blk) {
				continue
			}
			pc.requested[b]++
			dst = append(dst, blk)
		}
	}
	return dst
}

// Endgame reports whether the download is in endgame: every block of
// every wanted missing piece is requested or received.
func (p *Picker) Endgame() bool { return p.nwanted > 0 && p.endgame() }

// endgame reports whether every block of every wanted missing piece is
// requested or received: no piece left to start, nothing pending.
func (p *Picker) endgame() bool {
	if p.noEndgame {
		return false
	}
	started := 0
	for _, i := range p.actives {
		if p.active[i].pending > 0 {
			return false
		}
		if p.wanted.Has(i) {
			started++
		}
	}
	return started >= p.nwanted
}

func (p *Picker) block(i, b int) Block {
	begin := b * BlockSize
	return Block{Piece: i, Begin: begin, Length: min(BlockSize, p.PieceSize(i)-begin)}
}

func (p *Picker) takePending(pc *piece, max int, dst []Block) []Block {
	for b := 0; b < len(pc.requested) && max > 0 && pc.pending > 0; b++ {
		if pc.requested[b] == 0 && !pc.received[b] {
			pc.requested[b] = 1
			pc.pending--
			max--
			dst = append(dst, p.block(pc.index, b))
		}
	}
	return dst
}

func (p *Picker) activate(i int) *piece {
	nb := p.NumBlocks(i)
	var pc *piece
	if k := len(p.free) - 1; k >= 0 && cap(p.free[k].requested) >= nb {
		pc = p.free[k]
		p.free = p.free[:k]
		pc.requested = pc.requested[:nb]
		pc.received = pc.received[:nb]
		clear(pc.requested)
		clear(pc.received)
		pc.nreceived = 0
	} else {
		c := max(nb, p.NumBlocks(0)) // room for any piece on reuse
		pc = &piece{requested: make([]uint8, nb, c), received: make([]bool, nb, c)}
	}
	pc.index, pc.pending = i, nb
	p.active[i] = pc
	if p.strategy == Sequential {
		at, _ := slices.BinarySearch(p.actives, i)
		p.actives = slices.Insert(p.actives, at, i)
	} else {
		p.actives = append(p.actives, i)
	}
	return pc
}

// next returns the next piece to start for peer, or -1.
func (p *Picker) next(peer Peer) int {
	if p.strategy == Sequential {
		for p.seqCursor < p.n && !p.Needs(p.seqCursor) {
			p.seqCursor++
		}
		if p.levels == nil {
			for i := p.seqCursor; i < p.n; i++ {
				if p.Needs(i) && p.active[i] == nil && peer.Has(i) {
					return i
				}
			}
			return -1
		}
		for l := int8(MaxLevel); l >= MinLevel; l-- {
			for i := p.seqCursor; i < p.n; i++ {
				if p.levels[i] == l && p.Needs(i) && p.active[i] == nil && peer.Has(i) {
					return i
				}
			}
		}
		return -1
	}
	if p.dirty {
		p.rebuild()
	}
	// Pieces started or no longer needed since the rebuild are spent:
	// they come back only through a rebuild. Those the scan passes are
	// dropped, moving the ones the peer lacks up to order[head:], in
	// their order; the cost is that of the scan.
	found, spent := -1, 0
	r := p.head
	for ; r < len(p.order); r++ {
		i := p.order[r]
		if !p.idle(i) {
			spent++
		} else if peer.Has(i) {
			found = i
			break
		}
	}
	if spent > 0 {
		w := r
		for k := r - 1; k >= p.head; k-- {
			if i := p.order[k]; p.idle(i) {
				w--
				p.order[w] = i
			}
		}
		p.head = w
	}
	return found
}

// idle reports whether piece i is wanted, missing and not active.
func (p *Picker) idle(i int) bool { return p.active[i] == nil && p.Needs(i) }

// rebuild sorts the wanted missing idle pieces by availability, at random
// among equals.
func (p *Picker) rebuild() {
	p.order, p.head = p.order[:0], 0
	lo, hi := int32(math.MaxInt32), int32(math.MinInt32)
	for i := range p.n {
		if p.idle(i) {
			p.order = append(p.order, i)
			lo, hi = min(lo, p.avail[i]), max(hi, p.avail[i])
		}
	}
	p.dirty = false
	p.rng.Shuffle(len(p.order), func(a, b int) { p.order[a], p.order[b] = p.order[b], p.order[a] })
	defer p.byLevel()
	if len(p.order) < 2 || lo == hi {
		return
	}
	if int(hi-lo) > len(p.order) {
		slices.SortStableFunc(p.order, func(a, b int) int { return cmp.Compare(p.avail[a], p.avail[b]) })
		return
	}
	// A counting sort: stable, so equals stay in their random order.
	// Availabilities span no more values than there are peers.
	counts := slices.Grow(p.counts[:0], int(hi-lo)+1)[:int(hi-lo)+1]
	clear(counts)
	for _, i := range p.order {
		counts[p.avail[i]-lo]++
	}
	at := 0
	for a, c := range counts {
		counts[a] = at
		at += c
	}
	p.sorted = slices.Grow(p.sorted[:0], len(p.order))[:len(p.order)]
	for _, i := range p.order {
		a := p.avail[i] - lo
		p.sorted[counts[a]] = i
		counts[a]++
	}
	p.order, p.sorted, p.counts = p.sorted, p.order, counts
}

// byLevel moves the pieces of higher levels to the front of the order,
// keeping the order within each level: a stable partition, in one pass
// per level.
func (p *Picker) byLevel() {
	if p.levels == nil || len(p.order) < 2 {
		return
	}
	p.sorted = p.sorted[:0]
	for l := int8(MaxLevel); l >= MinLevel; l-- {
		for _, i := range p.order {
			if p.levels[i] == l {
				p.sorted = append(p.sorted, i)
			}
		}
	}
	p.order, p.sorted = p.sorted, p.order
}

// Received records block b's arrival. It reports whether the block was
// still needed (false for a duplicate or unrequested block) and whether
// the piece is now complete, ready for hashing.
func (p *Picker) Received(b Block) (needed, complete bool) {
	pc := p.active[b.Piece]
	if pc == nil || b.Begin%BlockSize != 0 {
		return false, false
	}
	k := b.Begin / BlockSize
	if k >= len(pc.received) || pc.received[k] || p.block(b.Piece, k).Length != b.Length {
		return false, false
	}
	pc.received[k] = true
	pc.nreceived++
	if pc.requested[k] == 0 {
		pc.pending-- // arrived without being asked for (a late block after a cancel)
	} else {
		pc.requested[k]--
	}
	return true, pc.nreceived == len(pc.received)
}

// Cancelled records that a request for b will not be answered (the peer
// choked, rejected, timed out or left); the block is pending again unless
// another request for it is outstanding.
func (p *Picker) Cancelled(b Block) {
	pc := p.active[b.Piece]
	if pc == nil {
		return
	}
	k := b.Begin / BlockSize
	if k >= len(pc.requested) || pc.requested[k] == 0 {
		return
	}
	pc.requested[k]--
	if pc.requested[k] == 0 && !pc.received[k] {
		pc.pending++
	}
}

// Outstanding reports whether block b still awaits data.
func (p *Picker) Outstanding(b Block) bool {
	pc := p.active[b.Piece]
	k := b.Begin / BlockSize
	return pc != nil && k < len(pc.received) && !pc.received[k]
}

// Failed resets piece i after a failed hash check: it is fetched again.
func (p *Picker) Failed(i int) {
	p.deactivate(i)
	p.dirty = true
	p.seqCursor = min(p.seqCursor, i)
}

// Abandon stops fetching piece i (no longer wanted, say): it is no longer
// active, and blocks of it that still arrive are not needed. The caller
// cancels the requests out.
func (p *Picker) Abandon(i int) {
	p.deactivate(i)
	p.dirty = true
}

// Verified marks piece i as had.
func (p *Picker) Verified(i int) {
	p.deactivate(i)
	if p.have.Set(i) && p.wanted.Has(i) {
		p.nwanted--
	}
}

// Unverified marks piece i as missing again (its data was lost).
func (p *Picker) Unverified(i int) {
	if p.have.Clear(i) && p.wanted.Has(i) {
		p.nwanted++
		p.dirty = true
		p.seqCursor = min(p.seqCursor, i)
	}
}

func (p *Picker) deactivate(i int) {
	if p.active[i] == nil {
		return
	}
	p.free = append(p.free, p.active[i])
	p.active[i] = nil
	if k := slices.Index(p.actives, i); k >= 0 {
		p.actives = slices.Delete(p.actives, k, k+1)
	}
}

// Active reports whether piece i is being fetched.
func (p *Picker) Active(i int) bool { return p.active[i] != nil }

// NumActive is the number of pieces being fetched.
func (p *Picker) NumActive() int { return len(p.actives) }
