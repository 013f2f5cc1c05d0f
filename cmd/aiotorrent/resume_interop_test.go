//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Issue 8: a download killed with SIGKILL at random moments and started
// again each time ends with files identical to the original, and what it
// fetched from the network over all the runs stays within 10% of the
// torrent's size plus one piece per restart.
//
// The swarm is real, independent software on 127.0.0.1: aria2c, libtorrent
// and qBittorrent seed, each uploading at a limited rate so that a
// download lasts long enough to be killed in the middle. The command
// reaches them only through counting proxies (--peer, --no-trackers), which
// count the bytes the seeders send it: that is what it fetched, protocol
// overhead included. Its resume state goes under XDG_STATE_HOME, a folder
// of the test's own.

const (
	// resumePieceLength is the torrent's piece size.
	resumePieceLength = 256 << 10
	// resumeKills is how many runs are killed before a run may finish.
	resumeKills = 20
	// resumeSeederRate is each seeder's upload limit in bytes per second:
	// the three together serve the 128 MiB in about 17 s.
	resumeSeederRate = 2560 << 10
	// resumeStartup is about how long a run takes to start downloading:
	// to start, check what is on disk and connect (50 to 200 ms here).
	// Kills aimed at the start-up come before it, the others after.
	resumeStartup = 200 * time.Millisecond
	// resumeRunTimeout bounds one run, the last (which downloads what
	// the killed ones left) included.
	resumeRunTimeout = 90 * time.Second
)

// resumeFiles is the content: 128 MiB in four files whose boundaries fall
// inside pieces.
var resumeFiles = []struct {
	path string
	size int
}{
	{"a.bin", 56<<20 + 12_345},
	{"notes.txt", 1_000},
	{"sub/b.bin", 40<<20 - 777},
	{"sub/c.bin", 32<<20 - 12_345 + 777 - 1_000},
}

