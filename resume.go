package aiotorrent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/bitfield"
	"github.com/aiotorrent/aiotorrent/internal/resume"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/storage"
)

// stateSaveEvery is how often a running torrent's resume record is
// written while pieces are being verified. It is also written when a file
// completes, when the storage fails, and when the torrent stops.
const stateSaveEvery = 30 * time.Second

// DefaultStateDir returns the folder where resume records are kept when
// Config.StateDir is empty: $XDG_STATE_HOME/aiotorrent if that variable
// holds an absolute path, else ~/.local/state/aiotorrent on Unix systems,
// and the user's cache folder (os.UserCacheDir) plus "aiotorrent"
// elsewhere.
func DefaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "aiotorrent"), nil
	}
	switch runtime.GOOS {
	case "windows", "darwin", "ios", "plan9", "js", "wasip1":
		d, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("state folder: %w", err)
		}
		return filepath.Join(d, "aiotorrent"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("state folder: %w", err)
	}
	return filepath.Join(home, ".local", "state", "aiotorrent"), nil
}

// resolveStateDir turns Config.StateDir into the folder used, "" for none.
func resolveStateDir(cfg string, log interface{ Warn(string, ...any) }) string {
	switch cfg {
	case "-":
		return ""
	case "":
		d, err := DefaultStateDir()
		if err != nil {
			log.Warn("no resume records kept", "err", err)
			return ""
		}
		return d
	}
	d, err := filepath.Abs(cfg)
	if err != nil {
		log.Warn("no resume records kept", "err", err)
		return ""
	}
	return d
}

// lockState takes the torrent's record in folder dir for this run. A
// record held elsewhere (the torrent running in another process, or in
// another client with the same state folder) is left alone: this run
// keeps none, and hashes what is on disk.
func (e *engine) lockState(dir string) {
	if dir == "" {
		return
	}
	unlock, err := resume.Lock(dir, e.hash)
	if err != nil {
		e.log.Warn("no resume record for this run", "err", err)
		return
	}
	e.stateDir, e.unlock = dir, unlock
}

func (e *engine) unlockState() {
	if e.unlock != nil {
		e.unlock()
		e.unlock = nil
	}
}

// planCheck reads the torrent's resume record, if any, and compares it
// with the files in the download folder: the plan says which pieces to
// trust and which to hash. nil means hash everything.
func (e *engine) planCheck() *checkPlan {
	fstore, ok := e.store.(durable)
	if e.stateDir == "" || !ok {
		return nil
	}
	resume.Clean(e.stateDir, e.hash) // what a save cut short left
	st, err := resume.Load(e.stateDir, e.hash)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			e.log.Warn("resume record not used: every piece is checked", "err", err)
		}
		return nil
	}
	files, parts, err := fstore.Stamps()
	if err != nil {
		e.log.Warn("resume record not used: every piece is checked", "err", err)
		return nil
	}
	e.strategyName = st.Strategy
	if len(st.Files) == len(e.info.Files) {
		e.savedPrio = make([]Priority, len(st.Files))
		for i, f := range st.Files {
			e.savedPrio[i] = Priority(max(int8(Low), min(int8(High), f.Priority)))
		}
	}
	trusted, check := resume.Plan(st, e.info, e.dir, fstore.Selected(), files, parts)
	e.log.Info("resume record read", "trusted", trusted.Count(), "to check", check.Count())
	return &checkPlan{trusted: trusted, check: check}
}

// durable is what a storage needs for resume records: *storage.File,
// or a wrapper of it.
type durable interface {
	Sync() error
	MarkUnsynced(file int)
	Stamps() (files []storage.Stamp, parts storage.Stamp, err error)
	Selected() []bool
}

// stateSnapshot is what the loop hands to a save: the verified pieces and
// the settings as they were at one moment.
type stateSnapshot struct {
	pieces   *bitfield.Bitfield
	selected []bool
	strategy string
	prio     []Priority
	at       time.Time
	// final: taken once every write is over, so that the files hold no
	// verified piece the snapshot lacks.
	final bool
}

func (e *engine) snapshot() stateSnapshot {
	return stateSnapshot{
		pieces:   e.picker.HaveBitfield().Clone(),
		selected: e.store.(durable).Selected(),
		strategy: e.strategyName,
		prio:     slices.Clone(e.filePrio),
		at:       time.Now(),
	}
}

// racyWindow is how close to a snapshot a file's modification time marks
// it racy (resume.File.Racy): more than the coarsest file times (FAT's
// 2 s), so that a write after the snapshot that left the time as it was
// is still caught.
const racyWindow = 3 * time.Second

