package aiotorrent

import (
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"

	"github.com/aiotorrent/aiotorrent/internal/testenv"
)

// offLoopback counts the DHT datagrams a test client tried to exchange
// with an address off loopback (none were sent: the filter refused them).
var offLoopback atomic.Int64

// TestMain keeps the resume records of the tests out of the user's own
// state folder, and the clients' DHT nodes on loopback: only clients that
// give Config.DHTBootstrap run one, none bootstraps from the public
// routers, and a node refuses (and the run fails on) any address that is
// not loopback.
func TestMain(m *testing.M) {
	publicBootstrap = nil
	dhtOnlyIfAsked = true // a test that wants a node says where it bootstraps
	dhtFilter = func(a netip.AddrPort) bool {
		if a.Addr().IsLoopback() {
			return true
		}
		offLoopback.Add(1)
		return false
	}
	code := testenv.RunIsolated(m)
	if n := offLoopback.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: DHT nodes of the tests were pointed at %d addresses off loopback\n", n)
		code = 1
	}
	os.Exit(code)
}
