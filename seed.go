package aiotorrent

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// checkReportEvery is how often OnCheck hears of a data check.
const checkReportEvery = 200 * time.Millisecond

// CheckProgress is how far the check of the data on disk has gone, as
// reported to an OnCheck callback.
type CheckProgress struct {
	Pieces   int // in the torrent
	Checked  int // read and hashed (or found missing) so far
	Verified int // of those, pieces whose data is there and right
	// Resumed is how many of the verified pieces were taken from the
	// torrent's resume record, without hashing them again: their files
	// have not changed since they were verified (see Config.StateDir).
	// They count as checked from the first call.
	Resumed int
	Done    bool // the check is over: the last call
}

// OnCheck calls fn as the data already in the download folder is checked
// when the torrent starts (pieces are hashed in parallel, one worker per
// core): every 200 ms and once at the end, one call at a time. A torrent
// already running is not checked again.
func OnCheck(fn func(CheckProgress)) Option { return func(o *options) { o.onCheck = fn } }

// SeedRatio makes Seed return once the torrent has uploaded ratio times
// its size since it started (0: no ratio limit).
func SeedRatio(ratio float64) Option { return func(o *options) { o.ratio = ratio } }

// SeedTime makes Seed return after seeding for d (0: no time limit).
func SeedTime(d time.Duration) Option { return func(o *options) { o.seedTime = d } }

// Partial lets Seed serve the pieces that are there when the data is
// incomplete, instead of refusing with an IncompleteError. Nothing is
// downloaded.
func Partial() Option { return func(o *options) { o.partial = true } }

// ErrIncomplete is what an IncompleteError matches with errors.Is.
var ErrIncomplete = errors.New("data incomplete")

// IncompleteError is returned by Seed when the data in the folder lacks
// pieces.
type IncompleteError struct {
	Name           string
	Dir            string
	Have, Pieces   int   // pieces
	Missing, Total int64 // bytes
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("torrent %s: the data in %s is incomplete: %d of %d pieces present, %s missing",
		e.Name, e.Dir, e.Have, e.Pieces, byteCount(e.Missing))
}

// Is makes errors.Is(err, ErrIncomplete) true.
func (e *IncompleteError) Is(target error) bool { return target == ErrIncomplete }

func byteCount(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Seed serves the torrent from the download folder to peers that want
// it: it checks the data there (see OnCheck) and refuses an incomplete
// torrent with an *IncompleteError unless Partial is given. Once seeding,
// it returns nil when ctx is cancelled or a SeedRatio or SeedTime limit
// is reached; ctx cancelled during the data check returns its error. A
// torrent Seed started then stops; one already running (downloaded or
// started before) goes on.
func (t *Torrent) Seed(ctx context.Context, opts ...Option) error {
	o := buildOptions(opts)
	o.seedOnly = true
	if o.memory > 0 {
		return fmt.Errorf("torrent %s: seeding needs files: %w", t.Name(), ErrInMemory)
	}
	if t.meta() == nil {
		return ErrNoMetadata
	}
	// Nothing is selected: a seed downloads nothing (a download already
	// running goes on).
	e, created, err := t.startOrJoin(ctx, o, true, make([]bool, len(t.meta().Info.Files)))
	if err != nil {
		return err
	}
	// The torrent stops with the seed only if the seed started it: a
	// torrent downloaded (or started) before goes on as it was.
	if left := e.left.Load(); left > 0 && !o.partial {
		var have int
		e.callWait(func() { have = e.picker.HaveBitfield().Count() })
		t.release(e, created)
		return &IncompleteError{Name: t.Name(), Dir: t.folder(), Have: have, Pieces: t.NumPieces(), Missing: left, Total: t.Length()}
	}
	defer t.release(e, created)
	var deadline <-chan time.Time
	if o.seedTime > 0 {
		timer := time.NewTimer(o.seedTime)
		defer timer.Stop()
		deadline = timer.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			return nil
		case <-tick.C:
			if o.ratio > 0 && float64(e.uploaded.Load()) >= o.ratio*float64(max(t.Length(), 1)) {
				return nil
			}
			var err error
			if !e.callWait(func() { err = e.err }) {
				return nil // stopped by Close
			}
			if err != nil {
				return err
			}
		}
	}
}

// folder is the download folder of the running torrent.
func (t *Torrent) folder() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dir
}
