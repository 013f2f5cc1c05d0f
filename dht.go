package aiotorrent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aiotorrent/aiotorrent/dht"
	"github.com/aiotorrent/aiotorrent/internal/resume"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
)

// The client's DHT node (BEP 5): one per Client, on a UDP port (by default
// the number of the TCP port peers connect to, as other clients do). Each
// public torrent looks its peers up on it and announces itself; peers'
// PORT messages add nodes to it; its routing table is kept in the state
// folder between runs.

const (
	dhtStateFile = "dht.state" // in the state folder: node id and contacts
	dhtLockFile  = "dht.lock"  // held by the client that owns dht.state
	// dhtSaveEvery is how often the routing table is saved while running
	// (and once more at Close).
	dhtSaveEvery = 10 * time.Minute
	// dhtAnnounceEvery is how often a torrent looks its peers up again and
	// re-announces itself (nodes forget announces after 30 min or so).
	dhtAnnounceEvery = 15 * time.Minute
	// dhtRetryFirst is the wait after a lookup that found no peer, doubled
	// each time up to dhtAnnounceEvery.
	dhtRetryFirst = 5 * time.Second
	// dhtLookupTimeout bounds one lookup.
	dhtLookupTimeout = time.Minute
	// dhtMaxPings bounds the pings of peers' DHT ports in flight; PORT
	// messages beyond are ignored.
	dhtMaxPings = 16
)

// publicBootstrap is where a client joins the DHT when Config.DHTBootstrap
// is nil; tests replace it, as they must never leave the machine.
var publicBootstrap = dht.DefaultBootstrap

// dhtFilter, set by tests, is the DHT node's Config.Filter.
var dhtFilter func(netip.AddrPort) bool

// dhtOnlyIfAsked, set by tests, runs a DHT node only for a Config that
// gives DHTBootstrap: the tests' many clients, some of the same torrent,
// would otherwise find each other across tests through the node contacts
// kept in their shared state folder.
var dhtOnlyIfAsked bool

// startDHT starts the client's DHT node unless Config.NoDHT: it listens,
// restores the saved routing table and joins the DHT in the background.
func (c *Client) startDHT() error {
	if c.cfg.NoDHT || (dhtOnlyIfAsked && c.cfg.DHTBootstrap == nil) {
		return nil
	}
	addr, fallback := c.dhtAddr()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil && fallback != "" {
		conn, err = net.ListenPacket("udp", fallback)
	}
	if err != nil {
		return fmt.Errorf("dht: listen %s: %w", addr, err)
	}
	var st dht.State
	if c.stateDir != "" {
		// Two clients sharing a state folder must not share a node id:
		// the one holding the lock has the saved state, others run
		// with a new id and save nothing.
		if unlock, err := resume.LockFile(c.stateDir, dhtLockFile); err == nil {
			c.dhtUnlock = unlock
			st = c.loadDHTState()
		} else {
			c.cfg.Logger.Debug("dht: routing table not kept by this client", "err", err)
		}
	}
	boot := c.cfg.DHTBootstrap
	if boot == nil {
		boot = publicBootstrap
	}
	srv, err := dht.NewServer(dht.Config{ID: st.ID, Conn: conn, Nodes: st.Nodes, Bootstrap: boot,
		Logger: c.cfg.Logger, Filter: dhtFilter})
	if err != nil {
		conn.Close()
		c.unlockDHT()
		return err
	}
	c.dht, c.dhtConn = srv, conn
	c.dhtPings = make(chan struct{}, dhtMaxPings)
	c.wg.Add(1)
	go c.runDHT(len(st.Nodes) > 0 || len(boot) > 0)
	return nil
}

// dhtAddr returns the UDP address for the DHT node, and another to fall
// back on when it is taken ("" for none).
func (c *Client) dhtAddr() (addr, fallback string) {
	if c.cfg.DHTAddr != "" {
		return c.cfg.DHTAddr, ""
	}
	host := ""
	if a, ok := c.Addr().(*net.TCPAddr); ok {
		if !a.IP.IsUnspecified() {
			host = a.IP.String()
		}
		return net.JoinHostPort(host, strconv.Itoa(a.Port)), net.JoinHostPort(host, "0")
	}
	if h, _, err := net.SplitHostPort(c.cfg.ListenAddr); err == nil {
		host = h
	}
	return net.JoinHostPort(host, "0"), ""
}

// runDHT joins the DHT, saves the routing table every dhtSaveEvery, and at
// Close saves it once more and stops the node.
func (c *Client) runDHT(join bool) {
	defer c.wg.Done()
	defer c.unlockDHT()
	defer c.dhtConn.Close()
	defer c.dht.Close()
	defer c.saveDHTState()
	if join {
		ctx, cancel := context.WithTimeout(c.ctx, dhtLookupTimeout)
		err := c.dht.Bootstrap(ctx)
		cancel()
		c.cfg.Logger.Debug("dht: joined", "nodes", c.dht.NumNodes(), "err", err)
	}
	t := time.NewTicker(dhtSaveEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.saveDHTState()
		}
	}
}

