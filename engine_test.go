package aiotorrent

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// testFile is a file of generated content.
type testFile struct {
	path string
	size int
}

// makeTorrent writes files with random content under a new folder and
// returns their torrent and the folder they are in (the seeder's data
// folder).
func makeTorrent(t testing.TB, name string, pieceLen int64, files ...testFile) (*metainfo.MetaInfo, string) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(len(files)), uint64(pieceLen)))
	root := filepath.Join(dir, name)
	for _, f := range files {
		p := root
		if f.path != "" {
			p = filepath.Join(root, filepath.FromSlash(f.path))
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, f.size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mi, err := metainfo.Create(context.Background(), root, metainfo.CreateOptions{PieceLength: pieceLen})
	if err != nil {
		t.Fatal(err)
	}
	return mi, dir
}

func newTestClient(t testing.TB) *Client {
	t.Helper()
	c, err := NewClient(Config{ListenAddr: "127.0.0.1:0", NoTrackers: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func clientAddr(c *Client) netip.AddrPort {
	return c.Addr().(*net.TCPAddr).AddrPort()
}

// startSeeder serves mi from dir in a new client.
func startSeeder(t testing.TB, mi *metainfo.MetaInfo, dir string) *Client {
	t.Helper()
	c := newTestClient(t)
	tor, err := c.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := tor.Start(WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	if s := tor.Stats(); s.PiecesVerified != s.Pieces {
		t.Fatalf("seeder has %d of %d pieces", s.PiecesVerified, s.Pieces)
	}
	return c
}

// leechFrom adds mi to a new client told of the seeders' addresses.
func leechFrom(t testing.TB, mi *metainfo.MetaInfo, seeders ...*Client) *Torrent {
	t.Helper()
	tor, err := newTestClient(t).Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range seeders {
		tor.AddPeers(clientAddr(s))
	}
	return tor
}

func sameFile(t testing.TB, got, want string) {
	t.Helper()
	a, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s differs from %s (%d and %d bytes)", got, want, len(a), len(b))
	}
}

func TestDownloadFromOwnSeeder(t *testing.T) {
	for _, strategy := range []Strategy{Default, Sequential} {
		t.Run(strategy.String(), func(t *testing.T) {
			mi, src := makeTorrent(t, "content", 32<<10,
				testFile{"a.bin", 300 << 10}, testFile{"b/empty", 0}, testFile{"b/one", 1}, testFile{"c.bin", 123457})
			seed := startSeeder(t, mi, src)
			tor := leechFrom(t, mi, seed)
			dst := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var got []int
			err := tor.DownloadAll(ctx, WithDir(dst), WithStrategy(strategy), OnPiece(func(p Piece) { got = append(got, p.Index) }))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tor.Files() {
				sameFile(t, filepath.Join(dst, filepath.FromSlash(f.Path)), filepath.Join(src, filepath.FromSlash(f.Path)))
			}
			if len(got) != tor.NumPieces() {
				t.Fatalf("OnPiece saw %d pieces, want %d", len(got), tor.NumPieces())
			}
			if strategy == Sequential {
				for i, p := range got {
					if p != i {
						t.Fatalf("sequential: piece %d reported at position %d: %v", p, i, got)
					}
				}
			}
			s := tor.Stats()
			if cs := tor.client.Stats(); cs.Torrents != 1 || cs.Running != 1 || cs.Downloaded != mi.Info.Length {
				t.Fatalf("client stats %+v", cs)
			}
			// One seeder: nothing is asked twice, nothing thrown away.
			if !s.Done() || s.Downloaded != mi.Info.Length || s.Wasted != 0 {
				t.Fatalf("stats after download: %+v", s)
			}
		})
	}
}

// Torrents added to and removed from the client while a download runs do
// not disturb it.
func TestAddRemoveTorrentsDuringDownload(t *testing.T) {
	mi, src := makeTorrent(t, "main", 64<<10, testFile{"", 16 << 20})
	seed := startSeeder(t, mi, src)
	tor := leechFrom(t, mi, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tor.DownloadAll(ctx, WithDir(t.TempDir())) }()
	others := 0
	for running := true; running; others++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		omi, odir := makeTorrent(t, fmt.Sprintf("other%d", others), 16<<10, testFile{"", 50 << 10})
		o, err := tor.client.Add(omi)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Start(WithDir(odir)); err != nil {
			t.Fatal(err)
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tor.client.Torrents()); n != 1 {
		t.Fatalf("%d torrents left in the client, want 1", n)
	}
	t.Logf("%d torrents added and removed during the download", others)
}

// Cancelling a download stops the torrent; a later download starts it
// again and completes.
func TestDownloadCancelThenResume(t *testing.T) {
	mi, src := makeTorrent(t, "c", 16<<10, testFile{"", 200 << 10})
	leech := newTestClient(t)
	tor, err := leech.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for tor.Stats().Running == false {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if err := tor.DownloadAll(ctx, WithDir(dst)); err != context.Canceled {
		t.Fatalf("cancelled download: %v", err)
	}
	if tor.Stats().Running {
		t.Fatal("torrent still running after its only download was cancelled")
	}
	seed := startSeeder(t, mi, src)
	tor.AddPeers(clientAddr(seed))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if err := tor.DownloadAll(ctx2, WithDir(dst)); err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(dst, "c"), filepath.Join(src, "c"))
}

// Closing the clients ends every goroutine they started.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		mi, src := makeTorrent(t, "leak", 16<<10, testFile{"a", 100 << 10}, testFile{"b", 3})
		seedC, err := NewClient(Config{ListenAddr: "127.0.0.1:0", NoTrackers: true})
		if err != nil {
			t.Fatal(err)
		}
		defer seedC.Close()
		st, _ := seedC.Add(mi)
		if err := st.Start(WithDir(src)); err != nil {
			t.Fatal(err)
		}
		leech, err := NewClient(Config{ListenAddr: "127.0.0.1:0", NoTrackers: true})
		if err != nil {
			t.Fatal(err)
		}
		defer leech.Close()
		tor, _ := leech.Add(mi)
		tor.AddPeers(clientAddr(seedC))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := tor.DownloadAll(ctx, WithDir(t.TempDir())); err != nil {
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after closing:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Files downloaded one after another into the same running torrent: the
// second one gets the bytes the first one's boundary pieces kept aside.
func TestDownloadFilesOneAfterAnother(t *testing.T) {
	mi, src := makeTorrent(t, "seq", 16<<10,
		testFile{"a", 20 << 10}, testFile{"b", 5000}, testFile{"c", 40<<10 + 7}, testFile{"d", 0})
	seed := startSeeder(t, mi, src)
	tor := leechFrom(t, mi, seed)
	dst := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files := tor.Files()
	for _, k := range []int{0, 2, 1, 3} {
		if err := tor.Download(ctx, files[k], WithDir(dst)); err != nil {
			t.Fatalf("file %d: %v", k, err)
		}
		sameFile(t, filepath.Join(dst, filepath.FromSlash(files[k].Path)), filepath.Join(src, filepath.FromSlash(files[k].Path)))
	}
}
