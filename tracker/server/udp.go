package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// The UDP tracker protocol (BEP 15).
const (
	udpMagic = 0x41727101980 // connection id of a connect request

	actionConnect  = 0
	actionAnnounce = 1
	actionScrape   = 2
	actionError    = 3

	udpHeaderLen   = 16 // connection id, action, transaction id
	udpAnnounceLen = 98
	// maxUDPScrape is the most torrents one UDP scrape may name: what
	// fits a 1500-byte packet, as BEP 15 says ("about 74").
	maxUDPScrape = 74
	// maxUDPReply bounds a reply datagram: a 1500-byte Ethernet frame
	// less IPv6 and UDP headers.
	maxUDPReply = 1500 - 40 - 8
	// maxUDPRequest is the read buffer; a longer datagram is cut short
	// and then fails as malformed.
	maxUDPRequest = 2048

	// connIDWindow is the life of a connection id: one issued in the
	// current window or the one before is accepted, so an id lasts
	// between one and two windows (BEP 15 asks trackers to accept ids
	// for two minutes, clients to use them for one).
	connIDWindow = 2 * time.Minute
)

// ServeUDP answers UDP tracker requests (BEP 15) on conn until ctx is done,
// and runs the expiry sweep meanwhile. It closes conn when ctx is done to
// stop reading, and returns nil then; it returns an error if reading
// fails otherwise. Datagrams are handled one at a time, in order.
//
// A connection id is an HMAC of the client's IP address and the current
// two-minute window under a secret made by [New], so the server keeps no
// state per connection: ids from the current or the previous window are
// accepted. Malformed requests and bad connection ids get an error reply
// (action 3) when at least the 16-byte header arrived, and nothing
// otherwise. IPv4 clients get IPv4 peers in 6-byte entries, IPv6 clients
// IPv6 peers in 18-byte entries, as many as fit in a 1452-byte reply and
// at most MaxNumWant. A scrape may name up to 74 torrents; torrents not
// tracked are reported as zeros. The IP field of an announce is used only
// when the request comes from loopback; the key is ignored.
func (s *Server) ServeUDP(ctx context.Context, conn net.PacketConn) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.RunExpiry(ctx) })
	err := s.serveUDP(ctx, conn)
	cancel()
	wg.Wait()
	return err
}

func (s *Server) serveUDP(ctx context.Context, conn net.PacketConn) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	in := make([]byte, maxUDPRequest)
	out := make([]byte, 0, maxUDPReply)
	for {
		n, addr, err := conn.ReadFrom(in)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tracker server: udp: %w", err)
		}
		from, ok := udpAddrPort(addr)
		if !ok {
			continue
		}
		reply := s.handleUDP(in[:n], from, out)
		if reply == nil {
			continue
		}
		if _, err := conn.WriteTo(reply, addr); err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				continue // the next read reports it
			}
			s.log.Debug("udp reply", "to", addr.String(), "err", err)
		}
	}
}

// udpAddrPort returns addr's address, unmapped and without zone.
func udpAddrPort(addr net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	if ua, ok := addr.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	} else {
		var err error
		if ap, err = netip.ParseAddrPort(addr.String()); err != nil {
			return netip.AddrPort{}, false
		}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if !ip.IsValid() || ap.Port() == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, ap.Port()), true
}

// handleUDP answers one datagram pkt from the address from (unmapped). It
// appends the reply to buf[:0] and returns it, or nil to send nothing. A
// reply is never longer than maxUDPReply.
func (s *Server) handleUDP(pkt []byte, from netip.AddrPort, buf []byte) []byte {
	if len(pkt) < udpHeaderLen || !from.IsValid() {
		return nil
	}
	connID := binary.BigEndian.Uint64(pkt)
	action := binary.BigEndian.Uint32(pkt[8:])
	tid := binary.BigEndian.Uint32(pkt[12:])
	out := binary.BigEndian.AppendUint32(buf[:0], action)
	out = binary.BigEndian.AppendUint32(out, tid)
	if action == actionConnect {
		if connID != udpMagic {
			return udpError(buf, tid, "bad protocol id")
		}
		return binary.BigEndian.AppendUint64(out, s.connectionID(from.Addr(), s.window()))
	}
	if !s.validConnID(connID, from.Addr()) {
		return udpError(buf, tid, "bad connection id")
	}
	var err error
	switch action {
	case actionAnnounce:
		out, err = s.udpAnnounce(pkt, from, out)
	case actionScrape:
		out, err = s.udpScrape(pkt, out)
	default:
		err = failure("unknown action")
	}
	if err != nil {
		return udpError(buf, tid, err.Error())
	}
	return out
}

