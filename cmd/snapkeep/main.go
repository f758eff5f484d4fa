// Command snapkeep is the one snapkeep binary: the server, a local dev cluster, and
// the admin and user commands that talk to a cluster over gRPC.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/objstore"
)

// defaultEndpoints is where `snapkeep dev` listens.
const defaultEndpoints = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"

// endpointsEnv overrides defaultEndpoints; the --endpoints flag overrides both.
const endpointsEnv = "SNAPKEEP_ENDPOINTS"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed: the server's or storage's error
	exitUsage = 2 // the command line is wrong
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, newRootCmd(), os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs root with args and turns its error into a message on stderr and an
// exit code: exitUsage for a bad command line, exitError for anything else.
func execute(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitError
}

// newRootCmd builds the whole command tree.
func newRootCmd() *cobra.Command {
	root := newApp().rootCmd()
	root.AddCommand(newServerCmd(), newDevCmd(), newDebugCmd())
	root.AddCommand(newTLSCmd(), newTokenCmd()) // cmd/snapkeep/tls.go, security.go
	return root
}

// app holds the global flags and what the commands share.
type app struct {
	endpoints string
	output    string
	timeout   time.Duration
	security  clientSecurity // --token, --tls-* (cmd/snapkeep/security.go)

	// openStore opens the object store generate writes to; tests replace it.
	openStore func(ctx context.Context, cfg objstore.S3Config) (closableStore, error)
	// isTerminal reports whether w is a terminal (for progress bars); tests replace it.
	isTerminal func(w io.Writer) bool
	// clientConfig adjusts the client's configuration; tests shorten retries with it.
	clientConfig func(*client.Config)
}

func newApp() *app {
	return &app{openStore: openS3Store, isTerminal: isTerminal}
}

func (a *app) rootCmd() *cobra.Command {
	root := groupCmd("snapkeep", "A Raft-replicated catalog of collections whose segments live in S3")
	root.Long = `snapkeep keeps the catalog of collections whose data lives as immutable segment
files in S3-compatible storage: databases, collections, partitions, index
definitions, segments and their files, replicated by a three-node Raft cluster.

The commands below talk to a running cluster over gRPC (see --endpoints).`
	root.SilenceErrors = true // execute prints errors, once
	root.SilenceUsage = true  // a server error is not a usage problem
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })

	endpoints := os.Getenv(endpointsEnv)
	if endpoints == "" {
		endpoints = defaultEndpoints
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.endpoints, "endpoints", endpoints, "comma-separated gRPC addresses of the cluster's nodes (env "+endpointsEnv+")")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json (protojson with the .proto field names)")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "how long a command may take, retries included (0: no limit)")
	a.security.addFlags(pf)

	root.AddCommand(
		a.clusterCmd(),
		a.databaseCmd(),
		a.collectionCmd(),
		a.partitionCmd(),
		a.indexCmd(),
		a.segmentCmd(),
		a.snapshotCmd(),
		a.policyCmd(), // cmd/snapkeep/policy.go
		a.manifestCmd(),
		a.restoreCmd(),
		a.repositoryCmd(), // cmd/snapkeep/repository.go
		a.gcCmd(),
		a.fsckCmd(), // cmd/snapkeep/fsck.go
		a.generateCmd(),
		a.bucketCmd(),  // cmd/snapkeep/bucket.go
		a.storageCmd(), // cmd/snapkeep/storage.go
	)
	return root
}

// usageError is a mistake in the command line; it exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// groupCmd is a command that only holds subcommands. Run bare, it prints its help;
// with an unknown subcommand it is a usage error (cobra would print help and exit 0).
func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:                        use,
		Short:                      short,
		Args:                       cobra.ArbitraryArgs,
		SuggestionsMinimumDistance: 2,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return usageErrorf("%s", msg)
		},
	}
}

// exactArgs requires one positional argument per name.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		want := "no arguments"
		if len(names) > 0 {
			want = strings.Join(names, " ")
		}
		return usageErrorf("%q takes %s; got %d argument(s): %q", cmd.CommandPath(), want, len(args), args)
	}
}

// withClient runs fn with a client for the cluster and a context bounded by
// --timeout (when limit is true).
func (a *app) withClient(cmd *cobra.Command, limit bool, fn func(ctx context.Context, cl *client.Client) error) error {
	if a.output != "table" && a.output != "json" {
		return usageErrorf("--output %q: want table or json", a.output)
	}
	var endpoints []string
	for e := range strings.SplitSeq(a.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			endpoints = append(endpoints, e)
		}
	}
	if len(endpoints) == 0 {
		return usageErrorf("--endpoints is empty: give the gRPC address of at least one node")
	}
	ctx := cmd.Context()
	if limit && a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	secOpts, err := a.security.dialOptions()
	if err != nil {
		return err
	}
	cfg := client.Config{Endpoints: endpoints, Logger: slog.New(slog.DiscardHandler), DialOptions: secOpts}
	if a.clientConfig != nil {
		a.clientConfig(&cfg)
	}
	cl, err := client.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(ctx, cl)
}

// json reports whether -o json was asked for.
func (a *app) json() bool { return a.output == "json" }

// keyValues parses repeated key=value flags into a map.
func keyValues(flag string, values []string) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(values))
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--%s %q: want key=value", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

// flagChanged reports whether the flag name was given on the command line.
func flagChanged(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Changed
}
