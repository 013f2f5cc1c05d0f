package aiotorrent

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/announcer"
	"github.com/aiotorrent/aiotorrent/internal/bitfield"
	"github.com/aiotorrent/aiotorrent/internal/choker"
	"github.com/aiotorrent/aiotorrent/internal/picker"
	"github.com/aiotorrent/aiotorrent/internal/readcache"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
	"github.com/aiotorrent/aiotorrent/storage"
)

// block is a pooled 16 KiB buffer a received block is read into.
type block = [peer.BlockSize]byte

var blockPool = sync.Pool{New: func() any { return new(block) }}

func getBlock() *block  { return blockPool.Get().(*block) }
func putBlock(b *block) { blockPool.Put(b) }

// Tuning of the request pipeline.
const (
	initialRequests = 64   // requests in flight to a new peer
	minRequests     = 4    // floor once the peer's rate is known
	maxRequests     = 256  // ceiling, and what we assume of a peer that does not say (reqq)
	maxPeerRequests = 1024 // requests we queue for a peer before rejecting (our reqq)
	maxHashQueue    = 16   // complete pieces awaiting verification before new pieces wait
	queueTime       = 1    // seconds of a peer's rate to keep requested
)

// engine runs one torrent: its state is owned by the goroutine in run,
// which every other goroutine (peer readers and writers, hashers, dialers,
// the announcer, API calls) talks to through events.
type engine struct {
	t      *Torrent
	c      *Client
	info   *metainfo.Info
	hash   metainfo.Hash
	store  storage.Storage
	limits peer.Limits
	log    *slog.Logger

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // every goroutine of this torrent
	loopWG   sync.WaitGroup // the loop
	events   chan event
	stopOnce sync.Once
	stopErr  error        // of the stop, for every caller
	sendMu   sync.RWMutex // read-held by call while it sends to events
	stopping bool         // guarded by sendMu: events takes nothing more
	hashed   chan hashResult
	work     workQueue // verifies pieces, one worker per core

	// Counters read by the announcer and Stats from other goroutines.
	downloaded atomic.Int64 // payload bytes received
	uploaded   atomic.Int64 // payload bytes sent
	wasted     atomic.Int64 // received but not needed, or failed
	left       atomic.Int64 // bytes of the torrent not verified

	announcer *announcer.Announcer

	// Owned by the loop.
	picker     *picker.Picker
	peers      map[*peerConn]struct{}
	known      map[netip.AddrPort]*candidate
	dialing    int
	bufs       []*pieceBuf
	hashing    int
	selected   []bool // files selected
	fileLeft   []int  // per selected file: pieces not verified yet
	fileSynced []bool // selected file complete and synced
	waiters    []*waiter
	suspects   map[int][]blockSum // smart ban: blocks of a failed piece and who sent them
	scratch    []picker.Block
	unchoked   int
	held       int64 // bytes of block buffers in pieces being fetched or verified
	budget     int64 // the most held plus requested bytes
	err        error // fatal storage error
	downRate   byteRate
	upRate     byteRate
	lastDown   int64
	lastUp     int64
	closed     bool
	users      int  // guarded by t.mu: Downloads and Seeds using it
	kept       bool // guarded by t.mu: Start keeps it running until Close

	onComplete func(piece int) // tests: called on the loop as each piece has all its blocks

	// Streaming (reader.go).
	streaming  bool           // readers have come (or may: in memory): interest in any piece we lack
	cache      *storage.Cache // the storage when in memory, else nil
	cacheRes   int64          // cache bytes reserved for pieces being verified
	haveBits   atomicBits     // verified pieces, for readers off the loop
	verifying  *bitfield.Bitfield
	readers    map[*readerState]struct{}
	readerWant *bitfield.Bitfield // pieces in a reader's window
	prio       []int              // those pieces, most urgent first
	prioCands  []prioCand
	spare      *bitfield.Bitfield
	evictBuf   []int

	// Choking (choke.go).
	rnd        *rand.Rand
	chokeAt    time.Time // the next choking round
	optAt      time.Time // the next move of the optimistic unchoke
	chokePeers []choker.Peer
	chokeConns []*peerConn
	decisions  []choker.Decision
	chokeOrder []int

	rcache *readcache.Cache // blocks read for upload; nil in memory

	// Resume record (resume.go).
	dir          string // the download folder, absolute; "" in memory
	stateDir     string // where the record is kept; "" for none
	strategyName string // the strategy last asked for
	stateDirty   bool   // pieces verified or settings changed since the last save
	saving       bool
	saveAgain    bool
	saveErr      error
	lastSave     time.Time
	metaPath     string     // the metainfo kept beside the record; used by saves only
	unlock       func()     // drops the record's lock
	filePrio     []Priority // per file; nil: all Normal
	savedPrio    []Priority // the record's, read at start
	lateMu       sync.Mutex
	late         []hashResult // verified as the torrent stopped, for the record
}

// pieceBuf holds the blocks of a piece being fetched.
type pieceBuf struct {
	blocks []*block
	from   []*peerConn
}

// blockSum identifies the data one peer sent for one block of a piece
// that failed its hash check, to find the culprit once the piece passes.
type blockSum struct {
	block int
	from  peerID
	sum   uint32
}

type hashResult struct {
	index int
	ok    bool
	err   error    // storage write error
	sums  []uint32 // per-block CRC-32C when asked (smart ban)
}

type eventKind uint8

const (
	evBlock eventKind = iota
	evMsg
	evClosed
	evCall
)

type event struct {
	kind  eventKind
	p     *peerConn
	msg   peer.Message
	block *block
	err   error
	fn    func()
}

// candidate is a peer address we learnt of.
type candidate struct {
	state   candState
	fails   int
	retryAt time.Time
	seed    bool // it has every piece: not dialled once we do too
	// quick counts connections in a row that it closed within seconds:
	// each doubles the wait before the next dial, from 2 s to 30 s.
	quick int
}

type candState uint8

const (
	candIdle candState = iota
	candConnecting
	candConnected
)

// byteRate is an exponentially weighted bytes-per-second average.
type byteRate struct{ v float64 }

func (r *byteRate) add(bytes int64, dt float64) {
	if dt <= 0 {
		return
	}
	const alpha = 0.4
	r.v = alpha*float64(bytes)/dt + (1-alpha)*r.v
}