// TestDownloadResumesAfterKill runs "aiotorrent download" from a real
// seeder swarm, kills it with SIGKILL after a random delay at least
// resumeKills times, starting it again each time with the same command
// line, then lets it finish. The first kill comes within the first second
// of the download, some come while a run starts up and checks the data
// already on disk, the rest are spread over the download; one more run is
// killed as soon as it reports the download complete. At the end the
// files are identical to the original, the run that finishes exits with
// status 0 and the bytes fetched over all runs are within budget.
//
// AIOTORRENT_RESUME_SEED=N repeats the random delays of a logged run.
func TestDownloadResumesAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real seeders and the built command for half a minute; skipped with -short")
	}
	swarmtest.Tool(t, "aria2c", "aria2")
	swarmtest.RequireLibtorrent(t)
	swarmtest.Tool(t, "qbittorrent-nox", "qbittorrent-nox")

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("AIOTORRENT_RESUME_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("AIOTORRENT_RESUME_SEED=%q: %v", s, err)
		}
	}
	t.Logf("random delays from seed %d (AIOTORRENT_RESUME_SEED=%d repeats them)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x8))

	work := t.TempDir()
	bin := buildCommand(t, work)
	content, mi, torrentPath, seederDirs := makeResumeContent(t, work, 3)
	size := mi.Info.Length
	t.Logf("torrent: %d files, %d bytes, %d pieces of %d KiB", len(resumeFiles), size, mi.Info.NumPieces(), resumePieceLength>>10)

	// The seeders, each behind a counting proxy.
	blocks := &blockLog{}
	proxies := startLimitedSeeders(t, mi, torrentPath, seederDirs, blocks)
	fetched := func() int64 {
		var n int64
		for _, p := range proxies {
			n += p.fetched.Load()
		}
		return n
	}

	out := filepath.Join(work, "out")
	home := filepath.Join(work, "home")
	state := filepath.Join(work, "state")
	for _, d := range []string{out, home, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"download", "--json", "-o", out, "--listen", "127.0.0.1:0", "--no-trackers"}
	for _, p := range proxies {
		args = append(args, "--peer", p.addr())
	}
	args = append(args, torrentPath)
	env := append(os.Environ(), "HOME="+home, "TMPDIR="+home, "XDG_STATE_HOME="+state,
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_DATA_HOME="+filepath.Join(home, "data"))
	t.Logf("command: %s %s", bin, strings.Join(args, " "))

	start := time.Now()
	// The rate the seeders serve at together, at least: their limits, or
	// more if a run of half a second or more was seen to get more. (Their
	// limiters allow bursts: a run may get 2 MB in its first 100 ms.)
	rate := float64(len(proxies) * resumeSeederRate)
	var (
		runs       int // runs started
		landed     int // kills that stopped a run
		before     = fetched()
		lastHave   = make([]bool, mi.Info.NumPieces())
		restarts   = 0
		startKills = 0 // kills aimed at the start-up
	)
	run := func(delay time.Duration, killOnDone bool) resumeRun {
		t.Helper()
		if runs > 0 {
			restarts++
		}
		runs++
		r := runKillable(t, bin, args, env, delay, killOnDone)
		// Let the proxies see the connections of the dead process close,
		// so that what a run fetched is counted in that run.
		for _, p := range proxies {
			p.waitIdle(5 * time.Second)
		}
		r.fetched = fetched() - before
		before += r.fetched
		have := verifiedPieces(t, mi, out)
		r.haveBefore, r.haveAfter = countTrue(lastHave), countTrue(have)
		if c := r.checked; c != nil && c.Present > r.haveBefore {
			t.Errorf("run %d said it found %d pieces present at start (%d from the resume record), but only %d were on disk and intact",
				runs, c.Present, c.Resumed, r.haveBefore)
		}
		r.blocks = blocks.take().account(mi, lastHave, have, r.fetched)
		lastHave = have
		return r
	}
	logRun := func(r resumeRun) {
		t.Helper()
		gained := int64(r.haveAfter-r.haveBefore) * resumePieceLength
		t.Logf("run %2d: %-22s after %6.3fs: fetched %9d B (%5.1f pieces; %+5.1f over what it added), pieces on disk %3d -> %3d%s\n\t%s",
			runs, r.outcome(), r.elapsed.Seconds(), r.fetched, float64(r.fetched)/resumePieceLength,
			float64(r.fetched-gained)/resumePieceLength, r.haveBefore, r.haveAfter, r.reported(), r.blocks)
	}

	// The kills while downloading.
	for landed < resumeKills {
		var delay time.Duration
		missing := mi.Info.NumPieces() - countTrue(lastHave)
		switch {
		case runs == 0:
			// Within the first second of the download.
			delay = time.Duration(rng.Int64N(int64(time.Second)))
		case missing < 16:
			// Little is left (this should not happen): kill the run
			// before it has connected, so that it cannot complete.
			delay = time.Duration(rng.Int64N(int64(20 * time.Millisecond)))
			startKills++
		case rng.IntN(4) == 0:
			// While the run starts, checks the data on disk and connects.
			delay = time.Duration(rng.Int64N(int64(resumeStartup)))
			startKills++
		default:
			// At a random point of what remains: on average a run gets
			// about 1/(left+1) of it (as a quarter of the runs left are
			// killed at start-up), so that the kills spread over the
			// download, and never more than half of it, so that no run
			// completes before its kill.
			remaining := time.Duration(float64(missing) * resumePieceLength / rate * float64(time.Second))
			left := resumeKills - landed
			span := min(2*remaining/time.Duration(left*3/4+1), remaining/2)
			delay = resumeStartup + time.Duration(rng.Int64N(int64(span)+1))
		}
		r := run(delay, false)
		logRun(r)
		switch {
		case r.killed:
			landed++
			if r.elapsed >= 500*time.Millisecond {
				rate = max(rate, float64(r.fetched)/r.elapsed.Seconds())
			}
		case r.err == nil:
			t.Fatalf("run %d finished the download before its kill after %v: only %d kills landed (want %d); the seeders served faster than %d B/s each\nstderr: %s",
				runs, delay, landed, resumeKills, resumeSeederRate, r.stderr)
		default:
			t.Fatalf("run %d: %v\nstderr: %s", runs, r.err, r.stderr)
		}
	}

	// One run killed as soon as it says the download is complete.
	r := run(noKill, true)
	logRun(r)
	switch {
	case r.err != nil && !r.killed:
		t.Fatalf("run %d: %v\nstderr: %s", runs, r.err, r.stderr)
	case !r.sawDone:
		t.Fatalf("run %d: killed before it reported the download complete\nstderr: %s", runs, r.stderr)
	case !r.killed:
		t.Logf("run %d exited by itself before the kill that followed its report of completion landed", runs)
	}
	if r.haveAfter != mi.Info.NumPieces() {
		t.Errorf("run %d reported the download complete, but %d of %d pieces are on disk", runs, r.haveAfter, mi.Info.NumPieces())
	}

	// And a last run, which has nothing left to fetch.
	r = run(noKill, false)
	logRun(r)
	if r.err != nil {
		t.Fatalf("last run: %v\nstderr: %s", r.err, r.stderr)
	}
	if !r.sawDone {
		t.Errorf("last run exited 0 without a done event\nstdout: %s", r.stdout)
	}
	if r.fetched > resumePieceLength || r.blocks.hadB > 0 {
		t.Errorf("last run, with every piece on disk and intact, fetched %d bytes, %d of them blocks of pieces it had%s",
			r.fetched, r.blocks.hadB, r.reported())
	}

	// The files, byte for byte.
	for _, f := range resumeFiles {
		got, err := os.ReadFile(filepath.Join(out, "resume", filepath.FromSlash(f.path)))
		if err != nil {
			t.Error(err)
			continue
		}
		if !bytes.Equal(got, content[f.path]) {
			t.Errorf("%s: %d bytes differ from the original's %d", f.path, len(got), len(content[f.path]))
		}
	}
	if extra := extraFiles(t, out); len(extra) > 0 {
		t.Logf("files in the download folder besides the torrent's: %q", extra)
	}

	// What was fetched, against the budget.
	total := fetched()
	budget := size + size/10 + int64(restarts)*resumePieceLength
	for _, p := range proxies {
		t.Logf("from %s: %d bytes", p.name, p.fetched.Load())
	}
	t.Logf("%d runs (%d restarts, %d kills while downloading of which %d aimed at start-up, one after completion) in %v",
		runs, restarts, landed, startKills, time.Since(start).Round(time.Millisecond))
	t.Logf("fetched %d bytes in all: %.3f times the torrent's %d; budget %d (size + 10%% + %d restarts x %d): %.1f%% of it used; "+
		"%.1f pieces fetched beyond the size, of the %.1f allowed",
		total, float64(total)/float64(size), size, budget, restarts, resumePieceLength, 100*float64(total)/float64(budget),
		float64(total-size)/resumePieceLength, float64(budget-size)/resumePieceLength)
	logStateDir(t, state)
	if total > budget {
		t.Errorf("fetched %d bytes over all runs, more than the budget of %d (size %d + 10%% + %d restarts x one piece)",
			total, budget, size, restarts)
	}
}

// buildCommand builds the aiotorrent command into dir.
func buildCommand(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "aiotorrent")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// makeResumeContent writes resumeFiles, with random bytes, into a folder
// "resume" under each of n new seeder folders, and its torrent (no
// tracker) into dir. It returns the files' contents by path.
func makeResumeContent(t *testing.T, dir string, n int) (content map[string][]byte, mi *metainfo.MetaInfo, torrentPath string, seederDirs []string) {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{'r', 'e', 's', 'u', 'm', 'e'})
	content = make(map[string][]byte)
	for _, f := range resumeFiles {
		b := make([]byte, f.size)
		rng.Read(b)
		content[f.path] = b
	}
	for i := range n {
		sd := filepath.Join(dir, fmt.Sprintf("seeder%d", i))
		for _, f := range resumeFiles {
			p := filepath.Join(sd, "resume", filepath.FromSlash(f.path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, content[f.path], 0o644); err != nil {
				t.Fatal(err)
			}
		}
		seederDirs = append(seederDirs, sd)
	}
	mi, err := metainfo.Create(t.Context(), filepath.Join(seederDirs[0], "resume"), metainfo.CreateOptions{PieceLength: resumePieceLength})
	if err != nil {
		t.Fatal(err)
	}
	torrentPath = filepath.Join(dir, "resume.torrent")
	if err := writeTorrentFile(mi, torrentPath); err != nil {
		t.Fatal(err)
	}
	return content, mi, torrentPath, seederDirs
}

// startLimitedSeeders starts aria2c, libtorrent and qBittorrent seeding
// the torrent from one folder of dirs each, uploading at most
// resumeSeederRate, and a counting proxy in front of each, which records
// the blocks it passes on in blocks. It returns once all of them serve
// the torrent.
func startLimitedSeeders(t *testing.T, mi *metainfo.MetaInfo, torrentPath string, dirs []string, blocks *blockLog) []*countingProxy {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// aria2c checks its data while the others start.
	a := swarmtest.Aria2SeedLimited(t, torrentPath, dirs[0], resumeSeederRate)
	l := swarmtest.LibtorrentSeedLimited(t, torrentPath, dirs[1], resumeSeederRate)
	q := swarmtest.Qbittorrent(t)
	if err := q.SetUploadLimit(ctx, resumeSeederRate); err != nil {
		t.Fatalf("%v\n%s", err, q.Logs())
	}
	q.AddTorrent(torrentPath, dirs[2], true)
	seeders := []struct {
		name string
		port int
	}{{"aria2c", a.Port()}, {"libtorrent", l.Port()}, {"qbittorrent", q.Port()}}
	var proxies []*countingProxy
	for _, s := range seeders {
		addr := swarmtest.PeerAddr(s.port)
		if err := swarmtest.WaitSeeding(ctx, addr, mi); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		proxies = append(proxies, startCountingProxy(t, s.name, addr.String(), blocks))
	}
	// swarmtest shows their logs if the test fails.
	t.Cleanup(func() {
		if os.Getenv("AIOTORRENT_INTEROP_LOGS") != "" {
			t.Logf("%s\n%s\n%s", a.Logs(), l.Logs(), q.Logs())
		}
	})
	return proxies
}

// resumeRun is one run of the download command.
type resumeRun struct {
	delay   time.Duration // when the kill was sent, or noKill
	elapsed time.Duration // from start to exit
	killed  bool          // the kill stopped it
	err     error         // how it ended, if not with status 0
	sawDone bool          // it reported the download complete
	last    downloadEvent // its last progress line
	events  int           // progress lines
	checked *checkedLine  // what it said it found at start, if it did
	stdout  string        // lines that are not JSON events
	stderr  string

	fetched               int64        // bytes the seeders sent it
	haveBefore, haveAfter int          // pieces verified on disk before and after
	blocks                blockAccount // where the fetched bytes went
}

func (r resumeRun) outcome() string {
	switch {
	case r.killed && r.delay != noKill:
		return fmt.Sprintf("killed at %6.3fs", r.delay.Seconds())
	case r.killed:
		return "killed once complete"
	case r.err == nil:
		return "exited 0"
	default:
		return "failed"
	}
}

// checkedLine is the JSON line of download --json that says what the
// check at start found: how many pieces are present, and how many of them
// the resume record vouched for without hashing them.
type checkedLine struct {
	Event   string `json:"event"` // "checked"
	Pieces  int    `json:"pieces"`
	Present int    `json:"pieces_present"`
	Resumed int    `json:"resumed"`
}

// reported describes what the run said: what it found at start, and its
// progress last.
func (r resumeRun) reported() string {
	s := ", said nothing"
	if c := r.checked; c != nil {
		s = fmt.Sprintf(", found %d at start (%d from the resume record)", c.Present, c.Resumed)
	}
	if r.events > 0 {
		s += fmt.Sprintf(", last said %s: %.1f%% verified, %d B downloaded", r.last.Event, r.last.Percent, r.last.Downloaded)
	}
	return s
}

// noKill is the delay of a run not killed on a timer.
const noKill time.Duration = -1

// runKillable runs the command bin args with env, in the background, and
// sends it SIGKILL after delay (unless noKill), and with killOnDone as
// soon as it reports the download complete.
func runKillable(t *testing.T, bin string, args, env []string, delay time.Duration, killOnDone bool) resumeRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), resumeRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := resumeRun{delay: delay}
	var kills atomic.Bool
	kill := func() {
		kills.Store(true)
		cmd.Process.Signal(syscall.SIGKILL)
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if delay != noKill {
		timer := time.AfterFunc(delay, kill)
		defer timer.Stop()
	}
	var other strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ev downloadEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Event == "" {
			other.WriteString(sc.Text() + "\n")
			continue
		}
		if ev.Event == "checked" {
			c := new(checkedLine)
			if json.Unmarshal(sc.Bytes(), c) == nil {
				r.checked = c
			}
			continue
		}
		if ev.Event == "checking" {
			continue
		}
		r.events++
		r.last = ev
		if ev.Event == "done" || (ev.Wanted > 0 && ev.Verified == ev.Wanted) {
			r.sawDone = true
			if killOnDone {
				kill()
			}
		}
	}
	err = cmd.Wait()
	r.elapsed = time.Since(begin)
	r.stdout, r.stderr = other.String(), stderr.String()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && kills.Load() {
			r.killed = true
		}
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after %v: %w", resumeRunTimeout, ctx.Err())
	}
	r.err = err
	return r
}

