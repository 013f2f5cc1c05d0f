package dht

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// DefaultBootstrap lists well-known public routers to bootstrap from. The
// package never uses it by itself: pass it as Config.Bootstrap to join the
// public DHT.
var DefaultBootstrap = []string{
	"router.bittorrent.com:6881",
	"dht.transmissionbt.com:6881",
	"router.utorrent.com:6881",
	"dht.libtorrent.org:25401",
}

// Alpha is the number of queries a lookup keeps in flight.
const Alpha = 3

// Errors returned by Server.
var (
	ErrClosed   = errors.New("dht: server closed")
	ErrTimeout  = errors.New("dht: query timed out")
	ErrNoNodes  = errors.New("dht: no nodes to query")
	ErrAnnounce = errors.New("dht: no node accepted the announce")
	ErrFiltered = errors.New("dht: address refused by Config.Filter")
)

// Config configures a Server. The zero value listens on an ephemeral UDP
// port of all interfaces and bootstraps from nothing.
type Config struct {
	// ID is the node id; zero means random.
	ID ID
	// Conn is the socket to serve on. If nil, the Server listens on Addr
	// and closes the socket on Close; a Conn given here is not closed (Close
	// sets its read deadline to unblock the reader).
	Conn net.PacketConn
	// Addr is the UDP address to listen on when Conn is nil ("" means ":0").
	Addr string
	// Bootstrap lists "host:port" addresses to join the DHT through when the
	// routing table is short of nodes. Nil means none; see DefaultBootstrap.
	Bootstrap []string
	// Nodes are contacts saved from an earlier run (Server.Nodes), tried
	// before Bootstrap.
	Nodes []Node
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// Filter, if set, says which addresses the server may exchange
	// datagrams with: nothing is sent to an address it refuses (the query
	// fails with ErrFiltered) and nothing received from one is read. An
	// IP block list goes here, or a test's loopback-only rule.
	Filter func(netip.AddrPort) bool

	// QueryTimeout bounds each query (0: 2s).
	QueryTimeout time.Duration
	// MaxOutstanding bounds the queries in flight at once (0: 256).
	MaxOutstanding int
	// RateLimit bounds the queries answered per source IP, per second
	// (0: 20; rate.Inf: unlimited), with RateBurst (0: 50).
	RateLimit rate.Limit
	RateBurst int

	// PeerTTL is how long an announced peer is kept (0: 30 min).
	PeerTTL time.Duration
	// MaxPeersPerHash (0: 200), MaxHashes (0: 4096) and MaxPeers (0: 65536)
	// bound the announced peers stored.
	MaxPeersPerHash int
	MaxHashes       int
	MaxPeers        int
}

func (c Config) withDefaults() Config {
	if c.ID == (ID{}) {
		c.ID = RandomID()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = 2 * time.Second
	}
	def(&c.MaxOutstanding, 256)
	if c.RateLimit <= 0 {
		c.RateLimit = 20
	}
	def(&c.RateBurst, 50)
	if c.PeerTTL <= 0 {
		c.PeerTTL = 30 * time.Minute
	}
	def(&c.MaxPeersPerHash, 200)
	def(&c.MaxHashes, 4096)
	def(&c.MaxPeers, 65536)
	return c
}

// Internal bounds.
const (
	tokenRotation    = 5 * time.Minute // a token secret's lifetime; the previous one is still accepted
	maxLimiters      = 8192            // per-IP rate limiters kept
	maxValuesV4      = 50              // peers in one get_peers reply
	maxValuesV6      = 25
	maxLookupQueries = 200   // queries one lookup may send
	maxLookupCands   = 8 * K // candidates a lookup keeps
	maxLookupPeers   = 2000  // peers one lookup collects
	maintainInterval = time.Minute
)

// Stats counts what a Server dropped and did.
type Stats struct {
	Malformed   uint64 // datagrams that did not parse
	Oversized   uint64 // datagrams larger than MaxPacketSize
	Unsolicited uint64 // responses to no query of ours
	RateLimited uint64 // queries refused by the per-IP limit
	Answered    uint64 // queries answered
	Sent        uint64 // queries sent
}

