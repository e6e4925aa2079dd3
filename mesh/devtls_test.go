package mesh

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestDevTLSUplink: a hub whose leaf listener requires TLS with a device
// certificate takes a leaf that has one; a TLS client without a device
// certificate is refused at the handshake; a second EnsureDevTLS reuses
// the files.
func TestDevTLSUplink(t *testing.T) {
	dir := t.TempDir()
	d, err := EnsureDevTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EnsureDevTLS(dir)
	if err != nil || again != d {
		t.Fatalf("a second EnsureDevTLS: %+v, %v", again, err)
	}
	hubTLS, err := d.HubConfig()
	if err != nil {
		t.Fatal(err)
	}
	var hubLog syncBuffer
	hub, err := StartServer(t.Context(), ServerOptions{Name: "hub", DontListen: true, LeafListen: "127.0.0.1:0", LeafTLS: hubTLS,
		Logger: slog.New(slog.NewTextHandler(&hubLog, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	if !strings.HasPrefix(hub.LeafURL(), "tls://") {
		t.Fatalf("leaf URL %s, want tls://", hub.LeafURL())
	}
	devTLS, err := d.DeviceConfig()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := StartServer(t.Context(), ServerOptions{Name: "device", DontListen: true, Hubs: []string{hub.LeafURL()}, HubTLS: devTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer leaf.Shutdown(context.Background())
	eventually(t, "the device joined over TLS", func() bool { return hub.LeafNodes() == 1 })

	// Without a device certificate the hub refuses the leaf at the TLS
	// handshake (and says so in its log); the good leaf stays.
	noCert := devTLS.Clone()
	noCert.Certificates = nil
	bad, err := StartServer(t.Context(), ServerOptions{Name: "stranger", DontListen: true, Hubs: []string{hub.LeafURL()}, HubTLS: noCert})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Shutdown(context.Background())
	eventually(t, "the hub refusing a leaf without a certificate", func() bool {
		return strings.Contains(hubLog.String(), "didn't provide a certificate")
	})
	if hub.LeafNodes() != 1 || bad.LeafConnected() {
		t.Fatalf("leaves on the hub: %d; the one without a certificate connected: %v", hub.LeafNodes(), bad.LeafConnected())
	}

	// Half a setup is not silently completed.
	if err := removeFile(d.DeviceKey); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDevTLS(dir); err == nil || !strings.Contains(err.Error(), "only some of the files") {
		t.Fatalf("a partial setup: %v", err)
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func removeFile(p string) error { return os.Remove(p) }
