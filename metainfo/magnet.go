package metainfo

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Bounds on what ParseMagnet accepts. A magnet link comes from outside (a
// web page, the clipboard, a command line), so every list it can grow is
// capped.
const (
	magnetMaxLen         = 64 << 10 // whole link, in bytes
	magnetMaxTrackers    = 200      // distinct tr / tr.N values
	magnetMaxPeers       = 200      // distinct x.pe values
	magnetMaxWebSeeds    = 200      // distinct ws values
	magnetMaxSelectItems = 10000    // so entries, summed over every so parameter
	magnetMaxSelectIndex = 1 << 24  // largest file index so may name
)

// URL schemes a magnet link's trackers and web seeds may use.
var (
	magnetTrackerSchemes = []string{"http", "https", "udp", "wss"}
	magnetWebSeedSchemes = []string{"http", "https"}
)

// Magnet is a parsed magnet link (BEP 9).
//
// A Magnet returned by [ParseMagnet] is valid: its trackers, web seeds and
// peers passed the checks described there. [Magnet.String] turns it back
// into a canonical link that ParseMagnet reads to an equal value.
type Magnet struct {
	// InfoHash is the v1 info hash, from xt=urn:btih: (40 hex or 32
	// base32 characters).
	InfoHash Hash
	// DisplayName is the dn parameter: a name to show until the metadata
	// arrives. Empty when the link has none.
	DisplayName string
	// Trackers are the tr (and tr.N) tracker URLs, in link order, with
	// exact duplicates removed.
	Trackers []string
	// Peers are the x.pe peer addresses, each "host:port" with IPv6
	// addresses in brackets, in link order without duplicates.
	Peers []string
	// WebSeeds are the ws web seed URLs (BEP 19), in link order without
	// duplicates.
	WebSeeds []string
	// SelectOnly is the so parameter (BEP 53): the file indices to
	// download, in link order. Empty means every file.
	SelectOnly []IndexRange
}

// IndexRange is an inclusive range of file indices, First <= Last, as used
// by the BEP 53 so parameter; a single index i is the range {i, i}.
type IndexRange struct{ First, Last int }

// Selects reports whether the file with index fileIndex is to be
// downloaded: true when SelectOnly is empty or one of its ranges covers
// fileIndex. A negative index is never selected; a nil m selects all
// others.
func (m *Magnet) Selects(fileIndex int) bool {
	if fileIndex < 0 {
		return false
	}
	if m == nil || len(m.SelectOnly) == 0 {
		return true
	}
	for _, r := range m.SelectOnly {
		if r.First <= fileIndex && fileIndex <= r.Last {
			return true
		}
	}
	return false
}

// ParseMagnet parses a magnet link such as
//
//	magnet:?xt=urn:btih:<info hash>&dn=<name>&tr=<tracker>&x.pe=<peer>&so=0,2,4-6
//
// Leading and trailing white space is ignored, as is a "#fragment". The
// scheme "magnet" and the parameter names match case-insensitively.
//
// The link must carry an exact topic xt=urn:btih: with a 40-hex or
// 32-base32 v1 info hash. Several xt parameters (also xt.N) may appear: the
// btih one is kept, others are ignored, and two different btih hashes are an
// error. A link whose only BitTorrent exact topic is a v2 urn:btmh: multihash
// gives an error wrapping [ErrV2Only]; a hybrid link with both uses the btih.
//
// Trackers (tr and tr.N) must be absolute http, https, udp or wss URLs, web
// seeds (ws) http or https URLs, and peers (x.pe) "host:port" with a port
// from 1 to 65535, an IPv4 address, a bracketed IPv6 address or a host
// name; peers are stored in a normalised form (lower-case host name,
// canonical IP, port without leading zeros). The so parameter is a comma
// list of indices and inclusive ranges "a-b". The first non-empty dn is
// kept. Other parameters (xl, kt, as, xs, mt, ...) are ignored.
//
// Links longer than 64 KiB, or with more than 200 trackers, 200 peers, 200
// web seeds or 10000 so entries, are rejected. Every error message starts
// with "magnet:".
func ParseMagnet(s string) (*Magnet, error) {
	if len(s) > magnetMaxLen {
		return nil, fmt.Errorf("magnet: link is %d bytes, over the %d-byte limit", len(s), magnetMaxLen)
	}
	s = strings.TrimSpace(s)
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return nil, fmt.Errorf("magnet: not a magnet link (no URI scheme): %s", magnetQuote(s))
	}
	if !strings.EqualFold(s[:colon], "magnet") {
		return nil, fmt.Errorf("magnet: not a magnet link: scheme is %s, want \"magnet\"", magnetQuote(s[:colon]))
	}
	query, ok := strings.CutPrefix(s[colon+1:], "?")
	if !ok {
		return nil, errors.New(`magnet: no "?" after "magnet:"; want magnet:?xt=urn:btih:...`)
	}
	if i := strings.IndexByte(query, '#'); i >= 0 {
		query = query[:i]
	}

	p := magnetParser{}
	for pair := range strings.SplitSeq(query, "&") {
		if pair == "" {
			continue
		}
		if err := p.param(pair); err != nil {
			return nil, err
		}
	}
	if !p.haveV1 {
		if p.haveV2 {
			return nil, fmt.Errorf("magnet: link has only a v2 (urn:btmh) info hash and no v1 (urn:btih) one: %w", ErrV2Only)
		}
		return nil, errors.New("magnet: no xt=urn:btih: exact topic (info hash)")
	}
	return &p.m, nil
}

