package enrollment

import (
	"crypto/ed25519"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func centralKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestCodeFormat(t *testing.T) {
	pub, _ := centralKey(t)
	c, err := NewCode(pub)
	if err != nil {
		t.Fatal(err)
	}
	s := c.String()
	if !regexp.MustCompile(`^([0-9A-HJKMNP-TV-Z]{5}-){7}[0-9A-HJKMNP-TV-Z]{5}$`).MatchString(s) {
		t.Fatalf("code %q: want 8 groups of 5 Crockford base32 characters", s)
	}
	// A person may type it in lower case, without dashes, with O for 0
	// and l for 1.
	typed := strings.ToLower(strings.ReplaceAll(s, "-", " "))
	typed = strings.ReplaceAll(typed, "0", "o")
	typed = strings.ReplaceAll(typed, "1", "l")
	got, err := ParseCode(typed)
	if err != nil || got != c {
		t.Fatalf("ParseCode(%q) = %v, %v; want the code back", typed, got, err)
	}
	if got.Fingerprint != Fingerprint(pub) {
		t.Error("the code does not carry the key's fingerprint")
	}
	c2, _ := NewCode(pub)
	if c2.Secret == c.Secret {
		t.Error("two codes share a secret")
	}
}

func TestParseCodeRejectsTypos(t *testing.T) {
	pub, _ := centralKey(t)
	c, _ := NewCode(pub)
	s := c.String()
	// One character changed: caught by the check byte.
	i := 7
	sub := byte('A')
	if s[i] == 'A' {
		sub = 'B'
	}
	typo := s[:i] + string(sub) + s[i+1:]
	if _, err := ParseCode(typo); err == nil || !strings.Contains(err.Error(), "a character is wrong") {
		t.Errorf("ParseCode(one character off) = %v; want the check to catch it", err)
	}
	for _, bad := range []string{"", "ABCDE", s[:len(s)-1], s + "X", strings.Replace(s, s[:1], "U", 1)} {
		if _, err := ParseCode(bad); err == nil {
			t.Errorf("ParseCode(%q) accepted", bad)
		}
	}
}

func TestProtocolRoundTrip(t *testing.T) {
	pub, priv := centralKey(t)
	c, _ := NewCode(pub)
	r, err := NewRecipient()
	if err != nil {
		t.Fatal(err)
	}
	req := NewRequest(c, r)
	if strings.Contains(req.Code+req.Proof+req.Recipient, b64.EncodeToString(c.Secret[:])) {
		t.Fatal("the request carries the secret")
	}
	id, recipient, proof, err := ParseRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if !id.Equal(c.ID()) || !Verify(id, recipient, proof) {
		t.Fatal("central cannot verify the gate's proof")
	}
	want := Bundle{Site: "s1", GateID: "entry-1", Role: "entry", MQTT: MQTT{TLSPort: 8883, Username: "entry-1", Password: "pw-secret", CA: "PEM"},
		TicketPublicKeys: []string{"k1"}}
	resp, err := Seal(priv, id, recipient, want)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(resp.Sealed, "pw-secret") {
		t.Fatal("the answer is not encrypted")
	}
	key, err := CheckKey(c, KeyInfo{Key: b64.EncodeToString(pub)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(c, key, r, resp)
	if err != nil {
		t.Fatal(err)
	}
	if got.MQTT != want.MQTT || got.GateID != want.GateID || got.TicketPublicKeys[0] != "k1" {
		t.Errorf("bundle = %+v, want %+v", got, want)
	}
}

// A man in the middle who swaps the recipient key (to read the answer)
// invalidates the proof; one who answers with a key of his own fails the
// fingerprint; one who re-signs fails too.
func TestProtocolRefusesTampering(t *testing.T) {
	pub, priv := centralKey(t)
	c, _ := NewCode(pub)
	r, _ := NewRecipient()
	req := NewRequest(c, r)
	evil, _ := NewRecipient()
	swapped := req
	swapped.Recipient = b64.EncodeToString(evil.key.PublicKey().Bytes())
	id, recipient, proof, err := ParseRequest(swapped)
	if err != nil {
		t.Fatal(err)
	}
	if Verify(id, recipient, proof) {
		t.Fatal("a proof verified for a recipient the gate did not choose")
	}

	otherPub, otherPriv := centralKey(t)
	if _, err := CheckKey(c, KeyInfo{Key: b64.EncodeToString(otherPub)}); !errors.Is(err, ErrWrongCentral) {
		t.Errorf("CheckKey(another central's key) = %v, want ErrWrongCentral", err)
	}
	id, recipient, _, _ = ParseRequest(req)
	forged, err := Seal(otherPriv, id, recipient, Bundle{Site: "evil"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(c, pub, r, forged); !errors.Is(err, ErrWrongCentral) {
		t.Errorf("Open(answer signed by another key) = %v, want ErrWrongCentral", err)
	}
	good, _ := Seal(priv, id, recipient, Bundle{Site: "s"})
	if _, err := Open(c, pub, evil, good); err == nil {
		t.Error("an answer opened for another recipient")
	}
}

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://c.example:8080":       "http://c.example:8080/enroll",
		"https://c.example/parkgate/": "https://c.example/parkgate/enroll",
	} {
		if got, err := EndpointURL(in); err != nil || got != want {
			t.Errorf("EndpointURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "c.example:8080", "ftp://c.example", "http://"} {
		if _, err := EndpointURL(bad); err == nil {
			t.Errorf("EndpointURL(%q) accepted", bad)
		}
	}
}
