package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent"
)

var downloadCmd = &command{
	name:    "download",
	summary: "download a torrent's files, verified, into a folder; with --seed, serve them afterwards",
	usage:   "[-o DIR] [--file N]... [--strategy default|sequential] [--high N]... [--low N]... [--state-dir DIR] [--json] [--peer HOST:PORT]... [--seed [--ratio R] [--seed-time D]] [--upload-limit RATE] [--download-limit RATE] [--slots N] [--max-conns N] TORRENT|MAGNET",
	run:     runDownload,
}

type downloadOpts struct {
	out      string
	files    listFlag
	strategy string
	high     listFlag
	low      listFlag
	json     bool
	every    time.Duration
	seed     bool
	stop     seedStop
	netOpts
}

// netOpts are the flags saying how a command meets peers, and with
// registerLimits how fast and with how many.
type netOpts struct {
	peers      listFlag
	listen     string
	noTrackers bool
	noDHT      bool
	dhtNodes   string
	limits     limitOpts
	stateDir   string
	// saveTorrent is where to write a magnet link's metainfo once it
	// arrives (download --save-torrent); json says progress goes out as
	// JSON lines.
	saveTorrent string
	json        bool
}

// registerStateDir adds --state-dir to fs.
func registerStateDir(fs *flag.FlagSet, dir *string) {
	fs.StringVar(dir, "state-dir", "", "keep resume records, magnet links' metadata and the DHT's nodes in `DIR` (default $XDG_STATE_HOME/aiotorrent, else ~/.local/state/aiotorrent, or the user cache folder on macOS and Windows; - for none)")
}

// register adds --listen and --no-trackers to fs, and --peer with
// withPeers.
func (n *netOpts) register(fs *flag.FlagSet, withPeers bool) {
	noTrackers := "do not announce to the torrent's trackers"
	if withPeers {
		fs.Var(&n.peers, "peer", "also connect to the peer at `HOST:PORT`; may be repeated")
		noTrackers += " (use with --peer)"
	}
	fs.StringVar(&n.listen, "listen", "", "accept peers on `ADDR` (default :6881, or any free port)")
	fs.BoolVar(&n.noTrackers, "no-trackers", false, noTrackers)
	registerDHT(fs, &n.noDHT, &n.dhtNodes)
}

// registerDHT adds --no-dht and --dht-bootstrap to fs.
func registerDHT(fs *flag.FlagSet, noDHT *bool, nodes *string) {
	fs.BoolVar(noDHT, "no-dht", false, "do not use the DHT (BEP 5) to find peers")
	fs.StringVar(nodes, "dht-bootstrap", os.Getenv(dhtBootstrapEnv),
		"join the DHT through `NODES` (host:port, comma-separated; none for none) when no nodes are kept from an earlier run (default: the public routers, or $"+dhtBootstrapEnv+")")
}

// dhtBootstrapEnv names the variable that sets --dht-bootstrap's default.
const dhtBootstrapEnv = "AIOTORRENT_DHT_BOOTSTRAP"

// dhtBootstrap is the Config.DHTBootstrap that --dht-bootstrap asks for:
// nil for the default routers, empty for "none".
func (n *netOpts) dhtBootstrap() []string { return parseBootstrap(n.dhtNodes) }

// parseBootstrap reads a --dht-bootstrap value.
func parseBootstrap(v string) []string {
	v = strings.TrimSpace(v)
	switch v {
	case "":
		return nil
	case "none":
		return []string{}
	}
	var out []string
	for _, hp := range strings.Split(v, ",") {
		if hp = strings.TrimSpace(hp); hp != "" {
			out = append(out, hp)
		}
	}
	return out
}

// config is the command's Client configuration.
func (n *netOpts) config(e *env) aiotorrent.Config {
	l := &n.limits
	return aiotorrent.Config{
		ListenAddr: n.listen, NoTrackers: n.noTrackers, Logger: e.logger(),
		UploadLimit: int64(l.upload), DownloadLimit: int64(l.download), UploadSlots: l.slots,
		MaxConns: l.maxConns, MaxConnsPerTorrent: l.maxConnsPerTorrent,
		StateDir: n.stateDir,
		NoDHT:    n.noDHT, DHTBootstrap: n.dhtBootstrap(),
	}
}

// client starts the command's Client.
func (n *netOpts) client(e *env) (*aiotorrent.Client, error) {
	return aiotorrent.NewClient(n.config(e))
}