// startEngine opens the storage, checks what is already there and starts
// the torrent's goroutines.
func startEngine(checkCtx context.Context, c *Client, t *Torrent, dir string, memory int64, selected []bool, peers []netip.AddrPort, onCheck func(CheckProgress), seedOnly bool) (*engine, error) {
	info := &t.meta().Info
	var store storage.Storage
	var cache *storage.Cache
	var err error
	if memory > 0 {
		cache, err = storage.NewCache(info, max(memory, 4*info.PieceLength))
		store = cache
	} else {
		fo := storage.FileOptions{Selected: selected}
		if seedOnly {
			fo.Selected = nil // every file is read; none is downloaded
		}
		var fstore *storage.File
		if fstore, err = storage.NewFile(dir, info, t.infoHash, fo); err == nil {
			store = fstore
			if c.wrapStore != nil {
				store = c.wrapStore(fstore)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	e := &engine{
		t: t, c: c, info: info, hash: t.infoHash, store: store, cache: cache,
		limits:     peer.Limits{NumPieces: info.NumPieces(), PieceLength: info.PieceLength, Length: info.Length},
		log:        c.cfg.Logger.With("torrent", t.Name()),
		events:     make(chan event, 256),
		hashed:     make(chan hashResult, maxHashQueue),
		picker:     picker.New(info.NumPieces(), info.PieceLength, info.Length),
		peers:      make(map[*peerConn]struct{}),
		known:      make(map[netip.AddrPort]*candidate),
		bufs:       make([]*pieceBuf, info.NumPieces()),
		selected:   make([]bool, len(info.Files)),
		fileLeft:   make([]int, len(info.Files)),
		fileSynced: make([]bool, len(info.Files)),
		suspects:   make(map[int][]blockSum),
		haveBits:   newAtomicBits(info.NumPieces()),
		verifying:  bitfield.New(info.NumPieces()),
		readers:    make(map[*readerState]struct{}),
		readerWant: bitfield.New(info.NumPieces()),
		spare:      bitfield.New(info.NumPieces()),
	}
	e.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	// A torrent in memory is there for readers: it wants, from the start,
	// any piece a reader may come for (and keeps its seeds).
	e.streaming = cache != nil
	if cache == nil {
		e.rcache = readcache.New(store, info.Length, int(min(info.PieceLength, readUnit)), max(c.cfg.ReadCacheBytes, 2*readUnit))
	}
	e.budget = max(c.cfg.BufferBytes, 4*info.PieceLength)
	e.ctx, e.cancel = context.WithCancel(c.ctx)
	e.work.cond.L = &e.work.mu
	if cache != nil {
		// Nothing to check: the cache starts empty.
	} else {
		if e.dir, err = filepath.Abs(dir); err != nil {
			store.Close()
			e.cancel()
			return nil, err
		}
		e.lockState(c.stateDir)
		if err := e.check(checkCtx, e.planCheck(), onCheck); err != nil {
			e.unlockState()
			store.Close()
			e.cancel()
			return nil, err
		}
	}
	e.left.Store(info.Length - e.verifiedBytes())
	e.selectFiles(selected)
	e.startPriorities(e.savedPrio)
	if !c.cfg.NoTrackers && len(t.Trackers()) > 0 {
		req := announcerRequest(e)
		e.announcer = announcer.New(announcer.Config{
			Tiers: t.Trackers(),
			Req:   req,
			Progress: func() announcer.Progress {
				return announcer.Progress{Uploaded: e.uploaded.Load(), Downloaded: e.downloaded.Load(), Left: e.left.Load()}
			},
			OnPeers:       func(_ string, peers []netip.AddrPort) { e.addPeers(peers) },
			ClientOptions: c.cfg.TrackerOptions,
			Logger:        e.log,
		})
		if e.picker.HaveBitfield().Full() {
			e.announcer.Completed()
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.announcer.Run(e.ctx)
		}()
	}
	if e.dhtOn() {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			c.dhtLookups(e.ctx, e.hash, true, e.addPeers)
		}()
	}
	context.AfterFunc(e.ctx, e.work.close)
	for range runtime.GOMAXPROCS(0) {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.work.run()
		}()
	}
	e.loopWG.Add(1)
	go e.run()
	for _, pc := range t.takeParked(e) {
		e.adopt(pc) // before peers are learnt, so that none is dialled again
	}
	e.call(e.saveState) // what the check found
	if t.magnet != nil {
		for _, hp := range t.magnet.Peers {
			if ap, err := netip.ParseAddrPort(hp); err == nil {
				peers = append(peers, ap) // host names in x.pe are not resolved
			}
		}
	}
	if len(peers) > 0 {
		e.addPeers(peers)
	}
	return e, nil
}

// check verifies the pieces already in storage and marks them verified:
// those plan trusts without reading them, and those it says to hash (all
// of them, with no plan).
func (e *engine) check(ctx context.Context, plan *checkPlan, onCheck func(CheckProgress)) error {
	good, err := checkPieces(ctx, e.store, e.info, plan, onCheck, e.log)
	if err != nil {
		return err
	}
	d, _ := e.store.(durable)
	for _, i := range good {
		e.picker.Verified(i)
		e.haveBits.Set(i)
		if d != nil && (plan == nil || !plan.trusted.Has(i)) {
			// Found by hashing: a process before may have died with
			// these bytes in the page cache. The first record syncs them.
			for _, f := range filesOfPiece(e.info, i) {
				d.MarkUnsynced(f)
			}
		}
	}
	return nil
}

// checkPlan is what a resume record says of the pieces in storage: those
// verified before whose files have not changed since (trusted), and those
// that must be hashed (check). Every other piece is missing.
type checkPlan struct {
	trusted, check *bitfield.Bitfield
}

// checkPieces hashes the pieces in store, in parallel (one worker per
// core), and returns those whose data is there and right, in no order;
// pieces of files that do not exist are skipped without reading. With a
// plan, only its check pieces are hashed, and its trusted pieces are
// returned as they are. onCheck, if set, hears of the progress every
// checkReportEvery and at the end; pieces the plan settles count as
// checked from the start.
func checkPieces(ctx context.Context, store storage.Storage, info *metainfo.Info, plan *checkPlan, onCheck func(CheckProgress), log *slog.Logger) ([]int, error) {
	n := info.NumPieces()
	var todo []int // nil: every piece
	var good []int
	settled := 0
	if plan != nil {
		for i := range n {
			switch {
			case plan.check.Has(i):
				todo = append(todo, i)
			case plan.trusted.Has(i):
				good = append(good, i)
			}
		}
		settled = n - len(todo)
		if todo == nil {
			todo = []int{}
		}
	}
	resumed := len(good)
	count := n
	if todo != nil {
		count = len(todo)
	}
	var next, checked atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	progress := func() CheckProgress {
		mu.Lock()
		defer mu.Unlock()
		return CheckProgress{Pieces: n, Checked: settled + int(min(checked.Load(), int64(count))), Verified: len(good), Resumed: resumed}
	}
	if onCheck != nil {
		done, stopped := make(chan struct{}), make(chan struct{})
		defer func() {
			close(done)
			<-stopped // one call at a time
			p := progress()
			p.Done = true
			onCheck(p)
		}()
		go func() {
			defer close(stopped)
			tick := time.NewTicker(checkReportEvery)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					onCheck(progress())
				}
			}
		}()
	}
	for range min(runtime.GOMAXPROCS(0), max(count, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, info.PieceLength)
			for {
				k := int(next.Add(1) - 1)
				if k >= count || ctx.Err() != nil {
					return
				}
				i := k
				if todo != nil {
					i = todo[k]
				}
				size := info.PieceSize(i)
				_, err := store.ReadAt(buf[:size], int64(i)*info.PieceLength)
				checked.Add(1)
				if err != nil {
					// Missing or short files: the piece is not there yet.
					if !errors.Is(err, fs.ErrNotExist) {
						log.Debug("check piece", "piece", i, "err", err)
					}
					continue
				}
				if sha1.Sum(buf[:size]) == info.PieceHash(i) {
					mu.Lock()
					good = append(good, i)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return good, nil
}

func (e *engine) verifiedBytes() int64 {
	var n int64
	for i := range e.info.NumPieces() {
		if e.picker.Have(i) {
			n += e.info.PieceSize(i)
		}
	}
	return n
}

// selectFiles marks files wanted (loop or before it starts).
func (e *engine) selectFiles(sel []bool) {
	for f, on := range sel {
		if !on || e.selected[f] || e.info.Files[f].Padding {
			continue
		}
		e.selected[f] = true
		file := e.info.Files[f]
		if file.Length == 0 {
			e.fileLeft[f] = 0
			e.syncFile(f)
			continue
		}
		begin, end := e.info.FilePieces(f)
		left := 0
		for i := begin; i < end; i++ {
			e.picker.Want(i, true)
			if !e.picker.Have(i) {
				left++
			}
		}
		e.fileLeft[f] = left
		if left == 0 {
			e.syncFile(f)
		}
	}
	e.picker.SetEndgame(e.downloading())
}

// syncFile makes a complete file durable off the loop, then marks it
// synced.
func (e *engine) syncFile(f int) {
	if e.closed {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		err := e.store.FileComplete(f)
		e.call(func() {
			if err != nil {
				e.fail(fmt.Errorf("sync %s: %w", filePath(e.info, f), err))
				return
			}
			e.fileSynced[f] = true
			e.saveState()
			e.checkWaiters()
		})
	}()
}

func filePath(info *metainfo.Info, f int) string {
	return joinPath(info.Files[f].Path)
}

// call runs fn on the loop; it reports false if the torrent stopped.
func (e *engine) call(fn func()) bool {
	e.sendMu.RLock()
	defer e.sendMu.RUnlock()
	if e.stopping {
		return false
	}
	select {
	case e.events <- event{kind: evCall, fn: fn}:
		return true
	case <-e.ctx.Done():
		return false
	}
}

// callWait runs fn on the loop and waits for it.
func (e *engine) callWait(fn func()) bool {
	done := make(chan struct{})
	if !e.call(func() { fn(); close(done) }) {
		return false
	}
	select {
	case <-done:
		return true
	case <-e.ctx.Done():
		return false
	}
}

// fail pauses the download on a storage error (a full disk, a folder
// that cannot be written): the downloads and readers waiting get err,
// every request out is cancelled and every piece being fetched dropped,
// so that no peer sends data we cannot store, and the resume record is
// written with what is verified. Peers are still served what we have. A
// new download resumes (see resumeAfterFailure).
func (e *engine) fail(err error) {
	if e.err != nil {
		return
	}
	err = fmt.Errorf("torrent %s: download paused: %w", e.t.Name(), err)
	e.err = err
	e.log.Error("download paused", "err", err)
	for rs := range e.readers {
		rs.signal(err)
	}
	for _, w := range e.waiters {
		w.finish(err)
	}
	e.waiters = nil
	for i := range e.info.NumPieces() {
		e.abandon(i) // pieces being verified finish (and fail to write)
	}
	for p := range e.peers {
		e.setInterested(p, false)
	}
	e.saveState()
}

// resumeAfterFailure clears the error of a paused download, for a new
// download to try again.
func (e *engine) resumeAfterFailure() {
	if e.err == nil {
		return
	}
	e.log.Info("download resumed", "after", e.err)
	e.err = nil
	for f, on := range e.selected {
		if on && e.fileLeft[f] == 0 && !e.fileSynced[f] {
			e.syncFile(f) // its sync may be what failed
		}
	}
}

func (e *engine) run() {
	defer e.loopWG.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case ev := <-e.events:
			e.handle(ev)
		case r := <-e.hashed:
			e.onHashed(r)
		case now := <-tick.C:
			e.tick(now, now.Sub(last).Seconds())
			last = now
		case <-e.ctx.Done():
			e.shutdown()
			return
		}
	}
}

