package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

var testHash = metainfo.Hash{0xab, 0xcd, 0xef}

func newFile(t testing.TB, dir string, info *metainfo.Info, opts FileOptions) *File {
	t.Helper()
	s, err := NewFile(dir, info, testHash, opts)
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// tree returns the regular files under dir with their contents, by path
// relative to dir with forward slashes.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		m[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantTree returns what tree should give once the selected files of info
// hold data.
func wantTree(info *metainfo.Info, data []byte, selected []bool) map[string][]byte {
	m := map[string][]byte{}
	for i, f := range info.Files {
		if f.Padding || selected != nil && !selected[i] {
			continue
		}
		m[strings.Join(f.Path, "/")] = data[f.Offset : f.Offset+f.Length]
	}
	return m
}

func diffTrees(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("file %s missing", p)
		case !bytes.Equal(g, w):
			t.Errorf("file %s: %d bytes, differ from the %d wanted", p, len(g), len(w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected file %s", p)
		}
	}
}

func TestFileRoundTrip(t *testing.T) {
	for _, tc := range layouts {
		for _, maxOpen := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("%s/max%d", tc.name, maxOpen), func(t *testing.T) {
				dir := t.TempDir()
				data := content(tc.info, 1)
				s := newFile(t, dir, tc.info, FileOptions{MaxOpenFiles: maxOpen})
				testRoundTrip(t, s, tc.info, data)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				diffTrees(t, tree(t, dir), wantTree(tc.info, data, nil))
				if maxOpen > 0 && s.peakOpen > maxOpen {
					t.Errorf("%d handles open at once, want at most %d", s.peakOpen, maxOpen)
				}
			})
		}
	}
}

func TestFileEdges(t *testing.T) {
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			testEdges(t, newFile(t, t.TempDir(), tc.info, FileOptions{}), tc.info, content(tc.info, 1))
		})
	}
}

func TestFilePaddingDropped(t *testing.T) {
	info := layouts[3].info
	dir := t.TempDir()
	testPaddingDropped(t, newFile(t, dir, info, FileOptions{}), info)
	if _, err := os.Lstat(filepath.Join(dir, "multi", ".pad")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("padding folder: %v, want not to exist", err)
	}
}

func TestFileClosed(t *testing.T) {
	testClosed(t, newFile(t, t.TempDir(), layouts[3].info, FileOptions{}))
}

// selectionInfo has a middle file b whose first piece is aligned by padding
// and whose last piece is shared with an empty file, a 1-byte file and the
// start of e.
var selectionInfo = makeInfo("t", 1<<10, true,
	tf{"a", 1500, false, ""},       // [0, 1500)
	tf{"pad", 548, true, "p"},      // [1500, 2048)
	tf{"sub/b", 2500, false, ""},   // [2048, 4548): pieces 2..4
	tf{"c", 0, false, ""},          // 4548
	tf{"d", 1, false, ""},          // [4548, 4549)
	tf{"sub/e", 1700, false, ""},   // [4549, 6249)
	tf{"pad2", 100, true, "p"},     // [6249, 6349)
	tf{"f", 1000, false, ""},       // [6349, 7349)
	tf{"sub/g", 0, false, ""},      // 7349
	tf{"sub/dir/h", 30, false, ""}, // [7349, 7379)
)

const selectionMiddle = 2

