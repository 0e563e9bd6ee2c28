package ticket_test

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/ticket"
)

// Centrald signs with the site key; a gate verifies with the public key it
// was configured with (tickets.public_key).
func Example() {
	// Real code uses ticket.LoadOrCreateKey(cfg.Tickets.KeyFile).
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	signer, err := ticket.NewSigner(priv)
	if err != nil {
		panic(err)
	}
	from := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	code, err := signer.Issue(ticket.Ticket{
		ReservationID: "R7K2M9Q4X1B8C3D5",
		SpotID:        "17",
		From:          from,
		Until:         from.Add(3 * time.Hour),
		CarID:         "KLM4242",
	})
	if err != nil {
		panic(err)
	}

	// On the gate:
	pub, err := ticket.ParsePublicKey(ticket.FormatPublicKey(signer.PublicKey()))
	if err != nil {
		panic(err)
	}
	verifier, err := ticket.NewVerifier(pub)
	if err != nil {
		panic(err)
	}
	t, err := verifier.Verify(code+"\r\n", from.Add(-10*time.Minute))
	fmt.Println(len(code), t.ReservationID, t.SpotID, t.CarID, t.Until.Format(time.RFC3339), err)

	_, err = verifier.Verify(code, from.Add(3*time.Hour))
	fmt.Println(ticket.ReasonOf(err))
	_, err = verifier.Verify(code[:len(code)-1]+"A", from)
	fmt.Println(ticket.ReasonOf(err))
	// Output:
	// 167 R7K2M9Q4X1B8C3D5 17 KLM4242 2026-03-01T11:00:00Z <nil>
	// expired
	// bad_signature
}