func (e *engine) handle(ev event) {
	switch ev.kind {
	case evBlock:
		e.onBlock(ev.p, ev.msg, ev.block)
	case evMsg:
		if ev.p.closed {
			return
		}
		// Every message may queue answers: a peer that sends while it
		// does not read what we send goes before they grow without end.
		if out, _ := ev.p.backlog(); out > maxOutBytes {
			e.dropPeer(ev.p, errors.New("sends faster than it reads our answers"))
			return
		}
		e.onMessage(ev.p, &ev.msg)
	case evClosed:
		e.dropPeer(ev.p, ev.err)
	case evCall:
		ev.fn()
	}
}

// shutdown closes every connection and frees the pieces in progress.
func (e *engine) shutdown() {
	for p := range e.peers {
		e.dropPeer(p, ErrClosed)
	}
	for _, w := range e.waiters {
		w.finish(fmt.Errorf("torrent %s: %w", e.t.Name(), ErrClosed))
	}
	e.waiters = nil
	e.closed = true
}

// stop ends the torrent and waits for every goroutine; the storage is
// closed last.
func (e *engine) stop() error {
	e.stopOnce.Do(func() { e.stopErr = e.doStop() })
	return e.stopErr
}

func (e *engine) doStop() error {
	e.cancel()
	e.sendMu.Lock() // calls in flight end at once: ctx is done
	e.stopping = true
	e.sendMu.Unlock()
	e.loopWG.Wait()
	e.wg.Wait()
	// Pieces verified and written that the loop did not hear of: the
	// record must list every piece on disk.
	for {
		select {
		case r := <-e.hashed:
			e.late = append(e.late, r)
			continue
		default:
		}
		break
	}
	for _, r := range e.late {
		if r.ok && r.err == nil && e.cache == nil {
			e.picker.Verified(r.index)
			e.haveBits.Set(r.index)
		}
	}
	// Events may hold blocks and connections that never reached the loop.
	for {
		select {
		case ev := <-e.events:
			if ev.block != nil {
				putBlock(ev.block)
			}
			if ev.kind == evCall {
				ev.fn()
			}
			continue
		default:
		}
		break
	}
	e.saveFinal()
	e.unlockState()
	return e.store.Close()
}

