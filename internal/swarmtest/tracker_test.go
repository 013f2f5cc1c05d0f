package swarmtest_test

// The independent trackers, checked with hand-made requests rather than
// our own tracker client, so that these tests say what the trackers do.
// Quirks found by running them are listed on the helpers' docs; the ones
// a client most needs to know are checked here:
//
// bittorrent-tracker 11.2.3 (npm):
//   - an announce reply lists the asking peer itself, over HTTP and UDP;
//   - "interval" is the configured interval in whole seconds, rounded up;
//     there is no "min interval";
//   - its UDP connection id is always the protocol magic 0x41727101980;
//   - it keeps peers by address (IP and port), not by peer id.
//
// opentracker (Debian 0.0~git20210823.110868e-3):
//   - it refuses hashes not in its whitelist, with a bencoded failure
//     reason and HTTP 200;
//   - an announce reply lists the asking peer itself;
//   - "interval" is random, 1800 s give or take 180, and cannot be set;
//     "min interval" is half of it; UDP replies carry such an interval too;
//   - compact=0 is refused with HTTP 400 and an HTML page, not bencode;
//   - its UDP connection id is not the magic.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// udpMagic is the protocol id of a BEP 15 connect request.
const udpMagic = 0x41727101980

func TestBittorrentTracker(t *testing.T) {
	httpURL, udpURL := swarmtest.BittorrentTracker(t, 1500*time.Millisecond)
	checkURLs(t, httpURL, udpURL)
	hash := randomHash()

	a := announceHTTP(t, httpURL, hash, peerID('a'), 6001, "")
	if a.Interval != 2 { // 1.5 s rounded up
		t.Errorf("interval %d, want 2", a.Interval)
	}
	if a.MinInterval != 0 {
		t.Errorf("min interval %d, want none", a.MinInterval)
	}
	// Quirk: the asker is in its own peer list.
	if want := []netip.AddrPort{loopback(6001)}; !slices.Equal(a.peers(t), want) {
		t.Errorf("first peer got peers %v, want %v (itself)", a.peers(t), want)
	}

	b := announceHTTP(t, httpURL, hash, peerID('b'), 6002, "")
	checkPeers(t, "second HTTP announce", b.peers(t), 6001, 6002)
	if b.Complete != 2 || b.Incomplete != 0 {
		t.Errorf("complete %d incomplete %d, want 2 and 0", b.Complete, b.Incomplete)
	}

	// Quirk: peers are keyed by address, so a new peer id on a known
	// address replaces the peer there rather than adding one.
	c := announceHTTP(t, httpURL, hash, peerID('c'), 6002, "")
	checkPeers(t, "announce from a known address", c.peers(t), 6001, 6002)

	conn, connID := connectUDP(t, udpURL)
	// Quirk: the connection id is always the magic.
	if connID != udpMagic {
		t.Errorf("UDP connection id %#x, want the magic %#x", connID, udpMagic)
	}
	u := announceUDP(t, conn, connID, hash, peerID('d'), 6003)
	if u.interval != 2 {
		t.Errorf("UDP interval %d, want 2", u.interval)
	}
	checkPeers(t, "UDP announce", u.peers, 6001, 6002, 6003)
	if u.seeders != 3 || u.leechers != 0 {
		t.Errorf("UDP announce: %d seeders and %d leechers, want 3 and 0", u.seeders, u.leechers)
	}
}

