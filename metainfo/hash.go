package metainfo

import (
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
)

// HashSize is the length of a v1 info hash and of each piece hash (SHA-1).
const HashSize = 20

// Hash is a SHA-1 digest: a v1 info hash or a piece hash.
type Hash [HashSize]byte

// String returns the hash as 40 lower-case hex digits.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Base32 returns the hash in the 32-character base32 form some magnet
// links use.
func (h Hash) Base32() string { return base32.StdEncoding.EncodeToString(h[:]) }

// IsZero reports whether h is all zero bytes.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText encodes h as hex, so hashes read naturally in JSON.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText accepts the forms of [ParseHash].
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash parses a hash written as 40 hex digits (either case) or as 32
// base32 characters (either case, no padding).
func ParseHash(s string) (Hash, error) {
	var h Hash
	switch len(s) {
	case 2 * HashSize:
		if _, err := hex.Decode(h[:], []byte(s)); err != nil {
			return Hash{}, fmt.Errorf("info hash %q: not hex: %w", s, err)
		}
	case 32:
		b, err := base32.StdEncoding.DecodeString(strings.ToUpper(s))
		if err != nil || len(b) != HashSize {
			return Hash{}, fmt.Errorf("info hash %q: not base32", s)
		}
		copy(h[:], b)
	default:
		return Hash{}, fmt.Errorf("info hash %q: want 40 hex or 32 base32 characters, got %d", s, len(s))
	}
	return h, nil
}
