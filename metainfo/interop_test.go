package metainfo_test

// Cross-implementation tests: torrents we create are read by Transmission
// and libtorrent, and torrents mktorrent, Transmission and libtorrent
// create are read by us, every field compared with what was on disk or
// what the other implementation reports. TestFixtures needs no tool.
//
// What the other tools do, found by running them (Debian 12):
//   - mktorrent 1.1 keeps every regular file, hidden and empty ones
//     included, sorted by strcmp of the path: the same files and order as
//     metainfo.Create, so their info dictionaries are byte-identical.
//     It accepts piece lengths 2^15 to 2^28 only (-l 15..28).
//   - transmission-create 3.00 leaves out empty files and files or
//     folders whose name starts with ".", and sorts paths ignoring ASCII
//     case ("a.bin" before "B.bin"), so for such folders only the piece
//     hashes of the files it kept can be compared with ours. It always
//     writes "private" in the info dictionary, 0 on a public torrent (we,
//     mktorrent and libtorrent leave it out), and refuses -p without -t.
//   - transmission-show 3.00 cannot parse any torrent with a v2 "file
//     tree" (it rejects the empty dictionary key BEP 52 uses), so hybrid
//     torrents are checked against libtorrent only.
//   - libtorrent 2.0 makes hybrid v1+v2 torrents by default, with BEP 47
//     padding files ("attr": "p", path ".pad/N") after every file that
//     does not end on a piece boundary, the last one included; v1_only
//     torrents are padded the same way. For a hybrid, torrent_info's
//     info_hash() is the truncated v2 hash, not the v1 one:
//     info_hashes().v1 is. torrent_info shuffles the trackers of a tier.

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// ---------------------------------------------------------------------
// Generated content

// fileContent returns the content of the file with the given key (see
// [shape]): the first n bytes of a ChaCha8 stream seeded with the SHA-256
// of "aiotorrent interop " + key. testdata/README.md documents this, as
// the fixtures were made from it.
func fileContent(key string, n int64) []byte {
	seed := sha256.Sum256([]byte("aiotorrent interop " + key))
	b := make([]byte, n)
	if _, err := rand.NewChaCha8(seed).Read(b); err != nil {
		panic(err)
	}
	return b
}

// tfile is one file of a shape: its path below the shape's folder
// (slash-separated), or "" for a single-file shape.
type tfile struct {
	path string
	size int64
}

// shape is a file or folder to make torrents of.
type shape struct {
	name  string  // base name of the file or folder on disk
	files []tfile // one file with path "" for a single file
}

func (s shape) single() bool { return len(s.files) == 1 && s.files[0].path == "" }

// key is what seeds a file's content: the shape's name and the file's path.
func (s shape) key(rel string) string {
	if rel == "" {
		return s.name
	}
	return s.name + "/" + rel
}

