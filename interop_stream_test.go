package aiotorrent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent"
)

// Streaming from real, independent seeders: the torrent runs in memory
// with a cache smaller than its content, and its files are read over
// HTTP (Torrent.Handler) and through Readers.

const (
	// streamTimeout bounds each case: the seeders checking their data and
	// every read. On loopback a case takes seconds; this only stops a
	// stall from hanging the run.
	streamTimeout = 2 * time.Minute
	// streamCache is the in-memory cache: a third of the content, so
	// pieces are evicted and fetched again.
	streamCache = 1 << 20
	// streamPieceLength is small so the files start and end inside
	// pieces and ranges cross several of them.
	streamPieceLength = 64 << 10
	// slowRequest is how long a request may take before it is reported
	// (logged, never failed: runs vary a lot here); stallReport when the
	// torrent's state is logged while it goes on.
	slowRequest = 2 * time.Second
	stallReport = 10 * time.Second
)

// streamFiles is about 3.1 MiB in 50 pieces: a file that ends inside a
// piece, one that starts inside it and crosses several piece boundaries,
// an empty and a one-byte file in the middle of a piece, one a piece long
// that straddles two pieces, and a file of 32 pieces, longer than the
// cache.
var streamFiles = []interopFile{
	{"a.bin", 100_000},
	{"b.bin", 300_001},
	{"empty", 0},
	{"one", 1},
	{"sub/c.bin", 2<<20 + 12345},
	{"sub/d.txt", streamPieceLength},
	{"z.bin", 700_001},
}

// makeStreamData is makeInteropData with streamPieceLength pieces.
func makeStreamData(t *testing.T, files []interopFile) *interopData {
	return makeData(t, "stream", streamPieceLength, files)
}

