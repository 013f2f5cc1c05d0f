package tracker

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Defaults and bounds of the HTTP client.
const (
	// defaultHTTPInterval replaces an absent or absurd announce interval.
	defaultHTTPInterval = 30 * time.Minute
	// httpMaxSnippet is how much of a non-200 reply's body an error quotes.
	httpMaxSnippet = 200
	// httpMaxErrorReply bounds what is read of a non-200 reply.
	httpMaxErrorReply = 64 << 10
)

// httpClient announces to and scrapes one HTTP(S) tracker (BEP 3, BEP 23,
// BEP 7, BEP 48).
type httpClient struct {
	announce *url.URL // the announce URL, fragment dropped; never modified
	scrape   *url.URL // the scrape URL, or nil when the tracker has none
	orig     string   // the announce URL as given, for URL
	redacted string   // the announce URL without secrets, for errors and logs
	opts     Options

	mu        sync.Mutex
	trackerID string // guarded by mu; the last "tracker id" the tracker sent
}

func newHTTPClient(u *url.URL, o Options) (Client, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("tracker %s: no host", httpRedactURL(u))
	}
	o = o.withDefaults() // idempotent; New has done it already
	a := *u
	a.Fragment, a.RawFragment = "", ""
	c := &httpClient{
		announce: &a,
		orig:     u.String(),
		redacted: httpRedactURL(u),
		opts:     o,
	}
	if s, err := httpScrapeURL(&a); err == nil {
		c.scrape = s
	}
	return c, nil
}

var _ Client = (*httpClient)(nil)

// URL returns the announce URL as it was given.
func (c *httpClient) URL() string { return c.orig }

// Announce sends one announce request and parses the reply.
func (c *httpClient) Announce(ctx context.Context, req *AnnounceRequest) (*AnnounceResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("announce %s: nil request", c.redacted)
	}
	c.mu.Lock()
	tid := c.trackerID
	c.mu.Unlock()

	u := *c.announce
	u.RawQuery = httpAppendQuery(u.RawQuery, httpAnnounceQuery(req, tid))
	body, err := c.get(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("announce %s: %w", c.redacted, err)
	}
	resp, err := ParseHTTPAnnounce(body, c.opts.MaxPeers)
	if err != nil {
		return nil, fmt.Errorf("announce %s: %w", c.redacted, err)
	}
	if resp.TrackerID != "" {
		c.mu.Lock()
		c.trackerID = resp.TrackerID
		c.mu.Unlock()
	}
	c.opts.Logger.Debug("tracker announce", "url", c.redacted, "event", req.Event.String(),
		"peers", len(resp.Peers), "interval", resp.Interval, "warning", resp.Warning)
	return resp, nil
}

// Scrape asks the tracker's scrape URL about the given torrents.
func (c *httpClient) Scrape(ctx context.Context, hashes []metainfo.Hash) (map[metainfo.Hash]ScrapeResult, error) {
	if c.scrape == nil {
		return nil, fmt.Errorf("scrape %s: %w", c.redacted, ErrScrapeUnsupported)
	}
	out := make(map[metainfo.Hash]ScrapeResult, len(hashes))
	asked := make(map[metainfo.Hash]bool, len(hashes))
	var q []byte
	for _, h := range hashes {
		if asked[h] {
			continue
		}
		asked[h] = true
		if len(q) > 0 {
			q = append(q, '&')
		}
		q = append(q, "info_hash="...)
		q = httpEscape(q, h[:])
	}
	if len(asked) == 0 {
		return out, nil
	}
	u := *c.scrape
	u.RawQuery = httpAppendQuery(u.RawQuery, string(q))
	body, err := c.get(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", c.redacted, err)
	}
	files, unknown, err := parseHTTPScrape(body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", c.redacted, err)
	}
	// A tracker whose keys we cannot read, asked about one torrent and
	// answering about one, is answering about that torrent.
	if len(asked) == 1 && len(files) == 0 && len(unknown) == 1 {
		out[hashes[0]] = unknown[0]
		return out, nil
	}
	for h, r := range files {
		if asked[h] {
			out[h] = r
		}
	}
	c.opts.Logger.Debug("tracker scrape", "url", c.redacted, "asked", len(asked), "answered", len(out))
	return out, nil
}

