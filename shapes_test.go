package aiotorrent

import (
	"context"
	"crypto/sha1"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/storage"
)

// TestDownloadShapes downloads torrents of unusual shapes from our own
// seeder and checks the files come out byte-identical, that only the
// selected files are created, and that the progress in Stats adds up.
func TestDownloadShapes(t *testing.T) {
	tests := []struct {
		name     string
		pieceLen int64
		files    []testFile
		only     int // download only Files()[only]; -1 for every file
	}{
		{"last piece short", 32 << 10, []testFile{{"", 5*(32<<10) + 1234}}, -1},
		{"single byte", 16 << 10, []testFile{{"", 1}}, -1},
		{"files of length 0 and 1", 16 << 10, []testFile{{"empty", 0}, {"one", 1}, {"sub/empty", 0}, {"two", 2}}, -1},
		{"files smaller than a block", 32 << 10, []testFile{{"a", 100}, {"b", 5000}, {"c", 16<<10 - 1}, {"d", 1}, {"e", 16 << 10}, {"f", 16<<10 + 1}}, -1},
		{"file boundary inside a block", 64 << 10, []testFile{{"a", 10000}, {"b", 30000}, {"c", 7000}, {"d", 100000}}, -1},
		{"exactly one full piece", 32 << 10, []testFile{{"", 32 << 10}}, -1},
		{"one short piece", 32 << 10, []testFile{{"", 20000}}, -1},
		{"one piece of many files", 64 << 10, []testFile{{"a", 3}, {"b", 40000}, {"c", 0}, {"d", 20000}}, -1},
		{"piece of one block", 16 << 10, []testFile{{"", 40*(16<<10) + 77}}, -1},
		{"pieces smaller than a block", 4 << 10, []testFile{{"a", 200<<10 + 3}, {"b", 5}, {"c", 9000}}, -1},
		{"pieces of 1 KiB", metainfo.MinPieceLength, []testFile{{"a", 300<<10 + 1}, {"b", 1000}}, -1},
		{"20000 pieces", metainfo.MinPieceLength, []testFile{{"", 20000<<10 - 100}}, -1},
		{"middle file only", 32 << 10, []testFile{{"a.bin", 100000}, {"b.bin", 70000}, {"c.bin", 50000}}, 1},
		{"middle file only, aligned", 16 << 10, []testFile{{"a.bin", 32 << 10}, {"b.bin", 48 << 10}, {"c.bin", 16 << 10}}, 1},
		{"middle file only, inside one piece", 64 << 10, []testFile{{"a.bin", 1000}, {"b.bin", 2000}, {"c.bin", 3000}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mi, src := makeTorrent(t, "content", tt.pieceLen, tt.files...)
			testShape(t, mi, src, tt.only)
		})
	}
	t.Run("padding files", func(t *testing.T) {
		mi, src := makePaddedTorrent(t, 32<<10, []testFile{{"a.bin", 40000}, {"b.bin", 70000}, {"c.bin", 1000}, {"d.bin", 32 << 10}, {"e.bin", 5}})
		var pads int
		for _, f := range mi.Info.Files {
			if f.Padding {
				pads++
			}
		}
		if pads < 3 {
			t.Fatalf("built a torrent with %d padding files, want at least 3: %+v", pads, mi.Info.Files)
		}
		testShape(t, mi, src, -1)
	})
	t.Run("padding files, middle file only", func(t *testing.T) {
		mi, src := makePaddedTorrent(t, 16<<10, []testFile{{"a.bin", 20000}, {"b.bin", 30000}, {"c.bin", 100}})
		testShape(t, mi, src, 1)
	})
}

// testShape seeds mi from src, downloads it (every file, or only
// Files()[only]) into a new folder and checks the result.
func testShape(t *testing.T, mi *metainfo.MetaInfo, src string, only int) {
	t.Helper()
	start := time.Now()
	seed := startSeeder(t, mi, src)
	tor := leechFrom(t, mi, seed)
	dst := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	files := tor.Files()
	want := files
	var err error
	if only >= 0 {
		want = files[only : only+1]
		err = tor.Download(ctx, files[only], WithDir(dst))
	} else {
		err = tor.DownloadAll(ctx, WithDir(dst))
	}
	if err != nil {
		t.Fatalf("download: %v (stats %+v)", err, tor.Stats())
	}
	t.Logf("%d pieces of %d bytes, %d bytes: %v", mi.Info.NumPieces(), mi.Info.PieceLength, mi.Info.Length, time.Since(start).Round(time.Millisecond))

	for _, f := range want {
		sameFile(t, filepath.Join(dst, filepath.FromSlash(f.Path)), filepath.Join(src, filepath.FromSlash(f.Path)))
	}
	// Exactly the wanted files exist, with their folders; a partial
	// download may add the parts file of boundary pieces.
	var wantPaths []string
	for _, f := range want {
		wantPaths = append(wantPaths, f.Path)
		for d := filepath.ToSlash(filepath.Dir(f.Path)); d != "."; d = filepath.ToSlash(filepath.Dir(d)) {
			wantPaths = append(wantPaths, d+"/")
		}
	}
	if sharesPieces(&mi.Info, want) {
		wantPaths = append(wantPaths, "."+mi.InfoHash.String()+".parts")
	}
	slices.Sort(wantPaths)
	wantPaths = slices.Compact(wantPaths)
	for _, p := range walkTree(t, dst) {
		if !slices.Contains(wantPaths, p) {
			t.Errorf("%s exists in the download folder; want only %q", p, wantPaths)
		}
	}

	s := tor.Stats()
	checkStats(t, s, mi, tor, want)
}

