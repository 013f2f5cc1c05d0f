package httpserve

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serveFile serves the bytes of one file through http.ServeContent,
// which does HEAD, Range, If-Range, If-None-Match and 416.
func (h *handler) serveFile(w http.ResponseWriter, r *http.Request) {
	f, ok := h.lookup(r.PathValue("index"))
	if !ok {
		http.Error(w, "no such file", http.StatusNotFound)
		return
	}
	select {
	case h.sem <- struct{}{}:
		defer func() { <-h.sem }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many readers, retry", http.StatusServiceUnavailable)
		return
	}

	ctype, _ := typeOf(f.Path)
	hd := w.Header()
	hd.Set("Content-Type", ctype) // set, so ServeContent never sniffs
	hd.Set("Etag", `"`+h.etagID+"-"+strconv.Itoa(f.Index)+`"`)
	hd.Set("Accept-Ranges", "bytes")
	hd.Set("Content-Disposition", contentDisposition(baseName(f.Path)))
	hd.Set("X-Content-Type-Options", "nosniff")
	if activeType(ctype) {
		hd.Set("Content-Security-Policy", "sandbox")
	}

	rd, err := h.src.Open(r.Context(), f.Index)
	if err != nil {
		h.log.Warn("httpserve: open file", "index", f.Index, "err", err)
		hd.Del("Etag")
		hd.Del("Content-Disposition")
		http.Error(w, "file not available", http.StatusServiceUnavailable)
		return
	}
	content := &lazySeeker{r: rd, size: f.Length}
	defer rd.Close()
	if lim, ok := rd.(limiter); ok {
		// A range's end is known: nothing past it need be fetched ahead.
		if v := r.Header["Range"]; len(v) == 1 {
			if _, last, found, valid := parseRange(v[0], f.Length); valid && found {
				lim.SetLimit(last + 1)
			}
		}
	}

	r = singleRange(r, f.Length)
	http.ServeContent(w, r, "", time.Time{}, content)

	switch {
	case content.err != nil && r.Context().Err() == nil:
		h.log.Warn("httpserve: read file", "index", f.Index, "err", content.err)
	case content.err != nil:
		h.log.Debug("httpserve: client gone", "index", f.Index, "remote", r.RemoteAddr)
	}
	if dw, ok := w.(*deadlineWriter); ok && dw.err != nil {
		h.log.Debug("httpserve: write to client", "index", f.Index, "remote", r.RemoteAddr, "err", dw.err)
	}
}

// limiter is implemented by readers that can be told where reading will
// stop, to fetch nothing past it (aiotorrent's Reader).
type limiter interface{ SetLimit(end int64) }

// lookup returns the file whose index is s, a decimal number.
func (h *handler) lookup(s string) (File, bool) {
	if s == "" || len(s) > 9 {
		return File{}, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return File{}, false
		}
	}
	i, err := strconv.Atoi(s)
	if err != nil {
		return File{}, false
	}
	f, ok := h.byIdx[i]
	return f, ok
}

// lazySeeker is the io.ReadSeeker given to http.ServeContent. Seeks only
// record the position and the size comes from the File, so ServeContent's
// seeks to the end and back, and a HEAD or 304 or 416 response, never
// reach the torrent reader (where a seek may move its read-ahead); the
// reader is seeked once, on the first read of a range.
type lazySeeker struct {
	r    io.ReadSeeker
	size int64
	pos  int64 // position ServeContent asked for
	at   int64 // position of r
	err  error // the first read error other than io.EOF
}

func (l *lazySeeker) Seek(off int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = off
	case io.SeekCurrent:
		abs = l.pos + off
	case io.SeekEnd:
		abs = l.size + off
	default:
		return 0, errors.New("httpserve: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("httpserve: negative position")
	}
	l.pos = abs
	return abs, nil
}

func (l *lazySeeker) Read(p []byte) (int, error) {
	if l.pos >= l.size {
		return 0, io.EOF
	}
	if l.pos != l.at {
		if _, err := l.r.Seek(l.pos, io.SeekStart); err != nil {
			l.err = err
			return 0, err
		}
		l.at = l.pos
	}
	if rem := l.size - l.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := l.r.Read(p)
	l.pos += int64(n)
	l.at = l.pos
	if err != nil && err != io.EOF && l.err == nil {
		l.err = err
	}
	return n, err
}

