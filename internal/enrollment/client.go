package enrollment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Error codes central answers a refused POST /enroll with (the API's
// usual {"error": {"code", "message"}}).
const (
	CodeUnknown  = "enrollment_unknown"  // no such code (or a wrong proof)
	CodeUsed     = "enrollment_used"     // redeemed before
	CodeExpired  = "enrollment_expired"  // past enroll.ttl
	CodeThrottle = "too_many_requests"   // too many failures from this address
	CodeNoBroker = "enrollment_disabled" // central cannot enroll gates (no embedded broker)
)

// RefusedError is central's refusal of a request.
type RefusedError struct {
	Status  int
	Code    string
	Message string
}

// Error is central's message, meant for the person enrolling the gate.
func (e *RefusedError) Error() string {
	if e.Message != "" {
		return "central refused: " + e.Message
	}
	return fmt.Sprintf("central refused: HTTP %d %s", e.Status, e.Code)
}

// maxAnswer bounds what is read of central's answers (a CA bundle and
// some keys: a few KiB).
const maxAnswer = 1 << 20

// Enroll runs the protocol against the central at base (its HTTP API,
// e.g. http://central.example:8080): it fetches central's key and checks
// it against the code before sending anything, then redeems the code and
// returns the verified, decrypted bundle. hc nil: http.DefaultClient.
func Enroll(ctx context.Context, hc *http.Client, base string, c Code) (Bundle, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u, err := EndpointURL(base)
	if err != nil {
		return Bundle{}, err
	}
	var info KeyInfo
	if err := call(ctx, hc, http.MethodGet, u, nil, &info); err != nil {
		return Bundle{}, err
	}
	key, err := CheckKey(c, info)
	if err != nil {
		return Bundle{}, err
	}
	r, err := NewRecipient()
	if err != nil {
		return Bundle{}, err
	}
	body, err := json.Marshal(NewRequest(c, r))
	if err != nil {
		return Bundle{}, err
	}
	var resp Response
	if err := call(ctx, hc, http.MethodPost, u, body, &resp); err != nil {
		return Bundle{}, err
	}
	return Open(c, key, r, resp)
}

// EndpointURL is the enrollment endpoint under central's base URL.
func EndpointURL(base string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--central %q: want central's HTTP API URL, e.g. http://central.example:8080", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + Path
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

func call(ctx context.Context, hc *http.Client, method, u string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reaching central: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("reading central's answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return &RefusedError{Status: res.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
		}
		if res.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s %s: 404: this does not look like a centrald that can enroll gates (check --central)", method, u)
		}
		return &RefusedError{Status: res.StatusCode, Code: http.StatusText(res.StatusCode)}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: not centrald's answer: %w", method, u, err)
	}
	return nil
}
