//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
)

// TestMagnetbench runs the whole harness on 4 MiB, one round, with one
// real seeder (libtorrent, or qBittorrent without it), every client and
// both peer sources, and checks the report and the JSON.
func TestMagnetbench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clients and builds cmd/aiotorrent: skipped with -short")
	}
	if _, err := exec.LookPath("aria2c"); err != nil {
		if swarmtest.ToolsRequired() {
			t.Fatal("aria2c not found (Debian package aria2) and CI is set")
		}
		t.Skip("aria2c not found: install Debian package aria2 to run magnetbench's test")
	}
	seeder := ""
	if exec.Command(swarmtest.SystemPython, "-c", "import libtorrent").Run() == nil {
		seeder = "libtorrent"
	} else if _, err := exec.LookPath("qbittorrent-nox"); err == nil {
		seeder = "qbittorrent"
	} else if swarmtest.ToolsRequired() {
		t.Fatal("neither python3-libtorrent nor qbittorrent-nox is installed, and CI is set")
	} else {
		t.Skip("neither python3-libtorrent nor qbittorrent-nox is installed: magnetbench needs a real seeder")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	jsonPath := filepath.Join(t.TempDir(), "magnetbench.json")
	var out bytes.Buffer
	err := runTo(ctx, []string{"-size", "4M", "-runs", "1", "-seeders", seeder, "-log", "-dir", dir, "-json", jsonPath}, &out)
	report := out.String()
	t.Logf("report:\n%s", report)
	if errors.Is(err, errDHT) {
		t.Skipf("%v: the harness cannot keep this build's DHT off", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| x.pe | aiotorrent stream | 1/1 |",
		"| x.pe | aiotorrent download | 1/1 |",
		"| tracker | aiotorrent stream | 1/1 |",
		"| tracker | aiotorrent download | 1/1 |",
		"| tracker | aria2c | 1/1 |",
		"Every run completed; every file fetched was identical to the source.",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report does not contain %q", want)
		}
	}
	if strings.Contains(report, "| x.pe | aria2c |") {
		t.Error("the report has aria2c via x.pe, which it ignores")
	}

	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep jsonReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("-json: %v", err)
	}
	if rep.SizeBytes != 4<<20 || len(rep.Rows) != 5 || len(rep.Runs) != 5 {
		t.Fatalf("-json: size %d, %d rows, %d runs; want 4 MiB, 5 and 5", rep.SizeBytes, len(rep.Rows), len(rep.Runs))
	}
	for _, r := range rep.Runs {
		// Every time is measured, in order, for every client.
		if r.Error != "" || r.MetadataMS <= 0 || r.CompleteMS < r.MetadataMS || r.ExitMS < r.CompleteMS || r.ReadyMS <= 0 {
			t.Errorf("run %+v: times missing or out of order", r)
		}
		if r.Client != clientDownload && (r.FirstByteMS < r.MetadataMS || r.FirstByteMS > r.CompleteMS) {
			t.Errorf("run %+v: first byte not between metadata and complete", r)
		}
		if r.Via == viaTracker && r.AnnounceMS <= 0 {
			t.Errorf("run %+v: no announce seen", r)
		}
		if r.Client == clientStream && r.ServingMS < r.MetadataMS {
			t.Errorf("run %+v: serving before the metadata", r)
		}
		if r.Client != clientAria2 && (r.LogMetaMS <= 0 || r.LogConnMS < r.LogMetaMS) {
			t.Errorf("run %+v: -log times missing", r)
		}
	}
	for _, r := range rep.Rows {
		if r.Via == viaTracker && r.Client != clientAria2 && (r.MetaVsA2 <= 0 || r.CompVsA2 <= 0) {
			t.Errorf("row %s via %s: no ratio to aria2c", r.Client, r.Via)
		}
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("-dir holds %d entries after the run (%s...), want none without -keep", len(left), left[0].Name())
	}
}

func TestLeftOne(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"info_hash=%AB&left=0&port=1", "info_hash=%AB&left=1&port=1", true},
		{"left=0", "left=1", true},
		{"left=10&port=1", "left=10&port=1", false},
		{"xleft=0&left=5", "xleft=0&left=5", false},
	} {
		got, ok := leftOne(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("leftOne(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestHasFirstPiece(t *testing.T) {
	for bf, want := range map[string]bool{"": false, "80": true, "f0": true, "7f": false, "0fff": false, "8": true, "zz": false} {
		if got := hasFirstPiece(bf); got != want {
			t.Errorf("hasFirstPiece(%q) = %v, want %v", bf, got, want)
		}
	}
}

func TestParseLogLine(t *testing.T) {
	at, msg, ok := parseLogLine(`time=2026-11-25T17:41:26.628Z level=DEBUG msg="peer connected" torrent=seed.bin addr=127.0.0.1:47111 outgoing=true`)
	if !ok || msg != "peer connected" || at.UnixMilli()%1000 != 628 {
		t.Errorf("quoted message: %v %q %v", at, msg, ok)
	}
	_, msg, ok = parseLogLine(`time=2026-11-25T17:41:26.647Z level=DEBUG msg=interest torrent=seed.bin interested=true`)
	if !ok || msg != "interest" {
		t.Errorf("bare message: %q %v", msg, ok)
	}
	for _, bad := range []string{`{"event":"metadata"}`, `time=yesterday msg=x`, `time=2026-11-25T17:41:26.647Z level=INFO`} {
		if _, _, ok := parseLogLine(bad); ok {
			t.Errorf("parseLogLine(%q) ok", bad)
		}
	}
}

func TestParseList(t *testing.T) {
	got, err := parseList("tracker, X.PE", allVias, map[string]string{"x.pe": viaXPE})
	if err != nil || !slices.Equal(got, []string{viaXPE, viaTracker}) {
		t.Errorf("parseList = %q, %v", got, err)
	}
	if _, err := parseList("dht", allVias, nil); err == nil {
		t.Error("unknown name accepted")
	}
}

func TestRotate(t *testing.T) {
	s := []string{"a", "b", "c"}
	for r, want := range []string{"abc", "bca", "cab", "abc"} {
		if got := strings.Join(rotate(s, r), ""); got != want {
			t.Errorf("rotate(%d) = %s, want %s", r, got, want)
		}
	}
	if rotate(nil, 2) != nil {
		t.Error("rotate(nil)")
	}
}

func TestStatOf(t *testing.T) {
	s := statOf([]time.Duration{0, 3, 1, 2})
	if s.N != 3 || s.Median != 2 || s.Min != 1 || s.Max != 3 {
		t.Errorf("statOf = %+v", s)
	}
	if statOf([]time.Duration{0}).N != 0 {
		t.Error("statOf of nothing measured")
	}
}