// verifiedPieces reports which pieces of the torrent are on disk under
// dir, complete and matching their hashes.
func verifiedPieces(t *testing.T, mi *metainfo.MetaInfo, dir string) []bool {
	t.Helper()
	var readers []io.Reader
	for _, f := range mi.Info.Files {
		if f.Padding {
			readers = append(readers, io.LimitReader(fill(0), f.Length))
			continue
		}
		var have int64
		fh, err := os.Open(filepath.Join(append([]string{dir}, f.Path...)...))
		switch {
		case err == nil:
			defer fh.Close()
			st, err := fh.Stat()
			if err != nil {
				t.Fatal(err)
			}
			have = min(st.Size(), f.Length)
			readers = append(readers, io.LimitReader(fh, have))
		case !errors.Is(err, fs.ErrNotExist):
			t.Fatal(err)
		}
		// What is missing reads as 0xFF bytes, which no piece of random
		// content matches.
		readers = append(readers, io.LimitReader(fill(0xFF), f.Length-have))
	}
	all := io.MultiReader(readers...)
	buf := make([]byte, mi.Info.PieceLength)
	have := make([]bool, mi.Info.NumPieces())
	for i := range have {
		b := buf[:mi.Info.PieceSize(i)]
		if _, err := io.ReadFull(all, b); err != nil {
			t.Fatalf("reading piece %d: %v", i, err)
		}
		have[i] = sha1.Sum(b) == mi.Info.PieceHash(i)
	}
	return have
}