// write creates the shape under dir and returns its path.
func (s shape) write(t testing.TB, dir string) string {
	t.Helper()
	root := filepath.Join(dir, s.name)
	for _, f := range s.files {
		p := root
		if f.path != "" {
			p = filepath.Join(root, filepath.FromSlash(f.path))
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, fileContent(s.key(f.path), f.size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func (s shape) total() int64 {
	var n int64
	for _, f := range s.files {
		n += f.size
	}
	return n
}

// sortedFiles returns the files in byte order of their paths, the order
// of metainfo.Create and mktorrent.
func (s shape) sortedFiles() []tfile {
	fs := slices.Clone(s.files)
	slices.SortFunc(fs, func(a, b tfile) int { return strings.Compare(a.path, b.path) })
	return fs
}

func (s shape) size(rel string) (int64, bool) {
	for _, f := range s.files {
		if f.path == rel {
			return f.size, true
		}
	}
	return 0, false
}

const kib = 1 << 10

var (
	shapeSingleSmall = shape{"small.bin", []tfile{{"", 1000}}}
	// Not a multiple of any piece length used.
	shapeSingleOdd = shape{"odd.bin", []tfile{{"", 3*32*kib + 4321}}}
	// Exactly one piece of 32 KiB.
	shapeOnePiece = shape{"one-piece.bin", []tfile{{"", 32 * kib}}}
	// A folder with most edge cases: empty files (one in a folder of its
	// own), a 6-level-deep folder, unicode names, a 1-byte file, a file of
	// exactly 32 KiB, a hidden file, upper case before lower case in byte
	// order, and "sub-file.bin" that sorts before "sub/empty" byte-wise
	// but after it component-wise.
	shapeMulti = shape{"multi", []tfile{
		{"a.bin", 50000},
		{"Z-upper.bin", 7000},
		{"empty-top", 0},
		{"sub/empty", 0},
		{"sub-file.bin", 100},
		{"d1/d2/d3/d4/d5/d6/deep.bin", 20000},
		{"été/日本語.txt", 3000},
		{"one-byte", 1},
		{"exact-piece.bin", 32 * kib},
		{".hidden", 10},
	}}
	// A folder holding one file: still a multi-file torrent.
	shapeMultiOne = shape{"solo", []tfile{{"only.bin", 40000}}}
	// A folder whose last file (in every order) is empty.
	shapeTailEmpty = shape{"tail-empty", []tfile{{"data.bin", 20000}, {"zz/last-empty", 0}}}
)

// ---------------------------------------------------------------------
// Checks shared by the tests

// relPath is a torrent file's path below the torrent's folder, "" for a
// single-file torrent (whose only path is its name).
func relPath(info *metainfo.Info, f metainfo.File) string {
	if !info.MultiFile {
		return ""
	}
	return strings.Join(f.Path[1:], "/")
}

// checkPieces rebuilds the torrent's content from the generated files of
// s, in the torrent's file order and at the offsets the parser computed,
// padding zero-filled, and checks every piece hash against it.
func checkPieces(t *testing.T, s shape, info *metainfo.Info) {
	t.Helper()
	var data []byte
	for i, f := range info.Files {
		if f.Offset != int64(len(data)) {
			t.Fatalf("file %d %q: offset %d, want %d", i, f.Path, f.Offset, len(data))
		}
		if f.Padding {
			data = append(data, make([]byte, f.Length)...)
			continue
		}
		rel := relPath(info, f)
		size, ok := s.size(rel)
		if !ok || size != f.Length {
			t.Fatalf("file %d %q (length %d) is not on disk with that length (found %v, length %d)", i, rel, f.Length, ok, size)
		}
		data = append(data, fileContent(s.key(rel), f.Length)...)
	}
	if int64(len(data)) != info.Length {
		t.Fatalf("files add up to %d bytes, Info.Length is %d", len(data), info.Length)
	}
	if want := (info.Length + info.PieceLength - 1) / info.PieceLength; int64(info.NumPieces()) != want {
		t.Fatalf("%d pieces, want %d", info.NumPieces(), want)
	}
	for i := range info.NumPieces() {
		off := int64(i) * info.PieceLength
		if got := metainfo.Hash(sha1.Sum(data[off : off+info.PieceSize(i)])); got != info.PieceHash(i) {
			t.Fatalf("piece %d (offset %d, %d bytes): SHA-1 of the content is %s, torrent says %s", i, off, info.PieceSize(i), got, info.PieceHash(i))
		}
	}
}

// checkFiles checks the torrent's real (non-padding) files against want,
// in order.
func checkFiles(t *testing.T, name string, info *metainfo.Info, want []tfile) {
	t.Helper()
	var got []tfile
	for _, f := range info.Files {
		if f.Padding {
			continue
		}
		if info.MultiFile && f.Path[0] != name {
			t.Errorf("file %q does not start with the torrent's name %q", f.Path, name)
		}
		got = append(got, tfile{relPath(info, f), f.Length})
	}
	if !slices.Equal(got, want) {
		t.Errorf("files:\n got %v\nwant %v", got, want)
	}
}

func checkTrackers(t *testing.T, mi *metainfo.MetaInfo, tiers [][]string, webSeeds []string) {
	t.Helper()
	if got := mi.Trackers(); !slices.EqualFunc(got, tiers, slices.Equal) {
		t.Errorf("trackers %q, want %q", got, tiers)
	}
	if !slices.Equal(mi.URLList, webSeeds) {
		t.Errorf("web seeds %q, want %q", mi.URLList, webSeeds)
	}
}

// run runs an external program and returns its standard output.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// ---------------------------------------------------------------------
// transmission-show as an independent reader

// showInfo is what transmission-show prints about a torrent.
type showInfo struct {
	general  map[string]string // "Hash", "Piece Size", "Privacy"...
	tiers    [][]string
	webSeeds []string
	files    []showFile // in torrent order (-u)
}

type showFile struct {
	path string
	size string // as printed, e.g. "70.00 kB"
}

var showFileRE = regexp.MustCompile(`^  (.+) \(([0-9.]+ [A-Za-z]+)\)$`)

// transmissionShow runs transmission-show -u on a torrent file and parses
// its report. Its format (Transmission 3.00):
//
//	Name: d
//	File: m.torrent
//
//	GENERAL
//
//	  Name: d
//	  Hash: dbb3c778b79e0dd3549cd935a034bf67105e5177
//	  ...
//	  Piece Count: 3
//	  Piece Size: 32.00 KiB
//	  Total Size: 90.00 kB
//	  Privacy: Private torrent
//
//	TRACKERS
//
//	  Tier #1
//	  http://t1/announce
//
//	WEBSEEDS
//
//	  http://ws/
//
//	FILES
//
//	  d/B.bin (20.00 kB)
func transmissionShow(t *testing.T, path string) showInfo {
	t.Helper()
	show := swarmtest.Tool(t, "transmission-show", "transmission-cli")
	out := run(t, show, "-u", path)
	si := showInfo{general: map[string]string{}}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "  ") {
			if !strings.Contains(line, ": ") {
				section = line
			}
			continue
		}
		body := strings.TrimPrefix(line, "  ")
		switch section {
		case "GENERAL":
			k, v, ok := strings.Cut(body, ": ")
			if !ok {
				t.Fatalf("transmission-show: unexpected line %q", line)
			}
			si.general[k] = v
		case "TRACKERS":
			if strings.HasPrefix(body, "Tier #") {
				si.tiers = append(si.tiers, nil)
			} else if len(si.tiers) > 0 {
				si.tiers[len(si.tiers)-1] = append(si.tiers[len(si.tiers)-1], body)
			}
		case "WEBSEEDS":
			si.webSeeds = append(si.webSeeds, body)
		case "FILES":
			m := showFileRE.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("transmission-show: unexpected file line %q", line)
			}
			si.files = append(si.files, showFile{m[1], m[2]})
		}
	}
	if si.general["Hash"] == "" {
		t.Fatalf("transmission-show printed no hash:\n%s", out)
	}
	return si
}

// parseShowSize converts a size transmission-show printed ("32.00 KiB",
// "256.0 KiB", "70.00 kB") to bytes, with the rounding error its digits
// allow.
func parseShowSize(t *testing.T, s string) (v, tolerance float64) {
	t.Helper()
	num, unit, ok := strings.Cut(s, " ")
	if !ok {
		t.Fatalf("size %q: no unit", s)
	}
	x, err := strconv.ParseFloat(num, 64)
	if err != nil {
		t.Fatalf("size %q: %v", s, err)
	}
	mult := map[string]float64{
		"B": 1, "bytes": 1,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
		"kB": 1e3, "MB": 1e6, "GB": 1e9,
	}[unit]
	if mult == 0 {
		t.Fatalf("size %q: unknown unit %q", s, unit)
	}
	decimals := 0
	if _, frac, ok := strings.Cut(num, "."); ok {
		decimals = len(frac)
	}
	tol := 0.5
	for range decimals {
		tol /= 10
	}
	return x * mult, tol*mult + 1e-6
}

// checkShow compares what transmission-show reports with our parse of the
// same file.
func checkShow(t *testing.T, si showInfo, mi *metainfo.MetaInfo) {
	t.Helper()
	info := &mi.Info
	if got := si.general["Hash"]; got != mi.InfoHash.String() {
		t.Errorf("transmission-show hash %s, ours %s", got, mi.InfoHash)
	}
	if got := si.general["Name"]; got != info.Name {
		t.Errorf("transmission-show name %q, ours %q", got, info.Name)
	}
	if ps, tol := parseShowSize(t, si.general["Piece Size"]); ps < float64(info.PieceLength)-tol || ps > float64(info.PieceLength)+tol {
		t.Errorf("transmission-show piece size %q, ours %d", si.general["Piece Size"], info.PieceLength)
	}
	if got := si.general["Piece Count"]; got != strconv.Itoa(info.NumPieces()) {
		t.Errorf("transmission-show piece count %s, ours %d", got, info.NumPieces())
	}
	if ts, tol := parseShowSize(t, si.general["Total Size"]); ts < float64(info.Length)-tol || ts > float64(info.Length)+tol {
		t.Errorf("transmission-show total size %q, ours %d", si.general["Total Size"], info.Length)
	}
	wantPriv := map[bool]string{true: "Private torrent", false: "Public torrent"}[info.Private]
	if got := si.general["Privacy"]; got != wantPriv {
		t.Errorf("transmission-show privacy %q, ours private=%v", got, info.Private)
	}
	if mi.Comment != "" && si.general["Comment"] != mi.Comment {
		t.Errorf("transmission-show comment %q, ours %q", si.general["Comment"], mi.Comment)
	}
	if !slices.EqualFunc(si.tiers, mi.Trackers(), slices.Equal) {
		t.Errorf("transmission-show trackers %q, ours %q", si.tiers, mi.Trackers())
	}
	if !slices.Equal(si.webSeeds, mi.URLList) {
		t.Errorf("transmission-show web seeds %q, ours %q", si.webSeeds, mi.URLList)
	}
	var ours []metainfo.File
	for _, f := range info.Files {
		if !f.Padding {
			ours = append(ours, f)
		}
	}
	if len(si.files) != len(ours) {
		t.Fatalf("transmission-show lists %d files, ours %d:\n%v", len(si.files), len(ours), si.files)
	}
	for i, f := range ours {
		if p := strings.Join(f.Path, "/"); si.files[i].path != p {
			t.Errorf("file %d: transmission-show %q, ours %q", i, si.files[i].path, p)
		}
		if sz, tol := parseShowSize(t, si.files[i].size); sz < float64(f.Length)-tol || sz > float64(f.Length)+tol {
			t.Errorf("file %d %q: transmission-show size %q, ours %d", i, si.files[i].path, si.files[i].size, f.Length)
		}
	}
}

// ---------------------------------------------------------------------
// 1. Our torrents, read by transmission-show

var (
	testTiers    = [][]string{{"http://tracker1.example/announce", "http://tracker1b.example:8080/announce"}, {"udp://tracker2.example:6969/announce"}}
	testWebSeeds = []string{"http://seed.example/files/"}
)

func TestInteropCreateReadByTransmission(t *testing.T) {
	swarmtest.Tool(t, "transmission-show", "transmission-cli")
	cases := []struct {
		name  string
		shape shape
		opts  metainfo.CreateOptions
	}{
		{"single small default piece", shapeSingleSmall, metainfo.CreateOptions{Trackers: testTiers, WebSeeds: testWebSeeds, Comment: "a small file"}},
		{"single odd size private", shapeSingleOdd, metainfo.CreateOptions{PieceLength: 16 * kib, Private: true, Trackers: testTiers[:1]}},
		{"single exactly one piece", shapeOnePiece, metainfo.CreateOptions{PieceLength: 32 * kib}},
		{"multi default piece", shapeMulti, metainfo.CreateOptions{Trackers: testTiers, WebSeeds: testWebSeeds, Comment: "été 日本語"}},
		{"multi 64k private renamed", shapeMulti, metainfo.CreateOptions{PieceLength: 64 * kib, Private: true, Name: "renamed", Trackers: testTiers}},
		{"folder of one file", shapeMultiOne, metainfo.CreateOptions{PieceLength: 16 * kib}},
		{"empty last file", shapeTailEmpty, metainfo.CreateOptions{PieceLength: 16 * kib, WebSeeds: testWebSeeds}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			root := tc.shape.write(t, dir)
			mi, path := createTorrentFile(t, root, tc.opts, filepath.Join(dir, "out.torrent"))
			wantPL := tc.opts.PieceLength
			if wantPL == 0 {
				wantPL = metainfo.DefaultPieceLength(tc.shape.total())
			}
			if mi.Info.PieceLength != wantPL {
				t.Errorf("piece length %d, want %d", mi.Info.PieceLength, wantPL)
			}
			checkShow(t, transmissionShow(t, path), mi)
			// And what we wrote reads back the same.
			back, err := metainfo.LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if back.InfoHash != mi.InfoHash {
				t.Errorf("read back info hash %s, created %s", back.InfoHash, mi.InfoHash)
			}
			checkPieces(t, tc.shape, &back.Info)
		})
	}
}

