package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/controlplane/ca"
)

const caRotateLong = `Rotate a cluster intermediate or the federation root without dropping a request.
Control planes read their --ca-dir again every --ca-reload-interval: a new intermediate
or trust bundle is taken at once, every certificate of the cluster is re-issued from it
and the bundle is pushed to the sidecars over SDS (secret ROOTCA).

Intermediate (one cluster, same root):
  fedmesh ca rotate intermediate --root-dir ROOT --ca-dir clusters/east-1/ca
The old intermediate signs nothing more (its key is replaced); its leaves chain to the
same root and stay valid until the control plane has renewed them (seconds) or they expire.

Root (every cluster, phase by phase; finish a phase everywhere before the next):
  fedmesh ca init --trust-domain TD --dir ROOT2          # the new root, same trust domain
  fedmesh ca rotate root --phase add    --new-root-dir ROOT2 --ca-dir DIR   # every cluster
  fedmesh ca rotate root --phase switch --new-root-dir ROOT2 --ca-dir DIR   # every cluster
  # wait for the window (--window, longer than the control planes' --cert-ttl)
  fedmesh ca rotate root --phase remove --ca-dir DIR                        # every cluster
add puts the new root in the trust bundle beside the old one; switch signs a new
intermediate under the new root; remove takes the old root out, after which a leaf of
the old root is refused everywhere. Re-issue operator certificates from the new root or
the new intermediates ('fedmesh ca issue-operator') and hand the new bundle.crt to
gateways and sidecar bootstraps between switch and remove.

Exit codes: 0 done, 1 failure, 2 bad usage, 3 the step does not fit the rotation state
(a phase out of order, a window still running); nothing was changed.`

func newCARotateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate a cluster intermediate or the federation root with an overlap window",
		Long:  caRotateLong,
	}
	cmd.AddCommand(newCARotateIntermediateCmd(), newCARotateRootCmd(), newCARotateStatusCmd())
	return cmd
}

func newCARotateIntermediateCmd() *cobra.Command {
	var rootDir, caDir string
	var ttl, window time.Duration
	cmd := &cobra.Command{
		Use:   "intermediate --root-dir DIR --ca-dir DIR",
		Short: "Replace a cluster's intermediate by a new one under the same root",
		Long:  caRotateLong,
		Args:  caNoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := caRequired(c, "root-dir", "ca-dir"); err != nil {
				return err
			}
			if ttl < 0 || window <= 0 {
				return caUsage(c, "--ttl must not be negative and --window must be positive")
			}
			root, err := ca.LoadRoot(rootDir)
			if err != nil {
				return err
			}
			if err := ca.RotateIntermediate(root, caDir, ttl, window); err != nil {
				return rotateErr(err)
			}
			fmt.Fprintf(c.OutOrStdout(), "rotated the intermediate in %s; the old one is retired for %s\n", caDir, window)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rootDir, "root-dir", "", "directory of the root that signs the new intermediate (in the cluster's bundle)")
	f.StringVar(&caDir, "ca-dir", "", "the cluster CA directory to rotate")
	f.DurationVar(&ttl, "ttl", ca.DefaultClusterCATTL, "validity of the new intermediate (capped at the root's)")
	f.DurationVar(&window, "window", ca.DefaultRotationWindow, "how long the old intermediate counts as the cluster's (longer than --cert-ttl)")
	return cmd
}

func newCARotateRootCmd() *cobra.Command {
	var phase, newRootDir, caDir string
	var ttl, window time.Duration
	var force bool
	cmd := &cobra.Command{
		Use:   "root --phase add|switch|remove --ca-dir DIR [--new-root-dir DIR]",
		Short: "Run one phase of a root rotation on a cluster CA",
		Long:  caRotateLong,
		Args:  caNoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := caRequired(c, "phase", "ca-dir"); err != nil {
				return err
			}
			var newRoot *ca.Root
			switch phase {
			case ca.PhaseAdd, ca.PhaseSwitch:
				if err := caRequired(c, "new-root-dir"); err != nil {
					return err
				}
				r, err := ca.LoadRoot(newRootDir)
				if err != nil {
					return err
				}
				newRoot = r
			case ca.PhaseRemove:
				if newRootDir != "" {
					return caUsage(c, "--new-root-dir is not used by phase %s", phase)
				}
			default:
				return caUsage(c, "--phase %q: want add, switch or remove", phase)
			}
			if ttl < 0 || window <= 0 {
				return caUsage(c, "--ttl must not be negative and --window must be positive")
			}
			if err := ca.RotateRoot(phase, newRoot, caDir, ttl, window, force, time.Now()); err != nil {
				return rotateErr(err)
			}
			next := map[string]string{
				ca.PhaseAdd:    "run it in every cluster, then phase switch",
				ca.PhaseSwitch: fmt.Sprintf("run it in every cluster, then phase remove after %s", window),
				ca.PhaseRemove: "the old root is no longer trusted by this cluster",
			}[phase]
			fmt.Fprintf(c.OutOrStdout(), "root rotation phase %s done in %s: %s\n", phase, caDir, next)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&phase, "phase", "", "add, switch or remove")
	f.StringVar(&newRootDir, "new-root-dir", "", "directory of the new root ('fedmesh ca init', same trust domain); add and switch")
	f.StringVar(&caDir, "ca-dir", "", "the cluster CA directory")
	f.DurationVar(&ttl, "ttl", ca.DefaultClusterCATTL, "validity of the new intermediate (switch)")
	f.DurationVar(&window, "window", ca.DefaultRotationWindow, "how long after switch the old root stays trusted (longer than --cert-ttl)")
	f.BoolVar(&force, "force", false, "remove before the window ends (only once every leaf is known to be renewed)")
	return cmd
}

func newCARotateStatusCmd() *cobra.Command {
	var caDir, output string
	cmd := &cobra.Command{
		Use:   "status --ca-dir DIR",
		Short: "Show the rotation in progress and the retired intermediates of a cluster CA",
		Args:  caNoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := caRequired(c, "ca-dir"); err != nil {
				return err
			}
			if output != "" && output != "json" && output != "yaml" {
				return caUsage(c, "unknown output format %q: want json or yaml", output)
			}
			rs, err := ca.ReadRotation(caDir)
			if err != nil {
				return err
			}
			return printOutput(c.OutOrStdout(), output, rs, func(w io.Writer) error {
				if r := rs.Root; r != nil {
					fmt.Fprintf(w, "root rotation: phase %s done, new root %s…\n", r.Phase, r.NewRoot[:16])
					if r.Phase == ca.PhaseSwitch {
						fmt.Fprintf(w, "  old root trusted until %s\n", r.SwitchedAt.Add(time.Duration(r.Window)).UTC().Format(time.RFC3339))
					}
				} else {
					fmt.Fprintln(w, "root rotation: none")
				}
				for _, rc := range rs.Retired {
					fmt.Fprintf(w, "retired intermediate %s… until %s\n", rc.SHA256[:16], rc.Until.UTC().Format(time.RFC3339))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&caDir, "ca-dir", "", "the cluster CA directory")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// rotateErr makes a refused step exit 3 with its reason, apart from
// I/O failures (1).
func rotateErr(err error) error {
	if errors.Is(err, ca.ErrRotation) {
		return &exitError{code: 3, err: err}
	}
	return err
}
