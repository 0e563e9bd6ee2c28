package enrollment

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Path is central's enrollment endpoint: GET answers KeyInfo, POST takes
// a Request and answers a Response.
const Path = "/enroll"

// Domain separation: every signature and the encryption name what they
// are for, so that none can be replayed as another.
const (
	requestContext  = "parkgate enrollment request v1\x00"
	responseContext = "parkgate enrollment response v1\x00"
	hpkeInfo        = "parkgate enrollment bundle v1\x00"
)

// KeyInfo is GET /enroll's answer: central's enrollment public key, which
// the gate compares with the code's fingerprint before it sends anything.
type KeyInfo struct {
	Key string `json:"key"` // base64, 32 bytes
}

// Request is POST /enroll's body.
type Request struct {
	// Code is the code's ID (base64): which code, not its secret.
	Code string `json:"code"`
	// Recipient is the gate's X25519 public key for this request only
	// (base64): central encrypts the answer to it.
	Recipient string `json:"recipient"`
	// Proof is the code's key's signature (base64) over Recipient: it
	// shows that the sender knows the secret and binds the answer's
	// recipient to it, so nobody who sees or intercepts the request can
	// have the answer encrypted to a key of their own.
	Proof string `json:"proof"`
}

// Response is POST /enroll's answer.
type Response struct {
	// Sealed is the Bundle as JSON, HPKE-encrypted (DHKEM X25519,
	// HKDF-SHA256, AES-256-GCM) to the request's Recipient: the
	// encapsulated key followed by the ciphertext, base64.
	Sealed string `json:"sealed"`
	// Signature is central's enrollment key's signature (base64) over the
	// code's ID, the Recipient and Sealed.
	Signature string `json:"signature"`
}

// Bundle is everything a lane needs from central, as the gate receives
// it.
type Bundle struct {
	Site   string `json:"site"`
	GateID string `json:"gateId"`
	Role   string `json:"role"`
	MQTT   MQTT   `json:"mqtt"`
	// TicketPublicKeys are the site's ticket keys in the form gated's
	// tickets.public_key takes.
	TicketPublicKeys []string `json:"ticketPublicKeys"`
}

// MQTT is the broker part of a Bundle.
type MQTT struct {
	// URL is the broker URL central announces (enroll.broker_url); empty:
	// the gate uses ssl://{the host it enrolled with}:{TLSPort}.
	URL string `json:"url,omitempty"`
	// TLSPort is the embedded broker's TLS port (0: no TLS listener).
	TLSPort int `json:"tlsPort,omitempty"`
	// PlainPort is the embedded broker's plain TCP port, used only when
	// it has no TLS listener (a lab).
	PlainPort int    `json:"plainPort,omitempty"`
	Username  string `json:"username"`
	Password  string `json:"password"`
	// CA is the PEM certificate(s) the gate trusts for the broker; empty:
	// the system's roots.
	CA string `json:"ca,omitempty"`
}

func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.AES256GCM() }

var b64 = base64.StdEncoding

// Recipient is the gate's key pair for one request.
type Recipient struct{ key *ecdh.PrivateKey }

// NewRecipient makes a fresh X25519 key pair.
func NewRecipient() (*Recipient, error) {
	k, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	return &Recipient{key: k}, nil
}

// NewRequest is the gate's request for code, answered to r.
func NewRequest(c Code, r *Recipient) Request {
	pub := r.key.PublicKey().Bytes()
	sig := ed25519.Sign(c.signingKey(), append([]byte(requestContext), pub...))
	return Request{Code: b64.EncodeToString(c.ID()), Recipient: b64.EncodeToString(pub), Proof: b64.EncodeToString(sig)}
}

// ErrBadRequest: the request is malformed.
var ErrBadRequest = errors.New("malformed enrollment request")

