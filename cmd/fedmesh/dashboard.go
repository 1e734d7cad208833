package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/controlplane/webview"
)

func newDashboardCmd() *cobra.Command {
	var admin, listen string
	var open bool
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the live picture of the clusterset to a browser on this machine",
		Long: `Serve a control plane's web view on a loopback address: clusters and their
gateways, the request rate, error rate and p99 between clusters, fenced
clusters and failover as they happen, and why each endpoint of a service is
at its priority. The command holds the operator certificate and forwards the
page's read-only requests to the admin API, so the admin API stays closed to
browsers. It prints the page's URL, which carries a secret token: anyone on
this machine with the URL reads what the operator certificate may read.`,
		Example: `  fedmesh dashboard --admin https://127.0.0.11:15014
  fedmesh dashboard --admin https://127.0.0.11:15014 --listen 127.0.0.1:8080 --open`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, _, err := net.SplitHostPort(listen)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--listen %q: %w", listen, err)}
			}
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				return &exitError{code: 2, err: fmt.Errorf("--listen %q: the dashboard listens on loopback addresses only", listen)}
			}
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			u, err := url.Parse(admin)
			if err != nil {
				return err
			}
			log, err := commandLogger(cmd)
			if err != nil {
				return err
			}
			p, err := webview.NewProxy(webview.ProxyConfig{Admin: u, TLS: c.TLS, Logger: log})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("dashboard listener: %w", err)
			}
			page := p.PageURL(ln.Addr().String())
			fmt.Fprintf(cmd.OutOrStdout(), "dashboard of %s: %s\n", admin, page)
			if open {
				if err := exec.Command("xdg-open", page).Start(); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "could not open a browser (%v): open the URL above\n", err)
				}
			}
			hs := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
			ctx, cancel := context.WithCancel(cmd.Context())
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				hs.Shutdown(sctx)
			}()
			err = hs.Serve(ln)
			cancel()
			<-stopped
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		},
	}
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "loopback host:port to serve the page on (port 0: a free port)")
	cmd.Flags().BoolVar(&open, "open", false, "open the page in the desktop's browser (xdg-open)")
	return cmd
}
