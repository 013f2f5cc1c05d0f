package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aiotorrent/aiotorrent/internal/resume"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// TestResumeCommands goes through what a user does: download, run the same
// download again (it continues from the resume record, hashing nothing),
// damage a file without changing its size or time, verify (which takes the
// damaged piece out of the record), and download once more (which fetches
// that piece alone).
func TestResumeCommands(t *testing.T) {
	torrentPath, src, addr := seedContent(t)
	state, out := t.TempDir(), t.TempDir()
	download := []string{"download", "-o", out, "--listen", "127.0.0.1:0", "--no-trackers", "--peer", addr, "--state-dir", state}
	step := func(name string, status int, args ...string) result {
		t.Helper()
		r := runCLI(t, append(args, torrentPath)...)
		if r.status != status {
			t.Fatalf("%s: status %d, want %d\nstdout:\n%s\nstderr:\n%s", name, r.status, status, r.stdout, r.stderr)
		}
		return r
	}
	step("first download", 0, download...)
	if r := step("same download again", 0, download...); !strings.Contains(r.stderr, "resuming content: 4 of 4 pieces already here (from the resume record)") {
		t.Errorf("second run's stderr %q: want it to say every piece came from the resume record", r.stderr)
	}
	r := step("again, JSON", 0, append(download, "--json")...)
	var checked checkEvent
	for line := range strings.Lines(r.stdout) {
		var ev checkEvent
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "checked" {
			checked = ev
		}
	}
	if checked.Pieces != 4 || checked.Verified != 4 || checked.Resumed != 4 {
		t.Errorf("JSON checked event %+v: want 4 pieces, all from the record", checked)
	}

	a := filepath.Join(out, "content", "a.txt")
	st, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, a, 100)
	if err := os.Chtimes(a, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	r = step("verify", 1, "verify", "-d", out, "--state-dir", state)
	if !strings.Contains(r.stdout, "pieces 0 taken out of the resume record") {
		t.Errorf("verify's stdout %q: want it to say piece 0 left the resume record", r.stdout)
	}
	if r := step("download after verify", 0, download...); !strings.Contains(r.stderr, "resuming content: 3 of 4 pieces already here (from the resume record)") {
		t.Errorf("stderr %q: want the 3 good pieces from the record", r.stderr)
	}
	got, _ := os.ReadFile(a)
	want, _ := os.ReadFile(filepath.Join(src, "content", "a.txt"))
	if string(got) != string(want) {
		t.Error("a.txt not repaired")
	}
}

// TestDownloadPriorities: --high and --low reach the torrent, and the
// resume record keeps them; bad indexes are usage errors.
func TestDownloadPriorities(t *testing.T) {
	torrentPath, _, addr := seedContent(t)
	state, out := t.TempDir(), t.TempDir()
	args := []string{"download", "-o", out, "--listen", "127.0.0.1:0", "--no-trackers", "--peer", addr, "--state-dir", state}
	r := runCLI(t, append(args, "--high", "2", "--low", "0", torrentPath)...)
	if r.status != 0 {
		t.Fatalf("status %d\n%s", r.status, r.stderr)
	}
	mi, err := metainfo.LoadFile(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := resume.Load(state, mi.InfoHash)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range map[int]int8{0: -1, 1: 0, 2: 1} {
		if got := rec.Files[i].Priority; got != want {
			t.Errorf("file %d: priority %d in the record, want %d", i, got, want)
		}
	}
	for _, bad := range [][]string{{"--high", "9"}, {"--low", "x"}} {
		r := runCLI(t, append(append(args, bad...), torrentPath)...)
		if r.status != 2 || !strings.Contains(r.stderr, bad[0]+" ") {
			t.Errorf("%v: status %d, stderr %q; want a usage error naming the flag", bad, r.status, r.stderr)
		}
	}
}