// TestInteropStreamFromRealSeeders streams every file of a multi-file
// torrent from real seeders, alone and all together, with the torrent in
// memory (a cache a third of its size): over HTTP, whole files, HEAD and
// many single ranges (across pieces and the pieces files share, suffix,
// open-ended, the last byte, If-Range, unsatisfiable), some of them at
// once; through Readers, Seek then Read and concurrent ReadAt; and through
// Stream. The cache stays within its size throughout and nothing is
// written to disk. Slow requests and reads are logged, with the torrent's
// state when one stalls, never failed on: runs vary a lot here.
func TestInteropStreamFromRealSeeders(t *testing.T) {
	d := makeStreamData(t, streamFiles)
	cases := []struct {
		name    string
		seeders []startSeeder
	}{
		{"aria2c", []startSeeder{aria2Seeder}},
		{"qbittorrent", []startSeeder{qbitSeeder}},
		{"libtorrent", []startSeeder{libtorrentSeeder}},
		{"aiotorrent", []startSeeder{ownSeeder}},
		{"mixed", []startSeeder{aria2Seeder, qbitSeeder, libtorrentSeeder, ownSeeder}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), streamTimeout)
			defer cancel()
			begin := time.Now()
			var seeders []seeder
			for _, start := range tc.seeders {
				s := start(t, ctx, d, d.mi)
				t.Logf("%s seeding on %v after %v", s.name, s.addr, time.Since(begin).Round(time.Millisecond))
				seeders = append(seeders, s)
			}

			dataDir := t.TempDir()
			c := newStreamClient(t, dataDir)
			tor, err := c.Add(d.mi)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range seeders {
				tor.AddPeers(s.addr)
			}
			srv := httptest.NewServer(tor.Handler(aiotorrent.InMemory(streamCache)))
			defer srv.Close()
			h := &streamHTTP{t: t, ctx: ctx, client: srv.Client(), tor: tor}

			// The first read starts the torrent, which then connects to
			// the seeders. Every seeder joins before the checks, so that
			// in the mixed swarm each serves some (aria2c takes a second
			// to accept).
			start := time.Now()
			if status, _, _ := h.do("GET", srv.URL+"/files/0", "Range", "bytes=0-0"); status != http.StatusPartialContent {
				t.Fatalf("first read: status %d", status)
			}
			for tor.Stats().Peers < len(seeders) && ctx.Err() == nil && time.Since(start) < 30*time.Second {
				time.Sleep(10 * time.Millisecond)
			}
			if n := tor.Stats().Peers; n < len(seeders) {
				t.Fatalf("%d of the %d seeders connected after %v", n, len(seeders), time.Since(start).Round(time.Millisecond))
			}
			t.Logf("%d seeders connected after %v", len(seeders), time.Since(start).Round(time.Millisecond))

			watchCtx, stopWatch := context.WithCancel(ctx)
			cacheDone := make(chan cacheWatch, 1)
			go func() { cacheDone <- watchCache(watchCtx, tor) }()
			peersDone := make(chan int, 1)
			go func() { peersDone <- watchPeers(watchCtx, tor) }()

			files := tor.Files()
			wants := make([][]byte, len(files))
			for i, f := range files {
				b, err := os.ReadFile(filepath.Join(d.src, filepath.FromSlash(f.Path)))
				if err != nil {
					t.Fatal(err)
				}
				wants[i] = b
			}

			// Each file over HTTP, one request at a time.
			start = time.Now()
			for i, f := range files {
				fileStart := time.Now()
				url := fmt.Sprintf("%s/files/%d", srv.URL, f.Index)
				h.checkFile(url, f, wants[i], tor.PieceLength(), 40)
				t.Logf("%s (%d bytes at %d): checked over HTTP in %v", f.Path, f.Length, f.Offset, time.Since(fileStart).Round(time.Millisecond))
				checkCacheNow(t, tor)
				if t.Failed() {
					t.FailNow()
				}
			}
			t.Logf("HTTP, one at a time: %d requests in %v, slowest %v (%s)",
				h.count, time.Since(start).Round(time.Millisecond), h.worst.Round(time.Millisecond), h.worstWhat)

			// Ranges of every file at once: several readers share the
			// cache and evict each other's pieces.
			start = time.Now()
			h.concurrentRanges(srv.URL, files, wants, 4, 15)
			t.Logf("HTTP, 4 at a time: 60 ranges in %v", time.Since(start).Round(time.Millisecond))
			checkCacheNow(t, tor)

			// Readers: Seek and Read, and ReadAt from several goroutines.
			start = time.Now()
			for i, f := range files {
				checkStreamReader(t, ctx, h, f, wants[i], 25)
			}
			t.Logf("Readers: checked in %v", time.Since(start).Round(time.Millisecond))
			if t.Failed() {
				t.FailNow()
			}

			// Stream, on a port of its own, serves the same torrent.
			start = time.Now()
			checkStream(t, h, tor, files[len(files)-1], wants[len(files)-1])
			t.Logf("Stream: checked in %v", time.Since(start).Round(time.Millisecond))

			// Every response and Reader has released its reader.
			deadline := time.Now().Add(10 * time.Second)
			for len(tor.Stats().Readers) > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if rs := tor.Stats().Readers; len(rs) > 0 {
				t.Errorf("readers still open after every response and Reader: %+v", rs)
			}

			stopWatch()
			cw := <-cacheDone
			most := <-peersDone
			st := tor.Stats()
			t.Logf("total %v; %d requests and reads, %d slower than %v: %v", time.Since(begin).Round(time.Millisecond), h.count, len(h.slow), slowRequest, h.slow)
			t.Logf("stats: %d peers at most (%d now, %d seeds), downloaded %d bytes for %d of content (wasted %d), cache %d of %d bytes (at most %d in %d samples)",
				most, st.Peers, st.Seeds, st.Downloaded, tor.Length(), st.Wasted, st.Cached, st.CacheSize, cw.most, cw.samples)
			for _, s := range seeders {
				if s.uploaded != nil {
					t.Logf("%s reports %d bytes uploaded", s.name, s.uploaded())
				}
			}
			if cw.over != "" {
				t.Errorf("the cache went over its size: %s", cw.over)
			}
			if st.CacheSize != streamCache {
				t.Errorf("Stats().CacheSize = %d, want %d", st.CacheSize, streamCache)
			}
			if st.Downloaded <= streamCache {
				t.Errorf("downloaded %d bytes in all, no more than the cache: nothing was evicted and fetched again?", st.Downloaded)
			}
			if entries, err := os.ReadDir(dataDir); err != nil || len(entries) != 0 {
				t.Errorf("the data folder holds %d entries (%v), want none: the torrent runs in memory", len(entries), err)
			}
		})
	}
}