// magnetParser holds the state of one ParseMagnet call.
type magnetParser struct {
	m              Magnet
	haveV1, haveV2 bool
	seen           map[string]bool // "tr\x00url", "ws\x00url", "x.pe\x00addr"
	selectItems    int
}

// param handles one "key=value" pair of the query.
func (p *magnetParser) param(pair string) error {
	rawKey, rawVal, _ := strings.Cut(pair, "=")
	key, err := url.QueryUnescape(rawKey)
	if err != nil {
		return fmt.Errorf("magnet: parameter name %s: %w", magnetQuote(rawKey), err)
	}
	name := magnetParamName(key)
	if name == "" {
		return nil // unknown parameter: ignored, value not even decoded
	}
	// key matched a known name, so it is short and printable apart from
	// the digits of a tr.N style suffix; cap it for error messages.
	if len(key) > 24 {
		key = key[:24] + "..."
	}
	val, err := url.QueryUnescape(rawVal)
	if err != nil {
		return fmt.Errorf("magnet: %s: %w", key, err)
	}

	switch name {
	case "xt":
		return p.exactTopic(key, val)
	case "dn":
		if p.m.DisplayName == "" {
			p.m.DisplayName = val
		}
	case "tr":
		if err := CheckTrackerURL(val); err != nil {
			return fmt.Errorf("magnet: %s: tracker %s: %w", key, magnetQuote(val), err)
		}
		if p.add(&p.m.Trackers, "tr", val) && len(p.m.Trackers) > magnetMaxTrackers {
			return fmt.Errorf("magnet: more than %d trackers", magnetMaxTrackers)
		}
	case "ws":
		if err := CheckWebSeedURL(val); err != nil {
			return fmt.Errorf("magnet: %s: web seed %s: %w", key, magnetQuote(val), err)
		}
		if p.add(&p.m.WebSeeds, "ws", val) && len(p.m.WebSeeds) > magnetMaxWebSeeds {
			return fmt.Errorf("magnet: more than %d web seeds", magnetMaxWebSeeds)
		}
	case "x.pe":
		addr, err := magnetParsePeer(val)
		if err != nil {
			return fmt.Errorf("magnet: x.pe: peer %s: %w", magnetQuote(val), err)
		}
		if p.add(&p.m.Peers, "x.pe", addr) && len(p.m.Peers) > magnetMaxPeers {
			return fmt.Errorf("magnet: more than %d peers", magnetMaxPeers)
		}
	case "so":
		return p.selectOnly(val)
	}
	return nil
}

