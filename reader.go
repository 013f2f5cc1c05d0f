package aiotorrent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/picker"
)

// DefaultCacheSize is the memory [InMemory] keeps pieces in when given no
// size.
const DefaultCacheSize = 64 << 20

// errNoWindow is ReadAt's cue to register a window and read again.
var errNoWindow = errors.New("reader: no window to wait with")

// ErrInMemory is returned when a download or seeding asks for files of a
// torrent that runs in memory ([InMemory]).
var ErrInMemory = errors.New("the torrent is running in memory, without files")

// Readahead bounds, when it follows the reader's rate.
const (
	minReadahead  = 2 << 20
	maxReadahead  = 64 << 20
	readaheadTime = 4 // seconds of the reader's rate
)

// InMemory keeps the torrent's verified pieces in a bounded in-memory
// cache of capacity bytes (DefaultCacheSize when capacity <= 0) instead
// of files: nothing is written to disk. It is for streaming ([Torrent.NewReader],
// [Torrent.Stream]): only what readers read is fetched, and when the
// cache is full the pieces farthest behind every reader are dropped
// first (read again, they are fetched again). Downloads and seeding need
// files and refuse a torrent running in memory. It applies when the
// torrent starts; a running torrent keeps its storage.
func InMemory(capacity int64) Option {
	return func(o *options) {
		if capacity <= 0 {
			capacity = DefaultCacheSize
		}
		o.memory = capacity
	}
}

// WithReadahead sets how many bytes past a reader's position are fetched
// ahead of it. By default the readahead follows the reader's rate: about
// 4 seconds of reading, between 2 and 64 MiB (and at most half the
// cache in memory, shared between readers).
func WithReadahead(n int64) Option { return func(o *options) { o.readahead = n } }

// Reader reads one file of a torrent while it downloads. A Read waits
// until the bytes it needs are verified; the piece under the reader and a
// readahead window after it are fetched before anything else, the nearest
// first, and a Seek moves the window at once (requests only the old
// position needed are cancelled). Several readers of one torrent each
// get their window.
//
// Read and Seek move one position and are meant for one goroutine;
// ReadAt may be called concurrently with anything. A Reader holds the
// torrent running until Close.
type Reader struct {
	t      *Torrent
	e      *engine
	f      File
	ctx    context.Context
	rs     *readerState
	fixed  int64 // WithReadahead's, or 0
	done   chan struct{}
	closer sync.Once

	mu        sync.Mutex // guards what follows: Read and Seek
	pos       int64      // in the file
	limit     int64      // SetLimit's end, in the file, or 0
	told      int        // the piece last told to the loop (-1: none, -2: past the end)
	rate      float64    // bytes per second read, averaged
	rateStart time.Time
	rateBytes int64
}

// NewReader opens file f of the torrent for reading while it downloads,
// starting the torrent if needed (on files in the download folder, or in
// memory with [InMemory]). Nothing is fetched until the first Read or
// Seek. ctx bounds the reader: once it is done, blocked and later reads
// return its error. Options: [InMemory], [WithDir], [WithReadahead].
func (t *Torrent) NewReader(ctx context.Context, f File, opts ...Option) (*Reader, error) {
	if t.meta() == nil {
		return nil, ErrNoMetadata
	}
	info := &t.meta().Info
	if f.Index < 0 || f.Index >= len(info.Files) || info.Files[f.Index].Padding {
		return nil, fmt.Errorf("torrent %s: no file with index %d", t.Name(), f.Index)
	}
	file := info.Files[f.Index]
	f = File{Index: f.Index, Path: joinPath(file.Path), Length: file.Length, Offset: file.Offset}
	o := buildOptions(opts)
	e, err := t.start(ctx, o, false, make([]bool, len(info.Files)))
	if err != nil {
		return nil, err
	}
	// The reader starts parked at the end: no window until the first
	// Read or Seek.
	rs := &readerState{
		file: f.Index, begin: f.Offset, end: f.Offset + f.Length, pos: f.Offset + f.Length,
		ahead: cmp.Or(o.readahead, minReadahead), wait: -1, wake: make(chan error, 1),
	}
	r := &Reader{t: t, e: e, f: f, ctx: ctx, rs: rs, fixed: o.readahead, done: make(chan struct{}), told: -2}
	var addErr error
	if !e.callWait(func() { addErr = e.addReader(rs) }) {
		t.release(e, true)
		return nil, fmt.Errorf("torrent %s: %w", t.Name(), ErrClosed)
	}
	if addErr != nil {
		t.release(e, true)
		return nil, fmt.Errorf("torrent %s: %w", t.Name(), addErr)
	}
	return r, nil
}

