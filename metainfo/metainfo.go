package metainfo

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/aiotorrent/aiotorrent/bencode"
)

// MaxSize bounds a .torrent file. The largest real torrents (tens of
// thousands of files, terabytes of data) stay well under it.
const MaxSize = 64 << 20

// MaxTrackers bounds the trackers and web seeds read from one torrent.
const MaxTrackers = 1000

// MetaInfo is the content of a .torrent file (BEP 3).
type MetaInfo struct {
	// Announce is the primary tracker URL ("announce"), possibly empty.
	Announce string
	// AnnounceList holds the tracker tiers of BEP 12 ("announce-list"),
	// empty strings and empty tiers removed.
	AnnounceList [][]string
	// URLList holds the web seeds of BEP 19 ("url-list").
	URLList []string
	// Comment, CreatedBy and CreationDate are informational. CreationDate is
	// the zero time when the torrent does not give one.
	Comment      string
	CreatedBy    string
	CreationDate time.Time

	// Info is the parsed and validated info dictionary.
	Info Info
	// InfoBytes holds the info dictionary exactly as it appears in the file.
	InfoBytes []byte
	// InfoHash is the v1 info hash: the SHA-1 of InfoBytes.
	InfoHash Hash
}

// Trackers returns the tracker tiers to use: the announce-list when it has
// any tracker (BEP 12 says announce is then ignored), otherwise the single
// announce URL as one tier, otherwise nil.
func (mi *MetaInfo) Trackers() [][]string {
	if len(mi.AnnounceList) > 0 {
		return mi.AnnounceList
	}
	if mi.Announce != "" {
		return [][]string{{mi.Announce}}
	}
	return nil
}

// Magnet returns a magnet link for the torrent: its info hash, name,
// trackers (every tier, in order) and web seeds. Trackers and web seeds a
// magnet link cannot carry (other URL schemes, or past the link's limits)
// are left out, so [ParseMagnet] always reads the result back.
func (mi *MetaInfo) Magnet() *Magnet {
	m := &Magnet{InfoHash: mi.InfoHash, DisplayName: mi.Info.Name}
	seen := make(map[string]bool)
	for _, tier := range mi.Trackers() {
		for _, tr := range tier {
			if !seen[tr] && len(m.Trackers) < magnetMaxTrackers && CheckTrackerURL(tr) == nil {
				seen[tr] = true
				m.Trackers = append(m.Trackers, tr)
			}
		}
	}
	for _, ws := range mi.URLList {
		if !seen[ws] && len(m.WebSeeds) < magnetMaxWebSeeds && CheckWebSeedURL(ws) == nil {
			seen[ws] = true
			m.WebSeeds = append(m.WebSeeds, ws)
		}
	}
	return m
}

// LoadFile reads and parses the .torrent file at path.
func LoadFile(path string) (*MetaInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mi, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return mi, nil
}

// Load reads a .torrent file from r, at most [MaxSize] bytes, and parses it.
func Load(r io.Reader) (*MetaInfo, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("metainfo: read: %w", err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("metainfo: file larger than %d bytes", MaxSize)
	}
	return Parse(data)
}

// rawMeta is the top level of a .torrent file. Only "info" must have the
// right type; the other keys are informational and, as in other clients, a
// key of the wrong type is ignored rather than failing the whole torrent.
type rawMeta struct {
	Info         bencode.RawMessage `bencode:"info"`
	Announce     bencode.RawMessage `bencode:"announce"`
	AnnounceList bencode.RawMessage `bencode:"announce-list"`
	URLList      bencode.RawMessage `bencode:"url-list"`
	Comment      bencode.RawMessage `bencode:"comment"`
	CommentUTF8  bencode.RawMessage `bencode:"comment.utf-8"`
	CreatedBy    bencode.RawMessage `bencode:"created by"`
	CreationDate bencode.RawMessage `bencode:"creation date"`
}

