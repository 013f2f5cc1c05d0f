package aiotorrent_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// Seeding to real, independent clients on loopback: aiotorrent as the
// only seeder of a torrent that aria2c, qbittorrent-nox and libtorrent
// download, found through real trackers; a mixed swarm where the seeder's
// upload is too scarce for everyone and the leechers must trade; and the
// upload limit as a real leecher measures it.

// realLeecher is a real client downloading a torrent into dir.
type realLeecher struct {
	name string
	dir  string // the folder that will hold the torrent's file or folder
	// wait waits until it has every piece, checked, and returns an error
	// with its logs if it fails or ctx is done first.
	wait func(ctx context.Context) error
	// received and sent return the payload bytes it reports, -1 when it
	// cannot tell; nil when it has no way to say (aria2c here).
	received, sent func() int64
	// stop stops it; nil when the test's cleanup is the only way.
	stop func()
}

// startLeecher starts a real client downloading the torrent at
// torrentPath into a new folder; it returns once the client runs.
type startLeecher func(t *testing.T, torrentPath string) realLeecher

func aria2Leecher(t *testing.T, torrentPath string) realLeecher {
	dir := t.TempDir()
	a := swarmtest.Aria2Leech(t, torrentPath, dir)
	return realLeecher{name: "aria2c", dir: dir, wait: a.Wait}
}

func libtorrentLeecher(t *testing.T, torrentPath string) realLeecher {
	dir := t.TempDir()
	l := swarmtest.Libtorrent(t, torrentPath, dir, false)
	return realLeecher{
		name: "libtorrent", dir: dir, wait: l.WaitComplete,
		received: func() int64 { return l.Status().Downloaded },
		sent:     func() int64 { return l.Status().Uploaded },
		stop:     l.Stop,
	}
}

func qbitLeecher(t *testing.T, torrentPath string) realLeecher {
	dir := t.TempDir()
	q := swarmtest.Qbittorrent(t)
	h := q.AddTorrent(torrentPath, dir, false)
	report := func(f func(swarmtest.QbitTorrent) int64) func() int64 {
		return func() int64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			tor, ok, err := q.Torrent(ctx, h)
			if err != nil || !ok {
				return -1
			}
			return f(tor)
		}
	}
	return realLeecher{
		name: "qbittorrent", dir: dir,
		wait:     func(ctx context.Context) error { return q.WaitComplete(ctx, h) },
		received: report(func(tor swarmtest.QbitTorrent) int64 { return tor.Downloaded }),
		sent:     report(func(tor swarmtest.QbitTorrent) int64 { return tor.Uploaded }),
		stop:     q.Stop,
	}
}

// newSeedClient starts a Client on loopback like newInteropClient, with
// cfg's limits and slots; its debug log is shown if the test fails.
func newSeedClient(t *testing.T, name string, cfg aiotorrent.Config) *aiotorrent.Client {
	t.Helper()
	logs := &logTail{}
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.TrackerOptions = tracker.Options{UDPBase: 500 * time.Millisecond, UDPRetries: 4, Timeout: 5 * time.Second}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := aiotorrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client %s: %v", name, err)
		}
		if t.Failed() || os.Getenv("AIOTORRENT_INTEROP_LOGS") != "" {
			t.Logf("--- aiotorrent %s log:\n%s", name, logs)
		}
	})
	return c
}

