//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/tracker/server"
)

// front is the tracker in the torrent: an HTTP server on 127.0.0.1 in
// this process (HTTP only: aria2c announces only over HTTP when its DHT is
// off) that hands each announce to one of two places:
//
//   - the leecher's announces (told apart by their port parameter, the
//     port the harness gave aria2c) are answered here, with the one
//     seeder being measured and no one else, and are not recorded;
//   - every other announce goes to a tracker (tracker/server) that is
//     made afresh for each download, so that it lists only the seeder
//     started for that download.
//
// So the leecher has exactly one peer, the seeder, and one connection to
// it; and the seeder never learns the leecher's address, so it cannot
// open a second connection to it (qBittorrent and libtorrent connect out
// to leechers a tracker gives them, and aria2c re-announces every 2 s).
// Seeders of earlier downloads, stopped by then, are forgotten with their
// tracker.
type front struct {
	announce string // http://127.0.0.1:PORT/announce
	hs       *http.Server
	served   chan error

	mu        sync.Mutex
	srv       *server.Server // guarded by mu: this download's tracker
	leechPort int            // guarded by mu: 0 before the first download
	seeder    netip.AddrPort // guarded by mu: the seeder the leecher is given
	leechAsks int            // guarded by mu: the leecher's announces
}

// trackerInterval is the announce interval asked of the seeders.
// libtorrent (and qBittorrent on it) waits at least 5 minutes between
// announces whatever the tracker says; every seeder announces when it
// starts, which is all the harness waits for.
const trackerInterval = 5 * time.Second

func newTracker() *server.Server {
	return server.New(server.Config{Interval: trackerInterval, MinInterval: time.Second, PeerTTL: time.Hour})
}

// startFront starts the tracker on a free port of 127.0.0.1.
func startFront() (*front, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &front{
		announce: "http://" + ln.Addr().String() + "/announce",
		served:   make(chan error, 1),
		srv:      newTracker(),
	}
	f.hs = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go func() { f.served <- f.hs.Serve(ln) }()
	return f, nil
}

// close stops the server.
func (f *front) close() {
	f.hs.Close()
	<-f.served
}

// reset makes a fresh tracker for the next download, whose leecher will
// listen on leechPort, and forgets the seeder.
func (f *front) reset(leechPort int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.srv, f.leechPort, f.seeder, f.leechAsks = newTracker(), leechPort, netip.AddrPort{}, 0
}

// setSeeder sets the peer the leecher is given.
func (f *front) setSeeder(a netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seeder = a
}

// leecherAnnounces returns how many announces of this download's leecher
// were answered.
func (f *front) leecherAnnounces() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leechAsks
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	srv, port, seeder := f.srv, f.leechPort, f.seeder
	leecher := r.URL.Path == "/announce" && port != 0 && r.URL.Query().Get("port") == strconv.Itoa(port)
	if leecher {
		f.leechAsks++
	}
	f.mu.Unlock()
	if !leecher {
		srv.ServeHTTP(w, r)
		return
	}
	reply, err := leecherReply(seeder)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write(reply)
}

// leecherReply is the announce reply that gives the leecher the seeder
// at addr alone, as a compact peer (BEP 23).
func leecherReply(addr netip.AddrPort) ([]byte, error) {
	type reply struct {
		Complete    int    `bencode:"complete"`
		Incomplete  int    `bencode:"incomplete"`
		Interval    int    `bencode:"interval"`
		MinInterval int    `bencode:"min interval"`
		Peers       []byte `bencode:"peers"`
	}
	rep := reply{Interval: int(trackerInterval / time.Second), MinInterval: 1, Peers: []byte{}}
	if addr.IsValid() {
		if !addr.Addr().Is4() {
			return nil, fmt.Errorf("seeder %v: not an IPv4 address", addr)
		}
		ip := addr.Addr().As4()
		rep.Complete = 1
		rep.Peers = append(ip[:], byte(addr.Port()>>8), byte(addr.Port()))
	}
	return bencode.Marshal(rep)
}

// waitAnnounced waits, up to timeout, until this download's tracker
// lists a peer: the seeder has announced. It returns whether the tracker
// lists it as a seeder, waiting up to reannounce more for that: a client
// that announces while it still checks its data says it has everything
// left and is listed as a leecher until it announces again (aria2c does
// every 2 s; qBittorrent and libtorrent not for minutes). The leecher is
// given the seeder whatever the tracker lists.
func (f *front) waitAnnounced(ctx context.Context, timeout, reannounce time.Duration) (asSeeder bool, err error) {
	f.mu.Lock()
	srv := f.srv
	f.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		st := srv.Stats()
		if st.Seeders > 0 {
			return true, nil
		}
		if t := time.Now().Add(reannounce); st.Leechers > 0 && t.Before(deadline) {
			deadline = t
		}
		if time.Now().After(deadline) {
			if st.Leechers > 0 {
				return false, nil
			}
			return false, fmt.Errorf("the seeder did not announce to the tracker within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
