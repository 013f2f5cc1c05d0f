package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// DefaultMaxOpenFiles is the bound on open handles when
// [FileOptions.MaxOpenFiles] is 0.
const DefaultMaxOpenFiles = 64

// FileOptions configure [NewFile]. The zero value selects every file.
type FileOptions struct {
	// Selected[i] says whether file i (an index into info.Files, padding
	// included) is wanted. Nil means every file. Only selected files are
	// ever created.
	Selected []bool
	// MaxOpenFiles bounds the number of open file handles, the parts file
	// included; past it the least recently used idle handle is closed.
	// 0 means [DefaultMaxOpenFiles].
	MaxOpenFiles int
	// PartsFile is the path of the file that keeps the bytes of boundary
	// pieces (pieces shared with a selected file) that belong to files
	// which are not selected, so that those pieces can still be verified
	// and uploaded. "" means dir/.<info hash in hex>.parts. A path given
	// here is the caller's and is used as given (relative to the working
	// directory when not absolute); only the default is confined to dir.
	//
	// The parts file is a sparse file: each byte sits at its content
	// offset, so it is as long as the end of the last byte it holds but
	// takes disk space only for what was written (on file systems without
	// sparse files, such as FAT, it takes all of it). It is created only
	// when such bytes are first written, and it is never removed: it is
	// what lets a restarted download verify those pieces again. Deleting
	// it once the download is finished, or when the torrent is removed, is
	// the caller's business.
	PartsFile string
	// ReadOnly opens the folder as it is, to read what is there (a
	// check of the data): nothing is created, not even dir, which must
	// exist, and writes fail with ErrReadOnly.
	ReadOnly bool
}

// ErrReadOnly is returned by writes to a File opened ReadOnly.
var ErrReadOnly = errors.New("storage: opened read-only")

// File is a [Storage] that keeps the content in files under a folder,
// laid out as the torrent says: dir/Name for a single-file torrent,
// dir/Name/path... for a multi-file one.
//
// Every path is confined to dir twice: each component is checked to be a
// plain name, and every file is opened through an [os.Root], so neither
// ".." nor a symbolic link can lead outside dir.
//
// Files are opened lazily: for writing (created, with their folders, if
// need be) on the first write, and for reading, without ever being
// created, on the first read. At most MaxOpenFiles handles are open at
// once; the least recently used idle one is closed to open another, and a
// handle is never closed while a read or write on it is in progress.
// Reads and writes run without any lock held, so goroutines working on
// different files, or on the same open file, do not wait for each other.
//
// Files are created with mode 0o644 (0o755 for files the torrent marks
// executable, BEP 47 attribute "x"), folders with 0o755, both subject to
// the umask. Existing files are opened as they are, never truncated, so a
// download can resume over them. Data is made durable (fsync) by
// [File.Sync], [File.FileComplete] and [File.Close]; a handle closed to
// make room for another is not synced first (Sync and Close sync its file
// later all the same).
type File struct {
	dir       string // as given to NewFile, for messages
	readOnly  bool
	root      *os.Root // dir
	layout    layout
	files     []fileInfo // one per file of the torrent
	parts     int        // index of the parts file in slots: len(files)
	partsPath string     // the parts file, relative to root if partsRoot
	partsRoot bool
	maxOpen   int

	closed atomic.Bool // set under mu, read without it for quick refusals

	// selMu orders selection against writes: WriteAt holds it for reading
	// across its walk, Select for writing while it flips a file and copies
	// its boundary bytes out of the parts file.
	selMu sync.RWMutex

	mu       sync.Mutex
	cond     sync.Cond // L is &mu; broadcast when a slot changes state or its refs drop to 0, and on Close
	slots    []slot    // guarded by mu; one per file, then the parts file
	head     int32     // guarded by mu; most recently used open slot, or -1
	tail     int32     // guarded by mu; least recently used open slot, or -1
	nopen    int       // guarded by mu; slots not closed (opening, open or closing): handles in use or about to be
	nlru     int       // guarded by mu; slots in the LRU list (state open)
	peakOpen int       // guarded by mu; highest nopen seen, for tests
	closeErr error     // guarded by mu; first error closing an evicted handle, reported by Close
}

