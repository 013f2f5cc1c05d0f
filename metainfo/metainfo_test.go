package metainfo_test

// Tests of Parse, Load, LoadFile, Marshal, Trackers and Magnet. The
// helpers here (prefixed mi) build torrents by bencoding map[string]any,
// so any shape can be injected; info_test.go, create_test.go and
// parse_fuzz_test.go use them too.

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// miEnc bencodes v, failing the test if it cannot.
func miEnc(t testing.TB, v any) []byte {
	t.Helper()
	b, err := bencode.Marshal(v)
	if err != nil {
		t.Fatalf("bencode.Marshal(%#v): %v", v, err)
	}
	return b
}

// miPieces returns n distinct 20-byte piece hashes, concatenated.
func miPieces(n int) string {
	var b strings.Builder
	for i := range n {
		h := sha1.Sum([]byte(fmt.Sprint("piece ", i)))
		b.Write(h[:])
	}
	return b.String()
}

// miNumPieces is the number of pieces that hold total bytes, or 1 for
// sizes that make an invalid torrent or too many pieces for a test.
func miNumPieces(total, pl int64) int {
	if total <= 0 || total > metainfo.MaxTotalLength || pl <= 0 || (total+pl-1)/pl > 1<<16 {
		return 1
	}
	return int((total + pl - 1) / pl)
}

// miSingle returns the info dictionary of a single-file torrent.
func miSingle(name string, length, pl int64) map[string]any {
	return map[string]any{
		"name":         name,
		"length":       length,
		"piece length": pl,
		"pieces":       miPieces(miNumPieces(length, pl)),
	}
}

// miFile returns one entry of a "files" list.
func miFile(length int64, path ...string) map[string]any {
	return map[string]any{"length": length, "path": path}
}

// miMulti returns the info dictionary of a multi-file torrent, with as
// many piece hashes as the files' lengths need.
func miMulti(name string, pl int64, files ...map[string]any) map[string]any {
	var total int64
	for _, f := range files {
		if l, ok := f["length"].(int64); ok {
			total += l
		}
	}
	return map[string]any{
		"name":         name,
		"piece length": pl,
		"pieces":       miPieces(miNumPieces(total, pl)),
		"files":        files,
	}
}

// miSet returns a shallow copy of m with the given keys set; a nil value
// deletes the key.
func miSet(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

// miTorrent bencodes a torrent with the given info value and top-level keys.
func miTorrent(t testing.TB, info any, kv ...any) []byte {
	t.Helper()
	return miEnc(t, miSet(map[string]any{"info": info}, kv...))
}

// miParse parses data, turning a panic into an error. (A hang is caught by
// the test timeout; speed belongs in benchmarks, not in unit tests.)
func miParse(data []byte) (mi *metainfo.MetaInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			mi, err = nil, fmt.Errorf("PANIC: %v", p)
		}
	}()
	return metainfo.Parse(data)
}

// miMustParse parses data that must be a valid torrent.
func miMustParse(t testing.TB, data []byte) *metainfo.MetaInfo {
	t.Helper()
	mi, err := miParse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if mi == nil {
		t.Fatal("Parse returned nil, nil")
	}
	return mi
}

