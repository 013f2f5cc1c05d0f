//go:build linux

// Command seedbench measures aiotorrent as a seeder against real
// BitTorrent programs: aria2c downloads one torrent from one seeder at a
// time, "aiotorrent seed", qbittorrent-nox or aria2c (and libtorrent,
// through its Python binding, if asked), and the harness times each
// download and counts the CPU time the seeder spent serving it.
//
// Usage, from anywhere inside the module:
//
//	go run ./bench/seedbench [-size 1G] [-runs 3] [-seeders aiotorrent,qbittorrent,aria2c] [-piece-size SIZE] [-timeout D] [-dir DIR] [-keep] [-json FILE]
//
// It builds cmd/aiotorrent, writes one file of pseudo-random bytes and a
// torrent of it that announces to a tracker run inside this program on
// 127.0.0.1. Then, -runs times, for each seeder in an order that rotates
// from run to run, it:
//
//  1. starts the seeder, a fresh process with a fresh profile, on the
//     one copy of the content, and waits until it has checked the data,
//     answers a handshake with every piece, and has announced to the
//     tracker;
//  2. measures the seeder's CPU time for one idle second;
//  3. starts a fresh aria2c into an empty folder, follows its progress
//     through its JSON-RPC (every 20 ms) and takes the transfer rate
//     from it, and times it from process start to complete; it counts
//     the CPU time the seeder (and any child of it) used over that span,
//     and samples the seeder's resident memory;
//  4. checks the download against the source with SHA-256 and reads how
//     much the seeder says it sent;
//  5. stops both.
//
// The tracker answers the leecher's announces itself, with the one
// seeder, and records only the seeder's: the leecher has one connection,
// to the seeder, and the seeder never learns the leecher's address. Every
// program listens and connects on 127.0.0.1 only, with DHT, local peer
// discovery, peer exchange and port mapping off.
//
// It prints a Markdown report on standard output, with each seeder's
// throughput and CPU time as ratios to ours from the same run; progress
// goes to standard error; -json writes the figures as JSON too. Every
// program it starts is stopped when it ends, also on Ctrl-C. It exits 1
// if a download failed.
//
// It runs on Linux only: it reads /proc.
package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
)

const (
	// idleSpan is how long the seeder's CPU time is counted, once it
	// serves, before the leecher starts: what it uses doing nothing.
	idleSpan = time.Second
	// settle is how long the harness waits after a download before it
	// reads the seeder's upload counter, which may lag (aiotorrent
	// reports it every 250 ms, libtorrent_client.py every 500 ms).
	settle = time.Second
	// announceTimeout bounds the wait for a seeder's first announce, and
	// reannounce the wait for it to be listed as a seeder after one made
	// while it was checking.
	announceTimeout = 30 * time.Second
	reannounce      = 3 * time.Second
)

type config struct {
	harness.Common
	jsonPath string
}

func main() { harness.Main("seedbench", run) }

func run(ctx context.Context, args []string) error { return runTo(ctx, args, os.Stdout) }

func parseArgs(args []string) (*config, error) {
	c := &config{}
	f := harness.NewFlags("seedbench", "[-size 1G] [-runs 3] [-seeders aiotorrent,qbittorrent,aria2c] [-piece-size SIZE] [-timeout D] [-dir DIR] [-keep] [-json FILE]", &c.Common)
	f.Size("content `SIZE` in bytes, or with a binary unit: 256M, 1G, 4GiB", 1<<20, "1 MiB")
	f.Runs(3, "downloads from each seeder, `N`")
	f.Seeders("aiotorrent,qbittorrent,aria2c", "comma-separated `CLIENTS` to measure as seeders: aiotorrent (or ours), qbittorrent, aria2c, libtorrent, or all")
	f.PieceSize()
	f.Timeout("download")
	f.Dir(harness.WorkDirUsage)
	f.Keep("keep the work folder: the content, the torrent and every program's log (not the downloads)")
	f.FS.StringVar(&c.jsonPath, "json", "", "also write the figures as JSON to `FILE`")
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	return c, nil
}

