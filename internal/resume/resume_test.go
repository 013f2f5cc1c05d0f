package resume

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/internal/bitfield"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/storage"
)

// hashOf returns an info hash whose bytes are b, b+1, ...
func hashOf(b byte) metainfo.Hash {
	var h metainfo.Hash
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

// pieces returns a bitfield of n pieces holding set.
func pieces(n int, set ...int) *bitfield.Bitfield {
	f := bitfield.New(n)
	for _, i := range set {
		f.Set(i)
	}
	return f
}

// members lists the pieces in f.
func members(f *bitfield.Bitfield) []int {
	var l []int
	for i := range f.Len() {
		if f.Has(i) {
			l = append(l, i)
		}
	}
	return l
}

func stamp(size int64, mtime time.Time) storage.Stamp {
	return storage.Stamp{Exists: true, Size: size, ModTime: mtime}
}

func sameStampTest(a, b storage.Stamp) bool {
	return a.Exists == b.Exists && a.Size == b.Size && a.ModTime.Equal(b.ModTime)
}

func fmtStamp(s storage.Stamp) string {
	if !s.Exists {
		return "missing"
	}
	return fmt.Sprintf("size %d mtime %d", s.Size, s.ModTime.UnixNano())
}

// diffState describes how a and b differ, "" if they are equal (times
// compared with Equal).
func diffState(a, b *State) string {
	var d []string
	if a.InfoHash != b.InfoHash {
		d = append(d, fmt.Sprintf("info hash %s != %s", a.InfoHash, b.InfoHash))
	}
	if a.Dir != b.Dir {
		d = append(d, fmt.Sprintf("dir %q != %q", a.Dir, b.Dir))
	}
	switch {
	case (a.Pieces == nil) != (b.Pieces == nil):
		d = append(d, fmt.Sprintf("pieces %v != %v", a.Pieces, b.Pieces))
	case a.Pieces != nil && (a.Pieces.Len() != b.Pieces.Len() || a.Pieces.Count() != b.Pieces.Count() || !bytes.Equal(a.Pieces.Bytes(), b.Pieces.Bytes())):
		d = append(d, fmt.Sprintf("pieces %d:%x (count %d) != %d:%x (count %d)",
			a.Pieces.Len(), a.Pieces.Bytes(), a.Pieces.Count(), b.Pieces.Len(), b.Pieces.Bytes(), b.Pieces.Count()))
	}
	if len(a.Files) != len(b.Files) {
		d = append(d, fmt.Sprintf("%d files != %d", len(a.Files), len(b.Files)))
	} else {
		for i := range a.Files {
			fa, fb := a.Files[i], b.Files[i]
			if fa.Selected != fb.Selected || !sameStampTest(fa.Stamp, fb.Stamp) {
				d = append(d, fmt.Sprintf("file %d: selected %v %s != selected %v %s",
					i, fa.Selected, fmtStamp(fa.Stamp), fb.Selected, fmtStamp(fb.Stamp)))
			}
		}
	}
	if !sameStampTest(a.Parts, b.Parts) {
		d = append(d, fmt.Sprintf("parts %s != %s", fmtStamp(a.Parts), fmtStamp(b.Parts)))
	}
	if a.Strategy != b.Strategy {
		d = append(d, fmt.Sprintf("strategy %q != %q", a.Strategy, b.Strategy))
	}
	if a.Metadata != b.Metadata {
		d = append(d, fmt.Sprintf("metadata %q != %q", a.Metadata, b.Metadata))
	}
	if !a.Saved.Equal(b.Saved) {
		d = append(d, fmt.Sprintf("saved %v != %v", a.Saved, b.Saved))
	}
	return strings.Join(d, "; ")
}

var (
	t0     = time.Unix(1_700_000_000, 123_456_789)
	before = time.Date(1950, 3, 4, 5, 6, 7, 890, time.UTC) // negative nanoseconds since 1970
)

// roundTripStates are valid records of several shapes; the fuzz target
// seeds its corpus with their encodings too.
func roundTripStates() []struct {
	name string
	s    *State
} {
	return []struct {
		name string
		s    *State
	}{
		{"empty", &State{
			InfoHash: hashOf(0),
			Dir:      "/",
			Pieces:   bitfield.New(0),
			Saved:    time.Unix(0, 0),
		}},
		{"one piece", &State{
			InfoHash: hashOf(1),
			Dir:      "/srv/dl",
			Pieces:   pieces(1, 0),
			Files:    []File{{Selected: true, Stamp: stamp(5, t0)}},
			Parts:    storage.Stamp{},
			Saved:    t0,
		}},
		{"one piece missing", &State{
			InfoHash: hashOf(2),
			Dir:      "/srv/dl",
			Pieces:   pieces(1),
			Files:    []File{{Selected: true, Stamp: storage.Stamp{}}},
			Saved:    t0,
		}},
		{"thirteen pieces", &State{
			InfoHash: hashOf(3),
			Dir:      "/home/user/Downloads/a torrent ü",
			Pieces:   pieces(13, 0, 3, 7, 8, 12),
			Files: []File{
				{Selected: true, Stamp: stamp(100, t0), Racy: true, Priority: 1},
				{Selected: false, Stamp: storage.Stamp{}},                          // not selected, not on disk
				{Selected: true, Stamp: storage.Stamp{}},                           // selected, deleted
				{Selected: false, Stamp: storage.Stamp{}},                          // padding
				{Selected: true, Stamp: stamp(0, time.Unix(0, 0))},                 // empty, mtime 1970
				{Selected: true, Stamp: stamp(1<<40, before)},                      // mtime before 1970
				{Selected: false, Stamp: stamp(7, time.Unix(-1, 1)), Priority: -1}, // -999999999 ns
				{Selected: true, Stamp: stamp(1, time.Unix(4_000_000_000, 0))},     // 2096
			},
			Parts:    stamp(64, t0.Add(time.Nanosecond)),
			Strategy: "sequential",
			Metadata: "/var/lib/aiotorrent/0102.torrent",
			Saved:    t0.Add(time.Hour),
		}},
		{"all of sixteen", &State{
			InfoHash: hashOf(4),
			Dir:      "/dl",
			Pieces:   pieces(16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
			Files: []File{
				{Selected: false, Stamp: stamp(3, before)},
				{Selected: false, Stamp: storage.Stamp{}},
			},
			Parts:    stamp(0, before),
			Strategy: "default",
			Saved:    before,
		}},
		{"many pieces", &State{
			InfoHash: hashOf(5),
			Dir:      "/dl",
			Pieces:   pieces(100_003, 0, 1, 50_000, 100_002),
			Files:    []File{{Selected: true, Stamp: stamp(1<<50, t0)}},
			Parts:    stamp(1, time.Unix(0, 1)),
			Metadata: "/m",
			Saved:    t0,
		}},
	}
}

func TestEncodeDecode(t *testing.T) {
	for _, tc := range roundTripStates() {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Encode(tc.s)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(data)
			if err != nil {
				t.Fatalf("Decode(%q): %v", data, err)
			}
			if d := diffState(tc.s, got); d != "" {
				t.Errorf("Decode(Encode(s)) differs: %s\nrecord: %q", d, data)
			}
			again, err := Encode(got)
			if err != nil {
				t.Fatalf("Encode again: %v", err)
			}
			if !bytes.Equal(again, data) {
				t.Errorf("Encode(Decode(x)) != x:\n%q\n%q", again, data)
			}
		})
	}
}

