// Package readcache is a small bounded read cache in front of an
// [io.ReaderAt], for uploading: when many peers request blocks of the same
// pieces, they cost one read of the disk.
//
// The content is cut into units of a fixed size aligned on offset 0 (a
// piece is a natural unit). A [Cache] keeps whole units in buffers of unit
// bytes, at most capacity bytes of them, and reads a missing unit with one
// ReadAt of the underlying reader. Concurrent readers of a unit that is
// being loaded wait for that one load instead of starting their own
// (singleflight); a load that fails is not cached, so the next read tries
// again.
//
// One mutex guards the index of units, an LRU list and the counters; it is
// never held while reading the underlying reader or while copying out of a
// unit. A reader pins the unit it copies from (or waits for), and only
// units that nobody pins are evicted, least recently used first, so a
// buffer is never reused under someone's copy. Units being loaded count
// against the capacity; when every buffer is pinned and no other fits, a
// reader reads straight into its own buffer without caching, so it never
// waits for room. Buffers of evicted or dropped units are reused: once the
// cache is full, neither a hit nor a miss allocates.
//
// [Cache.Invalidate] drops units whose data changed. A load in flight for a
// dropped unit still serves the readers already waiting for it (their
// reads began before the change), but it is no longer reachable: later
// readers load the unit again.
package readcache

import (
	"fmt"
	"io"
	"math"
	"sync"
)

// Cache is a bounded cache of units of an [io.ReaderAt]'s content. Its
// methods are safe for concurrent use.
type Cache struct {
	r        io.ReaderAt
	length   int64
	unit     int
	capacity int64

	mu    sync.Mutex
	units map[int64]*entry // guarded by mu; units cached or being loaded, by index
	lru   entry            // guarded by mu; sentinel of the list of unpinned cached units, most recent first
	free  []*entry         // guarded by mu; spare buffers of dropped units
	stats Stats            // guarded by mu; Capacity is set in New
}

// entry is one cached unit of the content, or a spare buffer.
type entry struct {
	buf []byte // unit bytes, set once; the data is buf[:size] once loaded

	// All guarded by Cache.mu.
	index      int64     // the unit's index in the content
	pins       int       // readers copying from buf or waiting for the load
	loading    bool      // the load is in flight; buf is not ready
	dead       bool      // dropped from Cache.units by Invalidate or a failed load
	err        error     // the load's error, once loading is false
	loaded     sync.Cond // signalled when loading becomes false; L is &Cache.mu
	prev, next *entry    // links in Cache.lru when cached and not pinned
}

// Stats are a [Cache]'s counters.
type Stats struct {
	Hits        int64 // unit lookups that found the unit cached
	Misses      int64 // unit lookups that did not, including those that waited for a load in flight
	Loads       int64 // reads of the underlying reader, including reads that bypassed the cache
	LoadedBytes int64 // bytes returned by those reads
	Evictions   int64 // units dropped to make room for others
	Used        int64 // bytes of the buffers held: cached units, units being loaded and spare buffers
	Capacity    int64 // the most Used can be
}

// New returns a cache over r, whose content is length bytes long, holding
// at most capacity bytes in units of unit bytes (the last unit may be
// shorter). Units are aligned on multiples of unit from offset 0. A
// capacity below two units is raised to two units. r must hold length
// bytes: a unit that r reads short fails with io.ErrUnexpectedEOF.
//
// New panics if r is nil, length is negative or unit is not positive.
func New(r io.ReaderAt, length int64, unit int, capacity int64) *Cache {
	switch {
	case r == nil:
		panic("readcache: nil reader")
	case length < 0:
		panic(fmt.Sprintf("readcache: negative length %d", length))
	case unit <= 0:
		panic(fmt.Sprintf("readcache: unit size %d is not positive", unit))
	}
	capacity = max(capacity, 2*int64(unit))
	c := &Cache{r: r, length: length, unit: unit, capacity: capacity, units: make(map[int64]*entry)}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	c.stats.Capacity = capacity
	return c
}

// ReadAt reads len(p) bytes at off, from cached units, loading missing
// units with one read of the underlying reader each. It follows
// [io.ReaderAt]: it returns io.EOF when the read runs past the end of the
// content, and on a failed load the bytes read before the failed unit
// with an error naming the unit's offset. A failed load is not cached:
// every reader waiting for it gets the error and the next read tries
// again.
func (c *Cache) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("readcache: read at negative offset %d", off)
	}
	if off >= c.length {
		return 0, io.EOF
	}
	var eof error
	if rest := c.length - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	n := 0
	for n < len(p) {
		k, err := c.readUnit(p[n:], off+int64(n))
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, eof
}