// addPeers learns peer addresses (from trackers or the user).
func (e *engine) addPeers(addrs []netip.AddrPort) {
	addrs = slices.Clone(addrs)
	e.call(func() { e.learn(addrs) })
}

// learn adds peer addresses to those known, and dials (on the loop).
func (e *engine) learn(addrs []netip.AddrPort) {
	for _, a := range addrs {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if !a.IsValid() || a.Port() == 0 {
			continue
		}
		if _, ok := e.known[a]; !ok && len(e.known) < 4096 {
			e.known[a] = &candidate{}
		}
	}
	e.connectMore(time.Now())
}

// connectMore dials known peers while the torrent needs pieces and has
// connection slots.
func (e *engine) connectMore(now time.Time) {
	if e.closed || e.err != nil {
		return
	}
	wantNothing := e.wantNothing()
	for a, cand := range e.known {
		if wantNothing && cand.seed {
			continue
		}
		if int64(len(e.peers)+e.dialing) >= e.c.perTorrent.Load() {
			return
		}
		if cand.state != candIdle || now.Before(cand.retryAt) {
			continue
		}
		if e.c.isBannedPeer(a, [20]byte{}) || (e.c.port() == a.Port() && isOwnAddr(a)) {
			continue
		}
		if !e.c.acquireConn() {
			return
		}
		cand.state = candConnecting
		e.dialing++
		e.wg.Add(1)
		go e.dial(a)
	}
}

func isOwnAddr(a netip.AddrPort) bool { return a.Addr().IsLoopback() || a.Addr().IsUnspecified() }

func (e *engine) handshake() *peer.Handshake { return e.c.handshake(e.hash, e.info.Private) }

// dhtOn reports whether the torrent uses the client's DHT node: never for
// a private torrent (BEP 27).
func (e *engine) dhtOn() bool { return e.c.dht != nil && !e.info.Private }

// dial connects to a peer and does the handshake.
func (e *engine) dial(a netip.AddrPort) {
	defer e.wg.Done()
	conn, id, res, err := e.dialHandshake(a)
	if err == nil && e.addConn(conn, a, id, res, true) {
		e.call(func() { e.dialing-- })
		return
	}
	if conn != nil {
		conn.Close()
	}
	e.c.releaseConn()
	e.log.Debug("connect to peer", "addr", a, "err", err)
	e.call(func() {
		e.dialing--
		if cand := e.known[a]; cand != nil {
			cand.state = candIdle
			cand.fails++
			if cand.fails >= 5 {
				delete(e.known, a)
				return
			}
			cand.retryAt = time.Now().Add(time.Duration(cand.fails) * 15 * time.Second)
		}
	})
}

func (e *engine) dialHandshake(a netip.AddrPort) (net.Conn, [20]byte, peer.Reserved, error) {
	return dialPeer(e.ctx, e.c, e.handshake(), a)
}

// addConn hands a connection whose handshake is done to the loop; it
// reports whether the torrent took it (and with it the connection slot).
func (e *engine) addConn(conn net.Conn, a netip.AddrPort, id [20]byte, res peer.Reserved, outgoing bool) bool {
	return e.call(func() { e.onConn(conn, a, id, res, outgoing, nil) })
}

// adopt takes a connection the metadata fetch kept (Torrent.park), with
// what the peer said on it, as if it had just connected.
func (e *engine) adopt(pc *parkedConn) {
	if pc.fromDHT && e.info.Private {
		// BEP 27: a private torrent's peers come from its trackers.
		e.log.Debug("peer refused", "addr", pc.addr, "why", "found on the DHT, and the torrent is private")
		pc.conn.Close()
		return
	}
	if !e.c.acquireConn() {
		pc.conn.Close()
		return
	}
	if !e.call(func() { e.onConn(pc.conn, pc.addr, pc.id, pc.res, pc.outgoing, pc) }) {
		pc.conn.Close()
		e.c.releaseConn()
	}
}

// onConn takes a connected peer; pre is what it said to the metadata fetch
// on this connection, if it was that's.
func (e *engine) onConn(conn net.Conn, a netip.AddrPort, id [20]byte, res peer.Reserved, outgoing bool, pre *parkedConn) {
	reject := func(why string) {
		e.log.Debug("peer refused", "addr", a, "why", why)
		conn.Close()
		e.c.releaseConn()
		if cand := e.known[a]; cand != nil && outgoing {
			cand.state = candIdle
			cand.retryAt = time.Now().Add(30 * time.Second)
		}
	}
	if e.closed {
		reject("torrent stopped")
		return
	}
	if int64(len(e.peers)) >= e.c.perTorrent.Load() {
		reject("too many connections")
		return
	}
	for p := range e.peers {
		if p.id != id {
			continue
		}
		// Both sides dialled at once (each learnt of the other, say by
		// PEX): both keep the connection the side with the lower peer
		// id opened, so exactly one survives instead of none.
		if p.outgoing == outgoing || !keepNewDuplicate(e.c.cfg.PeerID, id, outgoing) {
			reject("already connected")
			return
		}
		e.dropPeer(p, errors.New("replaced by the connection the other side keeps"))
		break
	}
	if e.c.isBannedPeer(a, id) {
		reject("banned")
		return
	}
	if outgoing {
		if pre != nil && e.known[a] == nil && len(e.known) < 4096 {
			e.known[a] = &candidate{}
		}
		if cand := e.known[a]; cand != nil {
			cand.state = candConnected
			cand.fails = 0
		}
	}
	if pre != nil {
		if err := e.checkReplay(pre.msgs); err != nil {
			reject(err.Error())
			return
		}
		if e.picker.HaveBitfield().Count() > maxAdoptHaves {
			// A have message per piece we hold would flood it: dial
			// again, and send a bitfield.
			reject("too many pieces to announce on an adopted connection")
			if cand := e.known[a]; cand != nil && outgoing {
				cand.retryAt = time.Now()
			}
			return
		}
	}
	p := newPeerConn(e, conn, a, id, res, outgoing)
	e.peers[p] = struct{}{}
	if pre != nil {
		p.rd, p.adopted = pre.br, true
	}
	p.sendInitial()
	e.sendAllowedFast(p)
	if pre != nil {
		for i := range pre.msgs {
			e.onMessage(p, &pre.msgs[i])
			if p.closed {
				return
			}
		}
	}
	e.wg.Add(2)
	go p.readLoop()
	go p.writeLoop()
	e.log.Debug("peer connected", "addr", a, "outgoing", outgoing)
}