// seedOwn has c seed mi from a copy of d's data with Torrent.Seed, until
// the test ends; when the test ends Seed must have returned nil. It
// returns once the seeder announced and the tracker at announce counts
// it.
func seedOwn(t *testing.T, ctx context.Context, c *aiotorrent.Client, d *interopData, mi *metainfo.MetaInfo, announce string) *aiotorrent.Torrent {
	t.Helper()
	tor, err := c.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	dir := d.copyData(t)
	seedCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tor.Seed(seedCtx, aiotorrent.WithDir(dir)) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Seed: %v", err)
		}
	})
	// Seed returning (an incomplete copy) ends the wait.
	waitCtx, waitCancel := context.WithCancel(ctx)
	defer waitCancel()
	early := make(chan error, 1)
	go func() {
		select {
		case err := <-done:
			early <- err
			done <- err // for the cleanup
			waitCancel()
		case <-waitCtx.Done():
		}
	}()
	if err := swarmtest.WaitTrackerSeeders(waitCtx, announce, mi.InfoHash, 1); err != nil {
		select {
		case err := <-early:
			t.Fatalf("Seed returned before the tracker counted it: %v", err)
		default:
		}
		t.Fatalf("%v; our seeder: %+v", err, tor.Stats())
	}
	if s := tor.Stats(); s.PiecesVerified != s.Pieces {
		t.Fatalf("own seeder has %d of %d pieces", s.PiecesVerified, s.Pieces)
	}
	return tor
}

// describePeers is a one-line summary of a peer list, for logs.
func describePeers(ps []aiotorrent.PeerStats) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%v %q pieces=%d seed=%v down=%d up=%d interested=%v unchoked=%v optimistic=%v",
			p.Addr, p.Client, p.Pieces, p.Seed, p.Downloaded, p.Uploaded, p.Interested, p.Unchoked, p.Optimistic)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

const seedMiB = 1 << 20

// TestInteropSeedToRealLeechers has aria2c, qbittorrent-nox and
// libtorrent download from aiotorrent seeding alone, found through the
// npm bittorrent-tracker and through ours, over HTTP and UDP (aria2c
// announces over HTTP only), and checks every file byte for byte and that
// all the data came from us.
func TestInteropSeedToRealLeechers(t *testing.T) {
	d := makeInteropData(t, interopFiles)
	cases := []struct {
		name    string
		tracker startTracker
		leech   startLeecher
	}{
		{"aria2c/our-tracker-http", ourTrackerHTTP, aria2Leecher},
		{"aria2c/bittorrent-tracker-http", bittorrentTrackerHTTP, aria2Leecher},
		{"libtorrent/our-tracker-http", ourTrackerHTTP, libtorrentLeecher},
		{"libtorrent/our-tracker-udp", ourTrackerUDP, libtorrentLeecher},
		{"qbittorrent/our-tracker-http", ourTrackerHTTP, qbitLeecher},
		{"qbittorrent/bittorrent-tracker-http", bittorrentTrackerHTTP, qbitLeecher},
		{"qbittorrent/bittorrent-tracker-udp", bittorrentTrackerUDP, qbitLeecher},
		{"libtorrent/bittorrent-tracker-http", bittorrentTrackerHTTP, libtorrentLeecher},
		{"libtorrent/bittorrent-tracker-udp", bittorrentTrackerUDP, libtorrentLeecher},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), interopTimeout)
			defer cancel()
			begin := time.Now()
			announce := tc.tracker(t, d.mi.InfoHash)
			mi := d.withTrackers(announce)
			c := newSeedClient(t, "seeder", aiotorrent.Config{})
			tor := seedOwn(t, ctx, c, d, mi, announce)
			ready := time.Since(begin)

			start := time.Now()
			l := tc.leech(t, swarmtest.WriteTorrent(t, mi))
			dlCtx, dlCancel := context.WithTimeout(ctx, downloadTimeout)
			defer dlCancel()
			// The peer list while the leecher downloads, for the log (a
			// fast leecher may finish between two samples).
			var during []aiotorrent.PeerStats
			watchCtx, stopWatch := context.WithCancel(dlCtx)
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				for watchCtx.Err() == nil {
					if ps := tor.Stats().PeerList; len(ps) > 0 && ps[0].Unchoked {
						during = ps
					}
					select {
					case <-watchCtx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			}()
			err := l.wait(dlCtx)
			took := time.Since(start)
			stopWatch()
			<-watched
			if err != nil {
				t.Fatalf("after %v: %v; our seeder: %+v", took.Round(time.Millisecond), err, tor.Stats())
			}
			st := tor.Stats()
			// The leecher's own count (it reports with a delay), when it
			// has one.
			received := int64(-1)
			for deadline := time.Now().Add(3 * time.Second); l.received != nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if received = l.received(); received >= mi.Info.Length {
					break
				}
			}
			t.Logf("seeder announced after %v; %s done in %v (%.1f MiB/s); we uploaded %d bytes, %s reports receiving %d",
				ready.Round(time.Millisecond), l.name, took.Round(time.Millisecond),
				float64(mi.Info.Length)/seedMiB/took.Seconds(), st.Uploaded, l.name, received)
			if l.received != nil && received < mi.Info.Length {
				t.Errorf("%s reports receiving %d bytes, less than the torrent's %d", l.name, received, mi.Info.Length)
			}
			t.Logf("our peers while it downloaded: %s", describePeers(during))
			d.checkSame(t, l.dir)
			if st.Uploaded < mi.Info.Length {
				t.Errorf("our seeder uploaded %d bytes, less than the torrent's %d: the leecher had another source?", st.Uploaded, mi.Info.Length)
			}
			// Once the leecher is a seed too, neither has anything for
			// the other: our seeder drops it (and it may connect again,
			// to be dropped again), so no seed stays in the list.
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				for _, p := range tor.Stats().PeerList {
					if p.Seed {
						t.Fatalf("our seeder keeps a connection to a seed, %s, after the download: %s", l.name, describePeers(tor.Stats().PeerList))
					}
				}
			}
			checkTrackerWorking(t, tor, announce)
		})
	}
}

