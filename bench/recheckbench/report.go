//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
)

// comparison is a row of the ratios table: num's figures ÷ den's.
type comparison struct {
	label    string
	num, den string // tool keys
}

var comparisons = []comparison{
	{"ours on 1 core ÷ sha1sum", "ours-1core", "sha1sum"},
	{"ours on all cores ÷ sha1sum in parallel", "ours-all", "sha1sum-par"},
	{"ours on all cores ÷ ours on 1 core (scaling)", "ours-all", "ours-1core"},
}

// counterpart is the sha1sum each of ours is compared with in the
// per-run table.
var counterpart = map[string]string{"ours-1core": "sha1sum", "ours-all": "sha1sum-par"}

func find(tools []*tool, key string) *tool {
	for _, t := range tools {
		if t.key == key {
			return t
		}
	}
	return nil
}

// rate is MiB per second of d: throughput over wall time, or MiB hashed
// per CPU second over CPU time.
func rate(size int64, d time.Duration) float64 { return harness.MiB(size) / d.Seconds() }

func walls(ms []measure) []time.Duration {
	var ds []time.Duration
	for _, m := range ms {
		ds = append(ds, m.wall)
	}
	return ds
}

func cpus(ms []measure) []time.Duration {
	var ds []time.Duration
	for _, m := range ms {
		ds = append(ds, m.cpu)
	}
	return ds
}

// ratios returns, for a comparison, the ratio of the medians and the
// ratio in each run, of throughput (wall) and of MiB per CPU second.
func ratios(num, den *tool) (wall, cpu float64, wallRuns, cpuRuns []float64) {
	wall = harness.Median(walls(den.runs)).Seconds() / harness.Median(walls(num.runs)).Seconds()
	cpu = harness.Median(cpus(den.runs)).Seconds() / harness.Median(cpus(num.runs)).Seconds()
	for i := range num.runs {
		wallRuns = append(wallRuns, den.runs[i].wall.Seconds()/num.runs[i].wall.Seconds())
		cpuRuns = append(cpuRuns, den.runs[i].cpu.Seconds()/num.runs[i].cpu.Seconds())
	}
	return wall, cpu, wallRuns, cpuRuns
}

func times(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprintf("%.2f×", x))
	}
	return strings.Join(s, ", ")
}

