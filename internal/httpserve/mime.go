package httpserve

import (
	"mime"
	"path"
	"strings"
)

// mediaType is what the handler knows of an extension.
type mediaType struct {
	ctype  string
	player string // "video", "audio" or "": the listing's inline player
}

// mediaTypes are the types of the files torrents mostly hold. They take
// precedence over mime.TypeByExtension because the system's MIME database
// may be absent (minimal containers) or disagree. A player is offered
// only where browsers commonly play the format.
var mediaTypes = map[string]mediaType{
	// video
	".mp4":  {"video/mp4", "video"},
	".m4v":  {"video/mp4", "video"},
	".mkv":  {"video/x-matroska", "video"},
	".webm": {"video/webm", "video"},
	".ogv":  {"video/ogg", "video"},
	".mov":  {"video/quicktime", "video"},
	".avi":  {"video/x-msvideo", ""},
	".wmv":  {"video/x-ms-wmv", ""},
	".flv":  {"video/x-flv", ""},
	".mpg":  {"video/mpeg", ""},
	".mpeg": {"video/mpeg", ""},
	".ts":   {"video/mp2t", ""},
	".m2ts": {"video/mp2t", ""},
	".3gp":  {"video/3gpp", ""},
	// audio
	".mp3":  {"audio/mpeg", "audio"},
	".m4a":  {"audio/mp4", "audio"},
	".m4b":  {"audio/mp4", "audio"},
	".aac":  {"audio/aac", "audio"},
	".ogg":  {"audio/ogg", "audio"},
	".oga":  {"audio/ogg", "audio"},
	".opus": {"audio/ogg", "audio"},
	".flac": {"audio/flac", "audio"},
	".wav":  {"audio/wav", "audio"},
	".mka":  {"audio/x-matroska", ""},
	".wma":  {"audio/x-ms-wma", ""},
	// playlists
	".m3u8": {"application/vnd.apple.mpegurl", ""},
	".m3u":  {"audio/x-mpegurl", ""},
	// subtitles and text
	".srt": {"application/x-subrip", ""},
	".vtt": {"text/vtt; charset=utf-8", ""},
	".ass": {"text/x-ssa", ""},
	".ssa": {"text/x-ssa", ""},
	".txt": {"text/plain; charset=utf-8", ""},
	".nfo": {"text/plain", ""}, // often CP437: let the browser choose
	".md5": {"text/plain", ""},
	".sfv": {"text/plain", ""},
	// images and documents
	".jpg":  {"image/jpeg", ""},
	".jpeg": {"image/jpeg", ""},
	".png":  {"image/png", ""},
	".gif":  {"image/gif", ""},
	".webp": {"image/webp", ""},
	".pdf":  {"application/pdf", ""},
	".epub": {"application/epub+zip", ""},
	".zip":  {"application/zip", ""},
}

// typeOf returns the Content-Type for a file name, and which inline
// player, if any, the listing offers for it.
func typeOf(name string) (ctype, player string) {
	ext := strings.ToLower(path.Ext(name))
	if mt, ok := mediaTypes[ext]; ok {
		return mt.ctype, mt.player
	}
	if ext != "" {
		if t := mime.TypeByExtension(ext); t != "" {
			return t, ""
		}
	}
	return "application/octet-stream", ""
}

// activeType reports whether a browser opening a document of type ctype
// could run scripts in it (HTML, SVG, XML). Such files are served with a
// sandboxing Content-Security-Policy, since they come from a torrent and
// share the listing's origin.
func activeType(ctype string) bool {
	t, _, _ := strings.Cut(ctype, ";")
	t = strings.ToLower(strings.TrimSpace(t))
	return t == "text/html" || t == "image/svg+xml" ||
		strings.HasSuffix(t, "/xml") || strings.HasSuffix(t, "+xml")
}
