package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent"
)

var seedCmd = &command{
	name:    "seed",
	summary: "check torrents' data in a folder and serve it to peers until Ctrl-C or a ratio or time limit",
	usage:   "[-d DIR] [--partial] [--ratio R] [--seed-time D] [--upload-limit RATE] [--download-limit RATE] [--slots N] [--max-conns N] [--listen ADDR] [--no-trackers] [--peer HOST:PORT]... [--json] [--status-every D] TORRENT...",
	run:     runSeed,
}

type seedOpts struct {
	dir     string
	partial bool
	json    bool
	every   time.Duration
	stop    seedStop
	netOpts
}

func seedFlags() (*flag.FlagSet, *seedOpts) {
	o := &seedOpts{}
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.StringVar(&o.dir, "d", ".", "the folder holding the torrents' content (`DIR`, as given to download -o)")
	fs.BoolVar(&o.partial, "partial", false, "seed the pieces that are there when the data is incomplete, instead of refusing")
	o.stop.register(fs, "")
	o.register(fs, true)
	registerStateDir(fs, &o.stateDir)
	o.limits.register(fs)
	fs.BoolVar(&o.json, "json", false, "print the state as JSON lines on stdout")
	fs.DurationVar(&o.every, "status-every", 10*time.Second, "when stderr is not a terminal (or with --json), print the status every `D`")
	return fs, o
}

func runSeed(ctx context.Context, e *env, args []string) error {
	fs, o := seedFlags()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("wants one or more torrent files")
	}
	if o.every <= 0 {
		return usagef("--status-every must be positive")
	}
	if err := o.limits.check(); err != nil {
		return err
	}
	if err := o.stop.check(); err != nil {
		return err
	}
	peers, err := parsePeers(o.peers)
	if err != nil {
		return err
	}
	client, err := o.client(e)
	if err != nil {
		return err
	}
	defer client.Close()
	var ts []*aiotorrent.Torrent
	from := map[*aiotorrent.Torrent]string{}
	for _, path := range pos {
		t, err := client.Open(ctx, path)
		if err != nil {
			return err
		}
		if !t.HasMetadata() {
			return usagef("seeding needs .torrent files, not magnet links")
		}
		if first, ok := from[t]; ok {
			fmt.Fprintf(e.stderr, "aiotorrent seed: %s is the same torrent as %s; seeding it once\n", sanitize(path), sanitize(first))
			continue
		}
		from[t] = path
		t.AddPeers(peers...)
		ts = append(ts, t)
	}
	v := &seedView{e: e, json: o.json, every: o.every, client: client, stop: o.stop,
		partial: o.partial, dir: o.dir, check: true}
	return v.seed(ctx, ts)
}

// seedStop is when seeding ends by itself: the --ratio and --seed-time
// flags.
type seedStop struct {
	ratio float64
	time  time.Duration
}

func (s *seedStop) register(fs *flag.FlagSet, prefix string) {
	fs.Float64Var(&s.ratio, "ratio", 0, prefix+"stop seeding a torrent once it has uploaded `R` times its size (0: no limit)")
	fs.DurationVar(&s.time, "seed-time", 0, prefix+"stop seeding a torrent after `D` (0: no limit)")
}

func (s *seedStop) check() error {
	if math.IsNaN(s.ratio) || math.IsInf(s.ratio, 0) || s.ratio < 0 {
		return usagef("--ratio must be 0 or more")
	}
	if s.time < 0 {
		return usagef("--seed-time must be 0 or more")
	}
	return nil
}

func (s *seedStop) set() bool { return s.ratio > 0 || s.time > 0 }

func (s *seedStop) options() []aiotorrent.Option {
	return []aiotorrent.Option{aiotorrent.SeedRatio(s.ratio), aiotorrent.SeedTime(s.time)}
}

// String says when seeding ends: "for up to 1h0m0s or until ratio
// 2.00 or Ctrl-C".
func (s *seedStop) String() string {
	until := "until Ctrl-C"
	if s.ratio > 0 {
		until = fmt.Sprintf("until ratio %.2f or Ctrl-C", s.ratio)
	}
	if s.time > 0 {
		return fmt.Sprintf("for up to %s or %s", s.time, until)
	}
	return until
}

