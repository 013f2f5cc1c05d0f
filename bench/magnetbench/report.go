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

// stat is the median, fastest and slowest of a figure over the runs that
// have it.
type stat struct {
	N                int
	Median, Min, Max time.Duration
}

func statOf(ds []time.Duration) stat {
	var have []time.Duration
	for _, d := range ds {
		if d > 0 {
			have = append(have, d)
		}
	}
	if len(have) == 0 {
		return stat{}
	}
	return stat{N: len(have), Median: harness.Median(have), Min: slices.Min(have), Max: slices.Max(have)}
}

// row is one client with one peer source, over the runs.
type row struct {
	Via, Client string
	Runs, OK    int
	failures    []string
	// Of the successful runs.
	Ready, Announce, Metadata, Fetch, Serving, FirstByte, Complete, Exit, CPU stat
	LogMetadata, LogConnect, LogUnchoked                                      stat
}

// summary is the rows, in the order of the report: by peer source, then
// client, as the flags list them.
type summary struct {
	rows []*row
}

func (s *summary) find(via, client string) *row {
	for _, r := range s.rows {
		if r.Via == via && r.Client == client {
			return r
		}
	}
	return nil
}

func (b *bench) summarize() *summary {
	s := &summary{}
	for _, via := range b.cfg.vias {
		for _, c := range b.cfg.clients {
			if !b.measures(via, c) {
				continue
			}
			r := &row{Via: via, Client: c}
			fig := map[string][]time.Duration{}
			for _, m := range b.runs {
				if m.Via != via || m.Client != c {
					continue
				}
				r.Runs++
				if m.Err != "" {
					r.failures = append(r.failures, fmt.Sprintf("run %d, %s via %s: %s", m.Run, c, via, m.Err))
					continue
				}
				r.OK++
				for k, d := range map[string]time.Duration{
					"ready": m.Ready, "announce": m.Announce, "metadata": m.Metadata, "fetch": m.Fetch,
					"serving": m.Serving, "first": m.FirstByte, "complete": m.Complete, "exit": m.Exit, "cpu": m.CPU,
					"logmeta": m.LogMetadata, "logconn": m.LogConnect, "logunchoke": m.LogUnchoked,
				} {
					fig[k] = append(fig[k], d)
				}
			}
			r.Ready, r.Announce, r.Metadata, r.Fetch = statOf(fig["ready"]), statOf(fig["announce"]), statOf(fig["metadata"]), statOf(fig["fetch"])
			r.Serving, r.FirstByte, r.Complete, r.Exit = statOf(fig["serving"]), statOf(fig["first"]), statOf(fig["complete"]), statOf(fig["exit"])
			r.CPU = statOf(fig["cpu"])
			r.LogMetadata, r.LogConnect, r.LogUnchoked = statOf(fig["logmeta"]), statOf(fig["logconn"]), statOf(fig["logunchoke"])
			s.rows = append(s.rows, r)
		}
	}
	return s
}

// label is how the report names a client.
func label(client string) string {
	switch client {
	case clientStream:
		return "aiotorrent stream"
	case clientDownload:
		return "aiotorrent download"
	}
	return client
}

// ratio is ours ÷ aria2c of one figure, 0 when either is missing.
func ratio(ours, aria2 stat) float64 {
	if ours.N == 0 || aria2.N == 0 {
		return 0
	}
	return ours.Median.Seconds() / aria2.Median.Seconds()
}

// vsAria2 returns the row of aria2c to compare r with: aria2c with the
// tracker, for ours with the tracker; none for aria2c itself or for ours
// with x.pe, which aria2c cannot use.
func (s *summary) vsAria2(r *row) *row {
	if r.Client == clientAria2 || r.Via != viaTracker {
		return nil
	}
	return s.find(viaTracker, clientAria2)
}

