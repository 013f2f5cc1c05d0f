package metainfo

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
)

// CreateOptions configures [Create]. The zero value makes a public torrent
// with no trackers, a piece length chosen from the content's size, and no
// creation date.
type CreateOptions struct {
	// PieceLength is the piece length: a power of two from MinPieceLength
	// to MaxPieceLength. Zero chooses one with [DefaultPieceLength].
	PieceLength int64
	// Trackers are announce URLs in tiers (BEP 12). The first tracker is
	// also written as "announce" for clients that read only that.
	Trackers [][]string
	// WebSeeds are BEP 19 web seed URLs.
	WebSeeds []string
	// Private sets the BEP 27 private flag.
	Private bool
	// Source sets the info dictionary's "source" string, which some
	// private trackers require; it changes the info hash.
	Source string
	// Name overrides the torrent's name (default: the base name of the path).
	Name string
	// Comment and CreatedBy are informational.
	Comment   string
	CreatedBy string
	// CreationDate is written when not zero. Leave it zero for output that
	// is byte-identical across runs.
	CreationDate time.Time
	// Threads is how many goroutines hash pieces (0: GOMAXPROCS).
	Threads int
	// Progress, if set, is called from one goroutine with the number of
	// bytes hashed so far, after each piece.
	Progress func(done, total int64)
}

// DefaultPieceLength picks a piece length for content of the given size,
// as common tools do: the smallest power of two from 16 KiB that keeps the
// torrent to at most about 1500 pieces, capped at 16 MiB.
func DefaultPieceLength(total int64) int64 {
	pl := int64(16 << 10)
	for pl < 16<<20 && total/pl >= 1500 {
		pl *= 2
	}
	return pl
}

// source is one file to hash: where it is on disk and its path in the torrent.
type source struct {
	osPath string
	path   []string // below the torrent's folder; nil for a single file
	length int64
}

// Create makes a torrent of the file or folder at root, hashing its
// content with opts.Threads goroutines. It reads the data once, streaming:
// memory use depends on the piece length and thread count, not on the
// size of the content. A folder's regular files are included in byte
// order of their paths; empty folders cannot be expressed and are left
// out. Symbolic links to files are followed, links to folders are not.
func Create(ctx context.Context, root string, opts CreateOptions) (*MetaInfo, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	name := opts.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(root))
	}
	if err := checkComponent(name); err != nil {
		return nil, fmt.Errorf("create: name: %w", err)
	}

	var files []source
	if st.IsDir() {
		if files, err = walk(root); err != nil {
			return nil, fmt.Errorf("create: %w", err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("create: %s: no files in folder", root)
		}
	} else if st.Mode().IsRegular() {
		files = []source{{osPath: root, length: st.Size()}}
	} else {
		return nil, fmt.Errorf("create: %s: not a regular file or folder", root)
	}
	var total int64
	for _, f := range files {
		total += f.length
	}
	if total == 0 {
		return nil, fmt.Errorf("create: %s: no data to share (all files are empty)", root)
	}
	if total > MaxTotalLength {
		return nil, fmt.Errorf("create: %s: %d bytes is more than the %d a torrent may hold", root, total, int64(MaxTotalLength))
	}

	pl := opts.PieceLength
	if pl == 0 {
		pl = DefaultPieceLength(total)
	}
	if pl < MinPieceLength || pl > MaxPieceLength || pl&(pl-1) != 0 {
		return nil, fmt.Errorf("create: piece length %d is not a power of two from %d to %d", pl, MinPieceLength, MaxPieceLength)
	}
	pieces, err := hashPieces(ctx, files, total, pl, opts.Threads, opts.Progress)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}

	info := infoDict{Name: name, PieceLength: pl, Pieces: pieces, Source: opts.Source}
	if opts.Private {
		info.Private = 1
	}
	if st.IsDir() {
		for _, f := range files {
			info.Files = append(info.Files, fileDict{Length: f.length, Path: f.path})
		}
	} else {
		info.Length = total
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}

	var tiers [][]string
	for _, t := range opts.Trackers {
		for _, u := range t {
			if err := CheckTrackerURL(u); err != nil {
				return nil, fmt.Errorf("create: tracker %q: %w", u, err)
			}
		}
		if len(t) > 0 {
			tiers = append(tiers, slices.Clone(t))
		}
	}
	for _, u := range opts.WebSeeds {
		if err := CheckWebSeedURL(u); err != nil {
			return nil, fmt.Errorf("create: web seed %q: %w", u, err)
		}
	}
	mi := &MetaInfo{
		Comment:      opts.Comment,
		CreatedBy:    opts.CreatedBy,
		URLList:      slices.Clone(opts.WebSeeds),
		CreationDate: opts.CreationDate,
		InfoBytes:    infoBytes,
		InfoHash:     sha1.Sum(infoBytes),
	}
	if len(tiers) > 0 {
		mi.Announce = tiers[0][0]
		mi.AnnounceList = tiers
	}
	// Parse what we wrote, so a created torrent passes the same checks as
	// one read from a file.
	parsed, err := parseInfo(infoBytes)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	mi.Info = *parsed
	return mi, nil
}

