package metainfo_test

import (
	"context"
	"crypto/sha1"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

const (
	benchFileSize    = 64 << 20 // bytes hashed per Create call
	benchPieceLength = 1 << 20
)

// writeBenchFile writes size deterministic pseudo-random bytes (a ChaCha8
// stream with a fixed seed) to a new file in dir and returns its path.
func writeBenchFile(tb testing.TB, dir string, size int64) string {
	tb.Helper()
	path := filepath.Join(dir, "bench.bin")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{'a', 'i', 'o', 't', 'o', 'r', 'r', 'e', 'n', 't'})
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			tb.Fatal(err)
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkCreate measures metainfo.Create on a 64 MiB file with 1 MiB
// pieces, with 1 and 2 hashing goroutines and with GOMAXPROCS when that
// is more than 2. The file is written once, outside the timer, and is read once
// before timing so that it is in the page cache: the figures are for
// hashing plus reading from memory, not from disk. Compare the MB/s with
// BenchmarkSHA1, the single-core ceiling.
func BenchmarkCreate(b *testing.B) {
	path := writeBenchFile(b, b.TempDir(), benchFileSize)
	if _, err := os.ReadFile(path); err != nil { // warm the page cache
		b.Fatal(err)
	}
	ctx := context.Background()
	var want metainfo.Hash
	counts := []int{1, 2}
	if n := runtime.GOMAXPROCS(0); n > 2 {
		counts = append(counts, n) // GOMAXPROCS, when not already listed
	}
	for _, threads := range counts {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			b.SetBytes(benchFileSize)
			b.ReportAllocs()
			opts := metainfo.CreateOptions{PieceLength: benchPieceLength, Threads: threads}
			for b.Loop() {
				mi, err := metainfo.Create(ctx, path, opts)
				if err != nil {
					b.Fatal(err)
				}
				// Every thread count must give the same torrent.
				if want.IsZero() {
					want = mi.InfoHash
				} else if mi.InfoHash != want {
					b.Fatalf("info hash %s with %d threads, want %s", mi.InfoHash, threads, want)
				}
			}
		})
	}
}

// BenchmarkSHA1 is the per-core ceiling for BenchmarkCreate: crypto/sha1
// over one 1 MiB piece held in memory.
func BenchmarkSHA1(b *testing.B) {
	buf := make([]byte, benchPieceLength)
	rand.NewChaCha8([32]byte{}).Read(buf)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		sha1.Sum(buf)
	}
}
