package main

import (
	"context"
	"fmt"
	"io"
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
		Example: `  fedmesh debug exports --admin https://127.0.0.11:15014
  fedmesh debug exports --admin https://127.0.0.11:15014 -o yaml`,
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
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), adminPageTimeout)
			defer cancel()
			if err := c.Get(ctx, path, &page); err != nil {
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
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	cmd.Flags().StringVar(&cluster, "cluster", "", "whose exports to list (default: the control plane's own cluster)")
	return cmd
}

// adminPageTimeout bounds fetching one admin page (status, debug).
const adminPageTimeout = 10 * time.Second
