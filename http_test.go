package aiotorrent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkHTTPRanges fetches url whole and in many ranges and compares the
// bytes with want: the last byte, suffix and open-ended ranges, ranges
// across pieces, and unsatisfiable ones.
func checkHTTPRanges(t testing.TB, url string, want []byte, pieceLen int64, n int) {
	t.Helper()
	get := func(rng string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s Range %q: %v", url, rng, err)
		}
		return resp.StatusCode, resp.Header, body
	}
	size := int64(len(want))
	status, h, body := get("")
	if status != 200 || !bytes.Equal(body, want) || h.Get("Content-Length") != fmt.Sprint(size) {
		t.Fatalf("GET %s: status %d, %d bytes (want %d), Content-Length %q", url, status, len(body), size, h.Get("Content-Length"))
	}
	type tc struct {
		rng        string
		start, end int64 // the bytes expected, end exclusive
		status     int
	}
	cases := []tc{
		{fmt.Sprintf("bytes=%d-%d", size-1, size-1), size - 1, size, 206},
		{"bytes=-1", size - 1, size, 206},
		{fmt.Sprintf("bytes=-%d", min(size, 100000)), size - min(size, 100000), size, 206},
		{fmt.Sprintf("bytes=%d-", size/2), size / 2, size, 206},
		{"bytes=0-0", 0, 1, 206},
		{fmt.Sprintf("bytes=%d-", size), 0, 0, 416},
		{fmt.Sprintf("bytes=%d-%d", size+10, size+20), 0, 0, 416},
	}
	if pieceLen < size {
		cases = append(cases, tc{fmt.Sprintf("bytes=%d-%d", pieceLen-10, pieceLen+9), pieceLen - 10, pieceLen + 10, 206})
	}
	r := rand.New(rand.NewPCG(uint64(size), 3))
	for range n {
		a := r.Int64N(size)
		b := a + r.Int64N(min(size-a, 3*pieceLen))
		cases = append(cases, tc{fmt.Sprintf("bytes=%d-%d", a, b), a, b + 1, 206})
	}
	for _, c := range cases {
		status, h, body := get(c.rng)
		if status != c.status {
			t.Fatalf("Range %s: status %d, want %d", c.rng, status, c.status)
		}
		if status == 416 {
			if cr := h.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", size) {
				t.Fatalf("Range %s: 416 with Content-Range %q", c.rng, cr)
			}
			continue
		}
		if !bytes.Equal(body, want[c.start:c.end]) {
			t.Fatalf("Range %s: %d bytes, want bytes [%d, %d) of the file", c.rng, len(body), c.start, c.end)
		}
		if cr, wantCR := h.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", c.start, c.end-1, size); cr != wantCR {
			t.Fatalf("Range %s: Content-Range %q, want %q", c.rng, cr, wantCR)
		}
	}
}

func TestHandlerServesFiles(t *testing.T) {
	for _, mode := range []string{"memory", "files"} {
		t.Run(mode, func(t *testing.T) {
			mi, src := makeTorrent(t, "content", 32<<10,
				testFile{"video.webm", 700 << 10}, testFile{"notes.txt", 5}, testFile{"sub/c.bin", 123457})
			seed := startSeeder(t, mi, src)
			tor := leechFrom(t, mi, seed)
			var opts []Option
			if mode == "files" {
				opts = append(opts, WithDir(t.TempDir()))
			} else {
				opts = append(opts, InMemory(256<<10))
			}
			srv := httptest.NewServer(tor.Handler(opts...))
			defer srv.Close()
			for _, f := range tor.Files() {
				want, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(f.Path)))
				if err != nil {
					t.Fatal(err)
				}
				url := srv.URL + fmt.Sprintf("/files/%d", f.Index)
				checkHTTPRanges(t, url, want, tor.PieceLength(), 30)
			}
			// The listing, as JSON.
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			req.Header.Set("Accept", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var list struct {
				Name  string
				Files []struct {
					Index  int
					Path   string
					Length int64
					URL    string
				}
			}
			if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
				t.Fatal(err)
			}
			if list.Name != "content" || len(list.Files) != 3 || list.Files[2].Path != "content/video.webm" || list.Files[2].URL != "/files/2/video.webm" {
				t.Fatalf("listing: %+v", list)
			}
			if mode == "memory" {
				if s := tor.Stats(); s.CacheSize != 256<<10 || s.Cached > s.CacheSize {
					t.Fatalf("cache %d of %d bytes", s.Cached, s.CacheSize)
				}
			}
		})
	}
}

// TestStream runs Stream on a free loopback port and reads the file's
// URL it reports.
func TestStream(t *testing.T) {
	mi, src := makeTorrent(t, "movie.mkv", 16<<10, testFile{"", 200 << 10})
	seed := startSeeder(t, mi, src)
	tor := leechFrom(t, mi, seed)
	want, err := os.ReadFile(filepath.Join(src, "movie.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- tor.Stream(ctx, tor.Files()[0], WithAddr("127.0.0.1:0"), OnServe(func(u string) { urls <- u }))
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("Stream did not report its URL")
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/files/0/movie.mkv") {
		t.Fatalf("URL %q", url)
	}
	checkHTTPRanges(t, url, want, tor.PieceLength(), 10)
	resp, err := http.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "video/x-matroska" {
		t.Errorf("Content-Type %q", ct)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stream did not return after its context was cancelled")
	}
}