// miParseErr parses data that must be refused with an error containing want.
func miParseErr(t *testing.T, data []byte, want string) error {
	t.Helper()
	mi, err := miParse(data)
	switch {
	case err == nil:
		t.Errorf("Parse succeeded, want an error containing %q; got %+v", want, mi.Info)
	case strings.HasPrefix(err.Error(), "PANIC"):
		t.Errorf("Parse panicked: %v", err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("Parse error %q does not contain %q", err, want)
	case mi != nil:
		t.Errorf("Parse returned both %+v and %v", mi, err)
	}
	return err
}

// miValidComponent reports whether c is safe as one path component.
func miValidComponent(c string) bool {
	switch {
	case c == "", c == ".", c == "..", len(c) > 255:
		return false
	case strings.ContainsAny(c, "/\\\x00"):
		return false
	case len(c) >= 2 && c[1] == ':' && (c[0]|0x20 >= 'a' && c[0]|0x20 <= 'z'):
		return false
	}
	return true
}

// miCheckInside checks that every file of mi, joined under a download
// folder, stays strictly inside it.
func miCheckInside(t testing.TB, mi *metainfo.MetaInfo) {
	t.Helper()
	dir := filepath.Join(string(filepath.Separator)+"downloads", "into")
	for i, f := range mi.Info.Files {
		p := filepath.Join(append([]string{dir}, f.Path...)...)
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." || filepath.IsAbs(rel) ||
			slices.Contains(strings.Split(rel, string(filepath.Separator)), "..") {
			t.Errorf("file %d %q joined under %s gives %s (rel %q, %v): outside the folder", i, f.Path, dir, p, rel, err)
		}
	}
}

// miCheckInfo checks the invariants Parse promises for an accepted torrent.
func miCheckInfo(t testing.TB, mi *metainfo.MetaInfo) {
	t.Helper()
	info := &mi.Info
	pl := info.PieceLength
	if pl < metainfo.MinPieceLength || pl > metainfo.MaxPieceLength || pl&(pl-1) != 0 {
		t.Errorf("PieceLength %d out of bounds or not a power of two", pl)
	}
	if info.Length <= 0 || info.Length > metainfo.MaxTotalLength {
		t.Errorf("Length %d out of (0, %d]", info.Length, int64(metainfo.MaxTotalLength))
	}
	if len(info.Pieces)%metainfo.HashSize != 0 || info.NumPieces()*metainfo.HashSize != len(info.Pieces) {
		t.Errorf("NumPieces %d, len(Pieces) %d", info.NumPieces(), len(info.Pieces))
	}
	if pl > 0 && info.Length > 0 && int64(info.NumPieces()) != (info.Length+pl-1)/pl {
		t.Errorf("NumPieces %d for %d bytes in pieces of %d", info.NumPieces(), info.Length, pl)
	}
	if n := info.NumPieces(); n > 0 {
		if last := info.PieceSize(n - 1); last <= 0 || last > pl {
			t.Errorf("last piece size %d out of (0, %d]", last, pl)
		}
	}
	if mi.InfoHash != sha1.Sum(mi.InfoBytes) {
		t.Errorf("InfoHash %v is not the SHA-1 of InfoBytes", mi.InfoHash)
	}
	if len(info.Files) == 0 {
		t.Fatalf("no files")
	}
	if !info.MultiFile && (len(info.Files) != 1 || !slices.Equal(info.Files[0].Path, []string{info.Name})) {
		t.Errorf("single-file torrent %q has files %+v", info.Name, info.Files)
	}
	var off int64
	for i, f := range info.Files {
		if f.Offset != off || f.Length < 0 || f.Length > info.Length-off {
			t.Errorf("file %d %q: offset %d length %d, want offset %d and at most %d bytes", i, f.Path, f.Offset, f.Length, off, info.Length-off)
			return
		}
		off += f.Length
		if len(f.Path) == 0 || f.Path[0] != info.Name || (info.MultiFile && len(f.Path) < 2) {
			t.Errorf("file %d: path %q does not start with the name %q", i, f.Path, info.Name)
		}
		for _, c := range f.Path {
			if !miValidComponent(c) {
				t.Errorf("file %d: path %q has unsafe component %q", i, f.Path, c)
			}
		}
		b, e := info.FilePieces(i)
		if b < 0 || b > e || e > info.NumPieces() || (f.Length == 0) != (b == e) {
			t.Errorf("file %d (%d bytes at %d): FilePieces [%d, %d) of %d pieces", i, f.Length, f.Offset, b, e, info.NumPieces())
		}
	}
	if off != info.Length {
		t.Errorf("files add up to %d bytes, Length is %d", off, info.Length)
	}
	miCheckInside(t, mi)
}

// miRoundTrip checks that Marshal then Parse gives mi back, with the info
// dictionary byte for byte.
func miRoundTrip(t testing.TB, mi *metainfo.MetaInfo) {
	t.Helper()
	b, err := mi.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var buf bytes.Buffer
	if err := mi.Encode(&buf); err != nil || !bytes.Equal(buf.Bytes(), b) {
		t.Errorf("Encode gives %d bytes (%v), Marshal %d", buf.Len(), err, len(b))
	}
	mi2, err := metainfo.Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v; Marshal gave %q", err, b)
	}
	if !bytes.Equal(mi2.InfoBytes, mi.InfoBytes) || mi2.InfoHash != mi.InfoHash {
		t.Errorf("info dictionary changed by Marshal: %q became %q", mi.InfoBytes, mi2.InfoBytes)
	}
	if !reflect.DeepEqual(mi2, mi) {
		t.Errorf("Parse(Marshal()) differs:\n got %+v\nwant %+v", mi2, mi)
	}
}

