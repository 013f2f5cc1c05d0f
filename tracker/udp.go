package tracker

// The UDP tracker protocol (BEP 15), with the URL data option of BEP 41.
//
// Every packet starts with a header: a request has the connection id
// (8 bytes), the action and the transaction id (4 bytes each); a reply has
// the action and the transaction id. All integers are big-endian.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// UDP protocol constants (BEP 15).
const (
	udpProtocolID uint64 = 0x41727101980 // connection id of a connect request

	udpActionConnect  uint32 = 0
	udpActionAnnounce uint32 = 1
	udpActionScrape   uint32 = 2
	udpActionError    uint32 = 3

	udpRequestHeaderLen  = 16 // connection id, action, transaction id
	udpReplyHeaderLen    = 8  // action, transaction id
	udpConnectReplyLen   = 16 // header, connection id
	udpAnnounceLen       = 98 // an announce request without options
	udpAnnounceHeaderLen = 20 // reply header, interval, leechers, seeders
	udpScrapeEntryLen    = 12 // seeders, completed, leechers

	// udpMaxScrapeHashes is how many info hashes one scrape packet carries
	// (BEP 15: "up to about 74").
	udpMaxScrapeHashes = 74
	// udpMaxDatagram is the read buffer: more than any UDP payload.
	udpMaxDatagram = 64 << 10
	// udpConnLifetime is how long a client may use a connection id after
	// receiving it (BEP 15: one minute).
	udpConnLifetime = time.Minute
	// udpDefaultInterval replaces an absent or absurd announce interval.
	udpDefaultInterval = 30 * time.Minute

	// BEP 41 options after the fixed part of an announce request.
	udpOptionURLData = 2
	udpMaxOptionLen  = 255
	// udpMaxURLData bounds the path and query sent as URL data.
	udpMaxURLData = 4 * udpMaxOptionLen
)

// udpClient is a BEP 15 tracker client. It keeps one connection id per
// client, reused by every request for a minute after the tracker gave it.
//
// Some trackers (npm bittorrent-tracker) include the asking peer in the
// peers of an announce reply; the client returns them as given, and leaving
// ourselves out is the caller's job.
type udpClient struct {
	url     string
	host    string // host name or address literal, without brackets
	port    uint16
	urlData []byte // BEP 41 options carrying the URL's path and query
	o       Options

	// now is the clock of connection id lifetimes (time.Now; tests replace
	// it before the first request).
	now func() time.Time

	mu   sync.Mutex
	conn udpConnID // guarded by mu
}

// udpConnID is a connection id and where and until when it is valid.
type udpConnID struct {
	addr    netip.AddrPort // the tracker address that gave it
	id      uint64
	expires time.Time // zero: no id
}

func newUDPClient(u *url.URL, o Options) (Client, error) {
	o = o.withDefaults()
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, fmt.Errorf("tracker %q: no host", u)
	}
	if port == "" {
		return nil, fmt.Errorf("tracker %q: udp tracker URL has no port", u)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return nil, fmt.Errorf("tracker %q: bad port %q", u, port)
	}
	data, err := udpURLData(u)
	if err != nil {
		return nil, fmt.Errorf("tracker %q: %w", u, err)
	}
	return &udpClient{
		url:     u.String(),
		host:    host,
		port:    uint16(p),
		urlData: data,
		o:       o,
		now:     time.Now,
	}, nil
}

// udpURLData returns the BEP 41 URL data options for the URL's path and
// query, split into options of at most 255 bytes; nothing when the path is
// empty or "/".
func udpURLData(u *url.URL) ([]byte, error) {
	s := u.EscapedPath()
	if u.RawQuery != "" {
		s += "?" + u.RawQuery
	}
	if s == "" || s == "/" {
		return nil, nil
	}
	if len(s) > udpMaxURLData {
		return nil, fmt.Errorf("path and query of %d bytes, more than %d", len(s), udpMaxURLData)
	}
	var b []byte
	for len(s) > 0 {
		n := min(len(s), udpMaxOptionLen)
		b = append(b, udpOptionURLData, byte(n))
		b = append(b, s[:n]...)
		s = s[n:]
	}
	return b, nil
}