// ---------------------------------------------------------------------
// 2. mktorrent's and transmission-create's torrents, read by us

func TestInteropReadMktorrent(t *testing.T) {
	mktorrent := swarmtest.Tool(t, "mktorrent", "mktorrent")
	swarmtest.Tool(t, "transmission-show", "transmission-cli")
	cases := []struct {
		name     string
		shape    shape
		log2     int        // -l
		tiers    [][]string // one -a per tier, URLs of a tier joined by commas
		webSeeds []string   // one -w each
		comment  string     // -c
		torName  string     // -n
		private  bool       // -p
		source   string     // -s: a key of the info dictionary
		date     bool       // leave out -d
	}{
		{name: "single small with date", shape: shapeSingleSmall, log2: 15, tiers: testTiers[:1], date: true},
		{name: "single odd private", shape: shapeSingleOdd, log2: 15, tiers: testTiers, webSeeds: testWebSeeds, comment: "odd", private: true, source: "TRACKER-X"},
		{name: "single one piece renamed", shape: shapeOnePiece, log2: 15, tiers: [][]string{{"http://t.example/a"}}, torName: "custom name.bin"},
		{name: "multi", shape: shapeMulti, log2: 15, tiers: testTiers, webSeeds: append([]string{"http://seed2.example/"}, testWebSeeds...), comment: "été 日本語"},
		{name: "multi 64k private renamed", shape: shapeMulti, log2: 16, tiers: testTiers[1:], private: true, source: "src", torName: "renamed"},
		{name: "folder of one file, one big piece", shape: shapeMultiOne, log2: 17, tiers: testTiers[:1]},
		{name: "empty last file", shape: shapeTailEmpty, log2: 15, tiers: testTiers},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			root := tc.shape.write(t, dir)
			out := filepath.Join(dir, "out.torrent")
			args := []string{"-t", "1", "-l", strconv.Itoa(tc.log2), "-o", out}
			for _, tier := range tc.tiers {
				args = append(args, "-a", strings.Join(tier, ","))
			}
			for _, w := range tc.webSeeds {
				args = append(args, "-w", w)
			}
			if tc.comment != "" {
				args = append(args, "-c", tc.comment)
			}
			if tc.torName != "" {
				args = append(args, "-n", tc.torName)
			}
			if tc.private {
				args = append(args, "-p")
			}
			if tc.source != "" {
				args = append(args, "-s", tc.source)
			}
			if !tc.date {
				args = append(args, "-d")
			}
			run(t, mktorrent, append(args, root)...)

			mi, err := metainfo.LoadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			checkShow(t, transmissionShow(t, out), mi)

			name := tc.shape.name
			if tc.torName != "" {
				name = tc.torName
			}
			info := &mi.Info
			if info.Name != name {
				t.Errorf("name %q, want %q", info.Name, name)
			}
			if info.PieceLength != 1<<tc.log2 {
				t.Errorf("piece length %d, want %d", info.PieceLength, 1<<tc.log2)
			}
			if info.Private != tc.private || info.Source != tc.source {
				t.Errorf("private %v, source %q; want %v, %q", info.Private, info.Source, tc.private, tc.source)
			}
			if info.MultiFile == tc.shape.single() || info.Hybrid {
				t.Errorf("multi-file %v, hybrid %v", info.MultiFile, info.Hybrid)
			}
			if mi.CreationDate.IsZero() == tc.date {
				t.Errorf("creation date %v, want one: %v", mi.CreationDate, tc.date)
			}
			if mi.Comment != tc.comment || !strings.HasPrefix(mi.CreatedBy, "mktorrent") {
				t.Errorf("comment %q, created by %q", mi.Comment, mi.CreatedBy)
			}
			checkTrackers(t, mi, tc.tiers, tc.webSeeds)
			// mktorrent keeps every file, empty and hidden ones too, in
			// byte order of their paths.
			checkFiles(t, name, info, tc.shape.sortedFiles())
			checkPieces(t, tc.shape, info)

			// The same folder through metainfo.Create: mktorrent writes
			// only files/length, name, piece length, pieces, private and
			// source in the info dictionary, and orders files as we do, so the
			// info dictionaries must be byte-identical.
			ours, err := metainfo.Create(t.Context(), root, metainfo.CreateOptions{
				PieceLength: 1 << tc.log2,
				Name:        tc.torName,
				Private:     tc.private,
				Source:      tc.source,
				Trackers:    tc.tiers,
				WebSeeds:    tc.webSeeds,
				Comment:     tc.comment,
			})
			if err != nil {
				t.Fatal(err)
			}
			if ours.InfoHash != mi.InfoHash {
				t.Errorf("metainfo.Create info hash %s, mktorrent %s\nours:      %q\nmktorrent: %q", ours.InfoHash, mi.InfoHash, ours.InfoBytes, mi.InfoBytes)
			}
			if !bytes.Equal(ours.Info.Pieces, info.Pieces) {
				t.Errorf("metainfo.Create piece hashes differ from mktorrent's")
			}
		})
	}
}