// saveState writes the resume record off the loop (on the loop), one save
// at a time: a request during a save makes another one follow it.
func (e *engine) saveState() {
	if e.stateDir == "" || e.cache != nil || e.closed {
		return
	}
	if _, ok := e.store.(durable); !ok {
		return
	}
	if e.saving {
		e.saveAgain = true
		return
	}
	e.saving, e.saveAgain, e.stateDirty = true, false, false
	e.lastSave = time.Now()
	snap := e.snapshot()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		err := e.writeState(snap)
		e.call(func() {
			e.saving = false
			if se := (*syncError)(nil); errors.As(err, &se) {
				e.fail(se.err) // the data may not be on disk: stop fetching more
			}
			if err != nil {
				e.stateDirty = true
				if e.saveErr == nil || e.saveErr.Error() != err.Error() {
					e.log.Warn("resume record not saved", "err", err)
				}
			}
			e.saveErr = err
			if e.saveAgain {
				e.saveState()
			}
		})
	}()
}

// writeState makes the snapshot's pieces durable, then records them with
// the files as they are now. The order is what makes a record safe after
// a power loss: every piece it lists was synced before it was written
// (data before state). A file written after the sync has a newer stamp, so
// a restart checks it.
func (e *engine) writeState(snap stateSnapshot) error {
	fstore := e.store.(durable)
	if err := fstore.Sync(); err != nil {
		return &syncError{err}
	}
	files, parts, err := fstore.Stamps()
	if err != nil {
		return err
	}
	meta, err := e.keepMetadata()
	if err != nil {
		e.log.Warn("metainfo not kept", "err", err)
	}
	st := &resume.State{
		Metadata: meta,
		InfoHash: e.hash,
		Dir:      e.dir,
		Pieces:   snap.pieces,
		Files:    make([]resume.File, len(files)),
		Parts:    parts,
		Strategy: snap.strategy,
		Saved:    time.Now(),
	}
	for i, stamp := range files {
		// Pieces verified after the snapshot may be written already, in
		// the stamp, and not listed: a racy file's unlisted pieces are
		// hashed at the next start rather than fetched again.
		racy := !snap.final && stamp.Exists && stamp.ModTime.After(snap.at.Add(-racyWindow))
		st.Files[i] = resume.File{Selected: snap.selected[i], Stamp: stamp, Racy: racy}
		if snap.prio != nil {
			st.Files[i].Priority = int8(snap.prio[i])
		}
	}
	return resume.Save(e.stateDir, st)
}

// saveFinal writes the record as the torrent stops, once the loop and
// every other goroutine of the torrent are gone. A failure is logged: the
// data is safe, and the next start checks what the record cannot vouch
// for.
func (e *engine) saveFinal() {
	if _, ok := e.store.(durable); !ok || e.stateDir == "" || e.cache != nil {
		return
	}
	snap := e.snapshot()
	snap.final = true
	if err := e.writeState(snap); err != nil {
		e.log.Warn("resume record not saved", "err", err)
	}
}

// keepMetadata writes the torrent's metainfo beside its record, once, so
// that a magnet link of it starts later with the metadata at hand; it
// returns its path. Saves run one at a time, so metaPath needs no lock.
func (e *engine) keepMetadata() (string, error) {
	if e.metaPath != "" {
		return e.metaPath, nil
	}
	p := resume.MetadataPath(e.stateDir, e.hash)
	if _, err := os.Stat(p); err != nil {
		data, err := e.t.meta().Marshal()
		if err != nil {
			return "", err
		}
		if p, err = resume.SaveMetadata(e.stateDir, e.hash, data); err != nil {
			return "", err
		}
	}
	e.metaPath = p
	return p, nil
}

// keepMetadata writes metainfo fetched for a magnet link to the client's
// state folder, unless one is there already, so that the link opens with
// its files next time (the engine writes it too, as it saves a record).
func (c *Client) keepMetadata(mi *metainfo.MetaInfo) {
	if c.stateDir == "" {
		return
	}
	if _, err := os.Stat(resume.MetadataPath(c.stateDir, mi.InfoHash)); err == nil {
		return
	}
	data, err := mi.Marshal()
	if err == nil {
		_, err = resume.SaveMetadata(c.stateDir, mi.InfoHash, data)
	}
	if err != nil {
		c.cfg.Logger.Warn("metadata not kept", "torrent", mi.Info.Name, "err", err)
	}
}

// cachedMetadata returns the metainfo kept for the torrent with info hash
// h in the client's state folder, or nil.
func (c *Client) cachedMetadata(h metainfo.Hash) *metainfo.MetaInfo {
	if c.stateDir == "" {
		return nil
	}
	mi, err := resume.LoadMetadata(c.stateDir, h)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.cfg.Logger.Warn("kept metainfo not used", "err", err)
		}
		return nil
	}
	return mi
}

// syncError is a save that failed making the data durable: a storage
// failure, not only a record's.
type syncError struct{ err error }

func (e *syncError) Error() string { return e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }
