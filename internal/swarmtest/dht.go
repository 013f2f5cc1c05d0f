package swarmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Real DHT nodes (BEP 5) for tests: aria2c with its DHT on (this file)
// and webtorrent's bittorrent-dht (node/dht.js); libtorrent's is
// [LTOptions.DHTBootstrap]. Each joins a DHT made only of the loopback
// nodes it is given, and is stopped when the test ends (process.go).

// Aria2DHT is an aria2c process with its IPv4 DHT on, made by
// [Aria2DHTSeed] or [Aria2DHTLeech]. Apart from the DHT it runs as
// [Aria2Seed] and [Aria2Leech] do: loopback only, no local peer
// discovery or peer exchange. Its info log (shown when the test fails)
// has a line for every DHT message it sends and receives.
//
// It cannot reach beyond loopback: it starts with an empty routing table
// (a fresh --dht-file-path; aria2c has no built-in bootstrap nodes, so
// the entry point, an IPv4 loopback literal, is its only way in); every
// node it can then learn of is one the loopback nodes tell it of; and
// --interface=127.0.0.1 binds its DHT socket to 127.0.0.1 as well as its
// TCP one (seen with ss), from which the kernel sends to loopback only.
// IPv6 and its DHT are off.
//
// What aria2c 1.36 does here:
//   - it prints an ERROR at start, "Exception caught while loading DHT
//     routing table from .../dht.dat": the file does not exist yet, which
//     is what is wanted;
//   - it pings the entry point and takes it into its table; a seeder's
//     first get_peers lookup for the torrent went out about 1.5 s after
//     start, a leecher's (magnet link) about 6 s after; a lookup ends
//     with announce_peer (its TCP port, not implied_port) to every node
//     that gave a token, leecher or seeder alike, so a leecher later
//     finds itself among the peers;
//   - it does not list itself in its own get_peers replies (it would with
//     --bt-external-ip);
//   - with a magnet link it connected to the peer it found 2 s after the
//     lookup, fetched the metadata, then looked the peers up again at
//     once but connected for the content only 10 s later: a 64 KiB
//     download from a magnet link takes about 25 s in all.
type Aria2DHT struct {
	Aria2
	dhtPort int
}

// DHTPort returns the UDP port of aria2c's DHT node, on 127.0.0.1.
func (a *Aria2DHT) DHTPort() int { return a.dhtPort }

