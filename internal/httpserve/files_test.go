package httpserve

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

const testID = "0123456789abcdef0123456789abcdef01234567"

// newTestSource returns a source of a few in-memory files; index 2 is
// skipped, as a padding file would be.
func newTestSource() *testSource {
	return &testSource{
		name: "Test torrent",
		id:   testID,
		files: []*testFile{
			memFile(0, "dir/Movie (2020).mp4", randomBytes(1, 1<<20+123)),
			memFile(1, "dir/small.bin", randomBytes(2, 1000)),
			memFile(3, "empty.txt", nil),
			memFile(4, "dir/clip.webm", randomBytes(4, 5000)),
		},
	}
}

// get serves one request through h into a recorder.
func get(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkBody checks a 200, 206 or 416 response to a request for data, as
// RFC 9110 has them, and returns an error describing the first mismatch.
func checkBody(status int, hd http.Header, body, data []byte) error {
	size := int64(len(data))
	switch status {
	case http.StatusOK:
		if !bytes.Equal(body, data) {
			return fmt.Errorf("200 body of %d bytes differs from the %d of the file", len(body), len(data))
		}
		if cl := hd.Get("Content-Length"); cl != strconv.FormatInt(size, 10) {
			return fmt.Errorf("200 Content-Length %q, want %d", cl, size)
		}
	case http.StatusPartialContent:
		if ct := hd.Get("Content-Type"); strings.HasPrefix(ct, "multipart/") {
			return fmt.Errorf("206 is multipart (%s)", ct)
		}
		var first, last, total int64
		cr := hd.Get("Content-Range")
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &total); err != nil {
			return fmt.Errorf("206 Content-Range %q: %v", cr, err)
		}
		if total != size || first < 0 || first > last || last >= size {
			return fmt.Errorf("206 Content-Range %q for a file of %d bytes", cr, size)
		}
		if !bytes.Equal(body, data[first:last+1]) {
			return fmt.Errorf("206 body of %d bytes differs from bytes %d-%d", len(body), first, last)
		}
		if cl := hd.Get("Content-Length"); cl != strconv.FormatInt(last-first+1, 10) {
			return fmt.Errorf("206 Content-Length %q for range %d-%d", cl, first, last)
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if cr, want := hd.Get("Content-Range"), fmt.Sprintf("bytes */%d", size); cr != want {
			return fmt.Errorf("416 Content-Range %q, want %q", cr, want)
		}
	default:
		return fmt.Errorf("status %d", status)
	}
	return nil
}

func TestFullGet(t *testing.T) {
	src := newTestSource()
	srv := httptest.NewServer(NewHandler(src.source(), Options{}))
	defer srv.Close()
	for _, f := range src.files {
		for _, path := range []string{FilePath(f.File), fmt.Sprintf("/files/%d", f.Index), fmt.Sprintf("/files/%d/other-name.bin", f.Index)} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if err := checkBody(resp.StatusCode, resp.Header, body, f.data); err != nil || resp.StatusCode != 200 {
				t.Errorf("GET %s: status %d: %v", path, resp.StatusCode, err)
			}
		}
	}
	src.waitReleased(t)
}

