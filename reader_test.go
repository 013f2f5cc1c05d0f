package aiotorrent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// readerModes are the storages a reader runs on.
var readerModes = []struct {
	name string
	opts func(t *testing.T) []Option
}{
	{"files", func(t *testing.T) []Option { return []Option{WithDir(t.TempDir())} }},
	{"memory", func(t *testing.T) []Option { return []Option{InMemory(256 << 10)} }},
}

func TestReaderReadsWhileDownloading(t *testing.T) {
	for _, mode := range readerModes {
		t.Run(mode.name, func(t *testing.T) {
			mi, src := makeTorrent(t, "content", 32<<10,
				testFile{"a.bin", 300 << 10}, testFile{"b/one", 1}, testFile{"c.bin", 523457})
			seed := startSeeder(t, mi, src)
			tor := leechFrom(t, mi, seed)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			opts := mode.opts(t)
			for _, f := range tor.Files() {
				want, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(f.Path)))
				if err != nil {
					t.Fatal(err)
				}
				r, err := tor.NewReader(ctx, f, opts...)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("%s: %v", f.Path, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: read %d bytes that differ from the %d of the original", f.Path, len(got), len(want))
				}
				checkRanges(t, r, want, 60)
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := r.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
					t.Errorf("Read after Close: %v, want fs.ErrClosed", err)
				}
			}
		})
	}
}

// checkRanges seeks and reads random ranges of r (and ReadAt's) and
// compares them with want: the last byte, ranges across pieces, past the
// end.
func checkRanges(t *testing.T, r *Reader, want []byte, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(want)), 7))
	size := int64(len(want))
	for k := range n {
		var off, length int64
		switch {
		case k == 0:
			off, length = size-1, 1 // the last byte
		case k == 1:
			off, length = size, 10 // past the end
		default:
			off = rng.Int64N(size)
			length = 1 + rng.Int64N(min(size-off, 200<<10))
		}
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, length)
		got, err := io.ReadFull(r, buf)
		if off >= size {
			if err != io.EOF {
				t.Fatalf("read at the end (%d): %d bytes, %v", off, got, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("read [%d, %d): %v", off, off+length, err)
		}
		if !bytes.Equal(buf, want[off:off+length]) {
			t.Fatalf("read [%d, %d): wrong bytes", off, off+length)
		}
		at := make([]byte, length)
		if m, err := r.ReadAt(at, off); m != int(length) || (err != nil && err != io.EOF) || !bytes.Equal(at, want[off:off+length]) {
			t.Fatalf("ReadAt [%d, %d): %d bytes, %v", off, off+length, m, err)
		}
	}
}

// TestReaderMemoryEvicts reads a file 8 times the cache in memory, then
// seeks back to its start: the evicted pieces are fetched again, and no
// file is created.
func TestReaderMemoryEvicts(t *testing.T) {
	mi, src := makeTorrent(t, "big.bin", 16<<10, testFile{"", 2 << 20})
	seed := startSeeder(t, mi, src)
	c := newTestClient(t)
	dataDir := t.TempDir()
	c.cfg.DataDir = dataDir
	tor, err := c.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	tor.AddPeers(clientAddr(seed))
	want, err := os.ReadFile(filepath.Join(src, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const capacity = 256 << 10
	r, err := tor.NewReader(ctx, tor.Files()[0], InMemory(capacity))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 10000)
	var got []byte
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if s := tor.Stats(); s.Cached > capacity {
			t.Fatalf("cache holds %d bytes, capacity %d", s.Cached, capacity)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes read differ from the original")
	}
	s := tor.Stats()
	if s.PiecesVerified == s.Pieces {
		t.Fatalf("all %d pieces still cached in %d bytes", s.Pieces, capacity)
	}
	// Having had every piece at some time does not make us a seed to the
	// seeder, which would hang up (and readers wait to reconnect).
	time.Sleep(200 * time.Millisecond)
	if n := tor.Stats().Peers; n != 1 {
		t.Fatalf("%d peers after reading the file once, want the seeder still connected", n)
	}
	checkRanges(t, r, want, 40)
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100<<10)
	if _, err := io.ReadFull(r, head); err != nil || !bytes.Equal(head, want[:len(head)]) {
		t.Fatalf("reading the start again: %v", err)
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("the data folder holds %d entries (%v): nothing should be written", len(entries), err)
	}
}

