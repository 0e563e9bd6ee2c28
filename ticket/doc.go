// Package ticket issues and verifies parkgate's signed parking tickets.
//
// After payment the central server (centrald) issues a ticket: one short
// ASCII string, printed as a QR code, that binds a reservation, its spot, its
// time window and the car's licence plate, signed with the site's Ed25519
// key. A gate verifies the ticket offline with the site's public key, so a
// ticket bought seconds ago opens the barrier even before the reservation has
// reached the gate's cache (docs/tickets.md). The package is shared by both
// halves so that the two sides can never disagree on the format.
//
// # Text form
//
// A ticket is the prefix "PG" followed by the RFC 4648 base32 encoding
// (upper-case alphabet A–Z 2–7, no padding) of the binary payload and its
// signature. Every character is in the QR alphanumeric set, so a QR code
// stores the ticket in the dense alphanumeric mode (5.5 bits a character)
// rather than byte mode (8 bits). Verify accepts only the canonical string:
// upper-case, and with the unused low bits of the last character zero, so
// that one ticket has exactly one spelling and a change to any character is
// denied. Surrounding whitespace, such as the CR/LF a scanner appends, is
// ignored.
//
// # Binary layout (format version 1)
//
//	offset  size   field
//	0       1      format version, 0x01
//	1       4      key id: SHA-256(Ed25519 public key)[0:4]
//	5       4      from: Unix seconds, unsigned 32-bit big-endian
//	9       1–4    window: until − from in seconds, unsigned varint
//	                (encoding/binary Uvarint), 1 s … 366 days
//	.       1      length of the reservation id (1–32)
//	.       n      reservation id (UTF-8, no control characters)
//	.       1      length of the spot id (1–32)
//	.       n      spot id (UTF-8, no control characters)
//	.       1      length of the car id (0–16)
//	.       n      car id, the licence plate as stored by centrald (may be empty)
//	.       64     Ed25519 signature over "parkgate-ticket-v1\x00" || all bytes above
//
// The signature covers a domain-separation string as well as the payload, so
// a signature made with the site key for any other purpose can never be
// passed off as a ticket. The version byte is signed, and it comes first so
// that a later format can be told apart before anything else is parsed.
//
// Why not plain varint Unix seconds for both times: every current date needs
// 5 varint bytes, whereas a 32-bit from (valid until 2106) needs 4 and a
// window length typically 2–3. Those bytes matter: a ticket with a
// 16-character reservation id, a 16-character spot id and a 12-character car
// id takes 123 bytes, that is 197 base32 characters, 199 with the prefix,
// while the target is under 200 characters (a QR code of version 8 at error
// correction level M holds 221 alphanumeric characters). For the same reason the prefix is the two characters
// "PG" without a separator: the version lives in the version byte, and "PG"
// cannot be confused with base32 because it is fixed. A longer prefix such as
// "PG1:" would push that ticket to 201 characters.
//
// Typical sizes: a 16-character reservation id, a short spot id such as
// "17", a 7-character plate and a window of a few hours give 167
// characters; the largest ticket the limits allow is 258 characters (still a
// version 9 QR code at level M).
//
// # Keys
//
// The site key is an Ed25519 private key kept by centrald in a PEM file
// (LoadOrCreateKey). Gates are configured with the public key in the one-line
// form produced by FormatPublicKey ("ed25519:<base64>"), as read by
// ParsePublicKey. A Verifier may hold several public keys, found by the key id
// in each ticket, so a site can rotate its key while tickets signed with the
// old key are still in drivers' hands.
package ticket