func TestInteropReadTransmissionCreate(t *testing.T) {
	create := swarmtest.Tool(t, "transmission-create", "transmission-cli")
	swarmtest.Tool(t, "transmission-show", "transmission-cli")
	cases := []struct {
		name     string
		shape    shape
		pieceKiB int      // -s, 0 for Transmission's default
		trackers []string // one -t each: each its own tier
		comment  string
		private  bool
	}{
		{name: "single small", shape: shapeSingleSmall, pieceKiB: 16, trackers: []string{"http://a.example/announce"}, comment: "small"},
		{name: "single odd private", shape: shapeSingleOdd, pieceKiB: 32, trackers: []string{"http://a.example/announce", "udp://b.example:80"}, private: true},
		{name: "single one piece", shape: shapeOnePiece, pieceKiB: 32},
		{name: "multi", shape: shapeMulti, pieceKiB: 16, trackers: []string{"http://a.example/announce", "http://b.example/announce"}, comment: "été 日本語"},
		{name: "multi default piece private", shape: shapeMulti, trackers: []string{"http://private.example/announce"}, private: true},
		{name: "folder of one file", shape: shapeMultiOne, pieceKiB: 64},
		{name: "empty last file", shape: shapeTailEmpty, pieceKiB: 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// transmission-create polls its hashing thread every 500 ms,
			// so each run takes that long while using almost no CPU.
			t.Parallel()
			dir := t.TempDir()
			root := tc.shape.write(t, dir)
			out := filepath.Join(dir, "out.torrent")
			args := []string{"-o", out}
			if tc.pieceKiB != 0 {
				args = append(args, "-s", strconv.Itoa(tc.pieceKiB))
			}
			var tiers [][]string
			for _, tr := range tc.trackers {
				args = append(args, "-t", tr)
				tiers = append(tiers, []string{tr})
			}
			if tc.comment != "" {
				args = append(args, "-c", tc.comment)
			}
			if tc.private {
				args = append(args, "-p")
			}
			run(t, create, append(args, root)...)

			mi, err := metainfo.LoadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			si := transmissionShow(t, out)
			checkShow(t, si, mi)

			info := &mi.Info
			if info.Name != tc.shape.name {
				t.Errorf("name %q, want %q", info.Name, tc.shape.name)
			}
			if tc.pieceKiB != 0 && info.PieceLength != int64(tc.pieceKiB)*kib {
				t.Errorf("piece length %d, want %d", info.PieceLength, tc.pieceKiB*kib)
			}
			if info.Private != tc.private || info.MultiFile == tc.shape.single() || info.Hybrid {
				t.Errorf("private %v (want %v), multi-file %v, hybrid %v", info.Private, tc.private, info.MultiFile, info.Hybrid)
			}
			if mi.Comment != tc.comment || mi.CreationDate.IsZero() || !strings.HasPrefix(mi.CreatedBy, "Transmission") {
				t.Errorf("comment %q, creation date %v, created by %q", mi.Comment, mi.CreationDate, mi.CreatedBy)
			}
			checkTrackers(t, mi, tiers, nil)

			// Transmission leaves out empty and hidden files, and sorts
			// ignoring case; our order must be the one in the file, as
			// transmission-show -u (checked above) lists it.
			var want []tfile
			for _, f := range tc.shape.files {
				hidden := strings.HasPrefix(f.path, ".") || strings.Contains(f.path, "/.")
				if f.size > 0 && !hidden {
					want = append(want, f)
				}
			}
			var got []tfile
			for _, f := range info.Files {
				got = append(got, tfile{relPath(info, f), f.Length})
			}
			slices.SortFunc(want, func(a, b tfile) int { return strings.Compare(a.path, b.path) })
			sorted := slices.Clone(got)
			slices.SortFunc(sorted, func(a, b tfile) int { return strings.Compare(a.path, b.path) })
			if !slices.Equal(sorted, want) {
				t.Errorf("files (sorted):\n got %v\nwant %v", sorted, want)
			}
			checkPieces(t, tc.shape, info)

			// Where Transmission kept the same files in the same order as
			// metainfo.Create would, the info dictionaries must match but
			// for one key: Transmission always writes "private", as 0 on a
			// public torrent, where we (and mktorrent, and libtorrent)
			// leave it out. It sorts after "pieces", last of our keys.
			ours, err := metainfo.Create(t.Context(), root, metainfo.CreateOptions{PieceLength: info.PieceLength, Private: tc.private})
			if err != nil {
				t.Fatal(err)
			}
			var ourFiles []tfile
			for _, f := range ours.Info.Files {
				ourFiles = append(ourFiles, tfile{relPath(&ours.Info, f), f.Length})
			}
			if slices.Equal(ourFiles, got) {
				want := ours.InfoBytes
				if !tc.private {
					want = append(bytes.Clone(want[:len(want)-1]), "7:privatei0ee"...)
				}
				if !bytes.Equal(want, mi.InfoBytes) {
					t.Errorf("metainfo.Create info dictionary (+ private 0) differs from transmission-create's\nours:         %q\ntransmission: %q", want, mi.InfoBytes)
				}
			} else {
				t.Logf("transmission-create kept other files or another order than metainfo.Create (%d files vs %d); compared piece hashes with the content only", len(got), len(ourFiles))
			}
		})
	}
}