// fileInfo is what File knows of one file of the torrent.
type fileInfo struct {
	rel      string      // path under the root, with the OS's separators; "" for padding files
	selected atomic.Bool // set once, by NewFile or Select
	perm     os.FileMode
}

// slotState is the life cycle of a file handle.
type slotState uint8

const (
	stateClosed  slotState = iota // no handle
	stateOpening                  // a goroutine is opening it without the lock
	stateOpen                     // open, in the LRU list
	stateClosing                  // a goroutine is closing it without the lock
)

// slot is the handle of one file. All fields are guarded by File.mu.
type slot struct {
	f          *os.File // set in stateOpen
	refs       int32    // reads, writes and syncs in progress on f
	prev, next int32    // LRU links, -1 at the ends
	state      slotState
	writable   bool  // f was opened read-write
	dirty      bool  // f was written since it was opened or synced
	exists     bool  // the file is known to exist, so a read needs no stat first
	upgrading  bool  // a writer waits to reopen a read-only f: new readers wait too
	unsynced   bool  // written since the last Sync, open or not
	syncErr    error // a sync of the file failed: its data may be lost, whatever later syncs say
}

// access is what a caller of acquire wants to do with a file.
type access uint8

const (
	accessRead  access = iota // read (read-write if allowed, read-only if not); never create
	accessWrite               // write; create the file and its folders if need be
)

// NewFile returns a [File] that keeps the content of the torrent described
// by info under dir, creating dir if it does not exist. hash is the
// torrent's info hash: it names the default parts file.
//
// NewFile creates the selected files of length zero (and their folders)
// right away, since no write will ever create them; every other file is
// created by its first write.
//
// NewFile refuses a torrent whose files are not laid out consistently, and
// any path that is not a plain relative path under dir.
func NewFile(dir string, info *metainfo.Info, hash metainfo.Hash, opts FileOptions) (*File, error) {
	l, err := newLayout(info)
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("storage: empty folder name")
	}
	if opts.Selected != nil && len(opts.Selected) != len(info.Files) {
		return nil, fmt.Errorf("storage: %d selection flags for %d files", len(opts.Selected), len(info.Files))
	}
	if opts.MaxOpenFiles < 0 {
		return nil, fmt.Errorf("storage: MaxOpenFiles %d", opts.MaxOpenFiles)
	}
	s := &File{
		dir:     dir,
		layout:  l,
		files:   make([]fileInfo, len(info.Files)),
		parts:   len(info.Files),
		maxOpen: opts.MaxOpenFiles,
		slots:   make([]slot, len(info.Files)+1),
		head:    -1,
		tail:    -1,
	}
	if s.maxOpen == 0 {
		s.maxOpen = DefaultMaxOpenFiles
	}
	s.cond.L = &s.mu
	for i := range s.slots {
		s.slots[i].prev, s.slots[i].next = -1, -1
	}

	if opts.PartsFile == "" {
		s.partsPath, s.partsRoot = "."+hash.String()+".parts", true
	} else {
		s.partsPath = opts.PartsFile
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	absParts := filepath.Join(absDir, s.partsPath)
	if !s.partsRoot {
		if absParts, err = filepath.Abs(s.partsPath); err != nil {
			return nil, fmt.Errorf("storage: parts file: %w", err)
		}
	}

	for i, f := range info.Files {
		fi := &s.files[i]
		fi.selected.Store((opts.Selected == nil || opts.Selected[i]) && !f.Padding)
		if f.Padding {
			continue
		}
		if fi.rel, err = localPath(f.Path); err != nil {
			return nil, fmt.Errorf("storage: file %d: %w", i, err)
		}
		if p := filepath.Join(absDir, fi.rel); p == absParts || strings.HasPrefix(absParts, p+string(filepath.Separator)) {
			return nil, fmt.Errorf("storage: file %d: path %s is the parts file's", i, p)
		}
		fi.perm = 0o644
		if strings.ContainsRune(f.Attr, 'x') {
			fi.perm = 0o755
		}
	}

	s.readOnly = opts.ReadOnly
	if !s.readOnly {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
	}
	if s.root, err = os.OpenRoot(dir); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	for i, f := range info.Files {
		if s.readOnly {
			break
		}
		if f.Length != 0 || !s.files[i].selected.Load() {
			continue
		}
		h, _, err := s.open(i, accessWrite)
		if err == nil {
			err = h.Close()
		}
		if err != nil {
			s.root.Close()
			return nil, s.fail("create", i, err)
		}
	}
	return s, nil
}