func countTrue(have []bool) int {
	n := 0
	for _, h := range have {
		if h {
			n++
		}
	}
	return n
}

// fill reads as its byte for ever.
type fill byte

func (f fill) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(f)
	}
	return len(b), nil
}

// extraFiles lists the files under dir that are not in resumeFiles:
// temporary or state files left in the download folder.
func extraFiles(t *testing.T, dir string) []string {
	t.Helper()
	want := make(map[string]bool)
	for _, f := range resumeFiles {
		want["resume/"+f.path] = true
	}
	var extra []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !want[filepath.ToSlash(rel)] {
			extra = append(extra, filepath.ToSlash(rel))
		}
		return nil
	})
	return extra
}

// logStateDir logs what the command left in its state folder.
func logStateDir(t *testing.T, dir string) {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			info, _ := d.Info()
			if info != nil {
				rel += fmt.Sprintf(" (%d B)", info.Size())
			}
			files = append(files, rel)
		}
		return nil
	})
	if len(files) == 0 {
		t.Logf("XDG_STATE_HOME %s: empty", dir)
		return
	}
	t.Logf("XDG_STATE_HOME %s: %s", dir, strings.Join(files, ", "))
}

// handshakeLen is the length of a BitTorrent handshake: the protocol
// name's length and name, reserved bytes, info hash and peer id.
const handshakeLen = 1 + 19 + 8 + 20 + 20

