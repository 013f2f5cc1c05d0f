// Package resume keeps what a torrent's download knows between runs: which
// pieces are verified and durable on disk, which files the storage writes,
// the piece strategy, and what each file looked like (size and
// modification time) when that was recorded. A restart that finds the
// files as they were trusts the record instead of hashing everything
// again ([Plan]).
//
// Each torrent has one small file, <info hash in hex>.resume, in a state
// folder, always replaced whole: written to a temporary file, synced,
// renamed over the old one, and the folder synced. A crash or power loss
// at any moment leaves the old record or the new one, never a mix. One
// file per torrent, rather than an embedded database, keeps processes
// that run different torrents out of each other's way (a database file is
// locked by one process at a time) and needs no dependency; the records
// are a few kilobytes, written every few seconds at most.
package resume

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/internal/bitfield"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/storage"
)

// Version is the format written; others are refused.
const Version = 1

// MaxSize bounds a record read back: the largest torrent (metainfo's
// bounds) needs far less.
const MaxSize = 16 << 20

// State is the record of one torrent.
type State struct {
	// InfoHash is the torrent's.
	InfoHash metainfo.Hash
	// Dir is the absolute path of the download folder the record is about.
	Dir string
	// Pieces holds the pieces verified and synced to disk.
	Pieces *bitfield.Bitfield
	// Files has one entry per file of the torrent (padding files too):
	// whether the storage keeps it in its own file (Selected) and what
	// that file looked like. Parts is the storage's parts file, which
	// holds the bytes of boundary pieces of files not selected.
	Files []File
	Parts storage.Stamp
	// Strategy is the piece strategy last asked for ("default",
	// "sequential"), "" if none.
	Strategy string
	// Metadata is the path of a copy of the torrent's metainfo, kept for a
	// torrent opened from a magnet link; "" if none.
	Metadata string
	// Saved is when the record was written.
	Saved time.Time
}

// File is what a State records of one file of the torrent.
type File struct {
	Selected bool
	Stamp    storage.Stamp
	// Racy says the file was written so close to when the record was
	// taken that it may hold verified pieces the record does not list,
	// within the same stamp (file times are coarse): a restart that finds
	// the stamp unchanged hashes the file's pieces the record does not
	// list instead of fetching them again (git's "racily clean" files).
	Racy bool
	// Priority is the file's download priority: -1 low, 0 normal, 1 high.
	Priority int8
}

// wire is the bencoded form.
type wire struct {
	Version  int        `bencode:"aiotorrent resume"`
	InfoHash []byte     `bencode:"info hash"`
	Dir      string     `bencode:"dir"`
	Count    int        `bencode:"piece count"`
	Pieces   []byte     `bencode:"pieces"`
	Files    []wireFile `bencode:"files"`
	Parts    wireStamp  `bencode:"parts"`
	Strategy string     `bencode:"strategy,omitempty"`
	Metadata string     `bencode:"metadata,omitempty"`
	Saved    int64      `bencode:"saved"`
}

type wireFile struct {
	Selected int   `bencode:"selected"`
	Racy     int   `bencode:"racy,omitempty"`
	Priority int   `bencode:"priority,omitempty"`
	Size     int64 `bencode:"size"`
	MTime    int64 `bencode:"mtime"`
}

// wireStamp has size -1 for a file that does not exist; mtime is in
// nanoseconds since 1970.
type wireStamp struct {
	Size  int64 `bencode:"size"`
	MTime int64 `bencode:"mtime"`
}

func toWire(s storage.Stamp) wireStamp {
	if !s.Exists {
		return wireStamp{Size: -1}
	}
	return wireStamp{Size: s.Size, MTime: s.ModTime.UnixNano()}
}

func (w wireStamp) stamp() (storage.Stamp, error) {
	switch {
	case w.Size == -1:
		return storage.Stamp{}, nil
	case w.Size < 0:
		return storage.Stamp{}, fmt.Errorf("size %d", w.Size)
	}
	return storage.Stamp{Exists: true, Size: w.Size, ModTime: time.Unix(0, w.MTime)}, nil
}

// Encode returns the bencoded record.
func Encode(s *State) ([]byte, error) {
	if s.Pieces == nil {
		return nil, errors.New("resume: no pieces")
	}
	w := wire{
		Version:  Version,
		InfoHash: s.InfoHash[:],
		Dir:      s.Dir,
		Count:    s.Pieces.Len(),
		Pieces:   s.Pieces.Bytes(),
		Files:    make([]wireFile, len(s.Files)),
		Parts:    toWire(s.Parts),
		Strategy: s.Strategy,
		Metadata: s.Metadata,
		Saved:    s.Saved.UnixNano(),
	}
	for i, f := range s.Files {
		ws := toWire(f.Stamp)
		w.Files[i] = wireFile{Size: ws.Size, MTime: ws.MTime}
		if f.Selected {
			w.Files[i].Selected = 1
		}
		if f.Racy {
			w.Files[i].Racy = 1
		}
		w.Files[i].Priority = int(f.Priority)
	}
	return bencode.Marshal(&w)
}

