//go:build linux

// Command recheckbench compares "aiotorrent verify", our recheck of a
// torrent's data, with sha1sum reading the same files, on one core and on
// all of them (issue 8).
//
// Usage, from anywhere inside the module:
//
//	go run ./bench/recheckbench [-size 4G] [-files 4] [-piece-size SIZE] [-runs 3] [-cold] [-dir DIR] [-keep] [-cpuprofile DIR]
//
// It builds cmd/aiotorrent, writes a data set of -size bytes of
// pseudo-random content split over -files files in one folder, and a
// torrent of that folder with "aiotorrent create". It reads every file
// once (taking its SHA-1, what sha1sum must print) so that the data is in
// the page cache, runs each of the four commands below once untimed, and
// then, -runs times, times each of them, interleaved and in an order that
// rotates from run to run:
//
//   - ours, 1 core: GOMAXPROCS=1 aiotorrent verify --json -d DIR TORRENT
//     (checkPieces then runs one hashing worker);
//   - ours, all cores: the same with Go's default GOMAXPROCS (one worker
//     per core);
//   - sha1sum: one sha1sum process given every file, single-threaded;
//   - sha1sum parallel: one sha1sum process per file, as many at a time
//     as ours has workers, the next starting when one exits.
//
// Wall time is from the first process's start to the last one's exit; CPU
// time is user + system time of the processes (wait4). Every run of ours
// must report every piece verified and every sha1sum run must print the
// SHA-1 of each file, or the harness stops with an error.
//
// Before each measurement it checks with mincore(2) that the data is
// still in the page cache and reads it again if not: the figures are
// warm-cache, hashing plus copying from memory. With -cold it instead
// drops the page cache (sync, then "3" to /proc/sys/vm/drop_caches, which
// needs root) before each measurement, so that every byte comes from the
// disk; if that cannot be written, cold runs are unavailable and the
// harness says so.
//
// It prints a Markdown report on standard output: every measurement,
// medians, and the ratios ours ÷ sha1sum from the same run (ours on one
// core against sha1sum, ours on all cores against parallel sha1sum), in
// throughput and in MiB hashed per CPU second. Progress goes to standard
// error. The data set and the torrent are removed at the end, also on
// Ctrl-C, unless -keep; a later run with the same -dir, -size and -files
// reuses a kept data set. Nothing uses the network: the announce URL
// written into the torrent is never contacted.
//
// It runs on Linux only: it reads /proc and uses mincore(2).
package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

const (
	announce    = "http://127.0.0.1:6969/announce" // never contacted
	dropCaches  = "/proc/sys/vm/drop_caches"
	maxFiles    = 1000
	cpuprofile  = "AIOTORRENT_CPUPROFILE"
	gomaxprocsV = "GOMAXPROCS"
)

type config struct {
	harness.Common
	files      int
	cold       bool
	pprofDir   string
	pieceSize  string // as given to aiotorrent create; "" for its choice
	dataFolder string // the data set's folder name: recheckbench-SIZE-FILES
}

func main() { harness.Main("recheckbench", run) }

func run(ctx context.Context, args []string) error { return runTo(ctx, args, os.Stdout) }

func parseArgs(args []string) (*config, error) {
	c := &config{}
	f := harness.NewFlags("recheckbench", "[-size 4G] [-files 4] [-piece-size SIZE] [-runs 3] [-cold] [-dir DIR] [-keep] [-cpuprofile DIR]", &c.Common)
	f.Size("data set `SIZE` in bytes, or with a binary unit: 64M, 1G, 4GiB", 1<<20, "1 MiB")
	// The check is on 4 GiB, not the harnesses' usual 1 GiB.
	size := f.FS.Lookup("size")
	size.DefValue = "4G"
	size.Value.Set(size.DefValue)
	f.FS.IntVar(&c.files, "files", 4, "split the data set over `N` files of equal size (the last takes the rest)")
	f.PieceSize()
	f.Runs(3, "time each command `N` times")
	f.FS.BoolVar(&c.cold, "cold", false, "drop the page cache before each measurement (needs a writable "+dropCaches+")")
	f.Dir("write the data set in a folder inside `DIR` (default: a new temporary folder); it needs -size free")
	f.Keep("keep the data set and the torrent; a later run with the same -dir, -size and -files reuses them")
	f.FS.StringVar(&c.pprofDir, "cpuprofile", "", "write a Go CPU profile of each timed run of ours ("+cpuprofile+") in `DIR`, as ours-1core-RUN.pprof and ours-all-RUN.pprof")
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	if c.files < 1 || c.files > maxFiles {
		return nil, fmt.Errorf("-files must be from 1 to %d", maxFiles)
	}
	if c.Size < int64(c.files) {
		return nil, fmt.Errorf("-size %d is less than one byte per file (-files %d)", c.Size, c.files)
	}
	c.pieceSize = c.PieceSize
	if c.pprofDir != "" {
		if err := harness.CheckDir("-cpuprofile", c.pprofDir); err != nil {
			return nil, err
		}
	}
	c.dataFolder = fmt.Sprintf("recheckbench-%d-%d", c.Size, c.files)
	return c, nil
}

