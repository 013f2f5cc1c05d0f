//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aiotorrent/aiotorrent/bench/internal/harness"
	"github.com/aiotorrent/aiotorrent/internal/swarmtest"
)

// aria2c on the magnet link, watched through its JSON-RPC.
//
// aria2c runs a magnet link as two downloads: the metadata's, with the
// id given by --gid, which once complete is "followed by" the torrent's
// own download. The harness asks for the first's status every pollEvery
// until it is complete, then for the second's until it has every piece.
// Its completedLength and bitfield count verified pieces only.

// pollEvery is how often aria2c is asked for its status.
const pollEvery = 5 * time.Millisecond

// metaGID is the id of aria2c's metadata download (--gid): 16 hex
// digits, not all zero.
const metaGID = "3a6e7be4c0000001"

// aria2Status is what aria2.tellStatus returns of the fields asked for.
type aria2Status struct {
	Status          string   `json:"status"`
	FollowedBy      []string `json:"followedBy"`
	CompletedLength string   `json:"completedLength"`
	TotalLength     string   `json:"totalLength"`
	Bitfield        string   `json:"bitfield"`
	ErrorMessage    string   `json:"errorMessage"`
}

// aria2Args returns aria2c's command line for the magnet link, before
// the link: swarmtest's options (loopback only; no DHT, local peer
// discovery or peer exchange; port port), stop once complete, fetch the
// first piece first, and JSON-RPC on 127.0.0.1:rpcPort.
func (b *bench) aria2Args(port, rpcPort int, out, logFile string) []string {
	args := append([]string{b.swarm.Aria2Cmd}, swarmtest.Aria2Args(port, out, logFile, "notice")...)
	return append(args,
		"--seed-time=0",
		"--bt-prioritize-piece=head="+strconv.FormatInt(b.swarm.MI.Info.PieceLength, 10),
		"--gid="+metaGID,
		"--enable-rpc=true", "--rpc-listen-all=false", "--rpc-listen-port="+strconv.Itoa(rpcPort))
}

// aria2Run runs aria2c on the magnet link until it has the whole file,
// then tells it to exit and checks the file.
func (b *bench) aria2Run(ctx context.Context, m *measure) error {
	dir, _, err := b.runDir(m)
	if err != nil {
		return err
	}
	defer b.finishRun(dir)
	home, out := filepath.Join(dir, "home"), filepath.Join(dir, "out")
	port, err := swarmtest.FreePort()
	if err != nil {
		return err
	}
	rpcPort, err := harness.FreePortExcept(port)
	if err != nil {
		return err
	}
	announced := b.tr.watch(port)
	argv := append(b.aria2Args(port, rpcPort, out, filepath.Join(dir, "aria2.log")), b.magnets[m.Via])
	p, err := harness.StartProc("aria2c", filepath.Join(dir, "output.log"), filepath.Join(dir, "cwd"), []string{"HOME=" + home}, nil, argv...)
	if err != nil {
		announced()
		return err
	}
	defer func() {
		p.Stop()
		if p.HasExited() {
			m.CPU = p.ExitUsage().CPU
		}
		if at := announced(); !at.IsZero() {
			m.Announce = at.Sub(p.Started)
		}
	}()

	rpc := "http://127.0.0.1:" + strconv.Itoa(rpcPort) + "/jsonrpc"
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	gid := metaGID
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		sent := time.Now()
		st, err := tellStatus(ctx, client, rpc, gid)
		// The answer describes a moment between asking and hearing.
		at := sent.Add(time.Since(sent) / 2).Sub(p.Started)
		if err == nil {
			m.Polls++
			if m.Ready == 0 {
				m.Ready = at
			}
			if st.Status == "error" || st.Status == "removed" {
				return fmt.Errorf("aria2c: download %s: %s %s\n%s", gid, st.Status, st.ErrorMessage, p.Tail())
			}
			if gid == metaGID {
				if st.Status == "complete" && len(st.FollowedBy) > 0 {
					m.Metadata, gid = at, st.FollowedBy[0]
				}
			} else {
				if m.FirstByte == 0 && hasFirstPiece(st.Bitfield) {
					m.FirstByte = at
				}
				done, err1 := strconv.ParseInt(st.CompletedLength, 10, 64)
				total, err2 := strconv.ParseInt(st.TotalLength, 10, 64)
				if err1 == nil && err2 == nil && total > 0 && done == total {
					m.Complete = at
					break
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("aria2c: %w (%d answers; metadata after %s)\n%s", ctx.Err(), m.Polls, ms(m.Metadata), p.Tail())
		case <-p.Exited:
			return fmt.Errorf("aria2c: %v before its JSON-RPC reported the download complete (%d answers)\n%s", p.ExitError(), m.Polls, p.Tail())
		case <-tick.C:
		}
	}
	if m.FirstByte == 0 {
		// Complete at the first answer after the metadata's.
		m.FirstByte = m.Complete
	}
	if err := aria2Call(ctx, client, rpc, "aria2.shutdown", nil, nil); err != nil {
		return err
	}
	select {
	case <-p.Exited:
	case <-ctx.Done():
		return fmt.Errorf("aria2c: not exiting after aria2.shutdown: %w\n%s", ctx.Err(), p.Tail())
	}
	m.Exit = time.Since(p.Started)
	if p.Err() != nil {
		return fmt.Errorf("aria2c: %w\n%s", p.Err(), p.Tail())
	}
	if err := harness.VerifyFile(filepath.Join(out, b.swarm.MI.Info.Name), b.cfg.Size, b.sum); err != nil {
		return fmt.Errorf("aria2c: download not identical to the source: %w", err)
	}
	return nil
}

// hasFirstPiece reports whether aria2c's bitfield (hexadecimal, the
// highest bit of the first digit for piece 0) has piece 0.
func hasFirstPiece(bitfield string) bool {
	if bitfield == "" {
		return false
	}
	v, err := strconv.ParseUint(bitfield[:1], 16, 8)
	return err == nil && v&8 != 0
}

// tellStatus asks aria2c for the status of download gid.
func tellStatus(ctx context.Context, client *http.Client, rpc, gid string) (aria2Status, error) {
	var st aria2Status
	fields := []string{"status", "followedBy", "completedLength", "totalLength", "bitfield", "errorMessage"}
	err := aria2Call(ctx, client, rpc, "aria2.tellStatus", []any{gid, fields}, &st)
	return st, err
}

// aria2Call calls method of aria2c's JSON-RPC at rpc with params and
// decodes its result into result (when not nil).
func aria2Call(ctx context.Context, client *http.Client, rpc, method string, params []any, result any) error {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "magnetbench", "method": method, "params": params})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rpc, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r); err != nil {
		return fmt.Errorf("aria2c RPC %s: %w", method, err)
	}
	if r.Error != nil {
		return fmt.Errorf("aria2c RPC %s: %s", method, r.Error.Message)
	}
	if result != nil {
		if err := json.Unmarshal(r.Result, result); err != nil {
			return fmt.Errorf("aria2c RPC %s: %w", method, err)
		}
	}
	return nil
}
