package picker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// fakePeer is a Peer with the pieces in has (every piece when has is nil)
// and the requests in reqs outstanding to it.
type fakePeer struct {
	has  map[int]bool
	reqs map[Block]bool
}

func seed() *fakePeer { return &fakePeer{reqs: map[Block]bool{}} }

func peerWith(pieces ...int) *fakePeer {
	f := &fakePeer{has: map[int]bool{}, reqs: map[Block]bool{}}
	for _, i := range pieces {
		f.has[i] = true
	}
	return f
}

func (f *fakePeer) Has(i int) bool         { return f.has == nil || f.has[i] }
func (f *fakePeer) Requested(b Block) bool { return f.reqs[b] }

// pick asks p for up to max blocks for f and records them as requested
// from f, as the engine does.
func (f *fakePeer) pick(t testing.TB, p *Picker, max int) []Block {
	t.Helper()
	got := p.Pick(f, max, nil)
	for _, b := range got {
		if f.reqs[b] {
			t.Fatalf("Pick returned %+v, already requested from this peer", b)
		}
		f.reqs[b] = true
	}
	return got
}

// newPicker returns a Picker of n pieces of pieceLen bytes, length bytes
// in all, wanting every piece.
func newPicker(n int, pieceLen, length int64) *Picker {
	p := New(n, pieceLen, length)
	for i := range n {
		p.Want(i, true)
	}
	return p
}

// pieces returns the distinct pieces of bs in the order they first occur.
func pieces(bs []Block) []int {
	var out []int
	for _, b := range bs {
		if !slices.Contains(out, b.Piece) {
			out = append(out, b.Piece)
		}
	}
	return out
}

// receiveAll delivers every block of bs and verifies the pieces that
// become complete.
func receiveAll(t testing.TB, p *Picker, bs []Block) {
	t.Helper()
	for _, b := range bs {
		needed, complete := p.Received(b)
		if !needed {
			t.Fatalf("Received(%+v): not needed", b)
		}
		if complete {
			p.Verified(b.Piece)
		}
	}
}

// checkState checks the Picker's internal bookkeeping against itself.
func checkState(t testing.TB, p *Picker) {
	t.Helper()
	nwanted := 0
	for i := range p.n {
		if p.wanted.Has(i) && !p.have.Has(i) {
			nwanted++
		}
		if (p.active[i] != nil) != slices.Contains(p.actives, i) {
			t.Fatalf("piece %d: active %v, in actives %v", i, p.active[i] != nil, slices.Contains(p.actives, i))
		}
	}
	if nwanted != p.nwanted || nwanted != p.Missing() {
		t.Fatalf("Missing() = %d, %d wanted pieces not verified", p.Missing(), nwanted)
	}
	if len(p.actives) != len(slicesCompactCopy(p.actives)) {
		t.Fatalf("actives has duplicates: %v", p.actives)
	}
	if p.strategy == Sequential && !slices.IsSorted(p.actives) {
		t.Fatalf("sequential: actives not in index order: %v", p.actives)
	}
	for _, i := range p.actives {
		pc := p.active[i]
		if pc.index != i || len(pc.requested) != p.NumBlocks(i) || len(pc.received) != p.NumBlocks(i) {
			t.Fatalf("piece %d: index %d, %d/%d blocks, want %d", i, pc.index, len(pc.requested), len(pc.received), p.NumBlocks(i))
		}
		pending, received := 0, 0
		for b := range pc.received {
			if pc.received[b] {
				received++
			} else if pc.requested[b] == 0 {
				pending++
			}
		}
		if pending != pc.pending || received != pc.nreceived {
			t.Fatalf("piece %d: pending %d nreceived %d, counted %d and %d", i, pc.pending, pc.nreceived, pending, received)
		}
	}
}