// report writes the Markdown report and returns how many failures it
// lists.
func (b *bench) report(w io.Writer, root, goCmd string, cond *harness.Conditions, sum *summary, gone []string) int {
	cfg, mi := b.cfg, b.swarm.MI
	harness.WriteHeader(w, "magnetbench", "; the seeders, the client measured, the tracker and the harness share these cores", cond)
	fmt.Fprintf(w, "- page cache: the content had to be read back in %d times (checked before every round)\n", b.rewarms)
	fmt.Fprintf(w, "- Go: %s; aiotorrent built from %s%s\n", harness.CmdLine(goCmd, "version"), root, harness.VCSInfo(root))
	b.swarm.Versions(w)
	fmt.Fprintf(w, "- content: one file of %d bytes (%.0f MiB), %d pieces of %d KiB; metadata (info dictionary) %d bytes\n",
		cfg.Size, harness.MiB(cfg.Size), mi.Info.NumPieces(), mi.Info.PieceLength>>10, len(mi.InfoBytes))
	var sd []string
	for _, s := range b.seeders {
		sd = append(sd, fmt.Sprintf("%s (%v)", s.Name, s.Addr))
	}
	fmt.Fprintf(w, "- seeders: %s, on 127.0.0.1, started once and shared by every run\n", strings.Join(sd, ", "))
	for _, via := range cfg.vias {
		fmt.Fprintf(w, "- magnet link via %s: `%s`\n", via, b.magnets[via])
	}
	fmt.Fprintf(w, "- tracker: tracker/server in the harness, HTTP on 127.0.0.1, interval %v; announces of the clients measured that said `left=0` were passed on as `left=1` (%d of them: aria2c says left=0 for a magnet link, and tracker/server gives no seeders to a seeder)\n",
		trackerInterval, b.tr.leftZeros())
	fmt.Fprintf(w, "- ours: `%s` and `%s`, each a fresh process with empty HOME, XDG folders and TMPDIR (and `--state-dir` for download), DHT off: %s\n",
		ourLine0(b.ours, clientStream, "--addr 127.0.0.1:0"), ourLine0(b.ours, clientDownload, "-o DIR --state-dir DIR"), b.ours.dhtNote())
	if b.swarm.Aria2Cmd != "" {
		args := b.aria2Args(1, 2, "DIR", "LOG")
		args[0] = "aria2c"
		fmt.Fprintf(w, "- aria2c: `%s MAGNET` (PORT and RPC-PORT free ports), a fresh process with an empty HOME and folder; asked for its status every %v; it ignores x.pe, so runs only via the tracker\n",
			strings.NewReplacer("--listen-port=1 ", "--listen-port=PORT ", "--rpc-listen-port=2", "--rpc-listen-port=RPC-PORT").Replace(strings.Join(args, " ")), pollEvery)
	}
	if cfg.log {
		fmt.Fprintf(w, "- our processes ran with `AIOTORRENT_LOG=debug` (-log)\n")
	}
	fmt.Fprintf(w, "- rounds: %d; in each, every peer source and every client once, the order rotated by one place each round\n\n", cfg.Runs)

	fmt.Fprintf(w, "### Time from process start, ms: median (min–max)\n\n")
	fmt.Fprintf(w, "Metadata: the torrent's info dictionary is known. First byte: the first byte of the file came out of the stream's HTTP server, or aria2c had verified piece 0. Complete: the last byte came out of the stream, download printed `done`, aria2c had verified every piece. \"÷ aria2c\": ours ÷ aria2c's median, both via the tracker, this run; below 1.00× ours is faster. CPU: user + system of the process, start to exit.\n\n")
	fmt.Fprintln(w, "| peers from | client | runs ok | metadata ms | first byte ms | complete ms | metadata ÷ aria2c | first byte ÷ aria2c | complete ÷ aria2c | CPU s |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range sum.rows {
		var rm, rf, rc string
		if a := sum.vsAria2(r); a != nil {
			rm, rf, rc = times(ratio(r.Metadata, a.Metadata)), times(ratio(r.FirstByte, a.FirstByte)), times(ratio(r.Complete, a.Complete))
		}
		cpu := ""
		if r.CPU.N > 0 {
			cpu = fmt.Sprintf("%.2f", r.CPU.Median.Seconds())
		}
		fmt.Fprintf(w, "| %s | %s | %d/%d | %s | %s | %s | %s | %s | %s | %s |\n", r.Via, label(r.Client), r.OK, r.Runs,
			spread(r.Metadata), spread(r.FirstByte), spread(r.Complete), rm, rf, rc, cpu)
	}

	fmt.Fprintf(w, "\n### Where the time goes: medians, ms from process start\n\n")
	fmt.Fprintf(w, "Ready: ours printed `fetching_metadata` (start-up: runtime, client, listener), aria2c first answered JSON-RPC. Announce: the tracker received its first announce. Fetch: the metadata fetch as our process timed it (its `metadata` line's `seconds`). Serving: the stream printed its URL (its HTTP server starts once the metadata is known). Exit: the process exited (download: after `done`, telling the tracker it stopped; stream: after SIGINT; aria2c: after `aria2.shutdown`).\n\n")
	fmt.Fprintln(w, "| peers from | client | ready | announce | metadata | fetch | serving | first byte | complete | exit |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range sum.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Via, label(r.Client),
			med(r.Ready), med(r.Announce), med(r.Metadata), med(r.Fetch), med(r.Serving), med(r.FirstByte), med(r.Complete), med(r.Exit))
	}
	if cfg.log {
		fmt.Fprintf(w, "\nFrom our debug log (times to the millisecond): the metadata arrived, the download's first peer connection opened, and a peer first unchoked us.\n\n")
		fmt.Fprintln(w, "| peers from | client | metadata received | first connection | first unchoke | connection − metadata | first byte − unchoke |")
		fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|")
		for _, r := range sum.rows {
			if r.Client == clientAria2 {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Via, label(r.Client), med(r.LogMetadata), med(r.LogConnect), med(r.LogUnchoked),
				gap(r.LogConnect, r.LogMetadata), gap(r.FirstByte, r.LogUnchoked))
		}
	}

	fmt.Fprintf(w, "\n### Every run, ms from process start\n\n")
	fmt.Fprintln(w, "| round | peers from | client | ready | announce | metadata | serving | first byte | complete | exit | CPU s |")
	fmt.Fprintln(w, "|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, m := range b.runs {
		if m.Err != "" {
			fmt.Fprintf(w, "| %d | %s | %s | **FAIL** | | | | | | | |\n", m.Run, m.Via, label(m.Client))
			continue
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f |\n", m.Run, m.Via, label(m.Client),
			cell(m.Ready), cell(m.Announce), cell(m.Metadata), cell(m.Serving), cell(m.FirstByte), cell(m.Complete), cell(m.Exit), m.CPU.Seconds())
	}
	fmt.Fprintln(w)

	var failures []string
	for _, r := range sum.rows {
		failures = append(failures, r.failures...)
	}
	if len(failures) == 0 && len(gone) == 0 {
		fmt.Fprintln(w, "Every run completed; every file fetched was identical to the source.")
		return 0
	}
	harness.WriteFailures(w, failures, gone)
	return len(failures) + len(gone)
}