// ---------------------------------------------------------------------
// 3. libtorrent, through its Python binding

const pythonPath = "/usr/bin/python3"

var libtorrentVersion = sync.OnceValues(func() (string, error) {
	out, err := exec.Command(pythonPath, "-c", "import libtorrent; print(libtorrent.__version__)").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return strings.TrimSpace(string(out)), nil
})

// requireLibtorrent follows the rule of swarmtest.Tool for the libtorrent
// Python module: skip when /usr/bin/python3 cannot import it, or fail when
// swarmtest.RequireEnv is set.
func requireLibtorrent(t testing.TB) {
	t.Helper()
	_, err := libtorrentVersion()
	if err == nil {
		return
	}
	if os.Getenv(swarmtest.RequireEnv) != "" {
		t.Fatalf("%s cannot import libtorrent (Debian package python3-libtorrent) and %s is set: install it (scripts/test.sh does): %v", pythonPath, swarmtest.RequireEnv, err)
	}
	t.Skipf("%s cannot import libtorrent: install Debian package python3-libtorrent (scripts/test.sh does) to run this interop test: %v", pythonPath, err)
}

// ltCreateScript makes a torrent with libtorrent: mode (hybrid, v1 or v2),
// source file or folder, piece length, output path. The creation date is
// left out so that the file depends only on the content.
const ltCreateScript = `
import os, sys, libtorrent as lt
mode, src, piece, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
flags = {'hybrid': 0, 'v1': lt.create_torrent.v1_only, 'v2': lt.create_torrent.v2_only}[mode]
fs = lt.file_storage()
lt.add_files(fs, src)
ct = lt.create_torrent(fs, piece, flags)
lt.set_piece_hashes(ct, os.path.dirname(src))
e = ct.generate()
e.pop(b'creation date', None)
with open(out, 'wb') as f:
    f.write(lt.bencode(e))
`