// maxAdoptHaves bounds the pieces we tell a peer of in have messages on a
// connection the metadata fetch kept (it said have_none there already).
const maxAdoptHaves = 1024

// checkReplay checks the messages a peer sent the metadata fetch as the
// download's reader would have (piece indexes, the bitfield's length):
// that reader did not know the torrent's size.
func (e *engine) checkReplay(msgs []peer.Message) error {
	var b []byte
	for i := range msgs {
		b = peer.AppendMessage(b, &msgs[i])
	}
	r := peer.NewReader(bytes.NewReader(b), e.limits)
	var m peer.Message
	for range msgs {
		if err := r.ReadMessage(&m); err != nil {
			return fmt.Errorf("sent the metadata fetch a bad message: %w", err)
		}
	}
	return nil
}

// keepNewDuplicate decides between two connections with the same peer,
// one each way: the new one (outgoing or not) is kept when the side that
// opened it has the lower peer id. Both sides reach the same answer.
func keepNewDuplicate(ours, theirs [20]byte, newOutgoing bool) bool {
	opener, other := theirs, ours
	if newOutgoing {
		opener, other = ours, theirs
	}
	return bytes.Compare(opener[:], other[:]) < 0
}

// dropPeer closes a peer and gives its requests back.
func (e *engine) dropPeer(p *peerConn, err error) {
	if p.closed {
		return
	}
	p.closed = true
	delete(e.peers, p)
	for _, b := range p.reqs {
		e.picker.Cancelled(b)
	}
	p.reqs = nil
	for i := range p.has.Len() {
		if p.has.Has(i) {
			e.picker.PeerLost(i)
		}
	}
	if !p.amChoking {
		e.unchoked--
	}
	p.amChoking = true
	p.close()
	e.c.releaseConn()
	if cand := e.known[p.addr]; cand != nil && p.outgoing {
		cand.state = candIdle
		wait := 30 * time.Second
		if time.Since(p.connectedAt) < 5*time.Second {
			// Closed at once: most often a peer that still holds our
			// last connection (a torrent restarted) and refuses a second
			// one. It knows better in a moment.
			wait = min(wait, 2*time.Second<<min(cand.quick, 4))
			cand.quick++
		} else {
			cand.quick = 0
		}
		cand.retryAt = time.Now().Add(wait)
	}
	e.log.Debug("peer dropped", "addr", p.addr, "err", err)
	e.unchokeMore()
}

// ban drops a peer that sent data failing the hash check, and never
// accepts it again.
func (e *engine) ban(who peerID, why string) {
	e.log.Info("banning peer", "addr", who.addr, "why", why)
	e.c.ban(who.addr, who.id)
	for p := range e.peers {
		if p.id == who.id || e.c.isBannedPeer(p.addr, p.id) {
			p.banned = true
			e.dropPeer(p, errors.New(why))
		}
	}
	for a := range e.known {
		if e.c.isBannedPeer(a, [20]byte{}) {
			delete(e.known, a)
		}
	}
}

// peerID names a peer for banning.
type peerID struct {
	addr netip.AddrPort
	id   [20]byte
}

// onBlock takes a received block.
func (e *engine) onBlock(p *peerConn, m peer.Message, buf *block) {
	n := int(m.Length)
	e.downloaded.Add(int64(n))
	if p.closed { // queued before the peer was dropped (or banned)
		e.wasted.Add(int64(n))
		putBlock(buf)
		return
	}
	p.received += int64(n)
	p.lastBlock = time.Now()
	if p.snubbed {
		p.snubbed = false
		p.maxReqs = minRequests
	}
	b := picker.Block{Piece: int(m.Index), Begin: int(m.Begin), Length: n}
	if k := slices.Index(p.cancelled, b); k >= 0 {
		p.cancelled = slices.Delete(p.cancelled, k, k+1)
	}
	// A newer request for a cancelled block takes this answer too: a
	// peer that does not answer cancels (Transmission) sends no other.
	if k := slices.Index(p.reqs, b); k >= 0 {
		p.reqs = slices.Delete(p.reqs, k, k+1)
	}
	needed, complete := e.picker.Received(b)
	if !needed {
		e.wasted.Add(int64(n))
		putBlock(buf)
		e.fillRequests(p)
		return
	}
	pb := e.bufs[b.Piece]
	if pb == nil {
		nb := e.picker.NumBlocks(b.Piece)
		pb = &pieceBuf{blocks: make([]*block, nb), from: make([]*peerConn, nb)}
		e.bufs[b.Piece] = pb
	}
	k := b.Begin / peer.BlockSize
	pb.blocks[k] = buf
	pb.from[k] = p
	e.held += peer.BlockSize
	// Endgame: the same block asked of other peers is cancelled there.
	for q := range e.peers {
		if q == p {
			continue
		}
		if i := slices.Index(q.reqs, b); i >= 0 {
			q.reqs = slices.Delete(q.reqs, i, i+1)
			q.sendCancels([]picker.Block{b})
			e.fillRequests(q)
		}
	}
	if complete {
		e.verify(b.Piece)
	}
	e.fillRequests(p)
}

