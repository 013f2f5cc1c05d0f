package metainfo

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aiotorrent/aiotorrent/bencode"
)

// Bounds on what a torrent may describe.
const (
	// MinPieceLength and MaxPieceLength bound the piece length, which must
	// also be a power of two.
	MinPieceLength = 1 << 10 // 1 KiB
	MaxPieceLength = 1 << 28 // 256 MiB
	MaxTotalLength = 1 << 50 // 1 PiB
	MaxFiles       = 1 << 20 // files in one torrent
	MaxPathDepth   = 64      // components in one file's path
	MaxPathLength  = 4096    // bytes in one file's whole path
)

// Info is the validated info dictionary of a torrent.
type Info struct {
	// Name is the suggested name of the file (single-file torrent) or of
	// the top folder (multi-file torrent).
	Name string
	// PieceLength is the length of every piece but possibly the last.
	PieceLength int64
	// Pieces holds the SHA-1 hash of every piece, 20 bytes each.
	Pieces []byte
	// Private is the BEP 27 flag: peers only from the torrent's trackers.
	Private bool
	// Source is the optional "source" string private trackers set.
	Source string
	// MultiFile reports a torrent with a "files" list: its files live in a
	// folder called Name.
	MultiFile bool
	// Hybrid reports a BitTorrent v2 torrent with a v1 part (BEP 52). Only
	// the v1 part is used.
	Hybrid bool
	// Files lists every file in torrent order, padding files included; a
	// single-file torrent has one. Offsets are contiguous from 0.
	Files []File
	// Length is the total length of the content, padding included.
	Length int64
}

// File is one file of a torrent.
type File struct {
	// Path is the file's path relative to the download folder: for a
	// multi-file torrent it starts with the torrent's name. Every component
	// has been checked to be a plain name, so joining them under a folder
	// can never leave it.
	Path []string
	// Length is the file's length in bytes.
	Length int64
	// Offset is where the file starts in the torrent's content.
	Offset int64
	// Attr holds the BEP 47 attribute letters ("p" padding, "x"
	// executable, "h" hidden, "l" symlink), if any.
	Attr string
	// Padding reports a BEP 47 padding file (or a legacy padding name):
	// zero bytes that align the next file to a piece. They count in piece
	// hashing but are never created on disk nor offered as files.
	Padding bool
}

// NumPieces returns the number of pieces.
func (info *Info) NumPieces() int { return len(info.Pieces) / HashSize }

// PieceHash returns the SHA-1 hash of piece i.
func (info *Info) PieceHash(i int) Hash {
	var h Hash
	copy(h[:], info.Pieces[i*HashSize:])
	return h
}

// PieceSize returns the length of piece i: PieceLength for all but the
// last, which holds what remains.
func (info *Info) PieceSize(i int) int64 {
	if i == info.NumPieces()-1 {
		return info.Length - int64(i)*info.PieceLength
	}
	return info.PieceLength
}

// FilePieces returns the half-open range [begin, end) of the pieces that
// hold bytes of file i. An empty file spans no piece (begin == end).
func (info *Info) FilePieces(i int) (begin, end int) {
	f := info.Files[i]
	begin = int(f.Offset / info.PieceLength)
	if f.Length == 0 {
		return begin, begin
	}
	end = int((f.Offset + f.Length + info.PieceLength - 1) / info.PieceLength)
	return begin, end
}

type rawInfo struct {
	Name        string             `bencode:"name"`
	NameUTF8    bencode.RawMessage `bencode:"name.utf-8"`
	PieceLength *int64             `bencode:"piece length"`
	Pieces      []byte             `bencode:"pieces"`
	Private     int64              `bencode:"private"`
	Source      bencode.RawMessage `bencode:"source"`
	Length      *int64             `bencode:"length"`
	Files       *fileList          `bencode:"files"`
	MetaVersion int64              `bencode:"meta version"`
	FileTree    bencode.RawMessage `bencode:"file tree"`
}

