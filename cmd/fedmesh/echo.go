package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/internal/echo"
)

func newEchoCmd() *cobra.Command {
	var cfg echo.Config
	var listen string
	cmd := &cobra.Command{
		Use:   "echo",
		Short: "Run the sample echo workload (answers with the cluster, workload, service and version that served)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: echo.New(cfg), ReadHeaderTimeout: 10 * time.Second}
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			fmt.Fprintf(cmd.ErrOrStderr(), "echo %s/%s listening on %s\n", cfg.Cluster, cfg.Workload, ln.Addr())
			select {
			case err := <-errc:
				return err
			case <-cmd.Context().Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	cmd.Flags().StringVar(&cfg.Cluster, "cluster", "", "cluster name to report")
	cmd.Flags().StringVar(&cfg.Workload, "workload", "echo", "workload name to report")
	cmd.Flags().StringVar(&cfg.Service, "service", "", "service name to report (empty: none)")
	cmd.Flags().StringVar(&cfg.Version, "version", "", "version to report (empty: none)")
	return cmd
}
