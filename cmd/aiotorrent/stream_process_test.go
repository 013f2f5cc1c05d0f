//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// TestStreamProcessMemory runs the built aiotorrent stream command as a
// process, streams a file 16 times its cache end to end and seeks around
// in it: the bytes are the original's, the process's peak RSS stays under
// the cache plus a fixed overhead, and it writes no file: its working
// folder, HOME and TMPDIR stay empty.
func TestStreamProcessMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the command; skipped with -short")
	}
	const (
		cache    = 8 << 20
		size     = 16 * cache
		overhead = 64 << 20 // allowed above the cache: runtime, block buffers, HTTP
	)
	work := t.TempDir()
	bin := filepath.Join(work, "aiotorrent")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// The content, its torrent and a seeder in this process.
	src := filepath.Join(work, "src")
	os.MkdirAll(src, 0o755)
	content := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(content); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			content[i+k] = byte(v >> (8 * k))
		}
	}
	if err := os.WriteFile(filepath.Join(src, "film.mkv"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Create(context.Background(), filepath.Join(src, "film.mkv"), metainfo.CreateOptions{PieceLength: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	torrentPath := filepath.Join(work, "film.torrent")
	if err := writeTorrentFile(mi, torrentPath); err != nil {
		t.Fatal(err)
	}
	seeder, st := loopbackTorrent(t, mi)
	if err := st.Start(aiotorrent.WithDir(src)); err != nil {
		t.Fatal(err)
	}

	// The streamer, in empty folders.
	cwd, home, tmp := t.TempDir(), t.TempDir(), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "stream", "--json", "--addr", "127.0.0.1:0", "--listen", "127.0.0.1:0",
		"--no-trackers", "--peer", seeder.Addr().String(), "--cache", strconv.Itoa(cache), "--status-every", "1h", torrentPath)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "HOME="+home, "TMPDIR="+tmp, "XDG_CACHE_HOME="+home, "XDG_CONFIG_HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("no output; stderr: %s", stderr.String())
	}
	var ev streamEvent
	if err := json.Unmarshal(lines.Bytes(), &ev); err != nil || ev.Event != "serving" {
		t.Fatalf("first line %q: %v", lines.Text(), err)
	}
	go io.Copy(io.Discard, stdout)

	// The whole file, hashed as it comes.
	resp, err := http.Get(ev.URL)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || !bytes.Equal(h.Sum(nil), sha256Sum(content)) {
		t.Fatalf("streamed %d bytes (%v), want the %d of the file, identical", n, err, size)
	}
	// Seeks: ranges at random offsets, 1 MiB each.
	for range 30 {
		off := rng.Int64N(size - 1<<20)
		req, _ := http.NewRequest("GET", ev.URL, nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+1<<20-1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 206 || !bytes.Equal(body, content[off:off+1<<20]) {
			t.Fatalf("range at %d: status %d, %d bytes, %v", off, resp.StatusCode, len(body), err)
		}
	}
	peak, err := peakRSS(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS %.1f MiB for a %d MiB file with a %d MiB cache", float64(peak)/(1<<20), size>>20, cache>>20)
	if peak > cache+overhead {
		t.Errorf("peak RSS %d MiB, more than the cache (%d MiB) plus %d MiB", peak>>20, cache>>20, overhead>>20)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("stream exited with %v; stderr: %s", err, stderr.String())
	}
	for _, d := range []string{cwd, home, tmp} {
		if entries, err := os.ReadDir(d); err != nil || len(entries) != 0 {
			t.Errorf("%s holds %d entries (%v): streaming must write nothing", d, len(entries), err)
		}
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