func slicesCompactCopy(s []int) []int {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

func TestRarestFirst(t *testing.T) {
	tests := []struct {
		name     string
		avail    []int // PeerHas calls per piece; the length is the piece count
		seeds    int
		peer     []int // pieces the picking peer has; nil: all
		verified []int
		unwanted []int
		rarest   []int // the acceptable first pieces
	}{
		{name: "one rarest", avail: []int{3, 1, 2, 3}, rarest: []int{1}},
		{name: "three tied", avail: []int{2, 1, 1, 3, 1}, rarest: []int{1, 2, 4}},
		{name: "all tied", avail: []int{0, 0, 0, 0}, rarest: []int{0, 1, 2, 3}},
		{name: "availabilities wider apart than the pieces are many", avail: []int{9, 0, 7, 0}, rarest: []int{1, 3}},
		{name: "seeds add to every piece", avail: []int{2, 0, 1, 0}, seeds: 3, rarest: []int{1, 3}},
		{name: "rarest the peer has", avail: []int{1, 1, 2, 2, 3}, peer: []int{2, 3, 4}, rarest: []int{2, 3}},
		{name: "peer has one piece", avail: []int{1, 1, 2, 2, 3}, peer: []int{4}, rarest: []int{4}},
		{name: "verified skipped", avail: []int{1, 1, 2, 3}, verified: []int{0, 1}, rarest: []int{2}},
		{name: "unwanted skipped", avail: []int{1, 2, 2, 2}, unwanted: []int{0}, rarest: []int{1, 2, 3}},
		{name: "verified and unwanted", avail: []int{1, 1, 1, 5, 5}, verified: []int{0}, unwanted: []int{1, 2}, rarest: []int{3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(tt.avail)
			firsts := map[int]int{}
			for range 200 {
				p := newPicker(n, 2*BlockSize, int64(n)*2*BlockSize)
				for i, a := range tt.avail {
					for range a {
						p.PeerHas(i)
					}
				}
				for range tt.seeds {
					p.SeedJoined()
				}
				for _, i := range tt.verified {
					p.Verified(i)
				}
				for _, i := range tt.unwanted {
					p.Want(i, false)
				}
				peer := seed()
				if tt.peer != nil {
					peer = peerWith(tt.peer...)
				}
				got := peer.pick(t, p, 1)
				if len(got) != 1 || got[0] != (Block{Piece: got[0].Piece, Begin: 0, Length: BlockSize}) {
					t.Fatalf("Pick(1) = %+v, want block 0 of one piece", got)
				}
				if !slices.Contains(tt.rarest, got[0].Piece) {
					t.Fatalf("picked piece %d first, want one of %v", got[0].Piece, tt.rarest)
				}
				firsts[got[0].Piece]++
				// Every further new piece is also a rarest one left,
				// until none is, and nothing unwanted or verified.
				all := peer.pick(t, p, 2*n)
				for _, i := range pieces(all) {
					if !p.Needs(i) || (tt.peer != nil && !slices.Contains(tt.peer, i)) {
						t.Fatalf("picked piece %d: needed %v", i, p.Needs(i))
					}
				}
				checkState(t, p)
			}
			if len(tt.rarest) > 1 && len(firsts) < 2 {
				t.Errorf("200 pickers all picked %v first among the tied %v", firsts, tt.rarest)
			}
		})
	}
}

// TestRarestFirstOrder picks every piece one at a time: each new piece
// has the least availability of those left.
func TestRarestFirstOrder(t *testing.T) {
	const n = 64
	for run := range 20 {
		rng := rand.New(rand.NewPCG(uint64(run), 1))
		p := newPicker(n, BlockSize, n*BlockSize)
		avail := make([]int, n)
		for i := range n {
			avail[i] = rng.IntN(5)
			for range avail[i] {
				p.PeerHas(i)
			}
		}
		peer := seed()
		last := -1
		for range n {
			got := peer.pick(t, p, 1)
			if len(got) != 1 {
				t.Fatalf("run %d: Pick(1) = %v", run, got)
			}
			a := avail[got[0].Piece]
			if a < last {
				t.Fatalf("run %d: piece %d of availability %d after one of %d", run, got[0].Piece, a, last)
			}
			last = a
			if p.Availability(got[0].Piece) != a {
				t.Fatalf("Availability(%d) = %d, want %d", got[0].Piece, p.Availability(got[0].Piece), a)
			}
		}
		if got := peer.pick(t, p, 1); len(got) != 0 {
			t.Fatalf("run %d: picked %v with every block requested once and one peer", run, got)
		}
	}
}

// TestRarestFirstSpent checks that pieces a peer lacks stay in line when
// the pieces after them are taken, and come first for the next peer.
func TestRarestFirstSpent(t *testing.T) {
	for range 50 {
		p := newPicker(200, BlockSize, 200*BlockSize)
		rare := peerWith()
		for i := range 200 {
			p.PeerHas(i)
			if i < 100 {
				rare.has[i] = true
			} else {
				p.PeerHas(i)
			}
		}
		// b lacks the rare pieces: it takes 50 of the others.
		b := peerWith()
		for i := 100; i < 200; i++ {
			b.has[i] = true
		}
		for _, i := range pieces(b.pick(t, p, 50)) {
			if i < 100 {
				t.Fatalf("b picked piece %d", i)
			}
		}
		// Then the rare pieces come first, in an order that mixes them.
		got := pieces(seed().pick(t, p, 150))
		if len(got) != 150 {
			t.Fatalf("picked %d pieces", len(got))
		}
		for k, i := range got {
			if (k < 100) != (i < 100) {
				t.Fatalf("pick %d: piece %d; want the 100 rarest first: %v", k, i, got)
			}
		}
		if slices.IsSorted(got[:100]) {
			t.Fatalf("the tied pieces came in index order: %v", got[:100])
		}
		checkState(t, p)
	}
}

// TestRarestFirstAvailabilityChanges checks that the order follows
// PeerHas, PeerLost and Want after pieces were picked.
func TestRarestFirstAvailabilityChanges(t *testing.T) {
	p := newPicker(6, BlockSize, 6*BlockSize)
	for i, a := range []int{1, 2, 3, 4, 5, 6} {
		for range a {
			p.PeerHas(i)
		}
	}
	peer := seed()
	if got := pieces(peer.pick(t, p, 1)); !slices.Equal(got, []int{0}) {
		t.Fatalf("first pick %v, want [0]", got)
	}
	// Piece 5 becomes the rarest, then piece 1 gains peers.
	for range 6 {
		p.PeerLost(5)
	}
	if got := pieces(peer.pick(t, p, 1)); !slices.Equal(got, []int{5}) {
		t.Fatalf("after PeerLost: %v, want [5]", got)
	}
	for range 5 {
		p.PeerHas(1)
	}
	if got := pieces(peer.pick(t, p, 1)); !slices.Equal(got, []int{2}) {
		t.Fatalf("after PeerHas: %v, want [2]", got)
	}
	p.Want(3, false)
	if got := pieces(peer.pick(t, p, 1)); !slices.Equal(got, []int{4}) {
		t.Fatalf("after Want(3, false): %v, want [4]", got)
	}
	p.Want(3, true)
	if got := pieces(peer.pick(t, p, 2)); !slices.Equal(got, []int{3, 1}) {
		t.Fatalf("after Want(3, true): %v, want [3 1]", got)
	}
	checkState(t, p)
}

func TestActiveFirst(t *testing.T) {
	for _, s := range []Strategy{RarestFirst, Sequential} {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			p := newPicker(8, 4*BlockSize, 8*4*BlockSize)
			p.SetStrategy(s)
			a, b := seed(), seed()
			first := a.pick(t, p, 2)
			if len(first) != 2 || first[0].Piece != first[1].Piece {
				t.Fatalf("Pick(2) = %+v, want two blocks of one piece", first)
			}
			x := first[0].Piece
			// Another peer finishes requesting x before starting a new
			// piece.
			got := b.pick(t, p, 3)
			want := []Block{{x, 2 * BlockSize, BlockSize}, {x, 3 * BlockSize, BlockSize}}
			if len(got) != 3 || !slices.Equal(got[:2], want) || got[2].Piece == x || got[2].Begin != 0 {
				t.Fatalf("second peer got %+v, want %+v then block 0 of a new piece", got, want)
			}
			y := got[2].Piece
			// A peer without y starts another piece; then a peer with
			// both continues y before anything new.
			c := peerWith(slices.DeleteFunc([]int{0, 1, 2, 3, 4, 5, 6, 7}, func(i int) bool { return i == x || i == y })...)
			got = c.pick(t, p, 1)
			if len(got) != 1 || got[0].Piece == x || got[0].Piece == y {
				t.Fatalf("peer without %d and %d got %+v", x, y, got)
			}
			z := got[0].Piece
			got = a.pick(t, p, 7)
			if ps := pieces(got); len(ps) != 3 || ps[0] != y || ps[1] != z || ps[2] == x || len(got) != 7 {
				t.Fatalf("%v: got pieces %v after starting %d then %d, want them finished first", s, ps, y, z)
			}
			checkState(t, p)
		})
	}
}