type miValidCase struct {
	name  string
	data  []byte
	check func(t *testing.T, mi *metainfo.MetaInfo)
}

// miValidCases are well-formed torrents and what Parse must make of them.
func miValidCases(t testing.TB) []miValidCase {
	single := miSingle("file.txt", 5000, 1024)
	multi := miMulti("dir", 1024,
		miFile(100, "a.txt"),
		miFile(2000, "sub", "b.bin"),
		miFile(0, "empty"),
		miFile(5, "sub", "deeper", "c"),
	)
	// An info dictionary whose keys are not in sorted order: it must be
	// hashed as it is, never re-encoded.
	unsorted := []byte("d6:pieces20:" + miPieces(1) + "12:piece lengthi1024e4:name3:odd6:lengthi10ee")
	// The same with a top level that is unsorted too.
	unsortedTop := append(append([]byte("d7:comment3:top4:info"), unsorted...), "8:announce15:http://t.test/ae"...)
	// Pure bencode with an unknown nested structure everywhere.
	unknown := miSet(multi,
		"zzz", map[string]any{"x": []any{int64(1), "y"}},
		"md5sum", "ignored",
		"files", []map[string]any{
			miSet(miFile(100, "a.txt"), "md5sum", "abc", "sha1", []any{"x"}),
			miFile(2000, "sub", "b.bin"),
			miFile(0, "empty"),
			miFile(5, "sub", "deeper", "c"),
		})

	return []miValidCase{
		{
			name: "single-file",
			data: miTorrent(t, single),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				info := mi.Info
				if info.Name != "file.txt" || info.PieceLength != 1024 || info.MultiFile || info.Hybrid || info.Private || info.Source != "" {
					t.Errorf("Info = %+v", info)
				}
				want := []metainfo.File{{Path: []string{"file.txt"}, Length: 5000}}
				if !reflect.DeepEqual(info.Files, want) || info.Length != 5000 {
					t.Errorf("Files = %+v, Length %d; want %+v, 5000", info.Files, info.Length, want)
				}
				if info.NumPieces() != 5 || string(info.Pieces) != miPieces(5) {
					t.Errorf("NumPieces = %d, Pieces differ: %v", info.NumPieces(), string(info.Pieces) != miPieces(5))
				}
				infoBytes := miEnc(t, single)
				if !bytes.Equal(mi.InfoBytes, infoBytes) || mi.InfoHash != sha1.Sum(infoBytes) {
					t.Errorf("InfoBytes/InfoHash not those of the info dictionary")
				}
				if mi.Announce != "" || mi.AnnounceList != nil || mi.URLList != nil || mi.Trackers() != nil ||
					mi.Comment != "" || mi.CreatedBy != "" || !mi.CreationDate.IsZero() {
					t.Errorf("optional fields set: %+v", mi)
				}
			},
		},
		{
			name: "multi-file",
			data: miTorrent(t, multi),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				want := []metainfo.File{
					{Path: []string{"dir", "a.txt"}, Length: 100, Offset: 0},
					{Path: []string{"dir", "sub", "b.bin"}, Length: 2000, Offset: 100},
					{Path: []string{"dir", "empty"}, Length: 0, Offset: 2100},
					{Path: []string{"dir", "sub", "deeper", "c"}, Length: 5, Offset: 2100},
				}
				if !reflect.DeepEqual(mi.Info.Files, want) {
					t.Errorf("Files =\n%+v\nwant\n%+v", mi.Info.Files, want)
				}
				if !mi.Info.MultiFile || mi.Info.Length != 2105 || mi.Info.Name != "dir" || mi.Info.NumPieces() != 3 {
					t.Errorf("Info = %+v", mi.Info)
				}
			},
		},
		{
			name: "one file in a multi-file torrent",
			data: miTorrent(t, miMulti("d", 1024, miFile(1, "x"))),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if !mi.Info.MultiFile || !slices.Equal(mi.Info.Files[0].Path, []string{"d", "x"}) {
					t.Errorf("Info = %+v", mi.Info)
				}
			},
		},
		{
			name: "announce only",
			data: miTorrent(t, single, "announce", "http://tracker.test/announce"),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Announce != "http://tracker.test/announce" || mi.AnnounceList != nil {
					t.Errorf("Announce %q, AnnounceList %q", mi.Announce, mi.AnnounceList)
				}
				if got, want := mi.Trackers(), [][]string{{"http://tracker.test/announce"}}; !reflect.DeepEqual(got, want) {
					t.Errorf("Trackers() = %q, want %q", got, want)
				}
			},
		},
		{
			name: "announce-list tiers",
			data: miTorrent(t, single,
				"announce", "http://primary.test/announce",
				"announce-list", []any{
					[]any{},
					[]any{"", "http://t1.test/a", "not a url", "udp://t2.test:6969"},
					[]any{""},
					"not a tier",
					[]any{int64(42), []any{"http://nested.test/a"}},
					[]any{"https://t3.test/a"},
				}),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				want := [][]string{{"http://t1.test/a", "udp://t2.test:6969"}, {"https://t3.test/a"}}
				if !reflect.DeepEqual(mi.AnnounceList, want) {
					t.Errorf("AnnounceList = %q, want %q", mi.AnnounceList, want)
				}
				if mi.Announce != "http://primary.test/announce" {
					t.Errorf("Announce = %q", mi.Announce)
				}
				if got := mi.Trackers(); !reflect.DeepEqual(got, want) {
					t.Errorf("Trackers() = %q, want the announce-list %q", got, want)
				}
			},
		},
		{
			name: "announce-list with no usable tracker falls back to announce",
			data: miTorrent(t, single,
				"announce", "udp://only.test:80",
				"announce-list", []any{[]any{""}, []any{"nope"}}),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.AnnounceList != nil {
					t.Errorf("AnnounceList = %q, want none", mi.AnnounceList)
				}
				if got, want := mi.Trackers(), [][]string{{"udp://only.test:80"}}; !reflect.DeepEqual(got, want) {
					t.Errorf("Trackers() = %q, want %q", got, want)
				}
			},
		},
		{
			name: "invalid announce dropped",
			data: miTorrent(t, single, "announce", "not a url"),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Announce != "" || mi.Trackers() != nil {
					t.Errorf("Announce %q, Trackers %q", mi.Announce, mi.Trackers())
				}
			},
		},
		{
			name: "url-list as a string",
			data: miTorrent(t, single, "url-list", "http://seed.test/files/"),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if want := []string{"http://seed.test/files/"}; !slices.Equal(mi.URLList, want) {
					t.Errorf("URLList = %q, want %q", mi.URLList, want)
				}
			},
		},
		{
			name: "url-list as a list",
			data: miTorrent(t, single, "url-list", []any{
				"http://s1.test/", "ftp://s2.test/", int64(3), "https://s3.test/p", "nohost", "", []any{"http://x.test/"},
			}),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if want := []string{"http://s1.test/", "https://s3.test/p"}; !slices.Equal(mi.URLList, want) {
					t.Errorf("URLList = %q, want %q", mi.URLList, want)
				}
			},
		},
		{
			name: "comment",
			data: miTorrent(t, single, "comment", "hello"),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Comment != "hello" {
					t.Errorf("Comment = %q", mi.Comment)
				}
			},
		},
		{
			name: "comment.utf-8 preferred",
			data: miTorrent(t, single, "comment", "h?llo", "comment.utf-8", "héllo"),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Comment != "héllo" {
					t.Errorf("Comment = %q", mi.Comment)
				}
			},
		},
		{
			name: "created by and creation date",
			data: miTorrent(t, single, "created by", "mktorrent 1.1", "creation date", int64(1700000000)),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.CreatedBy != "mktorrent 1.1" {
					t.Errorf("CreatedBy = %q", mi.CreatedBy)
				}
				want := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
				if !mi.CreationDate.Equal(want) || mi.CreationDate.Location() != time.UTC || mi.CreationDate != want {
					t.Errorf("CreationDate = %v (%v), want %v in UTC", mi.CreationDate, mi.CreationDate.Location(), want)
				}
			},
		},
		{
			name: "creation date zero or negative is no date",
			data: miTorrent(t, single, "creation date", int64(-5)),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if !mi.CreationDate.IsZero() {
					t.Errorf("CreationDate = %v", mi.CreationDate)
				}
			},
		},
		{
			name: "private 1",
			data: miTorrent(t, miSet(single, "private", int64(1))),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if !mi.Info.Private {
					t.Error("Private = false")
				}
			},
		},
		{
			name: "private 0",
			data: miTorrent(t, miSet(single, "private", int64(0))),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Info.Private {
					t.Error("Private = true")
				}
			},
		},
		{
			name: "source",
			data: miTorrent(t, miSet(single, "source", "TRK")),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Info.Source != "TRK" {
					t.Errorf("Source = %q", mi.Info.Source)
				}
			},
		},
		{
			name: "name.utf-8 and path.utf-8 preferred",
			data: miTorrent(t, miSet(miMulti("n?me", 1024,
				miSet(miFile(10, "p?th", "f?le"), "path.utf-8", []string{"päth", "fïle"}),
				miSet(miFile(10, "other"), "path.utf-8", 7), // wrong type: ignored
				miSet(miFile(10, "third"), "path.utf-8", []string{}),
			), "name.utf-8", "nāme")),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Info.Name != "nāme" {
					t.Errorf("Name = %q", mi.Info.Name)
				}
				want := [][]string{{"nāme", "päth", "fïle"}, {"nāme", "other"}, {"nāme", "third"}}
				for i, f := range mi.Info.Files {
					if !slices.Equal(f.Path, want[i]) {
						t.Errorf("file %d: Path %q, want %q", i, f.Path, want[i])
					}
				}
			},
		},
		{
			name: "hybrid v1+v2",
			data: miTorrent(t, miSet(multi,
				"meta version", int64(2),
				"file tree", map[string]any{"a.txt": map[string]any{"": map[string]any{"length": int64(100), "pieces root": strings.Repeat("r", 32)}}})),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if !mi.Info.Hybrid || !mi.Info.MultiFile || len(mi.Info.Files) != 4 {
					t.Errorf("Info = %+v", mi.Info)
				}
			},
		},
		{
			name: "meta version 2 with pieces and no file tree",
			data: miTorrent(t, miSet(single, "meta version", int64(2))),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if !mi.Info.Hybrid {
					t.Error("Hybrid = false")
				}
			},
		},
		{
			name: "meta version 1",
			data: miTorrent(t, miSet(single, "meta version", int64(1))),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Info.Hybrid {
					t.Error("Hybrid = true")
				}
			},
		},
		{
			name: "unknown keys ignored",
			data: miTorrent(t, unknown, "zzz unknown", []any{"x", map[string]any{"y": int64(1)}}, "a", int64(5)),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if len(mi.Info.Files) != 4 || mi.Info.Length != 2105 {
					t.Errorf("Info = %+v", mi.Info)
				}
			},
		},
		{
			name: "wrong-typed optional fields ignored",
			data: miTorrent(t, single,
				"announce", int64(7),
				"announce-list", "http://not.a.list/",
				"url-list", int64(3),
				"comment", int64(5),
				"comment.utf-8", []any{"x"},
				"created by", map[string]any{},
				"creation date", "yesterday"),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Announce != "" || mi.AnnounceList != nil || mi.URLList != nil || mi.Comment != "" ||
					mi.CreatedBy != "" || !mi.CreationDate.IsZero() {
					t.Errorf("wrong-typed fields kept: %+v", mi)
				}
			},
		},
		{
			name: "wrong-typed comment.utf-8 and name.utf-8 fall back",
			data: miTorrent(t, miSet(single, "name.utf-8", int64(2)), "comment", "plain", "comment.utf-8", int64(1)),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Comment != "plain" || mi.Info.Name != "file.txt" {
					t.Errorf("Comment = %q, Name = %q", mi.Comment, mi.Info.Name)
				}
			},
		},
		{
			name: "unsorted info keys hashed as is",
			data: append(append([]byte("d4:info"), unsorted...), 'e'),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if !bytes.Equal(mi.InfoBytes, unsorted) {
					t.Errorf("InfoBytes = %q, want %q", mi.InfoBytes, unsorted)
				}
				if mi.InfoHash != sha1.Sum(unsorted) {
					t.Errorf("InfoHash = %v, want the SHA-1 of the bytes in the file", mi.InfoHash)
				}
				canonical := miEnc(t, miSingle("odd", 10, 1024))
				if mi.InfoHash == sha1.Sum(canonical) {
					t.Error("InfoHash is that of the re-encoded dictionary")
				}
				if mi.Info.Name != "odd" || mi.Info.Length != 10 {
					t.Errorf("Info = %+v", mi.Info)
				}
			},
		},
		{
			name: "unsorted top level",
			data: unsortedTop,
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.InfoHash != sha1.Sum(unsorted) || mi.Comment != "top" || mi.Announce != "http://t.test/a" {
					t.Errorf("MetaInfo = %+v", mi)
				}
			},
		},
		{
			name: "padding files",
			data: miTorrent(t, miMulti("pad", 1024,
				miFile(1000, "a"),
				miSet(miFile(24, ".pad", "24"), "attr", "p"),
				miFile(1024, "b"),
				miFile(10, "_____padding_file_0_if you see this file, please update to BitComet 0.85 or above____"),
				miFile(14, ".____padding_file", "0"),
				miSet(miFile(1000, ".pad", "24"), "attr", "p"), // same path as another padding file
				miSet(miFile(3, "x"), "attr", "xh"),
			)),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				want := []bool{false, true, false, true, true, true, false}
				for i, f := range mi.Info.Files {
					if f.Padding != want[i] {
						t.Errorf("file %d %q attr %q: Padding = %v, want %v", i, f.Path, f.Attr, f.Padding, want[i])
					}
				}
				if a := mi.Info.Files[6].Attr; a != "xh" {
					t.Errorf("Attr = %q", a)
				}
				if mi.Info.Files[2].Offset != 1024 {
					t.Errorf("file after padding at %d, want 1024", mi.Info.Files[2].Offset)
				}
			},
		},
		{
			name: "sample torrent from the repository",
			data: func() []byte {
				b, err := os.ReadFile(filepath.Join("..", "testdata", "sample.torrent"))
				if err != nil {
					t.Fatalf("read sample: %v", err)
				}
				return b
			}(),
			check: func(t *testing.T, mi *metainfo.MetaInfo) {
				if mi.Info.Name == "" || len(mi.Trackers()) == 0 {
					t.Errorf("sample: %+v", mi)
				}
			},
		},
	}
}

