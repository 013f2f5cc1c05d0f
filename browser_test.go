package aiotorrent_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// TestBrowserPlaysTorrentVideo has headless Chromium open the listing
// page of a torrent served by Handler in memory, play the video file in
// it while the torrent downloads from a seeder, seek to the middle and
// keep playing. A screenshot is kept in swarmtest.ArtifactDir.
func TestBrowserPlaysTorrentVideo(t *testing.T) {
	dir := t.TempDir()
	video := filepath.Join(dir, "movie", "clip.webm")
	if err := os.MkdirAll(filepath.Dir(video), 0o755); err != nil {
		t.Fatal(err)
	}
	swarmtest.MakeVideo(t, video, 30)
	if err := os.WriteFile(filepath.Join(dir, "movie", "readme.txt"), []byte("a test clip\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mi, err := metainfo.Create(ctx, filepath.Join(dir, "movie"), metainfo.CreateOptions{PieceLength: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	seeder := newInteropClient(t, "seeder", true)
	st, err := seeder.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(aiotorrent.WithDir(dir)); err != nil {
		t.Fatal(err)
	}

	leechDir := t.TempDir()
	leecher, err := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, DataDir: leechDir})
	if err != nil {
		t.Fatal(err)
	}
	defer leecher.Close()
	tor, err := leecher.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	tor.AddPeers(seeder.Addr().(*net.TCPAddr).AddrPort())

	var (
		mu     sync.Mutex
		ranges []string // guarded by mu: Range headers of the file requests
	)
	const cache = 512 << 10
	h := tor.Handler(aiotorrent.InMemory(cache))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/files/") {
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			mu.Unlock()
		}
		// At 512 KB/s the player is still fetching the start of the file
		// when it seeks: the seek makes it ask for a range.
		h.ServeHTTP(&slowWriter{ResponseWriter: w}, r)
	}))
	defer srv.Close()

	b := swarmtest.StartBrowser(t)
	if err := b.Navigate(ctx, srv.URL+"/"); err != nil {
		t.Fatalf("%v\n%s", err, b.Logs())
	}
	if err := b.Eval(ctx, `(async () => { const v = document.querySelector('video'); v.muted = true; await v.play(); })()`, nil); err != nil {
		t.Fatalf("play: %v\n%s", err, b.Logs())
	}
	start := time.Now()
	ps := b.WaitVideo(t, ctx, "playing", func(s swarmtest.VideoState) bool {
		return s.ReadyState >= 3 && s.CurrentTime > 0.5 && !s.Paused
	})
	t.Logf("playing %s after %v: %+v", ps.Src, time.Since(start).Round(time.Millisecond), ps)
	if !strings.Contains(ps.Src, "/files/0/clip.webm") {
		t.Errorf("the player plays %q, want the torrent's clip.webm", ps.Src)
	}

	mid := ps.Duration / 2
	if err := b.SeekVideo(ctx, mid); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	ps = b.WaitVideo(t, ctx, "playing after the seek", func(s swarmtest.VideoState) bool {
		return s.Seeked && !s.Seeking && s.ReadyState >= 3 && !s.Paused && s.CurrentTime > mid+1
	})
	mu.Lock()
	t.Logf("seeked to %.1f s and playing after %v: %+v; file requests with ranges %q",
		mid, time.Since(start).Round(time.Millisecond), ps, ranges)
	seekedOverHTTP := false
	for _, r := range ranges {
		seekedOverHTTP = seekedOverHTTP || (r != "" && r != "bytes=0-")
	}
	mu.Unlock()
	if !seekedOverHTTP {
		t.Errorf("the player seeked without asking for a range of the file")
	}

	shot := filepath.Join(swarmtest.ArtifactDir(t), "TestBrowserPlaysTorrentVideo.png")
	if err := b.Screenshot(ctx, shot); err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)

	s := tor.Stats()
	if s.CacheSize != cache || s.Cached > cache {
		t.Errorf("cache holds %d bytes of %d", s.Cached, s.CacheSize)
	}
	if entries, err := os.ReadDir(leechDir); err != nil || len(entries) != 0 {
		t.Errorf("the leecher's data folder holds %d entries (%v): nothing should be written", len(entries), err)
	}
}

// slowWriter sends a response at about 512 KB/s.
type slowWriter struct{ http.ResponseWriter }

func (w *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 16<<10)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
		time.Sleep(32 * time.Millisecond)
	}
	return n, nil
}

func (w *slowWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