// Server is a DHT node (BEP 5): it answers queries on its UDP socket and
// runs lookups and announces for its caller. Its methods are safe for
// concurrent use.
type Server struct {
	cfg       Config
	id        ID
	conn      net.PacketConn
	ownConn   bool
	local     netip.AddrPort
	log       *slog.Logger
	sem       chan struct{} // one slot per outstanding query
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	malformed, oversized, unsolicited, rateLimited, answered, sent atomic.Uint64

	mu          sync.Mutex
	table       *Table                       // guarded by mu
	pending     map[string]*call             // guarded by mu; by transaction id
	limiters    map[netip.Addr]*rate.Limiter // guarded by mu
	peers       *peerStore                   // guarded by mu
	secret      [2][16]byte                  // guarded by mu; current and previous token secrets
	rotated     time.Time                    // guarded by mu; when secret[0] was made
	resolved    []Node                       // guarded by mu; bootstrap addresses, ids unknown
	resolvedErr error                        // guarded by mu
}

type call struct {
	addr netip.AddrPort
	ch   chan Msg // buffered; receives the one reply
}

// NewServer starts a Server: it opens the socket if Config.Conn is nil and
// starts answering queries. It contacts no one until asked to (Bootstrap or
// a lookup).
func NewServer(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		id:       cfg.ID,
		conn:     cfg.Conn,
		log:      cfg.Logger,
		sem:      make(chan struct{}, cfg.MaxOutstanding),
		table:    NewTable(cfg.ID),
		pending:  map[string]*call{},
		limiters: map[netip.Addr]*rate.Limiter{},
		peers:    newPeerStore(cfg.MaxPeersPerHash, cfg.MaxHashes, cfg.MaxPeers, cfg.PeerTTL),
	}
	if s.conn == nil {
		addr := cfg.Addr
		if addr == "" {
			addr = ":0"
		}
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("dht: listen %s: %w", addr, err)
		}
		s.conn, s.ownConn = c, true
	}
	if ua, ok := s.conn.LocalAddr().(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		s.local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	rand.Read(s.secret[0][:])
	rand.Read(s.secret[1][:])
	s.rotated = time.Now()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.readLoop()
	go s.maintain()
	return s, nil
}

// ID returns the server's node id.
func (s *Server) ID() ID { return s.id }

// Addr returns the socket's local address.
func (s *Server) Addr() net.Addr { return s.conn.LocalAddr() }

// Close stops the server and waits for its goroutines. Queries in flight
// return ErrClosed.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.cancel()
		if s.ownConn {
			err = s.conn.Close()
		} else {
			err = s.conn.SetReadDeadline(time.Now())
		}
		s.wg.Wait()
	})
	return err
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Malformed:   s.malformed.Load(),
		Oversized:   s.oversized.Load(),
		Unsolicited: s.unsolicited.Load(),
		RateLimited: s.rateLimited.Load(),
		Answered:    s.answered.Load(),
		Sent:        s.sent.Load(),
	}
}

// Nodes returns the routing table's good and questionable nodes, to save
// and pass back as Config.Nodes on the next start.
func (s *Server) Nodes() []Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table.Nodes(time.Now())
}

// NumNodes returns how many nodes the routing table holds.
func (s *Server) NumNodes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table.Len()
}

// AddNode pings addr and, if it answers, adds it to the routing table. It
// is how a peer's DHT port (the PORT message of BEP 5) joins the table.
func (s *Server) AddNode(ctx context.Context, addr netip.AddrPort) error {
	_, err := s.Ping(ctx, addr)
	return err
}