// localPath joins the components of a torrent's file path into a path
// relative to the download folder, refusing anything but plain names.
// metainfo has checked them already; this is the second line of defence,
// the os.Root the files are opened in being the third.
func localPath(path []string) (string, error) {
	if len(path) == 0 {
		return "", errors.New("empty path")
	}
	for _, c := range path {
		if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "/\\\x00") || filepath.VolumeName(c) != "" {
			return "", fmt.Errorf("path %q: bad component %q", path, c)
		}
	}
	rel := filepath.Join(path...)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("path %q is not inside the download folder", path)
	}
	return rel, nil
}

// ReadAt implements [Storage.ReadAt]. A file shorter than the bytes read
// from it (partly written) gives an error wrapping io.ErrUnexpectedEOF.
//
// Bytes of files that are not selected are read from the parts file: with
// an error wrapping fs.ErrNotExist if there is none yet, io.ErrUnexpectedEOF
// past its end, and as zeros in a hole (bytes never written before the
// last ones that were), so such a piece simply fails its hash check.
func (s *File) ReadAt(p []byte, off int64) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("storage: read at negative offset %d", off)
	}
	if off >= s.layout.length {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var eof error
	if rest := s.layout.length - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	n, err := s.spans(p, off, func(b []byte) { clear(b) }, s.readFile)
	if err != nil {
		return n, err
	}
	return n, eof
}

// readFile reads all of p at offset off of slot i's file.
func (s *File) readFile(i int, p []byte, off int64) error {
	h, err := s.acquire(i, accessRead)
	if err != nil {
		return s.fail("read", i, err)
	}
	_, err = h.ReadAt(p, off)
	s.release(i, false)
	if err == io.EOF {
		err = fmt.Errorf("%d bytes at %d: file too short: %w", len(p), off, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return s.fail("read", i, err)
	}
	return nil
}

// WriteAt implements [Storage.WriteAt]. The whole of p must lie within the
// content. Bytes of files that are not selected go to the parts file.
func (s *File) WriteAt(p []byte, off int64) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if s.readOnly {
		return 0, ErrReadOnly
	}
	if off < 0 || int64(len(p)) > s.layout.length-off {
		return 0, fmt.Errorf("storage: write of %d bytes at %d: outside the content (%d bytes)", len(p), off, s.layout.length)
	}
	s.selMu.RLock()
	defer s.selMu.RUnlock()
	return s.spans(p, off, func([]byte) {}, s.writeFile)
}

// spans splits p, at content offset off, at file boundaries: padding
// parts go to pad; the parts of a selected file to io(file, part, offset
// in the file); the parts of other files to io(parts file, part, content
// offset). It returns the bytes done.
func (s *File) spans(p []byte, off int64, pad func([]byte), io func(slot int, p []byte, off int64) error) (int, error) {
	n := 0
	for i := s.layout.fileAt(off); n < len(p); i++ {
		f := &s.layout.files[i]
		if f.length == 0 {
			continue
		}
		seg := p[n : n+int(f.segment(off, int64(len(p)-n)))]
		var err error
		switch {
		case f.padding:
			pad(seg)
		case s.files[i].selected.Load():
			err = io(i, seg, off-f.offset)
		default:
			err = io(s.parts, seg, off)
		}
		if err != nil {
			return n, err
		}
		n += len(seg)
		off += int64(len(seg))
	}
	return n, nil
}

// writeFile writes all of p at offset off of slot i's file.
func (s *File) writeFile(i int, p []byte, off int64) error {
	h, err := s.acquire(i, accessWrite)
	if err != nil {
		return s.fail("write", i, err)
	}
	_, err = h.WriteAt(p, off)
	s.mu.Lock()
	s.slots[i].unsynced = true // after the write: a Sync from now on covers it
	s.mu.Unlock()
	s.release(i, false)
	if err != nil {
		return s.fail("write", i, err)
	}
	return nil
}