func (c *udpClient) URL() string { return c.url }

// Announce sends an announce (BEP 15 action 1) and returns the tracker's
// answer. The peers are IPv4 when the tracker's address is IPv4 and IPv6
// when it is IPv6; they may include the asking peer itself.
func (c *udpClient) Announce(ctx context.Context, req *AnnounceRequest) (*AnnounceResponse, error) {
	resp, err := c.announce(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("announce %s: %w", c.url, err)
	}
	return resp, nil
}

func (c *udpClient) announce(ctx context.Context, req *AnnounceRequest) (*AnnounceResponse, error) {
	if req == nil {
		return nil, errors.New("nil request")
	}
	s, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	defer s.close()
	reply, err := s.request(ctx, udpActionAnnounce, func(id uint64, tx uint32) []byte {
		return udpAnnouncePacket(id, tx, req, c.urlData)
	})
	if err != nil {
		return nil, err
	}
	return ParseUDPAnnounceReply(reply, s.addr.Addr().Is6(), c.o.MaxPeers)
}

// Scrape sends scrapes (BEP 15 action 2) of at most 74 info hashes each.
// UDP trackers answer for every hash, so every hash asked is in the map;
// a torrent the tracker does not know usually reads as all zeros.
func (c *udpClient) Scrape(ctx context.Context, hashes []metainfo.Hash) (map[metainfo.Hash]ScrapeResult, error) {
	out, err := c.scrape(ctx, hashes)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", c.url, err)
	}
	return out, nil
}

func (c *udpClient) scrape(ctx context.Context, hashes []metainfo.Hash) (map[metainfo.Hash]ScrapeResult, error) {
	uniq := make([]metainfo.Hash, 0, len(hashes))
	out := make(map[metainfo.Hash]ScrapeResult, len(hashes))
	for _, h := range hashes {
		if _, dup := out[h]; !dup {
			out[h] = ScrapeResult{}
			uniq = append(uniq, h)
		}
	}
	if len(uniq) == 0 {
		return out, nil
	}
	s, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	defer s.close()
	for chunk := range slices.Chunk(uniq, udpMaxScrapeHashes) {
		reply, err := s.request(ctx, udpActionScrape, func(id uint64, tx uint32) []byte {
			return udpScrapePacket(id, tx, chunk)
		})
		if err != nil {
			return nil, err
		}
		res, err := ParseUDPScrapeReply(reply, len(chunk))
		if err != nil {
			return nil, err
		}
		for i, h := range chunk {
			out[h] = res[i]
		}
	}
	return out, nil
}

// cachedConnID returns the connection id for addr if one is still valid.
func (c *udpClient) cachedConnID(addr netip.AddrPort) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn.expires.IsZero() {
		return 0, false
	}
	if c.conn.addr != addr || !c.now().Before(c.conn.expires) {
		c.conn = udpConnID{}
		return 0, false
	}
	return c.conn.id, true
}

func (c *udpClient) storeConnID(addr netip.AddrPort, id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = udpConnID{addr: addr, id: id, expires: c.now().Add(udpConnLifetime)}
}

// forgetConnID drops the cached id if it is still id for addr.
func (c *udpClient) forgetConnID(addr netip.AddrPort, id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.conn.expires.IsZero() && c.conn.addr == addr && c.conn.id == id {
		c.conn = udpConnID{}
	}
}

// resolve returns the tracker's address: the first one the resolver gives.
func (c *udpClient) resolve(ctx context.Context) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(c.host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), c.port), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", c.host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("lookup %s: no address", c.host)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), c.port), nil
}

// udpSession is one call's socket to the tracker.
type udpSession struct {
	c    *udpClient
	addr netip.AddrPort // the tracker
	conn *net.UDPConn
	buf  []byte
	stop func() bool // stops the context watch
}