func TestRanges(t *testing.T) {
	src := newTestSource()
	h := NewHandler(src.source(), Options{})
	data := src.files[0].data
	size := int64(len(data))
	tests := []struct {
		rng         string
		status      int
		first, last int64 // for 206
	}{
		{"bytes=0-0", 206, 0, 0},
		{"bytes=0-99", 206, 0, 99},
		{"bytes=100-", 206, 100, size - 1},
		{fmt.Sprintf("bytes=%d-%d", size-1, size-1), 206, size - 1, size - 1},
		{fmt.Sprintf("bytes=%d-", size-1), 206, size - 1, size - 1},
		{fmt.Sprintf("bytes=%d-%d", size-10, size+1000), 206, size - 10, size - 1},
		{"bytes=-1", 206, size - 1, size - 1},
		{"bytes=-500", 206, size - 500, size - 1},
		{fmt.Sprintf("bytes=-%d", size+5), 206, 0, size - 1},
		{"bytes=0-", 206, 0, size - 1},
		{"Bytes=5-9", 206, 5, 9},
		{"bytes= 5 - 9 ", 206, 5, 9},
		{"bytes=0-1,10-20", 206, 0, 1},                               // multi-range: the first range only
		{fmt.Sprintf("bytes=%d-,7-8", size), 206, 7, 8},              // the first satisfiable one
		{",,,,bytes=1-2", 200, 0, 0},                                 // no unit
		{"bytes=,,,,,,,,,,1-2,,,,", 206, 1, 2},                       // many commas
		{"bytes=" + strings.Repeat("0-0,", 2000) + "3-3", 206, 0, 0}, // many ranges
		{"bytes=0-99999999999999999999999", 206, 0, size - 1},
		{"bytes=-99999999999999999999999", 206, 0, size - 1},
		// unsatisfiable: 416 with Content-Range: bytes */size
		{fmt.Sprintf("bytes=%d-", size), 416, 0, 0},
		{fmt.Sprintf("bytes=%d-%d", size+10, size+20), 416, 0, 0},
		{"bytes=99999999999999999999-", 416, 0, 0},
		{"bytes=-0", 416, 0, 0},
		{fmt.Sprintf("bytes=%d-,%d-", size, size+1), 416, 0, 0},
		// invalid or unknown: ignored, 200 (RFC 9110 section 14.2)
		{"bytes=abc", 200, 0, 0},
		{"bytes=5-2", 200, 0, 0},
		{"items=0-1", 200, 0, 0},
		{"bytes=", 200, 0, 0},
		{"bytes=,,,", 200, 0, 0},
		{"bytes=-", 200, 0, 0},
		{"bytes=--1", 200, 0, 0},
		{"bytes=1-2-3", 200, 0, 0},
		{"bytes=0x10-20", 200, 0, 0},
		{"bytes=+1-2", 200, 0, 0},
		{"bytes=1--2", 200, 0, 0},
		{"bytes=0-1,5-2", 200, 0, 0},
		{"bytes 0-1", 200, 0, 0},
		{"bytes=0-1\x00", 200, 0, 0},
		{"", 200, 0, 0},
	}
	for _, tt := range tests {
		for _, method := range []string{"GET", "HEAD"} {
			rec := get(h, method, "/files/0", "Range", tt.rng)
			if rec.Code != tt.status {
				t.Errorf("%s Range %.40q: status %d, want %d", method, tt.rng, rec.Code, tt.status)
				continue
			}
			if method == "HEAD" {
				// A 416's error text reaches the recorder; a server
				// drops it.
				if rec.Code != 416 && rec.Body.Len() != 0 {
					t.Errorf("HEAD Range %.40q: %d bytes of body", tt.rng, rec.Body.Len())
				}
				continue
			}
			if err := checkBody(rec.Code, rec.Header(), rec.Body.Bytes(), data); err != nil {
				t.Errorf("Range %.40q: %v", tt.rng, err)
			}
			if tt.status == 206 {
				if want := fmt.Sprintf("bytes %d-%d/%d", tt.first, tt.last, size); rec.Header().Get("Content-Range") != want {
					t.Errorf("Range %.40q: Content-Range %q, want %q", tt.rng, rec.Header().Get("Content-Range"), want)
				}
			}
		}
	}
	src.waitReleased(t)
}

func TestRandomRanges(t *testing.T) {
	src := newTestSource()
	srv := httptest.NewServer(NewHandler(src.source(), Options{}))
	defer srv.Close()
	data := src.files[0].data
	size := int64(len(data))
	rng := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		var spec string
		switch rng.IntN(4) {
		case 0:
			a := rng.Int64N(size)
			spec = fmt.Sprintf("bytes=%d-%d", a, a+rng.Int64N(size-a))
		case 1:
			spec = fmt.Sprintf("bytes=%d-", rng.Int64N(size))
		case 2:
			spec = fmt.Sprintf("bytes=-%d", 1+rng.Int64N(size+10))
		case 3:
			a := rng.Int64N(size)
			spec = fmt.Sprintf("bytes=%d-%d", a, a+rng.Int64N(3*size))
		}
		req, _ := http.NewRequest("GET", srv.URL+"/files/0", nil)
		req.Header.Set("Range", spec)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 206 {
			t.Errorf("Range %s: status %d", spec, resp.StatusCode)
		}
		if err := checkBody(resp.StatusCode, resp.Header, body, data); err != nil {
			t.Errorf("Range %s: %v", spec, err)
		}
	}
	src.waitReleased(t)
}

