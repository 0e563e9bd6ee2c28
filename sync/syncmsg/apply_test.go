package syncmsg

import "testing"

func TestClassify(t *testing.T) {
	batch := Changes{From: 41, To: 44}
	hb := Heartbeat(44)
	for _, c := range []struct {
		have int64
		c    Changes
		want Verdict
	}{
		{41, batch, Apply},
		{44, batch, Repeat},
		{50, batch, Repeat},
		{40, batch, Gap},
		{0, batch, Gap},
		{42, batch, Gap},
		{43, batch, Gap},
		{44, hb, Repeat},
		{45, hb, Repeat},
		{43, hb, Gap},
		{0, Changes{From: 0, To: 1}, Apply},
		{0, Heartbeat(0), Repeat},
		{5, Changes{From: 6, To: 4}, Gap},
	} {
		if got := Classify(c.have, c.c); got != c.want {
			t.Errorf("Classify(%d, (%d, %d]) = %v, want %v", c.have, c.c.From, c.c.To, got, c.want)
		}
	}
	if Apply.String() != "apply" || Repeat.String() != "repeat" || Gap.String() != "gap" || Verdict(0).String() != "Verdict(0)" {
		t.Error("Verdict names")
	}
	if !hb.IsHeartbeat() || batch.IsHeartbeat() {
		t.Error("IsHeartbeat")
	}
}
