// Package configload is the one place parkgate's daemons read their
// configuration with viper: built-in defaults, then the
// YAML file given with --config, then PARKING_* environment variables (the
// key upper-cased, "." → "_"), decoded strictly into the daemon's struct.
package configload

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Load fills out (a pointer to a struct with mapstructure tags) from
// defaults, the YAML file at path (none if empty) and environ (as
// os.Environ returns it, passed in so tests do not depend on the real
// one). defaults must name every key: only known keys are taken from the
// environment, and a key in the file that the struct lacks is an error, so
// a typo is reported instead of ignored.
func Load(path string, environ []string, defaults map[string]any, out any) error {
	v := viper.New()
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		// Before the defaults are merged in, the keys are the file's own.
		if err := unknownKeys(path, v.AllKeys(), defaults); err != nil {
			return err
		}
	}
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "PARKING_") {
			continue
		}
		if key := envKey(name, defaults); key != "" {
			v.Set(key, val)
		}
	}
	err := v.UnmarshalExact(out, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		// mapstructure's message opens with a preamble and names no
		// source: one line per problem, each saying where values come
		// from ("'spots.count' cannot parse value as 'int'").
		where := "config (PARKING_* environment)"
		if path != "" {
			where = path + " (or PARKING_* environment)"
		}
		msg := strings.TrimSpace(err.Error())
		msg = strings.TrimSpace(strings.TrimPrefix(msg, "decoding failed due to the following error(s):"))
		lines := strings.Split(msg, "\n")
		for i, l := range lines {
			lines[i] = where + ": " + l
		}
		return fmt.Errorf("%s", strings.Join(lines, "\n"))
	}
	return nil
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return "PARKING_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// envKey maps PARKING_RESERVATIONS_NOSHOW_GRACE to reservations.noshow_grace
// by looking the name up among the known keys ("_" is ambiguous: it both
// separates and appears inside key names). Unknown names (another
// program's, a test's PARKING_TEST_*) are ignored.
func envKey(name string, defaults map[string]any) string {
	for k := range defaults {
		if EnvName(k) == name {
			return k
		}
	}
	return ""
}

// unknownKeys reports every key of the file at path that defaults does not
// know, by its dotted path and with the nearest known name, one line each:
// "configs/x.yaml: unknown key "htp" (did you mean "http"?)". (mapstructure
// would say "'config.Config' has invalid keys: htp", naming neither the
// file nor where the key sits.) fileKeys are viper's flattened keys
// (lower-cased, as viper matches keys). A misspelt section is reported
// once, as the section.
func unknownKeys(path string, fileKeys []string, defaults map[string]any) error {
	known := map[string]bool{} // keys and the sections that hold them
	for k := range defaults {
		for i, c := range k {
			if c == '.' {
				known[k[:i]] = true
			}
		}
		known[k] = true
	}
	var bad []string
	for _, k := range fileKeys {
		if known[k] {
			continue
		}
		// The first segment that is not known is the mistake.
		first := k
		for i, c := range k {
			if c == '.' && !known[k[:i]] {
				first = k[:i]
				break
			}
		}
		if !slices.Contains(bad, first) {
			bad = append(bad, first)
		}
	}
	slices.Sort(bad)
	var errs []error
	for _, k := range bad {
		msg := fmt.Sprintf("%s: unknown key %q", path, k)
		if s := suggest(k, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// suggest returns the known name nearest to key: a sibling (same
// section) at most a third of its letters away (at least one), else a
// known key of the same last name in another section ("addr" at the top
// for "http.addr").
func suggest(key string, known map[string]bool) string {
	parent, name := "", key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		parent, name = key[:i], key[i+1:]
	}
	best, bestD := "", max(1, len(name)/3)+1
	var elsewhere []string
	for k := range known {
		p, n := "", k
		if i := strings.LastIndexByte(k, '.'); i >= 0 {
			p, n = k[:i], k[i+1:]
		}
		if p != parent {
			if n == name {
				elsewhere = append(elsewhere, k)
			}
			continue
		}
		if d := distance(name, n); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if best != "" {
		return best
	}
	if len(elsewhere) == 1 {
		return elsewhere[0]
	}
	return ""
}

// distance is the Levenshtein distance between a and b (bytes: keys are
// ASCII).
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
