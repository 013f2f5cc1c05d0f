package aiotorrent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aiotorrent/aiotorrent/dht"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
	"github.com/aiotorrent/aiotorrent/storage"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// Config configures a Client. The zero value is usable: every field has a
// documented default.
type Config struct {
	// ListenAddr is where the client accepts peer connections
	// ("host:port"). Empty means ":6881", or a free port if 6881 is taken.
	// "-" means do not listen at all (outgoing connections only).
	ListenAddr string
	// PeerID is the client's peer id; zero means a random one starting
	// "-AT0001-".
	PeerID [20]byte
	// DataDir is the folder torrents are downloaded into unless a download
	// says otherwise. Empty means the current folder.
	DataDir string
	// MaxConns bounds the peer connections of the whole client (default
	// 200); MaxConnsPerTorrent those of each torrent (default 50).
	MaxConns           int
	MaxConnsPerTorrent int
	// UploadSlots is how many interested peers each torrent uploads to at
	// once, chosen every 10 s as those that send us data fastest (while
	// downloading) or take our data fastest (while seeding); one more
	// peer, drawn at random every 30 s, is unchoked on top (default 4).
	UploadSlots int
	// UploadLimit and DownloadLimit bound the client's payload rates, in
	// bytes per second (default 0: unlimited). Torrent.SetUploadLimit and
	// Torrent.SetDownloadLimit bound one torrent's.
	UploadLimit, DownloadLimit int64
	// ReadCacheBytes bounds each torrent's cache of data read from disk
	// for uploading, so that peers fetching the same piece cost one read
	// (default 16 MiB).
	ReadCacheBytes int64
	// BufferBytes bounds the memory of each torrent's download: blocks
	// asked for plus blocks held in pieces being fetched or verified
	// (default 16 MiB, and never less than 4 pieces).
	BufferBytes int64
	// StateDir is the folder where each torrent downloaded to disk keeps
	// its resume record: which pieces are verified and durable, and what
	// its files looked like then. A torrent started again whose files are
	// as recorded (same sizes and modification times) trusts the record
	// instead of hashing everything; files that changed are hashed again.
	// Records are written every 30 s while pieces arrive, as files
	// complete and when the torrent stops. Empty means DefaultStateDir();
	// "-" keeps no records (every start hashes what is on disk).
	StateDir string
	// NoTrackers disables announcing to trackers (peers then come only from
	// Torrent.AddPeers and incoming connections).
	NoTrackers bool
	// NoDHT turns the DHT (BEP 5) off. By default the client runs a DHT
	// node: torrents that are not private find peers on it and announce
	// themselves there, which is how a magnet link without trackers finds
	// its swarm.
	NoDHT bool
	// DHTAddr is the UDP address of the DHT node. Empty means the address
	// peers connect to over TCP (ListenAddr) with the same port number,
	// or a free port if that one is taken.
	DHTAddr string
	// DHTBootstrap lists the "host:port" nodes to join the DHT through
	// when the routing table kept in the state folder has none. Nil means
	// the public routers (dht.DefaultBootstrap); an empty, non-nil list
	// means none (the node then learns nodes only from peers' PORT
	// messages and from Client.DHT().AddNode).
	DHTBootstrap []string
	// TrackerOptions configure the tracker clients.
	TrackerOptions tracker.Options
	// DialTimeout bounds connecting to a peer and its handshake (default
	// 10 s). RequestTimeout is how long a peer may sit on our requests
	// without sending a block before it counts as snubbing us (default
	// 30 s). IdleTimeout drops a peer that sends nothing at all, not even
	// a keep-alive (default 3 min).
	DialTimeout    time.Duration
	RequestTimeout time.Duration
	IdleTimeout    time.Duration
	// Logger receives the client's logs; nil means none.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxConns <= 0 {
		c.MaxConns = 200
	}
	if c.MaxConnsPerTorrent <= 0 {
		c.MaxConnsPerTorrent = 50
	}
	if c.BufferBytes <= 0 {
		c.BufferBytes = 16 << 20
	}
	if c.ReadCacheBytes <= 0 {
		c.ReadCacheBytes = 16 << 20
	}
	if c.UploadSlots <= 0 {
		c.UploadSlots = 4
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 3 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.PeerID == ([20]byte{}) {
		c.PeerID = NewPeerID()
	}
}

// NewPeerID returns a random peer id in the Azureus style, "-AT0001-"
// followed by 12 random bytes.
func NewPeerID() [20]byte {
	var id [20]byte
	copy(id[:], "-AT0001-")
	rand.Read(id[8:])
	return id
}

