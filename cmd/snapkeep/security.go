package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/server"
)

// Environment variables of the client security flags.
const (
	tokenEnv   = "SNAPKEEP_TOKEN"
	tlsCAEnv   = "SNAPKEEP_TLS_CA"
	tlsCertEnv = "SNAPKEEP_TLS_CERT"
	tlsKeyEnv  = "SNAPKEEP_TLS_KEY"
)

// addSecurityFlags adds the server's TLS and token flags, filling cfg.TLS and cfg.Auth.
func addSecurityFlags(cmd *cobra.Command, cfg *server.Config) {
	fl := cmd.Flags()
	fl.StringVar(&cfg.TLS.CAFile, "tls-ca", "", "PEM bundle of the CA(s) that sign node (and client) certificates; turns TLS on with --tls-cert and --tls-key")
	fl.StringVar(&cfg.TLS.CertFile, "tls-cert", "", "this node's certificate, PEM (server and client usage; SANs: the addresses peers and clients dial)")
	fl.StringVar(&cfg.TLS.KeyFile, "tls-key", "", "this node's private key, PEM")
	fl.BoolVar(&cfg.TLS.VerifyIncoming, "tls-verify-clients", false, "mTLS: require every gRPC client to present a certificate signed by --tls-ca")
	fl.StringArrayVar(&cfg.Auth.Tokens, "tokens", nil, "an API token as ROLE:sha256:HEX (role reader, writer or admin; repeat the flag; snapkeep token create prints one); none: no authentication")
	fl.StringVar(&cfg.Auth.InternalToken, "internal-token", "", "the cluster secret nodes send each other (the same on every node; required with --tokens); comma-separated: the first is sent, all are accepted (rotation)")
	fl.StringVar(&cfg.Auth.InternalTokenFile, "internal-token-file", "", "file holding the cluster secret, or several one per line (instead of --internal-token, which shows in ps)")
	fl.BoolVar(&cfg.Auth.Insecure, "insecure", false, "start without a cluster secret: the node-to-node Internal service then answers anyone who reaches the gRPC port (it can append raw entries to the Raft log); without this flag a node with no --internal-token(-file) refuses to start")
}

// clientSecurity holds the global client flags --token and --tls-*.
type clientSecurity struct {
	token, caFile, certFile, keyFile string
}

func (s *clientSecurity) addFlags(pf *pflag.FlagSet) {
	// The token's env value is read when the client is made, so --help never shows it.
	pf.StringVar(&s.token, "token", "", "API token sent as a bearer token (env "+tokenEnv+")")
	pf.StringVar(&s.caFile, "tls-ca", "", "connect over TLS, trusting this CA bundle (PEM) (env "+tlsCAEnv+")")
	pf.StringVar(&s.certFile, "tls-cert", "", "client certificate for mTLS, PEM (env "+tlsCertEnv+")")
	pf.StringVar(&s.keyFile, "tls-key", "", "client certificate's key, PEM (env "+tlsKeyEnv+")")
}

// dialOptions returns the client's TLS and token options, flags first, then env.
func (s *clientSecurity) dialOptions() ([]grpc.DialOption, error) {
	get := func(v, env string) string {
		if v != "" {
			return v
		}
		return strings.TrimSpace(os.Getenv(env))
	}
	token := get(s.token, tokenEnv)
	ca, cert, key := get(s.caFile, tlsCAEnv), get(s.certFile, tlsCertEnv), get(s.keyFile, tlsKeyEnv)
	var opts []grpc.DialOption
	if ca != "" || cert != "" || key != "" {
		if (cert == "") != (key == "") {
			return nil, usageErrorf("--tls-cert and --tls-key go together")
		}
		cfg, err := client.LoadTLSConfig(ca, cert, key)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithTLS(cfg))
	}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	return opts, nil
}

// tokenPrefix marks snapkeep tokens, so a leaked one is recognisable in logs and scans.
const tokenPrefix = "skt_"

func newTokenCmd() *cobra.Command {
	cmd := groupCmd("token", "Make API tokens and the cluster secret")
	var role string
	create := &cobra.Command{
		Use:   "create --role reader|writer|admin|internal",
		Short: "Print a new random token and the --tokens line for the nodes",
		Long: `Print a new random token (give it to the client: SNAPKEEP_TOKEN or --token) and
the line every node needs in its configuration (--tokens ROLE:sha256:HEX): nodes
keep only the SHA-256 of a token. Nothing is stored; a lost token is replaced by
a new one. --role internal prints a cluster secret for --internal-token-file.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			raw := make([]byte, 32)
			if _, err := rand.Read(raw); err != nil {
				return err
			}
			secret := base64.RawURLEncoding.EncodeToString(raw)
			if strings.EqualFold(role, "internal") {
				fmt.Fprintf(out, "cluster secret: %s\nwrite it to a file (mode 0600) on every node and start each with --internal-token-file FILE\n", secret)
				return nil
			}
			r, err := server.ParseRole(role)
			if err != nil {
				return usageErrorf("--role %q: want reader, writer, admin or internal", role)
			}
			token := tokenPrefix + secret
			fmt.Fprintf(out, "token: %s\nnode flag: --tokens %s\n", token, server.TokenLine(r, token))
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "", "reader, writer or admin (or internal for the cluster secret)")
	cmd.AddCommand(create)
	return cmd
}

// newClusterSecret returns a random cluster secret (for the dev cluster's nodes).
func newClusterSecret() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("make a cluster secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}
