// Package announcer keeps a torrent announced to its trackers: tiers as
// BEP 12 describes them, re-announces on the tracker's interval, the
// started/completed/stopped events, and back-off when trackers fail. It is
// one goroutine per torrent; peers it learns go to a callback.
package announcer

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent/tracker"
)

// Defaults and bounds of the schedule.
const (
	// DefaultInterval is used when a tracker gives no interval.
	DefaultInterval = 30 * time.Minute
	// MinInterval is the least time between two regular announces to one
	// tracker, whatever it asks for.
	MinInterval = 30 * time.Second
	// FirstRetry and MaxRetry bound the back-off after every tracker failed.
	FirstRetry = 15 * time.Second
	MaxRetry   = 30 * time.Minute
	// StopTimeout bounds the final "stopped" announce on shutdown.
	StopTimeout = 5 * time.Second
	// DefaultAnnounceTimeout bounds one announce to one tracker.
	DefaultAnnounceTimeout = 30 * time.Second
)

// Progress is what the torrent reports of itself in each announce.
type Progress struct {
	Uploaded, Downloaded, Left int64
}

// Config describes the torrent and how to reach its trackers.
type Config struct {
	Tiers [][]string // announce URLs in tiers (BEP 12)
	Req   tracker.AnnounceRequest
	// Progress returns the torrent's current counters; called from the
	// announcer's goroutine before each announce.
	Progress func() Progress
	// OnPeers receives the peers of each successful announce (ourselves
	// filtered out), from the announcer's goroutine.
	OnPeers func(url string, peers []netip.AddrPort)
	// NewClient makes a client for one URL (default tracker.New with
	// ClientOptions).
	NewClient     func(url string) (tracker.Client, error)
	ClientOptions tracker.Options
	// AnnounceTimeout bounds one announce (default DefaultAnnounceTimeout).
	AnnounceTimeout time.Duration
	Logger          *slog.Logger
}

// State is where one tracker stands.
type State string

// Tracker states as the stats show them.
const (
	NotContacted State = "not contacted"
	Announcing   State = "announcing"
	Working      State = "working"
	Failing      State = "failing"
)

// TrackerStats is one tracker's state, for a torrent's stats.
type TrackerStats struct {
	URL       string
	Tier      int
	State     State
	LastError string    // of the last failed announce, if any
	LastTry   time.Time // zero if never tried
	NextTry   time.Time // when this tracker is next due, if it is the one in use
	Interval  time.Duration
	Peers     int // in the last reply
	Seeders   int // -1 when the tracker did not say
	Leechers  int
	Failures  int // consecutive
}

// entry is one tracker in a tier.
type entry struct {
	url     string
	client  tracker.Client // made on first use
	started bool           // sent "started" and not yet "stopped"
	stats   TrackerStats
}

// Announcer announces one torrent. Create it with New and run it with Run.
type Announcer struct {
	cfg   Config
	log   *slog.Logger
	rnd   *rand.Rand
	kick  chan struct{} // Announce and Completed requests
	tiers [][]*entry    // owned by the Run goroutine; stats copied out under mu

	mu        sync.Mutex
	stats     []TrackerStats // snapshot, guarded by mu
	completed bool           // Completed was called, guarded by mu
	sentDone  bool           // "completed" sent to a tracker, guarded by mu
	wantMore  bool           // Announce was called, guarded by mu
}