// swarmFiles is the content of the mixed swarm's torrent: 24 MiB in
// pieces of 128 KiB (193 pieces), in two files, one ending inside a piece.
var swarmFiles = []interopFile{
	{"swarm.bin", 23<<20 + 12345},
	{"tail/odd.bin", 1<<20 - 12345 + 777},
}

const swarmPieceLength = 128 << 10

// TestInteropSwarmMixed runs a swarm: aiotorrent seeding with two upload
// slots and a 4 MiB/s upload limit, and five leechers arriving together,
// two of ours (separate Clients) and aria2c, libtorrent and
// qbittorrent-nox, all found through one tracker (ours, then the npm
// bittorrent-tracker, in a swarm each). The seeder alone would need 6 s
// per copy, so the leechers must trade pieces among themselves: everyone
// must end with byte-identical data, the seeder must have sent less than
// a copy per leecher, and at least one of our leechers must have served
// others.
func TestInteropSwarmMixed(t *testing.T) {
	const (
		uploadSlots = 2
		seedLimit   = 4 * seedMiB
		timeout     = 150 * time.Second // each swarm: starting, downloading, stopping
		swarmTime   = 90 * time.Second  // the downloads
	)
	// Skip at once, before generating anything, when a client is missing.
	swarmtest.Tool(t, "aria2c", "aria2")
	swarmtest.Tool(t, "qbittorrent-nox", "qbittorrent-nox")
	swarmtest.RequireLibtorrent(t)
	d := makeData(t, "swarm", swarmPieceLength, swarmFiles)
	// HTTP trackers: aria2c announces over HTTP only.
	for _, tc := range []struct {
		name    string
		tracker startTracker
	}{
		{"our-tracker-http", ourTrackerHTTP},
		{"bittorrent-tracker-http", bittorrentTrackerHTTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			runMixedSwarm(t, ctx, d, tc.tracker(t, d.mi.InfoHash), uploadSlots, seedLimit, swarmTime)
		})
	}
}