func udpError(buf []byte, tid uint32, msg string) []byte {
	out := binary.BigEndian.AppendUint32(buf[:0], actionError)
	out = binary.BigEndian.AppendUint32(out, tid)
	return append(out, msg...)
}

func (s *Server) udpAnnounce(pkt []byte, from netip.AddrPort, out []byte) ([]byte, error) {
	if len(pkt) < udpAnnounceLen {
		return nil, failure("short announce")
	}
	a := announce{
		left:    int64(binary.BigEndian.Uint64(pkt[64:])),
		event:   tracker.Event(binary.BigEndian.Uint32(pkt[80:])),
		numWant: int(int32(binary.BigEndian.Uint32(pkt[92:]))),
	}
	copy(a.hash[:], pkt[16:36])
	copy(a.id[:], pkt[36:56])
	if a.event > tracker.Stopped {
		return nil, failure("bad event")
	}
	port := binary.BigEndian.Uint16(pkt[96:])
	if port == 0 {
		return nil, failure("bad port")
	}
	ip := from.Addr()
	if ipField := netip.AddrFrom4([4]byte(pkt[84:88])); ip.IsLoopback() && !ipField.IsUnspecified() {
		ip = ipField
	}
	a.addr = netip.AddrPortFrom(ip, port)
	entry := tracker.CompactV4Len
	a.family = onlyV4
	if from.Addr().Is6() {
		entry = tracker.CompactV6Len
		a.family = onlyV6
	}
	res, err := s.announce(&a, (maxUDPReply-20)/entry)
	if err != nil {
		return nil, err
	}
	out = binary.BigEndian.AppendUint32(out, uint32(min(seconds(s.cfg.Interval), math.MaxInt32)))
	out = appendCount(out, res.incomplete)
	out = appendCount(out, res.complete)
	addrs := make([]netip.AddrPort, len(res.peers))
	for i, p := range res.peers {
		addrs[i] = p.addr
	}
	return tracker.AppendCompact(out, addrs, a.family == onlyV6), nil
}

func (s *Server) udpScrape(pkt []byte, out []byte) ([]byte, error) {
	body := pkt[udpHeaderLen:]
	if len(body) == 0 || len(body)%metainfo.HashSize != 0 {
		return nil, failure("malformed scrape")
	}
	if len(body)/metainfo.HashSize > maxUDPScrape {
		return nil, failure("too many info hashes")
	}
	hashes := make([]metainfo.Hash, len(body)/metainfo.HashSize)
	for i := range hashes {
		copy(hashes[i][:], body[i*metainfo.HashSize:])
	}
	_, res := s.scrape(hashes, 0)
	for _, r := range res {
		out = appendCount(out, r.complete)
		out = appendCount(out, r.downloaded)
		out = appendCount(out, r.incomplete)
	}
	return out, nil
}

func appendCount(b []byte, n int) []byte {
	return binary.BigEndian.AppendUint32(b, uint32(min(max(n, 0), math.MaxInt32)))
}

// window is the number of the current connection id window.
func (s *Server) window() int64 {
	return s.now().Unix() / int64(connIDWindow/time.Second)
}

// connectionID is the id the server gives ip in window w.
func (s *Server) connectionID(ip netip.Addr, w int64) uint64 {
	var msg [8 + 16]byte
	binary.BigEndian.PutUint64(msg[:], uint64(w))
	a := ip.Unmap().As16()
	copy(msg[8:], a[:])
	m := hmac.New(sha256.New, s.secret[:])
	m.Write(msg[:])
	return binary.BigEndian.Uint64(m.Sum(nil))
}

// validConnID reports whether id was issued to ip in this window or the
// one before.
func (s *Server) validConnID(id uint64, ip netip.Addr) bool {
	w := s.window()
	var got [8]byte
	binary.BigEndian.PutUint64(got[:], id)
	ok := 0
	for _, win := range [...]int64{w, w - 1} {
		var want [8]byte
		binary.BigEndian.PutUint64(want[:], s.connectionID(ip, win))
		ok |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return ok == 1
}