// open starts the command's Client and opens the torrent at path, told
// of the --peer addresses, with the files the --file indexes in idx
// choose (all without). When err is nil the caller closes the Client.
func (n *netOpts) open(ctx context.Context, e *env, path string, idx []string) (*aiotorrent.Client, *aiotorrent.Torrent, []aiotorrent.File, error) {
	peers, err := parsePeers(n.peers)
	if err != nil {
		return nil, nil, nil, err
	}
	client, err := n.client(e)
	if err != nil {
		return nil, nil, nil, err
	}
	t, files, err := func() (*aiotorrent.Torrent, []aiotorrent.File, error) {
		t, err := client.Open(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		t.AddPeers(peers...)
		if err := n.waitMetadata(ctx, e, t); err != nil {
			return nil, nil, err
		}
		files, err := pickFiles(t, idx, "file")
		return t, files, err
	}()
	if err != nil {
		client.Close()
		return nil, nil, nil, err
	}
	return client, t, files, nil
}

// waitMetadata fetches a magnet link's metadata from peers, saying so on
// stderr (or as JSON events), and writes it to --save-torrent.
func (n *netOpts) waitMetadata(ctx context.Context, e *env, t *aiotorrent.Torrent) error {
	if !t.HasMetadata() {
		start := time.Now()
		if n.json {
			writeJSONLine(e.stdout, metadataEvent{Event: "fetching_metadata", InfoHash: t.InfoHash().String()})
		} else {
			fmt.Fprintf(e.stderr, "fetching the metadata of %s from peers...\n", sanitize(t.Name()))
		}
		if err := t.WaitMetadata(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped before the metadata of %s arrived", sanitize(t.Name()))
			}
			return err
		}
		mi := t.MetaInfo()
		if n.json {
			writeJSONLine(e.stdout, metadataEvent{Event: "metadata", InfoHash: t.InfoHash().String(), Name: t.Name(),
				Files: len(t.Files()), Length: mi.Info.Length, Bytes: len(mi.InfoBytes), Seconds: time.Since(start).Seconds()})
		} else {
			fmt.Fprintf(e.stderr, "metadata of %s: %d files, %s, in %s\n", sanitize(t.Name()), len(t.Files()),
				formatSize(mi.Info.Length), formatDuration(time.Since(start)))
		}
	}
	if n.saveTorrent != "" {
		data, err := t.MetaInfo().Marshal()
		if err == nil {
			err = os.WriteFile(n.saveTorrent, data, 0o644)
		}
		if err != nil {
			return fmt.Errorf("--save-torrent: %w", err)
		}
	}
	return nil
}

// metadataEvent is the JSON line of a magnet link's metadata fetch.
type metadataEvent struct {
	Event    string  `json:"event"`
	InfoHash string  `json:"info_hash"`
	Name     string  `json:"name,omitempty"`
	Files    int     `json:"files,omitempty"`
	Length   int64   `json:"length,omitempty"`
	Bytes    int     `json:"metadata_bytes,omitempty"`
	Seconds  float64 `json:"seconds,omitempty"`
}

func downloadFlags() (*flag.FlagSet, *downloadOpts) {
	o := &downloadOpts{}
	fs := flag.NewFlagSet("download", flag.ContinueOnError)
	fs.StringVar(&o.out, "o", ".", "download into folder `DIR`")
	fs.Var(&o.files, "file", "download only the file with index `N` (see \"aiotorrent info\"); may be repeated")
	fs.StringVar(&o.strategy, "strategy", "default", "piece order: `default` (rarest first) or sequential (in file order)")
	fs.Var(&o.high, "high", "fetch the file with index `N` before the others; may be repeated")
	fs.Var(&o.low, "low", "fetch the file with index `N` after the others; may be repeated")
	fs.BoolVar(&o.json, "json", false, "print progress and the result as JSON lines on stdout")
	fs.StringVar(&o.saveTorrent, "save-torrent", "", "write the torrent's metainfo to `FILE` (for a magnet link, once it has arrived from peers)")
	o.register(fs, true)
	registerStateDir(fs, &o.stateDir)
	fs.DurationVar(&o.every, "progress-every", 5*time.Second, "when stderr is not a terminal, print a progress line (and with --seed, a seeding status) every `D`")
	fs.BoolVar(&o.seed, "seed", false, "once the download is complete, keep serving it to peers until Ctrl-C or a --ratio or --seed-time limit")
	o.stop.register(fs, "with --seed, ")
	o.limits.register(fs)
	return fs, o
}

