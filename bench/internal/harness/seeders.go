//go:build linux

package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// The four BitTorrent programs, as seeders of one torrent on loopback
// (and, through [Qbit] and [LTPeer], the real clients as leechers for
// dlbench). Every one listens and connects on 127.0.0.1 only, with DHT,
// local peer discovery, peer exchange and port mapping off. The settings
// are those of internal/swarmtest (bench.go, where aria2c's and
// qBittorrent's are shared, and libtorrent_client.py), where each is
// explained.

// Client names, as given to -seeders (and dlbench's -leechers).
const (
	ClientOurs  = "ours"
	ClientAria2 = "aria2c"
	ClientQbit  = "qbittorrent"
	ClientLT    = "libtorrent"
)

// AllClients lists the clients in the order reports use.
var AllClients = []string{ClientOurs, ClientAria2, ClientQbit, ClientLT}

// ReadyTimeout bounds how long a seeder has to check its data and serve,
// or a daemon to start.
const ReadyTimeout = 2 * time.Minute

// ParseClients reads a list such as "aria2c,ours" or "all" into client
// names, in the order of [AllClients].
func ParseClients(s string) ([]string, error) {
	aliases := map[string]string{
		"all": "all", ClientOurs: ClientOurs, "aiotorrent": ClientOurs,
		ClientAria2: ClientAria2, "aria2": ClientAria2,
		ClientQbit: ClientQbit, "qbittorrent-nox": ClientQbit, "qbit": ClientQbit,
		ClientLT: ClientLT, "lt": ClientLT, "python3-libtorrent": ClientLT,
	}
	want := map[string]bool{}
	for f := range strings.SplitSeq(s, ",") {
		name, ok := aliases[strings.ToLower(strings.TrimSpace(f))]
		if !ok {
			return nil, fmt.Errorf("unknown client %q (want aria2c, qbittorrent, libtorrent, ours or all)", f)
		}
		if name == "all" {
			return AllClients, nil
		}
		want[name] = true
	}
	var out []string
	for _, c := range AllClients {
		if want[c] {
			out = append(out, c)
		}
	}
	return out, nil
}

// Swarm describes the seeders' common ground: the torrent, its content,
// and the programs that serve it.
type Swarm struct {
	Work    string // each seeder gets a folder seeder-NAME in it
	Bin     string // aiotorrent
	Torrent string
	MI      *metainfo.MetaInfo
	SeedDir string // the folder holding the torrent's content

	// CountUploads, set before StartSeeder, gives every seeder an
	// upload counter, [Seeder.Uploaded]: aiotorrent then prints a status
	// line every 250 ms and aria2c answers JSON-RPC on 127.0.0.1.
	CountUploads bool

	// The real clients' programs, set by FindClients for the clients it
	// is given.
	Aria2Cmd  string // aria2c
	QbitCmd   string // qbittorrent-nox
	PythonCmd string // the python3 that has libtorrent
	LTScript  string // libtorrent_client.py
}

// Seeder is a running seeder.
type Seeder struct {
	Name string
	Proc *Proc
	Addr netip.AddrPort
	// Uploaded returns the payload bytes the seeder has sent so far, as
	// it reports them (up to half a second old). It is nil unless the
	// swarm's CountUploads is set.
	Uploaded func(ctx context.Context) (int64, error)
}

