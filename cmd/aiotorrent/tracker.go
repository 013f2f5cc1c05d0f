package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker/server"
)

var trackerCmd = &command{
	name:    "tracker",
	summary: "run a BitTorrent tracker (HTTP and UDP) until interrupted",
	usage:   "[--http ADDR] [--udp ADDR] [--interval D] [--whitelist FILE]",
	run:     runTracker,
}

type trackerOpts struct {
	http      string
	udp       string
	interval  time.Duration
	whitelist string
}

func trackerFlags() (*flag.FlagSet, *trackerOpts) {
	o := &trackerOpts{}
	fs := flag.NewFlagSet("tracker", flag.ContinueOnError)
	fs.StringVar(&o.http, "http", "127.0.0.1:6969", "serve HTTP announces on `ADDR` (\"off\" to disable)")
	fs.StringVar(&o.udp, "udp", "127.0.0.1:6969", "serve UDP announces on `ADDR` (\"off\" to disable)")
	fs.DurationVar(&o.interval, "interval", server.DefaultInterval, "ask peers to re-announce every `D`")
	fs.StringVar(&o.whitelist, "whitelist", "", "track only the info hashes listed in `FILE` (40 hex digits per line)")
	return fs, o
}

func runTracker(ctx context.Context, e *env, args []string) error {
	fs, o := trackerFlags()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("takes no arguments, got %q", pos)
	}
	if o.http == "off" {
		o.http = ""
	}
	if o.udp == "off" {
		o.udp = ""
	}
	if o.http == "" && o.udp == "" {
		return usagef("both --http and --udp are off")
	}
	if o.interval < time.Second {
		return usagef("--interval must be at least 1s")
	}
	cfg := server.Config{Interval: o.interval, MinInterval: min(server.DefaultMinInterval, o.interval)}
	if o.whitelist != "" {
		allowed, err := readWhitelist(o.whitelist)
		if err != nil {
			return err
		}
		cfg.Whitelist = func(h metainfo.Hash) bool { return allowed[h] }
	}

	var lc net.ListenConfig
	var ln net.Listener
	var pc net.PacketConn
	if o.http != "" {
		if ln, err = lc.Listen(ctx, "tcp", o.http); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "HTTP tracker: http://%s/announce\n", ln.Addr())
	}
	if o.udp != "" {
		if pc, err = lc.ListenPacket(ctx, "udp", o.udp); err != nil {
			if ln != nil {
				ln.Close()
			}
			return err
		}
		fmt.Fprintf(e.stdout, "UDP tracker:  udp://%s\n", pc.LocalAddr())
	}
	srv := server.New(cfg)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, pc) }()

	// Report the swarm while serving: a line whenever it changed, at most
	// every few seconds.
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var last server.Stats
	for {
		select {
		case err := <-done:
			st := srv.Stats()
			fmt.Fprintf(e.stderr, "tracker stopped: %d announces and %d scrapes answered\n", st.Announces, st.Scrapes)
			return err
		case <-tick.C:
			if st := srv.Stats(); st != last {
				last = st
				fmt.Fprintf(e.stderr, "%s  torrents %d  seeders %d  leechers %d  announces %d  scrapes %d\n",
					time.Now().Format("15:04:05"), st.Torrents, st.Seeders, st.Leechers, st.Announces, st.Scrapes)
			}
		}
	}
}

// readWhitelist reads info hashes, one per line; blank lines and lines
// starting with # are skipped.
func readWhitelist(path string) (map[metainfo.Hash]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	allowed := make(map[metainfo.Hash]bool)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		h, err := metainfo.ParseHash(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		allowed[h] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(allowed) == 0 {
		return nil, errors.New(path + ": no info hashes")
	}
	return allowed, nil
}
