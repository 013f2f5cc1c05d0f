//go:build linux

package harness

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// WorkDirUsage is the usage text of -dir for a program that works in a
// folder made by [Workspace].
const WorkDirUsage = "work in a new folder inside `DIR` (default $TMPDIR); it needs twice -size free"

// Common holds the settings the benchmark programs share; each program
// has the flags of only some of them (see [Flags]).
type Common struct {
	Size      int64         // -size, in bytes
	Runs      int           // -runs
	Seeders   []string      // -seeders, as [ParseClients] reads it
	PieceSize string        // -piece-size, as given: "" for what aiotorrent create chooses
	Timeout   time.Duration // -timeout; by default 1 minute plus 1 second per 2 MiB of Size
	Dir       string        // -dir, "" when not given
	Keep      bool          // -keep
}

// Flags is a benchmark program's command line. Its methods register the
// flags of [Common] the program has, with the program's defaults and
// usage texts, and [Flags.Parse] checks them with the same messages in
// every program. The program registers its other flags on FS.
type Flags struct {
	FS *flag.FlagSet
	c  *Common

	size, seeders *string // as given, when registered
	minSize       int64
	minSizeText   string // minSize in the message: "1 MiB"
}

// NewFlags returns the command line of the program called name, which
// fills c; its usage message is "usage: go run ./bench/NAME synopsis"
// followed by the flags.
func NewFlags(name, synopsis string, c *Common) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./bench/"+name+" "+synopsis)
		fs.PrintDefaults()
	}
	return &Flags{FS: fs, c: c}
}

// Size registers -size (default 1G), which must be at least least bytes;
// leastText says least in the message when it is not ("1 MiB").
func (f *Flags) Size(usage string, least int64, leastText string) {
	f.size = f.FS.String("size", "1G", usage)
	f.minSize, f.minSizeText = least, leastText
}

// Runs registers -runs, which must be at least 1.
func (f *Flags) Runs(def int, usage string) { f.FS.IntVar(&f.c.Runs, "runs", def, usage) }

// Seeders registers -seeders, a list of clients for [ParseClients].
func (f *Flags) Seeders(def, usage string) { f.seeders = f.FS.String("seeders", def, usage) }

// PieceSize registers -piece-size, passed on to aiotorrent create.
func (f *Flags) PieceSize() {
	f.FS.StringVar(&f.c.PieceSize, "piece-size", "", "piece `SIZE` of the torrent (default: what aiotorrent create chooses)")
}

// Timeout registers -timeout, the most one what ("download") may take.
func (f *Flags) Timeout(what string) {
	f.FS.DurationVar(&f.c.Timeout, "timeout", 0, "give up on one "+what+" after `D` (default 1 minute plus 1 second per 2 MiB)")
}

// Dir registers -dir, which must be an existing folder when given.
func (f *Flags) Dir(usage string) { f.FS.StringVar(&f.c.Dir, "dir", "", usage) }

// Keep registers -keep.
func (f *Flags) Keep(usage string) { f.FS.BoolVar(&f.c.Keep, "keep", false, usage) }

// Parse parses args and checks the flags of [Common] registered, in the
// order of its fields. It returns [flag.ErrHelp] for -h.
func (f *Flags) Parse(args []string) error {
	if err := parseFlags(f.FS, args); err != nil {
		return err
	}
	c := f.c
	if f.size != nil {
		var err error
		if c.Size, err = ParseSize(*f.size); err != nil {
			return fmt.Errorf("-size: %w", err)
		}
		if c.Size < f.minSize {
			return fmt.Errorf("-size: %s is less than %s", *f.size, f.minSizeText)
		}
	}
	if f.FS.Lookup("runs") != nil && c.Runs < 1 {
		return errors.New("-runs must be at least 1")
	}
	if f.seeders != nil {
		var err error
		if c.Seeders, err = ParseClients(*f.seeders); err != nil {
			return fmt.Errorf("-seeders: %w", err)
		}
	}
	if f.FS.Lookup("timeout") != nil {
		if c.Timeout == 0 {
			c.Timeout = time.Minute + time.Duration(c.Size/(2<<20))*time.Second
		}
		if c.Timeout < 0 {
			return errors.New("-timeout must be positive")
		}
	}
	if c.Dir != "" {
		if err := CheckDir("-dir", c.Dir); err != nil {
			return err
		}
	}
	return nil
}

// ParseSize reads "1073741824", "1G", "1GiB", "256M", "512K".
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 256M or 1G", s)
	}
	return n * mult, nil
}

// parseFlags parses args with fs and fails if any is left that is not a
// flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return nil
}

// CheckDir fails unless dir is an existing folder; flagName names the
// flag that gave it, for the message.
func CheckDir(flagName, dir string) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%s %s: not an existing folder", flagName, dir)
	}
	return nil
}