func canon(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (s *Server) readLoop() {
	defer s.wg.Done()
	buf := make([]byte, MaxPacketSize+1)
	for {
		n, addr, err := s.conn.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dht: read", "err", err)
			continue
		}
		if n > MaxPacketSize {
			s.oversized.Add(1)
			continue
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		from := canon(ua.AddrPort())
		if !from.IsValid() || from.Port() == 0 || (s.cfg.Filter != nil && !s.cfg.Filter(from)) {
			continue
		}
		s.handle(buf[:n], from)
	}
}

func (s *Server) handle(b []byte, from netip.AddrPort) {
	m, err := ParseMsg(b)
	if err != nil {
		s.malformed.Add(1)
		s.log.Debug("dht: malformed packet", "from", from, "err", err)
		return
	}
	if m.Kind == KindQuery {
		if !s.allow(from.Addr()) {
			s.rateLimited.Add(1)
			return
		}
		s.answer(m, from)
		return
	}
	s.mu.Lock()
	c := s.pending[m.TxID]
	if c == nil || c.addr != from {
		s.mu.Unlock()
		s.unsolicited.Add(1)
		return
	}
	delete(s.pending, m.TxID)
	s.mu.Unlock()
	c.ch <- m
}

func (s *Server) allow(ip netip.Addr) bool {
	if s.cfg.RateLimit == rate.Inf {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[ip]
	if l == nil {
		if len(s.limiters) >= maxLimiters {
			for k := range s.limiters { // evict an arbitrary one
				delete(s.limiters, k)
				break
			}
		}
		l = rate.NewLimiter(s.cfg.RateLimit, s.cfg.RateBurst)
		s.limiters[ip] = l
	}
	return l.Allow()
}

// tokenLocked returns the token for ip under secret i (0 current, 1 previous).
// The caller holds mu.
func (s *Server) tokenLocked(ip netip.Addr, i int, now time.Time) string {
	if d := now.Sub(s.rotated); d >= tokenRotation {
		if d >= 2*tokenRotation {
			rand.Read(s.secret[1][:])
		} else {
			s.secret[1] = s.secret[0]
		}
		rand.Read(s.secret[0][:])
		s.rotated = now
	}
	h := hmac.New(sha256.New, s.secret[i][:])
	h.Write(ip.Unmap().AsSlice())
	return string(h.Sum(nil)[:8])
}

func (s *Server) validTokenLocked(tok string, ip netip.Addr, now time.Time) bool {
	for i := range 2 {
		if hmac.Equal([]byte(tok), []byte(s.tokenLocked(ip, i, now))) {
			return true
		}
	}
	return false
}

// answer replies to query m from from.
func (s *Server) answer(m Msg, from netip.AddrPort) {
	now := time.Now()
	reply := Msg{TxID: m.TxID, Kind: KindResponse, Reply: Reply{ID: s.id}}
	s.mu.Lock()
	if !m.ReadOnly {
		s.table.Seen(Node{ID: m.Args.ID, Addr: from}, false, now)
	}
	switch m.Method {
	case MethodPing:
	case MethodFindNode:
		reply.Reply.Nodes = s.table.Closest(m.Args.Target, K, from.Addr(), now)
	case MethodGetPeers:
		reply.Reply.Token = s.tokenLocked(from.Addr(), 0, now)
		n := maxValuesV4
		if !from.Addr().Is4() {
			n = maxValuesV6
		}
		reply.Reply.Values = s.peers.get(m.Args.InfoHash, from.Addr(), n, now)
		reply.Reply.Nodes = s.table.Closest(m.Args.InfoHash, K, from.Addr(), now)
	case MethodAnnouncePeer:
		if !s.validTokenLocked(m.Args.Token, from.Addr(), now) {
			reply = Msg{TxID: m.TxID, Kind: KindError, Err: &Error{Code: CodeProtocol, Msg: "bad token"}}
			break
		}
		port := m.Args.Port
		if m.Args.ImpliedPort {
			port = from.Port()
		}
		s.peers.add(m.Args.InfoHash, netip.AddrPortFrom(from.Addr(), port), now)
	default:
		reply = Msg{TxID: m.TxID, Kind: KindError, Err: &Error{Code: CodeMethodUnknown, Msg: "method unknown"}}
	}
	s.mu.Unlock()
	b, err := reply.Marshal()
	for err == nil && len(b) > maxSendSize && len(reply.Reply.Values) > 0 {
		reply.Reply.Values = reply.Reply.Values[:len(reply.Reply.Values)/2]
		b, err = reply.Marshal()
	}
	if err != nil {
		s.log.Debug("dht: encode reply", "err", err)
		return
	}
	s.answered.Add(1)
	s.send(b, from)
}

func (s *Server) send(b []byte, to netip.AddrPort) error {
	_, err := s.conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

// query sends one query to n and waits for its reply. A response updates
// the routing table; a timeout counts as a failure of n. A KRPC error
// reply is returned as *Error.
func (s *Server) query(ctx context.Context, n Node, method string, args Args) (Msg, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return Msg{}, ctx.Err()
	case <-s.ctx.Done():
		return Msg{}, ErrClosed
	}
	defer func() { <-s.sem }()

	args.ID = s.id
	c := &call{addr: canon(n.Addr), ch: make(chan Msg, 1)}
	if s.cfg.Filter != nil && !s.cfg.Filter(c.addr) {
		return Msg{}, fmt.Errorf("dht: %s %s: %w", method, c.addr, ErrFiltered)
	}
	var tid string
	s.mu.Lock()
	for {
		var b [4]byte
		rand.Read(b[:])
		tid = string(b[:])
		if s.pending[tid] == nil {
			break
		}
	}
	s.pending[tid] = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, tid)
		s.mu.Unlock()
	}()

	q := Msg{TxID: tid, Kind: KindQuery, Method: method, Args: args}
	b, err := q.Marshal()
	if err != nil {
		return Msg{}, err
	}
	s.sent.Add(1)
	if err := s.send(b, c.addr); err != nil {
		return Msg{}, fmt.Errorf("dht: %s %s: %w", method, c.addr, err)
	}
	t := time.NewTimer(s.cfg.QueryTimeout)
	defer t.Stop()
	select {
	case m := <-c.ch:
		now := time.Now()
		if m.Kind == KindError {
			if n.ID != (ID{}) { // it is alive, if unwilling
				s.mu.Lock()
				s.table.Seen(Node{ID: n.ID, Addr: c.addr}, true, now)
				s.mu.Unlock()
			}
			return m, m.Err
		}
		if n.ID != (ID{}) && m.Reply.ID != n.ID {
			s.log.Debug("dht: node answered with another id", "addr", c.addr, "want", n.ID, "got", m.Reply.ID)
		}
		s.mu.Lock()
		s.table.Seen(Node{ID: m.Reply.ID, Addr: c.addr}, true, now)
		s.mu.Unlock()
		return m, nil
	case <-t.C:
		s.mu.Lock()
		s.table.Failed(Node{ID: n.ID, Addr: c.addr}, time.Now())
		s.mu.Unlock()
		return Msg{}, fmt.Errorf("dht: %s %s: %w", method, c.addr, ErrTimeout)
	case <-ctx.Done():
		return Msg{}, ctx.Err()
	case <-s.ctx.Done():
		return Msg{}, ErrClosed
	}
}

