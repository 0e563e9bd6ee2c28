// Package mqtturl reads the broker setting that gated and centrald share,
// mqtt.url: one broker URL, or the nodes of a clustered broker separated
// by commas ("tcp://10.0.0.1:1883,tcp://10.0.0.2:1883"), and orders them
// for a connection attempt so that a node that was just lost is tried last.
package mqtturl

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Split parses a comma-separated list of broker URLs (tcp://, ssl:// or
// tls://, each with host and port). Spaces around a URL are ignored; an
// empty s gives an empty list and no error (no broker). A list that names
// one broker twice is refused: it would only double the wait for a dead
// node.
func Split(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		u := strings.TrimSpace(part)
		if u == "" {
			return nil, fmt.Errorf("an empty entry in %q: separate the URLs with single commas", s)
		}
		p, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", u, err)
		}
		switch p.Scheme {
		case "tcp", "ssl", "tls":
		default:
			return nil, fmt.Errorf("%q: want tcp://host:port or ssl://host:port", u)
		}
		if _, port, err := net.SplitHostPort(p.Host); err != nil || port == "" {
			return nil, fmt.Errorf("%q: want tcp://host:port or ssl://host:port", u)
		}
		if p.Path != "" || p.RawQuery != "" || p.User != nil {
			return nil, fmt.Errorf("%q: want only scheme, host and port (credentials are mqtt.username and mqtt.password)", u)
		}
		if seen[u] {
			return nil, fmt.Errorf("%q is listed twice", u)
		}
		seen[u] = true
		out = append(out, u)
	}
	return out, nil
}

// from returns urls in the order of a connection attempt that starts with
// urls[start % len(urls)] and wraps around: a client that lost the node at
// index i starts with i+1, so that a dead node costs the next attempt
// nothing, and nodes keep the operator's order otherwise.
func from(urls []string, start int) []string {
	n := len(urls)
	if n == 0 {
		return nil
	}
	start = ((start % n) + n) % n
	out := make([]string, 0, n)
	out = append(out, urls[start:]...)
	return append(out, urls[:start]...)
}
