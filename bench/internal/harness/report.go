//go:build linux

package harness

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Conditions describes what else was happening on the machine during the
// runs, which makes the timings noisy. Make it with [Watch] before the
// runs and call [Conditions.Stop] after them.
type Conditions struct {
	LoadBefore, LoadAfter string // 1, 5 and 15 minute load averages
	CPUStall, IOStall     string // share of the time some task waited for CPU / I/O

	cpuStall0, ioStall0 int64
	start               time.Time
}

// Watch starts recording the conditions: the load average now, and the
// Linux pressure stall (PSI) totals.
func Watch() *Conditions {
	c := &Conditions{LoadBefore: loadAvg()}
	c.cpuStall0, c.ioStall0 = psiTotal("cpu"), psiTotal("io")
	c.start = time.Now()
	return c
}

// Stop records the load average now and the share of the time since
// [Watch] that some task was stalled on CPU and on I/O.
func (c *Conditions) Stop() {
	elapsed := time.Since(c.start)
	c.LoadAfter = loadAvg()
	c.CPUStall = stallShare(c.cpuStall0, psiTotal("cpu"), elapsed)
	c.IOStall = stallShare(c.ioStall0, psiTotal("io"), elapsed)
}

// WriteHeader writes the head of the Markdown report of the program
// called name (bench/NAME): its title, command line, the time, the
// machine (nprocNote follows the nproc figure) and the conditions c.
func WriteHeader(w io.Writer, name, nprocNote string, c *Conditions) {
	fmt.Fprintf(w, "## %s\n\n", name)
	fmt.Fprintf(w, "- command: `%s`\n", commandLine("go run ./bench/"+name))
	fmt.Fprintf(w, "- finished: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- nproc: %s (GOMAXPROCS of this harness %d)%s\n", nproc(), runtime.GOMAXPROCS(0), nprocNote)
	if cpu := cpuModel(); cpu != "" {
		fmt.Fprintf(w, "- CPU: %s\n", cpu)
	}
	fmt.Fprintf(w, "- load average (1, 5, 15 min): %s before the runs, %s after\n", c.LoadBefore, c.LoadAfter)
	fmt.Fprintf(w, "- during the runs, some task was waiting for a CPU %s of the time, for I/O %s (Linux PSI)\n", c.CPUStall, c.IOStall)
}

// WriteFailures writes the list of failures that ends a report: each of
// failures in a code block, then each seeder gone (see [Exited]).
func WriteFailures(w io.Writer, failures, gone []string) {
	fmt.Fprintf(w, "**FAIL**:\n\n")
	for _, f := range failures {
		fmt.Fprintf(w, "```\n%s\n```\n", strings.TrimSpace(f))
	}
	for _, g := range gone {
		fmt.Fprintf(w, "Seeder exited during the runs:\n\n```\n%s\n```\n", strings.TrimSpace(g))
	}
}

// CmdLine returns the first line of a command's output, or "unknown": a
// program's version.
func CmdLine(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return "unknown"
	}
	return line
}

// psiTotal returns the "some" stall total, in microseconds, from
// /proc/pressure/RESOURCE, or -1 if the kernel does not provide it.
func psiTotal(resource string) int64 {
	data, err := os.ReadFile("/proc/pressure/" + resource)
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "some "); ok {
			for _, f := range strings.Fields(rest) {
				if v, ok := strings.CutPrefix(f, "total="); ok {
					if n, err := strconv.ParseInt(v, 10, 64); err == nil {
						return n
					}
				}
			}
		}
	}
	return -1
}

func stallShare(before, after int64, elapsed time.Duration) string {
	if before < 0 || after < before || elapsed <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(after-before)/float64(elapsed.Microseconds()))
}

// commandLine is how this program was started, as a shell command; prog
// stands for the program when it was started by "go run".
func commandLine(prog string) string {
	if exe, err := os.Executable(); err == nil && !strings.Contains(exe, "go-build") {
		prog = os.Args[0]
	}
	parts := []string{prog}
	for _, a := range os.Args[1:] {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./,=:@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func nproc() string {
	if out, err := exec.Command("nproc").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return strconv.Itoa(runtime.NumCPU())
}

// loadAvg returns the 1, 5 and 15 minute load averages: other work on the
// machine, which makes the timings noisy.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