func TestSequential(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		unwanted []int
		verified []int
		peer     []int // nil: every piece
		max      int
		want     []int // pieces, in the order of their blocks
	}{
		{name: "from zero", n: 6, max: 4, want: []int{0, 1, 2, 3}},
		{name: "from the lowest missing", n: 6, verified: []int{0, 1, 3}, max: 3, want: []int{2, 4, 5}},
		{name: "lowest missing wanted", n: 8, unwanted: []int{0, 1, 2}, verified: []int{3}, max: 8, want: []int{4, 5, 6, 7}},
		{name: "skips what the peer lacks", n: 8, peer: []int{1, 2, 4, 7}, verified: []int{1}, max: 8, want: []int{2, 4, 7}},
		{name: "peer has nothing needed", n: 4, peer: []int{0, 1}, verified: []int{0, 1}, max: 8, want: nil},
		{name: "max 1", n: 4, verified: []int{0}, max: 1, want: []int{1}},
		{name: "max 0", n: 4, max: 0, want: nil},
		{name: "negative max", n: 4, max: -1, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPicker(tt.n, BlockSize, int64(tt.n)*BlockSize)
			p.SetStrategy(Sequential)
			if p.Strategy() != Sequential {
				t.Fatalf("Strategy() = %v", p.Strategy())
			}
			for _, i := range tt.unwanted {
				p.Want(i, false)
			}
			for _, i := range tt.verified {
				p.Verified(i)
			}
			peer := seed()
			if tt.peer != nil {
				peer = peerWith(tt.peer...)
			}
			got := peer.pick(t, p, tt.max)
			var ps []int
			for _, b := range got {
				ps = append(ps, b.Piece)
			}
			if !slices.Equal(ps, tt.want) {
				t.Fatalf("picked %v, want %v", ps, tt.want)
			}
			checkState(t, p)
		})
	}
}