// exactTopic handles one xt value.
func (p *magnetParser) exactTopic(key, val string) error {
	const btih, btmh = "urn:btih:", "urn:btmh:"
	switch {
	case magnetHasPrefixFold(val, btih):
		enc := val[len(btih):]
		if len(enc) != 2*HashSize && len(enc) != 32 {
			return fmt.Errorf("magnet: %s: urn:btih: info hash has %d characters, want 40 hex or 32 base32", key, len(enc))
		}
		h, err := ParseHash(enc)
		if err != nil {
			return fmt.Errorf("magnet: %s: %w", key, err)
		}
		if p.haveV1 && h != p.m.InfoHash {
			return fmt.Errorf("magnet: two different urn:btih: info hashes, %s and %s", p.m.InfoHash, h)
		}
		p.m.InfoHash, p.haveV1 = h, true
	case magnetHasPrefixFold(val, btmh):
		// BEP 52 v2 info hashes are SHA-256 multihashes: 0x12 (sha2-256),
		// 0x20 (32 bytes), then the digest, all in hex.
		mh := val[len(btmh):]
		if len(mh) != 68 || !magnetHasPrefixFold(mh, "1220") || !magnetIsHex(mh) {
			return fmt.Errorf("magnet: %s: urn:btmh: want 68 hex digits starting 1220 (SHA-256 multihash), got %s", key, magnetQuote(mh))
		}
		p.haveV2 = true
	}
	// Any other URN (sha1, ed2k, tree:tiger, ...) is for another network.
	return nil
}

// selectOnly handles one so value: a comma list of indices and ranges.
func (p *magnetParser) selectOnly(val string) error {
	n := strings.Count(val, ",") + 1
	if p.selectItems+n > magnetMaxSelectItems {
		return fmt.Errorf("magnet: so: more than %d entries", magnetMaxSelectItems)
	}
	p.selectItems += n
	for entry := range strings.SplitSeq(val, ",") {
		r, err := magnetParseRange(entry)
		if err != nil {
			return fmt.Errorf("magnet: so: entry %s: %w", magnetQuote(entry), err)
		}
		p.m.SelectOnly = append(p.m.SelectOnly, r)
	}
	return nil
}

// add appends v to *list unless kind already holds it, and reports whether
// it was appended.
func (p *magnetParser) add(list *[]string, kind, v string) bool {
	k := kind + "\x00" + v
	if p.seen[k] {
		return false
	}
	if p.seen == nil {
		p.seen = make(map[string]bool)
	}
	p.seen[k] = true
	*list = append(*list, v)
	return true
}

// magnetParamName maps a parameter name to the one ParseMagnet handles
// ("xt", "dn", "tr", "ws", "x.pe", "so"), or "" for one it ignores. Names
// match case-insensitively, and tr, xt and ws may carry a numeric ".N"
// suffix (tr.1, tr.2, ...), as some clients write.
func magnetParamName(key string) string {
	k := strings.ToLower(key)
	if i := strings.LastIndexByte(k, '.'); i > 0 && magnetIsDigits(k[i+1:]) {
		switch k[:i] {
		case "tr", "xt", "ws":
			return k[:i]
		}
		return ""
	}
	switch k {
	case "xt", "dn", "tr", "ws", "x.pe", "so":
		return k
	}
	return ""
}

// CheckTrackerURL reports why s cannot be a tracker announce URL: it must
// be an absolute http, https, udp or wss URL with a host.
func CheckTrackerURL(s string) error { return magnetCheckURL(s, magnetTrackerSchemes...) }

// CheckWebSeedURL reports why s cannot be a BEP 19 web seed: it must be an
// absolute http or https URL with a host.
func CheckWebSeedURL(s string) error { return magnetCheckURL(s, magnetWebSeedSchemes...) }

// magnetCheckURL checks that raw is an absolute URL with a host and one of
// the given (lower-case) schemes.
func magnetCheckURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error text repeats the whole URL
		}
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme == "" {
		return errors.New("no URL scheme")
	}
	if !slices.Contains(schemes, strings.ToLower(u.Scheme)) {
		return fmt.Errorf("scheme %s not supported, want one of %s", magnetQuote(u.Scheme), strings.Join(schemes, ", "))
	}
	if u.Hostname() == "" {
		return errors.New("no host")
	}
	return nil
}

// magnetParsePeer validates an x.pe address and returns it normalised:
// "host:port" for IPv4 and host names (lower-cased), "[addr]:port" for
// IPv6, the IP in canonical form and the port without leading zeros.
func magnetParsePeer(v string) (string, error) {
	host, portStr, err := net.SplitHostPort(v)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", errors.New(ae.Err) // the AddrError text repeats v
		}
		return "", err
	}
	if portStr == "" || len(portStr) > 5 || !magnetIsDigits(portStr) {
		return "", fmt.Errorf("port %s is not a number from 1 to 65535", magnetQuote(portStr))
	}
	port, _ := strconv.Atoi(portStr)
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("port %d is not from 1 to 65535", port)
	}
	ps := strconv.Itoa(port)

	if strings.HasPrefix(v, "[") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return "", fmt.Errorf("%s in brackets is not an IPv6 address", magnetQuote(host))
		}
		if a.Zone() != "" {
			return "", fmt.Errorf("IPv6 address %s has a zone, which a magnet link cannot use", magnetQuote(host))
		}
		return net.JoinHostPort(a.String(), ps), nil
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		return net.JoinHostPort(a.String(), ps), nil
	}
	if err := magnetCheckHostname(host); err != nil {
		return "", err
	}
	return net.JoinHostPort(strings.ToLower(host), ps), nil
}

