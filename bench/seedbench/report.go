//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
)

// summary is one seeder's figures over the runs: a row of the report.
type summary struct {
	Seeder string `json:"seeder"`
	RunsOK int    `json:"runs_ok"`
	// The transfer as aria2c reported it (see measure), over the runs
	// in which it could be timed.
	Timed           int     `json:"runs_timed"`
	MedianTransferS float64 `json:"median_transfer_s"`
	MiBps           float64 `json:"median_transfer_mib_per_s"`
	MinMiBps        float64 `json:"min_transfer_mib_per_s"`
	MaxMiBps        float64 `json:"max_transfer_mib_per_s"`
	// aria2c's process, from its start to its first answer with the
	// whole torrent.
	MedianTotalS float64 `json:"median_leecher_total_s"`
	TotalMiBps   float64 `json:"total_mib_per_s"` // size ÷ MedianTotalS
	// The "VsOurs" figures are this seeder's ÷ ours, from the same run
	// of the harness; 0 when either is missing.
	MiBpsVsOurs     float64  `json:"transfer_mib_per_s_vs_ours"`
	TotalVsOurs     float64  `json:"total_mib_per_s_vs_ours"`
	MedianSeedCPUS  float64  `json:"median_seeder_cpu_s"`
	CPUVsOurs       float64  `json:"seeder_cpu_vs_ours"`
	MedianIdleCPU   float64  `json:"median_seeder_idle_cpu"` // CPU seconds per second
	PeakRSS         int64    `json:"seeder_peak_rss"`        // bytes, largest over the runs
	PeakAnon        int64    `json:"seeder_peak_anon"`       // bytes, largest over the runs
	MedianLeechCPUS float64  `json:"median_leecher_cpu_s"`
	SentPerSize     float64  `json:"sent_per_size"` // payload sent over the runs ÷ (size × runs ok)
	MedianReadyS    float64  `json:"median_seeder_ready_s"`
	Failures        []string `json:"failures,omitempty"`
}

func (b *bench) summarize() []*summary {
	var out []*summary
	var ours *summary
	for _, rw := range b.rows {
		s := &summary{Seeder: rw.name, RunsOK: len(rw.ok), Failures: rw.failures}
		out = append(out, s)
		if rw.name == harness.ClientOurs {
			ours = s
		}
		if len(rw.ok) == 0 {
			continue
		}
		col := func(f func(*measure) float64) []float64 {
			var v []float64
			for _, m := range rw.ok {
				if x := f(m); x >= 0 {
					v = append(v, x)
				}
			}
			return v
		}
		timed := func(f func(*measure) float64) func(*measure) float64 {
			return func(m *measure) float64 {
				if m.TransferS == 0 {
					return -1
				}
				return f(m)
			}
		}
		if rates := col(timed(func(m *measure) float64 { return m.MiBps })); len(rates) > 0 {
			s.Timed = len(rates)
			s.MiBps, s.MinMiBps, s.MaxMiBps = median(rates), slices.Min(rates), slices.Max(rates)
			s.MedianTransferS = median(col(timed(func(m *measure) float64 { return m.TransferS })))
		}
		s.MedianTotalS = median(col(func(m *measure) float64 { return m.TotalS }))
		s.TotalMiBps = harness.MiB(b.cfg.Size) / s.MedianTotalS
		s.MedianSeedCPUS = median(col(func(m *measure) float64 { return m.SeedCPUS }))
		s.MedianIdleCPU = median(col(func(m *measure) float64 { return m.IdleCPU }))
		s.MedianLeechCPUS = median(col(func(m *measure) float64 { return m.LeechCPUS }))
		s.MedianReadyS = median(col(func(m *measure) float64 { return m.ReadyS }))
		var sent int64
		for _, m := range rw.ok {
			s.PeakRSS, s.PeakAnon = max(s.PeakRSS, m.SeedRSS), max(s.PeakAnon, m.SeedAnon)
			sent += m.Sent
		}
		s.SentPerSize = float64(sent) / (float64(b.cfg.Size) * float64(len(rw.ok)))
	}
	if ours == nil || ours.RunsOK == 0 {
		return out
	}
	for _, s := range out {
		if s.RunsOK == 0 {
			continue
		}
		s.TotalVsOurs = s.TotalMiBps / ours.TotalMiBps
		if s.Timed > 0 && ours.Timed > 0 {
			s.MiBpsVsOurs = s.MiBps / ours.MiBps
		}
		if ours.MedianSeedCPUS > 0 {
			s.CPUVsOurs = s.MedianSeedCPUS / ours.MedianSeedCPUS
		}
	}
	return out
}

