package aiotorrent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestVerifyNamesDamage: a few bytes changed in one file, another cut
// short, a third deleted: Verify names exactly the pieces under the
// damage, file by file, changes nothing on disk, and a download into the
// folder fetches only those pieces.
func TestVerifyNamesDamage(t *testing.T) {
	const pl = 32 << 10
	mi, src := makeTorrent(t, "damaged", pl,
		testFile{"a", 10 * pl},     // pieces 0-9
		testFile{"b", 6*pl + pl/2}, // pieces 10-16 (16 shared with c)
		testFile{"c", 3*pl + pl/2}, // pieces 16-19
		testFile{"d", 2 * pl})      // pieces 20-21
	seeder := startSeeder(t, mi, src)
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "damaged")
	corrupt := func(name string, off int64) {
		f, err := os.OpenFile(filepath.Join(root, name), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 3)
		f.ReadAt(b, off)
		for i := range b {
			b[i] ^= 0xff
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	corrupt("a", 3*pl+100)                                                 // piece 3
	corrupt("a", 7*pl-1)                                                   // pieces 6 and 7 (the last byte of 6, the first two of 7)
	if err := os.Truncate(filepath.Join(root, "b"), 4*pl+10); err != nil { // pieces 14-16
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "d")); err != nil { // pieces 20-21
		t.Fatal(err)
	}

	c := newTestClient(t)
	tor, _ := c.Add(mi)
	var last CheckProgress
	r, err := tor.Verify(t.Context(), WithDir(dir), OnCheck(func(p CheckProgress) { last = p }))
	if err != nil {
		t.Fatal(err)
	}
	wantBad := []int{3, 6, 7, 14, 15, 16, 20, 21}
	if !slices.Equal(r.Bad, wantBad) || r.Verified != r.Pieces-len(wantBad) || r.Complete() {
		t.Errorf("bad pieces %v (%d of %d verified), want %v", r.Bad, r.Verified, r.Pieces, wantBad)
	}
	if !last.Done || last.Checked != r.Pieces {
		t.Errorf("last progress %+v, want the end of the check", last)
	}
	files := []struct {
		path string
		size int64
		bad  []int
		ok   bool
	}{
		{"damaged/a", 10 * pl, []int{3, 6, 7}, false},
		{"damaged/b", 4*pl + 10, []int{14, 15, 16}, false},
		{"damaged/c", 3*pl + pl/2, []int{16}, false}, // whole, but shares piece 16 with b
		{"damaged/d", -1, []int{20, 21}, false},
	}
	if len(r.Files) != len(files) {
		t.Fatalf("%d files reported, want %d", len(r.Files), len(files))
	}
	for k, want := range files {
		got := r.Files[k]
		if got.File.Path != want.path || got.Size != want.size || !slices.Equal(got.Bad, want.bad) || got.OK() != want.ok {
			t.Errorf("file %d: %s size %d bad %v ok %v; want %s size %d bad %v ok %v",
				k, got.File.Path, got.Size, got.Bad, got.OK(), want.path, want.size, want.bad, want.ok)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "d")); !os.IsNotExist(err) {
		t.Errorf("Verify created the deleted file: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("Verify left %d entries in the folder, want the torrent's only", len(entries))
	}

	// A download into the folder fetches the damaged pieces only.
	tor.AddPeers(clientAddr(seeder))
	if err := tor.DownloadAll(t.Context(), WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	s := tor.Stats()
	if max := int64(len(wantBad)) * pl; s.Downloaded > max {
		t.Errorf("the download fetched %d bytes, want at most the %d of the damaged pieces", s.Downloaded, max)
	}
	r, err = tor.Verify(t.Context(), WithDir(dir))
	if err != nil || !r.Complete() {
		t.Fatalf("after the download: %v, bad %v", err, r.Bad)
	}
}
