//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
)

// The four BitTorrent programs as leechers; the seeders, and the
// qBittorrent and libtorrent processes both roles drive, are in
// bench/internal/harness. Every one listens and connects on 127.0.0.1
// only, with DHT, local peer discovery, peer exchange and port mapping
// off: the tracker is the only source of peers. The settings are those of
// internal/swarmtest (bench.go, where aria2c's and qBittorrent's are
// shared, and libtorrent_client.py), where each is explained.

// sampleAnon records the peak of a process's resident anonymous memory
// (RssAnon). Unlike the peak RSS it leaves out mapped file pages:
// libtorrent 2.0 (and qBittorrent on it) reads and writes the data
// through memory-mapped files, so its RSS counts the data it has touched.
func sampleAnon(pid int) *harness.PeakSampler { return harness.SamplePeak(pid, "RssAnon") }

// oursLeech runs "aiotorrent download" into out until it exits; with
// -perf, under "perf record", which writes its profile in the -perf folder
// as ours-RUN.data; with -cpuprofile, it writes a Go CPU profile there.
func (b *bench) oursLeech(ctx context.Context, out string, r int) (*measure, error) {
	// Resume records as a user has them, in the work folder rather than
	// the user's own state folder.
	argv := []string{b.swarm.Bin, "download", "-o", out, "--listen", "127.0.0.1:0", "--no-dht", "--progress-every", "1s",
		"--state-dir", filepath.Join(b.swarm.Work, "state"), b.swarm.Torrent}
	if b.perf != "" {
		data := filepath.Join(b.cfg.perfDir, fmt.Sprintf("ours-%d.data", r+1))
		argv = append([]string{b.perf, "record", "-e", "cpu-clock", "-F", "999", "-g", "-o", data, "--"}, argv...)
	}
	var env []string
	if b.cfg.pprofDir != "" {
		env = append(env, "AIOTORRENT_CPUPROFILE="+filepath.Join(b.cfg.pprofDir, fmt.Sprintf("ours-%d.pprof", r+1)))
	}
	p, err := harness.StartProc("aiotorrent download", out+".log", b.swarm.Work, env, nil, argv...)
	if err != nil {
		return nil, err
	}
	return b.waitExit(ctx, p)
}

// waitExit waits for a leecher that exits when its download is complete.
func (b *bench) waitExit(ctx context.Context, p *harness.Proc) (*measure, error) {
	anon := sampleAnon(p.PID())
	select {
	case <-p.Exited:
	case <-ctx.Done():
		anon.Stop()
		p.Stop()
		return nil, fmt.Errorf("%s: %w\n%s", p.Name, ctx.Err(), p.Tail())
	}
	wall := time.Since(p.Started)
	peakAnon := anon.Stop()
	if p.Err() != nil {
		return nil, fmt.Errorf("%s: %w\n%s", p.Name, p.Err(), p.Tail())
	}
	u := p.ExitUsage()
	return &measure{wall: wall, cpu: u.CPU, maxRSS: u.MaxRSS, peakAnon: peakAnon}, nil
}

// aria2Leech runs aria2c into out; it exits once the download is complete
// (--seed-time=0). aria2c checks each piece as it arrives.
func (b *bench) aria2Leech(ctx context.Context, out string) (*measure, error) {
	port, err := swarmtest.FreePort()
	if err != nil {
		return nil, err
	}
	home := out + "-home"
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	args := append([]string{b.swarm.Aria2Cmd}, swarmtest.Aria2Args(port, out, filepath.Join(home, "aria2.log"), "notice")...)
	args = append(args, "--seed-time=0", b.swarm.Torrent)
	p, err := harness.StartProc("aria2c leecher", filepath.Join(home, "output.log"), home, []string{"HOME=" + home}, nil, args...)
	if err != nil {
		return nil, err
	}
	return b.waitExit(ctx, p)
}

// qbitLeech starts a fresh qbittorrent-nox, waits for its Web API, and
// times from adding the torrent to qBittorrent reporting it complete: the
// daemon's start-up is not counted. CPU time is counted over the same
// span; the peak RSS is the process's since it started (VmHWM).
func (b *bench) qbitLeech(ctx context.Context, out string) (*measure, error) {
	dir := out + "-profile"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, harness.ReadyTimeout)
	q, err := b.swarm.StartQbit(startCtx, "qbittorrent-nox leecher", dir)
	cancel()
	if err != nil {
		return nil, err
	}
	defer q.Proc.Stop()
	pid := q.Proc.PID()
	cpu0, err := harness.CPUTime(pid)
	if err != nil {
		return nil, err
	}
	anon := sampleAnon(pid)
	defer anon.Stop()
	start := time.Now()
	if err := q.Add(ctx, b.swarm.Torrent, out); err != nil {
		return nil, err
	}
	if err := q.WaitComplete(ctx, b.swarm.MI.InfoHash.String()); err != nil {
		return nil, err
	}
	wall := time.Since(start)
	cpu1, err1 := harness.CPUTime(pid)
	hwm, err2 := harness.StatusBytes(pid, "VmHWM")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &measure{wall: wall, cpu: cpu1 - cpu0, maxRSS: hwm, peakAnon: anon.Stop()}, nil
}

// ltLeech times libtorrent_client.py from its start to the status line
// that reports the download complete (libtorrent checks each piece as it
// arrives); CPU time and peak RSS are read from /proc at that moment.
func (b *bench) ltLeech(ctx context.Context, out string) (*measure, error) {
	dir := out + "-lt"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := b.swarm.StartLT("libtorrent leecher", dir, out, false)
	if err != nil {
		return nil, err
	}
	defer l.Proc.Stop()
	pid := l.Proc.PID()
	anon := sampleAnon(pid)
	defer anon.Stop()
	_, at, err := l.WaitFor(ctx, harness.LTStatus.Complete)
	if err != nil {
		return nil, err
	}
	cpu, err1 := harness.CPUTime(pid)
	hwm, err2 := harness.StatusBytes(pid, "VmHWM")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &measure{wall: at.Sub(l.Proc.Started), cpu: cpu, maxRSS: hwm, peakAnon: anon.Stop()}, nil
}