// singleRange returns r with its Range header reduced to what the
// handler serves, given the content's size:
//
//   - no Range, a unit other than bytes, or an invalid range set: no Range
//     (200; RFC 9110 section 14.2 has a server ignore an unknown unit and
//     allows it to ignore an invalid set);
//   - no satisfiable range: a range starting at size, which ServeContent
//     answers with 416 and Content-Range: bytes */size (or 200 when size
//     is 0, as it does);
//   - else the first satisfiable range alone, as "bytes=first-last".
//
// Serving only the first range of a multi-range request is a choice: it
// is a valid single-part 206 (the client reads Content-Range), and it
// keeps a request from making the reader seek back and forth over the
// torrent, or from leaving ServeContent's multipart goroutine reading
// after the handler returned. Players and browsers send one range.
func singleRange(r *http.Request, size int64) *http.Request {
	v, ok := r.Header["Range"]
	if !ok {
		return r
	}
	spec := ""
	if len(v) == 1 {
		first, last, found, valid := parseRange(v[0], size)
		switch {
		case !valid:
		case !found:
			spec = "bytes=" + strconv.FormatInt(size, 10) + "-"
		default:
			spec = "bytes=" + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10)
		}
	}
	r2 := r.WithContext(r.Context())
	r2.Header = r.Header.Clone()
	if spec == "" {
		r2.Header.Del("Range")
	} else {
		r2.Header.Set("Range", spec)
	}
	return r2
}

// parseRange parses a Range header value (RFC 9110 section 14.1) against
// a representation of size bytes. valid is false when the unit is not
// bytes or the set is malformed; else found says whether a range is
// satisfiable, and first and last are the bytes of the first one.
// Numbers too large for int64 count as infinitely large.
func parseRange(s string, size int64) (first, last int64, found, valid bool) {
	unit, set, ok := strings.Cut(s, "=")
	if !ok || !strings.EqualFold(strings.Trim(unit, " \t"), "bytes") {
		return 0, 0, false, false
	}
	n := 0
	for elem := range strings.SplitSeq(set, ",") {
		elem = strings.Trim(elem, " \t")
		if elem == "" {
			continue // the list rule allows empty elements
		}
		n++
		a, b, ok := strings.Cut(elem, "-")
		if !ok {
			return 0, 0, false, false
		}
		a, b = strings.Trim(a, " \t"), strings.Trim(b, " \t")
		if a == "" {
			// suffix-range: the last b bytes.
			suffix, ok := parseDigits(b)
			if !ok {
				return 0, 0, false, false
			}
			if !found && suffix > 0 && size > 0 {
				first, last, found = size-min(suffix, size), size-1, true
			}
			continue
		}
		start, ok := parseDigits(a)
		if !ok {
			return 0, 0, false, false
		}
		end := int64(-1) // open-ended
		if b != "" {
			if end, ok = parseDigits(b); !ok || end < start {
				return 0, 0, false, false
			}
		}
		if !found && start < size {
			last = size - 1
			if end >= 0 && end < last {
				last = end
			}
			first, found = start, true
		}
	}
	if n == 0 {
		return 0, 0, false, false
	}
	return first, last, found, true
}

// parseDigits parses a non-empty string of ASCII digits, saturating at
// the largest int64.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	const maxInt64 = 1<<63 - 1
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > (maxInt64-int64(c-'0'))/10 {
			v = maxInt64
			continue
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// contentDisposition returns an inline Content-Disposition for a file
// name, with an ASCII filename fallback and the exact name as an RFC 8187
// filename* (RFC 6266 section 4.3).
func contentDisposition(name string) string {
	if name == "" {
		return "inline"
	}
	name = strings.ToValidUTF8(name, "\uFFFD")
	var fb, enc strings.Builder
	for _, r := range name {
		if r >= 0x20 && r < 0x7f && r != '"' && r != '\\' && r != '%' {
			fb.WriteRune(r)
		} else {
			fb.WriteByte('_')
		}
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isAttrChar(c) {
			enc.WriteByte(c)
			continue
		}
		enc.WriteByte('%')
		enc.WriteByte(hex[c>>4])
		enc.WriteByte(hex[c&15])
	}
	return `inline; filename="` + fb.String() + `"; filename*=UTF-8''` + enc.String()
}

// isAttrChar reports whether c is an RFC 8187 attr-char.
func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