// runMixedSwarm runs the swarm of TestInteropSwarmMixed with the tracker
// at announce.
func runMixedSwarm(t *testing.T, ctx context.Context, d *interopData, announce string, uploadSlots int, seedLimit int64, swarmTime time.Duration) {
	begin := time.Now()
	length := d.mi.Info.Length
	mi := d.withTrackers(announce)
	torrentPath := swarmtest.WriteTorrent(t, mi)

	seedClient := newSeedClient(t, "seeder", aiotorrent.Config{UploadSlots: uploadSlots})
	seedClient.SetUploadLimit(seedLimit)
	seedTor := seedOwn(t, ctx, seedClient, d, mi, announce)
	t.Logf("data made and seeder announced after %v", time.Since(begin).Round(time.Millisecond))

	// The seeder's peers, sampled until the end: how many it had, and
	// how many it uploaded to at once.
	type seedWatch struct{ most, mostUnchoked int }
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan seedWatch, 1)
	go func() {
		var w seedWatch
		for watchCtx.Err() == nil {
			st := seedTor.Stats()
			w.most = max(w.most, st.Peers)
			w.mostUnchoked = max(w.mostUnchoked, st.Unchoked)
			select {
			case <-watchCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		watched <- w
	}()

	// The participants, each reporting when it is done.
	type result struct {
		name string
		took time.Duration
		err  error
	}
	type participant struct {
		name           string
		dir            string
		started        time.Time
		received, sent func() int64 // nil: it does not say
	}
	var parts []*participant
	results := make(chan result, 8)
	swarmCtx, swarmCancel := context.WithTimeout(ctx, swarmTime)
	defer swarmCancel()

	// Our leechers first (they start at once), then the real clients,
	// whose start-up takes up to a second or two each.
	var ours []*aiotorrent.Torrent
	for i := range 2 {
		name := fmt.Sprintf("aiotorrent-%d", i+1)
		c := newSeedClient(t, name, aiotorrent.Config{})
		tor, err := c.Add(mi)
		if err != nil {
			t.Fatal(err)
		}
		p := &participant{name: name, dir: t.TempDir(), started: time.Now(),
			received: func() int64 { return tor.Stats().Downloaded },
			sent:     func() int64 { return tor.Stats().Uploaded }}
		parts = append(parts, p)
		ours = append(ours, tor)
		go func() {
			err := tor.DownloadAll(swarmCtx, aiotorrent.WithDir(p.dir))
			results <- result{p.name, time.Since(p.started), err}
		}()
	}
	for _, start := range []startLeecher{aria2Leecher, libtorrentLeecher, qbitLeecher} {
		started := time.Now()
		l := start(t, torrentPath)
		p := &participant{name: l.name, dir: l.dir, started: started, received: l.received, sent: l.sent}
		parts = append(parts, p)
		go func() {
			err := l.wait(swarmCtx)
			results <- result{p.name, time.Since(p.started), err}
		}()
	}
	t.Logf("all %d leechers started after %v", len(parts), time.Since(begin).Round(time.Millisecond))

	took := map[string]time.Duration{}
	var failed []string
	for range parts {
		r := <-results
		took[r.name] = r.took
		if r.err != nil {
			failed = append(failed, r.name)
			t.Errorf("%s after %v: %v", r.name, r.took.Round(time.Millisecond), r.err)
			swarmCancel() // the others would only wait out the timeout
		}
	}
	swarmEnd := time.Now()
	stopWatch()
	w := <-watched
	seedStats := seedTor.Stats()
	t.Logf("swarm done after %v", time.Since(begin).Round(time.Millisecond))
	if len(failed) > 0 {
		t.Logf("our seeder's peers: %s", describePeers(seedStats.PeerList))
		for _, tor := range ours {
			t.Logf("our leecher: %+v", tor.Stats())
		}
		t.FailNow()
	}

	// Real clients report with a delay (libtorrent every half second,
	// qBittorrent every 100 ms).
	time.Sleep(600 * time.Millisecond)
	var received int64 // by the leechers that say
	reporting := 0
	for _, p := range parts {
		rx, tx := "?", "?"
		if p.received != nil {
			n := p.received()
			rx = fmt.Sprint(n)
			if n > 0 {
				received += n
				reporting++
			}
		}
		if p.sent != nil {
			tx = fmt.Sprint(p.sent())
		}
		// aria2c's time runs until it exits, a second or two after its
		// download ends (it has left the swarm by then).
		t.Logf("%-12s done in %6v: received %s bytes, sent %s", p.name, took[p.name].Round(time.Millisecond), rx, tx)
		d.checkSame(t, p.dir)
	}
	seedTime := swarmEnd.Sub(parts[0].started)
	t.Logf("seeder: sent %d bytes (%.2f copies) in %v, %.2f MiB/s (limit %d MiB/s); at most %d peers, %d unchoked at once; read cache %+v",
		seedStats.Uploaded, float64(seedStats.Uploaded)/float64(length), seedTime.Round(time.Millisecond),
		float64(seedStats.Uploaded)/seedMiB/seedTime.Seconds(), seedLimit/seedMiB, w.most, w.mostUnchoked, seedStats.ReadCache)
	t.Logf("the %d leechers that report received %d bytes: at least %d came from other leechers",
		reporting, received, received-seedStats.Uploaded)

	if most := int64(len(parts)) * length; seedStats.Uploaded >= most {
		t.Errorf("our seeder sent %d bytes, as much as a copy for each of the %d leechers (%d): they did not trade", seedStats.Uploaded, len(parts), most)
	}
	if seedStats.Uploaded < length {
		t.Errorf("our seeder sent %d bytes, less than one copy (%d): where did the rest come from?", seedStats.Uploaded, length)
	}
	// A little over the limit: the token bucket's burst, a tenth of a
	// second's worth.
	if limit := float64(seedLimit)*seedTime.Seconds() + float64(seedLimit)/10 + 1*seedMiB; float64(seedStats.Uploaded) > limit {
		t.Errorf("our seeder sent %d bytes in %v, over its %d MiB/s limit (%.0f)", seedStats.Uploaded, seedTime, seedLimit/seedMiB, limit)
	}
	if w.mostUnchoked > uploadSlots+1 {
		t.Errorf("our seeder unchoked %d peers at once, want at most %d slots + 1 optimistic", w.mostUnchoked, uploadSlots)
	}
	var oursSent int64
	for i, tor := range ours {
		st := tor.Stats()
		oursSent += st.Uploaded
		t.Logf("aiotorrent-%d: wasted %d bytes; peers now: %s", i+1, st.Wasted, describePeers(st.PeerList))
	}
	if oursSent == 0 {
		t.Errorf("neither of our leechers uploaded anything to the others")
	}
	// Everyone is a seed now (aria2c has exited): each connection left
	// between our leechers links two seeds, which have nothing for each
	// other. Each drops the other once it knows the other is a seed: we
	// send have messages to every peer, those that have the piece too.
	for i, tor := range ours {
		var left []aiotorrent.PeerStats
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if left = tor.Stats().PeerList; len(left) == 0 {
				break
			}
		}
		if len(left) > 0 {
			t.Errorf("aiotorrent-%d is a seed and keeps %d connection(s) to peers that are seeds too: %s",
				i+1, len(left), describePeers(left))
		}
	}
}