func TestEncodeNoPieces(t *testing.T) {
	if _, err := Encode(&State{Dir: "/dl"}); err == nil {
		t.Fatal("Encode of a state without pieces: no error")
	}
}

// valid returns the fields of a valid record as a bencode dictionary, for
// tests to spoil one at a time.
func valid() map[string]any {
	return map[string]any{
		"aiotorrent resume": 1,
		"info hash":         string(bytes.Repeat([]byte{0xAB}, metainfo.HashSize)),
		"dir":               "/dl",
		"piece count":       10,
		"pieces":            "\xff\xc0",
		"files": []any{
			map[string]any{"selected": 1, "size": 5, "mtime": 7},
			map[string]any{"selected": 0, "size": -1, "mtime": 0},
		},
		"parts":    map[string]any{"size": -1, "mtime": 0},
		"strategy": "sequential",
		"saved":    123,
	}
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := bencode.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

func TestDecodeValidMap(t *testing.T) {
	s, err := Decode(marshal(t, valid()))
	if err != nil {
		t.Fatalf("Decode of the valid record: %v", err)
	}
	want := &State{
		InfoHash: metainfo.Hash(bytes.Repeat([]byte{0xAB}, metainfo.HashSize)),
		Dir:      "/dl",
		Pieces:   pieces(10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
		Files: []File{
			{Selected: true, Stamp: stamp(5, time.Unix(0, 7))},
			{Selected: false, Stamp: storage.Stamp{}},
		},
		Strategy: "sequential",
		Saved:    time.Unix(0, 123),
	}
	if d := diffState(want, s); d != "" {
		t.Errorf("Decode: %s", d)
	}
}

func TestDecodeSpareBits(t *testing.T) {
	for _, tc := range []struct {
		count int
		bytes string
		want  []int
	}{
		{1, "\xff", []int{0}},
		{1, "\x7f", nil},
		{10, "\xff\xff", []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{10, "\x00\x3f", nil},
		{10, "\x01\x7f", []int{7, 9}},
		{15, "\x00\x03", []int{14}},
	} {
		m := valid()
		m["piece count"], m["pieces"] = tc.count, tc.bytes
		s, err := Decode(marshal(t, m))
		if err != nil {
			t.Fatalf("count %d bytes %x: %v", tc.count, tc.bytes, err)
		}
		if got := members(s.Pieces); !slices.Equal(got, tc.want) || s.Pieces.Count() != len(tc.want) || s.Pieces.Len() != tc.count {
			t.Errorf("count %d bytes %x: pieces %v (count %d, len %d), want %v",
				tc.count, tc.bytes, got, s.Pieces.Count(), s.Pieces.Len(), tc.want)
		}
		data, err := Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffState(s, back); d != "" {
			t.Errorf("count %d bytes %x: round trip: %s", tc.count, tc.bytes, d)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	type edit func(m map[string]any)
	set := func(k string, v any) edit { return func(m map[string]any) { m[k] = v } }
	del := func(k string) edit { return func(m map[string]any) { delete(m, k) } }
	file := func(k string, v any) edit {
		return func(m map[string]any) { m["files"].([]any)[0].(map[string]any)[k] = v }
	}
	parts := func(k string, v any) edit {
		return func(m map[string]any) { m["parts"].(map[string]any)[k] = v }
	}
	count := func(n int, b string) edit {
		return func(m map[string]any) { m["piece count"], m["pieces"] = n, b }
	}
	for _, tc := range []struct {
		name string
		edit edit
	}{
		{"version 0", set("aiotorrent resume", 0)},
		{"version 2", set("aiotorrent resume", 2)},
		{"version -1", set("aiotorrent resume", -1)},
		{"version missing", del("aiotorrent resume")},
		{"version a string", set("aiotorrent resume", "1")},
		{"info hash missing", del("info hash")},
		{"info hash empty", set("info hash", "")},
		{"info hash 19 bytes", set("info hash", strings.Repeat("a", 19))},
		{"info hash 21 bytes", set("info hash", strings.Repeat("a", 21))},
		{"info hash 32 bytes", set("info hash", strings.Repeat("a", 32))},
		{"info hash in hex", set("info hash", strings.Repeat("ab", 20))},
		{"info hash a list", set("info hash", []any{})},
		{"dir missing", del("dir")},
		{"dir empty", set("dir", "")},
		{"dir relative", set("dir", "dl")},
		{"dir dot", set("dir", "./dl")},
		{"dir dot dot", set("dir", "../dl")},
		{"dir an integer", set("dir", 1)},
		{"count 10, 1 byte", count(10, "\xff")},
		{"count 10, 3 bytes", count(10, "\xff\xff\xff")},
		{"count 8, 2 bytes", count(8, "\xff\xff")},
		{"count 0, 1 byte", count(0, "\x00")},
		{"count 1, 0 bytes", count(1, "")},
		{"count -1", count(-1, "")},
		{"count -8", count(-8, "\x00")},
		{"count min int64", count(-1<<63, "")},
		{"count huge", count(MaxSize*8+1, "")},
		{"count max int64", count(1<<63-1, "")},
		{"pieces missing", del("pieces")},
		{"pieces a list of strings", set("pieces", []any{"\xff", "\xc0"})},
		{"pieces a list past a byte", set("pieces", []any{255, 256})},
		{"count missing", del("piece count")},
		{"files not a list", set("files", 1)},
		{"file not a dict", set("files", []any{1})},
		{"selected 2", file("selected", 2)},
		{"selected -1", file("selected", -1)},
		{"selected a string", file("selected", "1")},
		{"file size -2", file("size", -2)},
		{"file size min int64", file("size", -1<<63)},
		{"file mtime a string", file("mtime", "x")},
		{"parts size -2", parts("size", -2)},
		{"parts size -100", parts("size", -100)},
		{"parts not a dict", set("parts", 0)},
		{"strategy a list", set("strategy", []any{})},
		{"metadata an integer", set("metadata", 5)},
		{"saved a string", set("saved", "now")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			tc.edit(m)
			checkDecodeFails(t, marshal(t, m))
		})
	}
}

// checkDecodeFails checks that Decode refuses data, without panicking.
func checkDecodeFails(t *testing.T, data []byte) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Decode(%q) panicked: %v", data, r)
		}
	}()
	s, err := Decode(data)
	if err == nil {
		t.Fatalf("Decode(%q) = %+v, want an error", data, s)
	}
	if s != nil {
		t.Errorf("Decode(%q) returned a state with error %v", data, err)
	}
	if !strings.HasPrefix(err.Error(), "resume: ") {
		t.Errorf("Decode(%q): error %q lacks the package prefix", data, err)
	}
}

func TestDecodeGarbage(t *testing.T) {
	good, err := Encode(roundTripStates()[3].s)
	if err != nil {
		t.Fatal(err)
	}
	base := marshal(t, valid())
	cases := map[string][]byte{
		"count past int64":   bytes.Replace(base, []byte("11:piece counti10e"), []byte("11:piece counti9223372036854775808e"), 1),
		"count not a number": bytes.Replace(base, []byte("11:piece counti10e"), []byte("11:piece countie"), 1),
		"unsorted duplicate": bytes.Replace(base, []byte("3:dir3:/dl"), []byte("3:dir3:/dl8:strategy1:x"), 1),
		"nil":                nil,
		"empty":              {},
		"text":               []byte("hello"),
		"integer":            []byte("i1e"),
		"string":             []byte("4:spam"),
		"list":               []byte("le"),
		"empty dict":         []byte("de"),
		"open dict":          []byte("d"),
		"trailing x":         append(slices.Clip(good), 'x'),
		"trailing value":     append(slices.Clip(good), "i0e"...),
		"two records":        append(slices.Clip(good), good...),
		"leading space":      append([]byte(" "), good...),
		"duplicate key":      bytes.Replace(good, []byte("3:dir"), []byte("3:dir1:/3:dir"), 1),
		"nul bytes":          make([]byte, 64),
		"huge string":        []byte("d3:dir99999999999:/e"),
		"deep":               []byte(strings.Repeat("l", 10_000) + strings.Repeat("e", 10_000)),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) { checkDecodeFails(t, data) })
	}
	// Every proper prefix of a valid record is refused.
	for n := range len(good) {
		checkDecodeFails(t, good[:n])
	}
}