// newStreamClient is newInteropClient with DataDir set to dir (which a
// torrent in memory must leave empty) and no trackers.
func newStreamClient(t *testing.T, dir string) *aiotorrent.Client {
	t.Helper()
	logs := &logTail{}
	c, err := aiotorrent.NewClient(aiotorrent.Config{
		ListenAddr: "127.0.0.1:0",
		DataDir:    dir,
		NoTrackers: true,
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
		if t.Failed() || os.Getenv("AIOTORRENT_INTEROP_LOGS") != "" {
			t.Logf("--- aiotorrent streamer log:\n%s", logs)
		}
	})
	return c
}

// cacheWatch is what watchCache saw.
type cacheWatch struct {
	samples int
	most    int64  // the most bytes cached
	over    string // the first sample over the cache's size, if any
}

// watchCache samples the torrent's cache every few milliseconds until ctx
// is done.
func watchCache(ctx context.Context, tor *aiotorrent.Torrent) cacheWatch {
	var w cacheWatch
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if s := tor.Stats(); s.Running {
			w.samples++
			w.most = max(w.most, s.Cached)
			if s.Cached > s.CacheSize && w.over == "" {
				w.over = fmt.Sprintf("%d bytes cached of %d", s.Cached, s.CacheSize)
			}
		}
		select {
		case <-ctx.Done():
			return w
		case <-tick.C:
		}
	}
}

// checkCacheNow fails the test if the cache holds more than its size.
func checkCacheNow(t *testing.T, tor *aiotorrent.Torrent) {
	t.Helper()
	if s := tor.Stats(); s.Cached > s.CacheSize || s.CacheSize != streamCache {
		t.Errorf("cache: %d bytes of %d (want a size of %d)", s.Cached, s.CacheSize, streamCache)
	}
}

// streamHTTP makes requests to the handler and times them, and the
// Readers' calls. It may be used from several goroutines.
type streamHTTP struct {
	t      *testing.T
	ctx    context.Context
	client *http.Client
	tor    *aiotorrent.Torrent // its state is logged when a request stalls

	mu        sync.Mutex
	count     int           // guarded by mu: requests and reads timed
	worst     time.Duration // guarded by mu
	worstWhat string        // guarded by mu
	slow      []string      // guarded by mu: those slower than slowRequest
}

