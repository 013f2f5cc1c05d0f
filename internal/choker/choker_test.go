package choker

import (
	"math/rand/v2"
	"testing"
)

func TestRound(t *testing.T) {
	in := func(down, up float64) Peer { return Peer{Interested: true, DownRate: down, UpRate: up} }
	cases := []struct {
		name    string
		peers   []Peer
		slots   int
		seeding bool
		rotate  bool
		regular []int // peers with a regular slot
		optFrom []int // the optimistic slot goes to one of these (nil: to none)
	}{
		{
			name:    "leeching ranks by download rate",
			peers:   []Peer{in(1, 60), in(5, 10), in(3, 50), in(6, 0), in(2, 40), in(4, 30)},
			slots:   4,
			regular: []int{1, 2, 3, 5},
			optFrom: []int{0, 4},
		},
		{
			name:    "seeding ranks by upload rate",
			peers:   []Peer{in(1, 60), in(5, 10), in(3, 50), in(6, 0), in(2, 40), in(4, 30)},
			slots:   4,
			seeding: true,
			regular: []int{0, 2, 4, 5},
			optFrom: []int{1, 3},
		},
		{
			name:    "uninterested peers stay choked",
			peers:   []Peer{{DownRate: 100}, in(1, 0), {UpRate: 100}, in(2, 0)},
			slots:   1,
			regular: []int{3},
			optFrom: []int{1},
		},
		{
			name:    "a snubbing peer gets no regular slot",
			peers:   []Peer{{Interested: true, Snubbed: true, DownRate: 100}, in(1, 0), in(2, 0), in(3, 0)},
			slots:   2,
			regular: []int{2, 3},
			optFrom: []int{0, 1},
		},
		{
			name:    "fewer interested peers than slots",
			peers:   []Peer{in(1, 0), {}, in(0, 0)},
			slots:   4,
			regular: []int{0, 2},
		},
		{
			name:    "ties keep the peers already unchoked",
			peers:   []Peer{in(0, 0), {Interested: true, Unchoked: true}, in(0, 0), {Interested: true, Unchoked: true}, in(0, 0)},
			slots:   2,
			regular: []int{1, 3},
			optFrom: []int{0, 2, 4},
		},
		{
			name:    "the optimistic holder keeps it between rotations",
			peers:   []Peer{in(9, 0), in(8, 0), in(0, 0), {Interested: true, Optimistic: true, Unchoked: true}, in(0, 0)},
			slots:   2,
			regular: []int{0, 1},
			optFrom: []int{3},
		},
		{
			name:    "the optimistic slot moves on rotation",
			peers:   []Peer{in(9, 0), in(8, 0), in(0, 0), {Interested: true, Optimistic: true, Unchoked: true}, in(0, 0)},
			slots:   2,
			rotate:  true,
			regular: []int{0, 1},
			optFrom: []int{2, 4},
		},
		{
			name:    "an optimistic holder alone keeps it on rotation",
			peers:   []Peer{in(9, 0), {Interested: true, Optimistic: true, Unchoked: true}},
			slots:   1,
			rotate:  true,
			regular: []int{0},
			optFrom: []int{1},
		},
		{
			name:    "an optimistic holder that lost interest loses it",
			peers:   []Peer{in(9, 0), {Optimistic: true, Unchoked: true}, in(0, 0)},
			slots:   1,
			regular: []int{0},
			optFrom: []int{2},
		},
		{
			name:    "a fast optimistic peer wins a regular slot",
			peers:   []Peer{in(1, 0), {Interested: true, Optimistic: true, Unchoked: true, DownRate: 50}, in(0, 0)},
			slots:   1,
			regular: []int{1},
			optFrom: []int{0, 2},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(20) {
				rnd := rand.New(rand.NewPCG(seed, 1))
				out, _ := Round(tc.peers, tc.slots, tc.seeding, tc.rotate, rnd, nil, nil)
				if len(out) != len(tc.peers) {
					t.Fatalf("%d decisions for %d peers", len(out), len(tc.peers))
				}
				opt := -1
				for i, d := range out {
					regular := d.Unchoke && !d.Optimistic
					if want := contains(tc.regular, i); regular != want {
						t.Fatalf("seed %d: peer %d regular slot %v, want %v (%+v)", seed, i, regular, want, out)
					}
					if d.Optimistic {
						if opt >= 0 {
							t.Fatalf("seed %d: two optimistic unchokes: %+v", seed, out)
						}
						opt = i
					}
				}
				switch {
				case tc.optFrom == nil && opt >= 0:
					t.Fatalf("seed %d: optimistic unchoke of peer %d, want none", seed, opt)
				case tc.optFrom != nil && !contains(tc.optFrom, opt):
					t.Fatalf("seed %d: optimistic unchoke of peer %d, want one of %v", seed, opt, tc.optFrom)
				}
			}
		})
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestNewPeersFavoured checks the odds of the optimistic slot: a new peer
// has three times the chance of an old one.
func TestNewPeersFavoured(t *testing.T) {
	peers := []Peer{
		{Interested: true, DownRate: 10}, // the one regular slot
		{Interested: true, New: true},
		{Interested: true},
		{Interested: true},
		{Interested: true},
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	var out []Decision
	var order []int
	won := make([]int, len(peers))
	const rounds = 30000
	for range rounds {
		out, order = Round(peers, 1, false, true, rnd, out, order)
		for i, d := range out {
			if d.Optimistic {
				won[i]++
			}
		}
	}
	// Weights 3:1:1:1: the new peer wins half the draws.
	if got := float64(won[1]) / rounds; got < 0.45 || got > 0.55 {
		t.Errorf("new peer had the optimistic slot in %.1f%% of rounds, want about 50%% (%v)", 100*got, won)
	}
	if won[0] != 0 {
		t.Errorf("the peer with the regular slot was drawn too: %v", won)
	}
}

func BenchmarkRound(b *testing.B) {
	peers := make([]Peer, 50)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range peers {
		peers[i] = Peer{Interested: i%3 != 0, DownRate: rnd.Float64() * 1e6, UpRate: rnd.Float64() * 1e6, New: i%7 == 0}
	}
	var out []Decision
	var order []int
	b.ReportAllocs()
	for b.Loop() {
		out, order = Round(peers, 4, false, true, rnd, out, order)
	}
}
