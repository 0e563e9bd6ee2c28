//go:build !race

package centralsync_test

// raceEnabled: see race_on_test.go.
const raceEnabled = false
