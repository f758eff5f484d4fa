package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/server/devca"
)

type tlsInitFlags struct {
	dir, nodes, hosts, clientName string
	days                          int
	force, newCA                  bool
}

// newTLSCmd is `snapkeep tls`: development certificates.
func newTLSCmd() *cobra.Command {
	cmd := groupCmd("tls", "Make development TLS certificates")
	cmd.AddCommand(newTLSInitCmd())
	return cmd
}

func newTLSInitCmd() *cobra.Command {
	f := &tlsInitFlags{}
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Write a dev CA, node certificates and a client certificate (PEM, ECDSA P-256)",
		Long: `Write a certificate authority and certificates for a cluster into --dir:

  ca.pem, ca-key.pem          the CA (keep ca-key.pem off the nodes)
  NODE.pem, NODE-key.pem      one per --nodes name: server and client use, SANs
                              --hosts plus the node name
  CLIENT.pem, CLIENT-key.pem  a client certificate for mTLS (--client-name)

When --dir already holds ca.pem and ca-key.pem, that CA signs the new certificates
(add a node, renew certificates) unless --new-ca; existing files are not
overwritten without --force. For production, use your own CA: any certificate
with the right usages and SANs works.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.dir == "" {
				return usageErrorf("--dir is required")
			}
			nodes := splitList(f.nodes)
			hosts := splitList(f.hosts)
			if len(nodes) == 0 && f.clientName == "" {
				return usageErrorf("nothing to issue: give --nodes or --client-name")
			}
			if f.days < 1 {
				return usageErrorf("--days %d must be at least 1", f.days)
			}
			validity := time.Duration(f.days) * 24 * time.Hour
			if err := os.MkdirAll(f.dir, 0o755); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			ca, err := devca.LoadCA(f.dir)
			switch {
			case err == nil && !f.newCA:
				fmt.Fprintf(out, "using the CA in %s\n", filepath.Join(f.dir, "ca.pem"))
			case err != nil && !os.IsNotExist(err):
				return fmt.Errorf("read the CA in %s: %w (use --new-ca to replace it)", f.dir, err)
			default:
				if ca, err = devca.NewCA("snapkeep dev CA", validity); err != nil {
					return err
				}
				keyPEM, err := ca.KeyPEM()
				if err != nil {
					return err
				}
				force := f.force || f.newCA
				if err := devca.WriteFile(f.dir, "ca.pem", ca.CertPEM, 0o644, force); err != nil {
					return err
				}
				if err := devca.WriteFile(f.dir, "ca-key.pem", keyPEM, 0o600, force); err != nil {
					return err
				}
				fmt.Fprintf(out, "wrote %s\n", filepath.Join(f.dir, "ca.pem"))
			}
			issue := func(name string, sans []string, usage devca.Usage) error {
				leaf, err := ca.Issue(name, sans, usage, validity)
				if err != nil {
					return err
				}
				if err := devca.WriteFile(f.dir, name+".pem", leaf.CertPEM, 0o644, f.force); err != nil {
					return err
				}
				if err := devca.WriteFile(f.dir, name+"-key.pem", leaf.KeyPEM, 0o600, f.force); err != nil {
					return err
				}
				fmt.Fprintf(out, "wrote %s\n", filepath.Join(f.dir, name+".pem"))
				return nil
			}
			for _, node := range nodes {
				if err := issue(node, append([]string{node}, hosts...), devca.Node); err != nil {
					return err
				}
			}
			if f.clientName != "" {
				if err := issue(f.clientName, nil, devca.Client); err != nil {
					return err
				}
			}
			if len(nodes) > 0 {
				d := f.dir
				fmt.Fprintf(out, "\nnode flags (for %s):\n  --tls-ca %s --tls-cert %s --tls-key %s [--tls-verify-clients]\n",
					nodes[0], filepath.Join(d, "ca.pem"), filepath.Join(d, nodes[0]+".pem"), filepath.Join(d, nodes[0]+"-key.pem"))
			}
			if f.clientName != "" {
				fmt.Fprintf(out, "client flags:\n  --tls-ca %s --tls-cert %s --tls-key %s\n",
					filepath.Join(f.dir, "ca.pem"), filepath.Join(f.dir, f.clientName+".pem"), filepath.Join(f.dir, f.clientName+"-key.pem"))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "directory for the PEM files (required)")
	fl.StringVar(&f.nodes, "nodes", "n1,n2,n3", "node names: one certificate each")
	fl.StringVar(&f.hosts, "hosts", "127.0.0.1,localhost", "IP addresses and DNS names the nodes are dialled by (SANs of every node certificate)")
	fl.StringVar(&f.clientName, "client-name", "client", "name of the client certificate (empty: none)")
	fl.IntVar(&f.days, "days", 365, "validity of the certificates (and of a new CA)")
	fl.BoolVar(&f.force, "force", false, "overwrite existing certificate files")
	fl.BoolVar(&f.newCA, "new-ca", false, "make a new CA even when --dir holds one (CA rotation: see docs/OPERATIONS.md)")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