// open resolves the tracker and opens a socket on an ephemeral port whose
// reads stop when ctx is done.
func (c *udpClient) open(ctx context.Context) (*udpSession, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	addr, err := c.resolve(ctx)
	if err != nil {
		return nil, err
	}
	network := "udp4"
	if addr.Addr().Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, err
	}
	// A read deadline in the past wakes a blocked read; request checks
	// ctx after every deadline it sets, so a late one cannot undo this.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	return &udpSession{c: c, addr: addr, conn: conn, buf: make([]byte, udpMaxDatagram), stop: stop}, nil
}

func (s *udpSession) close() {
	s.stop()
	s.conn.Close()
}

// errUDPNoReply: one wait for a reply ran out.
var errUDPNoReply = errors.New("no reply")

// udpTimeoutError is a request sent as many times as Options.UDPRetries
// allows without a reply. It is a net.Error whose Timeout is true.
type udpTimeoutError struct {
	what  string
	tries int
}

func (e *udpTimeoutError) Error() string {
	return fmt.Sprintf("%s: no reply after %d tries", e.what, e.tries)
}
func (e *udpTimeoutError) Timeout() bool   { return true }
func (e *udpTimeoutError) Temporary() bool { return true }

// request sends the packet build makes for the current connection id and a
// transaction id, retransmitting it per BEP 15, and returns the reply of
// the given action. Between tries it reconnects when the connection id has
// expired. The reply is valid until the session's next read.
func (s *udpSession) request(ctx context.Context, action uint32, build func(connID uint64, tx uint32) []byte) ([]byte, error) {
	tx := rand.Uint32()
	tries := s.c.o.UDPRetries
	for try := range tries {
		id, err := s.connID(ctx)
		if err != nil {
			return nil, err
		}
		reply, err := s.attempt(ctx, build(id, tx), tx, action, try)
		if errors.Is(err, errUDPNoReply) {
			continue
		}
		if err != nil {
			var fe *FailureError
			if errors.As(err, &fe) {
				s.c.forgetConnID(s.addr, id)
			}
			return nil, err
		}
		return reply, nil
	}
	return nil, &udpTimeoutError{what: udpActionName(action), tries: tries}
}

// connID returns the cached connection id or gets a new one.
func (s *udpSession) connID(ctx context.Context) (uint64, error) {
	if id, ok := s.c.cachedConnID(s.addr); ok {
		return id, nil
	}
	tx := rand.Uint32()
	pkt := udpConnectPacket(tx)
	tries := s.c.o.UDPRetries
	for try := range tries {
		reply, err := s.attempt(ctx, pkt, tx, udpActionConnect, try)
		if errors.Is(err, errUDPNoReply) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("connect: %w", err)
		}
		id, err := ParseUDPConnectReply(reply)
		if err != nil {
			return 0, fmt.Errorf("connect: %w", err)
		}
		s.c.storeConnID(s.addr, id)
		return id, nil
	}
	return 0, &udpTimeoutError{what: "connect", tries: tries}
}

// attempt sends pkt once and waits UDPBase·2^try for a datagram from the
// tracker with transaction id tx and the given action, which it returns;
// an error action becomes a *FailureError. Other datagrams are ignored.
func (s *udpSession) attempt(ctx context.Context, pkt []byte, tx, action uint32, try int) ([]byte, error) {
	if try > 0 {
		s.c.o.Logger.Debug("udp tracker: retransmit", "url", s.c.url, "action", udpActionName(action), "try", try+1)
	}
	if _, err := s.conn.WriteToUDPAddrPort(pkt, s.addr); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(udpWait(s.c.o.UDPBase, try))); err != nil {
		return nil, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, from, err := s.conn.ReadFromUDPAddrPort(s.buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, errUDPNoReply
			}
			return nil, err
		}
		if !udpSameAddr(from, s.addr) || n < udpReplyHeaderLen {
			continue
		}
		b := s.buf[:n]
		if binary.BigEndian.Uint32(b[4:]) != tx {
			continue
		}
		switch binary.BigEndian.Uint32(b) {
		case action:
			return b, nil
		case udpActionError:
			return nil, udpFailure(b[udpReplyHeaderLen:])
		}
	}
}