func TestOpentracker(t *testing.T) {
	hash, other := randomHash(), randomHash()
	httpURL, udpURL := swarmtest.Opentracker(t, hash)
	checkURLs(t, httpURL, udpURL)

	// Only whitelisted hashes are tracked.
	r := announceHTTP(t, httpURL, other, peerID('x'), 6009, "")
	if !strings.Contains(r.FailureReason, "not authorized") {
		t.Errorf("hash not on the whitelist: failure reason %q, want one saying not authorized", r.FailureReason)
	}

	a := announceHTTP(t, httpURL, hash, peerID('a'), 6001, "")
	// Quirk: a random interval around 30 minutes, min interval half of it.
	t.Logf("opentracker: interval %d, min interval %d", a.Interval, a.MinInterval)
	if a.Interval < 1600 || a.Interval > 2000 || a.MinInterval != a.Interval/2 {
		t.Errorf("interval %d, min interval %d: want 1800 give or take 180, and half of it", a.Interval, a.MinInterval)
	}
	// Quirk: the asker is in its own peer list.
	if want := []netip.AddrPort{loopback(6001)}; !slices.Equal(a.peers(t), want) {
		t.Errorf("first peer got peers %v, want %v (itself)", a.peers(t), want)
	}

	b := announceHTTP(t, httpURL, hash, peerID('b'), 6002, "")
	checkPeers(t, "second HTTP announce", b.peers(t), 6001, 6002)
	if b.Complete != 2 || b.Incomplete != 0 {
		t.Errorf("complete %d incomplete %d, want 2 and 0", b.Complete, b.Incomplete)
	}

	// Quirk: compact=0 is refused, and not with bencode.
	status, body := getHTTP(t, announceQuery(httpURL, hash, peerID('e'), 6005, "&compact=0"))
	t.Logf("opentracker: compact=0: %d %q", status, body)
	if status != http.StatusBadRequest {
		t.Errorf("compact=0: status %d, want 400", status)
	}

	conn, connID := connectUDP(t, udpURL)
	t.Logf("opentracker: UDP connection id %#x", connID)
	u := announceUDP(t, conn, connID, hash, peerID('d'), 6003)
	if u.interval < 1600 || u.interval > 2000 {
		t.Errorf("UDP interval %d, want 1800 give or take 180", u.interval)
	}
	checkPeers(t, "UDP announce", u.peers, 6001, 6002, 6003)
	if u.seeders != 3 || u.leechers != 0 {
		t.Errorf("UDP announce: %d seeders and %d leechers, want 3 and 0", u.seeders, u.leechers)
	}
}

// TestBittorrentTrackerStopsWithStdin checks that the tracker exits when
// its stdin closes, which is what keeps a test killed without cleanup from
// leaving it running.
func TestBittorrentTrackerStopsWithStdin(t *testing.T) {
	node := swarmtest.Tool(t, "node", "nodejs")
	if _, err := os.Stat(filepath.Join("node", "node_modules", "bittorrent-tracker")); err != nil {
		msg := fmt.Sprintf("bittorrent-tracker not installed (%v): run scripts/test.sh, or npm ci --ignore-scripts in node/", err)
		if os.Getenv(swarmtest.RequireEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(node, filepath.Join("node", "tracker.js"), "1000")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 100)
	n, err := stdout.Read(line)
	if err != nil {
		t.Fatalf("reading its ports: %v\n%s", err, stderr.Bytes())
	}
	t.Logf("tracker.js: %s", bytes.TrimSpace(line[:n]))
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, stderr.Bytes())
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("still running 5 s after its stdin closed")
	}
}

func checkURLs(t *testing.T, httpURL, udpURL string) {
	t.Helper()
	h, err := url.Parse(httpURL)
	if err != nil || h.Scheme != "http" || h.Hostname() != "127.0.0.1" || h.Port() == "" || h.Path != "/announce" {
		t.Errorf("HTTP announce URL %q (%v), want http://127.0.0.1:PORT/announce", httpURL, err)
	}
	u, err := url.Parse(udpURL)
	if err != nil || u.Scheme != "udp" || u.Hostname() != "127.0.0.1" || u.Port() == "" {
		t.Errorf("UDP announce URL %q (%v), want udp://127.0.0.1:PORT", udpURL, err)
	}
}

func randomHash() metainfo.Hash {
	var h metainfo.Hash
	rand.Read(h[:])
	return h
}

// peerID returns a 20-byte peer id ending in twelve c's.
func peerID(c byte) [20]byte {
	var id [20]byte
	copy(id[:], "-SW0001-")
	for i := 8; i < len(id); i++ {
		id[i] = c
	}
	return id
}

func loopback(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port)
}

// checkPeers checks that peers are exactly 127.0.0.1 on the given ports,
// in any order.
func checkPeers(t *testing.T, what string, peers []netip.AddrPort, ports ...uint16) {
	t.Helper()
	var want []netip.AddrPort
	for _, p := range ports {
		want = append(want, loopback(p))
	}
	got := slices.Clone(peers)
	slices.SortFunc(got, netip.AddrPort.Compare)
	slices.SortFunc(want, netip.AddrPort.Compare)
	if !slices.Equal(got, want) {
		t.Errorf("%s: peers %v, want %v", what, got, want)
	}
}

// escapeAll percent-encodes every byte of b, as a client may.
func escapeAll(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, "%%%02X", c)
	}
	return s.String()
}

func announceQuery(announce string, hash metainfo.Hash, id [20]byte, port int, extra string) string {
	return fmt.Sprintf("%s?info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=0%s&event=started",
		announce, escapeAll(hash[:]), escapeAll(id[:]), port, extra)
}

func getHTTP(t *testing.T, u string) (int, []byte) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

