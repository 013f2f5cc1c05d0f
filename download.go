package aiotorrent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/bitfield"
	"github.com/aiotorrent/aiotorrent/internal/picker"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// Strategy is the order pieces are fetched in.
type Strategy int

const (
	// Default fetches the rarest pieces first (at random among equals),
	// finishing started pieces before new ones; pieces complete in any
	// order.
	Default Strategy = iota
	// Sequential fetches pieces in file order and reports them complete
	// strictly in order.
	Sequential
)

func (s Strategy) String() string {
	if s == Sequential {
		return "sequential"
	}
	return "default"
}

// Piece is a verified piece, as reported to an OnPiece callback.
type Piece struct {
	Index  int   // piece index in the torrent
	Offset int64 // where the piece starts in the torrent's content
	Length int   // bytes
}

// Option configures a download.
type Option func(*options)

type options struct {
	strategy  Strategy
	strategyS bool // WithStrategy was given
	dir       string
	onPiece   func(Piece)
	memory    int64 // InMemory's capacity; 0: files
	readahead int64
	addr      string
	onServe   func(url string)
	onCheck   func(CheckProgress)
	ratio     float64
	seedTime  time.Duration
	partial   bool
	seedOnly  bool // Seed: the files are read, none is downloaded
}

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithStrategy sets the piece strategy (Default unless set).
//
// A download that does not say takes the strategy its torrent's resume
// record holds, if any (see Config.StateDir): the one of the download it
// continues.
func WithStrategy(s Strategy) Option {
	return func(o *options) { o.strategy, o.strategyS = s, true }
}

// WithDir sets the folder the torrent's files go into (the Client's
// DataDir unless set). A torrent keeps the folder of its first download.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// OnPiece calls fn with every piece of the downloaded files once it is
// verified and written, pieces already there first. Under Sequential the
// calls come strictly in piece order. fn runs on the downloading
// goroutine; the download waits while it runs.
func OnPiece(fn func(Piece)) Option { return func(o *options) { o.onPiece = fn } }

// client returns the torrent's client, joining the default one if the
// torrent was opened without a client.
func (t *Torrent) clientOrDefault() (*Client, error) {
	t.mu.Lock()
	c := t.client
	t.mu.Unlock()
	if c != nil {
		return c, nil
	}
	dc, err := DefaultClient()
	if err != nil {
		return nil, err
	}
	got, err := dc.add(t)
	if err != nil {
		return nil, err
	}
	if got != t {
		return nil, fmt.Errorf("torrent %s: the default client already has another Torrent for this info hash", t.infoHash)
	}
	return dc, nil
}

// running returns the torrent's engine, or nil if it is not started.
func (t *Torrent) running() *engine {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng
}

// start starts the engine if it is not running: on files in dir, or in
// memory when memory > 0. A caller that needs files (a download) says so
// with needDisk, and is refused a torrent running in memory.
func (t *Torrent) start(ctx context.Context, o options, needDisk bool, selected []bool) (*engine, error) {
	e, _, err := t.startOrJoin(ctx, o, needDisk, selected)
	return e, err
}