func TestDecodeTooLarge(t *testing.T) {
	m := valid()
	m["metadata"] = strings.Repeat("/", MaxSize)
	data := marshal(t, m)
	if len(data) <= MaxSize {
		t.Fatalf("record of %d bytes is not over MaxSize", len(data))
	}
	checkDecodeFails(t, data)

	// Just under the bound is fine.
	m["metadata"] = strings.Repeat("/", MaxSize-len(marshal(t, valid()))-20)
	data = marshal(t, m)
	if len(data) > MaxSize {
		t.Fatalf("record of %d bytes is over MaxSize", len(data))
	}
	if _, err := Decode(data); err != nil {
		t.Errorf("Decode of %d bytes: %v", len(data), err)
	}
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestPath(t *testing.T) {
	h := hashOf(0x10)
	got := Path("/state", h)
	want := filepath.Join("/state", "101112131415161718191a1b1c1d1e1f20212223.resume")
	if got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
}

func TestSaveLoad(t *testing.T) {
	for _, tc := range roundTripStates() {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state", "sub")
			if err := Save(dir, tc.s); err != nil {
				t.Fatalf("Save: %v", err)
			}
			for _, d := range []string{dir, filepath.Dir(dir)} {
				fi, err := os.Stat(d)
				if err != nil {
					t.Fatal(err)
				}
				if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: mode %v, want a folder with 0700", d, fi.Mode())
				}
			}
			fi, err := os.Stat(Path(dir, tc.s.InfoHash))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("record mode %v: readable by others", fi.Mode())
			}
			if got, want := listDir(t, dir), []string{filepath.Base(Path(dir, tc.s.InfoHash))}; !slices.Equal(got, want) {
				t.Errorf("folder holds %q, want %q", got, want)
			}
			got, err := Load(dir, tc.s.InfoHash)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if d := diffState(tc.s, got); d != "" {
				t.Errorf("Load(Save(s)) differs: %s", d)
			}
		})
	}
}

