package httpapi

import (
	"net/netip"
	"testing"
)

// The source check matches the TCP peer as net/http reports it, whatever
// form the listener gives it.
func TestAllowedPeer(t *testing.T) {
	allow := []netip.Prefix{
		netip.MustParsePrefix("10.20.0.0/24"),
		netip.MustParsePrefix("10.30.0.5/32"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fe80::/10"),
	}
	for addr, want := range map[string]bool{
		"10.20.0.17:51234":          true,
		"10.30.0.5:80":              true,
		"10.30.0.6:80":              false,
		"10.21.0.17:51234":          false,
		"[::ffff:10.20.0.17]:51234": true, // IPv4 on a dual-stack listener
		"[::ffff:10.21.0.17]:51234": false,
		"[::1]:4000":                true,
		"[fe80::1%eth0]:4000":       true,
		"127.0.0.1:4000":            false,
		"":                          false,
		"10.20.0.17":                false, // not host:port: refused, not guessed
	} {
		if got := allowedPeer(addr, allow); got != want {
			t.Errorf("allowedPeer(%q) = %v, want %v", addr, got, want)
		}
	}
	if allowedPeer("127.0.0.1:4000", nil) {
		t.Error("an empty allow list lets a push through")
	}
}
