//go:build linux

// Command dlbench times downloads of one torrent from a swarm of real
// BitTorrent programs on loopback: aiotorrent against aria2c,
// qbittorrent-nox and libtorrent (through its Python binding), as
// leechers, each downloading the whole torrent from the same seeders.
//
// Usage, from anywhere inside the module:
//
//	go run ./bench/dlbench [-size 1G] [-runs 3] [-seeders all] [-leechers all] [-piece-size SIZE] [-timeout D] [-dir DIR] [-keep] [-cpuprofile DIR] [-perf DIR]
//
// It builds cmd/aiotorrent, writes a file of pseudo-random bytes and a
// torrent of it that announces to a tracker (tracker/server) run inside
// this program on 127.0.0.1, and starts the seeders (-seeders: aria2c,
// qbittorrent, libtorrent, ours; default all four), all serving that one
// file. Once each has checked the data and serves it, it runs the
// leechers (-leechers, the same names) one at a time, each into a fresh
// folder, -runs times, in an order that rotates from run to run, and
// checks every download against the source with SHA-256. Every program
// listens and connects on 127.0.0.1 only, with DHT, local peer discovery,
// peer exchange and port mapping off: the tracker is their only source of
// peers.
//
// It prints a Markdown report on standard output; progress goes to
// standard error. Every program it starts is stopped when it ends, also
// on Ctrl-C.
//
// It runs on Linux only: it reads /proc. See bench/README.md for what the
// columns mean.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
	"github.com/aiotorrent/aiotorrent/tracker/server"
)

const (
	// trackerInterval is the announce interval the tracker asks for.
	// libtorrent (and so qBittorrent) waits at least 5 minutes between
	// announces whatever the tracker says, so peers are kept for an hour
	// (trackerPeerTTL): a seeder must not expire from the tracker between
	// two leechers.
	trackerInterval = 5 * time.Second
	trackerPeerTTL  = time.Hour
	// settle is how long the harness waits after a download before it
	// reads the seeders' upload counters, which they report late (up to
	// half a second for libtorrent_client.py).
	settle = time.Second
)

type config struct {
	harness.Common
	leechers []string
	perfDir  string
	pprofDir string
}

func main() { harness.Main("dlbench", run) }

