//go:build race

package centralsync_test

// raceEnabled: the race detector slows SQLite (pure Go) and JSON tenfold,
// so timing targets are checked only without it.
const raceEnabled = true
