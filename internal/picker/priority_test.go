package picker

import (
	"slices"
	"testing"
)

func TestPriority(t *testing.T) {
	const pl = 4 * BlockSize // 4 blocks a piece
	tests := []struct {
		name     string
		strategy Strategy
		prio     []int
		urgent   int
		has      []int // nil: every piece
		started  bool  // PickStarted instead of Pick
		max      int
		unwant   []int
		want     []int // pieces of the picked blocks, in order
	}{
		{name: "priority before rarest", prio: []int{7, 3}, max: 8, want: []int{7, 3}},
		{name: "priority before sequential", strategy: Sequential, prio: []int{9, 5}, max: 12, want: []int{9, 5, 0}},
		{name: "skips pieces the peer lacks", prio: []int{7, 3, 4}, has: []int{3, 4, 5}, max: 8, want: []int{3, 4}},
		{name: "urgent start without new pieces", prio: []int{6, 2}, urgent: 1, started: true, max: 8, want: []int{6}},
		{name: "no urgent, nothing new", prio: []int{6, 2}, started: true, max: 8, want: nil},
		{name: "unwanted priority skipped", strategy: Sequential, prio: []int{3}, unwant: []int{3}, max: 4, want: []int{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New(10, pl, 10*pl)
			for i := range 10 {
				p.Want(i, true)
			}
			p.SetStrategy(tc.strategy)
			for _, i := range tc.unwant {
				p.Want(i, false)
			}
			p.SetPriority(tc.prio, tc.urgent)
			f := seed()
			if tc.has != nil {
				f = peerWith(tc.has...)
			}
			var got []Block
			if tc.started {
				got = p.PickStarted(f, tc.max, nil)
			} else {
				got = p.Pick(f, tc.max, nil)
			}
			if ps := pieces(got); !slices.Equal(ps, tc.want) {
				t.Errorf("picked pieces %v, want %v", ps, tc.want)
			}
			checkState(t, p)
		})
	}
}

// TestPriorityFinishesStartedFirst checks that a priority piece already
// being fetched gets its remaining blocks before the next priority piece
// starts, and that a piece leaving the list keeps its requested blocks
// until abandoned.
func TestPriorityFinishesStartedFirst(t *testing.T) {
	const pl = 4 * BlockSize
	p := New(8, pl, 8*pl)
	for i := range 8 {
		p.Want(i, true)
	}
	p.SetPriority([]int{5, 6}, 1)
	a := seed()
	if got := pieces(a.pick(t, p, 2)); !slices.Equal(got, []int{5}) {
		t.Fatalf("first pick %v, want [5]", got)
	}
	b := seed()
	if got := b.pick(t, p, 4); !slices.Equal(pieces(got), []int{5, 6}) || got[0].Begin != 2*BlockSize {
		t.Fatalf("second pick %+v, want the rest of 5 then 6", got)
	}
	// Seek: 5 and 6 no longer matter.
	p.Want(5, false)
	p.Want(6, false)
	p.Abandon(5)
	p.Abandon(6)
	p.SetPriority([]int{1}, 1)
	if p.Active(5) || p.Active(6) {
		t.Fatal("abandoned pieces still active")
	}
	if needed, _ := p.Received(Block{Piece: 5, Begin: 0, Length: BlockSize}); needed {
		t.Error("a block of an abandoned piece was needed")
	}
	if got := pieces(a.pick(t, p, 4)); !slices.Equal(got, []int{1}) {
		t.Fatalf("after the seek %v, want [1]", got)
	}
	checkState(t, p)
}

func TestPickUrgent(t *testing.T) {
	const pl = 4 * BlockSize
	p := New(8, pl, 8*pl)
	for i := range 8 {
		p.Want(i, true)
	}
	p.SetPriority([]int{3, 4}, 1)
	slow, fast := seed(), seed()
	if got := pieces(slow.pick(t, p, 5)); !slices.Equal(got, []int{3, 4}) {
		t.Fatalf("slow peer picked %v", got)
	}
	// Piece 3 is all requested from the slow peer: the fast one gets its
	// blocks again, once, and nothing of piece 4.
	dup := p.PickUrgent(fast, 10, nil)
	if len(dup) != 4 || !slices.Equal(pieces(dup), []int{3}) {
		t.Fatalf("PickUrgent gave %+v, want the 4 blocks of piece 3", dup)
	}
	for _, b := range dup {
		fast.reqs[b] = true
	}
	if again := p.PickUrgent(seed(), 10, nil); len(again) != 0 {
		t.Fatalf("a third peer got %+v: blocks are asked twice at most", again)
	}
	// The first answer completes the block; the duplicate is not needed.
	if needed, _ := p.Received(dup[0]); !needed {
		t.Fatal("first copy not needed")
	}
	if needed, _ := p.Received(dup[0]); needed {
		t.Fatal("second copy needed")
	}
	checkState(t, p)
}

func TestNoEndgame(t *testing.T) {
	const pl = 2 * BlockSize
	p := New(4, pl, 4*pl)
	p.Want(1, true)
	p.SetEndgame(false)
	a, b := seed(), seed()
	if got := a.pick(t, p, 10); len(got) != 2 {
		t.Fatalf("first peer got %d blocks, want the 2 of piece 1", len(got))
	}
	if p.Endgame() {
		t.Fatal("Endgame with endgame off")
	}
	if got := b.pick(t, p, 10); len(got) != 0 {
		t.Fatalf("second peer got %+v with endgame off", got)
	}
	p.SetEndgame(true)
	if got := b.pick(t, p, 10); len(got) != 2 || !p.Endgame() {
		t.Fatalf("second peer got %d blocks with endgame on, want 2", len(got))
	}
}
