// Package httpserve serves a torrent's files over HTTP while they
// download: a listing page (HTML with inline players, or JSON) and each
// file's bytes with Range, If-Range and HEAD support, so a video player
// pointed at a file's URL starts at once and seeks.
//
// The package knows nothing of the torrent engine: it serves a [Source],
// whose Open returns a reader that blocks until the bytes it is asked for
// are downloaded. The handler is built for untrusted clients: a bounded
// number of readers at a time ([Options.MaxReaders]), a write deadline
// renewed on every write so a client that stops reading is dropped
// ([Options.StallTimeout]), and a reader that is closed as soon as its
// response ends. [NewServer] adds the connection-level limits.
package httpserve

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// File is one file offered.
type File struct {
	// Index identifies the file in its torrent and in its URL.
	Index int
	// Path is the file's path inside the torrent, "/"-separated.
	Path string
	// Length is the file's size in bytes.
	Length int64
}

// Source is what the handler serves.
type Source struct {
	// Name is the torrent's name, the listing's title.
	Name string
	// ID is a stable identity of the content (the info hash in hex); it
	// is part of every ETag, so it must change when the bytes could.
	ID string
	// Files are the files offered, in listing order. Indexes may skip
	// numbers (padding files are not listed); if an index appears twice,
	// the first entry is served.
	Files []File
	// Open (required) returns a reader of file index positioned at
	// offset 0. Its reads block until the bytes are downloaded; ctx is
	// the request's, and cancelling it makes blocked reads return. The
	// handler calls Close when the response ends, from the goroutine
	// that reads.
	Open func(ctx context.Context, index int) (io.ReadSeekCloser, error)
	// Progress, if not nil, returns how many bytes of file index are
	// downloaded; the listing shows it.
	Progress func(index int) int64
}

// Options tune the handler. The zero value is ready to use.
type Options struct {
	// MaxReaders is how many file responses may be in flight at once;
	// beyond it a file request gets 503 with Retry-After and no reader is
	// opened. Zero or less means 64.
	MaxReaders int
	// StallTimeout ends a response whose write makes no progress for this
	// long (a client that stopped reading). Every write to the client
	// renews the connection's write deadline, which replaces any
	// http.Server.WriteTimeout. Zero or less means 60s.
	StallTimeout time.Duration
	// Logger receives the handler's logs; nil means none.
	Logger *slog.Logger
}

const (
	defaultMaxReaders   = 64
	defaultStallTimeout = 60 * time.Second
)

// handler serves one Source; it is safe for concurrent use.
type handler struct {
	src    Source
	byIdx  map[int]File // read-only after NewHandler
	sem    chan struct{}
	stall  time.Duration
	log    *slog.Logger
	mux    *http.ServeMux
	etagID string // src.ID reduced to characters allowed in an ETag
}

// NewHandler returns the handler serving src: the listing at "/" and
// each file at "/files/{index}" and "/files/{index}/{name}" (see
// [FilePath]). Only GET and HEAD are allowed. It panics if src.Open is
// nil.
func NewHandler(src Source, opts Options) http.Handler {
	if src.Open == nil {
		panic("httpserve: Source.Open is nil")
	}
	h := &handler{
		src:    src,
		byIdx:  make(map[int]File, len(src.Files)),
		stall:  opts.StallTimeout,
		log:    opts.Logger,
		etagID: etagSafe(src.ID),
	}
	for _, f := range src.Files {
		if _, dup := h.byIdx[f.Index]; !dup {
			h.byIdx[f.Index] = f
		}
	}
	n := opts.MaxReaders
	if n <= 0 {
		n = defaultMaxReaders
	}
	h.sem = make(chan struct{}, n)
	if h.stall <= 0 {
		h.stall = defaultStallTimeout
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /{$}", h.serveListing)
	h.mux.HandleFunc("GET /files/{index}", h.serveFile)
	h.mux.HandleFunc("GET /files/{index}/{name...}", h.serveFile)
	return h
}

// ServeHTTP routes r, with every write to the client renewing the write
// deadline (see [Options.StallTimeout]).
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dw := &deadlineWriter{
		ResponseWriter: w,
		rc:             http.NewResponseController(w),
		timeout:        h.stall,
	}
	// When the handler returns, the server flushes what is buffered:
	// give that its own StallTimeout. (net/http clears the deadline
	// before reading the connection's next request.)
	defer dw.extend()
	h.mux.ServeHTTP(dw, r)
}

// NewServer returns an *http.Server for h hardened for untrusted
// clients: 10s to send the request headers (ReadHeaderTimeout), 60s idle
// keep-alive (IdleTimeout), 16 KiB of headers (MaxHeaderBytes), and its
// error log going to logger at Warn level (nil means discarded).
//
// It sets no WriteTimeout, since a response may stream for hours (the
// handler's StallTimeout drops clients that stop reading), and no
// ReadTimeout, which would cancel the request's context, and with it the
// stream, once it passed.
func NewServer(h http.Handler, logger *slog.Logger) *http.Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// FilePath returns the URL path of f with its name, e.g.
// /files/3/Movie%20(2020).mkv. The name is the last element of f.Path,
// escaped; it is left out when it is empty, "." or "..".
func FilePath(f File) string {
	p := "/files/" + strconv.Itoa(f.Index)
	name := baseName(f.Path)
	if name == "" || name == "." || name == ".." {
		return p
	}
	return p + "/" + escapeSegment(name)
}

// baseName returns the last "/"-separated element of p.
func baseName(p string) string {
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// escapeSegment percent-encodes s as one path segment. It keeps the
// unreserved characters and the few sub-delimiters that need no escaping
// in an HTML attribute either ("&", "'", "+" and "=" are encoded).
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keepInSegment(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func keepInSegment(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$()*,;:@", c) >= 0
}

// etagSafe drops the characters an entity tag may not hold.
func etagSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == 0x21 || (r >= 0x23 && r <= 0x7e) {
			return r
		}
		return -1
	}, s)
}
