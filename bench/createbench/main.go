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
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

const (
	announce    = "http://127.0.0.1:6969/announce" // never contacted
	pieceLog2   = 20                               // 1 MiB pieces: mktorrent -l 20
	pieceFlag   = "1M"                             // the same for aiotorrent --piece-size
	chunkSize   = 4 << 20                          // write and read the test file in 4 MiB chunks
	modulePath  = "github.com/aiotorrent/aiotorrent"
	mktorrentPk = "mktorrent" // Debian package holding mktorrent
)

type config struct {
	size    int64
	runs    int
	threads []int
	dir     string
	keep    bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "createbench:", err)
		os.Exit(1)
	}
}

func parseArgs(args []string) (*config, error) {
	fs := flag.NewFlagSet("createbench", flag.ContinueOnError)
	size := fs.String("size", "1G", "test file `SIZE` in bytes, or with a binary unit: 256M, 1G")
	runs := fs.Int("runs", 5, "time each tool `N` times")
	threads := fs.String("threads", "1,2", "comma-separated hashing thread `COUNTS` for mktorrent and aiotorrent")
	dir := fs.String("dir", "", "write the test file in `DIR` (default: a new temporary folder)")
	keep := fs.Bool("keep", false, "keep the test file; a later run with the same -dir and -size reuses it")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./bench/createbench [-size 1G] [-runs 5] [-threads 1,2] [-dir DIR] [-keep]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c := &config{runs: *runs, dir: *dir, keep: *keep}
	var err error
	if c.size, err = parseSize(*size); err != nil {
		return nil, fmt.Errorf("-size: %w", err)
	}
	if c.size < 1<<pieceLog2 {
		return nil, fmt.Errorf("-size: %s is less than one 1 MiB piece", *size)
	}
	if c.runs < 1 {
		return nil, errors.New("-runs must be at least 1")
	}
	if c.dir != "" {
		if st, err := os.Stat(c.dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("-dir %s: not an existing folder", c.dir)
		}
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

// parseSize reads "1073741824", "1G", "1GiB", "256M", "512K".
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 256M or 1G", s)
	}
	return n * mult, nil
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
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
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
	goCmd, err := findGo()
	if err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}

	work, err := os.MkdirTemp("", "createbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// Build aiotorrent as a release would be built: no race detector, no
	// coverage, the default optimisations.
	bin := filepath.Join(work, "aiotorrent")
	progress("building %s/cmd/aiotorrent", modulePath)
	build := exec.CommandContext(ctx, goCmd, "build", "-o", bin, "./cmd/aiotorrent")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/aiotorrent: %v\n%s", err, out)
	}

	// The test file.
	dataDir := cfg.dir
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "createbench-data-"); err != nil {
			return err
		}
		if !cfg.keep {
			defer os.RemoveAll(dataDir)
		}
	}
	file := filepath.Join(dataDir, fmt.Sprintf("createbench-%d.bin", cfg.size))
	if err := makeFile(ctx, file, cfg.size); err != nil {
		return err
	}
	if cfg.keep {
		defer progress("kept test file %s", file)
	} else {
		defer os.Remove(file)
	}
	progress("warming the page cache")
	warm, err := readAll(file)
	if err != nil {
		return err
	}
	progress("read %s in %.2fs (%.0f MiB/s)", file, warm.Seconds(), mib(cfg.size)/warm.Seconds())
	if _, err := keepCached(file); err != nil {
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

	cond := conditions{loadBefore: loadAvg()}
	cpuStall, ioStall := psiTotal("cpu"), psiTotal("io")
	start := time.Now()
	var mismatches []string
	for r := range cfg.runs {
		// Rotate the order each run so that no tool always goes first or
		// always follows the same other tool.
		for i := range tools {
			t := tools[(i+r)%len(tools)]
			if t.out != "" {
				os.Remove(t.out) // mktorrent will not overwrite
			}
			// Other work on the machine can push the file out of the
			// page cache; time the tools on memory, never on the disk.
			n, err := keepCached(file)
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
				note = fmt.Sprintf("  (read %.0f MiB from the disk)", mib(diskRead))
			}
			progress("run %d/%d  %-15s %7.3fs wall %7.3fs CPU  %6.0f MiB/s%s",
				r+1, cfg.runs, t.label(), wall.Seconds(), cpu.Seconds(), mib(cfg.size)/wall.Seconds(), note)
		}
		for _, n := range cfg.threads {
			mk, aio := find(tools, "mktorrent", n), find(tools, "aiotorrent", n)
			if msg := compareTorrents(mk.out, aio.out); msg != "" {
				msg = fmt.Sprintf("run %d, -t %d: %s", r+1, n, msg)
				progress("FAIL: %s", msg)
				mismatches = append(mismatches, msg)
			}
		}
	}

	elapsed := time.Since(start)
	cond.loadAfter = loadAvg()
	cond.cpuStall = stallShare(cpuStall, psiTotal("cpu"), elapsed)
	cond.ioStall = stallShare(ioStall, psiTotal("io"), elapsed)
	report(os.Stdout, cfg, root, goCmd, file, &cond, tools, mismatches)
	if len(mismatches) > 0 {
		return fmt.Errorf("%d info hash mismatches between mktorrent and aiotorrent", len(mismatches))
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func find(tools []*tool, name string, threads int) *tool {
	for _, t := range tools {
		if t.name == name && t.threads == threads {
			return t
		}
	}
	return nil
}

// findGo returns the go command: the one in PATH, else the one in $GOROOT.
func findGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if g := os.Getenv("GOROOT"); g != "" {
		p := filepath.Join(g, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("the go command is not in PATH")
}

// moduleRoot walks up from the working folder to the go.mod of this module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			if !bytes.Contains(data, []byte("module "+modulePath)) {
				return "", fmt.Errorf("%s/go.mod is not module %s: run this from inside the aiotorrent module", dir, modulePath)
			}
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working folder: run this from inside the aiotorrent module")
		}
		dir = parent
	}
}

