package swarmtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker/server"
)

// TestClientsStayOnLoopback runs a small swarm of every client harness
// (aria2c seeding, libtorrent and qBittorrent downloading) through a
// tracker, and then checks, from /proc, that every IP socket each client
// holds is bound to loopback and connected, if at all, to loopback.
func TestClientsStayOnLoopback(t *testing.T) {
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		t.Skipf("no /proc/PID/net to inspect sockets: %v", err)
	}
	Tool(t, "aria2c", "aria2")
	RequireLibtorrent(t)
	Tool(t, "qbittorrent-nox", "qbittorrent-nox")
	trackerURL := serveTracker(t)
	data := make([]byte, 1<<20)
	rand.Read(data)
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "loopback.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Create(t.Context(), filepath.Join(dataDir, "loopback.bin"),
		metainfo.CreateOptions{Trackers: [][]string{{trackerURL}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := mi.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	torrent := filepath.Join(t.TempDir(), "loopback.torrent")
	if err := os.WriteFile(torrent, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	seeder := Aria2Seed(t, torrent, dataDir)
	lt := Libtorrent(t, torrent, t.TempDir(), false)
	qb := Qbittorrent(t)
	h := qb.AddTorrent(torrent, t.TempDir(), false)
	if err := lt.WaitComplete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := qb.WaitComplete(ctx, h); err != nil {
		t.Fatal(err)
	}

	for _, p := range []*process{seeder.proc, lt.proc, qb.proc} {
		socks, err := processSockets(p.cmd.Process.Pid)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if len(socks) == 0 {
			t.Errorf("%s: no IP sockets found", p.name)
		}
		for _, s := range socks {
			if !s.local.Addr().IsLoopback() || !(s.remote.Addr().IsLoopback() || s.remote.Addr().IsUnspecified()) {
				t.Errorf("%s: socket not on loopback: %v", p.name, s)
			} else {
				t.Logf("%s: %v", p.name, s)
			}
		}
	}
}

// serveTracker serves our tracker over HTTP on 127.0.0.1 until the test
// ends and returns its announce URL.
func serveTracker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := server.New(server.Config{Interval: 2 * time.Second})
	go func() { done <- srv.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tracker: %v", err)
		}
	})
	return fmt.Sprintf("http://%s/announce", ln.Addr())
}

// inetSocket is one TCP or UDP socket of a process.
type inetSocket struct {
	proto         string // tcp, tcp6, udp, udp6
	local, remote netip.AddrPort
	state         string // the kernel's state number, in hex
}

func (s inetSocket) String() string {
	return fmt.Sprintf("%s %v -> %v state %s", s.proto, s.local, s.remote, s.state)
}

// processSockets lists the TCP and UDP sockets the process pid holds open,
// from /proc/PID/fd and /proc/PID/net.
func processSockets(pid int) ([]inetSocket, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return nil, err
	}
	inodes := make(map[string]bool)
	for _, fd := range fds {
		link, err := os.Readlink(dir + "/fd/" + fd.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var socks []inetSocket
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		table, err := os.ReadFile(dir + "/net/" + proto)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(table))
		sc.Scan() // the header
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			local, err1 := parseProcAddr(f[1])
			remote, err2 := parseProcAddr(f[2])
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s: bad line %q", proto, sc.Text())
			}
			socks = append(socks, inetSocket{proto: proto, local: local, remote: remote, state: f[3]})
		}
	}
	return socks, nil
}

// parseProcAddr parses an address of /proc/net/tcp and the like:
// "0100007F:1F90". The address is a sequence of 32-bit words, each
// printed in hex as the host reads it.
func parseProcAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("no port in %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address in %q", s)
	}
	ip := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