// verify hashes a complete piece and writes it, off the loop.
func (e *engine) verify(i int) {
	pb := e.bufs[i]
	want := e.info.PieceHash(i)
	size := int(e.info.PieceSize(i))
	off := int64(i) * e.info.PieceLength
	_, suspect := e.suspects[i]
	if e.cache != nil {
		e.makeRoom(int64(size))
		e.cacheRes += int64(size)
	}
	e.verifying.Set(i)
	e.hashing++
	if e.onComplete != nil {
		e.onComplete(i)
	}
	// Pieces are verified in the order they complete, but for the one a
	// reader is on, which goes first.
	e.work.push(e.underReader(i), func() {
		h := sha1.New()
		for k, blk := range pb.blocks {
			h.Write(blk[:min(peer.BlockSize, size-k*peer.BlockSize)])
		}
		var sum metainfo.Hash
		h.Sum(sum[:0])
		r := hashResult{index: i, ok: sum == want}
		if !r.ok || suspect {
			r.sums = make([]uint32, len(pb.blocks))
			for k, blk := range pb.blocks {
				r.sums[k] = crc32.Checksum(blk[:min(peer.BlockSize, size-k*peer.BlockSize)], crcTable)
			}
		}
		if r.ok && e.cache != nil {
			data := make([][]byte, len(pb.blocks))
			for k, blk := range pb.blocks {
				data[k] = blk[:min(peer.BlockSize, size-k*peer.BlockSize)]
			}
			if err := e.cache.WritePiece(i, data); err != nil {
				r.ok, r.err = false, err
			}
		} else if r.ok {
			for k, blk := range pb.blocks {
				n := min(peer.BlockSize, size-k*peer.BlockSize)
				if _, err := e.store.WriteAt(blk[:n], off+int64(k*peer.BlockSize)); err != nil {
					r.ok, r.err = false, err
					break
				}
			}
		}
		select {
		case e.hashed <- r:
		case <-e.ctx.Done():
			// Stopping: the piece may be written already. The stop
			// counts it, for the resume record.
			e.lateMu.Lock()
			e.late = append(e.late, r)
			e.lateMu.Unlock()
		}
	})
}

// workQueue runs jobs on a few goroutines in the order they are pushed,
// urgent ones first.
type workQueue struct {
	mu     sync.Mutex
	cond   sync.Cond // on mu
	jobs   []func()
	head   int // jobs[head:] wait
	closed bool
}

func (q *workQueue) push(urgent bool, job func()) {
	q.mu.Lock()
	switch {
	case urgent && q.head > 0:
		q.head--
		q.jobs[q.head] = job
	case urgent:
		q.jobs = slices.Insert(q.jobs, 0, job)
	default:
		q.jobs = append(q.jobs, job)
	}
	q.mu.Unlock()
	q.cond.Signal()
}

// run runs jobs until the queue is closed.
func (q *workQueue) run() {
	for {
		q.mu.Lock()
		for q.head == len(q.jobs) && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		job := q.jobs[q.head]
		q.jobs[q.head] = nil
		q.head++
		if q.head == len(q.jobs) {
			q.jobs, q.head = q.jobs[:0], 0
		}
		q.mu.Unlock()
		job()
	}
}

