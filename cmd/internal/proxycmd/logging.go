package proxycmd

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

// logOptions are the root's persistent logging flags, shared by every
// long-running command.
type logOptions struct {
	format string
	level  string
}

// AddLogFlags adds the persistent --log-format and --log-level flags to
// root; CommandLogger reads them.
func AddLogFlags(root *cobra.Command) {
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
}

// logger builds the logger the flags ask for, writing to w (stderr).
func (o *logOptions) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToLower(o.level))); err != nil {
		return nil, usage(fmt.Errorf("--log-level %q: want debug, info, warn or error", o.level))
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch o.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usage(fmt.Errorf("--log-format %q: want text or json", o.format))
}

// CommandLogger returns the logger for a command, built from its root's
// --log-format and --log-level flags (read from the command tree, not a
// package variable, so that two command trees do not share them).
func CommandLogger(cmd *cobra.Command) (*slog.Logger, error) {
	f := cmd.Root().PersistentFlags()
	o := logOptions{format: f.Lookup("log-format").Value.String(), level: f.Lookup("log-level").Value.String()}
	return o.logger(cmd.ErrOrStderr())
}