func TestRangeReadsFromItsStart(t *testing.T) {
	// ServeContent must not sniff the type or otherwise read the start of
	// the file for a range, whatever the extension: that would fetch the
	// torrent's first piece for every seek.
	for _, path := range []string{"a.mkv", "a.unknownext", "noext"} {
		src := &testSource{id: testID, files: []*testFile{memFile(0, path, randomBytes(3, 10000))}}
		h := NewHandler(src.source(), Options{})
		if rec := get(h, "GET", "/files/0", "Range", "bytes=5000-5100"); rec.Code != 206 {
			t.Fatalf("%s: status %d", path, rec.Code)
		}
		for _, method := range []string{"HEAD", "GET"} {
			_ = get(h, method, "/files/0", "If-None-Match", `"`+testID+`-0"`)
		}
		_ = get(h, "HEAD", "/files/0")
		_ = get(h, "GET", "/files/0", "Range", "bytes=20000-")
		if len(src.readStart) != 1 || src.readStart[0] != 5000 {
			t.Errorf("%s: readers first read at %v, want [5000] (HEAD, 304 and 416 read nothing)", path, src.readStart)
		}
		src.waitReleased(t)
	}
}

func TestIfRangeAndETag(t *testing.T) {
	src := newTestSource()
	h := NewHandler(src.source(), Options{})
	etag := `"` + testID + `-1"`
	tests := []struct {
		name   string
		header []string
		status int
	}{
		{"If-Range right ETag", []string{"Range", "bytes=10-20", "If-Range", etag}, 206},
		{"If-Range wrong ETag", []string{"Range", "bytes=10-20", "If-Range", `"other-1"`}, 200},
		{"If-Range other file's ETag", []string{"Range", "bytes=10-20", "If-Range", `"` + testID + `-0"`}, 200},
		{"If-Range weak ETag", []string{"Range", "bytes=10-20", "If-Range", "W/" + etag}, 200},
		{"If-Range date", []string{"Range", "bytes=10-20", "If-Range", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200},
		{"If-Range garbage", []string{"Range", "bytes=10-20", "If-Range", "garbage"}, 200},
		{"If-Range right, unsatisfiable", []string{"Range", "bytes=5000-", "If-Range", etag}, 416},
		{"If-Range wrong, unsatisfiable", []string{"Range", "bytes=5000-", "If-Range", `"x"`}, 200},
		{"If-None-Match match", []string{"If-None-Match", etag}, 304},
		{"If-None-Match list", []string{"If-None-Match", `"a", ` + etag}, 304},
		{"If-None-Match other", []string{"If-None-Match", `"a"`}, 200},
		{"If-Match other", []string{"If-Match", `"a"`}, 412},
		{"If-Modified-Since", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200},
	}
	for _, tt := range tests {
		rec := get(h, "GET", "/files/1/small.bin", tt.header...)
		if rec.Code != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, rec.Code, tt.status)
			continue
		}
		if tt.status == 304 || tt.status == 412 {
			continue
		}
		if err := checkBody(rec.Code, rec.Header(), rec.Body.Bytes(), src.files[1].data); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if tt.status == 206 && rec.Header().Get("Content-Range") != "bytes 10-20/1000" {
			t.Errorf("%s: Content-Range %q", tt.name, rec.Header().Get("Content-Range"))
		}
	}
	src.waitReleased(t)
}