// MakeTorrent writes the content, size pseudo-random bytes seeded with
// name (see [WriteContent]), to NAME-SIZE.bin in a new folder SeedDir,
// Work/seed, and a torrent of it that announces to announce to Torrent,
// Work/NAME.torrent, with aiotorrent create (--piece-size pieceSize unless
// it is empty). It loads the torrent into MI and returns the content's
// path.
func (sw *Swarm) MakeTorrent(ctx context.Context, name string, size int64, announce, pieceSize string) (string, error) {
	sw.SeedDir = filepath.Join(sw.Work, "seed")
	if err := os.MkdirAll(sw.SeedDir, 0o755); err != nil {
		return "", err
	}
	file := filepath.Join(sw.SeedDir, fmt.Sprintf("%s-%d.bin", name, size))
	if err := WriteContent(ctx, file, size, name); err != nil {
		return "", err
	}
	sw.Torrent = filepath.Join(sw.Work, name+".torrent")
	args := []string{"create", "--no-date", "--force", "--tracker", announce, "-o", sw.Torrent}
	if pieceSize != "" {
		args = append(args, "--piece-size", pieceSize)
	}
	create := exec.CommandContext(ctx, sw.Bin, append(args, file)...)
	if out, err := create.CombinedOutput(); err != nil {
		return "", fmt.Errorf("aiotorrent create: %v\n%s", err, out)
	}
	var err error
	if sw.MI, err = metainfo.LoadFile(sw.Torrent); err != nil {
		return "", err
	}
	Progress("torrent %s: %d pieces of %d KiB", sw.MI.InfoHash, sw.MI.Info.NumPieces(), sw.MI.Info.PieceLength>>10)
	return file, nil
}

// FindClients finds the programs the clients named need, failing with
// the Debian package to install if one is missing; flags names the flags
// that chose the clients, for that message ("-seeders").
func (sw *Swarm) FindClients(names []string, flags string) error {
	var err error
	if slices.Contains(names, ClientAria2) {
		if sw.Aria2Cmd, err = exec.LookPath("aria2c"); err != nil {
			return fmt.Errorf("aria2c is not installed (not found in PATH): install the Debian package \"aria2\", or leave aria2c out of %s", flags)
		}
	}
	if slices.Contains(names, ClientQbit) {
		if sw.QbitCmd, err = exec.LookPath("qbittorrent-nox"); err != nil {
			return fmt.Errorf("qbittorrent-nox is not installed (not found in PATH): install the Debian package \"qbittorrent-nox\", or leave qbittorrent out of %s", flags)
		}
	}
	if slices.Contains(names, ClientLT) {
		sw.PythonCmd = swarmtest.SystemPython
		if out, err := exec.Command(sw.PythonCmd, "-c", "import libtorrent").CombinedOutput(); err != nil {
			return fmt.Errorf("%s cannot import libtorrent (%v: %s): install the Debian package \"python3-libtorrent\", or leave libtorrent out of %s",
				sw.PythonCmd, err, strings.TrimSpace(string(out)), flags)
		}
		if sw.LTScript, err = swarmtest.LibtorrentScript(); err != nil {
			return err
		}
	}
	return nil
}

// Versions writes a report line with the version of each real client
// found by FindClients.
func (sw *Swarm) Versions(w io.Writer) {
	if sw.Aria2Cmd != "" {
		fmt.Fprintf(w, "- aria2c: %s\n", CmdLine(sw.Aria2Cmd, "--version"))
	}
	if sw.QbitCmd != "" {
		fmt.Fprintf(w, "- qbittorrent-nox: %s\n", CmdLine(sw.QbitCmd, "--version"))
	}
	if sw.PythonCmd != "" {
		fmt.Fprintf(w, "- libtorrent: %s (python3-libtorrent, %s)\n",
			CmdLine(sw.PythonCmd, "-c", "import libtorrent; print(libtorrent.__version__)"), filepath.Base(sw.LTScript))
	}
}

