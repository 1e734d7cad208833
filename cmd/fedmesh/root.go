package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/cmd/internal/proxycmd"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
	// quiet: the command said all there is to say; run prints no error
	// line (a check's "deny" answer, exit code 1).
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// run executes the command line and returns the process exit code:
// 0 on success, 1 on failure, 2 on bad usage.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.quiet {
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	return exitCode(err)
}

// exitCode is the process exit code for a command's error: the code an
// exitError or a proxycmd.ExitError carries, else 1.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var pe *proxycmd.ExitError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return 1
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "fedmesh",
		Short:         "fedmesh joins clusters into one service mesh",
		Long:          "fedmesh is a multi-cluster service mesh: per-cluster control planes federate by gossip and etcd,\neast-west gateways carry mTLS between clusters, and sidecars balance by locality and fail over.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\nsee '%s --help'", err, c.CommandPath())}
	})
	proxycmd.AddLogFlags(root)
	operatorCreds.addFlags(root)
	// One line per command; each lives in its own file.
	root.AddCommand(newVersionCmd())
	root.AddCommand(newStatusCmd())
	root.AddCommand(newCACmd())
	root.AddCommand(proxycmd.NewSidecarCmd("fedmesh"))
	root.AddCommand(newCertsCmd())
	root.AddCommand(newTokenCmd())
	root.AddCommand(newJoinCmd())
	root.AddCommand(newKeysCmd())
	root.AddCommand(newMembersCmd())
	root.AddCommand(newEchoCmd())
	root.AddCommand(newControlPlaneCmd())
	root.AddCommand(newDebugCmd())
	root.AddCommand(proxycmd.NewGatewayCmd("fedmesh"))
	root.AddCommand(newInjectCmd())
	root.AddCommand(newWebhookCmd())
	root.AddCommand(newDemoCmd())
	root.AddCommand(newAuthzCmd())
	root.AddCommand(newGetCmd())
	root.AddCommand(newRoutesCmd())
	root.AddCommand(newDashboardCmd())
	root.AddCommand(newInstallCmd())
	root.AddCommand(newUninstallCmd())
	root.AddCommand(newCheckCmd())
	root.AddCommand(newSimCmd())
	return root
}