// dataSet is the content on disk and its torrent.
type dataSet struct {
	parent  string   // the folder given to verify -d
	folder  string   // parent/NAME: the torrent's folder
	files   []string // its files, in the torrent's order
	sizes   []int64
	sums    []string // hex SHA-1 of each file, as sha1sum prints it
	torrent string
	mi      *metainfo.MetaInfo
}

// measure is one timed command (or, for parallel sha1sum, one batch of
// commands).
type measure struct {
	run      int // from 1
	wall     time.Duration
	cpu      time.Duration // user + system of every process
	diskRead int64         // bytes read from block devices (ru_inblock)
	maxRSS   int64         // bytes, peak RSS (VmHWM as sampled) of the largest of its processes
}

// tool is one command to time: a row of the report.
type tool struct {
	key   string // ours-1core, ours-all, sha1sum, sha1sum-par
	label string
	cores int // cores it may use: GOMAXPROCS, or processes at a time
	exec  func(ctx context.Context, r int) (measure, error)
	runs  []measure
}

func runTo(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := parseArgs(args)
	if err != nil {
		return err
	}
	sha1sum, err := exec.LookPath("sha1sum")
	if err != nil {
		return errors.New("sha1sum is not installed (not found in PATH): install the Debian package \"coreutils\"")
	}
	coldNote := coldAvailable()
	if cfg.cold {
		if err := dropPageCache(); err != nil {
			return fmt.Errorf("-cold: cold runs are unavailable: %w", err)
		}
	} else {
		harness.Progress("figures are warm-cache (the data set is kept in the page cache); cold runs: %s", coldNote)
	}

	// The data set first, so that -dir's free space is checked before
	// the build.
	parent := cfg.Dir
	if parent == "" {
		if parent, err = os.MkdirTemp("", "recheckbench-data-"); err != nil {
			return err
		}
		if !cfg.Keep {
			defer os.RemoveAll(parent)
		}
	}
	ds := &dataSet{parent: parent, folder: filepath.Join(parent, cfg.dataFolder)}
	if cfg.Keep {
		defer harness.Progress("kept the data set %s and the torrent %s", ds.folder, ds.folder+".torrent")
	} else {
		defer os.Remove(ds.folder + ".torrent")
		defer os.RemoveAll(ds.folder)
	}
	if err := ds.write(ctx, cfg); err != nil {
		return err
	}

	work, err := os.MkdirTemp("", "recheckbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	goCmd, err := harness.FindGo()
	if err != nil {
		return err
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(work, "aiotorrent")
	if err := harness.BuildAiotorrent(ctx, goCmd, root, bin); err != nil {
		return err
	}
	if err := ds.makeTorrent(ctx, bin, cfg.pieceSize); err != nil {
		return err
	}

	harness.Progress("warming the page cache: reading every file and taking its SHA-1")
	start := time.Now()
	if err := ds.hashFiles(ctx); err != nil {
		return err
	}
	harness.Progress("read %.0f MiB in %.2fs", harness.MiB(cfg.Size), time.Since(start).Seconds())

	procs := defaultProcs()
	tools := []*tool{
		{key: "ours-1core", label: "aiotorrent verify, GOMAXPROCS=1", cores: 1},
		{key: "ours-all", label: fmt.Sprintf("aiotorrent verify, GOMAXPROCS default (%d)", procs), cores: procs},
		{key: "sha1sum", label: "sha1sum, all files in one process", cores: 1},
		{key: "sha1sum-par", label: fmt.Sprintf("sha1sum, one process per file, %d at a time", procs), cores: procs},
	}
	for _, t := range tools {
		switch t.key {
		case "ours-1core", "ours-all":
			env := withoutEnv(os.Environ(), gomaxprocsV, cpuprofile)
			if t.key == "ours-1core" {
				env = append(env, gomaxprocsV+"=1")
			}
			t.exec = func(ctx context.Context, r int) (measure, error) {
				env := slices.Clip(env) // appended to below, once per run
				if cfg.pprofDir != "" && r > 0 {
					name := strings.TrimPrefix(t.key, "ours-")
					env = append(env, cpuprofile+"="+filepath.Join(cfg.pprofDir, fmt.Sprintf("ours-%s-%d.pprof", name, r)))
				}
				return ds.verify(ctx, bin, env)
			}
		case "sha1sum":
			t.exec = func(ctx context.Context, _ int) (measure, error) { return ds.sha1sum(ctx, sha1sum, 1) }
		case "sha1sum-par":
			t.exec = func(ctx context.Context, _ int) (measure, error) { return ds.sha1sum(ctx, sha1sum, procs) }
		}
	}

	cond := conditions{Conditions: harness.Watch(), cold: cfg.cold, coldNote: coldNote}
	// Round 0 is the untimed warm-up: it brings the programs themselves
	// into memory and checks every command once before anything counts.
	for r := 0; r <= cfg.Runs; r++ {
		for i := range tools {
			t := tools[(i+r)%len(tools)]
			if err := cond.prepare(ds); err != nil {
				return err
			}
			m, err := t.exec(ctx, r)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if r == 0 {
					return fmt.Errorf("warm-up, %s: %w", t.label, err)
				}
				return fmt.Errorf("run %d, %s: %w", r, t.label, err)
			}
			m.run = r
			what := "warm-up"
			if r > 0 {
				what = fmt.Sprintf("run %d/%d", r, cfg.Runs)
				t.runs = append(t.runs, m)
				if !cfg.cold && m.diskRead > 0 {
					cond.diskRuns++
				}
			}
			harness.Progress("%-9s %-48s %7.3fs wall %7.3fs CPU %6.0f MiB/s %6.0f MiB/CPU-s  disk %.0f MiB",
				what, t.label, m.wall.Seconds(), m.cpu.Seconds(), harness.MiB(cfg.Size)/m.wall.Seconds(),
				harness.MiB(cfg.Size)/m.cpu.Seconds(), harness.MiB(m.diskRead))
		}
	}
	cond.Stop()
	report(out, cfg, root, goCmd, ds, &cond, tools)
	return nil
}

// defaultProcs is the GOMAXPROCS a Go program started without the
// variable gets here: the cores ours may use, and how many sha1sum
// processes run at a time against it.
func defaultProcs() int {
	if os.Getenv(gomaxprocsV) == "" {
		return runtime.GOMAXPROCS(0)
	}
	return runtime.NumCPU()
}

// withoutEnv returns env without the variables named.
func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// write writes the data set, or reuses one left by -keep with the same
// files and sizes: file part-NNN.bin holds a ChaCha8 stream seeded with
// its name, so the content is the same in every run.
func (ds *dataSet) write(ctx context.Context, cfg *config) error {
	each := cfg.Size / int64(cfg.files)
	for i := range cfg.files {
		size := each
		if i == cfg.files-1 {
			size = cfg.Size - each*int64(cfg.files-1)
		}
		ds.files = append(ds.files, filepath.Join(ds.folder, fmt.Sprintf("part-%03d.bin", i+1)))
		ds.sizes = append(ds.sizes, size)
	}
	reuse := true
	for i, f := range ds.files {
		if st, err := os.Stat(f); err != nil || !st.Mode().IsRegular() || st.Size() != ds.sizes[i] {
			reuse = false
		}
	}
	if reuse {
		harness.Progress("reusing the data set in %s", ds.folder)
		return nil
	}
	if err := os.RemoveAll(ds.folder); err != nil {
		return err
	}
	if err := harness.CheckFree(ds.parent, cfg.Size, 64<<20, "the data set"); err != nil {
		return err
	}
	if err := os.MkdirAll(ds.folder, 0o755); err != nil {
		return err
	}
	for i, f := range ds.files {
		if err := harness.WriteContent(ctx, f, ds.sizes[i], filepath.Base(f)); err != nil {
			return err
		}
	}
	return nil
}

// makeTorrent makes the torrent of the data set's folder with aiotorrent
// create, next to the folder.
func (ds *dataSet) makeTorrent(ctx context.Context, bin, pieceSize string) error {
	ds.torrent = ds.folder + ".torrent"
	args := []string{"create", "--no-date", "--force", "--tracker", announce, "-o", ds.torrent}
	if pieceSize != "" {
		args = append(args, "--piece-size", pieceSize)
	}
	harness.Progress("making the torrent with aiotorrent create")
	create := exec.CommandContext(ctx, bin, append(args, ds.folder)...)
	if out, err := create.CombinedOutput(); err != nil {
		return fmt.Errorf("aiotorrent create: %v\n%s", err, out)
	}
	var err error
	if ds.mi, err = metainfo.LoadFile(ds.torrent); err != nil {
		return err
	}
	if n := len(ds.mi.Info.Files); n != len(ds.files) {
		return fmt.Errorf("%s: %d files, want %d", ds.torrent, n, len(ds.files))
	}
	harness.Progress("torrent %s: %d files, %d pieces of %d KiB", ds.mi.InfoHash, len(ds.files), ds.mi.Info.NumPieces(), ds.mi.Info.PieceLength>>10)
	return nil
}

// hashFiles reads every file, which brings it into the page cache, and
// takes its SHA-1, what sha1sum must print; one goroutine per file, as
// many at a time as there are cores.
func (ds *dataSet) hashFiles(ctx context.Context) error {
	ds.sums = make([]string, len(ds.files))
	errs := make([]error, len(ds.files))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i, f := range ds.files {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			h := sha1.New()
			if err := harness.CopyFile(h, f); err != nil {
				errs[i] = err
				return
			}
			ds.sums[i] = hex.EncodeToString(h.Sum(nil))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// verifyJSON is what aiotorrent verify --json prints.
type verifyJSON struct {
	Pieces   int   `json:"pieces"`
	Verified int   `json:"verified"`
	Bad      []int `json:"bad_pieces"`
	Complete bool  `json:"complete"`
	Files    []struct {
		Path string `json:"path"`
		OK   bool   `json:"ok"`
	} `json:"files"`
}

// verify times aiotorrent verify on the data set and checks that it
// found every piece there and right.
func (ds *dataSet) verify(ctx context.Context, bin string, env []string) (measure, error) {
	argv := []string{bin, "verify", "--json", "--state-dir", "-", "-d", ds.parent, ds.torrent}
	out, m, err := timeCmd(ctx, env, argv)
	if err != nil {
		return m, err
	}
	if err := checkVerify(out, ds.mi.Info.NumPieces(), len(ds.files)); err != nil {
		return m, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return m, nil
}

// checkVerify checks verify's JSON output: every piece of pieces
// verified, every one of files whole.
func checkVerify(out []byte, pieces, files int) error {
	var v verifyJSON
	line := bytes.TrimSpace(out)
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return fmt.Errorf("reading its --json output %q: %w", out, err)
	}
	okFiles := 0
	for _, f := range v.Files {
		if f.OK {
			okFiles++
		}
	}
	if !v.Complete || v.Pieces != pieces || v.Verified != pieces || len(v.Bad) > 0 || okFiles != files || len(v.Files) != files {
		return fmt.Errorf("the data is not reported complete: %d of %d pieces verified (torrent has %d), %d bad, %d of %d files ok (want %d)",
			v.Verified, v.Pieces, pieces, len(v.Bad), okFiles, len(v.Files), files)
	}
	return nil
}

// sha1sum times sha1sum over the data set with at most procs processes
// at a time: with 1, one process given every file; else one process per
// file, the next starting when one exits. It checks each sum printed.
func (ds *dataSet) sha1sum(ctx context.Context, sha1sum string, procs int) (measure, error) {
	env := os.Environ()
	if procs == 1 {
		out, m, err := timeCmd(ctx, env, append([]string{sha1sum}, ds.files...))
		if err != nil {
			return m, err
		}
		return m, checkSums(out, ds.files, ds.sums)
	}
	var (
		mu   sync.Mutex
		all  measure
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, procs)
	start := time.Now()
	for i, f := range ds.files {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out, m, err := timeCmd(ctx, env, []string{sha1sum, f})
			if err == nil {
				err = checkSums(out, ds.files[i:i+1], ds.sums[i:i+1])
			}
			mu.Lock()
			defer mu.Unlock()
			all.cpu += m.cpu
			all.diskRead += m.diskRead
			all.maxRSS = max(all.maxRSS, m.maxRSS)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	all.wall = time.Since(start)
	return all, errors.Join(errs...)
}

// checkSums checks sha1sum's output: one line "SUM  FILE" for each of
// files, with sums.
func checkSums(out []byte, files, sums []string) error {
	got := map[string]string{}
	for line := range strings.Lines(string(out)) {
		sum, file, ok := strings.Cut(strings.TrimRight(line, "\n"), "  ")
		if ok {
			got[file] = sum
		}
	}
	for i, f := range files {
		if got[f] != sums[i] {
			return fmt.Errorf("sha1sum %s printed %q, want %s", f, got[f], sums[i])
		}
	}
	if len(got) != len(files) {
		return fmt.Errorf("sha1sum printed %d sums, want %d:\n%s", len(got), len(files), out)
	}
	return nil
}

// timeCmd runs argv with env and returns its standard output and what it
// used: wall time from start to exit, user + system CPU time, bytes read
// from block devices, and peak RSS (VmHWM, read every
// harness.SampleEvery: what it reached in its last moments may be
// missed).
func timeCmd(ctx context.Context, env, argv []string) ([]byte, measure, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, measure{}, err
	}
	// wait4's ru_maxrss would not do: a child that os/exec starts
	// begins with the RSS of this process, which it shares until exec.
	hwm := harness.SamplePeak(cmd.Process.Pid, "VmHWM")
	err := cmd.Wait()
	m := measure{wall: time.Since(start), maxRSS: hwm.Stop()}
	if err != nil {
		if ctx.Err() != nil {
			return nil, m, ctx.Err()
		}
		return nil, m, fmt.Errorf("%s: %v\n%s%s", strings.Join(argv, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	ps := cmd.ProcessState
	m.cpu = ps.UserTime() + ps.SystemTime()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		m.diskRead = ru.Inblock * 512 // counted in 512-byte blocks
	}
	return stdout.Bytes(), m, nil
}

// coldAvailable says whether -cold can drop the page cache here, without
// dropping it: whether drop_caches opens for writing.
func coldAvailable() string {
	f, err := os.OpenFile(dropCaches, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Sprintf("unavailable (%v)", err)
	}
	f.Close()
	return "available with -cold (" + dropCaches + " is writable)"
}

// dropPageCache writes back dirty pages and drops the page cache, dentries
// and inodes, for the whole machine.
func dropPageCache() error {
	syscall.Sync()
	return os.WriteFile(dropCaches, []byte("3\n"), 0)
}

// conditions describes what else was happening on the machine, and the
// state of the page cache.
type conditions struct {
	*harness.Conditions
	cold     bool
	coldNote string
	rewarms  int // times a file had to be read back into the page cache
	diskRuns int // warm measurements during which a command read from the disk anyway
}

// prepare puts the page cache in the state a measurement needs: every
// file of the data set in it, or (with -cold) nothing.
func (c *conditions) prepare(ds *dataSet) error {
	if c.cold {
		if err := dropPageCache(); err != nil {
			return fmt.Errorf("dropping the page cache: %w", err)
		}
		return nil
	}
	for _, f := range ds.files {
		n, err := harness.KeepCached(f, filepath.Base(f))
		c.rewarms += n
		if err != nil {
			return err
		}
	}
	return nil
}