// udpWait is base·2^try, saturating.
func udpWait(base time.Duration, try int) time.Duration {
	d := base
	for range try {
		if d > math.MaxInt64/2 {
			return math.MaxInt64
		}
		d *= 2
	}
	return d
}

func udpSameAddr(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap().WithZone("") == b.Addr().Unmap().WithZone("")
}

func udpActionName(a uint32) string {
	switch a {
	case udpActionConnect:
		return "connect"
	case udpActionAnnounce:
		return "announce"
	case udpActionScrape:
		return "scrape"
	case udpActionError:
		return "error"
	}
	return "action " + strconv.FormatUint(uint64(a), 10)
}

// udpConnectPacket builds a connect request.
func udpConnectPacket(tx uint32) []byte {
	b := make([]byte, 0, udpRequestHeaderLen)
	b = binary.BigEndian.AppendUint64(b, udpProtocolID)
	b = binary.BigEndian.AppendUint32(b, udpActionConnect)
	return binary.BigEndian.AppendUint32(b, tx)
}

// udpAnnouncePacket builds an announce request followed by the BEP 41
// options opts. Negative byte counts are sent as 0, a negative NumWant as
// -1 (the tracker's default); the IP address is 0 (the sender's).
func udpAnnouncePacket(connID uint64, tx uint32, req *AnnounceRequest, opts []byte) []byte {
	b := make([]byte, 0, udpAnnounceLen+len(opts))
	b = binary.BigEndian.AppendUint64(b, connID)
	b = binary.BigEndian.AppendUint32(b, udpActionAnnounce)
	b = binary.BigEndian.AppendUint32(b, tx)
	b = append(b, req.InfoHash[:]...)
	b = append(b, req.PeerID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(max(req.Downloaded, 0)))
	b = binary.BigEndian.AppendUint64(b, uint64(max(req.Left, 0)))
	b = binary.BigEndian.AppendUint64(b, uint64(max(req.Uploaded, 0)))
	b = binary.BigEndian.AppendUint32(b, uint32(req.Event))
	b = binary.BigEndian.AppendUint32(b, 0) // IP address: the sender's
	b = binary.BigEndian.AppendUint32(b, req.Key)
	numWant := int32(-1)
	if req.NumWant >= 0 {
		numWant = int32(min(req.NumWant, math.MaxInt32))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(numWant))
	b = binary.BigEndian.AppendUint16(b, req.Port)
	return append(b, opts...)
}

// udpScrapePacket builds a scrape request for the hashes (at most 74).
func udpScrapePacket(connID uint64, tx uint32, hashes []metainfo.Hash) []byte {
	b := make([]byte, 0, udpRequestHeaderLen+len(hashes)*metainfo.HashSize)
	b = binary.BigEndian.AppendUint64(b, connID)
	b = binary.BigEndian.AppendUint32(b, udpActionScrape)
	b = binary.BigEndian.AppendUint32(b, tx)
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

// udpReply checks a reply's header: an error action becomes a
// *FailureError, another action than want or a packet shorter than min
// bytes an error wrapping ErrBadReply.
func udpReply(b []byte, want uint32, minLen int) error {
	if len(b) < udpReplyHeaderLen {
		return fmt.Errorf("%d-byte reply: %w", len(b), ErrBadReply)
	}
	switch a := binary.BigEndian.Uint32(b); a {
	case want:
	case udpActionError:
		return udpFailure(b[udpReplyHeaderLen:])
	default:
		return fmt.Errorf("%s reply to %s: %w", udpActionName(a), udpActionName(want), ErrBadReply)
	}
	if len(b) < minLen {
		return fmt.Errorf("%d-byte %s reply, want at least %d: %w", len(b), udpActionName(want), minLen, ErrBadReply)
	}
	return nil
}

// udpFailure makes the *FailureError of an error action's message: at most
// maxTrackerStringLen bytes, trailing NULs and spaces removed, anything
// not printable replaced.
func udpFailure(msg []byte) *FailureError {
	msg = msg[:min(len(msg), maxTrackerStringLen)]
	msg = bytes.TrimRight(msg, "\x00")
	var sb strings.Builder
	sb.Grow(len(msg))
	for len(msg) > 0 {
		r, size := utf8.DecodeRune(msg)
		msg = msg[size:]
		switch {
		case r == utf8.RuneError && size == 1:
			r = '?'
		case unicode.IsSpace(r):
			r = ' '
		case !unicode.IsPrint(r):
			r = '?'
		}
		sb.WriteRune(r)
	}
	reason := strings.TrimSpace(sb.String())
	if reason == "" {
		reason = "no reason given"
	}
	return &FailureError{Reason: reason}
}

// ParseUDPConnectReply decodes a UDP tracker's reply to a connect request
// (BEP 15), the whole datagram, and returns the connection id. It does not
// check the transaction id. An error reply (action 3) is returned as a
// *FailureError, anything malformed as an error wrapping ErrBadReply.
func ParseUDPConnectReply(b []byte) (connID uint64, err error) {
	if err := udpReply(b, udpActionConnect, udpConnectReplyLen); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[udpReplyHeaderLen:]), nil
}