// Parse parses and validates the bytes of a .torrent file.
func Parse(data []byte) (*MetaInfo, error) {
	var d bencode.Decoder
	d.MaxSize = MaxSize
	var raw rawMeta
	if err := d.Unmarshal(data, &raw); err != nil {
		var te *bencode.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("metainfo: not a torrent: top level is not a dictionary: %w", err)
		}
		return nil, fmt.Errorf("metainfo: %w", err)
	}
	if raw.Info == nil {
		return nil, errors.New("metainfo: no info dictionary")
	}
	if raw.Info[0] != 'd' {
		return nil, errors.New("metainfo: info is not a dictionary")
	}
	info, err := parseInfo(raw.Info)
	if err != nil {
		return nil, err
	}
	mi := &MetaInfo{
		Info:      *info,
		InfoBytes: raw.Info,
		InfoHash:  sha1.Sum(raw.Info),
	}
	if s, ok := optString(raw.Announce); ok && validTrackerURL(s) {
		mi.Announce = s
	}
	mi.AnnounceList = parseAnnounceList(raw.AnnounceList)
	mi.URLList = parseURLList(raw.URLList)
	if s, ok := optString(raw.CommentUTF8); ok {
		mi.Comment = s
	} else if s, ok := optString(raw.Comment); ok {
		mi.Comment = s
	}
	mi.CreatedBy, _ = optString(raw.CreatedBy)
	var date int64
	if raw.CreationDate != nil && bencode.Unmarshal(raw.CreationDate, &date) == nil && date > 0 {
		mi.CreationDate = time.Unix(date, 0).UTC()
	}
	return mi, nil
}

// optString decodes an optional string, reporting whether it was present
// with the right type.
func optString(raw bencode.RawMessage) (string, bool) {
	if raw == nil {
		return "", false
	}
	var s string
	if bencode.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// parseAnnounceList keeps the well-formed tiers of an announce-list: tiers
// that are lists, tracker URLs that are strings and parse as URLs.
func parseAnnounceList(raw bencode.RawMessage) [][]string {
	if raw == nil {
		return nil
	}
	var tiers []bencode.RawMessage
	if bencode.Unmarshal(raw, &tiers) != nil {
		return nil
	}
	var out [][]string
	n := 0
	for _, t := range tiers {
		var urls []bencode.RawMessage
		if bencode.Unmarshal(t, &urls) != nil {
			continue
		}
		var tier []string
		for _, u := range urls {
			s, ok := optString(u)
			if !ok || !validTrackerURL(s) || n >= MaxTrackers {
				continue
			}
			tier = append(tier, s)
			n++
		}
		if len(tier) > 0 {
			out = append(out, tier)
		}
	}
	return out
}

// parseURLList accepts a single string or a list of strings (BEP 19).
func parseURLList(raw bencode.RawMessage) []string {
	if raw == nil {
		return nil
	}
	var list []bencode.RawMessage
	if _, ok := optString(raw); ok {
		list = []bencode.RawMessage{raw}
	} else if bencode.Unmarshal(raw, &list) != nil {
		return nil
	}
	var out []string
	for _, r := range list {
		s, ok := optString(r)
		if !ok || len(out) >= MaxTrackers {
			continue
		}
		if CheckWebSeedURL(s) != nil {
			continue
		}
		out = append(out, s)
	}
	return out
}

// validTrackerURL reports whether s looks like a usable announce URL.
func validTrackerURL(s string) bool {
	if s == "" || len(s) > 4096 {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}

// Encode writes mi as a .torrent file: the info dictionary exactly as
// InfoBytes holds it, and the other fields from mi.
func (mi *MetaInfo) Encode(w io.Writer) error {
	b, err := mi.Marshal()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Marshal returns mi encoded as a .torrent file (see [MetaInfo.Encode]).
func (mi *MetaInfo) Marshal() ([]byte, error) {
	if len(mi.InfoBytes) == 0 || mi.InfoBytes[0] != 'd' {
		return nil, errors.New("metainfo: no info dictionary to encode")
	}
	out := struct {
		Announce     string             `bencode:"announce,omitempty"`
		AnnounceList [][]string         `bencode:"announce-list,omitempty"`
		Comment      string             `bencode:"comment,omitempty"`
		CreatedBy    string             `bencode:"created by,omitempty"`
		CreationDate int64              `bencode:"creation date,omitempty"`
		Info         bencode.RawMessage `bencode:"info"`
		URLList      []string           `bencode:"url-list,omitempty"`
	}{
		Announce:     mi.Announce,
		AnnounceList: mi.AnnounceList,
		Comment:      mi.Comment,
		CreatedBy:    mi.CreatedBy,
		Info:         mi.InfoBytes,
		URLList:      mi.URLList,
	}
	if !mi.CreationDate.IsZero() {
		out.CreationDate = mi.CreationDate.Unix()
	}
	b, err := bencode.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("metainfo: encode: %w", err)
	}
	return b, nil
}