// File returns the file being read.
func (r *Reader) File() File { return r.f }

// Read reads the next bytes of the file, waiting until they are
// downloaded and verified. It returns io.EOF at the end of the file.
func (r *Reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable(); err != nil {
		return 0, err
	}
	if r.pos >= r.f.Length {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p = p[:min(int64(len(p)), r.f.Length-r.pos)]
	n, err := r.read(r.rs, p, r.f.Offset+r.pos, true)
	r.pos += int64(n)
	r.account(n)
	if at := r.f.Offset + r.pos; r.pos < r.f.Length && r.e.pieceAt(at) != r.told {
		r.tell(at) // the window follows the position, read by read
	}
	return n, err
}

// ReadAt reads len(p) bytes at offset off of the file, waiting for them;
// it does not move the position Read uses, and fetches only the bytes
// asked for ahead of other pieces (no readahead).
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if err := r.usable(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("read %s at %d: negative offset", r.f.Path, off)
	}
	if off >= r.f.Length {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), r.f.Length-off))
	var rs *readerState // registered at the first piece to wait for
	defer func() {
		if rs != nil {
			r.e.call(func() { r.e.removeReader(rs) })
		}
	}()
	n := 0
	register := func(at int64) error {
		st := &readerState{file: r.f.Index, begin: r.f.Offset, end: r.f.Offset + r.f.Length,
			pos: at, ahead: r.f.Offset + off + int64(want) - at, wait: -1, wake: make(chan error, 1)}
		var addErr error
		if !r.e.callWait(func() { addErr = r.e.addReader(st) }) {
			return fmt.Errorf("torrent %s: %w", r.t.Name(), ErrClosed)
		}
		if addErr != nil {
			return addErr
		}
		rs = st
		return nil
	}
	for n < want {
		at := r.f.Offset + off + int64(n)
		if rs == nil && !r.e.haveBits.Has(r.e.pieceAt(at)) {
			if err := register(at); err != nil {
				return n, err
			}
		}
		k, err := r.read(rs, p[n:want], at, false)
		n += k
		if errors.Is(err, errNoWindow) && rs == nil {
			// The piece was there at the check but evicted before the
			// read: wait for it like any other.
			if err := register(at); err != nil {
				return n, err
			}
			continue
		}
		if err != nil {
			return n, err
		}
	}
	if want < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Seek sets the position of the next Read, as io.Seeker says, and moves
// the reader's window there at once. Seeking past the end is allowed
// (reads then return io.EOF) and fetches nothing.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable(); err != nil {
		return 0, err
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.f.Length + offset
	default:
		return 0, fmt.Errorf("seek %s: bad whence %d", r.f.Path, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek %s: negative position %d", r.f.Path, abs)
	}
	if abs != r.pos {
		r.rateStart, r.rateBytes = time.Time{}, 0 // the rate is of reading, not jumping
	}
	r.pos = abs
	if abs >= r.f.Length {
		if r.told != -2 {
			r.tell(r.f.Offset + r.f.Length)
		}
	} else if at := r.f.Offset + abs; r.e.pieceAt(at) != r.told {
		r.tell(at)
	}
	return abs, nil
}

// SetLimit says the reader will not be read past end (an offset in the
// file, exclusive; 0 for no limit): its window stops there, so nothing
// past it is fetched ahead. Reads past it still work. An HTTP response
// for a range sets it to the range's end.
func (r *Reader) SetLimit(end int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if end < 0 {
		end = 0
	}
	r.limit = end
	if r.told != -2 && r.pos < r.f.Length {
		r.tell(r.f.Offset + r.pos)
	}
}

// Close releases the reader: its window is dropped and blocked reads
// return. The torrent stops if nothing else uses it (no download, no
// other reader, no Start).
func (r *Reader) Close() error {
	r.closer.Do(func() {
		close(r.done)
		r.e.call(func() { r.e.removeReader(r.rs) })
		r.t.release(r.e, true)
	})
	return nil
}

// usable returns why the reader cannot read, if it cannot.
func (r *Reader) usable() error {
	select {
	case <-r.done:
		return fmt.Errorf("read %s: %w", r.f.Path, fs.ErrClosed)
	default:
	}
	return r.ctx.Err()
}

