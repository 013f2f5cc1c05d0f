package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aiotorrent/aiotorrent"
)

var verifyCmd = &command{
	name:    "verify",
	summary: "check a torrent's data in a folder against its piece hashes and report per file",
	usage:   "[-d DIR] [--json] [--state-dir DIR] TORRENT",
	run:     runVerify,
}

type verifyOpts struct {
	dir      string
	json     bool
	stateDir string
}

func verifyFlags() (*flag.FlagSet, *verifyOpts) {
	o := &verifyOpts{}
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.StringVar(&o.dir, "d", ".", "the folder holding the torrent's content (`DIR`, as given to download -o)")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object")
	registerStateDir(fs, &o.stateDir)
	return fs, o
}

func runVerify(ctx context.Context, e *env, args []string) error {
	fs, o := verifyFlags()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("wants one torrent file, got %d arguments", len(pos))
	}
	// A client only for its resume records: pieces they vouch for that
	// are found damaged are withdrawn, so download fetches them again.
	client, err := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "-", NoTrackers: true, NoDHT: true, StateDir: o.stateDir, Logger: e.logger()})
	if err != nil {
		return err
	}
	defer client.Close()
	t, err := client.Open(ctx, pos[0])
	if err != nil {
		return err
	}
	if !t.HasMetadata() {
		return usagef("verify needs a .torrent file, not a magnet link")
	}
	name := sanitize(t.Name())
	p := &checkLine{e: e, name: name, start: time.Now()}
	r, err := t.Verify(ctx, aiotorrent.WithDir(o.dir), aiotorrent.OnCheck(p.show))
	p.clear()
	if err != nil {
		return err
	}
	if o.json {
		writeJSONLine(e.stdout, verifyJSON(t, r))
	} else {
		printVerify(e, name, r)
		if len(r.Withdrawn) > 0 {
			fmt.Fprintf(e.stdout, "%s: pieces %s taken out of the resume record: the next download fetches them\n", name, pieceRanges(r.Withdrawn))
		}
	}
	if r.RecordErr != nil {
		fmt.Fprintf(e.stderr, "note: %s: the resume record was not updated: %v\n", name, r.RecordErr)
	}
	if !r.Complete() {
		return fmt.Errorf("%s: %d of %d pieces are missing or damaged", name, len(r.Bad), r.Pieces)
	}
	return nil
}

// checkLine shows a data check's progress on stderr: a redrawn line on a
// terminal, a plain line every 5 s otherwise.
type checkLine struct {
	e     *env
	name  string
	start time.Time
	mu    sync.Mutex
	last  time.Time
	drawn bool
}

func (c *checkLine) show(p aiotorrent.CheckProgress) {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := fmt.Sprintf("checking %s %.0f%% (%d/%d pieces)", c.name, piecePercent(p.Checked, p.Pieces), p.Checked, p.Pieces)
	now := time.Now()
	switch {
	case c.e.isTerminal:
		fmt.Fprintf(c.e.stderr, "\r\x1b[K%s", line)
		c.drawn = true
	case !p.Done && now.Sub(c.start) >= 5*time.Second && now.Sub(c.last) >= 5*time.Second:
		fmt.Fprintln(c.e.stderr, line)
		c.last = now
	}
}

func (c *checkLine) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drawn {
		fmt.Fprint(c.e.stderr, "\r\x1b[K")
		c.drawn = false
	}
}

func printVerify(e *env, name string, r *aiotorrent.VerifyResult) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, f := range r.Files {
		path := sanitize(f.File.Path)
		switch {
		case f.OK():
			fmt.Fprintf(tw, "ok\t%s\t%s\n", path, formatSize(f.File.Length))
		case f.Size < 0:
			fmt.Fprintf(tw, "MISSING\t%s\t%s\n", path, formatSize(f.File.Length))
		case f.Size != f.File.Length:
			fmt.Fprintf(tw, "SIZE\t%s\t%s of %s; bad pieces %s of its %d\n", path, formatSize(f.Size), formatSize(f.File.Length), pieceRanges(f.Bad), f.Pieces)
		default:
			fmt.Fprintf(tw, "BAD\t%s\t%s; bad pieces %s of its %d\n", path, formatSize(f.File.Length), pieceRanges(f.Bad), f.Pieces)
		}
	}
	tw.Flush()
	if r.Complete() {
		fmt.Fprintf(e.stdout, "%s: all %d pieces verified in %s\n", name, r.Pieces, r.Dir)
	} else {
		fmt.Fprintf(e.stdout, "%s: %d of %d pieces verified in %s; missing or damaged: %s\n", name, r.Verified, r.Pieces, r.Dir, pieceRanges(r.Bad))
	}
}

// pieceRanges writes sorted piece indexes as "3, 6-7, 14-16".
func pieceRanges(ps []int) string {
	var b strings.Builder
	for k := 0; k < len(ps); {
		j := k
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(ps[k]))
		if j > k {
			b.WriteString("-" + strconv.Itoa(ps[j]))
		}
		k = j + 1
	}
	return b.String()
}

type verifyFileJSON struct {
	Index  int    `json:"index"`
	Path   string `json:"path"`
	Length int64  `json:"length"`
	Size   int64  `json:"size"` // on disk, -1 when missing
	Pieces int    `json:"pieces"`
	Bad    []int  `json:"bad_pieces"`
	OK     bool   `json:"ok"`
}

type verifyResultJSON struct {
	Name     string           `json:"name"`
	InfoHash string           `json:"info_hash"`
	Dir      string           `json:"dir"`
	Pieces   int              `json:"pieces"`
	Verified int              `json:"verified"`
	Bad      []int            `json:"bad_pieces"`
	Complete bool             `json:"complete"`
	Files    []verifyFileJSON `json:"files"`
	// Withdrawn: pieces taken out of the resume record; RecordError: why
	// the record could not be updated.
	Withdrawn   []int  `json:"withdrawn_from_record"`
	RecordError string `json:"record_error,omitempty"`
}

func verifyJSON(t *aiotorrent.Torrent, r *aiotorrent.VerifyResult) verifyResultJSON {
	out := verifyResultJSON{Name: t.Name(), InfoHash: t.InfoHash().String(), Dir: r.Dir, Pieces: r.Pieces,
		Verified: r.Verified, Bad: nonNil(r.Bad), Complete: r.Complete(), Withdrawn: nonNil(r.Withdrawn)}
	if r.RecordErr != nil {
		out.RecordError = r.RecordErr.Error()
	}
	for _, f := range r.Files {
		out.Files = append(out.Files, verifyFileJSON{Index: f.File.Index, Path: f.File.Path, Length: f.File.Length,
			Size: f.Size, Pieces: f.Pieces, Bad: nonNil(f.Bad), OK: f.OK()})
	}
	return out
}

func nonNil(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}
