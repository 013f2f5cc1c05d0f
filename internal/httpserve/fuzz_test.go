package httpserve

import (
	"net/http"
	"testing"
)

// FuzzRange sends arbitrary Range and If-Range values through the handler:
// it must not panic, must answer 200, 206 or 416, and a 206 must hold
// exactly the bytes its Content-Range names.
func FuzzRange(f *testing.F) {
	for _, seed := range [][2]string{
		{"bytes=0-0", ""},
		{"bytes=-1", ""},
		{"bytes=100-", `"` + testID + `-0"`},
		{"bytes=0-1,3-4", ""},
		{"bytes=5-2", ""},
		{"bytes=abc", ""},
		{"items=0-1", ""},
		{"bytes=99999999999999999999-", ""},
		{"bytes=1000-2000", `"wrong"`},
		{"bytes=,,,,,-5", "W/\"x\""},
		{"", "Mon, 02 Jan 2006 15:04:05 GMT"},
	} {
		f.Add(seed[0], seed[1])
	}
	src := &testSource{id: testID, files: []*testFile{
		memFile(0, "a.mkv", randomBytes(9, 1500)),
		memFile(1, "empty", nil),
	}}
	h := NewHandler(src.source(), Options{})
	f.Fuzz(func(t *testing.T, rng, ifRange string) {
		for _, fl := range src.files {
			header := []string{"Range", rng}
			if ifRange != "" {
				header = append(header, "If-Range", ifRange)
			}
			rec := get(h, "GET", FilePath(fl.File), header...)
			switch rec.Code {
			case http.StatusOK, http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
			default:
				t.Fatalf("Range %q If-Range %q: status %d", rng, ifRange, rec.Code)
			}
			if err := checkBody(rec.Code, rec.Header(), rec.Body.Bytes(), fl.data); err != nil {
				t.Fatalf("Range %q If-Range %q: %v", rng, ifRange, err)
			}
		}
	})
}