// ErrClosed is returned by operations on a closed Client or Torrent.
var ErrClosed = errors.New("closed")

// Client is a BitTorrent session: it owns the listening port, the peer id,
// the connection limits and any number of torrents. A Client is safe for
// concurrent use.
type Client struct {
	cfg    Config
	ln     net.Listener
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	conns  connSlots // open peer connections: the global limit
	// stateDir is where resume records are kept, "" for none.
	stateDir string
	// The DHT node (nil with Config.NoDHT), its socket, the unlock of the
	// state folder's DHT lock (nil if another client holds it) and the
	// slots of pings of peers' DHT ports.
	dht       *dht.Server
	dhtConn   net.PacketConn
	dhtUnlock func()
	dhtPings  chan struct{}
	// wrapStore, set by tests, wraps the storage of each torrent on disk.
	wrapStore func(*storage.File) storage.Storage

	// Changeable at run time.
	perTorrent atomic.Int64 // connections per torrent
	slots      atomic.Int64 // upload slots per torrent
	up, down   *limiter

	mu       sync.Mutex
	torrents map[metainfo.Hash]*Torrent // guarded by mu
	closed   bool                       // guarded by mu
	banned   map[banKey]bool            // guarded by mu
}

// NewClient starts a Client: it listens for peers unless told not to.
func NewClient(cfg Config) (*Client, error) {
	cfg.setDefaults()
	c := &Client{
		cfg:      cfg,
		torrents: make(map[metainfo.Hash]*Torrent),
		banned:   make(map[banKey]bool),
		up:       newLimiter(cfg.UploadLimit),
		down:     newLimiter(cfg.DownloadLimit),
	}
	c.stateDir = resolveStateDir(cfg.StateDir, cfg.Logger)
	c.conns.max.Store(int64(cfg.MaxConns))
	c.perTorrent.Store(int64(cfg.MaxConnsPerTorrent))
	c.slots.Store(int64(cfg.UploadSlots))
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.ListenAddr != "-" {
		addr := cfg.ListenAddr
		if addr == "" {
			addr = ":6881"
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil && cfg.ListenAddr == "" {
			ln, err = net.Listen("tcp", ":0")
		}
		if err != nil {
			c.cancel()
			return nil, fmt.Errorf("listen for peers: %w", err)
		}
		c.ln = ln
		c.wg.Add(1)
		go c.accept()
	}
	if err := c.startDHT(); err != nil {
		c.cancel()
		if c.ln != nil {
			c.ln.Close()
		}
		c.wg.Wait()
		return nil, err
	}
	return c, nil
}

var (
	defaultClientMu sync.Mutex
	defaultClient   *Client
)

// DefaultClient returns the Client that torrents from Open and FromMetaInfo
// use, starting it (with a zero Config) on first use.
func DefaultClient() (*Client, error) {
	defaultClientMu.Lock()
	defer defaultClientMu.Unlock()
	if defaultClient == nil {
		c, err := NewClient(Config{})
		if err != nil {
			return nil, err
		}
		defaultClient = c
	}
	return defaultClient, nil
}

// Addr returns the address the client accepts peers on, or nil.
func (c *Client) Addr() net.Addr {
	if c.ln == nil {
		return nil
	}
	return c.ln.Addr()
}

// port is the listening port to announce (0 when not listening).
func (c *Client) port() uint16 {
	if a, ok := c.Addr().(*net.TCPAddr); ok {
		return uint16(a.Port)
	}
	return 0
}

// PeerID returns the client's peer id.
func (c *Client) PeerID() [20]byte { return c.cfg.PeerID }

// Open adds a torrent from a .torrent file path or a magnet link. A
// torrent downloaded before with the same state folder (Config.StateDir)
// left its metainfo there: a magnet link of it has its metadata at once.
func (c *Client) Open(ctx context.Context, pathOrMagnet string) (*Torrent, error) {
	t, err := Open(ctx, pathOrMagnet)
	if err != nil {
		return nil, err
	}
	if t.meta() == nil {
		// A magnet link of a torrent this client's state folder has seen
		// before: its metainfo was kept there.
		t.mi.Store(c.cachedMetadata(t.infoHash))
	}
	return c.add(t)
}

// Add adds a torrent from parsed metadata. Adding a torrent the client
// already has returns the existing one.
func (c *Client) Add(mi *metainfo.MetaInfo) (*Torrent, error) {
	return c.add(FromMetaInfo(mi))
}

func (c *Client) add(t *Torrent) (*Torrent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("client: %w", ErrClosed)
	}
	if old, ok := c.torrents[t.infoHash]; ok {
		return old, nil
	}
	t.client = c
	c.torrents[t.infoHash] = t
	return t, nil
}

