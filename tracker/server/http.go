package server

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/tracker"
)

// Limits of an HTTP request.
const (
	// maxQueryLen bounds a query string: room for a scrape of
	// maxScrapeHashes torrents, every byte of each hash escaped.
	maxQueryLen = 80 << 10
	// maxParams bounds the parameters of one query.
	maxParams = maxScrapeHashes + 100
	// maxScrapeHashes bounds the torrents of one HTTP scrape, named or,
	// with none named, all.
	maxScrapeHashes = 1000
)

// ServeHTTP answers announces at /announce and scrapes at /scrape; other
// paths get 404 and methods other than GET and HEAD 405. Replies are
// bencoded dictionaries; a refused or malformed request is answered, with
// status 200 as trackers do, by {"failure reason": ...}.
//
// An announce needs info_hash and peer_id (20 bytes each, percent-encoded)
// and port (1 to 65535). left, uploaded and downloaded are integers when
// given; a missing left counts the peer as a leecher. event is started,
// completed, stopped, empty or paused, or missing. numwant is an integer
// that fits in 32 bits; a negative or missing one asks for MaxNumWant
// peers, and larger ones are capped. compact=0 asks for a list of
// dictionaries (without "peer id" when no_peer_id=1), anything else for
// compact strings: "peers" of IPv4 peers (BEP 23), "peers6" of IPv6 ones
// (BEP 7). ip is used, when it parses as an address, only for requests
// from loopback; ipv4, ipv6, key and trackerid are ignored.
//
// A scrape takes info_hash any number of times up to 1000, and with none
// reports up to 1000 torrents. Torrents not tracked are left out of its
// "files".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var serve func(http.ResponseWriter, *http.Request, []param)
	switch r.URL.Path {
	case "/announce":
		serve = s.serveAnnounce
	case "/scrape":
		serve = s.serveScrape
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if len(r.URL.RawQuery) > maxQueryLen {
		writeFailure(w, "query too long")
		return
	}
	params, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		writeFailure(w, err.Error())
		return
	}
	serve(w, r, params)
}

// httpAnnounceReply is an announce reply. Peers is a string of compact
// IPv4 peers, or a list of dictPeer.
type httpAnnounceReply struct {
	Complete    int    `bencode:"complete"`
	Incomplete  int    `bencode:"incomplete"`
	Interval    int64  `bencode:"interval"`
	MinInterval int64  `bencode:"min interval"`
	Peers       any    `bencode:"peers"`
	Peers6      string `bencode:"peers6,omitempty"`
}

// dictPeer is a peer in a non-compact reply.
type dictPeer struct {
	IP     string `bencode:"ip"`
	PeerID string `bencode:"peer id,omitempty"`
	Port   uint16 `bencode:"port"`
}

type scrapeFile struct {
	Complete   int `bencode:"complete"`
	Downloaded int `bencode:"downloaded"`
	Incomplete int `bencode:"incomplete"`
}

type httpScrapeReply struct {
	Files map[string]scrapeFile `bencode:"files"`
}

func (s *Server) serveAnnounce(w http.ResponseWriter, r *http.Request, params []param) {
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		writeFailure(w, "unknown client address")
		return
	}
	ha, err := parseAnnounce(params, remote.Addr().Unmap().WithZone(""))
	if err != nil {
		writeFailure(w, err.Error())
		return
	}
	res, err := s.announce(&ha.announce, s.cfg.MaxNumWant)
	if err != nil {
		s.log.Debug("announce refused", "remote", r.RemoteAddr, "err", err)
		writeFailure(w, err.Error())
		return
	}
	reply := httpAnnounceReply{
		Complete:    res.complete,
		Incomplete:  res.incomplete,
		Interval:    seconds(s.cfg.Interval),
		MinInterval: seconds(s.cfg.MinInterval),
	}
	if ha.compact {
		addrs := make([]netip.AddrPort, len(res.peers))
		for i, p := range res.peers {
			addrs[i] = p.addr
		}
		reply.Peers = string(tracker.AppendCompact(nil, addrs, false))
		reply.Peers6 = string(tracker.AppendCompact(nil, addrs, true))
	} else {
		list := make([]dictPeer, len(res.peers))
		for i, p := range res.peers {
			list[i] = dictPeer{IP: p.addr.Addr().String(), Port: p.addr.Port()}
			if !ha.noPeerID {
				list[i].PeerID = string(p.id[:])
			}
		}
		reply.Peers = list
	}
	writeBencode(w, reply)
}

func (s *Server) serveScrape(w http.ResponseWriter, r *http.Request, params []param) {
	hashes, err := parseScrape(params)
	if err != nil {
		writeFailure(w, err.Error())
		return
	}
	hashes, res := s.scrape(hashes, maxScrapeHashes)
	reply := httpScrapeReply{Files: make(map[string]scrapeFile, len(hashes))}
	for i, h := range hashes {
		if res[i].known {
			reply.Files[string(h[:])] = scrapeFile{
				Complete:   res[i].complete,
				Downloaded: res[i].downloaded,
				Incomplete: res[i].incomplete,
			}
		}
	}
	writeBencode(w, reply)
}

func writeFailure(w http.ResponseWriter, reason string) {
	writeBencode(w, map[string]any{"failure reason": reason})
}

