//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The leecher's own view of the download, through its JSON-RPC.
//
// aria2c's process time says little about the seeder: after its start it
// waits about a second (its event loop's tick) before it connects to the
// peer the tracker gave it, and a second more when the seeder refuses
// its encrypted (MSE) handshake and it retries a plain one; the transfer
// itself takes a fraction of a second for 256 MiB. So the harness also
// asks aria2c, every pollEvery, how much of the torrent it has (its
// completedLength, which counts verified pieces), and takes the
// transfer's rate from the answers in between: the bytes that came
// between the first answer above zero and the last answer before the
// whole torrent, over the time between them. Both ends are answers, so
// the rate has no bias from the polling (only whole pieces are counted,
// one piece at most at each end). The download's end is the first answer
// with the whole torrent.
//
// With its JSON-RPC on, aria2c does not exit once the download is
// complete: the harness tells it to (aria2.shutdown, which still
// announces "stopped").

// pollEvery is how often aria2c's JSON-RPC is asked for its progress.
const pollEvery = 20 * time.Millisecond

// leechGID is the download's id in aria2c (--gid): 16 hex digits, not all
// zero.
const leechGID = "5eedbe4c00000001"

// transfer is the progress of a download as aria2c reported it.
type transfer struct {
	first, last           time.Time // first and last answers with part of the torrent
	firstBytes, lastBytes int64     // what it had then
	done                  time.Time // first answer with all of it
	total                 int64
	polls                 int // answers
}

// rate returns the bytes that came between the first and the last
// answers with part of the torrent, over the time between them, in bytes
// per second, and that time; 0, 0 if there were not two such answers
// with bytes between them (a download too quick for pollEvery).
func (t transfer) rate() (float64, time.Duration) {
	span := t.last.Sub(t.first)
	if t.first.IsZero() || span <= 0 || t.lastBytes <= t.firstBytes {
		return 0, 0
	}
	return float64(t.lastBytes-t.firstBytes) / span.Seconds(), span
}

// aria2Status is what aria2.tellStatus returns of the fields asked for.
type aria2Status struct {
	Status          string `json:"status"`
	CompletedLength string `json:"completedLength"`
	TotalLength     string `json:"totalLength"`
}

// watchTransfer asks aria2c's JSON-RPC at rpc for the progress of download
// leechGID every pollEvery, until it reports the download complete, the
// process exits (exited is closed) or ctx is done. Failed calls (before
// the RPC server listens) are skipped.
func watchTransfer(ctx context.Context, rpc string, exited <-chan struct{}) transfer {
	client := &http.Client{Timeout: 2 * time.Second}
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":"seedbench","method":"aria2.tellStatus","params":[%q,["status","completedLength","totalLength"]]}`, leechGID)
	var tr transfer
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		sent := time.Now()
		st, err := tellStatus(ctx, client, rpc, body)
		// The answer describes some moment between asking and hearing.
		at := sent.Add(time.Since(sent) / 2)
		if err == nil {
			tr.polls++
			done, err1 := strconv.ParseInt(st.CompletedLength, 10, 64)
			total, err2 := strconv.ParseInt(st.TotalLength, 10, 64)
			if err1 == nil && err2 == nil {
				if total > 0 && done == total {
					tr.done, tr.total = at, total
					return tr
				}
				if done > 0 {
					if tr.first.IsZero() {
						tr.first, tr.firstBytes = at, done
					}
					tr.last, tr.lastBytes = at, done
				}
			}
		}
		select {
		case <-ctx.Done():
			return tr
		case <-exited:
			return tr
		case <-tick.C:
		}
	}
}

// shutdownAria2 asks aria2c to exit as it would on its own: it announces
// "stopped" to the tracker first.
func shutdownAria2(ctx context.Context, rpc string) error {
	body := `{"jsonrpc":"2.0","id":"seedbench","method":"aria2.shutdown","params":[]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rpc, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("aria2c RPC shutdown: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return nil
}

func tellStatus(ctx context.Context, client *http.Client, rpc, body string) (aria2Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rpc, strings.NewReader(body))
	if err != nil {
		return aria2Status{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return aria2Status{}, err
	}
	defer resp.Body.Close()
	var r struct {
		Result *aria2Status `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r); err != nil {
		return aria2Status{}, fmt.Errorf("aria2c RPC: %w", err)
	}
	if r.Error != nil {
		return aria2Status{}, fmt.Errorf("aria2c RPC: %s", r.Error.Message)
	}
	if r.Result == nil {
		return aria2Status{}, fmt.Errorf("aria2c RPC: no result")
	}
	return *r.Result, nil
}
