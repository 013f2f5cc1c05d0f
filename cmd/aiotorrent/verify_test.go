package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestVerifyCommand(t *testing.T) {
	// seedFixture: 4 pieces of 16 KiB; a.txt is pieces 0-2, sub/b.bin
	// pieces 2-3, sub/deep/c.md is in piece 3.
	cases := []struct {
		name    string
		damage  func(t *testing.T, root string)
		json    bool
		status  int
		want    []string // in stdout
		wantBad []int    // with --json
	}{
		{name: "intact", status: 0,
			want: []string{"ok content/a.txt", "ok content/sub/b.bin", "all 4 pieces verified"}},
		{name: "a byte changed", status: 1,
			damage: func(t *testing.T, root string) { flipByte(t, filepath.Join(root, "a.txt"), 100) },
			want:   []string{"BAD content/a.txt", "bad pieces 0 of its 3", "ok content/sub/b.bin", "3 of 4 pieces verified", "missing or damaged: 0"}},
		{name: "a file deleted", status: 1,
			damage: func(t *testing.T, root string) { os.Remove(filepath.Join(root, "sub", "b.bin")) },
			want:   []string{"MISSING content/sub/b.bin", "BAD content/a.txt", "bad pieces 2 of its 3", "BAD content/sub/deep/c.md", "missing or damaged: 2-3"}},
		{name: "a file cut short", status: 1,
			damage: func(t *testing.T, root string) { os.Truncate(filepath.Join(root, "sub", "b.bin"), 10000) },
			want:   []string{"SIZE content/sub/b.bin", "9.8 KiB of 17.6 KiB; bad pieces 3 of its 2"}},
		{name: "json", status: 1, json: true,
			damage:  func(t *testing.T, root string) { flipByte(t, filepath.Join(root, "a.txt"), 39999) },
			wantBad: []int{2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			torrentPath, dir, _ := seedFixture(t)
			if tc.damage != nil {
				tc.damage(t, filepath.Join(dir, "content"))
			}
			args := []string{"verify", "-d", dir}
			if tc.json {
				args = append(args, "--json")
			}
			r := runCLI(t, append(args, torrentPath)...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.status, tc.status, r.stdout, r.stderr)
			}
			flat := strings.Join(strings.Fields(r.stdout), " ") // the table's columns, one space apart
			for _, w := range tc.want {
				if !strings.Contains(flat, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			if tc.status != 0 && !strings.Contains(r.stderr, "missing or damaged") {
				t.Errorf("stderr does not say what is wrong: %q", r.stderr)
			}
			if tc.json {
				var v verifyResultJSON
				if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
					t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
				}
				if !slices.Equal(v.Bad, tc.wantBad) || v.Complete || v.Pieces != 4 || len(v.Files) != 4 {
					t.Errorf("JSON %+v: want bad pieces %v of 4, 4 files", v, tc.wantBad)
				}
			}
			// Nothing created: a deleted file stays deleted.
			if tc.name == "a file deleted" {
				if _, err := os.Stat(filepath.Join(dir, "content", "sub", "b.bin")); !os.IsNotExist(err) {
					t.Errorf("verify recreated the deleted file: %v", err)
				}
			}
		})
	}
}

func TestVerifyBadInput(t *testing.T) {
	torrentPath, dir, _ := seedFixture(t)
	cases := []struct {
		name   string
		args   []string
		status int
		want   string // in stderr
	}{
		{"no torrent", []string{"verify", "-d", dir}, 2, "wants one torrent file"},
		{"missing folder", []string{"verify", "-d", filepath.Join(dir, "nope"), torrentPath}, 1, "nope"},
		{"magnet", []string{"verify", "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"}, 2, "magnet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.args...)
			if r.status != tc.status || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("status %d, stderr %q; want %d and %q", r.status, r.stderr, tc.status, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
				t.Errorf("verify created the folder it was given: %v", err)
			}
		})
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestPieceRanges(t *testing.T) {
	cases := []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{5}, "5"},
		{[]int{0, 1}, "0-1"},
		{[]int{3, 6, 7, 14, 15, 16, 20}, "3, 6-7, 14-16, 20"},
	}
	for _, tc := range cases {
		if got := pieceRanges(tc.in); got != tc.want {
			t.Errorf("pieceRanges(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