// infoDict and fileDict are the info dictionary as Create writes it.
type infoDict struct {
	Files       []fileDict `bencode:"files,omitempty"`
	Length      int64      `bencode:"length,omitempty"`
	Name        string     `bencode:"name"`
	PieceLength int64      `bencode:"piece length"`
	Pieces      []byte     `bencode:"pieces"`
	Private     int64      `bencode:"private,omitempty"`
	Source      string     `bencode:"source,omitempty"`
}

type fileDict struct {
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
}

// walk lists the regular files below root, sorted by path.
func walk(root string) ([]source, error) {
	// WalkDir does not descend into a root that is a symbolic link.
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, err
	}
	var files []source
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := os.Stat(p) // follows a symbolic link
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil // a link to a folder, a device, a socket...
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		path := strings.Split(filepath.ToSlash(rel), "/")
		for _, c := range path {
			if err := checkComponent(c); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		files = append(files, source{osPath: p, path: path, length: info.Size()})
		return nil
	})
	if len(files) > MaxFiles {
		return nil, fmt.Errorf("%s: more than %d files", root, MaxFiles)
	}
	slices.SortFunc(files, func(a, b source) int {
		return strings.Compare(strings.Join(a.path, "/"), strings.Join(b.path, "/"))
	})
	return files, err
}

// hashPieces reads the files in order as one stream and returns the SHA-1
// of each piece. One goroutine reads; threads goroutines hash. Buffers are
// recycled, so at most 2×threads pieces are in memory.
func hashPieces(ctx context.Context, files []source, total, pl int64, threads int, progress func(done, total int64)) ([]byte, error) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	npieces := int((total + pl - 1) / pl)
	threads = min(threads, npieces)
	pieces := make([]byte, npieces*HashSize)

	type job struct {
		index int
		buf   []byte
	}
	free := make(chan []byte, 2*threads)
	for range 2 * threads {
		free <- make([]byte, pl)
	}
	jobs := make(chan job, threads)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	for range threads {
		wg.Go(func() {
			for j := range jobs {
				h := sha1.Sum(j.buf)
				copy(pieces[j.index*HashSize:], h[:])
				free <- j.buf[:cap(j.buf)]
			}
		})
	}

	readErr := func() error {
		defer close(jobs)
		r := newMultiReader(files)
		defer r.close()
		var done int64
		for i := range npieces {
			if err := ctx.Err(); err != nil {
				return err
			}
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			n := min(pl, total-int64(i)*pl)
			if err := r.readFull(buf[:n]); err != nil {
				return err
			}
			jobs <- job{index: i, buf: buf[:n]}
			done += n
			if progress != nil {
				progress(done, total)
			}
		}
		return r.checkEnd()
	}()
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}
	return pieces, nil
}

// multiReader reads a list of files as one stream, opening one at a time
// and checking that each holds exactly the length it had when listed.
type multiReader struct {
	files []source
	i     int
	f     *os.File
	left  int64 // bytes still to read from f
}

func newMultiReader(files []source) *multiReader { return &multiReader{files: files, i: -1} }

func (r *multiReader) next() error {
	r.close()
	r.i++
	if r.i >= len(r.files) {
		return io.ErrUnexpectedEOF
	}
	f, err := os.Open(r.files[r.i].osPath)
	if err != nil {
		return err
	}
	r.f, r.left = f, r.files[r.i].length
	return nil
}

func (r *multiReader) readFull(buf []byte) error {
	for len(buf) > 0 {
		if r.f == nil || r.left == 0 {
			if err := r.checkFileEnd(); err != nil {
				return err
			}
			if err := r.next(); err != nil {
				return err
			}
			continue
		}
		n := int(min(int64(len(buf)), r.left))
		if _, err := io.ReadFull(r.f, buf[:n]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%s: file shrank while hashing", r.files[r.i].osPath)
			}
			return err
		}
		r.left -= int64(n)
		buf = buf[n:]
	}
	return nil
}

// checkFileEnd makes sure the current file has not grown since it was listed.
func (r *multiReader) checkFileEnd() error {
	if r.f == nil {
		return nil
	}
	var b [1]byte
	if n, _ := r.f.Read(b[:]); n > 0 {
		return fmt.Errorf("%s: file grew while hashing", r.files[r.i].osPath)
	}
	return nil
}

// checkEnd is called after the last piece: the last file must be at its end.
func (r *multiReader) checkEnd() error { return r.checkFileEnd() }

func (r *multiReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}
