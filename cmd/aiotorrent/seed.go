package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/aiotorrent/aiotorrent"
)

var seedCmd = &command{
	name:    "seed",
	summary: "check a torrent's data in a folder and serve it to peers until interrupted",
	usage:   "[-d DIR] [--listen ADDR] [--no-trackers] [--json] TORRENT",
	run:     runSeed,
}

type seedOpts struct {
	dir   string
	json  bool
	every time.Duration
	netOpts
}

func seedFlags() (*flag.FlagSet, *seedOpts) {
	o := &seedOpts{}
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.StringVar(&o.dir, "d", ".", "the folder holding the torrent's content (`DIR`, as given to download -o)")
	o.register(fs, false)
	fs.BoolVar(&o.json, "json", false, "print the state as JSON lines on stdout")
	fs.DurationVar(&o.every, "status-every", 10*time.Second, "print a status line every `D`")
	return fs, o
}

func runSeed(ctx context.Context, e *env, args []string) error {
	fs, o := seedFlags()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("wants one torrent file, got %d arguments", len(pos))
	}
	if o.every <= 0 {
		return usagef("--status-every must be positive")
	}
	client, err := o.client(e)
	if err != nil {
		return err
	}
	defer client.Close()
	t, err := client.Open(ctx, pos[0])
	if err != nil {
		return err
	}
	if !t.HasMetadata() {
		return usagef("seeding needs a .torrent file, not a magnet link")
	}
	if err := t.Start(aiotorrent.WithDir(o.dir)); err != nil {
		return err
	}
	s := t.Stats()
	if o.json {
		writeJSONLine(e.stdout, seedJSON("started", s, client))
	} else {
		fmt.Fprintf(e.stdout, "%s: %d of %d pieces present (%.1f%%); serving on %s\n",
			sanitize(t.Name()), s.PiecesVerified, s.Pieces, 100*float64(s.PiecesVerified)/float64(max(s.Pieces, 1)), client.Addr())
	}
	tick := time.NewTicker(o.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s := t.Stats()
			if o.json {
				writeJSONLine(e.stdout, seedJSON("stopped", s, client))
			} else {
				fmt.Fprintf(e.stdout, "%s: stopped; uploaded %s\n", sanitize(t.Name()), formatSize(s.Uploaded))
			}
			return nil
		case <-tick.C:
			s := t.Stats()
			if o.json {
				writeJSONLine(e.stdout, seedJSON("status", s, client))
			} else {
				fmt.Fprintf(e.stderr, "%s: peers %d  uploaded %s  %s/s\n",
					sanitize(t.Name()), s.Peers, formatSize(s.Uploaded), formatSize(int64(s.UploadRate)))
			}
		}
	}
}

type seedEvent struct {
	Event      string  `json:"event"`
	Listen     string  `json:"listen"`
	Pieces     int     `json:"pieces"`
	Present    int     `json:"pieces_present"`
	Peers      int     `json:"peers"`
	Uploaded   int64   `json:"uploaded_bytes"`
	UploadRate float64 `json:"upload_rate"`
}

func seedJSON(ev string, s aiotorrent.Stats, c *aiotorrent.Client) seedEvent {
	addr := ""
	if a := c.Addr(); a != nil {
		addr = a.String()
	}
	return seedEvent{Event: ev, Listen: addr, Pieces: s.Pieces, Present: s.PiecesVerified, Peers: s.Peers, Uploaded: s.Uploaded, UploadRate: s.UploadRate}
}
