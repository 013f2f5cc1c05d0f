package aiotorrent

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/aiotorrent/aiotorrent/peer"
)

// limiter is a token bucket on payload bytes (x/time/rate: a well-kept
// implementation, safe for concurrent use). Zero means unlimited; a block
// never waits then. A change of the limit wakes the waits in progress,
// which take their tokens again under the new limit.
type limiter struct {
	on      atomic.Bool
	l       *rate.Limiter
	mu      sync.Mutex
	changed chan struct{} // closed and replaced by set
}

func newLimiter(bytesPerSec int64) *limiter {
	l := &limiter{l: rate.NewLimiter(rate.Inf, peer.BlockSize), changed: make(chan struct{})}
	l.set(bytesPerSec)
	return l
}

// set changes the rate; 0 or less means unlimited.
func (l *limiter) set(bytesPerSec int64) {
	if bytesPerSec <= 0 {
		l.on.Store(false)
		l.l.SetLimit(rate.Inf)
	} else {
		// A burst of a tenth of a second (at least a block) keeps the
		// rate even over any second while letting a block through at a
		// time.
		l.l.SetBurst(int(max(peer.BlockSize, bytesPerSec/10)))
		l.l.SetLimit(rate.Limit(bytesPerSec))
		l.on.Store(true)
	}
	l.mu.Lock()
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// limit returns the rate in bytes per second, 0 when unlimited.
func (l *limiter) limit() int64 {
	if !l.on.Load() {
		return 0
	}
	return int64(l.l.Limit())
}

// wait takes n bytes' worth of tokens (n is at most a block, which the
// burst always holds), waiting for them.
func (l *limiter) wait(ctx context.Context, n int) error {
	for l.on.Load() {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		r := l.l.ReserveN(time.Now(), min(n, l.l.Burst()))
		d := r.Delay()
		if d == 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			t.Stop()
			r.Cancel()
			return ctx.Err()
		case <-changed:
			t.Stop()
			r.Cancel()
		}
	}
	return nil
}

// limited reports whether any of ls has a limit.
func limited(ls ...*limiter) bool {
	for _, l := range ls {
		if l.on.Load() {
			return true
		}
	}
	return false
}

// waitAll takes n bytes' worth of tokens from each limiter, waiting for
// them; it returns early with ctx's error.
func waitAll(ctx context.Context, n int, ls ...*limiter) error {
	for _, l := range ls {
		if err := l.wait(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// connSlots is a counting limit whose size may change at run time.
type connSlots struct {
	used atomic.Int64
	max  atomic.Int64
}

func (s *connSlots) acquire() bool {
	for {
		u := s.used.Load()
		if u >= s.max.Load() {
			return false
		}
		if s.used.CompareAndSwap(u, u+1) {
			return true
		}
	}
}

func (s *connSlots) release() { s.used.Add(-1) }

// SetUploadLimit limits the upload rate of the whole client, in bytes
// per second; 0 removes the limit. It takes effect at once.
func (c *Client) SetUploadLimit(bytesPerSec int64) { c.up.set(bytesPerSec) }

// SetDownloadLimit limits the download rate of the whole client, in bytes
// per second; 0 removes the limit. It takes effect at once.
func (c *Client) SetDownloadLimit(bytesPerSec int64) { c.down.set(bytesPerSec) }

// UploadLimit and DownloadLimit return the client's limits (0: none).
func (c *Client) UploadLimit() int64   { return c.up.limit() }
func (c *Client) DownloadLimit() int64 { return c.down.limit() }

// SetMaxConns changes the most peer connections of the whole client.
// Connections over a lowered limit are not closed; new ones wait.
func (c *Client) SetMaxConns(n int) {
	if n > 0 {
		c.conns.max.Store(int64(n))
	}
}

// SetMaxConnsPerTorrent changes the most peer connections of each torrent.
func (c *Client) SetMaxConnsPerTorrent(n int) {
	if n > 0 {
		c.perTorrent.Store(int64(n))
	}
}

// SetUploadSlots changes how many peers each torrent uploads to at once
// (its regular unchoke slots; one optimistic unchoke comes on top). The
// torrents choose again at once.
func (c *Client) SetUploadSlots(n int) {
	if n <= 0 {
		return
	}
	c.slots.Store(int64(n))
	for _, t := range c.Torrents() {
		if e := t.running(); e != nil {
			e.call(func() { e.chokeAt = time.Time{} })
		}
	}
}

// SetUploadLimit limits the upload rate of this torrent, in bytes per
// second (0: none), besides the client's limit.
func (t *Torrent) SetUploadLimit(bytesPerSec int64) { t.up.set(bytesPerSec) }

// SetDownloadLimit limits the download rate of this torrent, in bytes per
// second (0: none), besides the client's limit.
func (t *Torrent) SetDownloadLimit(bytesPerSec int64) { t.down.set(bytesPerSec) }