// wireScanner follows the BitTorrent messages one side sends, as they are
// passed on: it reports each piece message (a block) once all of it has
// been, and the type of every other message. Seeders here speak plain
// BitTorrent: neither side encrypts.
type wireScanner struct {
	skip    int64  // bytes to pass over first: the handshake, a message's rest, a block
	need    int    // header bytes wanted: 4 (length), 1 (id) or 8 (index, begin)
	hdr     []byte // header bytes so far
	msgLen  uint32 // the current message's length
	inBlock bool   // skip is a block's data: report it once passed
	index   uint32 // the current block's piece
	begin   uint32 // and offset
	onBlock func(index, begin, length uint32)
	onOther func(id byte) // may be nil
}

func (s *wireScanner) feed(b []byte) {
	for len(b) > 0 {
		if s.skip > 0 {
			k := min(int64(len(b)), s.skip)
			s.skip -= k
			b = b[k:]
			if s.skip == 0 && s.inBlock {
				s.inBlock = false
				s.onBlock(s.index, s.begin, s.msgLen-9)
			}
			continue
		}
		k := min(len(b), s.need-len(s.hdr))
		s.hdr = append(s.hdr, b[:k]...)
		b = b[k:]
		if len(s.hdr) < s.need {
			return
		}
		h := s.hdr
		s.hdr = s.hdr[:0]
		switch s.need {
		case 4:
			s.msgLen = binary.BigEndian.Uint32(h)
			if s.msgLen > 0 { // else a keep-alive
				s.need = 1
			}
		case 1:
			s.need = 4
			if h[0] == 7 && s.msgLen >= 9 { // piece
				s.need = 8
			} else {
				s.skip = int64(s.msgLen) - 1
				if s.onOther != nil {
					s.onOther(h[0])
				}
			}
		case 8:
			s.index, s.begin = binary.BigEndian.Uint32(h), binary.BigEndian.Uint32(h[4:])
			s.need = 4
			s.skip, s.inBlock = int64(s.msgLen)-9, true
			if s.skip == 0 {
				s.inBlock = false
				s.onBlock(s.index, s.begin, 0)
			}
		}
	}
}

