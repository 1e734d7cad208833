// Package svidfiles keeps a proxyless gRPC workload's certificate files
// current: it holds an xDS stream to the cluster's control plane as a node
// of role proxyless, receives the workload's SVID and the federation's
// roots over SDS (docs/xds.md, sections 5 and 7), and writes them as PEM
// files that grpc-go's file_watcher certificate provider reads. A renewal
// arrives as a new SDS version and is written over the old files; grpc-go
// picks it up at its next refresh, without dropping connections.
//
// Bootstrap renders the grpc-go bootstrap that goes with the files: the
// control plane as xDS server (TLS, verified with the roots), the node,
// the certificate provider instance the control plane's TLS contexts
// name (xdsresource.ProxylessCertProvider) and the server listener name
// template.
//
//	w, err := svidfiles.New(svidfiles.Config{Dir: "run/echo", XDS: xcfg}, reg)
//	go w.Run(ctx)
//	<-w.Ready() // the first certificate is on disk
package svidfiles

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/internal/xdsresource"
)

// File names inside Config.Dir.
const (
	CertFile = "cert.pem" // the SVID chain, leaf first
	KeyFile  = "key.pem"  // its PKCS#8 key, mode 0600
	CAFile   = "ca.pem"   // the federation's roots
)

// Config configures a Writer.
type Config struct {
	// Dir receives CertFile, KeyFile and CAFile; created 0700 if missing.
	// Required.
	Dir string
	// XDS is the stream to the control plane. Node must be of role
	// proxyless and carry the workload's token; Types and Handler are set
	// by New.
	XDS xdsclient.Config
	// Logger receives the writer's logs; default slog.Default().
	Logger *slog.Logger
}

// Writer writes the files on every SDS update; Run drives it.
type Writer struct {
	cfg    Config
	log    *slog.Logger
	client *xdsclient.Client
	ready  chan struct{}
	once   sync.Once
	writes prometheus.Counter

	mu      sync.Mutex // guards the following
	serial  string
	expires time.Time
}

// New checks cfg and builds the writer and its xDS client.
func New(cfg Config, reg prometheus.Registerer) (*Writer, error) {
	if cfg.Dir == "" {
		return nil, errors.New("svidfiles: config: dir is empty")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Writer{
		cfg: cfg, log: cfg.Logger.With("component", "svidfiles"), ready: make(chan struct{}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_svidfiles_writes_total", Help: "Certificate file sets written.",
		}),
	}
	if reg != nil {
		if err := reg.Register(w.writes); err != nil {
			return nil, fmt.Errorf("svidfiles: register metrics: %w", err)
		}
	}
	x := cfg.XDS
	x.Types = []string{xdsclient.SecretType}
	x.Handler = xdsclient.HandlerFunc(w.onUpdate)
	if x.Logger == nil {
		x.Logger = cfg.Logger
	}
	c, err := xdsclient.New(x, reg)
	if err != nil {
		return nil, fmt.Errorf("svidfiles: %w", err)
	}
	w.client = c
	return w, nil
}

// Run holds the xDS stream until ctx ends.
func (w *Writer) Run(ctx context.Context) error { return w.client.Run(ctx) }

// Ready is closed once the first set of files is written.
func (w *Writer) Ready() <-chan struct{} { return w.ready }

// Current returns the serial number and expiry of the certificate on disk.
func (w *Writer) Current() (serial string, notAfter time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.serial, w.expires
}

