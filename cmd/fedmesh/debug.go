package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/catalog"
)

func newDebugCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "debug",
		Short: "Inspect a running control plane",
	}
	cmd.AddCommand(newDebugExportsCmd())
	return cmd
}

func newDebugExportsCmd() *cobra.Command {
	var admin, output, cluster string
	cmd := &cobra.Command{
		Use:   "exports",
		Short: "List a cluster's exports as they are stored in etcd, with their keys",
		Example: `  fedmesh debug exports --admin http://127.0.0.11:15014
  fedmesh debug exports --admin http://127.0.0.11:15014 -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var page struct {
				Cluster  string `json:"cluster"`
				Prefix   string `json:"prefix"`
				Revision int64  `json:"revision"`
				Items    []struct {
					Key    string         `json:"key"`
					Export catalog.Export `json:"export"`
				} `json:"items"`
			}
			path := "/debug/exports"
			if cluster != "" {
				path += "?cluster=" + cluster
			}
			if err := adminGet(cmd.Context(), admin, path, &page); err != nil {
				return err
			}
			return printOutput(cmd.OutOrStdout(), output, page, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "KEY\tTYPE\tPORTS\tENDPOINTS\tREADY\n")
				for _, it := range page.Items {
					var ports []string
					for _, p := range it.Export.Service.Ports {
						ports = append(ports, fmt.Sprintf("%s/%d", p.Name, p.Port))
					}
					ready := 0
					for _, ep := range it.Export.Endpoints {
						if ep.Ready {
							ready++
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", it.Key, it.Export.Service.Type,
						strings.Join(ports, ","), len(it.Export.Endpoints), ready)
				}
				fmt.Fprintf(tw, "\n%d exports of cluster %s at etcd revision %d\n", len(page.Items), page.Cluster, page.Revision)
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "http://127.0.0.1:15014", "the control plane's admin URL")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	cmd.Flags().StringVar(&cluster, "cluster", "", "whose exports to list (default: the control plane's own cluster)")
	return cmd
}

// adminGet fetches path from a control plane's admin URL and decodes the
// JSON answer into v.
func adminGet(ctx context.Context, admin, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := strings.TrimSuffix(admin, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--admin %q: %w", admin, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach control plane: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}