// Torrents returns the client's torrents.
func (c *Client) Torrents() []*Torrent {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := make([]*Torrent, 0, len(c.torrents))
	for _, t := range c.torrents {
		ts = append(ts, t)
	}
	return ts
}

// remove forgets a torrent once it is closed.
func (c *Client) remove(t *Torrent) {
	c.mu.Lock()
	if c.torrents[t.infoHash] == t {
		delete(c.torrents, t.infoHash)
	}
	c.mu.Unlock()
}

// Close stops every torrent (telling trackers), closes every connection
// and the listener, and waits for all of it.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ts := make([]*Torrent, 0, len(c.torrents))
	for _, t := range c.torrents {
		ts = append(ts, t)
	}
	c.mu.Unlock()
	var errs []error
	for _, t := range ts {
		errs = append(errs, t.Close())
	}
	c.cancel()
	if c.ln != nil {
		c.ln.Close()
	}
	c.wg.Wait()
	return errors.Join(errs...)
}

// banKey is what a ban applies to: an IP address, or on loopback (where
// every local program shares one address) an address and port, and a
// peer id.
type banKey struct {
	addr netip.AddrPort // port 0: the whole address
	id   [20]byte
}

// ban records a peer that sent bad data: its address (with its port on
// loopback) and its peer id are never accepted again.
func (c *Client) ban(addr netip.AddrPort, id [20]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if addr.Addr().IsLoopback() {
		c.banned[banKey{addr: addr}] = true
	} else {
		c.banned[banKey{addr: netip.AddrPortFrom(addr.Addr(), 0)}] = true
	}
	if id != ([20]byte{}) {
		c.banned[banKey{id: id}] = true
	}
}

// isBanned reports whether any peer at addr (on any port) is banned.
func (c *Client) isBanned(addr netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.banned {
		if k.addr.IsValid() && k.addr.Addr() == addr {
			return true
		}
	}
	return false
}

// isBannedPeer reports a banned peer; id may be zero when not known yet.
func (c *Client) isBannedPeer(addr netip.AddrPort, id [20]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.banned[banKey{addr: netip.AddrPortFrom(addr.Addr(), 0)}] || c.banned[banKey{addr: addr}] ||
		(id != ([20]byte{}) && c.banned[banKey{id: id}])
}

// acquireConn takes a global connection slot, or reports none free.
func (c *Client) acquireConn() bool { return c.conns.acquire() }

func (c *Client) releaseConn() { c.conns.release() }

// accept takes incoming connections until the listener closes.
func (c *Client) accept() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			if c.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			c.cfg.Logger.Warn("accept peer", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !c.acquireConn() {
			conn.Close()
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if !c.handleIncoming(conn) {
				conn.Close()
				c.releaseConn()
			}
		}()
	}
}

// handleIncoming reads an incoming handshake, finds its torrent and hands
// the connection over. It reports whether the torrent took it.
func (c *Client) handleIncoming(conn net.Conn) bool {
	addr := addrPortOf(conn.RemoteAddr())
	if c.isBannedPeer(addr, [20]byte{}) {
		return false
	}
	conn.SetDeadline(time.Now().Add(c.cfg.DialTimeout))
	res, hash, err := peer.ReadHandshakeStart(conn)
	if err != nil {
		c.cfg.Logger.Debug("incoming handshake", "addr", addr, "err", err)
		return false
	}
	c.mu.Lock()
	t := c.torrents[hash]
	c.mu.Unlock()
	if t == nil {
		return false
	}
	// A running torrent takes the peer; a magnet link's torrent without
	// its metadata yet asks it for the metadata, and keeps the connection
	// for the download.
	e := t.running()
	var fetch *metaFetch
	h := c.handshake(hash, false)
	if e != nil {
		h = e.handshake()
	} else if fetch = t.metaFetching(); fetch == nil {
		return false
	}
	if err := peer.WriteHandshake(conn, h); err != nil {
		return false
	}
	id, err := peer.ReadPeerID(conn)
	if err != nil || id == c.cfg.PeerID {
		return false
	}
	conn.SetDeadline(time.Time{})
	if e != nil {
		return e.addConn(conn, addr, id, res, false)
	}
	if fetch.accept(conn, addr, id, res) {
		c.releaseConn() // the fetch's connections take no slot until the download adopts them
		return true
	}
	return false
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
