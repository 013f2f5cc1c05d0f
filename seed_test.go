package aiotorrent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// seedClient returns a client with cfg on loopback, without trackers.
func seedClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.ListenAddr, cfg.NoTrackers = "127.0.0.1:0", true
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// leech downloads mi from the given peers into a new folder.
func leech(t *testing.T, ctx context.Context, c *Client, mi *metainfo.MetaInfo, peers ...*Client) (*Torrent, string, error) {
	t.Helper()
	tor, err := c.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		tor.AddPeers(clientAddr(p))
	}
	dir := t.TempDir()
	return tor, dir, tor.DownloadAll(ctx, WithDir(dir))
}

func TestSeedChecksAndRefusesIncomplete(t *testing.T) {
	mi, src := makeTorrent(t, "incomplete", 32<<10, testFile{"a", 200 << 10}, testFile{"b", 100 << 10})
	// Cut file b short: the pieces it covers are missing.
	if err := os.Truncate(filepath.Join(src, "incomplete", "b"), 10<<10); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var last CheckProgress
	calls := 0
	onCheck := OnCheck(func(p CheckProgress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Checked < last.Checked {
			t.Errorf("check progress went back: %+v after %+v", p, last)
		}
		last = p
		calls++
	})
	c := seedClient(t, Config{})
	tor, _ := c.Add(mi)
	err := tor.Seed(t.Context(), WithDir(src), onCheck)
	var ie *IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Seed on incomplete data: %v, want an IncompleteError", err)
	}
	n := mi.Info.NumPieces()
	wantHave := int((200 << 10) / (32 << 10)) // the pieces wholly in a
	if ie.Pieces != n || ie.Have != wantHave || ie.Missing != mi.Info.Length-int64(wantHave)*(32<<10) {
		t.Errorf("IncompleteError %+v: want %d of %d pieces", ie, wantHave, n)
	}
	t.Log(err)
	mu.Lock()
	if calls == 0 || last.Checked != n || last.Verified != wantHave || last.Pieces != n {
		t.Errorf("OnCheck: %d calls, last %+v; want the end of the check, %d of %d verified", calls, last, wantHave, n)
	}
	mu.Unlock()
	if tor.Stats().Running {
		t.Error("the torrent runs after Seed refused it")
	}

	// With Partial, the pieces that are there are served, and nothing is
	// fetched.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tor.Seed(ctx, WithDir(src), Partial()) }()
	waitRunning(t, tor)
	lc := seedClient(t, Config{})
	ltor, _ := lc.Add(mi)
	ltor.AddPeers(clientAddr(c))
	if err := ltor.Start(WithDir(t.TempDir())); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for ltor.Stats().PiecesVerified < wantHave {
		if time.Now().After(deadline) {
			t.Fatalf("the leecher has %d pieces of the %d the partial seed has", ltor.Stats().PiecesVerified, wantHave)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := tor.Stats(); s.PiecesVerified != wantHave || s.Downloaded != 0 {
		t.Errorf("the partial seed has %d pieces and downloaded %d bytes; want %d and none", s.PiecesVerified, s.Downloaded, wantHave)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Seed: %v", err)
	}
}

func waitRunning(t *testing.T, tor *Torrent) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !tor.Stats().Running {
		if time.Now().After(deadline) {
			t.Fatal("the torrent did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSeedLimits(t *testing.T) {
	mi, src := makeTorrent(t, "limits", 32<<10, testFile{"", 512 << 10})
	cases := []struct {
		name  string
		opts  []Option
		leech bool // a leecher takes the whole torrent
	}{
		{"ratio 1 after a leecher took it all", []Option{SeedRatio(1)}, true},
		{"time", []Option{SeedTime(300 * time.Millisecond)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			c := seedClient(t, Config{})
			tor, _ := c.Add(mi)
			done := make(chan error, 1)
			go func() { done <- tor.Seed(ctx, append(tc.opts, WithDir(src))...) }()
			waitRunning(t, tor)
			if tc.leech {
				if _, _, err := leech(t, ctx, seedClient(t, Config{}), mi, c); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-ctx.Done():
				t.Fatalf("Seed did not return at its limit; %+v", tor.Stats())
			}
			if tor.Stats().Running {
				t.Error("the torrent still runs after Seed returned")
			}
		})
	}
}

// TestSwarmTrades: one seeder with one upload slot and a slow upload
// limit, five leechers that know each other: they finish by trading
// among themselves, and the seeder never unchokes more than its slot
// plus the optimistic one.
func TestSwarmTrades(t *testing.T) {
	const size = 2 << 20
	mi, src := makeTorrent(t, "swarm", 32<<10, testFile{"", size})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	seeder := seedClient(t, Config{UploadSlots: 1, UploadLimit: 1 << 20})
	stor, _ := seeder.Add(mi)
	if err := stor.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	const n = 5
	clients := make([]*Client, n)
	tors := make([]*Torrent, n)
	for i := range clients {
		clients[i] = seedClient(t, Config{})
		tors[i], _ = clients[i].Add(mi)
	}
	stop := make(chan struct{})
	maxUnchoked := make(chan int, 1)
	go func() {
		most := 0
		for {
			select {
			case <-stop:
				maxUnchoked <- most
				return
			case <-time.After(10 * time.Millisecond):
				most = max(most, stor.Stats().Unchoked)
			}
		}
	}()
	errs := make(chan error, n)
	dirs := make([]string, n)
	for i := range tors {
		dirs[i] = t.TempDir()
		tors[i].AddPeers(clientAddr(seeder))
		for k := range clients {
			if k != i {
				tors[i].AddPeers(clientAddr(clients[k]))
			}
		}
		go func() { errs <- tors[i].DownloadAll(ctx, WithDir(dirs[i])) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if most := <-maxUnchoked; most > 2 {
		t.Errorf("the seeder unchoked %d peers at once; it has 1 slot and the optimistic one", most)
	}
	var fromPeers int64
	for i, tor := range tors {
		s := tor.Stats()
		fromPeers += s.Uploaded
		t.Logf("leecher %d: downloaded %d, uploaded %d", i, s.Downloaded, s.Uploaded)
		want, err := os.ReadFile(filepath.Join(src, "swarm"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dirs[i], "swarm"))
		if err != nil || string(got) != string(want) {
			t.Fatalf("leecher %d: content differs (%v)", i, err)
		}
	}
	up := stor.Stats().Uploaded
	t.Logf("seeder uploaded %d bytes for %d leechers of %d", up, n, size)
	if up >= n*size || fromPeers == 0 {
		t.Errorf("the seeder uploaded %d bytes and the leechers %d: they did not trade", up, fromPeers)
	}
}

// TestBothSeedsPart: two seeds that meet drop the connection, and the
// one that dialled does not dial again.
func TestBothSeedsPart(t *testing.T) {
	mi, src := makeTorrent(t, "seeds", 32<<10, testFile{"", 256 << 10})
	a, b := startSeeder(t, mi, src), seedClient(t, Config{})
	tor, _ := b.Add(mi)
	if err := tor.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	tor.AddPeers(clientAddr(a))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var seen, seed bool
		tor.running().callWait(func() {
			cand := tor.running().known[clientAddr(a)]
			seen, seed = cand != nil, cand != nil && cand.seed
		})
		if seen && seed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other seed was not marked as one")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // a tick or more: no dial again
	if s := tor.Stats(); s.Peers != 0 || s.Connecting != 0 {
		t.Errorf("seeds still connected: %d peers, %d connecting", s.Peers, s.Connecting)
	}
}

// TestUploadSlotsAtRunTime: a seeder's slots change while it serves.
func TestUploadSlotsAtRunTime(t *testing.T) {
	mi, src := makeTorrent(t, "slots", 32<<10, testFile{"", 1 << 20})
	seeder := seedClient(t, Config{UploadSlots: 1, UploadLimit: 256 << 10})
	stor, _ := seeder.Add(mi)
	if err := stor.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range 4 {
		c := seedClient(t, Config{})
		tor, _ := c.Add(mi)
		tor.AddPeers(clientAddr(seeder))
		go tor.DownloadAll(ctx, WithDir(t.TempDir()))
	}
	waitUnchoked := func(want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			s := stor.Stats()
			if s.Unchoked == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d peers unchoked, want %d (%d peers)", s.Unchoked, want, s.Peers)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUnchoked(2) // one slot and the optimistic unchoke
	seeder.SetUploadSlots(3)
	waitUnchoked(4)
}

// TestRateLimits: with a limit of 2 MiB/s on the seeder's client, the
// seeder's torrent, or the leecher's client, the rate measured over 10 s
// (after 2 s of start) is within 10% of it.
func TestRateLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 12 s")
	}
	const limit = 2 << 20
	mi, src := makeTorrent(t, "ratelimit", 256<<10, testFile{"", 40 << 20})
	cases := []struct {
		name  string
		setup func(seeder, leecher *Client, stor *Torrent)
		up    bool // the seeder's upload is measured, else the leecher's download
	}{
		{"client upload", func(s, _ *Client, _ *Torrent) { s.SetUploadLimit(limit) }, true},
		{"torrent upload", func(_, _ *Client, st *Torrent) { st.SetUploadLimit(limit) }, true},
		{"client download", func(_, l *Client, _ *Torrent) { l.SetDownloadLimit(limit) }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			seeder, leecher := seedClient(t, Config{}), seedClient(t, Config{})
			stor, _ := seeder.Add(mi)
			tc.setup(seeder, leecher, stor)
			if err := stor.Start(WithDir(src)); err != nil {
				t.Fatal(err)
			}
			ltor, _ := leecher.Add(mi)
			ltor.AddPeers(clientAddr(seeder))
			done := make(chan error, 1)
			go func() { done <- ltor.DownloadAll(ctx, WithDir(t.TempDir())) }()
			measure := func() int64 {
				if tc.up {
					return stor.Stats().Uploaded
				}
				return ltor.Stats().Downloaded
			}
			time.Sleep(2 * time.Second)
			b0, t0 := measure(), time.Now()
			time.Sleep(10 * time.Second)
			b1, t1 := measure(), time.Now()
			got := float64(b1-b0) / t1.Sub(t0).Seconds()
			t.Logf("%.3f MiB/s over %v for a limit of 2 MiB/s", got/(1<<20), t1.Sub(t0).Round(time.Millisecond))
			if got < 0.9*limit || got > 1.1*limit {
				t.Errorf("measured %.0f B/s over 10 s, want %d ± 10%%", got, limit)
			}
			select {
			case err := <-done:
				t.Fatalf("the download ended early: %v", err)
			default:
			}
		})
	}
}

// TestRateLimitLifted: a limit removed while blocks wait for tokens lets
// them through at once (the waits take their tokens again under the new
// limit), rather than after the wait the old limit gave them.
func TestRateLimitLifted(t *testing.T) {
	mi, src := makeTorrent(t, "lifted", 32<<10, testFile{"", 1 << 20})
	seeder := seedClient(t, Config{UploadLimit: 1 << 10}) // a block per 16 s
	stor, _ := seeder.Add(mi)
	if err := stor.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	var took time.Duration
	go func() {
		_, _, err := leech(t, ctx, seedClient(t, Config{}), mi, seeder)
		done <- err
	}()
	for stor.Stats().Uploaded == 0 { // the burst's block went; the next waits
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	seeder.SetUploadLimit(0)
	lifted := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	took = time.Since(lifted)
	t.Logf("the rest of the download took %v once the limit was lifted", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("the download took %v after the limit was lifted: blocks kept waiting for the old limit's tokens", took)
	}
}

// TestSeedKeepsDownloadRunning: a torrent downloaded keeps running after
// the download, as Download says; a Seed that ends (or refuses) does not
// stop it, since it did not start it.
func TestSeedKeepsDownloadRunning(t *testing.T) {
	mi, src := makeTorrent(t, "keep", 32<<10, testFile{"a", 128 << 10}, testFile{"b", 128 << 10})
	seeder := startSeeder(t, mi, src)
	c := seedClient(t, Config{})
	tor, _ := c.Add(mi)
	tor.AddPeers(clientAddr(seeder))
	dir := t.TempDir()
	if err := tor.Download(t.Context(), tor.Files()[0], WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	// File b is missing: refused, and the torrent goes on.
	if err := tor.Seed(t.Context(), WithDir(dir)); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Seed with a file missing: %v", err)
	}
	if !tor.Stats().Running {
		t.Fatal("a refused Seed stopped the torrent the download had left running")
	}
	if err := tor.Seed(t.Context(), WithDir(dir), Partial(), SeedTime(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if !tor.Stats().Running {
		t.Fatal("a Seed that ended stopped the torrent the download had left running")
	}
}
