package main

import (
	"testing"

	"github.com/parkgate/parkgate/central/client/clienttest"
)

// gate resync reaches POST /gates/{id}/resync: this server has no broker,
// so the answer is the endpoint's no_gates; a subcommand parkctl does not
// know is a usage error.
func TestGateResync(t *testing.T) {
	h := newHarness(t, "1")
	h.env[envAdmin] = clienttest.AdminToken
	h.want(h.run("gate", "resync", "entry-1"), 1, nil, []string{"no_gates"})
	h.want(h.run("gate", "close", "entry-1"), 2, nil, []string{"open ID or resync ID"})
	h.want(h.run("help", "gate"), 0, []string{"gate resync ID"}, nil)
}