// do makes a request with the given header fields (name, value, ...) and
// returns the response with its body read. It reports errors with
// t.Errorf (it runs on other goroutines) and returns status 0.
func (h *streamHTTP) do(method, url string, header ...string) (int, http.Header, []byte) {
	req, err := http.NewRequestWithContext(h.ctx, method, url, nil)
	if err != nil {
		h.t.Errorf("%s %s: %v", method, url, err)
		return 0, nil, nil
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	what := fmt.Sprintf("%s %s %v", method, url, header)
	start := time.Now()
	defer watchStall(h.t, h.tor, what).Stop()
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Errorf("%s: %v", what, err)
		return 0, nil, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil {
		h.t.Errorf("%s: reading the body after %v: %v", what, took, err)
		return 0, nil, nil
	}
	h.timed(what, took)
	return resp.StatusCode, resp.Header, body
}

// timed records how long an operation took.
func (h *streamHTTP) timed(what string, took time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.count++
	if took > h.worst {
		h.worst, h.worstWhat = took, what
	}
	if took > slowRequest {
		h.slow = append(h.slow, fmt.Sprintf("%s took %v", what, took.Round(time.Millisecond)))
	}
}

// watchStall logs the torrent's state, once, if what still goes on after
// stallReport; the caller stops the returned timer when it is done.
func watchStall(t *testing.T, tor *aiotorrent.Torrent, what string) *time.Timer {
	return time.AfterFunc(stallReport, func() {
		st := tor.Stats()
		t.Logf("%s still going after %v: %d peers (%d seeds), readers %+v, downloaded %d, cache %d of %d",
			what, stallReport, st.Peers, st.Seeds, st.Readers, st.Downloaded, st.Cached, st.CacheSize)
	})
}

// rangeCase is a Range request and what it must return: bytes [start,
// end) of the file with status 206, or 416.
type rangeCase struct {
	rng        string
	start, end int64
	status     int
}

// check makes the request for c and fails the test unless the response
// is as c says.
func (h *streamHTTP) check(url string, want []byte, c rangeCase, header ...string) {
	size := int64(len(want))
	status, hd, body := h.do("GET", url, append([]string{"Range", c.rng}, header...)...)
	switch {
	case status == 0:
	case status != c.status:
		h.t.Errorf("GET %s Range %s %v: status %d, want %d (%d bytes)", url, c.rng, header, status, c.status, len(body))
	case status == http.StatusRequestedRangeNotSatisfiable:
		if cr := hd.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", size) {
			h.t.Errorf("GET %s Range %s: 416 with Content-Range %q, want \"bytes */%d\"", url, c.rng, cr, size)
		}
	case status == http.StatusOK:
		if !bytes.Equal(body, want) {
			h.t.Errorf("GET %s Range %s %v: 200 with %d bytes differing from the file's %d (first at %d)", url, c.rng, header, len(body), size, firstDiff(body, want))
		}
	default:
		if !bytes.Equal(body, want[c.start:c.end]) {
			h.t.Errorf("GET %s Range %s: %d bytes, not bytes [%d, %d) of the file (first difference at %d)",
				url, c.rng, len(body), c.start, c.end, firstDiff(body, want[c.start:c.end]))
		}
		if cr, wantCR := hd.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", c.start, c.end-1, size); cr != wantCR {
			h.t.Errorf("GET %s Range %s: Content-Range %q, want %q", url, c.rng, cr, wantCR)
		}
		if cl := hd.Get("Content-Length"); cl != strconv.FormatInt(c.end-c.start, 10) {
			h.t.Errorf("GET %s Range %s: Content-Length %q, want %d", url, c.rng, cl, c.end-c.start)
		}
	}
}

// checkFile checks file f, whose bytes are want, at url: HEAD, the whole
// file, the ranges every player asks for, ranges across the piece
// boundaries inside the file, If-Range, unsatisfiable ranges and n random
// ranges up to 3 pieces long.
func (h *streamHTTP) checkFile(url string, f aiotorrent.File, want []byte, pieceLen int64, n int) {
	t := h.t
	t.Helper()
	size := int64(len(want))

	status, hd, body := h.do("HEAD", url)
	if status != http.StatusOK || hd.Get("Content-Length") != strconv.FormatInt(size, 10) || len(body) != 0 ||
		hd.Get("Accept-Ranges") != "bytes" || hd.Get("Etag") == "" {
		t.Errorf("HEAD %s: status %d, Content-Length %q (want %d), Accept-Ranges %q, ETag %q, %d bytes of body",
			url, status, hd.Get("Content-Length"), size, hd.Get("Accept-Ranges"), hd.Get("Etag"), len(body))
	}
	etag := hd.Get("Etag")

	status, hd, body = h.do("GET", url)
	if status != http.StatusOK || !bytes.Equal(body, want) || hd.Get("Content-Length") != strconv.FormatInt(size, 10) {
		t.Errorf("GET %s: status %d, %d bytes (want %d; first difference at %d), Content-Length %q",
			url, status, len(body), size, firstDiff(body, want), hd.Get("Content-Length"))
	}
	if size == 0 {
		// An empty file has no satisfiable range: ServeContent ignores
		// the header and answers 200.
		h.check(url, want, rangeCase{rng: "bytes=0-", status: http.StatusOK})
		return
	}

	cases := []rangeCase{
		{fmt.Sprintf("bytes=%d-%d", size-1, size-1), size - 1, size, 206}, // the last byte
		{"bytes=-1", size - 1, size, 206},
		{fmt.Sprintf("bytes=-%d", min(size, 100_000)), size - min(size, 100_000), size, 206},
		{fmt.Sprintf("bytes=-%d", size+5), 0, size, 206}, // a suffix longer than the file
		{fmt.Sprintf("bytes=%d-", size/2), size / 2, size, 206},
		{"bytes=0-", 0, size, 206},
		{"bytes=0-0", 0, 1, 206},
		{fmt.Sprintf("bytes=0-%d", size+1000), 0, size, 206}, // a last byte past the end
		{fmt.Sprintf("bytes=%d-", size), 0, 0, 416},
		{fmt.Sprintf("bytes=%d-%d", size+10, size+20), 0, 0, 416},
	}
	// Across the piece boundaries inside the file: the first ones, where
	// the file shares a piece with the one before, and the last.
	var bounds []int64
	for b := (f.Offset/pieceLen + 1) * pieceLen; b < f.Offset+size; b += pieceLen {
		bounds = append(bounds, b-f.Offset)
	}
	if len(bounds) > 4 {
		bounds = append(bounds[:3], bounds[len(bounds)-1])
	}
	for _, b := range bounds {
		a, z := max(b-10, 0), min(b+10, size)
		cases = append(cases, rangeCase{fmt.Sprintf("bytes=%d-%d", a, z-1), a, z, 206})
	}
	r := rand.New(rand.NewPCG(uint64(size), uint64(f.Index)))
	for k := range n {
		a := r.Int64N(size)
		if k%4 == 0 {
			// Open-ended, from a random place.
			cases = append(cases, rangeCase{fmt.Sprintf("bytes=%d-", a), a, size, 206})
			continue
		}
		b := a + r.Int64N(min(size-a, 3*pieceLen))
		cases = append(cases, rangeCase{fmt.Sprintf("bytes=%d-%d", a, b), a, b + 1, 206})
	}
	for _, c := range cases {
		if h.ctx.Err() != nil {
			t.Errorf("%s: %v", url, h.ctx.Err())
			return
		}
		h.check(url, want, c)
	}

	// If-Range: the file's ETag keeps the range, another gets the whole
	// file.
	a := size / 3
	h.check(url, want, rangeCase{fmt.Sprintf("bytes=%d-", a), a, size, 206}, "If-Range", etag)
	h.check(url, want, rangeCase{fmt.Sprintf("bytes=%d-", a), 0, size, 200}, "If-Range", `"not-this-one"`)
}