// get fetches rawURL and returns the body of a 200 reply. A reply with
// another status is an error, unless its body is a bencoded failure, which
// is a *FailureError. Errors never contain the URL: it may hold a passkey.
func (c *httpClient) get(ctx context.Context, rawURL string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, httpStripURL(err)
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, httpStripURL(err)
	}
	// Closing a body that was not read to the end closes the connection,
	// which is what an oversized or endless reply deserves.
	defer resp.Body.Close()

	limit := c.opts.MaxReply
	if resp.StatusCode != http.StatusOK {
		// Only a failure reason or the start of an error page is wanted.
		limit = min(limit, httpMaxErrorReply)
	}
	body, readErr := httpReadBody(resp.Body, resp.ContentLength, limit)
	if resp.StatusCode != http.StatusOK {
		if readErr == nil {
			if reason, ok := httpFailureReason(body); ok {
				return nil, &FailureError{Reason: reason}
			}
		}
		return nil, fmt.Errorf("HTTP status %s%s", resp.Status, httpSnippet(body))
	}
	if readErr != nil {
		return nil, httpStripURL(readErr)
	}
	return body, nil
}

// httpReadBody reads a reply body of at most max bytes, never reading more
// than max+1. contentLength is the announced length, or -1. A body over the
// limit is an error, returned with the first max bytes when they were read.
func httpReadBody(r io.Reader, contentLength, max int64) ([]byte, error) {
	if contentLength > max {
		return nil, fmt.Errorf("reply of %d bytes exceeds the limit of %d bytes (Options.MaxReply)", contentLength, max)
	}
	if contentLength >= 0 {
		// net/http never returns more than the announced length.
		b := make([]byte, contentLength)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("read reply: %w", err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if int64(len(b)) > max {
		return b[:max], fmt.Errorf("reply exceeds the limit of %d bytes (Options.MaxReply)", max)
	}
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	return b, nil
}

// httpStripURL unwraps a *url.Error, whose message quotes the whole request
// URL, passkey and all.
func httpStripURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// httpSnippet quotes the start of a body for an error message, printable
// ASCII only.
func httpSnippet(body []byte) string {
	body = body[:min(len(body), httpMaxSnippet)]
	s := []byte(strings.TrimSpace(string(body)))
	if len(s) == 0 {
		return ""
	}
	for i, b := range s {
		if b < 0x20 || b > 0x7e {
			s[i] = '.'
		}
	}
	return ": " + string(s)
}

// httpAnnounceQuery encodes an announce's parameters (BEP 3, BEP 23).
func httpAnnounceQuery(req *AnnounceRequest, trackerID string) string {
	b := make([]byte, 0, 256)
	b = append(b, "info_hash="...)
	b = httpEscape(b, req.InfoHash[:])
	b = append(b, "&peer_id="...)
	b = httpEscape(b, req.PeerID[:])
	b = append(b, "&port="...)
	b = strconv.AppendUint(b, uint64(req.Port), 10)
	b = append(b, "&uploaded="...)
	b = strconv.AppendInt(b, req.Uploaded, 10)
	b = append(b, "&downloaded="...)
	b = strconv.AppendInt(b, req.Downloaded, 10)
	b = append(b, "&left="...)
	b = strconv.AppendInt(b, req.Left, 10)
	b = append(b, "&compact=1"...)
	if ev := req.Event.String(); ev != "" {
		b = append(b, "&event="...)
		b = append(b, ev...)
	}
	if req.NumWant >= 0 {
		b = append(b, "&numwant="...)
		b = strconv.AppendInt(b, int64(req.NumWant), 10)
	}
	b = fmt.Appendf(b, "&key=%08x", req.Key)
	if trackerID != "" {
		b = append(b, "&trackerid="...)
		b = httpEscape(b, []byte(trackerID))
	}
	return string(b)
}

// httpAppendQuery adds our parameters after those already in the URL (a
// private tracker's passkey, say).
func httpAppendQuery(existing, ours string) string {
	switch {
	case existing == "":
		return ours
	case strings.HasSuffix(existing, "&"):
		return existing + ours
	}
	return existing + "&" + ours
}

// httpEscape percent-encodes s as raw bytes: every byte outside
// [A-Za-z0-9.-_~] becomes %XX.
func httpEscape(b, s []byte) []byte {
	const digits = "0123456789ABCDEF"
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == '_', c == '~':
			b = append(b, c)
		default:
			b = append(b, '%', digits[c>>4], digits[c&0xf])
		}
	}
	return b
}

