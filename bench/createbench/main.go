//go:build linux

// Command createbench compares the speed of "aiotorrent create" with
// mktorrent and with sha1sum on one large local file.
//
// Usage, from anywhere inside the module:
//
//	go run ./bench/createbench [-size 1G] [-runs 5] [-threads 1,2] [-dir DIR] [-keep]
//
// It builds cmd/aiotorrent, writes a file of pseudo-random bytes, reads it
// once so that it is in the page cache, and then, -runs times, runs each
// tool on it, interleaved and in an order that rotates from run to run so
// that noise from other work on the machine is spread over all of them.
// It checks that mktorrent and aiotorrent make torrents with the same info
// hash, and prints a Markdown report on standard output; progress goes to
// standard error. Nothing uses the network: the announce URL written into
// the torrents is never contacted.
//
// It runs on Linux only: it reads /proc and uses mincore(2) to check that
// the test file stays in the page cache.
//
// See bench/README.md for what the columns mean.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

const (
	announce    = "http://127.0.0.1:6969/announce" // never contacted
	pieceLog2   = 20                               // 1 MiB pieces: mktorrent -l 20
	pieceFlag   = "1M"                             // the same for aiotorrent --piece-size
	mktorrentPk = "mktorrent"                      // Debian package holding mktorrent
)

type config struct {
	harness.Common
	threads []int
}

func main() { harness.Main("createbench", run) }

func parseArgs(args []string) (*config, error) {
	c := &config{}
	f := harness.NewFlags("createbench", "[-size 1G] [-runs 5] [-threads 1,2] [-dir DIR] [-keep]", &c.Common)
	f.Size("test file `SIZE` in bytes, or with a binary unit: 256M, 1G", 1<<pieceLog2, "one 1 MiB piece")
	f.Runs(5, "time each tool `N` times")
	threads := f.FS.String("threads", "1,2", "comma-separated hashing thread `COUNTS` for mktorrent and aiotorrent")
	f.Dir("write the test file in `DIR` (default: a new temporary folder)")
	f.Keep("keep the test file; a later run with the same -dir and -size reuses it")
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	for s := range strings.SplitSeq(*threads, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-threads: %q is not a positive number", s)
		}
		if !slices.Contains(c.threads, n) {
			c.threads = append(c.threads, n)
		}
	}
	return c, nil
}

// tool is one command to time: a row of the report.
type tool struct {
	name    string // sha1sum, mktorrent, aiotorrent
	threads int    // 0 for sha1sum
	out     string // torrent written, if any
	argv    []string
	wall    []time.Duration
	cpu     []time.Duration
}

func (t *tool) label() string {
	if t.threads == 0 {
		return t.name
	}
	return fmt.Sprintf("%s -t %d", t.name, t.threads)
}

