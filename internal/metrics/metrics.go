// Package metrics owns Vigil's Prometheus metrics. One Metrics value is
// created per process and handed to the components that record into it;
// nothing is registered globally.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the registry and the collectors.
type Metrics struct {
	Registry *prometheus.Registry

	decisions     *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	policyVersion *prometheus.GaugeVec
	reloads       *prometheus.CounterVec
	policyCount   prometheus.Gauge
}

// New creates the collectors on a fresh registry, with Go and process
// collectors.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_decisions_total",
		Help: "Decisions made, by surface (authzen, gateway, forward_auth) and result (allow, deny).",
	}, []string{"surface", "result"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vigil_decision_duration_seconds",
		Help:    "Time to decide one request, by surface.",
		Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2},
	}, []string{"surface"})
	m.policyVersion = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vigil_policy_version_info",
		Help: "The active policy version (value 1 on the active version's label).",
	}, []string{"version"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_policy_reloads_total",
		Help: "Policy activation attempts, by source kind (dir, push, rollback) and result (success, failure, unchanged).",
	}, []string{"source", "result"})
	m.policyCount = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_policies_active",
		Help: "Number of policies in the active version.",
	})
	m.Registry.MustRegister(m.decisions, m.latency, m.policyVersion, m.reloads, m.policyCount,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Decision records one decision.
func (m *Metrics) Decision(surface string, allow bool, d time.Duration) {
	result := "deny"
	if allow {
		result = "allow"
	}
	m.decisions.WithLabelValues(surface, result).Inc()
	m.latency.WithLabelValues(surface).Observe(d.Seconds())
}

// PolicyActivated records a new active version.
func (m *Metrics) PolicyActivated(version string, policies int) {
	m.policyVersion.Reset()
	m.policyVersion.WithLabelValues(version).Set(1)
	m.policyCount.Set(float64(policies))
}

// Reload records a policy activation attempt.
func (m *Metrics) Reload(source, result string) {
	m.reloads.WithLabelValues(source, result).Inc()
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