// startOrJoin is start; created reports whether this call started the
// engine rather than joined one running.
func (t *Torrent) startOrJoin(ctx context.Context, o options, needDisk bool, selected []bool) (e *engine, created bool, err error) {
	dir, memory := o.dir, o.memory
	if t.meta() == nil {
		return nil, false, ErrNoMetadata
	}
	c, err := t.clientOrDefault()
	if err != nil {
		return nil, false, err
	}
	t.mu.Lock()
	for t.starting != nil { // another call is checking the data: wait for it
		ch := t.starting
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		t.mu.Lock()
	}
	if t.closed {
		t.mu.Unlock()
		return nil, false, fmt.Errorf("torrent %s: %w", t.Name(), ErrClosed)
	}
	if t.eng != nil {
		defer t.mu.Unlock()
		if needDisk && t.eng.cache != nil {
			return nil, false, fmt.Errorf("torrent %s: %w", t.Name(), ErrInMemory)
		}
		if dir != "" && t.eng.cache == nil && filepath.Clean(dir) != t.dir {
			return nil, false, fmt.Errorf("torrent %s is already downloading into %s", t.Name(), t.dir)
		}
		t.eng.users++
		return t.eng, false, nil
	}
	if dir == "" {
		dir = c.cfg.DataDir
	}
	if dir == "" {
		dir = "."
	}
	// The data check may take a while: it runs without t.mu, and Close
	// cancels it.
	starting := make(chan struct{})
	checkCtx, cancel := context.WithCancel(c.ctx)
	defer context.AfterFunc(ctx, cancel)() // the caller's ctx ends the check too
	t.starting, t.cancelStart = starting, cancel
	peers := slices.Clone(t.extraPeers)
	t.mu.Unlock()

	if needDisk {
		memory = 0
	}
	e, err = startEngine(checkCtx, c, t, dir, memory, selected, peers, o.onCheck, o.seedOnly)
	cancel()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.starting, t.cancelStart = nil, nil
	close(starting)
	if err != nil {
		return nil, false, fmt.Errorf("torrent %s: %w", t.Name(), err)
	}
	if t.closed {
		t.stopping = append(t.stopping, e)
		go e.stop()
		return nil, false, fmt.Errorf("torrent %s: %w", t.Name(), ErrClosed)
	}
	t.eng = e
	t.dir = filepath.Clean(dir)
	e.users++
	if late := t.extraPeers[len(peers):]; len(late) > 0 {
		// AddPeers during the data check found no engine to tell.
		e.addPeers(late)
	}
	return e, true, nil
}

// Download fetches one file of the torrent into the download folder and
// returns once it is complete, verified and synced to disk, mirroring the
// Python library's download(file, strategy=...). The torrent keeps
// running afterwards (serving peers) until Close. Cancelling ctx stops the
// download; the torrent stops too if nothing else is downloading.
func (t *Torrent) Download(ctx context.Context, f File, opts ...Option) error {
	return t.DownloadFiles(ctx, []File{f}, opts...)
}

// DownloadAll fetches every file of the torrent; for a magnet link, once
// its metadata has arrived (see WaitMetadata).
func (t *Torrent) DownloadAll(ctx context.Context, opts ...Option) error {
	if err := t.WaitMetadata(ctx); err != nil {
		return err
	}
	return t.DownloadFiles(ctx, t.Files(), opts...)
}

// DownloadFiles fetches the given files (from Files) and returns once
// they are all complete. Only those files are created on disk.
func (t *Torrent) DownloadFiles(ctx context.Context, files []File, opts ...Option) error {
	if t.meta() == nil {
		return ErrNoMetadata
	}
	o := buildOptions(opts)
	if o.memory > 0 {
		return fmt.Errorf("torrent %s: a download needs files: %w", t.Name(), ErrInMemory)
	}
	info := &t.meta().Info
	sel := make([]bool, len(info.Files))
	for _, f := range files {
		if f.Index < 0 || f.Index >= len(info.Files) || info.Files[f.Index].Padding {
			return fmt.Errorf("torrent %s: no file with index %d", t.Name(), f.Index)
		}
		sel[f.Index] = true
	}
	e, err := t.start(ctx, o, true, sel)
	if err != nil {
		return err
	}
	w := &waiter{
		strategy: o.strategy,
		onPiece:  o.onPiece,
		notify:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		need:     bitfield.New(info.NumPieces()),
		in:       bitfield.New(info.NumPieces()),
	}
	ok := e.callWait(func() {
		e.resumeAfterFailure() // a paused download: try again
		if err := e.selectMore(sel); err != nil {
			w.finish(err)
			return
		}
		if !o.strategyS && e.strategyName == Sequential.String() {
			o.strategy = Sequential // the download this one continues
		}
		w.strategy = o.strategy
		ps := picker.RarestFirst
		if o.strategy == Sequential {
			ps = picker.Sequential
		}
		e.picker.SetStrategy(ps)
		if e.strategyName != o.strategy.String() {
			e.strategyName = o.strategy.String()
			e.stateDirty = true
		}
		for f, on := range sel {
			if !on {
				continue
			}
			w.files = append(w.files, f)
			begin, end := info.FilePieces(f)
			for i := begin; i < end; i++ {
				if w.in.Set(i) {
					w.order = append(w.order, i)
				}
			}
		}
		slices.Sort(w.order)
		for _, i := range w.order {
			if !e.picker.Have(i) {
				w.need.Set(i)
				w.left++
			}
		}
		w.deliver(info)
		e.waiters = append(e.waiters, w)
		e.checkWaiters()
		for p := range e.peers {
			e.setInterested(p, e.interesting(p))
		}
		e.fillAll()
		e.connectMore(time.Now())
	})
	if !ok {
		t.release(e, false)
		return fmt.Errorf("torrent %s: %w", t.Name(), ErrClosed)
	}
	for {
		select {
		case <-w.notify:
			w.run()
		case <-w.done:
			w.run()
			t.release(e, false)
			return w.err
		case <-ctx.Done():
			e.call(func() {
				e.waiters = slices.DeleteFunc(e.waiters, func(x *waiter) bool { return x == w })
			})
			t.release(e, true)
			return ctx.Err()
		}
	}
}

