package aiotorrent

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// TestPEXFindsSeeder: a leecher told only of another leecher learns the
// seeder from it over ut_pex (BEP 11), connects to it and completes; for a
// private torrent (BEP 27) no peers are exchanged.
func TestPEXFindsSeeder(t *testing.T) {
	for _, private := range []bool{false, true} {
		name := "public"
		if private {
			name = "private"
		}
		t.Run(name, func(t *testing.T) {
			mi, src := makeTorrent(t, "pex", 16<<10, testFile{"a", 1 << 20})
			if private {
				mi = privateCopy(t, mi)
			}
			seeder := startSeeder(t, mi, src)
			// b knows the seeder and downloads slowly from it, so that it
			// is still connected to it when l comes.
			b := seedClient(t, Config{DownloadLimit: 64 << 10})
			tb, _ := b.Add(mi)
			tb.AddPeers(clientAddr(seeder))
			if err := tb.Start(WithDir(t.TempDir())); err != nil {
				t.Fatal(err)
			}
			// l is told only of b, which gets at most 64 KiB/s: the 1 MiB
			// in under 10 s is only there for it from the seeder, which
			// it can only hear of from b.
			l := seedClient(t, Config{})
			tl, _ := l.Add(mi)
			tl.AddPeers(clientAddr(b))
			wait := 10 * time.Second
			if private {
				wait = pexFirst + 3*time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			defer cancel()
			err := tl.DownloadAll(ctx, WithDir(t.TempDir()))
			if private {
				if err == nil {
					t.Fatal("the private torrent completed: its peers were exchanged")
				}
				for _, p := range tl.Stats().PeerList {
					if p.Addr == clientAddr(seeder) {
						t.Fatal("connected to the seeder of a private torrent, told of it by a peer")
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("download told of b alone: %v (the seeder was not learnt from b)", err)
			}
		})
	}
}

// privateCopy returns mi with the private flag set (a new info hash).
func privateCopy(t *testing.T, mi *metainfo.MetaInfo) *metainfo.MetaInfo {
	t.Helper()
	info := bytes.Replace(mi.InfoBytes, []byte("12:piece lengthi"), []byte("7:privatei1e12:piece lengthi"), 1)
	data, err := (&metainfo.MetaInfo{InfoBytes: info}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := metainfo.Parse(data)
	if err != nil || !p.Info.Private {
		t.Fatalf("private copy: %v", err)
	}
	return p
}

// TestKeepNewDuplicate: of two connections between the same two peers,
// one each way, both sides keep the same one: the one the lower id opened.
func TestKeepNewDuplicate(t *testing.T) {
	lo, hi := [20]byte{1}, [20]byte{2}
	for _, tc := range []struct {
		ours, theirs [20]byte
		newOutgoing  bool
		want         bool
	}{
		{lo, hi, true, true},   // we are lower and opened the new one
		{lo, hi, false, false}, // we are lower; they opened the new one
		{hi, lo, true, false},
		{hi, lo, false, true},
	} {
		if got := keepNewDuplicate(tc.ours, tc.theirs, tc.newOutgoing); got != tc.want {
			t.Errorf("ours %x theirs %x new outgoing %v: keep new %v, want %v", tc.ours[0], tc.theirs[0], tc.newOutgoing, got, tc.want)
		}
		// The other side sees the same connection from the other end.
		if keepNewDuplicate(tc.theirs, tc.ours, !tc.newOutgoing) != tc.want {
			t.Errorf("the two sides disagree for ours %x theirs %x", tc.ours[0], tc.theirs[0])
		}
	}
}