// Aria2DHTSeed starts aria2c seeding the torrent at torrentPath from
// dataDir (as [Aria2Seed]) with its DHT on, joined through the node at
// entry (an IPv4 loopback address) only. Once it has checked the data it
// announces the torrent into the DHT with its TCP port ([Aria2.Port]).
//
// It needs aria2c (Debian package aria2): without it the test is skipped,
// or fails if [RequireEnv] is set.
func Aria2DHTSeed(t testing.TB, torrentPath, dataDir string, entry netip.AddrPort) *Aria2DHT {
	t.Helper()
	abs, err := filepath.Abs(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	return startAria2DHT(t, "aria2c DHT seeder", abs, dataDir, entry,
		"--check-integrity=true", // -V: hash the data before seeding
		"--seed-ratio=0.0",       // with no --seed-time: seed for ever
	)
}

// Aria2DHTLeech starts aria2c downloading uri, a magnet link or the path
// of a torrent file, into outDir, with its DHT on, joined through the node
// at entry (an IPv4 loopback address) only. It exits once the download is
// complete and checked: [Aria2.Wait] returns then.
//
// It needs aria2c (Debian package aria2): without it the test is skipped,
// or fails if [RequireEnv] is set.
func Aria2DHTLeech(t testing.TB, uri, outDir string, entry netip.AddrPort) *Aria2DHT {
	t.Helper()
	if !strings.HasPrefix(uri, "magnet:") {
		abs, err := filepath.Abs(uri)
		if err != nil {
			t.Fatal(err)
		}
		uri = abs
	}
	return startAria2DHT(t, "aria2c DHT leecher", uri, outDir, entry, "--seed-time=0")
}

func startAria2DHT(t testing.TB, name, uri, dir string, entry netip.AddrPort, extra ...string) *Aria2DHT {
	t.Helper()
	bin := Tool(t, "aria2c", "aria2")
	if !entry.Addr().Is4() || !entry.Addr().IsLoopback() || entry.Port() == 0 {
		t.Fatalf("%s: DHT entry point %v: must be an IPv4 loopback address", name, entry)
	}
	home := t.TempDir()
	logFile := filepath.Join(home, "aria2.log")
	port, dhtPort := freePort(t), freePort(t)
	// Aria2Args, which keeps aria2c on loopback, with the DHT turned on.
	var args []string
	off := false
	for _, a := range Aria2Args(port, dir, logFile, "info") {
		if a == "--enable-dht=false" {
			off = true
			continue
		}
		args = append(args, a)
	}
	if !off || !slices.Contains(args, "--interface=127.0.0.1") || !slices.Contains(args, "--enable-dht6=false") {
		t.Fatalf("%s: Aria2Args changed: %q", name, args)
	}
	args = append(args,
		"--enable-dht=true",
		"--dht-listen-port="+strconv.Itoa(dhtPort),
		"--dht-entry-point="+entry.String(),
		"--dht-file-path="+filepath.Join(home, "dht.dat"), // fresh: no saved nodes
	)
	args = append(args, extra...)
	args = append(args, uri)
	p := startProcess(t, name, processCommand{
		path: bin, args: args, dir: home, env: []string{"HOME=" + home},
		logFiles: []string{logFile},
		logNoise: aria2LogNoise,
	})
	return &Aria2DHT{Aria2: Aria2{proc: p, port: port}, dhtPort: dhtPort}
}

// BittorrentDHTNode is a node of webtorrent's bittorrent-dht (npm, pinned
// in internal/swarmtest/node/package.json) run by node/dht.js, made by
// [BittorrentDHT].
type BittorrentDHTNode struct {
	proc  *process
	stdin io.Writer
	addr  netip.AddrPort
	id    string // hex

	events chan dhtJSEvent // the listening and ready events, for BittorrentDHT
	wmu    sync.Mutex      // serializes writes to stdin

	mu        sync.Mutex
	next      int                     // guarded by mu: the last command id
	pending   map[int]chan dhtJSReply // guarded by mu: by command id
	announced map[string][]string     // guarded by mu: "IP:PORT"s announced to it, by hex info hash
	warnings  []string                // guarded by mu
}

// dhtJSEvent and dhtJSReply are lines of dht.js's output.
type dhtJSEvent struct {
	Event    string `json:"event"`
	Port     int    `json:"port"`
	ID       string `json:"id"`
	Nodes    int    `json:"nodes"`
	InfoHash string `json:"infoHash"`
	Peer     string `json:"peer"`
	Message  string `json:"message"`
	To       string `json:"to"`
}

type dhtJSReply struct {
	ID    int    `json:"id"`
	Error string `json:"error"`
	Peers []struct {
		Peer string `json:"peer"`
		From string `json:"from"`
	} `json:"peers"`
	Nodes   []string `json:"nodes"`
	Visited int      `json:"visited"`
}

// DHTPeer is a peer a DHT lookup found, and the node whose get_peers
// reply gave it; From is the zero AddrPort for a peer the looking node
// had stored itself, from an announce_peer it received.
type DHTPeer struct {
	Addr, From netip.AddrPort
}

// BittorrentDHT starts a bittorrent-dht node on 127.0.0.1 that joins the
// DHT through the bootstrap nodes only (IPv4 loopback addresses), and
// returns once it has bootstrapped: it has asked them, and the nodes they
// led to, for its own id. It stops when the test ends.
//
// It never contacts the library's default public routers: dht.js gives it
// the bootstrap list explicitly, binds its socket to 127.0.0.1, and drops
// any datagram to another address (reported by [BittorrentDHTNode.Warnings]).
//
// It needs node (Debian package nodejs) and the packages installed in
// internal/swarmtest/node (scripts/test.sh runs npm ci there); without
// them the test is skipped, or fails if [RequireEnv] is set.
//
// Quirks (bittorrent-dht 11.0.12): a get_peers reply that has peers
// carries no nodes; it sends announce_peer with implied_port 1 and port 0
// when asked to announce port 0; it answers ping, find_node, get_peers,
// announce_peer and BEP 44 get/put, and ignores other queries; it
// ignores "ro" (BEP 43): any node that queries it joins its table, and it
// drops a node from its table only once a query to it times out.
func BittorrentDHT(t testing.TB, bootstrap ...netip.AddrPort) *BittorrentDHTNode {
	t.Helper()
	node := Tool(t, "node", "nodejs")
	dir := nodeDir(t)
	checkNodePackage(t, dir, "bittorrent-dht")
	if len(bootstrap) == 0 {
		t.Fatal("BittorrentDHT: no bootstrap node")
	}
	args := []string{filepath.Join(dir, "dht.js")}
	for _, b := range bootstrap {
		if !b.Addr().Is4() || !b.Addr().IsLoopback() || b.Port() == 0 {
			t.Fatalf("BittorrentDHT: bootstrap node %v: must be an IPv4 loopback address", b)
		}
		args = append(args, b.String())
	}
	n := &BittorrentDHTNode{
		pending:   map[int]chan dhtJSReply{},
		announced: map[string][]string{},
		events:    make(chan dhtJSEvent, 2),
	}
	output := &outputTail{}
	stdout := io.MultiWriter(output, &lineWriter{fn: n.line})
	n.proc = startProcess(t, "bittorrent-dht", processCommand{
		path: node, args: args, dir: dir, stdout: stdout, output: output, stdin: true,
	})
	n.stdin = n.proc.stdin.(io.Writer)
	timer := time.NewTimer(clientStartTimeout)
	defer timer.Stop()
	for ready := false; !ready || !n.addr.IsValid(); {
		select {
		case e := <-n.events:
			switch e.Event {
			case "listening":
				ap, err := netip.ParseAddrPort(fmt.Sprintf("127.0.0.1:%d", e.Port))
				if err != nil || e.Port <= 0 {
					n.proc.fatalf(t, "bad listening line: port %d", e.Port)
				}
				n.addr, n.id = ap, e.ID
			case "ready":
				ready = true
			}
		case <-n.proc.exited:
			n.proc.fatalf(t, "exited before it was ready: %v", n.proc.err)
		case <-timer.C:
			n.proc.fatalf(t, "not ready after %v", clientStartTimeout)
		}
	}
	n.proc.setReady()
	return n
}

// checkNodePackage skips or fails the test (by the [RequireEnv] rule) when
// the npm package name is not installed in dir at the version package.json
// pins.
func checkNodePackage(t testing.TB, dir, name string) {
	t.Helper()
	var want, have struct {
		Version      string            `json:"version"`
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := readJSON(filepath.Join(dir, "package.json"), &want); err != nil {
		t.Fatalf("swarmtest: %v", err)
	}
	problem := ""
	if err := readJSON(filepath.Join(dir, "node_modules", name, "package.json"), &have); err != nil {
		problem = name + " is not installed"
	} else if v := want.Dependencies[name]; have.Version != v {
		problem = fmt.Sprintf("%s %s is installed, package.json pins %s", name, have.Version, v)
	}
	if problem == "" {
		return
	}
	fix := fmt.Sprintf("run scripts/test.sh, or npm ci --ignore-scripts in %s", dir)
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s and %s is set: %s", problem, RequireEnv, fix)
	}
	t.Skipf("%s: %s to run this interop test", problem, fix)
}

// line handles one line of dht.js's output.
func (n *BittorrentDHTNode) line(line string) {
	if !strings.HasPrefix(line, "{") {
		return
	}
	// Events have "event"; replies have a numeric "id" instead.
	var e dhtJSEvent
	if strings.Contains(line, `"event":`) {
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			n.warn(fmt.Sprintf("swarmtest: bad line from dht.js %q: %v", line, err))
			return
		}
	}
	switch e.Event {
	case "":
		var r dhtJSReply
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			n.warn(fmt.Sprintf("swarmtest: bad reply from dht.js %q: %v", line, err))
			return
		}
		n.mu.Lock()
		ch := n.pending[r.ID]
		delete(n.pending, r.ID)
		n.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	case "listening", "ready":
		select {
		case n.events <- e:
		default:
		}
	case "announce":
		n.mu.Lock()
		n.announced[e.InfoHash] = append(n.announced[e.InfoHash], e.Peer)
		n.mu.Unlock()
	case "warning":
		n.warn(e.Message)
	case "refused":
		n.warn("dht.js refused to send to " + e.To)
	default:
		n.warn(fmt.Sprintf("swarmtest: unknown event from dht.js %q", line))
	}
}