func run(ctx context.Context, args []string) error {
	cfg, err := parseArgs(args)
	if err != nil {
		return err
	}

	mktorrent, err := exec.LookPath("mktorrent")
	if err != nil {
		return fmt.Errorf("mktorrent is not installed (not found in PATH): install the Debian package %q, e.g. sudo apt-get install %s", mktorrentPk, mktorrentPk)
	}
	sha1sum, err := exec.LookPath("sha1sum")
	if err != nil {
		return errors.New("sha1sum is not installed (not found in PATH): install the Debian package \"coreutils\"")
	}
	goCmd, err := harness.FindGo()
	if err != nil {
		return err
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}

	work, err := os.MkdirTemp("", "createbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	bin := filepath.Join(work, "aiotorrent")
	if err := harness.BuildAiotorrent(ctx, goCmd, root, bin); err != nil {
		return err
	}

	// The test file.
	dataDir := cfg.Dir
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "createbench-data-"); err != nil {
			return err
		}
		if !cfg.Keep {
			defer os.RemoveAll(dataDir)
		}
	}
	file := filepath.Join(dataDir, fmt.Sprintf("createbench-%d.bin", cfg.Size))
	if err := makeFile(ctx, file, cfg.Size); err != nil {
		return err
	}
	if cfg.Keep {
		defer harness.Progress("kept test file %s", file)
	} else {
		defer os.Remove(file)
	}
	harness.Progress("warming the page cache")
	warm, err := readAll(file)
	if err != nil {
		return err
	}
	harness.Progress("read %s in %.2fs (%.0f MiB/s)", file, warm.Seconds(), harness.MiB(cfg.Size)/warm.Seconds())
	if _, err := harness.KeepCached(file, "the file"); err != nil {
		return err
	}

	// The rows, in report order.
	tools := []*tool{{name: "sha1sum", argv: []string{sha1sum, file}}}
	for _, n := range cfg.threads {
		mkOut := filepath.Join(work, fmt.Sprintf("mktorrent-%d.torrent", n))
		aioOut := filepath.Join(work, fmt.Sprintf("aiotorrent-%d.torrent", n))
		tools = append(tools,
			&tool{name: "mktorrent", threads: n, out: mkOut, argv: []string{
				mktorrent, "-t", strconv.Itoa(n), "-l", strconv.Itoa(pieceLog2), "-d",
				"-a", announce, "-o", mkOut, file}},
			&tool{name: "aiotorrent", threads: n, out: aioOut, argv: []string{
				bin, "create", "--threads", strconv.Itoa(n), "--piece-size", pieceFlag,
				"--no-date", "--force", "--tracker", announce, "-o", aioOut, file}},
		)
	}

	cond := conditions{Conditions: harness.Watch()}
	var mismatches []string
	for r := range cfg.Runs {
		// Rotate the order each run so that no tool always goes first or
		// always follows the same other tool.
		for i := range tools {
			t := tools[(i+r)%len(tools)]
			if t.out != "" {
				os.Remove(t.out) // mktorrent will not overwrite
			}
			// Other work on the machine can push the file out of the
			// page cache; time the tools on memory, never on the disk.
			n, err := harness.KeepCached(file, "the file")
			if err != nil {
				return err
			}
			cond.rewarms += n
			wall, cpu, diskRead, err := timeCmd(ctx, t.argv)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", r+1, t.label(), err)
			}
			t.wall = append(t.wall, wall)
			t.cpu = append(t.cpu, cpu)
			note := ""
			if diskRead > 0 {
				cond.diskRuns++
				note = fmt.Sprintf("  (read %.0f MiB from the disk)", harness.MiB(diskRead))
			}
			harness.Progress("run %d/%d  %-15s %7.3fs wall %7.3fs CPU  %6.0f MiB/s%s",
				r+1, cfg.Runs, t.label(), wall.Seconds(), cpu.Seconds(), harness.MiB(cfg.Size)/wall.Seconds(), note)
		}
		for _, n := range cfg.threads {
			mk, aio := find(tools, "mktorrent", n), find(tools, "aiotorrent", n)
			if msg := compareTorrents(mk.out, aio.out); msg != "" {
				msg = fmt.Sprintf("run %d, -t %d: %s", r+1, n, msg)
				harness.Progress("FAIL: %s", msg)
				mismatches = append(mismatches, msg)
			}
		}
	}

	cond.Stop()
	report(os.Stdout, cfg, root, goCmd, file, &cond, tools, mismatches)
	if len(mismatches) > 0 {
		return fmt.Errorf("%d info hash mismatches between mktorrent and aiotorrent", len(mismatches))
	}
	return nil
}

func find(tools []*tool, name string, threads int) *tool {
	for _, t := range tools {
		if t.name == name && t.threads == threads {
			return t
		}
	}
	return nil
}

// makeFile writes the test file (harness.WriteContent), so every run
// hashes the same content. A file already there with the right size (left
// by -keep) is reused.
func makeFile(ctx context.Context, path string, size int64) error {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() == size {
		harness.Progress("reusing %s", path)
		return nil
	}
	if err := harness.CheckFree(filepath.Dir(path), size, 64<<20, "the test file"); err != nil {
		return err
	}
	return harness.WriteContent(ctx, path, size, "createbench")
}

// readAll reads the file once, to bring it into the page cache.
func readAll(path string) (time.Duration, error) {
	start := time.Now()
	if err := harness.CopyFile(io.Discard, path); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// timeCmd runs argv and returns its wall time, CPU time (user + system)
// and how many bytes it read from block devices (not the page cache).
func timeCmd(ctx context.Context, argv []string) (wall, cpu time.Duration, diskRead int64, err error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, 0, ctx.Err()
		}
		return 0, 0, 0, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.Bytes())
	}
	ps := cmd.ProcessState
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		diskRead = ru.Inblock * 512 // counted in 512-byte blocks
	}
	return wall, ps.UserTime() + ps.SystemTime(), diskRead, nil
}