type announceResponse struct {
	FailureReason string `bencode:"failure reason"`
	Interval      int64  `bencode:"interval"`
	MinInterval   int64  `bencode:"min interval"`
	Complete      int64  `bencode:"complete"`
	Incomplete    int64  `bencode:"incomplete"`
	Peers         []byte `bencode:"peers"`
}

func (r announceResponse) peers(t *testing.T) []netip.AddrPort {
	t.Helper()
	return compactPeers(t, r.Peers)
}

func compactPeers(t *testing.T, b []byte) []netip.AddrPort {
	t.Helper()
	if len(b)%6 != 0 {
		t.Fatalf("compact peers of %d bytes, not a multiple of 6", len(b))
	}
	var peers []netip.AddrPort
	for ; len(b) > 0; b = b[6:] {
		peers = append(peers, netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), binary.BigEndian.Uint16(b[4:6])))
	}
	return peers
}

// announceHTTP makes a compact "started" announce of a seeder and
// decodes the reply, failing the test unless it is HTTP 200 and bencode.
func announceHTTP(t *testing.T, announce string, hash metainfo.Hash, id [20]byte, port int, extra string) announceResponse {
	t.Helper()
	status, body := getHTTP(t, announceQuery(announce, hash, id, port, "&compact=1"+extra))
	if status != http.StatusOK {
		t.Fatalf("announce: HTTP %d: %q", status, body)
	}
	var r announceResponse
	if err := bencode.Unmarshal(body, &r); err != nil {
		t.Fatalf("announce reply %q: %v", body, err)
	}
	return r
}

// connectUDP sends a BEP 15 connect request to the tracker at udpURL
// and returns the connection and the connection id it was given.
func connectUDP(t *testing.T, udpURL string) (net.Conn, uint64) {
	t.Helper()
	u, err := url.Parse(udpURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp4", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := make([]byte, 16)
	binary.BigEndian.PutUint64(req[0:], udpMagic)
	binary.BigEndian.PutUint32(req[8:], 0) // connect
	tid := transactionID()
	binary.BigEndian.PutUint32(req[12:], tid)
	reply := roundTripUDP(t, conn, req)
	if len(reply) != 16 {
		t.Fatalf("connect reply of %d bytes %x, want 16", len(reply), reply)
	}
	if action := binary.BigEndian.Uint32(reply[0:]); action != 0 {
		t.Fatalf("connect reply action %d, want 0: %x", action, reply)
	}
	if got := binary.BigEndian.Uint32(reply[4:]); got != tid {
		t.Fatalf("connect reply transaction id %#x, want %#x", got, tid)
	}
	return conn, binary.BigEndian.Uint64(reply[8:])
}

func transactionID() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

func roundTripUDP(t *testing.T, conn net.Conn, req []byte) []byte {
	t.Helper()
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("UDP reply: %v", err)
	}
	return buf[:n]
}

type udpAnnounceReply struct {
	interval, leechers, seeders uint32
	peers                       []netip.AddrPort
}

// announceUDP makes a BEP 15 "started" announce of a seeder.
func announceUDP(t *testing.T, conn net.Conn, connID uint64, hash metainfo.Hash, id [20]byte, port uint16) udpAnnounceReply {
	t.Helper()
	req := make([]byte, 98)
	binary.BigEndian.PutUint64(req[0:], connID)
	binary.BigEndian.PutUint32(req[8:], 1) // announce
	tid := transactionID()
	binary.BigEndian.PutUint32(req[12:], tid)
	copy(req[16:], hash[:])
	copy(req[36:], id[:])
	// downloaded, left and uploaded (56:80) are 0: a seeder.
	binary.BigEndian.PutUint32(req[80:], 2) // started
	// ip (84) 0: the sender's; key (88) 0.
	binary.BigEndian.PutUint32(req[92:], ^uint32(0)) // num_want -1: default
	binary.BigEndian.PutUint16(req[96:], port)
	reply := roundTripUDP(t, conn, req)
	if len(reply) < 20 {
		t.Fatalf("announce reply of %d bytes %x, want at least 20", len(reply), reply)
	}
	if action := binary.BigEndian.Uint32(reply[0:]); action != 1 {
		t.Fatalf("announce reply action %d, want 1: %q", action, reply)
	}
	if got := binary.BigEndian.Uint32(reply[4:]); got != tid {
		t.Fatalf("announce reply transaction id %#x, want %#x", got, tid)
	}
	return udpAnnounceReply{
		interval: binary.BigEndian.Uint32(reply[8:]),
		leechers: binary.BigEndian.Uint32(reply[12:]),
		seeders:  binary.BigEndian.Uint32(reply[16:]),
		peers:    compactPeers(t, reply[20:]),
	}
}
