package tracker_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// Our clients against real, independent trackers on loopback: a peer that
// another client registered is returned to us, over HTTP and over UDP, and
// scrape counts it.
func TestInteropRealTrackers(t *testing.T) {
	hash := metainfo.Hash{0xaa, 0x00, 0xff, 0x20, 0x25, 0x80, 0x7f, 0x01}
	trackers := []struct {
		name  string
		start func(t *testing.T) (string, string)
	}{
		// Both return the asking peer itself; filtering it out is the
		// announcer's job (internal/announcer).
		{"bittorrent-tracker", func(t *testing.T) (string, string) { return swarmtest.BittorrentTracker(t, 10*time.Second) }},
		{"opentracker", func(t *testing.T) (string, string) { return swarmtest.Opentracker(t, hash) }},
	}
	for _, tr := range trackers {
		t.Run(tr.name, func(t *testing.T) {
			httpURL, udpURL := tr.start(t)
			for _, proto := range []struct{ name, url string }{{"http", httpURL}, {"udp", udpURL}} {
				t.Run(proto.name, func(t *testing.T) {
					testAgainst(t, proto.url, hash)
				})
			}
		})
	}
}

func testAgainst(t *testing.T, url string, hash metainfo.Hash) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := tracker.New(url, tracker.Options{UDPBase: time.Second, UDPRetries: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Ports differ per protocol: the real trackers key peers by address and port.
	base := uint16(20000)
	if url[0] == 'u' {
		base = 21000
	}
	seeder := tracker.AnnounceRequest{InfoHash: hash, Port: base + 1, Left: 0, Event: tracker.Started, NumWant: 50}
	copy(seeder.PeerID[:], "-XX0001-seeder......")
	leecher := tracker.AnnounceRequest{InfoHash: hash, Port: base + 2, Left: 1000, Event: tracker.Started, NumWant: 50}
	copy(leecher.PeerID[:], "-XX0001-leecher.....")

	if _, err := c.Announce(ctx, &seeder); err != nil {
		t.Fatalf("seeder announce: %v", err)
	}
	resp, err := c.Announce(ctx, &leecher)
	if err != nil {
		t.Fatalf("leecher announce: %v", err)
	}
	want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), seeder.Port)
	if !slices.Contains(resp.Peers, want) {
		t.Errorf("leecher got peers %v, want the seeder %v among them", resp.Peers, want)
	}
	if resp.Interval <= 0 {
		t.Errorf("interval %v", resp.Interval)
	}
	if resp.Seeders < 1 || resp.Leechers < 1 {
		t.Errorf("announce counts: %d seeders, %d leechers; want at least one of each", resp.Seeders, resp.Leechers)
	}

	res, err := c.Scrape(ctx, []metainfo.Hash{hash})
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	if r, ok := res[hash]; !ok || r.Seeders < 1 || r.Leechers < 1 {
		t.Errorf("scrape: %+v (found %v), want the seeder and the leecher counted", r, ok)
	}

	// Stopped removes the leecher: the seeder's next announce no longer
	// gets it.
	leecher.Event = tracker.Stopped
	if _, err := c.Announce(ctx, &leecher); err != nil {
		t.Fatalf("stopped: %v", err)
	}
	seeder.Event = tracker.None
	resp, err = c.Announce(ctx, &seeder)
	if err != nil {
		t.Fatalf("re-announce: %v", err)
	}
	gone := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), leecher.Port)
	if slices.Contains(resp.Peers, gone) {
		t.Errorf("stopped leecher still listed: %v", resp.Peers)
	}
	seeder.Event = tracker.Stopped
	c.Announce(ctx, &seeder)
}

// A tracker that never answers: the announce gives up when its context
// says so, with a clear error.
func TestInteropSilentTracker(t *testing.T) {
	for _, url := range []string{"udp://127.0.0.1:9", "http://127.0.0.1:9/announce"} {
		c, err := tracker.New(url, tracker.Options{UDPBase: 50 * time.Millisecond, UDPRetries: 2})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.Announce(ctx, &tracker.AnnounceRequest{Port: 1})
		cancel()
		if err == nil {
			t.Errorf("%s: announce to nothing succeeded", url)
		}
	}
}
