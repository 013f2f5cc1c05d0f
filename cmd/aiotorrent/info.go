package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aiotorrent/aiotorrent"
)

var infoCmd = &command{
	name:    "info",
	summary: "show what a .torrent file or magnet link holds (fetching a magnet link's metadata from peers)",
	usage:   "[--json] [--no-fetch] [--timeout D] TORRENT|MAGNET",
	run:     runInfo,
}

type infoOpts struct {
	json    bool
	noFetch bool
	timeout time.Duration
	net     netOpts
}

func infoFlags() (*flag.FlagSet, *infoOpts) {
	o := &infoOpts{}
	fs := flag.NewFlagSet("info", flag.ContinueOnError)
	fs.BoolVar(&o.json, "json", false, "print the information as one JSON object")
	fs.BoolVar(&o.noFetch, "no-fetch", false, "for a magnet link, show what the link holds instead of fetching the metadata from peers")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up fetching a magnet link's metadata after `D`")
	fs.StringVar(&o.net.saveTorrent, "save-torrent", "", "write the torrent's metainfo to `FILE` (for a magnet link, once it has arrived from peers)")
	o.net.register(fs, true)
	registerStateDir(fs, &o.net.stateDir)
	return fs, o
}

// infoJSON is the --json output of info.
type infoJSON struct {
	Name         string     `json:"name"`
	InfoHash     string     `json:"info_hash"`
	Magnet       string     `json:"magnet"`
	HasMetadata  bool       `json:"has_metadata"`
	TotalSize    int64      `json:"total_size"`
	PieceSize    int64      `json:"piece_size"`
	Pieces       int        `json:"pieces"`
	Private      bool       `json:"private"`
	Hybrid       bool       `json:"hybrid_v2,omitempty"`
	Trackers     [][]string `json:"trackers"`
	WebSeeds     []string   `json:"web_seeds"`
	Comment      string     `json:"comment,omitempty"`
	CreatedBy    string     `json:"created_by,omitempty"`
	CreationDate string     `json:"creation_date,omitempty"`
	Source       string     `json:"source,omitempty"`
	Files        []fileJSON `json:"files"`
}

type fileJSON struct {
	Index  int    `json:"index"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Offset int64  `json:"offset"`
}

func runInfo(ctx context.Context, e *env, args []string) error {
	fs, o := infoFlags()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one TORRENT file or MAGNET link, got %d arguments", len(pos))
	}
	if o.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	t, err := aiotorrent.Open(ctx, pos[0])
	if err != nil {
		return err
	}
	if !t.HasMetadata() && !o.noFetch {
		// A magnet link: its files come from peers (or from the state
		// folder, if this machine has seen the torrent).
		fctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		client, ft, _, err := o.net.open(fctx, e, pos[0], nil)
		if err != nil {
			if fctx.Err() != nil && ctx.Err() == nil {
				return fmt.Errorf("no peer sent the metadata of %s within %s (--no-fetch shows what the link holds)", sanitize(t.Name()), o.timeout)
			}
			return err
		}
		defer client.Close()
		t = ft
	} else if o.net.saveTorrent != "" {
		if !t.HasMetadata() {
			return usagef("--save-torrent needs the metadata, which --no-fetch does not fetch")
		}
		if err := o.net.waitMetadata(ctx, e, t); err != nil {
			return err
		}
	}
	out := describe(t)
	if o.json {
		return writeJSON(e, out)
	}
	printInfo(e, out)
	return nil
}

func describe(t *aiotorrent.Torrent) *infoJSON {
	out := &infoJSON{
		Name:        t.Name(),
		InfoHash:    t.InfoHash().String(),
		Magnet:      t.Magnet(),
		HasMetadata: t.HasMetadata(),
		TotalSize:   t.Length(),
		PieceSize:   t.PieceLength(),
		Pieces:      t.NumPieces(),
		Private:     t.Private(),
		Trackers:    t.Trackers(),
		WebSeeds:    t.WebSeeds(),
		Files:       []fileJSON{},
	}
	if out.Trackers == nil {
		out.Trackers = [][]string{}
	}
	if out.WebSeeds == nil {
		out.WebSeeds = []string{}
	}
	if mi := t.MetaInfo(); mi != nil {
		out.Comment = mi.Comment
		out.CreatedBy = mi.CreatedBy
		if !mi.CreationDate.IsZero() {
			out.CreationDate = mi.CreationDate.Format(time.RFC3339)
		}
		out.Source = mi.Info.Source
		out.Hybrid = mi.Info.Hybrid
	}
	for _, f := range t.Files() {
		out.Files = append(out.Files, fileJSON{Index: f.Index, Path: f.Path, Size: f.Length, Offset: f.Offset})
	}
	return out
}

func printInfo(e *env, in *infoJSON) {
	w := tabwriter.NewWriter(e.stdout, 0, 0, 1, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, sanitize(v)) }
	row("Name", in.Name)
	row("Info hash", in.InfoHash)
	if in.HasMetadata {
		row("Total size", fmt.Sprintf("%s (%d bytes)", formatSize(in.TotalSize), in.TotalSize))
		row("Pieces", fmt.Sprintf("%d × %s", in.Pieces, formatSize(in.PieceSize)))
		row("Private", yesNo(in.Private))
		if in.Hybrid {
			row("Version", "hybrid v1+v2 (using v1)")
		}
	} else {
		row("Metadata", "not fetched yet (magnet link: sizes and files come from peers)")
	}
	if in.CreatedBy != "" {
		row("Created by", in.CreatedBy)
	}
	if in.CreationDate != "" {
		row("Created on", in.CreationDate)
	}
	if in.Comment != "" {
		row("Comment", in.Comment)
	}
	if in.Source != "" {
		row("Source", in.Source)
	}
	row("Magnet", in.Magnet)
	w.Flush()

	fmt.Fprintln(e.stdout)
	if len(in.Trackers) == 0 {
		fmt.Fprintln(e.stdout, "Trackers: none")
	} else {
		fmt.Fprintln(e.stdout, "Trackers:")
		for i, tier := range in.Trackers {
			for _, tr := range tier {
				fmt.Fprintf(e.stdout, "  tier %d  %s\n", i+1, sanitize(tr))
			}
		}
	}
	if len(in.WebSeeds) > 0 {
		fmt.Fprintln(e.stdout, "Web seeds:")
		for _, ws := range in.WebSeeds {
			fmt.Fprintf(e.stdout, "  %s\n", sanitize(ws))
		}
	}
	if in.HasMetadata {
		fmt.Fprintf(e.stdout, "\nFiles (%d):\n", len(in.Files))
		w = tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(w, "  index\tsize\t  \tpath\n")
		for _, f := range in.Files {
			fmt.Fprintf(w, "  %d\t%s\t  \t%s\n", f.Index, formatSize(f.Size), sanitize(f.Path))
		}
		w.Flush()
	}
}

// writeJSON prints v as indented JSON, with URLs' & and < left as they are.
func writeJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// sanitize replaces control characters, so a torrent's strings cannot
// drive the terminal.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