// limitOpts are the flags bounding rates and connections.
type limitOpts struct {
	upload, download   rateFlag
	slots              int
	maxConns           int
	maxConnsPerTorrent int
}

func (l *limitOpts) register(fs *flag.FlagSet) {
	fs.Var(&l.upload, "upload-limit", "upload at most `RATE` bytes per second in all, such as 512K or 2M (0: no limit)")
	fs.Var(&l.download, "download-limit", "download at most `RATE` bytes per second in all (0: no limit)")
	fs.IntVar(&l.slots, "slots", 0, "upload to `N` peers at once per torrent, plus one optimistic unchoke (0: the default, 4)")
	fs.IntVar(&l.maxConns, "max-conns", 0, "keep at most `N` peer connections in all (0: the default, 200)")
	fs.IntVar(&l.maxConnsPerTorrent, "max-conns-per-torrent", 0, "keep at most `N` peer connections per torrent (0: the default, 50)")
}

func (l *limitOpts) check() error {
	for _, f := range []struct {
		name string
		n    int
	}{{"--slots", l.slots}, {"--max-conns", l.maxConns}, {"--max-conns-per-torrent", l.maxConnsPerTorrent}} {
		if f.n < 0 {
			return usagef("%s must be 0 or more", f.name)
		}
	}
	return nil
}

// rateFlag is a rate in bytes per second: "2M", "512K", "2MiB", "1M/s".
type rateFlag int64

func (r *rateFlag) String() string { return strconv.FormatInt(int64(*r), 10) }

func (r *rateFlag) Set(s string) error {
	t := strings.TrimSpace(s)
	if len(t) > 2 && strings.EqualFold(t[len(t)-2:], "/s") {
		t = t[:len(t)-2]
	}
	n, err := parseSize(t)
	if err != nil {
		return fmt.Errorf("invalid rate %q (bytes per second, such as 512K or 2M; 0: no limit)", s)
	}
	*r = rateFlag(n)
	return nil
}

// seedView runs torrents' Seed calls and shows them: the data check, then
// the peers and upload rates (a redrawn block on a terminal, plain lines
// every so often otherwise, JSON lines with --json), then why each
// stopped.
type seedView struct {
	e       *env
	json    bool
	every   time.Duration // between status lines when not redrawing
	client  *aiotorrent.Client
	stop    seedStop
	partial bool
	dir     string // the folder; "" for a torrent already running
	check   bool   // show the data check

	mu    sync.Mutex // serialises output: OnCheck calls come from the library's goroutines
	drawn int        // lines of the block drawn on the terminal; guarded by mu
}

// seedItem is one torrent being seeded; only the goroutine running
// seedView.seed touches it.
type seedItem struct {
	t     *aiotorrent.Torrent
	name  string // sanitized
	state seedState
	start time.Time        // when seeding began
	last  aiotorrent.Stats // the latest snapshot while running
	err   error            // what Seed returned
}

type seedState int

const (
	checking seedState = iota
	seeding
	over
)

type seedResult struct {
	it  *seedItem
	err error
}