// blockLog records the blocks the seeders sent during a run, and the
// requests and cancels our side sent them.
type blockLog struct {
	mu  sync.Mutex
	run runBlocks // guarded by mu
}

// runBlocks are the blocks of one run.
type runBlocks struct {
	blocks    map[[2]uint32]uint32 // length by piece and offset, as first received
	bytes     int64                // block bytes in all
	dups      int64                // of which blocks received before in the run
	dupsFrom  map[string]int64     // dups by seeder
	requests  int                  // request messages sent
	cancels   int                  // cancel messages sent
	cancelsTo map[string]int       // cancels by seeder
}

func (l *blockLog) add(from string, index, begin, length uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &l.run
	if r.blocks == nil {
		r.blocks = make(map[[2]uint32]uint32)
	}
	r.bytes += int64(length)
	k := [2]uint32{index, begin}
	if _, ok := r.blocks[k]; ok {
		r.dups += int64(length)
		if r.dupsFrom == nil {
			r.dupsFrom = make(map[string]int64)
		}
		r.dupsFrom[from] += int64(length)
		return
	}
	r.blocks[k] = length
}

// sent records a message our side sent to a seeder.
func (l *blockLog) sent(to string, id byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &l.run
	switch id {
	case 6:
		r.requests++
	case 8:
		r.cancels++
		if r.cancelsTo == nil {
			r.cancelsTo = make(map[string]int)
		}
		r.cancelsTo[to]++
	}
}

// take returns what was recorded since the last take and starts afresh.
func (l *blockLog) take() runBlocks {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.run
	l.run = runBlocks{}
	return r
}

// blockAccount says where the bytes a run fetched went.
type blockAccount struct {
	blockBytes int64            // in blocks (piece messages)
	completed  int              // pieces it completed: on disk after the run, not before
	partial    int              // pieces of which it got some blocks but not all, lost
	partialB   int64            // their bytes
	unsaved    int              // pieces of which it got every block, not on disk after it
	unsavedB   int64            // their bytes
	dupB       int64            // blocks it got twice
	dupsFrom   map[string]int64 // dupB by seeder
	requests   int              // requests sent
	cancels    int              // cancels sent
	cancelsTo  map[string]int   // cancels by seeder
	hadB       int64            // blocks of pieces on disk before it started
	protocol   int64            // the rest: handshakes, bitfields, message headers...
}