// Ping queries addr and returns its node id. A node that answers joins the
// routing table.
func (s *Server) Ping(ctx context.Context, addr netip.AddrPort) (ID, error) {
	m, err := s.query(ctx, Node{Addr: addr}, MethodPing, Args{})
	if err != nil {
		return ID{}, err
	}
	return m.Reply.ID, nil
}

// Bootstrap fills the routing table with a lookup of the server's own id,
// starting from the saved nodes and bootstrap addresses of the Config when
// the table is short of nodes. It fails if the table is still empty.
func (s *Server) Bootstrap(ctx context.Context) error {
	if _, err := s.lookup(ctx, s.id, MethodFindNode, true, nil); err != nil {
		return err
	}
	if s.NumNodes() == 0 {
		return ErrNoNodes
	}
	return nil
}

// FindNode runs an iterative find_node lookup and returns the K nodes
// closest to target that answered, closest first.
func (s *Server) FindNode(ctx context.Context, target ID) ([]Node, error) {
	res, err := s.lookup(ctx, target, MethodFindNode, false, nil)
	if err != nil {
		return nil, err
	}
	return res.closest(K), nil
}

// GetPeers runs an iterative get_peers lookup for infoHash, Alpha queries
// at a time, until the K closest nodes that answer have all been asked, and
// returns the peers they gave along with those announced to this node. It returns an error only when it found no
// peers and could not complete (no nodes, or ctx ended).
func (s *Server) GetPeers(ctx context.Context, infoHash metainfo.Hash) ([]netip.AddrPort, error) {
	return s.GetPeersFunc(ctx, infoHash, nil)
}

// GetPeersFunc is GetPeers, also calling found (when not nil) with the
// new peers of each reply as it comes, from the lookup's goroutine: a
// caller can connect to the first peers while the lookup waits for slow
// or dead nodes.
func (s *Server) GetPeersFunc(ctx context.Context, infoHash metainfo.Hash, found func([]netip.AddrPort)) ([]netip.AddrPort, error) {
	res, err := s.lookup(ctx, ID(infoHash), MethodGetPeers, false, found)
	if res != nil && len(res.peers) > 0 {
		return res.peers, nil
	}
	return nil, err
}

// Announce runs a get_peers lookup for infoHash and then sends
// announce_peer, with each node's token, to the K closest nodes that gave
// one, announcing a peer on port (port 0: the UDP source port, through
// implied_port). It returns the peers the lookup found, and ErrAnnounce if
// no node accepted the announce.
func (s *Server) Announce(ctx context.Context, infoHash metainfo.Hash, port uint16) ([]netip.AddrPort, error) {
	return s.AnnounceFunc(ctx, infoHash, port, nil)
}