func TestSaveOverwrites(t *testing.T) {
	dir := t.TempDir()
	h := hashOf(7)
	var last *State
	for i := range 5 {
		s := &State{
			InfoHash: h,
			Dir:      "/dl",
			Pieces:   pieces(20, i, 2*i, 19),
			Files:    []File{{Selected: i%2 == 0, Stamp: stamp(int64(i), t0.Add(time.Duration(i)))}},
			Strategy: strings.Repeat("s", 100-20*i), // records get shorter
			Saved:    t0.Add(time.Duration(i) * time.Second),
		}
		if err := Save(dir, s); err != nil {
			t.Fatalf("Save %d: %v", i, err)
		}
		got, err := Load(dir, h)
		if err != nil {
			t.Fatalf("Load %d: %v", i, err)
		}
		if d := diffState(s, got); d != "" {
			t.Errorf("Load after Save %d: %s", i, d)
		}
		if names := listDir(t, dir); len(names) != 1 {
			t.Errorf("after Save %d the folder holds %q", i, names)
		}
		last = s
	}
	// A record of another torrent lives next to it.
	other := *last
	other.InfoHash = hashOf(8)
	if err := Save(dir, &other); err != nil {
		t.Fatal(err)
	}
	if names := listDir(t, dir); len(names) != 2 {
		t.Errorf("folder holds %q, want two records", names)
	}
	for _, s := range []*State{last, &other} {
		got, err := Load(dir, s.InfoHash)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffState(s, got); d != "" {
			t.Errorf("Load %s: %s", s.InfoHash, d)
		}
	}
}

func TestSaveConcurrent(t *testing.T) {
	dir := t.TempDir()
	h := hashOf(9)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			s := &State{InfoHash: h, Dir: "/dl", Pieces: pieces(8, i), Saved: t0}
			errs <- Save(dir, s)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Save: %v", err)
		}
	}
	s, err := Load(dir, h)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pieces.Count() != 1 {
		t.Errorf("record holds pieces %v, want the one piece of one Save", members(s.Pieces))
	}
	if names := listDir(t, dir); len(names) != 1 {
		t.Errorf("folder holds %q", names)
	}
}

