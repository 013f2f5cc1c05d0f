//go:build linux

// Package harness holds what the benchmark programs under bench
// (createbench, dlbench, streambench) share: starting and stopping the
// program, building cmd/aiotorrent, writing the test content and keeping
// it in the page cache, recording the load on the machine during the
// runs, and the head of the Markdown report; and, for dlbench and
// streambench, the programs they start and the CPU time and memory those
// use (proc.go), the four clients as seeders on loopback (seeders.go),
// and the qBittorrent and libtorrent processes that dlbench also runs as
// leechers (qbittorrent.go, libtorrent.go).
//
// It runs on Linux only: it reads /proc and uses mincore(2).
package harness

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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// ModulePath is the module the benchmark programs measure, and must be
// run from inside.
const ModulePath = "github.com/aiotorrent/aiotorrent"

// chunkSize is the buffer for writing and reading the test content.
const chunkSize = 4 << 20

// Main runs the program called name: it calls run with a context that is
// cancelled on Ctrl-C or SIGTERM and the command-line arguments, and exits
// 1 with "name: error" on standard error if run fails. An error that is
// flag.ErrHelp (-h) is not a failure.
func Main(name string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Progress writes a line of progress to standard error.
func Progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// ParseSize reads "1073741824", "1G", "1GiB", "256M", "512K".
func ParseSize(s string) (int64, error) {
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

// ParseFlags parses args with fs and fails if any is left that is not a
// flag.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return nil
}

// CheckDir fails unless dir is an existing folder; flagName names the
// flag that gave it, for the message.
func CheckDir(flagName, dir string) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%s %s: not an existing folder", flagName, dir)
	}
	return nil
}

// FindGo returns the go command: the one in PATH, else the one in $GOROOT.
func FindGo() (string, error) {
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

// ModuleRoot walks up from the working folder to the go.mod of
// [ModulePath].
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			if !bytes.Contains(data, []byte("module "+ModulePath)) {
				return "", fmt.Errorf("%s/go.mod is not module %s: run this from inside the aiotorrent module", dir, ModulePath)
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

// BuildAiotorrent builds cmd/aiotorrent of the module at root into bin
// with goCmd, as a release would be built: no race detector, no coverage,
// the default optimisations.
func BuildAiotorrent(ctx context.Context, goCmd, root, bin string) error {
	Progress("building %s/cmd/aiotorrent", ModulePath)
	build := exec.CommandContext(ctx, goCmd, "build", "-o", bin, "./cmd/aiotorrent")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/aiotorrent: %v\n%s", err, out)
	}
	return nil
}

// CheckFree fails if the file system holding dir has less than need +
// headroom bytes free; the message names need, the room for what (such
// as "the test file"). If it cannot tell, it does not fail: writing will
// if it must.
func CheckFree(dir string, need, headroom int64, what string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < need+headroom {
		return fmt.Errorf("%s: only %.0f MiB free, need %.0f MiB for %s (use -dir or a smaller -size)",
			dir, MiB(free), MiB(need), what)
	}
	return nil
}

// WriteContent writes size bytes of a ChaCha8 stream seeded with seed
// (at most 32 bytes) to path, so every run uses the same content, and
// flushes it so that write-back does not run during the timings. On
// error it removes what it wrote.
func WriteContent(ctx context.Context, path string, size int64, seed string) (err error) {
	Progress("writing %.0f MiB to %s", MiB(size), path)
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
	var key [32]byte
	copy(key[:], seed)
	rng := rand.NewChaCha8(key)
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
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	Progress("wrote it in %.1fs", time.Since(start).Seconds())
	return nil
}

// CopyFile reads the file at path to its end into w, which brings it into
// the page cache.
func CopyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(w, struct{ io.Reader }{f}, make([]byte, chunkSize))
	return err
}

// KeepCached makes sure the whole file at path is in the page cache,
// reading it again if other work evicted part of it, and returns how many
// times it did so. what names the file in progress lines ("the file").
func KeepCached(path, what string) (int, error) {
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
		Progress("%.2f%% of %s is not in the page cache: reading it again", 100*(1-res), what)
		if err := CopyFile(io.Discard, path); err != nil {
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

// Median returns the median of ds, which must not be empty.
func Median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// MiB returns n bytes in MiB.
func MiB(n int64) float64 { return float64(n) / (1 << 20) }