func runDownload(ctx context.Context, e *env, args []string) error {
	fs, o := downloadFlags()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("wants one torrent file or magnet link, got %d arguments", len(pos))
	}
	var strategy aiotorrent.Strategy
	switch o.strategy {
	case "default", "rarest", "rarest-first":
		strategy = aiotorrent.Default
	case "sequential":
		strategy = aiotorrent.Sequential
	default:
		return usagef("unknown --strategy %q (want default or sequential)", o.strategy)
	}
	if o.every <= 0 {
		return usagef("--progress-every must be positive")
	}
	if err := o.limits.check(); err != nil {
		return err
	}
	if err := o.stop.check(); err != nil {
		return err
	}
	if !o.seed && o.stop.set() {
		return usagef("--ratio and --seed-time need --seed")
	}
	o.netOpts.json = o.json
	client, t, files, err := o.open(ctx, e, pos[0], o.files)
	if err != nil {
		return err
	}
	defer client.Close()
	for _, set := range []struct {
		flag string
		idx  []string
		prio aiotorrent.Priority
	}{{"high", o.high, aiotorrent.High}, {"low", o.low, aiotorrent.Low}} {
		if len(set.idx) == 0 {
			continue
		}
		fs, err := pickFiles(t, set.idx, set.flag)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if err := t.SetFilePriority(f, set.prio); err != nil {
				return err
			}
		}
	}
	opts := []aiotorrent.Option{aiotorrent.WithDir(o.out)}
	if flagSet(fs, "strategy") {
		// Else the strategy of the download this one continues, if any.
		opts = append(opts, aiotorrent.WithStrategy(strategy))
	}
	err = downloadWithProgress(ctx, e, t, files, o.json, o.every, opts...)
	if err != nil || !o.seed {
		return err
	}
	// The torrent is running and its data checked: seed what was
	// downloaded (only the chosen files' pieces with --file).
	if ctx.Err() != nil {
		return nil // Ctrl-C as the download ended: it is complete
	}
	v := &seedView{e: e, json: o.json, every: o.every, client: client, stop: o.stop, partial: true, dir: o.out}
	return v.seed(ctx, []*aiotorrent.Torrent{t})
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parsePeers reads --peer values.
func parsePeers(list []string) ([]netip.AddrPort, error) {
	var peers []netip.AddrPort
	for _, p := range list {
		ap, err := netip.ParseAddrPort(p)
		if err != nil {
			return nil, usagef("--peer %q: want IP:PORT", p)
		}
		peers = append(peers, ap)
	}
	return peers, nil
}

// pickFiles returns the files chosen by the indexes of --flag, or all of
// them when there are none.
func pickFiles(t *aiotorrent.Torrent, idx []string, flag string) ([]aiotorrent.File, error) {
	all := t.Files()
	if len(idx) == 0 {
		return all, nil
	}
	var out []aiotorrent.File
	for _, s := range idx {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, usagef("--%s %q: want a file index from \"aiotorrent info\"", flag, s)
		}
		found := false
		for _, f := range all {
			if f.Index == n {
				out = append(out, f)
				found = true
				break
			}
		}
		if !found {
			return nil, usagef("--%s %d: the torrent has no such file (see \"aiotorrent info\")", flag, n)
		}
	}
	return out, nil
}