// release ends one use of e begun by start; with stop, the last use stops
// it unless Start keeps it running. The check and the detaching are one
// step under t.mu, so a start cannot slip in between.
func (t *Torrent) release(e *engine, stop bool) {
	t.mu.Lock()
	e.users--
	last := stop && e.users == 0 && !e.kept && t.eng == e
	if last {
		t.eng = nil
		t.stopping = append(t.stopping, e)
		if t.adopter == e {
			t.adopter = nil
		}
	}
	t.mu.Unlock()
	if last {
		e.stop()
	}
}

// stopEngine stops the running engine and waits for every engine being
// stopped by other calls too.
func (t *Torrent) stopEngine() error {
	t.mu.Lock()
	if t.eng != nil {
		t.stopping = append(t.stopping, t.eng)
		t.eng = nil
	}
	t.adopter = nil
	if t.cancelStart != nil {
		t.cancelStart()
	}
	stopping := slices.Clone(t.stopping)
	t.mu.Unlock()
	var errs []error
	for _, e := range stopping {
		errs = append(errs, e.stop())
	}
	t.mu.Lock()
	t.stopping = slices.DeleteFunc(t.stopping, func(e *engine) bool { return slices.Contains(stopping, e) })
	t.mu.Unlock()
	return errors.Join(errs...)
}

// Start starts the torrent without waiting for anything: it checks the
// data in the folder and serves peers (downloading what is missing) until
// Close, for callers that wait on their own (Stats, a Reader).
func (t *Torrent) Start(opts ...Option) error {
	e, err := t.serve(opts)
	if err != nil {
		return err
	}
	t.keep(e)
	return nil
}

// keep marks e, which the caller started, as running until Close, and
// ends the caller's use of it.
func (t *Torrent) keep(e *engine) {
	t.mu.Lock()
	e.kept = true
	t.mu.Unlock()
	t.release(e, false)
}

// serve starts the torrent with every file selected and marks it as
// kept running with no download waiting.
func (t *Torrent) serve(opts []Option) (*engine, error) {
	if t.meta() == nil {
		return nil, ErrNoMetadata
	}
	o := buildOptions(opts)
	sel := make([]bool, len(t.meta().Info.Files))
	if o.memory == 0 {
		for i := range sel {
			sel[i] = !t.meta().Info.Files[i].Padding
		}
	}
	e, err := t.start(context.Background(), o, false, sel)
	if err != nil {
		return nil, err
	}
	if e.cache != nil {
		// In memory only what readers read is fetched: wanting every
		// piece would evict and fetch again without end.
		return e, nil
	}
	ok := e.callWait(func() {
		if err := e.selectMore(sel); err != nil {
			e.fail(err)
		}
	})
	if !ok {
		t.release(e, false)
		return nil, fmt.Errorf("torrent %s: %w", t.Name(), ErrClosed)
	}
	return e, nil
}

// AddPeers gives the torrent peer addresses to connect to, besides those
// from trackers. It has effect while the torrent is running.
func (t *Torrent) AddPeers(addrs ...netip.AddrPort) {
	t.mu.Lock()
	t.extraPeers = append(t.extraPeers, addrs...)
	e := t.eng
	t.mu.Unlock()
	if e != nil {
		e.addPeers(addrs)
	}
}

// Close stops the torrent: it tells its trackers, closes its connections
// and files, and leaves its client.
func (t *Torrent) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	c := t.client
	fetch := t.fetch
	t.mu.Unlock()
	if fetch != nil {
		fetch.stop()
	}
	t.closeParked()
	err := t.stopEngine()
	if c != nil {
		c.remove(t)
	}
	return err
}