// TestReaderFetchesOnlyWindow: with no download, a reader that reads the
// start of a file makes the torrent fetch only about its window.
func TestReaderFetchesOnlyWindow(t *testing.T) {
	mi, src := makeTorrent(t, "big.bin", 64<<10, testFile{"", 32 << 20})
	seed := startSeeder(t, mi, src)
	tor := leechFrom(t, mi, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const ahead = 1 << 20
	r, err := tor.NewReader(ctx, tor.Files()[0], InMemory(8<<20), WithReadahead(ahead))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 512<<10)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	// Let whatever was asked for arrive: the window ends a readahead
	// after the position.
	end := int64(len(buf)) + ahead
	deadline := time.Now().Add(20 * time.Second)
	for tor.Stats().Verified < end && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything more would come now
	s := tor.Stats()
	t.Logf("read %d bytes, readahead %d: downloaded %d, verified %d", len(buf), ahead, s.Downloaded, s.Verified)
	limit := int64(len(buf)) + ahead + 2*tor.PieceLength()
	if s.Downloaded > limit {
		t.Fatalf("downloaded %d bytes for a read of %d with a %d readahead (limit %d)", s.Downloaded, len(buf), ahead, limit)
	}
	if s.Verified < int64(len(buf)) {
		t.Fatalf("verified %d bytes, less than what was read", s.Verified)
	}
	if len(s.Readers) != 1 || s.Readers[0].File != 0 {
		t.Fatalf("Stats.Readers = %+v", s.Readers)
	}
}

func TestReaderCloseUnblocks(t *testing.T) {
	mi, _ := makeTorrent(t, "x.bin", 16<<10, testFile{"", 100 << 10})
	tor, err := newTestClient(t).Add(mi) // no peers: reads block
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := tor.NewReader(ctx, tor.Files()[0], InMemory(0))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("blocked Read returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still blocked after its context was cancelled")
	}
	r2, err := tor.NewReader(context.Background(), tor.Files()[0])
	if err == nil {
		go func() {
			_, err := r2.ReadAt(make([]byte, 10), 50<<10)
			errc <- err
		}()
		time.Sleep(50 * time.Millisecond)
		r2.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, fs.ErrClosed) {
				t.Fatalf("blocked ReadAt returned %v after Close", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ReadAt still blocked after Close")
		}
	} else {
		t.Fatal(err)
	}
	r.Close()
	if err := tor.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReaderFetchesWhatIsWatched reads a file at a fixed slow rate: the