// bench is the content, the torrent and what the downloads measured.
type bench struct {
	cfg *config
	// swarm holds the work folder, aiotorrent, the torrent, the folder
	// of the content and the real clients' programs; it starts the
	// seeders.
	swarm     *harness.Swarm
	file      string            // the content
	sum       [sha256.Size]byte // of the content
	tr        *front
	qbitPrefs map[string]any // qBittorrent's settings, when it seeds
	rewarms   int            // times the content had to be read back into the page cache
	rows      []*row         // one per seeder, in the order of cfg.Seeders
}

// row is one seeder's downloads.
type row struct {
	name     string
	ok       []*measure
	failures []string
}

// measure is one download from one seeder.
type measure struct {
	Run        int     `json:"run"` // from 1
	Seeder     string  `json:"seeder"`
	ReadyS     float64 `json:"seeder_ready_s"`   // seeder start to serving and announced
	ListedSeed bool    `json:"listed_as_seeder"` // the tracker listed it as a seeder, not a leecher
	// The transfer, as aria2c reported its progress (see leecher.go):
	// the time between its first and last answers with part of the
	// torrent, and the bytes between them over that time. 0 when the
	// download was too quick to see in between.
	TransferS float64 `json:"transfer_s"`
	MiBps     float64 `json:"transfer_mib_per_s"`
	Polls     int     `json:"progress_polls"`
	// The leecher process, from its start to the first progress answer
	// with the whole torrent, and size over it.
	TotalS     float64 `json:"leecher_total_s"`
	TotalMiBps float64 `json:"total_mib_per_s"`
	SeedCPUS   float64 `json:"seeder_cpu_s"`      // seeder's CPU time over TotalS
	IdleCPU    float64 `json:"seeder_idle_cpu"`   // seeder's CPU seconds per second before the leecher
	SeedRSS    int64   `json:"seeder_peak_rss"`   // bytes, VmRSS sampled over TotalS
	SeedAnon   int64   `json:"seeder_peak_anon"`  // bytes, RssAnon sampled over TotalS
	LeechCPUS  float64 `json:"leecher_cpu_s"`     // aria2c's, from wait4
	LeechRSS   int64   `json:"leecher_max_rss"`   // bytes, aria2c's, from wait4
	Sent       int64   `json:"seeder_sent_bytes"` // payload the seeder reported sending
	Announces  int     `json:"leecher_announces"` // the leecher's announces answered
}

func runTo(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseArgs(args)
	if err != nil {
		return err
	}
	// The seeders report what they upload: "sent ÷ size".
	b := &bench{cfg: cfg, swarm: &harness.Swarm{CountUploads: true}}
	// aria2c is the leecher whatever the seeders.
	if err := b.swarm.FindClients(append([]string{harness.ClientAria2}, cfg.Seeders...), "-seeders (aria2c is also the leecher)"); err != nil {
		return err
	}
	sw := b.swarm
	w, err := harness.Workspace(ctx, cfg.Dir, "seedbench", 2*cfg.Size+256<<20, "the content and one download", cfg.Keep)
	if err != nil {
		return err
	}
	defer w.Cleanup()
	sw.Work, sw.Bin = w.Dir, w.Bin

	if b.tr, err = startFront(); err != nil {
		return err
	}
	defer b.tr.close()
	harness.Progress("tracker on %s", b.tr.announce)

	// The content and its torrent.
	if b.file, err = sw.MakeTorrent(ctx, "seedbench", cfg.Size, b.tr.announce, cfg.PieceSize); err != nil {
		return err
	}
	if b.sum, err = harness.SHA256File(b.file); err != nil {
		return err
	}

	if err := b.readQbitPrefs(ctx); err != nil {
		return err
	}

	for _, name := range cfg.Seeders {
		b.rows = append(b.rows, &row{name: name})
	}
	cond := harness.Watch()
	for r := range cfg.Runs {
		for i := range b.rows {
			rw := b.rows[(i+r)%len(b.rows)]
			m, err := b.download(ctx, rw.name, r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				msg := fmt.Sprintf("run %d, seeder %s: %v", r+1, rw.name, err)
				harness.Progress("FAIL: %s", msg)
				rw.failures = append(rw.failures, msg)
				continue
			}
			rw.ok = append(rw.ok, m)
			harness.Progress("run %d/%d  %-11s transfer %6.3fs %5.0f MiB/s  aria2c start to complete %5.2fs  seeder CPU %6.2fs (idle %.0f%%)  peak RSS %5.0f MiB (anon %4.0f)  aria2c CPU %6.2fs  sent %.3f× size  ready after %.1fs",
				r+1, cfg.Runs, rw.name, m.TransferS, m.MiBps, m.TotalS, m.SeedCPUS, 100*m.IdleCPU,
				harness.MiB(m.SeedRSS), harness.MiB(m.SeedAnon), m.LeechCPUS, float64(m.Sent)/float64(cfg.Size), m.ReadyS)
		}
	}
	cond.Stop()

	sum := b.summarize()
	b.report(stdout, w.Root, w.GoCmd, cond, sum)
	if cfg.jsonPath != "" {
		if err := b.writeJSON(cfg.jsonPath, w.Root, w.GoCmd, cond, sum); err != nil {
			return err
		}
	}
	failed := 0
	for _, rw := range b.rows {
		failed += len(rw.failures)
	}
	if failed > 0 {
		return fmt.Errorf("%d failures (see the report)", failed)
	}
	return nil
}