func (n *BittorrentDHTNode) warn(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.warnings) < 100 {
		n.warnings = append(n.warnings, s)
	}
}

// Addr returns the node's UDP address, on 127.0.0.1.
func (n *BittorrentDHTNode) Addr() netip.AddrPort { return n.addr }

// ID returns the node's id, in hex.
func (n *BittorrentDHTNode) ID() string { return n.id }

// Warnings returns what the node could not handle (a datagram it could
// not decode, a reply to no query of its own...), and any attempt of its
// to send beyond loopback, which dht.js refuses.
func (n *BittorrentDHTNode) Warnings() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.warnings)
}

// Announced returns the peers other nodes announced to this one for
// infoHash, as "IP:PORT" (with the source port when they asked for
// implied_port).
func (n *BittorrentDHTNode) Announced(infoHash metainfo.Hash) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.announced[infoHash.String()])
}

// Lookup runs a get_peers lookup of infoHash and returns the peers found,
// and how many nodes answered.
func (n *BittorrentDHTNode) Lookup(ctx context.Context, infoHash metainfo.Hash) (peers []DHTPeer, visited int, err error) {
	r, err := n.call(ctx, map[string]any{"op": "lookup", "infoHash": infoHash.String()})
	if err != nil {
		return nil, 0, err
	}
	peers, err = r.peers()
	return peers, r.Visited, err
}

