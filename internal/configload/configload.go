// Package configload is the one place parkgate's daemons read their
// configuration with viper: built-in defaults, then the
// YAML file given with --config, then PARKING_* environment variables (the
// key upper-cased, "." → "_"), decoded strictly into the daemon's struct.
package configload

import (
	"fmt"
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
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
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
		return fmt.Errorf("config: %w", err)
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