func TestSaveFails(t *testing.T) {
	s := roundTripStates()[1].s

	t.Run("parent is a file", func(t *testing.T) {
		top := t.TempDir()
		file := filepath.Join(top, "file")
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{file, filepath.Join(file, "state")} {
			if err := Save(dir, s); err == nil {
				t.Errorf("Save(%q): no error", dir)
			}
		}
		if names := listDir(t, top); !slices.Equal(names, []string{"file"}) {
			t.Errorf("folder holds %q", names)
		}
	})

	t.Run("record is a folder", func(t *testing.T) {
		dir := t.TempDir()
		p := Path(dir, s.InfoHash)
		if err := os.MkdirAll(filepath.Join(p, "inside"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := Save(dir, s); err == nil {
			t.Error("Save over a folder: no error")
		}
		if names := listDir(t, dir); !slices.Equal(names, []string{filepath.Base(p)}) {
			t.Errorf("temporary file left behind: folder holds %q", names)
		}
	})

	t.Run("no pieces", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		if err := Save(dir, &State{InfoHash: hashOf(1), Dir: "/dl"}); err == nil {
			t.Error("Save of a state without pieces: no error")
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Save that failed created the folder: %v", err)
		}
	})
}

func TestLoadMissing(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Join(dir, "no such folder")} {
		s, err := Load(d, hashOf(1))
		if !errors.Is(err, fs.ErrNotExist) || s != nil {
			t.Errorf("Load from %s: %v, %v; want an error wrapping fs.ErrNotExist", d, s, err)
		}
	}
}

func TestLoadOtherTorrent(t *testing.T) {
	dir := t.TempDir()
	s := roundTripStates()[3].s
	if err := Save(dir, s); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(Path(dir, s.InfoHash))
	if err != nil {
		t.Fatal(err)
	}
	other := hashOf(0xEE)
	p := Path(dir, other)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, other)
	if err == nil || got != nil {
		t.Fatalf("Load of a record copied from another torrent = %v, %v; want an error", got, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v wraps fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), p) {
		t.Errorf("error %q does not name %s", err, p)
	}
}

func TestLoadCorrupt(t *testing.T) {
	good, err := Encode(roundTripStates()[3].s)
	if err != nil {
		t.Fatal(err)
	}
	h := roundTripStates()[3].s.InfoHash
	for name, data := range map[string][]byte{
		"empty":     {},
		"garbage":   []byte("not a record"),
		"truncated": good[:len(good)/2],
		"trailing":  append(slices.Clip(good), '\n'),
		"too large": append(bytes.Repeat([]byte{' '}, MaxSize), good...),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := Path(dir, h)
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Load(dir, h)
			if err == nil || s != nil {
				t.Fatalf("Load = %v, %v; want an error", s, err)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %v wraps fs.ErrNotExist", err)
			}
		})
	}
}

// planInfo is a torrent of 109 bytes in pieces of 16, whose files do not
// line up with pieces:
//
//	file   bytes     pieces
//	0 a    0-19      0 1
//	1 b    20-29     1
//	2 -    30 (0 B)  -
//	3 c    30-59     1 2 3
//	4 pad  60-63     3
//	5 d    64-103    4 5 6
//	6 e    104-108   6
func planInfo() *metainfo.Info {
	info := &metainfo.Info{
		Name:        "t",
		PieceLength: 16,
		MultiFile:   true,
	}
	var off int64
	for _, f := range []struct {
		name    string
		length  int64
		padding bool
	}{
		{"a", 20, false},
		{"b", 10, false},
		{"empty", 0, false},
		{"c", 30, false},
		{".pad", 4, true},
		{"d", 40, false},
		{"e", 5, false},
	} {
		mf := metainfo.File{Path: []string{"t", f.name}, Length: f.length, Offset: off, Padding: f.padding}
		if f.padding {
			mf.Attr = "p"
		}
		info.Files = append(info.Files, mf)
		off += f.length
	}
	info.Length = off
	n := int((off + info.PieceLength - 1) / info.PieceLength)
	info.Pieces = make([]byte, n*metainfo.HashSize)
	return info
}

// File indexes in planInfo.
const (
	fileA = iota
	fileB
	fileEmpty
	fileC
	filePad
	fileD
	fileE
)

func TestPlanInfo(t *testing.T) {
	info := planInfo()
	if info.NumPieces() != 7 {
		t.Fatalf("%d pieces", info.NumPieces())
	}
	want := [][2]int{{0, 2}, {1, 2}, {1, 1}, {1, 4}, {3, 4}, {4, 7}, {6, 7}}
	for i := range info.Files {
		if b, e := info.FilePieces(i); [2]int{b, e} != want[i] {
			t.Errorf("file %d: pieces [%d, %d), want %v", i, b, e, want[i])
		}
	}
}

// planInput holds Plan's arguments.
type planInput struct {
	s     *State
	dir   string
	sel   []bool
	files []storage.Stamp
	parts storage.Stamp
}