// onUpdate checks an SDS update and writes it; a bad one is NACKed and
// the files on disk stay as they were.
func (w *Writer) onUpdate(u xdsclient.Update) error {
	cert, _ := u.Resources[naming.SecretWorkload].(*tlsv3.Secret)
	roots, _ := u.Resources[naming.SecretRootCA].(*tlsv3.Secret)
	if cert == nil || roots == nil {
		return fmt.Errorf("secrets %s and %s are both required, got %d secrets", naming.SecretWorkload, naming.SecretRootCA, len(u.Resources))
	}
	chainPEM := cert.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
	keyPEM := cert.GetTlsCertificate().GetPrivateKey().GetInlineBytes()
	caPEM := roots.GetValidationContext().GetTrustedCa().GetInlineBytes()
	leaf, err := check(chainPEM, keyPEM, caPEM)
	if err != nil {
		return fmt.Errorf("secret %s: %w", naming.SecretWorkload, err)
	}
	if err := os.MkdirAll(w.cfg.Dir, 0o700); err != nil {
		return err
	}
	// Roots first, so a new chain is never on disk before its roots; the
	// key before the chain, and grpc-go's file_watcher keeps the old pair
	// until both match.
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{CAFile, caPEM, 0o644}, {KeyFile, keyPEM, 0o600}, {CertFile, chainPEM, 0o644}} {
		if err := writeFile(filepath.Join(w.cfg.Dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	w.mu.Lock()
	w.serial, w.expires = leaf.SerialNumber.String(), leaf.NotAfter
	w.mu.Unlock()
	w.writes.Inc()
	w.log.Info("certificate files written", "dir", w.cfg.Dir, "serial", leaf.SerialNumber.String(), "notAfter", leaf.NotAfter)
	w.once.Do(func() { close(w.ready) })
	return nil
}

// check parses the chain, key and roots and checks that the key is the
// leaf's.
func check(chainPEM, keyPEM, caPEM []byte) (*x509.Certificate, error) {
	pair, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("leaf: %w", err)
	}
	if len(leaf.URIs) != 1 {
		return nil, fmt.Errorf("leaf has %d URI SANs, want one SPIFFE ID", len(leaf.URIs))
	}
	if _, ok := pair.PrivateKey.(crypto.Signer); !ok {
		return nil, errors.New("key cannot sign")
	}
	if block, _ := pem.Decode(caPEM); block == nil {
		return nil, errors.New("roots are not PEM")
	}
	if !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
		return nil, errors.New("roots hold no certificate")
	}
	return leaf, nil
}

// writeFile replaces path atomically.
func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// BootstrapConfig is what a grpc-go bootstrap of a fedmesh workload needs.
type BootstrapConfig struct {
	// ServerURI is the control plane's xDS address, host:port; the host
	// must be in its certificate.
	ServerURI string
	// Node is node.id, node.locality and the metadata of docs/xds.md
	// section 1 (role proxyless, cluster, namespace, service account,
	// workload, token).
	NodeID   string
	Locality map[string]string
	Metadata map[string]string
	// Dir is the Writer's directory.
	Dir string
	// Refresh is how often grpc-go rereads the files; default 1m.
	Refresh time.Duration
}

// Bootstrap renders the grpc-go bootstrap JSON (GRPC_XDS_BOOTSTRAP) for the
// files in cfg.Dir.
func Bootstrap(cfg BootstrapConfig) ([]byte, error) {
	if cfg.ServerURI == "" || cfg.NodeID == "" || cfg.Dir == "" {
		return nil, errors.New("svidfiles: bootstrap needs a server URI, a node id and a directory")
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = time.Minute
	}
	ca := filepath.Join(cfg.Dir, CAFile)
	return json.MarshalIndent(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      cfg.ServerURI,
			"channel_creds":   []any{map[string]any{"type": "tls", "config": map[string]string{"ca_certificate_file": ca}}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": cfg.NodeID, "locality": cfg.Locality, "metadata": cfg.Metadata},
		"certificate_providers": map[string]any{
			xdsresource.ProxylessCertProvider: map[string]any{
				"plugin_name": "file_watcher",
				"config": map[string]string{
					"certificate_file":    filepath.Join(cfg.Dir, CertFile),
					"private_key_file":    filepath.Join(cfg.Dir, KeyFile),
					"ca_certificate_file": ca,
					"refresh_interval":    strconv.FormatFloat(cfg.Refresh.Seconds(), 'f', -1, 64) + "s", // protobuf JSON Duration
				},
			},
		},
		"server_listener_resource_name_template": xdsresource.ProxylessServerListenerTemplate,
	}, "", "  ")
}