// Decode parses a record, checking it is whole and of this version.
func Decode(data []byte) (*State, error) {
	var w wire
	d := bencode.Decoder{MaxSize: MaxSize}
	if err := d.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	if w.Version != Version {
		return nil, fmt.Errorf("resume: version %d, want %d", w.Version, Version)
	}
	if len(w.InfoHash) != metainfo.HashSize {
		return nil, fmt.Errorf("resume: info hash of %d bytes", len(w.InfoHash))
	}
	if w.Count < 0 || w.Count > MaxSize*8 || len(w.Pieces) != (w.Count+7)/8 {
		return nil, fmt.Errorf("resume: %d bytes of pieces for %d pieces", len(w.Pieces), w.Count)
	}
	if !filepath.IsAbs(w.Dir) {
		return nil, fmt.Errorf("resume: folder %q is not absolute", w.Dir)
	}
	s := &State{
		Dir:      w.Dir,
		Pieces:   bitfield.FromBytes(w.Pieces, w.Count),
		Files:    make([]File, len(w.Files)),
		Strategy: w.Strategy,
		Metadata: w.Metadata,
		Saved:    time.Unix(0, w.Saved),
	}
	copy(s.InfoHash[:], w.InfoHash)
	var err error
	if s.Parts, err = w.Parts.stamp(); err != nil {
		return nil, fmt.Errorf("resume: parts file: %w", err)
	}
	for i, f := range w.Files {
		if f.Selected != 0 && f.Selected != 1 {
			return nil, fmt.Errorf("resume: file %d: selected %d", i, f.Selected)
		}
		if f.Racy != 0 && f.Racy != 1 {
			return nil, fmt.Errorf("resume: file %d: racy %d", i, f.Racy)
		}
		if f.Priority < -128 || f.Priority > 127 {
			return nil, fmt.Errorf("resume: file %d: priority %d", i, f.Priority)
		}
		s.Files[i].Selected = f.Selected == 1
		s.Files[i].Racy = f.Racy == 1
		s.Files[i].Priority = int8(f.Priority)
		if s.Files[i].Stamp, err = (wireStamp{Size: f.Size, MTime: f.MTime}).stamp(); err != nil {
			return nil, fmt.Errorf("resume: file %d: %w", i, err)
		}
	}
	return s, nil
}

// Path returns where the record of the torrent with info hash h lives in
// folder dir.
func Path(dir string, h metainfo.Hash) string {
	return filepath.Join(dir, h.String()+".resume")
}

// Load reads the record of the torrent with info hash h from folder dir.
// A missing record is an error wrapping fs.ErrNotExist.
func Load(dir string, h metainfo.Hash) (*State, error) {
	p := Path(dir, h)
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxSize+1)); err != nil {
		return nil, fmt.Errorf("resume: read %s: %w", p, err)
	}
	if buf.Len() > MaxSize {
		return nil, fmt.Errorf("resume: %s: larger than %d bytes", p, MaxSize)
	}
	s, err := Decode(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, p)
	}
	if s.InfoHash != h {
		return nil, fmt.Errorf("resume: %s holds the record of %s", p, s.InfoHash)
	}
	return s, nil
}

// Save writes the record into folder dir (created if need be, private to
// the user), replacing the old one atomically and durably: once Save
// returns, a power loss leaves this record.
func Save(dir string, s *State) error {
	data, err := Encode(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if err := replace(dir, Path(dir, s.InfoHash), data); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	return nil
}

// ErrLocked is returned by Lock when the record is held elsewhere.
var ErrLocked = errors.New("the torrent is running elsewhere with this state folder")

// LockPath returns the file Lock locks for the torrent with info hash h.
func LockPath(dir string, h metainfo.Hash) string {
	return filepath.Join(dir, h.String()+".lock")
}

// MetadataPath returns where the metainfo of the torrent with info hash h
// is kept in folder dir, for a magnet link of it to start without
// fetching the metadata again.
func MetadataPath(dir string, h metainfo.Hash) string {
	return filepath.Join(dir, h.String()+".torrent")
}

// SaveMetadata writes data, a .torrent file's bytes, as the kept metainfo
// of the torrent with info hash h, atomically, and returns its path.
func SaveMetadata(dir string, h metainfo.Hash, data []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("resume: %w", err)
	}
	p := MetadataPath(dir, h)
	if err := replace(dir, p, data); err != nil {
		return "", fmt.Errorf("resume: %w", err)
	}
	return p, nil
}

