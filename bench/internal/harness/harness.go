//go:build linux

// Package harness holds what the benchmark programs under bench
// (createbench, dlbench, seedbench, streambench) share: the flags they
// have in common (flags.go), starting and stopping the program, building
// cmd/aiotorrent, writing the test content and keeping it in the page
// cache, recording the load on the machine during the runs, and the head
// of the Markdown report; and, for dlbench, seedbench and streambench, the
// programs they start and the CPU time and memory those use (proc.go), the
// four clients as seeders on loopback (seeders.go), and the qBittorrent
// and libtorrent processes that dlbench also runs as leechers
// (qbittorrent.go, libtorrent.go). For seedbench, tree.go counts the CPU
// time of a process with its descendants' and qbitprefs.go reads
// qBittorrent's settings.
//
// It runs on Linux only: it reads /proc and uses mincore(2).
package harness

import (
	"bytes"
	"context"
	"crypto/sha256"
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

// SHA256File returns the SHA-256 of the file at path.
func SHA256File(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h := sha256.New()
	if err := CopyFile(h, path); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// VerifyFile checks that the file at path is size bytes with the SHA-256
// sum: a download identical to the content, byte for byte.
func VerifyFile(path string, size int64, sum [sha256.Size]byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() != size {
		return fmt.Errorf("%s: %d bytes, want %d", path, st.Size(), size)
	}
	got, err := SHA256File(path)
	if err != nil {
		return err
	}
	if got != sum {
		return fmt.Errorf("%s: SHA-256 %x, want %x", path, got, sum)
	}
	return nil
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
