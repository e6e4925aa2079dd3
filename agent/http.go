package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"time"
)

// serveHTTP starts the local /healthz and /metrics listener and returns
// its address and a function that stops it.
func (a *Agent) serveHTTP() (string, func(), error) {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return "", nil, fmt.Errorf("agent: http %s: %w", a.cfg.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /metrics", a.metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http listener", "err", err)
		}
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
	return ln.Addr().String(), stop, nil
}

// healthz answers 200 while the agent serves: its bus takes connections.
func (a *Agent) healthz(w http.ResponseWriter, _ *http.Request) {
	if a.nc == nil || !a.nc.IsConnected() {
		http.Error(w, "device bus not connected\n", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// metrics writes the Prometheus text exposition format.
func (a *Agent) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b strings.Builder
	gauge := func(name, help, typ string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	gauge("trellis_up", "1 while the agent serves.", "gauge")
	fmt.Fprintf(&b, "trellis_up{host=%q,name=%q,lattice=%q} 1\n", a.hostID, a.cfg.Name, a.cfg.Lattice)
	gauge("trellis_leaf_connections", "Connections to hubs (leaf node remotes).", "gauge")
	fmt.Fprintf(&b, "trellis_leaf_connections %d\n", a.srv.LeafNodes())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauge("trellis_resident_memory_bytes", "Resident set size of the agent process.", "gauge")
	fmt.Fprintf(&b, "trellis_resident_memory_bytes %d\n", rss())
	gauge("trellis_go_heap_inuse_bytes", "Go heap in use, including actor linear memory.", "gauge")
	fmt.Fprintf(&b, "trellis_go_heap_inuse_bytes %d\n", ms.HeapInuse)

	actors := a.rt.Actors()
	sort.Slice(actors, func(i, j int) bool { return actors[i].Name() < actors[j].Name() })
	series := []struct {
		name, help, typ string
		value           func(i int) uint64
	}{
		{"trellis_actor_calls_total", "Calls made to the actor.", "counter", func(i int) uint64 { return actors[i].Stats().Calls }},
		{"trellis_actor_failures_total", "Calls that failed, any code.", "counter", func(i int) uint64 { return actors[i].Stats().Failures }},
		{"trellis_actor_discarded_total", "Instances discarded after a trap, timeout or fault.", "counter", func(i int) uint64 { return actors[i].Stats().Discarded }},
		{"trellis_actor_instances", "Live instances.", "gauge", func(i int) uint64 { return uint64(actors[i].Stats().Instances) }},
		{"trellis_actor_max_instances", "The actor's max_instances limit.", "gauge", func(i int) uint64 { return uint64(actors[i].Limits().MaxInstances) }},
	}
	for _, s := range series {
		gauge(s.name, s.help, s.typ)
		for i, act := range actors {
			fmt.Fprintf(&b, "%s{actor=%q} %d\n", s.name, act.Name(), s.value(i))
		}
	}
	a.capabilityMetrics(&b, gauge)
	_, _ = w.Write([]byte(b.String()))
}

// capabilityMetrics writes the capabilities' counters.
func (a *Agent) capabilityMetrics(b *strings.Builder, gauge func(name, help, typ string)) {
	one := func(name, help, typ string, v uint64) {
		gauge(name, help, typ)
		fmt.Fprintf(b, "%s %d\n", name, v)
	}
	ds := a.caps.Stats()
	one("trellis_capability_denied_total", "Capability calls refused for want of a grant.", "counter", ds.Denied)
	one("trellis_capability_unknown_total", "Host calls to a namespace nothing serves.", "counter", ds.Unknown)
	one("trellis_gpio_dropped_edges_total", "GPIO edges dropped because an actor fell behind.", "counter", a.dev.gpio.Dropped())
	ms := a.msg.Stats()
	one("trellis_messaging_subscriptions", "Live subscriptions of actors.", "gauge", uint64(ms.Subscriptions))
	one("trellis_messaging_delivered_total", "Messages delivered to actors.", "counter", ms.Delivered)
	one("trellis_messaging_dropped_total", "Messages dropped because an actor fell behind.", "counter", ms.Dropped)
	one("trellis_messaging_failed_total", "Deliveries whose invocation failed.", "counter", ms.Failed)
	ts := a.timers.Stats()
	one("trellis_timers", "Live timers and schedules.", "gauge", uint64(ts.Timers))
	one("trellis_timer_fired_total", "Timer invocations.", "counter", ts.Fired)
	one("trellis_timer_skipped_total", "Ticks skipped because the previous one still ran.", "counter", ts.Skipped)
	one("trellis_timer_failed_total", "Timer invocations that failed.", "counter", ts.Failed)
	hs := a.http.Stats()
	one("trellis_http_requests_total", "HTTP ingress requests.", "counter", hs.Requests)
	one("trellis_http_errors_total", "HTTP ingress requests the host answered with an error (no route, too large, unavailable, timeout, failed, bad response).", "counter",
		hs.NoRoute+hs.BadRequest+hs.TooLarge+hs.Unavailable+hs.Timeout+hs.Failed+hs.BadResponse)
}