// concurrentRanges requests perFile random ranges of every file (but
// empty ones), workers at a time, in a random order.
func (h *streamHTTP) concurrentRanges(base string, files []aiotorrent.File, wants [][]byte, workers, perFile int) {
	type job struct {
		url  string
		want []byte
		c    rangeCase
	}
	r := rand.New(rand.NewPCG(uint64(len(files)), 42))
	var jobs []job
	for i, f := range files {
		size := int64(len(wants[i]))
		if size == 0 {
			continue
		}
		for range perFile {
			a := r.Int64N(size)
			b := a + r.Int64N(min(size-a, 4*streamPieceLength))
			jobs = append(jobs, job{fmt.Sprintf("%s/files/%d", base, f.Index), wants[i],
				rangeCase{fmt.Sprintf("bytes=%d-%d", a, b), a, b + 1, 206}})
		}
	}
	r.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	ch := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range ch {
				h.check(j.url, j.want, j.c)
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
}

// checkStream runs Torrent.Stream for file f, whose bytes are want, on a
// free loopback port, and reads the file whole and a range of it at the
// URL it reports.
func checkStream(t *testing.T, h *streamHTTP, tor *aiotorrent.Torrent, f aiotorrent.File, want []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- tor.Stream(ctx, f, aiotorrent.WithAddr("127.0.0.1:0"), aiotorrent.OnServe(func(u string) { urls <- u }))
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("Stream: %v", err)
	case <-ctx.Done():
		t.Fatalf("Stream did not report its URL: %v", ctx.Err())
	}
	size := int64(len(want))
	h.check(url, want, rangeCase{"bytes=0-", 0, size, 206})
	h.check(url, want, rangeCase{fmt.Sprintf("bytes=%d-%d", size/3, size/3+2*streamPieceLength), size / 3, size/3 + 2*streamPieceLength + 1, 206})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Stream returned %v after its context was cancelled", err)
	}
}

// checkStreamReader opens a Reader on file f, whose bytes are want, and
// checks n reads after a Seek to a random place (and the last byte, and
// past the end), then n ReadAt calls from 3 goroutines at once.
func checkStreamReader(t *testing.T, ctx context.Context, h *streamHTTP, f aiotorrent.File, want []byte, n int) {
	t.Helper()
	r, err := h.tor.NewReader(ctx, f, aiotorrent.InMemory(streamCache))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	size := int64(len(want))
	if size == 0 {
		if k, err := r.Read(make([]byte, 10)); k != 0 || err != io.EOF {
			t.Errorf("%s: Read of an empty file: %d bytes, %v; want io.EOF", f.Path, k, err)
		}
		if k, err := r.ReadAt(make([]byte, 10), 0); k != 0 || err != io.EOF {
			t.Errorf("%s: ReadAt of an empty file: %d bytes, %v; want io.EOF", f.Path, k, err)
		}
		return
	}
	rng := rand.New(rand.NewPCG(uint64(size), 99))
	for k := range n {
		var off, length int64
		switch k {
		case 0:
			off, length = size-1, 1
		case 1:
			off, length = size, 10 // past the end
		default:
			off = rng.Int64N(size)
			length = 1 + rng.Int64N(min(size-off, 3*streamPieceLength))
		}
		whence, arg := io.SeekStart, off
		if k%3 == 2 {
			whence, arg = io.SeekEnd, off-size
		}
		what := fmt.Sprintf("%s: Seek(%d, %d) and read %d bytes", f.Path, arg, whence, length)
		start := time.Now()
		stall := watchStall(t, h.tor, what)
		if pos, err := r.Seek(arg, whence); err != nil || pos != off {
			t.Fatalf("%s: Seek(%d, %d) = %d, %v; want %d", f.Path, arg, whence, pos, err, off)
		}
		buf := make([]byte, length)
		got, err := io.ReadFull(r, buf)
		stall.Stop()
		h.timed(what, time.Since(start))
		if off >= size {
			if err != io.EOF {
				t.Errorf("%s: read at the end (%d): %d bytes, %v; want io.EOF", f.Path, off, got, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: read [%d, %d) after a seek: %v", f.Path, off, off+length, err)
		}
		if !bytes.Equal(buf, want[off:off+length]) {
			t.Fatalf("%s: read [%d, %d) after a seek: wrong bytes (first difference at %d)", f.Path, off, off+length, off+int64(firstDiff(buf, want[off:off+length])))
		}
	}

	// ReadAt from several goroutines, while nothing moves the position.
	type span struct{ off, length int64 }
	spans := []span{{size - 1, 1}, {0, size}}
	for range n {
		off := rng.Int64N(size)
		spans = append(spans, span{off, 1 + rng.Int64N(min(size-off, 3*streamPieceLength))})
	}
	ch := make(chan span)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for s := range ch {
				buf := make([]byte, s.length)
				what := fmt.Sprintf("%s: ReadAt [%d, %d)", f.Path, s.off, s.off+s.length)
				start := time.Now()
				stall := watchStall(t, h.tor, what)
				k, err := r.ReadAt(buf, s.off)
				stall.Stop()
				h.timed(what, time.Since(start))
				if k != len(buf) || (err != nil && err != io.EOF) {
					t.Errorf("%s: ReadAt [%d, %d): %d bytes, %v", f.Path, s.off, s.off+s.length, k, err)
					continue
				}
				if !bytes.Equal(buf, want[s.off:s.off+s.length]) {
					t.Errorf("%s: ReadAt [%d, %d): wrong bytes (first difference at %d)", f.Path, s.off, s.off+s.length, s.off+int64(firstDiff(buf, want[s.off:s.off+s.length])))
				}
			}
		})
	}
	for _, s := range spans {
		ch <- s
	}
	close(ch)
	wg.Wait()
	// ReadAt past the end, and one that runs into it.
	if k, err := r.ReadAt(make([]byte, 4), size); k != 0 || err != io.EOF {
		t.Errorf("%s: ReadAt at the end: %d bytes, %v; want io.EOF", f.Path, k, err)
	}
	tail := min(size, 3)
	buf := make([]byte, 8)
	if k, err := r.ReadAt(buf, size-tail); int64(k) != tail || err != io.EOF || !bytes.Equal(buf[:tail], want[size-tail:]) {
		t.Errorf("%s: ReadAt of the last %d bytes into 8: %d bytes, %v; want %d and io.EOF", f.Path, tail, k, err, tail)
	}
}