func TestFileSelectMiddle(t *testing.T) {
	info := selectionInfo
	selected := make([]bool, len(info.Files))
	selected[selectionMiddle] = true
	data := content(info, 7)
	partsName := "." + testHash.String() + ".parts"

	t.Run("pieces of the file", func(t *testing.T) {
		dir := t.TempDir()
		s := newFile(t, dir, info, FileOptions{Selected: selected})
		if got := tree(t, dir); len(got) != 0 {
			t.Fatalf("NewFile created %v", slices.Sorted(maps.Keys(got)))
		}
		begin, end := info.FilePieces(selectionMiddle)
		for i := begin; i < end; i++ {
			off, p := piece(info, data, i)
			if _, err := s.WriteAt(p, off); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.FileComplete(selectionMiddle); err != nil {
			t.Fatal(err)
		}
		from, to := int64(begin)*info.PieceLength, min(int64(end)*info.PieceLength, info.Length)
		got := make([]byte, to-from)
		if _, err := s.ReadAt(got, from); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[from:to]) {
			t.Error("pieces of the selected file read back differ")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		files := tree(t, dir)
		parts := files[partsName]
		delete(files, partsName)
		diffTrees(t, files, wantTree(info, data, selected))

		// The parts file holds exactly the bytes of the unselected files
		// in the boundary pieces, at their content offsets.
		f := info.Files[selectionMiddle]
		bEnd := f.Offset + f.Length
		if int64(len(parts)) != to {
			t.Fatalf("parts file is %d bytes, want %d", len(parts), to)
		}
		if !bytes.Equal(parts[bEnd:to], data[bEnd:to]) {
			t.Error("parts file: boundary bytes differ")
		}
		if !bytes.Equal(parts[:bEnd], make([]byte, bEnd)) {
			t.Error("parts file: bytes written before the boundary")
		}
	})

	t.Run("whole content", func(t *testing.T) {
		dir := t.TempDir()
		s := newFile(t, dir, info, FileOptions{Selected: selected, MaxOpenFiles: 1})
		testRoundTrip(t, s, info, data)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		files := tree(t, dir)
		parts, ok := files[partsName]
		if !ok {
			t.Fatal("no parts file")
		}
		delete(files, partsName)
		diffTrees(t, files, wantTree(info, data, selected))
		// Padding is dropped: zeros (holes) in the parts file, as in data.
		want := slices.Clone(data)
		clear(want[2048:4548])
		if !bytes.Equal(parts, want) {
			t.Error("parts file differs")
		}

		// A new storage over the same folder (a restarted download) reads
		// it all back.
		s = newFile(t, dir, info, FileOptions{Selected: selected})
		got := make([]byte, len(data))
		if _, err := s.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Error("content read back after reopening differs")
		}
	})

	t.Run("custom parts file", func(t *testing.T) {
		dir := t.TempDir()
		parts := filepath.Join(t.TempDir(), "state", "x.parts")
		s := newFile(t, dir, info, FileOptions{Selected: selected, PartsFile: parts})
		_, end := info.FilePieces(selectionMiddle)
		off, p := piece(info, data, end-1)
		if _, err := s.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(parts)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != off+int64(len(p)) || !bytes.Equal(b[4548:], data[4548:len(b)]) {
			t.Error("custom parts file differs")
		}
		if _, ok := tree(t, dir)[partsName]; ok {
			t.Error("default parts file created too")
		}
	})
}

func TestFileEmptyFiles(t *testing.T) {
	info := selectionInfo
	dir := t.TempDir()
	selected := make([]bool, len(info.Files))
	selected[3], selected[8] = true, true // c and sub/g, both empty
	s := newFile(t, dir, info, FileOptions{Selected: selected})
	diffTrees(t, tree(t, dir), map[string][]byte{"t/c": {}, "t/sub/g": {}})

	// Gone (removed by the user): FileComplete makes it again.
	if err := os.Remove(filepath.Join(dir, "t", "sub", "g")); err != nil {
		t.Fatal(err)
	}
	if err := s.FileComplete(8); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, tree(t, dir), map[string][]byte{"t/c": {}, "t/sub/g": {}})
}

func TestFileComplete(t *testing.T) {
	info := selectionInfo
	dir := t.TempDir()
	s := newFile(t, dir, info, FileOptions{})
	if err := s.FileComplete(0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FileComplete of a file never written: %v, want fs.ErrNotExist", err)
	}
	if err := s.FileComplete(1); err != nil {
		t.Errorf("FileComplete of padding: %v", err)
	}
	if _, err := s.WriteAt(content(info, 1)[:1024], 0); err != nil {
		t.Fatal(err)
	}
	if err := s.FileComplete(0); err != nil {
		t.Error(err)
	}
	s.mu.Lock()
	state := s.slots[0].state
	s.mu.Unlock()
	if state != stateClosed {
		t.Errorf("handle of a completed file left in state %d", state)
	}
}

