package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
)

var peersCmd = &command{
	name:    "peers",
	summary: "ask every tracker of a torrent, and the DHT, for peers and say what each answered",
	usage:   "[--tracker URL]... [--no-dht] [--json] [--timeout D] [--port N] TORRENT|MAGNET",
	run:     runPeers,
}

type peersOpts struct {
	trackers listFlag
	json     bool
	timeout  time.Duration
	port     uint
	all      bool
	noDHT    bool
	dhtNodes string
	stateDir string
}

func peersFlags() (*flag.FlagSet, *peersOpts) {
	o := &peersOpts{}
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.Var(&o.trackers, "tracker", "ask this tracker `URL` instead of the torrent's own; may be repeated")
	fs.BoolVar(&o.json, "json", false, "print the answers as one JSON object")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Second, "give up on a tracker after `D`")
	fs.UintVar(&o.port, "port", 6881, "the peer `PORT` to announce (the tracker lists us there until we say stopped)")
	fs.BoolVar(&o.all, "all", false, "list every peer, not only the first 20 per tracker")
	registerDHT(fs, &o.noDHT, &o.dhtNodes)
	fs.StringVar(&o.stateDir, "state-dir", "", "use the DHT nodes kept in `DIR` by earlier runs (default as for download; - for none)")
	return fs, o
}

// dhtAnswer is what a DHT lookup found, for the output.
type dhtAnswer struct {
	Peers []string `json:"peers"`
	Nodes int      `json:"nodes"` // in the routing table after the lookup
	Error string   `json:"error,omitempty"`
}

// askDHT looks the info hash up on the DHT, through a client that does not
// listen for peers (so it announces nothing) and uses the DHT nodes kept
// in the state folder.
func askDHT(ctx context.Context, e *env, o *peersOpts, hash metainfo.Hash) *dhtAnswer {
	a := &dhtAnswer{Peers: []string{}}
	c, err := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "-", NoTrackers: true, StateDir: o.stateDir,
		DHTBootstrap: parseBootstrap(o.dhtNodes), Logger: e.logger()})
	if err != nil {
		a.Error = err.Error()
		return a
	}
	defer c.Close()
	lctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	peers, err := c.DHT().GetPeers(lctx, hash)
	if err != nil {
		a.Error = err.Error()
	}
	for _, p := range peers {
		a.Peers = append(a.Peers, p.String())
	}
	a.Nodes = c.DHT().NumNodes()
	return a
}

// trackerAnswer is what one tracker said, for the output.
type trackerAnswer struct {
	URL         string   `json:"url"`
	Tier        int      `json:"tier"`
	Error       string   `json:"error,omitempty"`
	Warning     string   `json:"warning,omitempty"`
	Peers       []string `json:"peers"`
	Seeders     int      `json:"seeders"`  // -1: not told
	Leechers    int      `json:"leechers"` // -1: not told
	Completed   int      `json:"completed"`
	Interval    float64  `json:"interval_seconds,omitempty"`
	MinInterval float64  `json:"min_interval_seconds,omitempty"`
	ScrapeError string   `json:"scrape_error,omitempty"`
}

