package aiotorrent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/httpserve"
)

// DefaultStreamAddr is where Stream listens unless told otherwise:
// loopback only.
const DefaultStreamAddr = "127.0.0.1:8080"

// WithAddr sets the address Stream listens on (DefaultStreamAddr unless
// set; ":0" style ports pick a free one). Give a non-loopback host to
// serve other machines.
func WithAddr(addr string) Option { return func(o *options) { o.addr = addr } }

// OnServe makes Stream call fn with the URL of the streamed file once it
// listens.
func OnServe(fn func(url string)) Option { return func(o *options) { o.onServe = fn } }

// Handler returns an http.Handler serving the torrent's files while they
// download:
//
//   - GET / lists the files: an HTML page with links and a player for
//     media files, or JSON when the request accepts application/json;
//   - GET /files/{index}[/{name}] serves a file's bytes, with Range
//     requests (seeking in a player), ETag and If-Range, HEAD, and a
//     Content-Type from the file's extension.
//
// Each response reads through its own [Reader], fetching the pieces just
// ahead of it first, and releases it when the client goes. The torrent
// starts at the first request, with opts (in memory unless [WithDir] is
// given: nothing is written to disk) and keeps running until Close.
func (t *Torrent) Handler(opts ...Option) http.Handler {
	h, _ := t.handler(opts)
	return h
}

func (t *Torrent) handler(opts []Option) (http.Handler, error) {
	if t.meta() == nil {
		return nil, ErrNoMetadata
	}
	o := buildOptions(opts)
	if o.memory == 0 && o.dir == "" {
		opts = append([]Option{InMemory(0)}, opts...)
	}
	var once sync.Mutex
	started := false
	keep := func() error {
		once.Lock()
		defer once.Unlock()
		if started {
			return nil
		}
		if err := t.keepRunning(opts); err != nil {
			return err
		}
		started = true
		return nil
	}
	src := httpserve.Source{
		Name: t.Name(),
		ID:   t.infoHash.String(),
		Open: func(ctx context.Context, index int) (io.ReadSeekCloser, error) {
			if err := keep(); err != nil {
				return nil, err
			}
			for _, f := range t.Files() {
				if f.Index == index {
					return t.NewReader(ctx, f, opts...)
				}
			}
			return nil, fmt.Errorf("torrent %s: no file with index %d", t.Name(), index)
		},
		Progress: t.fileProgress,
	}
	for _, f := range t.Files() {
		src.Files = append(src.Files, httpserve.File{Index: f.Index, Path: f.Path, Length: f.Length})
	}
	return httpserve.NewHandler(src, httpserve.Options{Logger: t.logger()}), nil
}

// keepRunning starts the torrent with nothing selected (readers say what
// to fetch) and keeps it running until Close, as Start does.
func (t *Torrent) keepRunning(opts []Option) error {
	o := buildOptions(opts)
	e, err := t.start(context.Background(), o, false, make([]bool, len(t.meta().Info.Files)))
	if err != nil {
		return err
	}
	t.keep(e)
	return nil
}

// fileProgress returns the verified bytes of file index (0 when the
// torrent is not running).
func (t *Torrent) fileProgress(index int) int64 {
	e := t.running()
	if e == nil {
		return 0
	}
	f := t.meta().Info.Files[index]
	begin, end := t.meta().Info.FilePieces(index)
	var n int64
	for i := begin; i < end; i++ {
		if e.haveBits.Has(i) {
			start := int64(i) * t.meta().Info.PieceLength
			n += min(start+t.meta().Info.PieceSize(i), f.Offset+f.Length) - max(start, f.Offset)
		}
	}
	return n
}

func (t *Torrent) logger() *slog.Logger {
	t.mu.Lock()
	c := t.client
	t.mu.Unlock()
	if c == nil || c.cfg.Logger == nil {
		return slog.Default()
	}
	return c.cfg.Logger
}

// Stream serves the torrent's files over HTTP while they download, as
// Handler does, mirroring the Python library's stream(file): it listens
// on DefaultStreamAddr unless [WithAddr] says otherwise, tells [OnServe]
// the URL of file f, and serves until ctx is done. Unless [WithDir] is
// given the torrent runs in memory ([InMemory]): nothing touches the disk.
func (t *Torrent) Stream(ctx context.Context, f File, opts ...Option) error {
	h, err := t.handler(opts)
	if err != nil {
		return err
	}
	o := buildOptions(opts)
	addr := o.addr
	if addr == "" {
		addr = DefaultStreamAddr
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("stream %s: %w", t.Name(), err)
	}
	srv := httpserve.NewServer(h, t.logger())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if o.onServe != nil {
		o.onServe(URL(ln.Addr(), f))
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("stream %s: %w", t.Name(), err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stream %s: %w", t.Name(), err)
	}
	return nil
}

// URL returns the URL of file f on a Handler served at addr.
func URL(addr net.Addr, f File) string {
	host := addr.String()
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		host = net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
	}
	return "http://" + host + httpserve.FilePath(httpserve.File{Index: f.Index, Path: f.Path, Length: f.Length})
}