func report(w io.Writer, cfg *config, root, goCmd string, ds *dataSet, cond *conditions, tools []*tool) {
	harness.WriteHeader(w, "recheckbench", "", cond.Conditions)
	if cond.cold {
		fmt.Fprintf(w, "- page cache: **cold**: dropped (sync, then 3 to %s) before every measurement, so the data came from the disk\n", dropCaches)
	} else {
		fmt.Fprintf(w, "- page cache: **warm**: every file was in the page cache before every measurement (checked with mincore(2)); files read back in: %d times; measurements that read from the disk anyway: %d\n",
			cond.rewarms, cond.diskRuns)
		fmt.Fprintf(w, "- cold runs: %s\n", cond.coldNote)
	}
	fmt.Fprintf(w, "- Go: %s\n", harness.CmdLine(goCmd, "version"))
	fmt.Fprintf(w, "- sha1sum: %s\n", harness.CmdLine("sha1sum", "--version"))
	fmt.Fprintf(w, "- aiotorrent: built from %s%s\n", root, harness.VCSInfo(root))
	piece := "chosen by aiotorrent create"
	if cfg.pieceSize != "" {
		piece = "-piece-size " + cfg.pieceSize
	}
	fmt.Fprintf(w, "- data set: %d files, %.0f MiB in all (%s), ChaCha8 pseudo-random bytes, in %s; torrent: %d pieces of %d KiB (%s)\n",
		len(ds.files), harness.MiB(cfg.Size), fileSizes(ds.sizes), ds.folder, ds.mi.Info.NumPieces(), ds.mi.Info.PieceLength>>10, piece)
	procs := find(tools, "ours-all").cores
	fmt.Fprintf(w, "- runs: %d per command after one untimed warm-up round, order rotated each run; \"all cores\" is Go's default GOMAXPROCS, %d, and parallel sha1sum runs %d processes at a time\n\n",
		cfg.Runs, procs, procs)

	fmt.Fprintln(w, "| command | cores | median wall s | MiB/s | median CPU s | MiB per CPU s | min wall s | max wall s | peak RSS MiB |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, t := range tools {
		wall, cpu := harness.Median(walls(t.runs)), harness.Median(cpus(t.runs))
		var rss int64
		for _, m := range t.runs {
			rss = max(rss, m.maxRSS)
		}
		fmt.Fprintf(w, "| %s | %d | %.3f | %.0f | %.3f | %.0f | %.3f | %.3f | %.0f |\n",
			t.label, t.cores, wall.Seconds(), rate(cfg.Size, wall), cpu.Seconds(), rate(cfg.Size, cpu),
			slices.Min(walls(t.runs)).Seconds(), slices.Max(walls(t.runs)).Seconds(), harness.MiB(rss))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| comparison | MiB/s, ratio of medians | each run | MiB per CPU s, ratio of medians | each run |")
	fmt.Fprintln(w, "|---|--:|---|--:|---|")
	met := true
	for i, c := range comparisons {
		wall, cpu, wallRuns, cpuRuns := ratios(find(tools, c.num), find(tools, c.den))
		fmt.Fprintf(w, "| %s | %.2f× | %s | %.2f× | %s |\n", c.label, wall, times(wallRuns), cpu, times(cpuRuns))
		if i < 2 && (wall < 1 || cpu < 1) {
			met = false
		}
	}
	fmt.Fprintln(w)
	verdict := "**met**"
	if !met {
		verdict = "**not met**"
	}
	fmt.Fprintf(w, "Issue 8's bar, a recheck as fast as sha1sum per core used (ours ≥ 1.00× in MiB/s and in MiB per CPU s, on 1 core and on all cores, ratio of medians): %s.\n\n", verdict)

	fmt.Fprintln(w, "Each measurement (\"vs sha1sum\": ours against sha1sum on 1 core, or sha1sum in parallel on all cores, same run):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| run | command | wall s | CPU s | MiB/s | MiB per CPU s | MiB/s vs sha1sum | MiB per CPU s vs sha1sum | disk read MiB | peak RSS MiB |")
	fmt.Fprintln(w, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for r := range cfg.Runs {
		for _, t := range tools {
			m := t.runs[r]
			vsWall, vsCPU := "", ""
			if key, ok := counterpart[t.key]; ok {
				o := find(tools, key).runs[r]
				vsWall = fmt.Sprintf("%.2f×", o.wall.Seconds()/m.wall.Seconds())
				vsCPU = fmt.Sprintf("%.2f×", o.cpu.Seconds()/m.cpu.Seconds())
			}
			fmt.Fprintf(w, "| %d | %s | %.3f | %.3f | %.0f | %.0f | %s | %s | %.0f | %.0f |\n",
				m.run, t.label, m.wall.Seconds(), m.cpu.Seconds(), rate(cfg.Size, m.wall), rate(cfg.Size, m.cpu),
				vsWall, vsCPU, harness.MiB(m.diskRead), harness.MiB(m.maxRSS))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Every run of aiotorrent verify reported all %d pieces verified and every file whole; every sha1sum printed the SHA-1 of each file.\n",
		ds.mi.Info.NumPieces())
}

// fileSizes describes the files' sizes: "4 × 1024 MiB", or with the last
// one apart when it differs.
func fileSizes(sizes []int64) string {
	first, last := sizes[0], sizes[len(sizes)-1]
	if first == last {
		return fmt.Sprintf("%d × %s", len(sizes), mib(first))
	}
	return fmt.Sprintf("%d × %s and one of %s", len(sizes)-1, mib(first), mib(last))
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
