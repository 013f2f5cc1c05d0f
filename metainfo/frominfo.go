package metainfo

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"slices"
)

// FromInfo builds the metainfo of a torrent whose info dictionary was
// fetched from peers (BEP 9) for magnet link m: infoBytes must hash to
// m's info hash and be a valid info dictionary of at most MaxSize bytes.
// The trackers and web seeds are m's, one tier per tracker.
func FromInfo(infoBytes []byte, m *Magnet) (*MetaInfo, error) {
	if len(infoBytes) == 0 || infoBytes[0] != 'd' {
		return nil, errors.New("metainfo: info is not a dictionary")
	}
	if len(infoBytes) > MaxSize {
		return nil, fmt.Errorf("metainfo: info dictionary of %d bytes, more than %d", len(infoBytes), MaxSize)
	}
	h := Hash(sha1.Sum(infoBytes))
	if h != m.InfoHash {
		return nil, fmt.Errorf("metainfo: info dictionary hashes to %s, not %s", h, m.InfoHash)
	}
	info, err := parseInfo(infoBytes)
	if err != nil {
		return nil, err
	}
	mi := &MetaInfo{Info: *info, InfoBytes: slices.Clone(infoBytes), InfoHash: h, URLList: slices.Clone(m.WebSeeds)}
	for _, tr := range m.Trackers {
		mi.AnnounceList = append(mi.AnnounceList, []string{tr})
	}
	if len(mi.AnnounceList) > 0 {
		mi.Announce = mi.AnnounceList[0][0]
	}
	return mi, nil
}