// New returns an announcer for cfg. Each tier is shuffled once, as BEP 12
// asks.
func New(cfg Config) *Announcer {
	a := &Announcer{
		cfg:  cfg,
		log:  cfg.Logger,
		rnd:  rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		kick: make(chan struct{}, 1),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.cfg.NewClient == nil {
		opts := cfg.ClientOptions
		a.cfg.NewClient = func(u string) (tracker.Client, error) { return tracker.New(u, opts) }
	}
	if a.cfg.AnnounceTimeout <= 0 {
		a.cfg.AnnounceTimeout = DefaultAnnounceTimeout
	}
	if a.cfg.Progress == nil {
		a.cfg.Progress = func() Progress { return Progress{} }
	}
	for i, urls := range cfg.Tiers {
		var tier []*entry
		for _, u := range urls {
			tier = append(tier, &entry{url: u, stats: TrackerStats{URL: u, Tier: i, State: NotContacted, Seeders: -1, Leechers: -1}})
		}
		a.rnd.Shuffle(len(tier), func(x, y int) { tier[x], tier[y] = tier[y], tier[x] })
		if len(tier) > 0 {
			a.tiers = append(a.tiers, tier)
		}
	}
	a.snapshot()
	return a
}

// Stats returns every tracker's state, in tier order.
func (a *Announcer) Stats() []TrackerStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]TrackerStats(nil), a.stats...)
}

// Completed tells the announcer the download finished: it sends the
// "completed" event to the tracker in use at once.
func (a *Announcer) Completed() {
	a.mu.Lock()
	a.completed = true
	a.mu.Unlock()
	a.poke()
}

// Announce asks for peers now rather than at the next interval. It is
// honoured once the tracker's min interval (at least MinInterval) has
// passed since the last announce.
func (a *Announcer) Announce() {
	a.mu.Lock()
	a.wantMore = true
	a.mu.Unlock()
	a.poke()
}

func (a *Announcer) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Run announces until ctx is done, then sends "stopped" to the tracker that
// was told "started" (bounded by StopTimeout) and returns.
func (a *Announcer) Run(ctx context.Context) {
	defer a.stop()
	if len(a.tiers) == 0 {
		<-ctx.Done()
		return
	}
	var (
		next     time.Time // when the next regular announce is due
		earliest time.Time // no announce before this (min interval)
		retry    = FirstRetry
		timer    = time.NewTimer(0)
	)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-a.kick:
		}
		now := time.Now()
		a.mu.Lock()
		sendDone := a.completed && !a.sentDone
		early := a.wantMore && !now.Before(earliest)
		a.mu.Unlock()

		if sendDone || early || !now.Before(next) {
			ev := tracker.None
			if sendDone {
				ev = tracker.Completed
			}
			resp, ok := a.announceTiers(ctx, ev)
			if ctx.Err() != nil {
				return
			}
			now = time.Now()
			if ok {
				retry = FirstRetry
				interval := resp.Interval
				if interval <= 0 {
					interval = DefaultInterval
				}
				interval = max(interval, MinInterval)
				next = now.Add(interval)
				earliest = now.Add(max(resp.MinInterval, MinInterval))
				a.mu.Lock()
				a.wantMore = false
				if sendDone {
					a.sentDone = true
				}
				a.mu.Unlock()
			} else {
				// Every tracker failed: back off, with jitter so many
				// torrents do not retry together.
				d := retry + time.Duration(a.rnd.Int64N(int64(retry)/4+1))
				next = now.Add(d)
				earliest = next
				retry = min(2*retry, MaxRetry)
			}
			a.setNext(next)
		}
		wait := next.Sub(now)
		a.mu.Lock()
		if a.completed && !a.sentDone || a.wantMore {
			wait = min(wait, earliest.Sub(now))
		}
		a.mu.Unlock()
		timer.Reset(max(wait, 0))
	}
}

// announceTiers walks the tiers in order and, within a tier, the trackers
// in order, until one answers; that one moves to the front of its tier
// (BEP 12). It reports whether any answered.
func (a *Announcer) announceTiers(ctx context.Context, ev tracker.Event) (*tracker.AnnounceResponse, bool) {
	for _, tier := range a.tiers {
		for i, e := range tier {
			resp, err := a.announceOne(ctx, e, ev)
			if ctx.Err() != nil {
				return nil, false
			}
			if err != nil {
				continue
			}
			copy(tier[1:i+1], tier[:i])
			tier[0] = e
			a.snapshot()
			return resp, true
		}
	}
	a.snapshot()
	return nil, false
}