// planBase returns arguments under which nothing changed since the record:
// every file selected, piece 3 not verified.
func planBase(t *testing.T) *planInput {
	dir, err := filepath.Abs("dl")
	if err != nil {
		t.Fatal(err)
	}
	info := planInfo()
	in := &planInput{
		dir:   dir,
		sel:   make([]bool, len(info.Files)),
		files: make([]storage.Stamp, len(info.Files)),
		parts: stamp(48, t0.Add(time.Minute)),
	}
	rec := make([]File, len(info.Files))
	for i, f := range info.Files {
		in.sel[i] = true
		rec[i].Selected = true
		if !f.Padding {
			in.files[i] = stamp(f.Length, t0.Add(time.Duration(i)*time.Second))
		}
		rec[i].Stamp = in.files[i]
	}
	in.s = &State{
		InfoHash: hashOf(1),
		Dir:      dir,
		Pieces:   pieces(7, 0, 1, 2, 4, 5, 6),
		Files:    rec,
		Parts:    in.parts,
		Saved:    t0,
	}
	return in
}

// unselect makes files not selected, both in the record and now.
func unselect(in *planInput, files ...int) {
	for _, f := range files {
		in.sel[f] = false
		in.s.Files[f].Selected = false
		in.files[f] = storage.Stamp{}
		in.s.Files[f].Stamp = storage.Stamp{}
	}
}