func TestFileReadMissing(t *testing.T) {
	info := makeInfo("t", 1<<10, true, tf{"a", 1500, false, ""}, tf{"sub/b", 2000, false, ""})
	dir := t.TempDir()
	selected := []bool{false, true}
	s := newFile(t, dir, info, FileOptions{Selected: selected, MaxOpenFiles: 1})
	buf := make([]byte, 100)
	for _, off := range []int64{0, 1450, 1500, 3400} {
		if _, err := s.ReadAt(buf, off); !isMissing(err) {
			t.Errorf("ReadAt(%d): %v, want fs.ErrNotExist", off, err)
		}
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Errorf("reading created %v", slices.Sorted(maps.Keys(got)))
	}

	// A file that exists but is shorter than the bytes read.
	data := content(info, 3)
	if _, err := s.WriteAt(data[2048:3072], 2048); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadAt(buf, 3100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadAt past the end of a partial file: %v, want io.ErrUnexpectedEOF", err)
	}
	// A missing file is reported without closing the open handle.
	if _, err := s.ReadAt(buf, 0); !isMissing(err) {
		t.Errorf("ReadAt(0): %v, want fs.ErrNotExist", err)
	}
	s.mu.Lock()
	state := s.slots[1].state
	s.mu.Unlock()
	if state != stateOpen {
		t.Error("reading a missing file closed another file's handle")
	}
}

func TestFileRefusesEscapes(t *testing.T) {
	for _, path := range [][]string{
		{"..", "x"},
		{"t", "..", "..", "x"},
		{"t", "a/../../x"},
		{"t", `a\..\..\x`},
		{"/etc", "passwd"},
		{"t", ""},
		{"t", "."},
		{"t", "a\x00b"},
		{},
	} {
		t.Run(fmt.Sprintf("%q", path), func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "dl")
			info := makeInfo("t", 1<<10, true, tf{"ok", 10, false, ""}, tf{"y", 10, false, ""})
			info.Files[1].Path = path
			if s, err := NewFile(dir, info, testHash, FileOptions{}); err == nil {
				s.Close()
				t.Fatal("NewFile accepted the path")
			}
			if got := tree(t, parent); len(got) != 0 {
				t.Errorf("created %v", slices.Sorted(maps.Keys(got)))
			}
		})
	}
	t.Run("single-file name", func(t *testing.T) {
		info := makeInfo("..", 1<<10, false, tf{"", 10, false, ""})
		if s, err := NewFile(t.TempDir(), info, testHash, FileOptions{}); err == nil {
			s.Close()
			t.Fatal("NewFile accepted the name ..")
		}
	})
}

func TestFileRefusesSymlinkOut(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "t")); err != nil {
		t.Fatal(err)
	}
	info := makeInfo("t", 1<<10, true, tf{"a", 1000, false, ""})
	s := newFile(t, dir, info, FileOptions{})
	if _, err := s.WriteAt(make([]byte, 1000), 0); err == nil {
		t.Error("WriteAt through a symbolic link out of the folder succeeded")
	}
	if _, err := s.ReadAt(make([]byte, 1000), 0); err == nil {
		t.Error("ReadAt through a symbolic link out of the folder succeeded")
	}
	if got := tree(t, outside); len(got) != 0 {
		t.Errorf("created %v outside the folder", slices.Sorted(maps.Keys(got)))
	}
}

func TestNewFileInvalid(t *testing.T) {
	good := func() *metainfo.Info {
		return makeInfo("t", 1<<10, true, tf{"a", 1000, false, ""}, tf{"b", 2000, false, ""})
	}
	tests := []struct {
		name string
		edit func(*metainfo.Info, *FileOptions)
	}{
		{"selection too short", func(_ *metainfo.Info, o *FileOptions) { o.Selected = []bool{true} }},
		{"negative MaxOpenFiles", func(_ *metainfo.Info, o *FileOptions) { o.MaxOpenFiles = -1 }},
		{"gap between files", func(i *metainfo.Info, _ *FileOptions) { i.Files[1].Offset++; i.Length++ }},
		{"wrong total", func(i *metainfo.Info, _ *FileOptions) { i.Length++ }},
		{"missing piece hash", func(i *metainfo.Info, _ *FileOptions) { i.Pieces = i.Pieces[20:] }},
		{"zero piece length", func(i *metainfo.Info, _ *FileOptions) { i.PieceLength = 0 }},
		{"no files", func(i *metainfo.Info, _ *FileOptions) { i.Files = nil }},
		{"file named as the parts file", func(i *metainfo.Info, _ *FileOptions) {
			i.Files[0].Path = []string{"." + testHash.String() + ".parts"}
		}},
		{"parts file inside a file's path", func(i *metainfo.Info, o *FileOptions) {
			o.PartsFile = "DIR/t/a/x"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			info, opts := good(), FileOptions{}
			tc.edit(info, &opts)
			opts.PartsFile = strings.ReplaceAll(opts.PartsFile, "DIR", dir)
			if s, err := NewFile(dir, info, testHash, opts); err == nil {
				s.Close()
				t.Fatal("NewFile succeeded")
			}
		})
	}
	if s, err := NewFile("", good(), testHash, FileOptions{}); err == nil {
		s.Close()
		t.Error("NewFile with no folder succeeded")
	}
}