// magnetCheckHostname checks that h is a DNS name: dot-separated labels of
// 1 to 63 letters, digits, '-' or '_', not starting or ending with '-', at
// most 253 bytes, and not ending in an all-digit label (which would be a
// malformed IPv4 address).
func magnetCheckHostname(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if len(h) > 253 {
		return fmt.Errorf("host name is %d bytes, over 253", len(h))
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("host %s is not a valid host name or IP address (bad label length)", magnetQuote(h))
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host %s is not a valid host name or IP address (label starts or ends with '-')", magnetQuote(h))
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %s is not a valid host name or IP address (bad character %q)", magnetQuote(h), c)
			}
		}
	}
	if magnetIsDigits(labels[len(labels)-1]) {
		return fmt.Errorf("host %s is not a valid IPv4 address or host name", magnetQuote(h))
	}
	return nil
}

// magnetParseRange parses one so entry: "i" or "first-last".
func magnetParseRange(s string) (IndexRange, error) {
	a, b, isRange := strings.Cut(s, "-")
	first, err := magnetParseIndex(a)
	if err != nil {
		return IndexRange{}, err
	}
	if !isRange {
		return IndexRange{first, first}, nil
	}
	last, err := magnetParseIndex(b)
	if err != nil {
		return IndexRange{}, err
	}
	if first > last {
		return IndexRange{}, fmt.Errorf("range %d-%d runs backwards", first, last)
	}
	return IndexRange{first, last}, nil
}

// magnetParseIndex parses a file index: decimal digits only, at most
// magnetMaxSelectIndex.
func magnetParseIndex(s string) (int, error) {
	if s == "" || !magnetIsDigits(s) {
		return 0, fmt.Errorf("index %s is not a non-negative integer", magnetQuote(s))
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > magnetMaxSelectIndex {
		return 0, fmt.Errorf("index %s is over the limit %d", magnetQuote(s), magnetMaxSelectIndex)
	}
	return int(n), nil
}

// String returns the canonical link for m:
//
//	magnet:?xt=urn:btih:<40 lower-case hex>&dn=...&tr=...&ws=...&x.pe=...&so=...
//
// with one tr, ws or x.pe parameter per element, parameters only for fields
// that are set, and values query-escaped (so is written as plain digits,
// commas and dashes, as in BEP 53). String does not validate m; for a
// Magnet from [ParseMagnet], ParseMagnet(m.String()) gives an equal Magnet
// (as long as the link fits the 64 KiB limit). A nil m gives "".
func (m *Magnet) String() string {
	if m == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("magnet:?xt=urn:btih:")
	b.WriteString(m.InfoHash.String())
	if m.DisplayName != "" {
		b.WriteString("&dn=")
		b.WriteString(url.QueryEscape(m.DisplayName))
	}
	for _, v := range m.Trackers {
		b.WriteString("&tr=")
		b.WriteString(url.QueryEscape(v))
	}
	for _, v := range m.WebSeeds {
		b.WriteString("&ws=")
		b.WriteString(url.QueryEscape(v))
	}
	for _, v := range m.Peers {
		b.WriteString("&x.pe=")
		b.WriteString(url.QueryEscape(v))
	}
	for i, r := range m.SelectOnly {
		if i == 0 {
			b.WriteString("&so=")
		} else {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(r.First))
		if r.Last != r.First {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(r.Last))
		}
	}
	return b.String()
}

// magnetQuote quotes s for an error message, cut to a readable length.
func magnetQuote(s string) string {
	const limit = 80
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

// magnetHasPrefixFold reports whether s starts with prefix, ignoring ASCII
// case.
func magnetHasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// magnetIsDigits reports whether s is non-empty and all ASCII digits.
func magnetIsDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// magnetIsHex reports whether s is all hex digits.
func magnetIsHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
