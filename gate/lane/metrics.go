package lane

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
	barrierEv *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkgate_gate_decisions_total",
			Help: "Decisions by outcome and reason word.",
		}, []string{"granted", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parkgate_gate_scan_to_relay_seconds",
			Help:    "From a read reaching the lane to the relay command, for granted reads.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1},
		}),
		barrierEv: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkgate_gate_barrier_events_total",
			Help: "Barrier events by kind (opened, closed, fault, ...).",
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.latency, m.barrierEv)
	}
	return m
}

func (m *metrics) decision(granted bool, reason string) {
	g := "false"
	if granted {
		g = "true"
	}
	m.decisions.WithLabelValues(g, reason).Inc()
}

func (m *metrics) barrier(kind string) { m.barrierEv.WithLabelValues(kind).Inc() }