func parseArgs(args []string) (*config, error) {
	c := &config{}
	f := harness.NewFlags("dlbench", "[-size 1G] [-runs 3] [-seeders all] [-leechers all] [-piece-size SIZE] [-timeout D] [-dir DIR] [-keep] [-cpuprofile DIR] [-perf DIR]", &c.Common)
	f.Size("content `SIZE` in bytes, or with a binary unit: 256M, 1G, 4GiB", 1<<20, "1 MiB")
	f.Runs(3, "time each leecher `N` times")
	f.Seeders("all", "comma-separated `CLIENTS` to seed: aria2c, qbittorrent, libtorrent, ours, or all")
	leechers := f.FS.String("leechers", "all", "comma-separated `CLIENTS` to time as leechers: aria2c, qbittorrent, libtorrent, ours, or all")
	f.PieceSize()
	f.Timeout("download")
	f.Dir(harness.WorkDirUsage)
	f.Keep("keep the work folder: the content, the torrent and every program's log (not the downloads)")
	f.FS.StringVar(&c.pprofDir, "cpuprofile", "", "write a Go CPU profile of our leecher (AIOTORRENT_CPUPROFILE) for each run in `DIR`, as ours-RUN.pprof")
	f.FS.StringVar(&c.perfDir, "perf", "", "run our leecher under \"perf record -g\" and write its profiles (ours-RUN.data) in `DIR`; its figures then include perf's overhead")
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if c.leechers, err = harness.ParseClients(*leechers); err != nil {
		return nil, fmt.Errorf("-leechers: %w", err)
	}
	for _, d := range []struct {
		flag string
		dir  *string
	}{{"-perf", &c.perfDir}, {"-cpuprofile", &c.pprofDir}} {
		if *d.dir == "" {
			continue
		}
		if err := harness.CheckDir(d.flag, *d.dir); err != nil {
			return nil, err
		}
		if *d.dir, err = filepath.Abs(*d.dir); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// bench is the swarm the leechers download from.
type bench struct {
	cfg *config
	// swarm holds the work folder (everything the harness writes),
	// aiotorrent, the torrent, the folder of the content for every
	// seeder, and the real clients' programs.
	swarm    *harness.Swarm
	perf     string            // perf, with -perf
	file     string            // the content
	sum      [sha256.Size]byte // of the content
	srv      *server.Server
	announce string
	seeders  []*harness.Seeder
}

// measure is one timed download.
type measure struct {
	wall     time.Duration
	cpu      time.Duration // user + system
	maxRSS   int64         // bytes
	peakAnon int64         // bytes, sampled
	seedCPU  time.Duration // the seeders' CPU time during the download
	sent     map[string]int64
}

// row is one leecher's results: a row of the report.
type row struct {
	name     string
	ok       []*measure
	failures []string
}

func run(ctx context.Context, args []string) error {
	cfg, err := parseArgs(args)
	if err != nil {
		return err
	}
	// The seeders report what they upload, for "sent by".
	b := &bench{cfg: cfg, swarm: &harness.Swarm{CountUploads: true}}
	if err := b.findTools(slices.Concat(cfg.Seeders, cfg.leechers)); err != nil {
		return err
	}
	sw := b.swarm
	w, err := harness.Workspace(ctx, cfg.Dir, "dlbench", 2*cfg.Size+256<<20, "the content and one download", cfg.Keep)
	if err != nil {
		return err
	}
	defer w.Cleanup()
	sw.Work, sw.Bin = w.Dir, w.Bin

	// The tracker, in this process.
	var stopTracker func()
	b.announce, b.srv, stopTracker, err = harness.StartTracker(server.Config{Interval: trackerInterval, MinInterval: time.Second, PeerTTL: trackerPeerTTL})
	if err != nil {
		return err
	}
	defer stopTracker()
	harness.Progress("tracker on %s", b.announce)

	// The content and its torrent.
	if b.file, err = sw.MakeTorrent(ctx, "dlbench", cfg.Size, b.announce, cfg.PieceSize); err != nil {
		return err
	}
	if b.sum, err = harness.SHA256File(b.file); err != nil {
		return err
	}

	if b.seeders, err = sw.StartSeeders(ctx, cfg.Seeders); err != nil {
		return err
	}
	if err := b.waitTracker(ctx); err != nil {
		return err
	}

	rows := make([]*row, len(cfg.leechers))
	for i, name := range cfg.leechers {
		rows[i] = &row{name: name}
	}
	cond := conditions{Conditions: harness.Watch()}
	for r := range cfg.Runs {
		for i := range rows {
			rw := rows[(i+r)%len(rows)]
			// The seeders serve the content from memory.
			n, err := harness.KeepCached(b.file, "the content")
			if err != nil {
				return err
			}
			cond.rewarms += n
			m, err := b.leech(ctx, rw.name, r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				msg := fmt.Sprintf("run %d, %s: %v", r+1, rw.name, err)
				harness.Progress("FAIL: %s", msg)
				rw.failures = append(rw.failures, msg)
				continue
			}
			rw.ok = append(rw.ok, m)
			harness.Progress("run %d/%d  %-11s %7.2fs wall %6.0f MiB/s  CPU %6.2fs  peak RSS %5.0f MiB (anon %4.0f)  seeders' CPU %6.2fs  sent by: %s",
				r+1, cfg.Runs, rw.name, m.wall.Seconds(), harness.MiB(cfg.Size)/m.wall.Seconds(), m.cpu.Seconds(),
				harness.MiB(m.maxRSS), harness.MiB(m.peakAnon), m.seedCPU.Seconds(), b.shares(m.sent))
		}
	}
	cond.Stop()

	// Every seeder must still be there: one that died during the runs
	// changed the swarm under the later leechers.
	gone := harness.Exited(b.seeders)
	b.report(os.Stdout, w.Root, w.GoCmd, &cond, rows, gone)

	failed := len(gone)
	for _, rw := range rows {
		failed += len(rw.failures)
	}
	if failed > 0 {
		return fmt.Errorf("%d failures (see the report)", failed)
	}
	return nil
}

// leech times the leecher name once (run r, counting from 0), checks its
// download and removes it.
func (b *bench) leech(ctx context.Context, name string, r int) (*measure, error) {
	out := filepath.Join(b.swarm.Work, "runs", fmt.Sprintf("%d-%s", r+1, name))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if b.cfg.Keep {
			// Only the download itself: the logs stay.
			os.RemoveAll(out)
			os.RemoveAll(filepath.Join(out+"-profile", "downloads"))
			return
		}
		for _, suffix := range []string{"", "-home", "-profile", "-lt"} {
			os.RemoveAll(out + suffix)
		}
		os.Remove(out + ".log")
	}()
	sent0, err := b.uploaded(ctx)
	if err != nil {
		return nil, err
	}
	cpu0, err := b.seedersCPU()
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var m *measure
	switch name {
	case harness.ClientOurs:
		m, err = b.oursLeech(lctx, out, r)
	case harness.ClientAria2:
		m, err = b.aria2Leech(lctx, out)
	case harness.ClientQbit:
		m, err = b.qbitLeech(lctx, out)
	case harness.ClientLT:
		m, err = b.ltLeech(lctx, out)
	default:
		err = fmt.Errorf("unknown leecher %q", name)
	}
	if err != nil {
		return nil, err
	}
	cpu1, err := b.seedersCPU()
	if err != nil {
		return nil, err
	}
	m.seedCPU = cpu1 - cpu0
	// The bytes each seeder sent, once the counters have caught up.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(settle):
	}
	sent1, err := b.uploaded(ctx)
	if err != nil {
		return nil, err
	}
	m.sent = make(map[string]int64)
	for k, v := range sent1 {
		m.sent[k] = v - sent0[k]
	}
	if err := harness.VerifyFile(filepath.Join(out, b.swarm.MI.Info.Name), b.cfg.Size, b.sum); err != nil {
		return nil, fmt.Errorf("download not identical to the source: %w", err)
	}
	return m, nil
}

