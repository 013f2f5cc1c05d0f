//go:build linux

package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
)

// percentile returns the p-th percentile of ds (nearest rank), or 0 if ds
// is empty.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[max(0, int(math.Ceil(p/100*float64(len(s))))-1)]
}

// report writes the Markdown report and returns how many failures it
// lists.
func (b *bench) report(w io.Writer, root, goCmd string, cond *harness.Conditions, rewarms int, gone []string) int {
	cfg, mi := b.cfg, b.swarm.MI
	harness.WriteHeader(w, "streambench", "; every seeder, the stream process and the harness share these cores", cond)
	fmt.Fprintf(w, "- page cache: the content had to be read back in %d times (checked before every run)\n", rewarms)
	fmt.Fprintf(w, "- Go: %s; aiotorrent built from %s%s\n", harness.CmdLine(goCmd, "version"), root, harness.VCSInfo(root))
	b.swarm.Versions(w)
	fmt.Fprintf(w, "- content: one file of %d bytes (%.0f MiB), %d pieces of %d KiB\n",
		cfg.Size, harness.MiB(cfg.Size), mi.Info.NumPieces(), mi.Info.PieceLength>>10)
	fmt.Fprintf(w, "- seeders: %s, all on 127.0.0.1, serving one copy of the content; given to our processes with `--no-trackers --peer`\n", b.peerList())
	fmt.Fprintf(w, "- stream: `aiotorrent stream --cache %d` (%.0f MiB), a fresh process per run; download: `aiotorrent download` into the page cache, in the same run, first in turn with the stream\n",
		cfg.cache, harness.MiB(cfg.cache))
	fmt.Fprintf(w, "- runs: %d; %d seeks per run, each reading %d KiB; every byte read is compared with the source\n\n", cfg.Runs, cfg.seeks, seekRead>>10)

	var failures []string
	var startups, firsts, seeks, streams, downloads []time.Duration
	for i, r := range b.runs {
		for _, f := range r.failures {
			failures = append(failures, fmt.Sprintf("run %d: %s", i+1, f))
		}
		if r.startup > 0 {
			startups = append(startups, r.startup)
		}
		if r.streamWall > 0 {
			firsts = append(firsts, r.firstByte)
			streams = append(streams, r.streamWall)
		}
		if r.downloadWall > 0 {
			downloads = append(downloads, r.downloadWall)
		}
		seeks = append(seeks, r.seeks...)
	}

	fmt.Fprintf(w, "### Latency\n\nFrom sending the request to the first byte of the body; \"fresh torrent\" is the first request to a new process, which starts the torrent (connecting to the seeders included).\n\n")
	fmt.Fprintln(w, "| measure | samples | median ms | p95 ms | max ms |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|")
	for _, row := range []struct {
		name string
		ds   []time.Duration
	}{
		{"start-up: process start → `GET /` answers", startups},
		{"first byte, fresh torrent: `GET /files/0`, `Range: bytes=0-`", firsts},
		{fmt.Sprintf("seek: `Range: bytes=OFF-`, random OFF, after the whole file (%d KiB read)", seekRead>>10), seeks},
	} {
		if len(row.ds) == 0 {
			fmt.Fprintf(w, "| %s | 0 | | | |\n", row.name)
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.1f |\n", row.name, len(row.ds),
			msf(percentile(row.ds, 50)), msf(percentile(row.ds, 95)), msf(slices.Max(row.ds)))
	}

	fmt.Fprintf(w, "\n### Throughput\n\nStream: `GET /files/0` of the whole file, request to last byte. Download: process start to exit. \"fetched ÷ size\": payload the process received (its `downloaded_bytes`) over the file size; above 1 means blocks fetched twice (end game, or a reader's urgent piece asked of a second peer).\n\n")
	fmt.Fprintln(w, "| run | stream s | stream MiB/s | download s | download MiB/s | stream ÷ download | stream fetched ÷ size | download fetched ÷ size |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|")
	rate := func(d time.Duration) float64 { return harness.MiB(cfg.Size) / d.Seconds() }
	cell := func(d time.Duration) (string, string) {
		if d <= 0 {
			return "**FAIL**", ""
		}
		return fmt.Sprintf("%.2f", d.Seconds()), fmt.Sprintf("%.0f", rate(d))
	}
	for i, r := range b.runs {
		ss, sr := cell(r.streamWall)
		ds, dr := cell(r.downloadWall)
		ratio := ""
		if r.streamWall > 0 && r.downloadWall > 0 {
			ratio = fmt.Sprintf("%.2f×", r.downloadWall.Seconds()/r.streamWall.Seconds())
		}
		share := func(n int64) string {
			if n <= 0 {
				return ""
			}
			return fmt.Sprintf("%.3f", float64(n)/float64(cfg.Size))
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", i+1, ss, sr, ds, dr, ratio, share(r.fetched), share(r.downloadFetched))
	}
	if len(streams) > 0 && len(downloads) > 0 {
		ms, md := harness.Median(streams), harness.Median(downloads)
		fmt.Fprintf(w, "| **median** | %.2f | %.0f | %.2f | %.0f | **%.2f×** | | |\n\n", ms.Seconds(), rate(ms), md.Seconds(), rate(md), md.Seconds()/ms.Seconds())
		fmt.Fprintf(w, "Stream ÷ download of the medians: %.2f× (the aim is 0.90× or more).\n", md.Seconds()/ms.Seconds())
	}

	fmt.Fprintf(w, "\n### Memory\n\nPeak resident set (VmHWM) of the stream process, polled every 50 ms and read after the whole file and after the seeks")
	if cfg.overhead > 0 {
		fmt.Fprintf(w, "; it must stay within the cache + %.0f MiB", harness.MiB(cfg.overhead))
	}
	fmt.Fprintln(w, ".")
	if cfg.Size < 16*cfg.cache {
		fmt.Fprintf(w, "**The file is less than 16 times the cache: these figures say little about a bounded cache.**\n")
	}
	fmt.Fprintln(w, "\n| run | cache MiB | peak RSS after the file MiB | peak RSS after the seeks MiB | RSS at the end MiB | peak − cache MiB | check |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|---|")
	for i, r := range b.runs {
		if r.hwmEnd == 0 {
			fmt.Fprintf(w, "| %d | %.0f | | | | | not measured |\n", i+1, harness.MiB(cfg.cache))
			continue
		}
		check := "not checked"
		if cfg.overhead > 0 {
			check = "ok"
			if r.hwmEnd > cfg.cache+cfg.overhead {
				check = "**FAIL**"
				failures = append(failures, fmt.Sprintf("run %d: peak RSS %.0f MiB is more than the cache (%.0f MiB) + %.0f MiB",
					i+1, harness.MiB(r.hwmEnd), harness.MiB(cfg.cache), harness.MiB(cfg.overhead)))
			}
		}
		fmt.Fprintf(w, "| %d | %.0f | %.0f | %.0f | %.0f | %.0f | %s |\n", i+1, harness.MiB(cfg.cache),
			harness.MiB(r.hwmStream), harness.MiB(r.hwmEnd), harness.MiB(r.rssEnd), harness.MiB(r.hwmEnd-cfg.cache), check)
	}

	fmt.Fprintf(w, "\n### Disk\n\n")
	fmt.Fprintf(w, "- sandbox: each stream process ran in an empty working folder with `HOME`, `XDG_*_HOME` and `TMPDIR` in empty folders, and was stopped with SIGINT: ")
	var left []string
	for _, r := range b.runs {
		left = append(left, r.leftovers...)
	}
	if len(left) == 0 {
		fmt.Fprintln(w, "they were still empty after every run.")
	} else {
		fmt.Fprintf(w, "**FAIL**, found %s.\n", strings.Join(left, ", "))
	}
	switch t := b.traced; {
	case t == nil:
		fmt.Fprintln(w, "- strace: not installed (Debian package `strace`), so not checked.")
	case len(t.failures) > 0:
		fmt.Fprintln(w, "- strace: **the run under strace failed** (see below).")
		failures = append(failures, t.failures...)
	default:
		fmt.Fprintf(w, "- strace: one more stream process (untimed) streamed the whole file and made %d seeks under `strace -f --seccomp-bpf`: ", min(cfg.seeks, 10))
		if len(t.writes) == 0 && len(t.leftovers) == 0 {
			fmt.Fprintln(w, "no call opened a file for writing or creating, nor created, renamed or removed one, outside /dev, /proc and /sys.")
			break
		}
		fmt.Fprintf(w, "**FAIL**, %d calls that write files:\n\n```\n%s\n```\n", len(t.writes), strings.Join(t.writes[:min(len(t.writes), 20)], "\n"))
		failures = append(failures, fmt.Sprintf("strace: %d calls that write files; left in the sandbox: %v", len(t.writes), t.leftovers))
	}
	fmt.Fprintln(w)

	if len(failures) == 0 && len(gone) == 0 {
		fmt.Fprintln(w, "Every run completed; every byte streamed was identical to the source.")
		return 0
	}
	harness.WriteFailures(w, failures, gone)
	return len(failures) + len(gone)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
