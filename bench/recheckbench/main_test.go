//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRecheckbench runs the whole harness on 64 MiB in 4 files, once, and
// checks the report and that the data set is gone afterwards.
func TestRecheckbench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/aiotorrent and hashes 64 MiB several times: skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var out bytes.Buffer
	err := runTo(ctx, []string{"-size", "64M", "-files", "4", "-runs", "1", "-dir", dir}, &out)
	report := out.String()
	t.Logf("report:\n%s", report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"page cache: **warm**",
		"data set: 4 files, 64 MiB in all (4 × 16 MiB)",
		"| aiotorrent verify, GOMAXPROCS=1 | 1 |",
		"| sha1sum, all files in one process | 1 |",
		"| 1 | sha1sum, one process per file,",
		"Every run of aiotorrent verify reported all 1024 pieces verified",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report does not contain %q", want)
		}
	}
	// Every ratio is a positive number.
	ratios := regexp.MustCompile(`\| ours on [^|]+ \| ([0-9.]+)× \| [^|]+ \| ([0-9.]+)× \|`).FindAllStringSubmatch(report, -1)
	if len(ratios) != len(comparisons) {
		t.Fatalf("%d rows of ratios, want %d", len(ratios), len(comparisons))
	}
	for _, m := range ratios {
		for _, s := range m[1:] {
			if v, err := strconv.ParseFloat(s, 64); err != nil || v <= 0 {
				t.Errorf("ratio %q in %q", s, m[0])
			}
		}
	}
	if !regexp.MustCompile(`Issue 8's bar, .*: \*\*(not )?met\*\*\.`).MatchString(report) {
		t.Error("the report does not say whether issue 8's bar was met")
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("-dir holds %d entries after the run (%s...), want none without -keep", len(left), left[0].Name())
	}
}

func TestCheckVerify(t *testing.T) {
	const good = `{"name":"x","info_hash":"ab","dir":"/d","pieces":3,"verified":3,"bad_pieces":[],"complete":true,` +
		`"files":[{"index":0,"path":"a","ok":true},{"index":1,"path":"b","ok":true}]}`
	for _, tt := range []struct {
		name, out string
		pieces    int
		ok        bool
	}{
		{"complete", good + "\n", 3, true},
		{"after a progress line", "checking x\n" + good, 3, true},
		{"another torrent's count", good, 4, false},
		{"a bad piece", strings.Replace(strings.Replace(good, `"verified":3,"bad_pieces":[]`, `"verified":2,"bad_pieces":[1]`, 1), `"complete":true`, `"complete":false`, 1), 3, false},
		{"a file not ok", strings.Replace(good, `"path":"b","ok":true`, `"path":"b","ok":false`, 1), 3, false},
		{"not JSON", "all 3 pieces verified\n", 3, false},
	} {
		err := checkVerify([]byte(tt.out), tt.pieces, 2)
		if (err == nil) != tt.ok {
			t.Errorf("%s: checkVerify = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestCheckSums(t *testing.T) {
	files := []string{"/d/part-001.bin", "/d/part-002.bin"}
	sums := []string{"aa", "bb"}
	if err := checkSums([]byte("aa  /d/part-001.bin\nbb  /d/part-002.bin\n"), files, sums); err != nil {
		t.Errorf("right sums: %v", err)
	}
	for _, out := range []string{
		"aa  /d/part-001.bin\ncc  /d/part-002.bin\n",
		"aa  /d/part-001.bin\n",
		"aa  /d/part-001.bin\nbb  /d/part-002.bin\ndd  /d/other\n",
	} {
		if err := checkSums([]byte(out), files, sums); err == nil {
			t.Errorf("checkSums(%q) = nil, want an error", out)
		}
	}
}

func TestWithoutEnv(t *testing.T) {
	got := withoutEnv([]string{"A=1", "GOMAXPROCS=3", "GOMAXPROCSX=2", "B=", "AIOTORRENT_CPUPROFILE=/x"}, "GOMAXPROCS", "AIOTORRENT_CPUPROFILE")
	if want := "A=1 GOMAXPROCSX=2 B="; strings.Join(got, " ") != want {
		t.Errorf("withoutEnv = %q, want %q", got, want)
	}
}

func TestFileSizes(t *testing.T) {
	if got := fileSizes([]int64{1 << 30, 1 << 30}); got != "2 × 1024 MiB" {
		t.Errorf("equal: %q", got)
	}
	if got := fileSizes([]int64{100, 100, 101}); got != "2 × 100 bytes and one of 101 bytes" {
		t.Errorf("unequal: %q", got)
	}
}