// seed seeds ts: it checks each torrent's data in turn, refuses (with
// every incomplete torrent named) unless partial, and then seeds them all
// until ctx ends or each reached its limit.
func (v *seedView) seed(ctx context.Context, ts []*aiotorrent.Torrent) error {
	// The Seed calls get their own context, so that on Ctrl-C the
	// final numbers can be taken before they stop.
	seedCtx, cancel := context.WithCancel(context.Background())
	results := make(chan seedResult, len(ts))
	var wg sync.WaitGroup
	defer func() {
		cancel()
		v.client.Close() // also ends a data check still running
		wg.Wait()
		v.clear()
	}()
	var opts []aiotorrent.Option
	opts = append(opts, v.stop.options()...)
	if v.partial {
		opts = append(opts, aiotorrent.Partial())
	}
	if v.dir != "" {
		opts = append(opts, aiotorrent.WithDir(v.dir))
	}
	items := make([]*seedItem, len(ts))
	for i, t := range ts {
		items[i] = &seedItem{t: t, name: sanitize(t.Name())}
	}

	// The checks run one at a time: each is parallel already, and the
	// disk is the limit.
	for _, it := range items {
		o := opts
		if v.check {
			o = append(slices.Clone(opts), aiotorrent.OnCheck(v.checker(it)))
		}
		wg.Go(func() { results <- seedResult{it, it.t.Seed(seedCtx, o...)} })
		if !v.awaitCheck(ctx, it, results) {
			return fmt.Errorf("interrupted while checking the data of %s", it.name)
		}
	}
	var incomplete []*aiotorrent.IncompleteError
	var failed []error
	for _, it := range items {
		var ie *aiotorrent.IncompleteError
		switch {
		case errors.As(it.err, &ie):
			incomplete = append(incomplete, ie)
		case it.err != nil:
			failed = append(failed, it.err)
		}
	}
	if len(incomplete) > 0 || len(failed) > 0 {
		return v.refuse(len(items), incomplete, failed)
	}

	addr := "nowhere (not listening)"
	if a := v.client.Addr(); a != nil {
		addr = a.String()
	}
	for _, it := range items {
		if it.state != seeding {
			continue
		}
		v.mu.Lock()
		v.clearLocked()
		if v.json {
			writeJSONLine(v.e.stdout, v.event("started", it))
		} else {
			s := it.last
			fmt.Fprintf(v.e.stdout, "%s: %d of %d pieces present (%.1f%%); serving on %s %s\n",
				it.name, s.PiecesVerified, s.Pieces, piecePercent(s.PiecesVerified, s.Pieces), addr, v.stop.String())
		}
		v.mu.Unlock()
	}
	return v.watch(ctx, items, results, cancel)
}

// awaitCheck waits until it is seeding or its Seed returned (refused or
// failed); false when ctx ended first.
func (v *seedView) awaitCheck(ctx context.Context, it *seedItem, results <-chan seedResult) bool {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case r := <-results:
			v.finished(ctx, r)
			if r.it == it {
				return true
			}
		case <-tick.C:
			// Running comes after the check; an incomplete torrent
			// runs for a moment before Seed refuses it.
			s := it.t.Stats()
			if s.Running && (s.PiecesVerified == s.Pieces || v.partial) {
				it.state, it.start, it.last = seeding, time.Now(), s
				if v.check {
					v.checked(it)
				}
				return true
			}
		}
	}
}

// checker returns the OnCheck function showing the data check of it (the
// library calls it one call at a time).
func (v *seedView) checker(it *seedItem) func(aiotorrent.CheckProgress) {
	var last time.Time
	start := time.Now()
	return func(p aiotorrent.CheckProgress) {
		v.mu.Lock()
		defer v.mu.Unlock()
		now := time.Now()
		line := fmt.Sprintf("checking %s %.0f%% (%d/%d pieces)", it.name, piecePercent(p.Checked, p.Pieces), p.Checked, p.Pieces)
		switch {
		case v.json:
			if now.Sub(last) >= time.Second {
				writeJSONLine(v.e.stdout, checkEvent{Event: "checking", Name: it.t.Name(), Pieces: p.Pieces, Checked: p.Checked, Verified: p.Verified, Resumed: p.Resumed})
				last = now
			}
		case v.e.isTerminal:
			v.drawLocked([]string{line})
		case now.Sub(start) >= 5*time.Second && now.Sub(last) >= 5*time.Second:
			fmt.Fprintln(v.e.stderr, line)
			last = now
		}
	}
}

