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

	"github.com/aiotorrent/aiotorrent/internal/resume"
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
	// Withdrawn lists the pieces taken out of the torrent's resume record
	// (see Config.StateDir) because they were found damaged: the next
	// start fetches them again. RecordErr says why the record could not be
	// updated, such as the torrent running with it; nil otherwise.
	Withdrawn []int
	RecordErr error
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
//
// The folder is left as it is; only the torrent's resume record (see
// Config.StateDir) may change: pieces it vouched for that are found
// damaged are withdrawn from it, so that the next start fetches them
// again even if the damage left the files' sizes and times as they were.
func (t *Torrent) Verify(ctx context.Context, opts ...Option) (*VerifyResult, error) {
	if t.meta() == nil {
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
	info := &t.meta().Info
	store, err := storage.NewFile(dir, info, t.infoHash, storage.FileOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("torrent %s: verify %s: %w", t.Name(), dir, err)
	}
	defer store.Close()
	good, err := checkPieces(ctx, store, info, nil, o.onCheck, log)
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
	stateDir := resolveStateDir("", log) // a torrent without a client: the default folder
	if c != nil {
		stateDir = c.stateDir
	}
	if stateDir != "" && r.Verified < r.Pieces {
		r.Withdrawn, r.RecordErr = withdrawDamaged(stateDir, t, dir, ok)
		if r.RecordErr != nil {
			log.Warn("resume record not updated", "torrent", t.Name(), "err", r.RecordErr)
		}
	}
	return r, nil
}

// withdrawDamaged removes from the torrent's resume record for folder dir
// the pieces it holds verified that ok says are not. Only pieces whose
// bytes the record keeps in the torrent's own files are withdrawn: those
// are the bytes Verify read.
func withdrawDamaged(stateDir string, t *Torrent, dir string, ok []bool) ([]int, error) {
	if _, err := os.Stat(resume.Path(stateDir, t.infoHash)); err != nil {
		return nil, nil // no record
	}
	unlock, err := resume.Lock(stateDir, t.infoHash)
	if err != nil {
		// Running: its record is its own, written again as it stops.
		return nil, fmt.Errorf("%w; stop it, then verify again for the next start to fetch the damaged pieces", err)
	}
	defer unlock()
	st, err := resume.Load(stateDir, t.infoHash)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil || st.Dir != abs || st.Pieces.Len() != len(ok) || len(st.Files) != len(t.meta().Info.Files) {
		return nil, err // another folder's record, or another torrent's shape
	}
	var withdrawn []int
	for i, good := range ok {
		if good || !st.Pieces.Has(i) {
			continue
		}
		own := true
		for _, f := range filesOfPiece(&t.meta().Info, i) {
			own = own && st.Files[f].Selected
		}
		if own {
			st.Pieces.Clear(i)
			withdrawn = append(withdrawn, i)
		}
	}
	if withdrawn == nil {
		return nil, nil
	}
	if err := resume.Save(stateDir, st); err != nil {
		return nil, err
	}
	return withdrawn, nil
}
