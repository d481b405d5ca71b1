// Package metrics owns Tally's Prometheus metrics: HTTP request counts and
// latencies, and counts and latencies of ledger operations, on a registry of
// its own served at /metrics.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors. Create one per process with New.
type Metrics struct {
	reg         *prometheus.Registry
	httpCount   *prometheus.CounterVec
	httpLatency *prometheus.HistogramVec
	ledgerCount *prometheus.CounterVec
	ledgerLat   *prometheus.HistogramVec
}

// New returns metrics registered on a fresh registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_http_requests_total", Help: "HTTP requests by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tally_http_request_duration_seconds", Help: "HTTP request latency by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route"}),
		ledgerCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_ledger_operations_total", Help: "Ledger operations by operation and outcome (ok, replayed, or an error code).",
		}, []string{"op", "outcome"}),
		ledgerLat: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tally_ledger_operation_duration_seconds", Help: "Ledger operation latency by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"op"}),
	}
	m.reg.MustRegister(m.httpCount, m.httpLatency, m.ledgerCount, m.ledgerLat,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveLedger records one ledger operation; it fits ledger.Observer.
func (m *Metrics) ObserveLedger(op, outcome string, d time.Duration) {
	m.ledgerCount.WithLabelValues(op, outcome).Inc()
	m.ledgerLat.WithLabelValues(op).Observe(d.Seconds())
}

// Middleware counts and times the requests next serves, labelled with the
// route pattern the ServeMux matched (never the raw path, which would make a
// series per member).
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m.httpCount.WithLabelValues(r.Method, route, strconv.Itoa(sw.code)).Inc()
		m.httpLatency.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