// LoadMetadata reads the kept metainfo of the torrent with info hash h; it
// must be that torrent's. A missing file is an error wrapping
// fs.ErrNotExist.
func LoadMetadata(dir string, h metainfo.Hash) (*metainfo.MetaInfo, error) {
	mi, err := metainfo.LoadFile(MetadataPath(dir, h))
	if err != nil {
		return nil, err
	}
	if mi.InfoHash != h {
		return nil, fmt.Errorf("resume: %s holds the metainfo of %s", MetadataPath(dir, h), mi.InfoHash)
	}
	return mi, nil
}

// SaveFile writes data as the file name of folder dir (created if need
// be), atomically, as Save writes a record: for other state kept beside
// the records, such as the DHT's routing table.
func SaveFile(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if err := replace(dir, filepath.Join(dir, name), data); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	return nil
}

// replace writes data to the file p in folder dir through a synced
// temporary file renamed over it, then syncs the folder.
func replace(dir, p string, data []byte) error {
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := p + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := writeSynced(tmp, data); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func writeSynced(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // folders cannot be synced there; NTFS journals renames
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Clean removes the temporary files a Save of the record of the torrent
// with info hash h left in folder dir when the process died during it.
func Clean(dir string, h metainfo.Hash) {
	for _, p := range []string{Path(dir, h), MetadataPath(dir, h)} {
		tmps, _ := filepath.Glob(p + ".tmp-*")
		for _, tmp := range tmps {
			os.Remove(tmp)
		}
	}
}

// Plan compares a record with the storage a torrent is about to start on,
// whose files are selected as sel (nil: every file) and look as files
// (one stamp per file of the torrent) and parts say now. It returns the
// pieces the record lets the torrent trust as verified, and the pieces
// that must be hashed. Pieces in neither are missing: not verified when
// the record was written, and in files that nothing has touched since.
//
// A piece is trusted only if every file it spans is kept where it was
// (in its own file, or in the parts file) and that file's size and
// modification time are exactly as recorded; any other piece of a
// changed file is hashed, whatever the record says of it. The pieces a
// racy file's record does not list are hashed too. With no usable
// record (nil, another folder, another torrent) every piece is hashed.
func Plan(s *State, info *metainfo.Info, dir string, sel []bool, files []storage.Stamp, parts storage.Stamp) (trusted, check *bitfield.Bitfield) {
	n := info.NumPieces()
	trusted, check = bitfield.New(n), bitfield.New(n)
	if s == nil || s.Pieces == nil || !sameDir(s.Dir, dir) || s.Pieces.Len() != n || len(s.Files) != len(info.Files) ||
		len(files) != len(info.Files) || sel != nil && len(sel) != len(info.Files) {
		for i := range n {
			check.Set(i)
		}
		return trusted, check
	}
	for f, file := range info.Files {
		if file.Padding || file.Length == 0 {
			continue
		}
		selected := sel == nil || sel[f]
		rec := s.Files[f]
		// Where the file's bytes are now, and where they were.
		loc, base := files[f], file.Offset // its own file, at file offsets
		same := rec.Selected == selected
		if same && selected {
			same = sameStamp(rec.Stamp, loc)
		} else if same {
			loc, base = parts, 0 // the parts file, at content offsets
			same = sameStamp(s.Parts, loc)
		}
		begin, end := info.FilePieces(f)
		for i := begin; i < end; i++ {
			listed := s.Pieces.Has(i)
			// A piece listed must have its bytes there: a file deleted
			// or cut short while the torrent ran was recorded so.
			pieceEnd := min(int64(i+1)*info.PieceLength, file.Offset+file.Length)
			there := loc.Exists && pieceEnd-base <= loc.Size
			if !same || listed && !there || rec.Racy && !listed {
				check.Set(i)
			}
		}
	}
	for i := range n {
		if !check.Has(i) && s.Pieces.Has(i) {
			trusted.Set(i)
		}
	}
	return trusted, check
}

func sameDir(a, b string) bool {
	ab, err := filepath.Abs(b)
	return err == nil && filepath.Clean(a) == ab
}

func sameStamp(a, b storage.Stamp) bool {
	return a.Exists == b.Exists && a.Size == b.Size && a.ModTime.Equal(b.ModTime)
}
