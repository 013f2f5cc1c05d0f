//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
)

// TestSeedbench runs the whole harness on 8 MiB, once per seeder: ours,
// aria2c, and qBittorrent when it is installed (libtorrent, not a
// default seeder, is left out to keep it quick).
func TestSeedbench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real clients and builds cmd/aiotorrent: skipped with -short")
	}
	if _, err := exec.LookPath("aria2c"); err != nil {
		if swarmtest.ToolsRequired() {
			t.Fatal("aria2c not found (Debian package aria2) and CI is set: seedbench needs it as the leecher")
		}
		t.Skip("aria2c not found: install Debian package aria2 to run seedbench's test (it is the leecher)")
	}
	seeders := []string{"aiotorrent", "aria2c"}
	if _, err := exec.LookPath("qbittorrent-nox"); err == nil {
		seeders = append(seeders, "qbittorrent")
	} else if swarmtest.ToolsRequired() {
		t.Fatal("qbittorrent-nox not found (Debian package qbittorrent-nox) and CI is set")
	} else {
		t.Log("qbittorrent-nox not found (Debian package qbittorrent-nox): testing without it")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	jsonPath := filepath.Join(t.TempDir(), "seedbench.json")
	var out bytes.Buffer
	err := runTo(ctx, []string{"-size", "8M", "-runs", "1", "-seeders", strings.Join(seeders, ","),
		"-dir", t.TempDir(), "-json", jsonPath}, &out)
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Every download was complete and identical to the source.") {
		t.Error("the report does not say every download was identical to the source")
	}
	for _, row := range []string{"| aiotorrent (ours) | 1/1 |", "| aria2c | 1/1 |"} {
		if !strings.Contains(out.String(), row) {
			t.Errorf("the report has no row starting %q", row)
		}
	}

	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep jsonReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("-json: %v", err)
	}
	if rep.SizeBytes != 8<<20 || len(rep.Seeders) != len(seeders) || len(rep.Downloads) != len(seeders) {
		t.Fatalf("-json: size %d, %d seeders, %d downloads; want %d, %d, %d",
			rep.SizeBytes, len(rep.Seeders), len(rep.Downloads), 8<<20, len(seeders), len(seeders))
	}
	for _, m := range rep.Downloads {
		if m.Sent < rep.SizeBytes {
			t.Errorf("%s: seeder reports sending %d bytes, want at least %d", m.Seeder, m.Sent, rep.SizeBytes)
		}
		if m.TotalS <= 0 || m.Announces == 0 {
			t.Errorf("%s: aria2c start to complete %.2fs, %d announces answered", m.Seeder, m.TotalS, m.Announces)
		}
	}
}

// TestFront checks that the tracker gives the leecher the seeder alone
// and records only the seeder.
func TestFront(t *testing.T) {
	f, err := startFront()
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	const leechPort = 40001
	seeder := netip.MustParseAddrPort("127.0.0.1:40002")
	f.reset(leechPort)
	f.setSeeder(seeder)

	announce := func(port int, left string) map[string]any {
		t.Helper()
		q := url.Values{
			"info_hash": {strings.Repeat("h", 20)}, "peer_id": {strings.Repeat(string(rune('a'+port%26)), 20)},
			"port": {strconv.Itoa(port)}, "left": {left}, "compact": {"1"},
		}
		resp, err := http.Get(f.announce + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var v map[string]any
		if err := bencode.Unmarshal(body, &v); err != nil {
			t.Fatalf("announce from port %d: %v: %q", port, err, body)
		}
		return v
	}

	announce(int(seeder.Port()), "0")
	asSeeder, err := f.waitAnnounced(context.Background(), time.Second, time.Second)
	if err != nil || !asSeeder {
		t.Fatalf("waitAnnounced = %v, %v; want the seeder listed", asSeeder, err)
	}
	reply := announce(leechPort, "100")
	want := string([]byte{127, 0, 0, 1, byte(seeder.Port() >> 8), byte(seeder.Port())})
	if got, _ := reply["peers"].(string); got != want {
		t.Errorf("leecher's reply: peers %q, want %q (the seeder alone); reply %v", got, want, reply)
	}
	if n := f.leecherAnnounces(); n != 1 {
		t.Errorf("leecherAnnounces = %d, want 1", n)
	}
	// The seeder announcing again is not given the leecher.
	if got, _ := announce(int(seeder.Port()), "0")["peers"].(string); got != "" {
		t.Errorf("seeder's reply: peers %q, want none", got)
	}

	// After a reset the tracker has forgotten the seeder.
	f.reset(leechPort + 1)
	if _, err := f.waitAnnounced(context.Background(), 200*time.Millisecond, time.Second); err == nil {
		t.Error("waitAnnounced after reset: no error, want one (no seeder has announced)")
	}
}

func TestTransferRate(t *testing.T) {
	t0 := time.Now()
	tr := transfer{first: t0, firstBytes: 1 << 20, last: t0.Add(time.Second), lastBytes: 101 << 20, done: t0.Add(1100 * time.Millisecond), total: 102 << 20}
	rate, span := tr.rate()
	if span != time.Second || rate != 100<<20 {
		t.Errorf("rate = %v B/s over %v, want %v over 1s", rate, span, 100<<20)
	}
	// Complete at the first answer: nothing to time.
	tr = transfer{done: t0, total: 1 << 20}
	if rate, span := tr.rate(); rate != 0 || span != 0 {
		t.Errorf("rate of a download never seen in progress = %v over %v, want 0", rate, span)
	}
}