// fileList decodes the "files" list without letting a hostile torrent
// cost much more memory than its own size. It counts the entries first
// (into zero-size values) to enforce MaxFiles, then reads only their
// lengths (8 bytes each) and checks them, so a list of a million empty
// dictionaries fails before a full entry is built for any of them.
type fileList []rawFile

type fileCounter struct{}

func (fileCounter) UnmarshalBencode([]byte) error { return nil }

func (l *fileList) UnmarshalBencode(b []byte) error {
	var count []fileCounter
	if err := bencode.Unmarshal(b, &count); err != nil {
		return err
	}
	if len(count) > MaxFiles {
		return fmt.Errorf("%d files, more than %d", len(count), MaxFiles)
	}
	var lengths []struct {
		Length *int64 `bencode:"length"`
	}
	if err := bencode.Unmarshal(b, &lengths); err != nil {
		return err
	}
	for i, f := range lengths {
		if f.Length == nil {
			return fmt.Errorf("file %d: missing length", i)
		}
		if *f.Length < 0 {
			return fmt.Errorf("file %d: negative length %d", i, *f.Length)
		}
	}
	var files []rawFile
	if err := bencode.Unmarshal(b, &files); err != nil {
		return err
	}
	*l = files
	return nil
}

// rawFile is one entry of the files list.
type rawFile struct {
	Length   *int64             `bencode:"length"`
	Path     []string           `bencode:"path"`
	PathUTF8 bencode.RawMessage `bencode:"path.utf-8"`
	Attr     bencode.RawMessage `bencode:"attr"`
}

func parseInfo(data []byte) (*Info, error) {
	var raw rawInfo
	if err := bencode.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("metainfo: info: %w", err)
	}
	if raw.Pieces == nil && (raw.MetaVersion == 2 || raw.FileTree != nil) {
		return nil, fmt.Errorf("metainfo: %w", ErrV2Only)
	}
	if raw.MetaVersion != 0 && raw.MetaVersion != 1 && raw.MetaVersion != 2 {
		return nil, fmt.Errorf("metainfo: info: unsupported meta version %d", raw.MetaVersion)
	}
	info := &Info{
		Name:    raw.Name,
		Private: raw.Private != 0,
		Hybrid:  raw.MetaVersion == 2 || raw.FileTree != nil,
	}
	if s, ok := optString(raw.NameUTF8); ok && s != "" {
		info.Name = s
	}
	info.Source, _ = optString(raw.Source)
	if info.Name == "" {
		return nil, errors.New("metainfo: info: missing name")
	}
	if err := checkComponent(info.Name); err != nil {
		return nil, fmt.Errorf("metainfo: info: name: %w", err)
	}

	if raw.PieceLength == nil {
		return nil, errors.New("metainfo: info: missing piece length")
	}
	pl := *raw.PieceLength
	if pl < MinPieceLength || pl > MaxPieceLength || pl&(pl-1) != 0 {
		return nil, fmt.Errorf("metainfo: info: piece length %d is not a power of two from %d to %d", pl, MinPieceLength, MaxPieceLength)
	}
	info.PieceLength = pl

	switch {
	case raw.Length != nil && raw.Files != nil:
		return nil, errors.New("metainfo: info: has both length and files")
	case raw.Length != nil:
		if *raw.Length < 0 {
			return nil, fmt.Errorf("metainfo: info: negative length %d", *raw.Length)
		}
		info.Files = []File{{Path: []string{info.Name}, Length: *raw.Length}}
	case raw.Files != nil:
		info.MultiFile = true
		if err := info.setFiles(*raw.Files); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("metainfo: info: has neither length nor files")
	}

	var total int64
	for i := range info.Files {
		if info.Files[i].Length > MaxTotalLength-total {
			return nil, fmt.Errorf("metainfo: info: total length exceeds %d bytes", int64(MaxTotalLength))
		}
		info.Files[i].Offset = total
		total += info.Files[i].Length
	}
	info.Length = total
	if total == 0 {
		return nil, errors.New("metainfo: info: torrent has no data (total length 0)")
	}

	if raw.Pieces == nil {
		return nil, errors.New("metainfo: info: missing pieces")
	}
	if len(raw.Pieces)%HashSize != 0 {
		return nil, fmt.Errorf("metainfo: info: pieces length %d is not a multiple of %d", len(raw.Pieces), HashSize)
	}
	want := (total + pl - 1) / pl
	if got := int64(len(raw.Pieces) / HashSize); got != want {
		return nil, fmt.Errorf("metainfo: info: %d piece hashes for %d bytes in pieces of %d (want %d)", got, total, pl, want)
	}
	info.Pieces = raw.Pieces
	return info, nil
}