// account sorts the blocks of a run against the pieces on disk before
// (had) and after (have) it.
func (l runBlocks) account(mi *metainfo.MetaInfo, had, have []bool, fetched int64) blockAccount {
	a := blockAccount{blockBytes: l.bytes, dupB: l.dups, dupsFrom: l.dupsFrom, protocol: fetched - l.bytes,
		requests: l.requests, cancels: l.cancels, cancelsTo: l.cancelsTo}
	got := make(map[uint32]int64)
	for k, n := range l.blocks {
		got[k[0]] += int64(n)
	}
	for i, n := range got {
		switch {
		case int(i) >= len(have):
		case had[i]:
			a.hadB += n
		case have[i]:
			a.completed++
		case n >= mi.Info.PieceSize(int(i)):
			a.unsaved++
			a.unsavedB += n
		default:
			a.partial++
			a.partialB += n
		}
	}
	return a
}

func (a blockAccount) String() string {
	s := fmt.Sprintf("blocks %d B: %d pieces completed; not on disk after it: %d partial pieces (%d B), %d whole pieces (%d B); %d B duplicate blocks, %d B of pieces it had; %d B protocol; %d requests, %d cancels sent",
		a.blockBytes, a.completed, a.partial, a.partialB, a.unsaved, a.unsavedB, a.dupB, a.hadB, a.protocol, a.requests, a.cancels)
	if a.dupB > 0 || a.cancels > 0 {
		s += fmt.Sprintf("; duplicates from %v, cancels to %v", a.dupsFrom, a.cancelsTo)
	}
	return s
}

// countingProxy forwards TCP connections made to it on 127.0.0.1 to a
// seeder, and counts the bytes it passes on from the seeder.
type countingProxy struct {
	name    string
	ln      net.Listener
	target  string
	fetched atomic.Int64 // bytes from the seeder written to the client
	blocks  *blockLog    // records the blocks among them

	mu     sync.Mutex
	conns  map[net.Conn]bool // guarded by mu: both ends of each open connection
	closed bool              // guarded by mu: the proxy is stopping
	idle   *sync.Cond        // L is &mu; broadcast when conns empties
	wg     sync.WaitGroup
}

// startCountingProxy starts a proxy to target, stopped when the test ends.
func startCountingProxy(t *testing.T, name, target string, blocks *blockLog) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{name: name, ln: ln, target: target, blocks: blocks, conns: make(map[net.Conn]bool)}
	p.idle = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *countingProxy) addr() string { return p.ln.Addr().String() }

func (p *countingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve forwards one connection until either side closes it.
func (p *countingProxy) serve(client net.Conn) {
	defer p.wg.Done()
	seeder, err := net.DialTimeout("tcp4", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, seeder) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { // to the seeder: requests
		buf := make([]byte, 16<<10)
		scan := &wireScanner{skip: handshakeLen, need: 4,
			onBlock: func(uint32, uint32, uint32) {},
			onOther: func(id byte) { p.blocks.sent(p.name, id) }}
		for {
			n, err := client.Read(buf)
			if n > 0 {
				w, werr := seeder.Write(buf[:n])
				scan.feed(buf[:w])
				if werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	go func() { // from the seeder: what is counted
		buf := make([]byte, 64<<10)
		scan := &wireScanner{skip: handshakeLen, need: 4, onBlock: func(index, begin, length uint32) {
			p.blocks.add(p.name, index, begin, length)
		}}
		for {
			n, err := seeder.Read(buf)
			if n > 0 {
				w, werr := client.Write(buf[:n])
				p.fetched.Add(int64(w))
				scan.feed(buf[:w])
				if werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	<-done
	client.Close()
	seeder.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, seeder)
	if len(p.conns) == 0 {
		p.idle.Broadcast()
	}
	p.mu.Unlock()
}

// track records an open connection's ends; false (both closed) once the
// proxy stops.
func (p *countingProxy) track(client, seeder net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		client.Close()
		seeder.Close()
		return false
	}
	p.conns[client], p.conns[seeder] = true, true
	return true
}

// waitIdle waits, at most timeout, until no connection is open.
func (p *countingProxy) waitIdle(timeout time.Duration) {
	deadline := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		p.idle.Broadcast()
		p.mu.Unlock()
	})
	defer deadline.Stop()
	end := time.Now().Add(timeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.conns) > 0 && time.Now().Before(end) {
		p.idle.Wait()
	}
}
