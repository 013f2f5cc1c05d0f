// Command aiotorrent inspects, creates, downloads, streams, seeds and
// verifies torrents.
//
// Usage:
//
//	aiotorrent info [--json] TORRENT|MAGNET
//	aiotorrent create [-o OUT.torrent] [--tracker URL[,URL]]... [--piece-size SIZE] [--private] [--web-seed URL]... [--comment TEXT] PATH
//	aiotorrent download [-o DIR] [--file N]... [--strategy default|sequential] [--json] [--seed [--ratio R] [--seed-time D]] TORRENT
//	aiotorrent stream [--addr HOST:PORT] [--file N]... [--cache SIZE] TORRENT
//	aiotorrent seed [-d DIR] [--partial] [--ratio R] [--seed-time D] [--upload-limit RATE] [--json] TORRENT...
//	aiotorrent verify [-d DIR] [--json] TORRENT
//	aiotorrent demo [--size SIZE] [--strategy default|sequential]
//	aiotorrent peers [--tracker URL]... [--json] TORRENT|MAGNET
//	aiotorrent tracker [--http ADDR] [--udp ADDR] [--interval D]
//
// Run "aiotorrent help COMMAND" for a command's options. Exit status is 0 on
// success, 1 when the input is bad or an operation fails, and 2 for a
// usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
)

// version is the program version, set at link time by release builds.
var version = "dev"

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // argument synopsis after the command name
	run     func(ctx context.Context, env *env, args []string) error
}

var commands []*command

func init() {
	commands = []*command{infoCmd, createCmd, downloadCmd, streamCmd, seedCmd, verifyCmd, demoCmd, peersCmd, trackerCmd}
}

// env is what a command runs against, so tests can run it in-process.
type env struct {
	stdout, stderr io.Writer
	// isTerminal reports whether stderr is a terminal, for progress display.
	isTerminal bool
	// process is set when the command owns the process (not in tests):
	// it may set process-wide things such as the memory limit.
	process bool
}

// logger returns the library's logger: to stderr at the level
// AIOTORRENT_LOG names (debug, info, warn, error), or nil (no logs).
func (e *env) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("AIOTORRENT_LOG"))); err != nil {
		return nil
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}

// usageError is a mistake in how the command was called: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// AIOTORRENT_CPUPROFILE=FILE writes a CPU profile of the run, for
	// finding where the time goes (go tool pprof FILE).
	if path := os.Getenv("AIOTORRENT_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	e := &env{stdout: os.Stdout, stderr: os.Stderr, isTerminal: isTerminal(os.Stderr), process: true}
	status := run(ctx, e, os.Args[1:])
	if status != 0 {
		pprof.StopCPUProfile()
		os.Exit(status)
	}
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, e *env, args []string) (status int) {
	defer func() {
		// A bug must not print a Go stack trace at a user: say it in one line.
		if r := recover(); r != nil {
			fmt.Fprintf(e.stderr, "aiotorrent: internal error: %v (please report this)\n", r)
			status = 1
		}
	}()
	if len(args) == 0 {
		printUsage(e.stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			if c := lookup(rest[0]); c != nil {
				printCommandUsage(e.stdout, c)
				return 0
			}
		}
		printUsage(e.stdout)
		return 0
	case "version", "--version":
		fmt.Fprintln(e.stdout, "aiotorrent", version)
		return 0
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(e.stderr, "aiotorrent: unknown command %q\n", name)
		printUsage(e.stderr)
		return 2
	}
	err := c.run(ctx, e, rest)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp): // -h after the command
		printCommandUsage(e.stdout, c)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "aiotorrent %s: %s\n", c.name, ue.msg)
		fmt.Fprintf(e.stderr, "usage: aiotorrent %s %s\n", c.name, c.usage)
		return 2
	default:
		fmt.Fprintf(e.stderr, "aiotorrent %s: %s\n", c.name, oneLine(err.Error()))
		return 1
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: aiotorrent COMMAND [options] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "aiotorrent help COMMAND" for a command's options.`)
}

func printCommandUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: aiotorrent %s %s\n\n%s\n", c.name, c.usage, c.summary)
	fs := c.flags()
	if fs != nil {
		fmt.Fprintln(w, "\noptions:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// flags returns the command's flag set, for help output.
func (c *command) flags() *flag.FlagSet {
	switch c {
	case infoCmd:
		fs, _ := infoFlags()
		return fs
	case createCmd:
		fs, _ := createFlags()
		return fs
	case downloadCmd:
		fs, _ := downloadFlags()
		return fs
	case demoCmd:
		fs, _ := demoFlags()
		return fs
	case seedCmd:
		fs, _ := seedFlags()
		return fs
	case peersCmd:
		fs, _ := peersFlags()
		return fs
	case trackerCmd:
		fs, _ := trackerFlags()
		return fs
	case streamCmd:
		fs, _ := streamFlags()
		return fs
	case verifyCmd:
		fs, _ := verifyFlags()
		return fs
	}
	return nil
}

// parseFlags parses args with fs, allowing flags after positional
// arguments ("create DIR -o x.torrent"); "--" ends the flags.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil // everything after "--" is positional
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// oneLine folds an error message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