// httpScrapeURL derives a tracker's scrape URL from its announce URL by the
// convention of BEP 48: the last path segment must begin with "announce",
// which becomes "scrape"; anything else has no scrape.
func httpScrapeURL(announce *url.URL) (*url.URL, error) {
	esc := announce.EscapedPath()
	i := strings.LastIndexByte(esc, '/')
	if i < 0 || !strings.HasPrefix(esc[i+1:], "announce") {
		return nil, ErrScrapeUnsupported
	}
	esc = esc[:i+1] + "scrape" + esc[i+1+len("announce"):]
	p, err := url.PathUnescape(esc)
	if err != nil {
		return nil, ErrScrapeUnsupported
	}
	s := *announce
	s.Path, s.RawPath = p, esc
	return &s, nil
}

// httpRedactURL writes a tracker URL without what may be secret: the user
// information, the query (passkeys), and path segments that look like
// passkeys (long runs of letters and digits).
func httpRedactURL(u *url.URL) string {
	var b strings.Builder
	if u.Scheme != "" {
		b.WriteString(u.Scheme)
		b.WriteString("://")
	}
	b.WriteString(u.Host)
	segs := strings.Split(u.EscapedPath(), "/")
	for i, s := range segs {
		if httpLooksSecret(s) {
			segs[i] = "REDACTED"
		}
	}
	b.WriteString(strings.Join(segs, "/"))
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteString("?REDACTED")
	}
	return b.String()
}

// httpLooksSecret reports whether a path segment looks like a passkey: at
// least 16 letters and digits, with at least one digit.
func httpLooksSecret(s string) bool {
	if len(s) < 16 {
		return false
	}
	digit := false
	for i := range len(s) {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			digit = true
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		default:
			return false
		}
	}
	return digit
}

// httpRaw holds the bytes of one bencode value, aliasing the input it was
// decoded from (unlike bencode.RawMessage, which copies): replies can be
// megabytes, and every part of them is parsed before ParseHTTPAnnounce
// returns.
type httpRaw []byte

// UnmarshalBencode keeps the value's bytes.
func (r *httpRaw) UnmarshalBencode(b []byte) error {
	*r = b
	return nil
}

// httpAnnounceReply is the dictionary of an announce reply (BEP 3, BEP 23,
// BEP 7). Every field is kept raw so that a failure reason is found even
// when other fields are malformed, and so that each error names its field.
type httpAnnounceReply struct {
	FailureReason httpRaw `bencode:"failure reason"`
	Warning       httpRaw `bencode:"warning message"`
	Interval      httpRaw `bencode:"interval"`
	MinInterval   httpRaw `bencode:"min interval"`
	Complete      httpRaw `bencode:"complete"`
	Incomplete    httpRaw `bencode:"incomplete"`
	TrackerID     httpRaw `bencode:"tracker id"`
	Peers         httpRaw `bencode:"peers"`
	Peers6        httpRaw `bencode:"peers6"`
}

// httpPeerDict is one entry of a non-compact peer list (BEP 3). The peer id
// is not needed and is skipped.
type httpPeerDict struct {
	IP   httpRaw `bencode:"ip"`
	Port httpRaw `bencode:"port"`
}

// httpDecode unmarshals one bencode value with bounds fitting its size.
func httpDecode(data []byte, v any) error {
	d := bencode.Decoder{MaxSize: max(int64(len(data)), 1)}
	return d.Unmarshal(data, v)
}