// Select selects file i of a running download: from now on its bytes go to
// the file, which is created. Bytes of it that pieces already verified
// put in the parts file (only its first and last piece can have, as pieces
// shared with another selected file) are copied into it; have reports
// which pieces are verified, and those must not be written again
// meanwhile. Padding files and files already selected need nothing.
func (s *File) Select(i int, have func(piece int) bool) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.readOnly {
		return ErrReadOnly
	}
	if i < 0 || i >= len(s.files) {
		return fmt.Errorf("storage: select file %d of %d", i, len(s.files))
	}
	f := &s.layout.files[i]
	if f.padding || s.files[i].selected.Load() {
		return nil
	}
	s.selMu.Lock()
	defer s.selMu.Unlock()
	if s.files[i].selected.Load() {
		return nil
	}
	// The file counts as selected only once its bytes are in it: a copy
	// that fails leaves it unselected, for the next Select to copy again.
	if f.length == 0 {
		h, _, err := s.open(i, accessWrite)
		if err == nil {
			err = h.Close()
		}
		if err != nil {
			return s.fail("create", i, err)
		}
		s.files[i].selected.Store(true)
		return nil
	}
	if s.stat(s.parts) != nil {
		s.files[i].selected.Store(true)
		return nil // no parts file: nothing was kept aside
	}
	pl := s.layout.pieceLen
	first, last := int(f.offset/pl), int((f.offset+f.length-1)/pl)
	for _, piece := range []int{first, last} {
		// Whatever the parts file holds, verified or not: a piece being
		// written now may have put bytes there that is not verified yet.
		begin := max(int64(piece)*pl, f.offset)
		end := min(int64(piece+1)*pl, f.offset+f.length)
		buf := make([]byte, end-begin)
		err := s.readFile(s.parts, buf, begin)
		if errors.Is(err, io.ErrUnexpectedEOF) && !have(piece) {
			err = nil // not that far yet; nothing of it verified
		}
		if err != nil {
			return err
		}
		if err := s.writeFile(i, buf, begin-f.offset); err != nil {
			return err
		}
		if first == last {
			break
		}
	}
	s.files[i].selected.Store(true)
	return nil
}

// FileComplete implements [Storage.FileComplete]: it syncs file i to disk
// and closes its handle unless another goroutine is using it. A selected
// file of length zero is created if it does not exist. Padding files and
// files that are not selected need nothing (the parts file is synced by
// Close).
func (s *File) FileComplete(i int) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if i < 0 || i >= len(s.files) {
		return fmt.Errorf("storage: file index %d out of range [0, %d)", i, len(s.files))
	}
	if !s.files[i].selected.Load() {
		return nil
	}
	mode := accessRead // the file must exist: every byte of it was written
	if s.layout.files[i].length == 0 {
		mode = accessWrite
	}
	h, err := s.acquire(i, mode)
	if err != nil {
		return s.fail("sync", i, err)
	}
	err = h.Sync()
	s.release(i, true)
	if err != nil {
		err = s.fail("sync", i, err)
		s.mu.Lock()
		s.slots[i].syncErr = err // see Sync
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	err = s.slots[i].syncErr
	s.mu.Unlock()
	return err
}

// Sync makes every write that returned before it was called durable: it
// syncs each file written since the last Sync (or marked by
// MarkUnsynced), including files whose handle was closed to make room for
// another meanwhile, and then the folder holding each of those files.
// Writes in progress may or may not be covered. A file whose sync failed
// once makes every later Sync fail: its data may be lost.
func (s *File) Sync() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.readOnly {
		return nil
	}
	s.mu.Lock()
	var todo []int
	var errs []error
	for i := range s.slots {
		if err := s.slots[i].syncErr; err != nil {
			errs = append(errs, err)
			continue
		}
		if s.slots[i].unsynced {
			s.slots[i].unsynced = false
			todo = append(todo, i)
		}
	}
	s.mu.Unlock()
	dirs := map[folder]bool{}
	for _, i := range todo {
		err := s.syncSlot(i)
		if errors.Is(err, fs.ErrNotExist) {
			// Deleted: nothing left to make durable. Its stamp says it
			// is gone, so no record trusts what it held.
			continue
		}
		if err != nil {
			// Once a sync fails, the kernel may have dropped the data
			// and a later sync would succeed all the same (Linux marks
			// the lost pages clean): the error stays with the file.
			err = s.fail("sync", i, err)
			s.mu.Lock()
			s.slots[i].syncErr = err
			s.mu.Unlock()
			errs = append(errs, err)
			continue
		}
		dirs[s.folderOf(i)] = true
	}
	for d := range dirs {
		if err := s.syncFolder(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("storage: sync folder %s: %w", d.path, err))
		}
	}
	return errors.Join(errs...)
}