// announceOne announces to one tracker, sending "started" if it has not
// had it, and records the outcome in its stats.
func (a *Announcer) announceOne(ctx context.Context, e *entry, ev tracker.Event) (*tracker.AnnounceResponse, error) {
	if e.client == nil {
		c, err := a.cfg.NewClient(e.url)
		if err != nil {
			a.fail(e, err)
			return nil, err
		}
		e.client = c
	}
	if !e.started { // a tracker first hears "started", whatever else is due
		ev = tracker.Started
	}
	req := a.request(ev)
	e.stats.State = Announcing
	e.stats.LastTry = time.Now()
	a.snapshot()
	actx, cancel := context.WithTimeout(ctx, a.cfg.AnnounceTimeout)
	resp, err := e.client.Announce(actx, &req)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			a.fail(e, err)
			a.log.Debug("announce failed", "tracker", e.url, "err", err)
		}
		return nil, err
	}
	e.started = true
	e.stats.State = Working
	e.stats.LastError = ""
	e.stats.Failures = 0
	e.stats.Interval = resp.Interval
	e.stats.Seeders, e.stats.Leechers = resp.Seeders, resp.Leechers
	peers := a.withoutSelf(resp.Peers)
	e.stats.Peers = len(peers)
	a.log.Debug("announced", "tracker", e.url, "event", ev.String(), "peers", len(peers), "interval", resp.Interval)
	if a.cfg.OnPeers != nil && len(peers) > 0 {
		a.cfg.OnPeers(e.url, peers)
	}
	return resp, nil
}

func (a *Announcer) fail(e *entry, err error) {
	e.stats.State = Failing
	e.stats.LastError = err.Error()
	e.stats.Failures++
	e.stats.NextTry = time.Time{}
}

func (a *Announcer) request(ev tracker.Event) tracker.AnnounceRequest {
	req := a.cfg.Req
	p := a.cfg.Progress()
	req.Uploaded, req.Downloaded, req.Left = p.Uploaded, p.Downloaded, p.Left
	req.Event = ev
	return req
}

// withoutSelf drops our own listen address, which some trackers return to
// the asker (bittorrent-tracker does): a loopback or unspecified address
// with our port can only be us.
func (a *Announcer) withoutSelf(peers []netip.AddrPort) []netip.AddrPort {
	out := peers[:0:0]
	for _, p := range peers {
		ip := p.Addr().Unmap()
		if p.Port() == a.cfg.Req.Port && (ip.IsLoopback() || ip.IsUnspecified()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// setNext records when the tracker in use is next due.
func (a *Announcer) setNext(t time.Time) {
	for _, tier := range a.tiers {
		for _, e := range tier {
			e.stats.NextTry = time.Time{}
		}
	}
	if e := a.current(); e != nil {
		e.stats.NextTry = t
	}
	a.snapshot()
}

// current returns the tracker that answered last: the first working
// tracker in tier order.
func (a *Announcer) current() *entry {
	for _, tier := range a.tiers {
		for _, e := range tier {
			if e.stats.State == Working {
				return e
			}
		}
	}
	return nil
}

// stop sends "stopped" to every tracker that was told "started".
func (a *Announcer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, tier := range a.tiers {
		for _, e := range tier {
			if !e.started {
				continue
			}
			e.started = false
			req := a.request(tracker.Stopped)
			wg.Go(func() {
				if _, err := e.client.Announce(ctx, &req); err != nil && !errors.Is(err, context.DeadlineExceeded) {
					a.log.Debug("stopped announce failed", "tracker", e.url, "err", err)
				}
			})
		}
	}
	wg.Wait()
}

// snapshot copies the trackers' stats for Stats, in tier order.
func (a *Announcer) snapshot() {
	var s []TrackerStats
	for _, tier := range a.tiers {
		for _, e := range tier {
			s = append(s, e.stats)
		}
	}
	a.mu.Lock()
	a.stats = s
	a.mu.Unlock()
}