// TestSequentialAfterChanges checks the order once pieces come back: a
// failed piece, a piece newly wanted, a piece unverified, and pieces
// started under rarest-first before switching.
func TestSequentialAfterChanges(t *testing.T) {
	const n = 10
	p := newPicker(n, BlockSize, n*BlockSize)
	p.SetStrategy(Sequential)
	p.Want(1, false)
	a := seed()
	got := a.pick(t, p, 3)
	if ps := pieces(got); !slices.Equal(ps, []int{0, 2, 3}) {
		t.Fatalf("picked %v, want [0 2 3]", ps)
	}
	receiveAll(t, p, got[:1]) // verifies 0
	needed, complete := p.Received(got[1])
	if !needed || !complete {
		t.Fatalf("Received(%+v) = %v, %v", got[1], needed, complete)
	}
	p.Failed(2)
	delete(a.reqs, got[0])
	delete(a.reqs, got[1])
	p.Want(1, true)
	if ps := pieces(a.pick(t, p, 3)); !slices.Equal(ps, []int{1, 2, 4}) {
		t.Fatalf("after Failed(2), Want(1): picked %v, want [1 2 4]", ps)
	}
	p.Unverified(0)
	if ps := pieces(a.pick(t, p, 2)); !slices.Equal(ps, []int{0, 5}) {
		t.Fatalf("after Unverified(0): picked %v, want [0 5]", ps)
	}
	checkState(t, p)

	// Pieces started out of order under rarest-first, then sequential:
	// the started pieces are finished in index order, and so are those
	// started after the switch.
	for run := range 50 {
		p := newPicker(n, 2*BlockSize, n*2*BlockSize)
		a := seed()
		all := a.pick(t, p, 2*n)
		for _, b := range all {
			if b.Begin != 0 && b.Piece != 3 {
				p.Cancelled(b)
			}
		}
		p.Failed(3)
		p.SetStrategy(Sequential)
		checkState(t, p)
		got := seed().pick(t, p, n)
		// The started pieces first, then piece 3 starts again.
		var want []Block
		for i := range n {
			if i != 3 {
				want = append(want, Block{i, BlockSize, BlockSize})
			}
		}
		want = append(want, Block{3, 0, BlockSize})
		if !slices.Equal(got, want) {
			t.Fatalf("run %d: started in the order %v under rarest-first; sequential then picked %v, want %v", run, pieces(all), got, want)
		}
		checkState(t, p)
	}
}

func TestBlocks(t *testing.T) {
	const B = BlockSize
	tests := []struct {
		name     string
		pieceLen int64
		length   int64
		sizes    []int // per piece
		blocks   [][]int
	}{
		{name: "whole blocks", pieceLen: 2 * B, length: 6 * B, sizes: []int{2 * B, 2 * B, 2 * B}, blocks: [][]int{{B, B}, {B, B}, {B, B}}},
		{name: "last piece short", pieceLen: 4 * B, length: 8*B + B + 1000, sizes: []int{4 * B, 4 * B, B + 1000}, blocks: [][]int{{B, B, B, B}, {B, B, B, B}, {B, 1000}}},
		{name: "last block of last piece short", pieceLen: 2 * B, length: 4*B - 1, sizes: []int{2 * B, 2*B - 1}, blocks: [][]int{{B, B}, {B, B - 1}}},
		{name: "pieces smaller than a block", pieceLen: 1000, length: 2500, sizes: []int{1000, 1000, 500}, blocks: [][]int{{1000}, {1000}, {500}}},
		{name: "one byte", pieceLen: B, length: 1, sizes: []int{1}, blocks: [][]int{{1}}},
		{name: "piece length not a multiple of the block", pieceLen: B + 100, length: 2*B + 150, sizes: []int{B + 100, B + 50}, blocks: [][]int{{B, 100}, {B, 50}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(tt.sizes)
			p := newPicker(n, tt.pieceLen, tt.length)
			p.SetStrategy(Sequential)
			var want []Block
			for i, size := range tt.sizes {
				if p.PieceSize(i) != size {
					t.Errorf("PieceSize(%d) = %d, want %d", i, p.PieceSize(i), size)
				}
				if p.NumBlocks(i) != len(tt.blocks[i]) {
					t.Errorf("NumBlocks(%d) = %d, want %d", i, p.NumBlocks(i), len(tt.blocks[i]))
				}
				for k, l := range tt.blocks[i] {
					want = append(want, Block{Piece: i, Begin: k * B, Length: l})
				}
			}
			got := seed().pick(t, p, 1000)
			if !slices.Equal(got, want) {
				t.Fatalf("picked %+v\nwant %+v", got, want)
			}
			for k, b := range got {
				if !p.Outstanding(b) {
					t.Fatalf("Outstanding(%+v) = false before it arrived", b)
				}
				needed, complete := p.Received(b)
				last := k == len(got)-1 || got[k+1].Piece != b.Piece
				if !needed || complete != last {
					t.Fatalf("Received(%+v) = %v, %v; want true, %v", b, needed, complete, last)
				}
				if p.Outstanding(b) {
					t.Fatalf("Outstanding(%+v) after it arrived", b)
				}
			}
			checkState(t, p)
		})
	}
}

func TestPickMax(t *testing.T) {
	p := newPicker(4, 4*BlockSize, 16*BlockSize)
	peer := seed()
	dst := make([]Block, 1, 8)
	dst[0] = Block{Piece: 99}
	for _, m := range []int{0, -3, 1, 3, 5, 100} {
		before := len(dst)
		dst = p.Pick(peer, m, dst)
		if dst[0] != (Block{Piece: 99}) {
			t.Fatalf("Pick changed dst's first element: %+v", dst[0])
		}
		added := len(dst) - before
		if want := min(max(0, m), 16-(before-1)); added != want {
			t.Fatalf("Pick(max %d) added %d blocks, want %d", m, added, want)
		}
		for _, b := range dst[before:] {
			peer.reqs[b] = true
		}
	}
	if len(dst) != 17 {
		t.Fatalf("picked %d blocks in all, want 16", len(dst)-1)
	}
}

