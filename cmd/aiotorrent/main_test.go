package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// result is what one in-process run of the CLI produced.
type result struct {
	status         int
	stdout, stderr string
}

func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	st := run(context.Background(), &env{stdout: &out, stderr: &errb}, args)
	return result{st, out.String(), errb.String()}
}

// checkClean fails if stderr looks like a Go crash or spans several lines
// for a failing command.
func checkClean(t *testing.T, r result) {
	t.Helper()
	for _, bad := range []string{"goroutine ", "panic:", "runtime error", ".go:"} {
		if strings.Contains(r.stderr, bad) || strings.Contains(r.stdout, bad) {
			t.Errorf("output contains %q:\nstdout: %s\nstderr: %s", bad, r.stdout, r.stderr)
		}
	}
	if r.status == 1 && strings.Count(strings.TrimRight(r.stderr, "\n"), "\n") != 0 {
		t.Errorf("error output is not one line: %q", r.stderr)
	}
}

// makeContent writes a small folder and returns its path.
func makeContent(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "content")
	files := map[string]string{
		"a.txt":         strings.Repeat("a", 40000),
		"sub/b.bin":     strings.Repeat("b\x00", 9000),
		"sub/deep/c.md": "# c\n",
		"empty":         "",
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestUsageErrors(t *testing.T) {
	tmp := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		status int
		stderr string
	}{
		{"no command", nil, 2, "usage: aiotorrent COMMAND"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"info without argument", []string{"info"}, 2, "want one TORRENT"},
		{"info two arguments", []string{"info", "a", "b"}, 2, "got 2 arguments"},
		{"info unknown flag", []string{"info", "--bogus", "x"}, 2, "flag provided but not defined"},
		{"create without path", []string{"create"}, 2, "want one PATH"},
		{"create bad piece size", []string{"create", "--piece-size", "1000", tmp}, 2, "not a power of two"},
		{"create unparsable piece size", []string{"create", "--piece-size", "lots", tmp}, 2, "invalid size"},
		{"create piece size too big", []string{"create", "--piece-size", "1G", tmp}, 2, "not a power of two"},
		{"create bad tracker", []string{"create", "--tracker", "not a url", tmp}, 2, "--tracker"},
		{"create tracker without host", []string{"create", "--tracker", "http:///announce", tmp}, 2, "--tracker"},
		{"create bad web seed", []string{"create", "--web-seed", "udp://x:1", tmp}, 2, "--web-seed"},
		{"create negative threads", []string{"create", "--threads", "-1", tmp}, 2, "--threads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.args...)
			if r.status != tt.status {
				t.Errorf("status %d, want %d; stderr: %s", r.status, tt.status, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.stderr)
			}
			checkClean(t, r)
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"help", "create"}, {"help", "info"}, {"version"},
		{"seed", "-h"}, {"download", "--help"}, {"stream", "-h"}} {
		r := runCLI(t, args...)
		if r.status != 0 || r.stdout == "" {
			t.Errorf("%v: status %d, stdout %q", args, r.status, r.stdout)
		}
	}
	if r := runCLI(t, "help", "create"); !strings.Contains(r.stdout, "-piece-size") {
		t.Errorf("help create does not list --piece-size:\n%s", r.stdout)
	}
	// Every command's help lists its options.
	for _, c := range commands {
		if c.flags() == nil {
			t.Errorf("help %s lists no options", c.name)
		}
	}
	for _, name := range []string{"download", "stream", "seed", "info", "peers"} {
		if r := runCLI(t, "help", name); !strings.Contains(r.stdout, "-no-dht") {
			t.Errorf("help %s does not list --no-dht:\n%s", name, r.stdout)
		}
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := write("huge.torrent", []byte("d4:info999999999999:xe"))
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"missing file", []string{"info", filepath.Join(dir, "nope.torrent")}, "no such file"},
		{"not bencode", []string{"info", write("text.torrent", []byte("hello world"))}, "metainfo"},
		{"empty file", []string{"info", write("empty.torrent", nil)}, "empty input"},
		{"a list", []string{"info", write("list.torrent", []byte("li1ee"))}, "not a dictionary"},
		{"huge claimed string", []string{"info", huge}, "runs past end"},
		{"deep nesting", []string{"info", write("deep.torrent", []byte("d1:a"+strings.Repeat("l", 100000)+strings.Repeat("e", 100000)+"e"))}, "depth"},
		{"traversal", []string{"info", write("trav.torrent", torrentBytes(t, []any{"..", "etc", "passwd"}))}, `".."`},
		{"bad magnet", []string{"info", "magnet:?xt=urn:btih:1234"}, "magnet"},
		{"magnet without hash", []string{"info", "magnet:?dn=x"}, "magnet"},
		{"create missing path", []string{"create", "-o", filepath.Join(dir, "x.torrent"), filepath.Join(dir, "nope")}, "no such file"},
		{"create empty folder", []string{"create", "-o", filepath.Join(dir, "y.torrent"), t.TempDir()}, "no files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.args...)
			if r.status != 1 {
				t.Errorf("status %d, want 1; stderr: %s", r.status, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.stderr)
			}
			checkClean(t, r)
		})
	}
}

