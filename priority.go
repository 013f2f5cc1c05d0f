package aiotorrent

import (
	"fmt"
	"slices"
)

// Priority orders the files of a download: the pieces of files of a
// higher priority are fetched before the others, rarest first or in order
// within a priority as the strategy says. Pieces already started, and the
// pieces readers are waiting for, come first all the same. A piece shared
// by two files takes the higher priority of the two.
type Priority int8

// The priorities, Normal unless set.
const (
	Low    Priority = -1
	Normal Priority = 0
	High   Priority = 1
)

func (p Priority) String() string {
	switch p {
	case Low:
		return "low"
	case Normal:
		return "normal"
	case High:
		return "high"
	}
	return fmt.Sprintf("Priority(%d)", int8(p))
}

// ParsePriority reads "low", "normal" or "high".
func ParsePriority(s string) (Priority, error) {
	for _, p := range []Priority{Low, Normal, High} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("priority %q: want low, normal or high", s)
}

// SetFilePriority sets the priority of file f, before or during a
// download. The torrent's resume record keeps it (see Config.StateDir): a
// download that continues another takes its priorities, unless
// SetFilePriority was called first.
func (t *Torrent) SetFilePriority(f File, p Priority) error {
	if t.meta() == nil {
		return ErrNoMetadata
	}
	files := t.meta().Info.Files
	if f.Index < 0 || f.Index >= len(files) || files[f.Index].Padding {
		return fmt.Errorf("torrent %s: no file with index %d", t.Name(), f.Index)
	}
	if p < Low || p > High {
		return fmt.Errorf("torrent %s: priority %d out of range", t.Name(), p)
	}
	t.mu.Lock()
	if t.prio == nil {
		t.prio = make([]Priority, len(files))
	}
	t.prio[f.Index] = p
	t.prioSet = true
	prio := slices.Clone(t.prio)
	e := t.eng
	t.mu.Unlock()
	if e != nil {
		e.call(func() { e.setPriorities(prio) })
	}
	return nil
}

// FilePriority returns the priority of file f.
func (t *Torrent) FilePriority(f File) Priority {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f.Index < 0 || f.Index >= len(t.prio) {
		return Normal
	}
	return t.prio[f.Index]
}

// setPriorities gives each piece the highest priority of its files (on
// the loop, or before it starts).
func (e *engine) setPriorities(prio []Priority) {
	if len(prio) != len(e.info.Files) || slices.Equal(prio, e.filePrio) {
		return
	}
	e.filePrio = prio
	e.stateDirty = true
	for i := range e.info.NumPieces() {
		level := Normal // a piece of padding alone
		for k, f := range filesOfPiece(e.info, i) {
			if k == 0 || prio[f] > level {
				level = prio[f]
			}
		}
		e.picker.SetLevel(i, int8(level))
	}
}

// startPriorities applies, as the engine starts, the priorities set on
// the torrent, or else those its resume record holds (which the torrent
// then reports).
func (e *engine) startPriorities(saved []Priority) {
	t := e.t
	t.mu.Lock()
	prio := slices.Clone(t.prio)
	if !t.prioSet && saved != nil {
		prio = saved
		t.prio = slices.Clone(saved)
	}
	t.mu.Unlock()
	if prio != nil {
		e.setPriorities(prio)
	}
}