func TestParseValid(t *testing.T) {
	for _, tc := range miValidCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			mi := miMustParse(t, tc.data)
			miCheckInfo(t, mi)
			tc.check(t, mi)
			miRoundTrip(t, mi)
		})
	}
}

func TestLoadAndLoadFile(t *testing.T) {
	data := miTorrent(t, miSingle("f", 3000, 1024), "announce", "http://t.test/a")
	want := miMustParse(t, data)

	mi, err := metainfo.Load(bytes.NewReader(data))
	if err != nil || !reflect.DeepEqual(mi, want) {
		t.Errorf("Load = %+v, %v; want %+v", mi, err, want)
	}

	path := filepath.Join(t.TempDir(), "x.torrent")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err = metainfo.LoadFile(path)
	if err != nil || !reflect.DeepEqual(mi, want) {
		t.Errorf("LoadFile = %+v, %v; want %+v", mi, err, want)
	}

	// A bad file names itself in the error.
	bad := filepath.Join(t.TempDir(), "bad.torrent")
	if err := os.WriteFile(bad, []byte("le"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := metainfo.LoadFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("LoadFile(bad) = %v, want an error naming %s", err, bad)
	}
}

func TestLoadFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "does-not-exist.torrent")
	mi, err := metainfo.LoadFile(path)
	if err == nil || mi != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFile(missing) = %v, %v; want fs.ErrNotExist", mi, err)
	}
}

// miEndless generates bytes forever (whatever the buffer holds), counting
// what it hands out.
type miEndless struct{ n int64 }

func (r *miEndless) Read(p []byte) (int, error) {
	r.n += int64(len(p))
	return len(p), nil
}

func TestLoadTooLarge(t *testing.T) {
	r := &miEndless{}
	mi, err := metainfo.Load(r)
	if err == nil || mi != nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(endless) = %v, %v; want a size error", mi, err)
	}
	if r.n != metainfo.MaxSize+1 {
		t.Errorf("Load read %d bytes, want it to stop at MaxSize+1 = %d", r.n, metainfo.MaxSize+1)
	}
}

// miErrReader fails after handing out some bytes.
type miErrReader struct{ left int }

var errMiRead = errors.New("disk on fire")

func (r *miErrReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, errMiRead
	}
	n := min(len(p), r.left)
	for i := range n {
		p[i] = 'd'
	}
	r.left -= n
	return n, nil
}

func TestLoadReadError(t *testing.T) {
	mi, err := metainfo.Load(&miErrReader{left: 10})
	if err == nil || mi != nil || !errors.Is(err, errMiRead) {
		t.Errorf("Load = %v, %v; want an error wrapping %v", mi, err, errMiRead)
	}
}

// TestParseGarbage feeds Parse input that is not a usable torrent at the
// top level; info_test.go covers bad info dictionaries.
func TestParseGarbage(t *testing.T) {
	info := miSingle("f", 100, 1024)
	deep := "d4:info" + "d1:x" + strings.Repeat("l", 100000) + strings.Repeat("e", 100000) + "e" + "e"
	deepTop := strings.Repeat("l", 100000) + strings.Repeat("e", 100000)
	claim1G := []byte("d4:infod6:pieces1073741824:")
	claim1G = append(claim1G, bytes.Repeat([]byte("x"), 100-len(claim1G))...)

	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty file", nil, "empty input"},
		{"empty slice", []byte{}, "empty input"},
		{"not bencode", []byte("hello, world"), "invalid byte"},
		{"HTML page", []byte("<!DOCTYPE html><html></html>"), "invalid byte"},
		{"top level a list", miEnc(t, []any{map[string]any{"info": info}}), "not a dictionary"},
		{"top level an integer", []byte("i42e"), "not a dictionary"},
		{"top level a string", []byte("4:spam"), "not a dictionary"},
		{"truncated", miTorrent(t, info)[:40], "end of input"},
		{"trailing data", append(miTorrent(t, info), "de"...), "trailing data"},
		{"missing info", miEnc(t, map[string]any{"announce": "http://t.test/a"}), "no info"},
		{"empty dictionary", []byte("de"), "no info"},
		{"info a list", miTorrent(t, []any{info}), "info is not a dictionary"},
		{"info a string", miTorrent(t, "info"), "info is not a dictionary"},
		{"info an integer", miTorrent(t, int64(1)), "info is not a dictionary"},
		{"duplicate info key", []byte("d4:info" + string(miEnc(t, info)) + "4:info" + string(miEnc(t, info)) + "e"), "duplicate"},
		{"999999999999-length string claim", []byte("d4:infod4:name999999999999:xee"), "past end"},
		{"string length overflowing int64", []byte("d4:infod4:name99999999999999999999999:xee"), "string length overflows"},
		{"1 GiB string claim in a 100-byte file", claim1G, "past end"},
		{"integer overflow", []byte("d4:infod12:piece lengthi99999999999999999999999eee"), "overflows"},
		{"100000-deep nesting inside info", []byte(deep), "depth"},
		{"100000-deep list as the top level", []byte(deepTop), "not a dictionary"},
		{"100000-deep nesting beside info", []byte("d4:info" + string(miEnc(t, info)) + "1:z" + deepTop + "e"), "depth"},
		{"non-string key", []byte("di1ei2ee"), "key must be a string"},
		{"leading zero", []byte("d4:infod6:lengthi01eee"), "leading zero"},
		{"negative zero", []byte("d4:infod6:lengthi-0eee"), "negative zero"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			miParseErr(t, tc.data, tc.want)
		})
	}
}