// AnnounceFunc is Announce, also calling found (when not nil) with the new
// peers of each reply of its lookup as it comes, as GetPeersFunc does.
func (s *Server) AnnounceFunc(ctx context.Context, infoHash metainfo.Hash, port uint16, found func([]netip.AddrPort)) ([]netip.AddrPort, error) {
	res, err := s.lookup(ctx, ID(infoHash), MethodGetPeers, false, found)
	if err != nil {
		return nil, err
	}
	var targets []*candidate
	for _, c := range res.cands {
		if c.state == candReplied && c.token != "" {
			targets = append(targets, c)
			if len(targets) == K {
				break
			}
		}
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	for _, c := range targets {
		wg.Go(func() {
			args := Args{InfoHash: ID(infoHash), Port: port, ImpliedPort: port == 0, Token: c.token}
			if _, err := s.query(ctx, c.Node, MethodAnnouncePeer, args); err == nil {
				ok.Add(1)
			} else {
				s.log.Debug("dht: announce_peer", "node", c.Node, "err", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() == 0 {
		return res.peers, fmt.Errorf("%w (%d nodes tried)", ErrAnnounce, len(targets))
	}
	return res.peers, nil
}

// Lookup machinery.

type candState int

const (
	candNew candState = iota
	candQueried
	candReplied
	candFailed
)

type candidate struct {
	Node
	known bool // false for bootstrap addresses until they answer
	state candState
	token string
}

type lookupResult struct {
	target ID
	cands  []*candidate // sorted: unknown ids first, then by distance
	peers  []netip.AddrPort
}

func (r *lookupResult) closest(n int) []Node {
	var out []Node
	for _, c := range r.cands {
		if c.state == candReplied && c.known {
			out = append(out, c.Node)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

func (r *lookupResult) sort() {
	slices.SortStableFunc(r.cands, func(a, b *candidate) int {
		switch {
		case !a.known && !b.known:
			return 0
		case !a.known:
			return -1
		case !b.known:
			return 1
		}
		return r.target.cmpDist(a.ID, b.ID)
	})
	// Trim the tail: only candidates not yet queried, or failed, go.
	for i := len(r.cands) - 1; i >= 0 && len(r.cands) > maxLookupCands; i-- {
		if st := r.cands[i].state; st == candNew || st == candFailed {
			r.cands = slices.Delete(r.cands, i, i+1)
		}
	}
}

// next returns the closest candidate not yet queried among the K closest
// that have not failed, or nil.
func (r *lookupResult) next() *candidate {
	live := 0
	for _, c := range r.cands {
		if c.state == candFailed {
			continue
		}
		if c.state == candNew {
			return c
		}
		if live++; live >= K {
			return nil
		}
	}
	return nil
}

// seeds returns where a lookup for target starts: the closest nodes of the
// table, and when it has fewer than K (or always, with bootstrap), the
// saved nodes and the bootstrap addresses.
func (s *Server) seeds(ctx context.Context, target ID, bootstrap bool) []*candidate {
	now := time.Now()
	s.mu.Lock()
	nodes := s.table.Closest(target, K, netip.Addr{}, now)
	s.mu.Unlock()
	var cands []*candidate
	for _, n := range nodes {
		cands = append(cands, &candidate{Node: n, known: true})
	}
	if !bootstrap && len(nodes) >= K {
		return cands
	}
	for _, n := range s.cfg.Nodes {
		cands = append(cands, &candidate{Node: Node{ID: n.ID, Addr: canon(n.Addr)}, known: true})
	}
	for _, n := range s.resolveBootstrap(ctx) {
		cands = append(cands, &candidate{Node: n})
	}
	return cands
}

// resolveBootstrap resolves Config.Bootstrap once; IP literals need no
// resolver.
func (s *Server) resolveBootstrap(ctx context.Context) []Node {
	s.mu.Lock()
	if s.resolved != nil || len(s.cfg.Bootstrap) == 0 {
		defer s.mu.Unlock()
		return s.resolved
	}
	s.mu.Unlock()
	var out []Node
	for _, hp := range s.cfg.Bootstrap {
		if ap, err := netip.ParseAddrPort(hp); err == nil {
			out = append(out, Node{Addr: canon(ap)})
			continue
		}
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			s.log.Debug("dht: bootstrap address", "addr", hp, "err", err)
			continue
		}
		p, err := net.LookupPort("udp", port)
		if err != nil {
			continue
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			s.log.Debug("dht: resolve bootstrap", "host", host, "err", err)
			continue
		}
		for _, ip := range ips[:min(len(ips), 4)] {
			out = append(out, Node{Addr: netip.AddrPortFrom(ip.Unmap(), uint16(p))})
		}
	}
	if len(out) > 0 {
		s.mu.Lock()
		s.resolved = out
		s.mu.Unlock()
	}
	return out
}

type lookupReply struct {
	c   *candidate
	m   Msg
	err error
}

// lookup runs an iterative lookup of target with method (find_node or
// get_peers), passing found (if not nil) the new peers as they come. It
// returns whatever it gathered when ctx ends, with ctx's error.
func (s *Server) lookup(ctx context.Context, target ID, method string, bootstrap bool, found func([]netip.AddrPort)) (*lookupResult, error) {
	r := &lookupResult{target: target}
	seen := map[netip.AddrPort]bool{s.local: true}
	for _, c := range s.seeds(ctx, target, bootstrap) {
		if !seen[c.Addr] && c.ID != s.id {
			seen[c.Addr] = true
			r.cands = append(r.cands, c)
		}
	}
	if len(r.cands) == 0 {
		return r, ErrNoNodes
	}
	r.sort()
	args := Args{Target: target, InfoHash: target}
	replies := make(chan lookupReply, Alpha)
	peerSeen := map[netip.AddrPort]bool{}
	if method == MethodGetPeers {
		// Peers announced to this node count too.
		now := time.Now()
		s.mu.Lock()
		for _, fam := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
			for _, p := range s.peers.get(target, fam, maxLookupPeers/2, now) {
				peerSeen[p] = true
				r.peers = append(r.peers, p)
			}
		}
		s.mu.Unlock()
		if found != nil && len(r.peers) > 0 {
			found(slices.Clone(r.peers))
		}
	}
	inflight, queries := 0, 0
	var err error
	for {
		for inflight < Alpha && queries < maxLookupQueries && err == nil {
			c := r.next()
			if c == nil {
				break
			}
			c.state = candQueried
			inflight++
			queries++
			go func() {
				m, err := s.query(ctx, c.Node, method, args)
				replies <- lookupReply{c, m, err}
			}()
		}
		if inflight == 0 {
			break
		}
		var rep lookupReply
		select {
		case rep = <-replies:
		case <-ctx.Done():
			err = ctx.Err()
			rep = <-replies // queries return promptly once ctx is done
		}
		inflight--
		c := rep.c
		if rep.err != nil {
			c.state = candFailed
			continue
		}
		c.state = candReplied
		if !c.known {
			c.ID, c.known = rep.m.Reply.ID, true
			if c.ID == s.id {
				c.state = candFailed
			}
		}
		c.token = rep.m.Reply.Token
		fresh := len(r.peers)
		for _, p := range rep.m.Reply.Values {
			if len(r.peers) < maxLookupPeers && !peerSeen[p] {
				peerSeen[p] = true
				r.peers = append(r.peers, p)
			}
		}
		if found != nil && len(r.peers) > fresh {
			found(slices.Clone(r.peers[fresh:]))
		}
		// Take only the K closest of each reply: an honest node sends no
		// more, and it bounds what one hostile reply can inject.
		nodes := slices.Clone(rep.m.Reply.Nodes)
		slices.SortFunc(nodes, func(a, b Node) int { return target.cmpDist(a.ID, b.ID) })
		for _, n := range nodes[:min(len(nodes), K)] {
			if seen[n.Addr] || n.ID == s.id {
				continue
			}
			seen[n.Addr] = true
			r.cands = append(r.cands, &candidate{Node: n, known: true})
		}
		r.sort()
	}
	return r, err
}

// maintain runs housekeeping every maintainInterval: expiring announced
// peers, pinging questionable nodes and refreshing stale buckets.
func (s *Server) maintain() {
	defer s.wg.Done()
	t := time.NewTicker(maintainInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		s.mu.Lock()
		s.peers.sweep(now)
		qs := s.table.Questionable(K, now)
		stale := s.table.StaleBuckets(GoodInterval, now)
		s.mu.Unlock()
		var wg sync.WaitGroup
		for _, n := range qs {
			wg.Go(func() { s.query(s.ctx, n, MethodPing, Args{}) })
		}
		wg.Wait()
		for _, id := range stale[:min(len(stale), 2)] {
			ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			s.lookup(ctx, id, MethodFindNode, false, nil)
			cancel()
		}
	}
}
