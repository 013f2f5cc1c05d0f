// Package bencode encodes and decodes the BitTorrent serialisation format
// (BEP 3): integers, byte strings, lists and dictionaries.
//
// Decoding is bounded: a [Decoder] limits nesting depth, string length and
// total input size, and every error reports the byte offset where the input
// went wrong. Integers must be canonical (no leading zeros, no -0, within
// int64); dictionary keys must be unique, and in strict mode sorted.
// Encoding always writes canonical bencode, keys sorted.
//
// A [RawMessage] captures a value's bytes exactly as they appear in the
// input, which is how a torrent's info hash is computed.
package bencode