// ParseUDPAnnounceReply decodes a UDP tracker's reply to an announce (BEP
// 15), the whole datagram; it does not check the transaction id. The peers
// are 18-byte IPv6 entries when v6 is true (the tracker was reached over
// IPv6), 6-byte IPv4 entries otherwise; at most maxPeers are kept
// (DefaultMaxPeers when maxPeers <= 0). A missing or absurd interval
// becomes 30 minutes and negative counts -1. An error reply (action 3) is
// returned as a *FailureError; a reply shorter than its header or whose
// peers are not whole entries as an error wrapping ErrBadReply.
func ParseUDPAnnounceReply(b []byte, v6 bool, maxPeers int) (*AnnounceResponse, error) {
	if err := udpReply(b, udpActionAnnounce, udpAnnounceHeaderLen); err != nil {
		return nil, err
	}
	if maxPeers <= 0 {
		maxPeers = DefaultMaxPeers
	}
	size := CompactV4Len
	if v6 {
		size = CompactV6Len
	}
	peers, err := ParseCompact(b[udpAnnounceHeaderLen:], size, maxPeers)
	if err != nil {
		return nil, err
	}
	interval := time.Duration(int32(binary.BigEndian.Uint32(b[8:]))) * time.Second
	return &AnnounceResponse{
		Interval: clampInterval(interval, udpDefaultInterval),
		Leechers: udpCount(b[12:], -1),
		Seeders:  udpCount(b[16:], -1),
		Peers:    peers,
	}, nil
}

// ParseUDPScrapeReply decodes a UDP tracker's reply to a scrape of n info
// hashes (BEP 15), the whole datagram, into n results in the order the
// hashes were asked; it does not check the transaction id. Negative counts
// become 0; bytes after the n entries are ignored. An error reply (action
// 3) is returned as a *FailureError; a reply with fewer than n entries, or
// a negative n, as an error wrapping ErrBadReply.
func ParseUDPScrapeReply(b []byte, n int) ([]ScrapeResult, error) {
	if err := udpReply(b, udpActionScrape, udpReplyHeaderLen); err != nil {
		return nil, err
	}
	body := b[udpReplyHeaderLen:]
	if n < 0 || n > len(body)/udpScrapeEntryLen {
		return nil, fmt.Errorf("%d-byte scrape reply for %d hashes: %w", len(b), n, ErrBadReply)
	}
	out := make([]ScrapeResult, n)
	for i := range out {
		e := body[i*udpScrapeEntryLen:]
		out[i] = ScrapeResult{
			Seeders:   udpCount(e, 0),
			Completed: udpCount(e[4:], 0),
			Leechers:  udpCount(e[8:], 0),
		}
	}
	return out, nil
}

// udpCount reads a 32-bit signed count, neg when it is negative.
func udpCount(b []byte, neg int) int {
	v := int32(binary.BigEndian.Uint32(b))
	if v < 0 {
		return neg
	}
	return int(v)
}
