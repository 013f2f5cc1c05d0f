// Package server is a BitTorrent tracker: it answers announces and scrapes
// over HTTP (BEP 3, BEP 23 compact peers, BEP 7 IPv6 peers, BEP 48 scrape)
// and over UDP (BEP 15), from one in-memory table of swarms.
//
// A [Server] is made with [New] and served with [Server.ListenAndServe], or
// piecewise: [Server.ServeHTTP] is an [http.Handler] for the paths
// /announce and /scrape, and [Server.ServeUDP] serves a [net.PacketConn].
//
// # Peers and their addresses
//
// A peer is identified by its address and port: the source IP of its
// request with the port it announced. The "ip" parameter of an HTTP
// announce (and the IP field of a UDP announce) is honoured only when the
// request comes from a loopback address, so that a tracker and its clients
// on one machine can register other addresses, while a remote client
// cannot make the tracker hand out somebody else's address. A server
// behind a reverse proxy therefore sees the proxy's address: this package
// does not read X-Forwarded-For.
//
// Peers that have not announced for [Config.PeerTTL] are forgotten. Expiry
// is exact: a swarm is checked whenever it is used, and a sweep run by
// [Server.ListenAndServe], [Server.Serve], [Server.ServeUDP] or
// [Server.RunExpiry] reclaims the memory of swarms nobody asks about.
//
// # Bounds
//
// Everything a client can make the server hold or send is bounded: the
// peers in a reply ([Config.MaxNumWant], and what fits in one UDP
// datagram), the peers and torrents tracked ([Config.MaxPeers]), the
// length of an HTTP query, the torrents in one scrape.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Defaults and limits of [Config].
const (
	DefaultInterval    = 30 * time.Minute
	DefaultMinInterval = time.Minute
	DefaultMaxNumWant  = 50
	MaxNumWantCap      = 200
	DefaultMaxPeers    = 1_000_000
)

// Config configures a [Server]. The zero value is usable: every field has
// a documented default.
type Config struct {
	// Interval is how long clients are asked to wait between announces
	// (default DefaultInterval, 30 minutes). Replies give it in whole
	// seconds, at least one.
	Interval time.Duration
	// MinInterval is the least time clients may wait between announces,
	// sent as HTTP "min interval" (default DefaultMinInterval, one minute,
	// but never more than Interval). UDP replies have no such field.
	MinInterval time.Duration
	// PeerTTL is how long a peer stays in its swarm without announcing
	// (default twice Interval).
	PeerTTL time.Duration
	// MaxNumWant is the most peers one announce reply gives (default
	// DefaultMaxNumWant, 50; at most MaxNumWantCap, 200). A client that
	// asks for fewer gets fewer; one that does not say gets MaxNumWant.
	MaxNumWant int
	// MaxPeers bounds the peers tracked across all torrents, and the
	// torrents (default DefaultMaxPeers). When the table is full, new
	// peers are answered but not recorded.
	MaxPeers int
	// Whitelist, when not nil, decides which torrents are tracked: announces
	// for others are refused and scrapes leave them out. Nil tracks every
	// torrent. It is called with no lock held and must be safe for
	// concurrent use.
	Whitelist func(metainfo.Hash) bool
	// Logger receives the server's logs (nil: none).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.MinInterval <= 0 {
		c.MinInterval = DefaultMinInterval
	}
	c.MinInterval = min(c.MinInterval, c.Interval)
	if c.PeerTTL <= 0 {
		c.PeerTTL = 2 * c.Interval
	}
	if c.MaxNumWant <= 0 {
		c.MaxNumWant = DefaultMaxNumWant
	}
	c.MaxNumWant = min(c.MaxNumWant, MaxNumWantCap)
	if c.MaxPeers <= 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Server is a tracker. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time // the clock; tests replace it
	secret [32]byte         // keys the UDP connection ids

	announces atomic.Uint64 // announces answered without failure
	scrapes   atomic.Uint64 // scrapes answered without failure

	mu       sync.Mutex
	swarms   map[metainfo.Hash]*swarm // guarded by mu, with everything in each swarm
	numPeers int                      // guarded by mu: peers across all swarms
}

// New returns a server with the configuration cfg.
func New(cfg Config) *Server {
	s := &Server{
		cfg:    cfg.withDefaults(),
		now:    time.Now,
		swarms: make(map[metainfo.Hash]*swarm),
	}
	s.log = s.cfg.Logger
	rand.Read(s.secret[:]) // never fails (it crashes the program instead)
	return s
}

