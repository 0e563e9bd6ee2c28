package booking

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/central/reservation"
)

// Metrics are the booking counters exported on /metrics.
type Metrics struct {
	reservations *prometheus.CounterVec
	transitions  *prometheus.CounterVec
	payments     *prometheus.CounterVec
	refunds      *prometheus.CounterVec
}

// NewMetrics creates the counters and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reservations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkgate_reservation_attempts_total",
			Help: "Reservation requests by outcome (created, overlap, rejected, error).",
		}, []string{"outcome"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkgate_reservation_transitions_total",
			Help: "Reservation state changes by the state reached.",
		}, []string{"state"}),
		payments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkgate_payment_attempts_total",
			Help: "Payment attempts by outcome (succeeded, declined, failed).",
		}, []string{"outcome"}),
		refunds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkgate_refund_attempts_total",
			Help: "Refund attempts by status reached (succeeded, refused, pending: to retry).",
		}, []string{"status"}),
	}
	if reg != nil {
		reg.MustRegister(m.reservations, m.transitions, m.payments, m.refunds)
	}
	return m
}

func (m *Metrics) reserve(err error) {
	outcome := "created"
	if err != nil {
		outcome = "error"
		var e *Error
		if errors.As(err, &e) {
			outcome = "rejected"
			if e.Code == "overlap" {
				outcome = "overlap"
			}
		}
	}
	m.reservations.WithLabelValues(outcome).Inc()
}

func (m *Metrics) transition(s reservation.State) { m.transitions.WithLabelValues(string(s)).Inc() }

func (m *Metrics) payment(outcome string) { m.payments.WithLabelValues(outcome).Inc() }

func (m *Metrics) refund(status string) { m.refunds.WithLabelValues(status).Inc() }
