//go:build linux

// Command streambench measures "aiotorrent stream", which serves a
// torrent's file over HTTP while it downloads, keeping pieces only in a
// bounded in-memory cache, against a swarm of real BitTorrent programs
// seeding on loopback.
//
// Usage, from anywhere inside the module:
//
//	go run ./bench/streambench [-size 1G] [-cache 64M] [-seeks 50] [-runs 3] [-seeders all] [-overhead 96M] [-timeout D] [-dir DIR] [-keep]
//
// It builds cmd/aiotorrent, writes one file of pseudo-random bytes and a
// torrent of it (announcing to a tracker run inside this program), and
// starts the seeders (-seeders: aria2c, qbittorrent, libtorrent, ours;
// default all four) as dlbench does, all serving that one file. Then, for
// each of -runs runs, it starts a fresh "aiotorrent stream --cache
// -cache" process that is given the seeders with --peer (--no-trackers)
// and, once its HTTP port answers GET /:
//
//  1. first byte: times GET /files/0 with "Range: bytes=0-" from sending
//     the request to the first byte of the body (the torrent starts
//     with this request);
//  2. throughput: reads that response to its end, comparing every byte
//     with the source, and times it from the request to the last byte;
//  3. seeks: makes -seeks more requests, each from a random offset
//     ("Range: bytes=OFF-"), reads 256 KiB of each (checked) and closes
//     it, timing each from the request to the first byte;
//  4. memory: reads the process's peak resident set (VmHWM, polled and
//     read after the stream and after the seeks) and fails if it exceeds
//     -cache plus -overhead;
//  5. disk: runs the process in an empty working folder with HOME, TMPDIR
//     and XDG_*_HOME pointing to empty folders, stops it with SIGINT and
//     fails if any of them is no longer empty.
//
// In the same run it times "aiotorrent download" of the torrent from the
// same seeders (--peer, --no-trackers), into the page cache, from process
// start to exit; stream and download go first in turn. After the runs, if
// strace is installed, one more stream process (untimed) streams the file
// and seeks under "strace -f" watching the system calls that create,
// write, rename or remove files: any of a path outside /dev, /proc and
// /sys is a failure.
//
// Flags:
//
//	-size      content size: bytes, or with a binary unit (256M, 1G); at
//	           least 16 times -cache for the memory figure to mean
//	           anything (default 1G)
//	-cache     the stream process's --cache (default 64M)
//	-seeks     random-offset requests per run (default 50)
//	-runs      stream processes (and downloads) per seeder set (default 3)
//	-seeders   comma-separated seeders: aria2c, qbittorrent, libtorrent,
//	           ours, or all (default all)
//	-overhead  allowed peak RSS above -cache; 0 only reports (default 96M)
//	-timeout   for one stream process or download (default 1 minute plus
//	           1 second per 2 MiB)
//	-dir       make the work folder in DIR (default $TMPDIR); it needs
//	           twice -size free
//	-keep      keep the work folder: content, torrent, logs and strace
//	           output
//
// It prints a Markdown report on standard output; progress goes to
// standard error. Every program it starts is stopped when it ends, also
// on Ctrl-C. It exits 1 if a run failed, bytes differed, the memory check
// or the disk check failed, or a seeder exited.
//
// It runs on Linux only: it reads /proc.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
	"github.com/aiotorrent/aiotorrent/tracker/server"
)

// seekRead is how much of each seek's response is read.
const seekRead = 256 << 10

type config struct {
	harness.Common
	cache, overhead int64
	seeks           int
}

func main() { harness.Main("streambench", run) }

func parseArgs(args []string) (*config, error) {
	c := &config{}
	f := harness.NewFlags("streambench", "[-size 1G] [-cache 64M] [-seeks 50] [-runs 3] [-seeders all] [-overhead 96M] [-timeout D] [-dir DIR] [-keep]", &c.Common)
	f.Size("content `SIZE` in bytes, or with a binary unit: 256M, 1G", 4<<20, "4 MiB")
	cache := f.FS.String("cache", "64M", "the stream process's --cache `SIZE`")
	f.FS.IntVar(&c.seeks, "seeks", 50, "random-offset requests per run")
	f.Runs(3, "stream processes and downloads to time, `N`")
	f.Seeders("all", "comma-separated `CLIENTS` to seed: aria2c, qbittorrent, libtorrent, ours, or all")
	overhead := f.FS.String("overhead", "96M", "fail if the stream process's peak RSS exceeds -cache plus `SIZE`; 0 only reports")
	f.Timeout("stream process or download")
	f.Dir(harness.WorkDirUsage)
	f.Keep("keep the work folder: the content, the torrent, every program's log and the strace output")
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if c.cache, err = harness.ParseSize(*cache); err != nil {
		return nil, fmt.Errorf("-cache: %w", err)
	}
	if *overhead != "0" {
		if c.overhead, err = harness.ParseSize(*overhead); err != nil {
			return nil, fmt.Errorf("-overhead: %w", err)
		}
	}
	if c.seeks < 0 {
		return nil, errors.New("-seeks must be at least 0")
	}
	return c, nil
}

// bench is the swarm and what the runs found.
type bench struct {
	cfg     *config
	work    string
	swarm   *harness.Swarm
	file    string // the content
	src     []byte // the content, mapped read-only, to check what is streamed
	peers   []string
	strace  string // strace, if installed (with setpriv)
	setpriv string
	seeders []*harness.Seeder

	runs   []*runResult
	traced *traceResult // nil without strace
}