func TestFileHeaders(t *testing.T) {
	src := &testSource{id: testID}
	tests := []struct {
		path, ctype, disposition string
	}{
		{"a/b/Movie (2020).mp4", "video/mp4", `inline; filename="Movie (2020).mp4"; filename*=UTF-8''Movie%20%282020%29.mp4`},
		{"x.MP4", "video/mp4", ""},
		{"x.m4v", "video/mp4", ""},
		{"x.webm", "video/webm", ""},
		{"x.mkv", "video/x-matroska", ""},
		{"x.mp3", "audio/mpeg", ""},
		{"x.flac", "audio/flac", ""},
		{"x.ogg", "audio/ogg", ""},
		{"x.srt", "application/x-subrip", ""},
		{"x.vtt", "text/vtt; charset=utf-8", ""},
		{"x.txt", "text/plain; charset=utf-8", ""},
		{"x.nfo", "text/plain", ""},
		{"x.jpg", "image/jpeg", ""},
		{"x.pdf", "application/pdf", ""},
		{"x.qqqzzz", "application/octet-stream", ""},
		{"noext", "application/octet-stream", ""},
		{`Ünïcödé "quoted" 100%.mkv`, "video/x-matroska", `inline; filename="_n_c_d_ _quoted_ 100_.mkv"; filename*=UTF-8''%C3%9Cn%C3%AFc%C3%B6d%C3%A9%20%22quoted%22%20100%25.mkv`},
	}
	for i, tt := range tests {
		src.files = append(src.files, memFile(i, tt.path, randomBytes(uint64(i), 100)))
	}
	h := NewHandler(src.source(), Options{})
	for i, tt := range tests {
		for _, method := range []string{"GET", "HEAD"} {
			rec := get(h, method, fmt.Sprintf("/files/%d", i))
			hd := rec.Header()
			if rec.Code != 200 {
				t.Fatalf("%s %s: status %d", method, tt.path, rec.Code)
			}
			if got := hd.Get("Content-Type"); got != tt.ctype {
				t.Errorf("%s: Content-Type %q, want %q", tt.path, got, tt.ctype)
			}
			if got, want := hd.Get("Etag"), fmt.Sprintf(`"%s-%d"`, testID, i); got != want {
				t.Errorf("%s: ETag %q, want %q", tt.path, got, want)
			}
			if got := hd.Get("Accept-Ranges"); got != "bytes" {
				t.Errorf("%s: Accept-Ranges %q", tt.path, got)
			}
			if got := hd.Get("Last-Modified"); got != "" {
				t.Errorf("%s: Last-Modified %q", tt.path, got)
			}
			if got := hd.Get("Content-Length"); got != "100" {
				t.Errorf("%s %s: Content-Length %q", method, tt.path, got)
			}
			if method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD %s: %d bytes of body", tt.path, rec.Body.Len())
			}
			got := hd.Get("Content-Disposition")
			if !strings.HasPrefix(got, "inline; filename=") || (tt.disposition != "" && got != tt.disposition) {
				t.Errorf("%s: Content-Disposition %q, want %q", tt.path, got, tt.disposition)
			}
		}
	}
	src.waitReleased(t)
}

func TestActiveContentSandboxed(t *testing.T) {
	src := &testSource{id: testID, files: []*testFile{
		memFile(0, "index.html", []byte("<script>alert(1)</script>")),
		memFile(1, "x.svg", []byte("<svg/>")),
		memFile(2, "x.mp4", []byte("....")),
	}}
	h := NewHandler(src.source(), Options{})
	for i, want := range []string{"sandbox", "sandbox", ""} {
		rec := get(h, "GET", fmt.Sprintf("/files/%d", i))
		if got := rec.Header().Get("Content-Security-Policy"); got != want {
			t.Errorf("file %d: Content-Security-Policy %q, want %q", i, got, want)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("file %d: X-Content-Type-Options %q", i, got)
		}
	}
}

func TestNotFound(t *testing.T) {
	src := newTestSource()
	h := NewHandler(src.source(), Options{})
	for _, target := range []string{
		"/files/abc",
		"/files/-1",
		"/files/+1",
		"/files/2", // skipped index
		"/files/5",
		"/files/1e3",
		"/files/0x1",
		"/files/%201",
		"/files/1%00",
		"/files/99999999999999999999999",
		"/files/9999999999",
		"/files/%2e%2e",
		"/files/%2e%2e/x",
		"/files/..%2f..%2fetc%2fpasswd",
		"/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"/files/",
		"/files",
		"/etc/passwd",
		"/index.html",
		"/files/x/0",
	} {
		rec := get(h, "GET", target)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", target, rec.Code)
		}
	}
	if n := src.opens.Load(); n != 0 {
		t.Errorf("%d readers opened", n)
	}
}

