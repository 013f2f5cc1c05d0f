package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/internal/httpserve"
)

var streamCmd = &command{
	name:    "stream",
	summary: "serve a torrent's files over HTTP while they download, without writing to disk",
	usage:   "[--addr HOST:PORT] [--file N]... [--cache SIZE] [-o DIR] [--json] [--peer HOST:PORT]... TORRENT|MAGNET",
	run:     runStream,
}

// streamOverhead is the memory stream allows itself beyond the cache, as a
// soft limit for the garbage collector: block buffers in flight, the
// runtime, HTTP.
const streamOverhead = 48 << 20

type streamOpts struct {
	addr  string
	files listFlag
	cache string
	out   string
	json  bool
	every time.Duration
	netOpts
}

func streamFlags() (*flag.FlagSet, *streamOpts) {
	o := &streamOpts{}
	fs := flag.NewFlagSet("stream", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", aiotorrent.DefaultStreamAddr, "serve HTTP on `HOST:PORT` (loopback unless you give another host)")
	fs.Var(&o.files, "file", "print the URL of the file with index `N` only (all files are served); may be repeated")
	fs.StringVar(&o.cache, "cache", "64M", "keep at most `SIZE` of pieces in memory")
	fs.StringVar(&o.out, "o", "", "write the pieces fetched into folder `DIR` instead of keeping them in memory only")
	fs.BoolVar(&o.json, "json", false, "print the URLs and the state as JSON lines on stdout")
	o.register(fs, true)
	registerStateDir(fs, &o.stateDir)
	fs.DurationVar(&o.every, "status-every", 5*time.Second, "when stderr is not a terminal, print a status line every `D`")
	return fs, o
}

func runStream(ctx context.Context, e *env, args []string) error {
	fs, o := streamFlags()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("wants one torrent file, got %d arguments", len(pos))
	}
	cache, err := parseSize(o.cache)
	if err != nil || cache <= 0 {
		return usagef("--cache %q: want a size such as 64M", o.cache)
	}
	if o.every <= 0 {
		return usagef("--status-every must be positive")
	}
	o.netOpts.json = o.json
	client, t, files, err := o.open(ctx, e, pos[0], o.files)
	if err != nil {
		return err
	}
	defer client.Close()
	opts := []aiotorrent.Option{aiotorrent.InMemory(cache)}
	if o.out != "" {
		opts = []aiotorrent.Option{aiotorrent.WithDir(o.out)}
	} else if e.process && os.Getenv("GOMEMLIMIT") == "" {
		// The cache is most of the heap: without a limit the collector
		// lets the heap grow to twice it before collecting.
		debug.SetMemoryLimit(cache + streamOverhead)
	}
	h := t.Handler(opts...)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	srv := httpserve.NewServer(h, nil)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	defer srv.Close()

	base := "http://" + httpHost(ln.Addr()) + "/"
	if o.json {
		for _, f := range files {
			writeJSONLine(e.stdout, streamEvent{Event: "serving", URL: aiotorrent.URL(ln.Addr(), f), File: f.Index, Path: f.Path, Length: f.Length})
		}
	} else {
		fmt.Fprintf(e.stdout, "%s: serving on %s (Ctrl-C to stop)\n", sanitize(t.Name()), base)
		for _, f := range files {
			fmt.Fprintf(e.stdout, "  %s  %s\n", aiotorrent.URL(ln.Addr(), f), sanitize(f.Path))
		}
	}
	interval := o.every
	if e.isTerminal {
		interval = 500 * time.Millisecond
	}
	if o.json {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	drawn := false
	for {
		select {
		case <-ctx.Done():
			if drawn {
				fmt.Fprint(e.stderr, "\r\033[K")
			}
			s := t.Stats()
			if o.json {
				writeJSONLine(e.stdout, streamStatus("stopped", s))
			} else {
				fmt.Fprintf(e.stdout, "%s: stopped; downloaded %s, uploaded %s\n", sanitize(t.Name()), formatSize(s.Downloaded), formatSize(s.Uploaded))
			}
			return nil
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("serve HTTP: %w", err)
		case <-tick.C:
			s := t.Stats()
			switch {
			case o.json:
				writeJSONLine(e.stdout, streamStatus("status", s))
			case e.isTerminal:
				fmt.Fprintf(e.stderr, "\r\033[K%s", streamLine(t, s))
				drawn = true
			default:
				fmt.Fprintf(e.stderr, "%s: %s\n", sanitize(t.Name()), streamLine(t, s))
			}
		}
	}
}

// streamLine is the status: the readers' positions, the cache, peers and
// rate.
func streamLine(t *aiotorrent.Torrent, s aiotorrent.Stats) string {
	var b strings.Builder
	if len(s.Readers) == 0 {
		b.WriteString("no reader")
	}
	files := t.Files()
	for k, r := range s.Readers {
		if k > 0 {
			b.WriteString(", ")
		}
		var length int64
		for _, f := range files {
			if f.Index == r.File {
				length = f.Length
			}
		}
		wait := ""
		if r.Waiting {
			wait = " waiting"
		}
		fmt.Fprintf(&b, "file %d at %s (%.0f%%)%s", r.File, formatSize(r.Position), 100*float64(r.Position)/float64(max(length, 1)), wait)
	}
	if s.CacheSize > 0 {
		fmt.Fprintf(&b, "  cache %s / %s", formatSize(s.Cached), formatSize(s.CacheSize))
	}
	fmt.Fprintf(&b, "  peers %d  %s/s", s.Peers, formatSize(int64(s.DownloadRate)))
	return b.String()
}

type streamEvent struct {
	Event  string `json:"event"`
	URL    string `json:"url"`
	File   int    `json:"file"`
	Path   string `json:"path"`
	Length int64  `json:"length"`
}

type streamReader struct {
	File      int   `json:"file"`
	Position  int64 `json:"position"`
	Readahead int64 `json:"readahead"`
	Waiting   bool  `json:"waiting"`
}

type streamStatusEvent struct {
	Event        string         `json:"event"`
	Readers      []streamReader `json:"readers"`
	Cached       int64          `json:"cached_bytes"`
	CacheSize    int64          `json:"cache_bytes"`
	Verified     int64          `json:"verified_bytes"`
	Downloaded   int64          `json:"downloaded_bytes"`
	Uploaded     int64          `json:"uploaded_bytes"`
	DownloadRate float64        `json:"download_rate"`
	Peers        int            `json:"peers"`
}

func streamStatus(ev string, s aiotorrent.Stats) streamStatusEvent {
	out := streamStatusEvent{
		Event: ev, Readers: []streamReader{}, Cached: s.Cached, CacheSize: s.CacheSize, Verified: s.Verified,
		Downloaded: s.Downloaded, Uploaded: s.Uploaded, DownloadRate: s.DownloadRate, Peers: s.Peers,
	}
	for _, r := range s.Readers {
		out.Readers = append(out.Readers, streamReader{File: r.File, Position: r.Position, Readahead: r.Readahead, Waiting: r.Waiting})
	}
	return out
}

// httpHost is the host:port to reach a listener at: loopback for one
// listening on every address.
func httpHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
	}
	return a.String()
}