func TestReceived(t *testing.T) {
	p := newPicker(3, 3*BlockSize, 9*BlockSize)
	p.SetStrategy(Sequential)
	peer := seed()
	got := peer.pick(t, p, 4) // blocks 0-2 of piece 0, block 0 of piece 1
	if len(got) != 4 || got[2].Piece != 0 || got[3].Piece != 1 {
		t.Fatalf("picked %v", got)
	}
	x := got[0].Piece
	tests := []struct {
		name             string
		b                Block
		needed, complete bool
	}{
		{"not active", Block{Piece: 2, Begin: 0, Length: BlockSize}, false, false},
		{"unaligned", Block{Piece: x, Begin: 100, Length: BlockSize}, false, false},
		{"past the end", Block{Piece: x, Begin: 5 * BlockSize, Length: BlockSize}, false, false},
		{"wrong length", Block{Piece: x, Begin: 0, Length: BlockSize - 1}, false, false},
		{"first", got[0], true, false},
		{"duplicate", got[0], false, false},
		{"second", got[1], true, false},
		{"last", got[2], true, true},
		{"duplicate after complete", got[2], false, false},
		{"duplicate of the first after complete", got[0], false, false},
	}
	for _, tt := range tests {
		needed, complete := p.Received(tt.b)
		if needed != tt.needed || complete != tt.complete {
			t.Errorf("%s: Received(%+v) = %v, %v; want %v, %v", tt.name, tt.b, needed, complete, tt.needed, tt.complete)
		}
	}
	if !p.Active(x) || p.Missing() != 3 {
		t.Fatalf("complete piece: Active %v Missing %d, want true 3", p.Active(x), p.Missing())
	}
	p.Verified(x)
	if p.Active(x) || !p.Have(x) || p.Missing() != 2 || p.NumActive() != 1 || !p.HaveBitfield().Has(x) {
		t.Fatalf("after Verified: Active %v Have %v Missing %d NumActive %d", p.Active(x), p.Have(x), p.Missing(), p.NumActive())
	}
	if needed, _ := p.Received(got[0]); needed {
		t.Fatal("Received a block of a verified piece: needed")
	}
	p.Verified(x) // twice: no change
	if p.Missing() != 2 {
		t.Fatalf("Verified twice: Missing %d", p.Missing())
	}
	checkState(t, p)
}

func TestCancelled(t *testing.T) {
	p := newPicker(2, 4*BlockSize, 8*BlockSize)
	a, b := seed(), seed()
	got := a.pick(t, p, 3)
	p.Cancelled(got[1])
	delete(a.reqs, got[1])
	if !p.Outstanding(got[1]) {
		t.Fatal("a cancelled block no longer outstanding")
	}
	// The cancelled block comes again, before the rest of the piece.
	again := b.pick(t, p, 2)
	if want := []Block{got[1], {got[0].Piece, 3 * BlockSize, BlockSize}}; !slices.Equal(again, want) {
		t.Fatalf("after Cancelled(%+v): picked %+v, want %+v", got[1], again, want)
	}
	// b's request goes too: pending again. Cancelling it once more, or a
	// block of an idle piece, changes nothing.
	delete(b.reqs, got[1])
	p.Cancelled(got[1])
	p.Cancelled(got[1])
	p.Cancelled(Block{Piece: 1 - got[0].Piece, Begin: 0, Length: BlockSize})
	checkState(t, p)
	rest := seed().pick(t, p, 10)
	if ps := pieces(rest); !slices.Equal(ps, []int{got[1].Piece, 1 - got[0].Piece}) {
		t.Fatalf("picked %+v after cancelling twice: want the cancelled block, then the other piece", rest)
	}
	// A block that arrives after its request was cancelled still counts.
	p2 := newPicker(1, 2*BlockSize, 2*BlockSize)
	got = seed().pick(t, p2, 2)
	p2.Cancelled(got[0])
	p2.Cancelled(got[1])
	if needed, complete := p2.Received(got[0]); !needed || complete {
		t.Fatal("late block not needed")
	}
	if again := seed().pick(t, p2, 2); !slices.Equal(again, got[1:]) {
		t.Fatalf("after a late block: picked %+v, want %+v", again, got[1:])
	}
	checkState(t, p2)
}

func TestFailed(t *testing.T) {
	p := newPicker(2, 3*BlockSize, 6*BlockSize)
	a := peerWith(0)
	got := a.pick(t, p, 3)
	receiveAll(t, p, got[:2])
	needed, complete := p.Received(got[2])
	if !needed || !complete {
		t.Fatal("piece not complete")
	}
	p.Failed(0)
	if p.Active(0) || p.Have(0) || p.Missing() != 2 {
		t.Fatalf("after Failed: Active %v Have %v Missing %d", p.Active(0), p.Have(0), p.Missing())
	}
	if p.Outstanding(got[0]) {
		t.Fatal("block of an idle piece outstanding")
	}
	again := peerWith(0).pick(t, p, 3)
	if !slices.Equal(again, got) {
		t.Fatalf("after Failed: picked %+v, want %+v", again, got)
	}
	checkState(t, p)
}

