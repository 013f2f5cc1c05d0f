package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent"
)

// seedContent serves a new torrent of makeContent's folder from an
// in-process client and returns the torrent's path, the content's parent
// folder and the seeder's address.
func seedContent(t *testing.T) (torrentPath, src, addr string) {
	t.Helper()
	torrentPath, src, mi := seedFixture(t)
	c, tor := loopbackTorrent(t, mi)
	if err := tor.Start(aiotorrent.WithDir(src)); err != nil {
		t.Fatal(err)
	}
	return torrentPath, src, c.Addr().String()
}

func TestDownloadCommand(t *testing.T) {
	torrentPath, src, addr := seedContent(t)
	tests := []struct {
		name  string
		args  []string
		files []string // expected on disk, relative to -o
		json  bool
	}{
		{"all", nil, []string{"content/a.txt", "content/empty", "content/sub/b.bin", "content/sub/deep/c.md"}, false},
		{"one file, sequential", []string{"--file", "2", "--strategy", "sequential"}, []string{"content/sub/b.bin"}, false},
		{"json", []string{"--json"}, []string{"content/a.txt", "content/empty", "content/sub/b.bin", "content/sub/deep/c.md"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"download", "-o", out, "--listen", "127.0.0.1:0", "--no-trackers", "--peer", addr}, tt.args...)
			r := runCLI(t, append(args, torrentPath)...)
			checkClean(t, r)
			if r.status != 0 {
				t.Fatalf("status %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
			}
			var got []string
			filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
					rel, _ := filepath.Rel(out, p)
					got = append(got, filepath.ToSlash(rel))
				}
				return nil
			})
			if strings.Join(got, ",") != strings.Join(tt.files, ",") {
				t.Fatalf("files on disk %q, want %q", got, tt.files)
			}
			for _, f := range got {
				a, _ := os.ReadFile(filepath.Join(out, f))
				b, _ := os.ReadFile(filepath.Join(src, f))
				if !bytes.Equal(a, b) {
					t.Errorf("%s differs from the seeder's", f)
				}
			}
			if tt.json {
				lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
				var last downloadEvent
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
					t.Fatalf("last JSON line %q: %v", lines[len(lines)-1], err)
				}
				if last.Event != "done" || last.Percent != 100 || last.Verified != last.Wanted {
					t.Fatalf("last event %+v", last)
				}
			} else if !strings.Contains(r.stdout, "complete") {
				t.Fatalf("stdout %q does not say complete", r.stdout)
			}
		})
	}
}

func TestDownloadCommandErrors(t *testing.T) {
	torrentPath, _, _ := seedContent(t)
	for _, tt := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"download"}, 2, "wants one torrent"},
		{[]string{"download", "--strategy", "random", torrentPath}, 2, "unknown --strategy"},
		{[]string{"download", "--file", "99", torrentPath}, 2, "no such file"},
		{[]string{"download", "--file", "x", torrentPath}, 2, "file index"},
		{[]string{"download", "--peer", "localhost", torrentPath}, 2, "IP:PORT"},
		{[]string{"download", filepath.Join(t.TempDir(), "missing.torrent")}, 1, "no such file"},
	} {
		r := runCLI(t, tt.args...)
		checkClean(t, r)
		if r.status != tt.status || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%q: status %d, stderr %q; want %d and %q", tt.args, r.status, r.stderr, tt.status, tt.want)
		}
	}
}

// Interrupting a download that cannot progress (no peers) stops it cleanly
// with status 1 and says how far it got.
func TestDownloadCommandInterrupted(t *testing.T) {
	torrentPath, _, _ := seedContent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	st := run(ctx, &env{stdout: &out, stderr: &errb},
		[]string{"download", "-o", t.TempDir(), "--listen", "127.0.0.1:0", "--no-trackers", "--progress-every", "1h", torrentPath})
	if st != 1 || !strings.Contains(errb.String(), "stopped at 0 B of") {
		t.Fatalf("status %d, stderr %q", st, errb.String())
	}
}

func TestDemo(t *testing.T) {
	r := runCLI(t, "demo", "--size", "3MiB")
	checkClean(t, r)
	if r.status != 0 || !strings.Contains(r.stdout, "verified: all 3 files identical") {
		t.Fatalf("status %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
}
