package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/controlplane/inject"
	"github.com/fedmesh/fedmesh/internal/identity"
)

func newWebhookCmd() *cobra.Command {
	var o injectOptions
	var listen, admin, certFile, keyFile string
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Run the sidecar injection admission webhook",
		Long: `Serve the mutating admission webhook that injects the fedmesh sidecar into
pods created in namespaces labelled fedmesh.io/inject=enabled, over TLS on
/inject. The certificate is re-read when its file changes (cert-manager
rotates it). Metrics and health on the admin address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := commandLogger(cmd)
			if err != nil {
				return err
			}
			in, err := inject.New(o.cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			reg := newRegistry()
			wh, err := inject.NewWebhook(in, log, reg)
			if err != nil {
				return err
			}
			certs, err := identity.NewFileCert(certFile, keyFile)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("webhook certificate: %w", err)}
			}
			mux := http.NewServeMux()
			mux.Handle("POST /inject", wh)
			srv := &http.Server{
				Handler:           mux,
				ReadHeaderTimeout: 10 * time.Second,
				TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate},
			}
			amux := http.NewServeMux()
			amux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			amux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
			amux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
			asrv := &http.Server{Handler: amux, ReadHeaderTimeout: 10 * time.Second}

			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			aln, err := net.Listen("tcp", admin)
			if err != nil {
				ln.Close()
				return err
			}
			log.Info("webhook listening", "address", ln.Addr().String(), "admin", aln.Addr().String())
			errc := make(chan error, 2)
			go func() { errc <- srv.ServeTLS(ln, "", "") }()
			go func() { errc <- asrv.Serve(aln) }()
			var runErr error
			select {
			case runErr = <-errc:
			case <-cmd.Context().Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = errors.Join(srv.Shutdown(ctx), asrv.Shutdown(ctx))
			if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) {
				return runErr
			}
			return err
		},
	}
	o.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "0.0.0.0:9443", "address of the webhook (TLS)")
	f.StringVar(&admin, "admin", "0.0.0.0:15021", "address of /metrics, /healthz and /readyz")
	f.StringVar(&certFile, "tls-cert", "/etc/fedmesh/webhook/tls.crt", "serving certificate (PEM)")
	f.StringVar(&keyFile, "tls-key", "/etc/fedmesh/webhook/tls.key", "serving key (PEM)")
	return cmd
}