// readQbitPrefs reads, if qBittorrent is among the seeders, the settings a
// fresh qbittorrent-nox with the harness's profile runs with, for the
// report: that nothing limits its upload.
func (b *bench) readQbitPrefs(ctx context.Context) error {
	if b.swarm.QbitCmd == "" || !slices.Contains(b.cfg.Seeders, harness.ClientQbit) {
		return nil
	}
	dir := filepath.Join(b.swarm.Work, "qbit-settings")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, harness.ReadyTimeout)
	defer cancel()
	q, err := b.swarm.StartQbit(ctx, "qbittorrent-nox (settings)", dir)
	if err != nil {
		return err
	}
	defer q.Proc.Stop()
	if b.qbitPrefs, err = q.Preferences(ctx); err != nil {
		return fmt.Errorf("qbittorrent-nox settings: %w", err)
	}
	return nil
}

// download measures one download by a fresh aria2c from a fresh seeder
// name, in run r (from 0).
func (b *bench) download(ctx context.Context, name string, r int) (*measure, error) {
	sw, cfg := b.swarm, b.cfg
	m := &measure{Run: r + 1, Seeder: name}
	out := filepath.Join(sw.Work, "runs", fmt.Sprintf("%d-%s", r+1, name))
	home := out + "-aria2c"
	for _, d := range []string{out, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	defer os.RemoveAll(out) // the download, even with -keep
	if !cfg.Keep {
		defer os.RemoveAll(home)
	}

	// The seeders serve the content from memory; they read it all when
	// they check it.
	n, err := harness.KeepCached(b.file, "the content")
	b.rewarms += n
	if err != nil {
		return nil, err
	}

	// A fresh seeder: StartSeeder makes its folder seeder-NAME, which
	// must not hold an earlier start's profile (qBittorrent would still
	// have the torrent in it).
	leechPort, err := swarmtest.FreePort()
	if err != nil {
		return nil, err
	}
	b.tr.reset(leechPort)
	seedDir := filepath.Join(sw.Work, "seeder-"+name)
	if err := os.RemoveAll(seedDir); err != nil {
		return nil, err
	}
	start := time.Now()
	s, err := sw.StartSeeder(ctx, name)
	if err != nil {
		// It may have left its program running (a qbittorrent-nox whose
		// check failed): nothing else runs now, so stop all.
		harness.StopAll()
		return nil, err
	}
	defer func() {
		s.Proc.Stop()
		if cfg.Keep {
			os.Rename(seedDir, fmt.Sprintf("%s-%d", seedDir, r+1))
		} else {
			os.RemoveAll(seedDir)
		}
	}()
	b.tr.setSeeder(s.Addr)
	if m.ListedSeed, err = b.tr.waitAnnounced(ctx, announceTimeout, reannounce); err != nil {
		return nil, fmt.Errorf("%s seeder: %w\n%s", name, err, s.Proc.Tail())
	}
	m.ReadyS = time.Since(start).Seconds()
	pid := s.Proc.PID()

	// What it uses doing nothing.
	idle0, err := harness.TreeCPUTime(pid)
	if err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(idleSpan):
	}
	idle1, err := harness.TreeCPUTime(pid)
	if err != nil {
		return nil, err
	}
	m.IdleCPU = (idle1 - idle0).Seconds() / idleSpan.Seconds()

	// The checks above may have let pages go: the leecher must find it
	// all in memory.
	n, err = harness.KeepCached(b.file, "the content")
	b.rewarms += n
	if err != nil {
		return nil, err
	}
	sent0, err := s.Uploaded(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s seeder: upload counter: %w", name, err)
	}
	rss, anon := harness.SamplePeak(pid, "VmRSS"), harness.SamplePeak(pid, "RssAnon")
	defer rss.Stop()
	defer anon.Stop()
	cpu0, err := harness.TreeCPUTime(pid)
	if err != nil {
		return nil, err
	}

	// The leecher: aria2c, which checks each piece as it arrives, with
	// --seed-time=0 so that it stops uploading once complete. Its
	// JSON-RPC, on 127.0.0.1 only, reports its progress; the harness
	// tells it to exit once complete (see leecher.go).
	rpcPort, err := harness.FreePortExcept(leechPort)
	if err != nil {
		return nil, err
	}
	args := append([]string{sw.Aria2Cmd}, swarmtest.Aria2Args(leechPort, out, filepath.Join(home, "aria2.log"), "notice")...)
	args = append(args, "--seed-time=0", "--gid="+leechGID,
		"--enable-rpc=true", "--rpc-listen-all=false", "--rpc-listen-port="+strconv.Itoa(rpcPort), sw.Torrent)
	p, err := harness.StartProc("aria2c leecher", filepath.Join(home, "output.log"), home, []string{"HOME=" + home}, nil, args...)
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	lctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	rpc := "http://127.0.0.1:" + strconv.Itoa(rpcPort) + "/jsonrpc"
	watched := make(chan transfer, 1)
	go func() { watched <- watchTransfer(lctx, rpc, p.Exited) }()
	var tr transfer
	select {
	case tr = <-watched:
	case <-s.Proc.Exited:
		p.Stop()
		<-watched
		return nil, fmt.Errorf("%v during the download\n%s", s.Proc.ExitError(), s.Proc.Tail())
	}
	cpu1, cpuErr := harness.TreeCPUTime(pid)
	m.SeedRSS, m.SeedAnon = rss.Stop(), anon.Stop()
	if tr.done.IsZero() {
		p.Stop()
		if err := lctx.Err(); err != nil {
			return nil, fmt.Errorf("aria2c leecher: %w\n%s\n%s", err, p.Tail(), s.Proc.Tail())
		}
		return nil, fmt.Errorf("aria2c leecher: exited before its JSON-RPC reported the download complete (%d answers): %v\n%s", tr.polls, p.ExitError(), p.Tail())
	}
	total := tr.done.Sub(p.Started)
	if err := shutdownAria2(lctx, rpc); err != nil {
		p.Stop()
		return nil, err
	}
	select {
	case <-p.Exited:
	case <-lctx.Done():
		p.Stop()
		return nil, fmt.Errorf("aria2c leecher: not exiting after aria2.shutdown: %w\n%s", lctx.Err(), p.Tail())
	}
	if p.Err() != nil {
		return nil, fmt.Errorf("aria2c leecher: %w\n%s", p.Err(), p.Tail())
	}
	if cpuErr != nil {
		return nil, fmt.Errorf("%s seeder: %w\n%s", name, cpuErr, s.Proc.Tail())
	}
	u := p.ExitUsage()
	m.TotalS, m.TotalMiBps = total.Seconds(), harness.MiB(cfg.Size)/total.Seconds()
	rate, span := tr.rate()
	m.TransferS, m.MiBps, m.Polls = span.Seconds(), rate/(1<<20), tr.polls
	m.SeedCPUS = (cpu1 - cpu0).Seconds()
	m.LeechCPUS, m.LeechRSS = u.CPU.Seconds(), u.MaxRSS
	m.Announces = b.tr.leecherAnnounces()

	// What the seeder says it sent, once its counter has caught up.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(settle):
	}
	if s.Proc.HasExited() {
		return nil, fmt.Errorf("%v after the download\n%s", s.Proc.ExitError(), s.Proc.Tail())
	}
	sent1, err := s.Uploaded(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s seeder: upload counter: %w", name, err)
	}
	m.Sent = sent1 - sent0
	if err := harness.VerifyFile(filepath.Join(out, sw.MI.Info.Name), cfg.Size, b.sum); err != nil {
		return nil, fmt.Errorf("download not identical to the source: %w", err)
	}
	return m, nil
}