// ourLine0 is our command cmd's line as the runs start it, for the report.
func ourLine0(o *ourCLI, cmd, extra string) string {
	args := o.args(cmd, 0)
	args[0] = "aiotorrent"
	return strings.Replace(strings.Join(args, " "), "127.0.0.1:0", "127.0.0.1:PORT", 1) + " " + extra + " MAGNET"
}

func spread(s stat) string {
	if s.N == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f (%.1f–%.1f)", msf(s.Median), msf(s.Min), msf(s.Max))
}

func med(s stat) string {
	if s.N == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", msf(s.Median))
}

func cell(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", msf(d))
}

// gap is the difference of two medians.
func gap(later, earlier stat) string {
	if later.N == 0 || earlier.N == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", msf(later.Median-earlier.Median))
}

// times formats a ratio with two significant digits at least.
func times(r float64) string {
	switch {
	case r == 0:
		return ""
	case r < 0.01:
		return fmt.Sprintf("%.4f×", r)
	case r < 0.1:
		return fmt.Sprintf("%.3f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

// The JSON report (-json): times in milliseconds from process start, 0
// when not measured.

type jsonStat struct {
	N        int     `json:"n"`
	MedianMS float64 `json:"median_ms"`
	MinMS    float64 `json:"min_ms"`
	MaxMS    float64 `json:"max_ms"`
}

func jstat(s stat) jsonStat {
	return jsonStat{N: s.N, MedianMS: msf(s.Median), MinMS: msf(s.Min), MaxMS: msf(s.Max)}
}

type jsonRow struct {
	Via        string   `json:"via"`
	Client     string   `json:"client"`
	Runs       int      `json:"runs"`
	OK         int      `json:"runs_ok"`
	Ready      jsonStat `json:"ready"`
	Announce   jsonStat `json:"announce"`
	Metadata   jsonStat `json:"metadata"`
	Fetch      jsonStat `json:"metadata_fetch_in_process"`
	Serving    jsonStat `json:"serving"`
	FirstByte  jsonStat `json:"first_byte"`
	Complete   jsonStat `json:"complete"`
	Exit       jsonStat `json:"exit"`
	CPU        jsonStat `json:"cpu"`
	MetaVsA2   float64  `json:"metadata_vs_aria2c,omitempty"`
	FirstVsA2  float64  `json:"first_byte_vs_aria2c,omitempty"`
	CompVsA2   float64  `json:"complete_vs_aria2c,omitempty"`
	LogMeta    jsonStat `json:"log_metadata_received"`
	LogConnect jsonStat `json:"log_first_connection"`
	LogUnchoke jsonStat `json:"log_first_unchoke"`
}

type jsonRun struct {
	Run         int     `json:"round"`
	Via         string  `json:"via"`
	Client      string  `json:"client"`
	ReadyMS     float64 `json:"ready_ms"`
	AnnounceMS  float64 `json:"announce_ms"`
	MetadataMS  float64 `json:"metadata_ms"`
	FetchMS     float64 `json:"metadata_fetch_in_process_ms"`
	ServingMS   float64 `json:"serving_ms"`
	FirstByteMS float64 `json:"first_byte_ms"`
	CompleteMS  float64 `json:"complete_ms"`
	ExitMS      float64 `json:"exit_ms"`
	CPUS        float64 `json:"cpu_s"`
	Polls       int     `json:"aria2c_polls,omitempty"`
	LogMetaMS   float64 `json:"log_metadata_received_ms,omitempty"`
	LogConnMS   float64 `json:"log_first_connection_ms,omitempty"`
	LogUnchMS   float64 `json:"log_first_unchoke_ms,omitempty"`
	Error       string  `json:"error,omitempty"`
}

type jsonReport struct {
	Command    string            `json:"command"`
	Finished   string            `json:"finished"`
	Commit     string            `json:"aiotorrent"`
	Go         string            `json:"go"`
	LoadBefore string            `json:"load_before"`
	LoadAfter  string            `json:"load_after"`
	CPUStall   string            `json:"cpu_stall"`
	SizeBytes  int64             `json:"size_bytes"`
	PieceBytes int64             `json:"piece_bytes"`
	Pieces     int               `json:"pieces"`
	InfoBytes  int               `json:"metadata_bytes"`
	Seeders    []string          `json:"seeders"`
	Magnets    map[string]string `json:"magnets"`
	Rounds     int               `json:"rounds"`
	DebugLog   bool              `json:"debug_log"`
	Rows       []jsonRow         `json:"rows"`
	Runs       []jsonRun         `json:"runs"`
}

func (b *bench) writeJSON(path, root, goCmd string, cond *harness.Conditions, sum *summary) error {
	mi := b.swarm.MI
	rep := jsonReport{
		Command: strings.Join(os.Args, " "), Finished: time.Now().UTC().Format(time.RFC3339),
		Commit: strings.TrimSpace(root + harness.VCSInfo(root)), Go: harness.CmdLine(goCmd, "version"),
		LoadBefore: cond.LoadBefore, LoadAfter: cond.LoadAfter, CPUStall: cond.CPUStall,
		SizeBytes: b.cfg.Size, PieceBytes: mi.Info.PieceLength, Pieces: mi.Info.NumPieces(), InfoBytes: len(mi.InfoBytes),
		Magnets: b.magnets, Rounds: b.cfg.Runs, DebugLog: b.cfg.log,
		Rows: []jsonRow{}, Runs: []jsonRun{},
	}
	for _, s := range b.seeders {
		rep.Seeders = append(rep.Seeders, s.Name)
	}
	for _, r := range sum.rows {
		jr := jsonRow{Via: r.Via, Client: r.Client, Runs: r.Runs, OK: r.OK,
			Ready: jstat(r.Ready), Announce: jstat(r.Announce), Metadata: jstat(r.Metadata), Fetch: jstat(r.Fetch),
			Serving: jstat(r.Serving), FirstByte: jstat(r.FirstByte), Complete: jstat(r.Complete), Exit: jstat(r.Exit),
			LogMeta: jstat(r.LogMetadata), LogConnect: jstat(r.LogConnect), LogUnchoke: jstat(r.LogUnchoked),
		}
		jr.CPU = jsonStat{N: r.CPU.N, MedianMS: msf(r.CPU.Median), MinMS: msf(r.CPU.Min), MaxMS: msf(r.CPU.Max)}
		if a := sum.vsAria2(r); a != nil {
			jr.MetaVsA2, jr.FirstVsA2, jr.CompVsA2 = ratio(r.Metadata, a.Metadata), ratio(r.FirstByte, a.FirstByte), ratio(r.Complete, a.Complete)
		}
		rep.Rows = append(rep.Rows, jr)
	}
	for _, m := range b.runs {
		rep.Runs = append(rep.Runs, jsonRun{Run: m.Run, Via: m.Via, Client: m.Client,
			ReadyMS: msf(m.Ready), AnnounceMS: msf(m.Announce), MetadataMS: msf(m.Metadata), FetchMS: msf(m.Fetch),
			ServingMS: msf(m.Serving), FirstByteMS: msf(m.FirstByte), CompleteMS: msf(m.Complete), ExitMS: msf(m.Exit),
			CPUS: m.CPU.Seconds(), Polls: m.Polls,
			LogMetaMS: msf(m.LogMetadata), LogConnMS: msf(m.LogConnect), LogUnchMS: msf(m.LogUnchoked), Error: m.Err})
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
