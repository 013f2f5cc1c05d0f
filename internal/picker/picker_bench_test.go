package picker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/aiotorrent/aiotorrent/internal/bitfield"
)

// benchPeer is a Peer as the engine keeps one: a bitfield and the list of
// outstanding requests.
type benchPeer struct {
	has  *bitfield.Bitfield
	reqs []Block
}

func (b *benchPeer) Has(i int) bool         { return b.has.Has(i) }
func (b *benchPeer) Requested(x Block) bool { return slices.Contains(b.reqs, x) }

// swarm returns a Picker of n pieces of blocks blocks each, wanting every
// piece, and peers with every piece at probability frac, counted with
// PeerHas as the engine does for a bitfield.
func swarm(rng *rand.Rand, n, blocks, peers int, frac float64) (*Picker, []*benchPeer) {
	pieceLen := int64(blocks * BlockSize)
	p := newPicker(n, pieceLen, int64(n)*pieceLen)
	ps := make([]*benchPeer, peers)
	for k := range ps {
		ps[k] = &benchPeer{has: bitfield.New(n)}
		for i := range n {
			if frac >= 1 || rng.Float64() < frac {
				ps[k].has.Set(i)
				p.PeerHas(i)
			}
		}
	}
	return p, ps
}

// deliver receives every block of bs and verifies the pieces they
// complete.
func deliver(p *Picker, bs []Block) {
	for _, b := range bs {
		if _, complete := p.Received(b); complete {
			p.Verified(b.Piece)
		}
	}
}

// BenchmarkPickRarest measures one Pick of 64 blocks (16 pieces of 4
// blocks) by rarest-first among 20 000 pieces, for one of 50 peers that
// each have half the pieces, followed by the arrival of those blocks and
// the verification of their pieces. The swarm is set up again, off the
// clock, before the download nears its end.
func BenchmarkPickRarest(b *testing.B) {
	const n, blocks, peers, max = 20000, 4, 50, 64
	rng := rand.New(rand.NewPCG(1, 2))
	p, ps := swarm(rng, n, blocks, peers, 0.5)
	dst := make([]Block, 0, max)
	// Warm up: the first Pick sorts, the free lists fill.
	for k := range 2 * peers {
		dst = p.Pick(ps[k%peers], max, dst[:0])
		deliver(p, dst)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for k := 0; b.Loop(); k++ {
		if p.Missing() < n/4 {
			b.StopTimer()
			p, ps = swarm(rng, n, blocks, peers, 0.5)
			b.StartTimer()
		}
		dst = p.Pick(ps[k%peers], max, dst[:0])
		if len(dst) != max {
			b.Fatalf("Pick returned %d blocks, want %d", len(dst), max)
		}
		deliver(p, dst)
	}
}

// BenchmarkPickAfterHave measures a Pick of 64 blocks that follows a have
// message (PeerHas), as happens when the swarm's peers finish pieces.
func BenchmarkPickAfterHave(b *testing.B) {
	const n, blocks, peers, max = 20000, 4, 50, 64
	rng := rand.New(rand.NewPCG(3, 4))
	p, ps := swarm(rng, n, blocks, peers, 0.5)
	dst := make([]Block, 0, max)
	for k := range 2 * peers {
		p.PeerHas(k)
		dst = p.Pick(ps[k%peers], max, dst[:0])
		deliver(p, dst)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for k := 0; b.Loop(); k++ {
		if p.Missing() < n/4 {
			b.StopTimer()
			p, ps = swarm(rng, n, blocks, peers, 0.5)
			b.StartTimer()
		}
		peer := ps[k%peers]
		if i := rng.IntN(n); peer.has.Set(i) {
			p.PeerHas(i)
		}
		dst = p.Pick(peer, max, dst[:0])
		deliver(p, dst)
	}
}

// BenchmarkDownload simulates a whole download of n pieces of 4 blocks
// from 4 seeds, each asked for up to 64 blocks in turn, until nothing is
// missing: the picking cost per piece should not grow with n.
func BenchmarkDownload(b *testing.B) {
	for _, s := range []Strategy{RarestFirst, Sequential} {
		for _, n := range []int{5000, 20000} {
			b.Run(fmt.Sprintf("%v/pieces=%d", strategyName(s), n), func(b *testing.B) {
				const blocks, peers, max = 4, 4, 64
				rng := rand.New(rand.NewPCG(5, 6))
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					p, ps := swarm(rng, n, blocks, peers, 1)
					p.SetStrategy(s)
					b.StartTimer()
					picks := 0
					for p.Missing() > 0 {
						for _, peer := range ps {
							peer.reqs = p.Pick(peer, max, peer.reqs[:0])
							picks++
						}
						for _, peer := range ps {
							for _, x := range peer.reqs {
								if _, complete := p.Received(x); complete {
									p.Verified(x.Piece)
								}
							}
						}
						if picks > 4*n*blocks {
							b.Fatalf("%d pieces missing after %d picks", p.Missing(), picks)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/piece")
			})
		}
	}
}

func strategyName(s Strategy) string {
	if s == Sequential {
		return "sequential"
	}
	return "rarest"
}