// ltDescribeScript prints, as JSON, what libtorrent reads in a torrent file.
const ltDescribeScript = `
import sys, json, libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
ih = ti.info_hashes()
fs = ti.files()
print(json.dumps({
    'v1': str(ih.v1) if ih.has_v1() else '',
    'has_v2': ih.has_v2(),
    'best': str(ti.info_hash()),
    'name': ti.name(),
    'num_pieces': ti.num_pieces(),
    'piece_length': ti.piece_length(),
    'total_size': ti.total_size(),
    'private': ti.priv(),
    'comment': ti.comment(),
    'trackers': [[t.url, str(t.tier)] for t in ti.trackers()],
    'web_seeds': [w['url'] for w in ti.web_seeds()],
    'files': [{'path': fs.file_path(i), 'size': fs.file_size(i), 'offset': fs.file_offset(i),
               'pad': bool(fs.file_flags(i) & fs.flag_pad_file)} for i in range(fs.num_files())],
}))
`

type ltFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Offset int64  `json:"offset"`
	Pad    bool   `json:"pad"`
}

type ltInfo struct {
	V1          string      `json:"v1"`
	HasV2       bool        `json:"has_v2"`
	Best        string      `json:"best"`
	Name        string      `json:"name"`
	NumPieces   int         `json:"num_pieces"`
	PieceLength int64       `json:"piece_length"`
	TotalSize   int64       `json:"total_size"`
	Private     bool        `json:"private"`
	Comment     string      `json:"comment"`
	Trackers    [][2]string `json:"trackers"` // URL, tier
	WebSeeds    []string    `json:"web_seeds"`
	Files       []ltFile    `json:"files"`
}

func ltCreate(t *testing.T, mode, src string, pieceLength int64, out string) {
	t.Helper()
	requireLibtorrent(t)
	run(t, pythonPath, "-c", ltCreateScript, mode, src, strconv.FormatInt(pieceLength, 10), out)
}

func ltDescribe(t *testing.T, path string) ltInfo {
	t.Helper()
	requireLibtorrent(t)
	var li ltInfo
	if err := json.Unmarshal(run(t, pythonPath, "-c", ltDescribeScript, path), &li); err != nil {
		t.Fatal(err)
	}
	return li
}

// checkLibtorrent compares what libtorrent reads in a torrent with our
// parse of it, file by file, padding included.
func checkLibtorrent(t *testing.T, li ltInfo, mi *metainfo.MetaInfo) {
	t.Helper()
	info := &mi.Info
	if li.V1 != mi.InfoHash.String() {
		t.Errorf("libtorrent v1 info hash %s, ours %s", li.V1, mi.InfoHash)
	}
	if li.HasV2 != info.Hybrid {
		t.Errorf("libtorrent has v2 %v, our Hybrid %v", li.HasV2, info.Hybrid)
	}
	if li.Name != info.Name || li.NumPieces != info.NumPieces() || li.PieceLength != info.PieceLength || li.TotalSize != info.Length {
		t.Errorf("libtorrent name %q, %d pieces of %d, %d bytes; ours %q, %d pieces of %d, %d bytes",
			li.Name, li.NumPieces, li.PieceLength, li.TotalSize, info.Name, info.NumPieces(), info.PieceLength, info.Length)
	}
	if li.Private != info.Private {
		t.Errorf("libtorrent private %v, ours %v", li.Private, info.Private)
	}
	if len(li.Files) != len(info.Files) {
		t.Fatalf("libtorrent has %d files, ours %d:\n%+v\n%+v", len(li.Files), len(info.Files), li.Files, info.Files)
	}
	for i, f := range info.Files {
		ours := ltFile{strings.Join(f.Path, "/"), f.Length, f.Offset, f.Padding}
		if li.Files[i] != ours {
			t.Errorf("file %d: libtorrent %+v, ours %+v", i, li.Files[i], ours)
		}
		if f.Padding != strings.Contains(f.Attr, "p") {
			t.Errorf("file %d %q: Padding %v, attr %q", i, f.Path, f.Padding, f.Attr)
		}
	}
}

