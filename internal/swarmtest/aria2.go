package swarmtest

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// Real BitTorrent clients as peers for tests: aria2c (this file),
// qbittorrent-nox (qbittorrent.go) and libtorrent through its Python
// binding (libtorrent.go). Each runs as a separate process for one test,
// listening and connecting on 127.0.0.1 only, with DHT, local peer
// discovery, peer exchange and port mapping off: the trackers in the
// torrent are its only source of peers. Each is stopped when the test
// ends (SIGTERM, then SIGKILL after stopTimeout), and its output and logs
// are shown when the test fails (process.go).

// Aria2 is an aria2c process seeding or downloading one torrent, made by
// [Aria2Seed] or [Aria2Leech].
//
// aria2c (1.36) announces to HTTP trackers only: it uses UDP trackers only
// when its DHT is on, and here it is off. Give it torrents with an HTTP
// tracker.
type Aria2 struct {
	proc *process
	port int
}

// Aria2Seed starts aria2c seeding the torrent at torrentPath from the data
// in dataDir (the folder that holds the torrent's file or folder). It
// checks the data first (-V) and then seeds until the test ends. It
// returns at once; a leecher learns of it once it has checked the data and
// announced, so wait for the tracker to report a seeder.
//
// It needs aria2c (Debian package aria2): without it the test is skipped,
// or fails if [RequireEnv] is set.
func Aria2Seed(t testing.TB, torrentPath, dataDir string) *Aria2 {
	t.Helper()
	return startAria2(t, "aria2c seeder", torrentPath, dataDir,
		"--check-integrity=true", // -V: hash the data before seeding
		"--seed-ratio=0.0",       // with no --seed-time: seed for ever
	)
}

// Aria2Leech starts aria2c downloading the torrent at torrentPath into
// outDir. It exits once the download is complete and checked
// (--seed-time=0): [Aria2.Wait] returns then.
//
// It needs aria2c (Debian package aria2): without it the test is skipped,
// or fails if [RequireEnv] is set.
func Aria2Leech(t testing.TB, torrentPath, outDir string) *Aria2 {
	t.Helper()
	return startAria2(t, "aria2c leecher", torrentPath, outDir,
		"--seed-time=0",
	)
}

func startAria2(t testing.TB, name, torrentPath, dir string, extra ...string) *Aria2 {
	t.Helper()
	bin := Tool(t, "aria2c", "aria2")
	torrentPath, err := filepath.Abs(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	logFile := filepath.Join(home, "aria2.log")
	port := freePort(t)
	args := Aria2Args(port, dir, logFile, "info")
	args = append(args, extra...)
	args = append(args, torrentPath)
	p := startProcess(t, name, processCommand{
		path: bin, args: args, dir: home, env: []string{"HOME=" + home},
		logFiles: []string{logFile},
		logNoise: aria2LogNoise,
	})
	return &Aria2{proc: p, port: port}
}

// aria2LogNoise marks the lines of aria2c's info log left out of failure
// messages: one or more per 16 KiB block, they would push out the rest.
var aria2LogNoise = []string{
	" piece index=", " request index=", " cancel index=", " have index=",
	" allowed fast index=", "we got new piece.", " bitfield ",
}

// Port returns the TCP port aria2c listens on for peers, on 127.0.0.1.
func (a *Aria2) Port() int { return a.port }

// Wait waits until aria2c exits and returns nil if it exited with status
// 0, or an error that includes its output and log. It returns ctx's error,
// with the output so far, if ctx is done first. A leecher exits when its
// download is complete; a seeder only when stopped.
func (a *Aria2) Wait(ctx context.Context) error { return a.proc.wait(ctx) }

// Logs returns the end of aria2c's output and log file.
func (a *Aria2) Logs() string { return a.proc.logs() }

// clientStartTimeout bounds how long a harness waits for a client to be
// ready: listening, or done checking a seeder's data.
const clientStartTimeout = 30 * time.Second
