package announcer

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// call is one announce a fake tracker received.
type call struct {
	url   string
	event tracker.Event
	at    time.Duration // since the test bubble started
	left  int64
}

// fakeNet is a set of scripted trackers.
type fakeNet struct {
	start time.Time
	mu    sync.Mutex
	calls []call
	// behaviour by URL: "ok", "fail", "hang"
	mode     map[string]string
	interval time.Duration
	minIntvl time.Duration
	peers    []netip.AddrPort
}

type fakeClient struct {
	n   *fakeNet
	url string
}

func (c *fakeClient) URL() string { return c.url }
func (c *fakeClient) Scrape(context.Context, []metainfo.Hash) (map[metainfo.Hash]tracker.ScrapeResult, error) {
	return nil, tracker.ErrScrapeUnsupported
}

func (c *fakeClient) Announce(ctx context.Context, req *tracker.AnnounceRequest) (*tracker.AnnounceResponse, error) {
	c.n.mu.Lock()
	c.n.calls = append(c.n.calls, call{c.url, req.Event, time.Since(c.n.start), req.Left})
	mode := c.n.mode[c.url]
	c.n.mu.Unlock()
	switch mode {
	case "fail":
		return nil, &tracker.FailureError{Reason: "go away"}
	case "hang":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &tracker.AnnounceResponse{Interval: c.n.interval, MinInterval: c.n.minIntvl, Seeders: 3, Leechers: 4, Peers: c.n.peers}, nil
}

func (n *fakeNet) take() []call {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.calls
	n.calls = nil
	return c
}

func newFake(mode map[string]string) *fakeNet {
	return &fakeNet{start: time.Now(), mode: mode, interval: 100 * time.Second}
}

func (n *fakeNet) config(tiers ...[]string) Config {
	return Config{
		Tiers:     tiers,
		Req:       tracker.AnnounceRequest{Port: 6881},
		Progress:  func() Progress { return Progress{Left: 1000} },
		NewClient: func(u string) (tracker.Client, error) { return &fakeClient{n, u}, nil },
	}
}

// runFor runs the announcer for d of fake time, then stops it and waits.
func runFor(a *Announcer, d time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	time.Sleep(d)
	cancel()
	<-done
}

func events(calls []call) []tracker.Event {
	var ev []tracker.Event
	for _, c := range calls {
		ev = append(ev, c.event)
	}
	return ev
}

func TestStartedIntervalStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFake(map[string]string{"A": "ok"})
		a := New(n.config([]string{"A"}))
		runFor(a, 250*time.Second)
		calls := n.take()
		want := []call{{"A", tracker.Started, 0, 1000}, {"A", tracker.None, 100 * time.Second, 1000},
			{"A", tracker.None, 200 * time.Second, 1000}, {"A", tracker.Stopped, 250 * time.Second, 1000}}
		if len(calls) != len(want) {
			t.Fatalf("calls %+v, want %+v", calls, want)
		}
		for i := range want {
			if calls[i] != want[i] {
				t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
			}
		}
	})
}

func TestFailoverWithinTierMovesToFront(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFake(map[string]string{"A": "fail", "B": "ok", "C": "ok"})
		a := New(n.config([]string{"A", "B"}, []string{"C"}))
		runFor(a, 150*time.Second)
		calls := n.take()
		// First round: maybe A (failing) then B; later rounds: B only.
		var used []string
		for _, c := range calls {
			if c.at > 0 {
				used = append(used, c.url)
			}
		}
		for _, u := range used {
			if u != "B" {
				t.Errorf("after the first round announced to %s; want only B: %+v", u, calls)
			}
		}
		for _, c := range calls {
			if c.url == "C" {
				t.Errorf("second tier used although the first had a working tracker: %+v", calls)
			}
		}
		st := a.Stats()
		if len(st) != 3 || st[0].URL != "B" || st[0].State != Working || st[0].Seeders != 3 || st[0].Leechers != 4 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestFallsBackToNextTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFake(map[string]string{"A": "fail", "C": "ok"})
		a := New(n.config([]string{"A"}, []string{"C"}))
		runFor(a, time.Second)
		calls := n.take()
		if len(calls) < 2 || calls[0].url != "A" || calls[1].url != "C" || calls[1].event != tracker.Started {
			t.Fatalf("calls %+v", calls)
		}
		st := a.Stats()
		if st[0].State != Failing || st[0].LastError == "" || st[0].Failures != 1 || st[1].State != Working {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestBackoffWhenAllFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFake(map[string]string{"A": "fail"})
		a := New(n.config([]string{"A"}))
		runFor(a, 10*time.Minute)
		calls := n.take()
		if len(calls) < 4 {
			t.Fatalf("only %d tries in 10 minutes", len(calls))
		}
		var prev time.Duration
		for i := 1; i < len(calls); i++ {
			gap := calls[i].at - calls[i-1].at
			if gap < FirstRetry || gap < prev {
				t.Errorf("retry %d after %v (previous gap %v): want growing gaps of at least %v", i, gap, prev, FirstRetry)
			}
			prev = gap
		}
		for _, c := range calls {
			if c.event == tracker.Stopped {
				t.Error("stopped sent to a tracker that never answered started")
			}
		}
	})
}

func TestCompletedSentAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFake(map[string]string{"A": "ok"})
		a := New(n.config([]string{"A"}))
		ctx, cancel := context.WithCancel(context.Background())
		go a.Run(ctx)
		time.Sleep(40 * time.Second)
		a.Completed()
		synctest.Wait()
		calls := n.take()
		if len(calls) != 2 || calls[1].event != tracker.Completed || calls[1].at != 40*time.Second {
			t.Fatalf("calls %+v, want started then completed at 40s", calls)
		}
		time.Sleep(100 * time.Second) // the regular announce is due at 140s, now
		synctest.Wait()
		if ev := events(n.take()); len(ev) != 1 || ev[0] != tracker.None {
			t.Errorf("after completed: %v, want one regular announce", ev)
		}
		cancel()
		synctest.Wait()
	})
}

func TestEarlyAnnounceHonoursMinInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFake(map[string]string{"A": "ok"})
		n.interval, n.minIntvl = 1000*time.Second, 60*time.Second
		a := New(n.config([]string{"A"}))
		ctx, cancel := context.WithCancel(context.Background())
		go a.Run(ctx)
		time.Sleep(10 * time.Second)
		a.Announce()
		time.Sleep(100 * time.Second)
		synctest.Wait()
		calls := n.take()
		if len(calls) != 2 || calls[1].at != 60*time.Second {
			t.Errorf("calls %+v, want the early announce at the min interval (60s)", calls)
		}
		cancel()
		synctest.Wait()
	})
}

func TestIntervalClampedAndHangingTrackerTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFake(map[string]string{"A": "hang", "B": "ok"})
		n.interval = time.Second // absurdly short: clamped to MinInterval
		cfg := n.config([]string{"A"}, []string{"B"})
		cfg.AnnounceTimeout = 5 * time.Second
		a := New(cfg)
		runFor(a, 70*time.Second)
		var bs []time.Duration
		for _, c := range n.take() {
			if c.url == "B" && c.event != tracker.Stopped {
				bs = append(bs, c.at)
			}
		}
		// A hangs for 5s each round, then B answers.
		if len(bs) < 2 || bs[0] != 5*time.Second || bs[1]-bs[0] < MinInterval {
			t.Errorf("B announced at %v: want first after A's 5s timeout, then no more often than %v", bs, MinInterval)
		}
	})
}

func TestPeersWithoutSelf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFake(map[string]string{"A": "ok"})
		n.peers = []netip.AddrPort{
			netip.MustParseAddrPort("127.0.0.1:6881"), // us
			netip.MustParseAddrPort("[::1]:6881"),     // us
			netip.MustParseAddrPort("127.0.0.1:6882"),
			netip.MustParseAddrPort("192.0.2.1:6881"), // another host may use our port
		}
		cfg := n.config([]string{"A"})
		var got []netip.AddrPort
		cfg.OnPeers = func(_ string, p []netip.AddrPort) { got = append(got, p...) }
		a := New(cfg)
		runFor(a, time.Second)
		if len(got) != 2 || got[0].Port() != 6882 || got[1].Addr().String() != "192.0.2.1" {
			t.Errorf("peers %v", got)
		}
		if st := a.Stats(); st[0].Peers != 2 {
			t.Errorf("stats peers %d", st[0].Peers)
		}
	})
}

func TestNoTrackers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := New(Config{})
		runFor(a, time.Hour)
		if len(a.Stats()) != 0 {
			t.Error("stats for no trackers")
		}
	})
}

func TestBadURL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFake(map[string]string{"B": "ok"})
		cfg := n.config([]string{"A"}, []string{"B"})
		cfg.NewClient = func(u string) (tracker.Client, error) {
			if u == "A" {
				return nil, errors.New("unsupported scheme")
			}
			return &fakeClient{n, u}, nil
		}
		a := New(cfg)
		runFor(a, time.Second)
		for _, s := range a.Stats() {
			if s.URL == "A" && (s.State != Failing || s.LastError != "unsupported scheme") {
				t.Errorf("A: %+v", s)
			}
		}
	})
}
