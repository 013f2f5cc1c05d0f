//go:build linux

// Command magnetbench measures how long a magnet link takes to become
// useful: from the start of the process to the torrent's metadata, to the
// first byte of its file, and to the whole file, for "aiotorrent stream"
// and "aiotorrent download" against aria2c fetching the same magnet link,
// in the same run, from the same real seeders on loopback.
//
// Usage, from anywhere inside the module:
//
//	go run ./bench/magnetbench [-size 256M] [-runs 5] [-seeders libtorrent,qbittorrent] [-via x.pe,tracker] [-clients stream,download,aria2c] [-piece-size SIZE] [-log] [-timeout D] [-dir DIR] [-keep] [-json FILE]
//
// It builds cmd/aiotorrent, writes one file of pseudo-random bytes and a
// torrent of it, and starts the seeders (-seeders: libtorrent and
// qBittorrent by default; aria2c and ours may be added) once, as dlbench
// does: every run of every client fetches from the same seeders. The
// clients are given only a magnet link, in one of two forms (-via):
//
//   - x.pe: the info hash and name, and the seeders' addresses as x.pe
//     parameters. aria2c 1.36 ignores x.pe (it finds no peer at all), so
//     only our clients run with it;
//   - tracker: the info hash and name, and tr= the tracker the seeders
//     announced to (tracker/server, run inside this program on
//     127.0.0.1, HTTP only: aria2c announces only over HTTP when its DHT
//     is off).
//
// Each of -runs rounds runs, for each form, each client once, in an order
// rotated by one place each round; every run is a fresh process with
// fresh state (a new download folder, state folder, HOME and XDG
// folders), so that nothing, such as metadata kept from an earlier run,
// carries over. Times are taken from the start of each process (exec):
//
//   - aiotorrent stream (--json): metadata when its "metadata" line comes;
//     once its "serving" line gives the URL the harness asks for the file
//     with "Range: bytes=0-" at once: first byte when the first byte of
//     the body comes, complete when the last does (every byte is hashed
//     and checked against the source); then it is stopped with SIGINT;
//   - aiotorrent download (--json): metadata when its "metadata" line
//     comes, complete when its "done" line does; exit when it exits
//     (telling the tracker it stopped included); the file is checked;
//   - aria2c (--seed-time=0, --bt-prioritize-piece=head=PIECE, its
//     JSON-RPC on 127.0.0.1): the harness asks it for the status of the
//     magnet download (--gid) every 5 ms: metadata when it is complete
//     and followed by the real download; then for that download's
//     status: first byte when its bitfield first has piece 0 (aria2c
//     counts only verified pieces), complete when it has every byte; then
//     aria2.shutdown; the file is checked. An answer is taken to describe
//     the moment half-way between asking and hearing.
//
// Where the time goes: every client's first announce to the tracker (told
// apart by the port it announces), ours' "fetching_metadata" line (its
// start-up) and the fetch's own duration from the "metadata" line; with
// -log, our processes run with AIOTORRENT_LOG=debug and the harness reads
// from their logs when the metadata arrived and when the first peer
// connection of the download opened and unchoked us.
//
// Flags:
//
//	-size       content size: bytes, or with a binary unit (16M, 256M, 1G)
//	            (default 256M)
//	-runs       rounds (default 5)
//	-seeders    comma-separated seeders: libtorrent, qbittorrent, aria2c,
//	            ours, or all (default libtorrent,qbittorrent)
//	-via        comma-separated peer sources in the magnet link: x.pe,
//	            tracker (default both)
//	-clients    comma-separated clients: stream, download (ours), aria2c
//	            (default all three)
//	-piece-size piece size of the torrent (default: what aiotorrent create
//	            chooses)
//	-log        run our processes with AIOTORRENT_LOG=debug and break their
//	            time down from the log (the logging costs a little time)
//	-timeout    for one run (default 1 minute plus 1 second per 2 MiB)
//	-dir        make the work folder in DIR (default $TMPDIR); it needs
//	            twice -size free
//	-keep       keep the work folder: content, torrent, every program's log
//	-json       also write every figure as JSON to FILE
//
// Every program listens and connects on 127.0.0.1 only; aria2c and the
// seeders run with DHT, local peer discovery, peer exchange and port
// mapping off, and ours with --no-dht when the CLI has it. A CLI that
// runs a DHT node (it imports the dht package) but has no --no-dht is
// refused: it would contact the public DHT routers.
//
// It prints a Markdown report on standard output; progress goes to
// standard error. Every program it starts is stopped when it ends, also
// on Ctrl-C. It exits 1 if a run failed or a seeder exited.
//
// It runs on Linux only: it reads /proc.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// The peer sources of the magnet link (-via).
const (
	viaXPE     = "x.pe"
	viaTracker = "tracker"
)

// The clients measured (-clients).
const (
	clientStream   = "stream"
	clientDownload = "download"
	clientAria2    = "aria2c"
)

