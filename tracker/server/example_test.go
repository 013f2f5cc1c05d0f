package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/tracker/server"
)

// A tracker serving HTTP through net/http/httptest, and one announce.
func Example() {
	srv := server.New(server.Config{Interval: 2 * time.Minute})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	q := url.Values{
		"info_hash": {strings.Repeat("\x01", 20)}, // the raw 20 bytes
		"peer_id":   {"-XX0001-000000000001"},
		"port":      {"6881"},
		"left":      {"0"},
		"event":     {"started"},
	}
	resp, err := http.Get(ts.URL + "/announce?" + q.Encode())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s\n", body)
	st := srv.Stats()
	fmt.Println(st.Torrents, st.Seeders, st.Leechers, st.Announces)
	// Output:
	// d8:completei1e10:incompletei0e8:intervali120e12:min intervali60e5:peers0:e
	// 1 1 0 1
}

// A tracker on HTTP and UDP until interrupted.
func ExampleServer_ListenAndServe() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	srv := server.New(server.Config{Logger: slog.Default()})
	if err := srv.ListenAndServe(ctx, "127.0.0.1:6969", "127.0.0.1:6969"); err != nil {
		fmt.Println(err)
	}
}
