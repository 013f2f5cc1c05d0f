package tracker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The default HTTP client follows a redirect within one scheme but never
// from https down to http.
func TestHTTPRedirects(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old/announce" {
			http.Redirect(w, r, "/announce?"+r.URL.RawQuery, http.StatusFound)
			return
		}
		w.Write([]byte("d8:intervali60e5:peers0:e"))
	}))
	defer plain.Close()
	c, err := New(plain.URL+"/old/announce", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Announce(context.Background(), &AnnounceRequest{Port: 1}); err != nil {
		t.Errorf("same-scheme redirect: %v", err)
	}

	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/announce", http.StatusFound)
	}))
	defer tls.Close()
	opts := Options{}
	o := opts.withDefaults()
	o.HTTPClient.Transport = tls.Client().Transport // trust the test certificate
	c, err = New(tls.URL+"/announce", o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Announce(context.Background(), &AnnounceRequest{Port: 1})
	if err == nil || !strings.Contains(err.Error(), "refusing redirect from https to http") {
		t.Errorf("https to http redirect: %v, want it refused", err)
	}
}