// checked says the data check of it found its data there (or enough
// with partial).
func (v *seedView) checked(it *seedItem) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clearLocked()
	s := it.last
	if v.json {
		writeJSONLine(v.e.stdout, checkEvent{Event: "checked", Name: it.t.Name(), Pieces: s.Pieces, Checked: s.Pieces, Verified: s.PiecesVerified})
		return
	}
	fmt.Fprintf(v.e.stderr, "checked %s: %d of %d pieces present (%.1f%%)\n",
		it.name, s.PiecesVerified, s.Pieces, piecePercent(s.PiecesVerified, s.Pieces))
}

// refuse reports the torrents that cannot be seeded and returns the
// command's error; nothing is seeded then.
func (v *seedView) refuse(n int, incomplete []*aiotorrent.IncompleteError, failed []error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clearLocked()
	var msgs []string
	for _, ie := range incomplete {
		if v.json {
			writeJSONLine(v.e.stdout, incompleteEvent{Event: "incomplete", Name: ie.Name, Dir: ie.Dir, Pieces: ie.Pieces,
				Present: ie.Have, Missing: ie.Missing, Total: ie.Total})
		}
		msgs = append(msgs, fmt.Sprintf("%s: the data in %s is incomplete: %d of %d pieces present, %s of %s missing",
			sanitize(ie.Name), sanitize(ie.Dir), ie.Have, ie.Pieces, formatSize(ie.Missing), formatSize(ie.Total)))
	}
	for _, err := range failed {
		msgs = append(msgs, oneLine(err.Error()))
	}
	hint := ""
	if len(incomplete) > 0 {
		hint = " (use --partial to seed what is there)"
	}
	if len(msgs) == 1 {
		return errors.New(msgs[0] + hint)
	}
	for _, m := range msgs {
		fmt.Fprintf(v.e.stderr, "aiotorrent seed: %s\n", m)
	}
	return fmt.Errorf("%d of %d torrents cannot be seeded; nothing seeded%s", len(msgs), n, hint)
}

// watch shows the seeding torrents until every Seed call returned.
func (v *seedView) watch(ctx context.Context, items []*seedItem, results <-chan seedResult, cancel context.CancelFunc) error {
	pending := 0
	for _, it := range items {
		if it.state == seeding {
			pending++
		}
	}
	redraw := v.e.isTerminal && !v.json
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	status := time.NewTicker(v.every)
	defer status.Stop()
	interrupted := ctx.Done()
	for pending > 0 {
		select {
		case <-interrupted:
			interrupted = nil
			v.refresh(items) // the final numbers, before the torrents stop
			cancel()
		case r := <-results:
			v.finished(ctx, r)
			pending--
		case <-poll.C:
			v.refresh(items)
			if redraw {
				v.draw(items)
			}
		case <-status.C:
			if !redraw {
				v.refresh(items)
				v.status(items)
			}
		}
	}
	var errs []error
	for _, it := range items {
		if it.err != nil {
			errs = append(errs, it.err)
		}
	}
	return errors.Join(errs...)
}

// refresh takes a snapshot of each torrent still seeding.
func (v *seedView) refresh(items []*seedItem) {
	for _, it := range items {
		if it.state != seeding {
			continue
		}
		if s := it.t.Stats(); s.Running {
			it.last = s
		}
	}
}

// finished records that r's Seed returned and, if it was seeding, says
// why it stopped.
func (v *seedView) finished(ctx context.Context, r seedResult) {
	it := r.it
	was := it.state
	it.state, it.err = over, r.err
	if was != seeding {
		return // refused or failed during the check: refuse reports it
	}
	reason := v.reason(ctx, it)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clearLocked()
	if v.json {
		ev := v.event("stopped", it)
		ev.Reason = reason
		if r.err != nil {
			ev.Error = r.err.Error()
		}
		writeJSONLine(v.e.stdout, ev)
		return
	}
	s := it.last
	took := fmt.Sprintf("uploaded %s (ratio %.2f) in %s", formatSize(s.Uploaded), ratio(it), formatDuration(time.Since(it.start)))
	switch reason {
	case "ratio":
		fmt.Fprintf(v.e.stdout, "%s: reached ratio %.2f after %s; stopped\n", it.name, v.stop.ratio, formatDuration(time.Since(it.start)))
	case "time":
		fmt.Fprintf(v.e.stdout, "%s: seeded for %s; %s; stopped\n", it.name, v.stop.time, took)
	case "error":
		// The command's error says what went wrong.
	default:
		fmt.Fprintf(v.e.stdout, "%s: stopped; %s\n", it.name, took)
	}
}