func TestFileExecutable(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no executable bit on Windows")
	}
	info := layouts[3].info // c.bin has attribute x
	dir := t.TempDir()
	s := newFile(t, dir, info, FileOptions{})
	testRoundTrip(t, s, info, content(info, 1))
	for _, c := range []struct {
		path string
		exec bool
	}{{"multi/c.bin", true}, {"multi/a.bin", false}} {
		fi, err := os.Stat(filepath.Join(dir, c.path))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode()&0o100 != 0; got != c.exec {
			t.Errorf("%s: mode %v, executable %v, want %v", c.path, fi.Mode(), got, c.exec)
		}
	}
}

func TestFileReadOnlyFiles(t *testing.T) {
	info := layouts[0].info
	data := content(info, 4)
	dir := t.TempDir()
	s := newFile(t, dir, info, FileOptions{})
	testRoundTrip(t, s, info, data)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Seeding files the user made read-only.
	path := filepath.Join(dir, info.Name)
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(path, 0o644)
	s = newFile(t, dir, info, FileOptions{})
	got := make([]byte, len(data))
	if _, err := s.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAt of a read-only file: %v", err)
	}
	if err := s.FileComplete(0); err != nil {
		t.Errorf("FileComplete of a read-only file: %v", err)
	}
}

// TestFileConcurrent runs writers, readers and FileComplete calls at once
// with very few handles, under -race: content must come out whole and the
// bound on handles must hold.
func TestFileConcurrent(t *testing.T) {
	var files []tf
	for i := range 12 {
		files = append(files, tf{fmt.Sprintf("d%d/f%d", i%3, i), int64(700 + 300*i), false, ""})
	}
	info := makeInfo("t", 1<<10, true, files...)
	for _, tc := range []struct {
		name     string
		maxOpen  int
		selected []bool
	}{
		{"one handle", 1, nil},
		{"two handles", 2, nil},
		{"one handle, parts file", 1, []bool{true, false, true, true, false, false, true, true, true, false, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data := content(info, 5)
			s := newFile(t, dir, info, FileOptions{MaxOpenFiles: tc.maxOpen, Selected: tc.selected})
			np := info.NumPieces()
			done := make([]atomic.Bool, np)
			var wg sync.WaitGroup
			var failed atomic.Bool
			fail := func(format string, args ...any) {
				failed.Store(true)
				t.Errorf(format, args...)
			}
			const writers = 4
			for w := range writers {
				wg.Go(func() {
					for i := w; i < np; i += writers {
						off, p := piece(info, data, i)
						if _, err := s.WriteAt(p, off); err != nil {
							fail("WriteAt piece %d: %v", i, err)
							return
						}
						done[i].Store(true)
					}
				})
			}
			for r := range 6 {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(r), 9))
					buf := make([]byte, info.PieceLength)
					for range 300 {
						if failed.Load() {
							return
						}
						i := rnd.IntN(np)
						wasDone := done[i].Load()
						off, want := piece(info, data, i)
						n, err := s.ReadAt(buf[:len(want)], off)
						if !wasDone {
							continue // missing, short or racing: anything but a crash
						}
						if err != nil || !bytes.Equal(buf[:n], want) {
							fail("ReadAt of written piece %d: %d, %v", i, n, err)
						}
					}
				})
			}
			wg.Go(func() {
				for range 50 {
					for i := range info.Files {
						if err := s.FileComplete(i); err != nil && !isMissing(err) {
							fail("FileComplete(%d): %v", i, err)
						}
					}
				}
			})
			wg.Wait()
			got := make([]byte, len(data))
			if _, err := s.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
				t.Errorf("content after the run: %v, differs: %v", err, !bytes.Equal(got, data))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s.peakOpen > tc.maxOpen {
				t.Errorf("%d handles open at once, want at most %d", s.peakOpen, tc.maxOpen)
			}
			files := tree(t, dir)
			delete(files, "."+testHash.String()+".parts")
			diffTrees(t, files, wantTree(info, data, tc.selected))
		})
	}
}