// TestParseHugeStringClaimMemory checks that a string claiming 1 GiB in a
// 100-byte file is refused without allocating for it.
func TestParseHugeStringClaimMemory(t *testing.T) {
	data := []byte("d4:infod6:pieces1073741824:")
	data = append(data, bytes.Repeat([]byte("x"), 100-len(data))...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := metainfo.Parse(data)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("Parse allocated %d bytes for a 100-byte input", d)
	}
}

func TestMarshalNoInfo(t *testing.T) {
	var mi metainfo.MetaInfo
	if b, err := mi.Marshal(); err == nil {
		t.Errorf("Marshal of an empty MetaInfo = %q, want an error", b)
	}
	if err := mi.Encode(io.Discard); err == nil {
		t.Error("Encode of an empty MetaInfo succeeded")
	}
	// InfoBytes that are not one bencode value are refused, not written.
	for _, bad := range []string{"garbage", "d4:name", "dee", "de5:extra"} {
		mi := metainfo.MetaInfo{InfoBytes: []byte(bad)}
		if b, err := mi.Marshal(); err == nil {
			t.Errorf("Marshal with InfoBytes %q = %q, want an error", bad, b)
		}
	}
}

func TestMarshalFields(t *testing.T) {
	data := miTorrent(t, miSingle("f", 10, 1024),
		"announce", "http://a.test/",
		"announce-list", []any{[]any{"http://a.test/", "http://b.test/"}},
		"url-list", "http://seed.test/",
		"comment.utf-8", "c",
		"created by", "me",
		"creation date", int64(1234567890),
		"private stuff", "dropped")
	mi := miMustParse(t, data)
	b, err := mi.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := bencode.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"announce":      "http://a.test/",
		"announce-list": []any{[]any{"http://a.test/", "http://b.test/"}},
		"url-list":      []any{"http://seed.test/"},
		"comment":       "c",
		"created by":    "me",
		"creation date": int64(1234567890),
		"info":          top["info"],
	}
	if !reflect.DeepEqual(top, want) {
		t.Errorf("Marshal wrote %v, want %v", top, want)
	}
	// The output is canonical bencode: a strict decoder accepts it.
	if err := (&bencode.Decoder{Strict: true}).Valid(b); err != nil {
		t.Errorf("Marshal output not canonical: %v", err)
	}
}