// reason says why the Seed of it returned: "interrupted", "ratio",
// "time", "error" or "closed".
func (v *seedView) reason(ctx context.Context, it *seedItem) string {
	switch {
	case it.err != nil:
		return "error"
	case ctx.Err() != nil:
		return "interrupted"
	case v.stop.ratio > 0 && v.stop.time == 0:
		return "ratio"
	case v.stop.time > 0 && v.stop.ratio == 0:
		return "time"
	case v.stop.time > 0 && time.Since(it.start) >= v.stop.time-100*time.Millisecond:
		return "time"
	case v.stop.ratio > 0:
		return "ratio"
	}
	return "closed"
}

func ratio(it *seedItem) float64 {
	return float64(it.last.Uploaded) / float64(max(it.t.Length(), 1))
}

func piecePercent(n, of int) float64 { return 100 * float64(n) / float64(max(of, 1)) }

// status prints a line per seeding torrent (or JSON lines).
func (v *seedView) status(items []*seedItem) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, it := range items {
		if it.state != seeding {
			continue
		}
		if v.json {
			writeJSONLine(v.e.stdout, v.event("status", it))
		} else {
			fmt.Fprintf(v.e.stderr, "%s: %s\n", it.name, statusLine(it))
		}
	}
}

func statusLine(it *seedItem) string {
	s := it.last
	return fmt.Sprintf("up %s/s  sent %s  ratio %.2f  peers %d (%d unchoked)  %s",
		formatSize(int64(s.UploadRate)), formatSize(s.Uploaded), ratio(it), s.Peers, s.Unchoked,
		formatDuration(time.Since(it.start)))
}

// maxPeerLines bounds the peers the terminal display lists.
const maxPeerLines = 5

// draw redraws the status block on the terminal: a line per torrent and,
// for one torrent, the peers taking the most.
func (v *seedView) draw(items []*seedItem) {
	var lines []string
	var seedingItems []*seedItem
	for _, it := range items {
		if it.state == seeding {
			seedingItems = append(seedingItems, it)
		}
	}
	if len(seedingItems) == 0 {
		return
	}
	for _, it := range seedingItems {
		lines = append(lines, "seeding "+it.name+"  "+statusLine(it))
	}
	if len(seedingItems) == 1 {
		peers := slices.Clone(seedingItems[0].last.PeerList)
		slices.SortStableFunc(peers, func(a, b aiotorrent.PeerStats) int {
			return cmp.Or(cmp.Compare(b.UploadRate, a.UploadRate), cmp.Compare(b.Uploaded, a.Uploaded))
		})
		for i, p := range peers {
			if i == maxPeerLines {
				lines = append(lines, fmt.Sprintf("  ... and %d more peers", len(peers)-maxPeerLines))
				break
			}
			lines = append(lines, "  "+peerLine(p))
		}
	} else {
		cs := v.client.Stats()
		lines = append(lines, fmt.Sprintf("%d torrents  up %s/s  sent %s  peers %d",
			len(seedingItems), formatSize(int64(cs.UploadRate)), formatSize(cs.Uploaded), cs.Peers))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.drawLocked(lines)
}

func peerLine(p aiotorrent.PeerStats) string {
	state := "choked"
	if p.Optimistic {
		state = "unchoked (optimistic)"
	} else if p.Unchoked {
		state = "unchoked"
	}
	if p.Interested {
		state += ", interested"
	}
	if p.Seed {
		state += ", seed"
	}
	client := p.Client
	if client == "" {
		client = "?"
	}
	return fmt.Sprintf("%-21s %-16s up %s/s  sent %s  %s",
		p.Addr, cut(sanitize(client), 16), formatSize(int64(p.UploadRate)), formatSize(p.Uploaded), state)
}

// drawLocked replaces the block drawn on the terminal with lines, each
// cut to the terminal's width so none wraps; v.mu is held.
func (v *seedView) drawLocked(lines []string) {
	var b strings.Builder
	b.WriteString("\r")
	if v.drawn > 1 {
		fmt.Fprintf(&b, "\033[%dA", v.drawn-1)
	}
	b.WriteString("\033[J")
	width := termWidth()
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(cut(l, width-1))
	}
	io.WriteString(v.e.stderr, b.String())
	v.drawn = len(lines)
}