// TestFileCloseWaits checks that Close waits for the I/O in progress and
// that callers waiting for a handle give up with ErrClosed.
func TestFileCloseWaits(t *testing.T) {
	info := makeInfo("t", 1<<10, true, tf{"a", 4096, false, ""}, tf{"b", 4096, false, ""})
	s := newFile(t, t.TempDir(), info, FileOptions{MaxOpenFiles: 1})
	data := content(info, 6)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g % 8; ; i = (i + 1) % 8 {
				off, p := piece(info, data, i)
				if _, err := s.WriteAt(p, off); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("WriteAt: %v", err)
					}
					return
				}
			}
		})
	}
	for !s.closed.Load() {
		s.mu.Lock()
		busy := s.nopen > 0
		s.mu.Unlock()
		if busy {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		}
		runtime.Gosched()
	}
	wg.Wait()
}

// BenchmarkFileWritePiece writes 1 MiB pieces into a two-file torrent, one
// piece spanning both files.
func BenchmarkFileWritePiece(b *testing.B) {
	const pl = 1 << 20
	info := makeInfo("bench", pl, true, tf{"a", 16*pl + pl/2, false, ""}, tf{"b", 16*pl - pl/2, false, ""})
	s := newFile(b, b.TempDir(), info, FileOptions{})
	buf := content(info, 1)[:pl]
	np := info.NumPieces()
	for i := range np { // files created: the steady state
		if _, err := s.WriteAt(buf, int64(i)*pl); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(pl)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.WriteAt(buf, int64(i%np)*pl); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFileReadBlock reads 16 KiB blocks, as uploading does.
func BenchmarkFileReadBlock(b *testing.B) {
	const pl, block = 1 << 20, 16 << 10
	info := makeInfo("bench", pl, true, tf{"a", 8*pl + pl/2, false, ""}, tf{"b", 8*pl - pl/2, false, ""})
	s := newFile(b, b.TempDir(), info, FileOptions{})
	data := content(info, 1)
	if _, err := s.WriteAt(data, 0); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, block)
	nb := int(info.Length / block)
	b.SetBytes(block)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.ReadAt(buf, int64(i%nb)*block); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestFileUpgradeReadOnlyHandle checks that a write to a file a reader
// opened read-only waits for the reads in progress, holds new readers back
// and reopens the file read-write. (Files are opened read-only only when
// they forbid writing, which root ignores: the test makes the handle
// read-only by hand.)
func TestFileUpgradeReadOnlyHandle(t *testing.T) {
	info := makeInfo("t", 1<<10, false, tf{"", 2048, false, ""})
	dir := t.TempDir()
	data := content(info, 10)
	s := newFile(t, dir, info, FileOptions{})
	if _, err := s.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.FileComplete(0); err != nil { // closes the handle
		t.Fatal(err)
	}
	// A reader holds the handle, which we make read-only.
	if _, err := s.acquire(0, accessRead); err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(filepath.Join(dir, "t"))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	sl := &s.slots[0]
	sl.f.Close()
	sl.f, sl.writable = ro, false
	s.mu.Unlock()

	wrote := make(chan error)
	go func() {
		_, err := s.WriteAt(data[:1024], 0)
		wrote <- err
	}()
	// Once the writer waits, a new reader waits too.
	for {
		s.mu.Lock()
		up := sl.upgrading
		s.mu.Unlock()
		if up {
			break
		}
		runtime.Gosched()
	}
	read := make(chan error)
	go func() {
		_, err := s.ReadAt(make([]byte, 10), 0)
		read <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("write did not wait for the reader: %v", err)
	case err := <-read:
		t.Fatalf("new reader did not wait for the writer: %v", err)
	default:
	}
	s.release(0, false)
	if err := <-wrote; err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	if err := <-read; err != nil {
		t.Fatalf("ReadAt: %v", err)
	}
	s.mu.Lock()
	writable := sl.writable
	s.mu.Unlock()
	if !writable {
		t.Error("handle still read-only after a write")
	}
}

// TestFileReadOnly: a read-only File reads what a writable one wrote,
// creates nothing (not even an empty file or a missing folder), and
// refuses writes.
func TestFileReadOnly(t *testing.T) {
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data := content(tc.info, 2)
			w := newFile(t, dir, tc.info, FileOptions{})
			if _, err := w.WriteAt(data, 0); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			before := tree(t, dir)
			r, err := NewFile(dir, tc.info, metainfo.Hash{}, FileOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back: %v (equal %v)", err, bytes.Equal(got, data))
			}
			if _, err := r.WriteAt(data[:1], 0); !errors.Is(err, ErrReadOnly) {
				t.Errorf("write: %v, want ErrReadOnly", err)
			}
			r.Close()
			diffTrees(t, tree(t, dir), before)

			empty := filepath.Join(t.TempDir(), "empty")
			if err := os.Mkdir(empty, 0o755); err != nil {
				t.Fatal(err)
			}
			r, err = NewFile(empty, tc.info, metainfo.Hash{}, FileOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.ReadAt(got[:1], 0); err == nil && tc.info.Length > 0 && !tc.info.Files[0].Padding {
				t.Error("read from an empty folder succeeded")
			}
			r.Close()
			if entries, _ := os.ReadDir(empty); len(entries) != 0 {
				t.Errorf("a read-only File created %d entries", len(entries))
			}
			if _, err := NewFile(filepath.Join(empty, "missing"), tc.info, metainfo.Hash{}, FileOptions{ReadOnly: true}); err == nil {
				t.Error("a read-only File opened a folder that does not exist")
			}
			if _, err := os.Stat(filepath.Join(empty, "missing")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the missing folder was created: %v", err)
			}
		})
	}
}

