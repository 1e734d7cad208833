package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/controlplane/ca"
	"github.com/fedmesh/fedmesh/federation/adminapi"
)

// operatorDirEnv names the operator directory when --operator-dir is not
// given.
const operatorDirEnv = "FEDMESH_OPERATOR_DIR"

// operatorOptions are the root's persistent flags that say which operator
// certificate authenticates to a control plane's admin API, as kubectl's
// --client-certificate, --client-key and --certificate-authority do. Each
// file comes from its own flag, else from the operator directory:
// --operator-dir, else $FEDMESH_OPERATOR_DIR, else
// $XDG_CONFIG_HOME/fedmesh/operator (~/.config/fedmesh/operator), where
// 'fedmesh ca issue-operator' writes by default.
type operatorOptions struct {
	dir, cert, key, bundle string
}

// operatorCreds holds the persistent flags of the command line being run;
// newRootCmd binds them anew for every run.
var operatorCreds operatorOptions

func (o *operatorOptions) addFlags(root *cobra.Command) {
	*o = operatorOptions{}
	f := root.PersistentFlags()
	f.StringVar(&o.dir, "operator-dir", "", "directory of the operator certificate for the admin API (default $"+operatorDirEnv+", else ~/.config/fedmesh/operator)")
	f.StringVar(&o.cert, "client-certificate", "", "operator certificate for the admin API (default OPERATOR-DIR/"+ca.OperatorCertFile+")")
	f.StringVar(&o.key, "client-key", "", "operator key for the admin API (default OPERATOR-DIR/"+ca.OperatorKeyFile+")")
	f.StringVar(&o.bundle, "certificate-authority", "", "federation root bundle the control plane must chain to (default OPERATOR-DIR/"+ca.OperatorBundleFile+")")
}

// operatorDir resolves the operator directory and says where it came from.
func (o *operatorOptions) operatorDir() (dir, from string, err error) {
	if o.dir != "" {
		return o.dir, "--operator-dir", nil
	}
	if d := os.Getenv(operatorDirEnv); d != "" {
		return d, "$" + operatorDirEnv, nil
	}
	cfg, err := os.UserConfigDir()
	if err != nil {
		return "", "", fmt.Errorf("no operator directory: set --operator-dir or $%s (%w)", operatorDirEnv, err)
	}
	return filepath.Join(cfg, "fedmesh", "operator"), "the default", nil
}

// files returns the credential files, each from its flag or the operator
// directory, and a description of where they were looked for.
func (o *operatorOptions) files() (adminapi.OperatorFiles, string, error) {
	dir, from, err := o.operatorDir()
	if err != nil && (o.cert == "" || o.key == "" || o.bundle == "") {
		return adminapi.OperatorFiles{}, "", err
	}
	pick := func(flag, name string) string {
		if flag != "" {
			return flag
		}
		return filepath.Join(dir, name)
	}
	f := adminapi.OperatorFiles{
		CertFile:   pick(o.cert, ca.OperatorCertFile),
		KeyFile:    pick(o.key, ca.OperatorKeyFile),
		BundleFile: pick(o.bundle, ca.OperatorBundleFile),
	}
	return f, fmt.Sprintf("operator directory %s (%s)", dir, from), nil
}

// addFedAdminFlag adds --admin, the control plane's admin URL, to a
// command that calls the admin API. The operator certificate flags are
// the root's (persistent).
func addFedAdminFlag(cmd *cobra.Command, admin *string) {
	cmd.Flags().StringVar(admin, "admin", adminapi.DefaultAdminURL, "the control plane's admin URL (https with an operator certificate; http for a control plane without a CA)")
}

// fedAdminClient checks --admin and returns a client for it: for https,
// one that presents the operator certificate the flags and environment
// name. Missing or expired credentials fail here, before any call, with
// what to do about it (exit code 1).
func fedAdminClient(admin string) (*adminapi.Client, error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &exitError{code: 2, err: fmt.Errorf("--admin %q is not an http(s) URL like %s", admin, adminapi.DefaultAdminURL)}
	}
	if u.Scheme == "http" {
		return &adminapi.Client{BaseURL: admin}, nil
	}
	files, where, err := operatorCreds.files()
	if err != nil {
		return nil, err
	}
	cfg, err := files.ClientTLS(time.Now())
	if err != nil {
		hint := "issue one with 'fedmesh ca issue-operator --ca-dir CLUSTER-CA-DIR --name NAME' and point --operator-dir or $" + operatorDirEnv + " at it"
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no operator certificate for %s in %s: %w\n%s", admin, where, err, hint)
		}
		return nil, fmt.Errorf("operator certificate for %s from %s: %w\n%s", admin, where, err, hint)
	}
	return &adminapi.Client{BaseURL: admin, TLS: cfg}, nil
}