func runPeers(ctx context.Context, e *env, args []string) error {
	fs, o := peersFlags()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one TORRENT file or MAGNET link, got %d arguments", len(pos))
	}
	if o.port == 0 || o.port > 65535 {
		return usagef("--port must be from 1 to 65535")
	}
	if o.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	t, err := aiotorrent.Open(ctx, pos[0])
	if err != nil {
		return err
	}
	tiers := t.Trackers()
	if len(o.trackers) > 0 {
		tiers = nil
		for _, u := range o.trackers {
			if err := metainfo.CheckTrackerURL(u); err != nil {
				return usagef("--tracker %q: %v", u, err)
			}
			tiers = append(tiers, []string{u})
		}
	}
	useDHT := !o.noDHT && !t.Private()
	if len(tiers) == 0 && !useDHT {
		return errors.New("the torrent names no tracker (give one with --tracker, or leave the DHT on)")
	}

	req := tracker.AnnounceRequest{
		InfoHash: t.InfoHash(),
		PeerID:   newPeerID(),
		Port:     uint16(o.port),
		Left:     max(t.Length(), 1), // we have nothing; 1 when the size is unknown
		NumWant:  200,
		Event:    tracker.Started,
	}
	req.Key = binary.BigEndian.Uint32(req.PeerID[8:12])

	var answers []*trackerAnswer
	var wg sync.WaitGroup
	for i, tier := range tiers {
		for _, u := range tier {
			a := &trackerAnswer{URL: u, Tier: i + 1, Seeders: -1, Leechers: -1, Completed: -1, Peers: []string{}}
			answers = append(answers, a)
			wg.Go(func() { askTracker(ctx, a, req, o.timeout) })
		}
	}
	var dhtRes *dhtAnswer
	if useDHT {
		wg.Go(func() { dhtRes = askDHT(ctx, e, o, t.InfoHash()) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return errors.New("interrupted")
	}

	if o.json {
		return writeJSON(e, struct {
			InfoHash string           `json:"info_hash"`
			Trackers []*trackerAnswer `json:"trackers"`
			DHT      *dhtAnswer       `json:"dht,omitempty"`
		}{t.InfoHash().String(), answers, dhtRes})
	}
	fmt.Fprintf(e.stdout, "%s (%s)\n", sanitize(t.Name()), t.InfoHash())
	ok := 0
	if dhtRes != nil {
		fmt.Fprintf(e.stdout, "\nDHT\n")
		if dhtRes.Error != "" && len(dhtRes.Peers) == 0 {
			fmt.Fprintf(e.stdout, "  error: %s\n", sanitize(dhtRes.Error))
		} else {
			ok++
			fmt.Fprintf(e.stdout, "  %d peers (%d nodes known)\n", len(dhtRes.Peers), dhtRes.Nodes)
			for i, p := range dhtRes.Peers {
				if i == 20 && !o.all {
					fmt.Fprintf(e.stdout, "  ... and %d more (--all lists them)\n", len(dhtRes.Peers)-20)
					break
				}
				fmt.Fprintf(e.stdout, "  %s\n", p)
			}
		}
	}
	for _, a := range answers {
		fmt.Fprintf(e.stdout, "\ntier %d  %s\n", a.Tier, sanitize(a.URL))
		if a.Error != "" {
			fmt.Fprintf(e.stdout, "  error: %s\n", sanitize(a.Error))
			continue
		}
		ok++
		fmt.Fprintf(e.stdout, "  %d peers, seeders %s, leechers %s, downloads %s, re-announce every %s\n",
			len(a.Peers), count(a.Seeders), count(a.Leechers), count(a.Completed), time.Duration(a.Interval*float64(time.Second)))
		if a.Warning != "" {
			fmt.Fprintf(e.stdout, "  warning: %s\n", sanitize(a.Warning))
		}
		for i, p := range a.Peers {
			if i == 20 && !o.all {
				fmt.Fprintf(e.stdout, "  ... and %d more (--all lists them)\n", len(a.Peers)-20)
				break
			}
			fmt.Fprintf(e.stdout, "  %s\n", p)
		}
	}
	if ok == 0 {
		if dhtRes != nil {
			return fmt.Errorf("neither the DHT nor any tracker answered (%d tried)", len(answers))
		}
		return fmt.Errorf("no tracker answered (%d tried)", len(answers))
	}
	return nil
}

// askTracker scrapes one tracker, announces to it, and tells it we stopped,
// so a one-off query does not leave us listed as a peer.
func askTracker(ctx context.Context, a *trackerAnswer, req tracker.AnnounceRequest, timeout time.Duration) {
	c, err := tracker.New(a.URL, tracker.Options{Timeout: timeout, UDPBase: 2 * time.Second, UDPRetries: 3})
	if err != nil {
		a.Error = err.Error()
		return
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Scrape first, so the counts do not include ourselves.
	scraped := false
	if res, err := c.Scrape(actx, []metainfo.Hash{req.InfoHash}); err == nil {
		if r, ok := res[req.InfoHash]; ok {
			a.Seeders, a.Leechers, a.Completed = r.Seeders, r.Leechers, r.Completed
			scraped = true
		}
	} else if !errors.Is(err, tracker.ErrScrapeUnsupported) {
		a.ScrapeError = err.Error()
	}
	resp, err := c.Announce(actx, &req)
	if err != nil {
		a.Error = err.Error()
		return
	}
	a.Warning = resp.Warning
	if !scraped {
		a.Seeders, a.Leechers = resp.Seeders, resp.Leechers
	}
	a.Interval, a.MinInterval = resp.Interval.Seconds(), resp.MinInterval.Seconds()
	for _, p := range resp.Peers {
		if p.Port() == req.Port && (p.Addr().IsLoopback() || p.Addr().IsUnspecified()) {
			continue // ourselves, as some trackers return the asker
		}
		a.Peers = append(a.Peers, p.String())
	}
	stop := req
	stop.Event = tracker.Stopped
	stop.NumWant = 0
	c.Announce(actx, &stop) // best effort
}

func count(n int) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}

// newPeerID returns an Azureus-style peer id: "-AT0001-" and 12 random bytes.
func newPeerID() tracker.PeerID {
	var id tracker.PeerID
	copy(id[:], "-AT0001-")
	rand.Read(id[8:])
	return id
}
