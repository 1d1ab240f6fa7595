package replica

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descApplied = prometheus.NewDesc("vigil_replica_applied_seq",
		"Sequence applied on this replica, by log (signals: the live-state journal; policies: policy activations).",
		[]string{"log"}, nil)
	descCluster = prometheus.NewDesc("vigil_replica_cluster_seq",
		"Sequence the cluster held at the latest freshness probe, by log.", []string{"log"}, nil)
	descLag = prometheus.NewDesc("vigil_replica_lag",
		"Sequences the cluster held beyond what this replica had applied at the latest probe, by log.", []string{"log"}, nil)
	descStaleness = prometheus.NewDesc("vigil_replica_staleness_seconds",
		"Age of this replica's latest proof that it had applied everything the cluster held (-1 before the first).", nil, nil)
	descMaxStaleness = prometheus.NewDesc("vigil_replica_max_staleness_seconds",
		"cluster.max_staleness: beyond this staleness the replica fails closed.", nil, nil)
	descFresh = prometheus.NewDesc("vigil_replica_fresh",
		"1 while the replica can prove it is fresh within cluster.max_staleness, 0 while it fails closed.", nil, nil)
	descConnected = prometheus.NewDesc("vigil_replica_nats_connected",
		"1 while the NATS connection is up.", nil, nil)
)

// collector exposes a Replica's replication state to Prometheus, read at
// scrape time.
type collector struct{ r *Replica }

// Collector returns a Prometheus collector of the replication metrics:
// applied and cluster sequences and lag per log, staleness, freshness and
// the NATS connection.
func (r *Replica) Collector() prometheus.Collector { return collector{r} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descApplied, descCluster, descLag, descStaleness, descMaxStaleness, descFresh, descConnected} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	st := r.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descApplied, float64(st.StateSeq), "signals")
	gauge(descApplied, float64(st.PolicySeq), "policies")
	gauge(descCluster, float64(r.clusterState.Load()), "signals")
	gauge(descCluster, float64(r.clusterPolicy.Load()), "policies")
	gauge(descLag, float64(st.StateLag), "signals")
	gauge(descLag, float64(st.PolicyLag), "policies")
	staleness := -1.0
	if st.StalenessMS >= 0 {
		staleness = float64(st.StalenessMS) / 1000
	}
	gauge(descStaleness, staleness)
	gauge(descMaxStaleness, r.cfg.MaxStaleness.Seconds())
	gauge(descFresh, b2f(st.Fresh))
	gauge(descConnected, b2f(r.js.Conn().Status() == nats.CONNECTED))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