// makeFile writes size bytes of a ChaCha8 stream with a fixed seed to
// path, so every run hashes the same content. A file already there with
// the right size (left by -keep) is reused.
func makeFile(ctx context.Context, path string, size int64) (err error) {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() == size {
		progress("reusing %s", path)
		return nil
	}
	var fsStat syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &fsStat); err == nil {
		if free := int64(fsStat.Bavail) * int64(fsStat.Bsize); free < size+64<<20 {
			return fmt.Errorf("%s: only %.0f MiB free, need %.0f MiB for the test file (use -dir or a smaller -size)",
				filepath.Dir(path), mib(free), mib(size))
		}
	}
	progress("writing %.0f MiB to %s", mib(size), path)
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	rng := rand.NewChaCha8([32]byte{'c', 'r', 'e', 'a', 't', 'e', 'b', 'e', 'n', 'c', 'h'})
	buf := make([]byte, chunkSize)
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(left, int64(len(buf)))
		rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	// Flush now, so that write-back does not run during the timings.
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	progress("wrote it in %.1fs", time.Since(start).Seconds())
	return nil
}

// readAll reads the file once, to bring it into the page cache.
func readAll(path string) (time.Duration, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, chunkSize)); err != nil {
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

// keepCached makes sure the whole file is in the page cache, reading it
// again if part of it was evicted, and returns how many times it did so.
func keepCached(path string) (int, error) {
	const tries = 3
	for n := 0; ; n++ {
		res, err := resident(path)
		if err != nil {
			return n, err
		}
		if res == 1 {
			return n, nil
		}
		if n == tries {
			return n, fmt.Errorf("%s: only %.0f%% of it stays in the page cache after reading it %d times: not enough free memory (free some, or lower -size)",
				path, 100*res, tries)
		}
		progress("%.1f%% of the file is not in the page cache: reading it again", 100*(1-res))
		if _, err := readAll(path); err != nil {
			return n, err
		}
	}
}

// resident returns the fraction of the file's pages in the page cache,
// with mincore(2) on a read-only mapping.
func resident(path string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := int(st.Size())
	data, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return 0, fmt.Errorf("mmap %s: %w", path, err)
	}
	defer syscall.Munmap(data)
	ps := os.Getpagesize()
	vec := make([]byte, (size+ps-1)/ps)
	_, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&data[0])), uintptr(size), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return 0, fmt.Errorf("mincore %s: %w", path, errno)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec)), nil
}

// psiTotal returns the "some" stall total, in microseconds, from
// /proc/pressure/RESOURCE, or -1 if the kernel does not provide it.
func psiTotal(resource string) int64 {
	data, err := os.ReadFile("/proc/pressure/" + resource)
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "some "); ok {
			for _, f := range strings.Fields(rest) {
				if v, ok := strings.CutPrefix(f, "total="); ok {
					if n, err := strconv.ParseInt(v, 10, 64); err == nil {
						return n
					}
				}
			}
		}
	}
	return -1
}

