package aiotorrent

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/aiotorrent/aiotorrent/dht"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
)

// The DHT with a real, independent node: libtorrent's, bootstrapped to a
// few of our standalone nodes on 127.0.0.1 (dhtNetwork), with no tracker
// anywhere. Each side announces into that DHT and the other side finds it.

// waitDHTPeer looks hash up through the nodes until want is among the
// peers found.
func waitDHTPeer(t *testing.T, ctx context.Context, nodes []string, hash [20]byte, want netip.AddrPort) {
	t.Helper()
	probe, err := dht.NewServer(dht.Config{Addr: "127.0.0.1:0", Bootstrap: nodes, RateLimit: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	for {
		peers, _ := probe.GetPeers(ctx, hash)
		if slices.Contains(peers, want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%v was not announced on the DHT (last lookup: %v)", want, peers)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestInteropDHTMagnetFromLibtorrent: a libtorrent seeder announces itself
// on the DHT; our leecher, given a magnet link with only the info hash,
// finds it there, fetches the metadata from it and downloads.
func TestInteropDHTMagnetFromLibtorrent(t *testing.T) {
	swarmtest.RequireLibtorrent(t)
	nodes := dhtNetwork(t, 5)
	mi, src := makeTorrent(t, "dhtlt", 64<<10, testFile{"a.bin", 3 << 20}, testFile{"b.txt", 5000})
	path := swarmtest.WriteTorrent(t, mi)
	seeder := swarmtest.LibtorrentWith(t, path, src, swarmtest.LTOptions{Seed: true, DHTBootstrap: nodes[0]})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	start := time.Now()
	waitDHTPeer(t, ctx, nodes, mi.InfoHash, seeder.Addr())
	t.Logf("libtorrent announced itself %v after it started seeding", time.Since(start))

	leecher := dhtClient(t, "", nodes[3])
	tor, err := leecher.Open(ctx, "magnet:?xt=urn:btih:"+mi.InfoHash.String())
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := tor.WaitMetadata(ctx); err != nil {
		t.Fatalf("metadata through the DHT: %v\nlibtorrent:\n%s", err, seeder.Logs())
	}
	t.Logf("metadata %v after Open", time.Since(start))
	dir := t.TempDir()
	if err := tor.DownloadAll(ctx, WithDir(dir)); err != nil {
		t.Fatalf("download: %v", err)
	}
	t.Logf("complete %v after Open", time.Since(start))
	sameTree(t, mi, dir, src)
}

// TestInteropDHTLibtorrentFindsOurSeeder: our seeder announces itself on
// the DHT; a libtorrent leecher of the torrent (which names no tracker)
// finds it there and completes. It also learns our node, from our PORT
// message or our queries.
func TestInteropDHTLibtorrentFindsOurSeeder(t *testing.T) {
	swarmtest.RequireLibtorrent(t)
	nodes := dhtNetwork(t, 5)
	mi, src := makeTorrent(t, "dhtours", 64<<10, testFile{"a.bin", 3 << 20})
	path := swarmtest.WriteTorrent(t, mi)
	seeder := dhtClient(t, "", nodes[0])
	ts, _ := seeder.Add(mi)
	if err := ts.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	waitDHTPeer(t, ctx, nodes, mi.InfoHash, clientAddr(seeder))

	dir := t.TempDir()
	start := time.Now()
	l := swarmtest.LibtorrentWith(t, path, dir, swarmtest.LTOptions{DHTBootstrap: nodes[2]})
	if err := l.WaitComplete(ctx); err != nil {
		t.Fatalf("libtorrent did not complete from our seeder found on the DHT: %v\n%s", err, l.Logs())
	}
	t.Logf("libtorrent complete %v after it started", time.Since(start))
	for _, f := range []string{"a.bin"} {
		want, _ := os.ReadFile(src + "/dhtours/" + f)
		got, err := os.ReadFile(dir + "/dhtours/" + f)
		if err != nil || string(got) != string(want) {
			t.Fatalf("libtorrent's %s differs (%v)", f, err)
		}
	}
	p, ok := l.Status().Peer(clientAddr(seeder))
	if ok && !slices.Contains(p.Source, "dht") {
		t.Errorf("libtorrent heard of our seeder from %v, want the DHT", p.Source)
	}
}