// clearLocked erases the block drawn on the terminal; v.mu is held.
func (v *seedView) clearLocked() {
	if v.drawn > 0 {
		v.drawLocked(nil)
	}
}

func (v *seedView) clear() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clearLocked()
}

// termWidth is the terminal's width from $COLUMNS, or 80.
func termWidth() int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n >= 20 {
		return n
	}
	return 80
}

// cut shortens s to n runes.
func cut(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// seedEvent is a JSON line of seed --json (and download --seed --json).
type seedEvent struct {
	Event      string     `json:"event"`
	Name       string     `json:"name"`
	InfoHash   string     `json:"info_hash"`
	Listen     string     `json:"listen"`
	Pieces     int        `json:"pieces"`
	Present    int        `json:"pieces_present"`
	Peers      int        `json:"peers"`
	Seeds      int        `json:"seeds"`
	Unchoked   int        `json:"unchoked"`
	Uploaded   int64      `json:"uploaded_bytes"`
	UploadRate float64    `json:"upload_rate"`
	Ratio      float64    `json:"ratio"`
	Seconds    float64    `json:"seeding_seconds"`
	Reason     string     `json:"reason,omitempty"` // why it stopped: interrupted, ratio, time, error
	Error      string     `json:"error,omitempty"`
	PeerList   []seedPeer `json:"peer_list,omitempty"`
}

type seedPeer struct {
	Addr       string  `json:"addr"`
	Client     string  `json:"client,omitempty"`
	Uploaded   int64   `json:"uploaded_bytes"`
	UploadRate float64 `json:"upload_rate"`
	Unchoked   bool    `json:"unchoked"`
	Interested bool    `json:"interested"`
	Seed       bool    `json:"seed"`
}

func (v *seedView) event(ev string, it *seedItem) seedEvent {
	addr := ""
	if a := v.client.Addr(); a != nil {
		addr = a.String()
	}
	s := it.last
	out := seedEvent{Event: ev, Name: it.t.Name(), InfoHash: it.t.InfoHash().String(), Listen: addr,
		Pieces: s.Pieces, Present: s.PiecesVerified, Peers: s.Peers, Seeds: s.Seeds, Unchoked: s.Unchoked,
		Uploaded: s.Uploaded, UploadRate: s.UploadRate, Ratio: ratio(it), Seconds: time.Since(it.start).Seconds()}
	for _, p := range s.PeerList {
		out.PeerList = append(out.PeerList, seedPeer{Addr: p.Addr.String(), Client: p.Client, Uploaded: p.Uploaded,
			UploadRate: p.UploadRate, Unchoked: p.Unchoked, Interested: p.Interested, Seed: p.Seed})
	}
	return out
}

// checkEvent is the JSON line of a data check: "checking" while it runs,
// "checked" at the end.
type checkEvent struct {
	Event    string `json:"event"`
	Name     string `json:"name"`
	Pieces   int    `json:"pieces"`
	Checked  int    `json:"checked"`
	Verified int    `json:"pieces_present"`
	Resumed  int    `json:"resumed"` // of those, taken from the resume record without hashing
}

// incompleteEvent is the JSON line of a torrent refused as incomplete.
type incompleteEvent struct {
	Event   string `json:"event"`
	Name    string `json:"name"`
	Dir     string `json:"dir"`
	Pieces  int    `json:"pieces"`
	Present int    `json:"pieces_present"`
	Missing int64  `json:"missing_bytes"`
	Total   int64  `json:"total_bytes"`
}
