package httpserve_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/aiotorrent/aiotorrent/internal/httpserve"
)

// nopCloser makes a bytes.Reader an io.ReadSeekCloser.
type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func ExampleNewHandler() {
	data := []byte("0123456789")
	src := httpserve.Source{
		Name:  "Example",
		ID:    "c12fe1c06bba254a9dc9f519b335aa7c1367a88a",
		Files: []httpserve.File{{Index: 0, Path: "Example/Movie (2020).mp4", Length: int64(len(data))}},
		Open: func(ctx context.Context, index int) (io.ReadSeekCloser, error) {
			return nopCloser{bytes.NewReader(data)}, nil
		},
	}
	srv := httptest.NewServer(httpserve.NewHandler(src, httpserve.Options{}))
	defer srv.Close()

	url := srv.URL + httpserve.FilePath(src.Files[0])
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Range", "bytes=4-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(httpserve.FilePath(src.Files[0]))
	fmt.Println(resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Range"))
	fmt.Printf("%s\n", body)
	// Output:
	// /files/0/Movie%20(2020).mp4
	// 206 Partial Content video/mp4 bytes 4-9/10
	// 456789
}