func TestVerifiedMissing(t *testing.T) {
	p := New(6, BlockSize, 6*BlockSize)
	steps := []struct {
		do      func()
		missing int
	}{
		{func() {}, 0},
		{func() { p.Want(0, true); p.Want(1, true); p.Want(2, true) }, 3},
		{func() { p.Want(1, true) }, 3},
		{func() { p.Verified(0) }, 2},
		{func() { p.Verified(0) }, 2},
		{func() { p.Verified(4) }, 2}, // not wanted
		{func() { p.Want(4, true) }, 2},
		{func() { p.Want(5, true) }, 3},
		{func() { p.Want(5, false) }, 2},
		{func() { p.Want(5, false) }, 2},
		{func() { p.Unverified(4) }, 3},
		{func() { p.Unverified(3) }, 3},
		{func() { p.Want(0, false) }, 3}, // already verified
		{func() { p.Unverified(0) }, 3},  // not wanted
		{func() { p.Want(0, true) }, 4},
		{func() { p.Verified(1); p.Verified(2); p.Verified(4); p.Verified(0) }, 0},
	}
	for k, s := range steps {
		s.do()
		if p.Missing() != s.missing {
			t.Fatalf("step %d: Missing() = %d, want %d", k, p.Missing(), s.missing)
		}
		checkState(t, p)
	}
	if got := seed().pick(t, p, 10); len(got) != 0 {
		t.Fatalf("nothing missing: picked %+v", got)
	}
}

func TestEndgame(t *testing.T) {
	const n = 3
	p := newPicker(n, 2*BlockSize, n*2*BlockSize)
	p.SetStrategy(Sequential) // for a known order; endgame is the same
	a, b, c, d := seed(), seed(), seed(), seed()
	first := a.pick(t, p, 5)
	if len(first) != 5 {
		t.Fatalf("picked %d blocks", len(first))
	}
	// One block is left to start: no endgame, not even for a peer that
	// could only get blocks asked of another.
	if got := peerWith(0, 1).pick(t, p, 4); len(got) != 0 {
		t.Fatalf("before endgame: picked %+v", got)
	}
	got := b.pick(t, p, 1)
	if want := (Block{2, BlockSize, BlockSize}); len(got) != 1 || got[0] != want {
		t.Fatalf("before endgame: picked %+v, want %+v", got, want)
	}
	last := got[0]
	// Endgame: b gets the blocks a was asked for, never one it was asked
	// for itself.
	got = b.pick(t, p, 2)
	if !slices.Equal(got, first[:2]) {
		t.Fatalf("endgame: b got %+v, want %+v", got, first[:2])
	}
	got = append(got, b.pick(t, p, 10)...)
	if !slices.Equal(got, first) {
		t.Fatalf("endgame: b got %+v, want %+v", got, first)
	}
	// c may ask for every block: 6; d for the one requested twice only.
	if got := c.pick(t, p, 10); len(got) != 6 {
		t.Fatalf("endgame: c got %+v", got)
	}
	if got := d.pick(t, p, 10); !slices.Equal(got, []Block{last}) {
		t.Fatalf("endgame: d got %+v, want %+v (three requests for every other block)", got, last)
	}
	// A received block is not asked for again; a cancelled one is.
	p.Received(first[0])
	p.Cancelled(first[1])
	delete(a.reqs, first[1])
	if got := seed().pick(t, p, 10); !slices.Equal(got, []Block{first[1]}) {
		t.Fatalf("endgame after receiving %+v, cancelling %+v: picked %+v", first[0], first[1], got)
	}
	checkState(t, p)

	// A peer without the piece is not asked for its blocks.
	p2 := newPicker(2, BlockSize, 2*BlockSize)
	seed().pick(t, p2, 2)
	if got := peerWith(1).pick(t, p2, 2); len(got) != 1 || got[0].Piece != 1 {
		t.Fatalf("endgame: peer with piece 1 got %+v", got)
	}

	// No endgame while a wanted piece has not started, though no
	// connected peer has it.
	p3 := newPicker(3, BlockSize, 3*BlockSize)
	a3 := peerWith(0, 1)
	a3.pick(t, p3, 2)
	if got := peerWith(0, 1).pick(t, p3, 2); len(got) != 0 {
		t.Fatalf("piece 2 not started: endgame picked %+v", got)
	}
	p3.Want(2, false)
	if got := peerWith(0, 1).pick(t, p3, 2); len(got) != 2 {
		t.Fatalf("piece 2 unwanted: endgame picked %+v", got)
	}
}

func TestInterestingNeeds(t *testing.T) {
	tests := []struct {
		name        string
		unwanted    []int
		verified    []int
		peer        []int // nil: every piece
		interesting bool
	}{
		{name: "seed", interesting: true},
		{name: "peer with nothing", peer: []int{}, interesting: false},
		{name: "peer with a needed piece", peer: []int{3}, interesting: true},
		{name: "peer with only verified pieces", peer: []int{0, 1}, verified: []int{0, 1}, interesting: false},
		{name: "peer with only unwanted pieces", peer: []int{2, 3}, unwanted: []int{2, 3}, interesting: false},
		{name: "peer with an unwanted and a needed piece", peer: []int{2, 3}, unwanted: []int{2}, interesting: true},
		{name: "nothing missing", unwanted: []int{0, 1}, verified: []int{2, 3}, interesting: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPicker(4, BlockSize, 4*BlockSize)
			for _, i := range tt.unwanted {
				p.Want(i, false)
			}
			for _, i := range tt.verified {
				p.Verified(i)
			}
			peer := seed()
			if tt.peer != nil {
				peer = peerWith(tt.peer...)
			}
			if got := p.Interesting(peer); got != tt.interesting {
				t.Errorf("Interesting = %v, want %v", got, tt.interesting)
			}
			for i := range 4 {
				want := !slices.Contains(tt.unwanted, i) && !slices.Contains(tt.verified, i)
				if p.Needs(i) != want || p.Wanted(i) != !slices.Contains(tt.unwanted, i) {
					t.Errorf("piece %d: Needs %v Wanted %v", i, p.Needs(i), p.Wanted(i))
				}
			}
		})
	}
}