// torrent fetches no more than what was read plus the readahead window,
// and pieces come nearest first.
func TestReaderFetchesWhatIsWatched(t *testing.T) {
	const (
		pieceLen = 256 << 10
		rate     = 4 << 20 // bytes a second
		chunk    = 64 << 10
		readFor  = 2500 * time.Millisecond
	)
	for _, tc := range []struct {
		name  string
		ahead int64 // 0: follows the rate
	}{{"fixed readahead", 2 << 20}, {"readahead from the rate", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			mi, src := makeTorrent(t, "big.bin", pieceLen, testFile{"", 64 << 20})
			seed := startSeeder(t, mi, src)
			tor := leechFrom(t, mi, seed)
			want, err := os.ReadFile(filepath.Join(src, "big.bin"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			opts := []Option{InMemory(64 << 20)}
			if tc.ahead > 0 {
				opts = append(opts, WithReadahead(tc.ahead))
			}
			r, err := tor.NewReader(ctx, tor.Files()[0], opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var order []int // pieces as their last block arrives, on the loop
			e := tor.running()
			e.callWait(func() { e.onComplete = func(i int) { order = append(order, i) } })

			buf := make([]byte, chunk)
			var read int64
			tick := time.NewTicker(time.Second * chunk / rate)
			defer tick.Stop()
			ahead := tc.ahead // the largest window seen: it follows the rate
			check := func(when string) {
				t.Helper()
				s := tor.Stats()
				for _, rd := range s.Readers {
					ahead = max(ahead, rd.Readahead)
				}
				if limit := read + ahead + 2*pieceLen; s.Downloaded > limit {
					t.Fatalf("%s: downloaded %d bytes, having read %d with a readahead of %d (limit %d)", when, s.Downloaded, read, ahead, limit)
				}
			}
			for start := time.Now(); time.Since(start) < readFor; {
				<-tick.C
				if _, err := io.ReadFull(r, buf); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf, want[read:read+chunk]) {
					t.Fatalf("wrong bytes at %d", read)
				}
				read += chunk
				check("reading")
			}
			time.Sleep(500 * time.Millisecond) // the window fills; nothing more comes
			check("after reading")
			s := tor.Stats()
			t.Logf("read %d bytes at %d B/s: downloaded %d; readers %+v", read, rate, s.Downloaded, s.Readers)
			if s.Downloaded >= int64(len(want))-8<<20 {
				t.Fatalf("downloaded %d of %d bytes for %d read", s.Downloaded, len(want), read)
			}
			// Nearest first: with one seeder the pieces arrive in order.
			var got []int
			e.callWait(func() { got = append(got, order...); e.onComplete = nil })
			for k, i := range got {
				if i != k {
					t.Fatalf("piece %d arrived in position %d: order %v", i, k, got)
				}
			}
		})
	}
}

// TestReadersWithDownload runs a download (each strategy) and two readers
// of one file at different places at once: each reader gets its bytes,
// and the download completes.
func TestReadersWithDownload(t *testing.T) {
	for _, strategy := range []Strategy{Default, Sequential} {
		t.Run(strategy.String(), func(t *testing.T) {
			mi, src := makeTorrent(t, "content", 32<<10, testFile{"a.bin", 3 << 20}, testFile{"b.bin", 1 << 20})
			seed := startSeeder(t, mi, src)
			tor := leechFrom(t, mi, seed)
			want, err := os.ReadFile(filepath.Join(src, "content", "a.bin"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dst := t.TempDir()
			f := tor.Files()[0]
			r1, err := tor.NewReader(ctx, f, WithDir(dst), WithReadahead(256<<10))
			if err != nil {
				t.Fatal(err)
			}
			defer r1.Close()
			r2, err := tor.NewReader(ctx, f, WithReadahead(256<<10))
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			errs := make(chan error, 3)
			go func() { errs <- tor.DownloadAll(ctx, WithDir(dst), WithStrategy(strategy)) }()
			read := func(r *Reader, from int64) {
				if _, err := r.Seek(from, io.SeekStart); err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(r)
				if err == nil && !bytes.Equal(got, want[from:]) {
					err = fmt.Errorf("reader from %d: wrong bytes", from)
				}
				errs <- err
			}
			go read(r1, 0)
			go read(r2, int64(len(want))*2/3)
			for range 3 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			sameFile(t, filepath.Join(dst, "content", "a.bin"), filepath.Join(src, "content", "a.bin"))
			sameFile(t, filepath.Join(dst, "content", "b.bin"), filepath.Join(src, "content", "b.bin"))
		})
	}
}

// TestReaderLimit: a reader told where it stops fetches nothing past it
// (an HTTP range), however large its readahead.
func TestReaderLimit(t *testing.T) {
	const pieceLen = 64 << 10
	mi, src := makeTorrent(t, "big.bin", pieceLen, testFile{"", 16 << 20})
	seed := startSeeder(t, mi, src)
	tor := leechFrom(t, mi, seed)
	want, err := os.ReadFile(filepath.Join(src, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := tor.NewReader(ctx, tor.Files()[0], InMemory(8<<20), WithReadahead(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const off, n = 5<<20 + 1000, 100 << 10
	r.SetLimit(off + n)
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, want[off:off+n]) {
		t.Fatalf("read: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // anything more asked for would come now
	if s := tor.Stats(); s.Downloaded > 3*pieceLen {
		t.Fatalf("downloaded %d bytes for a read of %d limited to it", s.Downloaded, n)
	}
}
