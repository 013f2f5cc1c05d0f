//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent/tracker/server"
)

// trackerInterval is the announce interval the tracker asks for; every
// client announces when it starts, which is what is measured.
const trackerInterval = 5 * time.Second

// tracker is the tracker of the "tracker" magnet links and of the
// torrent the seeders announce to: tracker/server, over HTTP on
// 127.0.0.1 in this process, with a front that notes when each client's
// first announce arrives, told apart by the port it announces.
type tracker struct {
	announce string // http://127.0.0.1:PORT/announce
	srv      *server.Server
	hs       *http.Server
	served   chan error

	mu       sync.Mutex
	first    map[int]time.Time // guarded by mu: first announce of each port being watched
	leftZero int               // guarded by mu: announces of ports watched that said left=0
}

func startTracker() (*tracker, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &tracker{
		announce: "http://" + ln.Addr().String() + "/announce",
		srv:      server.New(server.Config{Interval: trackerInterval, MinInterval: time.Second, PeerTTL: time.Hour}),
		served:   make(chan error, 1),
		first:    map[int]time.Time{},
	}
	t.hs = &http.Server{Handler: t, ReadHeaderTimeout: 10 * time.Second}
	go func() { t.served <- t.hs.Serve(ln) }()
	return t, nil
}

func (t *tracker) close() {
	t.hs.Close()
	<-t.served
}

// ServeHTTP notes the first announce of each port watched, and passes
// every request to the tracker; an announce of a port watched (a client
// measured) that says left=0 is passed on as left=1. aria2c announces
// left=0 for a magnet link, whose size it does not know yet, and
// tracker/server gives no seeders to a seeder: aria2c would never get a
// peer. Ours announces left=1 then, for the same
// reason.
func (t *tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/announce" {
		now := time.Now()
		if port, err := strconv.Atoi(r.URL.Query().Get("port")); err == nil {
			t.mu.Lock()
			at, watched := t.first[port]
			if watched && at.IsZero() {
				t.first[port] = now
			}
			if watched {
				if q, ok := leftOne(r.URL.RawQuery); ok {
					r.URL.RawQuery = q
					t.leftZero++
				}
			}
			t.mu.Unlock()
		}
	}
	t.srv.ServeHTTP(w, r)
}

// leftOne returns the raw query q with its parameter left=0 made left=1,
// and whether it had one.
func leftOne(q string) (string, bool) {
	params := strings.Split(q, "&")
	found := false
	for i, p := range params {
		if p == "left=0" {
			params[i], found = "left=1", true
		}
	}
	return strings.Join(params, "&"), found
}

// leftZeros returns how many announces of clients measured said left=0.
func (t *tracker) leftZeros() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.leftZero
}

// watch starts noting the first announce of port (forgetting an earlier
// one), and returns a function that returns it, zero if none came, and
// stops watching.
func (t *tracker) watch(port int) func() time.Time {
	t.mu.Lock()
	t.first[port] = time.Time{}
	t.mu.Unlock()
	return func() time.Time {
		t.mu.Lock()
		defer t.mu.Unlock()
		at := t.first[port]
		delete(t.first, port)
		return at
	}
}

// waitSeeders waits until the tracker lists n peers: the seeders, which
// announce once they have checked their data (one that announced while
// checking is listed as a leecher until it announces again, but is given
// to clients all the same).
func (t *tracker) waitSeeders(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		st := t.srv.Stats()
		if st.Seeders+st.Leechers >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the tracker lists %d seeders and %d leechers, want the %d seeders: %w", st.Seeders, st.Leechers, n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stats returns the tracker's table.
func (t *tracker) stats() server.Stats { return t.srv.Stats() }
