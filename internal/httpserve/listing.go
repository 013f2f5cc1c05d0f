package httpserve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// maxPreload is how many inline players of the listing preload their
// metadata; the others preload nothing. Each preload opens a reader and
// fetches pieces (for some MP4s the end of the file), so a page of a
// season pack must not start dozens of downloads at once.
const maxPreload = 4

// listedFile is one row of the listing.
type listedFile struct {
	Index      int
	Path       string
	Length     int64
	URL        string
	Type       string
	Size       string // Length, human readable
	Player     string // "video", "audio" or ""
	Preload    string // the player's preload attribute
	Downloaded *int64 // nil without Source.Progress
	Percent    string
}

// serveListing serves the file list: HTML, or JSON when the client
// prefers application/json.
func (h *handler) serveListing(w http.ResponseWriter, r *http.Request) {
	files := make([]listedFile, 0, len(h.src.Files))
	var total int64
	preloads := 0
	for _, f := range h.src.Files {
		ctype, player := typeOf(f.Path)
		lf := listedFile{
			Index:   f.Index,
			Path:    f.Path,
			Length:  f.Length,
			URL:     FilePath(f),
			Type:    ctype,
			Size:    humanSize(f.Length),
			Player:  player,
			Preload: "none",
		}
		if player != "" && preloads < maxPreload {
			lf.Preload = "metadata"
			preloads++
		}
		if h.src.Progress != nil {
			d := min(max(h.src.Progress(f.Index), 0), f.Length)
			lf.Downloaded = &d
			lf.Percent = "100%"
			if d < f.Length {
				lf.Percent = strconv.FormatFloat(float64(d)*100/float64(f.Length), 'f', 1, 64) + "%"
			}
		}
		total += f.Length
		files = append(files, lf)
	}

	var buf bytes.Buffer
	hd := w.Header()
	hd.Set("Vary", "Accept")
	hd.Set("Cache-Control", "no-cache")
	if prefersJSON(r.Header.Values("Accept")) {
		out := jsonListing{Name: h.src.Name, ID: h.src.ID, Files: make([]jsonFile, len(files))}
		for i, f := range files {
			out.Files[i] = jsonFile{
				Index:      f.Index,
				Path:       f.Path,
				Length:     f.Length,
				URL:        f.URL,
				Type:       f.Type,
				Downloaded: f.Downloaded,
			}
		}
		if err := json.NewEncoder(&buf).Encode(out); err != nil {
			h.log.Error("httpserve: encode listing", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		hd.Set("Content-Type", "application/json")
	} else {
		page := listingPage{
			Name:        h.src.Name,
			Files:       files,
			Total:       humanSize(total),
			HasProgress: h.src.Progress != nil,
		}
		if page.Name == "" {
			page.Name = "aiotorrent"
		}
		if err := listingTemplate.Execute(&buf, page); err != nil {
			h.log.Error("httpserve: render listing", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		hd.Set("Content-Type", "text/html; charset=utf-8")
	}
	hd.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// jsonListing is the JSON form of the listing.
type jsonListing struct {
	Name  string     `json:"name"`
	ID    string     `json:"id"`
	Files []jsonFile `json:"files"`
}

type jsonFile struct {
	Index      int    `json:"index"`
	Path       string `json:"path"`
	Length     int64  `json:"length"`
	URL        string `json:"url"`
	Type       string `json:"type"`
	Downloaded *int64 `json:"downloaded,omitempty"`
}

type listingPage struct {
	Name        string
	Files       []listedFile
	Total       string
	HasProgress bool
}

var listingTemplate = template.Must(template.New("listing").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Name}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:64rem;padding:0 1rem}
table{border-collapse:collapse;width:100%}
th,td{padding:.4rem .5rem;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}
td.n{text-align:right;white-space:nowrap}
a{word-break:break-all}
video{display:block;max-width:100%;max-height:60vh;margin-top:.4rem}
audio{display:block;margin-top:.4rem}
</style>
</head>
<body>
<h1>{{.Name}}</h1>
<p>{{len .Files}} files, {{.Total}}</p>
<table>
<thead><tr><th>File</th><th>Size</th>{{if .HasProgress}}<th>Downloaded</th>{{end}}</tr></thead>
<tbody>
{{- range .Files}}
<tr><td><a href="{{.URL}}">{{.Path}}</a>
{{- if eq .Player "video"}}
<video controls preload="{{.Preload}}" src="{{.URL}}"></video>
{{- else if eq .Player "audio"}}
<audio controls preload="{{.Preload}}" src="{{.URL}}"></audio>
{{- end}}</td>
<td class="n">{{.Size}}</td>
{{- if $.HasProgress}}<td class="n">{{.Percent}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table>
</body>
</html>
`))

// humanSize formats n bytes with binary units: "512 B", "1.5 GiB".
func humanSize(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	const units = "KMGTPE"
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

// prefersJSON reports whether an Accept header ranks application/json
// above text/html (RFC 9110 section 12.5.1: the most specific matching
// media range gives a type its weight). No header means HTML.
func prefersJSON(accept []string) bool {
	jsonQ, jsonSpec := 0.0, 0
	htmlQ, htmlSpec := 0.0, 0
	for _, line := range accept {
		for mr := range strings.SplitSeq(line, ",") {
			typ, params, _ := strings.Cut(mr, ";")
			typ = strings.ToLower(strings.TrimSpace(typ))
			if typ == "" {
				continue
			}
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, v, _ := strings.Cut(p, "=")
				if strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0 // an invalid weight: ignore the range
					}
					q = f
				}
			}
			if s := specificity(typ, "application/json"); s > jsonSpec {
				jsonQ, jsonSpec = q, s
			}
			if s := specificity(typ, "text/html"); s > htmlSpec {
				htmlQ, htmlSpec = q, s
			}
		}
	}
	return jsonQ > htmlQ
}

// specificity returns how specifically media range mr matches type t: 3
// for the type itself, 2 for type/*, 1 for */*, 0 for no match.
func specificity(mr, t string) int {
	switch {
	case mr == t:
		return 3
	case mr == "*/*":
		return 1
	case strings.HasSuffix(mr, "/*") && strings.HasPrefix(t, mr[:len(mr)-1]):
		return 2
	}
	return 0
}