// TestRandomOperations drives a Picker as the engine does, with random
// peers, requests, arrivals, cancels, hash failures, lost data and
// changes of what is wanted, and checks it against a model.
func TestRandomOperations(t *testing.T) {
	runs := 300
	if testing.Short() {
		runs = 30
	}
	for run := range runs {
		t.Run(fmt.Sprint(run), func(t *testing.T) { randomRun(t, uint64(run)) })
	}
}

// simPeer is a peer of the simulation: its requests in order, as the
// engine keeps them.
type simPeer struct {
	fakePeer
	order []Block
}

func (s *simPeer) drop(b Block) {
	delete(s.reqs, b)
	s.order = slices.DeleteFunc(s.order, func(c Block) bool { return c == b })
}

func randomRun(t *testing.T, seedv uint64) {
	rng := rand.New(rand.NewPCG(seedv, 7))
	n := 1 + rng.IntN(40)
	pieceLen := int64(BlockSize * (1 + rng.IntN(4)))
	if rng.IntN(4) == 0 {
		pieceLen = int64(1 + rng.IntN(3*BlockSize))
	}
	length := int64(n-1)*pieceLen + 1 + rng.Int64N(pieceLen)
	p := New(n, pieceLen, length)
	if rng.IntN(2) == 0 {
		p.SetStrategy(Sequential)
	}
	wanted := make([]bool, n)
	verified := make([]bool, n)
	avail := make([]int, n) // PeerHas counts
	seeds := 0
	received := make([][]bool, n) // nil: piece idle in the model
	for i := range n {
		if rng.IntN(5) != 0 {
			wanted[i] = true
			p.Want(i, true)
		}
	}
	var peers []*simPeer
	join := func(full bool) {
		s := &simPeer{fakePeer: fakePeer{reqs: map[Block]bool{}}}
		if full {
			p.SeedJoined()
			seeds++
		} else {
			s.has = map[int]bool{}
			for i := range n {
				if rng.IntN(3) == 0 {
					s.has[i] = true
					p.PeerHas(i)
					avail[i]++
				}
			}
		}
		peers = append(peers, s)
	}
	leave := func(k int) {
		s := peers[k]
		for _, b := range s.order {
			p.Cancelled(b)
		}
		if s.has == nil {
			p.SeedLeft()
			seeds--
		} else {
			for i := range s.has {
				p.PeerLost(i)
				avail[i]--
			}
		}
		peers = slices.Delete(peers, k, k+1)
	}
	join(true) // one seed stays to the end: everything can be fetched
	for range rng.IntN(5) {
		join(false)
	}
	missing := func() int {
		m := 0
		for i := range n {
			if wanted[i] && !verified[i] {
				m++
			}
		}
		return m
	}
	endgame := func() bool {
		for i := range n {
			if wanted[i] && !verified[i] && received[i] == nil {
				return false
			}
		}
		for _, pc := range p.active {
			if pc != nil && pc.pending > 0 {
				return false
			}
		}
		return true
	}
	pick := func(s *simPeer, max int) {
		got := p.Pick(s, max, nil)
		shared := Block{Piece: -1}
		if len(got) > max {
			t.Fatalf("Pick(max %d) returned %d blocks", max, len(got))
		}
		for _, b := range got {
			i := b.Piece
			if !s.Has(i) || verified[i] || s.reqs[b] {
				t.Fatalf("picked %+v: peer has %v, verified %v, requested %v", b, s.Has(i), verified[i], s.reqs[b])
			}
			if received[i] == nil {
				if !wanted[i] {
					t.Fatalf("started unwanted piece %d", i)
				}
				if p.Strategy() == RarestFirst {
					for j := range n {
						if wanted[j] && !verified[j] && received[j] == nil && s.Has(j) && avail[j] < avail[i] {
							t.Fatalf("started piece %d of availability %d before piece %d of %d", i, avail[i], j, avail[j])
						}
					}
				} else {
					for j := range i {
						if wanted[j] && !verified[j] && received[j] == nil && s.Has(j) {
							t.Fatalf("sequential: started piece %d before piece %d", i, j)
						}
					}
				}
				received[i] = make([]bool, p.NumBlocks(i))
			}
			k := b.Begin / BlockSize
			if b.Begin%BlockSize != 0 || k >= len(received[i]) || b.Length != min(BlockSize, p.PieceSize(i)-b.Begin) {
				t.Fatalf("picked malformed %+v", b)
			}
			if received[i][k] {
				t.Fatalf("picked received block %+v", b)
			}
			others := 0
			for _, q := range peers {
				if q != s && q.reqs[b] {
					others++
				}
			}
			if others > 0 && shared.Piece < 0 {
				shared = b
			}
			if others >= 3 {
				t.Fatalf("picked %+v, requested from %d other peers", b, others)
			}
			s.reqs[b] = true
			s.order = append(s.order, b)
		}
		// Endgame may start within the Pick, once it has taken the last
		// blocks nobody was asked for.
		if shared.Piece >= 0 && !endgame() {
			t.Fatalf("picked %+v, requested from other peers, before endgame", shared)
		}
	}
	receive := func(s *simPeer, b Block) {
		s.drop(b)
		needed, complete := p.Received(b)
		i, k := b.Piece, b.Begin/BlockSize
		wantNeeded := received[i] != nil && !received[i][k]
		if needed != wantNeeded {
			t.Fatalf("Received(%+v) needed %v, want %v", b, needed, wantNeeded)
		}
		if !needed {
			if complete {
				t.Fatalf("Received(%+v): complete but not needed", b)
			}
			return
		}
		received[i][k] = true
		if want := !slices.Contains(received[i], false); complete != want {
			t.Fatalf("Received(%+v) complete %v, want %v", b, complete, want)
		}
		// The engine cancels the block's other requests without telling
		// the picker.
		for _, q := range peers {
			q.drop(b)
		}
	}
	finish := func(i int, ok bool) {
		received[i] = nil
		if ok {
			p.Verified(i)
			verified[i] = true
		} else {
			p.Failed(i)
		}
	}
	check := func() {
		t.Helper()
		checkState(t, p)
		if p.Missing() != missing() {
			t.Fatalf("Missing() = %d, model %d", p.Missing(), missing())
		}
		for i := range n {
			if p.Availability(i) != avail[i]+seeds {
				t.Fatalf("Availability(%d) = %d, want %d", i, p.Availability(i), avail[i]+seeds)
			}
			if p.Active(i) != (received[i] != nil) || p.Have(i) != verified[i] || p.Wanted(i) != wanted[i] {
				t.Fatalf("piece %d: Active %v Have %v Wanted %v; model %v %v %v", i, p.Active(i), p.Have(i), p.Wanted(i), received[i] != nil, verified[i], wanted[i])
			}
			pc := p.active[i]
			if pc == nil {
				continue
			}
			for k := range received[i] {
				b := p.block(i, k)
				if pc.received[k] != received[i][k] || p.Outstanding(b) == received[i][k] {
					t.Fatalf("block %+v: received %v Outstanding %v; model received %v", b, pc.received[k], p.Outstanding(b), received[i][k])
				}
				if received[i][k] {
					continue
				}
				reqs := 0
				for _, q := range peers {
					if q.reqs[b] {
						reqs++
					}
				}
				if int(pc.requested[k]) != reqs {
					t.Fatalf("block %+v: requested %d, outstanding to %d peers", b, pc.requested[k], reqs)
				}
			}
		}
	}

	for range 300 + rng.IntN(300) {
		switch op := rng.IntN(100); {
		case op < 35:
			pick(peers[rng.IntN(len(peers))], rng.IntN(10))
		case op < 60:
			s := peers[rng.IntN(len(peers))]
			if len(s.order) > 0 {
				receive(s, s.order[rng.IntN(len(s.order))])
			}
		case op < 65: // a block not requested, or requested long ago
			i := rng.IntN(n)
			receive(peers[0], p.block(i, rng.IntN(p.NumBlocks(i))))
		case op < 75:
			s := peers[rng.IntN(len(peers))]
			if len(s.order) > 0 {
				b := s.order[rng.IntN(len(s.order))]
				s.drop(b)
				p.Cancelled(b)
			}
		case op < 87:
			for i := range n {
				if received[i] != nil && !slices.Contains(received[i], false) {
					finish(i, rng.IntN(4) != 0)
					break
				}
			}
		case op < 90:
			if len(peers) > 1 {
				leave(1 + rng.IntN(len(peers)-1))
			}
		case op < 93:
			if s := peers[rng.IntN(len(peers))]; rng.IntN(2) == 0 && s.has != nil {
				if i := rng.IntN(n); !s.has[i] { // a have message
					s.has[i] = true
					p.PeerHas(i)
					avail[i]++
				}
			} else {
				join(rng.IntN(4) == 0)
			}
		case op < 96:
			i := rng.IntN(n)
			wanted[i] = !wanted[i]
			p.Want(i, wanted[i])
		case op < 98:
			if i := rng.IntN(n); verified[i] {
				verified[i] = false
				p.Unverified(i)
			}
		default:
			p.SetStrategy(Strategy(rng.IntN(2)))
		}
		check()
	}

	// Drain: everything wanted arrives, as long as peers are asked.
	steps := 0
	for p.Missing() > 0 {
		if steps++; steps > 10*n+100 {
			t.Fatalf("%d pieces missing after %d rounds", p.Missing(), steps)
		}
		for _, s := range peers {
			pick(s, 1+rng.IntN(8))
		}
		for _, s := range peers {
			for len(s.order) > 0 {
				receive(s, s.order[0])
			}
		}
		for i := range n {
			if received[i] != nil && !slices.Contains(received[i], false) {
				finish(i, true)
			}
		}
		check()
	}
	for i := range n {
		if wanted[i] && !p.Have(i) {
			t.Fatalf("piece %d wanted, not had, with nothing missing", i)
		}
	}
}