var (
	allVias    = []string{viaXPE, viaTracker}
	allClients = []string{clientStream, clientDownload, clientAria2}
)

type config struct {
	harness.Common
	vias     []string
	clients  []string
	log      bool
	jsonPath string
}

func main() { harness.Main("magnetbench", run) }

func run(ctx context.Context, args []string) error { return runTo(ctx, args, os.Stdout) }

func parseArgs(args []string) (*config, error) {
	c := &config{}
	f := harness.NewFlags("magnetbench", "[-size 256M] [-runs 5] [-seeders libtorrent,qbittorrent] [-via x.pe,tracker] [-clients stream,download,aria2c] [-piece-size SIZE] [-log] [-timeout D] [-dir DIR] [-keep] [-json FILE]", &c.Common)
	f.Size("content `SIZE` in bytes, or with a binary unit: 16M, 256M, 1G", 1<<20, "1 MiB")
	f.Runs(5, "rounds, `N`: each client fetches the magnet link once per round and peer source")
	f.Seeders("libtorrent,qbittorrent", "comma-separated `CLIENTS` to seed, started once for every run: libtorrent, qbittorrent, aria2c, ours, or all")
	via := f.FS.String("via", strings.Join(allVias, ","), "comma-separated peer `SOURCES` in the magnet link: x.pe (the seeders' addresses; aria2c ignores it), tracker (tr=)")
	clients := f.FS.String("clients", strings.Join(allClients, ","), "comma-separated `CLIENTS` to measure: stream, download (aiotorrent's), aria2c")
	f.PieceSize()
	f.FS.BoolVar(&c.log, "log", false, "run our processes with AIOTORRENT_LOG=debug and break their time down from the log")
	f.Timeout("run")
	f.Dir(harness.WorkDirUsage)
	f.Keep("keep the work folder: the content, the torrent and every program's log")
	f.FS.StringVar(&c.jsonPath, "json", "", "also write the figures as JSON to `FILE`")
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if c.vias, err = parseList(*via, allVias, map[string]string{"xpe": viaXPE, "x.pe": viaXPE, "tr": viaTracker}); err != nil {
		return nil, fmt.Errorf("-via: %w", err)
	}
	if c.clients, err = parseList(*clients, allClients, map[string]string{"aria2": clientAria2}); err != nil {
		return nil, fmt.Errorf("-clients: %w", err)
	}
	if len(c.vias) == 1 && c.vias[0] == viaXPE && slices.Equal(c.clients, []string{clientAria2}) {
		return nil, errors.New("aria2c ignores x.pe: with -via x.pe alone, measure stream or download")
	}
	return c, nil
}

