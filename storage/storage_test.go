package storage

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// tf describes one file of a test torrent: "name" or "dir/name" under the
// torrent's folder; pad marks a padding file.
type tf struct {
	path   string
	length int64
	pad    bool
	attr   string
}

// makeInfo builds the info of a torrent by hand, as metainfo would: for a
// multi-file torrent each path starts with the name; a single-file torrent
// has one file whose path is the name.
func makeInfo(name string, pieceLen int64, multi bool, files ...tf) *metainfo.Info {
	info := &metainfo.Info{Name: name, PieceLength: pieceLen, MultiFile: multi}
	for _, f := range files {
		path := []string{name}
		if multi {
			path = append(path, strings.Split(f.path, "/")...)
		}
		info.Files = append(info.Files, metainfo.File{
			Path: path, Length: f.length, Offset: info.Length, Attr: f.attr, Padding: f.pad,
		})
		info.Length += f.length
	}
	n := (info.Length + pieceLen - 1) / pieceLen
	info.Pieces = make([]byte, metainfo.HashSize*n)
	return info
}

// content returns random content for info, zero in its padding files, as
// the pieces of a real torrent hold.
func content(info *metainfo.Info, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, info.Length)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for _, f := range info.Files {
		if f.Padding {
			clear(b[f.Offset : f.Offset+f.Length])
		}
	}
	return b
}

// piece returns piece i of data.
func piece(info *metainfo.Info, data []byte, i int) (off int64, p []byte) {
	off = int64(i) * info.PieceLength
	return off, data[off : off+info.PieceSize(i)]
}

// layouts are the torrents every back-end is tested with.
var layouts = []struct {
	name string
	info *metainfo.Info
}{
	{"single file", makeInfo("single.bin", 16<<10, false, tf{"", 3*16<<10 + 5000, false, ""})},
	{"single file, one piece", makeInfo("small.bin", 16<<10, false, tf{"", 100, false, ""})},
	{"single byte", makeInfo("one.bin", 1<<10, false, tf{"", 1, false, ""})},
	{"padding, empty and tiny files", makeInfo("multi", 16<<10, true,
		tf{"a.bin", 10000, false, ""},
		tf{".pad/6384", 6384, true, "p"}, // aligns b to piece 1
		tf{"empty", 0, false, ""},
		tf{"sub/one", 1, false, ""},
		tf{"sub/small", 100, false, ""}, // smaller than a block
		tf{"sub/deep/big", 40000, false, ""},
		tf{".pad/7283", 16<<10 - (1+100+40000)%(16<<10), true, "p"},
		tf{"c.bin", 5000, false, "x"},
		tf{"last-empty", 0, false, ""},
	)},
	{"many tiny files across pieces", makeInfo("tiny", 1<<10, true, func() []tf {
		var fs []tf
		for i := range 60 {
			fs = append(fs, tf{"f" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "/" + string(rune('a'+i/26)), int64([]int{0, 1, 7, 100, 1023, 1024, 1025, 3000}[i%8]), false, ""})
		}
		return fs
	}()...)},
	{"empty first, padding last", makeInfo("edges", 1<<10, true,
		tf{"first-empty", 0, false, ""},
		tf{"x", 1500, false, ""},
		tf{"_____padding_file_0", 548, true, ""},
		tf{"y", 2048, false, ""},
		tf{"_____padding_file_1", 100, true, ""},
	)},
}

// testRoundTrip writes every piece of info in random order into s, then
// reads them back: piece by piece, as a whole, and in random ranges.
func testRoundTrip(t *testing.T, s Storage, info *metainfo.Info, data []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(2, 3))
	for _, i := range r.Perm(info.NumPieces()) {
		off, p := piece(info, data, i)
		if n, err := s.WriteAt(p, off); n != len(p) || err != nil {
			t.Fatalf("WriteAt piece %d = %d, %v; want %d, nil", i, n, err, len(p))
		}
	}
	for _, i := range r.Perm(info.NumPieces()) {
		off, want := piece(info, data, i)
		got := make([]byte, len(want))
		if n, err := s.ReadAt(got, off); n != len(got) || err != nil {
			t.Fatalf("ReadAt piece %d = %d, %v", i, n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("piece %d read back differs", i)
		}
	}
	all := make([]byte, len(data))
	if n, err := s.ReadAt(all, 0); n != len(all) || err != nil {
		t.Fatalf("ReadAt all = %d, %v", n, err)
	}
	if !bytes.Equal(all, data) {
		t.Fatal("content read back differs")
	}
	for range 200 {
		off := r.Int64N(info.Length)
		n := r.Int64N(info.Length-off) + 1
		got := make([]byte, n)
		if m, err := s.ReadAt(got, off); m != int(n) || err != nil {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", n, off, m, err)
		}
		if !bytes.Equal(got, data[off:off+n]) {
			t.Fatalf("ReadAt(%d bytes at %d) differs", n, off)
		}
	}
	for i := range info.Files {
		if err := s.FileComplete(i); err != nil {
			t.Fatalf("FileComplete(%d): %v", i, err)
		}
	}
}

// testEdges checks reads and writes at and past the ends of the content.
func testEdges(t *testing.T, s Storage, info *metainfo.Info, data []byte) {
	t.Helper()
	last := info.NumPieces() - 1
	off, p := piece(info, data, last)
	if _, err := s.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(p)+10)
	n, err := s.ReadAt(buf, off)
	if n != len(p) || err != io.EOF {
		t.Errorf("ReadAt past the end = %d, %v; want %d, io.EOF", n, err, len(p))
	}
	if !bytes.Equal(buf[:n], p) {
		t.Error("ReadAt past the end: wrong bytes")
	}
	if n, err := s.ReadAt(buf, info.Length); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := s.ReadAt(nil, info.Length); n != 0 || err != nil {
		t.Errorf("ReadAt(nil) at the end = %d, %v; want 0, nil", n, err)
	}
	if _, err := s.ReadAt(buf, -1); err == nil {
		t.Error("ReadAt at -1: no error")
	}
	if _, err := s.WriteAt(make([]byte, 2), info.Length-1); err == nil {
		t.Error("WriteAt past the end: no error")
	}
	if _, err := s.WriteAt(make([]byte, 1), -1); err == nil {
		t.Error("WriteAt at -1: no error")
	}
	if i := len(info.Files); s.FileComplete(i) == nil || s.FileComplete(-1) == nil {
		t.Error("FileComplete out of range: no error")
	}
}

// testPaddingDropped checks that bytes written to padding read back as
// zeros. info must have a padding file.
func testPaddingDropped(t *testing.T, s Storage, info *metainfo.Info) {
	t.Helper()
	ones := bytes.Repeat([]byte{0xff}, int(info.Length))
	for i := range info.NumPieces() {
		off, p := piece(info, ones, i)
		if _, err := s.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, info.Length)
	if _, err := s.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	for _, f := range info.Files {
		want := byte(0xff)
		if f.Padding {
			want = 0
		}
		for j, b := range got[f.Offset : f.Offset+f.Length] {
			if b != want {
				t.Fatalf("file %q byte %d = %#x, want %#x", filepath.Join(f.Path...), j, b, want)
			}
		}
	}
}

// testClosed checks that a closed storage refuses everything.
func testClosed(t *testing.T, s Storage) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadAt after Close: %v", err)
	}
	if _, err := s.WriteAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteAt after Close: %v", err)
	}
	if err := s.FileComplete(0); !errors.Is(err, ErrClosed) {
		t.Errorf("FileComplete after Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

// isMissing reports whether err says the bytes are not there yet.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist)
}
