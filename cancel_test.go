package aiotorrent_test

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/peer"
)

// TestSeederAnswersEveryRequestOnce: under the Fast extension our seeder
// answers every request exactly once, with the block or a reject, also
// when the request is cancelled (BEP 6); a leecher waiting for its
// cancels to be answered must not wait forever.
func TestSeederAnswersEveryRequestOnce(t *testing.T) {
	d := makeInteropData(t, []interopFile{{"a.bin", 4 << 20}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := ownSeeder(t, ctx, d, d.mi)
	conn, err := net.Dial("tcp", s.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	w := newWirePeer(t, ctx, conn, d.mi)
	w.handshake()
	w.send(peer.AppendMessage(nil, &peer.Message{Type: peer.Interested}))
	w.waitFor("unchoke", func(m *peer.Message) bool { return m.Type == peer.Unchoke })

	type blk struct{ index, begin uint32 }
	var reqs, cancels []byte
	var asked []blk
	for i := range uint32(8) {
		for b := uint32(0); b < uint32(interopPieceLength); b += peer.BlockSize {
			asked = append(asked, blk{i, b})
			reqs = peer.AppendRequest(reqs, peer.Request, i, b, peer.BlockSize)
			if i >= 4 { // the later half is cancelled at once, mostly still queued
				cancels = peer.AppendRequest(cancels, peer.Cancel, i, b, peer.BlockSize)
			}
		}
	}
	w.send(reqs, cancels)
	answers := map[blk]int{}
	var pieces, rejects int
	var m peer.Message
	for len(answers) < len(asked) {
		if err := w.r.ReadMessage(&m); err != nil {
			t.Fatalf("after %d answers (%d blocks, %d rejects): %v", len(answers), pieces, rejects, err)
		}
		switch m.Type {
		case peer.Piece:
			pieces++
		case peer.Reject:
			rejects++
		default:
			continue
		}
		answers[blk{m.Index, m.Begin}]++
	}
	// Nothing more comes for them.
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		if err := w.r.ReadMessage(&m); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
		if m.Type == peer.Piece || m.Type == peer.Reject {
			answers[blk{m.Index, m.Begin}]++
		}
	}
	for _, b := range asked {
		if answers[b] != 1 {
			t.Errorf("block %d/%d answered %d times", b.index, b.begin, answers[b])
		}
	}
	t.Logf("%d requests, half cancelled: %d blocks and %d rejects", len(asked), pieces, rejects)
}