func TestMetaInfoMagnet(t *testing.T) {
	single := miSingle("file.txt", 5000, 1024)
	cases := []struct {
		name     string
		data     []byte
		trackers []string
		webSeeds []string
	}{
		{"no trackers", miTorrent(t, single), nil, nil},
		{"announce only", miTorrent(t, single, "announce", "http://a.test/ann"), []string{"http://a.test/ann"}, nil},
		{
			"announce-list deduped in tier order, announce ignored",
			miTorrent(t, single,
				"announce", "http://ignored.test/",
				"announce-list", []any{
					[]any{"http://t1.test/", "udp://t2.test:80"},
					[]any{"http://t3.test/", "http://t1.test/"},
					[]any{"udp://t2.test:80"},
				},
				"url-list", []any{"http://s1.test/", "https://s2.test/"}),
			[]string{"http://t1.test/", "udp://t2.test:80", "http://t3.test/"},
			[]string{"http://s1.test/", "https://s2.test/"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mi := miMustParse(t, tc.data)
			m := mi.Magnet()
			if m.InfoHash != mi.InfoHash || m.DisplayName != "file.txt" {
				t.Errorf("Magnet InfoHash %v DisplayName %q, want %v %q", m.InfoHash, m.DisplayName, mi.InfoHash, "file.txt")
			}
			if !slices.Equal(m.Trackers, tc.trackers) {
				t.Errorf("Trackers = %q, want %q", m.Trackers, tc.trackers)
			}
			if !slices.Equal(m.WebSeeds, tc.webSeeds) {
				t.Errorf("WebSeeds = %q, want %q", m.WebSeeds, tc.webSeeds)
			}
			if len(m.Peers) != 0 || len(m.SelectOnly) != 0 {
				t.Errorf("Peers %q SelectOnly %v, want none", m.Peers, m.SelectOnly)
			}
			// The magnet must not share the MetaInfo's slices.
			if len(m.WebSeeds) > 0 {
				m.WebSeeds[0] = "changed"
				if mi.URLList[0] == "changed" {
					t.Error("Magnet().WebSeeds aliases URLList")
				}
			}
		})
	}
}