func (c *Client) unlockDHT() {
	if c.dhtUnlock != nil {
		c.dhtUnlock()
		c.dhtUnlock = nil
	}
}

// loadDHTState reads the saved node id and contacts; a missing or damaged
// file gives a new id and no contacts.
func (c *Client) loadDHTState() dht.State {
	b, err := readStateFile(filepath.Join(c.stateDir, dhtStateFile), dht.MaxStateSize)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.cfg.Logger.Warn("dht: saved routing table not read", "err", err)
		}
		return dht.State{}
	}
	st, err := dht.ParseState(b)
	if err != nil {
		c.cfg.Logger.Warn("dht: saved routing table not used", "file", filepath.Join(c.stateDir, dhtStateFile), "err", err)
		return dht.State{}
	}
	return st
}

// readStateFile reads the regular file p, of at most max bytes (a FIFO or
// a huge file in its place is refused, not read).
func readStateFile(p string, max int64) ([]byte, error) {
	fi, err := os.Stat(p) // before opening: opening a FIFO blocks
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", p, fi.Size(), max)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max+1))
}

// saveDHTState writes the node id and contacts, when this client holds
// the state folder's DHT lock. An empty table is not saved over one that
// has nodes: a run that never joined keeps the last good contacts.
func (c *Client) saveDHTState() {
	if c.dhtUnlock == nil {
		return
	}
	st := c.dht.State()
	if len(st.Nodes) == 0 {
		return
	}
	if err := resume.SaveFile(c.stateDir, dhtStateFile, st.Marshal()); err != nil {
		c.cfg.Logger.Warn("dht: routing table not saved", "err", err)
	}
}

// handshake is our BitTorrent handshake for the torrent with info hash
// hash: extension protocol, Fast extension, and the DHT bit when our node
// runs and the torrent is not private.
func (c *Client) handshake(hash metainfo.Hash, private bool) *peer.Handshake {
	h := &peer.Handshake{InfoHash: hash, PeerID: c.cfg.PeerID}
	h.Reserved.SetExtended()
	h.Reserved.SetFast()
	if c.dht != nil && !private {
		h.Reserved.SetDHT()
	}
	return h
}

// DHT returns the client's DHT node, or nil when Config.NoDHT turned it
// off. It may be used directly (lookups of other info hashes, its
// routing table, its statistics); the client closes it.
func (c *Client) DHT() *dht.Server { return c.dht }

// dhtPort is the UDP port of our DHT node (0 without one), sent to peers
// in PORT messages.
func (c *Client) dhtPort() uint16 {
	if c.dht == nil {
		return 0
	}
	if a, ok := c.dht.Addr().(*net.UDPAddr); ok {
		return uint16(a.Port)
	}
	return 0
}

// dhtPing adds a peer's DHT node (from its PORT message) to the routing
// table if it answers a ping; with dhtMaxPings already in flight it is
// ignored.
func (c *Client) dhtPing(addr netip.AddrPort) {
	if c.dht == nil || !addr.IsValid() || addr.Port() == 0 {
		return
	}
	select {
	case c.dhtPings <- struct{}{}:
	default:
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.dhtPings }()
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		defer cancel()
		c.dht.AddNode(ctx, addr)
	}()
}

// dhtLookups finds the peers of the torrent with info hash hash on the DHT
// until ctx ends, passing them to found: at once, again after
// dhtRetryFirst (doubling) while none are found, and every
// dhtAnnounceEvery. With announce, each lookup also announces our
// listening port to the closest nodes.
func (c *Client) dhtLookups(ctx context.Context, hash metainfo.Hash, announce bool, found func([]netip.AddrPort)) {
	retry := dhtRetryFirst
	for {
		lctx, cancel := context.WithTimeout(ctx, dhtLookupTimeout)
		var peers []netip.AddrPort
		var err error
		// Peers go to found as replies bring them: a dead node in the
		// lookup costs a query timeout, which the first peers need not
		// wait for.
		if port := c.port(); announce && port != 0 {
			peers, err = c.dht.AnnounceFunc(lctx, hash, port, found)
		} else {
			peers, err = c.dht.GetPeersFunc(lctx, hash, found)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.cfg.Logger.Debug("dht: lookup", "hash", hash, "peers", len(peers), "announce", announce, "err", err)
		wait := dhtAnnounceEvery
		if len(peers) > 0 {
			retry = dhtRetryFirst
		} else {
			wait, retry = retry, min(retry*2, dhtAnnounceEvery)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