func writeBencode(w http.ResponseWriter, v any) {
	b, err := bencode.Marshal(v)
	if err != nil { // our own types: cannot happen
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-cache")
	w.Write(b)
}

// seconds is d in whole seconds, at least 1.
func seconds(d time.Duration) int64 {
	return max(int64(d/time.Second), 1)
}

// param is one key=value of a query, both unescaped.
type param struct {
	key, value string
}

// parseQuery splits a raw query into its parameters in order, unescaping
// %XX and '+' (a space). It fails on a malformed escape and on more than
// maxParams parameters. Empty segments ("a=1&&b=2") are skipped; a
// segment without '=' has an empty value. Unlike url.ParseQuery it keeps
// values as raw bytes and the order and repetition of keys.
func parseQuery(raw string) ([]param, error) {
	var params []param
	for raw != "" {
		var seg string
		seg, raw, _ = strings.Cut(raw, "&")
		if seg == "" {
			continue
		}
		if len(params) >= maxParams {
			return nil, failure("too many parameters")
		}
		k, v, _ := strings.Cut(seg, "=")
		key, ok := unescape(k)
		if !ok {
			return nil, failure("malformed escape in query")
		}
		value, ok := unescape(v)
		if !ok {
			return nil, failure("malformed escape in " + safeKey(key))
		}
		params = append(params, param{key, value})
	}
	return params, nil
}

// safeKey is a parameter name fit to quote in a failure reason.
func safeKey(k string) string {
	if len(k) > 32 {
		k = k[:32]
	}
	return strconv.Quote(k)
}

// unescape decodes %XX escapes and '+' in s.
func unescape(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+2 >= len(s) {
				return "", false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			b = append(b, hi<<4|lo)
			i += 2
		case '+':
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// httpAnnounce is a parsed HTTP announce.
type httpAnnounce struct {
	announce
	compact  bool
	noPeerID bool
}

// parseAnnounce reads an announce from params, sent from remote (an
// unmapped address without zone).
func parseAnnounce(params []param, remote netip.Addr) (*httpAnnounce, error) {
	ha := &httpAnnounce{
		announce: announce{left: -1, numWant: -1, family: anyFamily},
		compact:  true,
	}
	var seen struct{ hash, id, port, left, event, numWant, ip bool }
	once := func(flag *bool, key string) error {
		if *flag {
			return failure("repeated parameter " + key)
		}
		*flag = true
		return nil
	}
	var port uint16
	ip := remote
	for _, p := range params {
		var err error
		switch p.key {
		case "info_hash":
			if err = once(&seen.hash, p.key); err == nil {
				err = bytes20(p.value, ha.hash[:], "info_hash")
			}
		case "peer_id":
			if err = once(&seen.id, p.key); err == nil {
				err = bytes20(p.value, ha.id[:], "peer_id")
			}
		case "port":
			if err = once(&seen.port, p.key); err == nil {
				n, perr := strconv.ParseUint(p.value, 10, 16)
				if perr != nil || n == 0 {
					err = failure("bad port")
				}
				port = uint16(n)
			}
		case "left":
			if err = once(&seen.left, p.key); err == nil {
				ha.left, err = integer(p.value, 64, "left")
			}
		case "uploaded", "downloaded":
			_, err = integer(p.value, 64, p.key)
		case "numwant", "num_want":
			if err = once(&seen.numWant, "numwant"); err == nil {
				var n int64
				n, err = integer(p.value, 32, "numwant")
				ha.numWant = int(n)
			}
		case "event":
			if err = once(&seen.event, p.key); err == nil {
				ha.event, err = parseEvent(p.value)
			}
		case "compact":
			ha.compact = p.value != "0"
		case "no_peer_id":
			ha.noPeerID = p.value == "1"
		case "ip":
			if err = once(&seen.ip, p.key); err == nil && remote.IsLoopback() {
				if a, perr := netip.ParseAddr(p.value); perr == nil && !a.IsUnspecified() {
					ip = a.Unmap().WithZone("")
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case !seen.hash:
		return nil, failure("missing info_hash")
	case !seen.id:
		return nil, failure("missing peer_id")
	case !seen.port:
		return nil, failure("missing port")
	}
	ha.addr = netip.AddrPortFrom(ip, port)
	return ha, nil
}

// parseScrape reads the info hashes of a scrape from params.
func parseScrape(params []param) ([]metainfo.Hash, error) {
	var hashes []metainfo.Hash
	for _, p := range params {
		if p.key != "info_hash" {
			continue
		}
		if len(hashes) >= maxScrapeHashes {
			return nil, failure("too many info_hash")
		}
		var h metainfo.Hash
		if err := bytes20(p.value, h[:], "info_hash"); err != nil {
			return nil, err
		}
		hashes = append(hashes, h)
	}
	return hashes, nil
}

func bytes20(v string, dst []byte, key string) error {
	if len(v) != 20 {
		return failure("bad " + key + ": " + strconv.Itoa(len(v)) + " bytes, want 20")
	}
	copy(dst, v)
	return nil
}

func integer(v string, bits int, key string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, bits)
	if err != nil {
		return 0, failure("bad " + key)
	}
	return n, nil
}

func parseEvent(v string) (tracker.Event, error) {
	switch v {
	case "", "empty", "paused":
		return tracker.None, nil
	case "started":
		return tracker.Started, nil
	case "completed":
		return tracker.Completed, nil
	case "stopped":
		return tracker.Stopped, nil
	}
	return 0, failure("bad event")
}
