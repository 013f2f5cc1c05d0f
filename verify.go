package aiotorrent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/aiotorrent/aiotorrent/storage"
)

// VerifyResult is what Verify found in a folder.
type VerifyResult struct {
	Dir string
	// Pieces is the torrent's number of pieces, Verified how many are
	// there and right; Bad lists the others, in order.
	Pieces, Verified int
	Bad              []int
	// Files reports each file of the torrent (padding files left out).
	Files []FileCheck
}

// Complete reports whether every piece is there and right.
func (r *VerifyResult) Complete() bool { return r.Verified == r.Pieces }

// FileCheck is what Verify found of one file.
type FileCheck struct {
	File File
	// Size is the file's size on disk, -1 when it does not exist.
	Size int64
	// Pieces is the number of pieces the file spans; Bad lists those
	// that are missing or wrong (a piece shared with a neighbouring file
	// is bad for both when either is damaged).
	Pieces int
	Bad    []int
}

// OK reports whether the file is whole and right.
func (f *FileCheck) OK() bool { return len(f.Bad) == 0 && f.Size == f.File.Length }

// Verify checks the torrent's data in the download folder (WithDir, else
// the client's DataDir) against the piece hashes, without changing
// anything: no file or folder is created, no peer is contacted. Pieces
// are hashed in parallel, one worker per core; OnCheck reports the
// progress. A torrent running now is checked all the same, from disk.
func (t *Torrent) Verify(ctx context.Context, opts ...Option) (*VerifyResult, error) {
	if t.mi == nil {
		return nil, ErrNoMetadata
	}
	o := buildOptions(opts)
	// The torrent's client, if it has one (Verify starts none).
	t.mu.Lock()
	c := t.client
	t.mu.Unlock()
	log := slog.New(slog.DiscardHandler)
	dir := o.dir
	if c != nil {
		log = c.cfg.Logger
		if dir == "" {
			dir = c.cfg.DataDir
		}
	}
	if dir == "" {
		dir = "."
	}
	info := &t.mi.Info
	store, err := storage.NewFile(dir, info, t.infoHash, storage.FileOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("torrent %s: verify %s: %w", t.Name(), dir, err)
	}
	defer store.Close()
	good, err := checkPieces(ctx, store, info, o.onCheck, log)
	if err != nil {
		return nil, fmt.Errorf("torrent %s: verify %s: %w", t.Name(), dir, err)
	}
	ok := make([]bool, info.NumPieces())
	for _, i := range good {
		ok[i] = true
	}
	r := &VerifyResult{Dir: dir, Pieces: info.NumPieces(), Verified: len(good)}
	for i, v := range ok {
		if !v {
			r.Bad = append(r.Bad, i)
		}
	}
	for _, f := range t.Files() {
		fc := FileCheck{File: f, Size: -1}
		st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.Path)))
		switch {
		case err == nil && st.Mode().IsRegular():
			fc.Size = st.Size()
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("torrent %s: verify: %w", t.Name(), err)
		}
		if f.Length > 0 {
			begin, end := info.FilePieces(f.Index)
			fc.Pieces = end - begin
			for i := begin; i < end; i++ {
				if !ok[i] {
					fc.Bad = append(fc.Bad, i)
				}
			}
		}
		r.Files = append(r.Files, fc)
	}
	slices.SortFunc(r.Files, func(a, b FileCheck) int { return a.File.Index - b.File.Index })
	return r, nil
}