// httpBadReply wraps a decoding error in ErrBadReply with the field it was in.
func httpBadReply(field string, err error) error {
	if field == "" {
		return fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	return fmt.Errorf("%w: %q: %w", ErrBadReply, field, err)
}

// ParseHTTPAnnounce parses the body of an HTTP tracker's announce reply,
// keeping at most maxPeers peers (DefaultMaxPeers when maxPeers <= 0). A
// "failure reason" is returned as a *FailureError; a malformed reply is an
// error wrapping ErrBadReply. Peers may be compact strings ("peers" with 6
// bytes each, "peers6" with 18) or lists of dictionaries; hostnames, port 0
// and unspecified addresses are skipped.
func ParseHTTPAnnounce(body []byte, maxPeers int) (*AnnounceResponse, error) {
	if maxPeers <= 0 {
		maxPeers = DefaultMaxPeers
	}
	var r httpAnnounceReply
	if err := httpDecode(body, &r); err != nil {
		return nil, httpBadReply("", err)
	}
	if r.FailureReason != nil {
		s, err := httpString(r.FailureReason, "failure reason")
		if err != nil {
			return nil, err
		}
		return nil, &FailureError{Reason: s}
	}
	resp := &AnnounceResponse{Seeders: -1, Leechers: -1}
	var err error
	if resp.Warning, err = httpString(r.Warning, "warning message"); err != nil {
		return nil, err
	}
	if resp.Interval, err = httpInterval(r.Interval, "interval", defaultHTTPInterval); err != nil {
		return nil, err
	}
	if resp.MinInterval, err = httpInterval(r.MinInterval, "min interval", 0); err != nil {
		return nil, err
	}
	if resp.Seeders, err = httpCount(r.Complete, "complete"); err != nil {
		return nil, err
	}
	if resp.Leechers, err = httpCount(r.Incomplete, "incomplete"); err != nil {
		return nil, err
	}
	if r.TrackerID != nil {
		var id []byte
		if err := httpDecode(r.TrackerID, &id); err != nil {
			return nil, httpBadReply("tracker id", err)
		}
		if len(id) <= maxTrackerStringLen { // a longer one is dropped, not cut
			resp.TrackerID = string(id)
		}
	}
	if resp.Peers, err = httpPeers(nil, r.Peers, "peers", CompactV4Len, maxPeers); err != nil {
		return nil, err
	}
	if resp.Peers, err = httpPeers(resp.Peers, r.Peers6, "peers6", CompactV6Len, maxPeers); err != nil {
		return nil, err
	}
	return resp, nil
}

// httpString decodes a human-readable string: cut to
// maxTrackerStringLen bytes and made valid UTF-8. Missing is "".
func httpString(raw httpRaw, field string) (string, error) {
	if raw == nil {
		return "", nil
	}
	var b []byte
	if err := httpDecode(raw, &b); err != nil {
		return "", httpBadReply(field, err)
	}
	return strings.ToValidUTF8(string(b[:min(len(b), maxTrackerStringLen)]), "\uFFFD"), nil
}

// httpInterval decodes a number of seconds, bounded by clampInterval.
// Missing is def.
func httpInterval(raw httpRaw, field string, def time.Duration) (time.Duration, error) {
	if raw == nil {
		return def, nil
	}
	var n int64
	if err := httpDecode(raw, &n); err != nil {
		return 0, httpBadReply(field, err)
	}
	// Bound n before multiplying so that it cannot overflow.
	n = min(n, int64(maxTrackerInterval/time.Second)+1)
	return clampInterval(time.Duration(n)*time.Second, def), nil
}

// httpCount decodes a peer count; missing or negative is -1.
func httpCount(raw httpRaw, field string) (int, error) {
	if raw == nil {
		return -1, nil
	}
	var n int64
	if err := httpDecode(raw, &n); err != nil {
		return 0, httpBadReply(field, err)
	}
	if n < 0 {
		return -1, nil
	}
	return int(min(n, math.MaxInt32)), nil
}

// httpPeers appends to peers, up to max of them in all, the peers of raw:
// a compact string of size-byte entries, or a list of dictionaries.
func httpPeers(peers []netip.AddrPort, raw httpRaw, field string, size, max int) ([]netip.AddrPort, error) {
	if raw == nil {
		return peers, nil
	}
	room := max - len(peers)
	switch c := raw[0]; {
	case '0' <= c && c <= '9':
		// The decoder has checked raw is a well-formed string, so the
		// bytes after the first ':' are its contents; nothing is copied.
		s := raw[bytes.IndexByte(raw, ':')+1:]
		got, err := ParseCompact(s, size, room)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", field, err)
		}
		return append(peers, got...), nil
	case c == 'l':
		var items []httpRaw
		if err := httpDecode(raw, &items); err != nil {
			return nil, httpBadReply(field, err)
		}
		for _, it := range items {
			if len(peers) >= max {
				break
			}
			p, ok, err := httpDictPeer(it)
			if err != nil {
				return nil, httpBadReply(field, err)
			}
			if ok {
				peers = append(peers, p)
			}
		}
		return peers, nil
	}
	return nil, fmt.Errorf("%w: %q is neither a string nor a list", ErrBadReply, field)
}