func TestInteropLibtorrent(t *testing.T) {
	requireLibtorrent(t)

	t.Run("hybrid with padding", func(t *testing.T) {
		dir := t.TempDir()
		root := shapeMulti.write(t, dir)
		out := filepath.Join(dir, "hybrid.torrent")
		ltCreate(t, "hybrid", root, 16*kib, out)
		li := ltDescribe(t, out)
		mi, err := metainfo.LoadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !mi.Info.Hybrid || !mi.Info.MultiFile {
			t.Errorf("Hybrid %v, MultiFile %v; want both", mi.Info.Hybrid, mi.Info.MultiFile)
		}
		if !li.HasV2 || li.Best == li.V1 {
			t.Errorf("libtorrent made no hybrid: v1 %s, best %s, has v2 %v", li.V1, li.Best, li.HasV2)
		}
		checkLibtorrent(t, li, mi)
		pads := 0
		for _, f := range mi.Info.Files {
			if f.Padding {
				pads++
			} else if f.Offset%mi.Info.PieceLength != 0 && f.Length > 0 {
				t.Errorf("file %q at offset %d is not aligned to a piece although the torrent is padded", f.Path, f.Offset)
			}
		}
		if pads == 0 {
			t.Error("no padding file flagged")
		}
		// libtorrent keeps hidden and empty files, in its own order (BEP
		// 52's, by path component), which checkPieces follows.
		var kept []tfile
		for _, f := range mi.Info.Files {
			if !f.Padding {
				kept = append(kept, tfile{relPath(&mi.Info, f), f.Length})
			}
		}
		slices.SortFunc(kept, func(a, b tfile) int { return strings.Compare(a.path, b.path) })
		if want := shapeMulti.sortedFiles(); !slices.Equal(kept, want) {
			t.Errorf("files (sorted):\n got %v\nwant %v", kept, want)
		}
		checkPieces(t, shapeMulti, &mi.Info)
	})

	t.Run("v2 only", func(t *testing.T) {
		dir := t.TempDir()
		root := shapeMulti.write(t, dir)
		out := filepath.Join(dir, "v2.torrent")
		ltCreate(t, "v2", root, 16*kib, out)
		if li := ltDescribe(t, out); li.V1 != "" || !li.HasV2 {
			t.Fatalf("libtorrent made no v2-only torrent: v1 %q, has v2 %v", li.V1, li.HasV2)
		}
		_, err := metainfo.LoadFile(out)
		if !errors.Is(err, metainfo.ErrV2Only) {
			t.Errorf("LoadFile: %v, want ErrV2Only", err)
		}
	})

	t.Run("v1 only", func(t *testing.T) {
		for _, s := range []shape{shapeMulti, shapeSingleOdd} {
			dir := t.TempDir()
			root := s.write(t, dir)
			out := filepath.Join(dir, "v1.torrent")
			ltCreate(t, "v1", root, 16*kib, out)
			li := ltDescribe(t, out)
			mi, err := metainfo.LoadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if mi.Info.Hybrid {
				t.Errorf("%s: Hybrid set on a v1-only torrent", s.name)
			}
			if li.Best != li.V1 {
				t.Errorf("%s: libtorrent info_hash() %s, v1 %s", s.name, li.Best, li.V1)
			}
			checkLibtorrent(t, li, mi)
			checkPieces(t, s, &mi.Info)
		}
	})

	t.Run("ours read by libtorrent", func(t *testing.T) {
		cases := []struct {
			shape shape
			opts  metainfo.CreateOptions
		}{
			{shapeSingleOdd, metainfo.CreateOptions{PieceLength: 16 * kib, Trackers: testTiers, WebSeeds: testWebSeeds, Comment: "odd"}},
			{shapeOnePiece, metainfo.CreateOptions{PieceLength: 32 * kib, Private: true}},
			{shapeMulti, metainfo.CreateOptions{Trackers: testTiers, WebSeeds: testWebSeeds, Comment: "été 日本語"}},
			{shapeMulti, metainfo.CreateOptions{PieceLength: 32 * kib, Private: true, Name: "renamed"}},
			{shapeTailEmpty, metainfo.CreateOptions{PieceLength: 16 * kib}},
		}
		for _, tc := range cases {
			dir := t.TempDir()
			root := tc.shape.write(t, dir)
			mi, out := createTorrentFile(t, root, tc.opts, filepath.Join(dir, "ours.torrent"))
			li := ltDescribe(t, out)
			checkLibtorrent(t, li, mi)
			if li.Best != li.V1 {
				t.Errorf("%s: libtorrent info_hash() %s, v1 %s", tc.shape.name, li.Best, li.V1)
			}
			if li.Comment != tc.opts.Comment {
				t.Errorf("%s: libtorrent comment %q, want %q", tc.shape.name, li.Comment, tc.opts.Comment)
			}
			var wantTr [][2]string
			for i, tier := range tc.opts.Trackers {
				for _, u := range tier {
					wantTr = append(wantTr, [2]string{u, strconv.Itoa(i)})
				}
			}
			// libtorrent shuffles the trackers of a tier, as BEP 12 asks.
			slices.SortFunc(li.Trackers, func(a, b [2]string) int { return strings.Compare(a[1]+" "+a[0], b[1]+" "+b[0]) })
			slices.SortFunc(wantTr, func(a, b [2]string) int { return strings.Compare(a[1]+" "+a[0], b[1]+" "+b[0]) })
			if !slices.Equal(li.Trackers, wantTr) {
				t.Errorf("%s: libtorrent trackers %q, want %q", tc.shape.name, li.Trackers, wantTr)
			}
			if !slices.Equal(li.WebSeeds, tc.opts.WebSeeds) {
				t.Errorf("%s: libtorrent web seeds %q, want %q", tc.shape.name, li.WebSeeds, tc.opts.WebSeeds)
			}
		}
	})
}

