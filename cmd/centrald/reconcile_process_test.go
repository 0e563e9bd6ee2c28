package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A charge whose answer is lost (pm_card_timeout) while centrald is
// SIGKILLed with the payment in flight, then the reservation is cancelled
// on the restarted process: the reconciler finds the charge with the fake
// provider (which keeps its charges in its file, like a real provider),
// refunds it in full, and the refund shows settled. Nothing is kept.
func TestProcessLostAnswerWithSIGKILLIsRefunded(t *testing.T) {
	dir := t.TempDir()
	env := []string{"PARKING_PAYMENT_TIMEOUT=1s"}
	p := start(t, dir, env...)
	now := time.Now()
	r := p.must(201, "POST", "/reserve/parking/1", "", windowJSON(now.Add(time.Hour), now.Add(3*time.Hour)))
	tok, id := r["token"].(string), r["reservationId"].(string)
	go func() {
		// Its answer never comes: the process dies first.
		req, _ := http.NewRequest("POST", p.base+"/pay/parking/1", strings.NewReader(`{"carId":"B-XY 123","cardDetails":{"paymentMethod":"pm_card_timeout"}}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	payments := "/admin/reservations/" + id + "/payments"
	waitFor(t, "the attempt in flight", 10*time.Second, func() bool {
		atts, _ := p.call("GET", payments, adminToken, "").body["attempts"].([]any)
		return len(atts) == 1 && atts[0].(map[string]any)["outcome"] == "pending"
	})
	waitFor(t, "the fake's charge on disk", 10*time.Second, func() bool {
		return fileExists(filepath.Join(dir, "fakepay.json"))
	})
	p.kill()

	p = start(t, dir, env...)
	p.must(200, "DELETE", "/reservations/"+id, tok, "")
	var got map[string]any
	waitFor(t, "the refund settled", 20*time.Second, func() bool {
		got = p.must(200, "GET", payments, adminToken, "")
		rs, _ := got["refunds"].([]any)
		return len(rs) == 1 && rs[0].(map[string]any)["status"] == "succeeded"
	})
	att := got["attempts"].([]any)[0].(map[string]any)
	ref := got["refunds"].([]any)[0].(map[string]any)
	if att["outcome"] != "succeeded" || att["providerRef"] == "" || ref["amount"] != att["amount"] || ref["reason"] != "cancelled" {
		t.Fatalf("payments %v: want the charge found and refunded in full", got)
	}
	if s := p.must(200, "GET", "/reservations/"+id, tok, "")["status"]; s != "cancelled" {
		t.Fatalf("status %v", s)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