// TestInteropUploadLimit measures our upload limit as a real leecher
// (libtorrent) takes the data: with a 2 MiB/s client limit the rate over
// 10 s must be within 10% of it; raised at run time to 4 MiB/s, the rate
// over the next 5 s within 10% of that; and with the client's limit
// removed and the torrent's set to 3 MiB/s, the next 5 s within 10% of
// that.
func TestInteropUploadLimit(t *testing.T) {
	const (
		first, second, third = 2 * seedMiB, 4 * seedMiB, 3 * seedMiB
		warmUp               = 2 * time.Second
		window1              = 10 * time.Second
		window2              = 5 * time.Second
		tolerance            = 0.10
	)
	swarmtest.RequireLibtorrent(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// 2 s + 10 s at 2 MiB/s, 5 s at 4 MiB/s and 5 s at 3 MiB/s: 59 MiB;
	// the rest so that the leecher is still busy when the measure ends.
	d := makeData(t, "limit", 256<<10, []interopFile{{"limit.bin", 80<<20 - 4321}})
	length := d.mi.Info.Length
	announce := ourTrackerHTTP(t, d.mi.InfoHash)
	mi := d.withTrackers(announce)
	c := newSeedClient(t, "seeder", aiotorrent.Config{})
	c.SetUploadLimit(first)
	if got := c.UploadLimit(); got != first {
		t.Fatalf("UploadLimit() = %d after SetUploadLimit(%d)", got, first)
	}
	tor := seedOwn(t, ctx, c, d, mi, announce)
	l := libtorrentLeecher(t, swarmtest.WriteTorrent(t, mi))
	defer l.stop()

	// The measure starts once data flows, after a warm-up.
	flowing := time.Now()
	for tor.Stats().Uploaded == 0 {
		if ctx.Err() != nil {
			t.Fatalf("no data sent to the leecher: %v; our seeder %+v", ctx.Err(), tor.Stats())
		}
		if time.Since(flowing) > 30*time.Second {
			t.Fatalf("no data sent to the leecher after 30 s; our seeder %+v", tor.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("data flows %v after the leecher started", time.Since(flowing).Round(time.Millisecond))
	time.Sleep(warmUp)

	type sample struct {
		at       time.Time
		up, recv int64 // our Uploaded; what the leecher reports receiving
	}
	take := func() sample {
		st := tor.Stats()
		return sample{at: time.Now(), up: st.Uploaded, recv: l.received()}
	}
	// measure samples every second for d and returns the average rate,
	// logging each second's.
	measure := func(what string, limit int64, d time.Duration) float64 {
		t.Helper()
		s0 := take()
		prev := s0
		var secs []string
		for end := s0.at.Add(d); time.Now().Before(end); {
			time.Sleep(min(time.Second, time.Until(end)))
			s := take()
			secs = append(secs, fmt.Sprintf("%.2f", float64(s.up-prev.up)/seedMiB/s.at.Sub(prev.at).Seconds()))
			prev = s
			if s.up >= length {
				t.Fatalf("%s: the leecher got the whole torrent: the limit is not applied (%d bytes sent)", what, s.up)
			}
		}
		span := prev.at.Sub(s0.at).Seconds()
		rate := float64(prev.up-s0.up) / span
		t.Logf("%s: limit %.1f MiB/s, we sent %.3f MiB/s over %.1f s (per second: %s); libtorrent reports receiving %.3f MiB/s",
			what, float64(limit)/seedMiB, rate/seedMiB, span, strings.Join(secs, " "), float64(prev.recv-s0.recv)/seedMiB/span)
		if off := math.Abs(rate-float64(limit)) / float64(limit); off > tolerance {
			t.Errorf("%s: upload rate %.3f MiB/s is %.0f%% off the %.1f MiB/s limit (more than %.0f%%)",
				what, rate/seedMiB, off*100, float64(limit)/seedMiB, tolerance*100)
		}
		return rate
	}
	measure("2 MiB/s", first, window1)
	c.SetUploadLimit(second)
	measure("raised to 4 MiB/s", second, window2)
	// The torrent's own limit, with the client's removed.
	c.SetUploadLimit(0)
	tor.SetUploadLimit(third)
	measure("client limit off, torrent limit 3 MiB/s", third, window2)
	st := tor.Stats()
	t.Logf("our seeder: %s", describePeers(st.PeerList))
	if st.Unchoked != 1 {
		t.Errorf("our seeder unchokes %d peers, want the 1 leecher", st.Unchoked)
	}
	// Removing the limits lets it finish quickly.
	tor.SetUploadLimit(0)
	if err := l.wait(ctx); err != nil {
		t.Fatal(err)
	}
	d.checkSame(t, l.dir)
}