// ---------------------------------------------------------------------
// 4. Fixtures made by libtorrent, checked without any tool

// fixtureShape is the folder testdata/hybrid-padded.torrent and
// testdata/v2-only.torrent were made from (see testdata/README.md).
var fixtureShape = shape{"fixture", []tfile{
	{"a.txt", 10000},
	{"b/c.bin", 20000},
	{"d.dat", 5000},
}}

const (
	fixtureHybrid = "testdata/hybrid-padded.torrent"
	fixtureV2Only = "testdata/v2-only.torrent"
	// fixtureHybridHash is the v1 info hash of fixtureHybrid, as
	// libtorrent 2.0.8 reports it (info_hashes().v1).
	fixtureHybridHash = "f005f37411d60509e7fd8d990c1f3b248c12672d"
)

func TestFixtures(t *testing.T) {
	mi, err := metainfo.LoadFile(fixtureHybrid)
	if err != nil {
		t.Fatal(err)
	}
	info := &mi.Info
	if mi.InfoHash.String() != fixtureHybridHash {
		t.Errorf("info hash %s, want %s", mi.InfoHash, fixtureHybridHash)
	}
	if !info.Hybrid || !info.MultiFile || info.Name != fixtureShape.name || info.PieceLength != 16*kib {
		t.Errorf("Hybrid %v, MultiFile %v, name %q, piece length %d", info.Hybrid, info.MultiFile, info.Name, info.PieceLength)
	}
	pads := 0
	for _, f := range info.Files {
		if f.Padding {
			pads++
			if f.Attr != "p" || len(f.Path) != 3 || f.Path[1] != ".pad" {
				t.Errorf("padding file %q, attr %q", f.Path, f.Attr)
			}
		} else if f.Offset%info.PieceLength != 0 {
			t.Errorf("file %q at offset %d, not aligned to a piece", f.Path, f.Offset)
		}
	}
	// Each of the three files ends inside a piece, so each is followed by
	// padding, the last one too.
	if pads != len(fixtureShape.files) {
		t.Errorf("%d padding files, want %d", pads, len(fixtureShape.files))
	}
	checkFiles(t, fixtureShape.name, info, fixtureShape.sortedFiles())
	checkPieces(t, fixtureShape, info)

	_, err = metainfo.LoadFile(fixtureV2Only)
	if !errors.Is(err, metainfo.ErrV2Only) {
		t.Errorf("%s: %v, want ErrV2Only", fixtureV2Only, err)
	}
}

// TestInteropLibtorrentFixtures makes the fixtures again with libtorrent
// and checks they match the files in testdata (whose info hash
// TestFixtures checks). With AIOTORRENT_REGEN_FIXTURES=1 it rewrites them.
func TestInteropLibtorrentFixtures(t *testing.T) {
	requireLibtorrent(t)
	dir := t.TempDir()
	root := fixtureShape.write(t, dir)
	regen := os.Getenv("AIOTORRENT_REGEN_FIXTURES") == "1"
	for _, fx := range []struct{ mode, path string }{{"hybrid", fixtureHybrid}, {"v2", fixtureV2Only}} {
		out := filepath.Join(dir, filepath.Base(fx.path))
		ltCreate(t, fx.mode, root, 16*kib, out)
		made, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if regen {
			if err := os.WriteFile(fx.path, made, 0o644); err != nil {
				t.Fatal(err)
			}
			li := ltDescribe(t, out)
			t.Logf("wrote %s (%d bytes): libtorrent v1 info hash %q, best %s", fx.path, len(made), li.V1, li.Best)
			continue
		}
		have, err := os.ReadFile(fx.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(made, have) {
			t.Errorf("libtorrent %s makes another torrent than %s: regenerate with AIOTORRENT_REGEN_FIXTURES=1 and update fixtureHybridHash and testdata/README.md", fx.mode, fx.path)
		}
	}
	if li := ltDescribe(t, filepath.Join(dir, filepath.Base(fixtureHybrid))); li.V1 != fixtureHybridHash && !regen {
		t.Errorf("libtorrent v1 info hash of the hybrid fixture %s, want %s", li.V1, fixtureHybridHash)
	}
}

// createTorrentFile makes a torrent of root with metainfo.Create and
// writes it to path.
func createTorrentFile(t *testing.T, root string, opts metainfo.CreateOptions, path string) (*metainfo.MetaInfo, string) {
	t.Helper()
	mi, err := metainfo.Create(t.Context(), root, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mi.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return mi, path
}
