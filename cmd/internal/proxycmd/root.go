package proxycmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// ProxyBinary is the name of the lean data-plane binary.
const ProxyBinary = "fedmesh-proxy"

// NewProxyRoot returns the command tree of fedmesh-proxy: sidecar, gateway
// and version, with the logging flags fedmesh has.
func NewProxyRoot(version, commit string) *cobra.Command {
	root := &cobra.Command{
		Use:   ProxyBinary,
		Short: "fedmesh's data plane: the sidecar and the east-west gateway",
		Long: "fedmesh-proxy runs fedmesh's data plane, a workload's sidecar or a cluster's east-west gateway,\n" +
			"configured by the cluster's control plane over xDS. It is the lean binary for what runs beside\n" +
			"every workload; 'fedmesh sidecar' and 'fedmesh gateway' are the same commands.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usage(fmt.Errorf("%w\nsee '%s --help'", err, c.CommandPath()))
	})
	AddLogFlags(root)
	root.AddCommand(NewVersionCmd(ProxyBinary, version, commit))
	root.AddCommand(NewSidecarCmd(ProxyBinary))
	root.AddCommand(NewGatewayCmd(ProxyBinary))
	return root
}

// Run executes root with args until it returns or SIGINT or SIGTERM
// cancels it, prints an error to stderr, and returns the process exit
// code: 0 on success, 1 on failure, 2 on bad usage.
func Run(root *cobra.Command, args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "error:", err)
	if ee := (*ExitError)(nil); errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}