// StartSeeder starts the seeder called name on the content in SeedDir
// and returns once it has checked the data and serves it.
func (sw *Swarm) StartSeeder(ctx context.Context, name string) (*Seeder, error) {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	dir := filepath.Join(sw.Work, "seeder-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var s *Seeder
	var err error
	switch name {
	case ClientOurs:
		s, err = sw.oursSeeder(ctx, dir)
	case ClientAria2:
		s, err = sw.aria2Seeder(dir)
	case ClientQbit:
		s, err = sw.qbitSeeder(ctx, dir)
	case ClientLT:
		s, err = sw.ltSeeder(ctx, dir)
	default:
		return nil, fmt.Errorf("unknown seeder %q", name)
	}
	if err != nil {
		return nil, err
	}
	// Whatever the program said, it serves once it answers a handshake
	// with every piece.
	if err := swarmtest.WaitSeeding(ctx, s.Addr, sw.MI); err != nil {
		return nil, fmt.Errorf("%s seeder: %w\n%s", name, err, s.Proc.Tail())
	}
	if !sw.CountUploads {
		s.Uploaded = nil // one rule for every client: a counter only when asked for
	}
	return s, nil
}

// StartSeeders starts the seeders named, one after the other (each checks
// the whole content, and two checking at once on 2 cores would only slow
// both), and says on standard error when each serves.
func (sw *Swarm) StartSeeders(ctx context.Context, names []string) ([]*Seeder, error) {
	var seeders []*Seeder
	for _, name := range names {
		start := time.Now()
		s, err := sw.StartSeeder(ctx, name)
		if err != nil {
			return nil, err
		}
		seeders = append(seeders, s)
		Progress("seeder %-11s serving on %v (ready after %.1fs)", name, s.Addr, time.Since(start).Seconds())
	}
	return seeders, nil
}

// Exited describes each of seeders that has exited: its exit error and
// the end of its output.
func Exited(seeders []*Seeder) []string {
	var gone []string
	for _, s := range seeders {
		if s.Proc.HasExited() {
			gone = append(gone, fmt.Sprintf("%v\n%s", s.Proc.ExitError(), s.Proc.Tail()))
		}
	}
	return gone
}

// FreePortExcept returns a free TCP port on 127.0.0.1 other than port,
// one picked earlier that nothing listens on yet.
func FreePortExcept(port int) (int, error) {
	p, err := swarmtest.FreePort()
	for err == nil && p == port {
		p, err = swarmtest.FreePort()
	}
	return p, err
}

func (sw *Swarm) oursSeeder(ctx context.Context, dir string) (*Seeder, error) {
	type event struct {
		Event    string `json:"event"`
		Listen   string `json:"listen"`
		Pieces   int    `json:"pieces"`
		Present  int    `json:"pieces_present"`
		Uploaded int64  `json:"uploaded_bytes"`
	}
	var uploaded atomic.Int64 // uploaded_bytes of its latest line
	started := make(chan event, 1)
	argv := []string{sw.Bin, "seed", "-d", sw.SeedDir, "--listen", "127.0.0.1:0", "--no-dht", "--json", "--state-dir", filepath.Join(sw.Work, "state")}
	if sw.CountUploads {
		argv = append(argv, "--status-every", "250ms")
	}
	p, err := StartProc("aiotorrent seeder", filepath.Join(dir, "seed.log"), dir, nil, func(line string) {
		var ev event
		if json.Unmarshal([]byte(line), &ev) != nil {
			return
		}
		uploaded.Store(ev.Uploaded)
		if ev.Event == "started" {
			started <- ev
		}
	}, append(argv, sw.Torrent)...)
	if err != nil {
		return nil, err
	}
	var ev event
	select {
	case ev = <-started:
	case <-p.Exited:
		return nil, fmt.Errorf("%v before serving\n%s", p.ExitError(), p.Tail())
	case <-ctx.Done():
		return nil, fmt.Errorf("aiotorrent seeder: not serving: %w\n%s", ctx.Err(), p.Tail())
	}
	if ev.Present != ev.Pieces {
		return nil, fmt.Errorf("aiotorrent seeder: %d of %d pieces present in %s\n%s", ev.Present, ev.Pieces, sw.SeedDir, p.Tail())
	}
	addr, err := netip.ParseAddrPort(ev.Listen)
	if err != nil || !addr.Addr().IsLoopback() {
		return nil, fmt.Errorf("aiotorrent seeder: listening on %q, want 127.0.0.1:PORT", ev.Listen)
	}
	return &Seeder{Name: ClientOurs, Proc: p, Addr: addr, Uploaded: func(context.Context) (int64, error) {
		return uploaded.Load(), nil
	}}, nil
}

func (sw *Swarm) aria2Seeder(dir string) (*Seeder, error) {
	port, err := swarmtest.FreePort()
	if err != nil {
		return nil, err
	}
	// The options of swarmtest's aria2c but for the log level: its info
	// log writes a line per block.
	args := append([]string{sw.Aria2Cmd}, swarmtest.Aria2Args(port, sw.SeedDir, filepath.Join(dir, "aria2.log"), "notice")...)
	args = append(args,
		"--check-integrity=true", // hash the data before seeding
		"--seed-ratio=0.0",       // with no --seed-time: seed for ever
	)
	rpc := ""
	if sw.CountUploads {
		rpcPort, err := FreePortExcept(port)
		if err != nil {
			return nil, err
		}
		// JSON-RPC, on the loopback interface only, to read how much it
		// uploaded.
		args = append(args, "--enable-rpc=true", "--rpc-listen-all=false", "--rpc-listen-port="+strconv.Itoa(rpcPort))
		rpc = "http://127.0.0.1:" + strconv.Itoa(rpcPort) + "/jsonrpc"
	}
	p, err := StartProc("aria2c seeder", filepath.Join(dir, "output.log"), dir, []string{"HOME=" + dir}, nil, append(args, sw.Torrent)...)
	if err != nil {
		return nil, err
	}
	s := &Seeder{Name: ClientAria2, Proc: p, Addr: swarmtest.PeerAddr(port)}
	if rpc != "" {
		client := &http.Client{Timeout: 5 * time.Second}
		s.Uploaded = func(ctx context.Context) (int64, error) { return aria2Uploaded(ctx, client, rpc) }
	}
	return s, nil
}

// aria2Uploaded asks aria2c's JSON-RPC for the bytes uploaded by its
// active downloads (the one torrent it seeds).
func aria2Uploaded(ctx context.Context, client *http.Client, rpc string) (int64, error) {
	body := `{"jsonrpc":"2.0","id":"dlbench","method":"aria2.tellActive","params":[["uploadLength"]]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rpc, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Result []struct {
			UploadLength string `json:"uploadLength"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r); err != nil {
		return 0, fmt.Errorf("aria2c RPC: %w", err)
	}
	if r.Error != nil {
		return 0, fmt.Errorf("aria2c RPC: %s", r.Error.Message)
	}
	var n int64
	for _, d := range r.Result {
		v, err := strconv.ParseInt(d.UploadLength, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("aria2c RPC: uploadLength %q", d.UploadLength)
		}
		n += v
	}
	return n, nil
}

