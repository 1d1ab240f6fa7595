package risk

import "github.com/prometheus/client_golang/prometheus"

// Table names (label values).
const (
	tableSubjects  = "subjects"
	tableSessions  = "sessions"
	tableTokens    = "tokens"
	tableAddresses = "addresses"
)

// engineMetrics are the engine's Prometheus collectors.
type engineMetrics struct {
	events    *prometheus.CounterVec
	processed prometheus.Counter
	dropped   prometheus.Counter
	ignored   prometheus.Counter
	queue     prometheus.GaugeFunc
	size      *prometheus.GaugeVec
	evictions *prometheus.CounterVec
	publishes *prometheus.CounterVec
	changes   *prometheus.CounterVec
	detected  *prometheus.CounterVec
	// evictionCounters are the evictions children by "table/cause".
	evictionCounters map[string]prometheus.Counter
}

func newEngineMetrics(e *Engine) *engineMetrics {
	m := &engineMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_risk_events_total",
			Help: "Request events offered to the risk engine, by result: processed, dropped (queue full; the request was not affected), ignored (oversized identifiers).",
		}, []string{"result"}),
		queue: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_risk_queue_length",
			Help: "Events waiting for the risk engine.",
		}, func() float64 { return float64(len(e.events)) }),
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_risk_tracked",
			Help: "Keys the risk engine keeps state for, by table (subjects, sessions, tokens, addresses, active), updated every tick.",
		}, []string{"table"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_risk_evictions_total",
			Help: "Keys evicted from the risk engine's tables, by table and cause (size, idle).",
		}, []string{"table", "cause"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_risk_publish_total",
			Help: "Risk changes written to the signal journal, by result: ok, error (retried), deferred (rate limit or full queue; retried on a later tick).",
		}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_risk_changes_total",
			Help: "Risk changes journalled, by new level.",
		}, []string{"level"}),
	}
	m.detected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_risk_detections_total",
		Help: "Contributions added or refreshed by the detectors, by detector.",
	}, []string{"detector"})
	m.processed = m.events.WithLabelValues("processed")
	m.dropped = m.events.WithLabelValues("dropped")
	m.ignored = m.events.WithLabelValues("ignored")
	for _, r := range []string{"ok", "error", "deferred"} {
		m.publishes.WithLabelValues(r)
	}
	m.evictionCounters = map[string]prometheus.Counter{}
	for _, t := range []string{tableSubjects, tableSessions, tableTokens, tableAddresses} {
		for _, c := range []string{"size", "idle"} {
			m.evictionCounters[t+"/"+c] = m.evictions.WithLabelValues(t, c)
		}
	}
	return m
}

func (m *engineMetrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.events, m.queue, m.size, m.evictions, m.publishes, m.changes, m.detected} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *engineMetrics) evicted(table string, idle bool) {
	cause := "size"
	if idle {
		cause = "idle"
	}
	c, ok := m.evictionCounters[table+"/"+cause]
	if !ok {
		c = m.evictions.WithLabelValues(table, cause)
	}
	c.Inc()
}

func (m *engineMetrics) publish(result string) { m.publishes.WithLabelValues(result).Inc() }

func (m *engineMetrics) tracked(subjects, sessions, tokens, addrs, active int) {
	m.size.WithLabelValues(tableSubjects).Set(float64(subjects))
	m.size.WithLabelValues(tableSessions).Set(float64(sessions))
	m.size.WithLabelValues(tableTokens).Set(float64(tokens))
	m.size.WithLabelValues(tableAddresses).Set(float64(addrs))
	m.size.WithLabelValues("active").Set(float64(active))
}