// ParseRequest decodes a request's fields (it does not check the proof:
// Verify does, with the key central stored for the code).
func ParseRequest(req Request) (id ed25519.PublicKey, recipient, proof []byte, err error) {
	id, err1 := b64.DecodeString(req.Code)
	recipient, err2 := b64.DecodeString(req.Recipient)
	proof, err3 := b64.DecodeString(req.Proof)
	if err1 != nil || err2 != nil || err3 != nil || len(id) != ed25519.PublicKeySize || len(recipient) != 32 || len(proof) != ed25519.SignatureSize {
		return nil, nil, nil, ErrBadRequest
	}
	if _, err := ecdh.X25519().NewPublicKey(recipient); err != nil {
		return nil, nil, nil, ErrBadRequest
	}
	return id, recipient, proof, nil
}

// Verify reports whether proof shows knowledge of the secret behind id
// for this recipient.
func Verify(id ed25519.PublicKey, recipient, proof []byte) bool {
	return len(id) == ed25519.PublicKeySize && ed25519.Verify(id, append([]byte(requestContext), recipient...), proof)
}

// Seal is central's answer: b encrypted to recipient and signed with
// central's enrollment key.
func Seal(key ed25519.PrivateKey, id ed25519.PublicKey, recipient []byte, b Bundle) (Response, error) {
	plain, err := json.Marshal(b)
	if err != nil {
		return Response{}, err
	}
	pk, err := ecdh.X25519().NewPublicKey(recipient)
	if err != nil {
		return Response{}, ErrBadRequest
	}
	hpk, err := hpke.NewDHKEMPublicKey(pk)
	if err != nil {
		return Response{}, err
	}
	kdf, aead := suite()
	sealed, err := hpke.Seal(hpk, kdf, aead, append([]byte(hpkeInfo), id...), plain)
	if err != nil {
		return Response{}, err
	}
	sig := ed25519.Sign(key, responseMessage(id, recipient, sealed))
	return Response{Sealed: b64.EncodeToString(sealed), Signature: b64.EncodeToString(sig)}, nil
}

func responseMessage(id, recipient, sealed []byte) []byte {
	var m bytes.Buffer
	m.WriteString(responseContext)
	m.Write(id)
	m.Write(recipient)
	m.Write(sealed)
	return m.Bytes()
}

// ErrWrongCentral: the key the other end presents is not the one whose
// fingerprint the code carries.
var ErrWrongCentral = errors.New("this central's enrollment key does not match the code: it is not the central that issued the code (check the URL), or someone is in between")

// CheckKey parses central's enrollment key and checks it against the code.
func CheckKey(c Code, info KeyInfo) (ed25519.PublicKey, error) {
	k, err := b64.DecodeString(info.Key)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("central's enrollment key is malformed: %w", ErrWrongCentral)
	}
	if Fingerprint(k) != c.Fingerprint {
		return nil, ErrWrongCentral
	}
	return k, nil
}

// Open checks central's signature with centralKey (checked by CheckKey)
// and decrypts the bundle.
func Open(c Code, centralKey ed25519.PublicKey, r *Recipient, resp Response) (Bundle, error) {
	var b Bundle
	sealed, err1 := b64.DecodeString(resp.Sealed)
	sig, err2 := b64.DecodeString(resp.Signature)
	if err1 != nil || err2 != nil {
		return b, errors.New("central's answer is malformed")
	}
	recipient := r.key.PublicKey().Bytes()
	id := c.ID()
	if Fingerprint(centralKey) != c.Fingerprint || !ed25519.Verify(centralKey, responseMessage(id, recipient, sealed), sig) {
		return b, fmt.Errorf("central's answer is not signed by the key in the code: %w", ErrWrongCentral)
	}
	sk, err := hpke.NewDHKEMPrivateKey(r.key)
	if err != nil {
		return b, err
	}
	kdf, aead := suite()
	plain, err := hpke.Open(sk, kdf, aead, append([]byte(hpkeInfo), id...), sealed)
	if err != nil {
		return b, errors.New("central's answer does not decrypt")
	}
	if err := json.Unmarshal(plain, &b); err != nil {
		return b, fmt.Errorf("central's answer: %w", err)
	}
	return b, nil
}