// Announce runs a get_peers lookup of infoHash and then announces port
// (0: implied_port, the node's UDP port) to the closest nodes that gave a
// token. It returns what the lookup found, as [BittorrentDHTNode.Lookup].
func (n *BittorrentDHTNode) Announce(ctx context.Context, infoHash metainfo.Hash, port int) (peers []DHTPeer, visited int, err error) {
	r, err := n.call(ctx, map[string]any{"op": "announce", "infoHash": infoHash.String(), "port": port})
	if err != nil {
		return nil, 0, err
	}
	peers, err = r.peers()
	return peers, r.Visited, err
}

// Nodes returns the node's routing table as "HEXID@IP:PORT" strings.
func (n *BittorrentDHTNode) Nodes(ctx context.Context) ([]string, error) {
	r, err := n.call(ctx, map[string]any{"op": "nodes"})
	if err != nil {
		return nil, err
	}
	return r.Nodes, nil
}

func (n *BittorrentDHTNode) call(ctx context.Context, cmd map[string]any) (dhtJSReply, error) {
	ch := make(chan dhtJSReply, 1)
	n.mu.Lock()
	n.next++
	id := n.next
	n.pending[id] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.pending, id)
		n.mu.Unlock()
	}()
	cmd["id"] = id
	b, err := json.Marshal(cmd)
	if err == nil {
		n.wmu.Lock()
		_, err = n.stdin.Write(append(b, '\n'))
		n.wmu.Unlock()
	}
	if err != nil {
		return dhtJSReply{}, fmt.Errorf("bittorrent-dht %s: %w", cmd["op"], err)
	}
	select {
	case r := <-ch:
		if r.Error != "" {
			return r, fmt.Errorf("bittorrent-dht %s: %s", cmd["op"], r.Error)
		}
		return r, nil
	case <-n.proc.exited:
		return dhtJSReply{}, fmt.Errorf("bittorrent-dht %s: %w\n%s", cmd["op"], n.proc.exitError(), n.proc.failureLogs())
	case <-ctx.Done():
		return dhtJSReply{}, fmt.Errorf("bittorrent-dht %s: %w", cmd["op"], ctx.Err())
	}
}

func (r dhtJSReply) peers() ([]DHTPeer, error) {
	var out []DHTPeer
	for _, p := range r.Peers {
		var d DHTPeer
		var err error
		if d.Addr, err = netip.ParseAddrPort(p.Peer); err != nil {
			return nil, fmt.Errorf("bittorrent-dht: peer %q: %w", p.Peer, err)
		}
		if p.From != "" {
			if d.From, err = netip.ParseAddrPort(p.From); err != nil {
				return nil, fmt.Errorf("bittorrent-dht: peer %q from %q: %w", p.Peer, p.From, err)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Logs returns the end of dht.js's output.
func (n *BittorrentDHTNode) Logs() string { return n.proc.logs() }