// tell moves the reader's window to content offset at, on the loop,
// without waiting.
func (r *Reader) tell(at int64) {
	rs, ahead := r.rs, r.readahead()
	var limit int64
	if r.limit > 0 {
		limit = r.f.Offset + r.limit
	}
	if at >= rs.end {
		r.told = -2
	} else {
		r.told = r.e.pieceAt(at)
	}
	r.e.call(func() {
		rs.pos, rs.ahead, rs.limit = at, ahead, limit
		r.e.updateReaders()
	})
}

// readahead is the window the reader asks for.
func (r *Reader) readahead() int64 {
	if r.fixed > 0 {
		return r.fixed
	}
	return int64(min(max(r.rate*readaheadTime, minReadahead), maxReadahead))
}

// account feeds the read rate with n bytes just read.
func (r *Reader) account(n int) {
	now := time.Now()
	if r.rateStart.IsZero() {
		r.rateStart = now
		return
	}
	r.rateBytes += int64(n)
	if dt := now.Sub(r.rateStart).Seconds(); dt >= 0.25 {
		v := float64(r.rateBytes) / dt
		if r.rate == 0 {
			r.rate = v
		} else {
			r.rate = 0.5*v + 0.5*r.rate
		}
		r.rateStart, r.rateBytes = now, 0
	}
}