func TestTraversal(t *testing.T) {
	// Dot segments are cleaned by ServeMux and redirected; the redirect,
	// followed, never reaches a file either.
	src := newTestSource()
	h := NewHandler(src.source(), Options{})
	for _, target := range []string{
		"/files/../../etc/passwd",
		"/files/./../etc/passwd",
		"/files/0/../../../etc/passwd",
		"/files//etc/passwd",
		"//files/../etc/passwd",
		"/files/../files/x",
	} {
		rec := get(h, "GET", target)
		switch rec.Code {
		case http.StatusNotFound:
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc := rec.Header().Get("Location")
			if next := get(h, "GET", loc); next.Code != http.StatusNotFound {
				t.Errorf("GET %s: redirect to %q, which gives %d, want 404", target, loc, next.Code)
			}
		default:
			t.Errorf("GET %s: status %d, want 404 or a redirect", target, rec.Code)
		}
	}
	if n := src.opens.Load(); n != 0 {
		t.Errorf("%d readers opened", n)
	}

	// The same through a real server and raw request lines, which no
	// client cleans.
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, target := range []string{"/files/../../etc/passwd", "/files/%2e%2e/x", "/files/%2E%2E/%2E%2E/etc/passwd"} {
		status := rawGet(t, srv.Listener.Addr().String(), target)
		if status != 404 && status != 301 && status != 307 && status != 308 {
			t.Errorf("raw GET %s: status %d", target, status)
		}
	}
	if n := src.opens.Load(); n != 0 {
		t.Errorf("%d readers opened", n)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	src := newTestSource()
	h := NewHandler(src.source(), Options{})
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		for _, target := range []string{"/", "/files/0", "/files/0/Movie.mp4"} {
			rec := get(h, method, target)
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: status %d, want 405", method, target, rec.Code)
			}
			if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "HEAD") {
				t.Errorf("%s %s: Allow %q", method, target, allow)
			}
		}
	}
	if n := src.opens.Load(); n != 0 {
		t.Errorf("%d readers opened", n)
	}
}

func TestOpenError(t *testing.T) {
	src := newTestSource()
	src.openErr = errors.New("torrent closed")
	h := NewHandler(src.source(), Options{})
	rec := get(h, "GET", "/files/0")
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "torrent closed") {
		t.Errorf("body %q shows the internal error", rec.Body.String())
	}
}

func TestFilePath(t *testing.T) {
	tests := []struct {
		f    File
		want string
	}{
		{File{Index: 3, Path: "Movie (2020).mkv"}, "/files/3/Movie%20(2020).mkv"},
		{File{Index: 0, Path: "dir/sub/a b.mp4"}, "/files/0/a%20b.mp4"},
		{File{Index: 7, Path: "<script>&'+=?#%.txt"}, "/files/7/%3Cscript%3E%26%27%2B%3D%3F%23%25.txt"},
		{File{Index: 1, Path: "Ünï.mp3"}, "/files/1/%C3%9Cn%C3%AF.mp3"},
		{File{Index: 2, Path: ".."}, "/files/2"},
		{File{Index: 2, Path: "a/."}, "/files/2"},
		{File{Index: 2, Path: ""}, "/files/2"},
		{File{Index: 12, Path: "dir/"}, "/files/12/dir"},
	}
	for _, tt := range tests {
		if got := FilePath(tt.f); got != tt.want {
			t.Errorf("FilePath(%q) = %q, want %q", tt.f.Path, got, tt.want)
		}
	}
	// Every FilePath serves its file.
	src := &testSource{id: testID}
	for i, tt := range tests {
		src.files = append(src.files, memFile(i, tt.f.Path, randomBytes(uint64(i), 10)))
	}
	h := NewHandler(src.source(), Options{})
	for _, f := range src.files {
		if rec := get(h, "GET", FilePath(f.File)); rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), f.data) {
			t.Errorf("GET %s: status %d", FilePath(f.File), rec.Code)
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		s            string
		size         int64
		first, last  int64
		found, valid bool
	}{
		{"bytes=0-0", 10, 0, 0, true, true},
		{"bytes=-3", 10, 7, 9, true, true},
		{"bytes=-3", 0, 0, 0, false, true},
		{"bytes=0-", 0, 0, 0, false, true},
		{"bytes=9-100", 10, 9, 9, true, true},
		{"bytes=10-", 10, 0, 0, false, true},
		{"bytes=10-,2-3", 10, 2, 3, true, true},
		{"bytes=2-3,x", 10, 0, 0, false, false},
		{"BYTES=1-1", 10, 1, 1, true, true},
		{"bytes=9223372036854775807-", 10, 0, 0, false, true},
		{"bytes=9223372036854775808-9223372036854775809", 10, 0, 0, false, true},
		{"bytes=0-9223372036854775808", 10, 0, 9, true, true},
		{"bytes=1-0", 10, 0, 0, false, false},
		{"items=1-0", 10, 0, 0, false, false},
	}
	for _, tt := range tests {
		first, last, found, valid := parseRange(tt.s, tt.size)
		if first != tt.first || last != tt.last || found != tt.found || valid != tt.valid {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v, %v; want %d, %d, %v, %v",
				tt.s, tt.size, first, last, found, valid, tt.first, tt.last, tt.found, tt.valid)
		}
	}
}