// httpDictPeer decodes one {"ip", "port", "peer id"} dictionary. ok is
// false for a peer to skip: a hostname, a bad address, a port out of range.
func httpDictPeer(raw httpRaw) (p netip.AddrPort, ok bool, err error) {
	var d httpPeerDict
	if err := httpDecode(raw, &d); err != nil {
		return p, false, err
	}
	var ipStr string
	var port int64
	if d.IP == nil || d.Port == nil {
		return p, false, nil
	}
	if err := httpDecode(d.IP, &ipStr); err != nil {
		return p, false, fmt.Errorf("ip: %w", err)
	}
	if err := httpDecode(d.Port, &port); err != nil {
		return p, false, fmt.Errorf("port: %w", err)
	}
	ip, perr := netip.ParseAddr(ipStr)
	if perr != nil || ip.Zone() != "" || ip.IsUnspecified() || port < 1 || port > math.MaxUint16 {
		return p, false, nil
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true, nil
}

// httpFailureReason returns the "failure reason" of a body that is a bencoded
// dictionary holding one.
func httpFailureReason(body []byte) (string, bool) {
	var r struct {
		FailureReason httpRaw `bencode:"failure reason"`
	}
	if len(body) == 0 || body[0] != 'd' || httpDecode(body, &r) != nil || r.FailureReason == nil {
		return "", false
	}
	s, err := httpString(r.FailureReason, "failure reason")
	return s, err == nil
}

// httpScrapeReply is the dictionary of a scrape reply (BEP 48).
type httpScrapeReply struct {
	FailureReason httpRaw `bencode:"failure reason"`
	Files         httpRaw `bencode:"files"`
}

// httpScrapeFile is one torrent's entry in a scrape reply.
type httpScrapeFile struct {
	Complete   httpRaw `bencode:"complete"`
	Downloaded httpRaw `bencode:"downloaded"`
	Incomplete httpRaw `bencode:"incomplete"`
}

// ParseHTTPScrape parses the body of an HTTP tracker's scrape reply
// (BEP 48). Its "files" keys are read as raw 20-byte info hashes, as 40
// hex digits, or as the UTF-8 encoding of the hash's bytes taken as
// Latin-1 characters (what the npm bittorrent-tracker server sends); other
// keys are skipped. A "failure reason" is returned as a *FailureError; a
// malformed reply is an error wrapping ErrBadReply.
func ParseHTTPScrape(body []byte) (map[metainfo.Hash]ScrapeResult, error) {
	files, _, err := parseHTTPScrape(body)
	return files, err
}

// parseHTTPScrape is ParseHTTPScrape also returning the entries whose keys
// it could not read.
func parseHTTPScrape(body []byte) (files map[metainfo.Hash]ScrapeResult, unknown []ScrapeResult, err error) {
	var r httpScrapeReply
	if err := httpDecode(body, &r); err != nil {
		return nil, nil, httpBadReply("", err)
	}
	if r.FailureReason != nil {
		s, err := httpString(r.FailureReason, "failure reason")
		if err != nil {
			return nil, nil, err
		}
		return nil, nil, &FailureError{Reason: s}
	}
	var entries map[string]httpRaw
	if r.Files != nil {
		if err := httpDecode(r.Files, &entries); err != nil {
			return nil, nil, httpBadReply("files", err)
		}
	}
	files = make(map[metainfo.Hash]ScrapeResult, len(entries))
	for k, raw := range entries {
		var f httpScrapeFile
		if err := httpDecode(raw, &f); err != nil {
			return nil, nil, httpBadReply("files", err)
		}
		var res ScrapeResult
		for _, x := range []struct {
			raw  httpRaw
			name string
			dst  *int
		}{
			{f.Complete, "complete", &res.Seeders},
			{f.Downloaded, "downloaded", &res.Completed},
			{f.Incomplete, "incomplete", &res.Leechers},
		} {
			n, err := httpCount(x.raw, x.name)
			if err != nil {
				return nil, nil, fmt.Errorf("files: %w", err)
			}
			*x.dst = max(n, 0)
		}
		if h, ok := httpScrapeKey(k); ok {
			files[h] = res
		} else {
			unknown = append(unknown, res)
		}
	}
	return files, unknown, nil
}

// httpScrapeKey reads the info hash a scrape reply's "files" key stands
// for: the raw 20 bytes (BEP 48), 40 hex digits, or the bytes as Latin-1
// characters encoded in UTF-8. The last is what the npm bittorrent-tracker
// server sends: it keys its reply object by a JavaScript "binary" string
// (uint8-util's hex2bin) and its bencode encoder writes keys as UTF-8, so
// each byte from 0x80 up takes two bytes.
func httpScrapeKey(k string) (metainfo.Hash, bool) {
	var h metainfo.Hash
	switch {
	case len(k) == metainfo.HashSize:
		copy(h[:], k)
		return h, true
	case len(k) == 2*metainfo.HashSize && httpIsHex(k):
		_, err := hex.Decode(h[:], []byte(k))
		return h, err == nil
	case len(k) > metainfo.HashSize && len(k) <= 2*metainfo.HashSize &&
		utf8.ValidString(k) && utf8.RuneCountInString(k) == metainfo.HashSize:
		i := 0
		for _, r := range k {
			if r > 0xff {
				return metainfo.Hash{}, false
			}
			h[i] = byte(r)
			i++
		}
		return h, true
	}
	return metainfo.Hash{}, false
}

func httpIsHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