// read reads at most len(p) bytes at content offset off, at least one,
// waiting for them with rs (moving its window when move is set).
func (r *Reader) read(rs *readerState, p []byte, off int64, move bool) (int, error) {
	e := r.e
	tries := 0
	for {
		i := e.pieceAt(off)
		if move && i != r.told {
			r.tell(off)
		}
		if !e.haveBits.Has(i) {
			if err := r.wait(rs, i, off); err != nil {
				return 0, err
			}
			continue
		}
		// The verified bytes from off on, up to len(p).
		n := int64(0)
		for j := i; n < int64(len(p)) && j < e.info.NumPieces() && e.haveBits.Has(j); j++ {
			n = int64(j+1)*e.info.PieceLength - off
		}
		n = min(n, int64(len(p)))
		k, err := e.store.ReadAt(p[:n], off)
		if k > 0 || err == nil {
			return k, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || tries >= 10 {
			return 0, fmt.Errorf("read %s: %w", r.f.Path, err)
		}
		// Evicted from the cache between the check and the read: it is
		// fetched again.
		tries++
		if err := r.wait(rs, i, off); err != nil {
			return 0, err
		}
	}
}

// wait blocks until piece i is verified, with rs's window at off.
func (r *Reader) wait(rs *readerState, i int, off int64) error {
	e := r.e
	if rs == nil {
		return errNoWindow // ReadAt registers one and reads again
	}
	if !e.call(func() {
		rs.pos = off
		e.updateReaders()
		if e.err != nil {
			rs.signal(e.err)
		} else if e.picker.Have(i) {
			rs.signal(nil)
		} else if rs.wait != i {
			rs.wait, rs.waitSince = i, time.Now()
		}
	}) {
		return fmt.Errorf("torrent %s: %w", r.t.Name(), ErrClosed)
	}
	select {
	case err := <-rs.wake:
		return err
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-r.done:
		return fmt.Errorf("read %s: %w", r.f.Path, fs.ErrClosed)
	case <-e.ctx.Done():
		return fmt.Errorf("torrent %s: %w", r.t.Name(), ErrClosed)
	}
}

// readerState is a reader as the loop sees it; the loop owns its fields
// once it is added.
type readerState struct {
	file       int
	begin, end int64 // the file, in content offsets
	pos        int64 // content offset being read
	ahead      int64 // readahead asked for
	limit      int64 // SetLimit's end, in content offsets, or 0
	wait       int   // piece a read waits for, or -1
	waitSince  time.Time
	wake       chan error
}

// signal wakes the reader's waiting read, with err if not nil.
func (rs *readerState) signal(err error) {
	select {
	case rs.wake <- err:
	default:
	}
}

// window returns the first and last piece of rs's window (last < first
// when it is empty), given the readahead cap.
func (e *engine) window(rs *readerState, maxAhead int64) (first, last int) {
	if rs.pos >= rs.end {
		return 0, -1
	}
	ahead := max(min(rs.ahead, maxAhead), 1)
	end := min(rs.pos+ahead, rs.windowEnd())
	return e.pieceAt(rs.pos), e.pieceAt(end - 1)
}

// windowEnd is where rs's window must end: the file's end, or its limit
// (past which only the piece being read is fetched).
func (rs *readerState) windowEnd() int64 {
	if rs.limit > 0 {
		return min(max(rs.limit, rs.pos+1), rs.end)
	}
	return rs.end
}

func (e *engine) pieceAt(off int64) int { return int(off / e.info.PieceLength) }

// addReader registers a reader, on the loop. On files, the reader's file
// is created so its pieces are written into it.
func (e *engine) addReader(rs *readerState) error {
	if e.err != nil {
		return e.err
	}
	if e.cache == nil {
		if err := e.store.Select(rs.file, e.picker.Have); err != nil {
			return err
		}
	}
	e.readers[rs] = struct{}{}
	e.streaming = true
	e.updateReaders()
	return nil
}

// removeReader drops a reader, on the loop.
func (e *engine) removeReader(rs *readerState) {
	if _, ok := e.readers[rs]; !ok {
		return
	}
	delete(e.readers, rs)
	e.updateReaders()
}

// underReader reports whether a reader is on piece i.
func (e *engine) underReader(i int) bool {
	for rs := range e.readers {
		if rs.pos < rs.end && e.pieceAt(rs.pos) == i {
			return true
		}
	}
	return false
}

// lateAfter is how long a read waits for its piece before the blocks
// of the piece still awaited are asked of a second peer.
const lateAfter = 500 * time.Millisecond

// readerLate reports whether a read has waited for its piece for longer
// than lateAfter.
func (e *engine) readerLate() bool {
	for rs := range e.readers {
		if rs.wait >= 0 && time.Since(rs.waitSince) > lateAfter {
			return true
		}
	}
	return false
}

// wakeReaders wakes the readers waiting for piece i.
func (e *engine) wakeReaders(i int) {
	for rs := range e.readers {
		if rs.wait == i {
			rs.wait = -1
			rs.signal(nil)
		}
	}
}

type prioCand struct {
	dist  int64 // bytes from the reader's position to the piece
	piece int
}

// maxAhead is the most readahead each reader gets: in memory the windows
// together take at most half the cache.
func (e *engine) maxAhead() int64 {
	if e.cache == nil || len(e.readers) == 0 {
		return math.MaxInt64
	}
	return max(e.cache.Capacity()/2/int64(len(e.readers)), e.info.PieceLength)
}

// updateReaders recomputes the pieces the readers want: each reader's
// window is wanted, first in the picker's order by distance from its
// reader; pieces leaving every window that no download wants stop being
// fetched, their requests cancelled.
func (e *engine) updateReaders() {
	next := e.spare // clear
	cands := e.prioCands[:0]
	maxAhead := e.maxAhead()
	for rs := range e.readers {
		first, last := e.window(rs, maxAhead)
		for i := first; i <= last; i++ {
			d := max(0, int64(i)*e.info.PieceLength-rs.pos)
			cands = append(cands, prioCand{d, i})
		}
		if last < first {
			continue
		}
		// A window that shrinks (the reader slowed down) keeps what it
		// had up to twice its size (within the cap): dropping pieces being
		// fetched to ask for them again a moment later wastes more than
		// it saves.
		ahead := max(min(rs.ahead, maxAhead), 1)
		end := min(rs.pos+min(2*ahead, maxAhead), rs.windowEnd())
		for i := last + 1; i <= e.pieceAt(end-1) && e.readerWant.Has(i); i++ {
			cands = append(cands, prioCand{int64(i)*e.info.PieceLength - rs.pos, i})
		}
	}
	slices.SortFunc(cands, func(a, b prioCand) int {
		return cmp.Or(cmp.Compare(a.dist, b.dist), cmp.Compare(a.piece, b.piece))
	})
	old := e.prio
	prio := make([]int, 0, len(cands))
	urgent := 0
	for _, c := range cands {
		if next.Set(c.piece) { // the first (nearest) time the piece comes
			prio = append(prio, c.piece)
			if c.dist == 0 {
				urgent++
			}
		}
	}
	e.prioCands = cands
	for _, i := range prio {
		if !e.readerWant.Has(i) {
			e.picker.Want(i, true)
		}
	}
	dropped := false
	for _, i := range old {
		if !next.Has(i) && !e.downloadWants(i) {
			e.picker.Want(i, false)
			if e.abandon(i) {
				dropped = true
			}
		}
	}
	e.picker.SetEndgame(e.downloading())
	e.readerWant, e.spare = next, e.readerWant
	for _, i := range old {
		e.spare.Clear(i)
	}
	e.prio = prio
	e.picker.SetPriority(prio, urgent)
	if len(prio) > 0 {
		for p := range e.peers {
			if !p.amInterested && e.interesting(p) {
				e.setInterested(p, true)
			}
		}
	}
	if dropped || len(prio) > 0 {
		e.fillAll()
		e.connectMore(time.Now())
	}
}

// downloading reports whether a file is selected for download: readers
// alone want windows of pieces, and no endgame.
func (e *engine) downloading() bool {
	return slices.Contains(e.selected, true)
}

// downloadWants reports whether a download wants piece i: it belongs to
// a selected file.
func (e *engine) downloadWants(i int) bool {
	for _, f := range filesOfPiece(e.info, i) {
		if e.selected[f] {
			return true
		}
	}
	return false
}

// abandon stops fetching piece i, which nobody wants any more: its
// requests are cancelled and its blocks freed. A piece being verified is
// left to finish. It reports whether anything was dropped.
func (e *engine) abandon(i int) bool {
	if !e.picker.Active(i) || e.verifying.Has(i) {
		return false
	}
	for p := range e.peers {
		keep := p.reqs[:0]
		var cancel []picker.Block
		for _, b := range p.reqs {
			if b.Piece == i {
				cancel = append(cancel, b)
			} else {
				keep = append(keep, b)
			}
		}
		p.reqs = keep
		p.sendCancels(cancel)
	}
	e.dropBlocks(i)
	e.picker.Abandon(i)
	return true
}

// makeRoom evicts cached pieces until size more bytes fit in the cache
// (with the pieces being verified): first the pieces farthest behind
// every reader, then those farthest ahead of them, then pieces of the
// readers' windows (the farthest first) and last the pieces under
// readers, when there are more readers than the cache holds pieces.
func (e *engine) makeRoom(size int64) {
	for e.cache.Used()+e.cacheRes+size > e.cache.Capacity() {
		v := e.victim()
		if v < 0 {
			return // nothing cached: the pieces being verified fill it
		}
		e.haveBits.Clear(v)
		e.cache.Evict(v)
		e.picker.Unverified(v)
		e.left.Add(e.info.PieceSize(v))
	}
}

// victim returns the cached piece to evict first, or -1.
func (e *engine) victim() int {
	e.evictBuf = e.cache.Pieces(e.evictBuf[:0])
	best, bestScore := -1, int64(math.MinInt64)
	pl := e.info.PieceLength
	const tier = int64(1) << 50 // above any distance in bytes
	for _, i := range e.evictBuf {
		if e.verifying.Has(i) {
			continue
		}
		start, end := int64(i)*pl, int64(i)*pl+e.info.PieceSize(i)
		// Behind every reader: by the distance to the nearest reader;
		// ahead: by the distance from the nearest reader behind it.
		behind, ahead := int64(math.MaxInt64), int64(math.MaxInt64)
		under := false
		for rs := range e.readers {
			switch {
			case end <= rs.pos:
				behind = min(behind, rs.pos-end)
			case start <= rs.pos:
				under = true
			default:
				ahead = min(ahead, start-rs.pos)
			}
		}
		var score int64
		switch {
		case under:
			score = 0
		case ahead == math.MaxInt64:
			score = 3*tier + min(behind, tier-1)
		case !e.readerWant.Has(i):
			score = 2*tier + min(ahead, tier-1)
		default:
			score = tier + min(ahead, tier-1)
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// ReaderStats is one open reader, as Stats reports it.
type ReaderStats struct {
	File      int   // the file's index
	Position  int64 // in the file, as last told to the torrent (to a piece)
	Readahead int64 // bytes fetched ahead of it
	Waiting   bool  // a read waits for a piece
}

func (e *engine) readerStats() []ReaderStats {
	var out []ReaderStats
	maxAhead := e.maxAhead()
	for rs := range e.readers {
		out = append(out, ReaderStats{
			File: rs.file, Position: min(rs.pos, rs.end) - rs.begin,
			Readahead: min(rs.ahead, maxAhead), Waiting: rs.wait >= 0,
		})
	}
	slices.SortFunc(out, func(a, b ReaderStats) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Position, b.Position))
	})
	return out
}

// atomicBits is a bitfield readers check without the loop; the loop sets
// and clears bits.
type atomicBits []atomic.Uint64

func newAtomicBits(n int) atomicBits { return make(atomicBits, (n+63)/64) }

func (b atomicBits) Has(i int) bool { return b[i/64].Load()&(1<<(i%64)) != 0 }
func (b atomicBits) Set(i int)      { b[i/64].Or(1 << (i % 64)) }
func (b atomicBits) Clear(i int)    { b[i/64].And(^uint64(1 << (i % 64))) }
