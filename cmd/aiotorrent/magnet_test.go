package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// TestDownloadMagnet: download takes a magnet link, fetches the metadata
// from the --peer, writes it with --save-torrent, and downloads.
func TestDownloadMagnet(t *testing.T) {
	torrentPath, src, addr := seedContent(t)
	mi, err := metainfo.LoadFile(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	out, state := t.TempDir(), t.TempDir()
	saved := filepath.Join(t.TempDir(), "saved.torrent")
	magnet := "magnet:?xt=urn:btih:" + mi.InfoHash.String() + "&dn=content"
	r := runCLI(t, "download", "-o", out, "--listen", "127.0.0.1:0", "--no-trackers", "--peer", addr,
		"--state-dir", state, "--save-torrent", saved, magnet)
	if r.status != 0 {
		t.Fatalf("status %d\nstderr:\n%s", r.status, r.stderr)
	}
	for _, w := range []string{"fetching the metadata of content from peers", "metadata of content: 4 files"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	back, err := metainfo.LoadFile(saved)
	if err != nil || back.InfoHash != mi.InfoHash {
		t.Fatalf("--save-torrent wrote %v, %v", back, err)
	}
	for _, f := range []string{"a.txt", "sub/b.bin", "sub/deep/c.md", "empty"} {
		got, err1 := os.ReadFile(filepath.Join(out, "content", f))
		want, err2 := os.ReadFile(filepath.Join(src, "content", f))
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("%s: %v %v, equal %v", f, err1, err2, string(got) == string(want))
		}
	}
	// The metadata is kept in the state folder: the link opens at once
	// next time, even with no peer to ask.
	r = runCLI(t, "download", "-o", out, "--listen", "127.0.0.1:0", "--no-trackers", "--state-dir", state, magnet)
	if r.status != 0 || strings.Contains(r.stderr, "fetching the metadata") {
		t.Errorf("second run: status %d, stderr %q; want the kept metadata and no fetch", r.status, r.stderr)
	}
}

// TestInfoMagnetFetches: info fetches a magnet link's metadata from peers
// and lists its files; with no peer it gives up after --timeout.
func TestInfoMagnetFetches(t *testing.T) {
	torrentPath, _, addr := seedContent(t)
	mi, err := metainfo.LoadFile(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	magnet := "magnet:?xt=urn:btih:" + mi.InfoHash.String() + "&dn=content"
	state := t.TempDir()
	r := runCLI(t, "info", "--listen", "127.0.0.1:0", "--no-trackers", "--peer", addr, "--state-dir", state, magnet)
	if r.status != 0 {
		t.Fatalf("status %d\nstderr:\n%s", r.status, r.stderr)
	}
	for _, w := range []string{"Files (4):", "sub/deep/c.md", "Pieces:"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "fetching the metadata of content") {
		t.Errorf("stderr lacks the fetch:\n%s", r.stderr)
	}
	// Kept in the state folder: --json at once, with no peer.
	r = runCLI(t, "info", "--json", "--listen", "127.0.0.1:0", "--no-trackers", "--state-dir", state, "--timeout", "5s", magnet)
	var got infoJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.status != 0 {
		t.Fatalf("status %d, %v:\n%s\n%s", r.status, err, r.stdout, r.stderr)
	}
	if !got.HasMetadata || len(got.Files) != 4 || got.TotalSize != mi.Info.Length {
		t.Errorf("info --json of the kept metadata: %+v", got)
	}
	// --save-torrent needs the metadata --no-fetch does not fetch.
	r = runCLI(t, "info", "--no-fetch", "--save-torrent", filepath.Join(t.TempDir(), "x.torrent"), magnet)
	if r.status != 2 || !strings.Contains(r.stderr, "--save-torrent needs the metadata") {
		t.Errorf("--no-fetch --save-torrent: status %d, stderr %q", r.status, r.stderr)
	}
	// No peer, nothing kept.
	r = runCLI(t, "info", "--listen", "127.0.0.1:0", "--no-trackers", "--state-dir", t.TempDir(), "--timeout", "1s", magnet)
	if r.status != 1 || !strings.Contains(r.stderr, "no peer sent the metadata of content within 1s") {
		t.Errorf("no peer: status %d, stderr %q", r.status, r.stderr)
	}
}

// TestDownloadMagnetThroughDHT: a magnet link with only the info hash,
// downloaded with --dht-bootstrap and no tracker or --peer: the seeder is
// found on a few DHT nodes on loopback.
func TestDownloadMagnetThroughDHT(t *testing.T) {
	torrentPath, src, addr := seedContent(t)
	mi, err := metainfo.LoadFile(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	nodes := dhtNodes(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The seeder (its DHT off) is announced by a node on its behalf: the
	// same IP, and its TCP port.
	port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	if _, err := nodes[1].Announce(ctx, mi.InfoHash, uint16(port)); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	magnet := "magnet:?xt=urn:btih:" + mi.InfoHash.String()
	r := runCLI(t, "download", "-o", out, "--listen", "127.0.0.1:0", "--no-trackers", "--state-dir", t.TempDir(),
		"--dht-bootstrap", nodes[3].Addr().String(), magnet)
	if r.status != 0 {
		t.Fatalf("status %d\nstderr:\n%s", r.status, r.stderr)
	}
	for _, f := range []string{"a.txt", "sub/b.bin", "sub/deep/c.md", "empty"} {
		got, err1 := os.ReadFile(filepath.Join(out, "content", f))
		want, err2 := os.ReadFile(filepath.Join(src, "content", f))
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("%s: %v %v, equal %v", f, err1, err2, string(got) == string(want))
		}
	}
	// --no-dht: nowhere to find a peer.
	r = runCLI(t, "info", "--listen", "127.0.0.1:0", "--no-trackers", "--no-dht", "--state-dir", t.TempDir(),
		"--dht-bootstrap", nodes[3].Addr().String(), "--timeout", "2s", magnet)
	if r.status != 1 {
		t.Errorf("--no-dht found the metadata: status %d\n%s", r.status, r.stderr)
	}
}