// downloadWithProgress runs the download and shows its progress: a
// redrawn line on a terminal, a plain line every few seconds otherwise,
// JSON lines with --json.
func downloadWithProgress(ctx context.Context, e *env, t *aiotorrent.Torrent, files []aiotorrent.File, asJSON bool, every time.Duration, opts ...aiotorrent.Option) error {
	start := time.Now()
	done := make(chan error, 1)
	opts = append(opts, aiotorrent.OnCheck(checkReporter(e, t, asJSON)))
	go func() { done <- t.DownloadFiles(ctx, files, opts...) }()
	interval := every
	if e.isTerminal {
		interval = 250 * time.Millisecond
	}
	if asJSON {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	p := &progress{e: e, name: sanitize(t.Name()), start: start}
	for {
		select {
		case err := <-done:
			s := t.Stats()
			p.finish(s, err, asJSON)
			if err != nil && ctx.Err() != nil {
				return fmt.Errorf("stopped at %s of %s (%.1f%%)", formatSize(s.WantedVerified), formatSize(s.Wanted), percent(s))
			}
			return err
		case <-tick.C:
			s := t.Stats()
			if !s.Running {
				continue // the data check, which shows its own progress
			}
			if asJSON {
				writeJSONLine(e.stdout, progressJSON("progress", s, time.Since(start), nil))
			} else {
				p.show(s)
			}
		}
	}
}

// checkReporter returns the OnCheck function of a download: the check of
// the data already in the folder shows its progress (a redrawn line on a
// terminal, a line every 5 s otherwise, JSON events every second), and
// its end says what was found, and how much of it the resume record
// vouched for without hashing.
func checkReporter(e *env, t *aiotorrent.Torrent, asJSON bool) func(aiotorrent.CheckProgress) {
	name := sanitize(t.Name())
	line := &checkLine{e: e, name: name, start: time.Now()}
	var last time.Time
	return func(p aiotorrent.CheckProgress) {
		if asJSON {
			if now := time.Now(); p.Done || now.Sub(last) >= time.Second {
				ev := "checking"
				if p.Done {
					ev = "checked"
				}
				writeJSONLine(e.stdout, checkEvent{Event: ev, Name: t.Name(), Pieces: p.Pieces, Checked: p.Checked, Verified: p.Verified, Resumed: p.Resumed})
				last = now
			}
			return
		}
		line.show(p)
		if !p.Done {
			return
		}
		line.clear()
		switch {
		case p.Verified == 0:
		case p.Resumed == p.Verified:
			fmt.Fprintf(e.stderr, "resuming %s: %d of %d pieces already here (from the resume record)\n", name, p.Verified, p.Pieces)
		default:
			fmt.Fprintf(e.stderr, "resuming %s: %d of %d pieces already here (%d from the resume record, %d hashed)\n",
				name, p.Verified, p.Pieces, p.Resumed, p.Verified-p.Resumed)
		}
	}
}

type progress struct {
	e     *env
	name  string
	start time.Time
	drawn bool
}

func percent(s aiotorrent.Stats) float64 {
	if s.Wanted == 0 {
		return 100
	}
	return 100 * float64(s.WantedVerified) / float64(s.Wanted)
}

func (p *progress) line(s aiotorrent.Stats) string {
	eta := "--:--"
	if s.DownloadRate > 0 && s.Wanted > s.WantedVerified {
		eta = formatDuration(time.Duration(float64(s.Wanted-s.WantedVerified) / s.DownloadRate * float64(time.Second)))
	}
	return fmt.Sprintf("%5.1f%%  %s / %s  %s/s  ETA %s  peers %d",
		percent(s), formatSize(s.WantedVerified), formatSize(s.Wanted), formatSize(int64(s.DownloadRate)), eta, s.Peers)
}

func (p *progress) show(s aiotorrent.Stats) {
	if p.e.isTerminal {
		const width = 20
		filled := int(percent(s) / 100 * width)
		bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
		fmt.Fprintf(p.e.stderr, "\r\033[K[%s] %s", bar, p.line(s))
		p.drawn = true
		return
	}
	fmt.Fprintf(p.e.stderr, "%s: %s\n", p.name, p.line(s))
}

func (p *progress) finish(s aiotorrent.Stats, err error, asJSON bool) {
	elapsed := time.Since(p.start)
	if asJSON {
		ev := "done"
		if err != nil {
			ev = "stopped"
		}
		writeJSONLine(p.e.stdout, progressJSON(ev, s, elapsed, err))
		return
	}
	if p.drawn {
		fmt.Fprint(p.e.stderr, "\r\033[K")
	}
	if err == nil {
		rate := float64(s.Downloaded) / max(elapsed.Seconds(), 1e-3)
		fmt.Fprintf(p.e.stdout, "%s: complete, %s verified in %s (%s/s)\n",
			p.name, formatSize(s.Wanted), formatDuration(elapsed), formatSize(int64(rate)))
	}
}

func formatDuration(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	d = d.Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// downloadEvent is one JSON line of download --json.
type downloadEvent struct {
	Event          string  `json:"event"`
	Percent        float64 `json:"percent"`
	Wanted         int64   `json:"wanted_bytes"`
	Verified       int64   `json:"verified_bytes"`
	Downloaded     int64   `json:"downloaded_bytes"`
	Uploaded       int64   `json:"uploaded_bytes"`
	DownloadRate   float64 `json:"download_rate"`
	UploadRate     float64 `json:"upload_rate"`
	Peers          int     `json:"peers"`
	Seeds          int     `json:"seeds"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Error          string  `json:"error,omitempty"`
}

func progressJSON(ev string, s aiotorrent.Stats, elapsed time.Duration, err error) downloadEvent {
	d := downloadEvent{
		Event: ev, Percent: percent(s), Wanted: s.Wanted, Verified: s.WantedVerified,
		Downloaded: s.Downloaded, Uploaded: s.Uploaded, DownloadRate: s.DownloadRate, UploadRate: s.UploadRate,
		Peers: s.Peers, Seeds: s.Seeds, ElapsedSeconds: elapsed.Seconds(),
	}
	if err != nil {
		d.Error = err.Error()
	}
	return d
}

func writeJSONLine(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		w.Write(append(b, '\n'))
	}
}