func (sw *Swarm) qbitSeeder(ctx context.Context, dir string) (*Seeder, error) {
	q, err := sw.StartQbit(ctx, "qbittorrent-nox seeder", dir)
	if err != nil {
		return nil, err
	}
	h := sw.MI.InfoHash.String()
	if err := q.Add(ctx, sw.Torrent, sw.SeedDir); err != nil {
		return nil, err
	}
	if err := q.WaitComplete(ctx, h); err != nil {
		return nil, fmt.Errorf("qbittorrent-nox seeder: checking %s: %w", sw.SeedDir, err)
	}
	return &Seeder{Name: ClientQbit, Proc: q.Proc, Addr: swarmtest.PeerAddr(q.Port), Uploaded: func(ctx context.Context) (int64, error) {
		tor, ok, err := q.torrent(ctx, h)
		if err == nil && !ok {
			err = errors.New("qbittorrent-nox seeder: torrent gone")
		}
		return tor.Uploaded, err
	}}, nil
}

func (sw *Swarm) ltSeeder(ctx context.Context, dir string) (*Seeder, error) {
	l, err := sw.StartLT("libtorrent seeder", dir, sw.SeedDir, true)
	if err != nil {
		return nil, err
	}
	st, _, err := l.WaitFor(ctx, func(s LTStatus) bool { return s.Port > 0 && s.State == "seeding" && s.Complete() })
	if err != nil {
		return nil, err
	}
	return &Seeder{Name: ClientLT, Proc: l.Proc, Addr: swarmtest.PeerAddr(st.Port), Uploaded: func(context.Context) (int64, error) {
		return l.Status().Uploaded, nil
	}}, nil
}
