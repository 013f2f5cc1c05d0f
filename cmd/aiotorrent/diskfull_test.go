package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// TestDownloadDiskFullResumes downloads into a folder that cannot take the
// torrent: a small tmpfs, then one mounted read-only, each in a private
// mount namespace (unshare) so that nothing is mounted outside the test.
// The first run must stop with a clear error, keeping what it verified;
// once there is room (or the folder is writable again) the same command
// must complete the download, fetching only what is missing.
func TestDownloadDiskFullResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the command in a mount namespace; skipped with -short")
	}
	unshare := swarmtest.Tool(t, "unshare", "util-linux")
	probe := exec.Command(unshare, "-rm", "sh", "-c", `mount -t tmpfs -o size=1m tmpfs "$1"`, "sh", t.TempDir())
	if out, err := probe.CombinedOutput(); err != nil {
		if os.Getenv(swarmtest.RequireEnv) != "" {
			t.Fatalf("cannot mount a tmpfs in a mount namespace here (%v: %s) and %s is set", err, out, swarmtest.RequireEnv)
		}
		t.Skipf("cannot mount a tmpfs in a mount namespace here (%v: %s): the storage's own ENOSPC test still runs", err, out)
	}

	const (
		size     = 24 << 20
		pieceLen = 256 << 10
	)
	work := t.TempDir()
	bin := filepath.Join(work, "aiotorrent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	src := filepath.Join(work, "src")
	content := make([]byte, size)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "big.bin"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Create(context.Background(), filepath.Join(src, "big.bin"), metainfo.CreateOptions{PieceLength: pieceLen})
	if err != nil {
		t.Fatal(err)
	}
	torrentPath := filepath.Join(work, "big.torrent")
	if err := writeTorrentFile(mi, torrentPath); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name          string
		before        string // mount options of the first run
		after         string // remount options of the second
		wantErr       string
		keepsVerified bool
	}{
		{"full", "size=8m", "remount,size=64m", "no space left on device", true},
		{"read-only", "size=64m,ro", "remount,rw", "read-only file system", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A seeder in this process, slowed down so that a run that
			// fails has little on the wire; its upload counts the bytes
			// both runs fetched.
			seeder, err := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, NoDHT: true, StateDir: "-", UploadLimit: 32 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer seeder.Close()
			st, err := seeder.Add(mi)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Start(aiotorrent.WithDir(src)); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			mnt, out, state := filepath.Join(dir, "mnt"), filepath.Join(dir, "out"), filepath.Join(dir, "state")
			for _, d := range []string{mnt, out} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			run := `"$BIN" download -o "$MNT" --listen 127.0.0.1:0 --no-trackers --peer "$PEER" --state-dir "$STATE" "$TORRENT"`
			script := strings.Join([]string{
				`mount -t tmpfs -o "$BEFORE" tmpfs "$MNT" || exit 90`,
				run + ` >"$DIR/run1.out" 2>"$DIR/run1.err"; echo "run1=$?"`,
				`mount -o "$AFTER" "$MNT" || exit 91`,
				run + ` >"$DIR/run2.out" 2>"$DIR/run2.err"; echo "run2=$?"`,
				`cp -a "$MNT/." "$OUT/"`,
			}, "\n")
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, unshare, "-rm", "sh", "-c", script)
			cmd.Env = append(os.Environ(), "BIN="+bin, "MNT="+mnt, "OUT="+out, "DIR="+dir, "STATE="+state,
				"PEER="+seeder.Addr().String(), "TORRENT="+torrentPath, "BEFORE="+tc.before, "AFTER="+tc.after)
			res, err := cmd.CombinedOutput()
			read := func(name string) string {
				b, _ := os.ReadFile(filepath.Join(dir, name))
				return string(b)
			}
			t.Logf("script: %s\nrun1 stderr:\n%s\nrun2 stderr:\n%s", res, read("run1.err"), read("run2.err"))
			if err != nil {
				t.Fatalf("script: %v", err)
			}
			if !strings.Contains(string(res), "run1=1\n") || !strings.Contains(string(res), "run2=0\n") {
				t.Fatalf("exit statuses %q: want the first run to fail (1) and the second to complete (0)", res)
			}
			if e := read("run1.err"); !strings.Contains(e, tc.wantErr) || !strings.Contains(e, "paused") {
				t.Errorf("first run's error %q: want it to say the download paused, and why (%q)", e, tc.wantErr)
			}
			if tc.keepsVerified && !strings.Contains(read("run2.err"), "pieces already here") {
				t.Errorf("second run did not resume from the pieces the first one verified")
			}
			got, err := os.ReadFile(filepath.Join(out, "big.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, content) {
				t.Fatalf("downloaded file (%d bytes) differs from the original (%d bytes)", len(got), len(content))
			}
			// Both runs together fetch the torrent once, plus what was on
			// the wire when the disk refused a write.
			up := st.Stats().Uploaded
			t.Logf("the seeder sent %d bytes for a %d-byte torrent (%.2f×)", up, size, float64(up)/size)
			if limit := int64(size + 4<<20); up > limit {
				t.Errorf("the seeder sent %d bytes, want at most %d (the torrent and 4 MiB in flight when the disk failed)", up, limit)
			}
		})
	}
}
