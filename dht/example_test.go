package dht_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aiotorrent/aiotorrent/dht"
	"github.com/aiotorrent/aiotorrent/metainfo"
	"golang.org/x/time/rate"
)

// Two nodes on loopback: one announces a torrent, the other finds it.
func Example() {
	cfg := dht.Config{Addr: "127.0.0.1:0", RateLimit: rate.Inf}
	a, err := dht.NewServer(cfg)
	if err != nil {
		panic(err)
	}
	defer a.Close()

	// Real use: cfg.Bootstrap = dht.DefaultBootstrap, and cfg.Nodes from
	// the previous run's Server.Nodes().
	cfg.Bootstrap = []string{a.Addr().String()}
	b, err := dht.NewServer(cfg)
	if err != nil {
		panic(err)
	}
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Bootstrap(ctx); err != nil {
		panic(err)
	}
	ih, _ := metainfo.ParseHash("0123456789abcdef0123456789abcdef01234567")
	if _, err := b.Announce(ctx, ih, 6881); err != nil {
		panic(err)
	}
	peers, err := a.GetPeers(ctx, ih)
	if err != nil {
		panic(err)
	}
	fmt.Println(peers)
	// Output: [127.0.0.1:6881]
}