func TestPlan(t *testing.T) {
	all := []int{0, 1, 2, 3, 4, 5, 6}
	saved := []int{0, 1, 2, 4, 5, 6}
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		edit           func(in *planInput)
		trusted, check []int
	}{
		{"unchanged", func(in *planInput) {}, saved, nil},
		{"unchanged, sel nil", func(in *planInput) { in.sel = nil }, saved, nil},
		{"unchanged, all pieces", func(in *planInput) { in.s.Pieces = pieces(7, all...) }, all, nil},
		{"unchanged, no pieces", func(in *planInput) { in.s.Pieces = pieces(7) }, nil, nil},
		{"nil state", func(in *planInput) { in.s = nil }, nil, all},

		// The folder.
		{"other folder", func(in *planInput) { in.dir = "/elsewhere" }, nil, all},
		{"parent folder", func(in *planInput) { in.dir = filepath.Dir(in.dir) }, nil, all},
		{"sub folder", func(in *planInput) { in.dir = filepath.Join(in.dir, "t") }, nil, all},
		{"relative folder", func(in *planInput) { in.dir = "dl" }, saved, nil},
		{"relative folder, dot", func(in *planInput) { in.dir = "./dl/" }, saved, nil},
		{"relative folder, dot dot", func(in *planInput) { in.dir = "x/../dl" }, saved, nil},
		{"relative folder from parent", func(in *planInput) {
			in.dir = filepath.Join("..", filepath.Base(cwd), "dl")
		}, saved, nil},
		{"relative other folder", func(in *planInput) { in.dir = "other" }, nil, all},
		{"recorded folder not clean", func(in *planInput) { in.s.Dir += string(filepath.Separator) }, saved, nil},
		{"recorded folder not clean, dot dot", func(in *planInput) {
			in.s.Dir = filepath.Join(in.s.Dir, "t") + string(filepath.Separator) + ".."
		}, saved, nil},

		// Another torrent.
		{"more pieces recorded", func(in *planInput) { in.s.Pieces = pieces(8, 0, 1, 2) }, nil, all},
		{"fewer pieces recorded", func(in *planInput) { in.s.Pieces = pieces(6, 0, 1, 2) }, nil, all},
		{"no pieces in record", func(in *planInput) { in.s.Pieces = pieces(0) }, nil, all},
		{"fewer files recorded", func(in *planInput) { in.s.Files = in.s.Files[:6] }, nil, all},
		{"more files recorded", func(in *planInput) { in.s.Files = append(in.s.Files, File{Selected: true}) }, nil, all},
		{"no files recorded", func(in *planInput) { in.s.Files = nil }, nil, all},
		{"fewer stamps given", func(in *planInput) { in.files = in.files[:6] }, nil, all},
		{"more stamps given", func(in *planInput) { in.files = append(in.files, storage.Stamp{}) }, nil, all},

		// A selected file changed.
		{"a mtime", func(in *planInput) { in.files[fileA].ModTime = in.files[fileA].ModTime.Add(time.Nanosecond) }, []int{2, 4, 5, 6}, []int{0, 1}},
		{"b mtime", func(in *planInput) { in.files[fileB].ModTime = in.files[fileB].ModTime.Add(-time.Second) }, []int{0, 2, 4, 5, 6}, []int{1}},
		{"c mtime", func(in *planInput) { in.files[fileC].ModTime = t0.Add(time.Hour) }, []int{0, 4, 5, 6}, []int{1, 2, 3}},
		{"c racy", func(in *planInput) { in.s.Files[fileC].Racy = true }, saved, []int{3}},
		{"a racy, every piece listed", func(in *planInput) { in.s.Files[fileA].Racy = true }, saved, nil},
		{"c racy and changed", func(in *planInput) {
			in.s.Files[fileC].Racy = true
			in.files[fileC].ModTime = t0.Add(time.Hour)
		}, []int{0, 4, 5, 6}, []int{1, 2, 3}},
		{"d mtime", func(in *planInput) { in.files[fileD].ModTime = time.Time{} }, []int{0, 1, 2}, []int{4, 5, 6}},
		{"e mtime", func(in *planInput) { in.files[fileE].ModTime = in.files[fileE].ModTime.Add(time.Nanosecond) }, []int{0, 1, 2, 4, 5}, []int{6}},
		{"a and e mtime", func(in *planInput) {
			in.files[fileA].ModTime = t0.Add(-time.Hour)
			in.files[fileE].ModTime = t0.Add(-time.Hour)
		}, []int{2, 4, 5}, []int{0, 1, 6}},
		{"mtime in another zone", func(in *planInput) {
			for i := range in.files {
				in.files[i].ModTime = in.files[i].ModTime.In(time.FixedZone("x", 3600))
			}
		}, saved, nil},
		{"d size", func(in *planInput) { in.files[fileD].Size++ }, []int{0, 1, 2}, []int{4, 5, 6}},
		{"c size 0", func(in *planInput) { in.files[fileC].Size = 0 }, []int{0, 4, 5, 6}, []int{1, 2, 3}},
		{"c deleted", func(in *planInput) { in.files[fileC] = storage.Stamp{} }, []int{0, 4, 5, 6}, []int{1, 2, 3}},
		{"e deleted", func(in *planInput) { in.files[fileE] = storage.Stamp{} }, []int{0, 1, 2, 4, 5}, []int{6}},
		{"b created", func(in *planInput) { in.s.Files[fileB].Stamp = storage.Stamp{} }, []int{0, 2, 4, 5, 6}, []int{1}},
		{"b created, size and time zero", func(in *planInput) {
			in.s.Files[fileB].Stamp = storage.Stamp{}
			in.files[fileB] = storage.Stamp{Exists: true}
		}, []int{0, 2, 4, 5, 6}, []int{1}},
		// A file missing as recorded, yet its pieces listed (deleted while
		// the torrent ran): they are checked, not trusted.
		{"missing before and now", func(in *planInput) {
			in.s.Files[fileD].Stamp = storage.Stamp{}
			in.files[fileD] = storage.Stamp{}
		}, []int{0, 1, 2}, []int{4, 5, 6}},
		{"missing before and now, none of its pieces listed", func(in *planInput) {
			in.s.Files[fileD].Stamp = storage.Stamp{}
			in.files[fileD] = storage.Stamp{}
			in.s.Pieces = pieces(7, 0, 1, 2)
		}, []int{0, 1, 2}, nil},
		{"d shorter than its listed pieces, as recorded", func(in *planInput) {
			in.s.Files[fileD].Stamp.Size--
			in.files[fileD].Size--
		}, []int{0, 1, 2, 4, 5}, []int{6}},
		{"every file changed", func(in *planInput) {
			for i := range in.files {
				in.files[i].ModTime = t0.Add(-time.Hour)
			}
		}, nil, all},
		{"all pieces, c changed", func(in *planInput) {
			in.s.Pieces = pieces(7, all...)
			in.files[fileC] = storage.Stamp{}
		}, []int{0, 4, 5, 6}, []int{1, 2, 3}},
		{"parts changed, all selected", func(in *planInput) { in.parts = storage.Stamp{} }, saved, nil},

		// Selection changed.
		{"d now selected", func(in *planInput) { in.s.Files[fileD].Selected = false }, []int{0, 1, 2}, []int{4, 5, 6}},
		{"d now unselected", func(in *planInput) { in.sel[fileD] = false }, []int{0, 1, 2}, []int{4, 5, 6}},
		{"b now unselected", func(in *planInput) { in.sel[fileB] = false }, []int{0, 2, 4, 5, 6}, []int{1}},
		{"sel nil, d was unselected", func(in *planInput) {
			in.sel = nil
			in.s.Files[fileD].Selected = false
		}, []int{0, 1, 2}, []int{4, 5, 6}},
		{"sel nil, b and e were unselected", func(in *planInput) {
			in.sel = nil
			in.s.Files[fileB].Selected = false
			in.s.Files[fileE].Selected = false
		}, []int{0, 2, 4, 5}, []int{1, 6}},

		// Files not selected, before and now: the parts file decides.
		{"b unselected", func(in *planInput) { unselect(in, fileB) }, saved, nil},
		{"b unselected, parts changed", func(in *planInput) {
			unselect(in, fileB)
			in.parts.ModTime = in.parts.ModTime.Add(time.Nanosecond)
		}, []int{0, 2, 4, 5, 6}, []int{1}},
		{"b unselected, parts grew", func(in *planInput) {
			unselect(in, fileB)
			in.parts.Size++
		}, []int{0, 2, 4, 5, 6}, []int{1}},
		{"b unselected, parts deleted", func(in *planInput) {
			unselect(in, fileB)
			in.parts = storage.Stamp{}
		}, []int{0, 2, 4, 5, 6}, []int{1}},
		{"b unselected, parts created", func(in *planInput) {
			unselect(in, fileB)
			in.s.Parts = storage.Stamp{}
		}, []int{0, 2, 4, 5, 6}, []int{1}},
		{"b and d unselected, parts changed", func(in *planInput) {
			unselect(in, fileB, fileD)
			in.parts.Size = 0
		}, []int{0, 2}, []int{1, 4, 5, 6}},
		{"b unselected, its own file changed, parts not", func(in *planInput) {
			unselect(in, fileB)
			in.files[fileB] = stamp(10, t0)
		}, saved, nil},
		{"c unselected, a changed", func(in *planInput) {
			unselect(in, fileC)
			in.files[fileA].Size = 1
		}, []int{2, 4, 5, 6}, []int{0, 1}},
		{"both missing, parts missing", func(in *planInput) {
			unselect(in, fileE)
			in.parts = storage.Stamp{}
			in.s.Parts = storage.Stamp{}
		}, []int{0, 1, 2, 4, 5}, []int{6}}, // piece 6 listed, its bytes nowhere

		// Padding and empty files never force a check.
		{"padding and empty file changed", func(in *planInput) {
			in.files[filePad] = stamp(4, t0)
			in.s.Files[filePad].Stamp = stamp(99, t0)
			in.files[fileEmpty] = storage.Stamp{}
			in.s.Files[fileEmpty].Stamp = stamp(0, t0.Add(time.Hour))
		}, saved, nil},
		{"padding and empty file selection flipped", func(in *planInput) {
			in.sel[filePad] = false
			in.s.Files[fileEmpty].Selected = false
		}, saved, nil},
		{"padding and empty file unselected, parts changed", func(in *planInput) {
			unselect(in, filePad, fileEmpty)
			in.parts = storage.Stamp{}
		}, saved, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := planBase(t)
			tc.edit(in)
			var was []byte
			if in.s != nil {
				was = slices.Clone(in.s.Pieces.Bytes())
			}
			info := planInfo()
			trusted, check := Plan(in.s, info, in.dir, in.sel, in.files, in.parts)
			if trusted.Len() != 7 || check.Len() != 7 {
				t.Fatalf("Plan returned %d and %d pieces, want 7", trusted.Len(), check.Len())
			}
			if got := members(trusted); !slices.Equal(got, tc.trusted) {
				t.Errorf("trusted %v, want %v", got, tc.trusted)
			}
			if got := members(check); !slices.Equal(got, tc.check) {
				t.Errorf("check %v, want %v", got, tc.check)
			}
			for i := range 7 {
				if trusted.Has(i) && check.Has(i) {
					t.Errorf("piece %d both trusted and checked", i)
				}
				if trusted.Has(i) && (in.s == nil || !in.s.Pieces.Has(i)) {
					t.Errorf("piece %d trusted but not in the record", i)
				}
			}
			if in.s != nil && !bytes.Equal(in.s.Pieces.Bytes(), was) {
				t.Error("Plan changed the record's pieces")
			}
		})
	}
}

