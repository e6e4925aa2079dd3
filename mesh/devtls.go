package mesh

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DevTLS is a self-signed TLS setup for trying an authenticated uplink on
// one machine: a CA, a certificate for the hub's leaf listener (127.0.0.1,
// ::1 and localhost) and a client certificate for devices, all signed by
// the CA. Not for production: the CA's key sits beside the certificates.
type DevTLS struct {
	Dir                   string
	CA                    string // ca.pem: the hub's and the devices' trust anchor
	HubCert, HubKey       string // hub.pem, hub-key.pem
	DeviceCert, DeviceKey string // device.pem, device-key.pem
	caKey                 string
}

// devTLSValidity is how long the generated certificates last.
const devTLSValidity = 397 * 24 * time.Hour

// EnsureDevTLS returns the setup in dir, generating the files that are
// missing (mode 0600 keys, dir 0700). An existing setup is reused as is.
func EnsureDevTLS(dir string) (DevTLS, error) {
	d := DevTLS{
		Dir: dir, CA: filepath.Join(dir, "ca.pem"), caKey: filepath.Join(dir, "ca-key.pem"),
		HubCert: filepath.Join(dir, "hub.pem"), HubKey: filepath.Join(dir, "hub-key.pem"),
		DeviceCert: filepath.Join(dir, "device.pem"), DeviceKey: filepath.Join(dir, "device-key.pem"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return d, fmt.Errorf("mesh: dev tls: %w", err)
	}
	all := []string{d.CA, d.caKey, d.HubCert, d.HubKey, d.DeviceCert, d.DeviceKey}
	present := 0
	for _, p := range all {
		if _, err := os.Stat(p); err == nil {
			present++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return d, fmt.Errorf("mesh: dev tls: %w", err)
		}
	}
	switch present {
	case len(all):
		return d, nil
	case 0:
	default:
		return d, fmt.Errorf("mesh: dev tls: %s holds only some of the files (%d of %d): remove them to generate a new setup", dir, present, len(all))
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return d, err
	}
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "Trellis dev CA"},
		NotBefore: now, NotAfter: now.Add(devTLSValidity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return d, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, certPath, keyPath string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
			NotBefore: now, NotAfter: now.Add(devTLSValidity),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		return writePEM(keyPath, "EC PRIVATE KEY", kder, 0o600)
	}
	kder, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return d, err
	}
	if err := writePEM(d.caKey, "EC PRIVATE KEY", kder, 0o600); err != nil {
		return d, err
	}
	if err := writePEM(d.CA, "CERTIFICATE", caDER, 0o644); err != nil {
		return d, err
	}
	if err := issue("trellis-hub", x509.ExtKeyUsageServerAuth, d.HubCert, d.HubKey); err != nil {
		return d, err
	}
	if err := issue("trellis-device", x509.ExtKeyUsageClientAuth, d.DeviceCert, d.DeviceKey); err != nil {
		return d, err
	}
	return d, nil
}

// HubConfig is the leaf listener's TLS: the hub's certificate, and a
// device certificate signed by the CA required of every leaf.
func (d DevTLS) HubConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(d.HubCert, d.HubKey)
	if err != nil {
		return nil, fmt.Errorf("mesh: dev tls: %w", err)
	}
	pool, err := loadPool(d.CA)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}, nil
}

// DeviceConfig is a device's uplink TLS: the CA to verify the hub with,
// and the device certificate.
func (d DevTLS) DeviceConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(d.DeviceCert, d.DeviceKey)
	if err != nil {
		return nil, fmt.Errorf("mesh: dev tls: %w", err)
	}
	pool, err := loadPool(d.CA)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool}, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mesh: dev tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("mesh: dev tls: %s: no PEM certificate", path)
	}
	return pool, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("mesh: dev tls: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
