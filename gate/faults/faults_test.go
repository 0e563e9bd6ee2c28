package faults_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/gate/faults"
)

func fired(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestRegister(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	clk := clocktest.New(t0)
	reg := prometheus.NewRegistry()
	r := faults.New(clk, reg, faults.Record, faults.Barrier)
	gauge := func(kind string) float64 {
		return value(t, reg, "parkgate_gate_fault", kind)
	}
	if s := r.Snapshot(); s == nil || len(s) != 0 {
		t.Fatalf("new register: %#v, want an empty slice", s)
	}
	if g := gauge(faults.Barrier); g != 0 {
		t.Errorf("declared kind's gauge = %v before any fault, want 0", g)
	}

	ch := r.Changed()
	r.Set(faults.Record, errors.New("database or disk is full"), time.Time{})
	if !fired(ch) {
		t.Error("raising a fault did not signal a change")
	}
	clk.Advance(time.Second)
	ch = r.Changed()
	r.Set(faults.Record, errors.New("database or disk is full"), time.Time{})
	if fired(ch) {
		t.Error("the same error again signalled a change")
	}
	at := t0.Add(2 * time.Second)
	r.Set(faults.Record, errors.New("disk I/O error\nat page 7"), at)
	if !fired(ch) {
		t.Error("a new error text did not signal a change")
	}
	want := faults.Fault{Kind: faults.Record, Error: "disk I/O error at page 7", Since: t0, At: at, Count: 3}
	if s := r.Snapshot(); len(s) != 1 || s[0] != want {
		t.Errorf("snapshot = %+v, want %+v", s, want)
	}
	if !r.Active(faults.Record) || gauge(faults.Record) != 1 || events(t, reg, faults.Record) != 1 {
		t.Errorf("active %v gauge %v events %v, want true 1 1", r.Active(faults.Record), gauge(faults.Record), events(t, reg, faults.Record))
	}

	r.Set("Loop Noise!", nil, at)
	if s := r.Snapshot(); len(s) != 2 || s[0].Kind != "loop_noise_" || s[0].Error != "unknown error" || s[1].Kind != faults.Record {
		t.Errorf("snapshot = %+v, want loop_noise_ then record, ordered by kind", s)
	}

	ch = r.Changed()
	r.Clear(faults.Record)
	if !fired(ch) || r.Active(faults.Record) || gauge(faults.Record) != 0 {
		t.Errorf("after Clear: changed %v active %v gauge %v", fired(ch), r.Active(faults.Record), gauge(faults.Record))
	}
	ch = r.Changed()
	r.Clear(faults.Record)
	if fired(ch) {
		t.Error("clearing a cleared fault signalled a change")
	}
	clk.Advance(time.Minute)
	r.Set(faults.Record, errors.New("database or disk is full"), time.Time{})
	if s := r.Snapshot(); s[1].Since != clk.Now() || s[1].Count != 1 || events(t, reg, faults.Record) != 2 {
		t.Errorf("raised again: %+v, %v events; want a new since and 2 events", s[1], events(t, reg, faults.Record))
	}
}

func TestLongErrorIsCut(t *testing.T) {
	r := faults.New(nil, nil)
	r.Set(faults.Record, errors.New(strings.Repeat("é", 200)), time.Time{})
	e := r.Snapshot()[0].Error
	if len(e) > faults.MaxError || !strings.HasPrefix(e, "éé") || strings.ContainsRune(e, '\uFFFD') {
		t.Errorf("cut error = %d bytes %q", len(e), e)
	}
}

// A part given no register reports into nil without a check of its own.
func TestNilRegister(t *testing.T) {
	var r *faults.Register
	var rep faults.Reporter = r
	rep.Set(faults.Barrier, errors.New("x"), time.Time{})
	rep.Clear(faults.Barrier)
	if s := r.Snapshot(); s == nil || len(s) != 0 || r.Active(faults.Barrier) || r.Changed() != nil {
		t.Errorf("nil register: %#v", s)
	}
}

// value reads the series name{kind} from reg; -1 when it is not there.
func value(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					if m.Gauge != nil {
						return m.GetGauge().GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

func events(t *testing.T, reg *prometheus.Registry, kind string) float64 {
	t.Helper()
	return value(t, reg, "parkgate_gate_fault_events_total", kind)
}
