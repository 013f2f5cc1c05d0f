package picker

import (
	"slices"
	"testing"
)

// TestLevels: pieces at a higher level start before the others, under
// either strategy, rarest first or in index order within a level; levels
// leave active pieces and SetPriority's pieces ahead of them.
func TestLevels(t *testing.T) {
	const pl = 4 * BlockSize // 4 blocks a piece
	tests := []struct {
		name     string
		strategy Strategy
		levels   map[int]int8
		avail    map[int]int // extra peers having the piece (rarity)
		prio     []int
		has      []int // nil: every piece
		max      int
		want     []int // pieces of the picked blocks, in order
	}{
		{name: "sequential, high first", strategy: Sequential, levels: map[int]int8{7: 1, 8: 1}, max: 12, want: []int{7, 8, 0}},
		{name: "sequential, low last", strategy: Sequential, levels: map[int]int8{0: -1, 1: -1}, max: 12, want: []int{2, 3, 4}},
		{name: "sequential, all three", strategy: Sequential, levels: map[int]int8{0: -1, 9: 1}, max: 8, want: []int{9, 1}},
		{name: "sequential, high the peer lacks", strategy: Sequential, levels: map[int]int8{5: 1}, has: []int{1, 2, 3}, max: 8, want: []int{1, 2}},
		{name: "rarest, high before rarer", levels: map[int]int8{4: 1}, avail: map[int]int{4: 5, 6: 0}, max: 4, want: []int{4}},
		{name: "rarest within the high level", levels: map[int]int8{4: 1, 5: 1}, avail: map[int]int{4: 5, 5: 1}, max: 8, want: []int{5, 4}},
		{name: "rarest, low after common", levels: map[int]int8{2: -1}, avail: map[int]int{2: 0, 0: 1, 1: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9}, max: 40, want: []int{0, 1, 3, 4, 5, 6, 7, 8, 9, 2}},
		{name: "priority pieces before levels", strategy: Sequential, levels: map[int]int8{7: 1}, prio: []int{3}, max: 8, want: []int{3, 7}},
		{name: "levels out of range are clamped", strategy: Sequential, levels: map[int]int8{6: 100, 7: -100}, max: 8, want: []int{6, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New(10, pl, 10*pl)
			for i := range 10 {
				p.Want(i, true)
			}
			p.SetStrategy(tc.strategy)
			for i, l := range tc.levels {
				p.SetLevel(i, l)
			}
			for i, n := range tc.avail {
				for range n {
					p.PeerHas(i)
				}
			}
			p.SetPriority(tc.prio, 0)
			f := seed()
			if tc.has != nil {
				f = peerWith(tc.has...)
			}
			got := p.Pick(f, tc.max, nil)
			ps := pieces(got)
			if tc.strategy == RarestFirst && len(tc.avail) == 0 {
				t.Fatal("rarest-first cases need availabilities to be deterministic")
			}
			if !slices.Equal(ps, tc.want) {
				t.Errorf("picked pieces %v, want %v", ps, tc.want)
			}
			checkState(t, p)
		})
	}
}

// TestLevelsStartedFirst: a piece already being fetched is finished before
// a higher-level piece starts.
func TestLevelsStartedFirst(t *testing.T) {
	const pl = 4 * BlockSize
	p := New(10, pl, 10*pl)
	for i := range 10 {
		p.Want(i, true)
	}
	p.SetStrategy(Sequential)
	got := p.Pick(seed(), 2, nil) // half of piece 0
	p.SetLevel(9, 1)
	got = p.Pick(seed(), 6, got)
	if ps := pieces(got); !slices.Equal(ps, []int{0, 9}) {
		t.Errorf("picked pieces %v, want 0 finished, then 9", ps)
	}
	if p.Level(9) != 1 || p.Level(0) != 0 {
		t.Errorf("levels %d and %d, want 1 and 0", p.Level(9), p.Level(0))
	}
}