// torrentBytes returns a one-file multi-file torrent whose file has path.
func torrentBytes(t *testing.T, path []any) []byte {
	t.Helper()
	b, err := bencode.Marshal(map[string]any{
		"announce": "http://127.0.0.1:6969/announce",
		"info": map[string]any{
			"name":         "t",
			"piece length": 16384,
			"pieces":       strings.Repeat("x", 20),
			"files":        []any{map[string]any{"length": 5, "path": path}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreateThenInfo(t *testing.T) {
	content := makeContent(t)
	out := filepath.Join(t.TempDir(), "c.torrent")
	// Flags after the path, two tiers, one of two trackers.
	r := runCLI(t, "create", content, "-o", out,
		"--tracker", "udp://127.0.0.1:6969/announce,http://127.0.0.1:6969/announce",
		"--tracker", "http://[::1]:7000/announce",
		"--web-seed", "http://127.0.0.1:8000/files/",
		"--piece-size", "16K", "--comment", "hello", "--private", "--no-date")
	if r.status != 0 {
		t.Fatalf("create: status %d: %s", r.status, r.stderr)
	}
	if !strings.Contains(r.stderr, "created "+out) {
		t.Errorf("create did not report the file: %q", r.stderr)
	}
	mi, err := metainfo.LoadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if mi.Info.PieceLength != 16384 || !mi.Info.Private || mi.Comment != "hello" || !mi.CreationDate.IsZero() {
		t.Errorf("unexpected metainfo: %+v", mi)
	}
	if got := len(mi.Trackers()); got != 2 {
		t.Errorf("%d tiers, want 2", got)
	}

	r = runCLI(t, "info", "--json", out)
	if r.status != 0 {
		t.Fatalf("info: status %d: %s", r.status, r.stderr)
	}
	var got infoJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("info --json output is not JSON: %v\n%s", err, r.stdout)
	}
	wantPaths := []string{"content/a.txt", "content/empty", "content/sub/b.bin", "content/sub/deep/c.md"}
	if len(got.Files) != len(wantPaths) {
		t.Fatalf("files %+v, want %v", got.Files, wantPaths)
	}
	for i, f := range got.Files {
		if f.Path != wantPaths[i] || f.Index != i {
			t.Errorf("file %d: %+v, want path %s", i, f, wantPaths[i])
		}
	}
	if got.InfoHash != mi.InfoHash.String() || got.Name != "content" || got.TotalSize != 58004 ||
		got.PieceSize != 16384 || got.Pieces != 4 || !got.Private || len(got.WebSeeds) != 1 ||
		!strings.HasPrefix(got.Magnet, "magnet:?xt=urn:btih:"+got.InfoHash) {
		t.Errorf("info --json: %+v", got)
	}

	r = runCLI(t, "info", out)
	for _, want := range []string{"Name:", "content", mi.InfoHash.String(), "tier 1  udp://127.0.0.1:6969/announce",
		"tier 2  http://[::1]:7000/announce", "Files (4):", "content/sub/deep/c.md", "Private:    yes", "4 × 16.0 KiB"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("info output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestCreateReproducibleAndOverwrite(t *testing.T) {
	content := makeContent(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.torrent"), filepath.Join(dir, "b.torrent")
	for _, out := range []string{a, b} {
		if r := runCLI(t, "create", "--no-date", "--threads", "3", "-o", out, content); r.status != 0 {
			t.Fatalf("create: %s", r.stderr)
		}
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) || len(da) == 0 {
		t.Error("two --no-date runs gave different bytes")
	}

	r := runCLI(t, "create", "-o", a, content)
	if r.status != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("overwrite without --force: status %d, %q", r.status, r.stderr)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if r := runCLI(t, "create", "--force", "-o", a, content); r.status != 0 {
		t.Fatalf("create --force: %s", r.stderr)
	}
	mi, err := metainfo.LoadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	if mi.CreationDate.Unix() != 1700000000 {
		t.Errorf("creation date %v, want SOURCE_DATE_EPOCH", mi.CreationDate)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestCreateToStdout(t *testing.T) {
	content := makeContent(t)
	r := runCLI(t, "create", "--no-date", "-o", "-", filepath.Join(content, "a.txt"))
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	mi, err := metainfo.Parse([]byte(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	if mi.Info.MultiFile || mi.Info.Name != "a.txt" || mi.Info.Length != 40000 {
		t.Errorf("unexpected single-file torrent: %+v", mi.Info)
	}
}

func TestInfoMagnet(t *testing.T) {
	link := "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=Some+Video&tr=udp%3A%2F%2F127.0.0.1%3A6969"
	r := runCLI(t, "info", "--no-fetch", link)
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	for _, want := range []string{"Some Video", "c12fe1c06bba254a9dc9f519b335aa7c1367a88a", "not fetched yet", "udp://127.0.0.1:6969"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, "info", "--json", "--no-fetch", link)
	var got infoJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got.HasMetadata || got.Name != "Some Video" || len(got.Files) != 0 || len(got.Trackers) != 1 {
		t.Errorf("magnet info: %+v", got)
	}
}

func TestInfoSanitizesControlCharacters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "evil.torrent")
	if err := os.WriteFile(p, torrentBytes(t, []any{"a\x1b[2Jb"}), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "info", p)
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	if strings.ContainsRune(r.stdout, 0x1b) {
		t.Error("escape character reached the terminal")
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"262144", 262144, true}, {"256K", 256 << 10, true}, {"256k", 256 << 10, true},
		{"256KiB", 256 << 10, true}, {"4M", 4 << 20, true}, {"4MB", 4 << 20, true},
		{"1G", 1 << 30, true}, {"", 0, false}, {"K", 0, false}, {"-1", 0, false},
		{"1.5M", 0, false}, {"99999999999999G", 0, false}, {"12X", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 1 << 20: "1.0 MiB", 5 << 30: "5.0 GiB"}
	for n, want := range tests {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
