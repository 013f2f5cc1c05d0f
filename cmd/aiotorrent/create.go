package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

var createCmd = &command{
	name:    "create",
	summary: "make a .torrent file from a file or folder",
	usage:   "[-o OUT.torrent] [--tracker URL[,URL...]]... [--piece-size SIZE] [--private] [--web-seed URL]... [--comment TEXT] PATH",
	run:     runCreate,
}

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type createOpts struct {
	out       string
	trackers  listFlag
	webSeeds  listFlag
	pieceSize string
	private   bool
	comment   string
	name      string
	source    string
	noDate    bool
	threads   int
	force     bool
}

func createFlags() (*flag.FlagSet, *createOpts) {
	o := &createOpts{}
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	fs.StringVar(&o.out, "o", "", "write the torrent to `FILE` (default NAME.torrent; - for standard output)")
	fs.Var(&o.trackers, "tracker", "announce `URL`; repeat for backup tiers, separate trackers of one tier with commas")
	fs.Var(&o.webSeeds, "web-seed", "web seed `URL` (BEP 19); may be repeated")
	fs.StringVar(&o.pieceSize, "piece-size", "", "piece `SIZE`, a power of two such as 256K or 4M (default: chosen from the total size)")
	fs.BoolVar(&o.private, "private", false, "mark the torrent private (BEP 27): peers only from its trackers")
	fs.StringVar(&o.comment, "comment", "", "free-text `COMMENT`")
	fs.StringVar(&o.name, "name", "", "torrent `NAME` (default: the base name of PATH)")
	fs.StringVar(&o.source, "source", "", "`SOURCE` tag some private trackers require (changes the info hash)")
	fs.BoolVar(&o.noDate, "no-date", false, "omit the creation date, so the same input always gives the same bytes (SOURCE_DATE_EPOCH also fixes it)")
	fs.IntVar(&o.threads, "threads", 0, "hash with `N` threads (default: all cores)")
	fs.BoolVar(&o.force, "force", false, "overwrite the output file if it exists")
	return fs, o
}

func runCreate(ctx context.Context, e *env, args []string) error {
	fs, o := createFlags()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one PATH to a file or folder, got %d arguments", len(pos))
	}
	root := pos[0]
	opts := metainfo.CreateOptions{
		Private:   o.private,
		Comment:   o.comment,
		Name:      o.name,
		Source:    o.source,
		Threads:   o.threads,
		CreatedBy: "aiotorrent/" + version,
		WebSeeds:  o.webSeeds,
	}
	if o.threads < 0 {
		return usagef("--threads must be positive")
	}
	if o.pieceSize != "" {
		n, err := parseSize(o.pieceSize)
		if err != nil {
			return usagef("--piece-size: %v", err)
		}
		if n < metainfo.MinPieceLength || n > metainfo.MaxPieceLength || n&(n-1) != 0 {
			return usagef("--piece-size: %s is not a power of two from %s to %s", o.pieceSize,
				formatSize(metainfo.MinPieceLength), formatSize(metainfo.MaxPieceLength))
		}
		opts.PieceLength = n
	}
	for _, t := range o.trackers {
		var tier []string
		for u := range strings.SplitSeq(t, ",") {
			if u = strings.TrimSpace(u); u == "" {
				continue
			}
			if err := metainfo.CheckTrackerURL(u); err != nil {
				return usagef("--tracker %q: %v", u, err)
			}
			tier = append(tier, u)
		}
		if len(tier) > 0 {
			opts.Trackers = append(opts.Trackers, tier)
		}
	}
	for _, u := range o.webSeeds {
		if err := metainfo.CheckWebSeedURL(u); err != nil {
			return usagef("--web-seed %q: %v", u, err)
		}
	}
	if !o.noDate {
		opts.CreationDate = time.Now().UTC().Truncate(time.Second)
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			sec, err := strconv.ParseInt(s, 10, 64)
			if err != nil || sec < 0 {
				return fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a Unix time", s)
			}
			opts.CreationDate = time.Unix(sec, 0).UTC()
		}
	}

	out := o.out
	if out == "" {
		name := o.name
		if name == "" {
			name = filepath.Base(filepath.Clean(root))
		}
		out = name + ".torrent"
	}
	if out != "-" && !o.force {
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("%s already exists (use --force to overwrite)", out)
		}
	}

	var prog *progressLine
	if e.isTerminal {
		prog = &progressLine{w: e.stderr, label: "hashing"}
		opts.Progress = prog.update
	}
	start := time.Now()
	mi, err := metainfo.Create(ctx, root, opts)
	prog.done()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("interrupted")
		}
		return err
	}
	data, err := mi.Marshal()
	if err != nil {
		return err
	}
	if out == "-" {
		_, err = e.stdout.Write(data)
		return err
	}
	if err := writeFileAtomic(out, data, o.force); err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(e.stderr, "created %s: %s, %d files, %d pieces of %s, info hash %s (hashed in %.1fs)\n",
		out, formatSize(mi.Info.Length), len(mi.Info.Files), mi.Info.NumPieces(),
		formatSize(mi.Info.PieceLength), mi.InfoHash, elapsed.Seconds())
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so a crash never leaves a half-written torrent.
func writeFileAtomic(path string, data []byte, overwrite bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !overwrite {
		// Link fails if path appeared meanwhile; rename would replace it.
		if err := os.Link(tmp, path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already exists (use --force to overwrite)", path)
			}
			return os.Rename(tmp, path)
		}
		return nil
	}
	return os.Rename(tmp, path)
}

// progressLine draws a one-line progress indicator on a terminal.
type progressLine struct {
	w     interface{ Write([]byte) (int, error) }
	label string
	last  time.Time
	shown bool
}

func (p *progressLine) update(done, total int64) {
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond || done == total {
		p.last = now
		p.shown = true
		fmt.Fprintf(p.w, "\r%s %5.1f%%  %s / %s", p.label, 100*float64(done)/float64(total), formatSize(done), formatSize(total))
	}
}

func (p *progressLine) done() {
	if p != nil && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
