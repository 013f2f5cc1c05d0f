//go:build linux

package harness

import "context"

// Preferences returns qBittorrent's settings as its Web API reports them
// (app/preferences), keyed by the API's names: up_limit (bytes/s, 0 for
// none), max_uploads, max_connec_per_torrent... Numbers are float64, as
// encoding/json decodes them into an interface.
func (q *Qbit) Preferences(ctx context.Context) (map[string]any, error) {
	var prefs map[string]any
	if err := q.get(ctx, "app/preferences", nil, &prefs); err != nil {
		return nil, err
	}
	return prefs, nil
}