// TestPlanAfterDecode runs Plan on a record that went through Save and
// Load: unchanged files are trusted, changed ones checked.
func TestPlanAfterDecode(t *testing.T) {
	in := planBase(t)
	state := t.TempDir()
	if err := Save(state, in.s); err != nil {
		t.Fatal(err)
	}
	s, err := Load(state, in.s.InfoHash)
	if err != nil {
		t.Fatal(err)
	}
	trusted, check := Plan(s, planInfo(), in.dir, in.sel, in.files, in.parts)
	if got, want := members(trusted), []int{0, 1, 2, 4, 5, 6}; !slices.Equal(got, want) || check.Count() != 0 {
		t.Errorf("unchanged files after Load: trusted %v, check %v; want %v and none", got, members(check), want)
	}
	in.files[fileD].Size++
	trusted, check = Plan(s, planInfo(), in.dir, in.sel, in.files, in.parts)
	if got, want := members(check), []int{4, 5, 6}; !slices.Equal(got, want) || !slices.Equal(members(trusted), []int{0, 1, 2}) {
		t.Errorf("d changed after Load: trusted %v, check %v; want check %v", members(trusted), got, want)
	}
}

// TestPlanNoPieces covers a torrent whose only file is empty: no pieces at
// all.
func TestPlanNoPieces(t *testing.T) {
	info := &metainfo.Info{Name: "e", PieceLength: 16, Files: []metainfo.File{{Path: []string{"e"}}}}
	dir, err := filepath.Abs("dl")
	if err != nil {
		t.Fatal(err)
	}
	s := &State{Dir: dir, Pieces: bitfield.New(0), Files: []File{{Selected: true}}}
	for _, s := range []*State{nil, s} {
		trusted, check := Plan(s, info, dir, nil, []storage.Stamp{{}}, storage.Stamp{})
		if trusted.Len() != 0 || check.Len() != 0 {
			t.Errorf("Plan: %d and %d pieces, want none", trusted.Len(), check.Len())
		}
	}
}