// readUnit copies into p the bytes at off up to the end of off's unit or
// of p, whichever comes first, and returns how many it copied.
func (c *Cache) readUnit(p []byte, off int64) (int, error) {
	i := off / int64(c.unit)
	start := i * int64(c.unit)
	size := int(min(int64(c.unit), c.length-start))
	p = p[:min(len(p), size-int(off-start))]

	c.mu.Lock()
	u := c.units[i]
	switch {
	case u != nil && !u.loading:
		c.stats.Hits++
		if u.pins == 0 {
			c.unlink(u)
		}
		u.pins++
	case u != nil:
		c.stats.Misses++
		u.pins++
		for u.loading {
			u.loaded.Wait()
		}
	default:
		c.stats.Misses++
		c.stats.Loads++
		if u = c.spare(); u == nil {
			// Every buffer is pinned: read around the cache.
			c.mu.Unlock()
			n, err := c.load(p, off)
			c.mu.Lock()
			c.stats.LoadedBytes += int64(n)
			c.mu.Unlock()
			return n, err
		}
		u.index, u.pins, u.loading, u.dead, u.err = i, 1, true, false, nil
		c.units[i] = u
		c.mu.Unlock()
		n, err := c.load(u.buf[:size], start)
		c.mu.Lock()
		c.stats.LoadedBytes += int64(n)
		u.loading, u.err = false, err
		if err != nil && !u.dead {
			delete(c.units, i)
			u.dead = true
		}
		u.loaded.Broadcast()
	}
	err := u.err
	c.mu.Unlock()

	n := 0
	if err == nil {
		n = copy(p, u.buf[off-start:])
	}
	c.mu.Lock()
	c.unpin(u)
	c.mu.Unlock()
	return n, err
}

// load reads len(p) bytes at off from the underlying reader.
func (c *Cache) load(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	switch {
	case n == len(p):
		return n, nil // err may be io.EOF at the end of the content
	case err == nil || err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return n, fmt.Errorf("readcache: read %d bytes at %d: %w", len(p), off, err)
}

// spare returns a unit with a free buffer: a spare one, a new one if it
// fits in the capacity, or the least recently used unpinned unit, evicted.
// It returns nil if there is none. c.mu must be held.
func (c *Cache) spare() *entry {
	if n := len(c.free); n > 0 {
		u := c.free[n-1]
		c.free[n-1] = nil
		c.free = c.free[:n-1]
		return u
	}
	if c.stats.Used+int64(c.unit) <= c.capacity {
		c.stats.Used += int64(c.unit)
		u := &entry{buf: make([]byte, c.unit)}
		u.loaded.L = &c.mu
		return u
	}
	if u := c.lru.prev; u != &c.lru {
		c.unlink(u)
		delete(c.units, u.index)
		c.stats.Evictions++
		return u
	}
	return nil
}

// unpin releases a reader's pin of u: the last one puts u at the front of
// the LRU list, or among the spare buffers if u was dropped. c.mu must be
// held.
func (c *Cache) unpin(u *entry) {
	if u.pins--; u.pins > 0 {
		return
	}
	if u.dead {
		c.free = append(c.free, u)
		return
	}
	u.prev, u.next = &c.lru, c.lru.next
	u.prev.next, u.next.prev = u, u
}

// unlink removes u from the LRU list. c.mu must be held.
func (c *Cache) unlink(u *entry) {
	u.prev.next, u.next.prev = u.next, u.prev
	u.prev, u.next = nil, nil
}

// Cached reports whether every byte of [off, off+n) is in the cache now;
// bytes past the end of the content never are. An empty range is cached.
func (c *Cache) Cached(off, n int64) bool {
	if n <= 0 {
		return true
	}
	if off < 0 || off > c.length-n {
		return false
	}
	first, last := off/int64(c.unit), (off+n-1)/int64(c.unit)
	c.mu.Lock()
	defer c.mu.Unlock()
	if last-first >= int64(len(c.units)) {
		return false
	}
	for i := first; i <= last; i++ {
		if u := c.units[i]; u == nil || u.loading {
			return false
		}
	}
	return true
}

// Invalidate drops every cached unit overlapping [off, off+n), for when
// the data under it changes. A load in flight for such a unit still
// completes for the readers waiting for it, but its data is not kept.
func (c *Cache) Invalidate(off, n int64) {
	if off < 0 {
		off, n = 0, n+off
	}
	if n <= 0 {
		return
	}
	n = min(n, math.MaxInt64-off)
	first, last := off/int64(c.unit), (off+n-1)/int64(c.unit)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, u := range c.units {
		if i < first || i > last {
			continue
		}
		delete(c.units, i)
		u.dead = true
		if u.pins == 0 {
			c.unlink(u)
			c.free = append(c.free, u)
		}
	}
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}