// median returns the median of v, which must not be empty.
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// label is how the report names a seeder.
func label(name string) string {
	if name == harness.ClientOurs {
		return "aiotorrent (ours)"
	}
	return name
}

func ratio(r float64) string {
	if r == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", r)
}

// qbitSettings are the qBittorrent settings the report quotes: rate
// limits, upload slots and connection limits.
var qbitSettings = []string{"up_limit", "alt_up_limit", "scheduler_enabled", "limit_lan_peers", "limit_tcp_overhead",
	"max_uploads", "max_uploads_per_torrent", "max_connec", "max_connec_per_torrent",
	"upload_slots_behavior", "upload_choking_algorithm", "send_buffer_watermark", "send_buffer_low_watermark",
	"send_buffer_watermark_factor", "async_io_threads", "disk_io_type", "disk_cache"}

func (b *bench) qbitSettingsLine() string {
	var parts []string
	for _, k := range qbitSettings {
		if v, ok := b.qbitPrefs[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

func (b *bench) report(w io.Writer, root, goCmd string, cond *harness.Conditions, sum []*summary) {
	cfg, mi := b.cfg, b.swarm.MI
	harness.WriteHeader(w, "seedbench", "; the seeder, the leecher and the harness share these cores", cond)
	fmt.Fprintf(w, "- page cache: the content had to be read back in %d times (checked before each seeder starts and before each download); downloads are written to the page cache and deleted after checking\n", b.rewarms)
	fmt.Fprintf(w, "- Go: %s; aiotorrent built from %s%s\n", harness.CmdLine(goCmd, "version"), root, harness.VCSInfo(root))
	b.swarm.Versions(w)
	fmt.Fprintf(w, "- content: one file of %d bytes (%.0f MiB), %d pieces of %d KiB; tracker %s (in the harness)\n",
		cfg.Size, harness.MiB(cfg.Size), mi.Info.NumPieces(), mi.Info.PieceLength>>10, b.tr.announce)
	fmt.Fprintf(w, "- leecher: aria2c (`--seed-time=0`, default limits), a fresh process per download into an empty folder; the tracker gives it the one seeder and no one else, and never gives the seeder the leecher\n")
	fmt.Fprintf(w, "- seeders, one at a time, a fresh process and profile per download: ")
	var names []string
	for _, n := range cfg.Seeders {
		switch n {
		case harness.ClientOurs:
			names = append(names, "`aiotorrent seed` with its defaults")
		case harness.ClientAria2:
			names = append(names, "aria2c `--seed-ratio=0.0` (seed for ever), no upload limit (its default)")
		case harness.ClientQbit:
			names = append(names, "qbittorrent-nox with its default upload settings ("+b.qbitSettingsLine()+")")
		case harness.ClientLT:
			names = append(names, "libtorrent_client.py `--seed` with libtorrent's defaults")
		}
	}
	fmt.Fprintf(w, "%s\n", strings.Join(names, "; "))
	fmt.Fprintf(w, "- runs: %d per seeder, order rotated each run; every download checked with SHA-256 against the source\n\n", cfg.Runs)

	fmt.Fprintln(w, "| seeder | runs ok | transfer MiB/s | min | max | vs ours | median transfer s | aria2c start to complete s | MiB/s over it | vs ours | seeder CPU s | vs ours | seeder idle CPU | seeder peak RSS MiB | peak anon MiB | aria2c CPU s | sent ÷ size | ready s |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, s := range sum {
		if s.RunsOK == 0 {
			fmt.Fprintf(w, "| %s | 0/%d | **FAIL** | | | | | | | | | | | | | | | |\n", label(s.Seeder), cfg.Runs)
			continue
		}
		transfer := "| n/a | | | | "
		if s.Timed > 0 {
			transfer = fmt.Sprintf("| %.0f | %.0f | %.0f | %s | %.3f ", s.MiBps, s.MinMiBps, s.MaxMiBps, ratio(s.MiBpsVsOurs), s.MedianTransferS)
		}
		fmt.Fprintf(w, "| %s | %d/%d %s| %.2f | %.0f | %s | %.2f | %s | %.0f%% | %.0f | %.0f | %.2f | %.3f | %.1f |\n",
			label(s.Seeder), s.RunsOK, cfg.Runs, transfer, s.MedianTotalS, s.TotalMiBps, ratio(s.TotalVsOurs),
			s.MedianSeedCPUS, ratio(s.CPUVsOurs), 100*s.MedianIdleCPU, harness.MiB(s.PeakRSS), harness.MiB(s.PeakAnon),
			s.MedianLeechCPUS, s.SentPerSize, s.MedianReadyS)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Medians over the runs; min and max of the transfer rate. \"transfer\": aria2c's progress (its JSON-RPC, asked every %v) between its first and its last answer with part of the torrent, bytes over time. \"aria2c start to complete\": process start to the first answer with the whole torrent, including about 2 s of aria2c's own waits (a tick before connecting, and another before retrying without encryption when the seeder has none). \"vs ours\": that seeder's figure ÷ ours, from this run: MiB/s above 1.00× means it served faster than ours, CPU above 1.00× means it used more CPU than ours for the same download. Seeder CPU s: user + system time of the seeder process (and any children) from aria2c's start to complete; idle CPU: its CPU seconds per second over %v before aria2c starts.\n\n", pollEvery, idleSpan)

	// The goal, against each other seeder.
	var ours *summary
	for _, s := range sum {
		if s.Seeder == harness.ClientOurs {
			ours = s
		}
	}
	if ours != nil && ours.RunsOK > 0 && ours.Timed > 0 {
		fmt.Fprintln(w, "Goal: our seeder's throughput (transfer MiB/s) at least matches, with fewer CPU seconds:")
		fmt.Fprintln(w)
		for _, s := range sum {
			if s.Seeder == harness.ClientOurs || s.RunsOK == 0 {
				continue
			}
			if s.Timed == 0 {
				fmt.Fprintf(w, "- against %s: its transfers were too quick to time\n", s.Seeder)
				continue
			}
			if s.CPUVsOurs == 0 {
				fmt.Fprintf(w, "- against %s: ours is %.2f× its MiB/s; CPU time too small to compare (ours used less than a clock tick, 10 ms)\n",
					s.Seeder, 1/s.MiBpsVsOurs)
				continue
			}
			faster := s.MiBpsVsOurs <= 1
			cheaper := s.CPUVsOurs > 1
			verdict := "**met**"
			switch {
			case !faster && !cheaper:
				verdict = "**not met**: slower, and not fewer CPU seconds"
			case !faster:
				verdict = "**not met**: slower"
			case !cheaper:
				verdict = "**not met**: not fewer CPU seconds"
			}
			fmt.Fprintf(w, "- against %s: ours is %.2f× its MiB/s, using %.2f× its CPU seconds: %s\n",
				s.Seeder, 1/s.MiBpsVsOurs, 1/s.CPUVsOurs, verdict)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "Each download (\"vs ours\" against ours in the same round):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| run | seeder | transfer s | MiB/s | vs ours | aria2c start to complete s | seeder CPU s | vs ours | seeder idle CPU | aria2c CPU s | sent ÷ size | listed as seeder |")
	fmt.Fprintln(w, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for r := 1; r <= cfg.Runs; r++ {
		var ours *measure
		var round []*measure
		for _, rw := range b.rows {
			for _, m := range rw.ok {
				if m.Run != r {
					continue
				}
				round = append(round, m)
				if m.Seeder == harness.ClientOurs {
					ours = m
				}
			}
		}
		for _, m := range round {
			transfer, rate, vsRate, vsCPU := "n/a", "", "", ""
			if m.TransferS > 0 {
				transfer, rate = fmt.Sprintf("%.3f", m.TransferS), fmt.Sprintf("%.0f", m.MiBps)
			}
			if ours != nil {
				if m.MiBps > 0 && ours.MiBps > 0 {
					vsRate = ratio(m.MiBps / ours.MiBps)
				}
				if ours.SeedCPUS > 0 {
					vsCPU = ratio(m.SeedCPUS / ours.SeedCPUS)
				}
			}
			listed := "yes"
			if !m.ListedSeed {
				listed = "no (announced while checking)"
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %.2f | %.2f | %s | %.0f%% | %.2f | %.3f | %s |\n",
				r, label(m.Seeder), transfer, rate, vsRate, m.TotalS, m.SeedCPUS, vsCPU, 100*m.IdleCPU, m.LeechCPUS,
				float64(m.Sent)/float64(cfg.Size), listed)
		}
	}
	fmt.Fprintln(w)

	var failures []string
	for _, s := range sum {
		failures = append(failures, s.Failures...)
	}
	if len(failures) == 0 {
		fmt.Fprintln(w, "Every download was complete and identical to the source.")
		return
	}
	harness.WriteFailures(w, failures, nil)
}

// jsonReport is what -json writes.
type jsonReport struct {
	Command      string         `json:"command"`
	Finished     time.Time      `json:"finished"`
	Go           string         `json:"go"`
	Source       string         `json:"source"` // module root and commit
	LoadBefore   string         `json:"load_before"`
	LoadAfter    string         `json:"load_after"`
	CPUStall     string         `json:"cpu_stall"`
	IOStall      string         `json:"io_stall"`
	Rewarms      int            `json:"page_cache_rewarms"`
	SizeBytes    int64          `json:"size_bytes"`
	PieceLength  int64          `json:"piece_length"`
	Pieces       int            `json:"pieces"`
	Runs         int            `json:"runs"`
	Leecher      string         `json:"leecher"`
	QbitSettings map[string]any `json:"qbittorrent_settings,omitempty"`
	Seeders      []*summary     `json:"seeders"`
	Downloads    []*measure     `json:"downloads"`
}

func (b *bench) writeJSON(path, root, goCmd string, cond *harness.Conditions, sum []*summary) error {
	mi := b.swarm.MI
	rep := jsonReport{
		Command:     commandLine(),
		Finished:    time.Now().UTC(),
		Go:          harness.CmdLine(goCmd, "version"),
		Source:      root + harness.VCSInfo(root),
		LoadBefore:  cond.LoadBefore,
		LoadAfter:   cond.LoadAfter,
		CPUStall:    cond.CPUStall,
		IOStall:     cond.IOStall,
		Rewarms:     b.rewarms,
		SizeBytes:   b.cfg.Size,
		PieceLength: mi.Info.PieceLength,
		Pieces:      mi.Info.NumPieces(),
		Runs:        b.cfg.Runs,
		Leecher:     harness.CmdLine(b.swarm.Aria2Cmd, "--version"),
		Seeders:     sum,
		Downloads:   []*measure{},
	}
	if len(b.qbitPrefs) > 0 {
		rep.QbitSettings = map[string]any{}
		for _, k := range qbitSettings {
			if v, ok := b.qbitPrefs[k]; ok {
				rep.QbitSettings[k] = v
			}
		}
	}
	for _, rw := range b.rows {
		rep.Downloads = append(rep.Downloads, rw.ok...)
	}
	slices.SortStableFunc(rep.Downloads, func(x, y *measure) int { return x.Run - y.Run })
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// commandLine is how this program was started; "go run ./bench/seedbench"
// stands for a binary that go run built.
func commandLine() string {
	prog := os.Args[0]
	if exe, err := os.Executable(); err != nil || strings.Contains(exe, "go-build") {
		prog = "go run ./bench/seedbench"
	}
	return strings.Join(append([]string{prog}, os.Args[1:]...), " ")
}