// compareTorrents checks that two torrents have the same info hash and
// returns a description of how they differ if not.
func compareTorrents(mkPath, aioPath string) string {
	mk, err := metainfo.LoadFile(mkPath)
	if err != nil {
		return fmt.Sprintf("mktorrent's torrent: %v", err)
	}
	aio, err := metainfo.LoadFile(aioPath)
	if err != nil {
		return fmt.Sprintf("aiotorrent's torrent: %v", err)
	}
	if mk.InfoHash == aio.InfoHash {
		return ""
	}
	msg := fmt.Sprintf("info hash %s from mktorrent, %s from aiotorrent", mk.InfoHash, aio.InfoHash)
	var diffs []string
	a, b := mk.Info, aio.Info
	if a.Name != b.Name {
		diffs = append(diffs, fmt.Sprintf("name %q / %q", a.Name, b.Name))
	}
	if a.PieceLength != b.PieceLength {
		diffs = append(diffs, fmt.Sprintf("piece length %d / %d", a.PieceLength, b.PieceLength))
	}
	if a.Length != b.Length {
		diffs = append(diffs, fmt.Sprintf("length %d / %d", a.Length, b.Length))
	}
	if a.NumPieces() != b.NumPieces() {
		diffs = append(diffs, fmt.Sprintf("%d / %d pieces", a.NumPieces(), b.NumPieces()))
	}
	if len(diffs) == 0 {
		diffs = append(diffs, fmt.Sprintf("info dictionaries of %d / %d bytes", len(mk.InfoBytes), len(aio.InfoBytes)))
	}
	return msg + " (" + strings.Join(diffs, ", ") + ")"
}

// conditions describes what else was happening on the machine.
type conditions struct {
	*harness.Conditions
	rewarms  int // times the file had to be read back into the page cache
	diskRuns int // measurements during which a tool read from the disk
}

func report(w io.Writer, cfg *config, root, goCmd, file string, cond *conditions, tools []*tool, mismatches []string) {
	harness.WriteHeader(w, "createbench", "", cond.Conditions)
	fmt.Fprintf(w, "- page cache: the file had to be read back in %d times (checked before every measurement); measurements that read from the disk anyway: %d\n", cond.rewarms, cond.diskRuns)
	fmt.Fprintf(w, "- Go: %s\n", harness.CmdLine(goCmd, "version"))
	fmt.Fprintf(w, "- mktorrent: %s\n", harness.CmdLine("mktorrent", "-h"))
	fmt.Fprintf(w, "- sha1sum: %s\n", harness.CmdLine("sha1sum", "--version"))
	fmt.Fprintf(w, "- aiotorrent: built from %s\n", root)
	fmt.Fprintf(w, "- file: %s, %d bytes (%.0f MiB), in the page cache; pieces of 1 MiB; runs: %d, order rotated each run\n\n",
		file, cfg.Size, harness.MiB(cfg.Size), cfg.Runs)

	sha := find(tools, "sha1sum", 0)
	shaRate := harness.MiB(cfg.Size) / harness.Median(sha.wall).Seconds()
	fmt.Fprintln(w, "| tool | threads | median wall s | MiB/s | median CPU s | vs mktorrent | vs sha1sum | min wall s | max wall s |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, t := range tools {
		med := harness.Median(t.wall)
		rate := harness.MiB(cfg.Size) / med.Seconds()
		threads, vsMk, vsSha := "1", "", ""
		if t.threads > 0 {
			threads = strconv.Itoa(t.threads)
			vsSha = fmt.Sprintf("%.2f×", rate/shaRate)
		}
		if t.name == "aiotorrent" {
			mk := find(tools, "mktorrent", t.threads)
			vsMk = fmt.Sprintf("%.2f×", rate/(harness.MiB(cfg.Size)/harness.Median(mk.wall).Seconds()))
		}
		fmt.Fprintf(w, "| %s | %s | %.3f | %.0f | %.3f | %s | %s | %.3f | %.3f |\n",
			t.name, threads, med.Seconds(), rate, harness.Median(t.cpu).Seconds(), vsMk, vsSha,
			slices.Min(t.wall).Seconds(), slices.Max(t.wall).Seconds())
	}
	fmt.Fprintln(w)
	if len(mismatches) == 0 {
		fmt.Fprintf(w, "Info hashes: mktorrent and aiotorrent agreed in all %d comparisons.\n", cfg.Runs*len(cfg.threads))
	} else {
		fmt.Fprintf(w, "**FAIL**: info hashes differ:\n\n")
		for _, m := range mismatches {
			fmt.Fprintf(w, "- %s\n", m)
		}
	}
}
