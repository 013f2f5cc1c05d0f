// Package tracker announces to BitTorrent trackers and scrapes them, over
// HTTP(S) (BEP 3, BEP 23 compact peers, BEP 7 IPv6) and UDP (BEP 15), behind
// one [Client] interface. Every reply is bounded and every call runs under
// the caller's context. The [github.com/aiotorrent/aiotorrent/tracker/server]
// package is a tracker server.
package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Event is the event an announce reports.
type Event int

// The announce events of BEP 3. Their numeric values are those of the UDP
// protocol (BEP 15).
const (
	None      Event = 0
	Completed Event = 1
	Started   Event = 2
	Stopped   Event = 3
)

// String returns the event's name as the HTTP protocol writes it ("" for None).
func (e Event) String() string {
	switch e {
	case Completed:
		return "completed"
	case Started:
		return "started"
	case Stopped:
		return "stopped"
	}
	return ""
}

// PeerID is the 20-byte id a client gives itself.
type PeerID [20]byte

// AnnounceRequest is what a client tells a tracker about itself.
type AnnounceRequest struct {
	InfoHash   metainfo.Hash
	PeerID     PeerID
	Port       uint16 // where we accept peer connections
	Uploaded   int64
	Downloaded int64
	Left       int64
	Event      Event
	// NumWant is how many peers we want; negative leaves it to the tracker.
	NumWant int
	// Key identifies this client to the tracker across IP changes.
	Key uint32
}

// AnnounceResponse is a tracker's answer to an announce.
type AnnounceResponse struct {
	// Interval is how long the tracker asks us to wait before announcing
	// again; MinInterval, when not zero, is the least it accepts.
	Interval    time.Duration
	MinInterval time.Duration
	// Seeders and Leechers count the swarm, or are -1 when not told.
	Seeders  int
	Leechers int
	// Peers are the addresses the tracker gave, IPv4 and IPv6, at most
	// Options.MaxPeers of them.
	Peers []netip.AddrPort
	// Warning is an HTTP tracker's "warning message": the announce worked.
	Warning string
	// TrackerID is an HTTP tracker's "tracker id", to send back next time
	// (the HTTP client does this itself).
	TrackerID string
}

// ScrapeResult is what a tracker knows of one torrent's swarm.
type ScrapeResult struct {
	Seeders   int // peers with the whole torrent ("complete")
	Completed int // downloads completed so far ("downloaded")
	Leechers  int // peers still downloading ("incomplete")
}

// Client talks to one tracker. Implementations are safe for concurrent use.
type Client interface {
	// Announce reports our state and returns peers.
	Announce(ctx context.Context, req *AnnounceRequest) (*AnnounceResponse, error)
	// Scrape returns swarm counts for the given torrents. An HTTP tracker
	// leaves out torrents it does not know; UDP cannot tell, so there they
	// come back as zeros. Counts a tracker leaves out or sends negative are
	// 0. It returns ErrScrapeUnsupported when the tracker has no scrape.
	Scrape(ctx context.Context, hashes []metainfo.Hash) (map[metainfo.Hash]ScrapeResult, error)
	// URL returns the announce URL the client was made for.
	URL() string
}

// Errors a caller may branch on.
var (
	// ErrScrapeUnsupported: the tracker's URL has no scrape convention.
	ErrScrapeUnsupported = errors.New("tracker does not support scrape")
	// ErrBadReply: the tracker answered with something malformed.
	ErrBadReply = errors.New("malformed tracker reply")
)

// FailureError is a tracker refusing a request: an HTTP "failure reason",
// or a UDP error action.
type FailureError struct {
	Reason string
}

func (e *FailureError) Error() string { return "tracker failure: " + e.Reason }

// Defaults of [Options].
const (
	DefaultMaxPeers     = 1000
	DefaultMaxReply     = 2 << 20 // bytes of one HTTP reply body
	DefaultUDPBase      = 15 * time.Second
	DefaultUDPRetries   = 8
	DefaultTimeout      = 30 * time.Second
	DefaultMinInterval  = 30 * time.Second
	maxTrackerInterval  = 24 * time.Hour
	maxTrackerStringLen = 4096
)

// Options configures the clients made by [New]. The zero value is usable.
type Options struct {
	// HTTPClient makes HTTP requests (nil: a client with Timeout that
	// follows no redirect to another scheme).
	HTTPClient *http.Client
	// UserAgent is sent to HTTP trackers (default "aiotorrent").
	UserAgent string
	// Timeout bounds one HTTP request (default DefaultTimeout). A context
	// deadline bounds any call further.
	Timeout time.Duration
	// UDPBase is the first UDP retransmission timeout; attempt n waits
	// UDPBase·2^n (BEP 15: 15 s). Tests set it small.
	UDPBase time.Duration
	// UDPRetries is how many times a UDP request is sent before giving up
	// (default DefaultUDPRetries, BEP 15's 8).
	UDPRetries int
	// MaxPeers caps the peers kept from one reply (default DefaultMaxPeers).
	MaxPeers int
	// MaxReply caps an HTTP reply body in bytes (default DefaultMaxReply).
	MaxReply int64
	// Logger receives debug logs (nil: none).
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	out := *o
	if out.UserAgent == "" {
		out.UserAgent = "aiotorrent"
	}
	if out.Timeout <= 0 {
		out.Timeout = DefaultTimeout
	}
	if out.UDPBase <= 0 {
		out.UDPBase = DefaultUDPBase
	}
	if out.UDPRetries <= 0 {
		out.UDPRetries = DefaultUDPRetries
	}
	if out.MaxPeers <= 0 {
		out.MaxPeers = DefaultMaxPeers
	}
	if out.MaxReply <= 0 {
		out.MaxReply = DefaultMaxReply
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.HTTPClient == nil {
		out.HTTPClient = &http.Client{Timeout: out.Timeout, CheckRedirect: sameSchemeRedirect}
	}
	return out
}

// New returns a client for the announce URL: http and https URLs get an
// HTTP client, udp URLs a UDP client.
func New(announceURL string, opts Options) (Client, error) {
	u, err := url.Parse(announceURL)
	if err != nil {
		return nil, fmt.Errorf("tracker %q: %w", announceURL, err)
	}
	o := opts.withDefaults()
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return newHTTPClient(u, o)
	case "udp":
		return newUDPClient(u, o)
	}
	return nil, fmt.Errorf("tracker %q: unsupported scheme %q", announceURL, u.Scheme)
}

// sameSchemeRedirect follows at most 5 redirects, never to another scheme
// (an https tracker must not downgrade us to http).
func sameSchemeRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	if req.URL.Scheme != via[0].URL.Scheme {
		return fmt.Errorf("refusing redirect from %s to %s", via[0].URL.Scheme, req.URL.Scheme)
	}
	return nil
}

// clampInterval bounds an interval a tracker gave to something sane:
// negative or absurd values become the default.
func clampInterval(d, def time.Duration) time.Duration {
	if d <= 0 || d > maxTrackerInterval {
		return def
	}
	return d
}
