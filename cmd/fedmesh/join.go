package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func newJoinCmd() *cobra.Command {
	var admin, tokenFile, output string
	cmd := &cobra.Command{
		Use:   "join [TOKEN]",
		Short: "Join this cluster's control plane to a federation",
		Long: "Join the running control plane at --admin to the federation that issued TOKEN ('fedmesh token create').\n" +
			"The control plane checks the token against its own federation root before it touches gossip;\n" +
			"an expired, altered or foreign token joins nothing. One join makes the full mesh.",
		Example: `  fedmesh join fmjt1.eyJw...
  fedmesh join --token-file join.token --admin https://127.0.0.13:15014
  fedmesh token create --admin https://127.0.0.11:15014 | fedmesh join --token-file - --admin https://127.0.0.13:15014`,
		Args: fedUsageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			token, err := joinToken(cmd.InOrStdin(), args, tokenFile)
			if err != nil {
				return err
			}
			c, err := fedAdminClient(admin)
			if err != nil {
				return err
			}
			resp, err := c.Join(cmd.Context(), token)
			if err != nil {
				return err
			}
			return printOutput(cmd.OutOrStdout(), output, resp, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "joined the federation (trust domain %s) through %s: %d seed(s) answered\n",
					resp.TrustDomain, resp.Issuer, resp.Contacted)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "read the token from this file ('-' for standard input)")
	addFedAdminFlag(cmd, &admin)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// maxTokenFile bounds what --token-file reads; tokens are at most 32 KiB.
const maxTokenFile = 64 << 10

// joinToken takes the token from the argument or from --token-file,
// exactly one of them.
func joinToken(stdin io.Reader, args []string, file string) (string, error) {
	switch {
	case len(args) == 1 && file != "":
		return "", &exitError{code: 2, err: errors.New("give the token as an argument or with --token-file, not both")}
	case len(args) == 1:
		return strings.TrimSpace(args[0]), nil
	case file == "":
		return "", &exitError{code: 2, err: errors.New("no token: give it as an argument or with --token-file")}
	}
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token file %s is larger than %d bytes: not a join token", file, maxTokenFile)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return tok, nil
}
