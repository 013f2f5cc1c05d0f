package httpserve

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func listingSource() *testSource {
	src := &testSource{
		name: `Name <b>bold</b> & "co"`,
		id:   testID,
		files: []*testFile{
			memFile(0, "dir/<script>alert(1)</script> & co.webm", randomBytes(1, 3000)),
			memFile(2, "music/track.mp3", randomBytes(2, 2048)),
			memFile(5, "notes.txt", randomBytes(3, 10)),
			memFile(6, "big.mkv", nil),
		},
	}
	src.files[3].Length = 3 << 30
	src.progress = func(i int) int64 {
		if i == 0 {
			return 1500
		}
		return 0
	}
	return src
}

func TestListingHTML(t *testing.T) {
	src := listingSource()
	h := NewHandler(src.source(), Options{})
	for _, accept := range []string{"", "text/html", "*/*", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json;q=0.5, text/html"} {
		rec := get(h, "GET", "/", "Accept", accept)
		if rec.Code != 200 {
			t.Fatalf("Accept %q: status %d", accept, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Fatalf("Accept %q: Content-Type %q", accept, ct)
		}
		body := rec.Body.String()
		for _, bad := range []string{"<script>", "<b>"} {
			if strings.Contains(body, bad) {
				t.Errorf("Accept %q: unescaped %q in listing", accept, bad)
			}
		}
		for _, want := range []string{
			"&lt;script&gt;alert(1)&lt;/script&gt; &amp; co.webm",
			"Name &lt;b&gt;bold&lt;/b&gt; &amp; &#34;co&#34;",
			`href="` + FilePath(src.files[0].File) + `"`,
			`<video controls preload="metadata" src="` + FilePath(src.files[0].File) + `"></video>`,
			`<audio controls preload="metadata" src="` + FilePath(src.files[1].File) + `"></audio>`,
			`<video controls preload="metadata" src="/files/6/big.mkv"></video>`,
			`href="/files/5/notes.txt"`,
			"3.0 GiB",
			"2.9 KiB",
			"50.0%",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("Accept %q: listing lacks %q:\n%s", accept, want, body)
			}
		}
		if n := strings.Count(body, "<video") + strings.Count(body, "<audio"); n != 3 {
			t.Errorf("Accept %q: %d players, want 3", accept, n)
		}
	}
	if rec := get(h, "HEAD", "/"); rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD /: status %d, %d bytes of body, Content-Length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
	if n := src.opens.Load(); n != 0 {
		t.Errorf("the listing opened %d readers", n)
	}
}

func TestListingPreloadBounded(t *testing.T) {
	src := &testSource{id: testID}
	for i := range 10 {
		src.files = append(src.files, memFile(i, "ep.mp4", nil))
	}
	rec := get(NewHandler(src.source(), Options{}), "GET", "/")
	body := rec.Body.String()
	if n := strings.Count(body, `preload="metadata"`); n != maxPreload {
		t.Errorf("%d players preload metadata, want %d", n, maxPreload)
	}
	if n := strings.Count(body, `preload="none"`); n != 10-maxPreload {
		t.Errorf("%d players preload nothing, want %d", n, 10-maxPreload)
	}
}

func TestListingJSON(t *testing.T) {
	src := listingSource()
	h := NewHandler(src.source(), Options{})
	for _, accept := range []string{"application/json", "application/json, text/html;q=0.9", "text/html;q=0.1, application/*"} {
		rec := get(h, "GET", "/", "Accept", accept)
		if rec.Code != 200 {
			t.Fatalf("Accept %q: status %d", accept, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Accept %q: Content-Type %q", accept, ct)
		}
		if v := rec.Header().Get("Vary"); v != "Accept" {
			t.Errorf("Accept %q: Vary %q", accept, v)
		}
		var got struct {
			Name  string `json:"name"`
			ID    string `json:"id"`
			Files []struct {
				Index      int    `json:"index"`
				Path       string `json:"path"`
				Length     int64  `json:"length"`
				URL        string `json:"url"`
				Type       string `json:"type"`
				Downloaded *int64 `json:"downloaded"`
			} `json:"files"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Name != src.name || got.ID != testID || len(got.Files) != len(src.files) {
			t.Fatalf("Accept %q: got %+v", accept, got)
		}
		wantTypes := []string{"video/webm", "audio/mpeg", "text/plain; charset=utf-8", "video/x-matroska"}
		wantDown := []int64{1500, 0, 0, 0}
		for i, f := range got.Files {
			w := src.files[i]
			if f.Index != w.Index || f.Path != w.Path || f.Length != w.Length || f.URL != FilePath(w.File) || f.Type != wantTypes[i] {
				t.Errorf("file %d: got %+v", i, f)
			}
			if f.Downloaded == nil || *f.Downloaded != wantDown[i] {
				t.Errorf("file %d: downloaded %v, want %d", i, f.Downloaded, wantDown[i])
			}
		}
	}

	// Without Progress there is no "downloaded" field; with no files, an
	// empty list.
	src.progress = nil
	for _, files := range [][]*testFile{src.files, nil} {
		src.files = files
		rec := get(NewHandler(src.source(), Options{}), "GET", "/", "Accept", "application/json")
		if strings.Contains(rec.Body.String(), "downloaded") {
			t.Errorf("JSON without Progress has downloaded: %s", rec.Body)
		}
		if files == nil && !strings.Contains(rec.Body.String(), `"files":[]`) {
			t.Errorf("JSON of no files: %s", rec.Body)
		}
	}
}

func TestPrefersJSON(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"*/*", false},
		{"application/json", true},
		{"APPLICATION/JSON", true},
		{"application/json, */*", false},
		{"application/json, */*;q=0.5", true},
		{"text/html, application/json", false},
		{"text/html;q=0.5, application/json", true},
		{"application/json;q=0.5, text/html", false},
		{"application/*", true},
		{"text/*, application/json;q=0.2", false},
		{"text/html;q=0, */*", true},
		{"application/json;q=abc, text/html;q=0.1", false},
		{"application/json;q=2", false},
		{";;,,,", false},
	}
	for _, tt := range tests {
		if got := prefersJSON([]string{tt.accept}); got != tt.want {
			t.Errorf("prefersJSON(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{5 << 20, "5.0 MiB"},
		{3 << 30, "3.0 GiB"},
		{1<<63 - 1, "8.0 EiB"},
	}
	for _, tt := range tests {
		if got := humanSize(tt.n); got != tt.want {
			t.Errorf("humanSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestListingMethods(t *testing.T) {
	h := NewHandler(listingSource().source(), Options{})
	if rec := get(h, "POST", "/"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d", rec.Code)
	}
}