// setFiles validates the files of a multi-file torrent and stores them.
func (info *Info) setFiles(raw []rawFile) error {
	if len(raw) == 0 {
		return errors.New("metainfo: info: files list is empty")
	}
	info.Files = make([]File, len(raw))
	paths := make(map[string]bool, len(raw)) // file paths
	dirs := make(map[string]bool)            // folder paths implied by them
	for i, rf := range raw {
		if rf.Length == nil {
			return fmt.Errorf("metainfo: info: file %d: missing length", i)
		}
		if *rf.Length < 0 {
			return fmt.Errorf("metainfo: info: file %d: negative length %d", i, *rf.Length)
		}
		path := rf.Path
		var utf8Path []string
		if rf.PathUTF8 != nil && bencode.Unmarshal(rf.PathUTF8, &utf8Path) == nil && len(utf8Path) > 0 {
			path = utf8Path
		}
		if len(path) == 0 {
			return fmt.Errorf("metainfo: info: file %d: empty path", i)
		}
		if len(path) > MaxPathDepth {
			return fmt.Errorf("metainfo: info: file %d: path deeper than %d", i, MaxPathDepth)
		}
		n := len(info.Name)
		for _, c := range path {
			if err := checkComponent(c); err != nil {
				return fmt.Errorf("metainfo: info: file %d: path %q: %w", i, strings.Join(path, "/"), err)
			}
			n += 1 + len(c)
		}
		if n > MaxPathLength {
			return fmt.Errorf("metainfo: info: file %d: path longer than %d bytes", i, MaxPathLength)
		}
		attr, _ := optString(rf.Attr)
		f := File{
			Path:    append([]string{info.Name}, path...),
			Length:  *rf.Length,
			Attr:    attr,
			Padding: isPadding(attr, path),
		}
		info.Files[i] = f
		if f.Padding {
			continue // padding files are never created, so they cannot collide
		}
		key := strings.Join(path, "/")
		if paths[key] || dirs[key] {
			return fmt.Errorf("metainfo: info: file %d: path %q used twice", i, key)
		}
		paths[key] = true
		for j := 1; j < len(path); j++ {
			d := strings.Join(path[:j], "/")
			if paths[d] {
				return fmt.Errorf("metainfo: info: file %d: path %q is inside file %q", i, key, d)
			}
			dirs[d] = true
		}
	}
	return nil
}

// isPadding recognises BEP 47 padding files by their attribute, and the
// names older clients gave them.
func isPadding(attr string, path []string) bool {
	if strings.ContainsRune(attr, 'p') {
		return true
	}
	for _, c := range path {
		if c == ".____padding_file" {
			return true
		}
	}
	return strings.HasPrefix(path[len(path)-1], "_____padding_file")
}

// checkComponent reports why s cannot be one component of a file path
// under the download folder.
func checkComponent(s string) error {
	switch {
	case s == "":
		return errors.New("empty path component")
	case s == "." || s == "..":
		return fmt.Errorf("path component %q", s)
	case strings.ContainsAny(s, "/\\\x00"):
		return fmt.Errorf("path component %q contains a separator or NUL", s)
	case len(s) >= 2 && s[1] == ':' && (s[0]|0x20 >= 'a' && s[0]|0x20 <= 'z'):
		return fmt.Errorf("path component %q is a drive name", s)
	case len(s) > 255:
		return fmt.Errorf("path component longer than 255 bytes")
	}
	return nil
}