// MarkUnsynced makes the next Sync sync file i (where its bytes are kept:
// its own file if selected, else the parts file), as if this File had
// written it: for data found on disk that a process before may have left
// in the page cache when it died.
func (s *File) MarkUnsynced(i int) {
	if i < 0 || i >= len(s.files) || s.layout.files[i].padding {
		return
	}
	slot := i
	if !s.files[i].selected.Load() {
		slot = s.parts
	}
	s.mu.Lock()
	s.slots[slot].unsynced = true
	s.mu.Unlock()
}

// syncSlot syncs slot i's file through its handle, opening it if need be.
func (s *File) syncSlot(i int) error {
	h, err := s.acquire(i, accessRead)
	if err != nil {
		return err
	}
	err = h.Sync()
	s.release(i, false)
	if syncHook != nil && err == nil {
		syncHook(s, i)
	}
	return err
}

// syncHook, set by tests, hears of each file Sync made durable.
var syncHook func(s *File, slot int)

// folder is a folder holding files of the content: under the root, or
// (for a parts file the caller placed) anywhere.
type folder struct {
	outside bool
	path    string
}

func (s *File) folderOf(i int) folder {
	if i == s.parts && !s.partsRoot {
		return folder{true, filepath.Dir(s.partsPath)}
	}
	return folder{false, filepath.Dir(s.rel(i))}
}