// TestFileSync checks that Sync syncs exactly the files written since the
// last Sync, those whose handle was closed to open another included, and
// that Stamps follows the files on disk.
func TestFileSync(t *testing.T) {
	info := layouts[3].info // several files, padding among them
	var mu sync.Mutex
	var synced []int
	syncHook = func(_ *File, slot int) {
		mu.Lock()
		synced = append(synced, slot)
		mu.Unlock()
	}
	t.Cleanup(func() { syncHook = nil })
	take := func() []int {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Sorted(slices.Values(synced))
		synced = nil
		return out
	}

	dir := t.TempDir()
	s := newFile(t, dir, info, FileOptions{MaxOpenFiles: 1}) // every new file evicts the last
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync with nothing written: %v", err)
	}
	if got := take(); len(got) != 0 {
		t.Fatalf("Sync with nothing written synced %v", got)
	}
	files, _, err := s.Stamps()
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range files {
		if st.Exists != (info.Files[i].Length == 0 && !info.Files[i].Padding) { // empty files are created at once
			t.Errorf("file %d before any write: %+v", i, st)
		}
	}

	data := content(info, 1)
	if _, err := s.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	var want []int
	for i, f := range info.Files {
		if !f.Padding && f.Length > 0 {
			want = append(want, i)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := take(); !slices.Equal(got, want) {
		t.Fatalf("Sync synced %v, want every written file %v", got, want)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := take(); len(got) != 0 {
		t.Fatalf("second Sync synced %v, want nothing", got)
	}

	files, _, err = s.Stamps()
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range info.Files {
		st := files[i]
		if f.Padding {
			if st.Exists {
				t.Errorf("padding file %d exists", i)
			}
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, filepath.Join(f.Path...)))
		if f.Length == 0 && err != nil {
			continue // never written, never created
		}
		if err != nil {
			t.Fatal(err)
		}
		if !st.Exists || st.Size != fi.Size() || !st.ModTime.Equal(fi.ModTime()) {
			t.Errorf("file %d: stamp %+v, on disk %d bytes at %v", i, st, fi.Size(), fi.ModTime())
		}
	}

	// One write: only its file is synced next time.
	last := want[len(want)-1]
	if _, err := s.WriteAt(data[info.Files[last].Offset:info.Files[last].Offset+1], info.Files[last].Offset); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := take(); !slices.Equal(got, []int{last}) {
		t.Fatalf("Sync after one write synced %v, want [%d]", got, last)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.Stamps(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stamps after Close: %v, want ErrClosed", err)
	}
}

// TestFileCloseSyncsEvicted checks that Close makes durable a file whose
// handle was closed, unsynced, to make room for another.
func TestFileCloseSyncsEvicted(t *testing.T) {
	info := layouts[3].info
	var mu sync.Mutex
	synced := map[int]bool{}
	syncHook = func(_ *File, slot int) {
		mu.Lock()
		synced[slot] = true
		mu.Unlock()
	}
	t.Cleanup(func() { syncHook = nil })
	s := newFile(t, t.TempDir(), info, FileOptions{MaxOpenFiles: 1})
	if _, err := s.WriteAt(content(info, 2), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i, f := range info.Files {
		if !f.Padding && f.Length > 0 && !synced[i] {
			t.Errorf("file %d not synced by Close", i)
		}
	}
}

// TestFileSelectRetries: a Select that fails to copy a file's boundary
// bytes out of the parts file leaves it unselected, and the next Select
// copies them; the file then reads back whole.
func TestFileSelectRetries(t *testing.T) {
	info := selectionInfo
	const fileE = 5 // sub/e, whose first bytes share piece 4 with b
	selected := make([]bool, len(info.Files))
	selected[selectionMiddle] = true
	data := content(info, 9)
	dir := t.TempDir()
	s := newFile(t, dir, info, FileOptions{Selected: selected})
	off, p := piece(info, data, 4)
	if _, err := s.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, "t", "sub", "e", "x")
	if err := os.MkdirAll(blocker, 0o755); err != nil { // a folder where e goes
		t.Fatal(err)
	}
	have := func(i int) bool { return i == 4 }
	if err := s.Select(fileE, have); err == nil {
		t.Fatal("Select with a folder in the file's place: no error")
	}
	if s.Selected()[fileE] {
		t.Fatal("a file whose Select failed counts as selected")
	}
	if err := os.RemoveAll(filepath.Dir(blocker)); err != nil {
		t.Fatal(err)
	}
	if err := s.Select(fileE, have); err != nil {
		t.Fatalf("Select again: %v", err)
	}
	got := make([]byte, len(p))
	if _, err := s.ReadAt(got, off); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("piece 4 after the second Select: %v, equal %v", err, bytes.Equal(got, p))
	}
}

// TestFileMarkUnsynced: data found on disk, not written by this File, is
// synced by the next Sync once marked; an unselected file's mark goes to
// the parts file.
func TestFileMarkUnsynced(t *testing.T) {
	info := selectionInfo
	var mu sync.Mutex
	var synced []int
	syncHook = func(_ *File, slot int) {
		mu.Lock()
		synced = append(synced, slot)
		mu.Unlock()
	}
	t.Cleanup(func() { syncHook = nil })
	selected := make([]bool, len(info.Files))
	selected[selectionMiddle] = true
	data := content(info, 3)
	s := newFile(t, t.TempDir(), info, FileOptions{Selected: selected})
	off, p := piece(info, data, 4)
	if _, err := s.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	synced = nil
	s.MarkUnsynced(selectionMiddle)
	s.MarkUnsynced(5)  // not selected: the parts file
	s.MarkUnsynced(1)  // padding: nothing
	s.MarkUnsynced(99) // out of range: nothing
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(slices.Values(synced)), []int{selectionMiddle, len(info.Files)}; !slices.Equal(got, want) {
		t.Errorf("synced slots %v, want %v (b and the parts file)", got, want)
	}
}

// TestFileSyncDeleted: a file deleted after it was written has nothing
// left to make durable: Sync and Close do not fail for it.
func TestFileSyncDeleted(t *testing.T) {
	info := layouts[3].info
	dir := t.TempDir()
	s := newFile(t, dir, info, FileOptions{MaxOpenFiles: 1})
	if _, err := s.WriteAt(content(info, 4), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, info.Name)); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Errorf("Sync after the files were deleted: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after the files were deleted: %v", err)
	}
}