func run(ctx context.Context, args []string) error {
	cfg, err := parseArgs(args)
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, swarm: &harness.Swarm{}}
	if err := b.swarm.FindClients(cfg.Seeders, "-seeders"); err != nil {
		return err
	}
	if b.strace, err = exec.LookPath("strace"); err == nil {
		if b.setpriv, err = exec.LookPath("setpriv"); err != nil {
			b.strace = "" // util-linux's setpriv stops the tracee if strace dies
		}
	}
	sw := b.swarm
	w, err := harness.Workspace(ctx, cfg.Dir, "streambench", 2*cfg.Size+256<<20, "the content and one download", cfg.Keep)
	if err != nil {
		return err
	}
	defer w.Cleanup()
	b.work, sw.Work, sw.Bin = w.Dir, w.Dir, w.Bin

	// The seeders announce to a tracker in this process; the stream and
	// download processes are given them with --peer instead, so that no
	// announce is timed.
	announce, _, stopTracker, err := harness.StartTracker(server.Config{Interval: 5 * time.Second, MinInterval: time.Second, PeerTTL: time.Hour})
	if err != nil {
		return err
	}
	defer stopTracker()

	if b.file, err = sw.MakeTorrent(ctx, "streambench", cfg.Size, announce, ""); err != nil {
		return err
	}
	if b.src, err = mapFile(b.file); err != nil {
		return err
	}
	defer syscall.Munmap(b.src)

	if b.seeders, err = sw.StartSeeders(ctx, cfg.Seeders); err != nil {
		return err
	}
	for _, s := range b.seeders {
		b.peers = append(b.peers, "--peer", s.Addr.String())
	}

	cond := harness.Watch()
	rewarms := 0
	for r := range cfg.Runs {
		n, err := harness.KeepCached(b.file, "the content")
		if err != nil {
			return err
		}
		rewarms += n
		res := &runResult{}
		b.runs = append(b.runs, res)
		// Stream and download go first in turn.
		steps := []func() error{
			func() error { return b.streamRun(ctx, r, res) },
			func() error { return b.downloadRun(ctx, r, res) },
		}
		if r%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			if err := step(); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res.failures = append(res.failures, err.Error())
				harness.Progress("FAIL: run %d: %v", r+1, err)
			}
		}
		harness.Progress("run %d/%d  first byte %s  stream %.2fs  download %.2fs  seeks median %s  peak RSS %.0f MiB",
			r+1, cfg.Runs, ms(res.firstByte), res.streamWall.Seconds(), res.downloadWall.Seconds(), ms(percentile(res.seeks, 50)), harness.MiB(res.hwmEnd))
	}
	cond.Stop()

	if b.strace != "" {
		b.traced = &traceResult{}
		if err := b.traceRun(ctx, b.traced); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.traced.failures = append(b.traced.failures, err.Error())
			harness.Progress("FAIL: strace run: %v", err)
		}
	}

	gone := harness.Exited(b.seeders)
	failures := b.report(os.Stdout, w.Root, w.GoCmd, cond, rewarms, gone)
	if failures > 0 {
		return fmt.Errorf("%d failures (see the report)", failures)
	}
	return nil
}

// mapFile maps the file at path read-only.
func mapFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return data, nil
}

// downloadRun times "aiotorrent download" of the torrent from the seeders,
// from process start to exit, and checks the file it wrote.
func (b *bench) downloadRun(ctx context.Context, r int, res *runResult) error {
	out := filepath.Join(b.work, fmt.Sprintf("download-%d", r+1))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(out)
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	argv := append([]string{b.swarm.Bin, "download", "-o", out, "--listen", "127.0.0.1:0", "--no-trackers", "--no-dht", "--json", "--progress-every", "1s",
		"--state-dir", filepath.Join(b.work, "state")}, b.peers...)
	var fetched atomic.Int64 // downloaded_bytes of its last JSON line
	p, err := harness.StartProc("aiotorrent download", out+".log", b.work, nil, func(line string) {
		var st statusLine
		if json.Unmarshal([]byte(line), &st) == nil && st.Downloaded > 0 {
			fetched.Store(st.Downloaded)
		}
	}, append(argv, b.swarm.Torrent)...)
	if err != nil {
		return err
	}
	defer p.Stop()
	select {
	case <-p.Exited:
	case <-ctx.Done():
		return fmt.Errorf("download: %w\n%s", ctx.Err(), p.Tail())
	}
	wall := time.Since(p.Started)
	if p.Err() != nil {
		return fmt.Errorf("download: %w\n%s", p.Err(), p.Tail())
	}
	got, err := mapFile(filepath.Join(out, b.swarm.MI.Info.Name))
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer syscall.Munmap(got)
	if off := firstDiff(got, b.src); off >= 0 {
		return fmt.Errorf("download: %d bytes, differing from the source at byte %d", len(got), off)
	}
	res.downloadWall, res.downloadFetched = wall, fetched.Load()
	if !b.cfg.Keep {
		os.Remove(out + ".log")
	}
	return nil
}

// firstDiff returns the first offset at which a and b differ, or -1 if
// they are equal.
func firstDiff(a, b []byte) int64 {
	const chunk = 1 << 20
	for off := 0; off < max(len(a), len(b)); off += chunk {
		x, y := a[min(off, len(a)):min(off+chunk, len(a))], b[min(off, len(b)):min(off+chunk, len(b))]
		if bytes.Equal(x, y) {
			continue
		}
		for i := range min(len(x), len(y)) {
			if x[i] != y[i] {
				return int64(off + i)
			}
		}
		return int64(off + min(len(x), len(y)))
	}
	return -1
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// peerList is the seeders' addresses, for the report.
func (b *bench) peerList() string {
	var s []string
	for _, sd := range b.seeders {
		s = append(s, fmt.Sprintf("%s (%v)", sd.Name, sd.Addr))
	}
	return strings.Join(s, ", ")
}