func (s *File) syncFolder(d folder) error {
	if runtime.GOOS == "windows" {
		return nil // folders cannot be synced there; NTFS journals their entries
	}
	var f *os.File
	var err error
	if d.outside {
		f, err = os.Open(d.path)
	} else {
		f, err = s.root.Open(d.path)
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Selected reports, for every file of the torrent, whether the storage
// keeps it in its own file (rather than only its boundary bytes, in the
// parts file). Padding files are never selected.
func (s *File) Selected() []bool {
	sel := make([]bool, len(s.files))
	for i := range s.files {
		sel[i] = s.files[i].selected.Load()
	}
	return sel
}

// Stamp is what a file of the content looks like on disk, as resume data
// records it: a file whose stamp has not changed since its pieces were
// checked need not be checked again.
type Stamp struct {
	Exists  bool
	Size    int64
	ModTime time.Time
}

// Stamps returns the stamp of every file of the torrent (padding files
// never exist) and of the parts file.
func (s *File) Stamps() (files []Stamp, parts Stamp, err error) {
	if s.closed.Load() {
		return nil, Stamp{}, ErrClosed
	}
	files = make([]Stamp, len(s.files))
	for i := range s.files {
		if s.layout.files[i].padding {
			continue
		}
		if files[i], err = s.stamp(i); err != nil {
			return nil, Stamp{}, err
		}
	}
	if parts, err = s.stamp(s.parts); err != nil {
		return nil, Stamp{}, err
	}
	return files, parts, nil
}

func (s *File) stamp(i int) (Stamp, error) {
	var fi fs.FileInfo
	var err error
	if i == s.parts && !s.partsRoot {
		fi, err = os.Stat(s.partsPath)
	} else {
		fi, err = s.root.Stat(s.rel(i))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return Stamp{}, nil
	}
	if err != nil {
		return Stamp{}, s.fail("stat", i, err)
	}
	return Stamp{Exists: true, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Close implements [Storage.Close]. It waits for reads and writes in
// progress, syncs every file written since the last Sync (open or not),
// and closes them all. It reports the first error met closing a handle
// to make room for another, if any.
func (s *File) Close() error {
	if !s.closed.Load() {
		if err := s.Sync(); err != nil && !errors.Is(err, ErrClosed) {
			s.mu.Lock()
			if s.closeErr == nil {
				s.closeErr = err
			}
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed.Store(true)
	s.cond.Broadcast() // waiters in acquire give up
	for !s.idleLocked() {
		s.cond.Wait()
	}
	type handle struct {
		i     int
		f     *os.File
		dirty bool
	}
	var handles []handle
	for i := s.head; i >= 0; {
		sl := &s.slots[i]
		handles = append(handles, handle{int(i), sl.f, sl.dirty})
		next := sl.next
		*sl = slot{prev: -1, next: -1}
		i = next
	}
	s.head, s.tail, s.nopen, s.nlru = -1, -1, 0, 0
	errs := []error{s.closeErr}
	s.mu.Unlock()

	for _, h := range handles {
		if h.dirty {
			if err := h.f.Sync(); err != nil {
				errs = append(errs, s.fail("sync", h.i, err))
			}
		}
		if err := h.f.Close(); err != nil {
			errs = append(errs, s.fail("close", h.i, err))
		}
	}
	if err := s.root.Close(); err != nil {
		errs = append(errs, fmt.Errorf("storage: close %s: %w", s.dir, err))
	}
	return errors.Join(errs...)
}

// idleLocked reports whether no handle is being opened, closed or used.
func (s *File) idleLocked() bool {
	if s.nopen != s.nlru {
		return false
	}
	for i := s.head; i >= 0; i = s.slots[i].next {
		if s.slots[i].refs != 0 {
			return false
		}
	}
	return true
}

// acquire returns an open handle of slot i's file, opening it if need be,
// and holds it (refs) until release. The handle is read-write for
// accessWrite, and for accessRead when the file allows it. acquire waits
// while every handle is in use and none can be closed to open another.
// The file is opened and closed without the lock held.
func (s *File) acquire(i int, mode access) (*os.File, error) {
	s.mu.Lock()
	for {
		if s.closed.Load() {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		sl := &s.slots[i]
		switch sl.state {
		case stateOpening, stateClosing:
			s.cond.Wait()
			continue
		case stateOpen:
			if mode == accessRead && sl.upgrading {
				s.cond.Wait()
				continue
			}
			if mode == accessRead || sl.writable {
				sl.refs++
				if mode == accessWrite {
					sl.dirty = true
				}
				s.toFront(int32(i))
				f := sl.f
				s.mu.Unlock()
				return f, nil
			}
			// Opened read-only by a reader: reopen read-write once idle.
			if sl.refs > 0 {
				sl.upgrading = true
				s.cond.Wait()
				continue
			}
			s.closeLocked(i)
			continue
		}

		if mode == accessRead && !sl.exists {
			// Answer for a missing file without taking a slot, which
			// could mean closing another file's handle.
			s.mu.Unlock()
			if err := s.stat(i); err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.slots[i].exists = true
			continue
		}
		if s.nopen >= s.maxOpen {
			v := s.victim()
			if v < 0 {
				s.cond.Wait()
				continue
			}
			s.closeLocked(int(v))
			continue
		}

		sl.state = stateOpening
		s.nopen++
		s.peakOpen = max(s.peakOpen, s.nopen)
		s.mu.Unlock()
		f, writable, err := s.open(i, mode)
		s.mu.Lock()
		s.cond.Broadcast()
		if err != nil {
			sl.state = stateClosed
			sl.exists = false
			s.nopen--
			s.mu.Unlock()
			return nil, err
		}
		// If Close came meanwhile, it waits for this handle's release.
		sl.f, sl.state, sl.writable, sl.exists = f, stateOpen, writable, true
		sl.refs, sl.dirty, sl.upgrading = 1, mode == accessWrite, false
		s.pushFront(int32(i))
		s.mu.Unlock()
		return f, nil
	}
}

// release ends a use of slot i's handle begun by acquire. With closeIdle,
// the handle is closed if no one else is using it.
func (s *File) release(i int, closeIdle bool) {
	s.mu.Lock()
	sl := &s.slots[i]
	sl.refs--
	if sl.refs == 0 {
		if closeIdle && !s.closed.Load() {
			s.closeLocked(i)
		}
		s.cond.Broadcast()
	}
	s.mu.Unlock()
}

// closeLocked closes slot i's handle, which must be open and idle. It
// unlocks mu while closing the file.
func (s *File) closeLocked(i int) {
	sl := &s.slots[i]
	f := sl.f
	s.unlink(int32(i))
	sl.state, sl.f, sl.dirty = stateClosing, nil, false
	s.mu.Unlock()
	err := f.Close()
	s.mu.Lock()
	sl.state = stateClosed
	s.nopen--
	if err != nil && s.closeErr == nil {
		s.closeErr = s.fail("close", i, err)
	}
	s.cond.Broadcast()
}

// victim returns the least recently used idle open slot, or -1.
func (s *File) victim() int32 {
	for i := s.tail; i >= 0; i = s.slots[i].prev {
		if s.slots[i].refs == 0 {
			return i
		}
	}
	return -1
}

// pushFront adds slot i to the front of the LRU list.
func (s *File) pushFront(i int32) {
	sl := &s.slots[i]
	sl.prev, sl.next = -1, s.head
	if s.head >= 0 {
		s.slots[s.head].prev = i
	} else {
		s.tail = i
	}
	s.head = i
	s.nlru++
}

// unlink removes slot i from the LRU list.
func (s *File) unlink(i int32) {
	sl := &s.slots[i]
	if sl.prev >= 0 {
		s.slots[sl.prev].next = sl.next
	} else {
		s.head = sl.next
	}
	if sl.next >= 0 {
		s.slots[sl.next].prev = sl.prev
	} else {
		s.tail = sl.prev
	}
	sl.prev, sl.next = -1, -1
	s.nlru--
}

// toFront marks slot i, which is in the LRU list, as the most recently used.
func (s *File) toFront(i int32) {
	if s.head != i {
		s.unlink(i)
		s.pushFront(i)
	}
}

// open opens slot i's file: for accessWrite read-write, creating it and its
// folders if need be; for accessRead read-write if the file allows it,
// read-only if not, never creating it. It reports whether the handle is
// writable.
func (s *File) open(i int, mode access) (*os.File, bool, error) {
	if mode == accessRead {
		f, err := s.openFile(i, os.O_RDWR, 0)
		if err == nil {
			return f, true, nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
		f, err = s.openFile(i, os.O_RDONLY, 0)
		return f, false, err
	}
	f, err := s.openFile(i, os.O_RDWR|os.O_CREATE, s.perm(i))
	if errors.Is(err, fs.ErrNotExist) {
		if err = s.mkdirParent(i); err == nil {
			f, err = s.openFile(i, os.O_RDWR|os.O_CREATE, s.perm(i))
		}
	}
	return f, err == nil, err
}

func (s *File) openFile(i, flag int, perm os.FileMode) (*os.File, error) {
	if i == s.parts && !s.partsRoot {
		return os.OpenFile(s.partsPath, flag, perm)
	}
	return s.root.OpenFile(s.rel(i), flag, perm)
}

func (s *File) stat(i int) error {
	var err error
	if i == s.parts && !s.partsRoot {
		_, err = os.Stat(s.partsPath)
	} else {
		_, err = s.root.Stat(s.rel(i))
	}
	return err
}

func (s *File) mkdirParent(i int) error {
	if i == s.parts && !s.partsRoot {
		return os.MkdirAll(filepath.Dir(s.partsPath), 0o755)
	}
	if d := filepath.Dir(s.rel(i)); d != "." {
		return s.root.MkdirAll(d, 0o755)
	}
	return nil
}

// rel returns slot i's path relative to the root.
func (s *File) rel(i int) string {
	if i == s.parts {
		return s.partsPath
	}
	return s.files[i].rel
}

func (s *File) perm(i int) os.FileMode {
	if i == s.parts {
		return 0o644
	}
	return s.files[i].perm
}

// fail wraps err, met doing op on slot i's file, with the file's path.
// The *fs.PathError the os package adds is dropped: it would repeat the
// path, relative to the root.
func (s *File) fail(op string, i int, err error) error {
	if err == ErrClosed {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if i == s.parts {
		p := s.partsPath
		if s.partsRoot {
			p = filepath.Join(s.dir, p)
		}
		return fmt.Errorf("storage: %s parts file %s: %w", op, p, err)
	}
	return fmt.Errorf("storage: %s %s: %w", op, filepath.Join(s.dir, s.files[i].rel), err)
}