// sharesPieces reports whether a piece of the files want holds bytes of
// another file (not padding): those go to the parts file.
func sharesPieces(info *metainfo.Info, want []File) bool {
	in := map[int]bool{}
	for _, f := range want {
		in[f.Index] = true
	}
	for _, f := range want {
		begin, end := info.FilePieces(f.Index)
		lo, hi := int64(begin)*info.PieceLength, min(int64(end)*info.PieceLength, info.Length)
		for i, g := range info.Files {
			if !in[i] && !g.Padding && g.Length > 0 && g.Offset < hi && g.Offset+g.Length > lo {
				return true
			}
		}
	}
	return false
}

// checkStats checks the progress fields of a finished download of the
// files want.
func checkStats(t *testing.T, s Stats, mi *metainfo.MetaInfo, tor *Torrent, want []File) {
	t.Helper()
	info := &mi.Info
	var wanted int64
	var wantedPieces int
	for i := range info.NumPieces() {
		for _, f := range want {
			if begin, end := info.FilePieces(f.Index); i >= begin && i < end {
				wanted += info.PieceSize(i)
				wantedPieces++
				break
			}
		}
	}
	if !s.Done() || !s.Running {
		t.Errorf("stats after the download: not done: %+v", s)
	}
	if s.Pieces != info.NumPieces() || s.Pieces != tor.NumPieces() {
		t.Errorf("stats: Pieces = %d, the torrent has %d", s.Pieces, info.NumPieces())
	}
	if s.Wanted != wanted || s.WantedVerified != wanted {
		t.Errorf("stats: Wanted = %d, WantedVerified = %d, want both %d", s.Wanted, s.WantedVerified, wanted)
	}
	// Nothing but the wanted pieces was fetched.
	if s.Verified != wanted || s.PiecesVerified != wantedPieces {
		t.Errorf("stats: Verified = %d bytes in %d pieces, want %d in %d", s.Verified, s.PiecesVerified, wanted, wantedPieces)
	}
	if len(want) == len(tor.Files()) && (s.Verified != info.Length || s.PiecesVerified != s.Pieces) {
		t.Errorf("stats after a full download: Verified = %d of %d, %d of %d pieces", s.Verified, info.Length, s.PiecesVerified, s.Pieces)
	}
	if s.Downloaded < s.Verified || s.Downloaded-s.Wasted != s.Verified {
		t.Errorf("stats: Downloaded = %d, Wasted = %d, Verified = %d: useful bytes differ from verified ones", s.Downloaded, s.Wasted, s.Verified)
	}
	if s.Err != nil {
		t.Errorf("stats: Err = %v", s.Err)
	}
}

// walkTree lists what is under dir: files by their slash path, folders
// by theirs followed by "/".
func walkTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// makePaddedTorrent writes files of random content under dir/padded and
// returns a multi-file torrent of them with BEP 47 padding files (attr
// "p") aligning every file but the last to a piece, and the folder (the
// seeder's data folder). No padding file is written to disk: they are
// zeros, hashed but never stored.
func makePaddedTorrent(t *testing.T, pieceLen int64, files []testFile) (*metainfo.MetaInfo, string) {
	t.Helper()
	type fileDict struct {
		Attr   string   `bencode:"attr,omitempty"`
		Length int64    `bencode:"length"`
		Path   []string `bencode:"path"`
	}
	type infoDict struct {
		Files       []fileDict `bencode:"files"`
		Name        string     `bencode:"name"`
		PieceLength int64      `bencode:"piece length"`
		Pieces      []byte     `bencode:"pieces"`
	}
	dir := t.TempDir()
	const name = "padded"
	rng := rand.New(rand.NewPCG(uint64(len(files)), uint64(pieceLen)))
	var content []byte
	info := infoDict{Name: name, PieceLength: pieceLen}
	for i, f := range files {
		b := make([]byte, f.size)
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		p := filepath.Join(dir, name, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		content = append(content, b...)
		info.Files = append(info.Files, fileDict{Length: int64(f.size), Path: strings.Split(f.path, "/")})
		if pad := (pieceLen - int64(len(content))%pieceLen) % pieceLen; pad > 0 && i < len(files)-1 {
			content = append(content, make([]byte, pad)...)
			info.Files = append(info.Files, fileDict{Attr: "p", Length: pad, Path: []string{".pad", strconv.FormatInt(pad, 10)}})
		}
	}
	for off := 0; off < len(content); off += int(pieceLen) {
		sum := sha1.Sum(content[off:min(off+int(pieceLen), len(content))])
		info.Pieces = append(info.Pieces, sum[:]...)
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	data, err := bencode.Marshal(struct {
		Info bencode.RawMessage `bencode:"info"`
	}{infoBytes})
	if err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := contentOf(t, mi, dir); string(got) != string(content) {
		t.Fatal("the storage reads the padded content back differently")
	}
	return mi, dir
}

// contentOf reads the whole content of mi from dir, padding as zeros.
func contentOf(t testing.TB, mi *metainfo.MetaInfo, dir string) []byte {
	t.Helper()
	s, err := storage.NewFile(dir, &mi.Info, mi.InfoHash, storage.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := make([]byte, mi.Info.Length)
	if _, err := s.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}