// parseList reads a comma-separated list of names among all (or their
// aliases), in the order of all.
func parseList(s string, all []string, aliases map[string]string) ([]string, error) {
	want := map[string]bool{}
	for f := range strings.SplitSeq(s, ",") {
		name := strings.ToLower(strings.TrimSpace(f))
		if a, ok := aliases[name]; ok {
			name = a
		}
		if !slices.Contains(all, name) {
			return nil, fmt.Errorf("unknown %q (want %s)", f, strings.Join(all, ", "))
		}
		want[name] = true
	}
	var out []string
	for _, n := range all {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// bench is the swarm, the magnet links and what the runs measured.
type bench struct {
	cfg     *config
	swarm   *harness.Swarm
	file    string            // the content
	sum     [sha256.Size]byte // of the content
	tr      *tracker
	seeders []*harness.Seeder
	magnets map[string]string // by peer source
	ours    *ourCLI
	rewarms int        // times the content had to be read back into the page cache
	runs    []*measure // every run, in the order they ran
}

func runTo(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseArgs(args)
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, swarm: &harness.Swarm{}, magnets: map[string]string{}}
	need := slices.Clone(cfg.Seeders)
	if b.measures(viaTracker, clientAria2) {
		need = append(need, harness.ClientAria2)
	}
	if err := b.swarm.FindClients(need, "-seeders and -clients"); err != nil {
		return err
	}
	sw := b.swarm
	w, err := harness.Workspace(ctx, cfg.Dir, "magnetbench", 2*cfg.Size+256<<20, "the content and one download", cfg.Keep)
	if err != nil {
		return err
	}
	defer w.Cleanup()
	sw.Work, sw.Bin = w.Dir, w.Bin
	if b.ours, err = probeCLI(ctx, w); err != nil {
		return err
	}

	if b.tr, err = startTracker(); err != nil {
		return err
	}
	defer b.tr.close()
	harness.Progress("tracker on %s", b.tr.announce)
	if b.file, err = sw.MakeTorrent(ctx, "magnetbench", cfg.Size, b.tr.announce, cfg.PieceSize); err != nil {
		return err
	}
	if b.sum, err = harness.SHA256File(b.file); err != nil {
		return err
	}
	if b.seeders, err = sw.StartSeeders(ctx, cfg.Seeders); err != nil {
		return err
	}
	if slices.Contains(cfg.vias, viaTracker) {
		if err := b.tr.waitSeeders(ctx, len(b.seeders)); err != nil {
			return err
		}
	}
	b.makeMagnets()

	cond := harness.Watch()
	for r := range cfg.Runs {
		n, err := harness.KeepCached(b.file, "the content")
		b.rewarms += n
		if err != nil {
			return err
		}
		vias := rotate(cfg.vias, r)
		for _, via := range vias {
			var clients []string
			for _, c := range cfg.clients {
				if b.measures(via, c) {
					clients = append(clients, c)
				}
			}
			for _, c := range rotate(clients, r) {
				m := b.runOne(ctx, r, via, c)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				b.runs = append(b.runs, m)
				if m.Err != "" {
					harness.Progress("FAIL: run %d, %s via %s: %s", r+1, c, via, m.Err)
					continue
				}
				harness.Progress("run %d/%d  %-8s via %-7s metadata %s  first byte %s  complete %s  CPU %.2fs",
					r+1, cfg.Runs, c, via, ms(m.Metadata), ms(m.FirstByte), ms(m.Complete), m.CPU.Seconds())
			}
		}
	}
	cond.Stop()

	gone := harness.Exited(b.seeders)
	sum := b.summarize()
	failures := b.report(stdout, w.Root, w.GoCmd, cond, sum, gone)
	if cfg.jsonPath != "" {
		if err := b.writeJSON(cfg.jsonPath, w.Root, w.GoCmd, cond, sum); err != nil {
			return err
		}
	}
	if failures > 0 {
		return fmt.Errorf("%d failures (see the report)", failures)
	}
	return nil
}

// measures reports whether client is measured with peer source via:
// every chosen client with the tracker, ours only with x.pe.
func (b *bench) measures(via, client string) bool {
	if !slices.Contains(b.cfg.vias, via) || !slices.Contains(b.cfg.clients, client) {
		return false
	}
	return via != viaXPE || client != clientAria2
}

// makeMagnets writes the magnet link of each peer source: the info hash
// and name, and either the seeders' addresses or the tracker.
func (b *bench) makeMagnets() {
	mi := b.swarm.MI
	xpe := &metainfo.Magnet{InfoHash: mi.InfoHash, DisplayName: mi.Info.Name}
	for _, s := range b.seeders {
		xpe.Peers = append(xpe.Peers, s.Addr.String())
	}
	b.magnets[viaXPE] = xpe.String()
	tr := &metainfo.Magnet{InfoHash: mi.InfoHash, DisplayName: mi.Info.Name, Trackers: []string{b.tr.announce}}
	b.magnets[viaTracker] = tr.String()
}

// rotate returns s rotated left by r places.
func rotate(s []string, r int) []string {
	if len(s) == 0 {
		return nil
	}
	r %= len(s)
	return append(slices.Clone(s[r:]), s[:r]...)
}

// runOne runs client once, in round r (from 0), on the magnet link of
// peer source via, and returns what it measured (with Err set if it
// failed).
func (b *bench) runOne(ctx context.Context, r int, via, client string) *measure {
	m := &measure{Run: r + 1, Via: via, Client: client}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var err error
	switch client {
	case clientStream:
		err = b.streamRun(ctx, m)
	case clientDownload:
		err = b.downloadRun(ctx, m)
	case clientAria2:
		err = b.aria2Run(ctx, m)
	}
	if err != nil {
		m.Err = err.Error()
	}
	if gone := harness.Exited(b.seeders); len(gone) > 0 && m.Err == "" {
		m.Err = "a seeder exited during the run:\n" + strings.Join(gone, "\n")
	}
	return m
}

// measure is one run of one client.
type measure struct {
	Run    int
	Via    string
	Client string
	// Each from the start of the process; 0 when not seen.
	Ready     time.Duration // ours: the fetching_metadata line; aria2c: its JSON-RPC answering
	Announce  time.Duration // the tracker's first announce from it (via tracker)
	Metadata  time.Duration // the metadata is known
	Serving   time.Duration // stream: its HTTP server answers (the serving line)
	FirstByte time.Duration // stream: the first byte of the body; aria2c: piece 0 verified
	Complete  time.Duration // stream: the last byte; download: its done line; aria2c: all verified
	Exit      time.Duration // the process has exited
	Fetch     time.Duration // ours: the metadata fetch as the process timed it (its metadata line's seconds)
	CPU       time.Duration // user + system CPU time of the process, start to exit
	Polls     int           // aria2c: JSON-RPC answers
	// From our debug log (-log), from the start of the process.
	LogMetadata time.Duration // "metadata received"
	LogConnect  time.Duration // the first "peer connected" after it
	LogUnchoked time.Duration // the first "peer unchoked us" after it
	Err         string
}

func ms(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", msf(d))
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