func stallShare(before, after int64, elapsed time.Duration) string {
	if before < 0 || after < before || elapsed <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(after-before)/float64(elapsed.Microseconds()))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// conditions describes what else was happening on the machine.
type conditions struct {
	loadBefore, loadAfter string
	cpuStall, ioStall     string // share of the time some task waited for CPU / I/O
	rewarms               int    // times the file had to be read back into the page cache
	diskRuns              int    // measurements during which a tool read from the disk
}

func report(w io.Writer, cfg *config, root, goCmd, file string, cond *conditions, tools []*tool, mismatches []string) {
	fmt.Fprintf(w, "## createbench\n\n")
	fmt.Fprintf(w, "- command: `%s`\n", commandLine())
	fmt.Fprintf(w, "- finished: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- nproc: %s (GOMAXPROCS of this harness %d)\n", nproc(), runtime.GOMAXPROCS(0))
	if cpu := cpuModel(); cpu != "" {
		fmt.Fprintf(w, "- CPU: %s\n", cpu)
	}
	fmt.Fprintf(w, "- load average (1, 5, 15 min): %s before the runs, %s after\n", cond.loadBefore, cond.loadAfter)
	fmt.Fprintf(w, "- during the runs, some task was waiting for a CPU %s of the time, for I/O %s (Linux PSI)\n", cond.cpuStall, cond.ioStall)
	fmt.Fprintf(w, "- page cache: the file had to be read back in %d times (checked before every measurement); measurements that read from the disk anyway: %d\n", cond.rewarms, cond.diskRuns)
	fmt.Fprintf(w, "- Go: %s\n", cmdLine(goCmd, "version"))
	fmt.Fprintf(w, "- mktorrent: %s\n", cmdLine("mktorrent", "-h"))
	fmt.Fprintf(w, "- sha1sum: %s\n", cmdLine("sha1sum", "--version"))
	fmt.Fprintf(w, "- aiotorrent: built from %s\n", root)
	fmt.Fprintf(w, "- file: %s, %d bytes (%.0f MiB), in the page cache; pieces of 1 MiB; runs: %d, order rotated each run\n\n",
		file, cfg.size, mib(cfg.size), cfg.runs)

	sha := find(tools, "sha1sum", 0)
	shaRate := mib(cfg.size) / median(sha.wall).Seconds()
	fmt.Fprintln(w, "| tool | threads | median wall s | MiB/s | median CPU s | vs mktorrent | vs sha1sum | min wall s | max wall s |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, t := range tools {
		med := median(t.wall)
		rate := mib(cfg.size) / med.Seconds()
		threads, vsMk, vsSha := "1", "", ""
		if t.threads > 0 {
			threads = strconv.Itoa(t.threads)
			vsSha = fmt.Sprintf("%.2f×", rate/shaRate)
		}
		if t.name == "aiotorrent" {
			mk := find(tools, "mktorrent", t.threads)
			vsMk = fmt.Sprintf("%.2f×", rate/(mib(cfg.size)/median(mk.wall).Seconds()))
		}
		fmt.Fprintf(w, "| %s | %s | %.3f | %.0f | %.3f | %s | %s | %.3f | %.3f |\n",
			t.name, threads, med.Seconds(), rate, median(t.cpu).Seconds(), vsMk, vsSha,
			slices.Min(t.wall).Seconds(), slices.Max(t.wall).Seconds())
	}
	fmt.Fprintln(w)
	if len(mismatches) == 0 {
		fmt.Fprintf(w, "Info hashes: mktorrent and aiotorrent agreed in all %d comparisons.\n", cfg.runs*len(cfg.threads))
	} else {
		fmt.Fprintf(w, "**FAIL**: info hashes differ:\n\n")
		for _, m := range mismatches {
			fmt.Fprintf(w, "- %s\n", m)
		}
	}
}

// commandLine is how this program was started, as a shell command.
func commandLine() string {
	prog := "go run ./bench/createbench"
	if exe, err := os.Executable(); err == nil && !strings.Contains(exe, "go-build") {
		prog = os.Args[0]
	}
	parts := []string{prog}
	for _, a := range os.Args[1:] {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./,=:@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// cmdLine returns the first line of a command's output, or "unknown".
func cmdLine(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return "unknown"
	}
	return line
}

func nproc() string {
	if out, err := exec.Command("nproc").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return strconv.Itoa(runtime.NumCPU())
}

// loadAvg returns the 1, 5 and 15 minute load averages: other work on the
// machine, which makes the timings noisy.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