// uploaded returns what each seeder reports it has uploaded.
func (b *bench) uploaded(ctx context.Context) (map[string]int64, error) {
	out := make(map[string]int64)
	for _, s := range b.seeders {
		if s.Proc.HasExited() {
			return nil, fmt.Errorf("seeder %v\n%s", s.Proc.ExitError(), s.Proc.Tail())
		}
		n, err := s.Uploaded(ctx)
		if err != nil {
			return nil, fmt.Errorf("seeder %s: upload counter: %w", s.Name, err)
		}
		out[s.Name] = n
	}
	return out, nil
}

// seedersCPU returns the CPU time all the seeders have used so far.
func (b *bench) seedersCPU() (time.Duration, error) {
	var total time.Duration
	for _, s := range b.seeders {
		d, err := harness.CPUTime(s.Proc.PID())
		if err != nil {
			return 0, fmt.Errorf("seeder %s: %w", s.Name, err)
		}
		total += d
	}
	return total, nil
}

// shares describes how much each seeder sent, in percent of the content.
func (b *bench) shares(sent map[string]int64) string {
	var parts []string
	for _, s := range b.seeders {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", s.Name, 100*float64(sent[s.Name])/float64(b.cfg.Size)))
	}
	return strings.Join(parts, ", ")
}

// waitTracker waits until the tracker lists every seeder. They announce
// once they have checked their data (aria2c every 2 s until then).
func (b *bench) waitTracker(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		st := b.srv.Stats()
		if st.Seeders+st.Leechers >= len(b.seeders) {
			harness.Progress("tracker: %d seeders, %d leechers", st.Seeders, st.Leechers)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tracker lists %d seeders and %d leechers, want the %d seeders: %w",
				st.Seeders, st.Leechers, len(b.seeders), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findTools finds the programs the chosen clients need, and perf with
// -perf.
func (b *bench) findTools(clients []string) error {
	if b.cfg.perfDir != "" {
		var err error
		if b.perf, err = exec.LookPath("perf"); err != nil {
			return errors.New("perf is not installed (not found in PATH): install the Debian package \"linux-perf\", or leave out -perf")
		}
	}
	return b.swarm.FindClients(clients, "-seeders and -leechers")
}

// conditions describes what else was happening on the machine.
type conditions struct {
	*harness.Conditions
	rewarms int // times the content had to be read back into the page cache
}

// label is how the report names a client.
func label(name string) string {
	if name == harness.ClientOurs {
		return "aiotorrent (ours)"
	}
	return name
}

func (b *bench) report(w io.Writer, root, goCmd string, cond *conditions, rows []*row, gone []string) {
	cfg := b.cfg
	harness.WriteHeader(w, "dlbench", "; every seeder, the leecher and the tracker share these cores", cond.Conditions)
	fmt.Fprintf(w, "- page cache: the content had to be read back in %d times (checked before every download); downloads are written to the page cache and deleted after checking\n", cond.rewarms)
	fmt.Fprintf(w, "- Go: %s; aiotorrent built from %s%s\n", harness.CmdLine(goCmd, "version"), root, harness.VCSInfo(root))
	b.swarm.Versions(w)
	fmt.Fprintf(w, "- content: one file of %d bytes (%.0f MiB), %d pieces of %d KiB; tracker %s (in the harness, interval %v)\n",
		cfg.Size, harness.MiB(cfg.Size), b.swarm.MI.Info.NumPieces(), b.swarm.MI.Info.PieceLength>>10, b.announce, trackerInterval)
	var names []string
	for _, s := range b.seeders {
		names = append(names, label(s.Name))
	}
	fmt.Fprintf(w, "- seeders: %s, all on 127.0.0.1, serving one copy of the content\n", strings.Join(names, ", "))
	if cfg.pprofDir != "" {
		fmt.Fprintf(w, "- our leecher wrote a Go CPU profile of each run (AIOTORRENT_CPUPROFILE, in %s)\n", cfg.pprofDir)
	}
	if cfg.perfDir != "" {
		fmt.Fprintf(w, "- **our leecher ran under `perf record -g`** (profiles in %s): its figures include perf's overhead\n", cfg.perfDir)
	}
	fmt.Fprintf(w, "- runs: %d per leecher, one leecher at a time, order rotated each run; every download checked with SHA-256 against the source\n\n", cfg.Runs)

	rate := func(rw *row) float64 {
		if len(rw.ok) == 0 {
			return 0
		}
		return harness.MiB(cfg.Size) / harness.Median(walls(rw)).Seconds()
	}
	var aria2Rate, bestRate float64
	best := ""
	for _, rw := range rows {
		if rw.name == harness.ClientAria2 {
			aria2Rate = rate(rw)
		}
		if rw.name != harness.ClientOurs && rate(rw) > bestRate {
			bestRate, best = rate(rw), rw.name
		}
	}
	ratio := func(r, ref float64) string {
		if r == 0 || ref == 0 {
			return ""
		}
		return fmt.Sprintf("%.2f×", r/ref)
	}

	fmt.Fprintln(w, "| leecher | runs ok | median wall s | MiB/s | vs aria2c | vs best other | median CPU s | peak RSS MiB | peak anon MiB | seeders' CPU s | min wall s | max wall s |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, rw := range rows {
		if len(rw.ok) == 0 {
			fmt.Fprintf(w, "| %s | 0/%d | **FAIL** | | | | | | | | | |\n", label(rw.name), cfg.Runs)
			continue
		}
		var cpus, seedCPUs []time.Duration
		var rss, anon int64
		for _, m := range rw.ok {
			cpus = append(cpus, m.cpu)
			seedCPUs = append(seedCPUs, m.seedCPU)
			rss, anon = max(rss, m.maxRSS), max(anon, m.peakAnon)
		}
		ws := walls(rw)
		fmt.Fprintf(w, "| %s | %d/%d | %.2f | %.0f | %s | %s | %.2f | %.0f | %.0f | %.2f | %.2f | %.2f |\n",
			label(rw.name), len(rw.ok), cfg.Runs, harness.Median(ws).Seconds(), rate(rw),
			ratio(rate(rw), aria2Rate), ratio(rate(rw), bestRate),
			harness.Median(cpus).Seconds(), harness.MiB(rss), harness.MiB(anon), harness.Median(seedCPUs).Seconds(),
			slices.Min(ws).Seconds(), slices.Max(ws).Seconds())
	}
	fmt.Fprintln(w)
	if best != "" {
		fmt.Fprintf(w, "Best other leecher (highest median MiB/s, not ours): %s.\n\n", label(best))
	}

	// Who sent what: the seeders' own upload counters.
	fmt.Fprintf(w, "Where the data came from: payload each seeder reported sending during the download, in %% of the content, summed over the runs that succeeded; \"sent ÷ size\" above 1 means blocks were sent twice.\n\n")
	fmt.Fprint(w, "| leecher |")
	for _, s := range b.seeders {
		fmt.Fprintf(w, " from %s |", label(s.Name))
	}
	fmt.Fprintln(w, " sent ÷ size |")
	fmt.Fprint(w, "|---|")
	for range b.seeders {
		fmt.Fprint(w, "--:|")
	}
	fmt.Fprintln(w, "--:|")
	for _, rw := range rows {
		if len(rw.ok) == 0 {
			continue
		}
		total := float64(cfg.Size) * float64(len(rw.ok))
		fmt.Fprintf(w, "| %s |", label(rw.name))
		var all int64
		for _, s := range b.seeders {
			var n int64
			for _, m := range rw.ok {
				n += m.sent[s.Name]
			}
			all += n
			fmt.Fprintf(w, " %.0f%% |", 100*float64(n)/total)
		}
		fmt.Fprintf(w, " %.3f |\n", float64(all)/total)
	}
	fmt.Fprintln(w)

	var failures []string
	for _, rw := range rows {
		failures = append(failures, rw.failures...)
	}
	if len(failures) == 0 && len(gone) == 0 {
		fmt.Fprintf(w, "Every download was complete and identical to the source.\n")
		return
	}
	harness.WriteFailures(w, failures, gone)
}

func walls(rw *row) []time.Duration {
	var ws []time.Duration
	for _, m := range rw.ok {
		ws = append(ws, m.wall)
	}
	return ws
}
