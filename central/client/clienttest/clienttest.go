// Package clienttest starts centrald's real HTTP handler in-process, on a
// fresh SQLite database, for tests of programs built on package client
// (the client itself, parkctl). Going through the real handler, not a
// fake, is the point: a test that passes here passes against centrald.
package clienttest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/client"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/ticket"
)

// AdminToken is the operator token the test server accepts.
const AdminToken = "clienttest-admin-token-0123456789"

// Server is a running test server. It is closed when the test ends.
type Server struct {
	// URL is the server's base URL, for client.New.
	URL string
	// HTTP is the httptest server, whose Client() fits WithHTTPClient.
	HTTP *httptest.Server
	// Store is the server's database, for checks behind the API's back.
	Store store.Store
	// Pay is the fake payment provider, to count charges.
	Pay *fakepay.Provider
	// PublicKey is the ticket key the server serves, in the form
	// tickets.public_key takes.
	PublicKey string
}

// Start serves the real handler on the given spot ids with clk as the
// server's time (a *clocktest.Clock lets the test move it). Booking runs
// with booking.DefaultConfig; tickets are signed with a fixed test key.
func Start(t testing.TB, clk clock.Clock, spots ...string) *Server {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.SetSpots(ctx, spots, clk.Now()); err != nil {
		t.Fatal(err)
	}
	signer, err := ticket.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	pay := &fakepay.Provider{}
	cfg := booking.DefaultConfig()
	svc := booking.New(st, pay, booking.Tickets{Signer: signer}, clk, cfg, nil, nil)
	pub := ticket.FormatPublicKey(signer.PublicKey())
	h := api.New(svc, api.Options{
		AdminToken:  AdminToken,
		PublicKey:   pub,
		KeyID:       signer.KeyID(),
		PaymentHold: cfg.PaymentHold,
		Registry:    prometheus.NewRegistry(),
	})
	h.SetReady(true)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Server{URL: srv.URL, HTTP: srv, Store: st, Pay: pay, PublicKey: pub}
}

// Client returns a client of the server with the admin token set (opts
// may override it).
func (s *Server) Client(t testing.TB, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithHTTPClient(s.HTTP.Client()), client.WithAdminToken(AdminToken)}, opts...)
	c, err := client.New(s.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