// selectMore selects more files in a running torrent.
func (e *engine) selectMore(sel []bool) error {
	var newly []bool
	for f, on := range sel {
		if on && !e.selected[f] {
			if newly == nil {
				newly = make([]bool, len(sel))
			}
			newly[f] = true
		}
	}
	if newly == nil {
		return nil
	}
	for f, on := range newly {
		if on {
			if err := e.store.Select(f, e.picker.Have); err != nil {
				return err
			}
		}
	}
	e.selectFiles(newly)
	e.stateDirty = true
	return nil
}

// waiter is one Download call waiting for its pieces and files.
type waiter struct {
	strategy Strategy
	onPiece  func(Piece)
	files    []int
	in       *bitfield.Bitfield // the pieces of its files
	need     *bitfield.Bitfield // of those, the ones not verified yet
	left     int
	order    []int // its pieces in index order
	next     int   // Sequential: next position in order to report
	reported *bitfield.Bitfield

	mu       sync.Mutex // guards queue
	queue    []Piece
	notify   chan struct{}
	done     chan struct{}
	err      error
	finished bool
}

// pieceDone is called on the loop when piece i is verified.
func (w *waiter) pieceDone(i int, e *engine) {
	if !w.need.Clear(i) {
		return
	}
	w.left--
	if w.onPiece != nil && w.strategy != Sequential {
		w.reported.Set(i)
		w.push([]Piece{{Index: i, Offset: int64(i) * e.info.PieceLength, Length: int(e.info.PieceSize(i))}})
		return
	}
	w.deliver(e.info)
}

// deliver queues the pieces that may be reported now: under Sequential
// the verified prefix of order, else every verified piece not reported.
func (w *waiter) deliver(info interface {
	PieceSize(int) int64
}) {
	if w.onPiece == nil {
		return
	}
	if w.reported == nil {
		w.reported = bitfield.New(w.in.Len())
	}
	var add []Piece
	pl := int64(0)
	if len(w.order) > 0 {
		pl = pieceLenOf(info)
	}
	piece := func(i int) Piece {
		return Piece{Index: i, Offset: int64(i) * pl, Length: int(info.PieceSize(i))}
	}
	if w.strategy == Sequential {
		for w.next < len(w.order) && !w.need.Has(w.order[w.next]) {
			add = append(add, piece(w.order[w.next]))
			w.next++
		}
	} else {
		for _, i := range w.order {
			if !w.need.Has(i) && w.reported.Set(i) {
				add = append(add, piece(i))
			}
		}
	}
	w.push(add)
}

// push queues pieces for the callback.
func (w *waiter) push(add []Piece) {
	if len(add) == 0 {
		return
	}
	w.mu.Lock()
	w.queue = append(w.queue, add...)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// pieceLenOf gets the piece length from the metainfo.Info behind info.
func pieceLenOf(info interface{ PieceSize(int) int64 }) int64 {
	return info.PieceSize(0)
}

// run calls the callback for queued pieces, on the Download goroutine.
func (w *waiter) run() {
	for {
		w.mu.Lock()
		q := w.queue
		w.queue = nil
		w.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, p := range q {
			w.onPiece(p)
		}
	}
}

func (w *waiter) finish(err error) {
	if w.finished {
		return
	}
	w.finished = true
	w.err = err
	close(w.done)
}

// checkWaiters finishes the downloads whose pieces are all verified and
// whose files are synced.
func (e *engine) checkWaiters() {
	e.waiters = slices.DeleteFunc(e.waiters, func(w *waiter) bool {
		if w.left > 0 {
			return false
		}
		for _, f := range w.files {
			if !e.fileSynced[f] {
				return false
			}
		}
		w.finish(nil)
		return true
	})
}

func announcerRequest(e *engine) tracker.AnnounceRequest {
	return tracker.AnnounceRequest{
		InfoHash: e.hash,
		PeerID:   tracker.PeerID(e.c.cfg.PeerID),
		Port:     e.c.port(),
		NumWant:  50,
		Left:     e.left.Load(),
	}
}

func joinPath(p []string) string { return strings.Join(p, "/") }