// Stats is a snapshot of a server's table and counters.
type Stats struct {
	Torrents  int    // swarms tracked
	Seeders   int    // peers with the whole torrent, across swarms
	Leechers  int    // other peers, across swarms
	Announces uint64 // announces answered, HTTP and UDP, since New
	Scrapes   uint64 // scrapes answered, HTTP and UDP, since New
}

// Stats returns a snapshot of the server's state. Peers that expired
// since their swarm was last used or swept may still be counted.
func (s *Server) Stats() Stats {
	st := Stats{Announces: s.announces.Load(), Scrapes: s.scrapes.Load()}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Torrents = len(s.swarms)
	for _, sw := range s.swarms {
		st.Seeders += sw.seeders
		st.Leechers += len(sw.peers) - sw.seeders
	}
	return st
}

// tracked reports whether the whitelist lets h in.
func (s *Server) tracked(h metainfo.Hash) bool {
	return s.cfg.Whitelist == nil || s.cfg.Whitelist(h)
}

// sweepEvery is how often the expiry sweep runs: half the peer TTL, at
// least a second and at most ten minutes.
func (s *Server) sweepEvery() time.Duration {
	return min(max(s.cfg.PeerTTL/2, time.Second), 10*time.Minute)
}

// RunExpiry removes expired peers and idle swarms periodically until ctx is
// done. [Server.ListenAndServe], [Server.Serve] and [Server.ServeUDP] run it
// themselves; call it when serving [Server.ServeHTTP] from an http.Server
// of your own. Running it twice is harmless. It returns when ctx is done.
func (s *Server) RunExpiry(ctx context.Context) {
	t := time.NewTicker(s.sweepEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// HTTP server limits for [Server.Serve].
const (
	shutdownTimeout   = 5 * time.Second
	readHeaderTimeout = 10 * time.Second
	writeTimeout      = 15 * time.Second
	idleTimeout       = 60 * time.Second
)

// ListenAndServe listens for HTTP on httpAddr and for UDP on udpAddr (an
// empty address turns that protocol off; "127.0.0.1:0" picks a port), logs
// the bound addresses at level Info, and serves both as [Server.Serve] does
// until ctx is done. It returns nil after ctx is done and everything has
// shut down, or the first error that stopped it.
func (s *Server) ListenAndServe(ctx context.Context, httpAddr, udpAddr string) error {
	if httpAddr == "" && udpAddr == "" {
		return errors.New("tracker server: no address to listen on")
	}
	if ctx.Err() != nil {
		return nil
	}
	var lc net.ListenConfig
	var ln net.Listener
	var pc net.PacketConn
	if httpAddr != "" {
		var err error
		if ln, err = lc.Listen(ctx, "tcp", httpAddr); err != nil {
			return fmt.Errorf("tracker server: %w", err)
		}
		s.log.Info("tracker listening", "proto", "http", "addr", ln.Addr().String())
	}
	if udpAddr != "" {
		var err error
		if pc, err = lc.ListenPacket(ctx, "udp", udpAddr); err != nil {
			if ln != nil {
				ln.Close()
			}
			return fmt.Errorf("tracker server: %w", err)
		}
		s.log.Info("tracker listening", "proto", "udp", "addr", pc.LocalAddr().String())
	}
	return s.Serve(ctx, ln, pc)
}

// Serve serves HTTP on ln and UDP on pc (either may be nil) and runs the
// expiry sweep, until ctx is done or one of them fails. It takes ownership
// of ln and pc and closes them; HTTP shuts down gracefully, waiting a few
// seconds for requests under way. It returns nil when stopped by ctx, else
// the error that stopped it; it returns only after all its goroutines have.
func (s *Server) Serve(ctx context.Context, ln net.Listener, pc net.PacketConn) error {
	if ln == nil && pc == nil {
		return errors.New("tracker server: nothing to serve")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	wg.Go(func() { s.RunExpiry(ctx) })
	if ln != nil {
		hs := &http.Server{
			Handler:           s,
			ReadHeaderTimeout: readHeaderTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxQueryLen + 16<<10,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return ctx },
		}
		wg.Go(func() {
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("tracker server: http: %w", err))
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer scancel()
			if err := hs.Shutdown(sctx); err != nil {
				hs.Close()
			}
		})
	}
	if pc != nil {
		wg.Go(func() {
			if err := s.serveUDP(ctx, pc); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	return firstErr
}