// close makes the workers return; jobs not started are dropped.
func (q *workQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func (e *engine) onHashed(r hashResult) {
	e.hashing--
	e.verifying.Clear(r.index)
	if e.cache != nil {
		e.cacheRes -= e.info.PieceSize(r.index)
	}
	pb := e.bufs[r.index]
	e.bufs[r.index] = nil
	// The blocks go back first, so the refills below see the memory free.
	for _, b := range pb.blocks {
		if b != nil {
			putBlock(b)
			e.held -= peer.BlockSize
		}
	}
	if errors.Is(r.err, storage.ErrCacheFull) {
		// Readers' windows fill the cache: the piece is fetched again
		// once they move on.
		e.log.Debug("cache full: piece dropped", "piece", r.index)
		e.picker.Failed(r.index)
		e.fillAll()
		return
	}
	if r.err != nil {
		e.picker.Failed(r.index)
		e.fail(fmt.Errorf("write piece %d: %w", r.index, r.err))
		return
	}
	if !r.ok {
		e.wasted.Add(e.info.PieceSize(r.index))
		e.picker.Failed(r.index)
		e.log.Info("piece failed its hash check", "piece", r.index)
		senders := map[peerID]bool{}
		for k, p := range pb.from {
			who := peerID{p.addr, p.id}
			e.suspects[r.index] = append(e.suspects[r.index], blockSum{block: k, from: who, sum: r.sums[k]})
			if !senders[who] {
				senders[who] = true
				p.strikes++
			}
		}
		if len(senders) == 1 {
			for who := range senders {
				e.ban(who, fmt.Sprintf("sent piece %d, which failed its hash check", r.index))
			}
		} else {
			for p := range e.peers {
				if p.strikes >= 8 {
					e.ban(peerID{p.addr, p.id}, "took part in 8 pieces that failed their hash check")
				}
			}
		}
		e.fillAll()
		return
	}
	if recs, ok := e.suspects[r.index]; ok {
		delete(e.suspects, r.index)
		for _, rec := range recs {
			if r.sums != nil && rec.sum != r.sums[rec.block] {
				e.ban(rec.from, fmt.Sprintf("sent a bad block of piece %d", r.index))
			}
		}
	}
	e.picker.Verified(r.index)
	e.haveBits.Set(r.index)
	e.stateDirty = true
	if e.err != nil {
		e.saveState() // paused: the record should have every piece now
	}
	if e.rcache != nil {
		// No cached unit can hold bytes of a piece before it is verified:
		// units are pieces or parts of one (piece lengths are powers of
		// two). Should that change, this keeps the cache right.
		e.rcache.Invalidate(int64(r.index)*e.info.PieceLength, e.info.PieceSize(r.index))
	}
	e.wakeReaders(r.index)
	size := e.info.PieceSize(r.index)
	e.left.Add(-size)
	// Every peer hears of it, those that have it too: they learn when we
	// become a seed, and two seeds part. In memory, pieces are evicted
	// again: a seed is not told, or it would take us for one and part
	// while readers still need it.
	for p := range e.peers {
		if e.cache == nil || !p.has.Has(r.index) {
			p.send(func(out []byte) []byte { return peer.AppendHave(out, peer.Have, uint32(r.index)) })
		}
	}
	for _, f := range filesOfPiece(e.info, r.index) {
		if e.selected[f] && e.fileLeft[f] > 0 {
			e.fileLeft[f]--
			if e.fileLeft[f] == 0 {
				e.syncFile(f)
			}
		}
	}
	for _, w := range e.waiters {
		w.pieceDone(r.index, e)
	}
	e.checkWaiters()
	if e.picker.HaveBitfield().Full() && e.announcer != nil {
		e.announcer.Completed()
	}
	if e.wantNothing() {
		for p := range e.peers {
			if p.has.Full() {
				e.dropSeed(p)
			}
		}
	}
	if e.picker.Missing() == 0 && !e.streaming {
		for p := range e.peers {
			e.setInterested(p, false)
		}
	}
	e.fillAll()
}

// filesOfPiece returns the non-padding files that piece i spans.
func filesOfPiece(info *metainfo.Info, i int) []int {
	start := int64(i) * info.PieceLength
	end := start + info.PieceSize(i)
	var out []int
	k, _ := slices.BinarySearchFunc(info.Files, start, func(f metainfo.File, off int64) int {
		switch {
		case f.Offset+f.Length <= off:
			return -1
		case f.Offset > off:
			return 1
		}
		return 0
	})
	for ; k < len(info.Files) && info.Files[k].Offset < end; k++ {
		if f := info.Files[k]; !f.Padding && f.Length > 0 && f.Offset+f.Length > start {
			out = append(out, k)
		}
	}
	return out
}

// fillAll tops up every peer's requests.
func (e *engine) fillAll() {
	for p := range e.peers {
		e.fillRequests(p)
	}
}

// fillRequests asks a peer for more blocks when its pipeline has room.
func (e *engine) fillRequests(p *peerConn) {
	if p.closed || !p.amInterested || e.err != nil || (p.peerChoking && len(p.allowedIn) == 0) {
		return
	}
	var pp picker.Peer = p
	if p.peerChoking {
		pp = allowedView{p} // BEP 6: only its allowed fast pieces
	}
	room := p.maxReqs - len(p.reqs)
	if room <= 0 || (room < p.maxReqs/8 && len(p.reqs) > 0) {
		return
	}
	// Endgame: only a peer with nothing left to send us asks for blocks
	// already asked of others, a few at a time, so little arrives twice.
	if e.picker.Endgame() {
		if len(p.reqs) > 0 {
			return
		}
		room = min(room, 8)
	}
	// Memory: blocks held (in pieces being fetched or verified) plus
	// blocks asked for stay within the budget; past it only pieces
	// already started are continued, so they can complete and free theirs.
	outstanding := 0
	for q := range e.peers {
		outstanding += len(q.reqs)
	}
	free := (e.budget-e.held)/peer.BlockSize - int64(outstanding)
	if free > 0 && e.hashing < maxHashQueue {
		e.scratch = e.picker.Pick(pp, int(min(int64(room), free)), e.scratch[:0])
	} else {
		e.scratch = e.picker.PickStarted(pp, room, e.scratch[:0])
	}
	had := len(p.reqs)
	p.reqs = append(p.reqs, e.scratch...)
	if left := room - len(e.scratch); left > 0 && len(e.readers) > 0 && e.readerLate() {
		// A reader waits, past the piece's deadline: blocks of its piece
		// asked of another peer are asked of this one too, if it has room.
		p.reqs = e.picker.PickUrgent(pp, left, p.reqs)
	}
	blocks := p.reqs[had:]
	if len(blocks) == 0 {
		return
	}
	if had == 0 {
		p.lastBlock = time.Now() // the request timeout starts now
	}
	p.send(func(out []byte) []byte {
		for _, b := range blocks {
			out = peer.AppendRequest(out, peer.Request, uint32(b.Piece), uint32(b.Begin), uint32(b.Length))
		}
		return out
	})
}

// interesting reports whether we are interested in a peer: it has a
// piece we want or, once readers have come, any piece we lack. Readers
// come and go (one an HTTP request) and want what they want at once: a
// peer told we are not interested chokes us, and may take its next
// choking round (10 s for aria2c) to unchoke us again.
func (e *engine) interesting(p *peerConn) bool {
	if e.err != nil {
		return false // paused: nothing can be stored
	}
	if e.picker.Interesting(p) {
		return true
	}
	if !e.streaming {
		return false
	}
	have, has := e.picker.HaveBitfield().Bytes(), p.has.Bytes()
	for k := range has {
		if has[k]&^have[k] != 0 {
			return true
		}
	}
	return false
}

func (e *engine) setInterested(p *peerConn, on bool) {
	if p.amInterested == on {
		return
	}
	p.amInterested = on
	e.log.Debug("interest", "addr", p.addr, "interested", on)
	t := peer.NotInterested
	if on {
		t = peer.Interested
	}
	p.send(func(out []byte) []byte { return peer.AppendMessage(out, &peer.Message{Type: t}) })
	if !on {
		for _, b := range p.reqs {
			e.picker.Cancelled(b)
		}
		p.reqs = p.reqs[:0]
	}
}

func (e *engine) onMessage(p *peerConn, m *peer.Message) {
	switch m.Type {
	case peer.HaveAll, peer.HaveNone, peer.Reject, peer.Suggest, peer.AllowedFast:
		if !p.res.Fast() {
			e.dropPeer(p, fmt.Errorf("%w: %s without the Fast extension", peer.ErrBadMessage, m.Type))
			return
		}
	}
	switch m.Type {
	case peer.Choke:
		e.log.Debug("peer choked us", "addr", p.addr, "requests", len(p.reqs))
		p.peerChoking = true
		if !p.res.Fast() {
			for _, b := range p.reqs {
				e.picker.Cancelled(b)
			}
			p.reqs = p.reqs[:0]
			e.fillAll()
		}
	case peer.Unchoke:
		e.log.Debug("peer unchoked us", "addr", p.addr, "requests", len(p.reqs))
		p.peerChoking = false
		p.rejected = nil
		e.fillRequests(p)
	case peer.Interested:
		p.peerInterested = true
		e.unchokeMore()
	case peer.NotInterested:
		p.peerInterested = false
		if !p.amChoking {
			e.choke(p)
			e.unchokeMore()
		}
	case peer.Have:
		i := int(m.Index)
		if p.has.Set(i) {
			e.picker.PeerHas(i)
			if e.picker.Needs(i) || (e.streaming && !e.picker.Have(i)) {
				e.setInterested(p, true)
				e.fillRequests(p)
			}
			if e.bothSeeds(p) {
				e.dropSeed(p)
			}
		}
	case peer.Bitfield, peer.HaveAll, peer.HaveNone:
		// BEP 3 wants these first, but some clients send them later
		// (after have messages, or a second time); peers never lose
		// pieces, so what they say is added to what they had said.
		var bits *bitfield.Bitfield
		switch m.Type {
		case peer.Bitfield:
			bits = bitfield.FromBytes(m.Payload, e.info.NumPieces())
		case peer.HaveAll:
			bits = bitfield.New(e.info.NumPieces())
			bits.SetAll()
		default:
			bits = bitfield.New(e.info.NumPieces())
		}
		for i := range bits.Len() {
			if bits.Has(i) && p.has.Set(i) {
				e.picker.PeerHas(i)
			}
		}
		if e.bothSeeds(p) {
			e.dropSeed(p)
			return
		}
		e.setInterested(p, e.interesting(p))
		e.fillRequests(p)
	case peer.AllowedFast:
		e.onAllowedFast(p, int(m.Index))
	case peer.Request:
		e.onRequest(p, m)
	case peer.Cancel:
		p.cancelUpload(m.Index, m.Begin, m.Length)
	case peer.Reject:
		b := picker.Block{Piece: int(m.Index), Begin: int(m.Begin), Length: int(m.Length)}
		if k := slices.Index(p.cancelled, b); k >= 0 {
			// It answers a cancel (BEP 6 answers every request once): not
			// a refusal of the piece, nor the answer to a newer request
			// for the block, which the peer answers in its turn. (Asking
			// again here would leave the peer two requests for the block,
			// and a later cancel two rejects, the second taken for a
			// refusal.)
			p.cancelled = slices.Delete(p.cancelled, k, k+1)
		} else if k := slices.Index(p.reqs, b); k >= 0 {
			p.reqs = slices.Delete(p.reqs, k, k+1)
			e.picker.Cancelled(b)
			if p.rejected == nil {
				p.rejected = bitfield.New(e.info.NumPieces())
			}
			p.rejected.Set(b.Piece) // not asked again until it unchokes anew
			for q := range e.peers {
				if q != p {
					e.fillRequests(q)
				}
			}
		}
	case peer.Port:
		if e.dhtOn() {
			e.c.dhtPing(netip.AddrPortFrom(p.addr.Addr(), m.Port))
		}
	case peer.Extended:
		if m.ExtendedID == utMetadataID {
			p.onMetadata(m.Payload)
		}
		if m.ExtendedID == utPexID {
			e.onPEX(p, m.Payload)
		}
		if m.ExtendedID == 0 {
			p.onExtendedHandshake(m.Payload)
		}
	}
}

func (e *engine) onRequest(p *peerConn, m *peer.Message) {
	p.requestAt = time.Now()
	reject := func() {
		if p.res.Fast() {
			p.send(func(out []byte) []byte {
				return peer.AppendRequest(out, peer.Reject, m.Index, m.Begin, m.Length)
			})
		}
	}
	if p.amChoking {
		// Allowed fast pieces are served while choked, each once or so:
		// not a piece the peer says it has, nor past the set's worth.
		fast := slices.Contains(p.allowedOut, m.Index) && !p.has.Has(int(m.Index)) &&
			p.fastServed+int64(m.Length) <= 2*allowedFastK*e.info.PieceLength
		if !fast {
			reject()
			if p.chokedReqs++; p.chokedReqs > maxChokedRequests {
				e.dropPeer(p, errors.New("keeps requesting while choked"))
			}
			return
		}
		p.fastServed += int64(m.Length)
	}
	if !e.picker.Have(int(m.Index)) {
		reject()
		return
	}
	if !p.queueUpload(upload{index: m.Index, begin: m.Begin, length: m.Length}) {
		reject()
	}
}

// tick runs once a second: rates, pipeline depths, snubbing, new
// connections, interest, stats.
func (e *engine) tick(now time.Time, dt float64) {
	d, u := e.downloaded.Load(), e.uploaded.Load()
	e.downRate.add(d-e.lastDown, dt)
	e.upRate.add(u-e.lastUp, dt)
	e.lastDown, e.lastUp = d, u
	for p := range e.peers {
		p.down.add(p.received-p.lastReceived, dt)
		p.lastReceived = p.received
		sent := p.sent.Load()
		p.up.add(sent-p.lastSent, dt)
		p.lastSent = sent
		if !p.snubbed && p.received > 0 {
			depth := int(p.down.v * queueTime / peer.BlockSize)
			p.maxReqs = max(minRequests, min(depth, p.reqq))
		}
		if p.throttled.Load() {
			p.lastBlock = now // our download limit holds its blocks back
		}
		if len(p.reqs) > 0 && now.Sub(p.lastBlock) > e.c.cfg.RequestTimeout {
			if p.snubbed {
				// Its one request timed out too: it pins a block (and the
				// piece's memory) for nothing.
				e.dropPeer(p, errors.New("no block in two request timeouts"))
				continue
			}
			e.log.Debug("peer snubbed us", "addr", p.addr)
			p.snubbed = true
			p.maxReqs = 1
			for _, b := range p.reqs {
				e.picker.Cancelled(b)
			}
			p.reqs = p.reqs[:0]
			e.fillAll()
		}
		if p.utPex != 0 && e.pexOn() && !p.pexAt.IsZero() && !now.Before(p.pexAt) {
			e.sendPEX(p, now)
		}
		if p.amInterested && (e.picker.Missing() > 0 || e.streaming) && !e.interesting(p) {
			e.setInterested(p, false)
		}
		e.fillRequests(p)
	}
	if !now.Before(e.chokeAt) {
		e.rechoke(now)
	}
	e.unchokeMore() // peers held back by rechokeHold
	e.evictStalled()
	e.connectMore(now)
	if e.stateDirty && now.Sub(e.lastSave) >= stateSaveEvery {
		e.saveState()
	}
}

// evictStalled frees the memory budget when it is spent on pieces nobody
// is sending: with nothing asked for and nothing being verified, the
// pieces in progress are dropped, to be fetched again from whoever has
// them (their peers may have left, or only choke us).
func (e *engine) evictStalled() {
	if e.held < e.budget || e.hashing > 0 || e.picker.Missing() == 0 {
		return
	}
	for p := range e.peers {
		if len(p.reqs) > 0 {
			return
		}
	}
	for i, pb := range e.bufs {
		if pb != nil {
			e.dropBlocks(i)
			e.picker.Failed(i)
		}
	}
	e.log.Debug("memory budget spent on stalled pieces: dropped them")
	e.fillAll()
}

// dropBlocks frees the blocks received of piece i, which is not being
// verified, counting them as wasted.
func (e *engine) dropBlocks(i int) {
	pb := e.bufs[i]
	if pb == nil {
		return
	}
	size := int(e.info.PieceSize(i))
	for k, b := range pb.blocks {
		if b != nil {
			putBlock(b)
			e.held -= peer.BlockSize
			e.wasted.Add(int64(min(peer.BlockSize, size-k*peer.BlockSize)))
		}
	}
	e.bufs[i] = nil
}
